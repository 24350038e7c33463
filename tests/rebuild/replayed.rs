//! Blocks left to replay: a block the target changed whose first WAL record after the common
//! redo point is in common history and carries a full-page image that redo applies is not
//! copied — replay from that redo point rewrites it whole before anything reads it. Here every
//! page of a table is first changed in common history after the checkpoint (so with an image,
//! `full_page_writes` being on), then changed again on both sides after the split; the rebuild
//! leaves those pages to replay, and the rebuilt standby must hold every row of the source.
//! `--copy-all-blocks` (planned first, as a dry run) would copy exactly those blocks more.

use crate::support::scenario::*;
use crate::support::*;
use gsbuild::plan::RecoveryStartFrom;

/// The table's rows, as one digest.
fn rows(c: &Cluster) -> String {
    c.psql(
        "postgres",
        "SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM t",
    )
}

pub(crate) fn changed_blocks_left_to_replay(major: u32) {
    let Some(pg) = install(major) else { return };
    let (mut old, new) = primary_and_standby(
        &pg,
        "replayed",
        |c| {
            c.psql_script(
                "postgres",
                "CREATE TABLE t (id int PRIMARY KEY, v text) WITH (fillfactor = 50);
                 INSERT INTO t SELECT g, 'initial' FROM generate_series(1, 20000) g;",
            );
        },
        &[],
    );
    // After the last common checkpoint (the standby's base backup made one), common history
    // changes every page of t: each first change after it carries an image.
    old.psql_script(
        "postgres",
        "CHECKPOINT; UPDATE t SET v = 'common history' WHERE id % 10 = 0;",
    );
    new.wait_replay(&current_lsn(&old));
    new.promote();
    new.psql_script(
        "postgres",
        "UPDATE t SET v = 'on the source' WHERE id % 7 = 0; CHECKPOINT;",
    );
    old.psql(
        "postgres",
        "UPDATE t SET v = 'on the target' WHERE id % 3 = 0",
    );
    old.stop();
    let mut all = options(&old, &new, SourceKind::Server);
    all.copy_rewritten_blocks = true;
    all.dry_run = true;
    let (r, _) = rebuild(all);
    let (all_plan, _) = r.unwrap();
    let (r, _) = rebuild(options(&old, &new, SourceKind::Server));
    let (plan, outcome) = r.unwrap();
    assert!(outcome.is_some(), "expected a rewind");
    let start = &plan.wal.as_ref().expect("WAL plan").recovery_start;
    assert_eq!(start.from, RecoveryStartFrom::CommonCheckpoint);
    eprintln!(
        "left to replay: {} blocks; copied {} B (with --copy-all-blocks {} B, {} blocks)",
        plan.totals.blocks_left_to_replay,
        plan.totals.bytes_to_copy,
        all_plan.totals.bytes_to_copy,
        all_plan.totals.blocks
    );
    assert_eq!(all_plan.totals.blocks_left_to_replay, 0);
    // Every page of t (about 160 at fillfactor 50) was first changed in common history.
    assert!(
        plan.totals.blocks_left_to_replay >= 100,
        "{:?}",
        plan.totals
    );
    assert_eq!(
        plan.totals.blocks + plan.totals.blocks_left_to_replay,
        all_plan.totals.blocks
    );
    verify_standby(&new, &mut old);
    assert_eq!(rows(&old), rows(&new));
}

#[test]
fn changed_blocks_left_to_replay_pg15() {
    changed_blocks_left_to_replay(15);
}
