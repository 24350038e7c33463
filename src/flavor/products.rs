//! The product tables: what PostgreSQL and openGauss name and query alike in all their
//! majors (see [`super::ProductTable`]).

use super::ProductTable;

pub(super) const POSTGRESQL: ProductTable = ProductTable {
    name: "PostgreSQL",
    wal_dir: "pg_wal",
    control_file: "global/pg_control",
    record_header_len: 24,
    excluded_dir_contents: &[
        "pg_stat_tmp",
        "pg_replslot",
        "pg_dynshmem",
        "pg_notify",
        "pg_serial",
        "pg_snapshots",
        "pg_subtrans",
    ],
    excluded_files: &[
        "postgresql.auto.conf.tmp",
        "current_logfiles.tmp",
        "backup_label",
        "tablespace_map",
        "backup_manifest",
        "postmaster.pid",
        "postmaster.opts",
    ],
    excluded_substrings: &[],
    excluded_prefix: "pg_internal.init",
    temp_prefix: "pgsql_tmp",
    config_files: &[
        "postgresql.conf",
        "postgresql.auto.conf",
        "pg_hba.conf",
        "pg_ident.conf",
    ],
    session_setup: "SET statement_timeout = 0; SET lock_timeout = 0; \
         SET idle_in_transaction_session_timeout = 0; SET default_transaction_read_only = on; \
         SET search_path = pg_catalog; SET jit = off",
    // `pg_stat_file(…, true)` gives NULL for a file that vanished between the two calls; such
    // rows are skipped. Tablespace symlinks are recognised by their OID in `pg_tablespace`.
    list_files: "\
WITH RECURSIVE files (path, filename, size, isdir) AS (
    SELECT '' AS path, fn AS filename, st.size, st.isdir
      FROM pg_ls_dir('.', true, false) AS fn, pg_stat_file(fn, true) AS st
  UNION ALL
    SELECT parent.path || parent.filename || '/', fn, st.size, st.isdir
      FROM files AS parent,
           pg_ls_dir(parent.path || parent.filename, true, false) AS fn,
           pg_stat_file(parent.path || parent.filename || '/' || fn, true) AS st
     WHERE parent.isdir
)
SELECT path || filename, size, isdir, pg_tablespace_location(t.oid)
  FROM files LEFT JOIN pg_tablespace t ON files.path = 'pg_tblspc/' AND t.oid::text = files.filename
 WHERE size IS NOT NULL",
    fetch_ranges: "SELECT path, begin, pg_read_binary_file(path, begin, len, true) \
         FROM unnest($1::text[], $2::int8[], $3::int4[]) AS x(path, begin, len)",
    read_file_range: "SELECT pg_read_binary_file($1, $2, $3, true)",
    read_file: "SELECT pg_read_binary_file($1)",
    setting: "SELECT current_setting($1, true)",
    wal_segment_size: "SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'",
    wal_position: "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
         ELSE pg_current_wal_flush_lsn() END::text, \
         (SELECT max(('x' || substr(f, 1, 8))::bit(32)::int) FROM pg_ls_dir('pg_wal', true, false) f \
           WHERE f ~ '^[0-9A-F]{8}\\.history$')",
    identify_system: "IDENTIFY_SYSTEM",
    timeline_history: |tli| format!("TIMELINE_HISTORY {tli}"),
    start_replication: |start, tli| format!("START_REPLICATION PHYSICAL {start} TIMELINE {tli}"),
    backup_method: "pg_rewind",
    standby_signal: "standby.signal",
    auto_conf: "postgresql.auto.conf",
};

pub(super) const OPENGAUSS: ProductTable = ProductTable {
    name: "openGauss",
    wal_dir: "pg_xlog",
    control_file: "global/pg_control",
    record_header_len: 32,
    excluded_dir_contents: &["pg_stat_tmp", "pg_notify", "pg_serial", "pg_snapshots"],
    excluded_files: &["backup_label", "tablespace_map", "gsbuild.pid"],
    // gs_rewind's list: what a node keeps of its own, and what a build writes.
    excluded_substrings: &[
        "postmaster.pid",
        "postmaster.opts",
        "postgresql.conf",
        "pg_ctl.lock",
        "build_completed.start",
        "build_completed.done",
        "gs_build.pid",
        "gaussdb.state",
        "pg_replslot",
        "pg_errorinfo",
        "pg_location",
        "pg_copydir",
        "config_exec_params",
        "delay_xlog_recycle",
        "delay_ddl_recycle",
        "pg_rewind_bak",
        "pg_rewind_filemap",
        "barrier_lsn",
        "pg_dw",
        "server.crt",
        "server.key",
        "cacert.pem",
        "client.crt",
        "client.key",
        "pg_hba.conf.old",
        "rewind_lable",
    ],
    excluded_prefix: "pg_internal.init",
    temp_prefix: "pgsql_tmp",
    config_files: &["pg_hba.conf", "pg_ident.conf"],
    session_setup:
        "SET xc_maintenance_mode to on; SET session_timeout = 0; SET statement_timeout = 0",
    list_files: "\
SELECT path, size, isdir, pg_tablespace_location(pg_tablespace.oid) AS link_target
  FROM (SELECT * FROM pg_stat_file_recursive('.')) AS files
  LEFT OUTER JOIN pg_tablespace ON files.path ~ '^pg_tblspc/' AND oid::text = files.filename",
    // Set-returning functions in the select list advance together (openGauss has no
    // multi-argument unnest): one row per range, in order.
    fetch_ranges: "SELECT path, begin, pg_read_binary_file(path, begin, len, true) \
         FROM (SELECT unnest($1::text[]) AS path, unnest($2::int8[]) AS begin, \
         unnest($3::int8[]) AS len) AS x",
    read_file_range: "SELECT pg_read_binary_file($1, $2, $3, true)",
    read_file: "SELECT pg_read_binary_file($1)",
    setting: "SELECT current_setting($1)",
    wal_segment_size: "SELECT 16777216::int8",
    wal_position: "SELECT gs_current_xlog_insert_end_location()",
    identify_system: "IDENTIFY_SYSTEM",
    timeline_history: |tli| format!("TIMELINE_HISTORY {tli}"),
    start_replication: |start, _| format!("START_REPLICATION {start}"),
    backup_method: "gs_rewind",
    standby_signal: "",
    auto_conf: "",
};
