//! Blocks left to replay: a block the target changed whose first WAL record after the common
//! redo point is in common history and carries a full-page image that redo applies is not
//! copied — replay from that redo point rewrites it whole before anything reads it. Here every
//! page of a table is first changed in common history after the checkpoint (so with an image,
//! `full_page_writes` being on), then changed again on both sides after the split; the rebuild
//! leaves those pages to replay, and the rebuilt standby must hold every row of the source.
//! `--copy-all-blocks` (planned first, as a dry run) would copy exactly those blocks more.
//!
//! Deferred blocks: a block no record of common history names waits for the source's WAL, and
//! is not copied when the first record there that names it rewrites it whole
//! ([`source_wal_rewrites_blocks`]).

use crate::support::scenario::*;
use crate::support::*;
use gsbuild::plan::RecoveryStartFrom;

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
    assert_eq!(rows_of(&old, "t"), rows_of(&new, "t"));
}

/// The digest of table `name`.
fn rows_of(c: &Cluster, name: &str) -> String {
    c.psql(
        "postgres",
        &format!("SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM {name}"),
    )
}

/// Both sides change every page of `t` after the split, the source after a checkpoint (so its
/// first change of each page carries an image); only the target changes `w`. The pages of `t`
/// are left to replay, those of `w` are copied; the rebuilt standby holds every row.
pub(crate) fn source_wal_rewrites_blocks(major: u32) {
    let Some(pg) = install(major) else { return };
    let (mut old, new) = primary_and_standby(
        &pg,
        "srcreplay",
        |c| {
            c.psql_script(
                "postgres",
                "CREATE TABLE t (id int PRIMARY KEY, v text) WITH (fillfactor = 50);
                 INSERT INTO t SELECT g, 'initial' FROM generate_series(1, 20000) g;
                 CREATE TABLE w (id int PRIMARY KEY, v text) WITH (fillfactor = 50);
                 INSERT INTO w SELECT g, 'initial' FROM generate_series(1, 5000) g;",
            );
        },
        &[],
    );
    new.promote();
    new.psql_script(
        "postgres",
        "CHECKPOINT; UPDATE t SET v = 'on the source' WHERE id % 5 = 0;",
    );
    old.psql_script(
        "postgres",
        "UPDATE t SET v = 'on the target' WHERE id % 3 = 0;
         UPDATE w SET v = 'on the target' WHERE id % 3 = 0;",
    );
    old.stop();
    let mut all = options(&old, &new, SourceKind::Server);
    all.copy_rewritten_blocks = true;
    all.dry_run = true;
    let (all_plan, _) = rebuild(all).0.unwrap();
    assert_eq!(all_plan.totals.blocks_deferred, 0);
    let (plan, outcome) = rebuild(options(&old, &new, SourceKind::Server)).0.unwrap();
    let outcome = outcome.expect("expected a rewind");
    let start = &plan.wal.as_ref().expect("WAL plan").recovery_start;
    assert_eq!(start.from, RecoveryStartFrom::CommonCheckpoint);
    eprintln!(
        "deferred {} of {} changed blocks; left to replay {}; fetched {} B of files and blocks",
        plan.totals.blocks_deferred,
        plan.totals.blocks,
        outcome.blocks_left_to_replay,
        outcome.fetched_data_bytes
    );
    assert_eq!(plan.totals.blocks, all_plan.totals.blocks);
    // t has about 160 pages at fillfactor 50, w about 40: t's are rewritten by the source's
    // images, w's are copied.
    assert!(outcome.blocks_left_to_replay >= 100, "{outcome:?}");
    assert!(
        plan.totals.blocks_deferred >= outcome.blocks_left_to_replay + 30,
        "{:?} {outcome:?}",
        plan.totals
    );
    verify_standby(&new, &mut old);
    assert_eq!(rows_of(&old, "t"), rows_of(&new, "t"));
    assert_eq!(rows_of(&old, "w"), rows_of(&new, "w"));
}

#[test]
fn source_wal_rewrites_blocks_pg15() {
    source_wal_rewrites_blocks(15);
}

#[test]
fn changed_blocks_left_to_replay_pg15() {
    changed_blocks_left_to_replay(15);
}
