//! Orchestration of a rebuild, as numbered phases (DESIGN.md §2): [`prepare`] inspects the
//! target, connects to the source, finds the divergence and the last common checkpoint, scans
//! the target's WAL and builds the [`Plan`]; [`crate::execute::execute`] carries it out.
//!
//! Nothing here writes to the target except single-user crash recovery of an uncleanly stopped
//! target (phase 1), which the user can refuse with `ensure_shutdown = false`.

use crate::conninfo::{ConnInfo, Environment};
use crate::control::{read_control_file, ControlFile, DbState};
use crate::error::{Error, Result};
use crate::filemap::{FileKind, Policy, WalWindow};
use crate::journal::{self, CheckedRecord, Journal, State as JournalState};
use crate::lsn::{Lsn, TimeLineId, XLogSegNo};
use crate::plan::{
    self, CommonCheckpoint, Divergence, FileMapInput, Plan, RecoveryStart, RecoveryStartFrom,
    WalPlan,
};
use crate::replication::ClientOptions;
use crate::source::local::LocalSource;
use crate::source::server::ServerSource;
use crate::source::Source;
use crate::target::SyncMethod;
use crate::timeline::{self, find_divergence, parse_history, TimeLineHistoryEntry};
use crate::walscan::{self, FoundCheckpoint, RestoringWalDir};
use crate::xlog::readahead::ReadAhead;
use crate::xlog::{WalReader, WalStreamReader, XLOG_BLCKSZ};
use crate::{datadir, pagelsn, pgconf, pgserver, relpath};
use std::path::{Path, PathBuf};

/// Where to copy from.
#[derive(Clone, Debug)]
pub enum SourceSpec {
    /// A running server, by libpq connection string or URI.
    Server(String),
    /// A cleanly stopped data directory on this machine.
    Local(PathBuf),
    /// The target's own `primary_conninfo`.
    PrimaryConninfo,
}

/// Everything a rebuild needs to know. `Options::new` gives the defaults of `gsbuild -D`.
#[derive(Clone, Debug)]
pub struct Options {
    /// The target data directory.
    pub target: PathBuf,
    /// The source.
    pub source: SourceSpec,
    /// Build the plan and stop.
    pub dry_run: bool,
    /// Write `standby.signal` and `primary_conninfo` (needs a server source).
    pub write_recovery_conf: bool,
    /// Fetch missing target WAL with the target's `restore_command`.
    pub restore_target_wal: bool,
    /// The target's main configuration file, when outside the data directory.
    pub config_file: Option<PathBuf>,
    /// How to make the result durable.
    pub sync: SyncMethod,
    /// Run single-user crash recovery on a target that was not shut down cleanly.
    pub ensure_shutdown: bool,
    /// Keep the target's configuration files instead of copying the source's.
    pub keep_config: bool,
    /// Tablespace locations to relocate: a source tablespace at `.0` is created on the target
    /// at `.1` (like `pg_basebackup --tablespace-mapping`).
    pub tablespace_mapping: Vec<(PathBuf, PathBuf)>,
    /// The `postgres` executable for crash recovery (default: next to gsbuild, then `PATH`).
    pub postgres: Option<PathBuf>,
    /// Connection time limits.
    pub client: ClientOptions,
    /// Environment for connection defaults (`PGHOST`, `PGPASSFILE`, …).
    pub env: Environment,
    /// Connections (and threads) used to fetch files and blocks from a server source
    /// (`-j/--jobs`).
    pub jobs: usize,
    /// How the blocks the target changed after the divergence are found.
    pub changed_blocks: ChangedBlocks,
    /// Cross-check the WAL-derived block set against a scan of page LSNs (`--verify-blocks`);
    /// a page written after the divergence that the WAL did not name fails the rebuild.
    pub verify_blocks: bool,
}

/// How phase 4 finds the blocks the target changed after the divergence point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangedBlocks {
    /// Decode the target's WAL from the common redo point (pg_rewind's method).
    #[default]
    Wal,
    /// Scan every relation page's LSN (`pd_lsn`): needs no target WAL after the common
    /// checkpoint, only checksums or `wal_log_hints` (docs/architecture.md).
    PageLsn,
}

impl Options {
    /// Defaults for rebuilding `target` from `source`.
    pub fn new(target: impl Into<PathBuf>, source: SourceSpec) -> Options {
        Options {
            target: target.into(),
            source,
            dry_run: false,
            write_recovery_conf: false,
            restore_target_wal: false,
            config_file: None,
            sync: SyncMethod::Fsync,
            ensure_shutdown: true,
            keep_config: true,
            tablespace_mapping: Vec::new(),
            postgres: None,
            client: ClientOptions::default(),
            env: Environment::from_process(),
            jobs: 4,
            changed_blocks: ChangedBlocks::Wal,
            verify_blocks: false,
        }
    }
}

