//! Unit tests of the reader and the record decoder on hand-built WAL (see `testwal`).

use super::testwal::{body, record_bytes, TestBlock, WalBuilder, SEG, SYSID};
use super::*;
use crate::flavor::Flavor;
use crate::lsn::{Lsn, XLogSegNo};
use crate::relpath::{ForkNumber, RelFileLocator};
use crate::Error;
use bytes::Bytes;

/// Reads everything from `input` (which starts at `start`'s page), fed in chunks of the given
/// sizes (cycled), then finished. Returns the records and the end or the error.
fn read_all(input: &[u8], start: u64, chunks: &[usize]) -> (Vec<Record>, Result<EndOfWal, Error>) {
    let mut r = WalStreamReader::new(Lsn(start), SEG, Some(SYSID));
    let mut recs = Vec::new();
    let mut at = 0;
    let mut i = 0;
    loop {
        match r.poll() {
            Ok(Some(rec)) => recs.push(rec),
            Ok(None) => {
                if let Some(e) = r.end_of_wal() {
                    return (recs, Ok(e.clone()));
                }
                if at == input.len() {
                    r.finish();
                    continue;
                }
                let n = chunks[i % chunks.len()].min(input.len() - at);
                r.feed(&input[at..at + n]);
                at += n;
                i += 1;
            }
            Err(e) => return (recs, Err(e)),
        }
    }
}

fn heap_body(n: usize) -> Vec<u8> {
    let blk = TestBlock {
        id: 0,
        rel: (1663, 5, 16384),
        blk: 3,
        data: vec![0xAB; n],
        ..Default::default()
    };
    body(&[blk], &[1, 2, 3])
}

/// A segment (number 1) with small records, one 20 KB record over three pages, and more.
fn sample() -> (WalBuilder, Vec<u64>) {
    let mut b = WalBuilder::new(1);
    let mut lsns = Vec::new();
    for i in 0..50 {
        lsns.push(b.record(10, 0, 700 + i, &heap_body(40 + i as usize)));
    }
    lsns.push(b.record(10, 0x80, 800, &heap_body(20_000)));
    for i in 0..20 {
        lsns.push(b.record(11, 0x10, 900 + i, &heap_body(100)));
    }
    b.pad_page();
    (b, lsns)
}

#[test]
fn reads_records_and_ends_at_zero_length() {
    let (b, lsns) = sample();
    let (recs, end) = read_all(&b.out, b.start, &[1 << 20]);
    let end = end.unwrap();
    assert_eq!(recs.iter().map(|r| r.lsn.0).collect::<Vec<_>>(), lsns);
    assert_eq!(end.lsn, recs.last().unwrap().end_lsn);
    assert_eq!(end.reason, Some(WalError::BadRecordLength(0)));
    let big = &recs[50];
    assert_eq!(big.blocks[0].data.len(), 20_000);
    assert_eq!(big.prev(), Lsn(lsns[49]));
    assert_eq!(big.main_data(), &[1, 2, 3]);
    assert_eq!(big.rmgr_name(), "Heap");
    assert_eq!(big.flavor, Flavor::Pg15);
    assert!(
        big.data_end.0 > big.lsn.0 + 20_000 + 48,
        "page headers counted"
    );
}

#[test]
fn chunked_input_gives_the_same_records() {
    let (b, _) = sample();
    let (whole, end) = read_all(&b.out, b.start, &[usize::MAX]);
    let mut seed = 12345u64;
    let sizes: Vec<usize> = (0..97)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + (seed >> 33) as usize % 3000
        })
        .collect();
    let (chunked, end2) = read_all(&b.out, b.start, &sizes);
    assert_eq!(whole, chunked);
    assert_eq!(end.unwrap(), end2.unwrap());
    let (bytewise, _) = read_all(&b.out, b.start, &[1]);
    assert_eq!(whole, bytewise);
}

/// Reading from a record in the middle of a page, with the input starting at that page: the
/// page header must not be dropped when the first chunks end before the record (a source's
/// WAL delivered timeline by timeline ends a chunk at each switch point).
#[test]
fn mid_page_start_with_short_first_chunks() {
    let (b, lsns) = sample();
    for start in [lsns[3], lsns[50], lsns[60]] {
        let page = start - start % u64::from(XLOG_BLCKSZ);
        let input = &b.out[b.off(page)..];
        let (whole, end) = read_all(input, start, &[usize::MAX]);
        let end = end.unwrap();
        assert_eq!(whole.first().map(|r| r.lsn.0), Some(start));
        for chunks in [
            &[1usize][..],
            &[7],
            &[100, 3],
            &[(start - page) as usize - 8, 64],
        ] {
            let (got, end2) = read_all(input, start, chunks);
            assert_eq!(got, whole, "start {start:#x}, chunks {chunks:?}");
            assert_eq!(end2.unwrap(), end);
        }
    }
}

