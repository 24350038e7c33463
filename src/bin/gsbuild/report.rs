//! How the binary shows a rebuild: messages on stderr with the dialect's prefix
//! (`pg_rewind: servers diverged at …`), steps with `-P`, a progress bar on a terminal or plain
//! periodic lines otherwise, and `tracing` logs (`RUST_LOG`, `-v`, `--debug`).

use gsbuild::rewind::Reporter;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Sets up `tracing` on stderr: `RUST_LOG` wins; else `-v` levels; `--debug` means debug.
/// Every line starts with the dialect's name and the level as pg_rewind words it
/// (`pg_rewind: warning: …`), so an HA tool's log parser sees gsbuild's lines as its own.
pub fn init_logging(name: &'static str, verbose: u8, debug: bool) {
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
        .event_format(Prefixed { name, colour })
        .try_init();
}

/// The format of a `tracing` line: `name: level: message field=value`.
struct Prefixed {
    name: &'static str,
    colour: bool,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Prefixed
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing::Level;
        let level = *event.metadata().level();
        let (word, ansi) = match level {
            Level::ERROR => ("error", "31"),
            Level::WARN => ("warning", "33"),
            Level::INFO => ("info", "32"),
            Level::DEBUG => ("debug", "2"),
            Level::TRACE => ("trace", "2"),
        };
        if self.colour {
            write!(writer, "{}: \x1b[{ansi}m{word}\x1b[0m: ", self.name)?;
        } else {
            write!(writer, "{}: {word}: ", self.name)?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
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
                // In the units of every other line (kB, MB), not indicatif's MiB.
                let human = |pos: u64| gsbuild::lsn::human_bytes(pos);
                let style = ProgressStyle::with_template(
                    "{done}/{all} copied [{bar:30}] {percent}% {rate} ETA {eta}",
                )
                .map(|st| {
                    st.with_key(
                        "done",
                        move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = w.write_str(&human(s.pos()));
                        },
                    )
                    .with_key(
                        "all",
                        move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = w.write_str(&human(s.len().unwrap_or(0)));
                        },
                    )
                    .with_key(
                        "rate",
                        move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{}/s", human(s.per_sec() as u64));
                        },
                    )
                })
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
