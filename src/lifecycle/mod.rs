//! The whole repair, as `gs_ctl build` does it (`gsbuild -D`): the build lock; a running
//! target stopped (refused when it is a primary the source is not confirmed to have replaced);
//! the rebuild ([`crate::rewind::run`]); the target started as a standby of the source; and how
//! far behind it streams. The phases of the rebuild itself are [`crate::rewind`]'s.

mod check;
mod ctl;
mod lock;
mod progress;
mod standby;

pub use check::{check, Diagnosis, Verdict};
pub use ctl::{ServerCtl, StopMode};
pub use lock::{running_build, BuildLock};
pub use progress::{read_progress, Progress, ProgressFile};
pub use standby::StandbyState;

use crate::cluster::TargetCluster;
use crate::control::DbState;
use crate::error::{Error, Result};
use crate::flavor::Flavor;
use crate::plan::Plan;
use crate::reporter::Reporter;
use crate::rewind::{BuildMode, Options, Outcome, SourceSpec};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the repair goes around the rebuild.
#[derive(Clone, Debug)]
pub struct Repair {
    /// Start the rebuilt target as a standby (`false`: gs_ctl's `-q`, leave it stopped).
    pub start: bool,
    /// The standby mode to start in (openGauss's `-M`: `standby`, `cascade_standby`).
    pub mode: String,
    /// Stop a running primary even when the source is not confirmed to have replaced it.
    pub force: bool,
    /// The server control program (`pg_ctl`, `gs_ctl`) when not found by itself.
    pub ctl: Option<PathBuf>,
    /// How long to wait for the started standby to stream from the source.
    pub wait: Duration,
}

impl Default for Repair {
    fn default() -> Repair {
        Repair {
            start: true,
            mode: "standby".into(),
            force: false,
            ctl: None,
            wait: Duration::from_secs(300),
        }
    }
}

/// What a repair did.
#[derive(Debug)]
pub struct Repaired {
    /// The rebuild's plan.
    pub plan: Plan,
    /// What the rebuild did (`None`: nothing to rewind, or a dry run).
    pub outcome: Option<Outcome>,
    /// Whether a running target was stopped first.
    pub stopped: bool,
    /// The standby once started (`None` when it was left stopped).
    pub standby: Option<StandbyState>,
}

/// Repairs `opts.target` from its source: see the module documentation.
pub fn repair(mut opts: Options, how: &Repair, rep: &mut dyn Reporter) -> Result<Repaired> {
    let flavor = target_flavor(&opts.target)?;
    let lock = match opts.dry_run {
        true => None,
        false => Some(BuildLock::acquire(&opts.target, flavor.table())?),
    };
    let mut progress;
    let rep: &mut dyn Reporter = match lock.is_some() {
        true => {
            progress = ProgressFile::new(&opts.target, rep);
            &mut progress
        }
        false => rep,
    };
    let target = opts.target.clone();
    let ctl = || ServerCtl::find(&target, flavor, how.ctl.as_deref());
    let mut stopped = false;
    if crate::pgserver::is_running(&opts.target) {
        if opts.dry_run {
            return Err(Error::Incompatible(format!(
                "\"{}\" is running; a dry run does not stop it",
                opts.target.display()
            )));
        }
        check_may_stop(&opts, how, rep)?;
        // A full build keeps nothing of the target: no need to wait for a checkpoint.
        let (mode, how_said) = match opts.build {
            BuildMode::Full => (StopMode::Immediate, " (immediate shutdown)"),
            _ => (StopMode::Fast, ""),
        };
        rep.info(&format!(
            "stopping the running server of \"{}\"{how_said}",
            opts.target.display()
        ));
        ctl()?.stop(mode)?;
        stopped = true;
    }
    // The rebuilt target follows the source: a PostgreSQL one learns it from standby.signal
    // and primary_conninfo (openGauss's replconninfo is its own configuration, kept).
    if how.start && !flavor.table().standby_signal.is_empty() {
        opts.write_recovery_conf |= !matches!(opts.source, SourceSpec::Local(_));
    }
    let dry_run = opts.dry_run;
    let (plan, outcome) = crate::rewind::run(opts, rep)?;
    let standby = match how.start && !dry_run {
        true => {
            let ctl = ctl()?;
            rep.info(&format!("starting \"{}\" as a standby", target.display()));
            ctl.start_standby(&how.mode, &target.join("gsbuild-server.log"))?;
            Some(standby::wait_streaming(
                &target, flavor, &ctl, how.wait, rep,
            )?)
        }
        false => None,
    };
    if let Some(lock) = lock {
        lock.release()?;
    }
    Ok(Repaired {
        plan,
        outcome,
        stopped,
        standby,
    })
}

/// The flavor of the target: from its control file, or the one a rebuild in progress set
/// aside.
fn target_flavor(target: &Path) -> Result<Flavor> {
    let open = |control| TargetCluster::open_with_control(target, None, control);
    let cluster = open(crate::journal::CONTROL_FILE)
        .or_else(|e| open(crate::journal::CONTROL_ASIDE).map_err(|_| e))?;
    Ok(cluster.flavor())
}

/// A running target may be stopped when it is a standby, or a primary that the source has
/// replaced (a later timeline on PostgreSQL, a higher term on openGauss), or with `--force`.
fn check_may_stop(opts: &Options, how: &Repair, rep: &mut dyn Reporter) -> Result<()> {
    let target = TargetCluster::open(&opts.target, opts.config_file.as_deref())?;
    if target.control().state != DbState::InProduction || how.force {
        return Ok(());
    }
    let probe = crate::rewind::probe_source(opts, rep)?;
    let replaced = match (probe.term, target_term(&target)) {
        (Some(source), Some(own)) => source > own,
        _ => probe.timeline > target.timeline(),
    };
    if replaced {
        return Ok(());
    }
    Err(Error::Incompatible(format!(
        "\"{}\" runs as a primary, and the source {} is not a newer primary of this cluster ({}): stopping it could stop the cluster's leader; check which node leads, or use --force",
        opts.target.display(),
        probe.describe,
        match probe.term {
            Some(t) => format!("its term is {t}, the target's {}", target_term(&target).unwrap_or(0)),
            None => format!(
                "its timeline is {}, the target's {}",
                probe.timeline,
                target.timeline()
            ),
        }
    )))
}

/// The target's term, from its term file (openGauss; a node that never took part in a
/// failover has none, and its term is 0).
fn target_term(target: &TargetCluster) -> Option<u64> {
    let file = target.flavor().table().term_file?;
    let bytes = match std::fs::read(target.path().join(file)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(0),
        Err(_) => return None,
    };
    let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(b)))
}
