//! Scenarios that need a topology of their own: a standby as the source, two standbys promoted
//! to the same timeline, nothing to rewind, a target that crashed, target WAL that is only in
//! the archive, a dry run, pg_rewind's command line, and (opt-in) a relation over 1 GiB.

use crate::support::scenario::*;
use crate::support::*;
use gsbuild::plan::Plan;
use gsbuild::rewind::Outcome;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Runs `program` with `args` (and `PATH` = `path` first, when given); returns (exit code,
/// stdout, stderr).
fn run(program: &Path, args: &[String], path: Option<&Path>) -> (i32, String, String) {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(p) = path {
        let old = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![p.to_path_buf()];
        dirs.extend(std::env::split_paths(&old));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap());
    }
    let out = cmd.output().unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("{} {args:?} → {}\n{se}", program.display(), out.status);
    (out.status.code().unwrap_or(-1), so, se)
}

fn s(x: impl AsRef<std::ffi::OsStr>) -> String {
    x.as_ref().to_string_lossy().into_owned()
}

fn rebuilt(r: gsbuild::Result<(Plan, Option<Outcome>)>) -> Plan {
    let (plan, outcome) = r.unwrap();
    assert!(outcome.is_some(), "expected a rewind");
    plan
}

/// After a rebuild from `source` (stopped for a local source), restarts the source when needed,
/// makes the target its standby, and verifies against `primary` (default: the source).
fn finish(kind: SourceKind, source: &mut Cluster, target: &mut Cluster, primary: Option<&Cluster>) {
    if kind == SourceKind::Local {
        source.start();
        configure_standby(target, source);
    }
    verify_standby(primary.unwrap_or(source), target);
    assert_lost_gone(target);
}

/// The source is a standby (of the new primary): a live one over SQL, or a cleanly stopped
/// one (shut down in recovery).
pub(crate) fn standby_as_source(major: u32, kind: SourceKind) {
    let Some(pg) = install(major) else { return };
    let t0 = Instant::now();
    let (mut old, new) = primary_and_standby(&pg, "sbysrc", small_setup, &[]);
    // A third node that, like `new`, followed the old primary and holds WAL from before the
    // split; after the failover it follows the new primary.
    let mut cascade = make_standby_mapped(&old, "sbysrc-cascade", &[]);
    cascade.start();
    // pg_basebackup's checkpoint must reach `new` too, or the third node is ahead of the fork.
    let lsn = current_lsn(&old);
    cascade.wait_replay(&lsn);
    new.wait_replay(&lsn);
    new.promote();
    cascade.stop();
    configure_standby(&cascade, &new);
    cascade.start();
    small_diverge(&new, &old);
    old.stop();
    cascade.wait_replay(&current_lsn(&new));
    if kind == SourceKind::Local {
        cascade.stop();
    }
    let plan = rebuilt(rebuild(options(&old, &cascade, kind)).0);
    assert!(plan.divergence.is_some());
    finish(kind, &mut cascade, &mut old, Some(&new));
    eprintln!("standby as source ({kind:?}) took {:.2?}", t0.elapsed());
}

#[test]
fn standby_as_source_pg15_server() {
    standby_as_source(15, SourceKind::Server);
}

#[test]
fn standby_as_source_pg15_local() {
    standby_as_source(15, SourceKind::Local);
}

/// Two standbys of one primary, promoted independently after the primary stopped: both are on
/// timeline 2 with identical histories, so only the WAL (record CRCs) shows they diverged.
pub(crate) fn same_timeline_divergence(major: u32, kind: SourceKind) {
    let Some(pg) = install(major) else { return };
    let t0 = Instant::now();
    let (mut primary, mut a) = primary_and_standby(&pg, "sametli", small_setup, &[]);
    let mut b = make_standby_mapped(&primary, "sametli-b", &[]);
    b.start();
    b.wait_replay(&current_lsn(&primary));
    primary.stop();
    // Both must have replayed the primary's shutdown checkpoint before they are promoted, so
    // that their timeline 2 starts at the same position.
    let mut positions = (String::new(), String::new());
    for _ in 0..600 {
        positions = (current_lsn(&a), current_lsn(&b));
        if positions.0 == positions.1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        positions.0, positions.1,
        "the standbys did not reach the same position"
    );
    a.promote();
    b.promote();
    small_diverge(&a, &b);
    b.stop();
    if kind == SourceKind::Local {
        a.stop();
    }
    let plan = rebuilt(rebuild(options(&b, &a, kind)).0);
    let div = plan.divergence.as_ref().unwrap();
    assert_eq!(div.method.as_str(), "checkpoint-crc", "{div:?}");
    assert_eq!((div.source_tli.0, div.target_tli.0), (2, 2));
    finish(kind, &mut a, &mut b, None);
    eprintln!(
        "same-timeline divergence ({kind:?}) took {:.2?}",
        t0.elapsed()
    );
}

