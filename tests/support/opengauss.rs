//! Real openGauss clusters for the integration tests: the server `.ci/install-opengauss.sh`
//! installs (under `$GSBUILD_OG_HOME`, default `/opt/opengauss-7.0.0-RC2`), run as the
//! unprivileged user `omm` (openGauss refuses root), on 127.0.0.1 with its HA port next to the
//! SQL port. A primary/standby pair is built as an operator does it (`gs_ctl build -b full`),
//! and diverged by a failover after which the old primary writes alone.
#![allow(dead_code)]

use super::{run_ok, under_ci, TestDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The OS user openGauss runs as in the tests, its initial user.
pub const OG_USER: &str = "omm";
/// The initial user's password (gs_initdb -w).
pub const OG_PASSWORD: &str = "Gauss_2024";

/// An installed openGauss server.
#[derive(Clone, Debug)]
pub struct OgInstall {
    /// `GAUSSHOME`.
    pub home: PathBuf,
}

impl OgInstall {
    /// A program of the installation.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.home.join("bin").join(name)
    }

    /// A command running `program` (a tool name) as [`OG_USER`] with the installation's
    /// environment.
    pub fn command(&self, program: &str) -> Command {
        self.command_of(&self.tool(program))
    }

    /// A command running the executable `program` as [`OG_USER`] with the installation's
    /// environment (`gs_ctl` on its `PATH`).
    pub fn command_of(&self, program: &Path) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", OG_USER, "--", "env"])
            .arg(format!("GAUSSHOME={}", self.home.display()))
            .arg(format!(
                "PATH={}:/usr/bin:/bin",
                self.home.join("bin").display()
            ))
            .arg(format!(
                "LD_LIBRARY_PATH={}",
                self.home.join("lib").display()
            ))
            .arg(program);
        c
    }
}

/// The openGauss installation, creating its OS user when needed. Outside CI a missing server
/// skips the test (after saying so); under `CI=true` it fails.
pub fn og_install() -> Option<OgInstall> {
    let home = std::env::var_os("GSBUILD_OG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/opengauss-7.0.0-RC2".into());
    if !home.join("bin/gaussdb").is_file() {
        let what = format!("openGauss server at {}", home.display());
        if under_ci() {
            panic!("{what} is missing; CI must install it with .ci/install-opengauss.sh");
        }
        eprintln!("SKIPPED: {what} is missing (run .ci/install-opengauss.sh)");
        return None;
    }
    let have_user = Command::new("id")
        .arg(OG_USER)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have_user {
        run_ok(Command::new("useradd").args(["-m", "-s", "/bin/bash", OG_USER]));
    }
    Some(OgInstall { home })
}

/// Gives `path` (recursively) to [`OG_USER`].
pub fn chown_to_og(path: &Path) {
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{OG_USER}:"))
            .arg(path),
    );
}

/// A TestDir owned by [`OG_USER`].
pub fn og_dir(name: &str) -> TestDir {
    let d = TestDir::new(name);
    chown_to_og(&d.path);
    d
}

/// One openGauss cluster in a temporary directory; dropping it stops the server.
pub struct OgCluster {
    /// The installation.
    pub install: OgInstall,
    /// Holds `data/` and the logs.
    pub dir: TestDir,
    /// The SQL port; the HA port is `port + 1`.
    pub port: u16,
    /// Its node name (`pgxc_node_name`).
    pub name: String,
    running: bool,
}

/// Settings of a pair's node (ports mirrored on the peer).
fn node_conf(port: u16, peer_port: u16) -> String {
    format!(
        "
listen_addresses = '127.0.0.1'
port = {port}
replconninfo1 = 'localhost=127.0.0.1 localport={lp} localheartbeatport={lh} localservice={ls} remotehost=127.0.0.1 remoteport={rp} remoteheartbeatport={rh} remoteservice={rs}'
wal_level = hot_standby
hot_standby = on
max_wal_senders = 4
wal_keep_segments = 64
full_page_writes = on
enable_incremental_checkpoint = on
most_available_sync = on
shared_buffers = 64MB
max_process_memory = 2GB
cstore_buffers = 16MB
max_connections = 50
remote_read_mode = off
",
        lp = port + 1,
        lh = port + 5,
        ls = port + 6,
        rp = peer_port + 1,
        rh = peer_port + 5,
        rs = peer_port + 6,
    )
}

/// A free port `p` with `p..p+7` all free, for a node's SQL, HA, heartbeat and service ports.
pub fn free_port_block() -> u16 {
    for _ in 0..200 {
        let p = super::free_port();
        if p > 60000 {
            continue;
        }
        let all_free = (0..8).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok());
        if all_free {
            return p;
        }
    }
    panic!("no block of 8 free ports on 127.0.0.1");
}

