//! The plan: the boundary between deciding and doing. Built from the two file listings, the
//! target's changed blocks and the divergence facts; immutable, sorted in execution order,
//! serialisable (`--dry-run --format json`) and printable (`--dry-run`).
//!
//! Phase 5 builds it, phase 6 carries it out, the journal keeps it.

use crate::error::Result;
use crate::filemap::{self, Action, FileEntry, FileKind, Policy, WalWindow};
use crate::flavor::Flavor;
use crate::lsn::{Lsn, TimeLineId};
use crate::relpath::BLCKSZ;
use crate::source::FetchRange;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    /// How it was found.
    pub method: DivergenceMethod,
}

/// How the divergence point was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DivergenceMethod {
    /// From the two timeline histories: where the source's history left the target's
    /// timeline.
    TimelineHistory,
    /// Both sides on one timeline: the first record whose CRC differs after the last
    /// checkpoint both have.
    CheckpointCrc,
}

impl DivergenceMethod {
    /// The name plans print (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            DivergenceMethod::TimelineHistory => "timeline-history",
            DivergenceMethod::CheckpointCrc => "checkpoint-crc",
        }
    }
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
    /// The next transaction id the checkpoint records (64 bits: epoch and xid); `None` in a
    /// journal written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_xid: Option<u64>,
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
    /// Changed blocks (within this segment file, sorted) whose copy waits for the source's
    /// WAL: fetched only when its first record naming them does not rewrite them whole
    /// (`transfer::ReplayWatch`). Not in `blocks`; counted in `bytes`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub deferred_blocks: Vec<u32>,
    /// Bytes this entry copies from the source (whole file, tail, or blocks).
    pub bytes: u64,
}

impl PlannedFile {
    /// The ranges of its deferred blocks, contiguous ones merged.
    pub fn deferred_ranges(&self) -> Vec<FetchRange> {
        merge_blocks(&self.deferred_blocks)
            .into_iter()
            .map(|(b, n)| FetchRange {
                path: self.path.clone(),
                offset: b * u64::from(BLCKSZ),
                len: n * u64::from(BLCKSZ),
            })
            .collect()
    }

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
    /// Number of paths per action (serialised by the actions' names, in name order).
    #[serde(with = "action_counts")]
    pub actions: BTreeMap<Action, u64>,
    /// Blocks copied individually.
    pub blocks: u64,
    /// Bytes copied from the source for files and blocks (WAL not included).
    pub bytes_to_copy: u64,
    /// Total size of the source's files (what a full copy would move).
    pub source_bytes: u64,
    /// Blocks the target changed that are not copied because replay rewrites them whole
    /// first (their first record after the common redo point carries a full-page image).
    #[serde(default)]
    pub blocks_left_to_replay: u64,
    /// Of `blocks`, those whose copy waits for the source's WAL
    /// ([`PlannedFile::deferred_blocks`]).
    #[serde(default)]
    pub blocks_deferred: u64,
}

/// Where recovery of the rebuilt target starts: `backup_label`'s `START WAL LOCATION` and
/// `CHECKPOINT LOCATION`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryStart {
    /// The redo point replay begins at.
    pub redo: Lsn,
    /// The checkpoint record whose redo point that is.
    pub checkpoint: Lsn,
    /// The checkpoint's timeline.
    pub tli: TimeLineId,
    /// Why recovery starts there.
    pub from: RecoveryStartFrom,
    /// The next transaction id that checkpoint records: every transaction prepared from it on
    /// is prepared again by replay ([`crate::filemap::Policy::twophase_next_xid`]). `None` in a
    /// journal written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_xid: Option<u64>,
}

/// Which checkpoint recovery of the rebuilt target starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryStartFrom {
    /// The last common checkpoint: the source's files are at least as new as its redo point.
    CommonCheckpoint,
    /// The source's own last checkpoint or restartpoint, which is older than the common
    /// checkpoint: a standby source replayed the common checkpoint record but had not yet made
    /// the matching restartpoint, so its files on disk (data files, `pg_xact`) may predate
    /// the common redo point and replay must begin where theirs does.
    SourceRestartpoint,
    /// A full build: the source's checkpoint as its control file named it when the copy
    /// began (after the backup's checkpoint), every file copied after it.
    SourceCheckpoint,
}

