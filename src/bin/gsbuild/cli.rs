//! The command line, in two stages (as ripgrep does): clap parses the arguments as typed
//! ([`Cli`], [`RebuildArgs`]); `main` turns them into the library's options.
//!
//! Two dialects share one set of rebuild flags: gsbuild's own (`gsbuild -D DATADIR …`) and
//! pg_rewind's, used when the binary runs under the name `pg_rewind` or as `gsbuild rewind …`,
//! so that HA tools can call it in place of pg_rewind.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// gsbuild: rebuild a diverged PostgreSQL standby incrementally.
#[derive(Debug, Parser)]
#[command(
    name = "gsbuild",
    version,
    // Within a wide terminal's reach, and within the 95 columns PostgreSQL's suites check for
    // `gsbuild rewind --help` (pg_rewind's dialect).
    max_term_width = 95,
    about = "Rebuilds a diverged PostgreSQL standby by copying only what diverged.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; without a subcommand, rebuild the data directory given with -D.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The rebuild.
    #[command(flatten)]
    pub rebuild: RebuildArgs,
    /// What goes around it (gsbuild's dialect only).
    #[command(flatten)]
    pub repair: RepairArgs,
}

/// How `gsbuild -D` goes around the rebuild, as `gs_ctl build` does: a running target is
/// stopped first, the rebuilt one started as a standby.
#[derive(Debug, Args, Default)]
pub struct RepairArgs {
    /// Build mode.
    #[arg(short = 'b', long = "build-mode", value_enum, default_value_t)]
    pub build_mode: BuildModeArg,
    /// Leave the rebuilt target stopped (do not start it as a standby).
    #[arg(short = 'q', long = "no-start")]
    pub no_start: bool,
    /// Start mode of the rebuilt target: standby, or (openGauss) cascade_standby.
    #[arg(short = 'M', long = "start-mode", value_name = "MODE", default_value = "standby",
          value_parser = ["standby", "cascade_standby"])]
    pub start_mode: String,
    /// Stop a running target that is a primary even when the source is not confirmed to have
    /// replaced it (a later timeline, a higher term).
    #[arg(long)]
    pub force: bool,
    /// The server control program (pg_ctl, gs_ctl) when it is not found next to gsbuild, on
    /// PATH or in the distribution's place.
    #[arg(long, value_name = "PROGRAM")]
    pub ctl: Option<PathBuf>,
    /// Seconds to wait for the started standby to stream from the source.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub wait: u64,
}

/// `-b`: how the target is rebuilt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BuildModeArg {
    /// Incremental; full only when an incremental build cannot work (no common history, the
    /// WAL it needs gone), saying why in one line.
    #[default]
    Auto,
    /// Copy only what diverged.
    Incremental,
    /// Copy every file of the source into the emptied target, keeping the target's
    /// configuration files; a running target is stopped with immediate shutdown.
    Full,
    /// Change nothing: say whether the target is healthy or needs an incremental or a full
    /// build, and why (exit 0 healthy or no build needed, 2 incremental, 3 full, 4 cannot
    /// build, 1 error).
    Check,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print on-disk structures for people and tests.
    #[command(subcommand)]
    Inspect(Inspect),
    /// Run with pg_rewind's command line, exit codes and messages (as when invoked as
    /// `pg_rewind`).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Rewind(PgRewindArgs),
    /// Make a throwaway primary and standby with the local PostgreSQL binaries, diverge them,
    /// rebuild the old primary with gsbuild, and show that it follows the new primary.
    Demo(DemoArgs),
    /// Say whether a rebuild of the data directory was interrupted and what to do about it
    /// (exit 0: none; 2: interrupted, the directory will not start until a re-run finishes
    /// it).
    Status {
        /// The data directory.
        #[arg(
            short = 'D',
            long = "target-pgdata",
            visible_alias = "pgdata",
            value_name = "DIRECTORY"
        )]
        target_pgdata: PathBuf,
    },
    /// Print a shell completion script (install: `gsbuild completions bash >
    /// /usr/share/bash-completion/completions/gsbuild`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page in roff (install: `gsbuild manpage >
    /// /usr/share/man/man1/gsbuild.1`).
    Manpage,
}

/// `gsbuild inspect …`.
#[derive(Debug, Subcommand)]
pub enum Inspect {
    /// Print global/pg_control with the field names pg_controldata uses.
    Control {
        /// The data directory (or the pg_control file itself).
        datadir: PathBuf,
    },
    /// Print WAL records, one per line (with --blocks, their block references).
    Wal {
        /// First record to print (default: the first record that starts in the input).
        #[arg(long)]
        start: Option<String>,
        /// Stop before this position.
        #[arg(long)]
        end: Option<String>,
        /// Print each block reference on a line of its own, as pg_waldump --bkp-details does.
        #[arg(long)]
        blocks: bool,
        /// A WAL segment file, or a pg_wal directory.
        path: PathBuf,
    },
}

