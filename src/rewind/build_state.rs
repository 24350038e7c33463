//! The server's state file during a build (openGauss's `gaussdb.state`, which
//! `gs_ctl querybuild` and `gs_ctl query` read): written at the start of the copy as a standby
//! being built incrementally, then with the copy's progress at most every few seconds, always
//! through a temporary file renamed over it so that a reader never sees half of one.
//!
//! The layout (72 bytes, native byte order): server mode (i32) at 0, connection count at 4,
//! database state at 8, sync state (bool) at 12, LSN (u64) at 16, term (u64) at 24, build mode
//! (i32) at 32, kilobytes done (u64) at 40 and in all at 48, percent done (i32) at 56,
//! estimated seconds left (i32, -1 unknown) at 60, rebuild reason at 64, current channel index
//! at 68.

use crate::error::{Error, Result};
use crate::reporter::Reporter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The state file's length.
pub const LEN: usize = 72;
/// Server mode: standby.
const STANDBY_MODE: i32 = 3;
/// Database state: building.
const BUILDING_STATE: i32 = 7;
/// Build mode: full.
const FULL_BUILD: i32 = 2;
/// Build mode: incremental.
const INC_BUILD: i32 = 3;
/// How often progress is written.
const EVERY: Duration = Duration::from_secs(2);

/// One state file's contents while building.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildState {
    /// A full build (else incremental).
    pub full: bool,
    /// KB copied so far.
    pub done_kb: u64,
    /// KB to copy.
    pub total_kb: u64,
    /// Percent done.
    pub percent: i32,
    /// Seconds left, -1 when unknown.
    pub eta_secs: i32,
}

impl BuildState {
    /// The 72 bytes of the file.
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..4].copy_from_slice(&STANDBY_MODE.to_ne_bytes());
        b[4..8].copy_from_slice(&2i32.to_ne_bytes());
        b[8..12].copy_from_slice(&BUILDING_STATE.to_ne_bytes());
        let mode = match self.full {
            true => FULL_BUILD,
            false => INC_BUILD,
        };
        b[32..36].copy_from_slice(&mode.to_ne_bytes());
        b[40..48].copy_from_slice(&self.done_kb.to_ne_bytes());
        b[48..56].copy_from_slice(&self.total_kb.to_ne_bytes());
        b[56..60].copy_from_slice(&self.percent.to_ne_bytes());
        b[60..64].copy_from_slice(&self.eta_secs.to_ne_bytes());
        b
    }
}

/// Writes `state` to `path` through `path.temp`, renamed over it.
pub fn write(path: &Path, state: &BuildState) -> Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".temp");
    let temp = PathBuf::from(temp);
    std::fs::write(&temp, state.encode()).map_err(|e| Error::io("write file", &temp, e))?;
    std::fs::rename(&temp, path).map_err(|e| Error::io("rename file", &temp, e))
}

/// A reporter that passes everything on and writes the copy's progress to the state file.
pub struct StateReporter<'a> {
    inner: &'a mut dyn Reporter,
    path: PathBuf,
    full: bool,
    started: Instant,
    last: Option<Instant>,
}

impl<'a> StateReporter<'a> {
    /// Writes the initial state to `path` (a standby being built, in full or incrementally,
    /// nothing done).
    pub fn start(
        path: PathBuf,
        full: bool,
        inner: &'a mut dyn Reporter,
    ) -> Result<StateReporter<'a>> {
        let state = BuildState {
            full,
            eta_secs: -1,
            ..Default::default()
        };
        write(&path, &state)?;
        Ok(StateReporter {
            inner,
            path,
            full,
            started: Instant::now(),
            last: None,
        })
    }

    fn update(&mut self, done: u64, total: u64) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t < EVERY) && done < total {
            return;
        }
        self.last = Some(now);
        let elapsed = (now - self.started).as_secs_f64();
        let eta_secs = match (done, total) {
            (0, _) => -1,
            _ if done >= total => 0,
            _ => (elapsed * (total - done) as f64 / done as f64).min(i32::MAX as f64) as i32,
        };
        let state = BuildState {
            full: self.full,
            done_kb: done / 1024,
            total_kb: total / 1024,
            percent: match total {
                0 => 100,
                t => (done.min(t) * 100 / t) as i32,
            },
            eta_secs,
        };
        // Progress is for people: a failed write must not fail the rebuild.
        if let Err(e) = write(&self.path, &state) {
            tracing::warn!("{e}");
        }
    }
}

impl Reporter for StateReporter<'_> {
    fn info(&mut self, msg: &str) {
        self.inner.info(msg);
    }
    fn step(&mut self, msg: &str) {
        self.inner.step(msg);
    }
    fn debug(&mut self, msg: &str) {
        self.inner.debug(msg);
    }
    fn progress(&mut self, done: u64, total: u64) {
        self.update(done, total);
        self.inner.progress(done, total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let b = BuildState {
            full: false,
            done_kb: 5,
            total_kb: 10,
            percent: 50,
            eta_secs: -1,
        }
        .encode();
        let i32_at = |o: usize| i32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!((i32_at(0), i32_at(4), i32_at(8), i32_at(32)), (3, 2, 7, 3));
        assert_eq!(
            (u64_at(40), u64_at(48), i32_at(56), i32_at(60)),
            (5, 10, 50, -1)
        );
        let full = BuildState {
            full: true,
            ..Default::default()
        }
        .encode();
        assert_eq!(i32::from_ne_bytes(full[32..36].try_into().unwrap()), 2);
    }
}
