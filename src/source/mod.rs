//! Where the rebuild reads from: the [`Source`] trait (pg_rewind's `rewind_source`) and its two
//! implementations, a stopped local data directory ([`local`]) and a live server ([`server`]).
//!
//! Used by phase 2 (control file, timeline history), phase 5 (file list) and phase 6 (ranges
//! and WAL, which a server source streams alongside the ranges: [`Source::copy_with_wal`]).

mod backup;
pub mod batch;
mod concurrent;
pub mod local;
pub mod opengauss;
pub mod server;
mod session;
pub mod sqlwal;

use crate::datadir::FileKind;
use crate::error::{Error, Result};
use crate::lsn::{Lsn, TimeLineId};
use crate::timeline::{parse_history, TimeLineHistoryEntry};
use std::collections::HashMap;

/// One path in the source's data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Relative, `/`-separated path (checked with [`crate::datadir::check_relative`] before
    /// use).
    pub path: String,
    /// What is there.
    pub kind: FileKind,
}

/// A byte range of a source file to copy into the same place in the target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FetchRange {
    /// Relative path.
    pub path: String,
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

/// Receives what a source fetched.
pub trait ChunkSink {
    /// Writes `data`, which the source read at `offset` of `path`, to the same place in the
    /// target.
    fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<()>;

    /// The file disappeared from the source after it was listed (the source removed it: WAL
    /// replay of the source's history will account for that). The target's copy is removed.
    fn vanished(&mut self, path: &str) -> Result<()>;
}

/// Receives both what [`Source::copy_with_wal`] copies: chunks of files, and the source's WAL.
pub trait TransferSink: ChunkSink {
    /// Writes WAL read at `start` of the source's history `history` (which names its segment
    /// files). Pieces may come in any order (a local source reads them in parallel), and a
    /// piece may come again (after a timeline switch, from the start of its segment).
    fn wal(&mut self, start: Lsn, data: &[u8], history: &[TimeLineHistoryEntry]) -> Result<()>;

    /// Ranges to fetch besides those given, for a source that fetches while it streams the
    /// WAL (and asks after every delivery): `Some` while more may come (empty: none yet),
    /// `None` once none will (the default, from the start). `stream_done`: the WAL stream
    /// ended, nothing more will be delivered. Chunks of these ranges are then accepted too.
    fn more_ranges(&mut self, _stream_done: bool) -> Option<Vec<FetchRange>> {
        None
    }
}

/// Where the WAL copied by [`Source::copy_with_wal`] ends: the source's position once every
/// range was copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalEnd {
    /// The source's timeline then.
    pub tli: TimeLineId,
    /// Its WAL position then ([`Source::wal_position`]); WAL was delivered at least up to it.
    pub end: Lsn,
}

/// A [`ChunkSink`] that passes on only what was asked for. A source that delivers bytes for a
/// path or at an offset no requested range covers, or reports a path it was not asked for as
/// vanished, is broken or malicious: that is an error naming the path, and nothing of it
/// reaches the target (not even inside the data directory, where it could overwrite gsbuild's
/// journal or the set-aside `pg_control`).
///
/// Wrapping a [`TransferSink`], it is one too: WAL passes through unchecked (its writer names
/// the `pg_wal` segment files itself, from the positions).
pub struct CheckedSink<'a, S: ChunkSink + ?Sized = dyn ChunkSink + 'a> {
    inner: &'a mut S,
    /// Requested byte intervals `[start, end)` by path, sorted and merged.
    asked: HashMap<String, Vec<(u64, u64)>>,
}

impl<'a, S: ChunkSink + ?Sized> CheckedSink<'a, S> {
    /// A sink for the answers to `ranges`, passing them on to `inner`.
    pub fn new(ranges: &[FetchRange], inner: &'a mut S) -> CheckedSink<'a, S> {
        let mut sink = CheckedSink {
            inner,
            asked: HashMap::new(),
        };
        sink.allow(ranges);
        sink
    }

    /// Accepts the answers to `ranges` too.
    fn allow(&mut self, ranges: &[FetchRange]) {
        for r in ranges {
            let spans = self.asked.entry(r.path.clone()).or_default();
            spans.push((r.offset, r.offset.saturating_add(r.len)));
        }
        let mut touched: Vec<&str> = ranges.iter().map(|r| r.path.as_str()).collect();
        touched.sort_unstable();
        touched.dedup();
        for path in touched {
            let Some(spans) = self.asked.get_mut(path) else {
                continue;
            };
            spans.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
            for &(start, end) in spans.iter() {
                match merged.last_mut() {
                    Some(last) if start <= last.1 => last.1 = last.1.max(end),
                    _ => merged.push((start, end)),
                }
            }
            *spans = merged;
        }
    }

    fn unasked(path: &str, what: String) -> Error {
        Error::Usage(format!(
            "the source delivered {what} for \"{}\", which was not requested",
            path.escape_debug()
        ))
    }
}

impl<S: ChunkSink + ?Sized> ChunkSink for CheckedSink<'_, S> {
    fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<()> {
        let end = offset.saturating_add(data.len() as u64);
        let spans = self.asked.get(path).map(Vec::as_slice).unwrap_or(&[]);
        // The last interval starting at or before `offset` is the only one that can hold it.
        let i = spans.partition_point(|&(start, _)| start <= offset);
        let inside = i
            .checked_sub(1)
            .and_then(|i| spans.get(i))
            .is_some_and(|&(_, span_end)| end <= span_end);
        if !inside {
            return Err(Self::unasked(
                path,
                format!("{} bytes at offset {offset}", data.len()),
            ));
        }
        self.inner.write(path, offset, data)
    }

