//! The plan: the boundary between deciding and doing. Built from the two file listings, the
//! target's changed blocks and the divergence facts; immutable, sorted in execution order,
//! serialisable (`--dry-run --format json`) and printable (`--dry-run`).

use crate::error::{Error, Result};
use crate::filemap::{self, Action, FileEntry, FileKind, Policy, WalWindow};
use crate::lsn::{Lsn, TimeLineId};
use crate::relpath::BLCKSZ;
use crate::source::FetchRange;
use crate::version::PgMajor;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

/// Where and how the two clusters diverged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// First WAL position that differs between source and target.
    pub lsn: Lsn,
    /// The last timeline both sides share.
    pub tli: TimeLineId,
    /// The source's current timeline.
    pub source_tli: TimeLineId,
    /// The target's timeline.
    pub target_tli: TimeLineId,
    /// How it was found: `timeline-history` or `checkpoint-crc` (same timeline on both sides).
    pub method: String,
}

/// The last checkpoint both sides share; recovery of the rebuilt target starts at its redo
/// point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommonCheckpoint {
    /// Position of the checkpoint record.
    pub lsn: Lsn,
    /// Its redo point.
    pub redo: Lsn,
    /// Its timeline.
    pub tli: TimeLineId,
}

/// One path and what happens to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFile {
    /// Relative path in the data directory.
    pub path: String,
    /// The action.
    pub action: Action,
    /// What the source has there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<FileKind>,
    /// What the target has there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<FileKind>,
    /// Blocks (within this segment file) to copy from the source, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub blocks: Vec<u32>,
    /// Bytes this entry copies from the source (whole file, tail, or blocks).
    pub bytes: u64,
}

impl PlannedFile {
    /// The source ranges this entry copies, contiguous blocks merged.
    pub fn ranges(&self) -> Vec<FetchRange> {
        let src = self.source.as_ref().map(FileKind::size).unwrap_or(0);
        let tgt = self.target.as_ref().map(FileKind::size).unwrap_or(0);
        let range = |offset: u64, len: u64| FetchRange {
            path: self.path.clone(),
            offset,
            len,
        };
        let blocks = merge_blocks(&self.blocks).into_iter();
        let mut out: Vec<FetchRange> = blocks
            .map(|(b, n)| range(b * u64::from(BLCKSZ), n * u64::from(BLCKSZ)))
            .collect();
        match self.action {
            Action::Copy if src > 0 => out = vec![range(0, src)],
            Action::CopyTail => out.push(range(tgt, src - tgt)),
            _ => {}
        }
        out
    }
}

/// Runs of consecutive blocks as `(first, count)`.
fn merge_blocks(blocks: &[u32]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &b in blocks {
        let b = u64::from(b);
        match out.last_mut() {
            Some((start, n)) if *start + *n == b => *n += 1,
            _ => out.push((b, 1)),
        }
    }
    out
}

/// Counts by action, and bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Number of paths per action (`copy`, `copy_tail`, …).
    pub actions: BTreeMap<String, u64>,
    /// Blocks copied individually.
    pub blocks: u64,
    /// Bytes copied from the source for files and blocks (WAL not included).
    pub bytes_to_copy: u64,
    /// Total size of the source's files (what a full copy would move).
    pub source_bytes: u64,
}

/// The WAL the rebuild streams from the source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalPlan {
    /// Where streaming starts (the segment boundary at or before the common redo point).
    pub start: Lsn,
    /// Name of the first segment written.
    pub first_segment: String,
    /// The source's WAL position when the plan was made; the stream ends at the source's
    /// position after the data copy, which is later.
    pub source_position: Lsn,
}

/// Everything the rebuild will do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The source, as described to people (no password).
    pub source: String,
    /// The target data directory.
    pub target: String,
    /// PostgreSQL major version of both clusters.
    pub major: PgMajor,
    /// `None` when no rewind is required.
    pub divergence: Option<Divergence>,
    /// The last common checkpoint.
    pub checkpoint: Option<CommonCheckpoint>,
    /// The WAL to stream.
    pub wal: Option<WalPlan>,
    /// Every path that is acted on (entries with action `none` and no blocks are left out),
    /// in execution order.
    pub files: Vec<PlannedFile>,
    /// Summary.
    pub totals: Totals,
}

