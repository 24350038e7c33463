//! pg_control against `pg_controldata` on real clusters of every supported major (and Debian's
//! 15): every line `gsbuild inspect control` prints must equal pg_controldata's, in every cluster
//! state gsbuild meets (running and stopped primary, running and stopped standby, promoted
//! standby); every real file must re-encode byte for byte; damaged copies must fail with an
//! error naming the file, never a panic.

mod support;

use gsbuild::control::{read_control_file, ControlError, ControlFile, DbState};
use gsbuild::{Flavor, Lsn, TimeLineId};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// Byte ranges of alignment padding in `ControlFileData` on x86-64, by layout (14–16, 17, 18).
fn padding_ranges(major: Flavor) -> Vec<std::ops::Range<usize>> {
    let mut r = vec![
        20..24,
        100..104,
        124..128,
        148..152,
        169..172,
        177..180,
        201..204,
        249..252,
    ];
    match major {
        Flavor::Pg14 | Flavor::Pg15 | Flavor::Pg16 => r.extend([57..64, 292..296]),
        Flavor::Pg17 => r.extend([57..60, 292..296]),
        Flavor::Pg18 => r.extend([57..60, 289..292]),
        Flavor::OpenGauss => unreachable!("PostgreSQL layouts only"),
    }
    r
}

