//! [`ReadAhead`]: a [`SegmentSource`] that, while the caller decodes segment N, reads segment
//! N+1 on another thread. Used by the target WAL scan (phase 4), which reads forward segment by
//! segment: the read of the next segment (page cache copy, disk, or `restore_command` with `-c`)
//! overlaps the decoding of the current one instead of adding to it.
//!
//! Memory stays bounded: at most one segment is read ahead. Reading ahead starts only after
//! two consecutive segments were asked for (a walk backwards through `xl_prev` never triggers
//! it) and never goes past a last segment fixed up front, so that nothing is read — or
//! restored — that the caller will not ask for.

use super::SegmentSource;
use crate::error::{Error, Result};
use crate::lsn::{Lsn, XLogSegNo};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Pending = (XLogSegNo, JoinHandle<Result<Option<Bytes>>>);

/// Reads the segment after the one last asked for on a background thread. See the module
/// documentation.
pub struct ReadAhead<S> {
    inner: Arc<Mutex<S>>,
    last: XLogSegNo,
    previous: Option<XLogSegNo>,
    pending: Option<Pending>,
}

impl<S: SegmentSource + Send + 'static> ReadAhead<S> {
    /// Wraps `inner`; segments after `last` (inclusive bound) are never read ahead.
    pub fn new(inner: S, last: XLogSegNo) -> ReadAhead<S> {
        ReadAhead {
            inner: Arc::new(Mutex::new(inner)),
            last,
            previous: None,
            pending: None,
        }
    }

    fn read_now(&self, segno: XLogSegNo) -> Result<Option<Bytes>> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        inner.read_segment(segno)
    }

    fn start(&mut self, segno: XLogSegNo) {
        let inner = Arc::clone(&self.inner);
        let handle = std::thread::spawn(move || {
            let mut inner = inner.lock().map_err(|_| poisoned())?;
            inner.read_segment(segno)
        });
        self.pending = Some((segno, handle));
    }
}

fn poisoned() -> Error {
    Error::wal_use(Lsn::INVALID, crate::error::WalUseError::ReadAhead)
}

impl<S: SegmentSource + Send + 'static> SegmentSource for ReadAhead<S> {
    fn read_segment(&mut self, segno: XLogSegNo) -> Result<Option<Bytes>> {
        let ahead = match self.pending.take() {
            Some((n, handle)) => {
                let r = handle.join().map_err(|_| poisoned())?;
                (n == segno).then_some(r)
            }
            None => None,
        };
        let got = match ahead {
            Some(r) => r?,
            None => self.read_now(segno)?,
        };
        let forward = self.previous.is_some_and(|p| p.0 + 1 == segno.0);
        self.previous = Some(segno);
        if got.is_some() && forward && segno < self.last {
            self.start(segno.next());
        }
        Ok(got)
    }

    fn segment_name(&self, segno: XLogSegNo) -> String {
        match self.inner.lock() {
            Ok(inner) => inner.segment_name(segno),
            Err(_) => format!("segment {}", segno.0),
        }
    }
}

impl<S> Drop for ReadAhead<S> {
    fn drop(&mut self) {
        // Finish the read in flight, so that no thread outlives the reader.
        if let Some((_, handle)) = self.pending.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::ThreadId;

    /// Segments 0..n exist; every read is logged with whether another thread than the test's
    /// made it (a read ahead).
    struct Logged {
        n: u64,
        test_thread: ThreadId,
        log: Log,
    }

    impl SegmentSource for Logged {
        fn read_segment(&mut self, segno: XLogSegNo) -> Result<Option<Bytes>> {
            let ahead = std::thread::current().id() != self.test_thread;
            self.log.lock().unwrap().push((segno.0, ahead));
            Ok((segno.0 < self.n).then(|| Bytes::from(vec![segno.0 as u8; 4])))
        }
        fn segment_name(&self, segno: XLogSegNo) -> String {
            format!("seg{}", segno.0)
        }
    }

    type Log = Arc<Mutex<Vec<(u64, bool)>>>;

    fn reader(n: u64, last: u64) -> (ReadAhead<Logged>, Log) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let inner = Logged {
            n,
            test_thread: std::thread::current().id(),
            log: Arc::clone(&log),
        };
        (ReadAhead::new(inner, XLogSegNo(last)), log)
    }

    #[test]
    fn reads_ahead_forward_only_and_within_bounds() {
        let (mut r, log) = reader(10, 6);
        // Backwards (a walk through xl_prev): no read-ahead.
        for n in [4u64, 3, 2] {
            assert_eq!(r.read_segment(XLogSegNo(n)).unwrap().unwrap()[0], n as u8);
        }
        // Forward: from the second consecutive segment on, the next is read ahead, up to the
        // bound (6); 7 and 8 are read when asked for.
        for n in 3u64..=8 {
            assert_eq!(r.read_segment(XLogSegNo(n)).unwrap().unwrap()[0], n as u8);
        }
        assert_eq!(r.segment_name(XLogSegNo(9)), "seg9");
        drop(r);
        let want = [
            (4, false),
            (3, false),
            (2, false),
            (3, false),
            (4, true),
            (5, true),
            (6, true),
            (7, false),
            (8, false),
        ];
        assert_eq!(*log.lock().unwrap(), want);
    }

    #[test]
    fn a_jump_discards_the_read_ahead_and_a_missing_segment_stops_it() {
        let (mut r, log) = reader(3, 100);
        r.read_segment(XLogSegNo(0)).unwrap();
        r.read_segment(XLogSegNo(1)).unwrap();
        // 2 was being read ahead; asking for 0 reads 0 and drops it.
        assert_eq!(r.read_segment(XLogSegNo(0)).unwrap().unwrap()[0], 0);
        r.read_segment(XLogSegNo(1)).unwrap();
        assert_eq!(r.read_segment(XLogSegNo(2)).unwrap().unwrap()[0], 2);
        // 3 does not exist: read ahead, found missing, and nothing after it is tried.
        assert!(r.read_segment(XLogSegNo(3)).unwrap().is_none());
        drop(r);
        let want = [
            (0, false),
            (1, false),
            (2, true),
            (0, false),
            (1, false),
            (2, true),
            (3, true),
        ];
        assert_eq!(*log.lock().unwrap(), want);
    }
}
