//! Faults during a rebuild (issue 5), with real servers: the network (a loopback proxy that
//! cuts connections or stops forwarding), the source restarted, demoted and promoted, and the
//! target's disk filling up.
//!
//! The contract every case checks:
//! - a failure before the point of no return (pre-flight, listing) leaves the target
//!   byte-for-byte, mode, owner and mtime as it was;
//! - a failure after it leaves `gsbuild.journal`, no `global/pg_control` (set aside as
//!   `global/pg_control.gsbuild-orig`), and a directory `pg_ctl start` refuses;
//! - re-running the same command completes the rebuild, and the target then starts as a
//!   standby and holds exactly the source's data;
//! - the error names the peer (or the file) at fault, and the exit code is 1.
//!
//! Every run of the binary has a watchdog: a hang fails the test instead of blocking CI.

mod support;

use std::path::Path;
use std::thread;
use std::time::Duration;
use support::proxy::{Action, Proxy, Trigger};
use support::run::{copy_dir, gsbuild, s, Run};
use support::scenario::*;
use support::*;

/// Longest any single run may take before the watchdog calls it a hang.
const WATCHDOG: Duration = Duration::from_secs(120);

/// What a rebuild's SQL session sends to copy ranges (server.rs's fetch query).
const FETCH: &[u8] = b"pg_read_binary_file(path, begin, len, true)";
/// The file listing query.
const LISTING: &[u8] = b"WITH RECURSIVE files";

/// A primary and a standby listening on TCP, with `setup` run on the primary before the copy.
fn tcp_pair(
    pg: &PgInstall,
    name: &str,
    init: &InitOptions,
    setup: impl FnOnce(&Cluster),
) -> (Cluster, Cluster) {
    let init = InitOptions {
        tcp: true,
        ..init.clone()
    };
    let mut old = Cluster::init(pg, &format!("{name}-old"), &init);
    old.start();
    setup(&old);
    let mut new = old.make_standby(&format!("{name}-new"), true);
    new.start();
    new.wait_replay(&current_lsn(&old));
    (old, new)
}

/// The state a failure after the point of no return must leave.
fn assert_interrupted(case: &str, c: &mut Cluster) {
    let d = c.datadir();
    assert!(d.join("gsbuild.journal").is_file(), "{case}: no journal");
    assert!(
        d.join("global/pg_control.gsbuild-orig").is_file(),
        "{case}: pg_control not set aside"
    );
    assert!(
        !d.join("global/pg_control").exists(),
        "{case}: pg_control present"
    );
    assert!(!c.starts(), "{case}: a half-built target started");
}

/// A failed run: exit code 1 and every needle in stderr.
fn assert_failed(case: &str, run: &Run, needles: &[&str]) {
    assert!(!run.hung, "{case}: gsbuild hung\n{run}");
    assert_eq!(run.code, Some(1), "{case}: {run}");
    for n in needles {
        assert!(run.stderr.contains(n), "{case}: {n:?} missing in\n{run}");
    }
}

/// Re-runs `args` to completion and checks the target converged to `primary`.
fn finish(case: &str, args: &[String], primary: &Cluster, target: &mut Cluster) {
    let run = gsbuild(args, &[], WATCHDOG);
    assert_eq!(run.code, Some(0), "{case}: re-run failed\n{run}");
    assert!(
        run.stderr.contains("resuming the interrupted rebuild"),
        "{case}: {run}"
    );
    assert!(!target.datadir().join("gsbuild.journal").exists(), "{case}");
    verify_standby(primary, target);
    assert_lost_gone(target);
    target.stop();
}

/// Runs gsbuild in the background while the test acts on the proxy or the source.
fn spawn(args: &[String]) -> thread::JoinHandle<Run> {
    let args = args.to_vec();
    thread::spawn(move || gsbuild(&args, &[], WATCHDOG))
}

/// Makes `c` a standby (of nobody reachable): stop, `standby.signal`, start. Its timeline
/// stays; its WAL position is now its replay position.
fn demote(c: &mut Cluster) {
    c.stop();
    c.append_file("standby.signal", "");
    c.append_file("postgresql.auto.conf", "primary_conninfo = ''");
    c.start();
    assert_eq!(c.psql("postgres", "SELECT pg_is_in_recovery()"), "t");
}

