//! A tiny WAL writer for unit tests: lays records out on pages and segments the way
//! PostgreSQL does (page headers, continuation flags, `xl_prev` chain, CRCs), so the reader
//! can be tested on hand-built bytes, including damaged ones.
//!
//! No phase: unit tests only.

use super::page::{XLOG_BLCKSZ, XLP_FIRST_IS_CONTRECORD, XLP_LONG_HEADER};

/// 1 MiB segments keep the tests small.
pub const SEG: u32 = 1 << 20;
pub const SYSID: u64 = 7_000_000_000_000_000_001;

pub struct WalBuilder {
    pub magic: u16,
    pub tli: u32,
    /// LSN of `out[0]` (segment aligned).
    pub start: u64,
    pub out: Vec<u8>,
    pub prev: u64,
    /// Flags for the next page header instead of the computed ones.
    pub next_page_flags: Option<u16>,
}

/// One block reference to encode.
#[derive(Clone, Default)]
pub struct TestBlock {
    pub id: u8,
    pub fork: u8,
    pub same_rel: bool,
    pub will_init: bool,
    pub rel: (u32, u32, u32),
    pub blk: u32,
    pub data: Vec<u8>,
    /// Stored image bytes, hole offset, bimg_info, hole length written for compressed images.
    pub image: Option<(Vec<u8>, u16, u8, Option<u16>)>,
}

/// Encodes a record body (everything after the 24-byte header).
pub fn body(blocks: &[TestBlock], main: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for b in blocks {
        let mut flags = b.fork;
        flags |= if b.image.is_some() { 0x10 } else { 0 };
        flags |= if b.data.is_empty() { 0 } else { 0x20 };
        flags |= if b.will_init { 0x40 } else { 0 };
        flags |= if b.same_rel { 0x80 } else { 0 };
        v.push(b.id);
        v.push(flags);
        v.extend((b.data.len() as u16).to_le_bytes());
        if let Some((img, hole_off, info, hole_len)) = &b.image {
            v.extend((img.len() as u16).to_le_bytes());
            v.extend(hole_off.to_le_bytes());
            v.push(*info);
            if let Some(h) = hole_len {
                v.extend(h.to_le_bytes());
            }
        }
        if !b.same_rel {
            for x in [b.rel.0, b.rel.1, b.rel.2] {
                v.extend(x.to_le_bytes());
            }
        }
        v.extend(b.blk.to_le_bytes());
    }
    if main.len() > 255 {
        v.push(254);
        v.extend((main.len() as u32).to_le_bytes());
    } else if !main.is_empty() {
        v.push(255);
        v.push(main.len() as u8);
    }
    for b in blocks {
        if let Some((img, ..)) = &b.image {
            v.extend(img);
        }
        v.extend(&b.data);
    }
    v.extend(main);
    v
}

/// A complete record: header with CRC, then `body`.
pub fn record_bytes(rmid: u8, info: u8, xid: u32, prev: u64, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend((24 + body.len() as u32).to_le_bytes());
    r.extend(xid.to_le_bytes());
    r.extend(prev.to_le_bytes());
    r.push(info);
    r.push(rmid);
    r.extend([0, 0]);
    r.extend([0; 4]);
    r.extend(body);
    let crc = super::record::record_crc(&r, crate::flavor::Flavor::Pg15).unwrap();
    r[20..24].copy_from_slice(&crc.to_le_bytes());
    r
}

impl WalBuilder {
    /// A builder whose first byte is at segment `segno`, major 15.
    pub fn new(segno: u64) -> WalBuilder {
        WalBuilder {
            magic: 0xD110,
            tli: 1,
            start: segno * u64::from(SEG),
            out: Vec::new(),
            prev: 0,
            next_page_flags: None,
        }
    }

    pub fn pos(&self) -> u64 {
        self.start + self.out.len() as u64
    }

    fn page_header(&mut self, rem_len: u32) {
        let pos = self.pos();
        let long = pos.is_multiple_of(u64::from(SEG));
        let mut info = if rem_len > 0 {
            XLP_FIRST_IS_CONTRECORD
        } else {
            0
        };
        if let Some(f) = self.next_page_flags.take() {
            info = f;
        }
        if long {
            info |= XLP_LONG_HEADER;
        }
        self.out.extend(self.magic.to_le_bytes());
        self.out.extend(info.to_le_bytes());
        self.out.extend(self.tli.to_le_bytes());
        self.out.extend(pos.to_le_bytes());
        self.out.extend(rem_len.to_le_bytes());
        self.out.extend([0; 4]);
        if long {
            self.out.extend(SYSID.to_le_bytes());
            self.out.extend(SEG.to_le_bytes());
            self.out.extend(XLOG_BLCKSZ.to_le_bytes());
        }
    }

    /// Writes `rec` from its byte `from` on, adding page headers; stops early (returning
    /// false) at a page boundary when `abort` is set.
    fn put(&mut self, rec: &[u8], abort: bool) -> bool {
        let mut i = 0;
        while i < rec.len() {
            if self.pos().is_multiple_of(u64::from(XLOG_BLCKSZ)) {
                if abort && i > 0 {
                    return false;
                }
                self.page_header((rec.len() - i) as u32 * u32::from(i > 0));
            }
            let room = (u64::from(XLOG_BLCKSZ) - self.pos() % u64::from(XLOG_BLCKSZ)) as usize;
            let n = room.min(rec.len() - i);
            self.out.extend(&rec[i..i + n]);
            i += n;
        }
        true
    }

    fn align(&mut self) {
        while !self.pos().is_multiple_of(8) {
            self.out.push(0);
        }
        if self.pos().is_multiple_of(u64::from(XLOG_BLCKSZ)) {
            self.page_header(0);
        }
    }

    /// Appends a record and returns its LSN.
    pub fn record(&mut self, rmid: u8, info: u8, xid: u32, body: &[u8]) -> u64 {
        self.align();
        let lsn = self.pos();
        let rec = record_bytes(rmid, info, xid, self.prev, body);
        self.put(&rec, false);
        self.prev = lsn;
        lsn
    }

    /// Appends a record that spans a page boundary but is cut off there (as at a crash);
    /// `xl_prev` stays at the record before. Returns its LSN.
    pub fn aborted_record(&mut self, body: &[u8]) -> u64 {
        self.align();
        let lsn = self.pos();
        let rec = record_bytes(10, 0, 1, self.prev, body);
        assert!(!self.put(&rec, true), "record did not cross a page");
        lsn
    }

    /// Pads with zeros to the end of the current page.
    pub fn pad_page(&mut self) {
        while !self.pos().is_multiple_of(u64::from(XLOG_BLCKSZ)) {
            self.out.push(0);
        }
    }

    /// Pads with zeros to the end of the current segment.
    pub fn pad_segment(&mut self) {
        while !self.pos().is_multiple_of(u64::from(SEG)) {
            self.out.push(0);
        }
    }

    /// Offset in `out` of WAL position `lsn`.
    pub fn off(&self, lsn: u64) -> usize {
        (lsn - self.start) as usize
    }
}
