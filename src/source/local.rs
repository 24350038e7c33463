//! A stopped local data directory as the source (`--source-pgdata`). Files are read directly,
//! with positioned reads on `jobs` threads ([`LocalSource::set_jobs`]) delivered in order of
//! arrival to the caller's thread; the WAL is read the same way, alongside the ranges, since a
//! stopped cluster's end of WAL is known before the copy. A file that is shorter than listed
//! while being copied is an error, since a stopped cluster's files must not change.
//!
//! Phases 2–7.

use super::batch::{merge_contiguous, split_chunks, MAX_CHUNK};
use super::{ChunkSink, FetchRange, Source, SourceFile, TransferSink, WalEnd, WalSink};
use crate::control::{read_control_file, ControlFile};
use crate::datadir;
use crate::datadir::FileKind;
use crate::error::{Error, Result};
use crate::lsn::{Lsn, TimeLineId};
use crate::timeline::{
    history_file_name, parse_history, segment_file_name, HistoryError, TimeLineHistoryEntry,
};
use crate::walscan::{self, RestoringWalDir};
use crate::xlog::{SegmentSource, WalReader};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

/// Chunks read and not yet written that the channel to the caller's thread holds.
const CHANNEL_CHUNKS: usize = 4;

/// A local, cleanly stopped data directory.
pub struct LocalSource {
    root: PathBuf,
    jobs: usize,
    /// File sizes as listed: a stopped cluster's files do not change, so a file whose size
    /// differs when it is read is an error, growth included (pg_rewind: "size of source file
    /// … changed concurrently").
    listed: HashMap<String, u64>,
    /// Its control file, read once: the cluster is stopped.
    control: Option<ControlFile>,
}

/// What [`LocalSource::read_pieces`] hands each piece to: its bytes, or `None` for a data file
/// that vanished between runs.
type Deliver<'a> = dyn FnMut(&Piece, Option<&[u8]>) -> Result<()> + 'a;

/// One positioned read: a range of a file, or of the WAL (at its position).
#[derive(Debug)]
enum Piece {
    Data(FetchRange),
    Wal(Lsn, FetchRange),
}

impl LocalSource {
    /// The data directory at `root`, read by one thread.
    pub fn new(root: &Path) -> LocalSource {
        LocalSource {
            root: root.to_path_buf(),
            jobs: 1,
            listed: HashMap::new(),
            control: None,
        }
    }