#[test]
fn flipped_byte_in_the_middle_is_a_crc_error_naming_the_lsn() {
    let (mut b, lsns) = sample();
    let at = b.off(lsns[10]) + 30;
    b.out[at] ^= 0x40;
    let (recs, err) = read_all(&b.out, b.start, &[4096]);
    assert_eq!(recs.len(), 10);
    match err.unwrap_err() {
        Error::Wal { lsn, kind } => {
            assert_eq!((lsn, kind), (Lsn(lsns[10]), WalError::BadCrc));
        }
        e => panic!("{e}"),
    }
}

#[test]
fn flipped_byte_in_the_tail_record_is_end_of_wal() {
    let (mut b, lsns) = sample();
    let last = *lsns.last().unwrap();
    let at = b.off(last) + 30;
    b.out[at] ^= 0x40;
    let (recs, end) = read_all(&b.out, b.start, &[4096]);
    assert_eq!(recs.len(), lsns.len() - 1);
    let end = end.unwrap();
    assert_eq!(end.lsn, Lsn(last));
    assert_eq!(end.reason, Some(WalError::BadCrc));
}

#[test]
fn truncated_input_ends_at_the_incomplete_record() {
    let (b, lsns) = sample();
    let cut = b.off(lsns[50]) + 10_000;
    let (recs, end) = read_all(&b.out[..cut], b.start, &[8192]);
    assert_eq!(recs.len(), 50);
    assert_eq!(
        end.unwrap(),
        EndOfWal {
            lsn: Lsn(lsns[50]),
            reason: None
        }
    );
}

#[test]
fn bad_magic_and_page_addresses() {
    let (b, lsns) = sample();
    let page2 = (b.off(lsns[50]) / 8192 + 1) * 8192;
    let page2_lsn = Lsn(b.start + page2 as u64);
    let mut bad = b.out.clone();
    bad[page2] = 0x99;
    match read_all(&bad, b.start, &[8192]).1.unwrap_err() {
        Error::Wal { lsn, kind } => {
            assert_eq!((lsn, kind), (page2_lsn, WalError::BadMagic(0xD199)))
        }
        e => panic!("{e}"),
    }
    let mut ahead = b.out.clone();
    ahead[page2 + 8..page2 + 16].copy_from_slice(&(page2_lsn.0 + 8192).to_le_bytes());
    match read_all(&ahead, b.start, &[8192]).1.unwrap_err() {
        Error::Wal { lsn, kind } => {
            assert_eq!(
                (lsn, kind),
                (page2_lsn, WalError::BadPageAddr(Lsn(page2_lsn.0 + 8192)))
            )
        }
        e => panic!("{e}"),
    }
    // An older address (a recycled segment) ends the WAL at the record that needed the page.
    let mut stale = b.out.clone();
    stale[page2 + 8..page2 + 16].copy_from_slice(&(page2_lsn.0 - u64::from(SEG)).to_le_bytes());
    let (recs, end) = read_all(&stale, b.start, &[8192]);
    assert_eq!(recs.len(), 50);
    assert_eq!(end.unwrap().lsn, Lsn(lsns[50]));
}

#[test]
fn wrong_sysid_is_an_error() {
    let (b, _) = sample();
    let mut r = WalStreamReader::new(Lsn(b.start), SEG, Some(SYSID + 1));
    r.feed(&b.out);
    assert!(matches!(
        r.poll(),
        Err(Error::Wal {
            kind: WalError::SysidMismatch { .. },
            ..
        })
    ));
}

#[test]
fn decode_errors_name_the_record() {
    let mut b = WalBuilder::new(1);
    b.record(10, 0, 1, &heap_body(10));
    let two = |id0, id1| {
        let mk = |id| TestBlock {
            id,
            rel: (1, 2, 3),
            ..Default::default()
        };
        body(&[mk(id0), mk(id1)], &[])
    };
    let bad = b.record(10, 0, 2, &two(1, 1));
    b.record(10, 0, 3, &heap_body(10));
    b.pad_page();
    b.record(10, 0, 4, &heap_body(10));
    b.pad_page();
    let (recs, err) = read_all(&b.out, b.start, &[100]);
    assert_eq!(recs.len(), 1);
    match err.unwrap_err() {
        Error::Wal { lsn, kind } => {
            assert_eq!((lsn, kind), (Lsn(bad), WalError::BlockIdOutOfOrder(1)))
        }
        e => panic!("{e}"),
    }
}

fn decode(body: &[u8], flavor: Flavor) -> Result<Record, WalError> {
    let raw = record_bytes(10, 0, 5, 0x100, body);
    Record::decode(Lsn(0x1000), Lsn(0x2000), raw.into(), flavor)
}

