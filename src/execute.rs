//! Phases 6–7: carrying out a [`Plan`]. Directories and symlinks first, then truncations and
//! removals, then every byte range (whole files, tails, changed blocks) in one batch through
//! the source with the source's WAL from the common redo point streamed alongside
//! ([`crate::transfer`]); then `backup_label`, optional standby configuration, a sync of
//! everything touched, and `pg_control` last.

use crate::control::{ControlFile, DbState};
use crate::error::{Error, Result};
use crate::filemap::{Action, FileKind};
use crate::journal::{self, HistoryEntry, Journal};
use crate::lsn::{Lsn, TimeLineId};
use crate::plan::{Plan, RecoveryStart};
use crate::rewind::{Prepared, Reporter};
use crate::source::{FetchRange, Source};
use crate::target::TargetDir;
use crate::timeline::TimeLineHistoryEntry;
use crate::transfer::{self, Transferred};

/// What a finished rebuild did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// Bytes written to the target (files, blocks, WAL, labels).
    pub bytes_written: u64,
    /// WAL bytes streamed from the source.
    pub wal_bytes: u64,
    /// Bytes fetched from the source: files and blocks, and WAL.
    pub bytes_fetched: u64,
    /// Bytes of files and blocks fetched from the source (WAL not included).
    pub fetched_data_bytes: u64,
    /// Bytes of WAL fetched from the source.
    pub fetched_wal_bytes: u64,
    /// WAL position recovery must reach before the target is consistent.
    pub min_recovery_point: Lsn,
    /// Its timeline.
    pub min_recovery_tli: TimeLineId,
    /// Files and directories fsynced.
    pub synced: usize,
}

/// Carries out `prep.plan` on the target. Does nothing for a plan that needs no rewind.
///
/// Crash safety (see [`crate::journal`]): nothing is written before the journal is durable and
/// `pg_control` is moved aside; `pg_control` is written last, after everything else is
/// durable. A run that dies in between leaves a target that refuses to start and that the next
/// run resumes.
pub fn execute(prep: Prepared, rep: &mut dyn Reporter) -> Result<Outcome> {
    let peer = prep.source.describe();
    execute_plan(prep, rep).map_err(|e| e.at_source(&peer))
}

