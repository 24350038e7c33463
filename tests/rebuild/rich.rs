//! One rich diverged pair per (major, source kind). Before the split: pgbench tables, tables to
//! extend, shrink and drop, an unlogged table, a table with quotes in its name, a tablespace,
//! databases, a data-directory file with quotes in its name. After the promotion both sides
//! write: the target extends one table (→ truncate) and shrinks another by VACUUM (→ tail
//! copy); each side creates and drops tables and databases the other keeps; the source creates
//! a tablespace (→ refused while its location is in use, then relocated with a mapping); files
//! appear on one side only; the target's `pg_wal` becomes a symlink. A source-only table of
//! 18 MB makes the copy several queries, spread over the fetch sessions (`-j 8` and `-j 1`
//! on PostgreSQL 15); every planned byte must arrive exactly once.

use crate::support::scenario::*;
use crate::support::*;
use gsbuild::filemap::Action;
use gsbuild::plan::Plan;
use gsbuild::rewind::ChangedBlocks;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BOTH_FILE: &str = "both \"quoted\" it's.txt";
const ONLY_TARGET_FILE: &str = "only-target 'q'.txt";
const ONLY_SOURCE_DIR: &str = "extra dir 'q'";
const ONLY_SOURCE_FILE: &str = "extra dir 'q'/file \"x\".txt";

/// Writes a file as PostgreSQL would have it: the server user's, mode 0600.
fn write_owned(dir: &Path, rel: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(rel);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    chown_to_server_user(&p);
}

fn setup(c: &Cluster, ts_before: &Path) {
    pgbench(c, &["-i", "-s", "1", "-q"]);
    c.psql_script(
        "postgres",
        &format!(
            r#"
CREATE TABLE t_extend (id int PRIMARY KEY, v text);
INSERT INTO t_extend SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
CREATE TABLE t_shrink (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off);
INSERT INTO t_shrink SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 30000) g;
CREATE TABLE drop_on_source AS SELECT g AS id FROM generate_series(1, 5000) g;
CREATE TABLE drop_on_target (id int PRIMARY KEY);
INSERT INTO drop_on_target SELECT generate_series(1, 5000);
CREATE UNLOGGED TABLE t_unlogged (id int PRIMARY KEY, v text);
INSERT INTO t_unlogged SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
CREATE TABLE "Quoted ""name"" it's" (id int PRIMARY KEY, v text);
INSERT INTO "Quoted ""name"" it's" SELECT g, 'common' FROM generate_series(1, 100) g;
CREATE TABLESPACE ts_before LOCATION '{}';
CREATE TABLE in_ts_before (id int PRIMARY KEY, v text) TABLESPACE ts_before;
INSERT INTO in_ts_before SELECT g, md5(g::text) FROM generate_series(1, 5000) g;
CREATE DATABASE db_common;
CREATE DATABASE db_drop_on_source;
CREATE DATABASE db_drop_on_target;
"#,
            ts_before.display()
        ),
    );
    c.psql_script(
        "db_common",
        "CREATE TABLE c (id int PRIMARY KEY, v text);
         INSERT INTO c SELECT g, md5(g::text) FROM generate_series(1, 3000) g;",
    );
    c.psql(
        "db_drop_on_target",
        "CREATE TABLE d AS SELECT generate_series(1, 1000) g",
    );
    write_owned(&c.datadir(), BOTH_FILE, "common\n");
}

