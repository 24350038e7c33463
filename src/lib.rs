//! gsbuild: incremental rebuild of a diverged PostgreSQL standby.
//!
//! The crate is a library with a thin binary on top. Modules, by pipeline phase
//! (see `docs/architecture.md`):
//!
//! - what wrote a data directory: [`flavor`];
//! - formats: [`lsn`], [`cursor`], [`control`], [`xlog`], [`timeline`], [`relpath`];
//! - connections: [`conninfo`], [`replication`], [`ogwire`] (openGauss), [`source`];
//! - the rebuild: [`rewind`] (the orchestration, one module per phase, 0–7), reading the
//!   target through [`cluster`], [`walscan`], [`pagescan`] and [`pagelsn`] (changed blocks),
//!   [`datadir`], [`filemap`] and [`plan`] (the boundary), [`transfer`] and [`journal`],
//!   writing it through [`target`]; [`pgconf`], [`pgserver`]; [`reporter`];
//! - tools for people and tests: [`inspect`];
//! - errors: [`error`];
//! - property checks for the fuzz targets and the corpus test: `fuzzing` (hidden).
#![warn(missing_docs)]

pub mod cluster;
pub mod conninfo;
pub mod control;
pub mod cursor;
pub mod datadir;
pub mod error;
#[doc(hidden)]
pub mod failpoint;
pub mod filemap;
pub mod flavor;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod journal;
pub mod lifecycle;
pub mod lsn;
pub mod ogwire;
pub mod pagelsn;
pub mod pagescan;
pub mod pgconf;
pub mod pgserver;
pub mod plan;
pub mod relpath;
pub mod replication;
pub mod reporter;
pub mod rewind;
pub mod source;
pub mod target;
pub mod timeline;
pub mod transfer;
pub mod walscan;
pub mod xlog;

pub use error::{Error, Result};
pub use flavor::Flavor;
pub use lsn::{Lsn, TimeLineId, XLogSegNo};
