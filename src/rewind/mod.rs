//! The rebuild, as pg_rewind's numbered phases, one module each:
//!
//! 0. `resume`: an interrupted rebuild of the target is finished first;
//! 1. `inspect`: the target, stopped and shut down cleanly;
//! 2. `connect`: the source, opened and checked against the target;
//! 3. `divergence`: where the two sides parted, their last common checkpoint, and where
//!    recovery starts;
//! 4. `changed_blocks`: every block the target changed since then;
//! 5. `plan`: both listings (read while phase 4 scans) and one action per path — the
//!    [`Plan`], the boundary between deciding and doing;
//! 6. `execute`: the journal, then files, blocks and the source's WAL;
//! 7. `finish`: `backup_label`, standby configuration, sync, `pg_control` last.
//!
//! [`prepare`] runs phases 0–5 and changes nothing in the target except single-user crash
//! recovery of an uncleanly stopped target (phase 1), which `ensure_shutdown = false` refuses;
//! [`execute`] runs phases 6–7; [`run`] does both.

mod auto;
mod build_state;
mod changed_blocks;
mod connect;
mod divergence;
mod execute;
mod finish;
mod full;
mod hints;
mod inspect;
mod options;
mod plan;
mod prepared;
mod resume;
mod source_wal;

pub use crate::reporter::{Reporter, TracingReporter};
pub use auto::{classify, one_line, try_incremental, Attempt, Fallback};
pub use hints::{hints, target_wal_missing};
pub use options::{BuildMode, ChangedBlocks, Options, SourceSpec};
use prepared::RunSettings;
pub use prepared::{Outcome, Prepared};

use crate::error::Result;
use crate::lsn::{Lsn, TimeLineId};
use crate::plan::Plan;
use crate::source::Source;
use crate::target::TargetDir;
use connect::Build;

/// Phases 0–5: everything up to the plan. The target is not modified (except by crash
/// recovery, see the module documentation).
pub fn prepare(opts: Options, rep: &mut dyn Reporter) -> Result<Prepared> {
    prepare_from(opts, None, rep)
}

/// [`prepare`] reading from `source` instead of opening the one `opts.source` names, which
/// then only says what kind of source it is (`SourceSpec::Local` turns on the checks for a
/// stopped data directory). For sources of the caller's own, e.g. a wrapper that observes or
/// filters a real one; a source is never trusted to name safe paths (see
/// [`crate::datadir::check_source_listing`]).
pub fn prepare_with_source(
    opts: Options,
    source: Box<dyn Source + Send>,
    rep: &mut dyn Reporter,
) -> Result<Prepared> {
    prepare_from(opts, Some(source), rep)
}

fn prepare_from(
    opts: Options,
    given: Option<Box<dyn Source + Send>>,
    rep: &mut dyn Reporter,
) -> Result<Prepared> {
    let mut peer = None;
    phases(opts, given, &mut peer, rep).map_err(|e| match &peer {
        Some(p) => e.at_source(p),
        None => e,
    })
}

