//! Phase 3, where the two sides parted: both timeline histories; the target's end of WAL; the
//! divergence point from the histories, or on one timeline from the records themselves; the
//! last common checkpoint, found by walking the target's WAL back through `xl_prev` (or in the
//! source's WAL when the target's is gone, `--changed-blocks=page-lsn`) and cross-checked by
//! comparing its record's CRC with the source's; and where recovery of the rebuilt target
//! starts (the earlier of the common redo point and the source's own, pg_rewind's rule).

use super::connect::Connected;
use super::options::{ChangedBlocks, Options};
use super::source_wal::SourceWal;
use crate::cluster::TargetCluster;
use crate::control::ControlFile;
use crate::error::{Error, Result, WalUseError};
use crate::journal::CheckedRecord;
use crate::lsn::{Lsn, TimeLineId};
use crate::plan::{
    CommonCheckpoint, Divergence, DivergenceMethod, RecoveryStart, RecoveryStartFrom,
};
use crate::reporter::Reporter;
use crate::source::Source;
use crate::timeline::{self, find_divergence, parse_history, TimeLineHistoryEntry};
use crate::walscan::{self, FoundCheckpoint, RestoringWalDir};
use crate::xlog::WalReader;
use std::path::PathBuf;

/// Both sides' histories and ends of WAL.
pub(crate) struct Histories {
    /// The source's timeline history (its last entry is the source's timeline).
    pub source: Vec<TimeLineHistoryEntry>,
    /// The target's.
    pub target: Vec<TimeLineHistoryEntry>,
    /// The source's WAL position when the rebuild began.
    pub source_end: Lsn,
    /// The target's end of WAL (its shutdown checkpoint's end or its minimum recovery point).
    pub target_end: Lsn,
}

/// Where the two sides parted and what the rebuild starts from.
pub(crate) struct Common {
    /// The divergence point.
    pub divergence: Divergence,
    /// The last common checkpoint.
    pub checkpoint: FoundCheckpoint,
    /// The record of common history compared with the source (kept in the journal).
    pub checked: CheckedRecord,
    /// Where recovery of the rebuilt target starts.
    pub start: RecoveryStart,
    /// Both sides' histories and ends of WAL.
    pub histories: Histories,
}

impl Common {
    /// The common checkpoint as the plan states it.
    pub fn common_checkpoint(&self) -> CommonCheckpoint {
        CommonCheckpoint {
            lsn: self.checkpoint.lsn,
            redo: self.checkpoint.checkpoint.redo,
            tli: self.checkpoint.checkpoint.this_timeline_id,
            next_xid: Some(self.checkpoint.checkpoint.next_xid.0),
        }
    }
}

/// What phase 3 found.
pub(super) struct Found {
    /// `None` when no rewind is required.
    pub common: Option<Common>,
    /// The target's `restore_command` with `-c`, for missing target WAL.
    pub restore: Option<String>,
}

/// Phase 3 for `target` and the source of `conn`.
pub(super) fn find(
    target: &mut TargetCluster,
    conn: &mut Connected,
    opts: &Options,
    rep: &mut dyn Reporter,
) -> Result<Found> {
    if opts.verify_blocks && opts.changed_blocks == ChangedBlocks::PageLsn {
        return Err(Error::Usage(
            "--verify-blocks checks the blocks found in the target's WAL against page LSNs; it cannot be combined with --changed-blocks=page-lsn".into(),
        ));
    }
    let source = conn.source.as_mut();
    let (source_tli, source_end) = source.wal_position()?;
    let source_history = history_of(source, source_tli)?;
    let target_history = target.history()?;
    let restore = match opts.restore_target_wal {
        true => Some(target.setting("restore_command")?.ok_or_else(|| {
            Error::Usage("\"restore_command\" is not set in the target cluster".into())
        })?),
        false => None,
    };
    let mut wal = WalReader::new(
        target.wal_dir(target_history.clone(), restore.clone()),
        target.seg_size(),
        Some(target.system_identifier()),
    );
    let target_end = target_end_of_wal(target, &mut wal, opts.changed_blocks, rep)?;
    // A history that names a switchpoint the cluster never reached lies (or belongs to
    // another cluster); the divergence found from it would be wrong.
    history_reached(&source_history, source_end, || {
        let name = timeline::history_file_name(source_tli);
        format!("{} {name}", source.describe()).into()
    })?;
    history_reached(&target_history, target_end, || {
        let name = timeline::history_file_name(target.timeline());
        target.path().join(target.flavor().wal_path(&name))
    })?;
    let histories = Histories {
        source: source_history,
        target: target_history,
        source_end,
        target_end,
    };
    let mut sides = Sides {
        source: SourceWal {
            source,
            history: &histories.source,
            end: source_end,
            seg_size: target.seg_size(),
            sysid: target.system_identifier(),
        },
        target_wal: &mut wal,
        target_history: &histories.target,
        target_end,
        target_control: target.control(),
    };
    let found = match opts.changed_blocks {
        ChangedBlocks::Wal => sides.common_point(rep)?,
        ChangedBlocks::PageLsn => sides.common_point_page_lsn(rep)?,
    };

    let common = found.map(|(divergence, checkpoint, checked)| {
        let start = recovery_start(&checkpoint, &conn.control, rep);
        Common {
            divergence,
            checkpoint,
            checked,
            start,
            histories,
        }
    });
    Ok(Found { common, restore })
}

