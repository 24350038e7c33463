//! Named points where a test can make gsbuild die as if killed (`kill -9`), to prove that an
//! interrupted rebuild leaves a target that refuses to start and that a re-run finishes it.
//!
//! Set `GSBUILD_FAILPOINT=NAME` to die at the first pass through the point `NAME`, or
//! `NAME:N` to die at its N-th pass (1-based). Unset (the normal case), a pass costs one load
//! of an initialised `OnceLock`. Every point is listed in [`POINTS`], in the order a rebuild
//! passes them, so that a test can sweep them all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Every failpoint, in the order a rebuild reaches them, with what is happening there.
pub const POINTS: &[(&str, &str)] = &[
    (
        "wal-scan",
        "after the target's WAL was scanned (with --changed-blocks=page-lsn: after the page-LSN scan, which follows the two listings)",
    ),
    ("list-source", "after the source's file list was read"),
    ("list-target", "after the target's file list was read"),
    (
        "journal-written",
        "after the journal is durable, before any other write",
    ),
    ("control-aside", "after pg_control was moved aside"),
    ("create", "after each directory or symlink created"),
    (
        "copy-chunk",
        "after each chunk of a file or block range written",
    ),
    ("truncate-remove", "after each truncation or removal"),
    ("wal-segment", "after each streamed WAL segment completed"),
    ("backup-label", "after backup_label was written"),
    ("synced", "after everything but pg_control was synced"),
    (
        "control-written",
        "after the new pg_control was written, before the journal is removed",
    ),
];

struct Armed {
    name: String,
    at: u64,
    passes: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("GSBUILD_FAILPOINT").ok()?;
            let (name, at) = match spec.split_once(':') {
                Some((n, at)) => (n.to_string(), at.parse().ok().filter(|&a| a > 0)?),
                None => (spec, 1),
            };
            Some(Armed {
                name,
                at,
                passes: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Passes the failpoint `name`: when `GSBUILD_FAILPOINT` arms it and this is the chosen pass,
/// the process kills itself with `SIGKILL` (no destructors, no flushing — a real crash).
#[inline]
pub fn hit(name: &str) {
    let Some(a) = armed() else { return };
    if a.name != name {
        return;
    }
    if a.passes.fetch_add(1, Ordering::SeqCst) + 1 == a.at {
        eprintln!(
            "gsbuild: failpoint {name} reached (pass {}), killing myself",
            a.at
        );
        // SAFETY: kill and getpid have no preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::POINTS;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = POINTS.iter().map(|p| p.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), POINTS.len());
    }
}
