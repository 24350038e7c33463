//! `gsbuild -D` on a diverged openGauss old primary, on one diverged pair: identical copies of
//! the stopped old primary (`cp -a`) are rebuilt side by side by `gs_ctl build -b incremental`
//! and by gsbuild, one is interrupted after the point of no return and finished by a re-run,
//! and bad sources (dead channels, another system, PostgreSQL for openGauss and the reverse)
//! are refused without touching the target; a copy running as a primary again
//! is stopped and rebuilt; copies are built in full (`full.rs`); last, the old primary itself,
//! running as a standby that needs repair, is rebuilt by `gsbuild -D` and streams again.

use crate::support::opengauss::*;
use crate::support::{gsbuild_bin, run_ok};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

/// gsbuild as the openGauss user, with `env` set for it.
pub(crate) fn gsbuild(og: &OgInstall, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new("runuser");
    c.args(["-u", OG_USER, "--", "env"])
        .arg(format!("GAUSSHOME={}", og.home.display()))
        .arg(format!(
            "PATH={}:/usr/bin:/bin",
            og.home.join("bin").display()
        ))
        .arg(format!("LD_LIBRARY_PATH={}", og.home.join("lib").display()));
    for (k, v) in env {
        c.arg(format!("{k}={v}"));
    }
    c.arg(gsbuild_bin()).args(args);
    let out = c.output().expect("run gsbuild");
    eprintln!(
        "gsbuild {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) fn path_str(c: &OgCluster) -> String {
    c.datadir().display().to_string()
}

/// `gaussdb.state`'s KB done and KB in all (at 40 and 48) and its mode, state and build mode.
pub(crate) fn build_state(c: &OgCluster) -> (i32, i32, i32, u64, u64) {
    let b = std::fs::read(c.datadir().join("gaussdb.state")).expect("read gaussdb.state");
    assert_eq!(b.len(), 72, "gaussdb.state length");
    let i = |o: usize| i32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
    let u = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap());
    (i(0), i(8), i(32), u(40), u(48))
}

/// Starts `c` as a standby, waits until it streams Normal, and compares every table with
/// `primary`'s; stops it again.
pub(crate) fn converges(c: &mut OgCluster, primary: &OgCluster) {
    c.start("standby");
    c.set_running(true);
    c.wait_normal_standby();
    assert_eq!(
        c.digest(),
        primary.digest(),
        "{} differs from the primary",
        c.name
    );
    c.stop();
}

