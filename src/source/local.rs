//! A stopped local data directory as the source (`--source-pgdata`). Files are read directly;
//! a file that is shorter than listed while being copied is an error, since a stopped cluster's
//! files must not change.

use super::{ChunkSink, FetchRange, Source, SourceFile, WalSink};
use crate::control::{read_control_file, ControlFile};
use crate::datadir;
use crate::error::{Error, Result};
use crate::lsn::{Lsn, TimeLineId};
use crate::timeline::{history_file_name, parse_history, HistoryError, TimeLineHistoryEntry};
use crate::walscan::{self, RestoringWalDir};
use crate::xlog::{SegmentSource, WalReader};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Largest chunk read at once (bounds memory, as a server source's chunks do).
const CHUNK: u64 = 1 << 20;

/// A local, cleanly stopped data directory.
pub struct LocalSource {
    root: PathBuf,
}

impl LocalSource {
    /// The data directory at `root`.
    pub fn new(root: &Path) -> LocalSource {
        LocalSource {
            root: root.to_path_buf(),
        }
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl LocalSource {
    fn history(&mut self, tli: TimeLineId) -> Result<Vec<TimeLineHistoryEntry>> {
        let text = self.timeline_history(tli)?.unwrap_or_default();
        let path = self.root.join("pg_wal").join(history_file_name(tli));
        let text = String::from_utf8(text).map_err(|_| Error::History {
            path: path.clone(),
            kind: HistoryError::Syntax { line: 1 },
        })?;
        parse_history(&text, tli).map_err(|kind| Error::History { path, kind })
    }

    fn wal_dir(&self, cf: &ControlFile, history: Vec<TimeLineHistoryEntry>) -> RestoringWalDir {
        RestoringWalDir::new(&self.root, cf.xlog_seg_size, history, None)
    }

    fn copy_range(
        &self,
        r: &FetchRange,
        buf: &mut Vec<u8>,
        sink: &mut dyn ChunkSink,
    ) -> Result<()> {
        let full = datadir::join(&self.root, &r.path)?;
        let f = match File::open(&full) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Usage(format!("could not open file \"{}\": it was removed from the source data directory while the source must be stopped", full.display())));
            }
            Err(e) => return Err(Error::io("open file", &full, e)),
        };
        let mut off = r.offset;
        let end = r.offset + r.len;
        while off < end {
            let n = (end - off).min(CHUNK) as usize;
            buf.resize(n, 0);
            let got = read_full_at(&f, &mut buf[..n], off)
                .map_err(|e| Error::io("read file", &full, e))?;
            if got < n {
                return Err(Error::Usage(format!(
                    "size of source file \"{}\" changed concurrently: {} bytes expected, {} copied",
                    full.display(),
                    r.len,
                    off - r.offset + got as u64
                )));
            }
            sink.write(&r.path, off, &buf[..n])?;
            off += n as u64;
        }
        Ok(())
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full_at(f: &File, buf: &mut [u8], mut off: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], off) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                off += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl Source for LocalSource {
    fn describe(&self) -> String {
        format!("data directory \"{}\"", self.root.display())
    }

    fn list_files(&mut self) -> Result<Vec<SourceFile>> {
        Ok(datadir::list(&self.root)?
            .into_iter()
            .map(|l| SourceFile {
                path: l.path,
                kind: l.kind,
            })
            .collect())
    }

    fn fetch_file(&mut self, path: &str) -> Result<Vec<u8>> {
        let full = datadir::join(&self.root, path)?;
        std::fs::read(&full).map_err(|e| Error::io("open file", &full, e))
    }

    fn fetch_ranges(&mut self, ranges: &[FetchRange], sink: &mut dyn ChunkSink) -> Result<()> {
        let mut buf = Vec::new();
        for r in ranges {
            self.copy_range(r, &mut buf, sink)?;
        }
        Ok(())
    }

    fn wal_position(&mut self) -> Result<(TimeLineId, Lsn)> {
        let cf = read_control_file(&self.root)?;
        let tli = cf
            .checkpoint_copy
            .this_timeline_id
            .max(cf.min_recovery_point_tli);
        let history = self.history(tli)?;
        let mut reader = WalReader::new(
            self.wal_dir(&cf, history),
            cf.xlog_seg_size,
            Some(cf.system_identifier),
        );
        let ckpt = walscan::checkpoint_at(&mut reader, cf.checkpoint)?;
        // A stopped standby's data files may be ahead of its last restartpoint, up to its
        // minimum recovery point.
        Ok((tli, ckpt.end.max(cf.min_recovery_point)))
    }

    fn timeline_history(&mut self, tli: TimeLineId) -> Result<Option<Vec<u8>>> {
        if tli.0 <= 1 {
            return Ok(None);
        }
        self.fetch_file(&format!("pg_wal/{}", history_file_name(tli)))
            .map(Some)
    }

    fn read_wal(
        &mut self,
        start: Lsn,
        end: Lsn,
        history: &[TimeLineHistoryEntry],
        sink: &mut WalSink<'_>,
    ) -> Result<()> {
        let cf = read_control_file(&self.root)?;
        let seg_size = cf.xlog_seg_size;
        let mut dir = self.wal_dir(&cf, history.to_vec());
        let mut pos = start;
        while pos < end {
            let segno = pos.segment(seg_size);
            let Some(seg) = dir.read_segment(segno)? else {
                return Err(Error::Usage(format!(
                    "could not open file \"{}\": the source's WAL needed up to {end} is missing",
                    dir.segment_name(segno)
                )));
            };
            let off = pos.segment_offset(seg_size) as usize;
            let data = seg.get(off..).unwrap_or(&[]);
            if !sink(pos, data)? {
                return Ok(());
            }
            pos = segno.next().start_lsn(seg_size);
        }
        Ok(())
    }
}
