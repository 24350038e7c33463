//! Between the phases: what phases 0–5 hand to phases 6–7 ([`Prepared`]: the plan, the open
//! source, the target and the few settings the execution needs) and what a finished rebuild
//! did ([`Outcome`]).

use super::connect::Connected;
use super::options::Options;
use crate::cluster::TargetCluster;
use crate::conninfo::ConnInfo;
use crate::journal::{CheckedRecord, Journal};
use crate::lsn::{Lsn, TimeLineId};
use crate::plan::Plan;
use crate::source::Source;
use crate::target::SyncMethod;
use crate::timeline::TimeLineHistoryEntry;
use std::path::PathBuf;

/// A plan and what is needed to carry it out.
pub struct Prepared {
    /// The plan.
    pub plan: Plan,
    pub(crate) source: Box<dyn Source + Send>,
    pub(crate) target: TargetCluster,
    pub(crate) settings: RunSettings,
    pub(crate) source_history: Vec<TimeLineHistoryEntry>,
    pub(crate) conninfo: Option<ConnInfo>,
    /// The record of common history compared with the source (kept in the journal).
    pub(crate) checked: CheckedRecord,
    /// The journal of the interrupted rebuild this run resumes.
    pub(crate) resume: Option<Box<Journal>>,
}

impl Prepared {
    /// Whether this run resumes an interrupted rebuild.
    pub fn resumes(&self) -> bool {
        self.resume.is_some()
    }

    /// `plan`, which needs no rewind, and the source of `conn`.
    pub(super) fn nothing_to_do(
        plan: Plan,
        target: TargetCluster,
        conn: Connected,
        opts: &Options,
    ) -> Prepared {
        Prepared {
            plan,
            source: conn.source,
            target,
            settings: RunSettings::of(opts),
            source_history: Vec::new(),
            conninfo: conn.conninfo,
            checked: CheckedRecord {
                lsn: Lsn::INVALID,
                crc: 0,
            },
            resume: None,
        }
    }
}

/// What phases 6–7 take from the options.
pub(crate) struct RunSettings {
    /// Write nothing (`--dry-run`).
    pub dry_run: bool,
    /// How the result is made durable.
    pub sync: SyncMethod,
    /// `-R`.
    pub write_recovery_conf: bool,
    /// `--tablespace-mapping`.
    pub tablespace_mapping: Vec<(PathBuf, PathBuf)>,
    /// `--max-rate`, bytes per second.
    pub max_rate: Option<u64>,
}

impl RunSettings {
    /// The settings of `opts`.
    pub fn of(opts: &Options) -> RunSettings {
        RunSettings {
            dry_run: opts.dry_run,
            sync: opts.sync,
            write_recovery_conf: opts.write_recovery_conf,
            tablespace_mapping: opts.tablespace_mapping.clone(),
            max_rate: opts.max_rate,
        }
    }
}

/// What a finished rebuild did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// Bytes written to the target (files, blocks, WAL, labels, journal, control file).
    pub bytes_written: u64,
    /// WAL bytes streamed from the source.
    pub wal_bytes: u64,
    /// Bytes fetched from the source: files and blocks, and WAL.
    pub bytes_fetched: u64,
    /// Bytes of files and blocks fetched from the source (WAL not included).
    pub fetched_data_bytes: u64,
    /// Bytes of WAL fetched from the source.
    pub fetched_wal_bytes: u64,
    /// WAL position recovery must reach before the target is consistent.
    pub min_recovery_point: Lsn,
    /// Its timeline.
    pub min_recovery_tli: TimeLineId,
    /// Files and directories fsynced.
    pub synced: usize,
    /// Of the plan's deferred blocks, those not copied because the source's WAL rewrites them
    /// whole before anything reads them (`transfer::watch`).
    pub blocks_left_to_replay: u64,
}
