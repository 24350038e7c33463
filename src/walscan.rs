//! The rebuild's uses of the target's WAL: the last checkpoint before the divergence point
//! (phase 3, found by following `xl_prev` backwards from the control file's checkpoint), and
//! every main-fork block the target changed from that checkpoint's redo point to its end of WAL
//! (phase 4).
//!
//! openGauss's WAL is scanned as its `gs_rewind` does: every main-fork block reference,
//! whatever the resource manager, and no record refused for `xl_info & 0x01` (which openGauss
//! sets on btree inserts, not only on file-level changes; created, dropped and truncated files
//! are the file map's, by their sizes). A segment-page relation's block is the physical page
//! the record names (`<db>/<fileno>`, segments of `RELSEG_SIZE` blocks); a compressed (CFS)
//! relation's pages are in its `_compress` file, which is copied whole.
//!
//! Also [`RestoringWalDir`], the target's `pg_wal` that fetches missing segments with the
//! target's `restore_command` (`-c`).

use crate::control::CheckPoint;
use crate::error::{Error, Result, WalUseError};
use crate::flavor::Flavor;
use crate::lsn::{Lsn, XLogSegNo};
use crate::pgserver;
use crate::relpath::{relation_path, BlockNumber, ForkNumber, RelFileLocator};
use crate::timeline::{segment_file_name, TimeLineHistoryEntry};
use crate::xlog::ogrecord::{MAX_PHYSICAL_SEGMENT_REL, SEGMENT_BUCKET};
use crate::xlog::rmgr;
use crate::xlog::segment::read_segment_file;
use crate::xlog::{BlockRef, Record, SegmentSource, WalReader};
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

#[cfg(test)]
mod og_tests;
#[cfg(test)]
mod tests;

/// A checkpoint record found in the WAL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundCheckpoint {
    /// Position of the record.
    pub lsn: Lsn,
    /// Where the record ends (the next record's start).
    pub end: Lsn,
    /// The record's CRC, compared with the source's record at the same position.
    pub crc: u32,
    /// The decoded payload (redo point, timeline).
    pub checkpoint: CheckPoint,
}

/// A data directory's WAL directory whose segment file names follow a timeline history,
/// optionally restoring missing segments with `restore_command`.
pub struct RestoringWalDir {
    dir: PathBuf,
    datadir: PathBuf,
    seg_size: u32,
    history: Vec<TimeLineHistoryEntry>,
    restore_command: Option<String>,
    /// Segments fetched with restore_command, shared by every reader of one cluster's WAL (the
    /// rebuild reports them).
    restored: Restored,
}

/// The names of segments fetched with `restore_command`.
pub type Restored = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

impl RestoringWalDir {
    /// The WAL directory of `datadir` (a cluster of `flavor`), with file names chosen by
    /// `history`.
    pub fn new(
        datadir: &Path,
        flavor: Flavor,
        seg_size: u32,
        history: Vec<TimeLineHistoryEntry>,
        restore_command: Option<String>,
    ) -> Self {
        RestoringWalDir {
            dir: datadir.join(flavor.wal_dir()),
            datadir: datadir.to_path_buf(),
            seg_size,
            history,
            restore_command,
            restored: Restored::default(),
        }
    }

    /// Records the segments this directory restores in `restored`.
    pub fn with_restored(mut self, restored: Restored) -> Self {
        self.restored = restored;
        self
    }

    /// File name of segment `segno`: the timeline holding the segment's last byte (the newest
    /// timeline begun in or before it, which is the file recovery opens).
    pub fn file_name(&self, segno: XLogSegNo) -> String {
        segment_file_name(&self.history, segno, self.seg_size)
    }
}

impl SegmentSource for RestoringWalDir {
    fn read_segment(&mut self, segno: XLogSegNo) -> Result<Option<Bytes>> {
        let name = self.file_name(segno);
        let path = self.dir.join(&name);
        if let Some(b) = read_segment_file(&path, self.seg_size)? {
            return Ok(Some(b));
        }
        let Some(cmd) = &self.restore_command else {
            return Ok(None);
        };
        pgserver::restore_wal_file(cmd, &self.datadir, &self.dir, &name, &name)?;
        if let Ok(mut r) = self.restored.lock() {
            r.push(name);
        }
        read_segment_file(&path, self.seg_size)
    }

