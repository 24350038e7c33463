//! The command line: arguments as typed (clap), then turned into library calls.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// gsbuild: rebuild a diverged PostgreSQL standby incrementally.
#[derive(Debug, Parser)]
#[command(name = "gsbuild", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print on-disk structures for people and tests.
    #[command(subcommand)]
    Inspect(Inspect),
}

/// `gsbuild inspect …`.
#[derive(Debug, Subcommand)]
pub enum Inspect {
    /// Print global/pg_control with the field names pg_controldata uses.
    Control {
        /// The data directory (or the pg_control file itself).
        datadir: PathBuf,
    },
    /// Print WAL records, one per line (with --blocks, their block references).
    Wal {
        /// First record to print (default: the first record that starts in the input).
        #[arg(long)]
        start: Option<String>,
        /// Stop before this position.
        #[arg(long)]
        end: Option<String>,
        /// Print each block reference on a line of its own, as pg_waldump --bkp-details does.
        #[arg(long)]
        blocks: bool,
        /// A WAL segment file, or a pg_wal directory.
        path: PathBuf,
    },
}
