//! The file map: every path that exists in the source or the target data directory, side by
//! side, and the one action the rebuild takes on it (phase 5, after the WAL scan).
//!
//! [`decide_action`] is a pure function of one [`FileEntry`], so every branch of pg_rewind's
//! decision table has a table-driven test. WAL segment files are decided by
//! [`decide_wal_segment`] instead: gsbuild streams the source's WAL from the common redo point
//! rather than copying the source's whole `pg_wal`.

pub use crate::datadir::FileKind;
pub use error::FileMapError;

pub mod error;
use crate::flavor::{Flavor, ProductTable};
use crate::lsn::XLogSegNo;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One path, as seen on both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the data directory, `/`-separated, never absolute, never with `..`.
    pub path: String,
    /// What the source has there, if anything.
    pub source: Option<FileKind>,
    /// What the target has there, if anything.
    pub target: Option<FileKind>,
    /// Whether the path is a main-fork relation segment (`base/1/1259`, `…/16384.2`): only
    /// those are compared block by block; other forks are copied whole, as WAL only references
    /// main-fork blocks reliably enough.
    pub is_rel_main: bool,
    /// Blocks (indexes within this segment file) the target changed after the common
    /// checkpoint's redo point and that lie inside both files.
    pub blocks: BTreeSet<u32>,
}

impl FileEntry {
    /// An entry for `path` with no sides yet.
    pub fn new(path: impl Into<String>) -> FileEntry {
        FileEntry {
            path: path.into(),
            source: None,
            target: None,
            is_rel_main: false,
            blocks: BTreeSet::new(),
        }
    }
}

/// What the rebuild does with one path. Declared in execution order: the plan is sorted by
/// action, then path (removals deepest path first, so files go before their directories).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Create a directory or symlink that only the source has.
    Create,
    /// Copy the whole file from the source.
    Copy,
    /// Copy the part of the file beyond the target's size (the target is shorter).
    CopyTail,
    /// Leave the file alone, except for the changed blocks attached to it.
    None,
    /// Truncate the target's file to the source's size.
    Truncate,
    /// Remove from the target.
    Remove,
}

/// Settings that change decisions.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Keep the target's own configuration files (postgresql.conf, postgresql.auto.conf,
    /// pg_hba.conf, pg_ident.conf) instead of copying the source's.
    pub keep_config: bool,
    /// The clusters' flavor, whose exclusion list and file names apply.
    pub flavor: Flavor,
    /// The next transaction id of the checkpoint recovery starts from. A `pg_twophase` state
    /// file of a transaction at or beyond it is neither copied nor kept: its PREPARE record
    /// comes after that checkpoint's redo point, so replay prepares it again, and recovery
    /// would discard the file as "future" anyway (PostgreSQL 17 and 18 get that discarding
    /// wrong and lose the prepared transaction). `None`: no such rule.
    pub twophase_next_xid: Option<u64>,
    /// A full build: every file both sides have is copied whole, not compared block by block.
    pub full: bool,
}

impl Policy {
    /// The defaults for `flavor`: the source's configuration files are copied.
    pub fn new(flavor: Flavor) -> Policy {
        Policy {
            keep_config: false,
            flavor,
            twophase_next_xid: None,
            full: false,
        }
    }
}

/// Where a rebuild moves the target's files that go, to remove them while it copies
/// (`rewind::execute`). Neither side's copy of it is planned: the rebuild that finds one, left
/// by a crash, empties it itself.
pub const TRASH_DIR: &str = "gsbuild-trash";

/// gsbuild's own files in a target being rebuilt (`crate::journal`): never copied from a
/// source, never touched by a plan.
pub const GSBUILD_FILES: &[&str] = &[
    "gsbuild.pid",
    "gsbuild-server.log",
    "gsbuild.journal",
    "gsbuild.journal.gsbuild-tmp",
    "global/pg_control.gsbuild-orig",
    "global/pg_control.gsbuild-tmp",
];