impl RecoveryStart {
    /// The start for a rebuild whose last common checkpoint is `common` and whose source's
    /// `pg_control`, read before any file is copied from it, names `source` (checkpoint
    /// location, its redo point, timeline and next xid): the earlier of the two redo points. The
    /// source's files are copied after that read, so they are at least as new as its redo
    /// point; the target's files that are not copied are at least as new as the common redo
    /// point. Replay from the earlier one covers both.
    pub fn earlier_of(
        common: &CommonCheckpoint,
        source: (Lsn, Lsn, TimeLineId, u64),
    ) -> RecoveryStart {
        let (checkpoint, redo, tli, next_xid) = source;
        if redo < common.redo {
            RecoveryStart {
                redo,
                checkpoint,
                tli,
                from: RecoveryStartFrom::SourceRestartpoint,
                next_xid: Some(next_xid),
            }
        } else {
            RecoveryStart {
                redo: common.redo,
                checkpoint: common.lsn,
                tli: common.tli,
                from: RecoveryStartFrom::CommonCheckpoint,
                next_xid: common.next_xid,
            }
        }
    }

    /// The earlier of `self` and `other`.
    pub fn min(self, other: RecoveryStart) -> RecoveryStart {
        if other.redo < self.redo {
            other
        } else {
            self
        }
    }
}

/// The WAL the rebuild streams from the source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalPlan {
    /// Where recovery starts; streaming begins at the start of its redo point's segment.
    pub recovery_start: RecoveryStart,
    /// Where streaming starts: a segment boundary at or before the divergence point, and at or
    /// after the recovery start's redo point when the target's own segments of common
    /// history in between are kept ([`WalPlan::target_segments_kept`]).
    pub start: Lsn,
    /// Segments recovery reads from the target's own `pg_wal`, from the recovery start's on.
    pub target_segments_kept: u64,
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
    /// The flavor of both clusters (serialised as `major`, the PostgreSQL major number).
    #[serde(rename = "major")]
    pub flavor: Flavor,
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
    /// A full build: every file copied from the source, recovery from the source's checkpoint
    /// (`checkpoint`) taken when the copy began.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
}

impl Plan {
    /// Whether anything needs doing.
    pub fn rewind_required(&self) -> bool {
        self.divergence.is_some() || self.full
    }

    /// Moves the changed blocks of `deferred` (by segment path) from each file's `blocks` to its
    /// `deferred_blocks`.
    pub fn defer_blocks(&mut self, deferred: &HashMap<String, BTreeSet<u32>>) {
        for f in self.files.iter_mut() {
            let Some(d) = deferred.get(&f.path) else {
                continue;
            };
            let (later, now): (Vec<u32>, Vec<u32>) = f.blocks.iter().partition(|b| d.contains(b));
            self.totals.blocks_deferred += later.len() as u64;
            f.blocks = now;
            f.deferred_blocks = later;
        }
    }

