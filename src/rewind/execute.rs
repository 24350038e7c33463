//! Phase 6, carrying out the plan: tablespace locations checked, the journal made durable and
//! `pg_control` moved aside (the point of no return, [`crate::journal`]); directories and
//! symlinks, truncations and removals; then every byte range (whole files, tails, changed
//! blocks) in one batch through the source, with the source's WAL streamed alongside
//! ([`crate::transfer`]). Every step is idempotent, so that a resumed run can do it again over
//! a partly done target.

use super::prepared::Prepared;
use crate::datadir::FileKind;
use crate::error::{Error, Result};
use crate::filemap::Action;
use crate::journal::{self, HistoryEntry, Journal};
use crate::plan::{Plan, PlannedFile};
use crate::reporter::Reporter;
use crate::source::FetchRange;
use crate::target::TargetDir;
use crate::transfer::{self, Transferred};
use std::path::{Path, PathBuf};

/// Phase 6 for `prep`: returns what the transfer did. The journal it leaves says the file
/// actions are done; phase 7 removes it.
pub(super) fn run(
    prep: &mut Prepared,
    target: &mut TargetDir,
    rep: &mut dyn Reporter,
) -> Result<Transferred> {
    let plan = &prep.plan;
    let wal_start = plan.wal.as_ref().map(|w| w.start).unwrap_or_default();
    // Every tablespace location is checked before anything is written, so a refused one
    // leaves the target as it was. A resumed run accepts the locations it created itself.
    let created_before: &[String] = prep
        .resume
        .as_ref()
        .map(|j| j.tablespace_locations.as_slice())
        .unwrap_or(&[]);
    let mapping = &prep.settings.tablespace_mapping;
    let creates: Vec<(&PlannedFile, Option<String>)> = plan
        .files
        .iter()
        .filter(|f| f.action == Action::Create)
        .map(|f| match &f.source {
            Some(FileKind::Symlink { target: link }) => {
                tablespace_location(mapping, &f.path, link, created_before)
                    .map(|loc| (f, Some(loc)))
            }
            _ => Ok((f, None)),
        })
        .collect::<Result<_>>()?;
    let ranges: Vec<FetchRange> = plan.files.iter().flat_map(|f| f.ranges()).collect();
    let deferred = deferred_of(plan, prep.target.system_identifier());
    let files_done = prep.resume.as_ref().is_some_and(|j| j.files_done);
    if !files_done {
        prep.source.check_ranges(&ranges)?;
        let deferred: Vec<FetchRange> = plan
            .files
            .iter()
            .flat_map(|f| f.deferred_ranges())
            .collect();
        prep.source.check_ranges(&deferred)?;
    }
    let locations = creates.iter().filter_map(|(_, l)| l.clone()).collect();
    let resumed = prep.resume.take();
    let mut journal = point_of_no_return(resumed, prep, locations, target)?;
    let history = &prep.source_history;
    let pace = transfer::Pace {
        seg_size: prep.target.seg_size(),
        wal_dir: prep.target.flavor().table().wal_dir,
        max_rate: prep.settings.max_rate,
    };
    if files_done {
        rep.step("file changes were completed by an earlier run");
        // Only the WAL, to where the source is now.
        let t = transfer::copy_and_stream(
            prep.source.as_mut(),
            target,
            (&[], transfer::Deferred::default()),
            wal_start,
            history,
            pace,
            rep,
        )?;
        return Ok(t);
    }
    let emptying = prepare_files(&prep.plan, creates, target)?;
    // Every byte range in one batch through the source, the WAL alongside.
    let t = transfer::copy_and_stream(
        prep.source.as_mut(),
        target,
        (&ranges, deferred),
        wal_start,
        history,
        pace,
        rep,
    );
    let t = after_copy(t, emptying, target)?;
    // Durable before the journal says so: a resumed run skips them.
    target.sync()?;
    journal.files_done = true;
    journal::write(target, &journal)?;
    Ok(t)
}

