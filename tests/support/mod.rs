//! Real PostgreSQL clusters for the integration tests: find the installed server toolsets
//! (`.ci/install-pg.sh` puts majors 14–18 under `$GSBUILD_PG_ROOT`, default `/opt/gsbuild-pg`;
//! Debian's PostgreSQL 15 is used too), create clusters in temporary directories owned by an
//! unprivileged user, run SQL, make standbys, promote them. `Drop` stops the server and removes
//! the directory.
//!
//! Servers refuse to run as root: when the tests run as root, every server binary runs through
//! `runuser -u postgres`. Clusters listen on a unix socket in their own directory only, unless a
//! test asks for TCP on loopback.
#![allow(dead_code)]

pub mod opengauss;
pub mod proxy;
pub mod run;
pub mod scenario;
pub mod workload;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The unprivileged account servers run as when the tests run as root.
pub const SERVER_USER: &str = "postgres";

/// One installed server toolset.
#[derive(Clone, Debug)]
pub struct PgInstall {
    /// Major version (14..=18).
    pub major: u32,
    /// Directory holding initdb, pg_ctl, postgres, pg_waldump, pg_controldata, …
    pub bin: PathBuf,
    /// Short name for messages: "pg15", "debian-pg15".
    pub label: String,
}

impl PgInstall {
    /// Path of one of the toolset's programs.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
}

fn pg_root() -> PathBuf {
    std::env::var_os("GSBUILD_PG_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/gsbuild-pg".into())
}

/// Whether the tests run under CI (`CI` set and not "0" or "false"): missing tools fail there.
pub fn under_ci() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "0" && v != "false")
        .unwrap_or(false)
}

/// The toolset of `major` installed by `.ci/install-pg.sh`. Returns `None` (after saying so)
/// when it is missing outside CI; under `CI=true` a missing toolset fails the test.
pub fn install(major: u32) -> Option<PgInstall> {
    let bin = pg_root().join(major.to_string()).join("bin");
    if bin.join("postgres").is_file() {
        return Some(PgInstall {
            major,
            bin,
            label: format!("pg{major}"),
        });
    }
    missing(&format!("PostgreSQL {major} toolset at {}", bin.display()))
}

/// Debian's packaged PostgreSQL 15 (`/usr/lib/postgresql/15/bin`), when present.
pub fn debian_install() -> Option<PgInstall> {
    let bin = PathBuf::from("/usr/lib/postgresql/15/bin");
    if bin.join("postgres").is_file() && bin.join("pg_waldump").is_file() {
        return Some(PgInstall {
            major: 15,
            bin,
            label: "debian-pg15".into(),
        });
    }
    missing("Debian's PostgreSQL 15 at /usr/lib/postgresql/15/bin")
}

fn missing<T>(what: &str) -> Option<T> {
    if under_ci() {
        panic!("{what} is missing; CI must install it with .ci/install-pg.sh");
    }
    eprintln!("SKIPPED: {what} is missing (run .ci/install-pg.sh)");
    None
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A command that runs `program` as the server user (directly when not root).
pub fn server_command(program: impl AsRef<OsStr>) -> Command {
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.arg("-u").arg(SERVER_USER).arg("--").arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Runs `cmd`, panicking with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Gives `path` (recursively) to the server user when running as root.
pub fn chown_to_server_user(path: &Path) {
    if running_as_root() {
        run_ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{SERVER_USER}:"))
                .arg(path),
        );
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A fresh directory under the system temp dir, owned by the server user, removed on drop.
pub struct TestDir {
    /// The directory.
    pub path: PathBuf,
    keep: bool,
}

impl TestDir {
    /// Creates `…/gsbuild-tests/<name>-<pid>-<n>`.
    pub fn new(name: &str) -> TestDir {
        let base = std::env::temp_dir().join("gsbuild-tests");
        std::fs::create_dir_all(&base).expect("create test base dir");
        let _ =
            std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o1777));
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let path = base.join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test dir");
        chown_to_server_user(&path);
        TestDir {
            path,
            keep: std::env::var_os("GSBUILD_KEEP_TEST_DIRS").is_some(),
        }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A free TCP port on loopback (racy by nature, good enough for tests).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// How to create a cluster.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// `initdb -k` (data checksums).
    pub checksums: bool,
    /// WAL segment size in MiB (`initdb --wal-segsize`).
    pub wal_segsize_mb: u32,
    /// Also listen on 127.0.0.1 (a free port is chosen).
    pub tcp: bool,
    /// Lines appended to postgresql.conf.
    pub extra_conf: String,
    /// `initdb -g`: the data directory allows group access (0750 directories, 0640 files).
    pub group_access: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            checksums: true,
            wal_segsize_mb: 16,
            tcp: false,
            extra_conf: String::new(),
            group_access: false,
        }
    }
}