fn timeline(c: &Cluster) -> String {
    c.psql(
        "postgres",
        "SELECT timeline_id FROM pg_control_checkpoint()",
    )
}

#[test]
fn network_faults_pg16() {
    let Some(pg) = install(16) else { return };
    let (mut old, mut new) = tcp_pair(&pg, "netfault", &InitOptions::default(), small_setup);
    new.promote();
    small_diverge(&new, &old);
    // Enough to copy that a fault lands in the middle of the transfer.
    new.psql(
        "postgres",
        "CREATE TABLE bulk AS SELECT g, repeat(md5(g::text), 6) AS pad FROM generate_series(1, 200000) g",
    );
    old.stop();
    let target = old.datadir();
    let pristine_dir = TestDir::new("netfault-pristine");
    let pristine = pristine_dir.path.join("data");
    copy_dir(&target, &pristine);
    let proxy = Proxy::start(new.port);
    let peer = format!("127.0.0.1:{}", proxy.port);
    let conn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
        proxy.port
    );
    let args: Vec<String> = vec![
        "-q".into(),
        "-D".into(),
        s(&target),
        "--source-server".into(),
        conn.clone(),
        "-R".into(),
        "--timeout".into(),
        "3".into(),
    ];
    let journal = target.join("gsbuild.journal");
    let after_no_return = move || journal.exists();
    let mut faults = 0;

    // 1. The replication session stops answering before anything was written (IDENTIFY_SYSTEM,
    // the first replication command): the read timeout ends the run, the target is untouched.
    let before = tree_digest(&target);
    proxy.arm(Trigger {
        name: "silent-replication",
        pattern: b"IDENTIFY_SYSTEM".to_vec(),
        when: None,
        after_bytes: 0,
        action: Action::Stall,
    });
    let run = gsbuild(&args, &[], WATCHDOG);
    assert!(proxy.fired("silent-replication"));
    proxy.resume();
    assert_failed("silent replication session", &run, &[&peer]);
    assert_same_tree(&before, &tree_digest(&target), "silent replication session");
    faults += 1;

    // 2. Every connection cut in the middle of the block copy.
    proxy.arm(Trigger {
        name: "cut-copy",
        pattern: FETCH.to_vec(),
        when: None,
        after_bytes: 2 << 20,
        action: Action::Cut,
    });
    let run = gsbuild(&args, &[], WATCHDOG);
    assert!(proxy.fired("cut-copy"));
    assert_failed("connection cut mid-copy", &run, &[&peer]);
    assert_interrupted("connection cut mid-copy", &mut old);
    finish("connection cut mid-copy", &args, &new, &mut old);
    faults += 1;

    // 3. The source restarted while the copy is in progress (the proxy holds the copy still
    // while pg_ctl restarts the server, so the restart lands mid-transfer).
    copy_dir(&pristine, &target);
    proxy.arm(Trigger {
        name: "restart-copy",
        pattern: FETCH.to_vec(),
        when: None,
        after_bytes: 1 << 20,
        action: Action::Stall,
    });
    let h = spawn(&args);
    assert!(
        proxy.wait_fired("restart-copy", WATCHDOG),
        "the copy never started"
    );
    run_ok(
        server_command(pg.tool("pg_ctl"))
            .arg("-D")
            .arg(new.datadir())
            .arg("-l")
            .arg(new.log_path())
            .args(["-w", "-t", "60", "-m", "fast", "restart"]),
    );
    proxy.resume();
    let run = h.join().expect("gsbuild thread");
    assert_failed("source restarted mid-copy", &run, &[&peer]);
    assert_interrupted("source restarted mid-copy", &mut old);
    finish("source restarted mid-copy", &args, &new, &mut old);
    faults += 1;

    // 4. The source stops answering while its WAL is streamed (after the copy): the
    // replication session's read timeout ends the run. Before the re-run, the source is
    // demoted to a standby; the rebuild resumes from it, and the target then follows it
    // through its next promotion (timeline 3).
    copy_dir(&pristine, &target);
    let when = after_no_return.clone();
    proxy.arm(Trigger {
        name: "silent-wal",
        pattern: b"START_REPLICATION".to_vec(),
        when: Some(Box::new(when)),
        after_bytes: 64 << 10,
        action: Action::Stall,
    });
    let run = gsbuild(&args, &[], WATCHDOG);
    assert!(proxy.fired("silent-wal"));
    proxy.resume();
    assert_failed("silent WAL stream", &run, &[&peer]);
    assert_interrupted("silent WAL stream", &mut old);
    demote(&mut new);
    let run = gsbuild(&args, &[], WATCHDOG);
    assert_eq!(run.code, Some(0), "resume from a demoted source: {run}");
    assert!(
        run.stderr.contains("resuming the interrupted rebuild"),
        "{run}"
    );
    new.promote();
    assert_eq!(timeline(&new), "3");
    verify_standby(&new, &mut old);
    assert_lost_gone(&old);
    old.stop();
    faults += 2;

    // 5. Cut mid-copy again; before the re-run the source switches to a new timeline
    // (promoted again: timeline 4). The rebuild resumes along the longer history.
    copy_dir(&pristine, &target);
    proxy.arm(Trigger {
        name: "cut-before-promotion",
        pattern: FETCH.to_vec(),
        when: None,
        after_bytes: 1 << 20,
        action: Action::Cut,
    });
    let run = gsbuild(&args, &[], WATCHDOG);
    assert!(proxy.fired("cut-before-promotion"));
    assert_failed("connection cut before a promotion", &run, &[&peer]);
    assert_interrupted("connection cut before a promotion", &mut old);
    demote(&mut new);
    new.promote();
    assert_eq!(timeline(&new), "4");
    pgbench(&new, &["-n", "-t", "50"]);
    finish("source promoted between runs", &args, &new, &mut old);
    faults += 2;
    eprintln!(
        "network faults: {faults} injected over {} connections, every run ended with a clear error or converged",
        proxy.connections()
    );
}

