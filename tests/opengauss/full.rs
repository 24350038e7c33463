//! Full builds of an openGauss node (`-b full`, and `-b auto` falling back to one), on copies
//! of the diverged old primary: side by side with `gs_ctl build -b full`; killed half way (the
//! server refuses the directory, a re-run completes it); a target whose WAL is gone, which
//! `-b check` says needs a full build and `-b auto` builds in full; a running node stopped
//! (immediate), built in full and started as a standby.

use super::rebuild::{build_state, converges, gsbuild, path_str, text};
use crate::support::opengauss::*;
use std::time::Instant;

/// Every full-build step on copies of the stopped `old`, the source being `new`.
pub(crate) fn full_builds(og: &OgInstall, old: &OgCluster, new: &OgCluster) {
    side_by_side(og, old, new);
    // Killed after the first chunks, then the same command again.
    super::rebuild::killed_then_finished(og, old, new, "full-killed", &["-b", "full"]);
    wal_gone(og, old, new);
    running(og, old, new);
}

/// `gs_ctl build -b full -q` and `gsbuild -b full -q` on identical copies: both converge.
fn side_by_side(og: &OgInstall, old: &OgCluster, new: &OgCluster) {
    let mut by_gs = old.copy_stopped("full-by-gs-ctl");
    let mut by_us = old.copy_stopped("full-by-gsbuild");
    let t = Instant::now();
    let ours = gsbuild(og, &[], &["-b", "full", "-D", &path_str(&by_us), "-q"]);
    let our_time = t.elapsed();
    let said = text(&ours);
    assert!(ours.status.success(), "gsbuild -b full: {said}");
    assert!(
        said.contains("full build: backup started on the source")
            && !said.contains("could not end the backup"),
        "{said}"
    );
    // gaussdb.state after -q: a standby (3), building (7) in full (2), all done.
    let state = build_state(&by_us);
    assert_eq!((state.0, state.1, state.2), (3, 7, 2), "{state:?}");
    assert_eq!(state.3, state.4);
    let d = by_us.datadir();
    assert!(d.join("build_completed.done").is_file());
    assert!(!d.join("build_completed.start").exists());
    assert!(d.join("global/pg_dw.build").is_file());
    let label = std::fs::read_to_string(d.join("backup_label")).expect("backup_label");
    assert!(label.contains("BACKUP FROM: standby"), "{label}");
    // The node's own configuration is kept.
    assert_eq!(
        std::fs::read(d.join("postgresql.conf")).unwrap(),
        std::fs::read(old.datadir().join("postgresql.conf")).unwrap()
    );

    let t = Instant::now();
    let gs = by_gs.gs_ctl(&["build", "-b", "full", "-q"]);
    let gs_time = t.elapsed();
    assert!(gs.status.success(), "gs_ctl build -b full: {}", text(&gs));
    let gs_state = build_state(&by_gs);
    eprintln!(
        "FULL SIDE BY SIDE: gs_ctl build -b full -q: {gs_time:.1?}, {} KB; \
         gsbuild -b full -q: {our_time:.1?}, {} KB",
        gs_state.4, state.4
    );
    converges(&mut by_gs, new);
    converges(&mut by_us, new);
}

/// Every WAL segment of the target removed: `-b check` says it needs a full build, and
/// `-b auto` (the default) says why it falls back, builds in full, and it converges.
fn wal_gone(og: &OgInstall, old: &OgCluster, new: &OgCluster) {
    let mut c = old.copy_stopped("full-wal-gone");
    let wal = c.datadir().join("pg_xlog");
    let mut removed = 0;
    for e in std::fs::read_dir(&wal).expect("read pg_xlog") {
        let e = e.expect("pg_xlog entry");
        let name = e.file_name().to_string_lossy().to_string();
        if name.len() == 24 && name.chars().all(|ch| ch.is_ascii_hexdigit()) {
            std::fs::remove_file(e.path()).expect("remove segment");
            removed += 1;
        }
    }
    assert!(removed > 0, "no WAL segment in {}", wal.display());
    let dir = path_str(&c);
    let out = gsbuild(og, &[], &["-b", "check", "-D", &dir]);
    let verdict = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(verdict.starts_with("needs full build"), "{verdict}");
    let out = gsbuild(og, &[], &["-D", &dir, "-q"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("an incremental build cannot work, falling back to a full build:"),
        "{said}"
    );
    assert_eq!(build_state(&c).2, 2, "not built in full");
    converges(&mut c, new);
}

/// A running node (the old primary started as a standby, which needs repair): `gsbuild -b full
/// -D` stops it, builds it in full, starts it as a standby, and it streams.
fn running(og: &OgInstall, old: &OgCluster, new: &OgCluster) {
    let mut c = old.copy_stopped("full-running");
    c.start("standby");
    let out = gsbuild(og, &[], &["-b", "full", "-D", &path_str(&c)]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("immediate"),
        "not stopped immediately: {said}"
    );
    c.set_running(true);
    c.wait_normal_standby();
    assert_eq!(c.digest(), new.digest());
    c.stop();
}