/// Output format of plans and results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

/// How to make the result durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncMethodArg {
    /// fsync each written file and directory.
    Fsync,
    /// syncfs() the file systems of the data directory.
    Syncfs,
}

/// `--changed-blocks`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ChangedBlocksArg {
    /// Decode the target's WAL from the common redo point.
    #[default]
    Wal,
    /// Scan relation pages for LSNs at or after the divergence point.
    PageLsn,
}

/// The rebuild's flags (both dialects).
#[derive(Debug, Args, Default)]
pub struct RebuildArgs {
    /// Existing data directory to rebuild (the target).
    #[arg(
        short = 'D',
        long = "target-pgdata",
        visible_alias = "pgdata",
        value_name = "DIRECTORY"
    )]
    pub target_pgdata: Option<PathBuf>,
    /// Source server to synchronize with (a libpq connection string or URI). `gsbuild -D`
    /// defaults to the target's primary_conninfo; pg_rewind's command line has no default.
    #[arg(long, value_name = "CONNSTR")]
    pub source_server: Option<String>,
    /// Source data directory to synchronize with (a cleanly stopped cluster).
    #[arg(long, value_name = "DIRECTORY", conflicts_with = "source_server")]
    pub source_pgdata: Option<PathBuf>,
    /// Stop before modifying anything; print the plan.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Report progress.
    #[arg(short = 'P', long)]
    pub progress: bool,
    /// Format of the plan and results.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Write standby.signal and primary_conninfo, so the target starts as a standby of the
    /// source (needs a source server).
    #[arg(short = 'R', long)]
    pub write_recovery_conf: bool,
    /// Fetch target WAL missing from pg_wal with the target's restore_command.
    #[arg(short = 'c', long)]
    pub restore_target_wal: bool,
    /// The target's main configuration file, when it lives outside the data directory.
    #[arg(long, value_name = "FILENAME")]
    pub config_file: Option<PathBuf>,
    /// Do not wait for changes to be written safely to disk.
    #[arg(short = 'N', long)]
    pub no_sync: bool,
    /// Do not run crash recovery on a target that was not shut down cleanly; fail instead.
    #[arg(long)]
    pub no_ensure_shutdown: bool,
    /// Method for syncing files to disk.
    #[arg(long, value_enum, value_name = "METHOD")]
    pub sync_method: Option<SyncMethodArg>,
    /// Keep the target's configuration files (postgresql.conf, postgresql.auto.conf,
    /// pg_hba.conf, pg_ident.conf) instead of copying the source's. Default in gsbuild's
    /// dialect; pg_rewind's copies them.
    #[arg(long, overrides_with = "copy_config")]
    pub keep_config: bool,
    /// Copy the source's configuration files over the target's (pg_rewind's behaviour).
    #[arg(long)]
    pub copy_config: bool,
    /// Create a tablespace that only the source has at NEWDIR instead of OLDDIR (its location
    /// on the source); may be repeated.
    #[arg(short = 'T', long = "tablespace-mapping", value_name = "OLDDIR=NEWDIR")]
    pub tablespace_mapping: Vec<String>,
    /// Connections used to fetch files and blocks from a source server, in parallel.
    #[arg(short = 'j', long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// How to find the blocks the target changed after the divergence: from its WAL (wal), or
    /// by scanning page LSNs (page-lsn, when the target's WAL is gone).
    #[arg(long, value_enum, value_name = "METHOD", default_value_t)]
    pub changed_blocks: ChangedBlocksArg,
    /// Cross-check the blocks found in the WAL against a scan of page LSNs; fail on any page
    /// written after the divergence that the WAL does not account for.
    #[arg(long)]
    pub verify_blocks: bool,
    /// Copy every block the target changed, also those whose first WAL record after the
    /// common redo point (in common history) carries a full-page image that replay applies:
    /// by default those are left to replay, which rewrites them whole.
    #[arg(long)]
    pub copy_all_blocks: bool,
    /// Fetch at most RATE from the source, files, blocks and WAL together: kB/s, or with a
    /// suffix k (kB/s) or M (MB/s), as pg_basebackup's -r (32 kB/s to 1024 MB/s).
    #[arg(short = 'r', long = "max-rate", value_name = "RATE", value_parser = parse_rate)]
    pub max_rate: Option<u64>,
    /// Give up when the source does not answer for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Write a lot of debug messages.
    #[arg(long)]
    pub debug: bool,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short = 'v', action = ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// pg_rewind's command line: the same flags, `-?` for help, `-V` for the version.
