//! openGauss WAL: records its server wrote (the fuzz seeds `fuzz/corpus/wal_record/opengauss-*`,
//! each a whole record), checked field by field against what its `pg_xlogdump` prints for
//! them; hand-made records that do not add up; and the reader on an openGauss page.

use super::og_testwal::{og_page, og_record};
use super::ogrecord::{INVALID_BUCKET, SEGMENT_BUCKET};
use super::page::PageHeader;
use super::record::record_crc;
use super::*;
use crate::control::{CheckPoint, CheckPointUndo};
use crate::flavor::Flavor;
use crate::relpath::{ForkNumber, RelFileLocator};

const OG: Flavor = Flavor::OpenGauss;

macro_rules! seed {
    ($name:literal) => {
        include_bytes!(concat!("../../fuzz/corpus/wal_record/opengauss-", $name))
    };
}

fn decode(raw: &[u8], lsn: u64) -> Record {
    let r = Record::decode(
        Lsn(lsn),
        Lsn(lsn + raw.len() as u64),
        raw.to_vec().into(),
        OG,
    )
    .unwrap_or_else(|e| panic!("record at {lsn:X}: {e}"));
    assert_eq!(record_crc(raw, OG), Some(r.crc()), "CRC of {lsn:X}");
    r
}

fn rel(spc: u32, db: u32, rel: u32) -> RelFileLocator {
    RelFileLocator { spc, db, rel }
}

/// (rel, blk, bucket node, opt, data length, last_lsn, physical location) of each block.
type Shape = (RelFileLocator, u32, i16, u16, usize, u64, Option<(u8, u32)>);

fn shapes(r: &Record) -> Vec<Shape> {
    r.blocks
        .iter()
        .map(|b| {
            let og = b.og.expect("openGauss block");
            let seg = og.seg.map(|s| (s.fileno, s.blockno.0));
            (
                b.rel,
                b.blk.0,
                og.bucket_node,
                og.opt,
                b.data.len(),
                og.last_lsn.0,
                seg,
            )
        })
        .collect()
}

#[test]
fn heap_update_with_a_same_rel_block() {
    // REDO @ 0/1000170; LSN 0/10002B0: prev 0/10000D0; xid 714; term 1; len 5; total 315
    let r = decode(seed!("heap-update-same-rel"), 0x1000170);
    assert_eq!(
        (r.rmgr_name().as_ref(), r.info(), r.xid()),
        ("Heap", 0x20, 714)
    );
    assert_eq!(
        (r.term(), r.header.bucket_id, r.prev()),
        (Some(1), Some(0), Lsn(0x10000D0))
    );
    assert_eq!((r.tot_len(), r.main_data().len()), (315, 5));
    let c = rel(1663, 1, 1259);
    assert_eq!(
        shapes(&r),
        [
            (c, 10, INVALID_BUCKET, 0, 230, 0x28, None),
            (c, 0, INVALID_BUCKET, 0, 0, 0x28, None)
        ]
    );
    assert!(r.blocks.iter().all(|b| b.fork == ForkNumber::Main));
}

#[test]
fn btree_insert_and_commit_flags_are_not_special() {
    let r = decode(seed!("btree-insert-leaf"), 0x10002B0);
    assert_eq!((r.rmgr_name().as_ref(), r.info()), ("Btree", 0x01));
    assert_eq!(shapes(&r), [(rel(1663, 1, 2662), 1, -1, 0, 16, 0x28, None)]);
    let c = decode(seed!("xact-commit"), 0x1000400);
    assert_eq!((c.rmgr_name().as_ref(), c.info()), ("Transaction", 0x04));
    assert_eq!((c.header.bucket_id, c.blocks.len()), (Some(2), 0));
    assert_eq!(c.main_data().len(), 104);
}

#[test]
fn origin_is_four_bytes() {
    let r = decode(seed!("heap-toast-origin"), 0x1169B20);
    assert_eq!(r.origin, Some(0));
    assert_eq!(r.blocks.len(), 1);
    assert_eq!(r.toplevel_xid, None);
}

