//! Phase 0, an earlier rebuild of the target: a journal left by one that was interrupted is
//! resumed before anything else ([`prepare`]: its plan, checked against the source as it is
//! now); one left by a run that died before its first write, or after its last, is discarded.

use super::connect::{self, Build};
use super::divergence::{history_of, history_reached, recovery_start_from};
use super::options::Options;
use super::plan::wal_plan;
use super::prepared::{Prepared, RunSettings};
use super::source_wal::SourceWal;
use crate::cluster::TargetCluster;
use crate::error::{Error, Result};
use crate::journal::{self, Journal, State};
use crate::reporter::Reporter;
use crate::source::Source;
use crate::target::TargetDir;
use crate::timeline;

/// What phase 0 found in the target.
pub(super) enum Start {
    /// No earlier rebuild to care about: a new one starts.
    Fresh,
    /// An interrupted rebuild, to resume.
    Interrupted(Box<Journal>),
    /// A rebuild that had completed (its journal is now removed): nothing to do.
    Completed(Box<Journal>),
}

/// Reads the target's journal and clears one that no longer matters.
pub(super) fn start(opts: &Options, rep: &mut dyn Reporter) -> Result<Start> {
    let discard = || -> Result<()> {
        let mut target = TargetDir::new(&opts.target, opts.dry_run, opts.sync)?;
        journal::discard(&mut target)
    };
    match journal::inspect(&opts.target)? {
        State::Clean => Ok(Start::Fresh),
        State::Interrupted(j) => Ok(Start::Interrupted(j)),
        State::NotStarted(j) => {
            rep.info(&format!(
                "discarding the journal of the rebuild started at {}, which stopped before changing anything",
                j.started
            ));
            discard()?;
            Ok(Start::Fresh)
        }
        State::Finished(j) => {
            rep.info(&format!(
                "the rebuild started at {} had completed; removing its journal",
                j.started
            ));
            let mut target = TargetDir::new(&opts.target, opts.dry_run, opts.sync)?;
            super::finish::complete_marker(&mut target, j.plan.flavor.table())?;
            journal::discard(&mut target)?;
            Ok(Start::Completed(j))
        }
    }
}

/// A rebuild whose journal said it had completed: nothing left to do. Its plan, stripped of
/// what it did, and the source, opened to say so (the target is not checked: its control file
/// is the new one, in archive recovery until it is started).
pub(super) fn completed(
    opts: Options,
    given: Option<Box<dyn Source + Send>>,
    peer: &mut Option<String>,
    plan: crate::plan::Plan,
    rep: &mut dyn Reporter,
) -> Result<Prepared> {
    let mut target = TargetCluster::open(&opts.target, opts.config_file.as_deref())?;
    let conn = connect::open_unchecked(&opts, given, peer, &mut target, rep)?;
    let plan = crate::plan::Plan {
        divergence: None,
        checkpoint: None,
        wal: None,
        files: Vec::new(),
        totals: Default::default(),
        full: false,
        ..plan
    };
    Ok(Prepared::nothing_to_do(plan, target, conn, &opts))
}