/// Phases 0–5, recording in `peer` which source was opened, for errors.
fn phases(
    opts: Options,
    given: Option<Box<dyn Source + Send>>,
    peer: &mut Option<String>,
    rep: &mut dyn Reporter,
) -> Result<Prepared> {
    // 0. An interrupted rebuild is finished before anything else.
    let mut given = given;
    if let Some(prep) = earlier_rebuild(&opts, &mut given, peer, rep)? {
        return Ok(prep);
    }
    // 1. The target.
    let mut target = inspect::target(&opts, rep)?;
    // 2. The source, and whether the two fit.
    let mut conn = connect::open(&opts, given, peer, &mut target, Build::Incremental, rep)?;
    let base = Plan {
        source: conn.source.describe(),
        target: opts.target.display().to_string(),
        flavor: target.flavor(),
        divergence: None,
        checkpoint: None,
        wal: None,
        files: Vec::new(),
        totals: Default::default(),
        full: false,
    };
    // 3. Where the two sides parted.
    let found = divergence::find(&mut target, &mut conn, &opts, rep)?;
    let Some(common) = found.common else {
        rep.info("no rewind required");
        return Ok(Prepared::nothing_to_do(base, target, conn, &opts));
    };
    report_divergence(&common, &target, rep);
    // 4. The blocks the target changed, from its WAL (with page LSNs: once the listings are
    // known), while (5) both listings are read; then the plan.
    let (path, wal_dir) = (target.path().to_path_buf(), target.flavor().wal_dir());
    let (scanned, (source_files, target_files)) =
        plan::list_both_while((&path, wal_dir), conn.source.as_mut(), rep, |rep| {
            changed_blocks::scan_wal(&mut target, &common, found.restore, &opts, rep)
        })?;
    let decided = changed_blocks::finish(
        &mut target,
        &common,
        (&source_files, &target_files),
        scanned,
        &opts,
        rep,
    )?;
    let mut plan = plan::build(
        base,
        &target,
        &common,
        (source_files, target_files),
        &decided.changed,
        &opts,
        rep,
    )?;
    plan.totals.blocks_left_to_replay = decided.replayed;
    plan.defer_blocks(&decided.deferred);
    Ok(Prepared {
        plan,
        source: conn.source,
        target,
        settings: RunSettings::of(&opts),
        source_history: common.histories.source,
        conninfo: conn.conninfo,
        checked: common.checked,
        resume: None,
    })
}

/// pg_rewind's lines saying where the sides parted and where the rewind starts.
fn report_divergence(
    common: &divergence::Common,
    target: &crate::cluster::TargetCluster,
    rep: &mut dyn Reporter,
) {
    let div = &common.divergence;
    rep.info(&format!(
        "servers diverged at WAL location {} on timeline {}",
        div.lsn, div.tli
    ));
    rep.info(&format!(
        "rewinding from last common checkpoint at {} on timeline {}",
        common.checkpoint.lsn, common.checkpoint.checkpoint.this_timeline_id
    ));
    if target.flavor().table().tool_log_lines {
        rep.info(&format!(
            "rewinding from checkpoint redo point at {} on timeline {}",
            common.start.redo, common.start.tli
        ));
    }
}

/// Phase 0, and a full build: the plan of an interrupted rebuild's resumption, of a full
/// build (asked for, or an interrupted full build done again in full, whatever this run was
/// asked to do), or `None` for a new incremental rebuild.
fn earlier_rebuild(
    opts: &Options,
    given: &mut Option<Box<dyn Source + Send>>,
    peer: &mut Option<String>,
    rep: &mut dyn Reporter,
) -> Result<Option<Prepared>> {
    let full = opts.build == BuildMode::Full;
    let start = resume::start(opts, rep)?;
    if !full && matches!(start, resume::Start::Fresh) {
        return Ok(None);
    }
    let (opts, given) = (opts.clone(), given.take());
    let prep = match start {
        resume::Start::Interrupted(j) if full || j.plan.full => {
            rep.info(&format!(
                "building \"{}\" in full again: the rebuild started at {} is unfinished",
                opts.target.display(),
                j.started
            ));
            full::prepare(opts, given, peer, Some(j), rep)?
        }
        resume::Start::Interrupted(j) => resume::prepare(opts, given, peer, *j, rep)?,
        resume::Start::Completed(j) if !full => resume::completed(opts, given, peer, j.plan, rep)?,
        _ => full::prepare(opts, given, peer, None, rep)?,
    };
    Ok(Some(prep))
}

/// Phases 6–7: carries out `prep.plan` on the target. Does nothing for a plan that needs no
/// rewind.
///
/// Crash safety (see [`crate::journal`]): nothing is written before the journal is durable and
/// `pg_control` is moved aside; `pg_control` is written last, after everything else is
/// durable. A run that dies in between leaves a target that refuses to start and that the next
/// run resumes.
pub fn execute(mut prep: Prepared, rep: &mut dyn Reporter) -> Result<Outcome> {
    let peer = prep.source.describe();
    execute_phases(&mut prep, rep).map_err(|e| e.at_source(&peer))
}