    fn segment_name(&self, segno: XLogSegNo) -> String {
        self.dir.join(self.file_name(segno)).display().to_string()
    }
}

/// The checkpoint payload of `rec`, or `None` when it is not a checkpoint record.
pub fn decode_checkpoint(rec: &Record) -> Result<Option<CheckPoint>> {
    if !rec.is_checkpoint() {
        return Ok(None);
    }
    CheckPoint::decode(rec.main_data(), rec.flavor)
        .map(Some)
        .map_err(|t| {
            Error::wal_use(
                rec.lsn,
                WalUseError::BadCheckpoint {
                    lsn: rec.lsn,
                    detail: t.to_string(),
                },
            )
        })
}

/// Reads the checkpoint record at `lsn`.
pub fn checkpoint_at<S: SegmentSource>(
    reader: &mut WalReader<S>,
    lsn: Lsn,
) -> Result<FoundCheckpoint> {
    let rec = reader
        .read_record_at(lsn)
        .map_err(|e| prev_record_error(lsn, e))?;
    match decode_checkpoint(&rec)? {
        Some(checkpoint) => Ok(FoundCheckpoint {
            lsn,
            end: rec.end_lsn,
            crc: rec.crc(),
            checkpoint,
        }),
        None => Err(Error::wal_use(
            lsn,
            WalUseError::NotACheckpoint {
                lsn,
                rmgr: rec.rmgr_name().into_owned(),
            },
        )),
    }
}

fn prev_record_error(lsn: Lsn, e: Error) -> Error {
    let segment = match &e {
        Error::WalUse { segment, .. } => segment.clone(),
        Error::Io { path, .. } => Some(path.display().to_string()),
        _ => None,
    };
    Error::WalUse {
        lsn,
        segment,
        kind: WalUseError::PreviousRecord {
            lsn,
            cause: Box::new(e),
        },
    }
}

/// Walks backwards from the record at `from` through `xl_prev`, calling `visit` on every
/// checkpoint record met (`from` itself included) until it returns `Some`.
pub fn walk_checkpoints_back<S, T>(
    reader: &mut WalReader<S>,
    from: Lsn,
    mut visit: impl FnMut(&FoundCheckpoint) -> Result<Option<T>>,
) -> Result<T>
where
    S: SegmentSource,
{
    let mut lsn = from;
    loop {
        let rec = reader
            .read_record_at(lsn)
            .map_err(|e| prev_record_error(lsn, e))?;
        if let Some(checkpoint) = decode_checkpoint(&rec)? {
            let found = FoundCheckpoint {
                lsn,
                end: rec.end_lsn,
                crc: rec.crc(),
                checkpoint,
            };
            if let Some(t) = visit(&found)? {
                return Ok(t);
            }
        }
        let prev = rec.prev();
        if !prev.is_valid() || prev >= lsn {
            return Err(Error::wal_use(lsn, WalUseError::BadPrevLink { lsn, prev }));
        }
        lsn = prev;
    }
}

/// Where to start walking back to the last common checkpoint: the target's first record at the
/// divergence point `lsn` (after the page header when `lsn` starts a page), as pg_rewind
/// starts, so that only the WAL between that checkpoint and the divergence is read — not all
/// of the target's WAL after it. `None` when no valid record is there; the caller then walks
/// back from the target's last checkpoint, which reaches the same chain of records.
pub fn record_at_divergence<S: SegmentSource>(
    reader: &mut WalReader<S>,
    lsn: Lsn,
    seg_size: u32,
) -> Option<Lsn> {
    use crate::xlog::page::{LONG_HEADER_LEN, SHORT_HEADER_LEN};
    let at = match (
        lsn.page_offset(crate::xlog::XLOG_BLCKSZ),
        lsn.segment_offset(seg_size),
    ) {
        (0, 0) => Lsn(lsn.0 + u64::from(LONG_HEADER_LEN)),
        (0, _) => Lsn(lsn.0 + u64::from(SHORT_HEADER_LEN)),
        _ => lsn,
    };
    reader.read_record_at(at).ok().map(|_| at)
}

