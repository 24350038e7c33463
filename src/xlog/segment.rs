//! WAL segment files: the [`SegmentSource`] trait (whole segments by number), its `pg_wal`
//! directory implementation [`WalDir`], and [`WalReader`], which reads one record at any
//! record position ([`WalReader::read_record_at`], e.g. to follow `xl_prev` backwards to a
//! checkpoint) or iterates forward from a position ([`WalReader::records_from`]).
//!
//! Phases 1, 3 and 4.

use super::page::{PageExpect, PageFault, PageHeader};
use super::reader::{EndOfWal, WalStreamReader};
use super::record::Record;
use super::{wal_err, WalError, XLOG_BLCKSZ};
use crate::lsn::{Lsn, TimeLineId, XLogSegNo};
use bytes::Bytes;
use std::path::{Path, PathBuf};

/// Where whole WAL segments come from.
pub trait SegmentSource {
    /// The contents of segment `segno` (exactly the segment size). `Ok(None)`: the segment is
    /// not there (no such file), which readers treat as the end of the available WAL or, for a
    /// record they must read, as [`WalError::MissingSegment`]. `Err`: it is there but unreadable.
    fn read_segment(&mut self, segno: XLogSegNo) -> crate::Result<Option<Bytes>>;

    /// What to call the segment in messages (for files: the path).
    fn segment_name(&self, segno: XLogSegNo) -> String;
}

/// Maps a position to the timeline whose segment file holds it.
pub type TimelineOf = Box<dyn Fn(Lsn) -> TimeLineId + Send>;

/// The segment files of a `pg_wal` directory (or any directory of segment files).
pub struct WalDir {
    dir: PathBuf,
    seg_size: u32,
    timeline: TimelineOf,
}

impl WalDir {
    /// Segments of `dir` on the timelines `timeline` chooses. For segment `n` the closure is
    /// asked about the segment's *last* byte; a history-based answer ("the timeline whose
    /// range holds this position") then picks the newest timeline that began in or before
    /// the segment, as PostgreSQL's `XLogFileReadAnyTLI` does. `seg_size` is in bytes.
    pub fn new(
        dir: impl Into<PathBuf>,
        seg_size: u32,
        timeline: impl Fn(Lsn) -> TimeLineId + Send + 'static,
    ) -> WalDir {
        WalDir {
            dir: dir.into(),
            seg_size,
            timeline: Box::new(timeline),
        }
    }

    /// Segments of `dir`, all on timeline `tli`.
    pub fn with_timeline(dir: impl Into<PathBuf>, seg_size: u32, tli: TimeLineId) -> WalDir {
        WalDir::new(dir, seg_size, move |_| tli)
    }

    /// The file that holds segment `segno`.
    pub fn segment_path(&self, segno: XLogSegNo) -> PathBuf {
        let last = XLogSegNo(segno.0 + 1)
            .start_lsn(self.seg_size)
            .0
            .saturating_sub(1);
        let tli = (self.timeline)(Lsn(last));
        self.dir.join(segno.file_name(tli, self.seg_size))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Reads a whole segment file; `Ok(None)` when it does not exist.
pub fn read_segment_file(path: &Path, seg_size: u32) -> crate::Result<Option<Bytes>> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::Error::io("read file", path, e)),
    };
    if data.len() != seg_size as usize {
        let msg = format!("read {} of {} bytes of a WAL segment", data.len(), seg_size);
        let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, msg);
        return Err(crate::Error::io("read file", path, e));
    }
    Ok(Some(Bytes::from(data)))
}

impl SegmentSource for WalDir {
    fn read_segment(&mut self, segno: XLogSegNo) -> crate::Result<Option<Bytes>> {
        read_segment_file(&self.segment_path(segno), self.seg_size)
    }

    fn segment_name(&self, segno: XLogSegNo) -> String {
        self.segment_path(segno).display().to_string()
    }
}

/// Checks the long header on a segment's first page before any page of the segment is used,
/// as PostgreSQL's `ReadPageInternal` does: reading may start in the middle of a segment, and a
/// segment of another cluster (or another segment size) with the right file name must be
/// refused there too, not taken for the end of WAL. A first page that was never written (a
/// recycled or zeroed file) is left for the stream reader, which ends WAL there.
fn check_first_page(
    seg: &[u8],
    segno: XLogSegNo,
    seg_size: u32,
    sysid: Option<u64>,
) -> crate::Result<()> {
    let start = segno.start_lsn(seg_size);
    let exp = PageExpect {
        pageaddr: start,
        seg_size,
        sysid,
        flavor: None,
        min_tli: 0,
    };
    match PageHeader::read_checked(seg, &exp) {
        Ok(_) | Err(PageFault::Stale) => Ok(()),
        Err(PageFault::Bad(kind)) => Err(wal_err(start, kind)),
    }
}

/// Bytes fed to a stream reader at a time: big enough to be cheap, small enough to keep the
/// reader's buffer small.
const FEED_CHUNK: usize = 256 * 1024;

/// Random access and forward iteration over the WAL of a [`SegmentSource`]. Keeps the last two
/// segments read, so that walking `xl_prev` backwards reads each segment once (one with
/// [`WalReader::forward_only`]).
pub struct WalReader<S> {
    source: S,
    seg_size: u32,
    sysid: Option<u64>,
    cache: Vec<(XLogSegNo, Bytes)>,
    cache_size: usize,
}

