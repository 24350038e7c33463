//! Where a running build stands, for `gsbuild status` from another shell: the build's reporter
//! also writes its pid, current step and bytes done/total to a small JSON file outside the
//! data directory (in the temporary directory, named by the data directory's device and inode,
//! so the target itself gets no file a listing or a failed run could trip over), at most once a
//! second, replaced atomically, and removed when the build ends.

use crate::reporter::Reporter;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the progress file holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Progress {
    /// The build's process.
    pub pid: u32,
    /// When it started (local time).
    pub started: String,
    /// Its current step ("reading source file list", "copying 8835 kB …").
    pub phase: String,
    /// Bytes of files and blocks copied so far.
    pub done: u64,
    /// Bytes to copy in all (0 before the copy).
    pub total: u64,
    /// Seconds since the copy began (0 before it).
    pub copy_secs: f64,
}

impl Progress {
    /// Percent copied, when the total is known.
    pub fn percent(&self) -> Option<f64> {
        (self.total > 0).then(|| self.done as f64 * 100.0 / self.total as f64)
    }

    /// Seconds left at the rate so far, when there is one.
    pub fn eta_secs(&self) -> Option<f64> {
        let rate = self.done as f64 / self.copy_secs;
        (self.done > 0 && self.copy_secs > 0.0 && self.total >= self.done)
            .then(|| (self.total - self.done) as f64 / rate)
    }
}

/// The progress file of `datadir`'s build.
pub fn progress_path(datadir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(datadir).ok()?;
    Some(std::env::temp_dir().join(format!("gsbuild-{}-{}.progress.json", m.dev(), m.ino())))
}

/// The progress a running build of `datadir` last wrote.
pub fn read_progress(datadir: &Path) -> Option<Progress> {
    let text = std::fs::read_to_string(progress_path(datadir)?).ok()?;
    serde_json::from_str(&text).ok()
}

/// A reporter that passes everything on to `inner` and keeps the progress file.
pub struct ProgressFile<'a> {
    inner: &'a mut dyn Reporter,
    path: Option<PathBuf>,
    state: Progress,
    copy_start: Option<Instant>,
    written: Option<Instant>,
}

impl<'a> ProgressFile<'a> {
    /// For the build of `datadir`, reporting to `inner`.
    pub fn new(datadir: &Path, inner: &'a mut dyn Reporter) -> ProgressFile<'a> {
        let mut p = ProgressFile {
            inner,
            path: progress_path(datadir),
            state: Progress {
                pid: std::process::id(),
                started: chrono::Local::now()
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string(),
                phase: "starting".into(),
                done: 0,
                total: 0,
                copy_secs: 0.0,
            },
            copy_start: None,
            written: None,
        };
        p.write(true);
        p
    }

    /// Best effort: progress is for people, a failure to record it must not fail the build.
    fn write(&mut self, now: bool) {
        let due = self
            .written
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        let Some(path) = &self.path else { return };
        if !(now || due) {
            return;
        }
        if let Some(t) = self.copy_start {
            self.state.copy_secs = t.elapsed().as_secs_f64();
        }
        let tmp = path.with_extension("tmp");
        if let Ok(text) = serde_json::to_vec(&self.state) {
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, path);
            }
        }
        self.written = Some(Instant::now());
    }
}

impl Drop for ProgressFile<'_> {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Reporter for ProgressFile<'_> {
    fn info(&mut self, msg: &str) {
        self.inner.info(msg);
    }
    fn step(&mut self, msg: &str) {
        self.state.phase = msg.to_string();
        self.write(true);
        self.inner.step(msg);
    }
    fn debug(&mut self, msg: &str) {
        self.inner.debug(msg);
    }
    fn progress(&mut self, done: u64, total: u64) {
        self.copy_start.get_or_insert_with(Instant::now);
        self.state.done = done;
        self.state.total = total;
        self.write(false);
        self.inner.progress(done, total);
    }
}
