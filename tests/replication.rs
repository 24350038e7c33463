//! The replication client and connection strings against real PostgreSQL servers: trust over
//! the unix socket, md5 and SCRAM over TCP (and a wrong password), the password file,
//! `IDENTIFY_SYSTEM` against `pg_control_system()`, `TIMELINE_HISTORY` and the end of a
//! historic timeline after a promotion, WAL streamed byte-identical to a completed segment,
//! TLS (`require`, `verify-full`, and `disable` against a `hostssl`-only rule), and fast,
//! clear failures for a closed port and a server that never answers.

mod support;

use gsbuild::conninfo::{ConnInfo, Environment};
use gsbuild::replication::{ClientOptions, ReplicationClient, TimelineEnd};
use gsbuild::{Error, Lsn, TimeLineId};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Cluster, InitOptions};

const MAJORS: &[u32] = &[14, 15, 16, 17, 18];
const SEG: u32 = 16 << 20;

/// An environment with no `PG*` variables and a home without `.pgpass`.
fn clean_env() -> Environment {
    Environment::empty().with_home("/nonexistent-home")
}

fn quick() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(10),
        status_interval: Duration::from_secs(2),
    }
}

async fn connect(s: &str, env: &Environment) -> gsbuild::Result<ReplicationClient> {
    let info = ConnInfo::resolve(s, env).expect("valid connection string");
    ReplicationClient::connect(&info, env, quick()).await
}

/// Puts `lines` at the top of pg_hba.conf so they win over initdb's trust rules.
fn prepend_hba(c: &Cluster, lines: &str) {
    let path = c.datadir().join("pg_hba.conf");
    let old = std::fs::read_to_string(&path).expect("read pg_hba.conf");
    std::fs::write(&path, format!("{lines}\n{old}")).expect("write pg_hba.conf");
    support::chown_to_server_user(&path);
}

fn tcp_cluster(major: u32, name: &str) -> Option<Cluster> {
    let install = support::install(major)?;
    let opts = InitOptions {
        tcp: true,
        ..InitOptions::default()
    };
    Some(Cluster::init(&install, name, &opts))
}

#[tokio::test]
async fn authentication_identify_system_and_streaming() {
    for &major in MAJORS {
        let Some(mut c) = tcp_cluster(major, "repl-auth") else {
            return;
        };
        prepend_hba(
            &c,
            "host all md5user 127.0.0.1/32 md5\nhost replication md5user 127.0.0.1/32 md5\n\
             host all scramuser 127.0.0.1/32 scram-sha-256\nhost replication scramuser 127.0.0.1/32 scram-sha-256",
        );
        c.start();
        c.psql_script(
            "postgres",
            "SET password_encryption = 'md5';\n\
             CREATE ROLE md5user LOGIN REPLICATION PASSWORD 'md5 pw';\n\
             SET password_encryption = 'scram-sha-256';\n\
             CREATE ROLE scramuser LOGIN REPLICATION PASSWORD 's3cret''pw';\n",
        );
        let env = clean_env();
        let tcp = format!(
            "host=127.0.0.1 port={} dbname=postgres sslmode=disable",
            c.port
        );

        // Trust over the unix socket.
        let mut trust = connect(&c.connstr("postgres"), &env).await.expect("trust");
        assert_eq!(
            trust
                .server_info()
                .parameters
                .get("server_version")
                .map(|v| v.starts_with(&major.to_string())),
            Some(true)
        );
        let rows = trust
            .simple_query("SELECT 1 AS one, NULL AS nothing")
            .await
            .unwrap();
        assert_eq!(
            (
                rows[0].get(0),
                rows[0].get(1),
                rows[0].columns()[0].as_str()
            ),
            (Some("1"), None, "one")
        );

        // md5 and SCRAM over TCP; the password has a quote and a space.
        let mut md5 = connect(&format!("{tcp} user=md5user password='md5 pw'"), &env)
            .await
            .expect("md5");
        assert_eq!(
            md5.simple_query("SELECT current_user").await.unwrap()[0].get(0),
            Some("md5user")
        );
        let uri = format!(
            "postgresql://scramuser:s3cret%27pw@127.0.0.1:{}/postgres?sslmode=disable",
            c.port
        );
        let mut scram = connect(&uri, &env).await.expect("scram");
        assert_eq!(
            scram.simple_query("SELECT current_user").await.unwrap()[0].get(0),
            Some("scramuser")
        );

        // A wrong password: a clear error that does not repeat it.
        let err = connect(&format!("{tcp} user=scramuser password=wrongpass"), &env)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Connect { .. }), "{text}");
        assert!(
            text.contains("password authentication failed") && text.contains("28P01"),
            "{text}"
        );
        assert!(
            !text.contains("wrongpass")
                && text.contains(&format!("at \"127.0.0.1\", port {}", c.port)),
            "{text}"
        );

        // The password file supplies the password (PGPASSFILE in an explicit environment).
        let dir = tempfile::tempdir().unwrap();
        let passfile = dir.path().join("pgpass");
        std::fs::write(
            &passfile,
            format!("127.0.0.1:{}:*:scramuser:s3cret'pw\n", c.port),
        )
        .unwrap();
        std::fs::set_permissions(
            &passfile,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let env_pass = clean_env().with_var("PGPASSFILE", passfile.to_str().unwrap());
        connect(&format!("{tcp} user=scramuser"), &env_pass)
            .await
            .expect("password from file");
        let err = connect(&format!("{tcp} user=md5user"), &env_pass)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no password supplied"), "{err}");

        // SQL errors carry SQLSTATE and the query.
        let err = trust
            .simple_query("SELECT * FROM no_such_table")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("42P01") && err.contains("no_such_table"),
            "{err}"
        );

        identify_system(&c, &mut scram).await;
        stream_one_segment(&c, &mut md5).await;
    }
}

