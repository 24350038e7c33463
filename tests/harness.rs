//! Smoke test of the cluster harness itself: a primary, a standby, a promotion.

mod support;

use support::*;

#[test]
fn primary_standby_promote() {
    let Some(pg) = install(15) else { return };
    let mut primary = Cluster::init(&pg, "primary", &InitOptions::default());
    primary.start();
    primary.psql(
        "postgres",
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g",
    );
    let mut standby = primary.make_standby("standby", false);
    standby.start();
    let lsn = primary.psql("postgres", "SELECT pg_current_wal_insert_lsn()");
    standby.wait_replay(&lsn);
    assert_eq!(standby.psql("postgres", "SELECT count(*) FROM t"), "1000");
    standby.promote();
    standby.psql("postgres", "INSERT INTO t VALUES (0)");
    assert_eq!(standby.psql("postgres", "SELECT count(*) FROM t"), "1001");
    standby.stop();
    let cd = standby.controldata();
    assert_eq!(cd["Database cluster state"], "shut down");
    assert_eq!(cd["Latest checkpoint's TimeLineID"], "2");
}
