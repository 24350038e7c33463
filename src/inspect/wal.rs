//! `gsbuild inspect wal`: WAL records printed one per line. (Being written.)

use crate::lsn::Lsn;
use std::io::Write;
use std::path::PathBuf;

/// What to print.
#[derive(Debug, Clone)]
pub struct WalArgs {
    /// A segment file or a `pg_wal` directory.
    pub path: PathBuf,
    /// First record to print; `None`: the first record that starts in the input.
    pub start: Option<Lsn>,
    /// Stop before this position; `None`: the end of valid WAL.
    pub end: Option<Lsn>,
    /// Print block references, one per line.
    pub blocks: bool,
}

/// Prints the records selected by `args` to `out`.
pub fn run(args: &WalArgs, out: &mut dyn Write) -> crate::Result<()> {
    let _ = (args, out);
    Err(crate::Error::Usage("inspect wal is not built yet".into()))
}