#[derive(Debug, Args)]
pub struct PgRewindArgs {
    /// The flags.
    #[command(flatten)]
    pub rebuild: RebuildArgs,
    /// Show this help, then exit.
    #[arg(short = '?', long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Output version information, then exit.
    #[arg(short = 'V', long = "version", action = ArgAction::SetTrue)]
    pub version: bool,
}

/// The command line when invoked as `pg_rewind`.
#[derive(Debug, Parser)]
#[command(
    name = "pg_rewind",
    // PostgreSQL's programs keep --help within 80 columns (its test suites check 95).
    term_width = 80,
    about = "pg_rewind resynchronizes a PostgreSQL cluster with another copy of the cluster \
             (gsbuild's pg_rewind-compatible mode).",
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct PgRewindCli {
    /// The flags.
    #[command(flatten)]
    pub args: PgRewindArgs,
}

/// `gsbuild demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory holding the PostgreSQL binaries (initdb, pg_ctl, postgres, psql,
    /// pg_basebackup). Default: the newest of /usr/lib/postgresql/*/bin, then PATH.
    #[arg(long, value_name = "DIRECTORY")]
    pub bindir: Option<PathBuf>,
    /// Where to put the throwaway clusters (default: a new directory under /tmp).
    #[arg(long, value_name = "DIRECTORY")]
    pub workdir: Option<PathBuf>,
    /// Keep the clusters (stopped) after the demo.
    #[arg(long)]
    pub keep: bool,
}

/// `--max-rate`: kB/s, or with a suffix `k` (kB/s) or `M` (MB/s), 32 kB/s to 1024 MB/s (as
/// pg_basebackup's `-r`); bytes per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = match t.strip_suffix('M') {
        Some(n) => (n, 1024 * 1024),
        None => (t.strip_suffix('k').unwrap_or(t), 1024),
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid transfer rate \"{text}\" (kB/s, or with a suffix k or M)"))?;
    let bytes = value * f64::from(unit);
    if !(32.0 * 1024.0..=1024.0 * 1024.0 * 1024.0).contains(&bytes) {
        return Err(format!(
            "transfer rate \"{text}\" is out of range (32 kB/s to 1024 MB/s)"
        ));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// PostgreSQL's suites fail a `--help` line over 95 characters; pg_rewind's own keep to 80.
    #[test]
    fn help_lines_fit() {
        let longest = |text: String| text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        let pg_rewind = PgRewindCli::command().render_long_help().to_string();
        assert!(longest(pg_rewind) <= 80);
        let mut gsbuild = Cli::command();
        assert!(longest(gsbuild.render_long_help().to_string()) <= 95);
        let rewind = gsbuild
            .find_subcommand_mut("rewind")
            .expect("rewind")
            .render_long_help()
            .to_string();
        assert!(longest(rewind) <= 95);
    }

    #[test]
    fn parses_both_dialects() {
        Cli::command().debug_assert();
        PgRewindCli::command().debug_assert();
        let c = Cli::try_parse_from(["gsbuild", "-D", "/d", "-n", "--format", "json"]).unwrap();
        assert!(c.command.is_none() && c.rebuild.dry_run && c.rebuild.format == Format::Json);
        let r = PgRewindCli::try_parse_from([
            "pg_rewind",
            "--target-pgdata=/d",
            "--source-server=host=x port=5",
            "-P",
            "-R",
            "--no-ensure-shutdown",
            "--sync-method=syncfs",
            "--debug",
        ])
        .unwrap();
        assert_eq!(
            r.args.rebuild.source_server.as_deref(),
            Some("host=x port=5")
        );
        assert_eq!(r.args.rebuild.sync_method, Some(SyncMethodArg::Syncfs));
        let c = Cli::try_parse_from([
            "gsbuild",
            "rewind",
            "-D",
            "/d",
            "--source-pgdata",
            "/s",
            "-c",
        ])
        .unwrap();
        assert!(matches!(c.command, Some(Command::Rewind(a)) if a.rebuild.restore_target_wal));
        let c = Cli::try_parse_from(["gsbuild", "inspect", "control", "/d"]).unwrap();
        assert!(matches!(
            c.command,
            Some(Command::Inspect(Inspect::Control { .. }))
        ));
        assert!(Cli::try_parse_from([
            "gsbuild",
            "-D",
            "/d",
            "--source-pgdata",
            "/s",
            "--source-server",
            "x"
        ])
        .is_err());
    }
}