/// What the two sides' WAL tells, found by [`Sides`].
type Point = (Divergence, FoundCheckpoint, CheckedRecord);

/// Both sides' WAL, as the divergence search reads it.
struct Sides<'a, 'w> {
    source: SourceWal<'a>,
    target_wal: &'w mut WalReader<RestoringWalDir>,
    target_history: &'a [TimeLineHistoryEntry],
    target_end: Lsn,
    target_control: &'a ControlFile,
}

impl Sides<'_, '_> {
    fn source_tli(&self) -> TimeLineId {
        last_tli(self.source.history)
    }

    fn target_tli(&self) -> TimeLineId {
        last_tli(self.target_history)
    }

    /// `None` when no rewind is required, else the divergence and the last common checkpoint
    /// (cross-checked against the source's WAL).
    fn common_point(&mut self, rep: &mut dyn Reporter) -> Result<Option<Point>> {
        let Some((lsn, tli)) = find_divergence(self.source.history, self.target_history) else {
            return self.same_timeline(rep);
        };
        if self.target_end <= lsn {
            return Ok(None);
        }
        let seg_size = self.source.seg_size;
        let at_divergence = walscan::record_at_divergence(self.target_wal, lsn, seg_size);
        let from = at_divergence.unwrap_or(self.target_control.checkpoint);
        let ckpt = walscan::last_checkpoint_before(self.target_wal, from, lsn)?;
        let checked = self.cross_check(&ckpt, at_divergence, rep)?;
        Ok(Some((self.divergence(lsn, tli), ckpt, checked)))
    }

    /// The divergence point `lsn` on the last common timeline `tli`, found from the histories.
    fn divergence(&self, lsn: Lsn, tli: TimeLineId) -> Divergence {
        Divergence {
            lsn,
            tli,
            source_tli: self.source_tli(),
            target_tli: self.target_tli(),
            method: DivergenceMethod::TimelineHistory,
        }
    }

