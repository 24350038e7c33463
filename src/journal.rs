//! The rebuild journal: what makes an interrupted rebuild cost nothing.
//!
//! Before the first write to the target, [`begin`] writes `gsbuild.journal` into the data
//! directory — the whole plan (every file's action and the target-side changed blocks, which
//! cannot be derived again once the target's WAL has been replaced), the source's identity and
//! timeline history, and the common checkpoint's CRC — and makes it durable. Then it moves
//! `global/pg_control` aside to `global/pg_control.gsbuild-orig`: from that moment PostgreSQL
//! refuses to start the directory (`could not open file "global/pg_control"`), so a half-built
//! target can never serve wrong data. [`finish`] writes the new `pg_control`, which is the only
//! step that makes the target startable again, and then removes the journal.
//!
//! A later run finds the journal ([`inspect`]) and resumes: the same plan is carried out again
//! against the source as it is now. That is safe for the same reason a single run is: every
//! block copied is at or after the common redo point, and recovery replays the source's WAL
//! from that point to where the source was after the last copy (see docs/architecture.md,
//! "Crash safety and resume").
//!
//! | files present                                  | meaning                                  |
//! |------------------------------------------------|------------------------------------------|
//! | journal, aside copy, no `pg_control`           | interrupted: resume                      |
//! | journal, `pg_control` = the original           | died before the first write: start over  |
//! | journal, `pg_control` ≠ the original           | died after the last write: finished      |
//! | journal, neither                               | damaged by hand: error                   |

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::plan::Plan;
use crate::target::TargetDir;
use crate::timeline::TimeLineHistoryEntry;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// The journal's file name in the data directory.
pub const JOURNAL_FILE: &str = "gsbuild.journal";
/// Where the target's own `pg_control` waits while a rebuild is in progress.
pub const CONTROL_ASIDE: &str = "global/pg_control.gsbuild-orig";
/// The control file.
pub const CONTROL_FILE: &str = "global/pg_control";
/// Version of the journal's layout; a journal of another version is refused. Format 2 added
/// the plan's recovery start (`wal.recovery_start`).
pub const FORMAT: u32 = 2;

/// A WAL record of common history, by position and CRC, as compared between the two sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedRecord {
    /// Where the record starts.
    pub lsn: crate::lsn::Lsn,
    /// Its `xl_crc`.
    pub crc: u32,
}

/// Everything needed to finish a rebuild that was interrupted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// The gsbuild version that started the rebuild.
    pub gsbuild: String,
    /// When the rebuild started (local time, for people).
    pub started: String,
    /// How many runs have worked on it (1 for the first).
    pub runs: u32,
    /// The source, as described to people (no password).
    pub source: String,
    /// Both clusters' system identifier.
    pub system_identifier: u64,
    /// WAL segment size.
    pub seg_size: u32,
    /// CRC-32C of the target's original `pg_control` file (all of it).
    pub original_control_crc: u32,
    /// The record of common history that was compared with the source (the last common
    /// checkpoint record, or the last common record when the source had recycled the
    /// checkpoint's WAL), which a resumed run finds again on the source.
    pub checked_record: CheckedRecord,
    /// The source's timeline history when the rebuild started.
    pub source_history: Vec<HistoryEntry>,
    /// Tablespace locations outside the data directory that this rebuild creates (a resumed
    /// run finds them non-empty and must not refuse them).
    pub tablespace_locations: Vec<String>,
    /// Whether every file action is done and durable (a resumed run then only streams WAL and
    /// finishes).
    pub files_done: bool,
    /// The plan being carried out.
    pub plan: Plan,
}

/// A timeline history entry, as kept in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Timeline.
    pub tli: u32,
    /// First position on it.
    pub begin: Lsn,
    /// Switch point to the next timeline (`None` for the current one).
    pub end: Option<Lsn>,
}

impl HistoryEntry {
    /// Journal form of a history.
    pub fn from_history(h: &[TimeLineHistoryEntry]) -> Vec<HistoryEntry> {
        h.iter()
            .map(|e| HistoryEntry {
                tli: e.tli.0,
                begin: e.begin,
                end: e.end,
            })
            .collect()
    }

    fn entry(&self) -> TimeLineHistoryEntry {
        TimeLineHistoryEntry {
            tli: crate::lsn::TimeLineId(self.tli),
            begin: self.begin,
            end: self.end,
        }
    }
}