/// The last checkpoint record before `before`, walking back from `from`.
pub fn last_checkpoint_before<S: SegmentSource>(
    reader: &mut WalReader<S>,
    from: Lsn,
    before: Lsn,
) -> Result<FoundCheckpoint> {
    walk_checkpoints_back(reader, from, |c| Ok((c.lsn < before).then(|| c.clone())))
}

/// Main-fork blocks changed by the target, by relation segment path; each value holds block
/// numbers within that segment file.
pub type ChangedBlocks = HashMap<String, BTreeSet<u32>>;

/// What [`scan_blocks`] found.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Every main-fork block a record names.
    pub changed: ChangedBlocks,
    /// The blocks of `changed` whose first reference is in common history and rewrites the
    /// whole page on replay ([`rewrites_page`]), before any record that makes replay read
    /// other files wholesale (a database created by copying its template's directory): replay
    /// from the scan's start point restores them before anything reads them, so the target's
    /// copies never matter.
    pub rewritten: ChangedBlocks,
    /// The blocks of `changed` that no record of common history names (their first reference
    /// is the target's own, after the divergence point), when common history holds no record
    /// that makes replay read files wholesale: replay reaches them first in the source's WAL,
    /// which may rewrite them too (`transfer::ReplayWatch`). Empty without `common_end`.
    pub after_divergence: ChangedBlocks,
    /// Records read.
    pub records: u64,
}

/// Whether replay of reference `b` writes the whole page without reading it: a full-page image
/// that redo applies (`BKPIMAGE_APPLY`), or a page redo initialises (`BKPBLOCK_WILL_INIT`).
/// PostgreSQL's rule, in `XLogReadBufferForRedoExtended`; never said of openGauss's WAL.
pub fn rewrites_page(b: &BlockRef) -> bool {
    b.og.is_none() && (b.will_init || b.image.as_ref().is_some_and(|i| i.apply))
}

/// Collects the block references of every record from `from` (a record start: the common
/// checkpoint's redo point) up to `to` (exclusive: the target's end of WAL). Records whose only
/// effect is at file level (database create/drop, relation create/truncate, commit/abort) are
/// skipped — the file map handles those — and any other record that changes relation files in a
/// way block references do not show is an error, since skipping it would lose data.
pub fn scan_changed_blocks<S: SegmentSource>(
    reader: &mut WalReader<S>,
    from: Lsn,
    to: Lsn,
    tablespace_dir: &str,
) -> Result<(ChangedBlocks, u64)> {
    scan_blocks(reader, (from, to), None, tablespace_dir).map(|s| (s.changed, s.records))
}

/// [`scan_changed_blocks`], also telling which blocks replay rewrites
/// ([`Scanned::rewritten`]) when `common_end` (the divergence point: records ending at or
/// before it are common history) is given.
pub fn scan_blocks<S: SegmentSource>(
    reader: &mut WalReader<S>,
    (from, to): (Lsn, Lsn),
    common_end: Option<Lsn>,
    tablespace_dir: &str,
) -> Result<Scanned> {
    let mut found = Scanned::default();
    let mut iter = reader.records_from(from);
    let mut reached = from;
    // Until a record makes replay read files it does not name.
    let mut first_refs_rewrite = common_end.is_some();
    // Whether common history had such a record.
    let mut common_reads_files = false;
    for rec in iter.by_ref() {
        let rec = rec?;
        if rec.lsn >= to {
            reached = rec.lsn;
            break;
        }
        found.records += 1;
        if rec.flavor.formats().special_rel_update_flag {
            check_record_kind(&rec)?;
        }
        let common = common_end.is_some_and(|end| rec.end_lsn <= end);
        common_reads_files |= common && rec.rmid() == rmgr::RM_DBASE_ID;
        first_refs_rewrite &= common && !common_reads_files;
        let first_refs_after = common_end.is_some() && !common && !common_reads_files;
        for b in rec.blocks.iter().filter(|b| b.fork == ForkNumber::Main) {
            let Some((rel, blk)) = page_of(&rec, b)? else {
                continue;
            };
            let path = relation_path(rel, ForkNumber::Main, blk.segment(), tablespace_dir);
            // The path is copied only for a reference that may be a rewriting first one.
            let blk = blk.in_segment();
            let seen = |f: &Scanned| f.changed.get(&path).is_some_and(|s| s.contains(&blk));
            if first_refs_after {
                if !seen(&found) {
                    found.changed.entry(path.clone()).or_default().insert(blk);
                    found.after_divergence.entry(path).or_default().insert(blk);
                }
            } else if !(first_refs_rewrite && rewrites_page(b)) {
                found.changed.entry(path).or_default().insert(blk);
            } else if found.changed.entry(path.clone()).or_default().insert(blk) {
                found.rewritten.entry(path).or_default().insert(blk);
            }
        }
        reached = rec.end_lsn;
    }
    if let Some(end) = iter.end_of_wal() {
        reached = reached.max(end.lsn);
    }
    if reached < to {
        return Err(Error::wal_use(
            reached,
            WalUseError::TargetEndsEarly { reached, end: to },
        ));
    }
    Ok(found)
}

