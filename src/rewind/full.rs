//! A full build (`-b full`): every file of the source copied into the target, whose own files
//! are removed but its configuration files (kept as `gs_ctl build -b full` keeps them), and the
//! source's WAL streamed alongside from the backup's checkpoint to the source's position after
//! the copy (as `pg_basebackup -X stream`). No divergence, no common history: only the same
//! product, version and system, and `full_page_writes` on the source.
//!
//! It is carried out by phases 6–7 like an incremental plan, so it is crash safe the same way:
//! the journal (its plan says `full`) is made durable and `global/pg_control` set aside before
//! the first write, and the new `pg_control` is written last. A run that finds the journal of an
//! interrupted full build — in any mode — builds in full again from the start: the files copied
//! before are not trusted, since the source's checkpoint moved on.
//!
//! A server source is put in backup mode first (`pg_backup_start` with a fast checkpoint, on
//! the session that stays open for the copy; ended after it): full-page images are written
//! whatever happens to `full_page_writes` meanwhile, and replay starts at a fresh checkpoint.
//! An openGauss source the same way, with `pg_start_backup(label, true, false)` on a session
//! of its own (`crate::source::opengauss`, which says how its pages are kept whole).
//! The recovery start is the checkpoint in the source's control file as read after that and
//! before any file is copied, so every file copied is at least as new as its redo point.

use super::connect::{self, Build};
use super::options::Options;
use super::plan::{list_both, wal_plan};
use super::prepared::{Prepared, RunSettings};
use crate::cluster::TargetCluster;
use crate::error::{Error, Result};
use crate::filemap::{Policy, WalWindow};
use crate::journal::{CheckedRecord, HistoryEntry, Journal, CONTROL_ASIDE, CONTROL_FILE};
use crate::lsn::{human_bytes, Lsn};
use crate::plan::{CommonCheckpoint, FileMapInput, Plan, RecoveryStart, RecoveryStartFrom};
use crate::reporter::Reporter;
use crate::source::Source;
use std::collections::HashMap;

/// The label of the backup on the source (its log and `pg_stat_progress_basebackup` say it).
const LABEL: &str = "gsbuild full build";

/// The plan of a full build of `opts.target`; `resumed` is the journal of an interrupted
/// rebuild (full or incremental) that this one replaces.
pub(super) fn prepare(
    opts: Options,
    given: Option<Box<dyn Source + Send>>,
    peer: &mut Option<String>,
    resumed: Option<Box<Journal>>,
    rep: &mut dyn Reporter,
) -> Result<Prepared> {
    let mut target = open_target(&opts, resumed.is_some())?;
    let mut conn = connect::open(&opts, given, peer, &mut target, Build::Full, rep)?;
    if !opts.dry_run {
        if let Some(lsn) = conn.source.backup_start(LABEL)? {
            rep.info(&format!(
                "full build: backup started on the source at {lsn} (fast checkpoint)"
            ));
        }
    }
    // Read after the backup's checkpoint and before any file is copied.
    let control = connect::source_control(conn.source.as_mut(), &target)?;
    let start = RecoveryStart {
        redo: control.checkpoint_copy.redo,
        checkpoint: control.checkpoint,
        tli: control.checkpoint_copy.this_timeline_id,
        from: RecoveryStartFrom::SourceCheckpoint,
        next_xid: Some(control.checkpoint_copy.next_xid.0),
    };
    let (tli, position) = conn.source.wal_position()?;
    let history = super::divergence::history_of(conn.source.as_mut(), tli)?;
    let listings = list_both(&target, conn.source.as_mut(), rep)?;
    let plan = build_plan(&target, conn.source.describe(), listings, &start, &opts)?;
    let seg_size = target.seg_size();
    let redo_segment = start.redo.segment(seg_size);
    let plan = Plan {
        wal: Some(wal_plan(start, redo_segment, &history, seg_size, position)),
        ..plan
    };
    rep.step(&format!(
        "full build: need to copy {} (total source directory size is {})",
        human_bytes(plan.totals.bytes_to_copy),
        human_bytes(plan.totals.source_bytes)
    ));
    let none = CheckedRecord {
        lsn: Lsn::INVALID,
        crc: 0,
    };
    let resume = resumed.map(|mut j| {
        // Everything again, against this source, from this checkpoint.
        j.files_done = false;
        j.checked_record = none;
        j.source = plan.source.clone();
        j.source_history = HistoryEntry::from_history(&history);
        j
    });
    Ok(Prepared {
        plan,
        source: conn.source,
        target,
        settings: RunSettings::of(&opts),
        source_history: history,
        conninfo: conn.conninfo,
        checked: none,
        resume,
    })
}

/// The target: stopped, with a readable control file (the one set aside by an interrupted
/// rebuild).
fn open_target(opts: &Options, interrupted: bool) -> Result<TargetCluster> {
    if crate::pgserver::is_running(&opts.target) {
        return Err(Error::Incompatible(format!(
            "target server must be stopped for a full build (a postmaster is running on \"{}\")",
            opts.target.display()
        )));
    }
    let control = match interrupted {
        true => CONTROL_ASIDE,
        false => CONTROL_FILE,
    };
    TargetCluster::open_with_control(&opts.target, opts.config_file.as_deref(), control)
}

/// Every file of the source copied whole, every other file of the target removed but its
/// configuration files (with `keep_config`), none of its WAL kept.
fn build_plan(
    target: &TargetCluster,
    source: String,
    listings: (super::plan::Listing, super::plan::Listing),
    start: &RecoveryStart,
    opts: &Options,
) -> Result<Plan> {
    let seg_size = target.seg_size();
    let first = start.redo.segment(seg_size);
    let window = WalWindow {
        first_segment: first,
        stream_from: first,
        required: Default::default(),
        source_history: Vec::new(),
        wal_dir: target.flavor().wal_dir().to_string(),
        seg_size,
    };
    let policy = Policy {
        keep_config: opts.keep_config,
        flavor: target.flavor(),
        full: true,
        // A transaction prepared after the backup's checkpoint is prepared again by replay.
        twophase_next_xid: start.next_xid,
    };
    let (files, totals) = crate::plan::build_files(FileMapInput {
        source: listings.0,
        target: listings.1,
        changed_blocks: &HashMap::new(),
        is_rel_main: &|p| crate::relpath::is_main_fork_data_file(p),
        policy: &policy,
        wal: &window,
    })?;
    Ok(Plan {
        source,
        target: opts.target.display().to_string(),
        flavor: target.flavor(),
        divergence: None,
        checkpoint: Some(CommonCheckpoint {
            lsn: start.checkpoint,
            redo: start.redo,
            tli: start.tli,
            next_xid: start.next_xid,
        }),
        wal: None,
        files,
        totals,
        full: true,
    })
}
