//! `-b check`: the answer to "my standby says it needs repair — what now?". Changes nothing:
//! a running standby that streams is healthy; otherwise the rebuild is planned as a dry run
//! that reads the target as it is (running or not), and its plan or the reason it cannot be
//! made is one verdict.

use super::{target_flavor, ServerCtl};
use crate::error::Result;
use crate::journal::{self, State as JournalState};
use crate::lsn::{human_bytes, Lsn, TimeLineId};
use crate::reporter::Reporter;
use crate::rewind::{classify, Attempt, Fallback, Options};
use serde::Serialize;
use std::path::Path;

/// What the target needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// It runs as a standby and streams from its primary.
    Healthy,
    /// It does not stream now, but its history is part of the source's: started as a standby
    /// it catches up without a build.
    NoBuildNeeded,
    /// It diverged from the source; an incremental build repairs it.
    NeedsIncrementalBuild,
    /// An incremental build cannot work (the WAL it needs is gone, no common history, …); a
    /// full build repairs it.
    NeedsFullBuild,
    /// Neither repairs it from this source (another system, another version).
    CannotBuild,
}

impl Verdict {
    /// As printed: `healthy`, `needs incremental build`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::NoBuildNeeded => "no build needed",
            Verdict::NeedsIncrementalBuild => "needs incremental build",
            Verdict::NeedsFullBuild => "needs full build",
            Verdict::CannotBuild => "cannot build",
        }
    }

    /// The exit status of `gsbuild -b check`: 0 healthy or no build needed, 2 incremental,
    /// 3 full, 4 cannot build (1 is an error: no verdict).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Healthy | Verdict::NoBuildNeeded => 0,
            Verdict::NeedsIncrementalBuild => 2,
            Verdict::NeedsFullBuild => 3,
            Verdict::CannotBuild => 4,
        }
    }
}

/// A verdict and what it rests on.
#[derive(Clone, Debug, Serialize)]
pub struct Diagnosis {
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in one line.
    pub reason: String,
    /// Where the two sides parted (incremental).
    pub diverged_at: Option<Lsn>,
    /// On which timeline (PostgreSQL; openGauss stays on 1).
    pub timeline: Option<TimeLineId>,
    /// Bytes an incremental build would copy (incremental).
    pub bytes_to_copy: Option<u64>,
    /// Bytes behind the primary (healthy).
    pub lag_bytes: Option<u64>,
}

impl Diagnosis {
    fn new(verdict: Verdict, reason: String) -> Diagnosis {
        Diagnosis {
            verdict,
            reason,
            diverged_at: None,
            timeline: None,
            bytes_to_copy: None,
            lag_bytes: None,
        }
    }

    /// `verdict: reason`.
    pub fn line(&self) -> String {
        format!("{}: {}", self.verdict.as_str(), self.reason)
    }
}

/// Diagnoses `opts.target` against its source; `ctl` is the server control program's path
/// when not found by itself. An error (the source unreachable, a file unreadable) is no
/// verdict.
pub fn check(mut opts: Options, ctl: Option<&Path>, rep: &mut dyn Reporter) -> Result<Diagnosis> {
    let flavor = target_flavor(&opts.target)?;
    if let Ok(JournalState::Interrupted(j)) = journal::inspect(&opts.target) {
        return Ok(Diagnosis::new(
            match j.plan.full {
                true => Verdict::NeedsFullBuild,
                false => Verdict::NeedsIncrementalBuild,
            },
            format!("a rebuild started at {} is unfinished and the directory will not start until it is: run the same build again to finish it", j.started),
        ));
    }
    if crate::pgserver::is_running(&opts.target) {
        let ctl = ServerCtl::find(&opts.target, flavor, ctl)?;
        match super::standby::current(&opts.target, flavor, &ctl) {
            Ok(mut s) if s.streaming => {
                // A standby that has heard no position from its primary since it started
                // streaming (an idle primary sends one every wal_sender_timeout / 2): the
                // source's own, asked now.
                if let (None, Some(r)) = (s.lag_bytes, s.replayed) {
                    if let Ok(p) = crate::rewind::probe_source(&opts, rep) {
                        s.lag_bytes = Some(p.position.0.saturating_sub(r.0));
                    }
                }
                let mut d = Diagnosis::new(
                    Verdict::Healthy,
                    match s.lag_bytes {
                        Some(lag) => {
                            format!("streaming from its primary, {} behind", human_bytes(lag))
                        }
                        None => "streaming from its primary".into(),
                    },
                );
                d.lag_bytes = s.lag_bytes;
                return Ok(d);
            }
            Ok(_) => rep.info("the target runs but does not stream from its primary"),
            Err(e) => rep.info(&format!(
                "the target runs, its standby state is unknown: {e}"
            )),
        }
    }
    opts.dry_run = true;
    opts.diagnose = true;
    // The same decision as -b auto's.
    match crate::rewind::try_incremental(&opts, rep) {
        Ok(Attempt::Planned(prep, false)) => Ok(from_plan(&prep.plan)),
        Ok(Attempt::Planned(prep, true)) => {
            let mut d = from_plan(&prep.plan);
            d.reason.push_str(
                " with --changed-blocks=page-lsn (the target's WAL after the common checkpoint is gone)",
            );
            Ok(d)
        }
        Ok(Attempt::NeedsFull(reason, _)) => Ok(Diagnosis::new(Verdict::NeedsFullBuild, reason)),
        Err(e) if classify(&e) == Fallback::CannotBuild => {
            Ok(Diagnosis::new(Verdict::CannotBuild, e.to_string()))
        }
        Err(e) => Err(e),
    }
}

fn from_plan(plan: &crate::plan::Plan) -> Diagnosis {
    let Some(div) = plan.divergence.as_ref().filter(|_| plan.rewind_required()) else {
        return Diagnosis::new(
            Verdict::NoBuildNeeded,
            "the target's history is part of the source's: started as a standby it catches up"
                .into(),
        );
    };
    let mut d = Diagnosis::new(
        Verdict::NeedsIncrementalBuild,
        format!(
            "diverged at {} on timeline {}; would copy {} (total source directory size is {})",
            div.lsn,
            div.tli,
            human_bytes(plan.totals.bytes_to_copy),
            human_bytes(plan.totals.source_bytes)
        ),
    );
    d.diverged_at = Some(div.lsn);
    d.timeline = Some(div.tli);
    d.bytes_to_copy = Some(plan.totals.bytes_to_copy);
    d
}