/// A PostgreSQL cluster in a temporary directory. Dropping it stops the server (immediate mode)
/// and removes the directory.
pub struct Cluster {
    /// The toolset that made it.
    pub install: PgInstall,
    /// Temporary directory holding `data/`, the socket and `server.log`.
    pub dir: TestDir,
    /// Port (also names the unix socket).
    pub port: u16,
    /// Whether TCP on 127.0.0.1 is on.
    pub tcp: bool,
    running: bool,
}

/// Settings every test cluster gets: enough WAL kept for rewinds and standbys, hints logged,
/// quiet logs, nothing listening beyond what the test asks for.
const BASE_CONF: &str = "
wal_level = replica
max_wal_senders = 10
wal_keep_size = '512MB'
wal_log_hints = on
full_page_writes = on
hot_standby = on
fsync = off
synchronous_commit = off
shared_buffers = '32MB'
max_connections = 30
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] '
";

impl Cluster {
    /// Creates a cluster with `initdb` (trust for local connections, replication allowed).
    pub fn init(install: &PgInstall, name: &str, opts: &InitOptions) -> Cluster {
        let dir = TestDir::new(&format!("{}-{name}", install.label));
        let data = dir.path.join("data");
        let mut cmd = server_command(install.tool("initdb"));
        cmd.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        cmd.arg(format!("--wal-segsize={}", opts.wal_segsize_mb));
        if opts.checksums {
            cmd.arg("-k");
        } else if install.major >= 18 {
            // initdb 18 turns checksums on by default.
            cmd.arg("--no-data-checksums");
        }
        if opts.group_access {
            cmd.arg("-g");
        }
        run_ok(&mut cmd);
        let port = if opts.tcp { free_port() } else { 5432 };
        let c = Cluster {
            install: install.clone(),
            dir,
            port,
            tcp: opts.tcp,
            running: false,
        };
        c.append_conf(BASE_CONF);
        c.append_conf(&c.connection_conf());
        c.append_conf(&opts.extra_conf);
        c.append_file(
            "pg_hba.conf",
            "local replication all trust\nhost replication all 127.0.0.1/32 trust\n",
        );
        c
    }

    fn connection_conf(&self) -> String {
        let listen = if self.tcp { "127.0.0.1" } else { "" };
        format!(
            "port = {}\nlisten_addresses = '{listen}'\nunix_socket_directories = '{}'\n",
            self.port,
            self.dir.path.display()
        )
    }

    /// The data directory.
    pub fn datadir(&self) -> PathBuf {
        self.dir.path.join("data")
    }

    /// Directory of the unix socket (use as `host=`).
    pub fn socket_dir(&self) -> &Path {
        &self.dir.path
    }

