//! The fuzz corpora as regression tests: every file under `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` goes through the same property check as the fuzz target
//! (`gsbuild::fuzzing::check_<target>`), so plain `cargo test` replays them without cargo-fuzz.
//!
//! `regenerate_seed_corpus` (ignored by default) writes the seeds made from real servers: a
//! pg_control, WAL pages and single records of each major 14–18, and a timeline history file.
//! Run it with `cargo test --test fuzz_corpus -- --ignored` (see `fuzz/README.md`).

mod support;

use gsbuild::fuzzing;
use gsbuild::xlog::{WalStreamReader, XLOG_BLCKSZ};
use gsbuild::Lsn;
use std::path::{Path, PathBuf};
use support::{Cluster, InitOptions};

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 7] = [
    ("control", fuzzing::check_control),
    ("wal_stream", fuzzing::check_wal_stream),
    ("wal_record", fuzzing::check_wal_record),
    ("history", fuzzing::check_history),
    ("conninfo", fuzzing::check_conninfo),
    ("paths", fuzzing::check_paths),
    ("listing", fuzzing::check_listing),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    out.retain(|p| p.is_file() && p.file_name().is_none_or(|n| n != ".gitkeep"));
    out.sort();
    out
}

#[test]
fn corpus_and_regressions_hold_their_properties() {
    let mut total = 0;
    for (target, check) in TARGETS {
        for kind in ["corpus", "regressions"] {
            for file in files(&fuzz_dir().join(kind).join(target)) {
                let data = std::fs::read(&file).expect("read corpus file");
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(outcome.is_ok(), "{target}: {} fails", file.display());
                total += 1;
            }
        }
    }
    assert!(total >= TARGETS.len(), "only {total} corpus files found");
}

/// Writes `bytes` as `fuzz/corpus/<target>/<name>`.
fn seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

/// Bytes of WAL read from each major's seed: 4 pages from the page where the workload began.
const WAL_SEED_LEN: usize = 4 * XLOG_BLCKSZ as usize;

#[test]
#[ignore = "writes fuzz/corpus from real servers; run by hand to regenerate the seeds"]
fn regenerate_seed_corpus() {
    for major in 14..=18 {
        let Some(pg) = support::install(major) else {
            continue;
        };
        let opts = InitOptions {
            extra_conf: "wal_compression = on\n".into(),
            ..InitOptions::default()
        };
        let mut c = Cluster::init(&pg, "seeds", &opts);
        c.start();
        c.psql("postgres", "CHECKPOINT");
        let start: Lsn = c
            .psql("postgres", "SELECT pg_current_wal_insert_lsn()")
            .parse()
            .expect("lsn");
        c.psql_script(
            "postgres",
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, repeat('x', g % 50) FROM generate_series(1, 300) g;
             UPDATE t SET v = v || 'y' WHERE id % 7 = 0;
             SELECT pg_logical_emit_message(true, 'fuzz', repeat('m', 9000));
             DELETE FROM t WHERE id % 11 = 0;",
        );
        c.psql("postgres", "CHECKPOINT");
        c.stop();
        let control = std::fs::read(c.datadir().join("global/pg_control")).expect("pg_control");
        seed("control", &format!("pg{major}"), &control);
        wal_seeds(major, &c, start);
    }
    history_seed();
}

/// The WAL pages from `start`'s page on as a `wal_stream` seed, and a few records that fit in
/// one page (with block references first) as `wal_record` seeds.
fn wal_seeds(major: u32, c: &Cluster, start: Lsn) {
    let seg_size = fuzzing::FUZZ_SEG_SIZE;
    let page = Lsn(start.0 - start.page_offset(XLOG_BLCKSZ));
    let name = start
        .segment(seg_size)
        .file_name(gsbuild::TimeLineId(1), seg_size);
    let segment = std::fs::read(c.wal_dir().join(name)).expect("segment");
    let at = page.segment_offset(seg_size) as usize;
    let wal = &segment[at..(at + WAL_SEED_LEN).min(segment.len())];
    let mut input = page.0.to_le_bytes().to_vec();
    input.extend_from_slice(&0x9E37_79B9_7F4A_7C15u64.to_le_bytes());
    input.extend_from_slice(wal);
    seed("wal_stream", &format!("pg{major}"), &input);

    let mut r = WalStreamReader::new(page, seg_size, None);
    r.feed(wal);
    r.finish();
    let mut picked = 0;
    while let Ok(Some(rec)) = r.poll() {
        let (from, to) = (
            (rec.lsn.0 - page.0) as usize,
            (rec.data_end.0 - page.0) as usize,
        );
        let same_page = rec.lsn.0 / 8192 == (rec.data_end.0 - 1) / 8192;
        if same_page && (!rec.blocks.is_empty() || picked == 0) && picked < 4 {
            seed("wal_record", &format!("pg{major}-{picked}"), &wal[from..to]);
            picked += 1;
        }
    }
}

/// A real `00000002.history`, from a promoted standby of PostgreSQL 15.
fn history_seed() {
    let Some(pg) = support::install(15) else {
        return;
    };
    let mut primary = Cluster::init(&pg, "seeds-primary", &InitOptions::default());
    primary.start();
    let mut standby = primary.make_standby("seeds-standby", false);
    standby.start();
    standby.promote();
    standby.stop();
    let text = std::fs::read(standby.wal_dir().join("00000002.history")).expect("history");
    let mut input = 2u32.to_le_bytes().to_vec();
    input.extend_from_slice(&text);
    seed("history", "pg15-00000002", &input);
}
