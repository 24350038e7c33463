//! What a product names and queries alike in all its majors: the [`ProductTable`] of each
//! product (directory and file names, the exclusion list, the SQL and replication command
//! texts, the files of the finish, the checks that differ). A flat table; see the parent
//! module for the per-major rows.

use crate::lsn::{Lsn, TimeLineId};

/// The product that wrote a data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Product {
    /// PostgreSQL.
    PostgreSql,
    /// openGauss (its `gs_ctl build` is what gsbuild replaces there).
    OpenGauss,
}

/// How a rebuild reaches a running source of the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceProtocol {
    /// libpq's protocol, at the connection string (or `primary_conninfo`) given.
    Libpq,
    /// openGauss's HA port, at the target's `replconninfoN` channels (or the host and port of
    /// the connection string given).
    HaChannels,
}

/// What a product names and queries the same way in all its majors.
pub struct ProductTable {
    /// How a running source is reached.
    pub source_protocol: SourceProtocol,
    /// The product's name for people.
    pub name: &'static str,
    /// The WAL directory inside the data directory.
    pub wal_dir: &'static str,
    /// The control file.
    pub control_file: &'static str,
    /// Size of the fixed WAL record header (`SizeOfXLogRecord`).
    pub record_header_len: u32,
    /// Directories whose contents are never copied and are removed from the target
    /// (`excludeDirContents` of pg_rewind and pg_basebackup).
    pub excluded_dir_contents: &'static [&'static str],
    /// Files never copied and removed from the target, matched by their whole path
    /// (`excludeFiles`); a name starting with [`ProductTable::excluded_prefix`] too.
    pub excluded_files: &'static [&'static str],
    /// Paths never copied and removed from the target when they contain one of these
    /// (openGauss's `excludeFiles` matches by substring).
    pub excluded_substrings: &'static [&'static str],
    /// File name prefix of excluded files (`pg_internal.init`, `pg_internal.init.1234`).
    pub excluded_prefix: &'static str,
    /// Whether the target's excluded paths are removed (pg_rewind) or left as they are
    /// (gs_rewind ignores them on both sides: the node keeps its postgresql.conf, state file,
    /// build marker and double-write files).
    pub remove_excluded: bool,
    /// Directory name prefix of temporary files, excluded at any depth.
    pub temp_prefix: &'static str,
    /// Configuration files a rebuild may keep from the target.
    pub config_files: &'static [&'static str],
    /// Settings of the SQL session on a source server: a rebuild must not be cut by the role's
    /// or database's timeouts, and must never write. (PostgreSQL: JIT off too, as the
    /// planner's estimates for the recursive listing cross the JIT thresholds, and compiling
    /// it costs the source 40 times what running it does: 240 ms against 6 ms on a scale-100
    /// pgbench cluster.)
    pub session_setup: &'static str,
    /// The whole data directory in one query: path, size, is-dir, tablespace location.
    pub list_files: &'static str,
    /// A batch of byte ranges: one row (path, begin, data) per range, NULL data when the file
    /// is gone.
    pub fetch_ranges: &'static str,
    /// One range of one file (`$1` path, `$2` offset, `$3` length; NULL when missing).
    pub read_file_range: &'static str,
    /// One whole (small) file (`$1` path).
    pub read_file: &'static str,
    /// A setting's value; no row when the role may not see it (superuser-only settings such
    /// as data_directory without pg_read_all_settings) or the name is unknown (`$1` name). A
    /// query that cannot fail: a least-privilege rebuild leaves no ERROR in the source's log.
    pub setting: &'static str,
    /// Whether the session's role may open a replication connection (superuser or
    /// REPLICATION): asked first, so that a role without it never makes the server log a
    /// FATAL for a refused walsender.
    pub role_can_replicate: &'static str,
    /// The WAL segment size in bytes.
    pub wal_segment_size: &'static str,
    /// The WAL position up to which the server's WAL is on disk (replay position of a
    /// standby, flush position of a primary) and the newest timeline with a history file.
    pub wal_position: &'static str,
    /// The replication command naming the system, its timeline and WAL position.
    pub identify_system: &'static str,
    /// The replication command fetching the history file of a timeline.
    pub timeline_history: fn(TimeLineId) -> String,
    /// The replication command streaming WAL from a position on a timeline.
    pub start_replication: fn(Lsn, TimeLineId) -> String,
    /// The finish's `backup_label` names this method.
    pub backup_method: &'static str,
    /// The file that makes a rebuilt target start as a standby (`-R`).
    pub standby_signal: &'static str,
    /// The configuration file `-R` appends `primary_conninfo` to.
    pub auto_conf: &'static str,
    /// The marker a build in progress leaves, and what it becomes once the build completed
    /// (openGauss's server refuses to start while the first exists).
    pub build_marker: Option<(&'static str, &'static str)>,
    /// A file whose presence makes the server rebuild its double-write files at the next
    /// start, written by the finish (openGauss: one zero page).
    pub double_write_rebuild: Option<&'static str>,
    /// A backup copy of the control file the server falls back to, and its length: the finish
    /// writes it from the new control file (openGauss: the first 512 bytes).
    pub control_backup: Option<(&'static str, usize)>,
    /// The file holding the pid of the build in progress (`0` when none), which the server
    /// tools read.
    pub build_pid_file: Option<&'static str>,
    /// The server's state file, which reports a build's progress to its tools.
    pub state_file: Option<&'static str>,
    /// The server control program (`pg_ctl`, `gs_ctl`).
    pub server_ctl: &'static str,
    /// Whether the target must log hint-bit changes (data checksums or `wal_log_hints`): a
    /// hint bit set without WAL would escape the changed-block scan (PostgreSQL's rule;
    /// openGauss's gs_rewind does not ask for it).
    pub requires_hint_logging: bool,
    /// Settings of a running source of which one must be `on` for every page's first change
    /// after a checkpoint to be WAL-logged whole.
    pub full_page_settings: &'static [&'static str],
    /// The file holding the node's term (openGauss fences failovers with it).
    pub term_file: Option<&'static str>,
    /// Whether the product's own rebuild tool's milestones are said at info level too, in its
    /// words (gs_rewind's `find common checkpoint`, `rewinding from checkpoint redo point`,
    /// `need to copy`), for the scripts and people used to them.
    pub tool_log_lines: bool,
    /// Whether a fresh rebuild refuses a target holding a `backup_label` (gs_rewind's check:
    /// the node has not recovered from its last build or backup yet).
    pub refuses_backup_label: bool,
    /// Whether a target that was not shut down cleanly can be taken through single-user crash
    /// recovery (`postgres --single`, pg_rewind's way); without it such a target is refused
    /// with what to do instead.
    pub single_user_recovery: bool,
}