#[test]
fn block_references() {
    let mk = |id, fork, same_rel, rel: (u32, u32, u32), blk| TestBlock {
        id,
        fork,
        same_rel,
        rel,
        blk,
        ..Default::default()
    };
    let mut b0 = mk(0, 0, false, (1663, 5, 16384), 7);
    b0.image = Some((vec![9; 8192 - 100], 60, 0x01 | 0x02, None));
    let mut b1 = mk(2, 2, true, (0, 0, 0), 0);
    b1.data = vec![1, 2];
    b1.will_init = true;
    let mut b2 = mk(3, 1, false, (1664, 0, 1262), 4);
    b2.image = Some((vec![8; 300], 0, 0x08, None));
    let mut raw = vec![253, 7, 0, 252, 44, 0, 0, 0];
    raw.extend(body(&[b0, b1, b2], &[0x55; 300]));
    let r = decode(&raw, Flavor::Pg15).unwrap();
    assert_eq!(r.origin, Some(7));
    assert_eq!(r.toplevel_xid, Some(44));
    assert_eq!(r.main_data(), &[0x55; 300][..]);
    assert_eq!(r.blocks.len(), 3);
    let [a, b, c] = &r.blocks[..] else { panic!() };
    let img = a.image.as_ref().unwrap();
    assert_eq!(
        (img.length, img.hole_offset, img.hole_length),
        (8092, 60, 100)
    );
    assert!(img.apply && img.compression == Compression::None);
    assert_eq!(
        b.rel,
        RelFileLocator {
            spc: 1663,
            db: 5,
            rel: 16384
        }
    );
    assert_eq!(
        (b.fork, b.blk.0, b.will_init, &b.data[..]),
        (ForkNumber::VisibilityMap, 0, true, &[1u8, 2][..])
    );
    let img = c.image.as_ref().unwrap();
    assert_eq!(
        (img.compression, img.apply, img.hole_length),
        (Compression::Lz4, false, 0)
    );
    assert_eq!(r.fpi_len(), 8092 + 300);
    assert_eq!(r.rec_len(), r.tot_len() - 8392);
    // 14 numbers the bits differently: 0x02 is "compressed" (pglz), 0x04 "apply".
    let mut b = mk(0, 0, false, (1, 2, 3), 1);
    b.image = Some((vec![1; 500], 100, 0x01 | 0x02 | 0x04, Some(40)));
    let r = decode(&body(&[b], &[]), Flavor::Pg14).unwrap();
    let img = r.blocks[0].image.as_ref().unwrap();
    assert_eq!(
        (img.compression, img.apply, img.hole_length),
        (Compression::Pglz, true, 40)
    );
}

#[test]
fn block_reference_errors() {
    let mk = |id| TestBlock {
        id,
        rel: (1, 2, 3),
        ..Default::default()
    };
    let e = |b: &[u8]| decode(b, Flavor::Pg16).unwrap_err();
    assert_eq!(
        e(&body(&[mk(3), mk(2)], &[])),
        WalError::BlockIdOutOfOrder(2)
    );
    assert_eq!(e(&body(&[mk(33)], &[])), WalError::BadBlockId(33));
    let mut b = mk(0);
    b.fork = 5;
    assert_eq!(e(&body(&[b], &[])), WalError::BadFork(5));
    let mut b = mk(0);
    b.same_rel = true;
    assert_eq!(e(&body(&[b], &[])), WalError::SameRelWithoutRel);
    // HAS_DATA without data
    let mut raw = body(&[mk(0)], &[]);
    raw[1] |= 0x20;
    assert_eq!(e(&raw), WalError::BlockDataFlag(0));
    // a header that promises more data than the record has
    let mut raw = body(&[mk(0)], &[]);
    raw[2] = 10;
    raw[1] |= 0x20;
    assert_eq!(e(&raw), WalError::BadLength);
    // truncated in the middle of a block header
    assert_eq!(e(&body(&[mk(0)], &[])[..10]), WalError::BadLength);
    // an uncompressed image without hole must be a whole page
    let mut b = mk(0);
    b.image = Some((vec![0; 100], 0, 0x02, None));
    assert!(matches!(e(&body(&[b], &[])), WalError::BadImage { .. }));
    let mut b = mk(0);
    b.image = Some((vec![0; 100], 0, 0x01 | 0x04, Some(0)));
    assert!(matches!(e(&body(&[b], &[])), WalError::BadImage { .. }));
}

