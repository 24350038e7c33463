//! The incremental WAL record reader: bytes go in with [`WalStreamReader::feed`], records come
//! out of [`WalStreamReader::poll`] (`Ok(None)`: more input needed, or the WAL ended). It works
//! on a plain byte stream, so segment files and a `START_REPLICATION` stream feed it alike.
//!
//! Input starts at the page that holds the start position. A page-aligned start reads the first
//! record that *begins* at or after it (the continuation of an earlier record is skipped, as
//! `XLogFindNextRecord` does); an unaligned start must be the start of a record, whose
//! `xl_prev` is then only checked to lie before it.
//!
//! End of WAL versus damage: a zero `xl_tot_len`, or a page that was never written at its
//! position (all zeros, or an older address left in a recycled segment), ends the read cleanly
//! ([`WalStreamReader::end_of_wal`]). A record that fails validation ends it too when nothing
//! valid follows: the reader looks at the next page after the failure, and only when that page
//! has a valid header for its position (the WAL went on) is the failure a corruption error
//! naming the record's LSN. When the input stops before that page, the failure is the tail.
//!
//! Phases 1, 3, 4 and 6 (every WAL read).

use super::page::{PageExpect, PageFault, PageHeader, XLOG_BLCKSZ};
use super::record::{record_crc, Record, RecordHeader};
use super::{wal_err, WalError};
use crate::flavor::Flavor;
use crate::lsn::Lsn;
use bytes::Bytes;

/// Where and why valid WAL ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndOfWal {
    /// The first position without a valid record: where the next record would be written.
    pub lsn: Lsn,
    /// What was found there, when it was more than the end of the input or an unwritten page.
    pub reason: Option<WalError>,
}

/// A record being assembled from pages.
#[derive(Debug)]
struct Partial {
    start: Lsn,
    total: u32,
    data: Vec<u8>,
    header: Option<RecordHeader>,
}

#[derive(Debug)]
enum State {
    /// Page-aligned start: skipping the continuation of a record begun before the start.
    Skip,
    /// A record header is expected at `pos`.
    Seek,
    /// Assembling a record.
    Record(Partial),
    /// A record or continuation page failed validation; whether that is the tail or damage
    /// depends on the page at `lookahead`.
    Failed {
        at: Lsn,
        kind: WalError,
        lookahead: Lsn,
    },
    Ended(EndOfWal),
    Broken(Lsn, WalError),
}

/// One step of the state machine.
enum Step {
    Continue,
    NeedInput,
    Record(Box<Record>),
}

/// Incremental WAL reader over a byte stream. See the module documentation.
#[derive(Debug)]
pub struct WalStreamReader {
    seg_size: u32,
    sysid: Option<u64>,
    strict: bool,
    flavor: Option<Flavor>,
    buf: Vec<u8>,
    /// WAL position of `buf[0]`; never above `pos`.
    buf_lsn: u64,
    finished: bool,
    /// Next byte to consume.
    pos: Lsn,
    /// The page whose header was checked last, and its header.
    page: Option<(Lsn, PageHeader)>,
    /// Highest timeline seen in a page header so far.
    max_tli: u32,
    /// `xl_prev` the next record must carry; `None` before the first record.
    prev: Option<Lsn>,
    /// Start of a record aborted by an overwrite-contrecord page, until the record that
    /// replaces it has been read.
    aborted: Option<Lsn>,
    state: State,
}

fn page_start(lsn: Lsn) -> Lsn {
    Lsn(lsn.0 - lsn.page_offset(XLOG_BLCKSZ))
}

fn next_page(lsn: Lsn) -> Lsn {
    Lsn(page_start(lsn).0.saturating_add(u64::from(XLOG_BLCKSZ)))
}

/// The page after the one holding the byte before `pos`: where the WAL goes on after input
/// consumed up to `pos`. Unlike `next_page(pos)`, it does not depend on whether the copy
/// stopped at the page end or (input arriving in pieces) just before it.
fn page_after(pos: Lsn) -> Lsn {
    if pos.page_offset(XLOG_BLCKSZ) == 0 {
        pos
    } else {
        next_page(pos)
    }
}