/// `copied` once the thread emptying the trash is done, whether the copy worked or not:
/// nothing of this run may go on changing the target after it returns. The copy's error, if
/// any, is the one reported. After a copy that worked, the files copied whole get exactly the
/// bytes delivered (`TargetDir::finish_whole_files`).
fn after_copy(
    copied: Result<Transferred>,
    emptying: Option<std::thread::JoinHandle<Result<()>>>,
    target: &mut TargetDir,
) -> Result<Transferred> {
    let emptied = emptying.map(|thread| {
        thread
            .join()
            .map_err(|_| Error::Usage(format!("removing \"{TRASH}\" failed")))?
    });
    let t = copied?;
    emptied.transpose()?;
    target.finish_whole_files()?;
    Ok(t)
}

/// The plan's deferred blocks, for the transfer to decide.
fn deferred_of(plan: &Plan, sysid: u64) -> transfer::Deferred {
    transfer::Deferred {
        blocks: plan
            .files
            .iter()
            .filter(|f| !f.deferred_blocks.is_empty())
            .map(|f| (f.path.clone(), f.deferred_blocks.clone()))
            .collect(),
        after: plan.divergence.as_ref().map(|d| d.lsn).unwrap_or_default(),
        sysid,
    }
}

/// The journal of this rebuild (a resumed one's, run count and plan brought up to date), made
/// durable, and `pg_control` set aside: from here on the target refuses to start until the
/// rebuild finishes.
fn point_of_no_return(
    resumed: Option<Box<Journal>>,
    prep: &Prepared,
    tablespace_locations: Vec<String>,
    target: &mut TargetDir,
) -> Result<Journal> {
    if let Some(mut j) = resumed {
        j.runs += 1;
        // A resumed run may start recovery earlier than the run before (see resume::prepare);
        // the journal keeps what replay must cover.
        j.plan = prep.plan.clone();
        journal::write(target, &j)?;
        return Ok(*j);
    }
    let j = Journal {
        format: journal::FORMAT,
        gsbuild: env!("CARGO_PKG_VERSION").into(),
        started: chrono::Local::now()
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        runs: 1,
        source: prep.plan.source.clone(),
        system_identifier: prep.target.system_identifier(),
        seg_size: prep.target.seg_size(),
        original_control_crc: prep.target.control_crc(),
        checked_record: prep.checked,
        source_history: HistoryEntry::from_history(&prep.source_history),
        tablespace_locations,
        files_done: false,
        plan: prep.plan.clone(),
    };
    // The product's own marker of a build in progress, first of all (openGauss's server
    // refuses to start while it exists, and its tools read it).
    if let Some((started, _)) = prep.target.flavor().table().build_marker {
        target.replace_durably(started, b"")?;
    }
    journal::begin(target, &j)?;
    Ok(j)
}

/// Directories and symlinks, truncations and removals (deepest paths first, from the plan's
/// order), and whole files emptied, before the copy. Removals come before it because the WAL
/// stream may write a segment file of the same name as one the plan removes.
fn prepare_files(
    plan: &Plan,
    creates: Vec<(&PlannedFile, Option<String>)>,
    target: &mut TargetDir,
) -> Result<Option<std::thread::JoinHandle<Result<()>>>> {
    for (f, location) in creates {
        match location {
            Some(loc) => {
                target.create_location(Path::new(&loc))?;
                target.create_symlink(&f.path, &loc)?
            }
            None => target.create_dir(&f.path)?,
        }
        crate::failpoint::hit("create");
    }
    let mut trash = Trash::new(target);
    for f in &plan.files {
        match (f.action, &f.target) {
            (Action::Truncate, _) => {
                target.truncate(&f.path, f.source.as_ref().map(FileKind::size).unwrap_or(0))?
            }
            (Action::Remove, Some(FileKind::Dir)) => target.remove_dir(&f.path)?,
            // Unlinking is slow where the file system discards freed blocks (100 WAL segments
            // of 16 MiB: 0.4 s on the benchmark machine's ext4): moved aside now, removed
            // while the copy runs.
            (Action::Remove, Some(FileKind::File { .. })) => trash.put(&f.path, target)?,
            (Action::Remove, _) => target.remove_file(&f.path, true)?,
            _ => continue,
        }
        crate::failpoint::hit("truncate-remove");
    }
    for f in plan.files.iter().filter(|f| f.action == Action::Copy) {
        // A full build replaces the target's files by new ones, the old ones removed alongside
        // the copy. Otherwise one the target has at most as long is overwritten in place; any
        // other is emptied (or created) as its first chunk opens it (`TargetDir`'s `whole`).
        let src = f.source.as_ref().map(FileKind::size).unwrap_or(0);
        match &f.target {
            Some(_) if plan.full && f.bytes > 0 => {
                trash.put(&f.path, target)?;
                target.empty_before_writing(&f.path);
            }
            Some(FileKind::File { size }) if !plan.full && src > 0 && *size <= src => {
                target.overwrite_in_place(&f.path)
            }
            _ => target.empty_before_writing(&f.path),
        }
    }
    Ok(trash.empty_alongside())
}

