//! The `gsbuild` binary: parses the command line (gsbuild's dialect, or pg_rewind's when run as
//! `pg_rewind` or `gsbuild rewind`), turns it into library options, prints messages the way the
//! dialect's users expect, and maps errors to exit codes (0 success, no rewind required, dry
//! run, help; 1 any error).

mod cli;
mod demo;
mod report;

use clap::Parser;
use gsbuild::journal::{self, State as JournalState};
use gsbuild::rewind::{BuildMode, ChangedBlocks, Options, SourceSpec};
use gsbuild::target::SyncMethod;
use std::process::ExitCode;

/// The command-line dialect, which decides message prefixes, defaults and usage errors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `gsbuild -D …`.
    Gsbuild,
    /// pg_rewind's command line.
    PgRewind,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Gsbuild => "gsbuild",
            Dialect::PgRewind => "pg_rewind",
        }
    }
}

/// One malloc arena for the whole process. With one arena per thread, a buffer that a tokio
/// worker allocates (a connection's read buffer, a row) and the writing thread frees goes back
/// to the worker's arena, and each arena keeps its own high-water mark: 20 MiB more peak RSS
/// on a large rebuild (63 MiB against 42 MiB on a scale-100 pair). Fixing the mmap threshold
/// instead bounds RSS as well, but pays a page fault for every page of every large buffer
/// (150,000 faults instead of 20,000, a quarter more CPU).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    // A closed pipe ends the process quietly, as it does Unix tools (`gsbuild inspect wal |
    // head`), instead of failing every later write with EPIPE.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let invoked_as = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("gsbuild");
    if invoked_as == "pg_rewind" {
        return match cli::PgRewindCli::try_parse() {
            Ok(c) => rewind_compat(c.args),
            Err(e) => clap_error(e, Dialect::PgRewind),
        };
    }
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => return clap_error(e, Dialect::Gsbuild),
    };
    match args.command {
        Some(cli::Command::Inspect(cmd)) => finish(inspect(cmd), Dialect::Gsbuild),
        Some(cli::Command::Rewind(a)) => rewind_compat(a),
        Some(cli::Command::Demo(a)) => finish(demo::run(&a), Dialect::Gsbuild),
        Some(cli::Command::Status { target_pgdata }) => status(&target_pgdata),
        Some(cli::Command::Completions { shell }) => {
            let mut cmd = <cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "gsbuild", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Some(cli::Command::Manpage) => {
            let cmd = <cli::Cli as clap::CommandFactory>::command();
            let page = clap_mangen::Man::new(cmd).render(&mut std::io::stdout());
            finish(page.map_err(anyhow::Error::from), Dialect::Gsbuild)
        }
        None => repair(args.rebuild, args.repair),
    }
}

fn clap_error(e: clap::Error, dialect: Dialect) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if dialect == Dialect::PgRewind {
        let msg = e
            .kind()
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string());
        eprintln!("pg_rewind: error: {}", msg.lines().next().unwrap_or(""));
        eprintln!("pg_rewind: hint: Try \"pg_rewind --help\" for more information.");
        return ExitCode::FAILURE;
    }
    let _ = e.print();
    ExitCode::FAILURE
}

fn finish(result: anyhow::Result<()>, dialect: Dialect) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: error: {}", dialect.name(), chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error with its causes, each cause said once: one whose text the message already holds
/// (the library's messages name the operating system's error) is not repeated.
fn chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        let text = gsbuild::error::without_os_error(&text);
        if !out.contains(text) {
            out.push_str(": ");
            out.push_str(text);
        }
    }
    out
}