fn diverge_source(c: &Cluster, ts_after: &Path) {
    c.psql_script(
        "postgres",
        &format!(
            r#"
INSERT INTO t_extend SELECT g, 'source' FROM generate_series(1001, 1100) g;
UPDATE t_shrink SET v = 'source' WHERE id % 50 = 0;
DROP TABLE drop_on_source;
CREATE TABLE src_new (id int PRIMARY KEY, v text);
INSERT INTO src_new SELECT g, md5(g::text) FROM generate_series(1, 3000) g;
CREATE TABLE src_big AS SELECT g, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 60000) g;
INSERT INTO t_unlogged SELECT g, 'source' FROM generate_series(2001, 2500) g;
UPDATE "Quoted ""name"" it's" SET v = 'source' WHERE id <= 10;
UPDATE in_ts_before SET v = 'source' WHERE id % 10 = 0;
CREATE TABLESPACE ts_after LOCATION '{}';
CREATE TABLE in_ts_after (id int PRIMARY KEY, v text) TABLESPACE ts_after;
INSERT INTO in_ts_after SELECT g, md5(g::text) FROM generate_series(1, 4000) g;
DROP DATABASE db_drop_on_source;
CREATE DATABASE db_src_new;
"#,
            ts_after.display()
        ),
    );
    c.psql_script(
        "db_src_new",
        "CREATE TABLE s (id int PRIMARY KEY, v text);
         INSERT INTO s SELECT g, md5(g::text) FROM generate_series(1, 2000) g;",
    );
    c.psql_script(
        "db_common",
        "UPDATE c SET v = 'source' WHERE id % 7 = 0;
         INSERT INTO c SELECT g, 'source' FROM generate_series(3001, 3500) g;",
    );
    pgbench(c, &["-n", "-t", "200"]);
    let d = c.datadir();
    write_owned(
        &d,
        BOTH_FILE,
        "the source's version, longer than the target's\n",
    );
    std::fs::create_dir(d.join(ONLY_SOURCE_DIR)).unwrap();
    chown_to_server_user(&d.join(ONLY_SOURCE_DIR));
    write_owned(&d, ONLY_SOURCE_FILE, "only on the source\n");
}

fn diverge_target(c: &Cluster) {
    c.psql_script(
        "postgres",
        r#"
INSERT INTO t_extend SELECT g, 'lost' FROM generate_series(1001, 40000) g;
DELETE FROM t_shrink WHERE id > 2000;
VACUUM t_shrink;
DROP TABLE drop_on_target;
CREATE TABLE tgt_new AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g;
INSERT INTO t_unlogged SELECT g, 'lost' FROM generate_series(2001, 4000) g;
UPDATE "Quoted ""name"" it's" SET v = 'lost' WHERE id > 50;
UPDATE in_ts_before SET v = 'lost' WHERE id % 3 = 0;
INSERT INTO in_ts_before SELECT g, 'lost' FROM generate_series(5001, 9000) g;
DROP DATABASE db_drop_on_target;
CREATE DATABASE db_tgt_new;
"#,
    );
    c.psql_script(
        "db_common",
        "DELETE FROM c WHERE id < 500;
         CREATE TABLE lost_here AS SELECT generate_series(1, 1000) g;",
    );
    pgbench(c, &["-n", "-t", "200"]);
    write_owned(&c.datadir(), BOTH_FILE, "target\n");
    write_owned(&c.datadir(), ONLY_TARGET_FILE, "only on the target\n");
}

/// Moves the target's `pg_wal` to `outside` and leaves a symlink in its place.
fn symlink_pg_wal(c: &Cluster, outside: &Path) -> PathBuf {
    let wal = c.datadir().join("pg_wal");
    let moved = outside.join("pg_wal");
    std::fs::rename(&wal, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &wal).unwrap();
    let uid = owner_uid(c);
    std::os::unix::fs::lchown(&wal, Some(uid), Some(uid)).unwrap();
    moved
}

/// Runs the gsbuild binary (gsbuild's dialect) and returns (success, stdout, stderr).
fn run_binary(args: &[String]) -> (bool, String, String) {
    let out = Command::new(gsbuild_bin()).args(args).output().unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("gsbuild {args:?} → {}\n{se}", out.status);
    (out.status.success(), so, se)
}

fn action_of(plan: &Plan, path: &str) -> Option<Action> {
    plan.files.iter().find(|f| f.path == path).map(|f| f.action)
}

/// The whole rich scenario, with the WAL method and `--verify-blocks` (the page-LSN scan must
/// find every page the target wrote after the divergence in the WAL's block set).
pub(crate) fn rich(major: u32, kind: SourceKind, via_binary: bool) {
    rich_with(major, kind, via_binary, ChangedBlocks::Wal, None)
}

/// The rich scenario rebuilt with `--changed-blocks=page-lsn` (the target's WAL intact; the
/// common checkpoint is found in it).
pub(crate) fn rich_page_lsn(major: u32, kind: SourceKind) {
    rich_with(major, kind, false, ChangedBlocks::PageLsn, None)
}

/// The whole rich scenario with `-j jobs` fetch sessions.
pub(crate) fn rich_jobs(major: u32, kind: SourceKind, via_binary: bool, jobs: usize) {
    rich_with(major, kind, via_binary, ChangedBlocks::Wal, Some(jobs))
}