/// Receives what a rebuild has to say: messages in pg_rewind's words, and progress.
pub trait Reporter {
    /// A message pg_rewind would print at info level ("servers diverged at …").
    fn info(&mut self, msg: &str);
    /// A step of the work ("reading source file list"); pg_rewind prints these with
    /// `--progress`.
    fn step(&mut self, msg: &str) {
        self.debug(msg);
    }
    /// A debug-level message (`--debug`).
    fn debug(&mut self, _msg: &str) {}
    /// Bytes copied so far out of `total`.
    fn progress(&mut self, _done: u64, _total: u64) {}
}

/// A [`Reporter`] that logs through `tracing`.
pub struct TracingReporter;

impl Reporter for TracingReporter {
    fn info(&mut self, msg: &str) {
        tracing::info!("{msg}");
    }
    fn debug(&mut self, msg: &str) {
        tracing::debug!("{msg}");
    }
}

/// A plan and what is needed to carry it out.
pub struct Prepared {
    /// The plan.
    pub plan: Plan,
    pub(crate) source: Box<dyn Source + Send>,
    pub(crate) opts: Options,
    pub(crate) target_control: ControlFile,
    pub(crate) source_history: Vec<TimeLineHistoryEntry>,
    pub(crate) conninfo: Option<ConnInfo>,
    /// The record of common history compared with the source (kept in the journal).
    pub(crate) checked: CheckedRecord,
    /// The journal of the interrupted rebuild this run resumes.
    pub(crate) resume: Option<Box<Journal>>,
}

impl Prepared {
    /// Whether this run resumes an interrupted rebuild.
    pub fn resumes(&self) -> bool {
        self.resume.is_some()
    }
}

/// Phases 1–5: everything up to the plan. The target is not modified (except by crash
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
    prepare_named(opts, given, &mut peer, rep).map_err(|e| match &peer {
        Some(p) => e.at_source(p),
        None => e,
    })
}