    /// Read with `jobs` threads (`-j`; at least 1).
    pub fn set_jobs(&mut self, jobs: usize) {
        self.jobs = jobs.max(1);
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl LocalSource {
    /// The source's control file.
    fn control(&mut self) -> Result<ControlFile> {
        if let Some(cf) = &self.control {
            return Ok(cf.clone());
        }
        let cf = read_control_file(&self.root)?;
        self.control = Some(cf.clone());
        Ok(cf)
    }

    fn history(&mut self, tli: TimeLineId) -> Result<Vec<TimeLineHistoryEntry>> {
        let text = self.timeline_history(tli)?.unwrap_or_default();
        let wal_dir = self.control()?.flavor.wal_dir();
        let path = self.root.join(wal_dir).join(history_file_name(tli));
        let text = String::from_utf8(text).map_err(|_| Error::History {
            path: path.clone(),
            kind: HistoryError::Syntax { line: 1 },
        })?;
        parse_history(&text, tli).map_err(|kind| Error::History { path, kind })
    }

    fn wal_dir(&self, cf: &ControlFile, history: Vec<TimeLineHistoryEntry>) -> RestoringWalDir {
        RestoringWalDir::new(&self.root, cf.flavor, cf.xlog_seg_size, history, None)
    }

    /// Reads `pieces` on up to `jobs` threads and hands each to `deliver` on the caller's
    /// thread, in order of arrival; stops at the first error. Memory: [`CHANNEL_CHUNKS`] read
    /// chunks waiting, plus one being read per thread.
    fn read_pieces(&self, pieces: &[Piece], deliver: &mut Deliver<'_>) -> Result<()> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let threads = self.jobs.min(pieces.len());
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::sync_channel::<Result<(usize, Option<Vec<u8>>)>>(CHANNEL_CHUNKS);
            for _ in 0..threads {
                let tx = tx.clone();
                let (next, failed) = (&next, &failed);
                scope.spawn(move || {
                    let mut open = None;
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(piece) = pieces.get(i) else { break };
                        let read = self.read_piece(piece, &mut open).map(|data| (i, data));
                        if tx.send(read).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut result = Ok(());
            for read in rx.iter() {
                result = read.and_then(|(i, data)| match pieces.get(i) {
                    Some(piece) => deliver(piece, data.as_deref()),
                    None => Ok(()),
                });
                if result.is_err() {
                    break;
                }
            }
            // Dropping the receiver and raising the flag stop every reader.
            failed.store(result.is_err(), Ordering::Relaxed);
            drop(rx);
            result
        })
    }

    /// No listing in this run: the plan is a journal's, made by an earlier run, and the source
    /// may have been started and stopped since (it is stopped again now). What it removed or
    /// shortened in between is taken as a server source's concurrent changes are — a vanished
    /// file is removed from the target, a shorter one copied as far as it goes — since replay
    /// from the recovery start (the earlier of the journal's and the source's now) to the
    /// source's end of WAL accounts for both.
    fn changed_between_runs(&self) -> bool {
        self.listed.is_empty()
    }

    /// Reads one piece whole, keeping the file last read open in `open`; `None` when a data
    /// file vanished between runs ([`LocalSource::changed_between_runs`]).
    fn read_piece(
        &self,
        piece: &Piece,
        open: &mut Option<(String, File)>,
    ) -> Result<Option<Vec<u8>>> {
        let r = match piece {
            Piece::Data(r) | Piece::Wal(_, r) => r,
        };
        let full = datadir::join(&self.root, &r.path)?;
        if open.as_ref().map(|(p, _)| p != &r.path).unwrap_or(true) {
            let f = match File::open(&full) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if matches!(piece, Piece::Data(_)) && self.changed_between_runs() {
                        return Ok(None);
                    }
                    return Err(match piece {
                        Piece::Data(_) => Error::Usage(format!("could not open file \"{}\": it was removed from the source data directory while the source must be stopped", full.display())),
                        Piece::Wal(at, _) => Error::WalRemoved {
                            lsn: *at,
                            message: format!("could not open file \"{}\": the source's WAL from the recovery start on is needed and missing", full.display()),
                        },
                    });
                }
                Err(e) => return Err(Error::io("open file", &full, e)),
            };
            *open = Some((r.path.clone(), f));
        }
        let Some((_, f)) = open.as_ref() else {
            return Err(Error::io(
                "open file",
                &full,
                std::io::Error::other("no open file after opening it"),
            ));
        };
        let len = usize::try_from(r.len)
            .map_err(|_| Error::io("read file", &full, std::io::Error::other("range too large")))?;
        let mut buf = vec![0u8; len];
        let got =
            read_full_at(f, &mut buf, r.offset).map_err(|e| Error::io("read file", &full, e))?;
        if got < len && self.changed_between_runs() && matches!(piece, Piece::Data(_)) {
            buf.truncate(got);
            return Ok(Some(buf));
        }
        if got < len {
            return Err(Error::Usage(format!(
                "size of source file \"{}\" changed concurrently: {} bytes expected at offset {}, {} read",
                full.display(),
                len,
                r.offset,
                got
            )));
        }
        let now = f
            .metadata()
            .map_err(|e| Error::io("stat file", &full, e))?
            .len();
        self.check_size(&r.path, &full, now)?;
        Ok(Some(buf))
    }
}

/// The WAL `[start, end)` as pieces of at most [`MAX_CHUNK`] bytes of the segment files named
/// along `history`.
fn wal_pieces(
    start: Lsn,
    end: Lsn,
    history: &[TimeLineHistoryEntry],
    cf: &ControlFile,
) -> Vec<Piece> {
    let seg_size = cf.xlog_seg_size;
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        let segno = pos.segment(seg_size);
        let off = pos.segment_offset(seg_size);
        let len = (u64::from(seg_size) - off)
            .min(MAX_CHUNK)
            .min(end.0 - pos.0);
        out.push(Piece::Wal(
            pos,
            FetchRange {
                path: cf
                    .flavor
                    .wal_path(&segment_file_name(history, segno, seg_size)),
                offset: off,
                len,
            },
        ));
        pos = Lsn(pos.0 + len);
    }
    out
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

impl LocalSource {
    /// A file of a stopped cluster must keep the size it was listed with.
    fn check_size(&self, rel: &str, full: &Path, now: u64) -> Result<()> {
        match self.listed.get(rel) {
            Some(&listed) if listed != now => Err(Error::Usage(format!(
                "size of source file \"{}\" changed concurrently: {listed} bytes expected, {now} found",
                full.display()
            ))),
            _ => Ok(()),
        }
    }
}

impl Source for LocalSource {
    fn describe(&self) -> String {
        format!("data directory \"{}\"", self.root.display())
    }

