//! `gsbuild -D` as `gs_ctl build` does it: a running target is stopped (refused when it is a
//! primary the source has not replaced), rebuilt, started as a standby that streams from the
//! source; one build of a data directory at a time.

use crate::support::scenario::*;
use crate::support::*;
use std::os::fd::AsRawFd;
use std::process::Command;

fn gsbuild(args: &[String]) -> (i32, String, String) {
    let out = Command::new(gsbuild_bin())
        .args(args)
        .output()
        .expect("run gsbuild");
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("gsbuild {args:?} → {}\n{se}", out.status);
    (out.status.code().unwrap_or(-1), so, se)
}

fn s(p: impl AsRef<std::ffi::OsStr>) -> String {
    p.as_ref().to_string_lossy().into_owned()
}

/// The old primary still runs after the failover and has written on its own; `gsbuild -D` stops
/// it (the source is on a later timeline: it replaced the target), rebuilds it, and starts it as
/// a standby of the source that streams and holds the source's data.
pub(crate) fn repairs_a_running_old_primary(major: u32) {
    let Some(pg) = install(major) else { return };
    let (mut old, new) = primary_and_standby(&pg, "repair", small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    let args = crate::full::args(&pg, &old, &new, &[]);
    let (code, out, err) = gsbuild(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stopping the running server"), "{err}");
    assert!(err.contains("streaming from its primary"), "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["standby"]["streaming"], true, "{out}");
    // gsbuild started it: the handle must stop it.
    old.set_running(true);
    assert_eq!(old.psql("postgres", "SELECT pg_is_in_recovery()"), "t");
    // Started without PostgreSQL's file-by-file fsync of the whole directory.
    assert_eq!(
        old.psql("postgres", "SHOW recovery_init_sync_method"),
        "syncfs"
    );
    old.stop();
    verify_standby(&new, &mut old);
    assert_lost_gone(&old);
    assert!(!old.datadir().join("gsbuild.journal").exists());
}

/// A running primary whose source is on its own timeline (here: its own standby) is the
/// cluster's leader as far as gsbuild can tell: it is not stopped, and the message says why.
pub(crate) fn refuses_to_stop_the_leader(major: u32) {
    let Some(pg) = install(major) else { return };
    let (old, new) = primary_and_standby(&pg, "leader", small_setup, &[]);
    let before = old.psql("postgres", "SELECT pg_postmaster_start_time()");
    let (code, _, err) = gsbuild(&[
        "-D".into(),
        s(old.datadir()),
        "--source-server".into(),
        new.connstr("postgres"),
        "--ctl".into(),
        s(pg.tool("pg_ctl")),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("runs as a primary")
            && err.contains("is not a newer primary")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        old.psql("postgres", "SELECT pg_postmaster_start_time()"),
        before
    );
    drop(new);
}

/// A second build of the same data directory while one holds its lock is refused, naming the
/// holder; the data directory is untouched.
pub(crate) fn one_build_at_a_time(major: u32) {
    let Some(pg) = install(major) else { return };
    let (mut old, new) = primary_and_standby(&pg, "lock", small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    old.stop();
    // A concurrent build holds the data directory's lock.
    let holder = std::fs::File::open(old.datadir()).expect("open the data directory");
    // SAFETY: flock on a descriptor this test owns, as a concurrent build would hold it.
    assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
    let before = tree_digest(&old.datadir());
    let (code, _, err) = gsbuild(&[
        "-q".into(),
        "-D".into(),
        s(old.datadir()),
        "--source-server".into(),
        new.connstr("postgres"),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("another build") && err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert_same_tree(
        &before,
        &tree_digest(&old.datadir()),
        "a refused build changed the target",
    );
    drop(holder);
    let (code, _, err) = gsbuild(&[
        "-q".into(),
        "-D".into(),
        s(old.datadir()),
        "--source-server".into(),
        new.connstr("postgres"),
        "-R".into(),
    ]);
    assert_eq!(code, 0, "{err}");
    verify_standby(&new, &mut old);
}

// The seed's story on every major: stopped, rebuilt, started, streaming, data identical.
#[test]
fn repairs_a_running_old_primary_pg14() {
    repairs_a_running_old_primary(14);
}

#[test]
fn repairs_a_running_old_primary_pg15() {
    repairs_a_running_old_primary(15);
}

#[test]
fn repairs_a_running_old_primary_pg16() {
    repairs_a_running_old_primary(16);
}

#[test]
fn repairs_a_running_old_primary_pg17() {
    repairs_a_running_old_primary(17);
}

#[test]
fn repairs_a_running_old_primary_pg18() {
    repairs_a_running_old_primary(18);
}

#[test]
fn refuses_to_stop_the_leader_pg15() {
    refuses_to_stop_the_leader(15);
}

#[test]
fn one_build_at_a_time_pg18() {
    one_build_at_a_time(18);
}
