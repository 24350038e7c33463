//! Phase 4, every block the target changed since the common redo point: from its WAL, read
//! forward from the redo point to its end of WAL (pg_rewind's method, [`scan_wal`]), or, with
//! `--changed-blocks=page-lsn`, from the page LSNs of its relation files once both listings
//! are known ([`complete`]); `--verify-blocks` checks the first against the second.

use super::divergence::Common;
use super::options::{ChangedBlocks, Options};
use super::plan::Listing;
use crate::cluster::TargetCluster;
use crate::error::Result;
use crate::flavor::Product;
use crate::plan::RecoveryStartFrom;
use crate::reporter::Reporter;
use crate::walscan;
use crate::xlog::readahead::ReadAhead;
use crate::xlog::WalReader;
use crate::{pagelsn, walscan::ChangedBlocks as BlockSet};

/// The blocks the target's WAL names from the common redo point to its end of WAL, and those
/// of them replay rewrites ([`walscan::Scanned`]), or `None` with `--changed-blocks=page-lsn`
/// (the page LSNs decide in [`complete`]).
pub(super) fn scan_wal(
    target: &mut TargetCluster,
    common: &Common,
    restore: Option<String>,
    opts: &Options,
    rep: &mut dyn Reporter,
) -> Result<Option<walscan::Scanned>> {
    if opts.changed_blocks == ChangedBlocks::PageLsn {
        return Ok(None);
    }
    rep.step("reading WAL in target");
    let redo = common.checkpoint.checkpoint.redo;
    let histories = &common.histories;
    let end = histories.target_end;
    let seg_size = target.seg_size();
    // Forward through every segment to the end: the next one is read while one is decoded.
    let tsdir = target.tablespace_dir()?;
    let dir = target.wal_dir(histories.target.clone(), restore);
    let mut wal = WalReader::new(
        ReadAhead::new(dir, end.segment(seg_size)),
        seg_size,
        Some(target.system_identifier()),
    )
    .forward_only();
    let scanned = walscan::scan_blocks(&mut wal, (redo, end), Some(common.divergence.lsn), &tsdir)?;
    crate::failpoint::hit("wal-scan");
    rep.debug(&format!(
        "read {} WAL records from {redo} to {end}",
        scanned.records
    ));
    let restored = target.restored_segments();
    if !restored.is_empty() {
        rep.info(&format!(
            "restored {} WAL segment(s) of the target with restore_command: {}",
            restored.len(),
            restored.join(", ")
        ));
    }
    Ok(Some(scanned))
}

/// What phase 4 decided of the target's changed blocks once both listings are known.
pub(super) struct Decided {
    /// The blocks to copy ([`complete`]), deferred ones among them.
    pub changed: BlockSet,
    /// How many changed blocks are left to replay ([`leave_to_replay`]).
    pub replayed: u64,
    /// The blocks of `changed` whose copy waits for the source's WAL ([`deferrable`]).
    pub deferred: BlockSet,
}

/// The blocks to copy once both listings are known ([`complete`]), how many changed blocks
/// are left to replay ([`leave_to_replay`]) and which wait for the source's WAL
/// ([`deferrable`]).
pub(super) fn finish(
    target: &mut TargetCluster,
    common: &Common,
    listings: (&Listing, &Listing),
    scanned: Option<walscan::Scanned>,
    opts: &Options,
    rep: &mut dyn Reporter,
) -> Result<Decided> {
    let (from_wal, rewritten, after) = match scanned {
        Some(s) => (Some(s.changed), s.rewritten, s.after_divergence),
        None => (None, BlockSet::default(), BlockSet::default()),
    };
    let mut changed = complete(target, common, listings, from_wal, opts, rep)?;
    let replayed = leave_to_replay(&mut changed, &rewritten, common, opts, rep);
    let deferred = match target.flavor().product() {
        Product::PostgreSql => deferrable(&changed, after, common, opts),
        Product::OpenGauss => BlockSet::default(),
    };
    Ok(Decided {
        changed,
        replayed,
        deferred,
    })
}

/// The changed blocks that no record of common history names (`after`,
/// [`walscan::Scanned::after_divergence`]): replay reaches them first in the source's WAL, and
/// when that first record rewrites the page, the copy is not needed either. Their copy waits
/// until the streamed WAL has shown it (`transfer::ReplayWatch`). The same conditions as
/// [`leave_to_replay`]; PostgreSQL's WAL only.
fn deferrable(
    changed: &BlockSet,
    mut after: BlockSet,
    common: &Common,
    opts: &Options,
) -> BlockSet {
    if opts.copy_rewritten_blocks || common.start.from != RecoveryStartFrom::CommonCheckpoint {
        return BlockSet::default();
    }
    after.retain(|path, blocks| match changed.get(path) {
        Some(c) => {
            blocks.retain(|b| c.contains(b));
            !blocks.is_empty()
        }
        None => false,
    });
    after
}

/// Removes from `changed` the blocks replay rewrites whole before anything reads them
/// (`rewritten`, [`walscan::Scanned::rewritten`]) and returns how many. Only when replay
/// starts where the scan did (the common checkpoint's redo point: a standby source's earlier
/// restartpoint would replay records before it that read the target's page) and unless
/// `--copy-all-blocks`.
fn leave_to_replay(
    changed: &mut BlockSet,
    rewritten: &BlockSet,
    common: &Common,
    opts: &Options,
    rep: &mut dyn Reporter,
) -> u64 {
    if opts.copy_rewritten_blocks || common.start.from != RecoveryStartFrom::CommonCheckpoint {
        return 0;
    }
    let mut left = 0u64;
    for (path, blocks) in rewritten {
        if let Some(c) = changed.get_mut(path) {
            let before = c.len();
            c.retain(|b| !blocks.contains(b));
            left += (before - c.len()) as u64;
        }
    }
    changed.retain(|_, c| !c.is_empty());
    if left > 0 {
        rep.debug(&format!(
            "{left} changed blocks left to replay: their first WAL record after the redo point carries a full-page image (or initialises the page)"
        ));
    }
    left
}

/// The changed blocks once both listings are known: the WAL's, checked against page LSNs with
/// `--verify-blocks`; or found from page LSNs.
fn complete(
    target: &mut TargetCluster,
    common: &Common,
    listings: (&Listing, &Listing),
    from_wal: Option<BlockSet>,
    opts: &Options,
    rep: &mut dyn Reporter,
) -> Result<BlockSet> {
    let tsdir = target.tablespace_dir()?;
    let input = pagelsn::ScanInput {
        target: target.path(),
        source_files: listings.0,
        target_files: listings.1,
        tablespace_dir: &tsdir,
        divergence: common.divergence.lsn,
        redo: common.checkpoint.checkpoint.redo,
    };
    match from_wal {
        Some(changed) => {
            if opts.verify_blocks {
                pagelsn::verify_wal_blocks(&input, &changed, rep)?;
            }
            Ok(changed)
        }
        None => {
            let changed = pagelsn::page_lsn_blocks(&input, rep)?;
            crate::failpoint::hit("wal-scan");
            Ok(changed)
        }
    }
}
