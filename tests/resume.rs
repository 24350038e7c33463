//! Crash safety: gsbuild killed with SIGKILL at every named failpoint (src/failpoint.rs) of a
//! real rebuild, at several passes of the repeated ones. After each kill:
//! - a kill before the journal is written leaves the target byte-for-byte as it was;
//! - a kill after it leaves a target that PostgreSQL refuses to start and that
//!   `gsbuild status` reports as interrupted;
//! - the source moves on, and re-running the same command finishes the rebuild, after which
//!   the target starts as a standby and holds exactly the source's data.
//!
//! `GSBUILD_SWEEP=full` adds more passes of the repeated points (the sweep documented in
//! docs/architecture.md); CI runs the default sample.

mod support;

use std::path::Path;
use std::process::Command;
use support::scenario::*;
use support::*;

fn s(x: impl AsRef<std::ffi::OsStr>) -> String {
    x.as_ref().to_string_lossy().into_owned()
}

/// Runs gsbuild with `failpoint` armed (or none); returns (exit code or None when killed,
/// stderr).
fn gsbuild(args: &[String], failpoint: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = Command::new(gsbuild_bin());
    cmd.args(args).env_remove("GSBUILD_FAILPOINT");
    if let Some(f) = failpoint {
        cmd.env("GSBUILD_FAILPOINT", f);
    }
    let out = cmd.output().expect("run gsbuild");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("gsbuild {failpoint:?} → {}\n{err}", out.status);
    (out.status.code(), err)
}

fn replace_dir(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).expect("remove target");
    }
    run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

fn status(dir: &Path) -> (Option<i32>, String) {
    let out = Command::new(gsbuild_bin())
        .args(["status", "-D"])
        .arg(dir)
        .output()
        .expect("run gsbuild status");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The kill points: every failpoint once, the repeated ones at several passes.
fn kill_points(full: bool) -> Vec<String> {
    let mut points: Vec<String> = gsbuild::failpoint::POINTS
        .iter()
        .map(|(name, _)| format!("{name}:1"))
        .collect();
    let more: &[(&str, &[u32])] = if full {
        &[
            ("create", &[2, 3]),
            ("copy-chunk", &[2, 3, 5, 8, 13, 21, 34, 55, 89]),
            ("truncate-remove", &[2, 5, 10, 20, 40, 80]),
            ("wal-segment", &[2, 3, 4, 6, 8, 12]),
        ]
    } else {
        &[
            ("copy-chunk", &[3, 10, 30]),
            ("truncate-remove", &[5, 20]),
            ("wal-segment", &[2, 4, 8]),
        ]
    };
    for (name, passes) in more {
        points.extend(passes.iter().map(|p| format!("{name}:{p}")));
    }
    points
}

const BEFORE_JOURNAL: &[&str] = &["wal-scan", "list-source", "list-target"];

#[test]
fn kill_nine_sweep_pg16() {
    let Some(pg) = install(16) else { return };
    let full = std::env::var("GSBUILD_SWEEP").as_deref() == Ok("full");
    let init = InitOptions {
        wal_segsize_mb: 1,
        ..InitOptions::default()
    };
    let (mut old, mut new) = primary_and_standby_with(&pg, "sweep", &init, small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    // Directories only the source has (a database), so that "create" is reached.
    new.psql("postgres", "CREATE DATABASE srcdb");
    new.psql_script(
        "srcdb",
        "CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g;",
    );
    old.stop();
    let pristine = TestDir::new("sweep-pristine");
    let pristine_data = pristine.path.join("data");
    replace_dir(&old.datadir(), &pristine_data);
    let before = tree_digest(&pristine_data);
    let args = vec![
        "-q".to_string(),
        "-D".to_string(),
        s(old.datadir()),
        "--source-server".into(),
        new.connstr("postgres"),
        "-R".into(),
    ];

    let (mut killed, mut not_reached, mut resumed) = (0, Vec::new(), 0);
    for point in kill_points(full) {
        eprintln!("=== kill point {point}");
        replace_dir(&pristine_data, &old.datadir());
        let name = point.split(':').next().unwrap_or_default();
        let (code, err) = gsbuild(&args, Some(&point));
        if code.is_some() {
            // The rebuild finished without reaching this pass (e.g. fewer chunks).
            assert_eq!(code, Some(0), "{point}: {err}");
            not_reached.push(point);
            continue;
        }
        killed += 1;
        assert!(err.contains("failpoint"), "{point}: {err}");
        let after = tree_digest(&old.datadir());
        if BEFORE_JOURNAL.contains(&name) {
            assert_same_tree(&before, &after, &format!("killed at {point}"));
        } else if name == "journal-written" {
            // Only the journal was written (which changed the directory's mtime).
            let strip = |t: &std::collections::BTreeMap<String, String>| {
                let mut t = t.clone();
                t.remove("gsbuild.journal");
                t.remove("");
                t
            };
            assert_same_tree(
                &strip(&before),
                &strip(&after),
                &format!("killed at {point}"),
            );
        } else if name == "control-written" {
            // Finished but for removing the journal: the target is complete.
            assert!(status(&old.datadir()).1.contains("completed"), "{point}");
        } else {
            assert!(
                !old.datadir().join("global/pg_control").exists(),
                "{point}: pg_control must be set aside"
            );
            assert!(!old.starts(), "{point}: a half-built target started");
            let (code, out) = status(&old.datadir());
            assert_eq!(code, Some(2), "{point}: {out}");
            assert!(out.contains("interrupted rebuild"), "{point}: {out}");
        }
        // The source moves on before the re-run.
        pgbench(&new, &["-n", "-t", "30"]);
        let (code, err) = gsbuild(&args, None);
        assert_eq!(code, Some(0), "re-run after {point}: {err}");
        if !BEFORE_JOURNAL.contains(&name) && name != "journal-written" && name != "control-written"
        {
            assert!(err.contains("resuming the interrupted rebuild"), "{err}");
            resumed += 1;
        }
        assert!(!old.datadir().join("gsbuild.journal").exists());
        // Files moved aside for removal before the kill are gone too.
        assert!(!old.datadir().join("gsbuild-trash").exists(), "{point}");
        verify_standby(&new, &mut old);
        assert_lost_gone(&old);
        old.stop();
    }

    // Killed twice: in the copy, then in the resumed run's WAL stream; the third run finishes.
    replace_dir(&pristine_data, &old.datadir());
    assert_eq!(gsbuild(&args, Some("copy-chunk:2")).0, None);
    pgbench(&new, &["-n", "-t", "30"]);
    let (code, err) = gsbuild(&args, Some("wal-segment:1"));
    assert_eq!(code, None, "{err}");
    assert!(err.contains("resuming"), "{err}");
    killed += 2;
    let (code, err) = gsbuild(&args, None);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("run 3"), "{err}");
    assert!(!old.datadir().join("gsbuild-trash").exists());
    verify_standby(&new, &mut old);
    assert_lost_gone(&old);
    old.stop();

    eprintln!("kill-9 sweep: {killed} kills, {resumed} resumed runs, not reached: {not_reached:?}");
    assert!(
        killed >= 20,
        "only {killed} kill points were reached: {not_reached:?}"
    );
    // Keep `new` alive to the end (its Drop stops it).
    new.stop();
}
