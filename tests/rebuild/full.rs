//! `-b full` and `-b auto`: a full build of a target whose WAL is gone everywhere (the target's
//! archived and removed, the source's recycled), so that no incremental build can work; `-b
//! auto` choosing incremental for a plain divergence and full for that target, each saying
//! why in one line; `-b auto` refusing another system's source without falling back; and a full
//! build killed mid-copy, which leaves a directory PostgreSQL refuses to start and which the
//! next run completes; a full build from a stopped data directory with tablespaces.

use crate::support::run::{self, s};
use crate::support::scenario::*;
use crate::support::*;

const FALLBACK: &str = "falling back to a full build: ";
/// The end of the reason when the target's WAL is gone and the source's too.
const SOURCE_WAL_GONE: &str =
    "with --changed-blocks=page-lsn: could not find a checkpoint record before the divergence point";

/// Runs gsbuild with `failpoint` armed (or none): (exit code, None when killed; stdout;
/// stderr).
fn gsbuild(args: &[String], failpoint: Option<&str>) -> (Option<i32>, String, String) {
    let env: Vec<(&str, &str)> = failpoint
        .map(|f| ("GSBUILD_FAILPOINT", f))
        .into_iter()
        .collect();
    let run = run::gsbuild(args, &env, std::time::Duration::from_secs(300));
    eprintln!("gsbuild {args:?} {failpoint:?} → {run}");
    assert!(!run.hung, "{run}");
    (run.code, run.stdout, run.stderr)
}

