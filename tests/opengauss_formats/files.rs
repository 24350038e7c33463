//! A cluster with every kind of relation file openGauss writes (two tablespaces, heap, ustore,
//! partitioned, unlogged, compressed, column-store and segment-page tables), its files
//! classified by gsbuild, and segment-page blocks mapped through the WAL to the pages of the
//! physical files: every such page's LSN on disk is the end of the last record the mapping
//! names for it. Nine segment-page tables of 125 MiB each make physical file 3 (the 128-page
//! extents) grow past 1 GiB, so `3.1` exists and its pages are checked too: a segment of a
//! physical file is `RELSEG_SIZE` blocks, as for any relation.

use crate::support::opengauss::*;
use gsbuild::lsn::{TimeLineId, XLogSegNo};
use gsbuild::relpath::{self, ForkNumber, RELSEG_SIZE};
use gsbuild::walscan;
use gsbuild::xlog::{WalDir, WalReader};
use gsbuild::{Flavor, Lsn};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const SEG: u32 = 16 << 20;
const SEGMENT_TABLES: u32 = 9;

/// Builds the cluster, stops it, checks it.
pub fn check(og: &OgInstall) {
    let port = free_port_block();
    let mut c = OgCluster::init(og, "fmt", port, port + 100);
    c.append("postgresql.conf", "wal_keep_segments = 2048\n");
    c.start("primary");
    let ts = og_dir("ts-abs");
    create_tables(&c, &ts.path);
    c.stop();
    let version_dir = Flavor::OpenGauss.tablespace_version_dir(201_611_171, "fmt");
    let kinds = classify_all(&c.datadir(), &version_dir);
    eprintln!("relation files by kind: {kinds:?}");
    for kind in [
        "main",
        "fsm",
        "vm",
        "init",
        "column",
        "compressed",
        "tablespace",
        "segment",
    ] {
        assert!(kinds.contains_key(kind), "no {kind} file seen: {kinds:?}");
    }
    let (pages, beyond) = check_segment_pages(&c.datadir(), &version_dir);
    eprintln!("{pages} segment-page pages checked, {beyond} of them past the first 1 GiB slice");
    assert!(beyond > 1000, "too few pages in a second slice: {beyond}");
}

fn create_tables(c: &OgCluster, ts: &Path) {
    c.sql(&format!(
        "create tablespace ts_abs location '{}'",
        ts.display()
    ));
    c.sql("create tablespace ts_rel relative location 'tsrel_dir'");
    c.sql(
        "create table h_abs(id int primary key, v text) tablespace ts_abs;
         insert into h_abs select g, md5(g::text) from generate_series(1, 3000) g;
         create table h_rel(id int, v text) tablespace ts_rel;
         insert into h_rel select g, md5(g::text) from generate_series(1, 3000) g;
         create table seg_ts(id int, v text) with (segment=on) tablespace ts_abs;
         insert into seg_ts select g, md5(g::text) from generate_series(1, 3000) g;
         create table col(id int, v text) with (orientation=column);
         insert into col select g, md5(g::text) from generate_series(1, 5000) g;
         create table cfs(id int, v text) with (compresstype=2);
         insert into cfs select g, md5(g::text) from generate_series(1, 5000) g;
         create table us(id int, v text) with (storage_type=ustore);
         insert into us select g, md5(g::text) from generate_series(1, 5000) g;
         create table part(id int, v text) partition by range (id)
           (partition p1 values less than (1000), partition p2 values less than (maxvalue));
         insert into part select g, md5(g::text) from generate_series(1, 3000) g;
         create unlogged table ul(id int primary key);
         insert into ul select generate_series(1, 1000);",
    );
    c.sql("vacuum");
    for i in 1..=SEGMENT_TABLES {
        c.sql(&format!(
            "create table seg{i}(id int, v text) with (segment=on);
             insert into seg{i} select g, repeat(md5(g::text), 30) from generate_series(1, 130000) g;"
        ));
    }
    c.sql("update seg9 set v = 'updated' where id % 100 = 0; checkpoint;");
}

/// Every file under `base/`, `global/` and the tablespaces, classified as openGauss names
/// them; returns how many of each kind.
fn classify_all(datadir: &Path, version_dir: &str) -> BTreeMap<&'static str, usize> {
    let mut kinds = BTreeMap::new();
    let mut dirs: Vec<String> = vec!["global".into()];
    for db in list(&datadir.join("base")) {
        dirs.push(format!("base/{db}"));
    }
    for spc in list(&datadir.join("pg_tblspc")) {
        for db in list(&datadir.join(format!("pg_tblspc/{spc}/{version_dir}"))) {
            dirs.push(format!("pg_tblspc/{spc}/{version_dir}/{db}"));
        }
    }
    for dir in dirs {
        for name in list(&datadir.join(&dir)) {
            let path = format!("{dir}/{name}");
            if datadir.join(&path).is_dir() {
                continue;
            }
            let kind = classify_one(&path, &name);
            *kinds.entry(kind).or_insert(0) += 1;
        }
    }
    kinds
}

