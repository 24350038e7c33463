//! Running both tools on one built scenario and judging the results: stock pg_rewind on a
//! copy of the diverged target, gsbuild (`gsbuild rewind …`, pg_rewind's command line) on the
//! original, each with the same source and flags; then each result that a tool produced starts
//! as a standby of the source, replays to the primary, and must hold exactly the primary's
//! data (every row of every table of every database, large objects, sequences, prepared
//! transactions), with `pg_amcheck --heapallindexed` clean.

use super::build::{sync_lsn, tail, try_psql, try_wait_replay, Built, Node};
use super::gen::{Base, Restart, Scenario, SourceKind};
use crate::support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One run of a tool.
#[derive(Clone, Debug)]
pub struct ToolRun {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// stdout and stderr.
    pub output: String,
    /// Wall time.
    pub secs: f64,
    /// Killed by the watchdog.
    pub hung: bool,
}

impl ToolRun {
    /// Exit 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    /// The tool said nothing needed rewinding.
    pub fn no_rewind(&self) -> bool {
        self.output.contains("no rewind required")
    }
}

/// Runs `cmd` with a watchdog (support's), both streams kept: stdout, then stderr.
fn watched(label: &str, cmd: &mut Command, limit: Duration) -> ToolRun {
    let r = crate::support::run::watched(cmd, limit);
    let run = ToolRun {
        code: r.code,
        output: format!("{}{}", r.stdout, r.stderr),
        secs: r.elapsed.as_secs_f64(),
        hung: r.hung,
    };
    eprintln!(
        "--- {label}: exit {:?} after {:.1}s{}\n{}",
        run.code,
        run.secs,
        if run.hung {
            " (killed by the watchdog)"
        } else {
            ""
        },
        tail(&run.output, 25)
    );
    run
}

/// The flags both tools get (pg_rewind's command line).
fn flags(target: &Path, source: &Cluster, kind: SourceKind) -> Vec<String> {
    let mut v = vec![format!("--target-pgdata={}", target.display())];
    match kind {
        SourceKind::Server => {
            v.push(format!("--source-server={}", source.connstr("postgres")));
            v.push("--write-recovery-conf".into());
        }
        SourceKind::Local => v.push(format!("--source-pgdata={}", source.datadir().display())),
    }
    v.push("--no-sync".into());
    if std::env::var_os("GSBUILD_DIFF_DEBUG").is_some() {
        v.push("--debug".into());
    }
    v
}

const TOOL_LIMIT: Duration = Duration::from_secs(600);

/// Stock pg_rewind of the scenario's major, as the server user.
pub fn run_pg_rewind(pg: &PgInstall, target: &Path, source: &Cluster, kind: SourceKind) -> ToolRun {
    let mut cmd = server_command(pg.tool("pg_rewind"));
    cmd.args(flags(target, source, kind));
    watched("pg_rewind", &mut cmd, TOOL_LIMIT)
}

/// `gsbuild rewind …` with the major's binaries first on PATH (crash recovery runs its
/// `postgres`), as root or as the server user.
pub fn run_gsbuild(
    pg: &PgInstall,
    target: &Path,
    source: &Cluster,
    kind: SourceKind,
    as_root: bool,
    failpoint: Option<&str>,
) -> ToolRun {
    let path = format!(
        "{}:{}",
        pg.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = if as_root {
        Command::new("env")
    } else {
        server_command("env")
    };
    cmd.arg("-u")
        .arg("GSBUILD_FAILPOINT")
        .arg(format!("PATH={path}"));
    if let Some(fp) = failpoint {
        cmd.arg(format!("GSBUILD_FAILPOINT={fp}"));
    }
    cmd.arg(gsbuild_bin())
        .arg("rewind")
        .args(flags(target, source, kind));
    watched(
        &format!(
            "gsbuild{}",
            failpoint
                .map(|f| format!(" (failpoint {f})"))
                .unwrap_or_default()
        ),
        &mut cmd,
        TOOL_LIMIT,
    )
}

/// A cluster handle for a copy of `orig`'s data directory (cp -a: modes, owners, times),
/// with each absolute tablespace copied too and its link in the copy pointed at the copy.
pub fn copy_node(orig: &Node, role: &'static str) -> Node {
    // A Cluster owns its directory; initdb makes one cheaply, then the copy replaces its data.
    let c = Cluster::init(&orig.c.install, role, &InitOptions::default());
    std::fs::remove_dir_all(c.datadir()).expect("remove fresh data");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(orig.c.datadir())
            .arg(c.datadir()),
    );
    let mut ts_dirs = Vec::new();
    let tblspc = c.datadir().join("pg_tblspc");
    if let Ok(rd) = std::fs::read_dir(&tblspc) {
        for e in rd {
            let e = e.expect("entry");
            let meta = std::fs::symlink_metadata(e.path()).expect("stat");
            if !meta.file_type().is_symlink() {
                continue;
            }
            let to = std::fs::read_link(e.path()).expect("readlink");
            if !to.is_absolute() {
                continue;
            }
            let d = TestDir::new(&format!("ts-{role}"));
            run_ok(
                Command::new("cp")
                    .arg("-a")
                    .arg(format!("{}/.", to.display()))
                    .arg(&d.path),
            );
            std::fs::remove_file(e.path()).expect("unlink");
            std::os::unix::fs::symlink(&d.path, e.path()).expect("symlink");
            let _ = std::os::unix::fs::lchown(e.path(), Some(meta.uid()), Some(meta.gid()));
            ts_dirs.push(d);
        }
    }
    Node { c, ts_dirs, role }
}

