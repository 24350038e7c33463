//! `gsbuild -b check`: one verdict, changing nothing — a streaming standby is healthy, a
//! diverged old primary (stopped, or running as a standby that cannot follow) needs an
//! incremental build (with the page-LSN method when its WAL is gone), one without checksums
//! or wal_log_hints a full build, and a
//! source of another system cannot build it.

use crate::support::scenario::*;
use crate::support::*;
use std::process::Command;

/// `gsbuild -b check -D target --source-server source [--format json]`: (code, stdout).
fn check(pg: &PgInstall, target: &Cluster, source: &Cluster, json: bool) -> (i32, String) {
    let mut cmd = Command::new(gsbuild_bin());
    cmd.args(["-b", "check", "-D"])
        .arg(target.datadir())
        .args(["--source-server", &source.connstr("postgres"), "--ctl"])
        .arg(pg.tool("pg_ctl"));
    if json {
        cmd.args(["--format", "json"]);
    }
    let out = cmd.output().expect("run gsbuild");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "check → {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

pub(crate) fn verdicts(major: u32) {
    let Some(pg) = install(major) else { return };
    let (mut old, new) = primary_and_standby(&pg, "check", small_setup, &[]);
    let (code, out) = check(&pg, &new, &old, false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("healthy: streaming from its primary, ") && out.contains(" behind"),
        "{out}"
    );

    new.promote();
    small_diverge(&new, &old);
    old.stop();
    let before = tree_digest(&old.datadir());
    let (code, out) = check(&pg, &old, &new, true);
    assert_eq!(code, 2, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["verdict"], "needs-incremental-build", "{out}");
    assert_eq!(doc["timeline"], 1, "{out}");
    assert!(doc["diverged_at"].is_string(), "{out}");
    assert!(doc["bytes_to_copy"].as_u64().unwrap_or(0) > 0, "{out}");
    assert_same_tree(
        &before,
        &tree_digest(&old.datadir()),
        "check changed the target",
    );

    // The DBA's case: the old primary started as a standby of the new one cannot follow it.
    configure_standby(&old, &new);
    old.start();
    let (code, out) = check(&pg, &old, &new, false);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("needs incremental build: diverged at"),
        "{out}"
    );
    old.stop();

    let other = Cluster::init(&pg, "check-other", &InitOptions::default());
    let mut other = other;
    other.start();
    let (code, out) = check(&pg, &old, &other, false);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.starts_with("cannot build: source and target clusters are from different systems"),
        "{out}"
    );
    other.stop();
}

/// The target's WAL from the common checkpoint on is gone (and no restore_command is given):
/// the page-LSN method still finds what it changed (it has checksums).
pub(crate) fn without_wal_page_lsn(major: u32) {
    let Some(pg) = install(major) else { return };
    let (old, new, _archive) = crate::small::pair_without_target_wal(&pg, "check-nowal");
    let before = tree_digest(&old.datadir());
    let (code, out) = check(&pg, &old, &new, false);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("needs incremental build: diverged at"),
        "{out}"
    );
    assert!(out.contains("with --changed-blocks=page-lsn"), "{out}");
    assert_same_tree(
        &before,
        &tree_digest(&old.datadir()),
        "check changed the target",
    );
}

/// A target with neither data checksums nor wal_log_hints: no incremental build can know the
/// blocks it changed, only a full build repairs it.
pub(crate) fn without_hint_logging_needs_full(major: u32) {
    let Some(pg) = install(major) else { return };
    let init = InitOptions {
        checksums: false,
        extra_conf: "wal_log_hints = off\n".into(),
        ..Default::default()
    };
    let (mut old, new) = primary_and_standby_with(&pg, "check-full", &init, small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    old.stop();
    let (code, out) = check(&pg, &old, &new, false);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.starts_with("needs full build: target server needs to use either data checksums or \"wal_log_hints = on\""),
        "{out}"
    );
}

#[test]
fn check_verdicts_pg15() {
    verdicts(15);
}

#[test]
fn check_verdicts_pg18() {
    verdicts(18);
}

#[test]
fn check_without_wal_page_lsn_pg16() {
    without_wal_page_lsn(16);
}

#[test]
fn check_without_hint_logging_needs_full_pg14() {
    without_hint_logging_needs_full(14);
}