    fn vanished(&mut self, path: &str) -> Result<()> {
        if !self.asked.contains_key(path) {
            return Err(Self::unasked(path, "a vanished-file notice".into()));
        }
        self.inner.vanished(path)
    }
}

impl<S: TransferSink + ?Sized> TransferSink for CheckedSink<'_, S> {
    fn wal(&mut self, start: Lsn, data: &[u8], history: &[TimeLineHistoryEntry]) -> Result<()> {
        self.inner.wal(start, data, history)
    }

    fn more_ranges(&mut self, stream_done: bool) -> Option<Vec<FetchRange>> {
        let more = self.inner.more_ranges(stream_done)?;
        self.allow(&more);
        Some(more)
    }
}

/// Receives the source's WAL: `data` starts at the given position and continues the previous
/// call's bytes without a gap. Returns `Ok(false)` to stop reading.
pub type WalSink<'a> = dyn FnMut(Lsn, &[u8]) -> Result<bool> + 'a;

/// What the rebuild needs from the cluster it copies from.
///
/// Batching contract of [`Source::fetch_ranges`]: an implementation may merge, split, reorder
/// and parallelise the ranges it is given, and delivers every byte it read through the sink
/// exactly once, at the offset it was read from. When a source file became shorter than a
/// range, the bytes that still exist are delivered and the rest is not (a live server's
/// relation files shrink legitimately; WAL replay fixes them); a local source, which must be
/// stopped, reports that as an error instead (`size of source file "…" changed concurrently`).
pub trait Source {
    /// A short description for messages (never includes a password).
    fn describe(&self) -> String;

    /// Every path in the source data directory (`pg_wal` and tablespace contents included).
    fn list_files(&mut self) -> Result<Vec<SourceFile>>;

    /// The whole content of one (small) file, e.g. `global/pg_control` or a history file.
    fn fetch_file(&mut self, path: &str) -> Result<Vec<u8>>;

    /// Copies `ranges` into `sink` (see the batching contract above).
    fn fetch_ranges(&mut self, ranges: &[FetchRange], sink: &mut dyn ChunkSink) -> Result<()>;

    /// Copies `ranges` (as [`Source::fetch_ranges`]) and the source's WAL from `wal_start`
    /// (segment aligned) along `history` (whose last entry is the source's current timeline),
    /// all into `sink`. Once every range was delivered, the source's WAL position is taken
    /// ([`Source::wal_position`]) and WAL is delivered at least up to it; that position is
    /// returned. When the source changed timeline meanwhile, its new history names the rest.
    ///
    /// A server streams the WAL over its replication session while the ranges are copied;
    /// the default (a local source, or a server without replication access) copies the ranges
    /// first and reads the WAL after.
    fn copy_with_wal(
        &mut self,
        ranges: &[FetchRange],
        wal_start: Lsn,
        history: &[TimeLineHistoryEntry],
        sink: &mut dyn TransferSink,
    ) -> Result<WalEnd> {
        copy_then_wal(self, ranges, wal_start, history, sink)
    }

    /// Puts the source in backup mode for a full build (a fast checkpoint; full-page images
    /// until [`Source::backup_stop`]), labelled `label`: its start LSN, `None` for a source
    /// without one (a stopped data directory, which nothing changes meanwhile).
    fn backup_start(&mut self, _label: &str) -> Result<Option<Lsn>> {
        Ok(None)
    }

    /// Ends the backup mode [`Source::backup_start`] began; nothing when none runs.
    fn backup_stop(&mut self) -> Result<()> {
        Ok(())
    }

    /// The source's current timeline and the WAL position up to which its WAL is durable and
    /// readable now: the flush position of a primary, the replay position of a standby, the
    /// end of the shutdown checkpoint of a stopped cluster.
    fn wal_position(&mut self) -> Result<(TimeLineId, Lsn)>;

    /// The content of the source's history file for `tli` (`None` for timeline 1, which has
    /// none).
    fn timeline_history(&mut self, tli: TimeLineId) -> Result<Option<Vec<u8>>>;

    /// A server setting (`current_setting(name)`); `None` for a source that has no running
    /// server.
    fn setting(&mut self, _name: &str) -> Result<Option<String>> {
        Ok(None)
    }

