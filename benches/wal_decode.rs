//! WAL decoding throughput on real WAL written by PostgreSQL 15: an update-heavy workload with
//! a checkpoint between batches (so every batch logs full-page images), generated once and
//! cached as segment files in `target/bench-wal/`.
//!
//! Measures (a) `WalStreamReader` over the bytes in memory (bytes/s), (b) the same with every
//! block reference visited (block refs/s), (c) `WalReader::records_from` over the segment files
//! (bytes/s, file reads included), (d) the same with the next segment read ahead on another
//! thread (`ReadAhead`, as the target WAL scan reads). Without PostgreSQL 15 it says why and
//! exits 0. Under `cargo test` (criterion's test mode) it generates and reads a small WAL volume
//! only.

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{BenchmarkId, Criterion, Throughput};
use gsbuild::xlog::readahead::ReadAhead;
use gsbuild::xlog::{SegmentSource, WalDir, WalReader, WalStreamReader};
use gsbuild::{Lsn, TimeLineId, XLogSegNo};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{Cluster, InitOptions};

const SEG_SIZE: u32 = 16 << 20;
/// Bytes fed to the stream reader per call, as a replication stream or a file read would.
const FEED_CHUNK: usize = 1 << 20;

/// The WAL of one workload: its segment files and where reading starts.
struct Wal {
    dir: PathBuf,
    start: Lsn,
    bytes: Vec<u8>,
}

fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

/// PostgreSQL 15 from the project's toolsets, else Debian's.
fn pg15() -> Option<support::PgInstall> {
    let wheel = Path::new("/opt/gsbuild-pg/15/bin/postgres").is_file();
    if wheel {
        support::install(15)
    } else {
        support::debian_install()
    }
}

/// Runs the workload until it has written `mib` MiB of WAL and copies the segments to `dir`.
fn generate(pg: &support::PgInstall, dir: &Path, mib: u64) {
    let mut c = Cluster::init(pg, "bench-wal", &InitOptions::default());
    c.start();
    // Each batch logs an image of every page of the table: keep it small for a small volume.
    let rows = if mib >= 64 { 200_000 } else { 20_000 };
    c.psql_script(
        "postgres",
        &format!(
            "CREATE TABLE accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
             INSERT INTO accounts SELECT g, g % 100, 0, '' FROM generate_series(1, {rows}) g;"
        ),
    );
    c.psql("postgres", "CHECKPOINT");
    let lsn = |c: &Cluster| -> Lsn {
        let text = c.psql("postgres", "SELECT pg_current_wal_insert_lsn()");
        text.parse().expect("pg_current_wal_insert_lsn")
    };
    let start = lsn(&c);
    let mut batch = 0u64;
    while lsn(&c).0 - start.0 < mib << 20 {
        c.psql_script(
            "postgres",
            &format!(
                "UPDATE accounts SET abalance = abalance + 1 WHERE aid % 10 = {};
                 INSERT INTO accounts SELECT 1000000 + {batch} * 2000 + g, 1, 0, 'x'
                   FROM generate_series(1, 2000) g;
                 CHECKPOINT;",
                batch % 10
            ),
        );
        batch += 1;
    }
    let end = lsn(&c);
    c.stop();
    std::fs::create_dir_all(dir).expect("create WAL cache dir");
    let (first, last) = (start.segment(SEG_SIZE).0, end.segment(SEG_SIZE).0);
    for segno in first..=last {
        let name = XLogSegNo(segno).file_name(TimeLineId(1), SEG_SIZE);
        std::fs::copy(c.wal_dir().join(&name), dir.join(&name)).expect("copy segment");
    }
    let meta = format!("{}\n", XLogSegNo(first).start_lsn(SEG_SIZE));
    std::fs::write(dir.join("start"), meta).expect("write start");
}