/// The SQL session stops answering: during the listing (before the point of no return: the
/// target stays as it was), then in the middle of the block copy (after it: the re-run
/// resumes). `--timeout 3` must end both runs with an error naming the server; the watchdog
/// turns a hang into a failure.
#[test]
fn unresponsive_sql_source_pg16() {
    let Some(pg) = install(16) else { return };
    let (mut old, mut new) = tcp_pair(&pg, "silentsql", &InitOptions::default(), small_setup);
    new.promote();
    small_diverge(&new, &old);
    new.psql(
        "postgres",
        "CREATE TABLE bulk AS SELECT g, repeat(md5(g::text), 6) AS pad FROM generate_series(1, 100000) g",
    );
    old.stop();
    let target = old.datadir();
    let proxy = Proxy::start(new.port);
    let peer = format!("127.0.0.1:{}", proxy.port);
    let args: Vec<String> = vec![
        "-q".into(),
        "-D".into(),
        s(&target),
        "--source-server".into(),
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
            proxy.port
        ),
        "-R".into(),
        "--timeout".into(),
        "3".into(),
    ];
    for (case, pattern, after_bytes) in [
        ("silent during the listing", LISTING, 0),
        ("silent during the copy", FETCH, 1 << 20),
    ] {
        proxy.arm(Trigger {
            name: case,
            pattern: pattern.to_vec(),
            when: None,
            after_bytes,
            action: Action::Stall,
        });
        let before = tree_digest(&target);
        let run = gsbuild(&args, &[], WATCHDOG);
        assert!(proxy.fired(case), "{case}");
        proxy.resume();
        assert_failed(case, &run, &[&peer, "--timeout"]);
        if pattern == LISTING {
            assert_same_tree(&before, &tree_digest(&target), case);
        } else {
            assert_interrupted(case, &mut old);
        }
    }
    finish("silent SQL session", &args, &new, &mut old);
    new.stop();
}

/// A tmpfs mounted over a cluster's data directory (holding a copy of it); `Drop` stops any
/// server on it and unmounts.
struct SmallDisk {
    mountpoint: std::path::PathBuf,
    pg_ctl: std::path::PathBuf,
}