/// `gsbuild -D target --source-server source --ctl pg_ctl --format json` and `extra`.
pub(crate) fn args(
    pg: &PgInstall,
    target: &Cluster,
    source: &Cluster,
    extra: &[&str],
) -> Vec<String> {
    let mut a = vec![
        "-D".into(),
        s(target.datadir()),
        "--source-server".into(),
        source.connstr("postgres"),
        "--ctl".into(),
        s(pg.tool("pg_ctl")),
        "--format".into(),
        "json".into(),
    ];
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

/// A diverged pair whose target lost its WAL from the common checkpoint on (archived, then
/// removed) and whose source recycled its own WAL of that time: neither WAL nor page LSNs can
/// tell what the target changed. Returns (target, source, archive).
fn pair_without_wal_anywhere(pg: &PgInstall, name: &str) -> (Cluster, Cluster, TestDir) {
    let (old, new, archive) = crate::small::pair_without_target_wal(pg, name);
    new.psql("postgres", "ALTER SYSTEM SET wal_keep_size = 0");
    new.psql("postgres", "SELECT pg_reload_conf()");
    for i in 0..4 {
        new.psql(
            "postgres",
            &format!(
                "INSERT INTO common SELECT g, 'later' FROM generate_series({0}, {0} + 99) g",
                20001 + i * 100
            ),
        );
        new.psql("postgres", "SELECT pg_switch_wal()");
        new.psql("postgres", "CHECKPOINT");
    }
    let oldest = new.psql(
        "postgres",
        "SELECT min(name) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'",
    );
    eprintln!("the source's oldest WAL segment is now {oldest}");
    (old, new, archive)
}

/// The rebuilt target was started by gsbuild as a standby that streams: stop it, then start it
/// again and compare its data with the source's.
fn assert_rebuilt(out: &str, old: &mut Cluster, new: &Cluster) {
    let doc: serde_json::Value = serde_json::from_str(out).expect("json");
    assert_eq!(doc["standby"]["streaming"], true, "{out}");
    assert_eq!(doc["plan"]["full"], true, "{out}");
    old.set_running(true);
    assert_eq!(old.psql("postgres", "SELECT pg_is_in_recovery()"), "t");
    old.stop();
    verify_standby(new, old);
    assert_lost_gone(old);
    assert!(!old.datadir().join("gsbuild.journal").exists());
    assert!(!old.datadir().join("gsbuild-trash").exists());
}

/// `-b full` (or `-b auto`, which must fall back) on a target whose WAL is gone everywhere:
/// rebuilt, started as a standby that streams, holding the source's rows; its configuration
/// files are its own.
pub(crate) fn full_without_wal(major: u32, mode: &str) {
    let Some(pg) = install(major) else { return };
    let (mut old, new, _archive) = pair_without_wal_anywhere(&pg, &format!("full-{mode}"));
    old.append_conf("# the target's own line, kept by a full build\n");
    // -b check's verdict is what -b auto does, for the same reason.
    let check = args(&pg, &old, &new, &["-b", "check"]);
    let (code, verdict, _) = gsbuild(
        &check[..4]
            .iter()
            .chain(&check[8..])
            .cloned()
            .collect::<Vec<_>>(),
        None,
    );
    assert_eq!(code, Some(3), "{verdict}");
    assert!(verdict.starts_with("needs full build: "), "{verdict}");
    assert!(verdict.contains(SOURCE_WAL_GONE), "{verdict}");
    // A running target is stopped first (immediate shutdown for a full build).
    old.start();
    let (code, out, err) = gsbuild(&args(&pg, &old, &new, &["-b", mode]), None);
    assert_eq!(code, Some(0), "{err}");
    let immediate =
        err.contains("stopping the running server") && err.contains("(immediate shutdown)");
    assert_eq!(immediate, mode == "full", "{err}");
    assert!(err.contains("stopping the running server"), "{err}");
    let fallbacks: Vec<&str> = err.lines().filter(|l| l.contains(FALLBACK)).collect();
    match mode {
        "auto" => {
            assert_eq!(fallbacks.len(), 1, "{err}");
            eprintln!("fallback line: {}", fallbacks[0]);
            assert!(fallbacks[0].contains(SOURCE_WAL_GONE), "{err}");
        }
        _ => assert!(fallbacks.is_empty(), "{err}"),
    }
    assert!(
        err.contains("full build: backup started on the source"),
        "{err}"
    );
    let conf = std::fs::read_to_string(old.datadir().join("postgresql.conf")).unwrap();
    assert!(
        conf.contains("kept by a full build"),
        "postgresql.conf not kept"
    );
    assert_rebuilt(&out, &mut old, &new);
}

/// `-b auto` on a plain divergence builds incrementally and says so.
pub(crate) fn auto_chooses_incremental(major: u32) {
    let Some(pg) = install(major) else { return };
    let (mut old, new) = primary_and_standby(&pg, "auto-inc", small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    let (code, out, err) = gsbuild(&args(&pg, &old, &new, &[]), None);
    assert_eq!(code, Some(0), "{err}");
    let chose: Vec<&str> = err.lines().filter(|l| l.contains("-b auto: ")).collect();
    assert_eq!(chose.len(), 1, "{err}");
    assert!(
        chose[0].contains("an incremental build works: diverged at"),
        "{err}"
    );
    assert!(!err.contains(FALLBACK), "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["standby"]["streaming"], true, "{out}");
    assert!(doc["plan"]["full"].is_null(), "{out}");
    old.set_running(true);
    old.stop();
    verify_standby(&new, &mut old);
    assert_lost_gone(&old);
}

/// `-b auto` against another system's server: an error, no fallback, the target untouched.
pub(crate) fn auto_refuses_another_system(major: u32) {
    let Some(pg) = install(major) else { return };
    let (mut old, new) = primary_and_standby(&pg, "auto-other", small_setup, &[]);
    drop(new);
    old.stop();
    let mut other = Cluster::init(&pg, "auto-other-sys", &InitOptions::default());
    other.start();
    let before = tree_digest(&old.datadir());
    let (code, _, err) = gsbuild(&args(&pg, &old, &other, &["-b", "auto"]), None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("from different systems"), "{err}");
    assert!(!err.contains(FALLBACK), "{err}");
    assert_same_tree(
        &before,
        &tree_digest(&old.datadir()),
        "a refused build changed the target",
    );
    other.stop();
}

/// A full build killed (SIGKILL) in the middle of the copy, and its re-run killed after the
/// sync: each time the directory refuses to start, and running gsbuild again (auto, the
/// default) builds it in full to the end.
pub(crate) fn full_killed_then_completed(major: u32) {
    let Some(pg) = install(major) else { return };
    let (mut old, new, _archive) = pair_without_wal_anywhere(&pg, "full-kill");
    // Killed in the middle of the copy, then (the re-run, in the default mode) after everything
    // but pg_control was written and synced.
    for (first, mode, failpoint) in [(30001, "full", "copy-chunk:5"), (40001, "auto", "synced")] {
        let (code, _, err) = gsbuild(&args(&pg, &old, &new, &["-b", mode]), Some(failpoint));
        assert_eq!(code, None, "gsbuild was to be killed at {failpoint}: {err}");
        assert!(old.datadir().join("gsbuild.journal").exists());
        assert!(!old.datadir().join("global/pg_control").exists());
        assert!(
            !old.starts(),
            "a half-built target started after {failpoint}"
        );
        new.psql(
            "postgres",
            &format!("INSERT INTO common SELECT g, 'after a kill' FROM generate_series({first}, {first} + 99) g"),
        );
    }
    let (code, out, err) = gsbuild(&args(&pg, &old, &new, &[]), None);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("in full again"), "{err}");
    assert_rebuilt(&out, &mut old, &new);
}

/// `-b full` from a stopped data directory (`--source-pgdata`): a tablespace both sides have
/// (each at its own location, the target's kept) and one only the source has, whose location
/// is the source's own and in use (refused, target untouched), then relocated with a mapping.
/// Started as a standby of the source, the target holds the source's data.
pub(crate) fn full_from_local_with_tablespaces(major: u32) {
    let Some(pg) = install(major) else { return };
    let (ts, ts_standby) = (TestDir::new("full-ts"), TestDir::new("full-ts-standby"));
    let (ts_new, ts_new_target) = (TestDir::new("full-ts-new"), TestDir::new("full-ts-new-t"));
    let make_ts = |c: &Cluster| {
        small_setup(c);
        c.psql_script(
            "postgres",
            &format!(
                "CREATE TABLESPACE ts LOCATION '{}';
                 CREATE TABLE in_ts (id int PRIMARY KEY, v text) TABLESPACE ts;
                 INSERT INTO in_ts SELECT g, md5(g::text) FROM generate_series(1, 3000) g;",
                ts.path.display()
            ),
        );
    };
    let standby_loc = ts_standby.path.join("loc");
    let (mut old, mut new) = primary_and_standby(
        &pg,
        "full-local-ts",
        make_ts,
        &[(ts.path.clone(), standby_loc)],
    );
    new.promote();
    small_diverge(&new, &old);
    new.psql_script(
        "postgres",
        &format!(
            "UPDATE in_ts SET v = 'source' WHERE id % 5 = 0;
             CREATE TABLESPACE ts_new LOCATION '{}';
             CREATE TABLE in_ts_new TABLESPACE ts_new AS SELECT g, md5(g::text) FROM generate_series(1, 2000) g;",
            ts_new.path.display()
        ),
    );
    old.psql("postgres", "UPDATE in_ts SET v = 'lost' WHERE id % 7 = 0");
    old.stop();
    new.stop();
    let before = tree_digest(&old.datadir());
    let mut opts = options(&old, &new, SourceKind::Local);
    opts.build = gsbuild::rewind::BuildMode::Full;
    let (r, _) = rebuild(opts.clone());
    let err = r.expect_err("a full build into the source's tablespace must fail");
    assert!(err.to_string().contains("is not empty"), "{err}");
    assert_same_tree(
        &before,
        &tree_digest(&old.datadir()),
        "a refused build changed the target",
    );
    let mapped = ts_new_target.path.join("loc");
    opts.tablespace_mapping = vec![(ts_new.path.clone(), mapped.clone())];
    let (r, rep) = rebuild(opts);
    let (plan, _) = r.expect("the full build");
    assert!(plan.full);
    assert!(rep.saw("Done!"), "{:?}", rep.lines);
    // The shared tablespace stays where the target had it; the new one went to the mapping.
    let d = old.datadir();
    new.start();
    let link_of = |name: &str| {
        let oid = new_oid(&new, name);
        std::fs::read_link(d.join("pg_tblspc").join(oid)).expect("tablespace link")
    };
    assert_eq!(link_of("ts_new"), mapped);
    // The target (the old primary) had ts at ts.path, the source at its standby's mapping.
    assert_eq!(
        link_of("ts"),
        ts.path,
        "the target's own location of ts is kept"
    );
    configure_standby(&old, &new);
    verify_standby(&new, &mut old);
    assert_lost_gone(&old);
}

/// The oid of tablespace `name` on `c` (running).
fn new_oid(c: &Cluster, name: &str) -> String {
    c.psql(
        "postgres",
        &format!("SELECT oid FROM pg_tablespace WHERE spcname = '{name}'"),
    )
}

#[test]
fn full_from_local_with_tablespaces_pg16() {
    full_from_local_with_tablespaces(16);
}

#[test]
fn full_without_wal_pg14() {
    full_without_wal(14, "full");
}

#[test]
fn full_without_wal_pg15() {
    full_without_wal(15, "full");
}

#[test]
fn full_without_wal_pg18() {
    full_without_wal(18, "full");
}

#[test]
fn auto_falls_back_without_wal_pg16() {
    full_without_wal(16, "auto");
}

#[test]
fn auto_chooses_incremental_pg17() {
    auto_chooses_incremental(17);
}

#[test]
fn auto_refuses_another_system_pg15() {
    auto_refuses_another_system(15);
}

#[test]
fn full_killed_then_completed_pg15() {
    full_killed_then_completed(15);
}
