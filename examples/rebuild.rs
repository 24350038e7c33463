//! Using gsbuild as a library: build the plan for a diverged data directory, show it, then
//! carry it out with a progress callback.
//!
//! ```sh
//! cargo run --example rebuild -- /var/lib/postgresql/15/main 'host=new-primary user=replicator'
//! ```

use gsbuild::rewind::execute;
use gsbuild::rewind::{prepare, Options, Reporter, SourceSpec};

/// Prints messages and a percentage.
struct Progress {
    last_pct: u64,
}

impl Reporter for Progress {
    fn info(&mut self, msg: &str) {
        eprintln!("rebuild: {msg}");
    }

    fn step(&mut self, msg: &str) {
        eprintln!("rebuild: {msg}");
    }

    fn progress(&mut self, done: u64, total: u64) {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        if pct >= self.last_pct + 10 || done == total {
            self.last_pct = pct;
            eprintln!("rebuild: {pct}% of {total} bytes copied");
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(datadir), Some(connstr)) = (args.next(), args.next()) else {
        eprintln!("usage: rebuild DATADIR CONNSTR");
        std::process::exit(2);
    };
    let mut opts = Options::new(&datadir, SourceSpec::Server(connstr));
    opts.write_recovery_conf = true;
    let mut progress = Progress { last_pct: 0 };

    // Phases 1-5: nothing in DATADIR is changed yet.
    let prepared = prepare(opts, &mut progress)?;
    let plan = &prepared.plan;
    println!("{}", plan.to_json());
    if !plan.rewind_required() {
        return Ok(());
    }
    println!(
        "{} bytes to copy of {} in the source",
        plan.totals.bytes_to_copy, plan.totals.source_bytes
    );

    // Phases 6-7: copy, stream WAL, write backup_label and pg_control.
    let outcome = execute(prepared, &mut progress)?;
    println!(
        "done: {} bytes written, {} bytes of WAL; recovery must reach {} on timeline {}",
        outcome.bytes_written,
        outcome.wal_bytes,
        outcome.min_recovery_point,
        outcome.min_recovery_tli
    );
    Ok(())
}