/// What the verification of one result found.
#[derive(Clone, Debug, Default)]
pub struct Check {
    /// First failed stage (`None`: everything passed).
    pub failed: Option<String>,
    /// Details of the failure.
    pub detail: String,
    /// Rows (and large objects) the primary has that the result lacks.
    pub lost_rows: u64,
    /// Rows (and relations' rows) the result has that the primary lacks.
    pub extra_rows: u64,
}

impl Check {
    /// Passed.
    pub fn pass(&self) -> bool {
        self.failed.is_none()
    }
    fn fail(stage: &str, detail: impl Into<String>) -> Check {
        Check {
            failed: Some(stage.to_string()),
            detail: detail.into(),
            ..Default::default()
        }
    }
}

fn q(c: &Cluster, db: &str, sql: &str) -> Result<String, String> {
    try_psql(c, db, sql)
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn databases(c: &Cluster) -> Result<Vec<String>, String> {
    q(
        c,
        "postgres",
        "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1",
    )
    .map(|s| lines(&s))
}

fn relations(c: &Cluster, db: &str) -> Result<Vec<String>, String> {
    q(
        c,
        db,
        "SELECT format('%I.%I %s %s', n.nspname, c.relname, c.relpersistence, c.relkind) \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
            AND n.nspname NOT LIKE 'pg_toast%' AND c.relpersistence <> 't' ORDER BY 1",
    )
    .map(|s| lines(&s))
}

/// Permanent tables (and materialized views) of `db` on `c`.
fn tables(c: &Cluster, db: &str) -> Result<Vec<String>, String> {
    q(
        c,
        db,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'm') AND c.relpersistence = 'p' \
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .map(|s| lines(&s))
}

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `table → "digest count"` for the given tables.
fn digests(c: &Cluster, db: &str, names: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    // A few tables per query keeps each query short.
    for chunk in names.chunks(20) {
        let parts: Vec<String> = chunk
            .iter()
            .map(|t| {
                format!(
                    "SELECT {l} || ' ' || coalesce(md5(string_agg(md5(x::text), '' ORDER BY md5(x::text))), '-') || ' ' || count(*) FROM {t} x",
                    l = lit(t)
                )
            })
            .collect();
        let res = q(c, db, &parts.join(" UNION ALL "))?;
        for l in res.lines() {
            if let Some((name, rest)) = l.split_once(' ') {
                out.insert(name.to_string(), rest.to_string());
            }
        }
    }
    Ok(out)
}

/// md5s of every row of `table`.
fn row_hashes(c: &Cluster, db: &str, table: &str) -> Result<BTreeMap<String, u64>, String> {
    let s = q(c, db, &format!("SELECT md5(x::text) FROM {table} x"))?;
    let mut m = BTreeMap::new();
    for l in s.lines() {
        *m.entry(l.to_string()).or_insert(0) += 1;
    }
    Ok(m)
}

fn row_count(c: &Cluster, db: &str, table: &str) -> u64 {
    q(c, db, &format!("SELECT count(*) FROM {table}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Large objects: `oid md5` lines.
fn large_objects(c: &Cluster, db: &str) -> Result<Vec<String>, String> {
    q(
        c,
        db,
        "SELECT m.oid || ' ' || coalesce((SELECT md5(string_agg(p.data, ''::bytea ORDER BY p.pageno)) \
            FROM pg_largeobject p WHERE p.loid = m.oid), 'empty') FROM pg_largeobject_metadata m ORDER BY m.oid",
    )
    .map(|s| lines(&s))
}

/// Sequences: `name last_value is_called`.
fn sequences(c: &Cluster, db: &str) -> Result<Vec<(String, i64, bool)>, String> {
    let names = q(
        c,
        db,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind = 'S' AND c.relpersistence = 'p' ORDER BY 1",
    )?;
    let mut out = Vec::new();
    for n in lines(&names) {
        let v = q(
            c,
            db,
            &format!("SELECT last_value || ' ' || is_called FROM {n}"),
        )?;
        let (lv, called) = v.split_once(' ').unwrap_or(("0", "f"));
        out.push((
            n,
            lv.parse().unwrap_or(0),
            called == "t" || called == "true",
        ));
    }
    Ok(out)
}

/// Relations of `db` whose visibility map marks pages all-visible or all-frozen that hold
/// tuples which are not (`pg_check_visible`, `pg_check_frozen`): `name visible frozen`.
fn visibility_problems(c: &Cluster, db: &str) -> Result<Vec<String>, String> {
    q(
        c,
        db,
        "SELECT format('%I.%I', n.nspname, c.relname) || ' ' || v || ' ' || f FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace, \
           LATERAL (SELECT count(*) AS v FROM pg_check_visible(c.oid)) cv, \
           LATERAL (SELECT count(*) AS f FROM pg_check_frozen(c.oid)) cf \
          WHERE c.relkind IN ('r', 'm', 't') AND c.relpersistence = 'p' AND (v > 0 OR f > 0)",
    )
    .map(|s| lines(&s))
}

fn prepared(c: &Cluster) -> Result<Vec<String>, String> {
    q(
        c,
        "postgres",
        "SELECT gid FROM pg_prepared_xacts ORDER BY 1",
    )
    .map(|s| lines(&s))
}

/// Starts `c` (a rebuilt data directory), without panicking.
fn try_start(c: &mut Cluster) -> Result<(), String> {
    let out = server_command(c.install.tool("pg_ctl"))
        .arg("-D")
        .arg(c.datadir())
        .arg("-l")
        .arg(c.log_path())
        .args(["-w", "-t", "45", "start"])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        c.set_running(true);
        Ok(())
    } else {
        // pg_ctl may have left a postmaster behind after its timeout.
        c.set_running(true);
        c.stop_mode_quiet("immediate");
        Err(format!(
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            tail(
                &std::fs::read_to_string(c.log_path()).unwrap_or_default(),
                30
            )
        ))
    }
}

/// Stop modes that never panic.
trait QuietStop {
    fn stop_mode_quiet(&mut self, mode: &str);
}

impl QuietStop for Cluster {
    fn stop_mode_quiet(&mut self, mode: &str) {
        if self.is_running() {
            let _ = server_command(self.install.tool("pg_ctl"))
                .arg("-D")
                .arg(self.datadir())
                .args(["-w", "-t", "60", "-m", mode, "stop"])
                .output();
            self.set_running(false);
        }
    }
}

fn pg_amcheck(c: &Cluster) -> Result<(), String> {
    let out = server_command(c.install.tool("pg_amcheck"))
        .arg("-h")
        .arg(c.socket_dir())
        .arg("-p")
        .arg(c.port.to_string())
        .args(["-U", "postgres", "--all", "--heapallindexed"])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "pg_amcheck exit {}:\n{}{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 30),
            tail(&String::from_utf8_lossy(&out.stderr), 30)
        ))
    }
}