/// The journaled plan of an interrupted rebuild, checked against the source as it is now. The
/// source may be another server of the same cluster and is further ahead; it must still have
/// the history up to the divergence point and the record of common history the plan was
/// checked against.
pub(super) fn prepare(
    opts: Options,
    given: Option<Box<dyn Source + Send>>,
    peer: &mut Option<String>,
    journal: Journal,
    rep: &mut dyn Reporter,
) -> Result<Prepared> {
    rep.info(&format!(
        "resuming the interrupted rebuild of \"{}\" started at {} from {} (run {})",
        opts.target.display(),
        journal.started,
        journal.source,
        journal.runs + 1
    ));
    if crate::pgserver::is_running(&opts.target) {
        return Err(Error::Incompatible(format!(
            "a postmaster is running on \"{}\", which is being rebuilt: stop it",
            opts.target.display()
        )));
    }
    let mut target = TargetCluster::open_with_control(
        &opts.target,
        opts.config_file.as_deref(),
        journal::CONTROL_ASIDE,
    )?;
    let mut conn = connect::open(&opts, given, peer, &mut target, Build::Incremental, rep)?;
    let (Some(div), Some(ckpt)) = (&journal.plan.divergence, &journal.plan.checkpoint) else {
        return Err(Error::Journal {
            path: opts.target.join(journal::JOURNAL_FILE),
            message: "it holds no plan to resume".into(),
        });
    };
    let source_history = check_resumable(&opts, &journal, conn.source.as_mut(), &target, div.lsn)?;
    let checked = journal.checked_record;
    rep.info(&format!(
        "servers diverged at WAL location {} on timeline {}",
        div.lsn, div.tli
    ));
    rep.info(&format!(
        "rewinding from last common checkpoint at {} on timeline {}",
        ckpt.lsn, ckpt.tli
    ));
    let mut plan = journal.plan.clone();
    let mut earlier_start = false;
    if let (false, Some(wal)) = (journal.files_done, plan.wal.as_mut()) {
        // This run copies every file again, so the source's files are at least as new as its
        // redo point now; the earlier run's start stays in force for what replay must cover.
        let now = recovery_start_from(ckpt, &conn.control, rep);
        if now.redo < wal.recovery_start.redo {
            // Streamed from the new start on: the target's copies of the WAL between it and
            // the divergence point were not checked by this plan's scan.
            let seg_size = target.seg_size();
            earlier_start = true;
            let stream_from = now.redo.segment(seg_size);
            *wal = wal_plan(
                now,
                stream_from,
                &source_history,
                seg_size,
                wal.source_position,
            );
        }
    }
    if earlier_start {
        // Replay from an earlier point reads records before the one the deferral was decided
        // from: every deferred block is copied.
        plan.undefer_blocks();
    }
    Ok(Prepared {
        plan,
        source: conn.source,
        target,
        settings: RunSettings::of(&opts),
        source_history,
        conninfo: conn.conninfo,
        checked,
        resume: Some(Box::new(journal)),
    })
}

/// Checks that `source` can finish the rebuild `journal` started: its history agrees with the
/// journaled one before the divergence point `divergence`, and it still has the record of
/// common history the rebuild was checked against. Returns its history.
fn check_resumable(
    opts: &Options,
    journal: &Journal,
    source: &mut dyn Source,
    target: &TargetCluster,
    divergence: crate::lsn::Lsn,
) -> Result<Vec<crate::timeline::TimeLineHistoryEntry>> {
    let (source_tli, source_end) = source.wal_position()?;
    let source_history = history_of(source, source_tli)?;
    let described = source.describe();
    history_reached(&source_history, source_end, || {
        format!("{described} {}", timeline::history_file_name(source_tli)).into()
    })?;
    let cannot = |why: String| {
        Error::Incompatible(format!(
            "cannot resume the interrupted rebuild of \"{}\" from {}: {why}; resume it from a server that follows the history the rebuild started from (it was {}), or rebuild the target in full (pg_basebackup)",
            opts.target.display(),
            described,
            journal.source
        ))
    };
    if !journal::histories_agree(&journal.source_history, &source_history, divergence) {
        return Err(cannot(format!(
            "its timeline history (now timeline {source_tli}) no longer agrees with the one the rebuild started from before the divergence point {}",
            divergence
        )));
    }
    let checked = journal.checked_record;
    let mut wal = SourceWal {
        source,
        history: &source_history,
        end: source_end,
        seg_size: target.seg_size(),
        sysid: target.system_identifier(),
    };
    if wal.crc_at(checked.lsn)? != Some(checked.crc) {
        return Err(cannot(format!(
            "its WAL no longer holds the record of common history at {} that the rebuild was checked against",
            checked.lsn
        )));
    }
    Ok(source_history)
}