/// The cached WAL of `mib` MiB, generated first when missing; `None` without PostgreSQL 15.
fn load(mib: u64) -> Option<Wal> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-wal")
        .join(format!("pg15-{mib}MiB"));
    if !dir.join("start").is_file() {
        let pg = pg15()?;
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!(
            "generating {mib} MiB of WAL with {} into {}",
            pg.label,
            dir.display()
        );
        generate(&pg, &dir, mib);
    }
    let start_text = std::fs::read_to_string(dir.join("start")).expect("read start");
    let start: Lsn = start_text.trim().parse().expect("start LSN");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read WAL cache dir")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.len() == 24))
        .collect();
    names.sort();
    let mut bytes = Vec::new();
    for name in &names {
        bytes.extend_from_slice(&std::fs::read(name).expect("read segment"));
    }
    Some(Wal { dir, start, bytes })
}

/// Reads every record from memory; returns (records, block refs, bytes of valid WAL).
fn stream(wal: &Wal, visit_blocks: bool) -> (u64, u64, u64) {
    let mut r = WalStreamReader::new(wal.start, SEG_SIZE, None);
    let (mut records, mut blocks) = (0u64, 0u64);
    let mut chunks = wal.bytes.chunks(FEED_CHUNK);
    loop {
        match r.poll().expect("valid WAL") {
            Some(rec) => {
                records += 1;
                blocks += rec.blocks.len() as u64;
                if visit_blocks {
                    for b in &rec.blocks {
                        black_box((b.rel, b.fork, b.blk, b.image.is_some()));
                    }
                }
            }
            None => match chunks.next() {
                Some(chunk) => r.feed(chunk),
                None if r.end_of_wal().is_none() => r.finish(),
                None => break,
            },
        }
    }
    let end = r.end_of_wal().map_or(wal.start, |e| e.lsn);
    (records, blocks, end.0 - wal.start.0)
}

/// Reads every record from the segment files.
fn from_files(wal: &Wal) -> u64 {
    let dir = WalDir::with_timeline(&wal.dir, SEG_SIZE, TimeLineId(1));
    count_records(WalReader::new(dir, SEG_SIZE, None), wal.start)
}

/// Reads every record from the segment files, the next segment read on another thread while
/// one is decoded (as the target WAL scan does).
fn from_files_read_ahead(wal: &Wal) -> u64 {
    let dir = WalDir::with_timeline(&wal.dir, SEG_SIZE, TimeLineId(1));
    let last = XLogSegNo(u64::MAX);
    count_records(
        WalReader::new(ReadAhead::new(dir, last), SEG_SIZE, None),
        wal.start,
    )
}

fn count_records<S: SegmentSource>(mut reader: WalReader<S>, start: Lsn) -> u64 {
    let mut records = 0u64;
    for rec in reader.records_from(start) {
        black_box(rec.expect("valid WAL").blocks.len());
        records += 1;
    }
    records
}

fn main() {
    let test = test_mode();
    let Some(wal) = load(if test { 8 } else { 96 }) else {
        eprintln!("wal_decode: no PostgreSQL 15 toolset found; nothing to measure");
        return;
    };
    let (records, blocks, valid) = stream(&wal, false);
    eprintln!(
        "wal_decode: {} MiB of WAL, {records} records, {blocks} block refs",
        valid >> 20
    );
    assert_eq!(
        from_files(&wal),
        records,
        "file and memory readers disagree"
    );
    assert_eq!(
        from_files_read_ahead(&wal),
        records,
        "reading ahead changed what was read"
    );
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(if test { 1 } else { 15 }))
        .configure_from_args();
    let mut g = c.benchmark_group("wal_decode");
    g.throughput(Throughput::Bytes(valid));
    g.bench_function(BenchmarkId::new("stream_in_memory", "bytes"), |b| {
        b.iter(|| stream(&wal, false))
    });
    g.throughput(Throughput::Elements(blocks));
    g.bench_function(BenchmarkId::new("stream_in_memory", "block_refs"), |b| {
        b.iter(|| stream(&wal, true))
    });
    g.throughput(Throughput::Bytes(valid));
    g.bench_function(BenchmarkId::new("records_from_files", "bytes"), |b| {
        b.iter(|| from_files(&wal))
    });
    g.bench_function(
        BenchmarkId::new("records_from_files_read_ahead", "bytes"),
        |b| b.iter(|| from_files_read_ahead(&wal)),
    );
    g.finish();
    c.final_summary();
}