/// Compares result `r` (a standby that replayed everything) with `primary`.
fn compare(primary: &Cluster, r: &Cluster) -> Check {
    let mut check = Check::default();
    let mut problems: Vec<String> = Vec::new();
    let (pd, rd) = match (databases(primary), databases(r)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Check::fail("query", e),
    };
    if pd != rd {
        problems.push(format!("databases differ: primary {pd:?}, result {rd:?}"));
    }
    for db in pd.iter().filter(|d| rd.contains(d)) {
        let (pr, rr) = match (relations(primary, db), relations(r, db)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Check::fail("query", format!("{db}: {e}")),
        };
        if pr != rr {
            let a: BTreeSet<_> = pr.iter().collect();
            let b: BTreeSet<_> = rr.iter().collect();
            problems.push(format!(
                "relations differ in {db}: only on the primary {:?}, only in the result {:?}",
                a.difference(&b).collect::<Vec<_>>(),
                b.difference(&a).collect::<Vec<_>>()
            ));
        }
        let (pt, rt) = match (tables(primary, db), tables(r, db)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Check::fail("query", format!("{db}: {e}")),
        };
        for t in pt.iter().filter(|t| !rt.contains(t)) {
            check.lost_rows += row_count(primary, db, t);
        }
        for t in rt.iter().filter(|t| !pt.contains(t)) {
            check.extra_rows += row_count(r, db, t);
        }
        let both: Vec<String> = pt.iter().filter(|t| rt.contains(t)).cloned().collect();
        let (pdig, rdig) = match (digests(primary, db, &both), digests(r, db, &both)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                problems.push(format!("reading tables of {db}: {e}"));
                continue;
            }
        };
        for t in &both {
            if pdig.get(t) != rdig.get(t) {
                let (ph, rh) = match (row_hashes(primary, db, t), row_hashes(r, db, t)) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(e), _) | (_, Err(e)) => {
                        problems.push(format!("{db}.{t}: {e}"));
                        continue;
                    }
                };
                let mut lost = 0;
                let mut extra = 0;
                for (h, n) in &ph {
                    lost += n.saturating_sub(*rh.get(h).unwrap_or(&0));
                }
                for (h, n) in &rh {
                    extra += n.saturating_sub(*ph.get(h).unwrap_or(&0));
                }
                check.lost_rows += lost;
                check.extra_rows += extra;
                problems.push(format!(
                    "{db}.{t}: {lost} rows of the primary missing, {extra} rows not on the primary (primary {:?}, result {:?})",
                    pdig.get(t),
                    rdig.get(t)
                ));
            }
        }
        match (large_objects(primary, db), large_objects(r, db)) {
            (Ok(a), Ok(b)) if a != b => {
                let sa: BTreeSet<_> = a.iter().collect();
                let sb: BTreeSet<_> = b.iter().collect();
                check.lost_rows += sa.difference(&sb).count() as u64;
                problems.push(format!(
                    "large objects differ in {db}: only on the primary {:?}, only in the result {:?}",
                    sa.difference(&sb).collect::<Vec<_>>(),
                    sb.difference(&sa).collect::<Vec<_>>()
                ));
            }
            (Err(e), _) | (_, Err(e)) => problems.push(format!("large objects of {db}: {e}")),
            _ => {}
        }
        // Visibility map bits the heap contradicts (all-visible or all-frozen pages with tuples
        // that are not): a sequential scan would not notice, an index-only scan or VACUUM would.
        // The same contradiction on the primary itself is its own state, copied faithfully.
        match visibility_problems(r, db) {
            Ok(v) if !v.is_empty() => match visibility_problems(primary, db) {
                Ok(pv) if pv == v => eprintln!(
                    "note: the visibility map of {db} contradicts the heap on the primary too, identically: {v:?}"
                ),
                pv => problems.push(format!(
                    "visibility map of {db} contradicts the heap: {v:?} (on the primary: {pv:?})"
                )),
            },
            Err(e) => problems.push(format!("pg_visibility in {db}: {e}")),
            _ => {}
        }
        match (sequences(primary, db), sequences(r, db)) {
            (Ok(a), Ok(b)) => {
                let bm: BTreeMap<_, _> = b.iter().map(|(n, v, c)| (n.clone(), (*v, *c))).collect();
                for (n, v, called) in &a {
                    match bm.get(n) {
                        // Within the 32 values a nextval logs ahead (SEQ_LOG_VALS), either
                        // way: a standby shows the logged value, up to 32 ahead of the
                        // primary's; and a page the rebuild kept from before the recovery
                        // start holds the value actually reached, up to 32 behind a primary
                        // that shows the logged one (a promoted standby that never called
                        // nextval since).
                        Some((rv, rc)) if *called && *rc && (rv - v).abs() <= 32 => {}
                        Some((rv, rc)) if !*called && !*rc && rv == v => {}
                        other => problems.push(format!(
                            "sequence {db}.{n}: primary {v} (called {called}), result {other:?}"
                        )),
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => problems.push(format!("sequences of {db}: {e}")),
        }
    }
    // (Prepared transactions are compared after promotion: a hot standby lists none.)
    if !problems.is_empty() {
        check.failed = Some(
            if check.lost_rows > 0 {
                "lost-rows"
            } else {
                "contents"
            }
            .into(),
        );
        check.detail = problems.join("\n");
    }
    check
}

/// Starts the rebuilt `r` as a standby, waits until it replayed everything `primary` has, and
/// compares; then, with `promote`, promotes it and checks it as a primary. Stops it again.
pub fn verify(primary: &Cluster, r: &mut Cluster, promote: bool) -> Check {
    let t0 = Instant::now();
    let check = verify_inner(primary, r, promote);
    r.stop_mode_quiet(if check.pass() { "fast" } else { "immediate" });
    eprintln!(
        "verified {} in {:.1}s: {}",
        r.dir.path.display(),
        t0.elapsed().as_secs_f64(),
        match &check.failed {
            None => "pass".to_string(),
            Some(s) => format!("FAILED ({s}): {}", tail(&check.detail, 20)),
        }
    );
    check
}

fn verify_inner(primary: &Cluster, r: &mut Cluster, promote: bool) -> Check {
    if let Err(e) = try_start(r) {
        return Check::fail("start", e);
    }
    let lsn = sync_lsn(primary);
    if let Err(e) = try_wait_replay(r, &lsn, Duration::from_secs(15), Duration::from_secs(300)) {
        let log = std::fs::read_to_string(r.log_path()).unwrap_or_default();
        return Check::fail("replay", format!("{e}\n{}", tail(&log, 30)));
    }
    match try_psql(r, "postgres", "SELECT pg_is_in_recovery()") {
        Ok(s) if s == "t" => {}
        other => return Check::fail("standby", format!("not in recovery: {other:?}")),
    }
    let check = compare(primary, r);
    if !check.pass() {
        return check;
    }
    if let Err(e) = pg_amcheck(r) {
        return Check::fail("amcheck", e);
    }
    if promote {
        if let Err(e) = promoted_checks(primary, r) {
            let log = std::fs::read_to_string(r.log_path()).unwrap_or_default();
            return Check::fail("promoted", format!("{e}\n{}", tail(&log, 20)));
        }
    }
    check
}

/// The result promoted: it has exactly the primary's prepared transactions (a hot standby
/// does not list the ones it replayed: they become valid at the end of recovery) and they
/// commit, it accepts writes, its unlogged tables are empty and readable, and pg_amcheck
/// (which now checks unlogged relations too) is clean.
fn promoted_checks(primary: &Cluster, r: &Cluster) -> Result<(), String> {
    let out = server_command(r.install.tool("pg_ctl"))
        .arg("-D")
        .arg(r.datadir())
        .args(["-w", "-t", "120", "promote"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("promote: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let t0 = Instant::now();
    while try_psql(r, "postgres", "SELECT pg_is_in_recovery()")? != "f" {
        if t0.elapsed() > Duration::from_secs(60) {
            return Err("still in recovery after promote".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let want = prepared(primary)?;
    let got = prepared(r)?;
    if want != got {
        let log = std::fs::read_to_string(r.log_path()).unwrap_or_default();
        let twophase: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("two-phase") || l.contains("pg_twophase"))
            .collect();
        return Err(format!(
            "prepared transactions differ: primary {want:?}, promoted result {got:?}\n{}",
            twophase.join("\n")
        ));
    }
    for gid in got {
        try_psql(r, "postgres", &format!("COMMIT PREPARED {}", lit(&gid)))
            .map_err(|e| format!("COMMIT PREPARED {gid}: {e}"))?;
    }
    for db in databases(r)? {
        let unlogged = try_psql(
            r,
            &db,
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind = 'r' AND c.relpersistence = 'u'",
        )?;
        for t in lines(&unlogged) {
            let n = try_psql(r, &db, &format!("SELECT count(*) FROM {t}"))
                .map_err(|e| format!("unlogged {db}.{t}: {e}"))?;
            if n != "0" {
                return Err(format!("unlogged {db}.{t} has {n} rows after promotion"));
            }
        }
    }
    try_psql(
        r,
        "postgres",
        "CREATE TABLE after_promotion AS SELECT generate_series(1, 1000) g",
    )?;
    try_psql(r, "postgres", "CHECKPOINT")?;
    pg_amcheck(r)
}

/// Paths under `dir` (not following links) not owned by `uid`.
pub fn wrong_owner(dir: &Path, uid: u32) -> Vec<PathBuf> {
    let mut bad = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.uid() != uid {
            bad.push(p.clone());
        }
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                for e in rd.flatten() {
                    stack.push(e.path());
                }
            }
        }
    }
    bad
}

/// One tool's outcome.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The runs (more than one when gsbuild was interrupted and resumed).
    pub runs: Vec<ToolRun>,
    /// The verification (`None` when the tool failed and left nothing to start).
    pub check: Option<Check>,
    /// Extra problems found about the run itself (ownership).
    pub problems: Vec<String>,
}

impl Outcome {
    /// The last run.
    pub fn last(&self) -> &ToolRun {
        self.runs.last().expect("a run")
    }
    /// Exit 0 on the last run.
    pub fn exited_ok(&self) -> bool {
        self.last().ok()
    }
    /// Exit 0, verified, no problems.
    pub fn good(&self) -> bool {
        self.exited_ok() && self.check.as_ref().is_some_and(Check::pass) && self.problems.is_empty()
    }
    /// Rows lost in the result.
    pub fn lost_rows(&self) -> u64 {
        self.check.as_ref().map_or(0, |c| c.lost_rows)
    }
    /// One word.
    pub fn status(&self) -> String {
        let r = self.last();
        if r.hung {
            return "hung".into();
        }
        match r.code {
            None => "killed".into(),
            Some(0) if r.no_rewind() => "no-rewind-required".into(),
            Some(0) => "rewound".into(),
            Some(c) => format!("exit-{c}"),
        }
    }
    /// A line of the tool's error, when it failed.
    pub fn error_line(&self) -> Option<String> {
        let r = self.last();
        if r.ok() {
            return None;
        }
        r.output
            .lines()
            .rev()
            .find(|l| l.contains("error") || l.contains("fatal") || l.contains("FATAL"))
            .or_else(|| r.output.lines().last())
            .map(str::to_string)
    }
    /// JSON for the report.
    pub fn json(&self) -> serde_json::Value {
        let c = self.check.as_ref();
        serde_json::json!({
            "status": self.status(),
            "exit": self.last().code,
            "runs": self.runs.len(),
            "secs": self.runs.iter().map(|r| r.secs).sum::<f64>(),
            "error": self.error_line(),
            "verified": c.map(|c| c.pass()),
            "failed_stage": c.and_then(|c| c.failed.clone()),
            "detail": c.map(|c| tail(&c.detail, 10)).filter(|d| !d.is_empty()),
            "lost_rows": c.map(|c| c.lost_rows),
            "extra_rows": c.map(|c| c.extra_rows),
            "problems": self.problems,
        })
    }
}

/// The verdict of a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Both tools produced a correct result.
    Agree,
    /// Both refused (exit ≠ 0): nothing to compare, but unexpected in these scenarios.
    BothRefused,
    /// gsbuild correct, stock pg_rewind wrong, and that is a known pg_rewind limitation.
    Known(String),
    /// gsbuild correct, stock pg_rewind wrong, without a known explanation.
    PgRewindOnly(String),
    /// gsbuild's result is wrong or it failed (whatever pg_rewind did).
    GsbuildFailure(String),
    /// The harness could not build or check the scenario.
    HarnessError(String),
}

impl Verdict {
    /// Short name for the report.
    pub fn name(&self) -> String {
        match self {
            Verdict::Agree => "agree".into(),
            Verdict::BothRefused => "both-refused".into(),
            Verdict::Known(k) => format!("known:{k}"),
            Verdict::PgRewindOnly(_) => "unexplained:pg_rewind-failed".into(),
            Verdict::GsbuildFailure(_) => "gsbuild-failure".into(),
            Verdict::HarnessError(_) => "harness-error".into(),
        }
    }
    /// Whether the test must fail on it.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Verdict::GsbuildFailure(_)
                | Verdict::PgRewindOnly(_)
                | Verdict::BothRefused
                | Verdict::HarnessError(_)
        )
    }
}

