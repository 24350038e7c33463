//! gsbuild: incremental rebuild of a diverged PostgreSQL standby.
//!
//! The crate is a library with a thin binary on top. Modules, by pipeline phase
//! (see `docs/architecture.md`):
//!
//! - formats: [`lsn`], [`version`], [`cursor`], [`control`], [`xlog`], [`timeline`], [`relpath`];
//! - connections: [`conninfo`], [`replication`], [`source`];
//! - the rebuild: [`rewind`] (phases 1–5, up to the [`plan`]), [`walscan`], [`pagescan`] and
//!   [`pagelsn`] (changed blocks by page LSN), [`datadir`],
//!   [`filemap`], [`execute`] and [`target`] (phases 6–7), [`pgconf`], [`pgserver`];
//! - tools for people and tests: [`inspect`];
//! - errors: [`error`];
//! - property checks for the fuzz targets and the corpus test: `fuzzing` (hidden).
#![warn(missing_docs)]

pub mod conninfo;
pub mod control;
pub mod cursor;
pub mod datadir;
pub mod error;
pub mod execute;
#[doc(hidden)]
pub mod failpoint;
pub mod filemap;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod journal;
pub mod lsn;
pub mod pagelsn;
pub mod pagescan;
pub mod pgconf;
pub mod pgserver;
pub mod plan;
pub mod relpath;
pub mod replication;
pub mod rewind;
pub mod source;
pub mod target;
pub mod timeline;
pub mod version;
pub mod walscan;
pub mod xlog;

pub use error::{Error, Result};
pub use lsn::{Lsn, TimeLineId, XLogSegNo};
pub use version::PgMajor;
