//! gsbuild: incremental rebuild of a diverged PostgreSQL standby.
//!
//! The crate is a library with a thin binary on top. Modules, by pipeline phase
//! (see `docs/architecture.md`):
//!
//! - formats: [`lsn`], [`version`], [`cursor`], [`control`], [`xlog`], [`timeline`], [`relpath`];
//! - tools for people and tests: [`inspect`];
//! - errors: [`error`];
//! - property checks for the fuzz targets and the corpus test: `fuzzing` (hidden).
#![warn(missing_docs)]

pub mod conninfo;
pub mod control;
pub mod cursor;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod lsn;
pub mod relpath;
pub mod replication;
pub mod timeline;
pub mod version;
pub mod xlog;

pub use error::{Error, Result};
pub use lsn::{Lsn, TimeLineId, XLogSegNo};
pub use version::PgMajor;
