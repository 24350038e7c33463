//! The `gsbuild` binary: parses the command line and maps library errors to exit codes.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match args.command {
        cli::Command::Inspect(_) => {
            eprintln!("gsbuild: inspect is not built yet");
            std::process::ExitCode::FAILURE
        }
    }
}
