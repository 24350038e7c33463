//! Phase 7, the finish: `backup_label` (where recovery starts), the standby configuration with
//! `-R`, a sync of everything touched, and `pg_control` last — the source's, fetched now, made
//! to start archive recovery that must reach the end of the streamed WAL — after which the
//! journal goes. Only that last write makes the target startable again.

use super::prepared::Prepared;
use crate::control::{ControlFile, DbState};
use crate::error::{Error, Result};
use crate::flavor::ProductTable;
use crate::journal;
use crate::lsn::{Lsn, TimeLineId};
use crate::plan::RecoveryStart;
use crate::reporter::Reporter;
use crate::target::{SyncMethod, TargetDir};
use crate::transfer::Transferred;

/// Phase 7 after the transfer `t`.
pub(super) fn run(
    prep: &mut Prepared,
    target: &mut TargetDir,
    t: &Transferred,
    rep: &mut dyn Reporter,
) -> Result<()> {
    let table = prep.target.flavor().table();
    let seg_size = prep.target.seg_size();
    rep.step("creating backup label and updating control file");
    if let Some(wal) = &prep.plan.wal {
        let label = backup_label(&wal.recovery_start, seg_size, table);
        target.write_file_atomic("backup_label", label.as_bytes())?;
    }
    crate::failpoint::hit("backup-label");
    if prep.settings.write_recovery_conf {
        write_recovery_conf(prep, target, table)?;
    }
    let source_control = ControlFile::decode(&prep.source.fetch_file(table.control_file)?)
        .map_err(|kind| Error::Control {
            path: format!("source {}", table.control_file).into(),
            kind,
        })?;
    let new_control = new_control_file(source_control, t.end, t.end_tli).encode();
    write_product_files(target, table, &new_control)?;
    if prep.settings.sync != SyncMethod::None {
        rep.step("syncing target data directory");
    }
    target.sync()?;
    crate::failpoint::hit("synced");
    journal::finish(target, &new_control, |target| {
        complete_marker(target, table)
    })?;
    rep.info("Done!");
    Ok(())
}

/// What the product's server reads at its next start, written before `pg_control` (openGauss:
/// the backup copy of the control file it falls back to, made from the new one, and the file
/// that makes it rebuild its double-write files).
fn write_product_files(target: &mut TargetDir, table: &ProductTable, control: &[u8]) -> Result<()> {
    if let Some((path, len)) = table.control_backup {
        target.write_file_atomic(path, control.get(..len).unwrap_or(control))?;
    }
    if let Some(path) = table.double_write_rebuild {
        target.write_file_atomic(path, &[0u8; 8192])?;
    }
    Ok(())
}

/// The product's record that the build completed: its build marker renamed (openGauss:
/// `build_completed.start` → `.done`), durably. Nothing when there is no marker.
pub(super) fn complete_marker(target: &mut TargetDir, table: &ProductTable) -> Result<()> {
    if let Some((started, done)) = table.build_marker {
        if target.root().join(started).exists() {
            target.rename_durably(started, done)?;
        }
    }
    Ok(())
}

fn backup_label(start: &RecoveryStart, seg_size: u32, table: &ProductTable) -> String {
    let file = start.redo.segment(seg_size).file_name(start.tli, seg_size);
    let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S %Z");
    format!(
        "START WAL LOCATION: {} (file {file})\nCHECKPOINT LOCATION: {}\nBACKUP METHOD: {}\nBACKUP FROM: standby\nSTART TIME: {now}\n",
        start.redo, start.checkpoint, table.backup_method
    )
}

/// The source's control file, made to start archive recovery that must reach `end` on `tli`.
fn new_control_file(mut cf: ControlFile, end: Lsn, tli: TimeLineId) -> ControlFile {
    cf.state = DbState::InArchiveRecovery;
    cf.min_recovery_point = end;
    cf.min_recovery_point_tli = tli;
    cf
}

/// `-R`: the standby signal file, and `primary_conninfo` appended to the automatic
/// configuration file.
fn write_recovery_conf(
    prep: &Prepared,
    target: &mut TargetDir,
    table: &ProductTable,
) -> Result<()> {
    let Some(info) = &prep.conninfo else {
        return Err(Error::Usage(
            "--write-recovery-conf requires --source-server".into(),
        ));
    };
    target.write_file_atomic(table.standby_signal, b"")?;
    let auto = prep.target.path().join(table.auto_conf);
    let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "primary_conninfo = {}\n",
        crate::pgconf::quote(&info.to_conninfo_string())
    ));
    target.write_file_atomic(table.auto_conf, text.as_bytes())
}