/// [`prepare_from`], recording in `peer` which source it opened, for its errors.
fn prepare_named(
    opts: Options,
    mut given: Option<Box<dyn Source + Send>>,
    peer: &mut Option<String>,
    rep: &mut dyn Reporter,
) -> Result<Prepared> {
    // 0. An interrupted rebuild is finished before anything else.
    match journal::inspect(&opts.target)? {
        JournalState::Clean => {}
        JournalState::Interrupted(j) => return prepare_resume(opts, given, peer, *j, rep),
        JournalState::NotStarted(j) => {
            rep.info(&format!(
                "discarding the journal of the rebuild started at {}, which stopped before changing anything",
                j.started
            ));
            if !opts.dry_run {
                journal::discard(&opts.target)?;
            }
        }
        JournalState::Finished(j) => {
            rep.info(&format!(
                "the rebuild started at {} had completed; removing its journal",
                j.started
            ));
            if !opts.dry_run {
                journal::discard(&opts.target)?;
            }
            let (source, conninfo) = open_given(&opts, &mut given, peer, rep)?;
            let target_control = read_control_file(&opts.target)?;
            let plan = Plan {
                divergence: None,
                checkpoint: None,
                wal: None,
                files: Vec::new(),
                totals: Default::default(),
                ..j.plan
            };
            return Ok(Prepared {
                plan,
                source,
                opts,
                target_control,
                source_history: Vec::new(),
                conninfo,
                checked: CheckedRecord {
                    lsn: Lsn::INVALID,
                    crc: 0,
                },
                resume: None,
            });
        }
    }
    // 1. Inspect the target.
    let target_control = inspect_target(&opts, rep)?;
    let seg_size = target_control.xlog_seg_size;
    // 2. Connect to the source and check that the two clusters fit.
    let (mut source, conninfo) = open_given(&opts, &mut given, peer, rep)?;
    // Read before any file is copied: see RecoveryStart::earlier_of.
    let source_control =
        check_source_fits(&opts, &target_control, source.as_mut(), conninfo.as_ref())?;
    // 3. Divergence.
    let (source_tli, source_end) = source.wal_position()?;
    let source_history = history_of(source.as_mut(), source_tli)?;
    let target_tli = target_control
        .checkpoint_copy
        .this_timeline_id
        .max(target_control.min_recovery_point_tli);
    let target_history = target_history(&opts.target, target_tli)?;
    let restore = restore_command(&opts)?;
    let mut target_wal = WalReader::new(
        RestoringWalDir::new(
            &opts.target,
            seg_size,
            target_history.clone(),
            restore.clone(),
        ),
        seg_size,
        Some(target_control.system_identifier),
    );
    let target_end = match target_end_of_wal(&target_control, &mut target_wal) {
        Ok(end) => end,
        // Without its WAL the target's last checkpoint record cannot be read, but its
        // position is enough: the WAL ends after it, and a divergence point at or before it
        // means the target diverged (a record is never split by the divergence point), one
        // after it means there is nothing to rewind.
        Err(e) if opts.changed_blocks == ChangedBlocks::PageLsn => {
            rep.info(&format!(
                "could not read the target's last checkpoint record ({e}); its WAL ends after {}",
                target_control.checkpoint
            ));
            Lsn(target_control.checkpoint.0 + 1).max(target_control.min_recovery_point)
        }
        Err(e) => return Err(e),
    };
    // A history that names a switchpoint the cluster never reached lies (or belongs to
    // another cluster); the divergence found from it would be wrong.
    history_reached(&source_history, source_end, || {
        format!(
            "{} {}",
            source.describe(),
            timeline::history_file_name(source_tli)
        )
        .into()
    })?;
    history_reached(&target_history, target_end, || {
        opts.target
            .join("pg_wal")
            .join(timeline::history_file_name(target_tli))
    })?;
    if opts.verify_blocks && opts.changed_blocks == ChangedBlocks::PageLsn {
        return Err(Error::Usage(
            "--verify-blocks checks the blocks found in the target's WAL against page LSNs; it cannot be combined with --changed-blocks=page-lsn".into(),
        ));
    }
    let histories = Histories {
        source: &source_history,
        target: &target_history,
    };
    let found = match opts.changed_blocks {
        ChangedBlocks::Wal => find_common_point(
            &mut target_wal,
            source.as_mut(),
            &histories,
            &target_control,
            (target_end, source_end),
            rep,
        )?,
        ChangedBlocks::PageLsn => find_common_point_page_lsn(
            &mut target_wal,
            source.as_mut(),
            &histories,
            &target_control,
            (target_end, source_end),
            rep,
        )?,
    };
    // Its cached segments (up to 32 MiB) would stay alive beside the scan's own reader.
    drop(target_wal);
    let base = Plan {
        source: source.describe(),
        target: opts.target.display().to_string(),
        major: target_control.major,
        divergence: None,
        checkpoint: None,
        wal: None,
        files: Vec::new(),
        totals: Default::default(),
    };
    let Some((divergence, ckpt, checked)) = found else {
        rep.info("no rewind required");
        return Ok(Prepared {
            plan: base,
            source,
            opts,
            target_control,
            source_history,
            conninfo,
            checked: CheckedRecord {
                lsn: Lsn::INVALID,
                crc: 0,
            },
            resume: None,
        });
    };
    rep.info(&format!(
        "servers diverged at WAL location {} on timeline {}",
        divergence.lsn, divergence.tli
    ));
    let ckpt_tli = ckpt.checkpoint.this_timeline_id;
    rep.info(&format!(
        "rewinding from last common checkpoint at {} on timeline {}",
        ckpt.lsn, ckpt_tli
    ));
    let redo = ckpt.checkpoint.redo;
    let common = CommonCheckpoint {
        lsn: ckpt.lsn,
        redo,
        tli: ckpt_tli,
    };
    let start = recovery_start(&common, &source_control, rep);
    // 4. Every block the target changed since the common redo point: from its WAL, or (with
    // --changed-blocks=page-lsn) from page LSNs once the file lists are known.
    let tsdir =
        walscan::tablespace_version_dir(target_control.major, target_control.catalog_version_no);
    let wal_changed = match opts.changed_blocks {
        ChangedBlocks::Wal => {
            rep.step("reading WAL in target");
            // Forward through every segment to the end: the next one is read while one is
            // decoded.
            let dir = RestoringWalDir::new(&opts.target, seg_size, target_history.clone(), restore);
            let mut scan_wal = WalReader::new(
                ReadAhead::new(dir, target_end.segment(seg_size)),
                seg_size,
                Some(target_control.system_identifier),
            )
            .forward_only();
            let (changed, records) =
                walscan::scan_changed_blocks(&mut scan_wal, redo, target_end, &tsdir)?;
            crate::failpoint::hit("wal-scan");
            rep.debug(&format!(
                "read {records} WAL records from {redo} to {target_end}"
            ));
            Some(changed)
        }
        ChangedBlocks::PageLsn => None,
    };
    // 5. File map and plan.
    rep.step("reading source file list");
    let source_files: Vec<(String, FileKind)> = source
        .list_files()?
        .into_iter()
        .map(|f| (f.path, f.kind))
        .collect();
    crate::failpoint::hit("list-source");
    rep.step("reading target file list");
    let target_files: Vec<(String, FileKind)> = datadir::list(&opts.target)?
        .into_iter()
        .map(|l| (l.path, l.kind))
        .collect();
    crate::failpoint::hit("list-target");
    let scan_input = pagelsn::ScanInput {
        target: &opts.target,
        source_files: &source_files,
        target_files: &target_files,
        tablespace_dir: &tsdir,
        divergence: divergence.lsn,
        redo,
    };
    let changed = match wal_changed {
        Some(changed) => {
            if opts.verify_blocks {
                pagelsn::verify_wal_blocks(&scan_input, &changed, rep)?;
            }
            changed
        }
        None => {
            let changed = pagelsn::page_lsn_blocks(&scan_input, rep)?;
            crate::failpoint::hit("wal-scan");
            changed
        }
    };
    let window = wal_window(WindowInput {
        start: &start,
        checkpoint: ckpt.lsn,
        divergence: divergence.lsn,
        // Only WAL the scan read and checked is reused.
        reuse_target: opts.changed_blocks == ChangedBlocks::Wal,
        target_files: &target_files,
        source_history: &source_history,
        target_history: &target_history,
        seg_size,
    });
    for name in &window.required {
        let path = format!("pg_wal/{name}");
        let only_target = |files: &[(String, FileKind)]| files.iter().any(|(p, _)| *p == path);
        if only_target(&target_files) && !only_target(&source_files) {
            rep.debug(&format!(
                "Not removing file \"{path}\" because it is required for recovery"
            ));
        }
    }
    let stream_from = window.stream_from;
    let is_rel = |p: &str| relpath::is_main_fork_data_file(p);
    let policy = Policy {
        keep_config: opts.keep_config,
    };
    let (files, totals) = plan::build_files(FileMapInput {
        source: source_files,
        target: target_files,
        changed_blocks: &changed,
        is_rel_main: &is_rel,
        policy: &policy,
        wal: &window,
    })?;
    let plan = Plan {
        divergence: Some(divergence),
        wal: Some(wal_plan(
            start,
            stream_from,
            &source_history,
            seg_size,
            source_end,
        )),
        checkpoint: Some(common),
        files,
        totals,
        ..base
    };
    rep.step(&format!(
        "need to copy {} MB (total source directory size is {} MB)",
        plan.totals.bytes_to_copy / (1 << 20),
        plan.totals.source_bytes / (1 << 20)
    ));
    Ok(Prepared {
        plan,
        source,
        opts,
        target_control,
        source_history,
        conninfo,
        checked,
        resume: None,
    })
}

