//! Deferred blocks: which of the target's changed blocks the source's WAL rewrites whole before
//! anything reads them, decided from the WAL as it is streamed ([`ReplayWatch`]).
//!
//! A deferred block (the plan's `deferred_blocks`) is one no record of common history names:
//! replay from the common redo point reaches it first in the source's WAL, after the divergence
//! point. When that first record carries a full-page image that redo applies, or initialises the
//! page, redo writes the whole page without reading it, and the target's copy never matters —
//! the same rule as for the blocks left to replay in common history, applied to the records the
//! stream delivers. Only records that end at or before the source's WAL position taken before
//! the copy count: recovery replays them all before the target is consistent. A database-level
//! record (replay copying a template database's files as they are) ends the decisions, and so
//! does anything the reader cannot decode: every block not decided by then is copied.
//!
//! A server source fetches the deferred blocks while the WAL streams, as the watch hands them
//! out ([`ReplayWatch::ready`]: paced by how much of the WAL up to that position has arrived,
//! never one found rewritten); other sources fetch what [`ReplayWatch::decide`] leaves after
//! the first copy. Phase 6.

use crate::lsn::Lsn;
use crate::relpath::{self, ForkNumber, RelFileLocator, BLCKSZ, RELSEG_SIZE};
use crate::source::FetchRange;
use crate::walscan::rewrites_page;
use crate::xlog::reader::WalStreamReader;
use crate::xlog::record::Record;
use crate::xlog::rmgr;
use std::collections::HashMap;

/// What the WAL has said of one deferred block so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// No record counted names it yet.
    Open,
    /// Its first record rewrites it: not copied.
    Rewritten,
    /// Its first record reads it: copied.
    Read,
    /// Handed out to be fetched while the WAL was still streaming ([`ReplayWatch::ready`]).
    Fetched,
}

/// One deferred file: its path, and its blocks (sorted, as the plan has them) with what the
/// WAL has said of each.
#[derive(Debug)]
struct Watched {
    path: String,
    /// Whether the WAL can name its blocks (a main-fork segment, listed once).
    indexed: bool,
    blocks: Vec<u32>,
    fates: Vec<Fate>,
}

/// Decides the deferred blocks from the source's WAL as it is streamed; see the module docs.
/// About five bytes per deferred block (a plan's blocks and one byte each).
#[derive(Debug)]
pub struct ReplayWatch {
    reader: WalStreamReader,
    /// The divergence point: records starting at or after it are the source's own.
    after: Lsn,
    /// Records ending after it do not count.
    horizon: Lsn,
    files: Vec<Watched>,
    /// The main-fork segment files of `files`, by relation and segment number.
    index: HashMap<(RelFileLocator, u32), usize>,
    open: usize,
    /// Why no further record counts, once none does.
    stopped: Option<String>,
    records: u64,
    /// Deferred blocks in all, and the next one [`ReplayWatch::ready`] looks at (file, block
    /// within its list), with how many it has passed.
    total: usize,
    cursor: (usize, usize),
    passed: usize,
    /// Everything was handed out.
    drained: bool,
}

/// What a [`ReplayWatch`] decided.
#[derive(Debug, PartialEq, Eq)]
pub struct Decided {
    /// The ranges still to fetch: every deferred block neither rewritten nor handed out
    /// already ([`ReplayWatch::ready`]), contiguous ones merged.
    pub fetch: Vec<FetchRange>,
    /// Deferred blocks not fetched: replay rewrites them.
    pub rewritten: u64,
    /// Deferred blocks fetched: handed out during the stream, or in `fetch`.
    pub copied: u64,
    /// Source records read after the divergence point.
    pub records: u64,
    /// Why the watch stopped before every block was decided, if it did.
    pub stopped: Option<String>,
}

