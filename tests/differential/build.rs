//! Building a scenario on real clusters: the nodes of its topology, the common history, the
//! split, both sides' writes, and the stopped (or crashed) target. What is left is a
//! [`Built`]: the target to rebuild, the source to rebuild it from, and the primary the
//! rebuilt target must end up matching.

use super::gen::{Action, Base, Scenario, SourceKind, Step};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A cluster and the directories of its absolute tablespaces (kept alive with it).
pub struct Node {
    /// The cluster.
    pub c: Cluster,
    /// Tablespace directories made for this node.
    pub ts_dirs: Vec<TestDir>,
    /// Role in the scenario, for messages.
    pub role: &'static str,
}

impl Node {
    fn new(c: Cluster, role: &'static str) -> Node {
        Node {
            c,
            ts_dirs: Vec::new(),
            role,
        }
    }
}

/// A built scenario, ready for the rebuilds.
pub struct Built {
    /// Every node (indexes below point into it).
    pub nodes: Vec<Node>,
    /// The target (stopped).
    pub target: usize,
    /// The source (running for a server source, stopped cleanly for a local one).
    pub source: usize,
    /// The primary whose data the rebuilt target must hold (the source or its upstream).
    pub primary: usize,
    /// The archive of `archive_command` (unarchived-tail scenarios; kept for its lifetime).
    #[allow(dead_code)]
    pub archive: Option<TestDir>,
    /// Seconds the build took.
    pub secs: f64,
}

/// Settings of every node (they inherit the first primary's postgresql.conf).
fn extra_conf(sc: &Scenario, archive: Option<&TestDir>) -> String {
    let mut s = String::from(
        "max_prepared_transactions = 10\n\
         autovacuum = off\n\
         checkpoint_timeout = '1h'\n\
         max_wal_size = '2GB'\n",
    );
    s.push_str(&format!(
        "wal_log_hints = {}\nwal_compression = '{}'\n",
        if sc.wal_log_hints { "on" } else { "off" },
        sc.wal_compression
    ));
    if sc.major >= 15 {
        s.push_str("allow_in_place_tablespaces = on\n");
    }
    if let Some(a) = archive {
        // Archives until the flag file appears (at the split), then fails for ever.
        s.push_str(&format!(
            "archive_mode = on\narchive_command = 'test ! -f {flag} && cp %p {dir}/%f'\n",
            flag = archive_flag(a).display(),
            dir = a.path.display()
        ));
    }
    s
}

fn archive_flag(a: &TestDir) -> PathBuf {
    a.path.join("STOP-ARCHIVING")
}

/// Runs one workload step on `node` (a primary).
pub fn run_step(node: &mut Node, step: &Step) {
    for a in &step.actions {
        match a {
            Action::Sql { db, sql } => {
                node.c.psql_script(db, sql);
            }
            Action::Pgbench(args) => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                support_pgbench(&node.c, &args);
            }
            Action::CreateAbsTablespace(name) => {
                let dir = TestDir::new(&format!("ts-{name}-{}", node.role));
                node.c.psql(
                    "postgres",
                    &format!("CREATE TABLESPACE {name} LOCATION '{}'", dir.path.display()),
                );
                node.ts_dirs.push(dir);
            }
        }
    }
}

/// `pgbench … postgres` against `c`.
fn support_pgbench(c: &Cluster, args: &[&str]) {
    let host = c.socket_dir().display().to_string();
    let port = c.port.to_string();
    let mut all = vec!["-h", &host, "-p", &port, "-U", "postgres"];
    all.extend_from_slice(args);
    all.push("postgres");
    run_ok(server_command(c.install.tool("pgbench")).args(&all));
}

fn run_steps(node: &mut Node, steps: &[Step]) {
    for s in steps {
        run_step(node, s);
    }
}

/// Makes everything written so far durable on primary `c` and returns its flush position: a
/// synchronous commit flushes all WAL before it, and a standby that replayed up to the returned
/// position has everything. (`synchronous_commit = off` otherwise; the insert position can lie
/// past a page header no record ends at.) The transaction must write WAL of its own before its
/// commit record: one that only took an xid (`txid_current()`) commits asynchronously whatever
/// `synchronous_commit` says, and left seed 209's standby behind the table its source workload
/// then updated.
pub fn sync_lsn(c: &Cluster) -> String {
    let out = c.psql_script(
        "postgres",
        "SET synchronous_commit = on;\nCREATE TEMP TABLE sync_point AS SELECT 1 AS x;\nSELECT pg_current_wal_flush_lsn();",
    );
    out.lines().last().unwrap_or_default().to_string()
}

