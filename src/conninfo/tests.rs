//! Table-driven tests of connection-string resolution (parsing details are tested in `parse`).

use super::*;

fn env() -> Environment {
    Environment::empty()
        .with_os_user("osuser")
        .with_home("/home/osuser")
        .with_default_socket_dir("/var/run/postgresql")
}

fn targets(ci: &ConnInfo) -> Vec<String> {
    ci.targets.iter().map(Target::to_string).collect()
}

#[test]
fn defaults_environment_and_explicit_values() {
    // (connection string, environment variables, targets, user, dbname, sslmode)
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [&'a str],
        &'a str,
        &'a str,
        SslMode,
    );
    let cases: &[Case] = &[
        (
            "",
            &[],
            &["/var/run/postgresql/.s.PGSQL.5432"],
            "osuser",
            "osuser",
            SslMode::Prefer,
        ),
        (
            "",
            &[
                ("PGHOST", "db"),
                ("PGPORT", "6000"),
                ("PGUSER", "u"),
                ("PGSSLMODE", "require"),
            ],
            &["db:6000"],
            "u",
            "u",
            SslMode::Require,
        ),
        (
            "host=h1 user=x dbname=d",
            &[("PGHOST", "db"), ("PGUSER", "u"), ("PGDATABASE", "envdb")],
            &["h1:5432"],
            "x",
            "d",
            SslMode::Prefer,
        ),
        (
            "host=''",
            &[("PGHOST", "db")],
            &["/var/run/postgresql/.s.PGSQL.5432"],
            "osuser",
            "osuser",
            SslMode::Prefer,
        ),
        (
            "host=/tmp/s port=7",
            &[],
            &["/tmp/s/.s.PGSQL.7"],
            "osuser",
            "osuser",
            SslMode::Prefer,
        ),
        (
            "host=a,b,/s port=1,2,3",
            &[],
            &["a:1", "b:2", "/s/.s.PGSQL.3"],
            "osuser",
            "osuser",
            SslMode::Prefer,
        ),
        (
            "host=a,b port=9",
            &[],
            &["a:9", "b:9"],
            "osuser",
            "osuser",
            SslMode::Prefer,
        ),
        (
            "host=a,b port=,9",
            &[],
            &["a:5432", "b:9"],
            "osuser",
            "osuser",
            SslMode::Prefer,
        ),
        (
            "hostaddr=127.0.0.1",
            &[],
            &["127.0.0.1:5432"],
            "osuser",
            "osuser",
            SslMode::Prefer,
        ),
        (
            "postgresql://u@[::1]:5433,h/db?sslmode=verify-full",
            &[],
            &["[::1]:5433", "h:5432"],
            "u",
            "db",
            SslMode::VerifyFull,
        ),
        (
            "postgresql:///d?host=%2Fx%2Fy",
            &[],
            &["/x/y/.s.PGSQL.5432"],
            "osuser",
            "d",
            SslMode::Prefer,
        ),
    ];
    for (s, vars, want_targets, user, db, ssl) in cases {
        let e = vars.iter().fold(env(), |e, (k, v)| e.with_var(k, v));
        let ci = ConnInfo::resolve(s, &e).unwrap_or_else(|err| panic!("{s}: {err}"));
        assert_eq!(targets(&ci), *want_targets, "{s}");
        assert_eq!(
            (ci.user.as_str(), ci.dbname.as_str(), ci.sslmode),
            (*user, *db, *ssl),
            "{s}"
        );
    }
}

#[test]
fn errors_name_the_problem() {
    let cases = [
        ("bogus=1", "invalid connection option \"bogus\""),
        (
            "postgresql://h?bogus=1",
            "invalid connection option \"bogus\"",
        ),
        ("port=x", "invalid port number: \"x\""),
        ("port=70000", "invalid port number"),
        (
            "host=a,b port=1,2,3",
            "could not match 3 port numbers to 2 hosts",
        ),
        ("sslmode=maybe", "invalid sslmode value"),
        ("connect_timeout=soon", "connect_timeout"),
        ("hostaddr=nothere", "invalid hostaddr"),
        ("channel_binding=require", "not supported"),
    ];
    for (s, want) in cases {
        let e = ConnInfo::resolve(s, &env()).unwrap_err().to_string();
        assert!(e.contains(want), "{s}: {e}");
    }
}

#[test]
fn ignored_keys_are_kept_for_primary_conninfo() {
    let ci = ConnInfo::resolve("host=h target_session_attrs=any keepalives=1", &env()).unwrap();
    assert_eq!(ci.ignored.len(), 2);
    let s = ci.to_conninfo_string();
    assert!(
        s.contains("target_session_attrs=any") && s.contains("keepalives=1"),
        "{s}"
    );
}

