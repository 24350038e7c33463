//! Running the `gsbuild` binary the way a user or an HA tool does, under a watchdog: a run that
//! hangs is killed and reported as a failure instead of blocking the test suite. Also copies
//! of data directories (`cp -a`, which keeps modes, owners and times) for tests that try many
//! bad inputs on one diverged pair.

use super::{gsbuild_bin, run_ok};
use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of the binary did.
pub struct Run {
    /// Exit code; `None` when killed by a signal (a failpoint or the watchdog).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether the watchdog killed it.
    pub hung: bool,
}

impl Run {
    /// Both streams.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {:?} after {:.1?}{}\n--- stdout\n{}--- stderr\n{}",
            self.code,
            self.elapsed,
            if self.hung {
                " (killed by the watchdog)"
            } else {
                ""
            },
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `gsbuild args…` with extra environment `env`, killing it after `limit`.
pub fn gsbuild(args: &[String], env: &[(&str, &str)], limit: Duration) -> Run {
    let mut cmd = Command::new(gsbuild_bin());
    cmd.args(args).env_remove("GSBUILD_FAILPOINT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    watched(&mut cmd, limit)
}

/// Runs `cmd` with captured output, killing it (only this child, by its pid) after `limit`.
pub fn watched(cmd: &mut Command, limit: Duration) -> Run {
    let out_file = tempfile::tempfile().expect("temp file");
    let err_file = tempfile::tempfile().expect("temp file");
    cmd.stdin(Stdio::null())
        .stdout(out_file.try_clone().expect("clone"))
        .stderr(err_file.try_clone().expect("clone"));
    let t0 = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let mut hung = false;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t0.elapsed() > limit {
            hung = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        f.rewind().expect("rewind");
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).expect("read output");
        s.push_str(&String::from_utf8_lossy(&bytes));
        s
    };
    let run = Run {
        code: status.code(),
        stdout: read(out_file),
        stderr: read(err_file),
        elapsed: t0.elapsed(),
        hung,
    };
    eprintln!("gsbuild {:?}: {run}", cmd.get_args().collect::<Vec<_>>());
    run
}

/// Replaces `to` with a copy of `from` (`cp -a`: modes, owners and times kept).
pub fn copy_dir(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).expect("remove old copy");
    }
    run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

/// Text of a path for a command line.
pub fn s(x: impl AsRef<std::ffi::OsStr>) -> String {
    x.as_ref().to_string_lossy().into_owned()
}
