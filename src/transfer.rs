//! Phase 6b: copying the plan's byte ranges (whole files, tails, changed blocks) and the
//! source's WAL from the common redo point, together ([`crate::source::Source::copy_with_wal`]:
//! a server streams the WAL while its SQL sessions fetch blocks), into the target.
//!
//! Everything arrives on the caller's thread, where `TransferWriter` writes it through the
//! one [`TargetDir`]: chunks at their offsets, WAL into the WAL directory's segment files named along the
//! source's history ([`segment_file_name`]), each created empty and padded to full size.

use crate::error::Result;
use crate::lsn::{human_bytes, Lsn, TimeLineId};
use crate::relpath::BLCKSZ;
use crate::reporter::Reporter;
use crate::source::{CheckedSink, ChunkSink, FetchRange, Source, TransferSink, WalEnd};
use crate::target::TargetDir;
use crate::timeline::{segment_file_name, TimeLineHistoryEntry};
use std::collections::BTreeSet;
use watch::ReplayWatch;

pub mod watch;

/// What [`copy_and_stream`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transferred {
    /// Bytes of files and blocks received from the source.
    pub data_bytes: u64,
    /// Bytes of WAL received from the source.
    pub wal_bytes: u64,
    /// The source's WAL position once the ranges were copied: recovery must reach it.
    pub end: Lsn,
    /// Its timeline.
    pub end_tli: TimeLineId,
    /// Deferred blocks not fetched because the source's WAL rewrites them ([`watch`]).
    pub blocks_left_to_replay: u64,
}

/// The plan's deferred blocks and what deciding them from the streamed WAL needs ([`watch`]).
#[derive(Clone, Debug, Default)]
pub struct Deferred {
    /// Segment path and the blocks within it.
    pub blocks: Vec<(String, Vec<u32>)>,
    /// The divergence point: the source's own records start there.
    pub after: Lsn,
    /// The clusters' system identifier (checked in every long page header).
    pub sysid: u64,
}

/// How a transfer goes: the WAL segment size, and a bandwidth limit on everything fetched.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// WAL segment size of the clusters.
    pub seg_size: u32,
    /// The WAL directory (the flavor's: `pg_wal`, `pg_xlog`).
    pub wal_dir: &'static str,
    /// At most this many bytes per second of files, blocks and WAL (`--max-rate`).
    pub max_rate: Option<u64>,
}

/// A bandwidth limit on what arrives: after N bytes in all, the receiving thread waits until
/// N / rate seconds have passed since the start. The sources' sessions block on it (their
/// queues are bounded), so the limit holds on the wire to within what their socket buffers
/// hold.
struct RateLimit {
    rate: u64,
    start: std::time::Instant,
    bytes: u64,
}