/// Both results lost a prepared transaction to PostgreSQL 17+'s recovery: the rebuilt
/// directory holds the source's `pg_twophase` file of a transaction prepared after the
/// checkpoint recovery starts from; recovery tries to remove that "future" file under a name
/// with an underflowed epoch (`FFFFFFFF…`), fails, and then skips the PREPARE record because
/// the file exists. (Introduced by 5a1dfde8334b, "Make use FullTransactionId in 2PC
/// filenames"; see "Fix failure with incorrect epoch handling for 2PC files at recovery",
/// pgsql-hackers 2024-12.)
fn future_twophase_file_bug(o: &Outcome) -> bool {
    o.exited_ok()
        && o.check.as_ref().is_some_and(|c| {
            c.failed.as_deref() == Some("promoted")
                && c.detail.contains("prepared transactions differ")
                && c.detail.contains("removing future two-phase state file")
                && c.detail.contains("pg_twophase/FFFFFFFF")
        })
}

/// Classifies the two outcomes.
pub fn verdict(sc: &Scenario, g: &Outcome, p: &Outcome) -> Verdict {
    if !g.good() {
        let why = if !g.exited_ok() {
            format!(
                "gsbuild {} ({})",
                g.status(),
                g.error_line().unwrap_or_default()
            )
        } else if !g.problems.is_empty() {
            g.problems.join("; ")
        } else {
            let c = g.check.as_ref().expect("checked");
            format!(
                "gsbuild's result failed {} (lost rows {}, extra rows {}): {}",
                c.failed.as_deref().unwrap_or("?"),
                c.lost_rows,
                c.extra_rows,
                tail(&c.detail, 8)
            )
        };
        // A source that lacks WAL from the divergence on (a standby made from the new primary
        // after the promotion): no rebuild from it can start. gsbuild refuses; stock pg_rewind
        // "succeeds", and its result waits for WAL that the source removed or never had (or
        // fails for a reason of its own).
        let lacks_wal = g.last().output.contains("the source's WAL needed up to")
            || (g.last().output.contains("requested WAL segment")
                && g.last().output.contains("has already been removed"));
        let fresh_cascade = sc.base == Base::Cascade { from_new: true };
        if !g.exited_ok() && !p.exited_ok() {
            if fresh_cascade && lacks_wal {
                return Verdict::Known("source-lacks-wal(both refused)".into());
            }
            return Verdict::BothRefused;
        }
        if !g.exited_ok()
            && lacks_wal
            && p.exited_ok()
            && p.check.as_ref().is_some_and(|c| {
                matches!(c.failed.as_deref(), Some("start" | "replay"))
                    && (fresh_cascade || c.detail.contains("has already been removed"))
            })
        {
            return Verdict::Known("source-lacks-wal".into());
        }
        return Verdict::GsbuildFailure(why);
    }
    if p.good() {
        return Verdict::Agree;
    }
    // gsbuild is right and pg_rewind is not.
    let same_timeline = sc.base == Base::SameTimeline;
    let said_nothing_to_do =
        p.exited_ok() && (p.last().no_rewind() || p.last().output.contains("same timeline"));
    if said_nothing_to_do && p.check.as_ref().is_some_and(|c| !c.pass()) {
        // Its copy must then not match the source (or not start): otherwise the "difference"
        // is not the known one.
        if same_timeline {
            return Verdict::Known("same-timeline-no-rewind".into());
        }
        // pg_rewind takes the source's timeline from its control file: before 16 from the last
        // checkpoint only, so a source with no checkpoint (for a standby: no restartpoint) on
        // the new timeline yet looks like it is on the target's ("pg_rewind: Fix determining
        // TLI when server was just promoted", Heikki Linnakangas, in 16); 16+ also looks at
        // minRecoveryPointTLI, which a standby source that follows the new timeline updates
        // only when it flushes a page or makes a restartpoint.
        let standby_source = matches!(sc.base, Base::Cascade { .. } | Base::Chain { .. });
        if sc.major < 16 || standby_source {
            return Verdict::Known("pg_rewind-source-timeline-from-control-file".into());
        }
    }
    // pg_rewind copies the source's pg_twophase file of a transaction prepared after the
    // recovery start, and PostgreSQL 17+'s recovery loses the transaction (see
    // [`future_twophase_file_bug`]); gsbuild leaves such a file to replay.
    if future_twophase_file_bug(p) {
        return Verdict::Known("postgres17+-future-twophase-file-epoch(pg_rewind)".into());
    }
    // pg_rewind before 17 lists an in-place tablespace of a source server as a symbolic link
    // and fails on the target's directory ("Fix pg_rewind with in-place tablespaces when
    // source is remote", Michael Paquier, pgsql-hackers 2023-07, in 17 only).
    let err = p.error_line().unwrap_or_default();
    if sc.major < 17
        && sc.source == SourceKind::Server
        && sc.has_step("create_inplace_tablespace")
        && !p.exited_ok()
        && err.contains("pg_tblspc/")
        && (err.contains("is of different type in source and target")
            || err.contains("could not create directory"))
    {
        return Verdict::Known("pg_rewind<17-inplace-tablespace-remote".into());
    }
    Verdict::PgRewindOnly(format!(
        "pg_rewind {} ({}); check: {}",
        p.status(),
        p.error_line().unwrap_or_default(),
        p.check
            .as_ref()
            .map(|c| format!(
                "{} lost {} extra {}: {}",
                c.failed.as_deref().unwrap_or("pass"),
                c.lost_rows,
                c.extra_rows,
                tail(&c.detail, 5)
            ))
            .unwrap_or_else(|| "-".into())
    ))
}

