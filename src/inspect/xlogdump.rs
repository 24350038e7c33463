//! `gsbuild inspect wal` on openGauss WAL: one line per record in the layout of openGauss's
//! `pg_xlogdump` (`-b` when `--blocks` is given), so tests can compare the two record by
//! record:
//!
//! ```text
//! REDO @ 0/1000170; LSN 0/10002B0: prev 0/10000D0; xid 714; term 1; len 5; total 315; crc 3076310812; desc: Heap - info 0x20, blkref #0: rel 1663/1/1259/-1/0, forknum:0 storage HEAP DISK blk 10 lastlsn 0/28, blkref #1: rel 1663/1/1259/-1/0, forknum:0 storage HEAP DISK blk 0 lastlsn 0/28
//! ```
//!
//! "REDO @" is the record's start, "LSN" its end (where the next record starts), "len" the
//! main data's length, "total" `xl_tot_len`. Where `pg_xlogdump` describes the record's
//! contents per resource manager, this prints `info 0xNN`; a compressed relation's block
//! reference leaves out `pg_xlogdump`'s description of the compression options (`rel …/opt`
//! has them). A segment-page block shows its physical location as `(phy loc <extent size>/
//! <block>)`, a fork other than the main fork ` fork <name>` before `blk`, a full-page image
//! ` FPW`, or with `--blocks` ` (FPW); hole: offset: N, length: M`.
//!
//! No phase: a tool for people and tests.

use crate::relpath::ForkNumber;
use crate::xlog::{BlockRef, Record, SegLocation};
use std::fmt::Write;

/// The record's line (without newline); `details`: `pg_xlogdump -b`'s image details.
pub fn record_line(r: &Record, details: bool) -> String {
    let mut s = format!(
        "REDO @ {}; LSN {}: prev {}; xid {}; term {}; len {}; total {}; crc {}; desc: {} - info 0x{:02X}",
        r.lsn,
        r.end_lsn,
        r.prev(),
        r.xid(),
        r.header.term.unwrap_or(0),
        r.main_data().len(),
        r.tot_len(),
        r.crc(),
        r.rmgr_name(),
        r.info()
    );
    for b in &r.blocks {
        block(&mut s, b, details);
    }
    s
}

/// `, blkref #N: rel spc/db/rel/bucket/opt, forknum:F storage … blk B … lastlsn L[ FPW…]`.
fn block(s: &mut String, b: &BlockRef, details: bool) {
    let og = b.og.unwrap_or(crate::xlog::OgBlock {
        bucket_node: -1,
        opt: 0,
        extra_flag: 0,
        seg: None,
        last_lsn: crate::Lsn::INVALID,
    });
    let storage = if og.is_segment() {
        "SEGMENT PAGE"
    } else {
        "HEAP DISK"
    };
    let _ = write!(
        s,
        ", blkref #{}: rel {}/{}/{}/{}/{}, forknum:{} storage {storage}",
        b.id,
        b.rel.spc,
        b.rel.db,
        b.rel.rel,
        og.bucket_node,
        og.opt,
        b.fork_flags & 0x0F,
    );
    if b.fork != ForkNumber::Main {
        let _ = write!(s, " fork {}", b.fork);
    }
    let _ = write!(s, " blk {}", b.blk);
    if let Some(seg) = og.seg {
        let _ = write!(
            s,
            " (phy loc {}/{})",
            SegLocation::extent_size(seg.fileno),
            seg.blockno
        );
    }
    let _ = write!(s, " lastlsn {}", og.last_lsn);
    if let Some(img) = &b.image {
        if details {
            let _ = write!(
                s,
                " (FPW); hole: offset: {}, length: {}",
                img.hole_offset, img.hole_length
            );
        } else {
            s.push_str(" FPW");
        }
    }
}
