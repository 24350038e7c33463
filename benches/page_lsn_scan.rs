//! Page-LSN scan throughput (`gsbuild::pagescan::scan`) over synthetic relation files: 1 GiB in
//! a temporary directory laid out like a database (three large relations of 512, 256 and 128
//! MiB and 2,048 files of 64 KiB), pages stamped with increasing LSNs, 1% of them at or after
//! the threshold and 0.1% all-zero. Measured on one rayon thread and on all cores, with the
//! page cache warm (the files were just written); a cold-cache figure needs
//! `sync; echo 3 > /proc/sys/vm/drop_caches` before a single run (docs/benchmarks.md).
//!
//! Under `cargo test` (criterion's test mode) it writes 16 MiB and runs each benchmark once.
//! `GSBUILD_SCAN_DIR=DIR` keeps the files in `DIR` (written there when it holds none) and
//! scans every regular file under it: for the cold-cache measurement by hand, where the first
//! pass, timed on its own and printed before criterion starts, is the cold one.

use criterion::{BenchmarkId, Criterion, Throughput};
use gsbuild::pagescan::{self, Selection, PAGE_SIZE};
use gsbuild::Lsn;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

/// Threshold of the benchmark's selection; 1% of the pages are at or after it.
const THRESHOLD: u64 = 0x2_0000_0000;

fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

/// A small deterministic generator (xorshift64*), so every run writes the same files.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Writes a relation file of `pages` pages: LSNs increasing from 1/0 with the block number,
/// 1% at or after [`THRESHOLD`], 0.1% all-zero pages; page bodies filled with non-zero bytes.
fn write_relation(path: &Path, pages: usize, rng: &mut Rng) {
    let mut buf = vec![0x5au8; pages * PAGE_SIZE];
    for (i, page) in buf.chunks_exact_mut(PAGE_SIZE).enumerate() {
        let r = rng.next() % 1000;
        if r == 0 {
            page.fill(0);
            continue;
        }
        let lsn = if r < 11 {
            THRESHOLD + rng.next() % (1 << 24)
        } else {
            0x1_0000_0000 + (i as u64) * 128 + rng.next() % 128
        };
        pagescan::set_page_lsn(page, lsn);
    }
    std::fs::write(path, buf).expect("write relation file");
}

/// Writes the data set under `root`; returns the relative paths and the total bytes.
fn generate(root: &Path, total_mib: usize) -> (Vec<String>, u64) {
    let db = root.join("base/16384");
    std::fs::create_dir_all(&db).expect("create database dir");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mib_pages = (1 << 20) / PAGE_SIZE;
    let mut files = Vec::new();
    // Large relations: 1/2, 1/4, 1/8 of the volume; the last 1/8 in 64 KiB files.
    for (i, share) in [2usize, 4, 8].into_iter().enumerate() {
        let rel = format!("base/16384/{}", 16400 + i);
        write_relation(&root.join(&rel), total_mib / share * mib_pages, &mut rng);
        files.push(rel);
    }
    let small = total_mib / 8 * 16;
    for i in 0..small {
        let rel = format!("base/16384/{}", 20000 + i);
        write_relation(&root.join(&rel), 8, &mut rng);
        files.push(rel);
    }
    let bytes = files
        .iter()
        .map(|f| std::fs::metadata(root.join(f)).map_or(0, |m| m.len()))
        .sum();
    (files, bytes)
}

/// Every regular file under `root`, relative.
fn existing(root: &Path) -> (Vec<String>, u64) {
    let mut files = Vec::new();
    let mut bytes = 0;
    for e in walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(root).expect("under root");
            files.push(rel.to_string_lossy().into_owned());
            bytes += e.metadata().map_or(0, |m| m.len());
        }
    }
    (files, bytes)
}

fn main() {
    let test = test_mode();
    let given = std::env::var_os("GSBUILD_SCAN_DIR");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let root = given.map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let (mut files, mut bytes) = existing(&root);
    if files.is_empty() {
        let t = Instant::now();
        (files, bytes) = generate(&root, if test { 16 } else { 1024 });
        eprintln!(
            "page_lsn_scan: wrote {} MiB in {} files in {:.2?}",
            bytes >> 20,
            files.len(),
            t.elapsed()
        );
    }
    let sel = Selection {
        from: Lsn(THRESHOLD),
        zero_lsn: false,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pools: Vec<(String, rayon::ThreadPool)> = [1, cores]
        .into_iter()
        .map(|n| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .expect("thread pool");
            (format!("{n}_threads"), pool)
        })
        .collect();
    // The first pass (on all cores; a cold cache when the caller dropped it) is timed on its
    // own.
    let t = Instant::now();
    let first = pagescan::scan(&root, &files, sel).expect("scan");
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "page_lsn_scan: first pass {:.3} s = {:.2} GB/s ({} pages, {} found)",
        secs,
        bytes as f64 / secs / 1e9,
        first.stats.pages,
        first.hits()
    );
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(if test { 1 } else { 10 }))
        .configure_from_args();
    let mut g = c.benchmark_group("page_lsn_scan");
    g.throughput(Throughput::Bytes(bytes));
    for (name, pool) in &pools {
        g.bench_function(BenchmarkId::new("warm", name), |b| {
            b.iter(|| {
                let r = pool
                    .install(|| pagescan::scan(&root, &files, sel))
                    .expect("scan");
                black_box(r.hits())
            })
        });
    }
    g.finish();
    c.final_summary();
}
