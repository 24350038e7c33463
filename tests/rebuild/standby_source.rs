//! A live standby as the source, whose files on disk may be older than the last common
//! checkpoint: the standby replayed the primary's checkpoint record but has not made the
//! matching restartpoint yet, so its data files and `pg_xact` predate the common redo point.
//! Recovery must then start at the source's own redo point (as pg_rewind does); starting at the
//! common one loses the rows committed between the two.
//!
//! The topology is PostgreSQL's own `007_standby_source` test, with a chain of standbys of
//! configurable length between the primary A and the source: A → B [→ D] → C. C is promoted,
//! both sides write, and C is rebuilt from the last standby of the chain (B, or the cascaded D)
//! with `-R`; then every row is checked.

use crate::support::scenario::*;
use crate::support::*;
use gsbuild::plan::RecoveryStartFrom;

/// Rows of `tbl1` in insertion order.
fn rows(c: &Cluster) -> Vec<String> {
    c.psql("postgres", "SELECT d FROM tbl1 ORDER BY id")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Where `a` (a primary) has inserted WAL up to: with `synchronous_commit = off` the write
/// position may still be before the last commit record.
fn inserted(a: &Cluster) -> String {
    a.psql("postgres", "SELECT pg_current_wal_insert_lsn()")
}

/// `depth` standbys between the primary and the target (1: the source follows the primary; 2:
/// the source is a cascaded standby). With `restartpoint`, the source makes a restartpoint
/// after replaying the primary's last checkpoint before the split, so its files are as new as
/// the common redo point.
pub(crate) fn standby_source_redo(major: u32, depth: usize, restartpoint: bool) {
    standby_source_redo_with(major, depth, restartpoint, false)
}

/// [`standby_source_redo`]; with `killed`, the first run is the binary killed in the middle of
/// the copy, then the source makes its restartpoint (its redo point moves past the common
/// one), and a second run resumes: recovery must still start where the first run's copy
/// needed it to.
fn standby_source_redo_with(major: u32, depth: usize, restartpoint: bool, killed: bool) {
    let Some(pg) = install(major) else { return };
    let mut a = Cluster::init(&pg, "sbyredo-a", &InitOptions::default());
    a.start();
    a.psql_script(
        "postgres",
        "CREATE TABLE tbl1 (id serial PRIMARY KEY, d text);
         INSERT INTO tbl1 (d) VALUES ('in A');
         CHECKPOINT;",
    );
    // The chain A → B [→ D]: each a streaming standby of the one before.
    let mut chain: Vec<Cluster> = Vec::new();
    for i in 0..depth {
        let upstream = chain.last().unwrap_or(&a);
        let mut s = upstream.make_standby(&format!("sbyredo-s{i}"), false);
        s.start();
        s.wait_replay(&inserted(&a));
        chain.push(s);
    }
    let source = chain.last().expect("depth >= 1");
    let mut c = source.make_standby("sbyredo-c", false);
    c.start();
    a.psql_script(
        "postgres",
        "INSERT INTO tbl1 (d) VALUES ('in A, before promotion');
         CHECKPOINT;",
    );
    let lsn = inserted(&a);
    for s in &chain {
        s.wait_replay(&lsn);
    }
    c.wait_replay(&lsn);
    if restartpoint {
        // On a standby, CHECKPOINT makes a restartpoint at the last replayed checkpoint.
        source.psql("postgres", "CHECKPOINT");
    }
    c.promote();
    a.psql(
        "postgres",
        "INSERT INTO tbl1 (d) VALUES ('in A, after C was promoted')",
    );
    let lsn = inserted(&a);
    for s in &chain {
        s.wait_replay(&lsn);
    }
    c.psql(
        "postgres",
        "INSERT INTO tbl1 (d) VALUES ('in C, after C was promoted')",
    );
    c.stop();
    let source_redo = source.psql("postgres", "SELECT redo_lsn FROM pg_control_checkpoint()");
    if killed {
        let mut cmd = std::process::Command::new(gsbuild_bin());
        cmd.arg("-q")
            .arg("-D")
            .arg(c.datadir())
            .args(["--source-server", &source.connstr("postgres"), "-R", "-N"])
            .env("GSBUILD_FAILPOINT", "copy-chunk:2");
        let out = cmd.output().expect("run gsbuild");
        assert_eq!(out.status.code(), None, "killed by the failpoint");
        assert!(c.datadir().join("gsbuild.journal").is_file());
        source.psql("postgres", "CHECKPOINT");
        let later = source.psql("postgres", "SELECT redo_lsn FROM pg_control_checkpoint()");
        assert_ne!(later, source_redo, "the source made its restartpoint");
    }
    let mut opts = options(&c, source, SourceKind::Server);
    opts.write_recovery_conf = true;
    let (result, rep) = rebuild(opts);
    let (plan, outcome) = result.expect("rebuild from a standby");
    assert!(outcome.is_some(), "expected a rewind");
    if killed {
        assert!(rep.saw("resuming the interrupted rebuild"));
    }
    let wal = plan.wal.as_ref().expect("a WAL plan");
    let common = plan.checkpoint.as_ref().expect("a common checkpoint");
    let start = &wal.recovery_start;
    eprintln!(
        "source redo {source_redo}, common redo {}, recovery start {} ({:?})",
        common.redo, start.redo, start.from
    );
    assert_eq!(
        start.redo,
        source_redo.parse().expect("an LSN"),
        "recovery starts at the earlier of the source's and the common redo point"
    );
    if restartpoint {
        assert_eq!(start.from, RecoveryStartFrom::CommonCheckpoint);
    } else {
        assert_eq!(start.from, RecoveryStartFrom::SourceRestartpoint);
        assert!(start.redo < common.redo);
        if !killed {
            assert!(rep.saw("is older than the last common checkpoint"));
        }
    }
    assert!(wal.start <= start.redo);
    let label = std::fs::read_to_string(c.datadir().join("backup_label")).expect("backup_label");
    assert!(
        label.contains(&format!("START WAL LOCATION: {} ", start.redo))
            && label.contains(&format!("CHECKPOINT LOCATION: {}\n", start.checkpoint)),
        "backup_label names the recovery start:\n{label}"
    );
    restore_connection_conf(&c);
    c.start();
    let want = [
        "in A",
        "in A, before promotion",
        "in A, after C was promoted",
    ];
    c.wait_replay(&inserted(&a));
    assert_eq!(rows(&c), want, "rows after the rebuild");
    a.psql(
        "postgres",
        "INSERT INTO tbl1 (d) VALUES ('in A, after rewind')",
    );
    c.wait_replay(&inserted(&a));
    assert_eq!(rows(&c), [&want[..], &["in A, after rewind"]].concat());
    c.stop();
    verify_standby(&a, &mut c);
}

/// One `#[test]` per (major, depth, restartpoint).
macro_rules! standby_source_matrix {
    ($($major:literal => $m:ident),* $(,)?) => {
        $(
            mod $m {
                #[test] fn standby_no_restartpoint() { super::standby_source_redo($major, 1, false) }
                #[test] fn standby_restartpoint() { super::standby_source_redo($major, 1, true) }
                #[test] fn cascaded_no_restartpoint() { super::standby_source_redo($major, 2, false) }
                #[test] fn cascaded_restartpoint() { super::standby_source_redo($major, 2, true) }
            }
        )*
    };
}

standby_source_matrix!(14 => pg14, 15 => pg15, 16 => pg16, 17 => pg17, 18 => pg18);

/// A resumed run keeps the recovery start of the run it resumes.
#[test]
fn resumed_keeps_the_source_restartpoint_pg16() {
    standby_source_redo_with(16, 1, false, true)
}