fn execute_phases(prep: &mut Prepared, rep: &mut dyn Reporter) -> Result<Outcome> {
    if prep.plan.checkpoint.is_none() || prep.plan.wal.is_none() {
        return Ok(Outcome {
            bytes_written: 0,
            wal_bytes: 0,
            bytes_fetched: 0,
            fetched_data_bytes: 0,
            fetched_wal_bytes: 0,
            min_recovery_point: Lsn::INVALID,
            min_recovery_tli: TimeLineId(0),
            synced: 0,
            blocks_left_to_replay: 0,
        });
    }
    let s = &prep.settings;
    let mut target = TargetDir::new(prep.target.path(), s.dry_run, s.sync)?;
    // The product's state file says a build is under way, and how far it got.
    let mut with_state;
    let rep: &mut dyn Reporter = match prep.target.flavor().table().state_file {
        Some(file) if !s.dry_run => {
            let path = prep.target.path().join(file);
            with_state = build_state::StateReporter::start(path, prep.plan.full, rep)?;
            &mut with_state
        }
        _ => rep,
    };
    // 6. Files, blocks and WAL.
    let t = execute::run(prep, &mut target, rep)?;
    // A full build's backup mode on the source ends once everything is copied. Nothing here
    // depends on it (recovery ends at the position taken after the copy), so a failure only
    // leaves the server to abort the backup when the session ends.
    if let Err(e) = prep.source.backup_stop() {
        tracing::warn!("could not end the backup on the source: {e}");
    }
    // 7. The finish.
    finish::run(prep, &mut target, &t, rep)?;
    Ok(Outcome {
        bytes_written: target.bytes_written(),
        wal_bytes: t.wal_bytes,
        bytes_fetched: t.data_bytes + t.wal_bytes,
        fetched_data_bytes: t.data_bytes,
        fetched_wal_bytes: t.wal_bytes,
        min_recovery_point: t.end,
        min_recovery_tli: t.end_tli,
        synced: target.synced_count(),
        blocks_left_to_replay: t.blocks_left_to_replay,
    })
}

/// What a source says of itself before a rebuild: its name, timeline and term.
#[derive(Clone, Debug)]
pub struct SourceProbe {
    /// The source as described to people.
    pub describe: String,
    /// Its current timeline.
    pub timeline: TimeLineId,
    /// Its term (openGauss).
    pub term: Option<u64>,
    /// Its WAL position when asked (flush position of a primary, replay position of a standby).
    pub position: Lsn,
}

/// Opens the source `opts` names, only to ask it who it is (the target may be running).
pub fn probe_source(opts: &Options, rep: &mut dyn Reporter) -> Result<SourceProbe> {
    let mut target =
        crate::cluster::TargetCluster::open(&opts.target, opts.config_file.as_deref())?;
    let mut peer = None;
    let mut conn = connect::open_unchecked(opts, None, &mut peer, &mut target, rep)?;
    let (timeline, position) = conn.source.wal_position()?;
    Ok(SourceProbe {
        describe: conn.source.describe(),
        timeline,
        term: conn.source.term()?,
        position,
    })
}

/// A whole rebuild: phases 0–5, then 6–7 unless it is a dry run or nothing needs doing.
pub fn run(opts: Options, rep: &mut dyn Reporter) -> Result<(Plan, Option<Outcome>)> {
    let dry_run = opts.dry_run;
    let prep = match opts.build {
        BuildMode::Auto => auto::prepare(opts, rep)?,
        _ => prepare(opts, rep)?,
    };
    let plan = prep.plan.clone();
    if dry_run || !plan.rewind_required() {
        return Ok((plan, None));
    }
    let outcome = execute(prep, rep)?;
    Ok((plan, Some(outcome)))
}
