//! `gsbuild inspect wal`: WAL records printed one per line, in `pg_waldump`'s layout so tests
//! can compare the two line by line (openGauss's WAL in its `pg_xlogdump`'s, see
//! [`super::xlogdump`]).
//!
//! PATH is a segment file (only that segment is read) or a directory of segment files (then
//! consecutive segments of one timeline are read: the timeline of the first file in name
//! order, or with `--start` the newest timeline that has the segment holding it).
//!
//! Per record, one line: `pg_waldump`'s prefix up to `desc:`, then the full `xl_info` byte:
//!
//! ```text
//! rmgr: Heap        len (rec/tot):     54/    54, tx:        735, lsn: 0/01723B30, prev 0/01723AF8, info: 0x00
//! ```
//!
//! (`rec` is the total length minus the stored full-page image bytes, as `pg_waldump` counts.)
//! With `--blocks`, each block reference follows on its own line:
//!
//! ```text
//! \tblkref #0: rel 1663/5/16384 fork main blk 0
//! \tblkref #1: rel 1663/5/16384 fork vm blk 0 FPW; hole: offset: 60, length: 7000
//! \tblkref #2: rel 1663/5/16385 fork main blk 7 FPW for WAL verification; hole: offset: 0, length: 0, compression saved: 7000, method: lz4
//! ```
//!
//! `--start` defaults to the first record that begins in the first segment; `--end` stops, as
//! `pg_waldump -e` does, before the first record that does not end at or before it. Without
//! `--end` the dump stops at the end of valid WAL and says `end of WAL at X/X` on stderr only.
//! A corrupt record or a missing first segment is an error naming the LSN or the file.
//!
//! No phase: a tool for people and tests.

use crate::flavor::RecordFormat;
use crate::lsn::{Lsn, TimeLineId, XLogSegNo};
use crate::relpath::BLCKSZ;
use crate::xlog::page::{PageHeader, LONG_HEADER_LEN};
use crate::xlog::segment::read_segment_file;
use crate::xlog::{BlockRef, Compression, Record, SegmentSource, WalDir, WalReader};
use crate::Error;
use bytes::Bytes;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What to print.
#[derive(Debug, Clone)]
pub struct WalArgs {
    /// A segment file or a `pg_wal` directory.
    pub path: PathBuf,
    /// First record to print; `None`: the first record that starts in the input.
    pub start: Option<Lsn>,
    /// Stop before this position; `None`: the end of valid WAL.
    pub end: Option<Lsn>,
    /// Print block references, one per line.
    pub blocks: bool,
}

/// A single segment file as a source: every other segment is missing.
struct OneSegment {
    path: PathBuf,
    segno: XLogSegNo,
    seg_size: u32,
}

impl SegmentSource for OneSegment {
    fn read_segment(&mut self, segno: XLogSegNo) -> crate::Result<Option<Bytes>> {
        if segno != self.segno {
            return Ok(None);
        }
        read_segment_file(&self.path, self.seg_size)
    }

    fn segment_name(&self, segno: XLogSegNo) -> String {
        if segno == self.segno {
            self.path.display().to_string()
        } else {
            format!("segment {segno:?} (outside {})", self.path.display())
        }
    }
}

/// The segment size from the long header at the start of the segment file `path`.
fn seg_size_of(path: &Path) -> crate::Result<u32> {
    let mut head = [0u8; LONG_HEADER_LEN as usize];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| Error::io("read file", path, e))?;
    let h = PageHeader::decode(&head).map_err(|kind| Error::Wal {
        lsn: Lsn::INVALID,
        kind,
    })?;
    let size = h.long.map(|l| l.seg_size).unwrap_or(0);
    if !crate::lsn::is_valid_seg_size(size) {
        return Err(Error::Usage(format!(
            "\"{}\" does not start with a valid WAL segment header",
            path.display()
        )));
    }
    Ok(size)
}

/// A segment file found in a directory: its timeline and segment number.
type SegFile = (TimeLineId, XLogSegNo);

/// The segment size and the segment files of `dir` in name order (at least one).
fn list_segments(dir: &Path) -> crate::Result<(u32, SegFile, Vec<SegFile>)> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("open directory", dir, e))?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    names.sort();
    let Some(first) = names.first() else {
        return Err(Error::Usage(format!(
            "no WAL segment files in \"{}\"",
            dir.display()
        )));
    };
    let seg_size = seg_size_of(&dir.join(first))?;
    let segs: Vec<SegFile> = names
        .iter()
        .filter_map(|n| XLogSegNo::parse_file_name(n, seg_size))
        .collect();
    let first = segs
        .first()
        .copied()
        .ok_or_else(|| Error::Usage(format!("no WAL segment files in \"{}\"", dir.display())))?;
    Ok((seg_size, first, segs))
}