/// One file: a relation file whose path round-trips, or one of the known other files.
fn classify_one(path: &str, name: &str) -> &'static str {
    let og = Flavor::OpenGauss;
    let Some(rf) = relpath::classify_in(path, og) else {
        let known = ["PG_VERSION", "pg_filenode.map", "pg_filenode.map.backup"].contains(&name)
            || ["pg_control", "pg_dw", "pg_internal.init", "pg_remain_segs"]
                .iter()
                .any(|p| name.starts_with(p))
            || ["config_exec_params", "pgstat.stat", "pg_clean_file"].contains(&name);
        assert!(known, "{path} is not classified");
        return "other";
    };
    let version = path.split('/').nth(2).unwrap_or("");
    assert_eq!(
        relpath::relation_path(rf.locator, rf.fork, rf.segment, version),
        path
    );
    let main = relpath::is_main_fork_data_file_in(path, og);
    assert_eq!(main, rf.fork == ForkNumber::Main, "{path}");
    assert!(!relpath::is_main_fork_data_file(path) || main, "{path}");
    match rf.fork {
        ForkNumber::Main if path.starts_with("pg_tblspc/") => "tablespace",
        ForkNumber::Main if rf.locator.rel <= 5 => "segment",
        ForkNumber::Main => "main",
        ForkNumber::Fsm => "fsm",
        ForkNumber::VisibilityMap => "vm",
        ForkNumber::Init => "init",
        ForkNumber::Bcm | ForkNumber::ColumnBcm(_) => "bcm",
        ForkNumber::Column(_) => "column",
        ForkNumber::Compressed => "compressed",
    }
}

fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    v.retain(|n| n != "pgsql_tmp");
    v.sort();
    v
}

/// `pd_lsn` of block `blk` of `path`.
fn page_lsn(path: &Path, blk: u32) -> u64 {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.seek(SeekFrom::Start(u64::from(blk) * 8192))
        .expect("seek");
    let mut h = [0u8; 8];
    f.read_exact(&mut h).expect("read page header");
    let hi = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let lo = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Reads the whole WAL: for every main-fork block reference with a physical location, the
/// page is block `blockno % RELSEG_SIZE` of `<db>/<fileno>[.<blockno / RELSEG_SIZE>]`; the last
/// record naming a page must have ended at that page's LSN. The changed-block scan names the
/// same pages. Returns (pages checked, pages past the first slice).
fn check_segment_pages(datadir: &Path, version_dir: &str) -> (usize, usize) {
    let wal_dir = datadir.join("pg_xlog");
    let first = list(&wal_dir)
        .into_iter()
        .filter_map(|n| XLogSegNo::parse_file_name(&n, SEG))
        .map(|(_, s)| s)
        .min()
        .expect("a segment");
    let start = first.start_lsn(SEG);
    let mut reader = WalReader::new(
        WalDir::with_timeline(&wal_dir, SEG, TimeLineId(1)),
        SEG,
        None,
    );
    let mut last: BTreeMap<(String, u32), Lsn> = BTreeMap::new();
    let mut end = start;
    let mut records = reader.records_from(start);
    for rec in records.by_ref() {
        let rec = rec.expect("WAL decodes");
        for b in rec.blocks.iter().filter(|b| b.fork == ForkNumber::Main) {
            let Some(seg) = b.og.and_then(|og| og.seg) else {
                continue;
            };
            let file = gsbuild::relpath::RelFileLocator {
                rel: u32::from(seg.fileno),
                ..b.rel
            };
            let blk = seg.blockno.0;
            let path =
                relpath::relation_path(file, ForkNumber::Main, blk / RELSEG_SIZE, version_dir);
            last.insert((path, blk % RELSEG_SIZE), rec.end_lsn);
        }
        end = rec.end_lsn;
    }
    let mut wrong = Vec::new();
    let mut beyond = 0;
    for ((path, blk), lsn) in &last {
        let on_disk = page_lsn(&datadir.join(path), *blk);
        if on_disk != lsn.0 && wrong.len() < 10 {
            wrong.push(format!(
                "{path} block {blk}: page LSN {} but WAL {lsn}",
                Lsn(on_disk)
            ));
        }
        beyond += usize::from(path.rsplit('/').next().is_some_and(|n| n.contains('.')));
    }
    assert!(
        wrong.is_empty(),
        "segment-page pages:\n{}",
        wrong.join("\n")
    );
    let mut reader = WalReader::new(
        WalDir::with_timeline(&wal_dir, SEG, TimeLineId(1)),
        SEG,
        None,
    );
    let (changed, _) =
        walscan::scan_changed_blocks(&mut reader, start, end, version_dir).expect("scan");
    let named: BTreeSet<(String, u32)> = changed
        .iter()
        .flat_map(|(p, blocks)| blocks.iter().map(move |b| (p.clone(), *b)))
        .collect();
    for key in last.keys() {
        assert!(named.contains(key), "the scan misses {key:?}");
    }
    (last.len(), beyond)
}