/// The live control file, read until a copy passes its CRC (the server may be rewriting it).
fn read_live(cluster: &Cluster) -> Vec<u8> {
    let path = cluster.datadir().join("global/pg_control");
    for _ in 0..100 {
        let bytes = std::fs::read(&path).expect("read pg_control");
        if ControlFile::decode(&bytes).is_ok() {
            return bytes;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never yielded a valid copy", path.display());
}

/// Writes `bytes` as `<dir>/global/pg_control`, a data directory pg_controldata accepts.
fn fake_datadir(dir: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir.join("global")).expect("mkdir global");
    let file = dir.join("global/pg_control");
    std::fs::write(&file, bytes).expect("write pg_control copy");
    file
}

fn run_c_utc(cmd: &mut Command) -> std::process::Output {
    cmd.env("TZ", "UTC").env("LC_ALL", "C");
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

/// Every line of ours must equal pg_controldata's field of the same name, every field of theirs
/// must be printed by us, and the texts must be identical (labels, padding, order).
fn compare_with_pg_controldata(pg: &PgInstall, datadir: &Path, what: &str) -> String {
    let theirs = run_ok(&mut {
        let mut c = Command::new(pg.tool("pg_controldata"));
        c.arg(datadir).env("TZ", "UTC").env("LC_ALL", "C");
        c
    });
    let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
    let ours = run_c_utc(
        Command::new(gsbuild_bin())
            .args(["inspect", "control"])
            .arg(datadir),
    );
    assert!(
        ours.status.success(),
        "{what}: gsbuild failed: {}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let ours = String::from_utf8_lossy(&ours.stdout).into_owned();
    let (o, t): (BTreeMap<_, _>, BTreeMap<_, _>) =
        (parse_controldata(&ours), parse_controldata(&theirs));
    for (name, value) in &o {
        assert_eq!(Some(value), t.get(name), "{what}: field {name:?}");
    }
    let missing: Vec<&String> = t.keys().filter(|k| !o.contains_key(*k)).collect();
    assert!(missing.is_empty(), "{what}: we do not print {missing:?}");
    assert_eq!(ours, theirs, "{what}: output differs in layout");
    assert!(
        t.len() >= 50,
        "{what}: pg_controldata printed only {} fields",
        t.len()
    );
    ours
}

/// A flipped byte anywhere in the struct, a flipped byte in a file on disk, truncated copies.
fn check_damage(bytes: &[u8], dir: &Path, what: &str) {
    let crc_end = if bytes[8..12] == 1800u32.to_le_bytes() {
        296
    } else {
        292
    };
    for at in 0..296 {
        let mut bad = bytes.to_vec();
        bad[at] ^= 0x10;
        match ControlFile::decode(&bad) {
            Err(_) if at < crc_end => {}
            // Padding after the CRC is not covered by it (nor checked by PostgreSQL); it must
            // still survive a round trip.
            Ok(f) if at >= crc_end => assert_eq!(f.encode(), bad, "{what}: flip at {at}"),
            other => panic!("{what}: flip at {at} gave {other:?}"),
        }
    }
    for len in 0..=300 {
        match ControlFile::decode(&bytes[..len]) {
            Err(ControlError::Truncated { need: 296, have }) => assert_eq!(have, len),
            Ok(f) if len >= 296 => assert_eq!(f.encode(), bytes, "{what}: {len}-byte prefix"),
            other => panic!("{what}: {len}-byte prefix gave {other:?}"),
        }
    }

    let mut flipped = bytes.to_vec();
    flipped[100] ^= 0x01;
    let file = fake_datadir(&dir.join("flipped"), &flipped);
    let err = read_control_file(&dir.join("flipped"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&file.display().to_string()) && err.contains("CRC"),
        "{what}: {err}"
    );
    let out = run_c_utc(
        Command::new(gsbuild_bin())
            .args(["inspect", "control"])
            .arg(&file),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{what}: gsbuild accepted a flipped byte"
    );
    assert!(
        stderr.contains(&file.display().to_string()),
        "{what}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");

    let file = fake_datadir(&dir.join("short"), &bytes[..200]);
    let err = read_control_file(&file).unwrap_err().to_string();
    assert!(
        err.contains(&file.display().to_string()) && err.contains("8192"),
        "{what}: {err}"
    );
}

/// Snapshots the cluster's pg_control and runs every check on it; returns the decoded file.
fn check(cluster: &Cluster, state: DbState, tag: &str) -> ControlFile {
    let what = format!("{} {tag}", cluster.install.label);
    let bytes = read_live(cluster);
    let snap = cluster.dir.path.join(format!("snap-{tag}"));
    fake_datadir(&snap, &bytes);
    let f = ControlFile::decode(&bytes).expect("decode");
    assert_eq!(f.state, state, "{what}");
    assert_eq!(f.flavor.number(), cluster.install.major, "{what}");
    assert!(
        f.encode() == bytes,
        "{what}: encode(decode(file)) differs from the file"
    );
    let dirty: usize = padding_ranges(f.flavor)
        .into_iter()
        .flat_map(|r| bytes[r].iter())
        .filter(|b| **b != 0)
        .count();
    eprintln!("{what}: {dirty} non-zero padding bytes, round trip byte-identical");
    compare_with_pg_controldata(&cluster.install, &snap, &what);
    check_damage(&bytes, &snap, &what);
    f
}

/// The five states on one toolset: primary running and stopped, standby running and stopped,
/// promoted standby stopped.
fn states(pg: Option<PgInstall>) {
    let Some(pg) = pg else { return };
    let started = Instant::now();
    let mut primary = Cluster::init(&pg, "ctl-primary", &InitOptions::default());
    primary.start();
    primary.psql(
        "postgres",
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g",
    );
    check(&primary, DbState::InProduction, "primary-running");

    let mut standby = primary.make_standby("ctl-standby", false);
    standby.start();
    primary.psql_script(
        "postgres",
        "INSERT INTO t SELECT g FROM generate_series(1, 1000) g;\nCHECKPOINT;\n",
    );
    let lsn = primary.psql("postgres", "SELECT pg_current_wal_insert_lsn()");
    standby.wait_replay(&lsn);
    standby.psql("postgres", "CHECKPOINT");
    let f = check(&standby, DbState::InArchiveRecovery, "standby-running");
    assert!(
        f.min_recovery_point.is_valid(),
        "standby minRecoveryPoint unset"
    );
    assert_eq!(f.min_recovery_point_tli, TimeLineId(1));

    standby.stop();
    let f = check(&standby, DbState::ShutDownInRecovery, "standby-stopped");
    assert!(f.min_recovery_point.is_valid());
    primary.stop();
    let f = check(&primary, DbState::ShutDown, "primary-stopped");
    assert_eq!(
        f.checkpoint, f.checkpoint_copy.redo,
        "shutdown checkpoint redo"
    );

    standby.start();
    standby.promote();
    standby.psql("postgres", "INSERT INTO t VALUES (0)");
    standby.stop();
    let f = check(&standby, DbState::ShutDown, "promoted-stopped");
    assert_eq!(f.checkpoint_copy.this_timeline_id, TimeLineId(2));
    assert_eq!(f.min_recovery_point, Lsn::INVALID);
    eprintln!(
        "{}: PrevTimeLineID after promotion {}; done in {:.1?}",
        pg.label,
        f.checkpoint_copy.prev_timeline_id,
        started.elapsed()
    );
}

#[test]
fn pg14_states() {
    states(install(14));
}

#[test]
fn pg15_states() {
    states(install(15));
}

#[test]
fn pg16_states() {
    states(install(16));
}

#[test]
fn pg17_states() {
    states(install(17));
}

#[test]
fn pg18_states() {
    states(install(18));
}

#[test]
fn debian_pg15_states() {
    states(debian_install());
}

/// Non-default WAL segment sizes and no data checksums, at both ends of the supported range.
#[test]
fn wal_segsize_without_checksums() {
    for (major, mb) in [(14, 64), (18, 1)] {
        let Some(pg) = install(major) else { continue };
        let opts = InitOptions {
            checksums: false,
            wal_segsize_mb: mb,
            ..InitOptions::default()
        };
        let mut c = Cluster::init(&pg, "ctl-segsize", &opts);
        c.start();
        c.psql(
            "postgres",
            "CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g; SELECT pg_switch_wal()",
        );
        let f = check(&c, DbState::InProduction, "segsize-running");
        assert_eq!(f.xlog_seg_size, mb << 20);
        assert_eq!(f.data_checksum_version, 0);
        c.stop();
        check(&c, DbState::ShutDown, "segsize-stopped");
    }
}