    /// A libpq connection string for this cluster over its unix socket.
    pub fn connstr(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={dbname}",
            self.dir.path.display(),
            self.port
        )
    }

    /// The server log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path.join("server.log")
    }

    /// Appends `text` to `postgresql.conf`.
    pub fn append_conf(&self, text: &str) {
        self.append_file("postgresql.conf", text);
    }

    /// Appends `text` to a file in the data directory.
    pub fn append_file(&self, name: &str, text: &str) {
        use std::io::Write;
        let path = self.datadir().join(name);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .expect("open conf");
        writeln!(f, "{text}").expect("append conf");
        chown_to_server_user(&path);
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&mut self) {
        let mut cmd = server_command(self.install.tool("pg_ctl"));
        cmd.arg("-D")
            .arg(self.datadir())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "120", "start"]);
        let out = cmd.output().expect("run pg_ctl start");
        if !out.status.success() {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            panic!(
                "pg_ctl start failed for {}: {}\n{log}",
                self.install.label,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.running = true;
    }

    /// Tries to start the server; true when PostgreSQL accepted the directory (the server is
    /// stopped again at once). A half-built target must be refused.
    pub fn starts(&mut self) -> bool {
        let out = server_command(self.install.tool("pg_ctl"))
            .arg("-D")
            .arg(self.datadir())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "30", "start"])
            .output()
            .expect("run pg_ctl");
        if out.status.success() {
            self.running = true;
            self.stop_mode("immediate");
            return true;
        }
        false
    }

    /// Stops the server with `mode` (`fast`, `immediate`, `smart`).
    pub fn stop_mode(&mut self, mode: &str) {
        if self.running {
            let mut cmd = server_command(self.install.tool("pg_ctl"));
            cmd.arg("-D")
                .arg(self.datadir())
                .args(["-w", "-t", "120", "-m", mode, "stop"]);
            run_ok(&mut cmd);
            self.running = false;
        }
    }

    /// Stops the server cleanly (fast shutdown, which writes a shutdown checkpoint).
    pub fn stop(&mut self) {
        self.stop_mode("fast");
    }

    /// Whether this handle started the server and has not stopped it.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Marks the cluster as running or not after a test started or stopped it by other means.
    pub fn set_running(&mut self, running: bool) {
        self.running = running;
    }

    /// Runs SQL through psql in `dbname` and returns its unaligned, tuples-only output.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        let mut cmd = server_command(self.install.tool("psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", dbname, "-c", sql]);
        let out = run_ok(&mut cmd);
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// Runs a multi-statement SQL script through psql (statements run one by one, outside a
    /// single transaction, so VACUUM and CREATE DATABASE work).
    pub fn psql_script(&self, dbname: &str, script: &str) -> String {
        let path = self
            .dir
            .path
            .join(format!("script-{}.sql", SEQ.fetch_add(1, Ordering::SeqCst)));
        std::fs::write(&path, script).expect("write script");
        chown_to_server_user(&path);
        let mut cmd = server_command(self.install.tool("psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", dbname, "-f"])
            .arg(&path);
        let out = run_ok(&mut cmd);
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// Makes a streaming standby of this (running) cluster with `pg_basebackup -R`.
    pub fn make_standby(&self, name: &str, tcp: bool) -> Cluster {
        self.make_standby_with(name, tcp, &[])
    }

    /// [`Cluster::make_standby`] with `pg_basebackup --tablespace-mapping` pairs (needed when
    /// both clusters with tablespaces live on one machine).
    pub fn make_standby_with(
        &self,
        name: &str,
        tcp: bool,
        mapping: &[(PathBuf, PathBuf)],
    ) -> Cluster {
        let dir = TestDir::new(&format!("{}-{name}", self.install.label));
        let data = dir.path.join("data");
        let mut cmd = server_command(self.install.tool("pg_basebackup"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-h")
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port.to_string());
        cmd.args([
            "-U",
            "postgres",
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ]);
        for (from, to) in mapping {
            cmd.arg(format!(
                "--tablespace-mapping={}={}",
                from.display(),
                to.display()
            ));
        }
        run_ok(&mut cmd);
        let port = if tcp { free_port() } else { 5432 };
        let c = Cluster {
            install: self.install.clone(),
            dir,
            port,
            tcp,
            running: false,
        };
        c.append_conf(&c.connection_conf());
        // pg_basebackup 16+ writes libpq options (sslcertmode, sslnegotiation) into
        // primary_conninfo that the older system libpq, which the wheels' walreceiver loads,
        // rejects; a plain one later in the file wins.
        c.append_file(
            "postgresql.auto.conf",
            &format!("primary_conninfo = '{}'", self.connstr("postgres")),
        );
        c
    }

    /// Promotes a standby and waits until it accepts writes.
    pub fn promote(&self) {
        let mut cmd = server_command(self.install.tool("pg_ctl"));
        cmd.arg("-D")
            .arg(self.datadir())
            .args(["-w", "-t", "120", "promote"]);
        run_ok(&mut cmd);
        for _ in 0..600 {
            if self.psql("postgres", "SELECT pg_is_in_recovery()") == "f" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "{} did not leave recovery after promote",
            self.install.label
        );
    }

    /// Waits until this standby has replayed at least `lsn` (an `X/X` string).
    pub fn wait_replay(&self, lsn: &str) {
        let sql = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
        for _ in 0..1200 {
            if self.psql("postgres", &sql) == "t" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{} did not replay up to {lsn}", self.install.label);
    }

    /// Runs `pg_controldata` on the data directory and returns its fields by name.
    pub fn controldata(&self) -> BTreeMap<String, String> {
        let mut cmd = Command::new(self.install.tool("pg_controldata"));
        cmd.arg(self.datadir()).env("LC_ALL", "C").env("TZ", "UTC");
        parse_controldata(&String::from_utf8_lossy(&run_ok(&mut cmd).stdout))
    }

    /// The WAL directory.
    pub fn wal_dir(&self) -> PathBuf {
        self.datadir().join("pg_wal")
    }
}

/// Splits `pg_controldata` output into `name → value` (the name is everything before the first
/// colon, the value is trimmed).
pub fn parse_controldata(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let mut cmd = server_command(self.install.tool("pg_ctl"));
            cmd.arg("-D")
                .arg(self.datadir())
                .args(["-w", "-t", "60", "-m", "immediate", "stop"]);
            let _ = cmd.output();
        }
    }
}

/// Path of the built `gsbuild` binary (cargo sets this for integration tests).
pub fn gsbuild_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gsbuild"))
}
