//! The `gsbuild` binary: parses the command line and maps library errors to exit codes.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let result = match args.command {
        Some(cli::Command::Inspect(cmd)) => inspect(cmd),
        _ => Err(anyhow::anyhow!("rebuild is not wired yet")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gsbuild: error: {e:#}");
            ExitCode::FAILURE
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