#[test]
fn passwords_never_leak() {
    let ci = ConnInfo::resolve("host=h password='s3cr3t x' user=u", &env()).unwrap();
    for shown in [
        ci.to_string(),
        ci.redacted(),
        format!("{ci:?}"),
        format!("{:?}", env().with_var("PGPASSWORD", "s3cr3t x")),
    ] {
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
    let e = ConnInfo::resolve("password='s3cr3t", &env()).unwrap_err();
    assert!(!e.to_string().contains("s3cr3t"));
    // The primary_conninfo string does carry it, quoted so libpq reads it back.
    let s = ci.to_conninfo_string();
    assert!(s.contains(r"password='s3cr3t x'"), "{s}");
    let back = ConnInfo::resolve(&s, &env()).unwrap();
    assert_eq!(
        back.password_for(&back.targets[0], &env())
            .unwrap()
            .0
            .expose(),
        "s3cr3t x"
    );
}

#[test]
fn conninfo_string_round_trips() {
    for s in [
        "host=a,b port=1,2 user='o''brien' dbname=d sslmode=require application_name=x connect_timeout=5",
        "postgresql://u:p%20w@h:6/db?options=-c%20a%3Db",
        "host=/tmp hostaddr=127.0.0.1",
    ] {
        let s = s.replace("''", "\\'");
        let ci = ConnInfo::resolve(&s, &env()).unwrap();
        let back = ConnInfo::resolve(&ci.to_conninfo_string(), &env()).unwrap();
        assert_eq!(back, ci, "{s} → {}", ci.to_conninfo_string());
    }
}

#[test]
fn password_origins_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgpass");
    std::fs::write(
        &file,
        "localhost:5432:*:u:sock\n/tmp/other:5432:*:u:other\nh:5432:*:u:tcp\n",
    )
    .unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let e = env().with_var("PGPASSFILE", file.to_str().unwrap());
    let cases = [
        ("user=u", Some("sock")),
        ("user=u host=/tmp/other", Some("other")),
        ("user=u host=h", Some("tcp")),
        ("user=u host=nohost", None),
    ];
    for (s, want) in cases {
        let ci = ConnInfo::resolve(s, &e).unwrap();
        let got = ci.password_for(&ci.targets[0], &e);
        assert_eq!(got.as_ref().map(|(p, _)| p.expose()), want, "{s}");
        if let Some((_, origin)) = got {
            assert_eq!(origin, PasswordOrigin::File(file.clone()));
        }
    }
    let e2 = e.clone().with_var("PGPASSWORD", "envpw");
    let ci = ConnInfo::resolve("user=u", &e2).unwrap();
    assert_eq!(
        ci.password_for(&ci.targets[0], &e2).unwrap().1,
        PasswordOrigin::Environment
    );
    let ci = ConnInfo::resolve("user=u password=x", &e2).unwrap();
    assert_eq!(
        ci.password_for(&ci.targets[0], &e2).unwrap().0.expose(),
        "x"
    );
}

#[test]
fn tokio_config() {
    let ci = ConnInfo::resolve(
        "host=/sock,db port=1,2 user=u dbname=d password=p sslmode=verify-ca connect_timeout=1",
        &env(),
    )
    .unwrap();
    let c = ci.to_tokio_config(&env());
    assert_eq!(c.get_ports(), &[1, 2]);
    assert_eq!(c.get_hosts().len(), 2);
    assert_eq!(c.get_user(), Some("u"));
    assert_eq!(c.get_password(), Some(&b"p"[..]));
    assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(2)));
    assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
}

#[test]
fn parse_never_panics_on_odd_input() {
    let samples = [
        "\u{0}",
        "=",
        "'",
        "\\",
        "a='\\",
        "postgresql://[",
        "postgresql://@:/?&=",
        "postgresql://%",
        "postgresql://[::1]:x",
        "postgres://a:b:c@d",
        "x=\u{fffd}",
    ];
    for s in samples {
        let _ = parse(s);
        let _ = ConnInfo::resolve(s, &env());
    }
    // Every prefix of a long, tricky string.
    let long = "postgresql://u%40:p@[::1]:5,h/%2Fd?sslmode=require&ssl=true&host=%2Ftmp";
    for i in 0..=long.len() {
        if let Some(p) = long.get(..i) {
            let _ = ConnInfo::resolve(p, &env());
        }
    }
}
