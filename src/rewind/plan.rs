//! Phase 5, the plan: both listings (the source's over its own protocol, the target's by a
//! parallel walk), which WAL recovery reads and where it comes from, and one action per path
//! ([`crate::plan::build_files`]) — the boundary between deciding and doing.

use super::divergence::Common;
use super::options::Options;
use crate::cluster::TargetCluster;
use crate::datadir::{self, FileKind};
use crate::error::Result;
use crate::filemap::{Policy, WalWindow};
use crate::lsn::{Lsn, XLogSegNo};
use crate::plan::{FileMapInput, Plan, RecoveryStart, RecoveryStartFrom, WalPlan};
use crate::relpath;
use crate::reporter::Reporter;
use crate::source::Source;
use crate::timeline::{self, TimeLineHistoryEntry};
use crate::walscan::ChangedBlocks as BlockSet;
use std::collections::HashSet;
use std::path::Path;

/// A data directory's paths and what each is.
pub(super) type Listing = Vec<(String, FileKind)>;

/// Both listings: the source's, then the target's.
pub(super) fn list_both(
    target: &TargetCluster,
    source: &mut (dyn Source + Send),
    rep: &mut dyn Reporter,
) -> Result<(Listing, Listing)> {
    let (path, wal_dir) = (target.path().to_path_buf(), target.flavor().wal_dir());
    list_both_while((&path, wal_dir), source, rep, |_| Ok(())).map(|(_, l)| l)
}

/// `work` (phase 4, the target's WAL scan) on this thread while both listings are read, each on
/// a thread of its own: the source's over its protocol, the target's (at `path`, its WAL
/// directory `wal_dir`) by a parallel walk. Errors in that order: `work`'s, then the source's
/// listing's, then the target's.
pub(super) fn list_both_while<T>(
    (path, wal_dir): (&Path, &str),
    source: &mut (dyn Source + Send),
    rep: &mut dyn Reporter,
    work: impl FnOnce(&mut dyn Reporter) -> Result<T>,
) -> Result<(T, (Listing, Listing))> {
    rep.step("reading source file list");
    rep.step("reading target file list");
    std::thread::scope(|scope| {
        let source_side = scope.spawn(move || -> Result<Listing> {
            let files = source.list_files()?;
            crate::failpoint::hit("list-source");
            Ok(files.into_iter().map(|f| (f.path, f.kind)).collect())
        });
        let target_side = scope.spawn(move || -> Result<Listing> {
            let files = datadir::list(path, wal_dir)?;
            crate::failpoint::hit("list-target");
            Ok(files.into_iter().map(|l| (l.path, l.kind)).collect())
        });
        let done = work(rep);
        let source_files = joined(source_side.join(), "source");
        let target_files = joined(target_side.join(), "target");
        Ok((done?, (source_files?, target_files?)))
    })
}

/// A listing thread's result; its panic as an error naming the side.
fn joined(r: std::thread::Result<Result<Listing>>, side: &str) -> Result<Listing> {
    r.unwrap_or_else(|_| {
        Err(crate::error::Error::Usage(format!(
            "listing the {side}'s files failed: its thread panicked"
        )))
    })
}

/// The plan for `common` (where the sides parted) from both listings and the changed blocks.
pub(super) fn build(
    base: Plan,
    target: &TargetCluster,
    common: &Common,
    listings: (Listing, Listing),
    changed: &BlockSet,
    opts: &Options,
    rep: &mut dyn Reporter,
) -> Result<Plan> {
    let (source_files, target_files) = listings;
    let histories = &common.histories;
    let window = wal_window(WindowInput {
        start: &common.start,
        checkpoint: common.checkpoint.lsn,
        divergence: common.divergence.lsn,
        // Only WAL the scan read and checked is reused.
        reuse_target: opts.changed_blocks == super::options::ChangedBlocks::Wal,
        target_files: &target_files,
        source_history: &histories.source,
        target_history: &histories.target,
        wal_dir: target.flavor().wal_dir(),
        seg_size: target.seg_size(),
    });
    report_required(&window, target, (&source_files, &target_files), rep);
    let stream_from = window.stream_from;
    let is_rel = |p: &str| relpath::is_main_fork_data_file(p);
    let policy = Policy {
        keep_config: opts.keep_config,
        flavor: target.flavor(),
        twophase_next_xid: common.start.next_xid,
        full: false,
    };
    let (files, totals) = crate::plan::build_files(FileMapInput {
        source: source_files,
        target: target_files,
        changed_blocks: changed,
        is_rel_main: &is_rel,
        policy: &policy,
        wal: &window,
    })?;
    let plan = Plan {
        divergence: Some(common.divergence.clone()),
        checkpoint: Some(common.common_checkpoint()),
        wal: Some(wal_plan(
            common.start.clone(),
            stream_from,
            &histories.source,
            target.seg_size(),
            histories.source_end,
        )),
        files,
        totals,
        ..base
    };
    let totals = format!(
        "need to copy {} (total source directory size is {})",
        crate::lsn::human_bytes(plan.totals.bytes_to_copy),
        crate::lsn::human_bytes(plan.totals.source_bytes)
    );
    match target.flavor().table().tool_log_lines {
        true => rep.info(&totals),
        false => rep.step(&totals),
    }
    Ok(plan)
}

