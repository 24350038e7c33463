//! What to do about a failed rebuild: hints for the errors people can get out of, given the
//! options that were used (printed after the error by the command line).

use super::options::{ChangedBlocks, Options};
use crate::error::Error;
use crate::pgconf::Settings;

/// Hints for `err`, from a rebuild run with `opts`.
pub fn hints(err: &Error, opts: &Options) -> Vec<String> {
    let mut out = Vec::new();
    if opts.changed_blocks == ChangedBlocks::Wal && target_wal_missing(err) {
        let restore = Settings::read_target(&opts.target, opts.config_file.as_deref())
            .ok()
            .and_then(|s| s.get("restore_command").map(str::to_string))
            .filter(|c| !c.trim().is_empty());
        if restore.is_some() && !opts.restore_target_wal {
            out.push(
                "the target's restore_command can fetch the missing WAL from its archive: run again with -c (--restore-target-wal)".into(),
            );
        }
        out.push(
            "--changed-blocks=page-lsn needs none of the target's WAL after the last common checkpoint: it finds the changed blocks by reading the page header (8 bytes per 8 kB page) of every relation file, so it costs a read of the whole cluster".into(),
        );
    }
    out
}

/// Whether `err` says that WAL of the target is missing or unreadable.
pub fn target_wal_missing(err: &Error) -> bool {
    match err {
        Error::WalUse { .. } => true,
        Error::Io { path, .. } => path
            .components()
            .any(|c| c.as_os_str() == "pg_wal" || c.as_os_str() == "pg_xlog"),
        _ => false,
    }
}