    /// Checks that the source has the target's last common checkpoint record, as the
    /// timeline histories say it must. When the source has recycled that WAL (recovery will
    /// read the target's copy of it), the last record before the divergence point is compared
    /// instead: the source must have its WAL anyway, as the stream starts in that record's
    /// segment or the next. Returns the record that was compared.
    fn cross_check(
        &mut self,
        ckpt: &FoundCheckpoint,
        at_divergence: Option<Lsn>,
        rep: &mut dyn Reporter,
    ) -> Result<CheckedRecord> {
        let differs = |what: &str, at: Lsn| {
            Error::Incompatible(format!(
                "the {what} at {at} differs between source and target although their timeline histories say it is common history"
            ))
        };
        match self.source.crc_at(ckpt.lsn) {
            Ok(crc) if crc == Some(ckpt.crc) => Ok(checked(ckpt)),
            Ok(_) => Err(differs("checkpoint record", ckpt.lsn)),
            Err(removed @ Error::WalRemoved { .. }) => {
                let Some(at) = at_divergence else {
                    return Err(removed);
                };
                let last = self.target_wal.read_record_at(at)?.prev();
                let last_crc = self.target_wal.read_record_at(last)?.crc();
                rep.info(&format!(
                    "the source no longer has the WAL of the last common checkpoint record at {} ({removed}); comparing the last common record at {last} instead",
                    ckpt.lsn
                ));
                if self.source.crc_at(last)? != Some(last_crc) {
                    return Err(differs("record", last));
                }
                Ok(CheckedRecord {
                    lsn: last,
                    crc: last_crc,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// For `--changed-blocks=page-lsn`, which must work when the target's WAL after the common
    /// checkpoint is gone. The divergence point comes from the timeline histories; the common
    /// checkpoint (whose redo point recovery starts from) from the target's WAL when it can
    /// still be walked back (and is cross-checked as in [`Sides::common_point`]), else from
    /// the source's WAL, where the history before the divergence point is the same. On one
    /// timeline only the target's WAL can show where the two sides part, so it is required.
    fn common_point_page_lsn(&mut self, rep: &mut dyn Reporter) -> Result<Option<Point>> {
        let Some((lsn, tli)) = find_divergence(self.source.history, self.target_history) else {
            return self.same_timeline(rep).map_err(|e| {
                Error::Incompatible(format!(
                    "source and target are on the same timeline, so only the target's WAL shows where they diverged, and it could not be used with --changed-blocks=page-lsn: {e}"
                ))
            });
        };
        if self.target_end <= lsn {
            return Ok(None);
        }
        let seg_size = self.source.seg_size;
        let at_divergence = walscan::record_at_divergence(self.target_wal, lsn, seg_size);
        let from = at_divergence.unwrap_or(self.target_control.checkpoint);
        let ckpt = match walscan::last_checkpoint_before(self.target_wal, from, lsn) {
            Ok(ckpt) => {
                let checked = self.cross_check(&ckpt, at_divergence, rep)?;
                return Ok(Some((self.divergence(lsn, tli), ckpt, checked)));
            }
            Err(e) => {
                rep.info(&format!(
                    "could not read the target's WAL back to a checkpoint before the divergence point ({e}); looking for one in the source's WAL"
                ));
                self.source.last_checkpoint_before(lsn)?
            }
        };
        rep.info(&format!(
            "found the last common checkpoint at {} in the source's WAL",
            ckpt.lsn
        ));
        let checked = checked(&ckpt);
        Ok(Some((self.divergence(lsn, tli), ckpt, checked)))
    }

    /// Both sides on the same timeline: the WAL decides. The target's last record is looked
    /// up on the source; if the source has the identical record, the target is behind or
    /// equal and no rewind is required. Otherwise the target's checkpoints are tried
    /// backwards until one the source has too, and records are compared forwards from it to
    /// find where they part.
    fn same_timeline(&mut self, rep: &mut dyn Reporter) -> Result<Option<Point>> {
        let (sh, th) = (self.source.history, self.target_history);
        if sh.first() != th.first() || self.source_tli() != self.target_tli() {
            return Err(Error::Incompatible(
                "could not find common ancestor of the source and target cluster's timelines"
                    .into(),
            ));
        }
        let from = self.target_control.checkpoint;
        let mut last = None;
        for rec in self.target_wal.records_from(from) {
            let rec = rec?;
            if rec.lsn >= self.target_end {
                break;
            }
            last = Some((rec.lsn, rec.crc()));
        }
        let (last_lsn, last_crc) =
            last.ok_or_else(|| Error::wal_use(from, WalUseError::NoRecord { lsn: from }))?;
        if self.source.crc_at(last_lsn)? == Some(last_crc) {
            return Ok(None);
        }
        let source = &mut self.source;
        let ckpt = walscan::walk_checkpoints_back(self.target_wal, from, |c| {
            let crc = source.crc_at(c.lsn)?;
            // gs_rewind's words; 0 when the source has no such record.
            rep.debug(&format!(
                "request lsn is {} and its crc(source, target):[{}, {}]",
                c.lsn,
                crc.unwrap_or(0),
                c.crc
            ));
            Ok((crc == Some(c.crc)).then(|| c.clone()))
        })?;
        let found = format!("find common checkpoint {}", ckpt.lsn);
        match self.target_control.flavor.table().tool_log_lines {
            true => rep.info(&found),
            false => rep.debug(&found),
        }
        let lsn = self.first_difference(&ckpt)?;
        let tli = self.source_tli();
        let divergence = Divergence {
            lsn,
            tli,
            source_tli: tli,
            target_tli: tli,
            method: DivergenceMethod::CheckpointCrc,
        };
        let checked = checked(&ckpt);
        Ok(Some((divergence, ckpt, checked)))
    }

    /// The first record position after `ckpt` where the target's record differs from the
    /// source's (or the source has none before its end of WAL); the target's end of WAL when
    /// the source has all of the target's records.
    fn first_difference(&mut self, ckpt: &FoundCheckpoint) -> Result<Lsn> {
        let mut records = Vec::new();
        for rec in self.target_wal.records_from(ckpt.lsn) {
            let rec = rec?;
            if rec.lsn >= self.target_end {
                break;
            }
            records.push((rec.lsn, rec.crc()));
        }
        let idx = self.source.first_mismatch(ckpt.lsn, &records)?;
        Ok(records.get(idx).map_or(self.target_end, |r| r.0))
    }
}

/// The checkpoint record itself as the record compared with the source.
fn checked(ckpt: &FoundCheckpoint) -> CheckedRecord {
    CheckedRecord {
        lsn: ckpt.lsn,
        crc: ckpt.crc,
    }
}

fn last_tli(history: &[TimeLineHistoryEntry]) -> TimeLineId {
    history.last().map(|e| e.tli).unwrap_or(TimeLineId(1))
}

/// Where recovery of the rebuilt target starts ([`RecoveryStart::earlier_of`]), from the
/// source's control file as read before any file is copied.
pub(super) fn recovery_start(
    ckpt: &FoundCheckpoint,
    source_control: &ControlFile,
    rep: &mut dyn Reporter,
) -> RecoveryStart {
    let common = CommonCheckpoint {
        lsn: ckpt.lsn,
        redo: ckpt.checkpoint.redo,
        tli: ckpt.checkpoint.this_timeline_id,
        next_xid: Some(ckpt.checkpoint.next_xid.0),
    };
    recovery_start_from(&common, source_control, rep)
}

/// [`recovery_start`] for a common checkpoint as the plan states it.
pub(super) fn recovery_start_from(
    common: &CommonCheckpoint,
    source_control: &ControlFile,
    rep: &mut dyn Reporter,
) -> RecoveryStart {
    let c = &source_control.checkpoint_copy;
    let start = RecoveryStart::earlier_of(
        common,
        (
            source_control.checkpoint,
            c.redo,
            c.this_timeline_id,
            c.next_xid.0,
        ),
    );
    if start.from == RecoveryStartFrom::SourceRestartpoint {
        rep.info(&format!(
            "the source's last restartpoint at {} (redo {}) is older than the last common checkpoint: recovery starts from it",
            start.checkpoint, start.redo
        ));
    }
    start
}

/// The source's history of timeline `tli`.
pub(super) fn history_of(
    source: &mut dyn Source,
    tli: TimeLineId,
) -> Result<Vec<TimeLineHistoryEntry>> {
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

/// Every switchpoint of `history` lies at or before `end`.
pub(super) fn history_reached(
    history: &[TimeLineHistoryEntry],
    end: Lsn,
    path: impl FnOnce() -> PathBuf,
) -> Result<()> {
    timeline::check_reached(history, end).map_err(|kind| Error::History { path: path(), kind })
}

/// The target's end of WAL: the end of its shutdown checkpoint record, or its minimum recovery
/// point when it was a standby that had replayed further.
fn target_end_of_wal(
    target: &TargetCluster,
    wal: &mut WalReader<RestoringWalDir>,
    method: ChangedBlocks,
    rep: &mut dyn Reporter,
) -> Result<Lsn> {
    let cf = target.control();
    match walscan::checkpoint_at(wal, cf.checkpoint) {
        Ok(ckpt) => Ok(ckpt.end.max(cf.min_recovery_point)),
        // Without its WAL the target's last checkpoint record cannot be read, but its
        // position is enough: the WAL ends after it, and a divergence point at or before it
        // means the target diverged (a record is never split by the divergence point), one
        // after it means there is nothing to rewind.
        Err(e) if method == ChangedBlocks::PageLsn => {
            rep.info(&format!(
                "could not read the target's last checkpoint record ({e}); its WAL ends after {}",
                cf.checkpoint
            ));
            Ok(Lsn(cf.checkpoint.0 + 1).max(cf.min_recovery_point))
        }
        Err(e) => Err(e),
    }
}