impl ReplayWatch {
    /// A watch over WAL streamed from `start` (page aligned) for `deferred` (segment path and
    /// blocks within it; paths that are not main-fork segments are copied, not watched).
    pub fn new(
        start: Lsn,
        (seg_size, sysid): (u32, u64),
        (after, horizon): (Lsn, Lsn),
        deferred: Vec<(String, Vec<u32>)>,
    ) -> ReplayWatch {
        let mut index = HashMap::new();
        let mut open = 0;
        let files: Vec<Watched> = deferred
            .into_iter()
            .enumerate()
            .map(|(i, (path, blocks))| {
                // Any other path is never decided: its blocks are copied.
                let mut indexed = false;
                if let Some(f) = relpath::classify(&path).filter(|f| f.fork == ForkNumber::Main) {
                    if let std::collections::hash_map::Entry::Vacant(e) =
                        index.entry((f.locator, f.segment))
                    {
                        e.insert(i);
                        indexed = true;
                        open += blocks.len();
                    }
                }
                let fates = vec![Fate::Open; blocks.len()];
                Watched {
                    path,
                    indexed,
                    blocks,
                    fates,
                }
            })
            .collect();
        ReplayWatch {
            reader: WalStreamReader::new(start, seg_size, Some(sysid)),
            after,
            horizon,
            index,
            open,
            stopped: (open == 0).then(|| "no block to decide".to_string()),
            records: 0,
            total: files.iter().map(|f| f.blocks.len()).sum(),
            cursor: (0, 0),
            passed: 0,
            drained: false,
            files,
        }
    }

    /// The fate of block `blk` of `rel`'s main fork, when it is deferred.
    fn fate(&mut self, rel: RelFileLocator, blk: u32) -> Option<&mut Fate> {
        let i = *self.index.get(&(rel, blk / RELSEG_SIZE))?;
        let f = self.files.get_mut(i)?;
        let j = f.blocks.binary_search(&(blk % RELSEG_SIZE)).ok()?;
        f.fates.get_mut(j)
    }

    /// The next bytes of the stream, delivered at `at`: bytes before the reader's position (a
    /// segment streamed again) are skipped, a gap stops the watch.
    pub fn feed(&mut self, at: Lsn, data: &[u8]) {
        if self.stopped.is_some() {
            return;
        }
        let want = self.reader.input_lsn();
        if at > want {
            self.stop(format!("the WAL stream skipped from {want} to {at}"));
            return;
        }
        let skip = usize::try_from(want.0 - at.0).unwrap_or(usize::MAX);
        let Some(rest) = data.get(skip..).filter(|r| !r.is_empty()) else {
            return;
        };
        self.reader.feed(rest);
        loop {
            match self.reader.poll() {
                Ok(Some(rec)) => {
                    if !self.record(&rec) {
                        return;
                    }
                }
                Ok(None) => {
                    if let Some(end) = self.reader.end_of_wal() {
                        let lsn = end.lsn;
                        self.stop(format!("the source's WAL ended at {lsn}"));
                    }
                    return;
                }
                Err(e) => {
                    self.stop(format!("the source's WAL could not be read: {e}"));
                    return;
                }
            }
        }
    }

    /// Counts one record; `false` once no further record counts.
    fn record(&mut self, rec: &Record) -> bool {
        if rec.lsn < self.after {
            return true;
        }
        if rec.data_end > self.horizon {
            self.stop(format!("reached the source's position {}", self.horizon));
            return false;
        }
        self.records += 1;
        if rec.rmid() == rmgr::RM_DBASE_ID {
            let lsn = rec.lsn;
            self.stop(format!(
                "a database-level record at {lsn} replays files wholesale"
            ));
            return false;
        }
        // Blocks whose first record this is: every reference in it must rewrite the page.
        let mut first_here: Vec<(RelFileLocator, u32)> = Vec::new();
        for b in rec.blocks.iter().filter(|b| b.fork == ForkNumber::Main) {
            let key = (b.rel, b.blk.0);
            let Some(fate) = self.fate(b.rel, b.blk.0) else {
                continue;
            };
            let rewrites = rewrites_page(b);
            match *fate {
                Fate::Open => {
                    *fate = if rewrites {
                        Fate::Rewritten
                    } else {
                        Fate::Read
                    };
                    self.open -= 1;
                    first_here.push(key);
                }
                Fate::Rewritten if !rewrites && first_here.contains(&key) => *fate = Fate::Read,
                _ => {}
            }
        }
        if self.open == 0 {
            self.stop("every deferred block is decided".into());
            return false;
        }
        true
    }

