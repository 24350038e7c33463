//! A workload that makes a real server write every kind of WAL the decoders must handle, then
//! switches timeline by promoting a standby, so that `pg_waldump` and `pg_controldata` can serve
//! as oracles for gsbuild's own readers.
//!
//! What it writes: ≥ 30 tables with btree indexes plus hash, gin, gist and brin indexes;
//! inserts, updates, HOT updates, deletes; full-page images compressed with every
//! `wal_compression` method the server supports (each after a CHECKPOINT so that the next change
//! of every page logs an image); a multi-MB logical message that crosses pages and segments
//! (clusters use 1 MiB segments); an XLOG_SWITCH; CREATE/DROP DATABASE (both strategies on 15+);
//! TRUNCATE, VACUUM, sequences, an unlogged and a temporary table. Then a standby is made,
//! promoted to timeline 2 and written to.

use super::{Cluster, InitOptions, PgInstall};

/// WAL segment size of the workload's clusters, in MiB: small, so that a few MB of WAL span
/// several segments and one record can cross a segment boundary cheaply.
pub const WAL_SEGSIZE_MB: u32 = 1;

/// Tables with a btree primary key created by the workload.
pub const TABLES: usize = 32;

/// The two stopped clusters left by [`run`].
pub struct Workload {
    /// The old primary, on timeline 1, stopped cleanly.
    pub primary: Cluster,
    /// The promoted standby, on timeline 2, stopped cleanly.
    pub standby: Cluster,
    /// `pg_current_wal_insert_lsn()` on the primary before the workload began (`X/X`).
    pub start_lsn: String,
    /// `pg_current_wal_insert_lsn()` on the standby after its own writes (`X/X`).
    pub standby_end_lsn: String,
    /// `wal_compression` values the workload used, in order.
    pub compression_methods: Vec<String>,
}

/// Creates a primary for `pg`, runs the workload, makes and promotes a standby, writes on it, and
/// stops both cleanly.
pub fn run(pg: &PgInstall) -> Workload {
    let opts = InitOptions {
        wal_segsize_mb: WAL_SEGSIZE_MB,
        ..InitOptions::default()
    };
    let mut primary = Cluster::init(pg, "wal-primary", &opts);
    primary.start();
    let start_lsn = primary.psql("postgres", "SELECT pg_current_wal_insert_lsn()");
    primary.psql_script("postgres", &schema_sql());
    let compression_methods = compression_methods(&primary);
    for (round, method) in compression_methods.iter().enumerate() {
        set_wal_compression(&primary, method);
        primary.psql_script("postgres", &fpi_round_sql(round + 1, method));
    }
    set_wal_compression(&primary, "off");
    primary.psql_script("postgres", &MISC_SQL.replace("@PAYLOAD_KB@", "3072"));
    primary.psql_script("postgres", &database_sql(pg.major));

    let mut standby = primary.make_standby("wal-standby", false);
    standby.start();
    primary.psql("postgres", "INSERT INTO t1 VALUES (100001, 'after backup')");
    let lsn = primary.psql("postgres", "SELECT pg_current_wal_insert_lsn()");
    standby.wait_replay(&lsn);
    standby.promote();
    standby.psql_script("postgres", STANDBY_SQL);
    let standby_end_lsn = standby.psql("postgres", "SELECT pg_current_wal_insert_lsn()");
    standby.stop();
    primary.stop();
    Workload {
        primary,
        standby,
        start_lsn,
        standby_end_lsn,
        compression_methods,
    }
}

/// The `wal_compression` settings to cycle through: 14 has a boolean (pglz when on); 15+ list
/// the methods this build supports (lz4 and zstd are build options).
fn compression_methods(c: &Cluster) -> Vec<String> {
    let vals = c.psql(
        "postgres",
        "SELECT coalesce(array_to_string(enumvals, ','), '') FROM pg_settings \
         WHERE name = 'wal_compression'",
    );
    if vals.is_empty() {
        return vec!["on".into()];
    }
    vals.split(',')
        .filter(|v| matches!(*v, "pglz" | "lz4" | "zstd"))
        .map(String::from)
        .collect()
}