    /// Puts every deferred block back with the blocks copied outright.
    pub fn undefer_blocks(&mut self) {
        for f in self.files.iter_mut() {
            if !f.deferred_blocks.is_empty() {
                f.blocks.append(&mut f.deferred_blocks);
                f.blocks.sort_unstable();
            }
        }
        self.totals.blocks_deferred = 0;
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// The per-action counts of [`Totals`], serialised as a map from the actions' names in name
/// order (what the JSON plan has always had).
mod action_counts {
    use super::{action_name, Action, ACTIONS};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    /// The counts by name, in name order.
    pub fn by_name(counts: &BTreeMap<Action, u64>) -> impl Iterator<Item = (&'static str, u64)> {
        let named: BTreeMap<&'static str, u64> =
            counts.iter().map(|(a, n)| (action_name(*a), *n)).collect();
        named.into_iter()
    }

    pub fn serialize<S: Serializer>(
        counts: &BTreeMap<Action, u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let named: BTreeMap<&'static str, u64> = by_name(counts).collect();
        named.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<Action, u64>, D::Error> {
        BTreeMap::<String, u64>::deserialize(d)?
            .into_iter()
            .map(|(name, n)| {
                ACTIONS
                    .iter()
                    .find(|a| action_name(**a) == name)
                    .map(|a| (*a, n))
                    .ok_or_else(|| serde::de::Error::custom(format!("unknown action \"{name}\"")))
            })
            .collect()
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
///
/// Linear after sorting each listing by path: the sorted listings are merged side by side, and
/// each decided entry goes to its action's bucket in path order, so the buckets concatenated
/// are the execution order (removals reversed: deepest paths first). A path listed twice on one
/// side counts once, with its last listing.
pub fn build_files(input: FileMapInput<'_>) -> Result<(Vec<PlannedFile>, Totals)> {
    let FileMapInput {
        mut source,
        mut target,
        changed_blocks,
        is_rel_main,
        policy,
        wal,
    } = input;
    let mut totals = Totals::default();
    crate::datadir::check_source_listing(&source)?;
    // A product that ignores excluded paths altogether (openGauss) does not count them either.
    let table = policy.flavor.table();
    for (path, kind) in &source {
        if table.remove_excluded || !filemap::is_excluded(path, table) {
            totals.source_bytes += kind.size();
        }
    }
    // Stable sorts, so that of a path listed twice the last listing is the one kept.
    source.sort_by(|a, b| a.0.cmp(&b.0));
    target.sort_by(|a, b| a.0.cmp(&b.0));
    let mut buckets: [Vec<PlannedFile>; ACTIONS.len()] = Default::default();
    let mut counts = [0u64; ACTIONS.len()];
    let mut visit = |mut e: FileEntry| -> Result<()> {
        e.is_rel_main = is_rel_main(&e.path);
        let action = match filemap::wal_segment_name(&e.path, &wal.wal_dir) {
            // A full build streams all the WAL recovery reads: none of the target's stays.
            Some(_) if policy.full && e.target.is_some() => Action::Remove,
            Some(_) if policy.full => Action::None,
            Some(name) => filemap::decide_wal_segment(&e, name, wal),
            None => filemap::decide_action(&e, policy)?,
        };
        let blocks = attached_blocks(&e, action, changed_blocks);
        if action == Action::None && blocks.is_empty() {
            return Ok(());
        }
        let src = e.source.as_ref().map(FileKind::size).unwrap_or(0);
        let tgt = e.target.as_ref().map(FileKind::size).unwrap_or(0);
        let bytes = match action {
            Action::Copy => src,
            Action::CopyTail => src - tgt + blocks.len() as u64 * u64::from(BLCKSZ),
            _ => blocks.len() as u64 * u64::from(BLCKSZ),
        };
        let i = action_index(action);
        counts[i] += 1;
        totals.blocks += blocks.len() as u64;
        totals.bytes_to_copy += bytes;
        buckets[i].push(PlannedFile {
            path: e.path,
            action,
            source: e.source,
            target: e.target,
            blocks,
            deferred_blocks: Vec::new(),
            bytes,
        });
        Ok(())
    };
    merge_listings(source, target, &mut visit)?;
    for (i, n) in counts.into_iter().enumerate() {
        if n > 0 {
            totals.actions.insert(ACTIONS[i], n);
        }
    }
    buckets[action_index(Action::Remove)].reverse();
    Ok((buckets.concat(), totals))
}

/// Every action, in execution order (the order of [`Action`]'s declaration).
const ACTIONS: [Action; 6] = [
    Action::Create,
    Action::Copy,
    Action::CopyTail,
    Action::None,
    Action::Truncate,
    Action::Remove,
];

fn action_index(a: Action) -> usize {
    match a {
        Action::Create => 0,
        Action::Copy => 1,
        Action::CopyTail => 2,
        Action::None => 3,
        Action::Truncate => 4,
        Action::Remove => 5,
    }
}

type Listing = Vec<(String, FileKind)>;

/// Calls `visit` with one entry per path of two listings sorted by path, in path order.
fn merge_listings(
    source: Listing,
    target: Listing,
    visit: &mut dyn FnMut(FileEntry) -> Result<()>,
) -> Result<()> {
    let mut s = source.into_iter().peekable();
    let mut t = target.into_iter().peekable();
    // The next distinct path of a sorted listing (the last of equal neighbours).
    fn next_path(
        it: &mut std::iter::Peekable<std::vec::IntoIter<(String, FileKind)>>,
    ) -> Option<(String, FileKind)> {
        let mut cur = it.next()?;
        while let Some(next) = it.next_if(|n| n.0 == cur.0) {
            cur = next;
        }
        Some(cur)
    }
    let (mut a, mut b) = (next_path(&mut s), next_path(&mut t));
    loop {
        let (path, source, target) = match (a.take(), b.take()) {
            (None, None) => return Ok(()),
            (Some((p, k)), None) => {
                a = next_path(&mut s);
                (p, Some(k), None)
            }
            (None, Some((p, k))) => {
                b = next_path(&mut t);
                (p, None, Some(k))
            }
            (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                std::cmp::Ordering::Less => {
                    b = Some(y);
                    a = next_path(&mut s);
                    (x.0, Some(x.1), None)
                }
                std::cmp::Ordering::Greater => {
                    a = Some(x);
                    b = next_path(&mut t);
                    (y.0, None, Some(y.1))
                }
                std::cmp::Ordering::Equal => {
                    a = next_path(&mut s);
                    b = next_path(&mut t);
                    (x.0, Some(x.1), Some(y.1))
                }
            },
        };
        visit(FileEntry {
            source,
            target,
            ..FileEntry::new(path)
        })?;
    }
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

mod text;

#[cfg(test)]
mod tests;
