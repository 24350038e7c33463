//! How a rebuild talks to its caller: the [`Reporter`] every phase reports through (messages
//! in pg_rewind's words, steps, debug lines, progress), and [`TracingReporter`], which logs
//! them through `tracing`. The binary's reporter prints them in the command line's dialect.

/// Receives what a rebuild has to say: messages in pg_rewind's words, and progress.
pub trait Reporter {
    /// A message pg_rewind would print at info level ("servers diverged at …").
    fn info(&mut self, msg: &str);
    /// A step of the work ("reading source file list"); pg_rewind prints these with
    /// `--progress`.
    fn step(&mut self, msg: &str) {
        self.debug(msg);
    }
    /// A debug-level message (`--debug`).
    fn debug(&mut self, _msg: &str) {}
    /// Bytes copied so far out of `total`.
    fn progress(&mut self, _done: u64, _total: u64) {}
}

/// A [`Reporter`] that logs through `tracing`.
pub struct TracingReporter;

impl Reporter for TracingReporter {
    fn info(&mut self, msg: &str) {
        tracing::info!("{msg}");
    }
    fn debug(&mut self, msg: &str) {
        tracing::debug!("{msg}");
    }
}