impl Plan {
    /// Whether anything needs doing.
    pub fn rewind_required(&self) -> bool {
        self.divergence.is_some()
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The plan for people: the divergence, then one line per acted-on path.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "source: {}\ntarget: {}\nmajor: {}",
            self.source, self.target, self.major
        );
        match &self.divergence {
            None => s.push_str("no rewind required\n"),
            Some(d) => {
                let _ = writeln!(
                    s,
                    "servers diverged at WAL location {} on timeline {} ({})",
                    d.lsn, d.tli, d.method
                );
            }
        }
        if let Some(c) = &self.checkpoint {
            let _ = writeln!(
                s,
                "rewinding from last common checkpoint at {} on timeline {}, redo {}",
                c.lsn, c.tli, c.redo
            );
        }
        if let Some(w) = &self.wal {
            let _ = writeln!(
                s,
                "WAL: stream from {} (segment {}), source now at {}",
                w.start, w.first_segment, w.source_position
            );
        }
        for f in &self.files {
            let _ = write!(s, "{:<9} {}", action_name(f.action), f.path);
            if !f.blocks.is_empty() {
                let _ = write!(s, " ({} blocks)", f.blocks.len());
            }
            let _ = writeln!(s, " [{} bytes]", f.bytes);
        }
        let t = &self.totals;
        let _ = writeln!(
            s,
            "total: {} bytes to copy ({} blocks) of {} bytes in the source; {}",
            t.bytes_to_copy,
            t.blocks,
            t.source_bytes,
            t.actions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        s
    }
}

/// The action's name in plans and JSON.
pub fn action_name(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Copy => "copy",
        Action::CopyTail => "copy_tail",
        Action::None => "none",
        Action::Truncate => "truncate",
        Action::Remove => "remove",
    }
}

/// Inputs of [`build_files`].
pub struct FileMapInput<'a> {
    /// The source's listing.
    pub source: Vec<(String, FileKind)>,
    /// The target's listing.
    pub target: Vec<(String, FileKind)>,
    /// Blocks the target changed since the common redo point, by main-fork segment path.
    pub changed_blocks: &'a HashMap<String, BTreeSet<u32>>,
    /// Decides which paths are main-fork relation segments.
    pub is_rel_main: &'a dyn Fn(&str) -> bool,
    /// Decision settings.
    pub policy: &'a Policy,
    /// The streamed WAL window (WAL segment files are decided against it).
    pub wal: &'a WalWindow,
}

/// Builds the file part of the plan: merges both listings, decides every action, attaches the
/// changed blocks that lie inside both files, and sorts into execution order.
pub fn build_files(input: FileMapInput<'_>) -> Result<(Vec<PlannedFile>, Totals)> {
    let mut entries: HashMap<String, FileEntry> = HashMap::with_capacity(input.target.len() + 64);
    let mut totals = Totals::default();
    for (path, kind) in input.source {
        crate::datadir::check_source_entry(&path, &kind)?;
        totals.source_bytes += kind.size();
        entries
            .entry(path.clone())
            .or_insert_with(|| FileEntry::new(path))
            .source = Some(kind);
    }
    for (path, kind) in input.target {
        entries
            .entry(path.clone())
            .or_insert_with(|| FileEntry::new(path))
            .target = Some(kind);
    }
    let mut files = Vec::new();
    for (_, mut e) in entries {
        e.is_rel_main = (input.is_rel_main)(&e.path);
        let action = match filemap::wal_segment_name(&e.path) {
            Some(name) => filemap::decide_wal_segment(&e, name, input.wal),
            None => filemap::decide_action(&e, input.policy)
                .map_err(|err| Error::Usage(err.to_string()))?,
        };
        let blocks = attached_blocks(&e, action, input.changed_blocks);
        if action == Action::None && blocks.is_empty() {
            continue;
        }
        let src = e.source.as_ref().map(FileKind::size).unwrap_or(0);
        let tgt = e.target.as_ref().map(FileKind::size).unwrap_or(0);
        let bytes = match action {
            Action::Copy => src,
            Action::CopyTail => src - tgt + blocks.len() as u64 * u64::from(BLCKSZ),
            _ => blocks.len() as u64 * u64::from(BLCKSZ),
        };
        *totals
            .actions
            .entry(action_name(action).to_string())
            .or_default() += 1;
        totals.blocks += blocks.len() as u64;
        totals.bytes_to_copy += bytes;
        files.push(PlannedFile {
            path: e.path,
            action,
            source: e.source,
            target: e.target,
            blocks,
            bytes,
        });
    }
    files.sort_by(|a, b| {
        a.action.cmp(&b.action).then_with(|| {
            if a.action == Action::Remove {
                b.path.cmp(&a.path)
            } else {
                a.path.cmp(&b.path)
            }
        })
    });
    Ok((files, totals))
}

