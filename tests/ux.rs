//! What a DBA and an HA tool see around a rebuild: connection failures that say why, errors
//! for mistyped paths, no colour codes in a log, nothing but `pg_rewind:` lines in pg_rewind's
//! dialect, a least-privilege rebuild that leaves no ERROR or FATAL in the source's log, each
//! cause said once, a quiet exit on a closed pipe, and clusters of another build refused.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::run::{copy_dir, gsbuild, s};
use support::scenario::*;
use support::*;

const LIMIT: Duration = Duration::from_secs(120);

/// `gsbuild rewind -D target --source-server conn -n`: its stderr, after checking it failed.
fn connect_error(target: &Path, conn: &str) -> String {
    let args = [
        "rewind".to_string(),
        "-D".into(),
        s(target),
        "--source-server".into(),
        conn.into(),
        "-n".into(),
    ];
    let run = gsbuild(&args, &[("PGCONNECT_TIMEOUT", "")], LIMIT);
    assert_eq!(run.code, Some(1), "{run}");
    eprintln!("{conn} → {}", run.stderr.trim_end());
    run.stderr
}

fn assert_says(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

/// A listener that accepts connections and never answers (a hung server).
fn silent_listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

/// A self-signed certificate and key for `cn` in `dir` (`<name>.crt`, `<name>.key`).
fn self_signed(dir: &Path, name: &str, cn: &str) {
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    run_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .arg("-subj")
            .arg(format!("/CN={cn}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&crt),
    );
    chown_to_server_user(dir);
    run_ok(server_command("chmod").arg("0600").arg(&key));
}

/// Every way a connection fails says what libpq would: the socket or host and port, and the
/// operating system's, the server's or the TLS layer's reason.
#[test]
fn connection_errors_say_why_pg15() {
    let Some(pg) = install(15) else { return };
    let init = InitOptions {
        tcp: true,
        ..Default::default()
    };
    let mut c = Cluster::init(&pg, "connerr", &init);
    let target = TestDir::new("connerr-target");
    copy_dir(&c.datadir(), &target.path.join("data"));
    let target = target.path.join("data");

    let e = connect_error(&target, "host=/nonexistent");
    assert_says(
        &e,
        "connection to server on socket \"/nonexistent/.s.PGSQL.5432\" failed: No such file or directory",
    );
    assert!(!e.contains("os error"), "{e}");
    let closed = free_port();
    let e = connect_error(&target, &format!("host=127.0.0.1 port={closed}"));
    assert_says(
        &e,
        &format!("connection to server at \"127.0.0.1\", port {closed} failed: Connection refused"),
    );
    let (_hung, port) = silent_listener();
    let e = connect_error(
        &target,
        &format!("host=127.0.0.1 port={port} connect_timeout=2"),
    );
    assert_says(
        &e,
        &format!("connection to server at \"127.0.0.1\", port {port} failed: timeout expired"),
    );

    // A password role over TCP, and TLS turned on later.
    std::fs::write(
        c.datadir().join("pg_hba.conf"),
        "local all all trust\nhost all pw 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n",
    )
    .expect("write pg_hba.conf");
    c.start();
    c.psql("postgres", "CREATE ROLE pw LOGIN PASSWORD 'right'");
    let tcp = |extra: &str| format!("host=127.0.0.1 port={} dbname=postgres {extra}", c.port);
    let e = connect_error(&target, &tcp("user=pw password=wrong"));
    assert_says(
        &e,
        &format!("connection to server at \"127.0.0.1\", port {} failed: FATAL:  password authentication failed for user \"pw\"", c.port),
    );
    let e = connect_error(&target, &tcp("user=postgres sslmode=require"));
    assert_says(
        &e,
        "failed: server does not support SSL, but SSL was required",
    );

    self_signed(&c.dir.path, "server", "localhost");
    self_signed(&c.dir.path, "other", "other-ca");
    c.append_conf(&format!(
        "ssl = on\nssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'",
        c.dir.path.display()
    ));
    c.psql("postgres", "SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_secs(1));
    let e = connect_error(
        &target,
        &tcp(&format!(
            "user=postgres sslmode=verify-full sslrootcert={}/other.crt",
            c.dir.path.display()
        )),
    );
    assert_says(&e, "failed: SSL connection could not be established: ");
    assert_says(&e, "invalid peer certificate");
}

/// `status` of a path that is not a data directory is an error, not "no rebuild in progress".
#[test]
fn status_of_a_wrong_path_is_an_error() {
    let empty = TestDir::new("status-empty");
    for dir in [Path::new("/nonexistent"), empty.path.as_path()] {
        let run = gsbuild(&["status".into(), "-D".into(), s(dir)], &[], LIMIT);
        assert_eq!(run.code, Some(1), "{run}");
        assert_says(
            &run.stderr,
            &format!("\"{}\" is not a data directory", dir.display()),
        );
    }
}

/// `gsbuild rewind` is pg_rewind's command line: no default source, and its help says so.
#[test]
fn rewind_needs_a_source_and_its_help_says_so() {
    let dir = TestDir::new("nosource");
    let run = gsbuild(&["rewind".into(), "-D".into(), s(&dir.path)], &[], LIMIT);
    assert_eq!(run.code, Some(1), "{run}");
    assert_says(&run.stderr, "no source specified");
    let help = gsbuild(&["rewind".into(), "--help".into()], &[], LIMIT);
    let text = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_says(&text, "pg_rewind's command line has no default");
}

/// An error's cause is said once (`No such file or directory`, not twice over).
#[test]
fn errors_say_their_cause_once() {
    let run = gsbuild(
        &["inspect".into(), "control".into(), "/nonexistent".into()],
        &[],
        LIMIT,
    );
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(
        run.stderr.matches("No such file or directory").count(),
        1,
        "{run}"
    );
}

/// `gsbuild inspect wal … | head -1`: the closed pipe ends gsbuild as it does any Unix tool,
/// without a "Broken pipe" error.
#[test]
fn a_closed_pipe_ends_quietly() {
    let Some(pg) = install(15) else { return };
    let c = Cluster::init(&pg, "epipe", &InitOptions::default());
    let mut child = Command::new(gsbuild_bin())
        .args(["inspect", "wal"])
        .arg(c.wal_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gsbuild");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("read a line");
    assert!(!first.is_empty(), "inspect wal printed nothing");
    drop(out);
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    assert!(!err.contains("Broken pipe"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.success() || status.signal() == Some(libc::SIGPIPE),
        "{status}: {err}"
    );
}

/// A cluster whose pg_control says it was built with 16 kB pages is refused before anything
/// is written, naming the value.
#[test]
fn a_non_default_build_is_refused_pg15() {
    let Some(pg) = install(15) else { return };
    let c = Cluster::init(&pg, "geometry", &InitOptions::default());
    let control = c.datadir().join("global/pg_control");
    let bytes = std::fs::read(&control).expect("read pg_control");
    let mut f = gsbuild::control::ControlFile::decode(&bytes).expect("decode pg_control");
    f.blcksz = 16384;
    std::fs::write(&control, f.encode()).expect("write pg_control");
    let before = tree_digest(&c.datadir());
    let args = [
        "rewind".to_string(),
        "-D".into(),
        s(c.datadir()),
        "--source-server".into(),
        "host=/nonexistent".into(),
    ];
    let run = gsbuild(&args, &[], LIMIT);
    assert_eq!(run.code, Some(1), "{run}");
    assert_says(&run.stderr, "was built with blcksz 16384");
    assert_same_tree(
        &before,
        &tree_digest(&c.datadir()),
        "a refused target changed",
    );
}

/// A rebuild with a least-privilege role (no REPLICATION, no pg_read_all_settings), run as an
/// HA tool runs pg_rewind: not one ERROR or FATAL line in the source server's log, every line
/// on stderr a `pg_rewind:` line, no colour codes; and the rebuilt standby is the source's.
#[test]
fn least_privilege_rebuild_is_quiet_pg15() {
    let Some(pg) = install(15) else { return };
    let grants = |c: &Cluster| {
        small_setup(c);
        create_rewind_role(c);
    };
    let (mut old, new) = primary_and_standby(&pg, "quiet", grants, &[]);
    new.promote();
    small_diverge(&new, &old);
    old.stop();
    let log_before = std::fs::metadata(new.log_path()).map_or(0, |m| m.len());
    let args = [
        "rewind".to_string(),
        "-D".into(),
        s(old.datadir()),
        "--source-server".into(),
        format!(
            "host={} port={} user=rewinder dbname=postgres",
            new.socket_dir().display(),
            new.port
        ),
        "--debug".into(),
    ];
    let run = gsbuild(&args, &[("NO_COLOR", "")], LIMIT);
    assert_eq!(run.code, Some(0), "{run}");
    let log = std::fs::read(new.log_path()).expect("read server log");
    let during = String::from_utf8_lossy(&log[log_before as usize..]).into_owned();
    let noisy: Vec<&str> = during
        .lines()
        .filter(|l| l.contains("ERROR:") || l.contains("FATAL:"))
        .collect();
    assert!(
        noisy.is_empty(),
        "the source logged errors:\n{}",
        noisy.join("\n")
    );
    assert!(
        !run.stderr.contains('\u{1b}'),
        "colour codes:\n{}",
        run.stderr
    );
    for line in run.stderr.lines() {
        assert!(line.starts_with("pg_rewind: "), "unprefixed line {line:?}");
    }
    assert_says(&run.stderr, "reading WAL over SQL");
    // The copied postgresql.conf is the source's: the target's own port and socket back.
    restore_connection_conf(&old);
    configure_standby(&old, &new);
    verify_standby(&new, &mut old);
    assert_lost_gone(&old);
}
