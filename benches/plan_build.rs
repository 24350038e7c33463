//! Plan building at scale: `gsbuild::plan::build_files` over 1,000,000 paths listed on both
//! sides (a cluster of 100 databases with 10,000 relation files each), as after a real listing:
//! most files identical in size, 1% longer on the target (truncate), 1% shorter (tail copy),
//! 0.5% only on the source, 0.5% only on the target, 0.2% fsm/vm forks (copied whole), and
//! changed blocks for 10% of the relation files. Throughput in files (paths) per second; the
//! listings are cloned outside the timed part, since `build_files` consumes them.
//!
//! Under `cargo test` (criterion's test mode) it uses 10,000 paths and runs once.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use gsbuild::filemap::{FileKind, Policy, WalWindow};
use gsbuild::plan::{build_files, FileMapInput};
use gsbuild::relpath::is_main_fork_data_file;
use gsbuild::XLogSegNo;
use std::collections::{BTreeSet, HashMap};
use std::hint::black_box;
use std::time::{Duration, Instant};

type Listing = Vec<(String, FileKind)>;

fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

/// Source and target listings of `paths` paths, and the changed blocks.
fn listings(paths: usize) -> (Listing, Listing, HashMap<String, BTreeSet<u32>>) {
    let dbs = 100.min(paths / 100).max(1);
    let per_db = paths / dbs;
    let page = 8192u64;
    let mut source = Vec::with_capacity(paths + dbs + 1);
    let mut target = Vec::with_capacity(paths + dbs + 1);
    let mut changed = HashMap::new();
    source.push(("base".to_string(), FileKind::Dir));
    target.push(("base".to_string(), FileKind::Dir));
    for db in 0..dbs {
        let dir = format!("base/{}", 16384 + db);
        source.push((dir.clone(), FileKind::Dir));
        target.push((dir.clone(), FileKind::Dir));
        for i in 0..per_db {
            let rel = 20000 + i;
            let name = match i % 500 {
                0 => format!("{dir}/{rel}_fsm"),
                1 => format!("{dir}/{rel}_vm"),
                _ => format!("{dir}/{rel}"),
            };
            let size = (1 + (i as u64 * 7919) % 128) * page;
            let file = |size| FileKind::File { size };
            match i % 200 {
                0 | 1 => target.push((name.clone(), file(size + 4 * page))),
                2 | 3 => target.push((name.clone(), file(size.saturating_sub(page)))),
                4 => {
                    source.push((name, file(size)));
                    continue;
                }
                5 => {
                    target.push((name, file(size)));
                    continue;
                }
                _ => target.push((name.clone(), file(size))),
            }
            if i % 10 == 7 {
                let blocks = (size / page) as u32;
                changed.insert(name.clone(), (0..blocks).step_by(3).collect());
            }
            source.push((name, file(size)));
        }
    }
    (source, target, changed)
}

fn main() {
    let test = test_mode();
    let paths = if test { 10_000 } else { 1_000_000 };
    let t = Instant::now();
    let (source, target, changed) = listings(paths);
    eprintln!(
        "plan_build: {} source and {} target entries, {} files with changed blocks, made in {:.2?}",
        source.len(),
        target.len(),
        changed.len(),
        t.elapsed()
    );
    let wal = WalWindow {
        first_segment: XLogSegNo(2),
        stream_from: XLogSegNo(2),
        required: Default::default(),
        source_history: gsbuild::timeline::parse_history("", gsbuild::lsn::TimeLineId(1))
            .expect("timeline 1"),
        wal_dir: "pg_wal".into(),
        seg_size: 16 << 20,
    };
    let policy = Policy::new(gsbuild::flavor::Flavor::Pg15);
    let is_rel = |p: &str| is_main_fork_data_file(p);
    let build = |(source, target): (Listing, Listing)| {
        build_files(FileMapInput {
            source,
            target,
            changed_blocks: &changed,
            is_rel_main: &is_rel,
            policy: &policy,
            wal: &wal,
        })
        .expect("plan")
    };
    let t = Instant::now();
    let (files, totals) = build((source.clone(), target.clone()));
    eprintln!(
        "plan_build: first build {:.2?}: {} planned entries, {} blocks, {:?}",
        t.elapsed(),
        files.len(),
        totals.blocks,
        totals.actions
    );
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(if test { 1 } else { 20 }))
        .configure_from_args();
    let mut g = c.benchmark_group("plan_build");
    g.throughput(Throughput::Elements(paths as u64));
    g.bench_function(BenchmarkId::new("build_files", paths), |b| {
        b.iter_batched(
            || (source.clone(), target.clone()),
            |input| black_box(build(input)),
            BatchSize::LargeInput,
        )
    });
    g.finish();
    c.final_summary();
}
