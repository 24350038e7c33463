//! A tiny openGauss WAL writer for unit tests: records with the 32-byte header and openGauss
//! block references, laid out on the first page of a 16 MiB segment, and an in-memory
//! segment source to read them back.
//!
//! No phase: unit tests only.

use super::record::record_crc;
use super::SegmentSource;
use crate::flavor::Flavor;
use crate::lsn::XLogSegNo;
use bytes::Bytes;

/// openGauss's segment size.
pub const OG_SEG: u32 = 16 << 20;

/// One openGauss block reference to encode.
#[derive(Clone, Default)]
pub struct OgTestBlock {
    pub id: u8,
    pub fork: u8,
    pub same_rel: bool,
    pub rel: (u32, u32, u32),
    /// `(bucketNode, opt)`: written as the 16-byte node (id | 0x80).
    pub bucket: Option<(i16, u16)>,
    pub blk: u32,
    /// `(seg_fileno, seg_blockno)`, written when the node is a logical segment relation.
    pub seg: Option<(u8, u32)>,
    pub data: Vec<u8>,
    pub last_lsn: u64,
}

/// A record body: block headers, then `main`'s header, then the data.
pub fn og_body(blocks: &[OgTestBlock], main: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for b in blocks {
        let big = b.bucket.is_some() && !b.same_rel;
        v.push(b.id | if big { 0x80 } else { 0 });
        let mut flags = b.fork;
        flags |= if b.data.is_empty() { 0 } else { 0x20 };
        flags |= if b.same_rel { 0x80 } else { 0 };
        v.push(flags);
        v.extend((b.data.len() as u16).to_le_bytes());
        if !b.same_rel {
            for x in [b.rel.0, b.rel.1, b.rel.2] {
                v.extend(x.to_le_bytes());
            }
            if let Some((bucket, opt)) = b.bucket {
                v.extend(bucket.to_le_bytes());
                v.extend(opt.to_le_bytes());
            }
            v.extend(0u16.to_le_bytes());
        }
        v.extend(b.blk.to_le_bytes());
        if let Some((fileno, blockno)) = b.seg {
            v.push(fileno);
            v.extend(blockno.to_le_bytes());
        }
        v.extend(b.last_lsn.to_le_bytes());
    }
    if !main.is_empty() {
        v.extend([255, main.len() as u8]);
    }
    for b in blocks {
        v.extend(&b.data);
    }
    v.extend(main);
    v
}

/// A record with `body` after a 32-byte header (term 1, xid 99, CRC set).
pub fn og_record(rmid: u8, info: u8, prev: u64, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend((32 + body.len() as u32).to_le_bytes());
    r.extend(1u32.to_le_bytes());
    r.extend(99u64.to_le_bytes());
    r.extend(prev.to_le_bytes());
    r.extend([info, rmid, 0, 0]);
    r.extend([0; 4]);
    r.extend(body);
    let crc = record_crc(&r, Flavor::OpenGauss).unwrap_or_default();
    r[28..32].copy_from_slice(&crc.to_le_bytes());
    r
}

/// The first page of segment `segno` (system id 42) holding `records`, which must fit.
pub fn og_page(segno: u64, records: &[Vec<u8>]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(0xD074u16.to_le_bytes());
    p.extend(0x0006u16.to_le_bytes());
    p.extend(1u32.to_le_bytes());
    p.extend((segno * u64::from(OG_SEG)).to_le_bytes());
    p.extend([0; 8]);
    p.extend(42u64.to_le_bytes());
    p.extend(OG_SEG.to_le_bytes());
    p.extend(8192u32.to_le_bytes());
    for r in records {
        p.extend(r);
        p.resize(p.len().next_multiple_of(8), 0);
    }
    assert!(p.len() <= 8192, "records do not fit on a page");
    p.resize(8192, 0);
    p
}

/// Records chained by `xl_prev` on the first page of segment `segno`; returns the page and the
/// records' LSNs.
pub fn og_chain(segno: u64, records: &[(u8, u8, Vec<u8>)]) -> (Vec<u8>, Vec<u64>) {
    let mut lsn = segno * u64::from(OG_SEG) + 40;
    let mut prev = lsn - 8;
    let mut raw = Vec::new();
    let mut lsns = Vec::new();
    for (rmid, info, body) in records {
        let r = og_record(*rmid, *info, prev, body);
        lsns.push(lsn);
        prev = lsn;
        lsn += (r.len() as u64).next_multiple_of(8);
        raw.push(r);
    }
    (og_page(segno, &raw), lsns)
}

/// One segment in memory (the rest of it zero).
pub struct MemSegment {
    pub segno: u64,
    pub bytes: Bytes,
}

impl MemSegment {
    /// Segment `segno` starting with `page`.
    pub fn new(segno: u64, page: &[u8]) -> MemSegment {
        let mut bytes = vec![0u8; OG_SEG as usize];
        bytes[..page.len()].copy_from_slice(page);
        MemSegment {
            segno,
            bytes: bytes.into(),
        }
    }
}

impl SegmentSource for MemSegment {
    fn read_segment(&mut self, segno: XLogSegNo) -> crate::Result<Option<Bytes>> {
        Ok((segno.0 == self.segno).then(|| self.bytes.clone()))
    }

    fn segment_name(&self, segno: XLogSegNo) -> String {
        format!("memory segment {}", segno.0)
    }
}