/// What a data directory says about an earlier rebuild.
#[derive(Debug)]
pub enum State {
    /// No journal: no rebuild was interrupted here.
    Clean,
    /// A rebuild was interrupted after its first write: it must be resumed before the target
    /// can start.
    Interrupted(Box<Journal>),
    /// The journal is left over from a run that died before its first write (the target is as
    /// it was): it can be discarded.
    NotStarted(Box<Journal>),
    /// The journal is left over from a run that died after writing the new `pg_control`: the
    /// rebuild is complete.
    Finished(Box<Journal>),
}

fn journal_path(datadir: &Path) -> PathBuf {
    datadir.join(JOURNAL_FILE)
}

/// Reads the journal of `datadir` and decides what it means (see the module's table).
pub fn inspect(datadir: &Path) -> Result<State> {
    let path = journal_path(datadir);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::Clean),
        Err(e) => return Err(Error::io("read file", &path, e)),
    };
    let journal: Journal = serde_json::from_slice(&text).map_err(|e| Error::Journal {
        path: path.clone(),
        message: format!("not a gsbuild journal ({e})"),
    })?;
    if journal.format != FORMAT {
        return Err(Error::Journal {
            path,
            message: format!(
                "journal format {} is not understood by this gsbuild (format {FORMAT}); finish the rebuild with gsbuild {}",
                journal.format, journal.gsbuild
            ),
        });
    }
    let journal = Box::new(journal);
    let control = datadir.join(CONTROL_FILE);
    let aside = datadir.join(CONTROL_ASIDE);
    match (fs::read(&control), aside.exists()) {
        (Err(e), true) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(State::Interrupted(journal))
        }
        (Ok(bytes), _) => {
            if !aside.exists() && crc32c::crc32c(&bytes) == journal.original_control_crc {
                Ok(State::NotStarted(journal))
            } else {
                Ok(State::Finished(journal))
            }
        }
        (Err(e), false) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Journal {
            path,
            message: format!(
                "a rebuild is in progress but neither \"{}\" nor \"{}\" exists; the data directory cannot be resumed and must be rebuilt in full (pg_basebackup)",
                control.display(),
                aside.display()
            ),
        }),
        (Err(e), _) => Err(Error::io("read file", &control, e)),
    }
}

/// Writes the journal atomically and durably.
pub fn write(target: &mut TargetDir, journal: &Journal) -> Result<()> {
    let text = serde_json::to_vec(journal).map_err(|e| Error::Journal {
        path: journal_path(target.root()),
        message: format!("cannot encode the journal: {e}"),
    })?;
    target.replace_durably(JOURNAL_FILE, &text)
}

/// The point of no return: makes the journal durable, then moves `pg_control` aside so that
/// PostgreSQL refuses to start the target until [`finish`].
pub fn begin(target: &mut TargetDir, journal: &Journal) -> Result<()> {
    write(target, journal)?;
    crate::failpoint::hit("journal-written");
    target.rename_durably(CONTROL_FILE, CONTROL_ASIDE)?;
    crate::failpoint::hit("control-aside");
    Ok(())
}

/// The last step: the new `pg_control` (atomically), then `completed` (what the product
/// records of a completed build, e.g. openGauss's build marker renamed), then the aside copy
/// and the journal go. Everything else must already be durable.
pub fn finish(
    target: &mut TargetDir,
    new_control: &[u8],
    completed: impl FnOnce(&mut TargetDir) -> Result<()>,
) -> Result<()> {
    target.replace_durably(CONTROL_FILE, new_control)?;
    crate::failpoint::hit("control-written");
    completed(target)?;
    discard(target)
}

/// Removes the aside copy of `pg_control` and the journal (in that order, durably).
pub fn discard(target: &mut TargetDir) -> Result<()> {
    target.remove_durably(CONTROL_ASIDE)?;
    target.remove_durably(JOURNAL_FILE)
}