/// The relation file and block where the page of main-fork reference `b` lives; `None` when its
/// file is copied whole anyway (a compressed relation's `_compress`).
fn page_of(rec: &Record, b: &BlockRef) -> Result<Option<(RelFileLocator, BlockNumber)>> {
    let Some(og) = &b.og else {
        return Ok(Some((b.rel, b.blk)));
    };
    let unsupported = |detail: String| {
        Err(Error::wal_use(
            rec.lsn,
            WalUseError::UnlocatedBlock {
                lsn: rec.lsn,
                detail,
            },
        ))
    };
    if !og.is_segment() {
        return Ok((og.opt == 0).then_some((b.rel, b.blk)));
    }
    if og.bucket_node != SEGMENT_BUCKET {
        let what = format!("hash bucket {} of relation {}", og.bucket_node, b.rel);
        return unsupported(what);
    }
    if b.rel.rel <= MAX_PHYSICAL_SEGMENT_REL {
        // A page of segment-page storage's own files (its metadata and extents).
        return Ok(Some((b.rel, b.blk)));
    }
    match og.seg {
        Some(seg) if (1..=MAX_PHYSICAL_SEGMENT_REL).contains(&u32::from(seg.fileno)) => {
            let file = RelFileLocator {
                rel: u32::from(seg.fileno),
                ..b.rel
            };
            Ok(Some((file, seg.blockno)))
        }
        Some(seg) => unsupported(format!(
            "segment-page block {} of relation {} in physical file {}",
            b.blk, b.rel, seg.fileno
        )),
        None => unsupported(format!(
            "segment-page block {} of relation {} without its physical location",
            b.blk, b.rel
        )),
    }
}

/// pg_rewind's rules for records the block scan cannot account for.
fn check_record_kind(rec: &Record) -> Result<()> {
    const XLOG_SMGR_CREATE: u8 = 0x10;
    const XLOG_SMGR_TRUNCATE: u8 = 0x20;
    const XLOG_XACT_OPMASK: u8 = 0x70;
    // Commit, abort, commit prepared, abort prepared: their file drops show in the file map.
    const XACT_FILE_LEVEL: [u8; 4] = [0x00, 0x20, 0x30, 0x40];
    let info = rec.rmgr_info();
    let ok = match rec.rmid() {
        rmgr::RM_DBASE_ID => true,
        rmgr::RM_SMGR_ID if info == XLOG_SMGR_CREATE || info == XLOG_SMGR_TRUNCATE => true,
        rmgr::RM_XACT_ID if XACT_FILE_LEVEL.contains(&(info & XLOG_XACT_OPMASK)) => true,
        _ => !rec.has_special_rel_update(),
    };
    if !ok {
        return Err(Error::wal_use(
            rec.lsn,
            WalUseError::UnknownRelationChange {
                lsn: rec.lsn,
                rmid: rec.rmid(),
                rmgr: rec.rmgr_name().into_owned(),
                info: rec.info(),
            },
        ));
    }
    Ok(())
}
