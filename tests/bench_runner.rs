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
        assert!(line.contains("caught-up standby at "), "{line}");
    }
    assert!(
        stdout.contains("== smoke-r1-gsbuild-dry-run: "),
        "no dry run line:\n{stdout}"
    );
    assert!(
        stdout.contains("== smoke-r1: durable write bandwidth "),
        "{stdout}"
    );

    // The table: printed and written, one row for the scenario with every cell filled.
    let table = std::fs::read_to_string(work.join("results/table.md")).expect("read table.md");
    assert!(stdout.contains(&table), "table.md is not what was printed");
    let row = table
        .lines()
        .find(|l| l.starts_with("| smoke "))
        .unwrap_or_else(|| panic!("no smoke row in the table:\n{table}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // scenario, target, pre-split WAL, the two tool times and their ratio, the two times to a
    // caught-up standby and their ratio, must move, dd, limit, gsbuild / limit, dry run and
    // pg_rewind / dry run, RSS ×2, fetched ×2, runs.
    assert_eq!(cells.len(), 22, "{row}");
    assert!(cells[1..21].iter().all(|c| !c.is_empty()), "{row}");
    for i in [4, 5, 7, 8, 14] {
        assert!(cells[i].ends_with(")"), "{i}: {row}");
    }
    for i in [6, 9, 13, 15] {
        assert!(cells[i].ends_with('×'), "{i}: {row}");
    }
    assert!(
        cells[11].ends_with("MB/s") && cells[12].ends_with(" s"),
        "{row}"
    );

    // The raw runs: A then B, both checked, with a peak RSS, a byte count, a time to a
    // caught-up standby no shorter than the tool's and the round's write bandwidth; then the
    // dry run.
    let csv = std::fs::read_to_string(work.join("results/runs.csv")).expect("read runs.csv");
    let runs: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(runs.len(), 3, "{csv}");
    for (run, tool) in runs.iter().zip(["pg_rewind", "gsbuild", "gsbuild-dry-run"]) {
        assert_eq!(run.len(), 12, "{csv}");
        assert_eq!(&run[..3], &["smoke", "1", tool], "{csv}");
        let num = |i: usize| run[i].parse::<f64>().unwrap_or(-1.0);
        assert!(num(3) > 0.0 && num(4) > 0.0, "no time or peak RSS: {csv}");
        if tool == "gsbuild-dry-run" {
            assert_eq!(run[7], "n/a", "{csv}");
            continue;
        }
        assert!(num(5) > 0.0, "no bytes: {csv}");
        assert_eq!(run[7], "ok", "{csv}");
        assert!(num(8) >= num(3), "caught up before the tool ended: {csv}");
        assert!(num(10) > 0.0, "no write bandwidth: {csv}");
    }
    assert!(runs[1][9].parse::<u64>().is_ok_and(|b| b > 0), "{csv}");
    // The clusters are gone, the results stay.
    assert!(!work.join("smoke/data").exists());
}

#[test]
fn side_by_side_fails_loudly_when_a_rebuilt_target_differs_from_the_source() {
    let Some(pg) = prerequisites() else {
        return;
    };
    let dir = support::TestDir::new("bench-runner-bad");
    // The real gsbuild leaving the target stopped (-q), then pgbench_accounts cut to 100
    // pages, then the target started as gsbuild -D would: a target that starts and follows
    // the source but has lost rows. The runner passes `-D DIR --source-server CONN` first.
    let fake: PathBuf = dir.path.join("damaging-gsbuild");
    let script = format!(
        "#!/bin/sh\nset -e\n\"{gsbuild}\" -q \"$@\"\n\
         rel=$(\"{psql}\" -XAtq -d \"$4\" -c \"SELECT pg_relation_filepath('pgbench_accounts')\")\n\
         truncate -s 819200 \"$2/$rel\"\n\
         echo 'gsbuild: starting \"'\"$2\"'\" as a standby' >&2\n\
         \"{pg_ctl}\" -D \"$2\" -l \"$2/gsbuild-server.log\" -w start >/dev/null\n",
        gsbuild = support::gsbuild_bin().display(),
        psql = pg.tool("psql").display(),
        pg_ctl = pg.tool("pg_ctl").display(),
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