async fn identify_system(c: &Cluster, client: &mut ReplicationClient) {
    let before: Lsn = c
        .psql("postgres", "SELECT pg_current_wal_flush_lsn()")
        .parse()
        .unwrap();
    let id = client.identify_system().await.unwrap();
    let after: Lsn = c
        .psql("postgres", "SELECT pg_current_wal_flush_lsn()")
        .parse()
        .unwrap();
    let sysid: u64 = c
        .psql(
            "postgres",
            "SELECT system_identifier FROM pg_control_system()",
        )
        .parse()
        .unwrap();
    assert_eq!(id.systemid, sysid);
    assert_eq!(id.timeline, TimeLineId(1));
    assert_eq!(id.dbname.as_deref(), Some("postgres"));
    assert!(
        before <= id.xlogpos && id.xlogpos <= after,
        "{before} {} {after}",
        id.xlogpos
    );
}

/// Streams one completed segment and compares it with the file in pg_wal.
async fn stream_one_segment(c: &Cluster, client: &mut ReplicationClient) {
    c.psql(
        "postgres",
        "CREATE TABLE filler AS SELECT g, repeat('x', 100) AS t FROM generate_series(1, 20000) g",
    );
    let pos: Lsn = c
        .psql("postgres", "SELECT pg_current_wal_lsn()")
        .parse()
        .unwrap();
    c.psql("postgres", "SELECT pg_switch_wal()");
    let seg = pos.segment(SEG);
    let start = seg.start_lsn(SEG);
    let mut stream = client
        .start_replication(start, TimeLineId(1))
        .await
        .unwrap();
    let mut got = Vec::with_capacity(SEG as usize);
    while got.len() < SEG as usize {
        let chunk = stream.next().await.unwrap().expect("stream ended early");
        assert_eq!(
            chunk.start.0,
            start.0 + got.len() as u64,
            "chunks are contiguous"
        );
        got.extend_from_slice(&chunk.data);
    }
    stream.stop().await.unwrap();
    got.truncate(SEG as usize);
    let file = std::fs::read(c.wal_dir().join(seg.file_name(TimeLineId(1), SEG))).unwrap();
    assert!(
        got == file,
        "streamed segment differs from {}",
        seg.file_name(TimeLineId(1), SEG)
    );
    // The session is usable again after stop().
    assert_eq!(
        client.identify_system().await.unwrap().timeline,
        TimeLineId(1)
    );
}

