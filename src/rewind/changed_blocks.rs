//! Phase 4, every block the target changed since the common redo point: from its WAL, read
//! forward from the redo point to its end of WAL (pg_rewind's method, [`scan_wal`]), or, with
//! `--changed-blocks=page-lsn`, from the page LSNs of its relation files once both listings
//! are known ([`complete`]); `--verify-blocks` checks the first against the second.

use super::divergence::Common;
use super::options::{ChangedBlocks, Options};
use super::plan::Listing;
use crate::cluster::TargetCluster;
use crate::error::Result;
use crate::reporter::Reporter;
use crate::walscan;
use crate::xlog::readahead::ReadAhead;
use crate::xlog::WalReader;
use crate::{pagelsn, walscan::ChangedBlocks as BlockSet};

/// The blocks the target's WAL names from the common redo point to its end of WAL, or `None`
/// with `--changed-blocks=page-lsn` (the page LSNs decide in [`complete`]).
pub(super) fn scan_wal(
    target: &mut TargetCluster,
    common: &Common,
    restore: Option<String>,
    opts: &Options,
    rep: &mut dyn Reporter,
) -> Result<Option<BlockSet>> {
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
    let (changed, records) = walscan::scan_changed_blocks(&mut wal, redo, end, &tsdir)?;
    crate::failpoint::hit("wal-scan");
    rep.debug(&format!("read {records} WAL records from {redo} to {end}"));
    let restored = target.restored_segments();
    if !restored.is_empty() {
        rep.info(&format!(
            "restored {} WAL segment(s) of the target with restore_command: {}",
            restored.len(),
            restored.join(", ")
        ));
    }
    Ok(Some(changed))
}

/// The changed blocks once both listings are known: the WAL's, checked against page LSNs with
/// `--verify-blocks`; or found from page LSNs.
pub(super) fn complete(
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
