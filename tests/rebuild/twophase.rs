//! Prepared transactions on both sides of the split. A transaction prepared on the source after
//! the split has its state in `pg_twophase` once the source checkpoints, and its PREPARE record
//! in the WAL recovery replays. Recovery discards a state file of a transaction at or beyond
//! the start checkpoint's next xid (replay prepares it again); PostgreSQL 17 and 18 discard it
//! under a wrong name and then skip the PREPARE record, losing the transaction. The rebuild
//! therefore neither copies nor keeps such a file; a file of a transaction prepared before the
//! split is copied as any other.

use crate::support::scenario::*;
use crate::support::*;
use gsbuild::filemap::Action;

/// Prepared transactions of `c`, by gid.
fn prepared(c: &Cluster) -> String {
    c.psql("postgres", "SELECT gid FROM pg_prepared_xacts ORDER BY 1")
}

/// A transaction prepared before the split and one prepared on the new primary after it, both
/// in `pg_twophase` on the source; the old primary is rebuilt, replays, is promoted and must
/// have both, and commit both.
pub(crate) fn prepared_on_both_sides(major: u32, kind: SourceKind) {
    let Some(pg) = install(major) else { return };
    let mut old = Cluster::init(&pg, "twophase-old", &InitOptions::default());
    old.append_conf("max_prepared_transactions = 5\n");
    old.start();
    old.psql_script(
        "postgres",
        "CREATE TABLE t (d text);
         INSERT INTO t VALUES ('committed before the split');
         BEGIN; INSERT INTO t VALUES ('prepared before the split');
         PREPARE TRANSACTION 'before_split';
         CHECKPOINT;",
    );
    let mut new = old.make_standby("twophase-new", false);
    new.start();
    new.wait_replay(&current_lsn(&old));
    new.promote();
    // Other transactions first: the prepared one's xid is then beyond (not equal to) the
    // common checkpoint's next xid, the case 17 and 18 get wrong.
    new.psql_script(
        "postgres",
        "SELECT pg_current_xact_id(); SELECT pg_current_xact_id();
         BEGIN; INSERT INTO t VALUES ('prepared after the split');
         PREPARE TRANSACTION 'after_split';
         INSERT INTO t VALUES ('committed after the split');
         CHECKPOINT;",
    );
    old.psql(
        "postgres",
        "INSERT INTO t VALUES ('diverged on the old primary')",
    );
    old.stop();
    if kind == SourceKind::Local {
        new.stop();
    }
    let (r, _rep) = rebuild(options(&old, &new, kind));
    let (plan, outcome) = r.unwrap();
    assert!(outcome.is_some(), "expected a rewind");
    let state: Vec<_> = plan
        .files
        .iter()
        .filter(|f| f.path.starts_with("pg_twophase/"))
        .map(|f| (f.path.as_str(), f.action))
        .collect();
    eprintln!("pg_twophase in the plan: {state:?}");
    // The source has both files; the one prepared after the split is left to replay (an
    // entry with nothing to do is not listed).
    assert_eq!(state.len(), 1, "{state:?}");
    assert_eq!(state[0].1, Action::Copy, "{state:?}");
    let source_files = std::fs::read_dir(new.datadir().join("pg_twophase"))
        .unwrap()
        .count();
    assert_eq!(source_files, 2, "the source has both state files");
    let on_disk = std::fs::read_dir(old.datadir().join("pg_twophase"))
        .unwrap()
        .count();
    assert_eq!(on_disk, 1, "only the state file from before the split");
    if kind == SourceKind::Local {
        new.start();
        configure_standby(&old, &new);
    }
    verify_standby(&new, &mut old);
    old.promote();
    assert_eq!(prepared(&old), "after_split\nbefore_split");
    old.psql_script(
        "postgres",
        "COMMIT PREPARED 'before_split'; COMMIT PREPARED 'after_split';",
    );
    assert_eq!(
        old.psql("postgres", "SELECT d FROM t ORDER BY d"),
        "committed after the split\ncommitted before the split\n\
         prepared after the split\nprepared before the split"
    );
}

#[test]
fn prepared_on_both_sides_pg15_server() {
    prepared_on_both_sides(15, SourceKind::Server);
}

#[test]
fn prepared_on_both_sides_pg17_local() {
    prepared_on_both_sides(17, SourceKind::Local);
}