fn rewind_compat(a: cli::PgRewindArgs) -> ExitCode {
    if a.version {
        println!("pg_rewind (gsbuild) {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let r = &a.rebuild;
    let usage = |msg: &str| {
        eprintln!("pg_rewind: error: {msg}");
        eprintln!("pg_rewind: hint: Try \"pg_rewind --help\" for more information.");
        ExitCode::FAILURE
    };
    if r.source_pgdata.is_none() && r.source_server.is_none() {
        return usage("no source specified (--source-pgdata or --source-server)");
    }
    if r.target_pgdata.is_none() {
        return usage("no target data directory specified (--target-pgdata)");
    }
    if r.write_recovery_conf && r.source_server.is_none() {
        return usage(
            "no source server information (--source-server) specified for --write-recovery-conf",
        );
    }
    rebuild(a.rebuild, Dialect::PgRewind)
}

fn options(r: &cli::RebuildArgs, dialect: Dialect) -> anyhow::Result<Options> {
    let Some(target) = &r.target_pgdata else {
        anyhow::bail!("no target data directory specified (-D/--target-pgdata)");
    };
    let source = match (&r.source_server, &r.source_pgdata) {
        (Some(s), _) => SourceSpec::Server(s.clone()),
        (None, Some(d)) => SourceSpec::Local(d.clone()),
        (None, None) => SourceSpec::PrimaryConninfo,
    };
    let mut o = Options::new(target, source);
    o.dry_run = r.dry_run;
    o.write_recovery_conf = r.write_recovery_conf;
    o.restore_target_wal = r.restore_target_wal;
    o.config_file = r.config_file.clone();
    o.ensure_shutdown = !r.no_ensure_shutdown;
    o.keep_config = match dialect {
        Dialect::Gsbuild => !r.copy_config,
        Dialect::PgRewind => r.keep_config,
    };
    for m in &r.tablespace_mapping {
        let Some((from, to)) = m.split_once('=') else {
            anyhow::bail!("invalid tablespace mapping format \"{m}\", must be \"OLDDIR=NEWDIR\"");
        };
        o.tablespace_mapping.push((from.into(), to.into()));
    }
    o.jobs = usize::from(r.jobs);
    o.changed_blocks = match r.changed_blocks {
        cli::ChangedBlocksArg::Wal => ChangedBlocks::Wal,
        cli::ChangedBlocksArg::PageLsn => ChangedBlocks::PageLsn,
    };
    o.verify_blocks = r.verify_blocks;
    o.copy_rewritten_blocks = r.copy_all_blocks;
    o.max_rate = r.max_rate;
    o.client.read_timeout = std::time::Duration::from_secs(r.timeout);
    o.sync = match (r.no_sync, r.sync_method) {
        (true, _) => SyncMethod::None,
        (false, Some(cli::SyncMethodArg::Syncfs)) => SyncMethod::Syncfs,
        (false, _) => SyncMethod::Fsync,
    };
    Ok(o)
}

fn rebuild(r: cli::RebuildArgs, dialect: Dialect) -> ExitCode {
    report::init_logging(dialect.name(), r.verbose, r.debug);
    let opts = match options(&r, dialect) {
        Ok(o) => o,
        Err(e) => return finish(Err(e), dialect),
    };
    let mut rep = report::CliReporter::new(dialect.name(), r.progress, r.debug);
    let result = gsbuild::rewind::run(opts.clone(), &mut rep);
    rep.finish_progress();
    report_result(&r, &opts, dialect, result.map(|(p, o)| (p, o, None)))
}

/// Prints a rebuild's result (the plan for a dry run, JSON with `--format json`) or its error,
/// with the hint that an interrupted rebuild resumes; the exit code.
fn report_result(
    r: &cli::RebuildArgs,
    opts: &Options,
    dialect: Dialect,
    result: gsbuild::Result<(
        gsbuild::plan::Plan,
        Option<gsbuild::rewind::Outcome>,
        Option<gsbuild::lifecycle::StandbyState>,
    )>,
) -> ExitCode {
    match result {
        Ok((plan, outcome, standby)) => {
            if r.format == cli::Format::Json {
                let mut doc = serde_json::json!({ "plan": plan, "outcome": outcome });
                if let Some(s) = standby {
                    doc["standby"] = serde_json::json!(s);
                }
                println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            } else if r.dry_run && plan.rewind_required() {
                print!("{}", plan.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: error: {e}", dialect.name());
            for hint in gsbuild::rewind::hints(&e, opts) {
                eprintln!("{}: hint: {hint}", dialect.name());
            }
            if let Some(dir) = &r.target_pgdata {
                if let Ok(JournalState::Interrupted(_)) = journal::inspect(dir) {
                    eprintln!(
                        "{}: hint: the rebuild of \"{}\" is unfinished and the directory will not start until it is: fix the cause and run the same command again to resume it (\"gsbuild status -D {}\" shows where it stands)",
                        dialect.name(),
                        dir.display(),
                        dir.display()
                    );
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// `gsbuild -D DIR`: the whole repair (stop, rebuild, start as a standby).
fn repair(r: cli::RebuildArgs, how: cli::RepairArgs) -> ExitCode {
    report::init_logging(Dialect::Gsbuild.name(), r.verbose, r.debug);
    let mut opts = match options(&r, Dialect::Gsbuild) {
        Ok(o) => o,
        Err(e) => return finish(Err(e), Dialect::Gsbuild),
    };
    opts.build = match how.build_mode {
        cli::BuildModeArg::Auto => BuildMode::Auto,
        cli::BuildModeArg::Full => BuildMode::Full,
        cli::BuildModeArg::Incremental | cli::BuildModeArg::Check => BuildMode::Incremental,
    };
    if how.build_mode == cli::BuildModeArg::Check {
        return check(&r, opts, how.ctl.as_deref());
    }
    let repair = gsbuild::lifecycle::Repair {
        start: !how.no_start,
        mode: how.start_mode.clone(),
        force: how.force,
        ctl: how.ctl.clone(),
        wait: std::time::Duration::from_secs(how.wait),
    };
    let mut rep = report::CliReporter::new(Dialect::Gsbuild.name(), r.progress, r.debug);
    let result = gsbuild::lifecycle::repair(opts.clone(), &repair, &mut rep);
    rep.finish_progress();
    let result = result.map(|done| {
        let standby = done.standby.clone();
        (done.plan, done.outcome, standby)
    });
    report_result(&r, &opts, Dialect::Gsbuild, result)
}

/// `gsbuild -b check -D DIR`: one verdict, as text or JSON; its exit code.
fn check(r: &cli::RebuildArgs, opts: Options, ctl: Option<&std::path::Path>) -> ExitCode {
    let mut rep = report::CliReporter::new(Dialect::Gsbuild.name(), r.progress, r.debug);
    match gsbuild::lifecycle::check(opts.clone(), ctl, &mut rep) {
        Ok(d) => {
            if r.format == cli::Format::Json {
                println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
            } else {
                println!("{}", d.line());
            }
            ExitCode::from(d.verdict.exit_code())
        }
        Err(e) => report_result(r, &opts, Dialect::Gsbuild, Err(e)),
    }
}

/// `gsbuild status` of a build that runs now: its pid, step, bytes and time left.
fn print_running(dir: &std::path::Path, pid: u32) {
    use gsbuild::lsn::human_bytes;
    println!("a rebuild of \"{}\" is running (pid {pid})", dir.display());
    let Some(p) = gsbuild::lifecycle::read_progress(dir).filter(|p| p.pid == pid) else {
        return;
    };
    println!("  started:   {}", p.started);
    println!("  step:      {}", p.phase);
    if let Some(pct) = p.percent() {
        println!(
            "  copied:    {} of {} ({pct:.0}%)",
            human_bytes(p.done),
            human_bytes(p.total)
        );
    }
    if let Some(eta) = p.eta_secs() {
        println!("  remaining: about {eta:.0} s at the rate so far");
    }
}

/// `gsbuild status -D DIR`.
fn status(dir: &std::path::Path) -> ExitCode {
    let is_datadir = [journal::CONTROL_FILE, journal::CONTROL_ASIDE]
        .iter()
        .any(|f| dir.join(f).is_file());
    if !is_datadir {
        eprintln!(
            "gsbuild: error: \"{}\" is not a data directory (it has no global/pg_control)",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    if let Some(pid) = gsbuild::lifecycle::running_build(dir) {
        print_running(dir, pid);
        return ExitCode::SUCCESS;
    }
    let state = match journal::inspect(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gsbuild: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match state {
        JournalState::Clean => {
            println!("no rebuild in progress in \"{}\"", dir.display());
            ExitCode::SUCCESS
        }
        JournalState::NotStarted(j) => {
            println!(
                "a rebuild started at {} stopped before changing anything; \"{}\" is as it was (the next run discards the journal)",
                j.started,
                dir.display()
            );
            ExitCode::SUCCESS
        }
        JournalState::Finished(j) => {
            println!(
                "the rebuild started at {} completed; the next run removes its journal",
                j.started
            );
            ExitCode::SUCCESS
        }
        JournalState::Interrupted(j) => {
            let plan = &j.plan;
            println!("interrupted rebuild of \"{}\"", dir.display());
            println!(
                "  started:   {} (gsbuild {}, {} run(s) so far)",
                j.started, j.gsbuild, j.runs
            );
            println!("  source:    {}", j.source);
            if let (Some(d), Some(c)) = (&plan.divergence, &plan.checkpoint) {
                println!(
                    "  diverged:  {} on timeline {}; replay from {}",
                    d.lsn, d.tli, c.redo
                );
            }
            println!(
                "  progress:  {}",
                if j.files_done {
                    "files done; WAL and pg_control remain"
                } else {
                    "copying files"
                }
            );
            println!(
                "the directory will not start (global/pg_control is set aside) until the rebuild is finished: run gsbuild -D {} again, with the same or another server of the same cluster as source",
                dir.display()
            );
            ExitCode::from(2)
        }
    }
}

fn inspect(cmd: cli::Inspect) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match cmd {
        cli::Inspect::Control { datadir } => gsbuild::inspect::control::run(&datadir, &mut out)?,
        cli::Inspect::Wal {
            start,
            end,
            blocks,
            path,
        } => {
            let args = gsbuild::inspect::wal::WalArgs {
                path,
                start: start.map(|s| s.parse()).transpose()?,
                end: end.map(|s| s.parse()).transpose()?,
                blocks,
            };
            gsbuild::inspect::wal::run(&args, &mut out)?
        }
    }
    std::io::Write::flush(&mut out)?;
    Ok(())
}
