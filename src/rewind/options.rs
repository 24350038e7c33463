//! What a rebuild is asked to do: the [`Options`] a caller gives (`gsbuild -D`'s defaults from
//! [`Options::new`]), where the source is ([`SourceSpec`]) and how phase 4 finds the changed
//! blocks ([`ChangedBlocks`]). Read by phases 1–5; phases 6–7 get only what they need.

use crate::conninfo::Environment;
use crate::replication::ClientOptions;
use crate::target::SyncMethod;
use std::path::PathBuf;

/// Where to copy from.
#[derive(Clone, Debug)]
pub enum SourceSpec {
    /// A running server, by libpq connection string or URI.
    Server(String),
    /// A cleanly stopped data directory on this machine.
    Local(PathBuf),
    /// The target's own `primary_conninfo`.
    PrimaryConninfo,
}

/// Everything a rebuild needs to know. `Options::new` gives the defaults of `gsbuild -D`.
#[derive(Clone, Debug)]
pub struct Options {
    /// The target data directory.
    pub target: PathBuf,
    /// The source.
    pub source: SourceSpec,
    /// Build the plan and stop.
    pub dry_run: bool,
    /// Write `standby.signal` and `primary_conninfo` (needs a server source).
    pub write_recovery_conf: bool,
    /// Fetch missing target WAL with the target's `restore_command`.
    pub restore_target_wal: bool,
    /// The target's main configuration file, when outside the data directory.
    pub config_file: Option<PathBuf>,
    /// How to make the result durable.
    pub sync: SyncMethod,
    /// Run single-user crash recovery on a target that was not shut down cleanly.
    pub ensure_shutdown: bool,
    /// Keep the target's configuration files instead of copying the source's.
    pub keep_config: bool,
    /// Tablespace locations to relocate: a source tablespace at `.0` is created on the target
    /// at `.1` (like `pg_basebackup --tablespace-mapping`).
    pub tablespace_mapping: Vec<(PathBuf, PathBuf)>,
    /// The `postgres` executable for crash recovery (default: next to gsbuild, then `PATH`).
    pub postgres: Option<PathBuf>,
    /// Connection time limits.
    pub client: ClientOptions,
    /// Environment for connection defaults (`PGHOST`, `PGPASSFILE`, …).
    pub env: Environment,
    /// Connections (and threads) used to fetch files and blocks from a server source
    /// (`-j/--jobs`).
    pub jobs: usize,
    /// How the blocks the target changed after the divergence are found.
    pub changed_blocks: ChangedBlocks,
    /// Cross-check the WAL-derived block set against a scan of page LSNs (`--verify-blocks`);
    /// a page written after the divergence that the WAL did not name fails the rebuild.
    pub verify_blocks: bool,
    /// Copy every changed block, also those the replay of common history rewrites whole
    /// before anything reads them (`--copy-all-blocks`; see `walscan::Scanned::rewritten`).
    pub copy_rewritten_blocks: bool,
    /// Diagnose only (`-b check`): with `dry_run`, read the target as it is, even running or
    /// not shut down cleanly (nothing is written, so nothing needs it stopped).
    pub diagnose: bool,
    /// At most this many bytes per second fetched from the source, files, blocks and WAL
    /// together (`--max-rate`); `None`: as fast as it goes.
    pub max_rate: Option<u64>,
    /// Incremental, full, or incremental falling back to full (`-b`).
    pub build: BuildMode,
}

/// How the target is rebuilt (`-b`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildMode {
    /// Copy only what diverged (pg_rewind's method; the only one of its command line).
    #[default]
    Incremental,
    /// Copy every file of the source into the emptied target, keeping the target's
    /// configuration files (`gs_ctl build -b full`).
    Full,
    /// Incremental; full only when an incremental build cannot work, said in one line.
    Auto,
}

/// How phase 4 finds the blocks the target changed after the divergence point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangedBlocks {
    /// Decode the target's WAL from the common redo point (pg_rewind's method).
    #[default]
    Wal,
    /// Scan every relation page's LSN (`pd_lsn`): needs no target WAL after the common
    /// checkpoint, only checksums or `wal_log_hints` (docs/architecture.md).
    PageLsn,
}

impl Options {
    /// Defaults for rebuilding `target` from `source`.
    pub fn new(target: impl Into<PathBuf>, source: SourceSpec) -> Options {
        Options {
            target: target.into(),
            source,
            dry_run: false,
            write_recovery_conf: false,
            restore_target_wal: false,
            config_file: None,
            sync: SyncMethod::Fsync,
            ensure_shutdown: true,
            keep_config: true,
            tablespace_mapping: Vec::new(),
            postgres: None,
            client: ClientOptions::default(),
            env: Environment::from_process(),
            jobs: 4,
            changed_blocks: ChangedBlocks::Wal,
            verify_blocks: false,
            copy_rewritten_blocks: false,
            diagnose: false,
            max_rate: None,
            build: BuildMode::Incremental,
        }
    }
}
