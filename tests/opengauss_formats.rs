//! openGauss's formats against its own tools, on files a real server (`.ci/install-opengauss.sh`)
//! writes: `gsbuild inspect control` against the shipped `pg_controldata` (byte for byte, on the
//! control files of a running and a stopped primary and standby), `gsbuild inspect wal
//! --blocks` against `pg_xlogdump -b` over the whole WAL of a busy pair (every record's
//! position, end, lengths, CRC and resource manager, every block reference), and the relation
//! files of a cluster with every kind of table classified, segment-page blocks mapped to the
//! pages of their physical files (their page LSNs prove the mapping, past the first 1 GiB
//! slice of a file too). Without the server the tests are skipped, under `CI=true` they fail.

mod support;

#[path = "opengauss_formats/files.rs"]
mod files;
#[path = "opengauss_formats/xlogdump.rs"]
mod xlogdump;

use gsbuild::control::{ControlFile, CONTROL_BACKUP_PATH, CONTROL_FILE_PATH};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::opengauss::*;
use support::{gsbuild_bin, TestDir};

/// Runs `cmd` with the time zone and locale both tools print in.
fn run_c_utc(cmd: &mut Command) -> Output {
    cmd.env("TZ", "UTC").env("LC_ALL", "C");
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

/// The live control file, read until a copy passes its CRC (the server may be writing it).
fn read_live(datadir: &Path) -> Vec<u8> {
    let path = datadir.join(CONTROL_FILE_PATH);
    for _ in 0..100 {
        let bytes = std::fs::read(&path).expect("read pg_control");
        if ControlFile::decode(&bytes).is_ok() {
            return bytes;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never yielded a valid copy", path.display());
}

/// `gsbuild inspect control` and `pg_controldata` on a copy of the node's control file: the
/// same bytes; and the file re-encodes to itself. Returns the file.
fn compare_control(og: &OgInstall, node: &OgCluster, what: &str) -> ControlFile {
    let bytes = read_live(&node.datadir());
    let f = ControlFile::decode(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(f.encode(), bytes, "{what}: encode(decode(f)) differs");
    let copy = og_dir(&format!("ctl-{what}"));
    std::fs::create_dir_all(copy.path.join("global")).expect("mkdir global");
    std::fs::write(copy.path.join(CONTROL_FILE_PATH), &bytes).expect("write copy");
    chown_to_og(&copy.path);
    let theirs = run_c_utc(og.command("pg_controldata").arg(&copy.path));
    assert!(
        theirs.status.success(),
        "{what}: pg_controldata: {theirs:?}"
    );
    let ours = run_c_utc(
        Command::new(gsbuild_bin())
            .args(["inspect", "control"])
            .arg(&copy.path),
    );
    assert!(
        ours.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let (ours, theirs) = (
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout),
    );
    assert_eq!(
        ours, theirs,
        "{what}: inspect control differs from pg_controldata"
    );
    assert_eq!(theirs.lines().count(), 39, "{what}");
    f
}

/// A stopped node's `pg_control.backup` is the first 512 bytes of its `pg_control`.
fn check_backup_file(node: &OgCluster, f: &ControlFile) {
    let on_disk = std::fs::read(node.datadir().join(CONTROL_BACKUP_PATH)).expect("read backup");
    assert_eq!(
        f.backup_image().as_deref(),
        Some(&on_disk[..]),
        "{}",
        node.name
    );
}

#[test]
fn control_files_match_pg_controldata() {
    let Some(og) = og_install() else { return };
    let t = Instant::now();
    let (mut p, mut s) = og_pair(&og, 2000);
    let primary = compare_control(&og, &p, "running-primary");
    assert_eq!(primary.state.to_string(), "in production");
    let standby = compare_control(&og, &s, "running-standby");
    assert_eq!(standby.state.to_string(), "in archive recovery");
    s.stop();
    let standby = compare_control(&og, &s, "stopped-standby");
    assert_eq!(standby.state.to_string(), "shut down in recovery");
    check_backup_file(&s, &standby);
    p.stop();
    let primary = compare_control(&og, &p, "stopped-primary");
    assert_eq!(primary.state.to_string(), "shut down");
    check_backup_file(&p, &primary);
    assert_eq!(primary.system_identifier, standby.system_identifier);
    eprintln!("4 control files compared in {:.0?}", t.elapsed());
}

/// Busy work on a primary: btree inserts and splits, toasted rows, updates and deletes, a
/// vacuum, an index build, a database created, segment-page, ustore, unlogged, compressed and
/// column-store tables, a checkpoint and a WAL switch.
fn workload(p: &OgCluster) {
    for sql in [
        "create table big(id int primary key, doc text);
         insert into big select g, repeat(md5(g::text), 300) from generate_series(1, 300) g;
         update t1 set n = n + 1 where id % 7 = 0;
         delete from t1 where id % 11 = 0;
         create index t1_v on t1(v);",
        "vacuum t1",
        "create database dbx",
        "checkpoint",
        "create table seg(id int, v text) with (segment=on);
         insert into seg select g, md5(g::text) from generate_series(1, 20000) g;
         update seg set v = 'x' where id % 10 = 0;
         create table us(id int, v text) with (storage_type=ustore);
         insert into us select g, md5(g::text) from generate_series(1, 5000) g;
         create unlogged table ul(id int);
         insert into ul select generate_series(1, 1000);
         create table cfs(id int, v text) with (compresstype=2);
         insert into cfs select g, md5(g::text) from generate_series(1, 5000) g;
         create table col(id int, v text) with (orientation=column);
         insert into col select g, md5(g::text) from generate_series(1, 5000) g;",
        "select pg_switch_xlog()",
        "insert into t2 values (9, 'after the switch'); checkpoint;",
    ] {
        p.sql(sql);
    }
}

/// A node's `pg_xlog`, copied into a directory `omm` reads.
fn copy_wal(node: &OgCluster) -> (TestDir, PathBuf, Vec<String>) {
    let dir = og_dir(&format!("wal-{}", node.name));
    let wal = dir.path.join("pg_xlog");
    std::fs::create_dir_all(&wal).expect("mkdir");
    let mut names = Vec::new();
    for e in std::fs::read_dir(node.datadir().join("pg_xlog")).expect("read pg_xlog") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            std::fs::copy(e.path(), wal.join(&name)).expect("copy segment");
            names.push(name);
        }
    }
    names.sort();
    chown_to_og(&dir.path);
    (dir, wal, names)
}

/// Every record of the node's WAL as `pg_xlogdump -b` and `gsbuild inspect wal --blocks` see
/// them; returns (records, block references) compared.
fn compare_wal(og: &OgInstall, node: &OgCluster) -> (usize, usize) {
    let (dir, wal, names) = copy_wal(node);
    let (first, last) = (&names[0], &names[names.len() - 1]);
    let theirs = run_c_utc(
        og.command("pg_xlogdump")
            .arg("-b")
            .arg(wal.join(first))
            .arg(wal.join(last))
            .current_dir(&dir.path),
    );
    let err = String::from_utf8_lossy(&theirs.stderr);
    assert!(err.contains("invalid record length"), "pg_xlogdump: {err}");
    let ours = run_c_utc(
        Command::new(gsbuild_bin())
            .args(["inspect", "wal", "--blocks"])
            .arg(&wal),
    );
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let theirs = xlogdump::parse(&String::from_utf8_lossy(&theirs.stdout), "pg_xlogdump");
    let ours = xlogdump::parse(&String::from_utf8_lossy(&ours.stdout), "gsbuild");
    let mut diffs = Vec::new();
    for (a, b) in ours.iter().zip(&theirs) {
        if a != b && diffs.len() < 10 {
            diffs.push(format!("gsbuild:     {a:?}\npg_xlogdump: {b:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{}: records differ:\n{}",
        node.name,
        diffs.join("\n")
    );
    assert_eq!(ours.len(), theirs.len(), "{}: record counts", node.name);
    let blocks = ours.iter().map(|r| r.blocks.len()).sum();
    (ours.len(), blocks)
}

/// The stopped primary's latest checkpoint record holds its control file's `checkPointCopy`,
/// and walking back through `xl_prev` finds the control file's `prevCheckPoint`.
fn check_checkpoints(node: &OgCluster) {
    use gsbuild::xlog::{WalDir, WalReader};
    let cf = gsbuild::control::read_control_file(&node.datadir()).expect("pg_control");
    let seg = cf.xlog_seg_size;
    let wal = WalDir::with_timeline(node.datadir().join("pg_xlog"), seg, gsbuild::TimeLineId(1));
    let mut reader = WalReader::new(wal, seg, Some(cf.system_identifier));
    let found = gsbuild::walscan::checkpoint_at(&mut reader, cf.checkpoint).expect("checkpoint");
    assert_eq!(found.checkpoint, cf.checkpoint_copy, "{}", node.name);
    let prev = gsbuild::walscan::last_checkpoint_before(&mut reader, cf.checkpoint, cf.checkpoint)
        .expect("walk back");
    assert_eq!(Some(prev.lsn), cf.prev_checkpoint, "{}", node.name);
}

#[test]
fn wal_matches_pg_xlogdump() {
    let Some(og) = og_install() else { return };
    let t = Instant::now();
    let (mut p, mut s) = og_pair(&og, 20_000);
    workload(&p);
    let lsn = p.sql("select pg_current_xlog_location()");
    for _ in 0..240 {
        let replayed = s.sql("select pg_last_xlog_replay_location()");
        if replayed.parse::<gsbuild::Lsn>().ok() >= lsn.parse().ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    s.stop();
    p.stop();
    check_checkpoints(&p);
    let mut total = (0, 0);
    for node in [&p, &s] {
        let (records, blocks) = compare_wal(&og, node);
        eprintln!(
            "{}: {records} records, {blocks} block references equal",
            node.name
        );
        assert!(records > 10_000 && blocks > 10_000, "too little WAL");
        total = (total.0 + records, total.1 + blocks);
    }
    eprintln!(
        "{} records and {} block references compared in {:.0?}",
        total.0,
        total.1,
        t.elapsed()
    );
}

#[test]
fn relation_files_and_segment_pages() {
    let Some(og) = og_install() else { return };
    let t = Instant::now();
    files::check(&og);
    eprintln!(
        "relation files and segment pages checked in {:.0?}",
        t.elapsed()
    );
}