    /// The `xl_crc` of the record that starts at `lsn`, when the source can tell it without
    /// sending its WAL (openGauss: `IDENTIFY_CONSISTENCE`): `Some(Some(crc))`, or
    /// `Some(None)` when it has no record there. `None` when it cannot say so (the default),
    /// and the caller reads the record from [`Source::read_wal`].
    fn record_crc(&mut self, _lsn: Lsn) -> Result<Option<Option<u32>>> {
        Ok(None)
    }

    /// The source's term (openGauss fences a failover with it; `IDENTIFY_VERSION`), `None`
    /// for a product without one.
    fn term(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Checks, before anything is written to the target, that `ranges` can still be copied as
    /// listed: a stopped data directory whose files changed size since the listing fails here
    /// with the target untouched (the copy checks again as it reads). A live server's files
    /// change legitimately; the default checks nothing.
    fn check_ranges(&mut self, _ranges: &[FetchRange]) -> Result<()> {
        Ok(())
    }

    /// Reads the source's WAL from `start` (page aligned) along `history` (the source's
    /// timeline history, whose last entry is its current timeline) into `sink`, until the sink
    /// returns `false` or everything before `end` was delivered. The last call may deliver
    /// bytes beyond `end`.
    fn read_wal(
        &mut self,
        start: Lsn,
        end: Lsn,
        history: &[TimeLineHistoryEntry],
        sink: &mut WalSink<'_>,
    ) -> Result<()>;
}

/// [`Source::copy_with_wal`] one after the other: the ranges, the position, then the WAL.
pub fn copy_then_wal<S: Source + ?Sized>(
    source: &mut S,
    ranges: &[FetchRange],
    wal_start: Lsn,
    history: &[TimeLineHistoryEntry],
    sink: &mut dyn TransferSink,
) -> Result<WalEnd> {
    source.fetch_ranges(ranges, sink)?;
    let (tli, end) = source.wal_position()?;
    let history = current_history(source, history, tli)?;
    read_wal_until(source, wal_start, end, &history, sink)?;
    Ok(WalEnd { tli, end })
}

/// `history`, or the source's history of `tli` when the source moved to that timeline since
/// `history` was read.
pub fn current_history<S: Source + ?Sized>(
    source: &mut S,
    history: &[TimeLineHistoryEntry],
    tli: TimeLineId,
) -> Result<Vec<TimeLineHistoryEntry>> {
    if history.last().map(|e| e.tli) == Some(tli) {
        return Ok(history.to_vec());
    }
    let text = source.timeline_history(tli)?.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).into_owned();
    parse_history(&text, tli).map_err(|kind| Error::History {
        path: format!("source timeline {tli} history").into(),
        kind,
    })
}

/// Reads the source's WAL `[start, end)` along `history` into `sink`; fails when the source's
/// WAL ends before `end`.
pub fn read_wal_until<S: Source + ?Sized>(
    source: &mut S,
    start: Lsn,
    end: Lsn,
    history: &[TimeLineHistoryEntry],
    sink: &mut dyn TransferSink,
) -> Result<()> {
    let mut reached = start;
    source.read_wal(start, end, history, &mut |at, data| {
        sink.wal(at, data, history)?;
        reached = Lsn(at.0 + data.len() as u64);
        Ok(reached < end)
    })?;
    if reached < end {
        return Err(Error::Usage(format!(
            "the source's WAL ended at {reached}, before {end}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Keep(Vec<(String, u64, usize)>, Vec<String>);

    impl ChunkSink for Keep {
        fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<()> {
            self.0.push((path.into(), offset, data.len()));
            Ok(())
        }
        fn vanished(&mut self, path: &str) -> Result<()> {
            self.1.push(path.into());
            Ok(())
        }
    }

    #[test]
    fn checked_sink_passes_only_what_was_asked() {
        let r = |p: &str, offset, len| FetchRange {
            path: p.into(),
            offset,
            len,
        };
        let ranges = [
            r("a", 0, 100),
            r("a", 100, 50),
            r("a", 1000, 10),
            r("b", 5, 5),
        ];
        let mut keep = Keep::default();
        let mut sink = CheckedSink::new(&ranges, &mut keep);
        sink.write("a", 0, &[0; 150]).unwrap();
        sink.write("a", 120, &[0; 30]).unwrap();
        sink.write("a", 1000, &[0; 10]).unwrap();
        sink.write("b", 5, &[0; 5]).unwrap();
        sink.vanished("b").unwrap();
        for (path, offset, len) in [
            ("a", 140, 20),
            ("a", 995, 10),
            ("a", 1005, 10),
            ("b", 0, 5),
            ("c", 0, 1),
            ("gsbuild.journal", 0, 1),
            ("../x", 0, 1),
        ] {
            let e = sink.write(path, offset, &vec![0; len]).unwrap_err();
            assert!(e.to_string().contains(&format!("\"{path}\"")), "{e}");
        }
        assert!(sink.vanished("global/pg_control.gsbuild-orig").is_err());
        assert_eq!(keep.0.len(), 4);
        assert_eq!(keep.1, ["b"]);
    }
}