#[test]
fn same_timeline_divergence_pg15_server() {
    same_timeline_divergence(15, SourceKind::Server);
}

#[test]
fn same_timeline_divergence_pg15_local() {
    same_timeline_divergence(15, SourceKind::Local);
}

/// A standby that is merely behind its primary, on the same timeline: nothing to rewind, and
/// nothing in the target changes; it then follows the primary as before.
pub(crate) fn no_rewind_required(major: u32, kind: SourceKind) {
    let Some(pg) = install(major) else { return };
    let (mut primary, mut standby) = primary_and_standby(&pg, "norewind", small_setup, &[]);
    standby.stop();
    pgbench(&primary, &["-n", "-t", "100"]);
    if kind == SourceKind::Local {
        primary.stop();
    }
    let before = tree_digest(&standby.datadir());
    let (r, rep) = rebuild(options(&standby, &primary, kind));
    let (plan, outcome) = r.unwrap();
    assert!(!plan.rewind_required() && outcome.is_none(), "{plan:?}");
    assert!(rep.saw("no rewind required"), "{:?}", rep.lines);
    assert_same_tree(
        &before,
        &tree_digest(&standby.datadir()),
        "no rewind required, yet the target changed",
    );
    if kind == SourceKind::Local {
        primary.start();
    }
    verify_standby(&primary, &mut standby);
}

#[test]
fn no_rewind_required_pg15_server() {
    no_rewind_required(15, SourceKind::Server);
}

#[test]
fn no_rewind_required_pg15_local() {
    no_rewind_required(15, SourceKind::Local);
}