    fn list_files(&mut self) -> Result<Vec<SourceFile>> {
        let wal_dir = self.control()?.flavor.wal_dir();
        let files: Vec<SourceFile> = datadir::list(&self.root, wal_dir)?
            .into_iter()
            .map(|l| SourceFile {
                path: l.path,
                kind: l.kind,
            })
            .collect();
        self.listed = files
            .iter()
            .filter_map(|f| match f.kind {
                FileKind::File { size } => Some((f.path.clone(), size)),
                _ => None,
            })
            .collect();
        Ok(files)
    }

    fn fetch_file(&mut self, path: &str) -> Result<Vec<u8>> {
        let full = datadir::join(&self.root, path)?;
        std::fs::read(&full).map_err(|e| Error::io("open file", &full, e))
    }

    fn check_ranges(&mut self, ranges: &[FetchRange]) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for r in ranges.iter().filter(|r| seen.insert(r.path.as_str())) {
            let full = datadir::join(&self.root, &r.path)?;
            let now = match std::fs::metadata(&full) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.changed_between_runs() => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::Usage(format!("could not open file \"{}\": it was removed from the source data directory while the source must be stopped", full.display())))
                }
                Err(e) => return Err(Error::io("stat file", &full, e)),
            };
            self.check_size(&r.path, &full, now)?;
        }
        Ok(())
    }

    fn fetch_ranges(&mut self, ranges: &[FetchRange], sink: &mut dyn ChunkSink) -> Result<()> {
        let pieces: Vec<Piece> = split_chunks(&merge_contiguous(ranges))
            .into_iter()
            .map(Piece::Data)
            .collect();
        self.read_pieces(&pieces, &mut |piece, data| match (piece, data) {
            (Piece::Data(r), None) => sink.vanished(&r.path),
            (Piece::Data(r), Some(data)) => sink.write(&r.path, r.offset, data),
            (Piece::Wal(..), _) => Ok(()),
        })
    }

    fn copy_with_wal(
        &mut self,
        ranges: &[FetchRange],
        wal_start: Lsn,
        history: &[TimeLineHistoryEntry],
        sink: &mut dyn TransferSink,
    ) -> Result<WalEnd> {
        // Stopped: where its WAL ends is known before the copy, and the WAL is read with it.
        let (tli, end) = self.wal_position()?;
        let history = super::current_history(self, history, tli)?;
        let cf = self.control()?;
        let data = split_chunks(&merge_contiguous(ranges));
        let wal = wal_pieces(wal_start, end, &history, &cf);
        // Interleaved, so that both advance together.
        let mut pieces = Vec::with_capacity(data.len() + wal.len());
        let (mut data, mut wal) = (data.into_iter().map(Piece::Data), wal.into_iter());
        loop {
            match (data.next(), wal.next()) {
                (None, None) => break,
                (d, w) => pieces.extend(d.into_iter().chain(w)),
            }
        }
        self.read_pieces(&pieces, &mut |piece, bytes| match (piece, bytes) {
            (Piece::Data(r), None) => sink.vanished(&r.path),
            (Piece::Data(r), Some(bytes)) => sink.write(&r.path, r.offset, bytes),
            (Piece::Wal(at, _), Some(bytes)) => sink.wal(*at, bytes, &history),
            (Piece::Wal(at, _), None) => Err(Error::WalRemoved {
                lsn: *at,
                message: format!("the source's WAL at {at} vanished while it was read"),
            }),
        })?;
        Ok(WalEnd { tli, end })
    }

    fn wal_position(&mut self) -> Result<(TimeLineId, Lsn)> {
        let cf = self.control()?;
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
        let path = self.control()?.flavor.wal_path(&history_file_name(tli));
        self.fetch_file(&path).map(Some)
    }

    fn read_wal(
        &mut self,
        start: Lsn,
        end: Lsn,
        history: &[TimeLineHistoryEntry],
        sink: &mut WalSink<'_>,
    ) -> Result<()> {
        let cf = self.control()?;
        let seg_size = cf.xlog_seg_size;
        let mut dir = self.wal_dir(&cf, history.to_vec());
        let mut pos = start;
        while pos < end {
            let segno = pos.segment(seg_size);
            let Some(seg) = dir.read_segment(segno)? else {
                return Err(Error::WalRemoved {
                    lsn: pos,
                    message: format!(
                        "could not open file \"{}\": the source's WAL needed up to {end} is missing",
                        dir.segment_name(segno)
                    ),
                });
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Keep(Vec<(String, u64, usize)>);
    impl ChunkSink for Keep {
        fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<()> {
            self.0.push((path.to_string(), offset, data.len()));
            Ok(())
        }
        fn vanished(&mut self, path: &str) -> Result<()> {
            self.0.push((path.to_string(), 0, usize::MAX));
            Ok(())
        }
    }

    fn stopped_cluster() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        // A real cluster's control file (PostgreSQL 15), which names the flavor.
        std::fs::create_dir(d.path().join("global")).unwrap();
        let control = include_bytes!("../../fuzz/corpus/control/pg15");
        std::fs::write(d.path().join("global/pg_control"), control).unwrap();
        d
    }

    fn range(path: &str, len: u64) -> FetchRange {
        FetchRange {
            path: path.into(),
            offset: 0,
            len,
        }
    }

    /// A run resumed from a journal (no listing of its own) copies from a source that may have
    /// been started and stopped since the plan: a file it removed meanwhile is reported as
    /// vanished, one it shortened is copied as far as it goes. A fresh run refuses both.
    #[test]
    fn a_resumed_run_takes_changes_made_between_runs() {
        let d = stopped_cluster();
        std::fs::write(d.path().join("shrunk"), b"abc").unwrap();
        let mut resumed = LocalSource::new(d.path());
        let mut sink = Keep(Vec::new());
        resumed
            .check_ranges(&[range("gone", 8), range("shrunk", 6)])
            .unwrap();
        resumed
            .fetch_ranges(&[range("gone", 8), range("shrunk", 6)], &mut sink)
            .unwrap();
        sink.0.sort();
        assert_eq!(
            sink.0,
            vec![("gone".into(), 0, usize::MAX), ("shrunk".into(), 0, 3)]
        );
        let mut fresh = LocalSource::new(d.path());
        fresh.list_files().unwrap();
        let err = fresh.check_ranges(&[range("gone", 8)]).unwrap_err();
        assert!(
            err.to_string().contains("while the source must be stopped"),
            "{err}"
        );
        let err = fresh
            .fetch_ranges(&[range("gone", 8)], &mut Keep(Vec::new()))
            .unwrap_err();
        assert!(
            err.to_string().contains("while the source must be stopped"),
            "{err}"
        );
    }

    /// A stopped source's file that grows or shrinks after it was listed is an error, not a
    /// copy of whatever part was read.
    #[test]
    fn a_size_change_after_listing_is_an_error() {
        let d = stopped_cluster();
        std::fs::write(d.path().join("grows"), b"a").unwrap();
        std::fs::write(d.path().join("shrinks"), b"abcdef").unwrap();
        std::fs::write(d.path().join("same"), b"xyz").unwrap();
        let mut src = LocalSource::new(d.path());
        src.list_files().unwrap();
        std::fs::write(d.path().join("grows"), b"a, and an error message").unwrap();
        std::fs::write(d.path().join("shrinks"), b"abc").unwrap();
        let mut sink = Keep(Vec::new());
        src.fetch_ranges(&[range("same", 3)], &mut sink).unwrap();
        assert_eq!(sink.0, vec![("same".to_string(), 0, 3)]);
        for (path, len) in [("grows", 1), ("shrinks", 6)] {
            let err = src
                .fetch_ranges(&[range(path, len)], &mut Keep(Vec::new()))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!(
                    "size of source file \"{}",
                    d.path().join(path).display()
                )) && err.contains("changed concurrently"),
                "{err}"
            );
        }
    }
}