    fn stop(&mut self, why: String) {
        self.stopped.get_or_insert(why);
    }

    /// Deferred blocks to fetch now, for a source that fetches while it streams: the stream has
    /// covered a share of the WAL from the divergence point to the horizon, and as large a
    /// share of the blocks (in plan order) is handed out, less those found rewritten by then.
    /// Fetching a block is always safe, so one handed out early is only a copy replay did not
    /// need. Everything not rewritten once the stream reached the horizon, the watch stopped,
    /// or the stream ended (`stream_done`). Handed out in pieces of at least `min` blocks but
    /// the last; `None` once everything was.
    pub fn ready(&mut self, stream_done: bool, min: usize) -> Option<Vec<FetchRange>> {
        if self.drained {
            return None;
        }
        let fed = self.reader.input_lsn();
        let all = stream_done || self.stopped.is_some() || fed >= self.horizon;
        let span = self.horizon.0.saturating_sub(self.after.0).max(1);
        let covered = fed.0.saturating_sub(self.after.0).min(span);
        let due = match all {
            true => self.total,
            false => (self.total as u128 * u128::from(covered) / u128::from(span)) as usize,
        };
        if !all && due < self.passed + min {
            return Some(Vec::new());
        }
        let mut out = Vec::new();
        while self.passed < due {
            let (i, j) = self.cursor;
            let Some(f) = self.files.get_mut(i) else {
                break;
            };
            let (Some(fate), Some(&blk)) = (f.fates.get_mut(j), f.blocks.get(j)) else {
                self.cursor = (i + 1, 0);
                continue;
            };
            if *fate != Fate::Rewritten {
                if *fate == Fate::Open && f.indexed {
                    self.open -= 1;
                }
                *fate = Fate::Fetched;
                out.push(range(&f.path, (u64::from(blk), 1)));
            }
            self.cursor = (i, j + 1);
            self.passed += 1;
        }
        self.drained = all;
        (!all || !out.is_empty()).then_some(out)
    }

    /// What was decided: the blocks to fetch (every one not rewritten, the undecided included).
    pub fn decide(self) -> Decided {
        let mut fetch = Vec::new();
        let (mut rewritten, mut copied) = (0u64, 0u64);
        for f in &self.files {
            let mut run: Option<(u64, u64)> = None;
            for (&b, &fate) in f.blocks.iter().zip(&f.fates) {
                match fate {
                    Fate::Rewritten => rewritten += 1,
                    // Handed out while the WAL streamed: fetched already.
                    Fate::Fetched => copied += 1,
                    Fate::Open | Fate::Read => copied += 1,
                }
                if fate != Fate::Open && fate != Fate::Read {
                    continue;
                }
                let b = u64::from(b);
                run = match run {
                    Some((first, n)) if first + n == b => Some((first, n + 1)),
                    Some(r) => {
                        fetch.push(range(&f.path, r));
                        Some((b, 1))
                    }
                    None => Some((b, 1)),
                };
            }
            if let Some(r) = run {
                fetch.push(range(&f.path, r));
            }
        }
        Decided {
            fetch,
            rewritten,
            copied,
            records: self.records,
            stopped: self.stopped.filter(|_| self.open > 0),
        }
    }
}

