//! The side-by-side benchmark runner (`benches/side_by_side.sh`) on its tiny `smoke` scenario:
//! it builds a diverged pair with PostgreSQL 15, runs stock pg_rewind and this build's gsbuild
//! once each, checks both rebuilt targets against the source, and prints the table. A second
//! test gives it a "gsbuild" that damages the target and expects the runner to fail loudly, so
//! the check is known to bite. No timing is asserted.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TIME: &str = "/usr/bin/time";

/// PostgreSQL 15 and GNU time, or `None` (outside CI) after saying what is missing.
fn prerequisites() -> Option<support::PgInstall> {
    let pg = support::install(15)?;
    if !Path::new(TIME).is_file() {
        if support::under_ci() {
            panic!("GNU time ({TIME}) is missing; the benchmark runner measures with it");
        }
        eprintln!("SKIPPED: GNU time ({TIME}) is missing");
        return None;
    }
    Some(pg)
}

fn run_smoke(pg: &support::PgInstall, work: &Path, gsbuild: &Path) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/side_by_side.sh");
    Command::new("bash")
        .arg(script)
        .args(["--scenario", "smoke", "--rounds", "1"])
        .arg("--pg-bin")
        .arg(&pg.bin)
        .arg("--gsbuild")
        .arg(gsbuild)
        .arg("--workdir")
        .arg(work)
        .output()
        .expect("run bash benches/side_by_side.sh")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn side_by_side_smoke_measures_both_tools_and_checks_every_run() {
    let Some(pg) = prerequisites() else {
        return;
    };
    let dir = support::TestDir::new("bench-runner");
    let work = dir.path.join("w");
    let out = run_smoke(&pg, &work, &support::gsbuild_bin());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "runner failed:\n{stdout}\n{stderr}");
    for tool in ["pg_rewind", "gsbuild"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("== smoke-r1-{tool}: ")))
            .unwrap_or_else(|| panic!("no run line for {tool}:\n{stdout}"));
        assert!(
            line.contains("check passed: standby caught up with identical data"),
            "{line}"
        );
    }

    // The table: printed and written, one row for the scenario with every cell filled.
    let table = std::fs::read_to_string(work.join("results/table.md")).expect("read table.md");
    assert!(stdout.contains(&table), "table.md is not what was printed");
    let row = table
        .lines()
        .find(|l| l.starts_with("| smoke "))
        .unwrap_or_else(|| panic!("no smoke row in the table:\n{table}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cells.len(), 13, "{row}");
    assert!(cells[1..12].iter().all(|c| !c.is_empty()), "{row}");
    assert!(cells[4].ends_with(')') && cells[5].ends_with(')'), "{row}");
    assert!(cells[6].ends_with('×'), "{row}");

    // The raw runs: A then B, both checked, with a peak RSS and a byte count.
    let csv = std::fs::read_to_string(work.join("results/runs.csv")).expect("read runs.csv");
    let runs: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(runs.len(), 2, "{csv}");
    for (run, tool) in runs.iter().zip(["pg_rewind", "gsbuild"]) {
        assert_eq!(run.len(), 8, "{csv}");
        assert_eq!(&run[..3], &["smoke", "1", tool], "{csv}");
        let positive = |i: usize| run[i].parse::<f64>().map(|v| v > 0.0).unwrap_or(false);
        assert!(positive(4) && positive(5), "no peak RSS or bytes: {csv}");
        assert_eq!(run[7], "ok", "{csv}");
    }
    // The clusters are gone, the results stay.
    assert!(!work.join("smoke/data").exists());
}

#[test]
fn side_by_side_fails_loudly_when_a_rebuilt_target_differs_from_the_source() {
    let Some(pg) = prerequisites() else {
        return;
    };
    let dir = support::TestDir::new("bench-runner-bad");
    // The real gsbuild, then pgbench_accounts cut to 100 pages: a target that starts and
    // follows the source but has lost rows. The runner passes `-q -D DIR --source-server
    // CONN` first.
    let fake: PathBuf = dir.path.join("damaging-gsbuild");
    let script = format!(
        "#!/bin/sh\nset -e\n\"{gsbuild}\" \"$@\"\n\
         rel=$(\"{psql}\" -XAtq -d \"$5\" -c \"SELECT pg_relation_filepath('pgbench_accounts')\")\n\
         truncate -s 819200 \"$3/$rel\"\n",
        gsbuild = support::gsbuild_bin().display(),
        psql = pg.tool("psql").display(),
    );
    std::fs::write(&fake, script).expect("write the damaging gsbuild");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod the damaging gsbuild");
    let out = run_smoke(&pg, &dir.path.join("w"), &fake);
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "the runner accepted a damaged target:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr
            .contains("smoke-r1-gsbuild: DATA MISMATCH between the rebuilt target and the source"),
        "{stderr}"
    );
    assert!(stdout.contains("smoke-r1-pg_rewind: "), "{stdout}");
}
