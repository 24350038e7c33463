//! `gsbuild inspect`: human-readable dumps of pg_control and WAL, in the formats of
//! `pg_controldata` and `pg_waldump` so that tests can compare them line by line.
//!
//! No phase: a tool for people and tests.

pub mod control;
pub mod wal;