/// The target crashed (immediate stop): gsbuild runs single-user crash recovery first, with
/// `postgres` found on `PATH` (binary) or given in the options (library).
pub(crate) fn unclean_target(major: u32, kind: SourceKind) {
    let Some(pg) = install(major) else { return };
    let (mut old, mut new) = primary_and_standby(&pg, "unclean", small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    old.stop_mode("immediate");
    assert_eq!(old.controldata()["Database cluster state"], "in production");
    // A dry run refuses rather than run crash recovery, which would write to the target.
    let before = tree_digest(&old.datadir());
    let mut dry = options(&old, &new, kind);
    dry.dry_run = true;
    let err = rebuild(dry)
        .0
        .expect_err("a dry run on an unclean target must fail")
        .to_string();
    assert!(
        err.contains("a dry run does not run crash recovery"),
        "{err}"
    );
    assert_same_tree(
        &before,
        &tree_digest(&old.datadir()),
        "a refused dry run changed the target",
    );
    match kind {
        SourceKind::Server => {
            let args = [
                "-q".into(),
                "-D".into(),
                s(old.datadir()),
                "--source-server".into(),
                new.connstr("postgres"),
                "-R".into(),
            ];
            let (code, _, err) = run(&gsbuild_bin(), &args, Some(&pg.bin));
            assert_eq!(code, 0, "{err}");
            assert!(
                err.contains("for target server to complete crash recovery"),
                "{err}"
            );
            assert!(err.contains("Done!"), "{err}");
        }
        SourceKind::Local => {
            new.stop();
            let (r, rep) = rebuild(options(&old, &new, kind));
            rebuilt(r);
            assert!(rep.saw("crash recovery"), "{:?}", rep.lines);
        }
    }
    assert_owned_by(&old.datadir(), owner_uid(&old));
    finish(kind, &mut new, &mut old, None);
}

#[test]
fn unclean_target_pg15_server_binary() {
    unclean_target(15, SourceKind::Server);
}

#[test]
fn unclean_target_pg15_local() {
    unclean_target(15, SourceKind::Local);
}

/// A diverged pair whose target archived its WAL from the common checkpoint on and lost it
/// from `pg_wal` (every archived segment removed; the segment holding the target's shutdown
/// checkpoint stays, as a cluster needs it to start). Returns (target, source, archive).
pub(crate) fn pair_without_target_wal(pg: &PgInstall, name: &str) -> (Cluster, Cluster, TestDir) {
    let archive = TestDir::new("archive");
    let init = InitOptions {
        extra_conf: format!(
            "archive_mode = on\narchive_command = 'cp %p {}/%f'\n",
            archive.path.display()
        ),
        ..Default::default()
    };
    let (mut old, new) = primary_and_standby_with(pg, name, &init, small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    for i in 0..3 {
        let first = 5001 + i * 1000;
        old.psql(
            "postgres",
            &format!(
                "INSERT INTO common SELECT g, 'lost' FROM generate_series({first}, {}) g",
                first + 999
            ),
        );
        old.psql("postgres", "SELECT pg_switch_wal()");
    }
    let last = old.psql(
        "postgres",
        "SELECT pg_walfile_name(pg_current_wal_lsn() - 1)",
    );
    let sql =
        format!("SELECT coalesce(last_archived_wal >= '{last}', false) FROM pg_stat_archiver");
    let mut archived = false;
    for _ in 0..600 {
        if old.psql("postgres", &sql) == "t" {
            archived = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(archived, "{last} was not archived");
    old.stop();
    let mut removed = 0;
    for e in std::fs::read_dir(archive.path.as_path()).unwrap() {
        let name = e.unwrap().file_name();
        if std::fs::remove_file(old.wal_dir().join(&name)).is_ok() {
            removed += 1;
        }
    }
    assert!(removed >= 3, "only {removed} archived segments removed");
    (old, new, archive)
}

/// The default (WAL) method on a target without its WAL: a clear error naming the missing
/// segment, and the target untouched.
fn assert_wal_method_fails(old: &Cluster, new: &Cluster, kind: SourceKind) {
    let before = tree_digest(&old.datadir());
    let (r, _) = rebuild(options(old, new, kind));
    let err = r.expect_err("target WAL is missing").to_string();
    eprintln!("without -c: {err}");
    assert!(
        err.contains("could not open file") && err.contains("pg_wal/00000001000000000000000"),
        "{err}"
    );
    assert_same_tree(
        &before,
        &tree_digest(&old.datadir()),
        "a failed rebuild changed the target",
    );
}

/// Target WAL from the common checkpoint on was archived and removed from `pg_wal`: a clear
/// error; then `-c` fetches it with the target's `restore_command` and the rebuild succeeds.
pub(crate) fn missing_target_wal(major: u32, kind: SourceKind) {
    let Some(pg) = install(major) else { return };
    let (mut old, mut new, archive) = pair_without_target_wal(&pg, "nowal");
    if kind == SourceKind::Local {
        new.stop();
    }
    assert_wal_method_fails(&old, &new, kind);
    old.append_conf(&format!(
        "restore_command = 'cp {}/%f %p'",
        archive.path.display()
    ));
    // Without -c the error shows both ways out (-b incremental: -b auto, the default, takes the
    // page-LSN way by itself).
    let source = match kind {
        SourceKind::Server => ["--source-server".to_string(), new.connstr("postgres")],
        SourceKind::Local => ["--source-pgdata".to_string(), s(new.datadir())],
    };
    let mut args = vec![
        "-b".to_string(),
        "incremental".into(),
        "-D".into(),
        s(old.datadir()),
        "-n".into(),
    ];
    args.extend(source);
    let (code, _, err) = run(&gsbuild_bin(), &args, None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("hint: the target's restore_command can fetch the missing WAL from its archive: run again with -c"), "{err}");
    assert!(
        err.contains("hint: --changed-blocks=page-lsn needs none of the target's WAL"),
        "{err}"
    );
    let mut opts = options(&old, &new, kind);
    opts.restore_target_wal = true;
    let (r, rep) = rebuild(opts);
    rebuilt(r);
    assert!(
        rep.saw("WAL segment(s) of the target with restore_command: 0000000"),
        "{:?}",
        rep.lines
    );
    assert_owned_by(&old.datadir(), owner_uid(&old));
    finish(kind, &mut new, &mut old, None);
}

/// The same lost target WAL, without an archive to restore it from: `--changed-blocks=page-lsn`
/// finds the changed blocks by page LSN and the common checkpoint in the source's WAL, and the
/// rebuilt target holds exactly the source's data.
pub(crate) fn missing_target_wal_page_lsn(major: u32, kind: SourceKind) {
    missing_target_wal_page_lsn_with(major, kind, false)
}

/// [`missing_target_wal_page_lsn`]; with `empty`, not one WAL segment is left in the target's
/// `pg_wal`, not even the one holding its own last checkpoint record: the histories give the
/// divergence point and the source's WAL the common checkpoint, so none is needed.
fn missing_target_wal_page_lsn_with(major: u32, kind: SourceKind, empty: bool) {
    let Some(pg) = install(major) else { return };
    let (mut old, mut new, _archive) = pair_without_target_wal(&pg, "nowal-lsn");
    if kind == SourceKind::Local {
        new.stop();
    }
    if empty {
        for e in std::fs::read_dir(old.wal_dir()).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() >= 24 && name[..24].bytes().all(|b| b.is_ascii_hexdigit()) {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    }
    assert_wal_method_fails(&old, &new, kind);
    let mut opts = options(&old, &new, kind);
    opts.changed_blocks = gsbuild::rewind::ChangedBlocks::PageLsn;
    let (r, rep) = rebuild(opts);
    let plan = rebuilt(r);
    assert!(
        rep.saw("found the last common checkpoint at"),
        "{:?}",
        rep.lines
    );
    assert!(rep.saw("scanning page LSNs"), "{:?}", rep.lines);
    let ckpt = plan.checkpoint.as_ref().unwrap();
    assert!(ckpt.redo <= ckpt.lsn && ckpt.lsn < plan.divergence.as_ref().unwrap().lsn);
    assert!(plan.totals.blocks > 0, "{:?}", plan.totals);
    assert_owned_by(&old.datadir(), owner_uid(&old));
    finish(kind, &mut new, &mut old, None);
}

#[test]
fn missing_target_wal_page_lsn_pg15_server() {
    missing_target_wal_page_lsn(15, SourceKind::Server);
}

#[test]
fn missing_target_wal_page_lsn_pg15_local() {
    missing_target_wal_page_lsn(15, SourceKind::Local);
}

#[test]
fn empty_target_pg_wal_page_lsn_pg15_server() {
    missing_target_wal_page_lsn_with(15, SourceKind::Server, true);
}

#[test]
fn empty_target_pg_wal_page_lsn_pg18_local() {
    missing_target_wal_page_lsn_with(18, SourceKind::Local, true);
}

#[test]
fn missing_target_wal_pg15_server() {
    missing_target_wal(15, SourceKind::Server);
}

#[test]
fn missing_target_wal_pg15_local() {
    missing_target_wal(15, SourceKind::Local);
}

/// `--dry-run` reads everything and prints the plan, and changes not one byte (nor a mode, an
/// owner or a modification time) of the target; a real rebuild afterwards still works.
pub(crate) fn dry_run(major: u32, kind: SourceKind) {
    let Some(pg) = install(major) else { return };
    let (mut old, mut new) = primary_and_standby(&pg, "dryrun", small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    old.stop();
    if kind == SourceKind::Local {
        new.stop();
    }
    let before = tree_digest(&old.datadir());
    let source_arg = match kind {
        SourceKind::Server => ["--source-server".to_string(), new.connstr("postgres")],
        SourceKind::Local => ["--source-pgdata".to_string(), s(new.datadir())],
    };
    let mut args = vec![
        "-D".to_string(),
        s(old.datadir()),
        "-n".into(),
        "-P".into(),
        "-R".into(),
    ];
    args.extend(source_arg);
    if kind == SourceKind::Local {
        args.retain(|a| a != "-R");
    }
    let (code, out, err) = run(&gsbuild_bin(), &args, None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("servers diverged at WAL location"), "{err}");
    assert!(!out.trim().is_empty(), "a dry run prints the plan");
    // People's units (kB, MB) everywhere, the same in the summary as in the plan; a file
    // whose blocks are copied reads as such.
    let need = err
        .lines()
        .find(|l| l.contains("need to copy"))
        .unwrap_or_default();
    assert!(need.contains(" kB") || need.contains(" MB"), "{need}");
    // Raw byte counts only below 1 kB: "[8 kB]", never "[8192 bytes]".
    assert!(
        !out.lines().any(|l| l
            .rsplit_once(" bytes]")
            .and_then(|(head, _)| head.rsplit('[').next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 1024)),
        "{out}"
    );
    assert!(!out.contains("(1 blocks)"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("blocks ")), "{out}");
    assert!(
        !out.lines()
            .any(|l| l.starts_with("none ") && l.contains("block")),
        "{out}"
    );
    let total = out
        .lines()
        .find(|l| l.starts_with("total: "))
        .unwrap_or_default();
    assert!(
        total.contains(" kB to copy") || total.contains(" MB to copy"),
        "{total}"
    );
    assert_same_tree(
        &before,
        &tree_digest(&old.datadir()),
        "--dry-run changed the target",
    );
    rebuilt(rebuild(options(&old, &new, kind)).0);
    finish(kind, &mut new, &mut old, None);
}

#[test]
fn dry_run_pg15_server() {
    dry_run(15, SourceKind::Server);
}

#[test]
fn dry_run_pg15_local() {
    dry_run(15, SourceKind::Local);
}

/// gsbuild invoked as `pg_rewind` (a symlink of that name): pg_rewind's usage errors, exit
/// codes and the stderr lines HA tools parse; a clean switchover needs no rewind; after the
/// old primary wrote on its own, a rewind with `-R -P` (which, like pg_rewind, copies the
/// source's configuration files) makes it a standby of the new primary.
pub(crate) fn pg_rewind_dialect(major: u32) {
    let Some(pg) = install(major) else { return };
    let bin = TestDir::new("pg_rewind-bin");
    let pg_rewind = bin.path.join("pg_rewind");
    std::os::unix::fs::symlink(gsbuild_bin(), &pg_rewind).unwrap();
    let (code, _, err) = run(&pg_rewind, &["--target-pgdata=/nonexistent".into()], None);
    assert_eq!(code, 1);
    assert!(
        err.contains("pg_rewind: error: no source specified (--source-pgdata or --source-server)"),
        "{err}"
    );
    assert!(
        err.contains("pg_rewind: hint: Try \"pg_rewind --help\""),
        "{err}"
    );
    let (code, out, _) = run(&pg_rewind, &["-V".into()], None);
    assert_eq!(code, 0);
    assert!(out.starts_with("pg_rewind"), "{out}");

    let (mut old, new) = primary_and_standby(&pg, "pgrewind", small_setup, &[]);
    old.stop();
    new.promote();
    pgbench(&new, &["-n", "-t", "100"]);
    let target = format!("--target-pgdata={}", old.datadir().display());
    let source = format!("--source-server={}", new.connstr("postgres"));
    let (code, _, err) = run(&pg_rewind, &[target.clone(), source.clone()], None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("pg_rewind: no rewind required"), "{err}");

    // The old primary comes back as a primary by mistake and writes.
    old.start();
    old.psql(
        "postgres",
        "CREATE TABLE lost AS SELECT generate_series(1, 10000) AS g",
    );
    old.stop();
    let (code, _, err) = run(
        &pg_rewind,
        &[target, source, "-R".into(), "-P".into(), "--no-sync".into()],
        Some(&pg.bin),
    );
    assert_eq!(code, 0, "{err}");
    for line in [
        "pg_rewind: servers diverged at WAL location ",
        "pg_rewind: rewinding from last common checkpoint at ",
        "pg_rewind: Done!",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
    assert!(!err.contains("syncing"), "--no-sync syncs nothing:\n{err}");
    // Every line of the pg_rewind dialect is pg_rewind's, without terminal colours; progress
    // lines have no prefix, as pg_rewind's ("24/4112 kB (0%) copied").
    for line in err.lines() {
        assert!(
            line.starts_with("pg_rewind: ") || line.ends_with("copied"),
            "{line:?}"
        );
    }
    restore_connection_conf(&old);
    verify_standby(&new, &mut old);
    assert_lost_gone(&old);
}

#[test]
fn pg_rewind_dialect_pg15() {
    pg_rewind_dialect(15);
}

/// A relation over 1 GiB (two segment files) changed on both sides, in both segments. Opt-in
/// (it writes about 2.5 GiB and takes about a minute):
/// `cargo test --test rebuild big_multisegment -- --ignored`.
#[test]
#[ignore = "opt-in: writes 2.5 GiB; run with --ignored"]
fn big_multisegment_relation_pg15() {
    let Some(pg) = install(15) else { return };
    let t0 = Instant::now();
    let setup = |c: &Cluster| {
        c.psql_script(
            "postgres",
            "CREATE TABLE big (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = off);
             INSERT INTO big SELECT g, repeat('x', 1000) FROM generate_series(1, 1150000) g;",
        );
    };
    // Every page's first hint bit after a checkpoint is WAL-logged: keep all of it.
    let init = InitOptions {
        extra_conf: "wal_keep_size = '8GB'\nmax_wal_size = '4GB'\n".into(),
        ..Default::default()
    };
    let (mut old, mut new) = primary_and_standby_with(&pg, "big", &init, setup, &[]);
    let rel = relpath(&old, "postgres", "big");
    assert!(old.datadir().join(format!("{rel}.1")).is_file(), "{rel}.1");
    eprintln!("pair with a 1.2 GiB relation in {:.2?}", t0.elapsed());
    new.promote();
    new.psql(
        "postgres",
        "UPDATE big SET pad = 'source' WHERE id % 50000 = 0",
    );
    old.psql_script(
        "postgres",
        "SET enable_seqscan = off;
         UPDATE big SET pad = 'lost' WHERE id = ANY (ARRAY(SELECT generate_series(40000, 1150000, 40000)));
         UPDATE big SET pad = 'lost' WHERE id > 1140000;
         DELETE FROM big WHERE id BETWEEN 100 AND 200;",
    );
    old.stop();
    let t = Instant::now();
    let mut opts = options(&old, &new, SourceKind::Server);
    // Every page of both segments written after the split must be in the WAL's block set.
    opts.verify_blocks = true;
    let (r, rep) = rebuild(opts);
    let plan = rebuilt(r);
    assert!(rep.saw("are in the WAL's block set"), "{:?}", rep.lines);
    eprintln!(
        "rebuilt in {:.2?}, {} bytes copied",
        t.elapsed(),
        plan.totals.bytes_to_copy
    );
    let seg1 = plan.files.iter().find(|f| f.path == format!("{rel}.1"));
    assert!(
        seg1.is_some_and(|f| !f.blocks.is_empty() || f.action != gsbuild::filemap::Action::None),
        "{seg1:?}"
    );
    assert!(
        plan.totals.bytes_to_copy < 200 << 20,
        "copied {} bytes",
        plan.totals.bytes_to_copy
    );
    verify_standby(&new, &mut old);
    new.stop();
    eprintln!("big relation test took {:.2?}", t0.elapsed());
}

/// The least-privilege role HA tools create for pg_rewind: no superuser, no `REPLICATION`,
/// only EXECUTE on the four file functions. The replication session is refused, so the WAL
/// comes over SQL, and the rebuild still converges.
pub(crate) fn least_privilege_role(major: u32) {
    let Some(pg) = install(major) else { return };
    let grants = |c: &Cluster| {
        small_setup(c);
        create_rewind_role(c);
    };
    let (mut old, new) = primary_and_standby(&pg, "leastpriv", grants, &[]);
    new.promote();
    small_diverge(&new, &old);
    old.stop();
    let mut opts = options(&old, &new, SourceKind::Server);
    opts.source = gsbuild::rewind::SourceSpec::Server(format!(
        "host={} port={} user=rewinder dbname=postgres",
        new.socket_dir().display(),
        new.port
    ));
    // The rewind role cannot stream; the standby uses the superuser.
    opts.write_recovery_conf = false;
    rebuilt(rebuild(opts).0);
    configure_standby(&old, &new);
    verify_standby(&new, &mut old);
    assert_lost_gone(&old);
}

#[test]
fn least_privilege_role_pg15() {
    least_privilege_role(15);
}

/// A pair made with `initdb -g` (group access): what the rebuild creates gets 0750/0640, as
/// PostgreSQL would make it; in the default 0700 directory (checked in the rich scenario)
/// 0700/0600, whatever gsbuild's umask.
pub(crate) fn group_access_modes(major: u32, kind: SourceKind) {
    let Some(pg) = install(major) else { return };
    let init = InitOptions {
        group_access: true,
        ..Default::default()
    };
    let (mut old, mut new) = primary_and_standby_with(&pg, "groupmode", &init, small_setup, &[]);
    assert_modes(&old.datadir(), 0o750, 0o640);
    new.promote();
    small_diverge(&new, &old);
    old.stop();
    if kind == SourceKind::Local {
        new.stop();
    }
    // Under a umask that would strip the group bits if gsbuild relied on it.
    let source = match kind {
        SourceKind::Server => format!("--source-server='{}' -R", new.connstr("postgres")),
        SourceKind::Local => format!("--source-pgdata='{}'", new.datadir().display()),
    };
    let script = format!(
        "umask 077; exec '{}' -q -D '{}' {source} -N",
        gsbuild_bin().display(),
        old.datadir().display()
    );
    let (code, _, err) = run(Path::new("/bin/sh"), &["-c".into(), script], None);
    assert_eq!(code, 0, "{err}");
    assert_modes(&old.datadir(), 0o750, 0o640);
    finish(kind, &mut new, &mut old, None);
}

#[test]
fn group_access_modes_pg15_server() {
    group_access_modes(15, SourceKind::Server);
}

#[test]
fn group_access_modes_pg18_local() {
    group_access_modes(18, SourceKind::Local);
}

/// In-place tablespaces (`allow_in_place_tablespaces`: `pg_tblspc/<oid>` is a directory, not a
/// link): one shared by both sides and written by both after the split, one only the source
/// creates after it, one only the target creates.
pub(crate) fn in_place_tablespaces(major: u32, kind: SourceKind) {
    let Some(pg) = install(major) else { return };
    let init = InitOptions {
        extra_conf: "allow_in_place_tablespaces = on\n".into(),
        ..Default::default()
    };
    let setup = |c: &Cluster| {
        small_setup(c);
        c.psql_script(
            "postgres",
            "CREATE TABLESPACE inplace_common LOCATION '';
             CREATE TABLE in_common (id int PRIMARY KEY, v text) TABLESPACE inplace_common;
             INSERT INTO in_common SELECT g, 'common' FROM generate_series(1, 5000) g;",
        );
    };
    let (mut old, mut new) = primary_and_standby_with(&pg, "inplace", &init, setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    new.psql_script(
        "postgres",
        "UPDATE in_common SET v = 'source' WHERE id % 3 = 0;
         CREATE TABLESPACE inplace_source LOCATION '';
         CREATE TABLE in_source TABLESPACE inplace_source AS SELECT generate_series(1, 2000) g;",
    );
    old.psql_script(
        "postgres",
        "UPDATE in_common SET v = 'lost' WHERE id % 2 = 0;
         CREATE TABLESPACE inplace_target LOCATION '';
         CREATE TABLE in_target TABLESPACE inplace_target AS SELECT generate_series(1, 2000) g;",
    );
    let target_only = old.psql(
        "postgres",
        "SELECT oid FROM pg_tablespace WHERE spcname = 'inplace_target'",
    );
    old.stop();
    if kind == SourceKind::Local {
        new.stop();
    }
    rebuilt(rebuild(options(&old, &new, kind)).0);
    let tblspc = old.datadir().join("pg_tblspc");
    assert!(
        !tblspc.join(&target_only).exists(),
        "target-only tablespace removed"
    );
    for e in std::fs::read_dir(&tblspc).unwrap() {
        let meta = std::fs::symlink_metadata(e.unwrap().path()).unwrap();
        assert!(meta.is_dir(), "in-place tablespaces stay directories");
    }
    finish(kind, &mut new, &mut old, None);
    assert_eq!(
        old.psql(
            "postgres",
            "SELECT count(*) FROM in_common WHERE v = 'lost'"
        ),
        "0"
    );
}

#[test]
fn in_place_tablespaces_pg15_server() {
    in_place_tablespaces(15, SourceKind::Server);
}

#[test]
fn in_place_tablespaces_pg15_local() {
    in_place_tablespaces(15, SourceKind::Local);
}

/// PostgreSQL's `008_min_recovery_point`: node 3 is promoted (timeline 2), node 1 follows it
/// and is promoted in turn (timeline 3) with no checkpoint since, while node 2 still follows
/// node 3 on timeline 2. Node 2 is rebuilt from node 1: the two switch points lie in one WAL
/// segment, and the common checkpoint record is on timeline 2 there.
pub(crate) fn promoted_twice(major: u32) {
    let Some(pg) = install(major) else { return };
    let mut n1 = Cluster::init(&pg, "twice-1", &InitOptions::default());
    n1.start();
    n1.psql_script(
        "postgres",
        "CREATE TABLE foo (t text);
         CREATE TABLE bar (t text);
         INSERT INTO bar VALUES ('in both');",
    );
    let mut n2 = n1.make_standby("twice-2", false);
    let mut n3 = n1.make_standby("twice-3", false);
    n2.start();
    n3.start();
    let lsn = n1.psql("postgres", "SELECT pg_current_wal_insert_lsn()");
    n2.wait_replay(&lsn);
    n3.wait_replay(&lsn);
    n1.stop();
    n3.promote();
    configure_standby(&n1, &n3);
    n1.start();
    n2.stop();
    configure_standby(&n2, &n3);
    n2.start();
    n1.wait_replay(&n3.psql("postgres", "SELECT pg_current_wal_insert_lsn()"));
    n1.promote();
    n1.psql("postgres", "INSERT INTO foo VALUES ('keep this')");
    n3.psql("postgres", "INSERT INTO bar VALUES ('rewind this')");
    n1.psql("postgres", "INSERT INTO foo VALUES ('and this')");
    n1.psql("postgres", "INSERT INTO foo VALUES ('and this too')");
    n2.wait_replay(&n3.psql("postgres", "SELECT pg_current_wal_insert_lsn()"));
    n2.stop();
    n3.stop();
    let mut opts = options(&n2, &n1, SourceKind::Server);
    opts.write_recovery_conf = true;
    let (r, rep) = rebuild(opts);
    let plan = rebuilt(r);
    eprintln!(
        "{}",
        plan.to_text()
            .lines()
            .take(6)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(rep.saw("servers diverged at WAL location"));
    verify_standby(&n1, &mut n2);
    assert_eq!(
        n2.psql("postgres", "SELECT t FROM foo ORDER BY t"),
        "and this\nand this too\nkeep this"
    );
    assert_eq!(n2.psql("postgres", "SELECT t FROM bar"), "in both");
}

#[test]
fn promoted_twice_pg15() {
    promoted_twice(15);
}

/// A long stretch of common WAL between the last common checkpoint and the divergence point
/// (a long checkpoint interval), which the source no longer has after the failover (a small
/// `wal_keep_size` and two checkpoints since), while the target still has it: recovery reads
/// the target's own copy of it, and only the WAL from the divergence point's segment on is
/// streamed.
pub(crate) fn source_recycled_common_wal(major: u32, kind: SourceKind) {
    let Some(pg) = install(major) else { return };
    let init = InitOptions {
        wal_segsize_mb: 1,
        ..Default::default()
    };
    let (mut old, mut new) = primary_and_standby_with(&pg, "recycled", &init, small_setup, &[]);
    old.psql("postgres", "CHECKPOINT");
    old.psql_script(
        "postgres",
        "CREATE TABLE long_common (id int, v text);
         INSERT INTO long_common SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 25000) g;",
    );
    new.wait_replay(&old.psql("postgres", "SELECT pg_current_wal_insert_lsn()"));
    let redo_segment = old.psql(
        "postgres",
        "SELECT pg_walfile_name(redo_lsn) FROM pg_control_checkpoint()",
    );
    new.promote();
    new.psql_script(
        "postgres",
        "ALTER SYSTEM SET wal_keep_size = '2MB';
         SELECT pg_reload_conf();",
    );
    small_diverge(&new, &old);
    new.psql("postgres", "CHECKPOINT");
    new.psql("postgres", "CHECKPOINT");
    // The segment with the common redo point is gone from the source (named on timeline 1
    // there too: it lies before the switch).
    assert!(
        !new.wal_dir().join(&redo_segment).exists(),
        "{redo_segment} still on the source"
    );
    assert!(old.wal_dir().join(&redo_segment).exists());
    old.stop();
    if kind == SourceKind::Local {
        new.stop();
    }
    let (r, rep) = rebuild(options(&old, &new, kind));
    let plan = rebuilt(r);
    let wal = plan.wal.as_ref().expect("a WAL plan");
    eprintln!(
        "{}",
        plan.to_text()
            .lines()
            .take(6)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(wal.target_segments_kept >= 3, "{wal:?}");
    assert!(rep.saw("servers diverged at WAL location"));
    finish(kind, &mut new, &mut old, None);
    assert_eq!(
        old.psql("postgres", "SELECT count(*) FROM long_common"),
        "25000"
    );
}

#[test]
fn source_recycled_common_wal_pg15_server() {
    source_recycled_common_wal(15, SourceKind::Server);
}

#[test]
fn source_recycled_common_wal_pg17_local() {
    source_recycled_common_wal(17, SourceKind::Local);
}
