//! `gsbuild demo`: the main job end to end on a throwaway pair made with the local PostgreSQL
//! binaries — a primary and a streaming standby; the standby is promoted; both sides write;
//! the old primary is rebuilt with gsbuild from the new one, started as its standby, and its
//! data compared with the new primary's.

use crate::cli::DemoArgs;
use anyhow::{bail, Context, Result};
use gsbuild::lsn::human_bytes;
use gsbuild::rewind::{Options, Reporter, SourceSpec};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Tables compared at the end, with a digest of their contents.
const COMPARE: &str = "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM (SELECT * FROM pgbench_accounts) x \
     UNION ALL SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM demo_after_split x";

struct Pg {
    bin: PathBuf,
    run_as: Option<String>,
}

impl Pg {
    fn cmd(&self, tool: &str) -> Command {
        let prog = self.bin.join(tool);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(prog);
                c
            }
            None => Command::new(prog),
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<String> {
        let out = self
            .cmd(tool)
            .args(args)
            .output()
            .with_context(|| format!("could not run {tool}"))?;
        if !out.status.success() {
            bail!(
                "{tool} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn sql(&self, sock: &Path, sql: &str) -> Result<String> {
        let host = sock.to_string_lossy();
        self.run(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-h",
                &host,
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        )
    }
}

fn find_bindir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(b) = explicit {
        return Ok(b.to_path_buf());
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    debian.retain(|b| b.join("initdb").is_file() && b.join("pg_basebackup").is_file());
    debian.sort_by_key(|b| {
        b.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
    });
    if let Some(b) = debian.pop() {
        return Ok(b);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|d| d.join("initdb").is_file() && d.join("pg_basebackup").is_file())
        .context("no PostgreSQL binaries found: pass --bindir DIR (the directory holding initdb, pg_ctl, postgres)")
}

struct Say;

impl Reporter for Say {
    fn info(&mut self, msg: &str) {
        println!("    gsbuild: {msg}");
    }
    fn step(&mut self, msg: &str) {
        println!("    gsbuild: {msg}");
    }
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    let bin = find_bindir(args.bindir.as_deref())?;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let pg = Pg {
        bin: bin.clone(),
        run_as: root.then(|| "postgres".to_string()),
    };
    let work = match &args.workdir {
        Some(w) => w.clone(),
        None => std::env::temp_dir().join(format!("gsbuild-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work)?;
    if root {
        let ok = Command::new("chown")
            .arg("postgres:")
            .arg(&work)
            .status()?
            .success();
        if !ok {
            bail!(
                "could not give {} to the postgres user (servers refuse to run as root)",
                work.display()
            );
        }
    }
    println!(
        "== gsbuild demo with {} in {}",
        bin.display(),
        work.display()
    );
    let result = scenario(&pg, &work);
    for d in ["old-primary", "new-primary"] {
        let _ = pg.run(
            "pg_ctl",
            &[
                "-D",
                &work.join(d).to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn start(pg: &Pg, data: &Path, sock: &Path) -> Result<()> {
    let log = sock.join("server.log");
    pg.run(
        "pg_ctl",
        &[
            "-D",
            &data.to_string_lossy(),
            "-l",
            &log.to_string_lossy(),
            "-w",
            "-t",
            "120",
            "start",
        ],
    )
    .map(|_| ())
}

fn conf(dir: &Path, sock: &Path) -> String {
    format!(
        "listen_addresses = ''\nunix_socket_directories = '{}'\nwal_log_hints = on\nwal_keep_size = '256MB'\nmax_wal_senders = 5\nhot_standby = on\nlogging_collector = off\n# demo cluster {}\n",
        sock.display(),
        dir.display()
    )
}

fn append(pg: &Pg, file: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .with_context(|| file.display().to_string())?;
    f.write_all(text.as_bytes())?;
    drop(f);
    if pg.run_as.is_some() {
        Command::new("chown").arg("postgres:").arg(file).status()?;
    }
    Ok(())
}

fn wait_for(pg: &Pg, sock: &Path, sql: &str) -> Result<()> {
    for _ in 0..600 {
        if pg.sql(sock, sql).map(|v| v == "t").unwrap_or(false) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("timed out waiting for: {sql}")
}

/// The demo's two clusters: the old primary (the target) and the new one (the source), each
/// with its socket directory.
struct Pair {
    old: PathBuf,
    new: PathBuf,
    old_sock: PathBuf,
    new_sock: PathBuf,
}

fn scenario(pg: &Pg, work: &Path) -> Result<()> {
    let pair = Pair {
        old: work.join("old-primary"),
        new: work.join("new-primary"),
        old_sock: work.join("old-sock"),
        new_sock: work.join("new-sock"),
    };
    make_pair(pg, &pair)?;
    diverge(pg, &pair)?;
    rebuild_and_verify(pg, &pair)
}

/// Steps 1–2: a primary with pgbench data and a streaming standby that caught up.
fn make_pair(pg: &Pg, pair: &Pair) -> Result<()> {
    let Pair {
        old,
        new,
        old_sock,
        new_sock,
    } = pair;
    for s in [old_sock, new_sock] {
        std::fs::create_dir_all(s)?;
        if pg.run_as.is_some() {
            Command::new("chown").arg("postgres:").arg(s).status()?;
        }
    }
    println!("1. primary: initdb, start, pgbench -i -s 5");
    pg.run(
        "initdb",
        &[
            "-D",
            &old.to_string_lossy(),
            "-k",
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ],
    )?;
    append(pg, &old.join("postgresql.conf"), &conf(old, old_sock))?;
    start(pg, old, old_sock)?;
    pg.run(
        "pgbench",
        &[
            "-i",
            "-s",
            "5",
            "-q",
            "-h",
            &old_sock.to_string_lossy(),
            "postgres",
        ],
    )?;
    pg.sql(
        old_sock,
        "CREATE TABLE demo_after_split (id int primary key, side text)",
    )?;
    println!("2. standby: pg_basebackup -R, start, catch up");
    let old_host = old_sock.to_string_lossy().to_string();
    pg.run(
        "pg_basebackup",
        &[
            "-D",
            &new.to_string_lossy(),
            "-h",
            &old_host,
            "-U",
            "postgres",
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        ],
    )?;
    append(pg, &new.join("postgresql.conf"), &conf(new, new_sock))?;
    append(
        pg,
        &new.join("postgresql.auto.conf"),
        &format!("primary_conninfo = 'host={old_host} user=postgres'\n"),
    )?;
    start(pg, new, new_sock)?;
    let lsn = pg.sql(old_sock, "SELECT pg_current_wal_lsn()")?;
    wait_for(
        pg,
        new_sock,
        &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'"),
    )?;
    Ok(())
}

/// Step 3: the standby is promoted and both sides write; the old primary stops.
fn diverge(pg: &Pg, pair: &Pair) -> Result<()> {
    let Pair {
        old,
        new_sock,
        old_sock,
        new,
    } = pair;
    let old_host = old_sock.to_string_lossy().to_string();
    println!("3. failover: promote the standby; both sides write");
    pg.run("pg_ctl", &["-D", &new.to_string_lossy(), "-w", "promote"])?;
    wait_for(pg, new_sock, "SELECT NOT pg_is_in_recovery()")?;
    pg.sql(
        new_sock,
        "INSERT INTO demo_after_split SELECT g, 'new primary' FROM generate_series(1, 500) g",
    )?;
    pg.run(
        "pgbench",
        &[
            "-n",
            "-t",
            "300",
            "-h",
            &new_sock.to_string_lossy(),
            "postgres",
        ],
    )?;
    pg.sql(old_sock, "INSERT INTO demo_after_split SELECT g, 'old primary (lost)' FROM generate_series(1, 800) g")?;
    pg.run("pgbench", &["-n", "-t", "300", "-h", &old_host, "postgres"])?;
    pg.sql(
        old_sock,
        "CREATE TABLE only_on_old_primary AS SELECT generate_series(1, 10000) g",
    )?;
    pg.run(
        "pg_ctl",
        &["-D", &old.to_string_lossy(), "-m", "fast", "-w", "stop"],
    )?;
    Ok(())
}

/// Steps 4–6: gsbuild rebuilds the old primary, which then follows the new one with the same
/// data.
fn rebuild_and_verify(pg: &Pg, pair: &Pair) -> Result<()> {
    let Pair {
        old,
        new_sock,
        old_sock,
        ..
    } = pair;
    println!(
        "4. gsbuild -D {} --source-server 'host={} user=postgres' -R",
        old.display(),
        new_sock.display()
    );
    let mut opts = Options::new(
        old,
        SourceSpec::Server(format!(
            "host={} user=postgres dbname=postgres",
            new_sock.display()
        )),
    );
    opts.write_recovery_conf = true;
    let t = Instant::now();
    let (plan, outcome) = gsbuild::rewind::run(opts, &mut Say)?;
    let outcome =
        outcome.context("gsbuild found nothing to rewind, which the demo does not expect")?;
    println!(
        "   rebuilt in {:.2?}: {} files acted on, {} blocks, {} of data and {} of WAL copied (the cluster holds {})",
        t.elapsed(),
        plan.files.len(),
        plan.totals.blocks,
        human_bytes(plan.totals.bytes_to_copy),
        human_bytes(outcome.wal_bytes),
        human_bytes(plan.totals.source_bytes)
    );
    println!("5. old primary starts as a standby of the new one and catches up");
    start(pg, old, old_sock)?;
    pg.sql(new_sock, "CHECKPOINT")?;
    let lsn = pg.sql(new_sock, "SELECT pg_current_wal_lsn()")?;
    wait_for(
        pg,
        old_sock,
        &format!("SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= '{lsn}'"),
    )?;
    let (a, b) = (pg.sql(new_sock, COMPARE)?, pg.sql(old_sock, COMPARE)?);
    let gone = pg.sql(
        old_sock,
        "SELECT count(*) FROM pg_class WHERE relname = 'only_on_old_primary'",
    )?;
    if a != b || gone != "0" {
        bail!("data differs after the rebuild:\nnew primary: {a}\nrebuilt:     {b}\nonly_on_old_primary present: {gone}");
    }
    println!("6. identical: pgbench_accounts and demo_after_split digests match; the old primary's lost writes are gone");
    println!("== demo passed");
    Ok(())
}