/// True when `path` must never be copied from the source (and is removed from the target when
/// the product says so, [`ProductTable::remove_excluded`]), by the product's exclusion list.
pub fn is_excluded(path: &str, table: &ProductTable) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.starts_with(table.excluded_prefix) || table.excluded_files.contains(&path) {
        return true;
    }
    if path.split('/').any(|c| c.starts_with(table.temp_prefix)) {
        return true;
    }
    if table.excluded_substrings.iter().any(|s| path.contains(s)) {
        return true;
    }
    table.excluded_dir_contents.iter().any(|d| {
        path.len() > d.len() + 1 && path.starts_with(d) && path.as_bytes()[d.len()] == b'/'
    })
}

/// Whether `path` is a WAL segment file in the WAL directory `wal_dir`
/// (`pg_wal/<24 hex digits>`, optionally `.partial`), returning its name without the suffix.
pub fn wal_segment_name<'a>(path: &'a str, wal_dir: &str) -> Option<&'a str> {
    let name = path.strip_prefix(wal_dir)?.strip_prefix('/')?;
    let name = name.strip_suffix(".partial").unwrap_or(name);
    (name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

/// Whether `path` is a two-phase state file (`pg_twophase/` and 8 hex digits, a 32-bit xid, or
/// 16, a 64-bit one) of a transaction at or beyond `next_xid` (64 bits). A 32-bit name is
/// compared as PostgreSQL compares xids, modulo 2^32.
pub fn is_future_twophase(path: &str, next_xid: u64) -> bool {
    let Some(name) = path.strip_prefix("pg_twophase/") else {
        return false;
    };
    if !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let Ok(xid) = u64::from_str_radix(name, 16) else {
        return false;
    };
    match name.len() {
        8 => (xid as u32).wrapping_sub(next_xid as u32) as i32 >= 0,
        16 => xid >= next_xid,
        _ => false,
    }
}

/// Whether `path` is [`TRASH_DIR`] or in it.
fn is_trash(path: &str) -> bool {
    path.strip_prefix(TRASH_DIR)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Decides the action for one non-WAL-segment entry (pg_rewind's table; first match wins).
pub fn decide_action(entry: &FileEntry, policy: &Policy) -> Result<Action, FileMapError> {
    let path = entry.path.as_str();
    // Written last, from the source's copy, after everything else is durable.
    let table = policy.flavor.table();
    if path == table.control_file || GSBUILD_FILES.contains(&path) || is_trash(path) {
        return Ok(Action::None);
    }
    // macOS's Finder metadata, neither copied nor removed (pg_rewind's rule).
    if path.contains(".DS_Store") {
        return Ok(Action::None);
    }
    if is_excluded(path, table) {
        return Ok(if entry.target.is_some() && table.remove_excluded {
            Action::Remove
        } else {
            Action::None
        });
    }
    if policy.keep_config && table.config_files.contains(&path) && entry.target.is_some() {
        return Ok(Action::None);
    }
    if let Some(next) = policy.twophase_next_xid {
        if is_future_twophase(path, next) {
            return Ok(match entry.target {
                Some(FileKind::File { .. }) => Action::Remove,
                _ => Action::None,
            });
        }
    }
    let (source, target) = match (&entry.source, &entry.target) {
        (None, None) => return Err(FileMapError::Neither(entry.path.clone())),
        (Some(FileKind::File { .. }), None) => return Ok(Action::Copy),
        (Some(FileKind::Symlink { target }), None) if !crate::datadir::is_tablespace_link(path) => {
            return Err(FileMapError::NotATablespace {
                path: entry.path.clone(),
                target: target.clone(),
            })
        }
        (Some(_), None) => return Ok(Action::Create),
        (None, Some(_)) => return Ok(Action::Remove),
        (Some(s), Some(t)) => (s, t),
    };
    if std::mem::discriminant(source) != std::mem::discriminant(target) {
        return Err(FileMapError::TypeMismatch {
            path: entry.path.clone(),
            source_type: source.type_name(),
            target_type: target.type_name(),
        });
    }
    // Identical on both sides by construction; never overwritten, for paranoia.
    if path.ends_with("PG_VERSION") {
        return Ok(Action::None);
    }
    match (source, target) {
        (FileKind::File { size: s }, FileKind::File { size: t })
            if entry.is_rel_main && !policy.full =>
        {
            Ok(match t.cmp(s) {
                std::cmp::Ordering::Less => Action::CopyTail,
                std::cmp::Ordering::Greater => Action::Truncate,
                std::cmp::Ordering::Equal => Action::None,
            })
        }
        (FileKind::File { .. }, _) => Ok(Action::Copy),
        // A symlink pointing elsewhere is left alone, as pg_rewind does: tablespace locations
        // legitimately differ between hosts.
        _ => Ok(Action::None),
    }
}

/// Which WAL segment files recovery of the rebuilt target reads, and where they come from.
/// Segment files are named along the source's history ([`crate::timeline::segment_file_name`]),
/// which the target follows once rebuilt.
#[derive(Clone, Debug)]
pub struct WalWindow {
    /// First segment recovery reads: the one holding the recovery start's redo point.
    pub first_segment: XLogSegNo,
    /// First segment the stream writes. The segments `[first_segment, stream_from)` hold only
    /// common history (they end before the divergence point) and recovery reads the target's
    /// own copies of them.
    pub stream_from: XLogSegNo,
    /// Names of the target's segment files that hold its WAL from the last common checkpoint
    /// to the divergence point (pg_rewind's "required for recovery" files: they may not be
    /// archived yet, and are never removed).
    pub required: BTreeSet<String>,
    /// The source's timeline history, which names the files the stream writes.
    pub source_history: Vec<crate::timeline::TimeLineHistoryEntry>,
    /// The WAL directory's name in the data directory (`pg_wal`).
    pub wal_dir: String,
    /// WAL segment size in bytes.
    pub seg_size: u32,
}

impl WalWindow {
    /// The name recovery looks for at `segno`: the source's.
    fn name_at(&self, segno: XLogSegNo) -> String {
        crate::timeline::segment_file_name(&self.source_history, segno, self.seg_size)
    }
}

/// Decides the action for a WAL segment file in `pg_wal` (`name` without `.partial`). A file
/// only the source has is never copied: the stream writes what recovery needs. Of the target's
/// files:
/// - one the stream will write (from `stream_from` on, with the source's name) is removed
///   first, so that nothing of the target's version survives;
/// - one required for recovery (see [`WalWindow::required`]) is kept;
/// - one recovery reads from the target (`[first_segment, stream_from)`) is kept;
/// - any other from `stream_from` on is diverged or stale WAL and is removed;
/// - before it, one the source has too is the same common history and is kept, and one only
///   the target has is removed (pg_rewind's rule for files only the target has).
pub fn decide_wal_segment(entry: &FileEntry, name: &str, window: &WalWindow) -> Action {
    let Some((_, segno)) = XLogSegNo::parse_file_name(name, window.seg_size) else {
        return Action::None;
    };
    if entry.target.is_none() {
        return Action::None;
    }
    let file = entry
        .path
        .strip_prefix(window.wal_dir.as_str())
        .and_then(|p| p.strip_prefix('/'))
        .unwrap_or(&entry.path);
    let is_recovery_name = file == window.name_at(segno);
    if segno >= window.stream_from && is_recovery_name {
        return Action::Remove;
    }
    if window.required.contains(file) {
        return Action::None;
    }
    if segno >= window.first_segment && segno < window.stream_from && is_recovery_name {
        return Action::None;
    }
    if segno >= window.stream_from || entry.source.is_none() {
        return Action::Remove;
    }
    Action::None
}

#[cfg(test)]
mod tests;
