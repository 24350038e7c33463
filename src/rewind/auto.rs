//! `-b auto`: an incremental build, and a full one only when an incremental build cannot work
//! — the WAL it needs is gone (on the target, and the page-LSN method cannot stand in: no
//! checksums or `wal_log_hints`, or the source's WAL is gone too), no common history, a target
//! that cannot be compared block by block. The reason is said in one line. Nothing else falls
//! back: another system or version is an error a full build would meet too, and a connection or
//! I/O error, or a target state the user resolves cheaply (a crashed node, one built and not yet
//! started), is no reason to copy everything. `-b check`'s verdict comes from the same
//! classification ([`classify`]), so "needs full build" is what `-b auto` would do.

use super::options::{BuildMode, ChangedBlocks, Options};
use super::prepared::Prepared;
use crate::error::{Error, Result};
use crate::reporter::Reporter;

/// What a planning failure means for the build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// An incremental build cannot work; a full build can.
    Full,
    /// Neither can from this source (another product, version or system, an older term, the
    /// same directory).
    CannotBuild,
    /// Not about the two clusters (the source unreachable, a file unreadable): an error.
    Error,
}

/// The classification of `e`, a failure to plan an incremental build.
pub fn classify(e: &Error) -> Fallback {
    match e {
        Error::WalRemoved { .. }
        | Error::Wal { .. }
        | Error::WalUse { .. }
        | Error::History { .. } => Fallback::Full,
        Error::Incompatible(m) if cannot_build(m) => Fallback::CannotBuild,
        Error::Incompatible(m) if for_the_user(m) => Fallback::Error,
        Error::Incompatible(_) => Fallback::Full,
        _ => Fallback::Error,
    }
}

/// Refusals that a full build from the same source would meet too: another product or
/// version, another system, a source that is not a newer primary or lacks a setting both
/// builds need, the same directory.
fn cannot_build(message: &str) -> bool {
    [
        "clusters are not compatible",
        "different systems",
        "is newer than the source's term",
        "are the same",
        "gsbuild supports only",
        "must be enabled in the source server",
        "source data directory must be shut down cleanly",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// Refusals about the target's state that the user resolves cheaply, where copying everything
/// would be no repair: a node that crashed (openGauss has no single-user crash recovery to
/// run), a node built and not yet started (openGauss refuses it a second build: starting it
/// ends its recovery), a server running or another build under way.
fn for_the_user(message: &str) -> bool {
    [
        "target server must be shut down cleanly",
        "recover from the latest backup first",
        "which is being rebuilt: stop it",
        "another build of",
        "a dry run does not stop it",
        "runs as a primary",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// An incremental plan, or why only a full build repairs the target.
pub enum Attempt {
    /// Planned; with the page-LSN method when the target's WAL was gone (`true`).
    Planned(Box<Prepared>, bool),
    /// An incremental build cannot work, for this reason (one line); the error that says so.
    NeedsFull(String, Box<Error>),
}

/// Plans an incremental build of `opts` (with `--changed-blocks=page-lsn` when the target's WAL
/// after the common checkpoint is gone and that method works); a failure that only a full
/// build gets past is [`Attempt::NeedsFull`], any other an error.
pub fn try_incremental(opts: &Options, rep: &mut dyn Reporter) -> Result<Attempt> {
    let mut opts = opts.clone();
    if opts.build == BuildMode::Full {
        opts.build = BuildMode::Incremental;
    }
    let err = match super::prepare(opts.clone(), rep) {
        Ok(prep) => return Ok(Attempt::Planned(Box::new(prep), false)),
        Err(e) => e,
    };
    if opts.changed_blocks == ChangedBlocks::Wal && super::target_wal_missing(&err) {
        rep.info(&format!(
            "{}; trying --changed-blocks=page-lsn",
            one_line(&err)
        ));
        opts.changed_blocks = ChangedBlocks::PageLsn;
        // The target's WAL is gone: whether the page-LSN method can do without it decides.
        return match super::prepare(opts, rep) {
            Ok(prep) => Ok(Attempt::Planned(Box::new(prep), true)),
            Err(e) if classify(&e) == Fallback::Full => Ok(Attempt::NeedsFull(
                format!(
                    "{}; with --changed-blocks=page-lsn: {}",
                    one_line(&err),
                    one_line(&e)
                ),
                Box::new(err),
            )),
            Err(e) => Err(e),
        };
    }
    match classify(&err) {
        Fallback::Full => Ok(Attempt::NeedsFull(one_line(&err), Box::new(err))),
        _ => Err(err),
    }
}

/// `-b auto`'s plan: incremental, else full, saying why in one line.
pub(super) fn prepare(opts: Options, rep: &mut dyn Reporter) -> Result<Prepared> {
    match try_incremental(&opts, rep)? {
        Attempt::Planned(prep, page_lsn) => {
            if let Some(d) = &prep.plan.divergence {
                rep.info(&format!(
                    "-b auto: an incremental build works: diverged at {} on timeline {}{}",
                    d.lsn,
                    d.tli,
                    match page_lsn {
                        true => ", with --changed-blocks=page-lsn (the target's WAL is gone)",
                        false => "",
                    }
                ));
            }
            Ok(*prep)
        }
        Attempt::NeedsFull(reason, _) => {
            rep.info(&format!(
                "an incremental build cannot work, falling back to a full build: {reason}"
            ));
            let opts = Options {
                build: BuildMode::Full,
                ..opts
            };
            super::prepare(opts, rep)
        }
    }
}

/// `e` on one line.
pub fn one_line(e: &Error) -> String {
    e.to_string().lines().collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_a_full_build_repairs_falls_back() {
        let inc = |m: &str| Error::Incompatible(m.into());
        assert_eq!(
            classify(&inc(
                "target server needs to use either data checksums or \"wal_log_hints = on\""
            )),
            Fallback::Full
        );
        for m in [
            "source and target clusters are from different systems (system identifiers 1 and 2)",
            "clusters are not compatible: source is PostgreSQL 16 (catalog version 1), target is PostgreSQL 15 (catalog version 2)",
        ] {
            assert_eq!(classify(&inc(m)), Fallback::CannotBuild, "{m}");
        }
        let connection = Error::Connect {
            peer: "host=x".into(),
            message: "connection refused".into(),
        };
        assert_eq!(classify(&connection), Fallback::Error);
        let built = "the cluster needs to recover from the latest backup first: \"/d/backup_label\" exists (start the node once so that its recovery ends, or build it in full)";
        assert_eq!(classify(&inc(built)), Fallback::Error);
        let crashed = "target server must be shut down cleanly (state \"in production\"): start it and stop it with gs_ctl, then run again";
        assert_eq!(classify(&inc(crashed)), Fallback::Error);
        for m in [
            "full_page_writes must be enabled in the source server",
            "source data directory must be shut down cleanly",
        ] {
            assert_eq!(classify(&inc(m)), Fallback::CannotBuild, "{m}");
        }
        assert_eq!(classify(&Error::Usage("x".into())), Fallback::Error);
    }

    #[test]
    fn a_reason_is_one_line() {
        assert_eq!(one_line(&Error::Usage("a\nb".into())), "a; b");
    }
}