impl WalStreamReader {
    /// A reader whose first fed byte is at the start of the page holding `start`.
    ///
    /// `start` page-aligned: the first record returned is the first that begins at or after it.
    /// Otherwise `start` must be where a record begins (8-byte aligned, past the page header).
    /// `seg_size` is the WAL segment size in bytes; `sysid`, when given, must match every long
    /// page header.
    pub fn new(start: Lsn, seg_size: u32, sysid: Option<u64>) -> WalStreamReader {
        let state = if start.page_offset(XLOG_BLCKSZ) == 0 {
            State::Skip
        } else if !start.0.is_multiple_of(8) {
            State::Broken(start, WalError::BadRecordOffset)
        } else {
            State::Seek
        };
        WalStreamReader {
            seg_size,
            sysid,
            strict: false,
            flavor: None,
            buf: Vec::new(),
            buf_lsn: page_start(start).0,
            finished: false,
            pos: start,
            page: None,
            max_tli: 0,
            prev: None,
            aborted: None,
            state,
        }
    }

    /// Makes every validation failure an error, even at the tail (for reading one record at a
    /// known position, where "end of WAL" is not an answer).
    pub fn strict(mut self) -> WalStreamReader {
        self.strict = true;
        self
    }

    /// Position of the next byte the reader expects from [`WalStreamReader::feed`].
    pub fn input_lsn(&self) -> Lsn {
        Lsn(self.buf_lsn + self.buf.len() as u64)
    }

    /// The major, once a page header was read.
    pub fn flavor(&self) -> Option<Flavor> {
        self.flavor
    }