impl<S: SegmentSource> WalReader<S> {
    /// A reader of `source`'s WAL with `seg_size`-byte segments; `sysid`, when given, must
    /// match every segment's long page header.
    pub fn new(source: S, seg_size: u32, sysid: Option<u64>) -> WalReader<S> {
        WalReader {
            source,
            seg_size,
            sysid,
            cache: Vec::with_capacity(2),
            cache_size: 2,
        }
    }

    /// Keeps only the segment being read: enough for reading forward
    /// ([`WalReader::records_from`]), where the records' bytes are copied out of each segment
    /// as it is fed. Saves a segment (16 MiB by default) of memory.
    pub fn forward_only(mut self) -> WalReader<S> {
        self.cache_size = 1;
        self
    }

    /// The segment source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Segment `segno`, from the cache or the source.
    fn segment(&mut self, segno: XLogSegNo) -> crate::Result<Option<Bytes>> {
        if let Some((_, b)) = self.cache.iter().find(|(n, _)| *n == segno) {
            return Ok(Some(b.clone()));
        }
        // Evicted before the read, so that no more than two segments are ever held (a third
        // would be 16 MiB more of peak memory).
        if self.cache.len() >= self.cache_size {
            self.cache.remove(0);
        }
        let Some(b) = self.source.read_segment(segno)? else {
            return Ok(None);
        };
        check_first_page(&b, segno, self.seg_size, self.sysid)?;
        self.cache.push((segno, b.clone()));
        Ok(Some(b))
    }

    /// Feeds `stream` the next chunk of at most `max` bytes. `Ok(false)`: the segment holding
    /// it is missing.
    fn feed_next(&mut self, stream: &mut WalStreamReader, max: usize) -> crate::Result<bool> {
        let at = stream.input_lsn();
        let Some(seg) = self.segment(at.segment(self.seg_size))? else {
            return Ok(false);
        };
        let off = at.segment_offset(self.seg_size) as usize;
        let chunk = seg.get(off..).unwrap_or(&[]);
        stream.feed(chunk.get(..max).unwrap_or(chunk));
        Ok(true)
    }

    /// Reads the record that starts at `lsn` (a record position: 8-byte aligned, not inside a
    /// page header). Its `xl_prev` is only checked to lie before it. Errors: the segment is
    /// missing ([`WalError::MissingSegment`] naming the file), no valid record is there, or
    /// the record is corrupt; all name `lsn`.
    pub fn read_record_at(&mut self, lsn: Lsn) -> crate::Result<Record> {
        if lsn.page_offset(XLOG_BLCKSZ) == 0 || !lsn.0.is_multiple_of(8) {
            return Err(wal_err(lsn, WalError::BadRecordOffset));
        }
        let mut stream = WalStreamReader::new(lsn, self.seg_size, self.sysid).strict();
        loop {
            if let Some(r) = stream.poll()? {
                return Ok(r);
            }
            if let Some(end) = stream.end_of_wal() {
                return Err(wal_err(
                    lsn,
                    end.reason.clone().unwrap_or(WalError::NoRecord),
                ));
            }
            // Page by page: most records fit in one or two, and walking `xl_prev` back over
            // many records must not copy a large chunk for each.
            if !self.feed_next(&mut stream, XLOG_BLCKSZ as usize)? {
                let name = self
                    .source
                    .segment_name(stream.input_lsn().segment(self.seg_size));
                return Err(wal_err(lsn, WalError::MissingSegment(name)));
            }
        }
    }

    /// Records from `start` onwards (see [`WalStreamReader::new`] for what `start` may be),
    /// until the end of WAL or the first missing segment after the one holding `start`.
    pub fn records_from(&mut self, start: Lsn) -> Records<'_, S> {
        let stream = WalStreamReader::new(start, self.seg_size, self.sysid);
        Records {
            reader: self,
            stream,
            start,
            failed: false,
        }
    }
}

/// Forward iteration over records; see [`WalReader::records_from`]. After `None`,
/// [`Records::end_of_wal`] says where valid WAL ended.
pub struct Records<'a, S> {
    reader: &'a mut WalReader<S>,
    stream: WalStreamReader,
    start: Lsn,
    failed: bool,
}

impl<S: SegmentSource> Records<'_, S> {
    /// Where and why valid WAL ended, once the iterator has returned `None`.
    pub fn end_of_wal(&self) -> Option<&EndOfWal> {
        self.stream.end_of_wal()
    }

    fn next_record(&mut self) -> crate::Result<Option<Record>> {
        loop {
            if let Some(r) = self.stream.poll()? {
                return Ok(Some(r));
            }
            if self.stream.end_of_wal().is_some() {
                return Ok(None);
            }
            if !self.reader.feed_next(&mut self.stream, FEED_CHUNK)? {
                let first = self.start.segment(self.reader.seg_size);
                let missing = self.stream.input_lsn().segment(self.reader.seg_size);
                if missing == first {
                    let name = self.reader.source.segment_name(missing);
                    return Err(wal_err(self.start, WalError::MissingSegment(name)));
                }
                self.stream.finish();
            }
        }
    }
}

impl<S: SegmentSource> Iterator for Records<'_, S> {
    type Item = crate::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.next_record();
        self.failed = r.is_err();
        r.transpose()
    }
}