impl RateLimit {
    fn consume(&mut self, n: usize) {
        self.bytes += n as u64;
        let due = std::time::Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// Copies `ranges` and the source's WAL from `wal_start` (the first byte of the segment
/// holding the common redo point) along `history` into `target`, then the `deferred` blocks
/// the streamed WAL does not rewrite ([`watch`]); see the module docs.
pub fn copy_and_stream(
    source: &mut dyn Source,
    target: &mut TargetDir,
    (ranges, deferred): (&[FetchRange], Deferred),
    wal_start: Lsn,
    history: &[TimeLineHistoryEntry],
    pace: Pace,
    rep: &mut dyn Reporter,
) -> Result<Transferred> {
    let waiting: u64 = deferred.blocks.iter().map(|(_, b)| b.len() as u64).sum();
    let total: u64 = ranges.iter().map(|r| r.len).sum::<u64>() + waiting * u64::from(BLCKSZ);
    let watch = watch_for(source, deferred, wal_start, pace.seg_size)?;
    rep.step(&format!(
        "copying {} and streaming WAL from {wal_start} alongside{}",
        human_bytes(total),
        match waiting {
            0 => String::new(),
            n => format!("; {n} changed blocks wait for what the source's WAL does with them"),
        }
    ));
    let mut w = TransferWriter {
        target,
        seg_size: pace.seg_size,
        wal_dir: pace.wal_dir,
        limit: pace.max_rate.map(|rate| RateLimit {
            rate: rate.max(1),
            start: std::time::Instant::now(),
            bytes: 0,
        }),
        segments: BTreeSet::new(),
        vanished: BTreeSet::new(),
        data_bytes: 0,
        wal_bytes: 0,
        wal_next: wal_start,
        watch,
        total,
        rep,
    };
    // Only chunks of requested ranges reach the target (see CheckedSink).
    let mut end = source.copy_with_wal(
        ranges,
        wal_start,
        history,
        &mut CheckedSink::new(ranges, &mut w),
    )?;
    let mut left = 0;
    if let Some(watch) = w.watch.take() {
        (end, left) = copy_deferred(source, &mut w, watch, history, end)?;
    }
    // Every range is dealt with, those of files that vanished or shrank on the source meanwhile
    // too (they deliver fewer bytes): progress ends at 100%.
    w.rep.progress(total, total);
    let (data_bytes, wal_bytes) = (w.data_bytes, w.wal_bytes);
    rep.step(&format!(
        "copied {}; streamed {} of WAL from {wal_start} to {} on timeline {}",
        human_bytes(data_bytes),
        human_bytes(wal_bytes),
        end.end,
        end.tli
    ));
    Ok(Transferred {
        data_bytes,
        wal_bytes,
        end: end.end,
        end_tli: end.tli,
        blocks_left_to_replay: left,
    })
}

/// The watch over the streamed WAL that decides `deferred` ([`watch`]), `None` without any.
fn watch_for(
    source: &mut dyn Source,
    deferred: Deferred,
    wal_start: Lsn,
    seg_size: u32,
) -> Result<Option<ReplayWatch>> {
    if deferred.blocks.is_empty() {
        return Ok(None);
    }
    // Records ending at or before the source's position now are all replayed before the
    // target is consistent: the copy ends at a later one.
    let (_, horizon) = source.wal_position()?;
    let ids = (seg_size, deferred.sysid);
    let watch = ReplayWatch::new(wal_start, ids, (deferred.after, horizon), deferred.blocks);
    Ok(Some(watch))
}

/// What `watch` decided, said; the deferred blocks it did not find rewritten copied
/// ([`copy_decided`]). Returns the new end of the WAL and how many blocks were left to replay.
fn copy_deferred(
    source: &mut dyn Source,
    w: &mut TransferWriter<'_>,
    watch: ReplayWatch,
    history: &[TimeLineHistoryEntry],
    end: WalEnd,
) -> Result<(WalEnd, u64)> {
    let d = watch.decide();
    w.rep.step(&format!(
        "{} of {} waiting blocks left to replay (their first record in the source's WAL rewrites them whole), {} to copy; {} source records read{}",
        d.rewritten,
        d.rewritten + d.copied,
        d.copied,
        d.records,
        d.stopped.map(|why| format!(" (stopped: {why})")).unwrap_or_default()
    ));
    if d.fetch.is_empty() {
        return Ok((end, d.rewritten));
    }
    Ok((
        copy_decided(source, w, &d.fetch, history, end)?,
        d.rewritten,
    ))
}

/// The deferred blocks still to copy (`fetch`), after the first copy ended at `end`: then the
/// WAL from where the stream stopped to the source's position after them, which recovery must
/// reach.
fn copy_decided(
    source: &mut dyn Source,
    w: &mut TransferWriter<'_>,
    fetch: &[FetchRange],
    history: &[TimeLineHistoryEntry],
    end: WalEnd,
) -> Result<WalEnd> {
    source.fetch_ranges(fetch, &mut CheckedSink::new(fetch, w))?;
    let (tli, pos) = source.wal_position()?;
    let history = crate::source::current_history(source, history, tli)?;
    // From the page the stream stopped in: read_wal starts at a page.
    let from = w.wal_next.min(pos);
    let from = Lsn(from.0 - from.page_offset(crate::xlog::XLOG_BLCKSZ));
    crate::source::read_wal_until(source, from, pos, &history, w)?;
    Ok(WalEnd {
        tli,
        end: pos.max(end.end),
    })
}

/// Writes what a transfer delivers into the target, counting it.
struct TransferWriter<'a> {
    target: &'a mut TargetDir,
    seg_size: u32,
    wal_dir: &'static str,
    /// WAL segment files this transfer created (each is created empty once, then filled).
    segments: BTreeSet<String>,
    /// Files that vanished from the source: a chunk of one read before it vanished may arrive
    /// after (from another session) and must not bring it back.
    vanished: BTreeSet<String>,
    data_bytes: u64,
    wal_bytes: u64,
    /// Where the WAL delivered so far ends.
    wal_next: Lsn,
    /// Deciding the deferred blocks from the WAL as it arrives.
    watch: Option<ReplayWatch>,
    total: u64,
    limit: Option<RateLimit>,
    rep: &'a mut dyn Reporter,
}

impl ChunkSink for TransferWriter<'_> {
    fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<()> {
        self.data_bytes += data.len() as u64;
        if let Some(l) = &mut self.limit {
            l.consume(data.len());
        }
        if self.vanished.contains(path) {
            return Ok(());
        }
        self.target.write_at(path, offset, data)?;
        crate::failpoint::hit("copy-chunk");
        self.rep.progress(self.data_bytes, self.total);
        Ok(())
    }

    fn vanished(&mut self, path: &str) -> Result<()> {
        self.rep.debug(&format!(
            "received null value for chunk for file \"{path}\", file has been deleted"
        ));
        self.vanished.insert(path.to_string());
        self.target.vanished(path)
    }
}