#[test]
fn full_page_image_without_bimg_info() {
    // (FPW); hole: offset: 56, length: 8112
    let r = decode(seed!("heap-newpage-fpw"), 0x1235AF8);
    let img = r.blocks[0].image.as_ref().unwrap();
    assert_eq!(
        (img.hole_offset, img.hole_length, img.length),
        (56, 8112, 80)
    );
    assert_eq!(img.bytes.len(), 80);
    assert_eq!((r.fpi_len(), r.rec_len()), (80, 146 - 80));
    assert_eq!(r.blocks[0].rel, rel(1663, 1, 12478));
}

#[test]
fn checkpoint_records() {
    let boot = decode(seed!("checkpoint-bootstrap"), 0x1000028);
    assert!(boot.is_checkpoint());
    let cp = CheckPoint::decode(boot.main_data(), OG).unwrap();
    assert_eq!((cp.redo, cp.this_timeline_id.0), (Lsn(0x1000028), 1));
    assert_eq!(
        (cp.next_xid.0, cp.next_oid, cp.full_page_writes),
        (4, 10000, false)
    );
    assert_eq!(CheckPointUndo::decode(boot.main_data()), None);
    // redo 0/4FDD248; len 120; next_csn 1624; recent_global_xmin 12979; tli 1; xid 13189
    let r = decode(seed!("checkpoint-shutdown-undo"), 0x4FDD248);
    assert_eq!((r.crc(), r.rmgr_info()), (0x897A96C4, 0x00));
    let cp = CheckPoint::decode(r.main_data(), OG).unwrap();
    assert_eq!(
        (cp.redo, cp.next_xid.0, cp.next_oid),
        (Lsn(0x4FDD248), 13189, 16400)
    );
    assert_eq!(cp.remove_seg, Some(1));
    let undo = CheckPointUndo::decode(r.main_data()).unwrap();
    assert_eq!(
        (undo.next_csn, undo.length, undo.recent_global_xmin),
        (1624, 120, 12979)
    );
}

#[test]
fn segment_page_records_carry_physical_locations() {
    // SegpageStorage segment head extend: blkref #0 rel 1663/15037/1/16384/0 blk 4159,
    // blkref #1 rel 1663/15037/4159/16384/0 blk 0 (phy loc 8/4157)
    let r = decode(seed!("segpage-head-extend"), 0x271B858);
    assert_eq!(
        (r.rmgr_name().as_ref(), r.header.bucket_id),
        ("SegpageStorage", Some(16385))
    );
    assert_eq!(
        shapes(&r),
        [
            (
                rel(1663, 15037, 1),
                4159,
                SEGMENT_BUCKET,
                0,
                28,
                0x271B858,
                None
            ),
            (
                rel(1663, 15037, 4159),
                0,
                SEGMENT_BUCKET,
                0,
                0,
                0,
                Some((2, 4157))
            )
        ]
    );
    assert!(r.blocks[1].will_init);
    assert_eq!(SegLocation::extent_size(2), 8);
    // five blocks of physical file 1, the last four SAME_REL (no node, no extra_flag)
    let r = decode(seed!("segpage-atomic-5-blocks"), 0x271DE28);
    let blks: Vec<(u32, u32, i16)> = shapes(&r).iter().map(|s| (s.0.rel, s.1, s.2)).collect();
    assert_eq!(
        blks,
        [
            (1, 3, 16384),
            (1, 2, 16384),
            (1, 67, 16384),
            (1, 4160, 16384),
            (1, 4157, 16384)
        ]
    );
    // a full-page image of a logical segment-page block: image header before the node
    let r = decode(seed!("heap-newpage-segment-fpw"), 0x271B8E0);
    assert_eq!(
        shapes(&r),
        [(rel(1663, 15037, 4159), 0, 16384, 0, 0, 0, Some((2, 4157)))]
    );
    assert_eq!(r.blocks[0].image.as_ref().map(|i| i.length), Some(80));
}

#[test]
fn compressed_relation_options() {
    // rel 1663/15037/16428/-1/1034, Heap2 multi-insert with XLR_REL_COMPRESS (info 0xD4)
    let r = decode(seed!("heap2-multi-insert-compressed"), 0x27BA900);
    assert_eq!((r.rmgr_name().as_ref(), r.info()), ("Heap2", 0xD4));
    assert_eq!(
        shapes(&r),
        [(rel(1663, 15037, 16428), 0, -1, 1034, 7344, 0, None)]
    );
}