const POSTGRESQL: ProductTable = ProductTable {
    source_protocol: SourceProtocol::Libpq,
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
    remove_excluded: true,
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
    setting: "SELECT setting FROM pg_catalog.pg_settings WHERE name = $1",
    role_can_replicate: "SELECT rolsuper OR rolreplication FROM pg_catalog.pg_roles \
         WHERE rolname = current_user",
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
    build_marker: None,
    double_write_rebuild: None,
    control_backup: None,
    build_pid_file: None,
    state_file: None,
    server_ctl: "pg_ctl",
    requires_hint_logging: true,
    full_page_settings: &["full_page_writes"],
    term_file: None,
    tool_log_lines: false,
    refuses_backup_label: false,
    single_user_recovery: true,
};

const OPENGAUSS: ProductTable = ProductTable {
    source_protocol: SourceProtocol::HaChannels,
    name: "openGauss",
    wal_dir: "pg_xlog",
    control_file: "global/pg_control",
    record_header_len: 32,
    excluded_dir_contents: &["pg_stat_tmp", "pg_notify", "pg_serial", "pg_snapshots"],
    excluded_files: &["tablespace_map", "gsbuild.pid"],
    // gs_rewind's list: what a node keeps of its own, and what a build writes (by substring:
    // `backup_label` covers `backup_label.old` and `full_backup_label`).
    excluded_substrings: &[
        "backup_label",
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
    remove_excluded: false,
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
    setting: "SELECT setting FROM pg_catalog.pg_settings WHERE name = $1",
    role_can_replicate: "SELECT rolsystemadmin OR rolreplication FROM pg_catalog.pg_roles \
         WHERE rolname = current_user",
    wal_segment_size: "SELECT 16777216::int8",
    wal_position: "SELECT gs_current_xlog_insert_end_location()",
    identify_system: "IDENTIFY_SYSTEM",
    timeline_history: |tli| format!("TIMELINE_HISTORY {tli}"),
    start_replication: |start, _| format!("START_REPLICATION {start}"),
    backup_method: "gs_rewind",
    standby_signal: "",
    auto_conf: "",
    build_marker: Some(("build_completed.start", "build_completed.done")),
    double_write_rebuild: Some("global/pg_dw.build"),
    control_backup: Some(("global/pg_control.backup", 512)),
    build_pid_file: Some("gs_build.pid"),
    state_file: Some("gaussdb.state"),
    server_ctl: "gs_ctl",
    requires_hint_logging: false,
    // gs_rewind's check: incremental checkpoints log each page's first change after a
    // checkpoint too.
    full_page_settings: &["full_page_writes", "enable_incremental_checkpoint"],
    term_file: Some("term_file"),
    tool_log_lines: true,
    refuses_backup_label: true,
    single_user_recovery: false,
};

impl Product {
    /// Every product.
    pub const ALL: [Product; 2] = [Product::PostgreSql, Product::OpenGauss];

    /// What the product names and queries alike in all its majors.
    pub fn table(self) -> &'static ProductTable {
        match self {
            Product::PostgreSql => &POSTGRESQL,
            Product::OpenGauss => &OPENGAUSS,
        }
    }
}