/// Phase 0 of a run that finds an interrupted rebuild: the journaled plan, checked against the
/// source as it is now. The source may be another server of the same cluster and is further
/// ahead; it must still have the common checkpoint record and the history up to the
/// divergence point that the plan was made for.
fn prepare_resume(
    opts: Options,
    mut given: Option<Box<dyn Source + Send>>,
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
    if pgserver::is_running(&opts.target) {
        return Err(Error::Incompatible(format!(
            "a postmaster is running on \"{}\", which is being rebuilt: stop it",
            opts.target.display()
        )));
    }
    let target_control = read_control_file(&opts.target.join(journal::CONTROL_ASIDE))?;
    let seg_size = target_control.xlog_seg_size;
    let (mut source, conninfo) = open_given(&opts, &mut given, peer, rep)?;
    let source_control =
        check_source_fits(&opts, &target_control, source.as_mut(), conninfo.as_ref())?;
    let journal_path = opts.target.join(journal::JOURNAL_FILE);
    let (Some(div), Some(ckpt)) = (&journal.plan.divergence, &journal.plan.checkpoint) else {
        return Err(Error::Journal {
            path: journal_path,
            message: "it holds no plan to resume".into(),
        });
    };
    let (source_tli, source_end) = source.wal_position()?;
    let source_history = history_of(source.as_mut(), source_tli)?;
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
    if !journal::histories_agree(&journal.source_history, &source_history, div.lsn) {
        return Err(cannot(format!(
            "its timeline history (now timeline {source_tli}) no longer agrees with the one the rebuild started from before the divergence point {}",
            div.lsn
        )));
    }
    let checked = journal.checked_record;
    let crc = source_record_crc(
        source.as_mut(),
        &source_history,
        checked.lsn,
        source_end,
        seg_size,
        target_control.system_identifier,
    )?;
    if crc != Some(checked.crc) {
        return Err(cannot(format!(
            "its WAL no longer holds the record of common history at {} that the rebuild was checked against",
            checked.lsn
        )));
    }
    rep.info(&format!(
        "servers diverged at WAL location {} on timeline {}",
        div.lsn, div.tli
    ));
    rep.info(&format!(
        "rewinding from last common checkpoint at {} on timeline {}",
        ckpt.lsn, ckpt.tli
    ));
    let mut plan = journal.plan.clone();
    if let (false, Some(wal)) = (journal.files_done, plan.wal.as_mut()) {
        // This run copies every file again, so the source's files are at least as new as its
        // redo point now; the earlier run's start stays in force for what replay must cover.
        let now = recovery_start(ckpt, &source_control, rep);
        if now.redo < wal.recovery_start.redo {
            // Streamed from the new start on: the target's copies of the WAL between it and
            // the divergence point were not checked by this plan's scan.
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
    Ok(Prepared {
        plan,
        source,
        opts,
        target_control,
        source_history,
        conninfo,
        checked: journal.checked_record,
        resume: Some(Box::new(journal)),
    })
}

/// Phase 2's checks, for a new rebuild and for a resumed one: the source's control file against
/// the target's, the source's settings, and `-R`'s need for a server. Returns the source's
/// control file.
fn check_source_fits(
    opts: &Options,
    target_control: &ControlFile,
    source: &mut dyn Source,
    conninfo: Option<&ConnInfo>,
) -> Result<ControlFile> {
    let source_control = crate::control::ControlFile::decode(
        &source.fetch_file("global/pg_control")?,
    )
    .map_err(|kind| Error::Control {
        path: format!("{} global/pg_control", source.describe()).into(),
        kind,
    })?;
    check_compatible(opts, target_control, &source_control, source)?;
    if opts.write_recovery_conf && conninfo.is_none() {
        return Err(Error::Usage(
            "--write-recovery-conf requires --source-server".into(),
        ));
    }
    Ok(source_control)
}

/// Where recovery of the rebuilt target starts ([`RecoveryStart::earlier_of`]), from the
/// source's control file as read before any file is copied.
fn recovery_start(
    common: &CommonCheckpoint,
    source_control: &ControlFile,
    rep: &mut dyn Reporter,
) -> RecoveryStart {
    let c = &source_control.checkpoint_copy;
    let start = RecoveryStart::earlier_of(
        common,
        (source_control.checkpoint, c.redo, c.this_timeline_id),
    );
    if start.from == RecoveryStartFrom::SourceRestartpoint {
        rep.info(&format!(
            "the source's last restartpoint at {} (redo {}) is older than the last common checkpoint: recovery starts from it",
            start.checkpoint, start.redo
        ));
    }
    start
}

/// The WAL for a recovery that starts at `start`, streamed from `stream_from` (the segments
/// before it, from the start's on, are the target's own).
fn wal_plan(
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

fn inspect_target(opts: &Options, rep: &mut dyn Reporter) -> Result<ControlFile> {
    if pgserver::is_running(&opts.target) {
        return Err(Error::Incompatible(format!(
            "target server must be shut down cleanly (a postmaster is running on \"{}\")",
            opts.target.display()
        )));
    }
    let cf = read_control_file(&opts.target)?;
    if matches!(cf.state, DbState::ShutDown | DbState::ShutDownInRecovery) {
        return Ok(cf);
    }
    if !opts.ensure_shutdown {
        return Err(Error::Incompatible(format!(
            "target server must be shut down cleanly (state \"{}\")",
            cf.state.as_str()
        )));
    }
    if opts.dry_run {
        return Err(Error::Incompatible(format!(
            "target server must be shut down cleanly (state \"{}\"); a dry run does not run crash recovery, which writes to the target",
            cf.state.as_str()
        )));
    }
    let postgres = pgserver::find_postgres(opts.postgres.as_deref(), cf.major.number())?;
    rep.info(&format!(
        "executing \"{}\" for target server to complete crash recovery",
        postgres.display()
    ));
    pgserver::crash_recovery(&postgres, &opts.target, opts.config_file.as_deref())?;
    let cf = read_control_file(&opts.target)?;
    if !matches!(cf.state, DbState::ShutDown | DbState::ShutDownInRecovery) {
        return Err(Error::Incompatible(
            "target server must be shut down cleanly".into(),
        ));
    }
    Ok(cf)
}

/// The caller's source when one was given, else the one `opts.source` names; `peer` is set
/// to its description.
fn open_given(
    opts: &Options,
    given: &mut Option<Box<dyn Source + Send>>,
    peer: &mut Option<String>,
    rep: &mut dyn Reporter,
) -> Result<(Box<dyn Source + Send>, Option<ConnInfo>)> {
    let opened = match given.take() {
        Some(source) => (source, None),
        None => open_source(opts, rep)?,
    };
    *peer = Some(opened.0.describe());
    Ok(opened)
}

fn open_source(
    opts: &Options,
    rep: &mut dyn Reporter,
) -> Result<(Box<dyn Source + Send>, Option<ConnInfo>)> {
    let connstr = match &opts.source {
        SourceSpec::Local(dir) => {
            let mut local = LocalSource::new(dir);
            local.set_jobs(opts.jobs);
            return Ok((Box::new(local), None));
        }
        SourceSpec::Server(s) => s.clone(),
        SourceSpec::PrimaryConninfo => {
            let settings =
                pgconf::Settings::read_target(&opts.target, opts.config_file.as_deref())?;
            match settings.get("primary_conninfo").filter(|s| !s.trim().is_empty()) {
                Some(s) => s.to_string(),
                None => {
                    return Err(Error::Usage(format!(
                        "no source given and \"{}\" has no primary_conninfo: use --source-server CONNSTR or --source-pgdata DIRECTORY",
                        opts.target.display()
                    )))
                }
            }
        }
    };
    let info = ConnInfo::resolve(&connstr, &opts.env).map_err(|e| Error::Usage(e.to_string()))?;
    let mut server = ServerSource::connect(info.clone(), opts.env.clone(), opts.client)?;
    server.set_jobs(opts.jobs);
    rep.step("connected to server");
    Ok((Box::new(server), Some(info)))
}

fn check_compatible(
    opts: &Options,
    target: &ControlFile,
    source: &ControlFile,
    src: &mut dyn Source,
) -> Result<()> {
    // The version first: clusters of two majors do not share a system identifier (even
    // pg_upgrade's new cluster has initdb's own), and "PostgreSQL 16 vs 15" says more than two
    // identifiers would.
    if target.pg_control_version != source.pg_control_version
        || target.catalog_version_no != source.catalog_version_no
    {
        return Err(Error::Incompatible(format!(
            "clusters are not compatible: source is PostgreSQL {} (catalog version {}), target is PostgreSQL {} (catalog version {})",
            source.major, source.catalog_version_no, target.major, target.catalog_version_no
        )));
    }
    if target.system_identifier != source.system_identifier {
        return Err(Error::Incompatible(format!(
            "source and target clusters are from different systems (system identifiers {} and {})",
            source.system_identifier, target.system_identifier
        )));
    }
    if target.data_checksum_version == 0 && !target.wal_log_hints {
        return Err(Error::Incompatible(
            "target server needs to use either data checksums or \"wal_log_hints = on\"".into(),
        ));
    }
    if let SourceSpec::Local(dir) = &opts.source {
        if same_dir(dir, &opts.target) {
            return Err(Error::Usage(format!(
                "source and target data directory are the same (\"{}\")",
                opts.target.display()
            )));
        }
        if !matches!(
            source.state,
            DbState::ShutDown | DbState::ShutDownInRecovery
        ) || pgserver::is_running(dir)
        {
            return Err(Error::Incompatible(
                "source data directory must be shut down cleanly".into(),
            ));
        }
        if !source.checkpoint_copy.full_page_writes {
            return Err(Error::Incompatible(
                "full_page_writes must be enabled in the source server".into(),
            ));
        }
        return Ok(());
    }
    // A live server: settings and identity over SQL.
    let fpw = src.setting("full_page_writes")?;
    if fpw.as_deref() != Some("on") {
        return Err(Error::Incompatible(
            "full_page_writes must be enabled in the source server".into(),
        ));
    }
    if let Some(dir) = src.setting("data_directory")? {
        if same_dir(Path::new(&dir), &opts.target) {
            return Err(Error::Usage("source and target cluster are the same (the source server runs on the target data directory)".into()));
        }
    }
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn history_of(source: &mut dyn Source, tli: TimeLineId) -> Result<Vec<TimeLineHistoryEntry>> {
    let text = source.timeline_history(tli)?.unwrap_or_default();
    let name = format!("{} {}", source.describe(), timeline::history_file_name(tli));
    let text = String::from_utf8(text).map_err(|_| Error::History {
        path: name.clone().into(),
        kind: timeline::HistoryError::Syntax { line: 1 },
    })?;
    parse_history(&text, tli).map_err(|kind| Error::History {
        path: name.into(),
        kind,
    })
}

fn history_reached(
    history: &[TimeLineHistoryEntry],
    end: Lsn,
    path: impl FnOnce() -> PathBuf,
) -> Result<()> {
    timeline::check_reached(history, end).map_err(|kind| Error::History { path: path(), kind })
}

fn target_history(target: &Path, tli: TimeLineId) -> Result<Vec<TimeLineHistoryEntry>> {
    if tli.0 <= 1 {
        return parse_history("", tli).map_err(|kind| Error::History {
            path: target.into(),
            kind,
        });
    }
    timeline::read_history_file(
        &target.join("pg_wal").join(timeline::history_file_name(tli)),
        tli,
    )
}

fn restore_command(opts: &Options) -> Result<Option<String>> {
    if !opts.restore_target_wal {
        return Ok(None);
    }
    let settings = pgconf::Settings::read_target(&opts.target, opts.config_file.as_deref())?;
    match settings.get("restore_command").filter(|s| !s.is_empty()) {
        Some(c) => Ok(Some(c.to_string())),
        None => Err(Error::Usage(
            "\"restore_command\" is not set in the target cluster".into(),
        )),
    }
}

/// The target's end of WAL: the end of its shutdown checkpoint record, or its minimum recovery
/// point when it was a standby that had replayed further.
fn target_end_of_wal<S: crate::xlog::SegmentSource>(
    cf: &ControlFile,
    wal: &mut WalReader<S>,
) -> Result<Lsn> {
    let ckpt = walscan::checkpoint_at(wal, cf.checkpoint)?;
    Ok(ckpt.end.max(cf.min_recovery_point))
}

/// What phase 3 found: where the two sides diverged, their last common checkpoint, and the
/// record of common history that was compared with the source.
type CommonPoint = (Divergence, FoundCheckpoint, CheckedRecord);

/// The checkpoint record itself as the record compared with the source.
fn checked_checkpoint(ckpt: &FoundCheckpoint) -> CheckedRecord {
    CheckedRecord {
        lsn: ckpt.lsn,
        crc: ckpt.crc,
    }
}

struct Histories<'a> {
    source: &'a [TimeLineHistoryEntry],
    target: &'a [TimeLineHistoryEntry],
}

/// Phase 3: `None` when no rewind is required, else the divergence and the last common
/// checkpoint (cross-checked against the source's WAL).
fn find_common_point<S: crate::xlog::SegmentSource>(
    target_wal: &mut WalReader<S>,
    source: &mut dyn Source,
    h: &Histories<'_>,
    tc: &ControlFile,
    ends: (Lsn, Lsn),
    rep: &mut dyn Reporter,
) -> Result<Option<CommonPoint>> {
    let (target_end, source_end) = ends;
    let seg_size = tc.xlog_seg_size;
    let source_tli = h.source.last().map(|e| e.tli).unwrap_or(TimeLineId(1));
    let target_tli = h.target.last().map(|e| e.tli).unwrap_or(TimeLineId(1));
    if let Some((lsn, tli)) = find_divergence(h.source, h.target) {
        if target_end <= lsn {
            return Ok(None);
        }
        let at_divergence = walscan::record_at_divergence(target_wal, lsn, seg_size);
        let from = at_divergence.unwrap_or(tc.checkpoint);
        let ckpt = walscan::last_checkpoint_before(target_wal, from, lsn)?;
        let crc_at = |source: &mut dyn Source, at: Lsn| {
            source_record_crc(
                source,
                h.source,
                at,
                source_end,
                seg_size,
                tc.system_identifier,
            )
        };
        let differs = |what: &str, at: Lsn| {
            Error::Incompatible(format!(
                "the {what} at {at} differs between source and target although their timeline histories say it is common history"
            ))
        };
        let mut checked = CheckedRecord {
            lsn: ckpt.lsn,
            crc: ckpt.crc,
        };
        match crc_at(source, ckpt.lsn) {
            Ok(crc) if crc == Some(ckpt.crc) => {}
            Ok(_) => return Err(differs("checkpoint record", ckpt.lsn)),
            // The source recycled that WAL (the target's copy of it is what recovery will
            // read): the histories are checked at the last common record instead, whose WAL
            // the source must have anyway, as its stream starts in that record's segment or
            // the next.
            Err(removed @ Error::WalRemoved { .. }) => {
                let Some(at) = at_divergence else {
                    return Err(removed);
                };
                let last = target_wal.read_record_at(at)?.prev();
                let last_crc = target_wal.read_record_at(last)?.crc();
                rep.info(&format!(
                    "the source no longer has the WAL of the last common checkpoint record at {} ({removed}); comparing the last common record at {last} instead",
                    ckpt.lsn
                ));
                if crc_at(source, last)? != Some(last_crc) {
                    return Err(differs("record", last));
                }
                checked = CheckedRecord {
                    lsn: last,
                    crc: last_crc,
                };
            }
            Err(e) => return Err(e),
        }
        let method = "timeline-history".to_string();
        return Ok(Some((
            Divergence {
                lsn,
                tli,
                source_tli,
                target_tli,
                method,
            },
            ckpt,
            checked,
        )));
    }
    if h.source.first() != h.target.first() || source_tli != target_tli {
        return Err(Error::Incompatible(
            "could not find common ancestor of the source and target cluster's timelines".into(),
        ));
    }
    same_timeline(
        target_wal, source, h.source, tc, target_end, source_end, seg_size,
    )
}

/// Phase 3 for `--changed-blocks=page-lsn`, which must work when the target's WAL after the
/// common checkpoint is gone. The divergence point comes from the timeline histories; the
/// common checkpoint (whose redo point recovery starts from) from the target's WAL when it can
/// still be walked back (and is cross-checked as in [`find_common_point`]), else from the
/// source's WAL, where the history before the divergence point is the same. On one timeline
/// only the target's WAL can show where the two sides part, so it is required then.
fn find_common_point_page_lsn<S: crate::xlog::SegmentSource>(
    target_wal: &mut WalReader<S>,
    source: &mut dyn Source,
    h: &Histories<'_>,
    tc: &ControlFile,
    ends: (Lsn, Lsn),
    rep: &mut dyn Reporter,
) -> Result<Option<CommonPoint>> {
    let target_end = ends.0;
    let seg_size = tc.xlog_seg_size;
    let Some((lsn, tli)) = find_divergence(h.source, h.target) else {
        return find_common_point(target_wal, source, h, tc, ends, rep)
            .map_err(|e| {
                Error::Incompatible(format!(
                    "source and target are on the same timeline, so only the target's WAL shows where they diverged, and it could not be used with --changed-blocks=page-lsn: {e}"
                ))
            });
    };
    if target_end <= lsn {
        return Ok(None);
    }
    match walscan::last_checkpoint_before(target_wal, tc.checkpoint, lsn) {
        Ok(_) => {
            return find_common_point(target_wal, source, h, tc, ends, rep)
        }
        Err(e) => rep.info(&format!(
            "could not read the target's WAL back to a checkpoint before the divergence point ({e}); looking for one in the source's WAL"
        )),
    }
    let ckpt =
        pagelsn::last_checkpoint_in_source(source, h.source, lsn, seg_size, tc.system_identifier)?;
    rep.info(&format!(
        "found the last common checkpoint at {} in the source's WAL",
        ckpt.lsn
    ));
    let checked = checked_checkpoint(&ckpt);
    Ok(Some((
        Divergence {
            lsn,
            tli,
            source_tli: h.source.last().map(|e| e.tli).unwrap_or(TimeLineId(1)),
            target_tli: h.target.last().map(|e| e.tli).unwrap_or(TimeLineId(1)),
            method: "timeline-history".to_string(),
        },
        ckpt,
        checked,
    )))
}

/// Both sides on the same timeline: the WAL decides. The target's last record is looked up on
/// the source; if the source has the identical record, the target is behind or equal and no
/// rewind is required. Otherwise the target's checkpoints are tried backwards until one the
/// source has too, and records are compared forwards from it to find where they part.
fn same_timeline<S: crate::xlog::SegmentSource>(
    target_wal: &mut WalReader<S>,
    source: &mut dyn Source,
    history: &[TimeLineHistoryEntry],
    tc: &ControlFile,
    target_end: Lsn,
    source_end: Lsn,
    seg_size: u32,
) -> Result<Option<CommonPoint>> {
    let sysid = tc.system_identifier;
    let mut last = None;
    for rec in target_wal.records_from(tc.checkpoint) {
        let rec = rec?;
        if rec.lsn >= target_end {
            break;
        }
        last = Some((rec.lsn, rec.crc()));
    }
    let (last_lsn, last_crc) = last
        .ok_or_else(|| Error::Usage(format!("could not read WAL record at {}", tc.checkpoint)))?;
    if last_lsn < source_end
        && source_record_crc(source, history, last_lsn, source_end, seg_size, sysid)?
            == Some(last_crc)
    {
        return Ok(None);
    }
    let ckpt = walscan::walk_checkpoints_back(target_wal, tc.checkpoint, |c| {
        if c.lsn >= source_end {
            return Ok(None);
        }
        Ok(
            (source_record_crc(source, history, c.lsn, source_end, seg_size, sysid)?
                == Some(c.crc))
            .then(|| c.clone()),
        )
    })?;
    let lsn = first_difference(
        target_wal,
        source,
        history,
        &ckpt,
        (target_end, source_end),
        seg_size,
        sysid,
    )?;
    let tli = history.last().map(|e| e.tli).unwrap_or(TimeLineId(1));
    let method = "checkpoint-crc".to_string();
    let checked = checked_checkpoint(&ckpt);
    Ok(Some((
        Divergence {
            lsn,
            tli,
            source_tli: tli,
            target_tli: tli,
            method,
        },
        ckpt,
        checked,
    )))
}

/// The first record position after `ckpt` where the target's record differs from the
/// source's (or the source has none before its end of WAL, `ends.1`); `ends.0` is the
/// target's end of WAL.
fn first_difference<S: crate::xlog::SegmentSource>(
    target_wal: &mut WalReader<S>,
    source: &mut dyn Source,
    history: &[TimeLineHistoryEntry],
    ckpt: &FoundCheckpoint,
    ends: (Lsn, Lsn),
    seg_size: u32,
    sysid: u64,
) -> Result<Lsn> {
    let (target_end, source_end) = ends;
    let mut target_records = Vec::new();
    for rec in target_wal.records_from(ckpt.lsn) {
        let rec = rec?;
        if rec.lsn >= target_end {
            break;
        }
        target_records.push((rec.lsn, rec.crc()));
    }
    let mut stream = WalStreamReader::new(ckpt.lsn, seg_size, Some(sysid));
    let mut idx = 0usize;
    let mut diverged = None;
    let page = Lsn(ckpt.lsn.0 - ckpt.lsn.page_offset(XLOG_BLCKSZ));
    // Bounded by the source's end of WAL: a live server would otherwise keep the stream open
    // waiting for WAL that may never come.
    source.read_wal(page, source_end, history, &mut |_, data| {
        stream.feed(data);
        while let Some(rec) = stream.poll()? {
            match target_records.get(idx) {
                Some(&(lsn, crc)) if lsn == rec.lsn && crc == rec.crc() => idx += 1,
                Some(&(lsn, _)) => {
                    diverged = Some(lsn);
                    return Ok(false);
                }
                None => return Ok(false),
            }
        }
        Ok(stream.end_of_wal().is_none())
    })?;
    Ok(diverged
        .or_else(|| target_records.get(idx).map(|r| r.0))
        .unwrap_or(target_end))
}

/// The CRC of the source's record at `lsn`, or `None` when the source has no valid record there
/// that ends by `source_end` (the source's end of WAL, where every complete record ends; a
/// live server's stream would otherwise wait there for WAL that may never come).
fn source_record_crc(
    source: &mut dyn Source,
    history: &[TimeLineHistoryEntry],
    lsn: Lsn,
    source_end: Lsn,
    seg_size: u32,
    sysid: u64,
) -> Result<Option<u32>> {
    if lsn >= source_end {
        return Ok(None);
    }
    let mut stream = WalStreamReader::new(lsn, seg_size, Some(sysid));
    let mut crc = None;
    let page = Lsn(lsn.0 - lsn.page_offset(XLOG_BLCKSZ));
    source.read_wal(page, source_end, history, &mut |_, data| {
        stream.feed(data);
        match stream.poll() {
            Ok(Some(rec)) => {
                crc = (rec.lsn == lsn).then(|| rec.crc());
                Ok(false)
            }
            Ok(None) => Ok(stream.end_of_wal().is_none()),
            Err(_) => Ok(false),
        }
    })?;
    Ok(crc)
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
        let full: std::collections::HashSet<&str> = w
            .target_files
            .iter()
            .filter(|(_, k)| {
                *k == FileKind::File {
                    size: u64::from(seg_size),
                }
            })
            .filter_map(|(p, _)| p.strip_prefix("pg_wal/"))
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
        seg_size,
    }
}
