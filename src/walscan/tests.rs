//! Which changed blocks replay rewrites ([`super::Scanned::rewritten`]), on hand-built WAL.

use super::*;
use crate::xlog::testwal::{body, TestBlock, WalBuilder, SEG, SYSID};

/// One in-memory segment.
struct OneSeg(XLogSegNo, Bytes);

impl SegmentSource for OneSeg {
    fn read_segment(&mut self, segno: XLogSegNo) -> Result<Option<Bytes>> {
        Ok((segno == self.0).then(|| self.1.clone()))
    }
    fn segment_name(&self, segno: XLogSegNo) -> String {
        format!("seg {}", segno.0)
    }
}

const HEAP: u8 = 10;

/// A heap record naming block `blk` of base/5/16384, with an image (applied or not) or
/// initialising the page.
fn heap(b: &mut WalBuilder, blk: u32, image: Option<bool>, will_init: bool) -> u64 {
    let block = TestBlock {
        rel: (1663, 5, 16384),
        blk,
        will_init,
        // Major 15's bits: 0x02 is BKPIMAGE_APPLY.
        image: image.map(|apply| (vec![7; 8192], 0, if apply { 0x02 } else { 0 }, None)),
        data: if image.is_some() {
            vec![]
        } else {
            vec![1, 2, 3]
        },
        ..Default::default()
    };
    b.record(HEAP, 0, 9, &body(&[block], &[0; 3]))
}

/// Scans `b` from `from` to `to` with common history up to `common_end`: the changed and the
/// rewritten blocks of base/5/16384.
fn rewritten(b: &WalBuilder, (from, to): (u64, u64), common_end: u64) -> (Vec<u32>, Vec<u32>) {
    let seg = Bytes::from(b.out.clone());
    let mut r = WalReader::new(OneSeg(XLogSegNo(3), seg), SEG, Some(SYSID));
    let s = scan_blocks(&mut r, (Lsn(from), Lsn(to)), Some(Lsn(common_end)), "").expect("scan");
    let of = |m: &ChangedBlocks| {
        m.get("base/5/16384")
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    };
    (of(&s.changed), of(&s.rewritten))
}

#[test]
fn first_references_in_common_history_that_rewrite_the_page() {
    for with_dbase in [false, true] {
        let mut b = WalBuilder::new(3);
        let from = heap(&mut b, 1, Some(true), false); // applied image: rewritten
        heap(&mut b, 2, None, false); // a delta: the page is read
        heap(&mut b, 3, Some(false), false); // image for consistency checks only
        heap(&mut b, 4, None, true); // initialised
        heap(&mut b, 2, Some(true), false); // not the first reference of block 2
        if with_dbase {
            // A database created by copying its template: replay reads whole directories.
            b.record(rmgr::RM_DBASE_ID, 0, 9, &body(&[], &[0; 16]));
        }
        heap(&mut b, 5, Some(true), false);
        // The divergence point: where the next record starts.
        let common_end = heap(&mut b, 6, Some(true), false);
        // The target's end of WAL.
        let end = b.record(HEAP, 0, 9, &body(&[], &[0; 3]));
        b.pad_segment();
        let (changed, rewritten) = rewritten(&b, (from, end), common_end);
        assert_eq!(changed, [1, 2, 3, 4, 5, 6]);
        let want: &[u32] = if with_dbase { &[1, 4] } else { &[1, 4, 5] };
        assert_eq!(rewritten, want, "with a database created: {with_dbase}");
    }
}

#[test]
fn blocks_first_named_after_the_divergence() {
    for with_dbase in [false, true] {
        let mut b = WalBuilder::new(3);
        let from = heap(&mut b, 1, None, false);
        if with_dbase {
            b.record(rmgr::RM_DBASE_ID, 0, 9, &body(&[], &[0; 16]));
        }
        // The divergence point: the target's own records from here.
        let common_end = heap(&mut b, 2, None, false);
        heap(&mut b, 1, None, false); // named in common history too
        heap(&mut b, 3, Some(true), false);
        let end = b.record(HEAP, 0, 9, &body(&[], &[0; 3]));
        b.pad_segment();
        let seg = Bytes::from(b.out.clone());
        let mut r = WalReader::new(OneSeg(XLogSegNo(3), seg), SEG, Some(SYSID));
        let s =
            scan_blocks(&mut r, (Lsn(from), Lsn(end)), Some(Lsn(common_end)), "").expect("scan");
        let after: Vec<u32> = s
            .after_divergence
            .get("base/5/16384")
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let want: &[u32] = if with_dbase { &[] } else { &[2, 3] };
        assert_eq!(after, want, "with a database created: {with_dbase}");
        let changed: Vec<u32> = s.changed["base/5/16384"].iter().copied().collect();
        assert_eq!(changed, [1, 2, 3]);
    }
}
