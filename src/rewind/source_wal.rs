//! Phase 3's reads of the source's WAL: the CRC of the record at a position, the first record
//! where the source's WAL stops matching a list of the target's, and the last checkpoint
//! record before a position. Each reads along the source's timeline history and never past its
//! end of WAL (a live server's stream would otherwise wait there for WAL that may never come).

use crate::error::{Error, Result, WalUseError};
use crate::lsn::{Lsn, XLogSegNo};
use crate::source::Source;
use crate::timeline::TimeLineHistoryEntry;
use crate::walscan::{self, FoundCheckpoint};
use crate::xlog::{WalStreamReader, XLOG_BLCKSZ};

/// The source's WAL as phase 3 reads it.
pub(super) struct SourceWal<'a> {
    /// The source.
    pub source: &'a mut dyn Source,
    /// Its timeline history (the last entry is its current timeline).
    pub history: &'a [TimeLineHistoryEntry],
    /// Its end of WAL: every complete record ends by then.
    pub end: Lsn,
    /// WAL segment size.
    pub seg_size: u32,
    /// The system identifier its segments must carry.
    pub sysid: u64,
}

impl SourceWal<'_> {
    /// The CRC of the source's record at `lsn`, or `None` when the source has no valid record
    /// there that ends by its end of WAL. [`crate::Error::WalRemoved`] when that WAL is gone.
    pub fn crc_at(&mut self, lsn: Lsn) -> Result<Option<u32>> {
        if lsn >= self.end {
            return Ok(None);
        }
        if let Some(answer) = self.source.record_crc(lsn)? {
            return Ok(answer);
        }
        let mut stream = WalStreamReader::new(lsn, self.seg_size, Some(self.sysid));
        let mut crc = None;
        self.source
            .read_wal(page_start(lsn), self.end, self.history, &mut |_, data| {
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

    /// Compares the source's records from `from` with `target` (the target's records from the
    /// same position: start and CRC, in order). Returns the index of the first target record
    /// the source does not have identically, or `target.len()` when it has them all (or ends
    /// after the last one it has).
    pub fn first_mismatch(&mut self, from: Lsn, target: &[(Lsn, u32)]) -> Result<usize> {
        let mut stream = WalStreamReader::new(from, self.seg_size, Some(self.sysid));
        let mut idx = 0usize;
        self.source
            .read_wal(page_start(from), self.end, self.history, &mut |_, data| {
                stream.feed(data);
                while let Some(rec) = stream.poll()? {
                    match target.get(idx) {
                        Some(&(lsn, crc)) if lsn == rec.lsn && crc == rec.crc() => idx += 1,
                        Some(_) | None => return Ok(false),
                    }
                }
                Ok(stream.end_of_wal().is_none())
            })?;
        Ok(idx)
    }

    /// The last checkpoint record that begins before `before` (the divergence point): common
    /// history, so the target has the same record. Reads backwards window by window (one
    /// segment, then twice as many each time) from the segment holding the byte before
    /// `before`, each window forward from its first record, until a window holds a checkpoint;
    /// fails naming the position when the source's WAL runs out first.
    pub fn last_checkpoint_before(&mut self, before: Lsn) -> Result<FoundCheckpoint> {
        let seg = u64::from(self.seg_size);
        let mut hi = before;
        let mut lo = XLogSegNo(before.0.saturating_sub(1) / seg).start_lsn(self.seg_size);
        let mut span = seg;
        loop {
            if let Some(found) = self.checkpoint_in_window((lo, hi), before).map_err(|e| {
                let detail = e.to_string();
                let kind = WalUseError::NoSourceCheckpoint {
                    before,
                    read_back_to: lo,
                    detail,
                };
                Error::wal_use(lo, kind)
            })? {
                return Ok(found);
            }
            if lo.0 == 0 {
                let kind = WalUseError::NoSourceCheckpoint {
                    before,
                    read_back_to: lo,
                    detail: "the source's WAL holds no checkpoint record before it".into(),
                };
                return Err(Error::wal_use(lo, kind));
            }
            hi = lo;
            lo = Lsn(lo.0.saturating_sub(span));
            span = span.saturating_mul(2);
        }
    }

    /// The last checkpoint record beginning in `[window.0, window.1)` (`window.0` a segment
    /// start), reading no further than `before`.
    fn checkpoint_in_window(
        &mut self,
        window: (Lsn, Lsn),
        before: Lsn,
    ) -> Result<Option<FoundCheckpoint>> {
        let (lo, hi) = window;
        let mut stream = WalStreamReader::new(lo, self.seg_size, Some(self.sysid));
        let mut found = None;
        let mut reached = lo;
        self.source
            .read_wal(lo, before, self.history, &mut |_, data| {
                stream.feed(data);
                while let Some(rec) = stream.poll()? {
                    if rec.lsn >= hi {
                        reached = hi;
                        return Ok(false);
                    }
                    reached = rec.end_lsn;
                    if let Some(checkpoint) = walscan::decode_checkpoint(&rec)? {
                        found = Some(FoundCheckpoint {
                            lsn: rec.lsn,
                            end: rec.end_lsn,
                            crc: rec.crc(),
                            checkpoint,
                        });
                    }
                }
                Ok(stream.end_of_wal().is_none())
            })?;
        if found.is_none() && reached < hi && stream.end_of_wal().is_some() {
            return Err(Error::wal_use(
                reached,
                WalUseError::NoRecord { lsn: reached },
            ));
        }
        Ok(found)
    }
}

/// The start of the WAL page holding `lsn` (reading a record starts with its page header).
fn page_start(lsn: Lsn) -> Lsn {
    Lsn(lsn.0 - lsn.page_offset(XLOG_BLCKSZ))
}