/// `jobs` sets `-j` (the default when `None`).
fn rich_with(
    major: u32,
    kind: SourceKind,
    via_binary: bool,
    method: ChangedBlocks,
    jobs: Option<usize>,
) {
    let Some(pg) = install(major) else { return };
    let t0 = Instant::now();
    let ts_before = TestDir::new("ts-before");
    let ts_before_standby = TestDir::new("ts-before-standby");
    let ts_after = TestDir::new("ts-after");
    let ts_after_target = TestDir::new("ts-after-target");
    let wal_outside = TestDir::new("wal-outside");
    let (mut old, mut new) = primary_and_standby(
        &pg,
        "rich",
        |c| setup(c, &ts_before.path),
        &[(ts_before.path.clone(), ts_before_standby.path.join("loc"))],
    );
    let extend = relpath(&old, "postgres", "t_extend");
    let shrink = relpath(&old, "postgres", "t_shrink");
    new.promote();
    diverge_source(&new, &ts_after.path);
    diverge_target(&old);
    old.stop();
    let wal_dir = symlink_pg_wal(&old, &wal_outside.path);
    if kind == SourceKind::Local {
        new.stop();
    }
    eprintln!("pair diverged in {:.2?}", t0.elapsed());

    // The source-only tablespace's location is the source's own, and in use: refused, with
    // the target left as it was.
    let before = tree_digest(&old.datadir());
    let mapped = ts_after_target.path.join("loc");
    let mapping = format!("{}={}", ts_after.path.display(), mapped.display());
    let datadir = old.datadir().display().to_string();
    let connstr = new.connstr("postgres");
    if via_binary {
        let (ok, _, err) = run_binary(&[
            "-q".into(),
            "-D".into(),
            datadir.clone(),
            "--source-server".into(),
            connstr.clone(),
        ]);
        assert!(!ok, "a rebuild into the source's tablespace must fail");
        assert!(err.contains("--tablespace-mapping"), "{err}");
    } else {
        let (r, _) = rebuild(options(&old, &new, kind));
        let err = r.expect_err("a rebuild into the source's tablespace must fail");
        assert!(err.to_string().contains("is not empty"), "{err}");
    }
    assert_same_tree(
        &before,
        &tree_digest(&old.datadir()),
        "a refused rebuild changed the target",
    );

    let (plan, fetched_data, fetched_wal): (Plan, u64, u64) = if via_binary {
        let mut args = vec![
            "-q".into(),
            "-D".into(),
            datadir,
            "--source-server".into(),
            connstr,
            "--verify-blocks".into(),
            "--debug".into(),
            "-R".into(),
            "-T".into(),
            mapping,
            "--format".into(),
            "json".into(),
        ];
        if let Some(j) = jobs {
            args.extend(["-j".into(), j.to_string()]);
        }
        let (ok, out, err) = run_binary(&args);
        assert!(ok, "{err}");
        assert!(
            err.contains("gsbuild: servers diverged at WAL location"),
            "{err}"
        );
        assert!(err.contains("gsbuild: Done!"), "{err}");
        assert!(err.contains("are in the WAL's block set"), "{err}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let fetched = |k: &str| doc["outcome"][k].as_u64().expect(k);
        (
            serde_json::from_value(doc["plan"].clone()).unwrap(),
            fetched("fetched_data_bytes") + fetched("blocks_left_to_replay") * 8192,
            fetched("fetched_wal_bytes"),
        )
    } else {
        let mut opts = options(&old, &new, kind);
        opts.tablespace_mapping = vec![(ts_after.path.clone(), mapped.clone())];
        if let Some(j) = jobs {
            opts.jobs = j;
        }
        opts.changed_blocks = method;
        opts.verify_blocks = method == ChangedBlocks::Wal;
        let (r, rep) = rebuild(opts);
        let (plan, outcome) = r.unwrap();
        let outcome = outcome.expect("an outcome");
        assert!(rep.saw("servers diverged at WAL location"));
        assert!(rep.saw("Done!"));
        match method {
            ChangedBlocks::Wal => assert!(rep.saw("are in the WAL's block set"), "{:?}", rep.lines),
            ChangedBlocks::PageLsn => {
                assert!(rep.saw("scanning page LSNs"), "{:?}", rep.lines);
                assert!(!rep.saw("reading WAL in target"), "{:?}", rep.lines);
            }
        }
        let replayed = outcome.blocks_left_to_replay * 8192;
        (
            plan,
            outcome.fetched_data_bytes + replayed,
            outcome.fetched_wal_bytes,
        )
    };
    // Every planned byte arrived once, whatever the sessions and batches (the source is idle,
    // so no file shrank or vanished meanwhile), but for the deferred blocks the source's WAL
    // rewrites, and WAL came with it.
    assert_eq!(
        fetched_data, plan.totals.bytes_to_copy,
        "bytes fetched (and deferred blocks left to replay) vs planned"
    );
    assert!(
        plan.totals.bytes_to_copy > 16 << 20,
        "enough to spread over the sessions"
    );
    assert!(fetched_wal > 0);
    eprintln!("rebuilt after {:.2?}", t0.elapsed());
    assert_eq!(
        action_of(&plan, &extend),
        Some(Action::Truncate),
        "{extend}"
    );
    assert_eq!(
        action_of(&plan, &shrink),
        Some(Action::CopyTail),
        "{shrink}"
    );

    // The files and the layout.
    let d = old.datadir();
    assert_eq!(std::fs::read_link(d.join("pg_wal")).unwrap(), wal_dir);
    assert_eq!(
        std::fs::read_to_string(d.join(BOTH_FILE)).unwrap(),
        "the source's version, longer than the target's\n"
    );
    assert!(!d.join(ONLY_TARGET_FILE).exists());
    assert_eq!(
        std::fs::read_to_string(d.join(ONLY_SOURCE_FILE)).unwrap(),
        "only on the source\n"
    );
    let uid = owner_uid(&old);
    assert_owned_by(&d, uid);
    assert_owned_by(&wal_dir, uid);
    assert_owned_by(&mapped, uid);
    // Everything created with PostgreSQL's modes, whatever gsbuild's umask.
    for dir in [&d, &wal_dir, &mapped] {
        assert_modes(dir, 0o700, 0o600);
    }
    let links: Vec<PathBuf> = std::fs::read_dir(d.join("pg_tblspc"))
        .unwrap()
        .map(|e| std::fs::read_link(e.unwrap().path()).unwrap())
        .collect();
    assert!(links.contains(&mapped), "{links:?}");
    assert!(links.contains(&ts_before.path), "{links:?}");
    match kind {
        SourceKind::Server => {
            assert!(d.join("standby.signal").is_file());
            let auto = std::fs::read_to_string(d.join("postgresql.auto.conf")).unwrap();
            let line = auto
                .lines()
                .rfind(|l| l.starts_with("primary_conninfo"))
                .expect("primary_conninfo written by -R");
            assert!(
                line.contains(&new.socket_dir().display().to_string()),
                "{line}"
            );
        }
        SourceKind::Local => {
            new.start();
            configure_standby(&old, &new);
        }
    }

    verify_standby(&new, &mut old);
    assert_eq!(
        old.psql(
            "postgres",
            "SELECT count(*) FROM pg_class WHERE relname IN ('tgt_new', 'drop_on_source')"
        ),
        "0"
    );
    assert_eq!(
        old.psql("postgres", "SELECT count(*) FROM pg_class WHERE relname IN ('src_new', 'drop_on_target', 'in_ts_after')"),
        "3"
    );
    // Promoted, the rebuilt cluster resets its unlogged tables and accepts writes.
    old.promote();
    assert_eq!(old.psql("postgres", "SELECT count(*) FROM t_unlogged"), "0");
    old.psql(
        "postgres",
        "INSERT INTO t_unlogged VALUES (1, 'after promotion')",
    );
    eprintln!(
        "rich scenario on {} ({kind:?}) took {:.2?}",
        pg.label,
        t0.elapsed()
    );
}

#[test]
fn rich_pg15_server_binary() {
    rich_jobs(15, SourceKind::Server, true, 8);
}

/// One SQL session (`-j 1`): the copy and the WAL stream still run side by side.
#[test]
fn rich_pg15_server_one_session() {
    rich_jobs(15, SourceKind::Server, false, 1);
}

#[test]
fn rich_pg15_local() {
    rich(15, SourceKind::Local, false);
}