/// Whether the source's history now agrees with the journaled one on every position before
/// `until` (the divergence point): same timeline at each switch point before it, and the
/// timeline holding `until - 1`. A source that was rewound onto another history since the
/// interrupted run does not; resuming from it would mix two histories.
pub fn histories_agree(old: &[HistoryEntry], new: &[TimeLineHistoryEntry], until: Lsn) -> bool {
    let old: Vec<TimeLineHistoryEntry> = old.iter().map(HistoryEntry::entry).collect();
    let tli_at =
        |h: &[TimeLineHistoryEntry], lsn: Lsn| h.iter().find(|e| e.contains(lsn)).map(|e| e.tli);
    let mut points: Vec<Lsn> = old
        .iter()
        .filter_map(|e| e.end)
        .filter(|end| *end < until)
        .flat_map(|end| [Lsn(end.0.saturating_sub(1)), end])
        .collect();
    points.push(Lsn(until.0.saturating_sub(1)));
    points
        .into_iter()
        .all(|p| tli_at(&old, p).is_some() && tli_at(&old, p) == tli_at(new, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flavor::Flavor;
    use crate::lsn::TimeLineId;

    fn plan() -> Plan {
        Plan {
            source: "host=x".into(),
            target: "/d".into(),
            flavor: Flavor::Pg15,
            divergence: None,
            checkpoint: None,
            wal: None,
            files: Vec::new(),
            totals: Default::default(),
            full: false,
        }
    }

    fn journal(control: &[u8]) -> Journal {
        Journal {
            format: FORMAT,
            gsbuild: "0".into(),
            started: "now".into(),
            runs: 1,
            source: "host=x".into(),
            system_identifier: 7,
            seg_size: 1 << 24,
            original_control_crc: crc32c::crc32c(control),
            checked_record: CheckedRecord {
                lsn: crate::lsn::Lsn(0x100_0028),
                crc: 1,
            },
            source_history: Vec::new(),
            tablespace_locations: Vec::new(),
            files_done: false,
            plan: plan(),
        }
    }

    #[test]
    fn states() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        fs::create_dir(dir.join("global")).unwrap();
        fs::write(dir.join(CONTROL_FILE), b"original").unwrap();
        assert!(matches!(inspect(dir).unwrap(), State::Clean));
        let j = journal(b"original");
        let mut t = TargetDir::new(dir, false, crate::target::SyncMethod::Fsync).unwrap();
        write(&mut t, &j).unwrap();
        assert!(matches!(inspect(dir).unwrap(), State::NotStarted(_)));
        fs::remove_file(dir.join(JOURNAL_FILE)).unwrap();
        begin(&mut t, &j).unwrap();
        assert!(!dir.join(CONTROL_FILE).exists());
        match inspect(dir).unwrap() {
            State::Interrupted(got) => assert_eq!(*got, j),
            other => panic!("{other:?}"),
        }
        // Died between the new pg_control and the removal of the aside copy.
        fs::write(dir.join(CONTROL_FILE), b"new").unwrap();
        assert!(matches!(inspect(dir).unwrap(), State::Finished(_)));
        // … or between that and the removal of the journal.
        fs::remove_file(dir.join(CONTROL_ASIDE)).unwrap();
        assert!(matches!(inspect(dir).unwrap(), State::Finished(_)));
        fs::remove_file(dir.join(CONTROL_FILE)).unwrap();
        let e = inspect(dir).unwrap_err().to_string();
        assert!(
            e.contains("gsbuild.journal") && e.contains("pg_basebackup"),
            "{e}"
        );
        fs::write(dir.join(JOURNAL_FILE), b"{not json").unwrap();
        let e = inspect(dir).unwrap_err().to_string();
        assert!(e.contains("gsbuild.journal"), "{e}");
    }

    #[test]
    fn finish_leaves_a_startable_directory() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        fs::create_dir(dir.join("global")).unwrap();
        fs::write(dir.join(CONTROL_FILE), b"original").unwrap();
        let mut t = TargetDir::new(dir, false, crate::target::SyncMethod::Fsync).unwrap();
        begin(&mut t, &journal(b"original")).unwrap();
        finish(&mut t, b"new", |_| Ok(())).unwrap();
        assert_eq!(fs::read(dir.join(CONTROL_FILE)).unwrap(), b"new");
        assert!(!dir.join(CONTROL_ASIDE).exists() && !dir.join(JOURNAL_FILE).exists());
        assert!(matches!(inspect(dir).unwrap(), State::Clean));
    }

    #[test]
    fn history_agreement() {
        let e = |tli, b, e: u64| TimeLineHistoryEntry {
            tli: TimeLineId(tli),
            begin: Lsn(b),
            end: (e != 0).then_some(Lsn(e)),
        };
        let old = vec![e(1, 0, 0x500), e(2, 0x500, 0)];
        let journaled = HistoryEntry::from_history(&old);
        // Further ahead on the same timeline, or promoted later: agrees.
        assert!(histories_agree(&journaled, &old, Lsn(0x400)));
        let later = vec![e(1, 0, 0x500), e(2, 0x500, 0x900), e(3, 0x900, 0)];
        assert!(histories_agree(&journaled, &later, Lsn(0x800)));
        // Rewound onto a history that left timeline 1 earlier: does not.
        let other = vec![e(1, 0, 0x300), e(3, 0x300, 0)];
        assert!(!histories_agree(&journaled, &other, Lsn(0x400)));
        assert!(histories_agree(&journaled, &other, Lsn(0x200)));
    }
}