fn range(path: &str, (first, n): (u64, u64)) -> FetchRange {
    FetchRange {
        path: path.to_string(),
        offset: first * u64::from(BLCKSZ),
        len: n * u64::from(BLCKSZ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xlog::testwal::{body, TestBlock, WalBuilder, SEG, SYSID};

    const HEAP: u8 = 10;

    /// A watch over the WAL of `b` from its start, for records from `after` ending by
    /// `horizon`.
    fn over(
        b: &WalBuilder,
        (after, horizon): (u64, u64),
        deferred: Vec<(String, Vec<u32>)>,
    ) -> ReplayWatch {
        ReplayWatch::new(
            Lsn(b.start),
            (SEG, SYSID),
            (Lsn(after), Lsn(horizon)),
            deferred,
        )
    }

    /// A heap record naming the given blocks of base/5/16384 (each with an applied image, a
    /// delta, or initialising the page); returns its LSN.
    fn heap(b: &mut WalBuilder, refs: &[(u32, &str)]) -> u64 {
        let blocks: Vec<TestBlock> = refs
            .iter()
            .enumerate()
            .map(|(i, &(blk, how))| TestBlock {
                id: i as u8,
                rel: (1663, 5, 16384),
                blk,
                will_init: how == "init",
                image: (how == "image").then(|| (vec![7; 8192], 0, 0x02, None)),
                data: if how == "image" {
                    vec![]
                } else {
                    vec![1, 2, 3]
                },
                ..Default::default()
            })
            .collect();
        b.record(HEAP, 0, 9, &body(&blocks, &[0; 3]))
    }

    /// Feeds all of `b` in pieces of `piece` bytes to a watch over `blocks` of base/5/16384.
    fn watch(b: &WalBuilder, after: u64, horizon: u64, blocks: &[u32], piece: usize) -> Decided {
        let deferred = vec![("base/5/16384".to_string(), blocks.to_vec())];
        let mut w = over(b, (after, horizon), deferred);
        for (i, chunk) in b.out.chunks(piece).enumerate() {
            w.feed(Lsn(b.start + (i * piece) as u64), chunk);
        }
        w.decide()
    }

    fn fetched_blocks(d: &Decided) -> Vec<u64> {
        d.fetch
            .iter()
            .flat_map(|r| (r.offset / 8192)..((r.offset + r.len) / 8192))
            .collect()
    }

    #[test]
    fn blocks_whose_first_source_record_rewrites_them_are_not_fetched() {
        let mut b = WalBuilder::new(3);
        heap(&mut b, &[(1, "delta")]); // common history: does not count
        let after = heap(&mut b, &[(1, "image"), (2, "delta")]);
        heap(&mut b, &[(2, "image"), (3, "init")]); // 2 was read first
        heap(&mut b, &[(4, "delta"), (4, "image")]); // read in its first record
        heap(&mut b, &[(5, "image")]);
        let horizon = heap(&mut b, &[(6, "image")]); // ends after the horizon
        b.pad_segment();
        for piece in [100, 8192, SEG as usize] {
            let d = watch(&b, after, horizon, &[1, 2, 3, 4, 5, 6, 7], piece);
            assert_eq!(fetched_blocks(&d), [2, 4, 6, 7], "in pieces of {piece}");
            assert_eq!((d.rewritten, d.copied, d.records), (3, 4, 4));
            let why = d.stopped.expect("undecided blocks left");
            assert!(why.contains("reached the source's position"), "{why}");
        }
    }

    #[test]
    fn a_database_level_record_or_a_gap_ends_the_decisions() {
        let mut b = WalBuilder::new(3);
        let after = heap(&mut b, &[(1, "image")]);
        b.record(rmgr::RM_DBASE_ID, 0, 9, &body(&[], &[0; 16]));
        heap(&mut b, &[(2, "image")]);
        b.pad_segment();
        let d = watch(&b, after, b.pos(), &[1, 2], 4096);
        assert_eq!(fetched_blocks(&d), [2]);
        assert!(d.stopped.unwrap().contains("database-level record"));
        // WAL delivered with a hole decides nothing after it.
        let deferred = vec![("base/5/16384".to_string(), vec![1, 2])];
        let mut w = over(&b, (after, b.pos()), deferred);
        w.feed(Lsn(b.start), &b.out[..100]);
        w.feed(Lsn(b.start + 8192), &b.out[8192..]);
        let d = w.decide();
        assert_eq!(fetched_blocks(&d), [1, 2]);
        assert!(d.stopped.unwrap().contains("skipped"));
    }

    #[test]
    fn every_block_decided_stops_and_a_stream_sent_again_is_skipped() {
        let mut b = WalBuilder::new(3);
        let after = heap(&mut b, &[(1, "image"), (9, "init")]);
        heap(&mut b, &[(1, "delta")]);
        b.pad_segment();
        let deferred = vec![("base/5/16384".to_string(), vec![1, 9])];
        let mut w = over(&b, (after, b.pos()), deferred);
        w.feed(Lsn(b.start), &b.out[..20_000]);
        // The same bytes again (a segment streamed anew), then the rest.
        w.feed(Lsn(b.start), &b.out);
        let d = w.decide();
        assert!(d.fetch.is_empty());
        assert_eq!((d.rewritten, d.copied, d.stopped), (2, 0, None));
    }

    #[test]
    fn paths_that_are_not_main_fork_segments_are_fetched() {
        let b = WalBuilder::new(3);
        let deferred = vec![("base/5/16384_fsm".to_string(), vec![0, 1])];
        let w = over(&b, (0, 0), deferred);
        let d = w.decide();
        assert_eq!(d.fetch.len(), 1);
        assert_eq!((d.fetch[0].offset, d.fetch[0].len), (0, 16384));
        assert_eq!((d.rewritten, d.copied), (0, 2));
    }

    #[test]
    fn blocks_of_later_segment_files_are_found_by_their_relation_block_number() {
        let mut b = WalBuilder::new(3);
        let after = heap(
            &mut b,
            &[(RELSEG_SIZE + 5, "image"), (RELSEG_SIZE + 6, "delta")],
        );
        b.pad_segment();
        let deferred = vec![
            ("base/5/16384".to_string(), vec![5, 6]),
            ("base/5/16384.1".to_string(), vec![5, 6]),
        ];
        let mut w = over(&b, (after, b.pos()), deferred);
        w.feed(Lsn(b.start), &b.out);
        let d = w.decide();
        let fetched: Vec<(String, u64)> = d
            .fetch
            .iter()
            .map(|r| (r.path.clone(), r.offset / 8192))
            .collect();
        assert_eq!(
            fetched,
            [
                ("base/5/16384".to_string(), 5),
                ("base/5/16384.1".to_string(), 6)
            ]
        );
        assert_eq!(
            d.fetch[0].len, 16384,
            "blocks 5 and 6 of the first segment in one range"
        );
        assert_eq!((d.rewritten, d.copied), (1, 3));
    }

    #[test]
    fn blocks_are_handed_out_as_the_stream_covers_the_wal_and_never_rewritten_ones() {
        let mut b = WalBuilder::new(3);
        // Small records, so that half the WAL holds about half of them.
        let after = heap(&mut b, &[(1, "init")]);
        for blk in 2..40 {
            heap(&mut b, &[(blk, "delta")]);
        }
        let horizon = heap(&mut b, &[(40, "init")]);
        b.pad_segment();
        let deferred = vec![("base/5/16384".to_string(), (1..=40).collect::<Vec<u32>>())];
        let mut w = over(&b, (after, horizon), deferred);
        // Nothing streamed past the divergence point yet: nothing is due.
        assert_eq!(w.ready(false, 1), Some(vec![]));
        // About half the WAL up to the horizon.
        let half = w.after.0 + (horizon - after) / 2;
        w.feed(Lsn(b.start), &b.out[..(half - b.start) as usize]);
        let first = w.ready(false, 1).expect("more to come");
        let first: Vec<u64> = first.iter().map(|r| r.offset / 8192).collect();
        assert!(first.len() >= 15 && first.len() <= 21, "{first:?}");
        assert!(!first.contains(&1), "block 1 is rewritten: {first:?}");
        // A piece of at least 100 blocks is not due yet.
        assert_eq!(w.ready(false, 100), Some(vec![]));
        // The rest of the stream: everything else, once, then nothing more.
        w.feed(Lsn(half), &b.out[(half - b.start) as usize..]);
        let rest = w.ready(false, 100).expect("the rest");
        let rest: Vec<u64> = rest.iter().map(|r| r.offset / 8192).collect();
        let mut all: Vec<u64> = first.iter().chain(&rest).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (2..=40).collect::<Vec<u64>>());
        assert_eq!(w.ready(true, 1), None);
        let d = w.decide();
        assert!(d.fetch.is_empty());
        assert_eq!((d.rewritten, d.copied), (1, 39));
    }
}