/// Where the target's files that go are moved (`gsbuild-trash`, in the data directory): those
/// the plan removes, and those a full build replaces. A rename each, and one thread removes
/// them all while the copy runs; the copy waits for it before the sync. Left by a crash (only
/// after the point of no return), it is emptied by the next run, which plans nothing in it.
struct Trash {
    dir: PathBuf,
    /// It exists: made by this run, or left by an interrupted one.
    exists: bool,
    dry_run: bool,
    moved: u64,
}

/// The directory of [`Trash`], relative to the data directory.
pub(super) const TRASH: &str = crate::filemap::TRASH_DIR;

impl Trash {
    fn new(target: &TargetDir) -> Trash {
        let dir = target.root().join(TRASH);
        Trash {
            exists: !target.dry_run() && dir.is_dir(),
            dir,
            dry_run: target.dry_run(),
            moved: 0,
        }
    }

    /// Moves `rel` into the trash, or removes it when it cannot be moved (another file system).
    fn put(&mut self, rel: &str, target: &mut TargetDir) -> Result<()> {
        if self.dry_run {
            return target.remove_file(rel, true);
        }
        if !self.exists {
            target.create_dir(TRASH)?;
            self.exists = true;
        }
        self.moved += 1;
        if !target.move_aside(rel, &format!("{TRASH}/{}", self.moved))? {
            target.remove_file(rel, true)?;
        }
        Ok(())
    }

    /// Starts removing the trash on a thread of its own; its handle, to wait for.
    fn empty_alongside(self) -> Option<std::thread::JoinHandle<Result<()>>> {
        if !self.exists {
            return None;
        }
        let dir = self.dir;
        Some(std::thread::spawn(move || {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::io("remove directory", &dir, e))
                }
                _ => Ok(()),
            }
        }))
    }
}

/// Where a tablespace the target lacks is created: the source's location, or its mapping. The
/// location must not hold anything yet — on the same machine it may be the source's own
/// tablespace, and writing the target's files into it would destroy the source.
fn tablespace_location(
    mapping: &[(PathBuf, PathBuf)],
    path: &str,
    link: &str,
    created_before: &[String],
) -> Result<String> {
    let mapped = mapping
        .iter()
        .find(|(from, _)| Path::new(link) == from.as_path())
        .map(|(_, to)| to.display().to_string())
        .unwrap_or_else(|| link.to_string());
    if created_before.contains(&mapped) {
        return Ok(mapped);
    }
    let in_use = std::fs::read_dir(&mapped)
        .map(|mut rd| rd.next().is_some())
        .unwrap_or(false);
    if in_use {
        return Err(Error::Usage(format!(
            "directory \"{mapped}\" for tablespace \"{path}\" exists and is not empty; give it another location with --tablespace-mapping={link}=NEWDIR"
        )));
    }
    Ok(mapped)
}
