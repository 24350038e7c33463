//! How the binary shows a rebuild: messages on stderr with the dialect's prefix
//! (`pg_rewind: servers diverged at …`), steps with `-P`, a progress bar on a terminal or plain
//! periodic lines otherwise, and `tracing` logs (`RUST_LOG`, `-v`, `--debug`).

use gsbuild::rewind::Reporter;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Sets up `tracing` on stderr: `RUST_LOG` wins; else `-v` levels; `--debug` means debug.
pub fn init_logging(verbose: u8, debug: bool) {
    let level = match (verbose, debug) {
        (_, true) | (2, _) => "debug",
        (0, false) => "warn",
        (1, false) => "info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("gsbuild={level}")));
    // Colour only for a person at a terminal: an HA tool's log would get escape codes.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Prints a rebuild's messages for a person or an HA tool.
pub struct CliReporter {
    prefix: &'static str,
    progress: bool,
    debug: bool,
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
}

impl CliReporter {
    /// A reporter with the dialect's `prefix`, `-P` and `--debug`.
    pub fn new(prefix: &'static str, progress: bool, debug: bool) -> CliReporter {
        CliReporter {
            prefix,
            progress,
            debug,
            bar: None,
            last_line: None,
        }
    }

    fn say(&mut self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("{}: {msg}", self.prefix)),
            None => eprintln!("{}: {msg}", self.prefix),
        }
    }

    /// Ends the progress bar, if any.
    pub fn finish_progress(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Reporter for CliReporter {
    fn info(&mut self, msg: &str) {
        self.say(msg);
    }

    fn step(&mut self, msg: &str) {
        if self.progress || self.debug {
            self.say(msg);
        }
    }

    fn debug(&mut self, msg: &str) {
        if self.debug {
            self.say(msg);
        }
    }

    fn progress(&mut self, done: u64, total: u64) {
        if !self.progress {
            return;
        }
        if std::io::stderr().is_terminal() {
            let bar = self.bar.get_or_insert_with(|| {
                let bar = ProgressBar::new(total);
                let style = ProgressStyle::with_template(
                    "{bytes}/{total_bytes} copied [{bar:30}] {percent}% {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style.progress_chars("=> "));
                bar
            });
            bar.set_position(done);
            return;
        }
        let due = self
            .last_line
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if due || done == total {
            self.last_line = Some(Instant::now());
            let pct = (done * 100).checked_div(total).unwrap_or(100);
            eprintln!("{}/{} kB ({pct}%) copied", done / 1024, total / 1024);
        }
    }
}