impl OgCluster {
    /// `gs_initdb` of a node named `name` listening on `port`, replicating with `peer_port`.
    pub fn init(install: &OgInstall, name: &str, port: u16, peer_port: u16) -> OgCluster {
        let dir = og_dir(&format!("og-{name}"));
        let data = dir.path.join("data");
        run_ok(install.command("gs_initdb").arg("-D").arg(&data).args([
            &format!("--nodename={name}"),
            "-w",
            OG_PASSWORD,
            "--locale=C",
            "-E",
            "UTF8",
        ]));
        let c = OgCluster {
            install: install.clone(),
            dir,
            port,
            name: name.into(),
            running: false,
        };
        c.append("postgresql.conf", &node_conf(port, peer_port));
        c.append(
            "pg_hba.conf",
            &format!(
                "host all {OG_USER} 127.0.0.1/32 trust\nhost replication {OG_USER} 127.0.0.1/32 trust\n"
            ),
        );
        c
    }

    /// An identical copy of this stopped node's data directory (`cp -a`), as a node of the
    /// same ports and name: only one of them may run at a time.
    pub fn copy_stopped(&self, name: &str) -> OgCluster {
        assert!(!self.running, "{} must be stopped to be copied", self.name);
        let dir = og_dir(&format!("og-{name}"));
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(self.datadir())
                .arg(dir.path.join("data")),
        );
        OgCluster {
            install: self.install.clone(),
            dir,
            port: self.port,
            name: self.name.clone(),
            running: false,
        }
    }

    /// The data directory.
    pub fn datadir(&self) -> PathBuf {
        self.dir.path.join("data")
    }

    /// Appends `text` to a file of the data directory.
    pub fn append(&self, file: &str, text: &str) {
        use std::io::Write;
        let path = self.datadir().join(file);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .expect("open");
        writeln!(f, "{text}").expect("append");
    }

    /// `gs_ctl` with `args` on this node's data directory.
    pub fn gs_ctl(&self, args: &[&str]) -> Output {
        let mut c = self.install.command("gs_ctl");
        c.args(args).arg("-D").arg(self.datadir());
        c.output().expect("run gs_ctl")
    }

    /// Starts the server in `mode` (`primary`, `standby`) and waits until it answers SQL.
    pub fn start(&mut self, mode: &str) {
        let out = self.gs_ctl(&["start", "-M", mode]);
        if !out.status.success() {
            panic!(
                "gs_ctl start -M {mode} failed for {}: {}{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.running = true;
        self.wait_sql();
    }

    /// Tries to start the server as a standby; true when openGauss accepted the directory (it
    /// is stopped again at once). A half-built target must be refused.
    pub fn starts(&mut self) -> bool {
        let out = self.gs_ctl(&["start", "-M", "standby"]);
        if out.status.success() && self.datadir().join("postmaster.pid").is_file() {
            self.running = true;
            self.stop_mode("immediate");
            return true;
        }
        false
    }

    /// Stops the server (fast).
    pub fn stop(&mut self) {
        self.stop_mode("fast");
    }

    /// Stops the server with `mode`.
    pub fn stop_mode(&mut self, mode: &str) {
        if self.running {
            let out = self.gs_ctl(&["stop", "-m", mode]);
            assert!(
                out.status.success(),
                "gs_ctl stop failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            self.running = false;
        }
    }

    /// Marks the server as running or not after something else started or stopped it.
    pub fn set_running(&mut self, running: bool) {
        self.running = running;
    }

    /// Runs SQL with gsql over the local socket; returns unaligned, tuples-only output.
    pub fn sql(&self, sql: &str) -> String {
        let out = self.try_sql(sql).unwrap_or_else(|e| panic!("{e}"));
        out.trim_end().to_string()
    }

    /// [`OgCluster::sql`], or the error output.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        let out = self
            .install
            .command("gsql")
            .args([
                "-d",
                "postgres",
                "-p",
                &self.port.to_string(),
                "-X",
                "-A",
                "-t",
                "-q",
                "-c",
                sql,
            ])
            .output()
            .expect("run gsql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "gsql on {} failed: {}{}\nquery: {sql}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Waits until the server answers SQL.
    pub fn wait_sql(&self) {
        for _ in 0..240 {
            if self.try_sql("select 1").is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("{} does not answer SQL", self.name);
    }

    /// `gs_ctl query`'s field `name` (`db_state`, `detail_information`, `local_role`, …) of
    /// the HA state.
    pub fn ha_state(&self, name: &str) -> Option<String> {
        let out = self.gs_ctl(&["query"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    }

    /// Waits until `gs_ctl query` shows the node as a Normal standby streaming from its
    /// primary (a restarted primary may leave it `Need repair`/`Disconnected` for a while).
    pub fn wait_normal_standby(&self) {
        for _ in 0..360 {
            if self.ha_state("local_role").as_deref() == Some("Standby")
                && self.ha_state("db_state").as_deref() == Some("Normal")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let out = self.gs_ctl(&["query"]);
        panic!(
            "{} did not become a Normal standby:\n{}",
            self.name,
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// A digest of every row of every permanent user table (name, count, md5 of the ordered
    /// rows; unlogged tables cannot be read on a standby).
    pub fn digest(&self) -> String {
        let tables = self.sql(
            "select schemaname || '.' || tablename from pg_tables \
              where schemaname not in ('pg_catalog', 'information_schema', 'dbe_perf', 'snapshot', \
                'sys', 'dbe_pldebugger', 'dbe_pldeveloper', 'dbe_sql_util', 'blockchain', 'db4ai', \
                'sqladvisor', 'dbe_task', 'dbe_application', 'dbe_output', 'dbe_random', 'dbe_lob', \
                'dbe_file', 'dbe_raw', 'dbe_utility', 'dbe_session', 'dbe_match', 'dbe_scheduler', \
                'dbe_sql', 'pkg_service', 'pkg_util', 'cstore', 'pg_toast') \
                and exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                  where n.nspname = schemaname and c.relname = tablename and c.relpersistence = 'p') \
              order by 1",
        );
        tables
            .lines()
            .map(|t| {
                let q = format!(
                    "select count(*) || ' ' || coalesce(md5(string_agg(md5(x::text), '' order by md5(x::text))), '-') from {t} x"
                );
                format!("{t} {}", self.sql(&q))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for OgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.gs_ctl(&["stop", "-m", "immediate"]);
        }
    }
}

/// A primary and its standby, built with `gs_ctl build -b full`, with `rows` rows written
/// on the primary and replayed by the standby.
pub fn og_pair(install: &OgInstall, rows: u32) -> (OgCluster, OgCluster) {
    let pport = free_port_block();
    let mut sport = free_port_block();
    while sport.abs_diff(pport) < 8 {
        sport = free_port_block();
    }
    let mut p = OgCluster::init(install, "p", pport, sport);
    let mut s = OgCluster::init(install, "s", sport, pport);
    p.start("primary");
    let out = s.gs_ctl(&["build", "-b", "full"]);
    assert!(
        out.status.success(),
        "gs_ctl build -b full: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.set_running(true);
    s.wait_sql();
    p.sql(&format!(
        "create table t1(id int primary key, v text, n int);
         insert into t1 select g, md5(g::text), 0 from generate_series(1, {rows}) g;
         create table t2(id int primary key, note text);
         insert into t2 values (1, 'written on the original primary');
         checkpoint;"
    ));
    s.wait_normal_standby();
    (p, s)
}

/// [`og_pair`], then the failover and the divergence: the primary stops, the standby is
/// promoted (`gs_ctl failover`) and writes, the old primary starts alone as a primary, writes
/// what the new one never sees, and stops. Returns (old primary, stopped; new primary, running).
pub fn og_diverged_pair(install: &OgInstall, rows: u32) -> (OgCluster, OgCluster) {
    let (mut p, mut s) = og_pair(install, rows);
    p.stop();
    let out = s.gs_ctl(&["failover"]);
    assert!(
        out.status.success(),
        "gs_ctl failover: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..120 {
        if s.try_sql("select pg_is_in_recovery()")
            .map(|v| v.trim() == "f")
            == Ok(true)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    s.sql(&format!(
        "insert into t1 select g, md5(g::text), 1 from generate_series({a}, {b}) g;
         update t1 set n = n + 10 where id <= 1000;
         insert into t2 values (2, 'written on the new primary');
         checkpoint;",
        a = rows + 1,
        b = rows + 10000
    ));
    p.start("primary");
    p.sql(&format!(
        "insert into t1 select g, 'old-primary-only', 2 from generate_series({a}, {b}) g;
         update t1 set v = 'diverged' where id between 2000 and 3000;
         delete from t1 where id between 5000 and 5100;
         insert into t2 values (3, 'written on the old primary only');
         checkpoint;",
        a = rows + 1,
        b = rows + 5000
    ));
    p.stop();
    let _ = &mut s;
    (p, s)
}