/// Sets `wal_compression` and waits until new sessions see it: a new backend inherits the
/// postmaster's settings, so once one session shows the value every later session uses it.
fn set_wal_compression(c: &Cluster, value: &str) {
    c.psql(
        "postgres",
        &format!("ALTER SYSTEM SET wal_compression = '{value}'"),
    );
    c.psql("postgres", "SELECT pg_reload_conf()");
    let want = if value == "on" { "pglz" } else { value };
    for _ in 0..100 {
        let now = c.psql("postgres", "SHOW wal_compression");
        if now == value || now == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("wal_compression did not become {value}");
}

/// Tables, indexes of every access method, a sequence and first rows.
fn schema_sql() -> String {
    format!(
        "
DO $$
BEGIN
  FOR i IN 1..{TABLES} LOOP
    EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text, n int DEFAULT 0) \
                    WITH (fillfactor = 70)', i);
    EXECUTE format('CREATE INDEX t%s_v ON t%s (v)', i, i);
    EXECUTE format('INSERT INTO t%s SELECT g, md5(g::text) FROM generate_series(1, 200) g', i);
  END LOOP;
END $$;
CREATE TABLE multi (id int, h int, tags int[], p point, ts int);
CREATE INDEX multi_hash ON multi USING hash (h);
CREATE INDEX multi_gin ON multi USING gin (tags);
CREATE INDEX multi_gist ON multi USING gist (p);
CREATE INDEX multi_brin ON multi USING brin (ts);
INSERT INTO multi SELECT g, g % 17, ARRAY[g % 5, g % 7], point(g, g % 13), g
  FROM generate_series(1, 2000) g;
CREATE SEQUENCE seq1;
SELECT nextval('seq1') FROM generate_series(1, 100);
"
    )
}

/// Changes every table after a CHECKPOINT, so that each first touch of a page logs a
/// full-page image compressed with `method`: inserts, updates (HOT ones: only the unindexed
/// `n`), deletes, and index changes of every kind. `round` keeps inserted keys unique.
fn fpi_round_sql(round: usize, method: &str) -> String {
    format!(
        "
CHECKPOINT;
DO $$
BEGIN
  FOR i IN 1..{TABLES} LOOP
    EXECUTE format('UPDATE t%s SET n = n + 1 WHERE id %% 10 = 1', i);
    EXECUTE format('UPDATE t%s SET v = v || ''-{method}'' WHERE id %% 25 = 2', i);
    EXECUTE format('DELETE FROM t%s WHERE id %% 50 = 3', i);
    EXECUTE format('INSERT INTO t%s SELECT g, ''{method}'' FROM generate_series({round}000, {round}010) g', i);
  END LOOP;
END $$;
UPDATE multi SET h = h + 1, tags = tags || 9, p = point(p[0] + 1, p[1]) WHERE id % 20 = 0;
INSERT INTO multi SELECT g, g, ARRAY[g], point(g, g), g FROM generate_series(3000, 3050) g;
SELECT nextval('seq1');
"
    )
}

/// Records of many kinds: a large logical message (`@PAYLOAD_KB@` KiB, crossing pages and
/// segments), toasted values, TRUNCATE, VACUUM, an unlogged and a temporary table, a WAL switch
/// and a checkpoint.
const MISC_SQL: &str = "
SELECT pg_logical_emit_message(false, 'gsbuild', repeat('x', @PAYLOAD_KB@ * 1024));
CREATE TABLE big (id int, b text);
ALTER TABLE big ALTER COLUMN b SET STORAGE EXTERNAL;
INSERT INTO big SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, 40000) g;
CREATE UNLOGGED TABLE unlogged1 (id int PRIMARY KEY, v text);
INSERT INTO unlogged1 SELECT g, 'u' FROM generate_series(1, 100) g;
CREATE TEMP TABLE temp1 AS SELECT g AS id FROM generate_series(1, 100) g;
UPDATE temp1 SET id = id + 1;
TRUNCATE t2;
INSERT INTO t2 SELECT g, 'again' FROM generate_series(1, 50) g;
DELETE FROM t3 WHERE id < 150;
VACUUM t3;
VACUUM (FREEZE) multi;
SELECT pg_switch_wal();
INSERT INTO t4 VALUES (9999, 'after switch');
CHECKPOINT;
";

/// CREATE and DROP DATABASE with every strategy the major has.
fn database_sql(major: u32) -> String {
    if major >= 15 {
        "
CREATE DATABASE db_file_copy STRATEGY = FILE_COPY;
CREATE DATABASE db_wal_log STRATEGY = WAL_LOG;
DROP DATABASE db_file_copy;
DROP DATABASE db_wal_log;
"
        .into()
    } else {
        "
CREATE DATABASE db_file_copy;
DROP DATABASE db_file_copy;
"
        .into()
    }
}

/// Writes on the promoted standby, so that timeline 2 has records of its own, images included.
const STANDBY_SQL: &str = "
CHECKPOINT;
UPDATE t5 SET n = n + 100;
INSERT INTO t6 SELECT g, 'tli2' FROM generate_series(5000, 5100) g;
DELETE FROM t7 WHERE id % 3 = 0;
UPDATE multi SET tags = tags || 2 WHERE id % 50 = 0;
CHECKPOINT;
";