/// Prints the records selected by `args` to `out`.
pub fn run(args: &WalArgs, out: &mut dyn Write) -> crate::Result<()> {
    if args.path.is_dir() {
        let (seg_size, first_file, segs) = list_segments(&args.path)?;
        let (tli, first) = match args.start {
            Some(s) => {
                let segno = s.segment(seg_size);
                let tli = segs
                    .iter()
                    .filter(|(_, n)| *n == segno)
                    .map(|(t, _)| *t)
                    .max()
                    .unwrap_or(first_file.0);
                (tli, segno)
            }
            None => first_file,
        };
        let dir = WalDir::with_timeline(&args.path, seg_size, tli);
        dump(
            WalReader::new(dir, seg_size, None),
            first,
            seg_size,
            args,
            out,
        )
    } else {
        let name = args
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let seg_size = seg_size_of(&args.path)?;
        let Some((_, segno)) = XLogSegNo::parse_file_name(name, seg_size) else {
            return Err(Error::Usage(format!(
                "\"{}\" is not named like a WAL segment file",
                args.path.display()
            )));
        };
        let src = OneSegment {
            path: args.path.clone(),
            segno,
            seg_size,
        };
        dump(
            WalReader::new(src, seg_size, None),
            segno,
            seg_size,
            args,
            out,
        )
    }
}

fn dump<S: SegmentSource>(
    mut reader: WalReader<S>,
    first: XLogSegNo,
    seg_size: u32,
    args: &WalArgs,
    out: &mut dyn Write,
) -> crate::Result<()> {
    let start = args.start.unwrap_or(first.start_lsn(seg_size));
    let io = |e| Error::io("write file", "stdout", e);
    let mut records = reader.records_from(start);
    for rec in records.by_ref() {
        let rec = rec?;
        if args.end.is_some_and(|end| rec.data_end > end) {
            return Ok(());
        }
        if rec.flavor.formats().record == RecordFormat::OpenGauss {
            writeln!(out, "{}", super::xlogdump::record_line(&rec, args.blocks)).map_err(io)?;
            continue;
        }
        writeln!(out, "{}", record_line(&rec)).map_err(io)?;
        if args.blocks {
            for b in &rec.blocks {
                writeln!(out, "{}", block_line(b)).map_err(io)?;
            }
        }
    }
    if let Some(end) = records.end_of_wal() {
        let before_end = match args.end {
            Some(e) => end.lsn < e,
            None => true,
        };
        if before_end {
            match &end.reason {
                Some(why) => eprintln!("end of WAL at {}: {why}", end.lsn),
                None => eprintln!("end of WAL at {}", end.lsn),
            }
        }
    }
    Ok(())
}

/// `X/XXXXXXXX`, as `pg_waldump` prints positions.
fn waldump_lsn(l: Lsn) -> String {
    format!("{:X}/{:08X}", l.0 >> 32, l.0 & 0xFFFF_FFFF)
}

/// The record line (without newline).
pub fn record_line(r: &Record) -> String {
    format!(
        "rmgr: {:<11} len (rec/tot): {:>6}/{:>6}, tx: {:>10}, lsn: {}, prev {}, info: 0x{:02X}",
        r.rmgr_name(),
        r.rec_len(),
        r.tot_len(),
        r.xid(),
        waldump_lsn(r.lsn),
        waldump_lsn(r.prev()),
        r.info()
    )
}

/// The line of one block reference (without newline).
pub fn block_line(b: &BlockRef) -> String {
    let mut s = format!(
        "\tblkref #{}: rel {} fork {} blk {}",
        b.id, b.rel, b.fork, b.blk
    );
    if let Some(img) = &b.image {
        s.push_str(" FPW");
        if !img.apply {
            s.push_str(" for WAL verification");
        }
        s.push_str(&format!(
            "; hole: offset: {}, length: {}",
            img.hole_offset, img.hole_length
        ));
        if img.compression != Compression::None {
            let saved = BLCKSZ as i64 - i64::from(img.hole_length) - i64::from(img.length);
            s.push_str(&format!(
                ", compression saved: {saved}, method: {}",
                img.compression.name()
            ));
        }
    }
    s
}