/// Runs both tools on `b` and verifies their results.
pub fn run_tools(sc: &Scenario, b: &mut Built) -> (Outcome, Outcome) {
    let pg = b.nodes[b.target].c.install.clone();
    let copy = copy_node(&b.nodes[b.target], "prw");
    b.nodes.push(copy);
    let copy_ix = b.nodes.len() - 1;
    let target_dir = b.nodes[b.target].c.datadir();
    let uid = std::fs::metadata(&target_dir).expect("target").uid();

    let links_before = (
        tablespace_links(&b.nodes[copy_ix].c.datadir()),
        tablespace_links(&target_dir),
    );
    let local = sc.source == SourceKind::Local;
    let source_dir = b.nodes[b.source].c.datadir();
    let source_digest = || local.then(|| crate::support::scenario::tree_digest(&source_dir));
    let mut pproblems = Vec::new();
    let mut gproblems = Vec::new();

    // For the investigation of a "no rewind required": the timelines in the source's control
    // file as both tools find it.
    if let Ok(out) = Command::new(pg.tool("pg_controldata"))
        .arg(&source_dir)
        .env("LC_ALL", "C")
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        for l in text.lines().filter(|l| {
            l.contains("TimeLineID") || l.contains("timeline") || l.contains("cluster state")
        }) {
            eprintln!("source control file: {l}");
        }
    }

    // pg_rewind first, on the copy.
    let before = source_digest();
    let prun = run_pg_rewind(
        &pg,
        &b.nodes[copy_ix].c.datadir(),
        &b.nodes[b.source].c,
        sc.source,
    );
    if before != source_digest() {
        pproblems.push("changed the source data directory".to_string());
    }
    let restart_source = |b: &mut Built| {
        let s = &mut b.nodes[b.source].c;
        match sc.source {
            SourceKind::Server => {
                s.stop();
                s.start();
            }
            SourceKind::Local => {
                s.start();
                s.stop();
            }
        }
    };
    // Then gsbuild, on the original.
    let mut gruns = Vec::new();
    match &sc.restart {
        Restart::No => {}
        Restart::Between => restart_source(b),
        Restart::MidRun(fp) => {
            let before = source_digest();
            let r = run_gsbuild(
                &pg,
                &target_dir,
                &b.nodes[b.source].c,
                sc.source,
                sc.gsbuild_as_root,
                Some(fp),
            );
            // Killed by the failpoint: no exit code, or 137 through runuser.
            let killed = !r.hung && r.output.contains("killing myself");
            gruns.push(r);
            if before != source_digest() {
                gproblems.push("changed the source data directory".to_string());
            }
            restart_source(b);
            if !killed {
                eprintln!("failpoint {fp} was not reached");
            }
        }
    }
    let need_run = gruns
        .last()
        .is_none_or(|r| !r.hung && r.output.contains("killing myself"));
    if need_run {
        let before = source_digest();
        gruns.push(run_gsbuild(
            &pg,
            &target_dir,
            &b.nodes[b.source].c,
            sc.source,
            sc.gsbuild_as_root,
            None,
        ));
        if before != source_digest() {
            gproblems.push("changed the source data directory".to_string());
        }
    }
    // A tablespace link of the target must keep pointing at the target's own directory (on
    // this machine the source's location is another node's directory).
    if prun.ok() {
        pproblems.extend(links_changed(
            &links_before.0,
            &b.nodes[copy_ix].c.datadir(),
        ));
    }
    if gruns.last().unwrap().ok() {
        gproblems.extend(links_changed(&links_before.1, &target_dir));
    }
    if gruns.last().unwrap().ok() {
        let bad = wrong_owner(&target_dir, uid);
        if !bad.is_empty() {
            gproblems.push(format!(
                "{} paths not owned by uid {uid}: {:?}",
                bad.len(),
                &bad[..bad.len().min(5)]
            ));
        }
    }

    // Verify each result that exists.
    if sc.source == SourceKind::Local {
        b.nodes[b.source].c.start();
    }
    for db in lines(&b.nodes[b.primary].c.psql(
        "postgres",
        "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1",
    )) {
        b.nodes[b.primary].c.psql_script(
            &db,
            "CREATE EXTENSION IF NOT EXISTS amcheck;\nCREATE EXTENSION IF NOT EXISTS pg_visibility;",
        );
    }
    let mut results = Vec::new();
    for (ix, ok, no_rewind) in [
        (copy_ix, prun.ok(), prun.no_rewind()),
        (
            b.target,
            gruns.last().unwrap().ok(),
            gruns.last().unwrap().no_rewind(),
        ),
    ] {
        if !ok {
            results.push(None);
            continue;
        }
        if let Some(problem) = prepare_standby(b, ix, sc.source, no_rewind) {
            if ix == b.target {
                gproblems.push(problem);
            } else {
                pproblems.push(problem);
            }
        }
        let (primary, rest) = split_two(&mut b.nodes, b.primary, ix);
        // Prepared transactions can only be compared on a promoted result.
        let promote = sc.promote_after_verify || sc.has_step("prepare");
        results.push(Some(verify(&primary.c, &mut rest.c, promote)));
    }
    let gcheck = results.pop().unwrap();
    let pcheck = results.pop().unwrap();
    (
        Outcome {
            runs: gruns,
            check: gcheck,
            problems: gproblems,
        },
        Outcome {
            runs: vec![prun],
            check: pcheck,
            problems: pproblems,
        },
    )
}