impl SmallDisk {
    /// Moves `c`'s (stopped) data directory onto a tmpfs of `mb` MiB.
    fn mount_under(c: &Cluster, mb: u64) -> SmallDisk {
        let data = c.datadir();
        let aside = c.dir.path.join("data.orig");
        std::fs::rename(&data, &aside).expect("move data directory aside");
        std::fs::create_dir(&data).expect("mount point");
        let meta = std::fs::metadata(&aside).expect("stat data");
        use std::os::unix::fs::MetadataExt;
        run_ok(
            std::process::Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={mb}m,mode=0700,uid={},gid={}", meta.uid(), meta.gid()),
                    "tmpfs",
                ])
                .arg(&data),
        );
        let disk = SmallDisk {
            mountpoint: data.clone(),
            pg_ctl: c.install.tool("pg_ctl"),
        };
        run_ok(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", aside.display()))
                .arg(&data),
        );
        std::fs::remove_dir_all(&aside).expect("remove the original");
        disk
    }

    fn resize(&self, mb: u64) {
        run_ok(
            std::process::Command::new("mount")
                .args(["-o", &format!("remount,size={mb}m")])
                .arg(&self.mountpoint),
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = server_command(&self.pg_ctl)
            .arg("-D")
            .arg(&self.mountpoint)
            .args(["-w", "-t", "60", "-m", "immediate", "stop"])
            .output();
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mountpoint)
            .output();
    }
}

fn du_mb(dir: &Path) -> u64 {
    let out = run_ok(std::process::Command::new("du").arg("-sm").arg(dir));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("du output")
}

#[test]
fn disk_full_pg16() {
    let Some(pg) = install(16) else { return };
    let init = InitOptions {
        wal_segsize_mb: 1,
        ..InitOptions::default()
    };
    let (mut old, new) = primary_and_standby_with(&pg, "diskfull", &init, small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    // 40 MB the target lacks: more than the disk will have free.
    new.psql(
        "postgres",
        "CREATE TABLE bulk AS SELECT g, repeat(md5(g::text), 6) AS pad FROM generate_series(1, 150000) g",
    );
    old.stop();
    let size = du_mb(&old.datadir());
    let disk = SmallDisk::mount_under(&old, size + 12);
    let args: Vec<String> = vec![
        "-q".into(),
        "-D".into(),
        s(old.datadir()),
        "--source-server".into(),
        new.connstr("postgres"),
        "-R".into(),
    ];
    let run = gsbuild(&args, &[], WATCHDOG);
    assert_failed(
        "disk full",
        &run,
        &[&s(old.datadir()), "No space left on device"],
    );
    assert!(run.stderr.contains("hint: the rebuild of"), "{run}");
    assert_interrupted("disk full", &mut old);
    disk.resize(size + 200);
    finish("disk full, then space freed", &args, &new, &mut old);
    drop(disk);
}

/// A test CA and a server certificate it signed (CN and SAN localhost, SAN 127.0.0.1), in
/// `dir`, readable by the server user. Returns the CA certificate's path.
fn make_ca_and_server_cert(dir: &Path, ca_name: &str) -> std::path::PathBuf {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let openssl = || std::process::Command::new("openssl");
    run_ok(
        openssl()
            .args(["req", "-x509", "-days", "2"])
            .args(ec)
            .args(["-subj", &format!("/CN={ca_name}")])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(dir.join(format!("{ca_name}.key")))
            .arg("-out")
            .arg(dir.join(format!("{ca_name}.crt"))),
    );
    run_ok(
        openssl()
            .args(["req", "-new"])
            .args(ec)
            .args(["-subj", "/CN=localhost"])
            .arg("-keyout")
            .arg(dir.join("server.key"))
            .arg("-out")
            .arg(dir.join("server.csr")),
    );
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write extensions");
    run_ok(
        openssl()
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(dir.join("server.csr"))
            .arg("-CA")
            .arg(dir.join(format!("{ca_name}.crt")))
            .arg("-CAkey")
            .arg(dir.join(format!("{ca_name}.key")))
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(dir.join("server.crt")),
    );
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod key");
    chown_to_server_user(dir);
    dir.join(format!("{ca_name}.crt"))
}

/// Puts `lines` at the top of pg_hba.conf so they win over initdb's trust rules.
fn prepend_hba(c: &Cluster, lines: &str) {
    let path = c.datadir().join("pg_hba.conf");
    let old = std::fs::read_to_string(&path).expect("read pg_hba.conf");
    std::fs::write(&path, format!("{lines}\n{old}")).expect("write pg_hba.conf");
    chown_to_server_user(&path);
}

/// No password may appear in anything gsbuild printed.
fn assert_no_secret(case: &str, run: &Run, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !run.output().contains(secret),
            "{case}: a password was printed\n{run}"
        );
    }
}