/// The changed blocks of a main-fork segment that still need copying: only where the file
/// stays in place (`none`, `copy_tail`, `truncate`), and only blocks inside both files — a
/// block beyond the source's end is truncated away, one beyond the target's end comes with the
/// tail.
fn attached_blocks(
    e: &FileEntry,
    action: Action,
    changed: &HashMap<String, BTreeSet<u32>>,
) -> Vec<u32> {
    if !e.is_rel_main || !matches!(action, Action::None | Action::CopyTail | Action::Truncate) {
        return Vec::new();
    }
    let (Some(FileKind::File { size: s }), Some(FileKind::File { size: t })) =
        (&e.source, &e.target)
    else {
        return Vec::new();
    };
    let limit = (*s).min(*t) / u64::from(BLCKSZ);
    changed
        .get(&e.path)
        .map(|set| {
            set.iter()
                .copied()
                .filter(|b| u64::from(*b) < limit)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::XLogSegNo;

    fn f(size: u64) -> FileKind {
        FileKind::File { size }
    }

    #[test]
    fn builds_sorted_plan_with_blocks() {
        let b = u64::from(BLCKSZ);
        let source = vec![
            ("base".into(), FileKind::Dir),
            ("base/5".into(), FileKind::Dir),
            ("base/5/100".into(), f(4 * b)),
            ("base/5/200".into(), f(2 * b)),
            ("base/5/300".into(), f(8 * b)),
            ("base/5/400".into(), f(b)),
            ("base/6".into(), FileKind::Dir),
            ("pg_wal".into(), FileKind::Dir),
            ("pg_wal/000000010000000000000002".into(), f(16 << 20)),
        ];
        let target = vec![
            ("base".into(), FileKind::Dir),
            ("base/5".into(), FileKind::Dir),
            ("base/5/100".into(), f(4 * b)),
            ("base/5/200".into(), f(4 * b)),
            ("base/5/300".into(), f(2 * b)),
            ("base/7".into(), FileKind::Dir),
            ("base/7/1".into(), f(b)),
            ("pg_wal".into(), FileKind::Dir),
            ("pg_wal/000000010000000000000001".into(), f(16 << 20)),
            ("pg_wal/000000010000000000000002".into(), f(16 << 20)),
            ("pg_wal/000000010000000000000003".into(), f(16 << 20)),
        ];
        let mut changed = HashMap::new();
        changed.insert("base/5/100".to_string(), BTreeSet::from([0, 1, 3, 9]));
        changed.insert("base/5/200".to_string(), BTreeSet::from([1, 3]));
        changed.insert("base/5/300".to_string(), BTreeSet::from([1, 5]));
        let wal = WalWindow {
            first_segment: XLogSegNo(2),
            seg_size: 16 << 20,
        };
        let is_rel = |p: &str| p.starts_with("base/5/");
        let input = FileMapInput {
            source,
            target,
            changed_blocks: &changed,
            is_rel_main: &is_rel,
            policy: &Policy::default(),
            wal: &wal,
        };
        let (files, totals) = build_files(input).unwrap();
        let got: Vec<_> = files
            .iter()
            .map(|f| (action_name(f.action), f.path.as_str(), f.blocks.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("create", "base/6", vec![]),
                ("copy", "base/5/400", vec![]),
                ("copy_tail", "base/5/300", vec![1]),
                ("none", "base/5/100", vec![0, 1, 3]),
                ("truncate", "base/5/200", vec![1]),
                ("remove", "pg_wal/000000010000000000000003", vec![]),
                ("remove", "pg_wal/000000010000000000000002", vec![]),
                ("remove", "base/7/1", vec![]),
                ("remove", "base/7", vec![]),
            ]
        );
        assert_eq!(totals.blocks, 5);
        assert_eq!(totals.bytes_to_copy, b + 6 * b + 5 * b);
        let r = files[3].ranges();
        assert_eq!(
            r.iter()
                .map(|r| (r.offset / b, r.len / b))
                .collect::<Vec<_>>(),
            vec![(0, 2), (3, 1)]
        );
        assert_eq!(
            files[2]
                .ranges()
                .iter()
                .map(|r| (r.offset / b, r.len / b))
                .collect::<Vec<_>>(),
            vec![(1, 1), (2, 6)]
        );
    }

    #[test]
    fn rejects_escaping_source_paths() {
        let wal = WalWindow {
            first_segment: XLogSegNo(2),
            seg_size: 16 << 20,
        };
        let changed = HashMap::new();
        let input = FileMapInput {
            source: vec![("../../etc/passwd".into(), f(1))],
            target: vec![],
            changed_blocks: &changed,
            is_rel_main: &|_| false,
            policy: &Policy::default(),
            wal: &wal,
        };
        assert!(build_files(input).is_err());
    }
}