impl TransferSink for TransferWriter<'_> {
    fn more_ranges(&mut self, stream_done: bool) -> Option<Vec<FetchRange>> {
        // A query's worth of blocks at a time (see source::batch::MAX_BATCH_BYTES).
        const PIECE: usize = 512;
        self.watch.as_mut()?.ready(stream_done, PIECE)
    }

    fn wal(&mut self, start: Lsn, data: &[u8], history: &[TimeLineHistoryEntry]) -> Result<()> {
        if let Some(l) = &mut self.limit {
            l.consume(data.len());
        }
        if let Some(w) = &mut self.watch {
            w.feed(start, data);
        }
        self.wal_next = Lsn(start.0 + data.len() as u64);
        let seg_size = u64::from(self.seg_size);
        let mut pos = start;
        let mut rest = data;
        while !rest.is_empty() {
            let segno = pos.segment(self.seg_size);
            let off = pos.segment_offset(self.seg_size);
            let n = rest.len().min((seg_size - off) as usize);
            let name = format!(
                "{}/{}",
                self.wal_dir,
                segment_file_name(history, segno, self.seg_size)
            );
            if self.segments.insert(name.clone()) {
                // Whatever a file of that name held (a resumed run's partial copy) goes: the
                // bytes after the end of the stream must be zeros, never stale WAL.
                self.target.truncate(&name, 0)?;
                self.target.truncate(&name, seg_size)?;
            }
            let (chunk, after) = rest.split_at(n);
            self.target.write_at(&name, off, chunk)?;
            if off + n as u64 == seg_size {
                crate::failpoint::hit("wal-segment");
            }
            self.wal_bytes += n as u64;
            pos = Lsn(pos.0 + n as u64);
            rest = after;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::SyncMethod;
    use crate::timeline::parse_history;

    struct Quiet;
    impl Reporter for Quiet {
        fn info(&mut self, _: &str) {}
    }

    const SEG: u32 = 1 << 20;

    fn writer<'a>(target: &'a mut TargetDir, rep: &'a mut Quiet) -> TransferWriter<'a> {
        TransferWriter {
            target,
            seg_size: SEG,
            wal_dir: "pg_wal",
            segments: BTreeSet::new(),
            vanished: BTreeSet::new(),
            data_bytes: 0,
            wal_bytes: 0,
            wal_next: Lsn(0),
            watch: None,
            total: 0,
            limit: None,
            rep,
        }
    }

    #[test]
    fn the_rate_limit_holds_over_the_whole_transfer() {
        let mut l = RateLimit {
            rate: 4 << 20,
            start: std::time::Instant::now(),
            bytes: 0,
        };
        for _ in 0..16 {
            l.consume(64 << 10);
        }
        // 1 MiB at 4 MiB/s: a quarter of a second, not less.
        assert!(l.start.elapsed() >= std::time::Duration::from_millis(250));
    }

    #[test]
    fn wal_goes_to_segments_named_along_the_history_and_padded() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("pg_wal")).unwrap();
        // A stale file of a name the stream writes: nothing of it may survive.
        let stale = d.path().join("pg_wal/000000010000000000000004");
        std::fs::write(&stale, vec![0xAB; SEG as usize]).unwrap();
        let mut target = TargetDir::new(d.path(), false, SyncMethod::None).unwrap();
        let mut rep = Quiet;
        let mut w = writer(&mut target, &mut rep);
        // Timeline 2 begins inside segment 5.
        let history = parse_history("1\t0/580000\tpromoted\n", TimeLineId(2)).unwrap();
        let start = Lsn(4 * u64::from(SEG));
        let first = vec![1u8; SEG as usize + 1000];
        w.wal(start, &first, &history).unwrap();
        w.wal(Lsn(start.0 + first.len() as u64), &[2u8; 500], &history)
            .unwrap();
        assert_eq!(w.wal_bytes, first.len() as u64 + 500);
        let seg4 = std::fs::read(&stale).unwrap();
        assert_eq!(seg4, vec![1u8; SEG as usize]);
        assert!(!d.path().join("pg_wal/000000010000000000000005").exists());
        let seg5 = std::fs::read(d.path().join("pg_wal/000000020000000000000005")).unwrap();
        assert_eq!(seg5.len(), SEG as usize, "padded to a whole segment");
        assert!(seg5[..1000].iter().all(|&b| b == 1));
        assert!(seg5[1000..1500].iter().all(|&b| b == 2));
        assert!(seg5[1500..].iter().all(|&b| b == 0));
    }

    #[test]
    fn chunks_are_written_at_their_offsets_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let mut target = TargetDir::new(d.path(), false, SyncMethod::None).unwrap();
        let mut rep = Quiet;
        let mut w = writer(&mut target, &mut rep);
        w.write("f", 8192, b"block").unwrap();
        w.write("g", 0, b"x").unwrap();
        w.write("f", 0, b"head").unwrap();
        assert_eq!(w.data_bytes, 10);
        let f = std::fs::read(d.path().join("f")).unwrap();
        assert_eq!(f.len(), 8192 + 5);
        assert_eq!(&f[..4], b"head");
        assert_eq!(&f[8192..], b"block");
        w.vanished("g").unwrap();
        assert!(!d.path().join("g").exists());
        // A chunk read before the file vanished, delivered after: the file stays gone.
        w.write("g", 1 << 20, b"late").unwrap();
        assert!(!d.path().join("g").exists());
    }
}