#[tokio::test]
async fn timeline_history_and_end_of_timeline() {
    for &major in MAJORS {
        let Some(install) = support::install(major) else {
            return;
        };
        let mut primary = Cluster::init(&install, "repl-tl-primary", &InitOptions::default());
        primary.start();
        primary.psql("postgres", "CREATE TABLE t AS SELECT 1 AS a");
        let mut standby = primary.make_standby("repl-tl-standby", false);
        standby.start();
        standby.promote();
        let env = clean_env();
        let mut client = connect(&standby.connstr("postgres"), &env).await.unwrap();
        assert_eq!(
            client.identify_system().await.unwrap().timeline,
            TimeLineId(2)
        );
        let (name, content) = client.timeline_history(TimeLineId(2)).await.unwrap();
        assert_eq!(name, "00000002.history");
        assert_eq!(
            content,
            std::fs::read(standby.wal_dir().join(&name)).unwrap()
        );
        let text = String::from_utf8(content).unwrap();
        let switch: Lsn = text.split('\t').nth(1).unwrap().parse().unwrap();
        let err = client
            .timeline_history(TimeLineId(7))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("TIMELINE_HISTORY 7"), "{err}");

        // Streaming the old timeline stops at the switch point and names the next timeline.
        let start = switch.segment(SEG).start_lsn(SEG);
        let mut stream = client
            .start_replication(start, TimeLineId(1))
            .await
            .unwrap();
        let mut end = start;
        while let Some(chunk) = stream.next().await.unwrap() {
            end = Lsn(chunk.start.0 + chunk.data.len() as u64);
        }
        assert_eq!(end, switch);
        assert_eq!(
            stream.timeline_end(),
            Some(TimelineEnd {
                next_tli: TimeLineId(2),
                switch
            })
        );
        assert_eq!(
            client.identify_system().await.unwrap().timeline,
            TimeLineId(2)
        );
        drop(primary);
    }
}

fn make_cert(dir: &Path) {
    support::run_ok(
        std::process::Command::new("openssl")
            .args([
                "req",
                "-new",
                "-x509",
                "-days",
                "2",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(dir.join("server.key"))
            .arg("-out")
            .arg(dir.join("server.crt")),
    );
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    support::chown_to_server_user(&dir.join("server.key"));
    support::chown_to_server_user(&dir.join("server.crt"));
}

#[tokio::test]
async fn tls_modes() {
    for &major in MAJORS {
        let Some(mut c) = tcp_cluster(major, "repl-ssl") else {
            return;
        };
        make_cert(&c.datadir());
        c.append_conf("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        prepend_hba(
            &c,
            "hostssl all ssluser 127.0.0.1/32 scram-sha-256\nhostnossl all ssluser 127.0.0.1/32 reject",
        );
        c.start();
        c.psql(
            "postgres",
            "CREATE ROLE ssluser LOGIN REPLICATION PASSWORD 'sslpw'",
        );
        let env = clean_env();
        let base = format!(
            "host=127.0.0.1 port={} dbname=postgres user=ssluser password=sslpw",
            c.port
        );
        let ssl_in_use = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

        for mode in ["require", "prefer"] {
            let mut client = connect(&format!("{base} sslmode={mode}"), &env)
                .await
                .expect(mode);
            assert_eq!(
                client.simple_query(ssl_in_use).await.unwrap()[0].get(0),
                Some("t"),
                "{mode}"
            );
        }
        let cert = c.datadir().join("server.crt");
        let full = format!(
            "{base} host=localhost sslmode=verify-full sslrootcert={}",
            cert.display()
        );
        let mut client = connect(&full, &env).await.expect("verify-full");
        client.identify_system().await.unwrap();

        let err = connect(&format!("{base} sslmode=disable"), &env)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no encryption") && !err.contains("sslpw"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn unreachable_and_silent_servers_fail_fast() {
    let env = clean_env();
    let port = support::free_port();
    let t0 = Instant::now();
    let err = connect(
        &format!("host=127.0.0.1 port={port} user=u sslmode=disable"),
        &env,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("at \"127.0.0.1\", port {port}")) && text.contains("refused"),
        "{text}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));

    // A server that accepts the connection and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let info = ConnInfo::resolve(
        &format!("host=127.0.0.1 port={port} user=u sslmode=prefer"),
        &env,
    )
    .unwrap();
    let opts = ClientOptions {
        read_timeout: Duration::from_millis(500),
        ..quick()
    };
    let t0 = Instant::now();
    let err = ReplicationClient::connect(&info, &env, opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("at \"127.0.0.1\", port {port}")),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{err}");
    drop(listener);
}