#[test]
fn switch_skips_to_the_next_segment() {
    let mut b = WalBuilder::new(1);
    b.record(10, 0, 1, &heap_body(10));
    let sw = b.record(0, 0x40, 0, &[]);
    b.pad_segment();
    let next = b.record(10, 0, 2, &heap_body(10));
    b.pad_page();
    let (recs, end) = read_all(&b.out, b.start, &[65536]);
    assert_eq!(recs.len(), 3);
    assert!(recs[1].is_switch() && recs[1].lsn.0 == sw);
    assert_eq!(recs[1].end_lsn, Lsn(2 * u64::from(SEG)));
    assert_eq!((recs[2].lsn.0, recs[2].prev().0), (next, sw));
    assert!(end.is_ok());
}

#[test]
fn records_cross_segments_and_aligned_start_skips_continuations() {
    let mut b = WalBuilder::new(1);
    let mut lsns = Vec::new();
    while b.pos() < 2 * u64::from(SEG) + 50_000 {
        lsns.push(b.record(10, 0, 1, &heap_body(5_000)));
    }
    b.pad_page();
    let (recs, _) = read_all(&b.out, b.start, &[100_000]);
    assert_eq!(recs.iter().map(|r| r.lsn.0).collect::<Vec<_>>(), lsns);
    // Start at a page in the middle of a record: the first record returned begins after it.
    let page = 2 * u64::from(SEG) + 8192;
    let (recs, _) = read_all(&b.out[b.off(page)..], page, &[100_000]);
    let first = lsns.iter().copied().find(|&l| l >= page).unwrap();
    assert_eq!(recs[0].lsn.0, first);
    // An unaligned start is a record start.
    let (recs, _) = read_all(&b.out[b.off(lsns[3] & !8191)..], lsns[3], &[100_000]);
    assert_eq!(recs[0].lsn.0, lsns[3]);
    assert_eq!(recs.len(), lsns.len() - 3);
}

#[test]
fn overwrite_contrecord() {
    let mut b = WalBuilder::new(1);
    let mut last = 0;
    while b.pos() % 8192 < 7000 {
        last = b.record(10, 0, 1, &heap_body(100));
    }
    let aborted = b.aborted_record(&heap_body(3000));
    b.next_page_flags = Some(page::XLP_FIRST_IS_OVERWRITE_CONTRECORD);
    let mut main = aborted.to_le_bytes().to_vec();
    main.extend(0i64.to_le_bytes());
    let ow = b.record(0, 0xD0, 0, &body(&[], &main));
    let after = b.record(10, 0, 2, &heap_body(10));
    b.pad_page();
    let (recs, end) = read_all(&b.out, b.start, &[3000]);
    assert!(end.is_ok());
    let i = recs.iter().position(|r| r.lsn.0 == ow).unwrap();
    assert_eq!(recs[i].overwritten, Some(Lsn(aborted)));
    assert_eq!(recs[i].prev(), Lsn(last));
    assert_eq!(recs[i - 1].lsn.0, last);
    assert_eq!(recs[i + 1].lsn.0, after);
}

#[test]
fn bad_prev_link_mid_wal_is_an_error() {
    let mut b = WalBuilder::new(1);
    b.record(10, 0, 1, &heap_body(10));
    b.prev = 0x42;
    let bad = b.record(10, 0, 1, &heap_body(10));
    b.pad_page();
    b.record(10, 0, 1, &heap_body(10));
    b.pad_page();
    match read_all(&b.out, b.start, &[8192]).1.unwrap_err() {
        Error::Wal { lsn, kind } => {
            assert_eq!((lsn, kind), (Lsn(bad), WalError::BadPrevLink(Lsn(0x42))))
        }
        e => panic!("{e}"),
    }
}

/// One in-memory segment.
struct OneSeg(XLogSegNo, Bytes);

impl SegmentSource for OneSeg {
    fn read_segment(&mut self, segno: XLogSegNo) -> crate::Result<Option<Bytes>> {
        Ok((segno == self.0).then(|| self.1.clone()))
    }
    fn segment_name(&self, segno: XLogSegNo) -> String {
        format!("seg {}", segno.0)
    }
}

#[test]
fn segment_of_another_system_is_refused_wherever_reading_starts() {
    let mut b = WalBuilder::new(3);
    b.record(0, 0, 1, &body(&[], &[1; 100]));
    let mid = b.record(0, 0, 1, &body(&[], &[2; 100]));
    b.pad_segment();
    let seg = Bytes::from(b.out.clone());
    let mut ok = WalReader::new(OneSeg(XLogSegNo(3), seg.clone()), SEG, Some(SYSID));
    assert_eq!(ok.read_record_at(Lsn(mid)).unwrap().lsn, Lsn(mid));
    let mut foreign = WalReader::new(OneSeg(XLogSegNo(3), seg), SEG, Some(SYSID + 1));
    match foreign.read_record_at(Lsn(mid)) {
        Err(Error::Wal {
            lsn,
            kind: WalError::SysidMismatch { .. },
        }) => assert_eq!(lsn, Lsn(3 * u64::from(SEG))),
        other => panic!("{other:?}"),
    }
}