const PASSWORD: &str = "Gs-S3cret!pw";
const WRONG_PASSWORD: &str = "Wr0ng-S3cret";

/// TLS (`verify-full` and `require`, against `hostssl`-only rules, both the SQL and the
/// replication session), passwords from `PGPASSFILE` and from `~/.pgpass`, passwords never
/// printed (errors, `--debug`, `-vvv`, `RUST_LOG=trace`, the JSON plan, the journal), and the
/// whole rebuild as a least-privilege role: LOGIN REPLICATION and EXECUTE on the four file
/// functions (`pg_ls_dir`, `pg_stat_file`, both `pg_read_binary_file`), nothing else.
#[test]
fn security_pg17() {
    let Some(pg) = install(17) else { return };
    let (mut old, mut new) = tcp_pair(&pg, "secure", &InitOptions::default(), small_setup);
    new.promote();
    small_diverge(&new, &old);
    old.stop();
    let certs = TestDir::new("secure-certs");
    let ca = make_ca_and_server_cert(&certs.path, "gsbuild-test-ca");
    let other_ca_dir = TestDir::new("secure-other-ca");
    let other_ca = make_ca_and_server_cert(&other_ca_dir.path, "another-ca");
    new.append_conf(&format!(
        "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nlog_connections = on\n",
        certs.path.join("server.crt").display(),
        certs.path.join("server.key").display()
    ));
    prepend_hba(
        &new,
        "hostssl all rebuilder 127.0.0.1/32 scram-sha-256\n\
         hostssl replication rebuilder 127.0.0.1/32 scram-sha-256\n\
         hostnossl all all 127.0.0.1/32 reject\n\
         hostnossl replication all 127.0.0.1/32 reject",
    );
    new.stop();
    new.start();
    new.psql_script(
        "postgres",
        &format!(
            "CREATE ROLE rebuilder LOGIN REPLICATION PASSWORD '{PASSWORD}';
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO rebuilder;
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO rebuilder;
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO rebuilder;
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO rebuilder;"
        ),
    );
    assert_eq!(
        new.psql(
            "postgres",
            "SELECT rolsuper, rolreplication, (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) FROM pg_roles r WHERE rolname = 'rebuilder'"
        ),
        "f|t|0"
    );
    let target = old.datadir();
    let pristine_dir = TestDir::new("secure-pristine");
    let pristine = pristine_dir.path.join("data");
    copy_dir(&target, &pristine);
    // Connection failures name the server as libpq does.
    let peer = format!("at \"127.0.0.1\", port {}", new.port);
    let base = format!("port={} user=rebuilder dbname=postgres", new.port);
    let verify = format!(
        "host=localhost {base} sslmode=verify-full sslrootcert={}",
        ca.display()
    );
    let cmd = |conn: &str, extra: &[&str]| {
        let mut a = vec![
            "-q".to_string(),
            "-D".to_string(),
            s(&target),
            "--source-server".into(),
            conn.to_string(),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let home = TestDir::new("secure-home");
    let passfile = home.path.join("passfile");
    std::fs::write(&passfile, format!("*:*:*:rebuilder:{PASSWORD}\n")).expect("passfile");
    std::fs::set_permissions(
        &passfile,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod passfile");
    let no_home: &[(&str, &str)] = &[("HOME", "/nonexistent")];

    // Refused before anything is written; the target stays as it was.
    let before = tree_digest(&target);
    let refusals: Vec<(&str, String, Vec<String>)> = vec![
        (
            "wrong password",
            format!("host=127.0.0.1 {base} sslmode=require password={WRONG_PASSWORD}"),
            vec![peer.clone(), "password authentication failed for user \"rebuilder\"".into()],
        ),
        (
            "sslmode=disable against hostssl-only rules",
            format!("host=127.0.0.1 {base} sslmode=disable password={PASSWORD}"),
            vec![peer.clone(), "no encryption".into()],
        ),
        (
            "verify-full with a host name the certificate does not name",
            format!(
                "host=wrong.invalid hostaddr=127.0.0.1 {base} sslmode=verify-full sslrootcert={} password={PASSWORD}",
                ca.display()
            ),
            vec![
                format!("at \"wrong.invalid\" (127.0.0.1), port {}", new.port),
                "SSL connection could not be established: invalid peer certificate".into(),
            ],
        ),
        (
            "verify-full with another CA",
            format!(
                "host=localhost {base} sslmode=verify-full sslrootcert={} password={PASSWORD}",
                other_ca.display()
            ),
            vec![
                format!("at \"localhost\", port {}", new.port),
                "SSL connection could not be established: invalid peer certificate".into(),
            ],
        ),
    ];
    let mut tried = 0;
    for (case, conn, needles) in &refusals {
        let run = gsbuild(&cmd(conn, &["--debug", "-vvv"]), no_home, WATCHDOG);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_failed(case, &run, &needles);
        assert_no_secret(case, &run, &[PASSWORD, WRONG_PASSWORD]);
        assert_same_tree(&before, &tree_digest(&target), case);
        tried += 1;
    }

    // 1. verify-full, the password from PGPASSFILE, as the least-privilege role, with every
    // debug output on.
    let log_before = std::fs::read_to_string(new.log_path())
        .unwrap_or_default()
        .len();
    let run = gsbuild(
        &cmd(&verify, &["--debug", "-vvv"]),
        &[("PGPASSFILE", &s(&passfile)), ("HOME", "/nonexistent")],
        WATCHDOG,
    );
    assert_eq!(run.code, Some(0), "verify-full: {run}");
    assert_no_secret("verify-full", &run, &[PASSWORD]);
    assert!(
        !run.stderr.contains("over SQL instead"),
        "the replication session was refused: {run}"
    );
    let log = std::fs::read_to_string(new.log_path()).unwrap_or_default();
    let log = log.get(log_before..).unwrap_or_default();
    for session in [
        "connection authorized: user=rebuilder database=postgres",
        "replication connection authorized: user=rebuilder",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(session) && l.contains("SSL enabled")),
            "no TLS {session:?} in the server log:\n{log}"
        );
    }
    configure_standby(&old, &new);
    verify_standby(&new, &mut old);
    assert_lost_gone(&old);
    old.stop();

    // 2. sslmode=require, the password from ~/.pgpass; the password given in the connection
    // string for a dry run with the JSON plan, and for a run killed mid-copy (the journal must
    // not hold it), then resumed with every log on.
    copy_dir(&pristine, &target);
    std::fs::copy(&passfile, home.path.join(".pgpass")).expect("~/.pgpass");
    let require = format!("host=127.0.0.1 {base} sslmode=require");
    let with_password = format!("{require} password={PASSWORD}");
    let run = gsbuild(
        &cmd(
            &with_password,
            &["-n", "--format", "json", "--debug", "-vvv"],
        ),
        &[("RUST_LOG", "trace"), ("HOME", "/nonexistent")],
        WATCHDOG,
    );
    assert_eq!(run.code, Some(0), "dry run: {run}");
    assert!(run.stdout.contains("\"divergence\""), "{run}");
    assert_no_secret("JSON plan and trace logs", &run, &[PASSWORD]);
    let mut killed = std::process::Command::new(gsbuild_bin());
    killed
        .args(cmd(&with_password, &["--debug", "-vvv"]))
        .env("GSBUILD_FAILPOINT", "copy-chunk:2")
        .env("RUST_LOG", "trace")
        .env("HOME", "/nonexistent");
    let run = support::run::watched(&mut killed, WATCHDOG);
    assert_eq!(run.code, None, "the failpoint must kill it: {run}");
    assert_no_secret("killed run", &run, &[PASSWORD]);
    let journal = std::fs::read_to_string(target.join("gsbuild.journal")).expect("journal");
    assert!(
        !journal.contains(PASSWORD),
        "the journal holds the password"
    );
    let run = gsbuild(
        &cmd(&require, &["--debug", "-vvv"]),
        &[("HOME", &s(&home.path)), ("RUST_LOG", "trace")],
        WATCHDOG,
    );
    assert_eq!(run.code, Some(0), "resume with ~/.pgpass: {run}");
    assert!(
        run.stderr.contains("resuming the interrupted rebuild"),
        "{run}"
    );
    assert_no_secret("resumed run", &run, &[PASSWORD]);
    configure_standby(&old, &new);
    verify_standby(&new, &mut old);
    assert_lost_gone(&old);
    eprintln!("security: {tried} refused connections, 2 TLS rebuilds as a least-privilege role");
}
