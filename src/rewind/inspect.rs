//! Phase 1, the target as it is: not running, its control file valid, shut down cleanly — a
//! target that was not is first taken through single-user crash recovery, as pg_rewind does
//! (the one write of phases 1–5, which `ensure_shutdown = false` refuses). A diagnosis
//! (`-b check`) reads it as it is.

use super::options::Options;
use crate::cluster::TargetCluster;
use crate::control::DbState;
use crate::error::{Error, Result};
use crate::pgserver;
use crate::reporter::Reporter;

/// The target, stopped and shut down cleanly.
pub(super) fn target(opts: &Options, rep: &mut dyn Reporter) -> Result<TargetCluster> {
    if opts.diagnose && opts.dry_run {
        let target = TargetCluster::open(&opts.target, opts.config_file.as_deref())?;
        check_geometry(&target)?;
        return Ok(target);
    }
    if pgserver::is_running(&opts.target) {
        return Err(Error::Incompatible(format!(
            "target server must be shut down cleanly (a postmaster is running on \"{}\")",
            opts.target.display()
        )));
    }
    let target = TargetCluster::open(&opts.target, opts.config_file.as_deref())?;
    check_geometry(&target)?;
    check_backup_label(&target)?;
    let state = target.control().state;
    if shut_down(state) {
        return Ok(target);
    }
    if !opts.ensure_shutdown {
        return Err(Error::Incompatible(format!(
            "target server must be shut down cleanly (state \"{}\")",
            state.as_str()
        )));
    }
    if !target.flavor().table().single_user_recovery {
        return Err(Error::Incompatible(format!(
            "target server must be shut down cleanly (state \"{}\"): start it and stop it with {}, then run again",
            state.as_str(),
            target.flavor().table().server_ctl
        )));
    }
    if opts.dry_run {
        return Err(Error::Incompatible(format!(
            "target server must be shut down cleanly (state \"{}\"); a dry run does not run crash recovery, which writes to the target",
            state.as_str()
        )));
    }
    let postgres = pgserver::find_postgres(opts.postgres.as_deref(), target.flavor().number())?;
    rep.info(&format!(
        "executing \"{}\" for target server to complete crash recovery",
        postgres.display()
    ));
    pgserver::crash_recovery(&postgres, &opts.target, opts.config_file.as_deref())?;
    let target = TargetCluster::open(&opts.target, opts.config_file.as_deref())?;
    if !shut_down(target.control().state) {
        return Err(Error::Incompatible(
            "target server must be shut down cleanly".into(),
        ));
    }
    Ok(target)
}

/// The page and segment sizes gsbuild reads and writes are the default build's: a cluster
/// built with others is refused before anything is done, naming the value.
fn check_geometry(target: &TargetCluster) -> Result<()> {
    let c = target.control();
    let checks = [
        ("blcksz", c.blcksz, crate::relpath::BLCKSZ),
        ("relseg_size", c.relseg_size, crate::relpath::RELSEG_SIZE),
        ("xlog_blcksz", c.xlog_blcksz, crate::xlog::XLOG_BLCKSZ),
    ];
    for (name, have, supported) in checks {
        if have != supported {
            return Err(Error::Incompatible(format!(
                "\"{}\" was built with {name} {have}; gsbuild supports only {supported} (the default build)",
                target.path().join(target.flavor().table().control_file).display()
            )));
        }
    }
    Ok(())
}

/// A product that refuses a target still holding a `backup_label` (openGauss): the node has
/// not yet recovered from its last build or backup, and its control file does not say where
/// its WAL ends. (An interrupted gsbuild run is resumed before this phase.)
fn check_backup_label(target: &TargetCluster) -> Result<()> {
    let label = target.path().join("backup_label");
    if target.flavor().table().refuses_backup_label && label.exists() {
        return Err(Error::Incompatible(format!(
            "the cluster needs to recover from the latest backup first: \"{}\" exists (start the node once so that its recovery ends, or build it in full)",
            label.display()
        )));
    }
    Ok(())
}

fn shut_down(state: DbState) -> bool {
    matches!(state, DbState::ShutDown | DbState::ShutDownInRecovery)
}