/// Runs SQL without panicking.
pub fn try_psql(c: &Cluster, db: &str, sql: &str) -> Result<String, String> {
    let out = server_command(c.install.tool("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .arg("-h")
        .arg(c.socket_dir())
        .arg("-p")
        .arg(c.port.to_string())
        .args(["-U", "postgres", "-d", db, "-c", sql])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim_end().to_string())
    }
}

/// Waits until standby `c` has replayed `lsn`: an error when it stops making progress for
/// `stall` (or `limit` passes) before getting there, or stops answering.
pub fn try_wait_replay(
    c: &Cluster,
    lsn: &str,
    stall: Duration,
    limit: Duration,
) -> Result<(), String> {
    let t0 = Instant::now();
    let mut last = String::new();
    let mut last_change = Instant::now();
    let sql = format!(
        "SELECT coalesce(pg_last_wal_replay_lsn()::text, 'none') || ' ' || coalesce((pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn)::text, 'f')"
    );
    let mut failures = 0;
    loop {
        match try_psql(c, "postgres", &sql) {
            Ok(out) => {
                failures = 0;
                let (pos, done) = out.split_once(' ').unwrap_or((&out, "f"));
                if done == "true" || done == "t" {
                    return Ok(());
                }
                if pos != last {
                    last = pos.to_string();
                    last_change = Instant::now();
                }
            }
            Err(e) => {
                failures += 1;
                if failures > 20 {
                    return Err(format!("stopped answering while replaying to {lsn}: {e}"));
                }
            }
        }
        if last_change.elapsed() > stall || t0.elapsed() > limit {
            return Err(format!(
                "replay stalled at {last} (wanted {lsn}) for {:.0?}",
                last_change.elapsed()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`try_wait_replay`] that panics (while building, a stalled standby is a harness error).
pub fn wait_replay(c: &Cluster, lsn: &str) {
    if let Err(e) = try_wait_replay(c, lsn, Duration::from_secs(60), Duration::from_secs(300)) {
        let log = std::fs::read_to_string(c.log_path()).unwrap_or_default();
        panic!("{}: {e}\n{}", c.dir.path.display(), tail(&log, 30));
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A streaming standby of `up` (running), its absolute tablespaces mapped to directories of
/// its own.
fn standby_of(up: &Node, role: &'static str) -> Node {
    let locs = up.c.psql(
        "postgres",
        "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE pg_tablespace_location(oid) LIKE '/%'",
    );
    let mut dirs = Vec::new();
    let mut mapping = Vec::new();
    for loc in locs.lines().filter(|l| !l.is_empty()) {
        let d = TestDir::new(&format!("ts-{role}"));
        mapping.push((PathBuf::from(loc), d.path.clone()));
        dirs.push(d);
    }
    let c = up.c.make_standby_with(role, false, &mapping);
    Node {
        c,
        ts_dirs: dirs,
        role,
    }
}

/// Re-points stopped standby `c` at `up` (the walreceiver follows the latest timeline).
fn point_at(c: &Cluster, up: &Cluster) {
    c.append_file(
        "postgresql.auto.conf",
        &format!(
            "primary_conninfo = 'host={} port={} user=postgres'",
            up.socket_dir().display(),
            up.port
        ),
    );
}

/// Promotes, then makes a checkpoint at once (the end-of-recovery one is a spread checkpoint
/// that `checkpoint_timeout = 1h` would stretch for minutes; an explicit CHECKPOINT hurries it
/// and then makes one more on the new timeline).
fn promote(n: &Node, checkpoint_now: bool) {
    n.c.promote();
    if checkpoint_now {
        n.c.psql("postgres", "CHECKPOINT");
    }
}

/// Builds `sc`.
pub fn build(sc: &Scenario) -> Built {
    let t0 = Instant::now();
    let pg = install(sc.major).expect("toolset");
    let archive = sc.unarchived_tail.then(|| TestDir::new("archive"));
    let init = InitOptions {
        checksums: sc.checksums,
        wal_segsize_mb: sc.segsize_mb,
        tcp: false,
        extra_conf: extra_conf(sc, archive.as_ref()),
        group_access: false,
    };
    let ckpt_now = sc.checkpoint_at_promotion;
    let mut p = Node::new(Cluster::init(&pg, "p", &init), "p");
    p.c.start();
    run_steps(&mut p, &sc.pre);
    let mut nodes: Vec<Node>;
    let (target, source, primary);
    let stop_archiving = |archive: &Option<TestDir>| {
        if let Some(a) = archive {
            std::fs::write(archive_flag(a), "").expect("flag");
        }
    };
    match &sc.base {
        Base::Promote => {
            let mut s = standby_of(&p, "s");
            s.c.start();
            run_steps(&mut p, &sc.common);
            wait_replay(&s.c, &sync_lsn(&p.c));
            if sc.ckpt_before_split {
                p.c.psql("postgres", "CHECKPOINT");
                wait_replay(&s.c, &sync_lsn(&p.c));
            }
            if sc.restartpoint_before_promote {
                s.c.psql("postgres", "CHECKPOINT");
            }
            promote(&s, ckpt_now);
            stop_archiving(&archive);
            run_steps(&mut s, &sc.source_steps);
            if !ckpt_now {
                s.c.psql("postgres", "CHECKPOINT");
            }
            run_steps(&mut p, &sc.target_steps);
            nodes = vec![p, s];
            (target, source, primary) = (0, 1, 1);
        }
        Base::Cascade { from_new } => {
            let mut s = standby_of(&p, "s");
            s.c.start();
            let mut x = if *from_new {
                None
            } else {
                let mut x = standby_of(&p, "x");
                x.c.start();
                Some(x)
            };
            run_steps(&mut p, &sc.common);
            let lsn = sync_lsn(&p.c);
            wait_replay(&s.c, &lsn);
            if let Some(x) = &x {
                wait_replay(&x.c, &lsn);
            }
            if sc.ckpt_before_split {
                p.c.psql("postgres", "CHECKPOINT");
                let lsn = sync_lsn(&p.c);
                wait_replay(&s.c, &lsn);
                if let Some(x) = &x {
                    wait_replay(&x.c, &lsn);
                }
            }
            if sc.restartpoint_before_promote {
                s.c.psql("postgres", "CHECKPOINT");
            }
            if let Some(x) = &mut x {
                // Off the old primary before the promotion, and not ahead of the new one: the
                // old primary writes now and then even when idle (running-xacts records), and X
                // must not have replayed anything past the point where timeline 2 forks off.
                x.c.stop();
                wait_replay(&s.c, &sync_lsn(&p.c));
            }
            promote(&s, ckpt_now);
            let x = match x.take() {
                Some(mut x) => {
                    point_at(&x.c, &s.c);
                    x.c.start();
                    x
                }
                None => {
                    let mut x = standby_of(&s, "x");
                    x.c.start();
                    x
                }
            };
            stop_archiving(&archive);
            run_steps(&mut s, &sc.source_steps);
            if !ckpt_now {
                s.c.psql("postgres", "CHECKPOINT");
            }
            run_steps(&mut p, &sc.target_steps);
            wait_replay(&x.c, &sync_lsn(&s.c));
            nodes = vec![p, s, x];
            (target, source, primary) = (0, 2, 1);
        }
        Base::Chain {
            depth,
            restartpoint,
        } => {
            let roles = ["b", "d"];
            let mut chain: Vec<Node> = Vec::new();
            for role in roles.iter().take(*depth) {
                let up = chain.last().unwrap_or(&p);
                let mut n = standby_of(up, role);
                n.c.start();
                wait_replay(&n.c, &sync_lsn(&p.c));
                chain.push(n);
            }
            let mut c = standby_of(chain.last().unwrap(), "c");
            c.c.start();
            run_steps(&mut p, &sc.common);
            let lsn = sync_lsn(&p.c);
            for n in chain.iter().chain(std::iter::once(&c)) {
                wait_replay(&n.c, &lsn);
            }
            if sc.ckpt_before_split {
                p.c.psql("postgres", "CHECKPOINT");
                let lsn = sync_lsn(&p.c);
                for n in chain.iter().chain(std::iter::once(&c)) {
                    wait_replay(&n.c, &lsn);
                }
            }
            if *restartpoint {
                chain.last().unwrap().c.psql("postgres", "CHECKPOINT");
            }
            if sc.restartpoint_before_promote {
                c.c.psql("postgres", "CHECKPOINT");
            }
            promote(&c, ckpt_now);
            stop_archiving(&archive);
            run_steps(&mut p, &sc.source_steps);
            run_steps(&mut c, &sc.target_steps);
            if !ckpt_now {
                c.c.psql("postgres", "CHECKPOINT");
            }
            let lsn = sync_lsn(&p.c);
            for n in &chain {
                wait_replay(&n.c, &lsn);
            }
            let src = chain.len();
            nodes = vec![p];
            nodes.extend(chain);
            nodes.push(c);
            (target, source, primary) = (nodes.len() - 1, src, 0);
        }
        Base::SameTimeline => {
            let mut a = standby_of(&p, "a");
            let mut b = standby_of(&p, "b");
            a.c.start();
            b.c.start();
            run_steps(&mut p, &sc.common);
            let lsn = sync_lsn(&p.c);
            wait_replay(&a.c, &lsn);
            wait_replay(&b.c, &lsn);
            if sc.ckpt_before_split {
                p.c.psql("postgres", "CHECKPOINT");
                let lsn = sync_lsn(&p.c);
                wait_replay(&a.c, &lsn);
                wait_replay(&b.c, &lsn);
            }
            p.c.stop();
            // Both must replay the primary's shutdown checkpoint before their promotion, so
            // that both timelines 2 begin at the same position.
            let mut pos = (String::new(), String::new());
            let mut same = false;
            let mut agreed = 0;
            for _ in 0..600 {
                let now = (
                    a.c.psql("postgres", "SELECT pg_last_wal_replay_lsn()"),
                    b.c.psql("postgres", "SELECT pg_last_wal_replay_lsn()"),
                );
                agreed = if now.0 == now.1 && now == pos {
                    agreed + 1
                } else {
                    0
                };
                pos = now;
                if agreed >= 3 {
                    same = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(
                same,
                "the standbys did not reach the same position: {pos:?}"
            );
            if sc.restartpoint_before_promote {
                a.c.psql("postgres", "CHECKPOINT");
            }
            promote(&a, ckpt_now);
            promote(&b, ckpt_now);
            stop_archiving(&archive);
            run_steps(&mut a, &sc.source_steps);
            if !ckpt_now {
                a.c.psql("postgres", "CHECKPOINT");
            }
            run_steps(&mut b, &sc.target_steps);
            nodes = vec![p, a, b];
            (target, source, primary) = (2, 1, 1);
        }
    }
    if sc.unarchived_tail {
        // A few more segments, none archived.
        let t = &nodes[target].c;
        for i in 0..2 {
            t.psql_script(
                "postgres",
                &format!(
                    "INSERT INTO common SELECT g, 0, 'tail', 'tail' FROM generate_series({}, {}) g ON CONFLICT DO NOTHING;\nSELECT pg_switch_wal();",
                    900_000 + i * 1000,
                    900_999 + i * 1000
                ),
            );
        }
        let ready = ready_segments(&nodes[target].c.datadir());
        assert!(ready > 0, "no unarchived segment on the target");
    }
    if sc.crash_target {
        nodes[target].c.stop_mode("immediate");
    } else {
        nodes[target].c.stop();
    }
    // The source must not be ahead of the primary it follows (it is idle from here on).
    if source != primary {
        let lsn = sync_lsn(&nodes[primary].c);
        wait_replay(&nodes[source].c, &lsn);
    }
    if sc.source == SourceKind::Local {
        nodes[source].c.stop();
    }
    Built {
        nodes,
        target,
        source,
        primary,
        archive,
        secs: t0.elapsed().as_secs_f64(),
    }
}

/// WAL segments waiting to be archived.
fn ready_segments(datadir: &Path) -> usize {
    std::fs::read_dir(datadir.join("pg_wal/archive_status"))
        .map(|rd| {
            rd.filter(|e| {
                e.as_ref()
                    .map(|e| e.file_name().to_string_lossy().ends_with(".ready"))
                    .unwrap_or(false)
            })
            .count()
        })
        .unwrap_or(0)
}
