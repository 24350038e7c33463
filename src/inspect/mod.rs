//! `gsbuild inspect`: human-readable dumps of pg_control and WAL, in the formats of
//! `pg_controldata` and `pg_waldump` (openGauss: its `pg_controldata` and `pg_xlogdump`) so
//! that tests can compare them line by line.
//!
//! No phase: a tool for people and tests.

pub mod control;
pub mod wal;
pub mod xlogdump;