/// pg_rewind's debug line for each segment only the target has that is kept because recovery
/// needs it.
fn report_required(
    window: &WalWindow,
    target: &TargetCluster,
    listings: (&Listing, &Listing),
    rep: &mut dyn Reporter,
) {
    let has = |files: &Listing, path: &str| files.iter().any(|(p, _)| p == path);
    for name in &window.required {
        let path = target.flavor().wal_path(name);
        if has(listings.1, &path) && !has(listings.0, &path) {
            rep.debug(&format!(
                "Not removing file \"{path}\" because it is required for recovery"
            ));
        }
    }
}

/// The WAL for a recovery that starts at `start`, streamed from `stream_from` (the segments
/// before it, from the start's on, are the target's own).
pub(super) fn wal_plan(
    start: RecoveryStart,
    stream_from: XLogSegNo,
    source_history: &[TimeLineHistoryEntry],
    seg_size: u32,
    source_position: Lsn,
) -> WalPlan {
    let first = start.redo.segment(seg_size);
    WalPlan {
        start: stream_from.start_lsn(seg_size),
        first_segment: timeline::segment_file_name(source_history, stream_from, seg_size),
        target_segments_kept: stream_from.0.saturating_sub(first.0),
        source_position,
        recovery_start: start,
    }
}

/// What [`wal_window`] decides from.
struct WindowInput<'a> {
    start: &'a RecoveryStart,
    /// The last common checkpoint record.
    checkpoint: Lsn,
    divergence: Lsn,
    /// Whether recovery may read the target's own segments of common history.
    reuse_target: bool,
    target_files: &'a [(String, FileKind)],
    source_history: &'a [TimeLineHistoryEntry],
    target_history: &'a [TimeLineHistoryEntry],
    /// The WAL directory's name in the data directory.
    wal_dir: &'a str,
    seg_size: u32,
}

/// Which WAL recovery reads and where it comes from (see [`WalWindow`]). The segments from the
/// recovery start's up to the one holding the divergence point hold only common history: when
/// the recovery start is the common checkpoint's and the target's WAL scan read them, the
/// target's complete copies (named alike on both histories) are kept and the stream begins at
/// the first segment the target lacks, at the latest at the divergence point's. That moves
/// less, and works when the source has recycled that WAL. The segments from the common
/// checkpoint record's to the divergence point's on the target's history are required for
/// recovery (pg_rewind keeps them, archived or not).
fn wal_window(w: WindowInput<'_>) -> WalWindow {
    let seg_size = w.seg_size;
    let first = w.start.redo.segment(seg_size);
    let last_common = w.divergence.segment(seg_size);
    let required = (w.checkpoint.segment(seg_size).0..=last_common.0)
        .map(|n| timeline::segment_file_name(w.target_history, XLogSegNo(n), seg_size))
        .collect();
    let mut stream_from = first;
    if w.reuse_target && w.start.from == RecoveryStartFrom::CommonCheckpoint {
        let wal_dir = format!("{}/", w.wal_dir);
        let full: HashSet<&str> = w
            .target_files
            .iter()
            .filter(|(_, k)| {
                *k == FileKind::File {
                    size: u64::from(seg_size),
                }
            })
            .filter_map(|(p, _)| p.strip_prefix(wal_dir.as_str()))
            .collect();
        while stream_from < last_common {
            let name = timeline::segment_file_name(w.source_history, stream_from, seg_size);
            let same = name == timeline::segment_file_name(w.target_history, stream_from, seg_size);
            if !same || !full.contains(name.as_str()) {
                break;
            }
            stream_from = XLogSegNo(stream_from.0 + 1);
        }
    }
    WalWindow {
        first_segment: first,
        stream_from,
        required,
        source_history: w.source_history.to_vec(),
        wal_dir: w.wal_dir.to_string(),
        seg_size,
    }
}
