//! The changed-block scan and the checkpoint walk-back on openGauss WAL (hand-made records in
//! the layout its server writes).

use super::*;
use crate::xlog::og_testwal::{og_body, og_chain, MemSegment, OgTestBlock, OG_SEG};

const TS: &str = "PG_9.2_201611171_dn1";

fn block(rel: u32, blk: u32) -> OgTestBlock {
    OgTestBlock {
        rel: (1663, 5, rel),
        blk,
        data: vec![1],
        ..OgTestBlock::default()
    }
}

fn scan(records: &[(u8, u8, Vec<u8>)]) -> Result<ChangedBlocks> {
    let (page, lsns) = og_chain(1, records);
    let mut reader = WalReader::new(MemSegment::new(1, &page), OG_SEG, None);
    let end = Lsn(lsns.last().copied().unwrap_or(0) + 1);
    let from = Lsn(lsns[0]);
    scan_changed_blocks(&mut reader, from, end, TS).map(|(c, n)| {
        assert_eq!(n, records.len() as u64);
        c
    })
}

fn blocks(changed: &ChangedBlocks) -> Vec<(String, Vec<u32>)> {
    let mut v: Vec<_> = changed
        .iter()
        .map(|(p, b)| (p.clone(), b.iter().copied().collect()))
        .collect();
    v.sort();
    v
}

#[test]
fn every_main_fork_block_with_no_special_rel_refusal() {
    let logical = OgTestBlock {
        id: 1,
        rel: (1663, 5, 4159),
        bucket: Some((16384, 0)),
        blk: 0,
        seg: Some((3, 131075)),
        ..OgTestBlock::default()
    };
    let physical = OgTestBlock {
        id: 2,
        rel: (1663, 5, 1),
        bucket: Some((16384, 0)),
        blk: 9,
        ..OgTestBlock::default()
    };
    let compressed = OgTestBlock {
        id: 3,
        rel: (1663, 5, 16428),
        bucket: Some((-1, 1034)),
        blk: 4,
        ..OgTestBlock::default()
    };
    let fsm = OgTestBlock {
        id: 4,
        fork: 1,
        ..block(16384, 2)
    };
    let tablespace = OgTestBlock {
        id: 5,
        rel: (16390, 5, 16400),
        blk: 131072 + 6,
        ..OgTestBlock::default()
    };
    let records = [
        // Btree insert leaf: xl_info 0x01, which PostgreSQL's rule would refuse
        (11, 0x01, og_body(&[block(16384, 1)], &[21, 0])),
        // smgr create (0x11) and database create (0x01): file-level, no block references
        (2, 0x11, og_body(&[], &[0; 16])),
        (4, 0x01, og_body(&[], &[0; 16])),
        (
            27,
            0x10,
            og_body(
                &[
                    block(16384, 7),
                    logical,
                    physical,
                    compressed,
                    fsm,
                    tablespace,
                ],
                &[],
            ),
        ),
    ];
    let changed = scan(&records).unwrap();
    assert_eq!(
        blocks(&changed),
        [
            ("base/5/1".to_string(), vec![9]),
            ("base/5/16384".to_string(), vec![1, 7]),
            ("base/5/3.1".to_string(), vec![3]),
            (format!("pg_tblspc/16390/{TS}/5/16400.1"), vec![6]),
        ]
    );
}

#[test]
fn blocks_it_cannot_locate_are_errors() {
    let bucket = OgTestBlock {
        rel: (1663, 5, 16500),
        bucket: Some((7, 0)),
        seg: Some((2, 10)),
        ..OgTestBlock::default()
    };
    let e = scan(&[(10, 0, og_body(&[bucket], &[]))]).unwrap_err();
    assert!(e.to_string().contains("hash bucket 7"), "{e}");
    let odd_file = OgTestBlock {
        rel: (1663, 5, 16500),
        bucket: Some((16384, 0)),
        seg: Some((9, 10)),
        ..OgTestBlock::default()
    };
    let e = scan(&[(10, 0, og_body(&[odd_file], &[]))]).unwrap_err();
    assert!(e.to_string().contains("physical file 9"), "{e}");
}

#[test]
fn checkpoint_walk_back() {
    // An online checkpoint (CheckPointUndo: 120 bytes), then two records.
    let mut cp = vec![0u8; 120];
    cp[0..8].copy_from_slice(&0x100_0028u64.to_le_bytes());
    cp[8..12].copy_from_slice(&1u32.to_le_bytes());
    cp[16..24].copy_from_slice(&13189u64.to_le_bytes());
    let mut main = vec![254];
    main.extend(120u32.to_le_bytes());
    main.extend(&cp);
    let records = [
        (0, 0x10, main),
        (11, 0x01, og_body(&[block(16384, 1)], &[21, 0])),
        (10, 0x00, og_body(&[block(16384, 2)], &[1, 0, 0])),
    ];
    let (page, lsns) = og_chain(1, &records);
    let mut reader = WalReader::new(MemSegment::new(1, &page), OG_SEG, None);
    let found = last_checkpoint_before(&mut reader, Lsn(lsns[2]), Lsn(lsns[2])).unwrap();
    assert_eq!(found.lsn, Lsn(lsns[0]));
    assert_eq!(found.checkpoint.redo, Lsn(0x100_0028));
    assert_eq!(found.checkpoint.next_xid.0, 13189);
}