fn execute_plan(prep: Prepared, rep: &mut dyn Reporter) -> Result<Outcome> {
    let Prepared {
        plan,
        mut source,
        opts,
        target_control,
        source_history,
        conninfo,
        checked,
        resume,
    } = prep;
    let (Some(_), Some(wal)) = (&plan.checkpoint, &plan.wal) else {
        return Ok(Outcome {
            bytes_written: 0,
            wal_bytes: 0,
            bytes_fetched: 0,
            fetched_data_bytes: 0,
            fetched_wal_bytes: 0,
            min_recovery_point: Lsn::INVALID,
            min_recovery_tli: TimeLineId(0),
            synced: 0,
        });
    };
    let mut target = TargetDir::new(&opts.target, opts.dry_run, opts.sync)?;
    // Every tablespace location is checked before anything is written, so a refused one
    // leaves the target as it was. A resumed run accepts the locations it created itself.
    let created_before: &[String] = resume
        .as_ref()
        .map(|j| j.tablespace_locations.as_slice())
        .unwrap_or(&[]);
    let creates: Vec<_> = plan
        .files
        .iter()
        .filter(|f| f.action == Action::Create)
        .map(|f| match &f.source {
            Some(FileKind::Symlink { target: link }) => {
                tablespace_location(&opts, &f.path, link, created_before).map(|loc| (f, Some(loc)))
            }
            _ => Ok((f, None)),
        })
        .collect::<Result<_>>()?;
    let ranges: Vec<FetchRange> = plan.files.iter().flat_map(|f| f.ranges()).collect();
    if !resume.as_ref().is_some_and(|j| j.files_done) {
        source.check_ranges(&ranges)?;
    }
    // The point of no return: the journal, then pg_control aside.
    let mut journal = match resume {
        Some(mut j) => {
            j.runs += 1;
            // A resumed run may start recovery earlier than the run before (see
            // rewind::prepare_resume); the journal keeps what replay must cover.
            j.plan = plan.clone();
            if !opts.dry_run {
                journal::write(&opts.target, &j)?;
            }
            *j
        }
        None => {
            let j = Journal {
                format: journal::FORMAT,
                gsbuild: env!("CARGO_PKG_VERSION").into(),
                started: chrono::Local::now()
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string(),
                runs: 1,
                source: plan.source.clone(),
                system_identifier: target_control.system_identifier,
                seg_size: target_control.xlog_seg_size,
                original_control_crc: crc32c::crc32c(
                    &std::fs::read(opts.target.join(journal::CONTROL_FILE)).map_err(|e| {
                        Error::io("read file", opts.target.join(journal::CONTROL_FILE), e)
                    })?,
                ),
                checked_record: checked,
                source_history: HistoryEntry::from_history(&source_history),
                tablespace_locations: creates.iter().filter_map(|(_, l)| l.clone()).collect(),
                files_done: false,
                plan: plan.clone(),
            };
            if !opts.dry_run {
                journal::begin(&opts.target, &j)?;
            }
            j
        }
    };
    let seg_size = target_control.xlog_seg_size;
    let wal_from = WalFrom {
        start: wal.start,
        history: &source_history,
        seg_size,
    };
    let transferred = if journal.files_done {
        rep.step("file changes were completed by an earlier run");
        // 6d. Only the WAL, to where the source is now.
        wal_from.copy(source.as_mut(), &mut target, &[], rep)?
    } else {
        prepare_files(&plan, &opts, creates, &mut target)?;
        // 6c. Every byte range in one batch through the source, the WAL alongside.
        let t = wal_from.copy(source.as_mut(), &mut target, &ranges, rep)?;
        // Durable before the journal says so: a resumed run skips them.
        target.sync()?;
        journal.files_done = true;
        if !opts.dry_run {
            journal::write(&opts.target, &journal)?;
        }
        t
    };
    let (end, end_tli) = (transferred.end, transferred.end_tli);
    // 7. Finish: backup_label, standby configuration, sync, then pg_control.
    rep.step("creating backup label and updating control file");
    target.write_file_atomic(
        "backup_label",
        backup_label(&wal.recovery_start, seg_size).as_bytes(),
    )?;
    crate::failpoint::hit("backup-label");
    if opts.write_recovery_conf {
        write_recovery_conf(conninfo.as_ref(), &opts.target, &mut target)?;
    }
    let source_control =
        ControlFile::decode(&source.fetch_file("global/pg_control")?).map_err(|kind| {
            Error::Control {
                path: "source global/pg_control".into(),
                kind,
            }
        })?;
    let new_control = new_control_file(source_control, end, end_tli);
    if opts.sync != crate::target::SyncMethod::None {
        rep.step("syncing target data directory");
    }
    target.sync()?;
    crate::failpoint::hit("synced");
    let synced = target.synced_count();
    if !opts.dry_run {
        journal::finish(&opts.target, &new_control.encode())?;
    }
    rep.info("Done!");
    Ok(Outcome {
        bytes_written: target.bytes_written(),
        wal_bytes: transferred.wal_bytes,
        bytes_fetched: transferred.data_bytes + transferred.wal_bytes,
        fetched_data_bytes: transferred.data_bytes,
        fetched_wal_bytes: transferred.wal_bytes,
        min_recovery_point: end,
        min_recovery_tli: end_tli,
        synced,
    })
}

/// 6a–6b: directories and symlinks, truncations and removals (deepest paths first, from the
/// plan's order), and whole files emptied, before the copy. Removals come before it because
/// the WAL stream may write a segment file of the same name as one the plan removes. Every
/// step is idempotent, so that a resumed run can do it again over a partly done target.
fn prepare_files(
    plan: &Plan,
    opts: &crate::rewind::Options,
    creates: Vec<(&crate::plan::PlannedFile, Option<String>)>,
    target: &mut TargetDir,
) -> Result<()> {
    for (f, location) in creates {
        match location {
            Some(loc) => {
                create_tablespace_dir(opts, &loc)?;
                target.create_symlink(&f.path, &loc)?
            }
            None => target.create_dir(&f.path)?,
        }
        crate::failpoint::hit("create");
    }
    for f in &plan.files {
        match (f.action, &f.target) {
            (Action::Truncate, _) => {
                target.truncate(&f.path, f.source.as_ref().map(FileKind::size).unwrap_or(0))?
            }
            (Action::Remove, Some(FileKind::Dir)) => target.remove_dir(&f.path)?,
            (Action::Remove, _) => target.remove_file(&f.path, true)?,
            _ => continue,
        }
        crate::failpoint::hit("truncate-remove");
    }
    for f in plan.files.iter().filter(|f| f.action == Action::Copy) {
        target.truncate(&f.path, 0)?;
    }
    Ok(())
}