    /// Appends the next bytes of the WAL stream (they continue at [`WalStreamReader::input_lsn`]).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.compact();
    }

    /// Says no more input will come: the next [`WalStreamReader::poll`] ends the WAL where the
    /// input ran out instead of asking for more.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Where and why valid WAL ended, once the reader has found that out.
    pub fn end_of_wal(&self) -> Option<&EndOfWal> {
        match &self.state {
            State::Ended(e) => Some(e),
            _ => None,
        }
    }

    /// The next record. `Ok(None)`: more input is needed, or the WAL ended
    /// ([`WalStreamReader::end_of_wal`] says which). An error names the LSN of the corrupt
    /// record or page; the reader then keeps returning it.
    pub fn poll(&mut self) -> crate::Result<Option<Record>> {
        loop {
            let step = match &self.state {
                State::Ended(_) => return Ok(None),
                State::Broken(lsn, kind) => return Err(wal_err(*lsn, kind.clone())),
                State::Failed { .. } => self.step_failed(),
                State::Skip => self.step_skip(),
                State::Seek => self.step_seek(),
                State::Record(_) => self.step_record(),
            };
            match step {
                Step::Continue => {}
                Step::Record(r) => {
                    self.compact();
                    return Ok(Some(*r));
                }
                Step::NeedInput if self.finished => self.end_at_input_end(),
                Step::NeedInput => return Ok(None),
            }
        }
    }

    fn end_at_input_end(&mut self) {
        let end = match &self.state {
            State::Record(p) => EndOfWal {
                lsn: p.start,
                reason: None,
            },
            State::Failed { at, kind, .. } => EndOfWal {
                lsn: *at,
                reason: Some(kind.clone()),
            },
            _ => EndOfWal {
                lsn: self.pos,
                reason: None,
            },
        };
        self.state = State::Ended(end);
    }

    fn end(&mut self, lsn: Lsn, reason: Option<WalError>) -> Step {
        self.state = State::Ended(EndOfWal { lsn, reason });
        Step::Continue
    }

    fn fail(&mut self, at: Lsn, kind: WalError, lookahead: Lsn) -> Step {
        self.state = State::Failed {
            at,
            kind,
            lookahead,
        };
        Step::Continue
    }

    fn broken(&mut self, at: Lsn, kind: WalError) -> Step {
        self.state = State::Broken(at, kind);
        Step::Continue
    }

    /// Drops consumed input (all of it, or in large pieces to keep `drain` cheap).
    fn compact(&mut self) {
        // Bytes before the position are done with, except the header of the position's page
        // while it has not been read: reading from the middle of a page starts with it.
        let ps = page_start(self.pos);
        let keep_from = match self.page {
            Some((p, _)) if p == ps => self.pos,
            _ => ps,
        };
        let consumed = (keep_from.0.saturating_sub(self.buf_lsn)).min(self.buf.len() as u64);
        if consumed as usize == self.buf.len() || consumed >= 1 << 20 {
            self.buf.drain(..consumed as usize);
            self.buf_lsn += consumed;
        }
    }

    /// `n` input bytes at `at`, if they have arrived.
    fn avail(&self, at: Lsn, n: usize) -> Option<&[u8]> {
        let off = usize::try_from(at.0.checked_sub(self.buf_lsn)?).ok()?;
        self.buf.get(off..off.checked_add(n)?)
    }

    /// Input bytes from `at` (up to `max`), possibly none.
    fn avail_upto(&self, at: Lsn, max: usize) -> &[u8] {
        let off = at.0.saturating_sub(self.buf_lsn) as usize;
        let rest = self.buf.get(off..).unwrap_or(&[]);
        rest.get(..max).unwrap_or(rest)
    }

    fn expect(&self, pageaddr: Lsn) -> PageExpect {
        PageExpect {
            pageaddr,
            seg_size: self.seg_size,
            sysid: self.sysid,
            flavor: self.flavor,
            min_tli: self.max_tli,
        }
    }

    /// Reads and checks the header of the page at `ps`. `Ok(None)`: not all of it arrived yet.
    fn enter_page(&mut self, ps: Lsn) -> Result<Option<PageHeader>, PageFault> {
        if let Some((p, h)) = self.page {
            if p == ps {
                return Ok(Some(h));
            }
        }
        let len = PageHeader::len_at(ps, self.seg_size) as usize;
        let Some(bytes) = self.avail(ps, len) else {
            return Ok(None);
        };
        let h = PageHeader::read_checked(bytes, &self.expect(ps))?;
        self.flavor = Some(h.flavor);
        self.max_tli = self.max_tli.max(h.tli.0);
        self.page = Some((ps, h));
        Ok(Some(h))
    }

    /// Skips what a page-aligned start finds of a record begun earlier.
    fn step_skip(&mut self) -> Step {
        let ps = self.pos;
        let h = match self.enter_page(ps) {
            Ok(Some(h)) => h,
            Ok(None) => return Step::NeedInput,
            Err(PageFault::Stale) => return self.end(ps, None),
            Err(PageFault::Bad(e)) => return self.broken(ps, e),
        };
        let payload = u64::from(XLOG_BLCKSZ - h.header_len());
        let rest = if h.is_contrecord() {
            u64::from(h.rem_len).saturating_add(7) & !7
        } else {
            0
        };
        if rest >= payload {
            self.pos = next_page(ps);
        } else {
            self.pos = Lsn(ps.0 + u64::from(h.header_len()) + rest);
            self.state = State::Seek;
        }
        Step::Continue
    }

    /// Reads the start of a record header at `pos` and begins assembling the record.
    fn step_seek(&mut self) -> Step {
        let ps = page_start(self.pos);
        let h = match self.enter_page(ps) {
            Ok(Some(h)) => h,
            Ok(None) => return Step::NeedInput,
            Err(PageFault::Stale) => return self.end(self.pos, None),
            Err(PageFault::Bad(e)) => return self.broken(ps, e),
        };
        let payload_start = Lsn(ps.0 + u64::from(h.header_len()));
        if self.pos == ps {
            if h.is_contrecord() {
                return self.fail(ps, WalError::ContrecordRequested, next_page(ps));
            }
            self.pos = payload_start;
        } else if self.pos < payload_start {
            return self.broken(self.pos, WalError::BadRecordOffset);
        }
        let start = self.pos;
        let Some(Ok(total)) = self.avail(start, 4).map(|b| crate::cursor::u32_at(b, 0)) else {
            return Step::NeedInput;
        };
        if total == 0 {
            return self.end(start, Some(WalError::BadRecordLength(0)));
        }
        // The page header just read named the flavor.
        let header_len = self.flavor.map_or(u32::MAX, Flavor::record_header_len);
        if total < header_len {
            return self.fail(start, WalError::BadRecordLength(total), next_page(start));
        }
        self.state = State::Record(Partial {
            start,
            total,
            // Capped: the length is not validated until the whole header is here.
            data: Vec::with_capacity(total.min(1 << 16) as usize),
            header: None,
        });
        Step::Continue
    }

    /// Copies record bytes page by page until the record is complete, then checks it.
    fn step_record(&mut self) -> Step {
        loop {
            let State::Record(p) = &self.state else {
                return Step::Continue;
            };
            let (start, total, got) = (p.start, p.total, p.data.len() as u32);
            if got == total {
                return self.complete();
            }
            if self.pos.page_offset(XLOG_BLCKSZ) == 0 {
                match self.continue_page(start, total - got) {
                    Some(step) => return step,
                    None => continue,
                }
            }
            let page_left = u64::from(XLOG_BLCKSZ) - self.pos.page_offset(XLOG_BLCKSZ);
            let want = u64::from(total - got).min(page_left) as usize;
            let chunk = self.avail_upto(self.pos, want);
            if chunk.is_empty() {
                return Step::NeedInput;
            }
            let n = chunk.len();
            let State::Record(p) = &mut self.state else {
                return Step::Continue;
            };
            let off = (self.pos.0 - self.buf_lsn) as usize;
            if let Some(bytes) = self.buf.get(off..off + n) {
                p.data.extend_from_slice(bytes);
            }
            self.pos = Lsn(self.pos.0 + n as u64);
            let header_len = self.flavor.map_or(u32::MAX, Flavor::record_header_len);
            if p.header.is_none() && p.data.len() >= header_len as usize {
                if let Some(step) = self.check_header() {
                    return step;
                }
            }
        }
    }

    /// Enters the page that continues the record at `start`, which still misses `missing`
    /// bytes. `None`: carry on copying.
    fn continue_page(&mut self, start: Lsn, missing: u32) -> Option<Step> {
        let ps = self.pos;
        let h = match self.enter_page(ps) {
            Ok(Some(h)) => h,
            Ok(None) => return Some(Step::NeedInput),
            Err(PageFault::Stale) => return Some(self.end(start, None)),
            Err(PageFault::Bad(e)) => return Some(self.broken(ps, e)),
        };
        if h.is_overwrite_contrecord() {
            // The record was cut short at a crash; the record at this page replaces it and
            // keeps the previous record as its xl_prev.
            self.aborted = Some(start);
            self.state = State::Seek;
            return Some(Step::Continue);
        }
        if !h.is_contrecord() {
            return Some(self.fail(start, WalError::NoContrecordFlag, next_page(ps)));
        }
        if h.rem_len != missing {
            let kind = WalError::BadContrecordLength {
                found: h.rem_len,
                expected: missing,
            };
            return Some(self.fail(start, kind, next_page(ps)));
        }
        self.pos = Lsn(ps.0 + u64::from(h.header_len()));
        None
    }

    /// Validates the header once its 24 bytes are assembled. `None`: it is valid.
    fn check_header(&mut self) -> Option<Step> {
        let State::Record(p) = &mut self.state else {
            return None;
        };
        let start = p.start;
        let checked = self
            .flavor
            .ok_or(WalError::BadRecordOffset)
            .and_then(|flavor| {
                let h = RecordHeader::decode(&p.data, flavor)?;
                h.check(start, self.prev, flavor).map(|()| h)
            });
        match checked {
            Ok(h) => {
                p.header = Some(h);
                None
            }
            Err(kind) => Some(self.fail(start, kind, page_after(self.pos))),
        }
    }

    /// Checks the CRC of the complete record, decodes it and moves past it.
    fn complete(&mut self) -> Step {
        let State::Record(p) = std::mem::replace(&mut self.state, State::Seek) else {
            return Step::Continue;
        };
        let start = p.start;
        let lookahead = page_after(self.pos);
        let Some(flavor) = self.flavor else {
            return self.broken(start, WalError::BadRecordOffset);
        };
        if record_crc(&p.data, flavor) != p.header.map(|h| h.crc) {
            return self.fail(start, WalError::BadCrc, lookahead);
        }
        let mut rec = match Record::decode(start, self.pos, Bytes::from(p.data), flavor) {
            Ok(r) => r,
            // The record is what the server wrote (its CRC matched): not understanding it is
            // never the end of WAL.
            Err(kind @ WalError::NotUnderstood(_)) => return self.broken(start, kind),
            Err(kind) => return self.fail(start, kind, lookahead),
        };
        if let Some(aborted) = self.aborted.take() {
            let names_it = rec.is_overwrite_contrecord()
                && rec.main_data().get(..8) == Some(&aborted.0.to_le_bytes()[..]);
            if !names_it {
                return self.fail(start, WalError::BadOverwrite(aborted), lookahead);
            }
            rec.overwritten = Some(aborted);
        }
        if rec.is_switch() {
            // The rest of the segment is unused; the next record starts the next segment.
            let seg = u64::from(self.seg_size);
            rec.end_lsn = Lsn((self.pos.0.saturating_add(seg - 1) / seg) * seg);
        }
        self.prev = Some(start);
        self.pos = rec.end_lsn;
        Step::Record(Box::new(rec))
    }

    /// Decides whether a validation failure is the end of WAL or damage, from the page that
    /// follows it.
    fn step_failed(&mut self) -> Step {
        let State::Failed {
            at,
            kind,
            lookahead,
        } = &self.state
        else {
            return Step::Continue;
        };
        let (at, kind, lookahead) = (*at, kind.clone(), *lookahead);
        if self.strict {
            return self.broken(at, kind);
        }
        let len = PageHeader::len_at(lookahead, self.seg_size) as usize;
        let Some(bytes) = self.avail(lookahead, len) else {
            return Step::NeedInput;
        };
        match PageHeader::read_checked(bytes, &self.expect(lookahead)) {
            Ok(_) => self.broken(at, kind),
            Err(_) => self.end(at, Some(kind)),
        }
    }
}