/// Two distinct elements of a slice, mutably.
fn split_two(v: &mut [Node], a: usize, b: usize) -> (&mut Node, &mut Node) {
    assert_ne!(a, b);
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}

/// Makes result `ix` a standby of the source: its own port and socket back (both tools copy
/// the source's configuration), and for a local source (or a run that changed nothing, which
/// may not write one) the standby configuration by hand. A rewind with `-R` that wrote no
/// `standby.signal` is a problem of the tool's.
fn prepare_standby(b: &Built, ix: usize, kind: SourceKind, no_rewind: bool) -> Option<String> {
    let r = &b.nodes[ix].c;
    let s = &b.nodes[b.source].c;
    let signal = r.datadir().join("standby.signal").exists();
    let problem = (kind == SourceKind::Server && !no_rewind && !signal)
        .then(|| "rewound with --write-recovery-conf but no standby.signal".to_string());
    // Stock pg_rewind 16+ writes libpq options (sslcertmode, sslnegotiation) into
    // primary_conninfo that the older system libpq the walreceiver loads here rejects (as
    // with pg_basebackup -R, see make_standby_with): a plain one later in the file wins.
    // gsbuild's own primary_conninfo is kept and so tested.
    let plain_conninfo = ix != b.target;
    if kind == SourceKind::Local || !signal || plain_conninfo {
        if kind == SourceKind::Local || !signal {
            r.append_file("standby.signal", "");
        }
        r.append_file(
            "postgresql.auto.conf",
            &format!(
                "primary_conninfo = 'host={} port={} user=postgres'",
                s.socket_dir().display(),
                s.port
            ),
        );
    }
    crate::support::scenario::restore_connection_conf(r);
    problem
}

/// `pg_tblspc` entries that are symbolic links, with their targets.
fn tablespace_links(datadir: &Path) -> BTreeMap<String, PathBuf> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(datadir.join("pg_tblspc")) {
        for e in rd.flatten() {
            if let Ok(to) = std::fs::read_link(e.path()) {
                m.insert(e.file_name().to_string_lossy().into_owned(), to);
            }
        }
    }
    m
}

/// Links of `datadir`'s `pg_tblspc` that are new or point elsewhere than `before`.
fn links_changed(before: &BTreeMap<String, PathBuf>, datadir: &Path) -> Vec<String> {
    tablespace_links(datadir)
        .into_iter()
        .filter(|(oid, to)| before.get(oid) != Some(to))
        .map(|(oid, to)| {
            format!(
                "pg_tblspc/{oid} now links to {} (before: {:?})",
                to.display(),
                before.get(&oid)
            )
        })
        .collect()
}