/// Where the source's WAL is copied from.
struct WalFrom<'a> {
    /// First byte of the segment holding the common redo point.
    start: Lsn,
    /// The source's history when the plan was made.
    history: &'a [TimeLineHistoryEntry],
    seg_size: u32,
}

impl WalFrom<'_> {
    /// `ranges`, and the WAL from here to where the source is once they are copied.
    fn copy(
        &self,
        source: &mut dyn Source,
        target: &mut TargetDir,
        ranges: &[FetchRange],
        rep: &mut dyn Reporter,
    ) -> Result<Transferred> {
        transfer::copy_and_stream(
            source,
            target,
            ranges,
            self.start,
            self.history,
            self.seg_size,
            rep,
        )
    }
}

/// Where a tablespace the target lacks is created: the source's location, or its mapping. The
/// location must not hold anything yet — on the same machine it may be the source's own
/// tablespace, and writing the target's files into it would destroy the source.
fn tablespace_location(
    opts: &crate::rewind::Options,
    path: &str,
    link: &str,
    created_before: &[String],
) -> Result<String> {
    let mapped = opts
        .tablespace_mapping
        .iter()
        .find(|(from, _)| std::path::Path::new(link) == from.as_path())
        .map(|(_, to)| to.display().to_string())
        .unwrap_or_else(|| link.to_string());
    if created_before.contains(&mapped) {
        return Ok(mapped);
    }
    let dir = std::path::Path::new(&mapped);
    let in_use = std::fs::read_dir(dir)
        .map(|mut rd| rd.next().is_some())
        .unwrap_or(false);
    if in_use {
        return Err(Error::Usage(format!(
            "directory \"{mapped}\" for tablespace \"{path}\" exists and is not empty; give it another location with --tablespace-mapping={link}=NEWDIR"
        )));
    }
    Ok(mapped)
}

/// Creates a tablespace location checked by [`tablespace_location`], owned by the target's
/// owner.
fn create_tablespace_dir(opts: &crate::rewind::Options, location: &str) -> Result<()> {
    let dir = std::path::Path::new(location);
    if !opts.dry_run {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        crate::target::CreateModes::of(&opts.target)?.apply_to_dir(dir)?;
        crate::target::give_to_owner_of(dir, &opts.target)?;
    }
    Ok(())
}

fn backup_label(start: &RecoveryStart, seg_size: u32) -> String {
    let file = start.redo.segment(seg_size).file_name(start.tli, seg_size);
    let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S %Z");
    format!(
        "START WAL LOCATION: {} (file {file})\nCHECKPOINT LOCATION: {}\nBACKUP METHOD: pg_rewind\nBACKUP FROM: standby\nSTART TIME: {now}\n",
        start.redo, start.checkpoint
    )
}

/// The source's control file, made to start archive recovery that must reach `end` on `tli`.
fn new_control_file(mut cf: ControlFile, end: Lsn, tli: TimeLineId) -> ControlFile {
    cf.state = DbState::InArchiveRecovery;
    cf.min_recovery_point = end;
    cf.min_recovery_point_tli = tli;
    cf
}

/// `-R`: `standby.signal`, and `primary_conninfo` appended to `postgresql.auto.conf`.
fn write_recovery_conf(
    conninfo: Option<&crate::conninfo::ConnInfo>,
    datadir: &std::path::Path,
    target: &mut TargetDir,
) -> Result<()> {
    let Some(info) = conninfo else {
        return Err(Error::Usage(
            "--write-recovery-conf requires --source-server".into(),
        ));
    };
    target.write_file_atomic("standby.signal", b"")?;
    let auto = datadir.join("postgresql.auto.conf");
    let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "primary_conninfo = {}\n",
        crate::pgconf::quote(&info.to_conninfo_string())
    ));
    target.write_file_atomic("postgresql.auto.conf", text.as_bytes())
}

/// Runs a whole rebuild: prepare, then execute unless it is a dry run.
pub fn run(
    opts: crate::rewind::Options,
    rep: &mut dyn Reporter,
) -> Result<(Plan, Option<Outcome>)> {
    let prep = crate::rewind::prepare(opts, rep)?;
    let plan = prep.plan.clone();
    if prep.opts.dry_run || !plan.rewind_required() {
        return Ok((plan, None));
    }
    let outcome = execute(prep, rep)?;
    Ok((plan, Some(outcome)))
}