/// Byte-for-byte equality of two data directories (gs_build.pid aside: the build lock writes it
/// first, as gs_ctl does).
fn same_tree(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .args(["-r", "--no-dereference", "-x", "gs_build.pid"])
        .arg(a)
        .arg(b)
        .output()
        .expect("run diff");
    assert!(
        out.status.success(),
        "the target was changed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Replaces the `replconninfoN` lines of `c`'s postgresql.conf with `lines`.
fn set_channels(c: &OgCluster, lines: &str) {
    let path = c.datadir().join("postgresql.conf");
    let conf = std::fs::read_to_string(&path).expect("read postgresql.conf");
    let kept: Vec<&str> = conf
        .lines()
        .filter(|l| !l.trim_start().starts_with("replconninfo"))
        .collect();
    std::fs::write(&path, format!("{}\n{lines}\n", kept.join("\n"))).expect("write conf");
}

fn replconninfo(c: &OgCluster) -> String {
    let conf = std::fs::read_to_string(c.datadir().join("postgresql.conf")).unwrap();
    conf.lines()
        .find(|l| l.starts_with("replconninfo1"))
        .expect("replconninfo1")
        .to_string()
}

#[test]
fn diverged_old_primary_rebuilt() {
    let Some(og) = og_install() else { return };
    let (mut old, new) = og_diverged_pair(&og, 20_000);
    side_by_side(&og, &old, &new);
    // Killed after the point of no return: the server refuses to start; a re-run finishes.
    killed_then_finished(&og, &old, &new, "interrupted", &[]);
    bad_sources(&og, &old, &new);
    running_primary(&og, &old, &new);
    crashed_target(&og, &old);
    crate::full::full_builds(&og, &old, &new);
    seed_story(&og, &mut old, &new);
}

/// The old primary running as a primary again (it never took part in the failover, so it has
/// no term file: term 0, the new primary's is 1): `gsbuild -D` stops it, rebuilds and starts it.
fn running_primary(og: &OgInstall, old: &OgCluster, new: &OgCluster) {
    let mut c = old.copy_stopped("running-primary");
    assert!(!c.datadir().join("term_file").exists());
    c.start("primary");
    let out = gsbuild(og, &[], &["-D", &path_str(&c)]);
    assert!(out.status.success(), "{}", text(&out));
    c.set_running(true);
    c.wait_normal_standby();
    assert_eq!(c.digest(), new.digest());
    c.stop();
}

/// A node that crashed (kill -9 of its server) is refused with what to do, untouched:
/// PostgreSQL's single-user crash recovery is not openGauss's.
fn crashed_target(og: &OgInstall, old: &OgCluster) {
    let mut c = old.copy_stopped("crashed");
    c.start("primary");
    let pid_file = std::fs::read_to_string(c.datadir().join("postmaster.pid")).expect("pid file");
    let pid = pid_file
        .lines()
        .next()
        .expect("pid line")
        .trim()
        .to_string();
    run_ok(Command::new("kill").args(["-9", &pid]));
    for _ in 0..100 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    c.set_running(false);
    let before = c.copy_stopped("crashed-before");
    let out = gsbuild(og, &[], &["-D", &path_str(&c), "-q"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("must be shut down cleanly") && said.contains("gs_ctl"),
        "{said}"
    );
    same_tree(&before.datadir(), &c.datadir());
}

/// gs_ctl build -b incremental and gsbuild on identical copies: both converge; gsbuild copies
/// no more than gs_rewind said it would.
fn side_by_side(og: &OgInstall, old: &OgCluster, new: &OgCluster) {
    let mut by_gs = old.copy_stopped("by-gs-ctl");
    let mut by_us = old.copy_stopped("by-gsbuild");
    let t = Instant::now();
    let ours = gsbuild(og, &[], &["-D", &path_str(&by_us), "-q"]);
    let our_time = t.elapsed();
    let our_text = text(&ours);
    assert!(ours.status.success(), "gsbuild: {our_text}");
    for line in [
        "find common checkpoint",
        "rewinding from checkpoint redo point at",
        "need to copy",
    ] {
        assert!(our_text.contains(line), "gsbuild says no \"{line}\"");
    }
    let our_state = build_state(&by_us);
    // gs_ctl second: its gs_rewind leaves the files of a temporary table on the source for a
    // while, which a listing right after it would see.
    let t = Instant::now();
    let gs = by_gs.gs_ctl(&["build", "-b", "incremental", "-q"]);
    let gs_time = t.elapsed();
    let gs_text = text(&gs);
    assert!(gs.status.success(), "gs_ctl build: {gs_text}");
    for l in gs_text.lines().filter(|l| l.contains("][gs_rewind]: ")) {
        eprintln!("{l}");
    }
    let gs_line = gs_text
        .lines()
        .find(|l| l.contains("need to copy"))
        .unwrap_or("")
        .to_string();
    let gs_state = build_state(&by_gs);

    // gaussdb.state after -q: a standby (3), building (7) incrementally (3), all done.
    assert_eq!((our_state.0, our_state.1, our_state.2), (3, 7, 3));
    assert_eq!(our_state.3, our_state.4);
    let query = by_us.gs_ctl(&["querybuild"]);
    eprintln!("gs_ctl querybuild after gsbuild -q:\n{}", text(&query));
    assert_eq!(
        std::fs::read_to_string(by_us.datadir().join("gs_build.pid")).unwrap(),
        "0"
    );
    assert!(by_us.datadir().join("build_completed.done").is_file());
    assert!(!by_us.datadir().join("build_completed.start").exists());
    assert!(by_us.datadir().join("global/pg_dw.build").is_file());
    // Built, not yet started: it still holds its backup_label, and a second build is refused
    // as gs_rewind refuses it, without touching it.
    let again = gsbuild(og, &[], &["-D", &path_str(&by_us), "-q"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("recover from the latest backup first"));
    assert!(by_us.datadir().join("build_completed.done").is_file());
    eprintln!(
        "SIDE BY SIDE: gs_ctl build -b incremental -q: {gs_time:.1?}, {} KB copied ({gs_line}); \
         gsbuild -D -q: {our_time:.1?}, {} KB copied",
        gs_state.4, our_state.4
    );
    assert!(
        our_state.4 <= gs_state.4,
        "gsbuild copied {} KB, gs_rewind {} KB",
        our_state.4,
        gs_state.4
    );
    converges(&mut by_gs, new);
    converges(&mut by_us, new);
}

/// gsbuild with `mode` (e.g. `-b full`) on a copy named `name`, killed after a few chunks:
/// the server refuses the half-built directory, and the same command again finishes it.
pub(crate) fn killed_then_finished(
    og: &OgInstall,
    old: &OgCluster,
    new: &OgCluster,
    name: &str,
    mode: &[&str],
) {
    let mut c = old.copy_stopped(name);
    let dir = path_str(&c);
    let args: Vec<&str> = mode.iter().copied().chain(["-D", &dir, "-q"]).collect();
    let out = gsbuild(og, &[("GSBUILD_FAILPOINT", "copy-chunk:3")], &args);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(c.datadir().join("build_completed.start").is_file());
    let start = c.gs_ctl(&["start", "-M", "standby"]);
    let said = text(&start);
    assert!(
        !start.status.success() && said.contains("Uncompleted build is detected"),
        "a half-built target started: {said}"
    );
    let again = gsbuild(og, &[], &args);
    assert!(
        again.status.success(),
        "the re-run failed: {}",
        text(&again)
    );
    assert!(!c.datadir().join("build_completed.start").exists());
    converges(&mut c, new);
}

/// A dead first channel is skipped (and said so); all channels dead, or a PostgreSQL source:
/// exit 1, target untouched.
fn bad_sources(og: &OgInstall, old: &OgCluster, new: &OgCluster) {
    let good = replconninfo(old);
    let dead = crate::support::free_port();
    let dead_line =
        format!("replconninfo1 = 'localhost=127.0.0.1 remotehost=127.0.0.1 remoteport={dead}'");
    // Channel 1 dead, channel 2 good.
    let mut two = old.copy_stopped("second-channel");
    set_channels(
        &two,
        &format!(
            "{dead_line}\n{}",
            good.replacen("replconninfo1", "replconninfo2", 1)
        ),
    );
    let out = gsbuild(og, &[], &["-D", &path_str(&two), "-q"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("channel skipped")
            && said.contains(&format!("127.0.0.1:{dead}"))
            && said.contains("replconninfo1"),
        "channel 1's skip is not reported: {said}"
    );
    assert!(said.contains("(replconninfo2)"), "{said}");
    // The server itself wants every port of a channel: the node's own configuration back.
    set_channels(&two, &good);
    converges(&mut two, new);

    // Every channel dead.
    let none = old.copy_stopped("no-channel");
    let dead2 = crate::support::free_port();
    set_channels(
        &none,
        &format!("{dead_line}\nreplconninfo2 = 'localhost=127.0.0.1 remotehost=127.0.0.1 remoteport={dead2}'"),
    );
    let before = old.copy_stopped("no-channel-before");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(none.datadir().join("postgresql.conf"))
            .arg(before.datadir()),
    );
    let out = gsbuild(og, &[], &["-D", &path_str(&none), "-q"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("replconninfo1") && said.contains(&format!("127.0.0.1:{dead}")),
        "{said}"
    );
    same_tree(&before.datadir(), &none.datadir());

    other_system(og, old);
    postgres_source(og, old);
}

/// A stopped openGauss node of another system (its own gs_initdb) as the source: exit 1,
/// "different systems", the target untouched; `-b check` says it cannot be built from there.
fn other_system(og: &OgInstall, old: &OgCluster) {
    let port = free_port_block();
    let other = OgCluster::init(og, "other_system", port, port + 100);
    let target = old.copy_stopped("other-system-target");
    let before = old.copy_stopped("other-system-before");
    let out = gsbuild(
        og,
        &[],
        &[
            "-D",
            &path_str(&target),
            "-q",
            "--source-pgdata",
            &path_str(&other),
        ],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("different systems"), "{said}");
    same_tree(&before.datadir(), &target.datadir());
    // -b check's verdict for it: cannot build (exit 4), nothing changed.
    let out = gsbuild(
        og,
        &[],
        &[
            "-b",
            "check",
            "-D",
            &path_str(&target),
            "--source-pgdata",
            &path_str(&other),
        ],
    );
    let verdict = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        verdict.starts_with("cannot build:") && verdict.contains("different systems"),
        "{verdict}"
    );
    same_tree(&before.datadir(), &target.datadir());
}

/// A PostgreSQL server, then a stopped PostgreSQL data directory, as the source: exit 1, the
/// target untouched.
fn postgres_source(og: &OgInstall, old: &OgCluster) {
    let Some(pg) = crate::support::install(15).or_else(crate::support::debian_install) else {
        panic!("no PostgreSQL 15 to start a wrong source with");
    };
    let mut pgc = crate::support::Cluster::init(
        &pg,
        "wrong-source",
        &crate::support::InitOptions {
            tcp: true,
            ..Default::default()
        },
    );
    pgc.start();
    let target = old.copy_stopped("pg-source");
    let before = old.copy_stopped("pg-source-before");
    let connstr = format!("host=127.0.0.1 port={} user=postgres", pgc.port);
    let out = gsbuild(
        og,
        &[],
        &["-D", &path_str(&target), "-q", "--source-server", &connstr],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("not an openGauss server"), "{said}");
    same_tree(&before.datadir(), &target.datadir());
    // And a stopped PostgreSQL data directory (readable by the openGauss user).
    pgc.stop();
    run_ok(
        Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(pgc.dir.path.as_path()),
    );
    let out = gsbuild(
        og,
        &[],
        &[
            "-D",
            &path_str(&target),
            "-q",
            "--source-pgdata",
            &pgc.datadir().display().to_string(),
        ],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("PostgreSQL") && said.contains("openGauss"),
        "{said}"
    );
    same_tree(&before.datadir(), &target.datadir());
    // The reverse: the stopped openGauss node as the source of the PostgreSQL data directory.
    let pg_before = crate::support::scenario::tree_digest(&pgc.datadir());
    let out = Command::new(gsbuild_bin())
        .args(["rewind", "-D"])
        .arg(pgc.datadir())
        .arg("--source-pgdata")
        .arg(target.datadir())
        .output()
        .expect("run gsbuild");
    let said = text(&out);
    eprintln!("openGauss source for a PostgreSQL target: {said}");
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("clusters are not compatible")
            && said.contains("openGauss")
            && said.contains("PostgreSQL 15"),
        "{said}"
    );
    crate::support::scenario::assert_same_tree(
        &pg_before,
        &crate::support::scenario::tree_digest(&pgc.datadir()),
        "the PostgreSQL target was changed",
    );
}

/// The seed's story: the old primary, started as a standby, needs repair; `gsbuild -D` on it
/// (running) stops it, rebuilds it and starts it; it streams Normal with every row of the new
/// primary.
fn seed_story(og: &OgInstall, old: &mut OgCluster, new: &OgCluster) {
    old.start("standby");
    let mut state = None;
    for _ in 0..60 {
        state = old.ha_state("db_state");
        if state.as_deref() == Some("Need repair") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let detail = old.ha_state("detail_information");
    eprintln!("old primary as standby: {state:?} / {detail:?}");
    assert_eq!(state.as_deref(), Some("Need repair"));
    // "My standby says Need repair — what now?": the verdict, changing nothing (the node
    // keeps running as it was).
    let out = gsbuild(og, &[], &["-b", "check", "-D", &path_str(old)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let verdict = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        verdict.starts_with("needs incremental build: diverged at"),
        "{verdict}"
    );
    let out = gsbuild(
        og,
        &[],
        &["-b", "check", "--format", "json", "-D", &path_str(old)],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("check JSON");
    assert_eq!(doc["verdict"], "needs-incremental-build", "{doc}");
    assert!(doc["bytes_to_copy"].as_u64().unwrap_or(0) > 0, "{doc}");
    assert_eq!(old.ha_state("db_state").as_deref(), Some("Need repair"));
    for file in ["backup_label", "gsbuild.journal"] {
        assert!(!old.datadir().join(file).exists(), "check wrote {file}");
    }
    let t = Instant::now();
    let out = gsbuild(og, &[], &["-D", &path_str(old)]);
    eprintln!("gsbuild -D on the running old primary: {:.1?}", t.elapsed());
    assert!(out.status.success(), "{}", text(&out));
    old.set_running(true);
    old.wait_normal_standby();
    assert_eq!(old.ha_state("local_role").as_deref(), Some("Standby"));
    assert_eq!(old.digest(), new.digest());
    let out = gsbuild(og, &[], &["-b", "check", "-D", &path_str(old)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let verdict = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        verdict.starts_with("healthy: streaming from its primary"),
        "{verdict}"
    );
    old.stop();
}