/// One block reference to 1663/5/16384 blk 7 with `data`, then main data `main`.
fn one_block(data: &[u8], main: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0x20];
    v.extend((data.len() as u16).to_le_bytes());
    for x in [1663u32, 5, 16384] {
        v.extend(x.to_le_bytes());
    }
    v.extend(0u16.to_le_bytes());
    v.extend(7u32.to_le_bytes());
    v.extend(0x1234u64.to_le_bytes());
    v.extend([255, main.len() as u8]);
    v.extend(data);
    v.extend(main);
    v
}

#[test]
fn records_that_do_not_add_up_are_not_understood() {
    let good = og_record(10, 0, 0x28, &one_block(b"abc", b"m"));
    let r = decode(&good, 0x1000028);
    assert_eq!(
        shapes(&r),
        [(rel(1663, 5, 16384), 7, -1, 0, 3, 0x1234, None)]
    );
    let not_understood = |body: Vec<u8>| {
        let raw = og_record(10, 0, 0x28, &body);
        let end = Lsn(0x1000028 + raw.len() as u64);
        match Record::decode(Lsn(0x1000028), end, raw.into(), OG) {
            Err(WalError::NotUnderstood(why)) => why,
            other => panic!("{other:?}"),
        }
    };
    // a PostgreSQL-style block (no last_lsn): the bytes do not add up
    let mut pg_style = one_block(b"abc", b"m");
    pg_style.drain(22..30);
    not_understood(pg_style);
    // one byte too many, a TDE flag, a block id PostgreSQL uses (252), fork 5
    let mut extra = one_block(b"abc", b"m");
    extra.push(0);
    not_understood(extra);
    let mut tde = one_block(b"abc", b"m");
    tde[0] |= 0x40;
    assert!(not_understood(tde).contains("TDE"));
    not_understood(vec![252, 0, 0, 0, 0]);
    let mut fork = one_block(b"abc", b"m");
    fork[1] |= 5;
    assert!(not_understood(fork).contains("fork"));
    let mut same_rel_first = one_block(b"", b"");
    same_rel_first[1] = 0x80;
    not_understood(same_rel_first);
}

#[test]
fn reader_reads_opengauss_pages() {
    let start = 1u64 << 24;
    let first = og_record(0, 0x30, start - 8, &[255, 4, 1, 2, 3, 4]);
    let second = og_record(10, 0, start + 40, &one_block(b"xy", b""));
    let page = og_page(1, &[first, second]);
    let h = PageHeader::decode(&page).unwrap();
    assert_eq!((h.flavor, h.total_len), (OG, Some(0)));
    let mut r = WalStreamReader::new(Lsn(start), 16 << 20, Some(42));
    r.feed(&page);
    r.finish();
    let a = r.poll().unwrap().unwrap();
    let b = r.poll().unwrap().unwrap();
    assert_eq!((a.lsn, b.lsn), (Lsn(start + 40), Lsn(start + 40 + 40)));
    assert_eq!((a.rmgr_name().as_ref(), b.blocks[0].blk.0), ("XLOG", 7));
    assert!(r.poll().unwrap().is_none());
    assert_eq!(r.end_of_wal().map(|e| e.lsn), Some(b.end_lsn));
}

#[test]
fn a_record_not_understood_is_an_error_not_the_end_of_wal() {
    let start = 1u64 << 24;
    let mut body = one_block(b"xy", b"");
    body.drain(24..32);
    let page = og_page(1, &[og_record(10, 0, start - 8, &body)]);
    let mut r = WalStreamReader::new(Lsn(start), 16 << 20, None);
    r.feed(&page);
    r.finish();
    let e = r.poll().unwrap_err().to_string();
    assert!(e.starts_with("record format not understood:"), "{e}");
    assert!(e.ends_with("at 0/1000028"), "{e}");
}

#[test]
fn opengauss_pages_have_three_flags() {
    let mut page = og_page(1, &[]);
    page[2] |= 0x08;
    let exp = page::PageExpect {
        pageaddr: Lsn(1 << 24),
        seg_size: 16 << 20,
        sysid: None,
        flavor: None,
        min_tli: 0,
    };
    assert!(matches!(
        PageHeader::read_checked(&page, &exp),
        Err(page::PageFault::Bad(WalError::BadInfoBits(0x0E)))
    ));
}
