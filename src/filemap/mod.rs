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
    /// A full build: every file both sides have is copied whole, not compared block by block.
    pub full: bool,
}

impl Policy {
    /// The defaults for `flavor`: the source's configuration files are copied.
    pub fn new(flavor: Flavor) -> Policy {
        Policy {
            keep_config: false,
            flavor,
            full: false,
        }
    }
}

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

/// Decides the action for one non-WAL-segment entry (pg_rewind's table; first match wins).
pub fn decide_action(entry: &FileEntry, policy: &Policy) -> Result<Action, FileMapError> {
    let path = entry.path.as_str();
    // Written last, from the source's copy, after everything else is durable.
    let table = policy.flavor.table();
    if path == table.control_file || GSBUILD_FILES.contains(&path) {
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
mod tests {
    use super::*;

    fn file(size: u64) -> Option<FileKind> {
        Some(FileKind::File { size })
    }
    fn dir() -> Option<FileKind> {
        Some(FileKind::Dir)
    }
    fn link(t: &str) -> Option<FileKind> {
        Some(FileKind::Symlink { target: t.into() })
    }
    fn entry(
        path: &str,
        source: Option<FileKind>,
        target: Option<FileKind>,
        rel: bool,
    ) -> FileEntry {
        FileEntry {
            is_rel_main: rel,
            source,
            target,
            ..FileEntry::new(path)
        }
    }

    #[test]
    fn decision_table() {
        let p = Policy::new(Flavor::Pg15);
        let cases: Vec<(FileEntry, Action)> = vec![
            (
                entry("global/pg_control", file(8192), file(8192), false),
                Action::None,
            ),
            (
                entry("postmaster.pid", file(80), file(80), false),
                Action::Remove,
            ),
            (entry("postmaster.pid", file(80), None, false), Action::None),
            (entry(".DS_Store", file(6), None, false), Action::None),
            (entry("base/.DS_Store", None, file(6), false), Action::None),
            (
                entry("pg_replslot/s1/state", file(200), file(200), false),
                Action::Remove,
            ),
            (entry("pg_replslot", dir(), dir(), false), Action::None),
            (
                entry("base/1/pg_internal.init.42", file(9), file(9), false),
                Action::Remove,
            ),
            (
                entry("base/pgsql_tmp/pgsql_tmp1.0", file(9), file(9), false),
                Action::Remove,
            ),
            (entry("base/5/16384", file(8192), None, true), Action::Copy),
            (entry("base/5", dir(), None, false), Action::Create),
            (
                entry("pg_tblspc/16385", link("/srv/ts"), None, false),
                Action::Create,
            ),
            (
                entry("base/5/16384", None, file(8192), true),
                Action::Remove,
            ),
            (entry("base/5", None, dir(), false), Action::Remove),
            (
                entry("base/5/PG_VERSION", file(3), file(3), false),
                Action::None,
            ),
            (entry("base/5", dir(), dir(), false), Action::None),
            (
                entry("pg_tblspc/16385", link("/a"), link("/b"), false),
                Action::None,
            ),
            (
                entry("postgresql.conf", file(10), file(20), false),
                Action::Copy,
            ),
            (
                entry("base/5/16384_fsm", file(24576), file(24576), false),
                Action::Copy,
            ),
            (
                entry("base/5/16384", file(16384), file(8192), true),
                Action::CopyTail,
            ),
            (
                entry("base/5/16384", file(8192), file(16384), true),
                Action::Truncate,
            ),
            (
                entry("base/5/16384", file(8192), file(8192), true),
                Action::None,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(decide_action(&e, &p), Ok(want), "{e:?}");
        }
    }

    #[test]
    fn decision_errors_and_policy() {
        let p = Policy::new(Flavor::Pg15);
        let e = entry("base/5/16384", file(1), dir(), true);
        assert!(matches!(
            decide_action(&e, &p),
            Err(FileMapError::TypeMismatch { .. })
        ));
        let e = entry("base/5/evil", link("/etc/passwd"), None, false);
        assert!(matches!(
            decide_action(&e, &p),
            Err(FileMapError::NotATablespace { .. })
        ));
        let e = entry(
            "postgresql.conf",
            link("/etc/pg.conf"),
            link("/etc/pg.conf"),
            false,
        );
        assert_eq!(decide_action(&e, &p), Ok(Action::None));
        let e = entry("x", None, None, false);
        assert_eq!(
            decide_action(&e, &p),
            Err(FileMapError::Neither("x".into()))
        );
        let keep = Policy {
            keep_config: true,
            ..Policy::new(Flavor::Pg15)
        };
        assert_eq!(
            decide_action(&entry("pg_hba.conf", file(1), file(2), false), &keep),
            Ok(Action::None)
        );
        assert_eq!(
            decide_action(&entry("pg_hba.conf", file(1), None, false), &keep),
            Ok(Action::Copy)
        );
        assert_eq!(
            decide_action(&entry("pg_hba.conf", None, file(1), false), &keep),
            Ok(Action::None)
        );
    }

    #[test]
    fn exclusions() {
        assert!(is_excluded("pg_stat_tmp/global.stat", Flavor::Pg15.table()));
        assert!(!is_excluded("pg_stat_tmp", Flavor::Pg15.table()));
        assert!(!is_excluded("pg_stat_tmpx/a", Flavor::Pg15.table()));
        assert!(is_excluded("backup_label", Flavor::Pg15.table()));
        assert!(!is_excluded("base/1/backup_label", Flavor::Pg15.table()));
        assert!(is_excluded(
            "pg_tblspc/16385/PG_15_202209061/pgsql_tmp/x",
            Flavor::Pg15.table()
        ));
        assert!(!is_excluded("base/1/1259", Flavor::Pg15.table()));
    }

    #[test]
    fn wal_segments() {
        assert_eq!(
            wal_segment_name("pg_wal/000000010000000000000003", "pg_wal"),
            Some("000000010000000000000003")
        );
        assert_eq!(
            wal_segment_name("pg_wal/000000010000000000000003.partial", "pg_wal"),
            Some("000000010000000000000003")
        );
        assert_eq!(wal_segment_name("pg_wal/00000002.history", "pg_wal"), None);
        assert_eq!(
            wal_segment_name(
                "pg_wal/archive_status/000000010000000000000003.done",
                "pg_wal"
            ),
            None
        );
        let seg: u32 = 16 << 20;
        // Timeline 2 begins inside segment 5 (the divergence point); the last common
        // checkpoint is in segment 4, recovery starts in 3, the stream at 5.
        let history =
            crate::timeline::parse_history("1\t0/5000100\tpromoted\n", crate::lsn::TimeLineId(2))
                .unwrap();
        let w = WalWindow {
            first_segment: XLogSegNo(3),
            stream_from: XLogSegNo(5),
            required: ["000000010000000000000004", "000000010000000000000005"]
                .into_iter()
                .map(String::from)
                .collect(),
            source_history: history,
            wal_dir: "pg_wal".into(),
            seg_size: seg,
        };
        let target_only = |n: &str| entry(&format!("pg_wal/{n}"), None, file(seg.into()), false);
        let both = |n: &str| {
            entry(
                &format!("pg_wal/{n}"),
                file(seg.into()),
                file(seg.into()),
                false,
            )
        };
        let cases = [
            // Older than recovery needs: pg_rewind's rule for files only the target has.
            (target_only("000000010000000000000001"), Action::Remove),
            (both("000000010000000000000002"), Action::None),
            // Recovery reads the target's own copy, even where the source recycled it.
            (target_only("000000010000000000000003"), Action::None),
            (both("000000010000000000000003"), Action::None),
            (target_only("000000010000000000000004"), Action::None),
            // Required, and not a name the stream writes.
            (target_only("000000010000000000000005"), Action::None),
            // The stream writes the source's version.
            (both("000000020000000000000005"), Action::Remove),
            (target_only("000000020000000000000006"), Action::Remove),
            // Diverged WAL the target alone wrote.
            (target_only("000000010000000000000006"), Action::Remove),
            (
                target_only("000000010000000000000005.partial"),
                Action::Remove,
            ),
        ];
        for (e, want) in cases {
            let name = wal_segment_name(&e.path, "pg_wal").unwrap();
            assert_eq!(decide_wal_segment(&e, name, &w), want, "{}", e.path);
        }
        let source_only = entry(
            "pg_wal/000000020000000000000007",
            file(seg.into()),
            None,
            false,
        );
        assert_eq!(
            decide_wal_segment(&source_only, "000000020000000000000007", &w),
            Action::None
        );
    }

    #[test]
    fn full_build_copies_every_file_whole() {
        let full = Policy {
            keep_config: true,
            full: true,
            ..Policy::new(Flavor::Pg16)
        };
        let cases = [
            (
                entry("base/5/16384", file(8192), file(8192), true),
                Action::Copy,
            ),
            (
                entry("base/5/16384", file(8192), file(16384), true),
                Action::Copy,
            ),
            (
                entry("base/5/16384", None, file(8192), true),
                Action::Remove,
            ),
            (
                entry("pg_xact/0000", file(8192), file(8192), false),
                Action::Copy,
            ),
            (
                entry("postgresql.conf", file(10), file(20), false),
                Action::None,
            ),
            (entry("pg_ident.conf", file(10), None, false), Action::Copy),
            (
                entry("global/pg_control", file(8192), file(8192), false),
                Action::None,
            ),
            (
                entry("postmaster.pid", None, file(80), false),
                Action::Remove,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(decide_action(&e, &full), Ok(want), "{}", e.path);
        }
    }
}
