//! The openGauss source on a real server (`.ci/install-opengauss.sh`): connecting over the HA
//! port through the target's `replconninfo` channels (trust, and sha256 passwords), the
//! `IDENTIFY_*` answers, the listing against the data directory on disk, range fetches and
//! streamed WAL byte for byte against the server's own files, record CRCs against the WAL's
//! `xl_crc`.

mod support;

use gsbuild::conninfo::SslMode;
use gsbuild::datadir::FileKind;
use gsbuild::lsn::Lsn;
use gsbuild::ogwire::{Kind, Login, OgConn};
use gsbuild::pgconf::Settings;
use gsbuild::replication::ClientOptions;
use gsbuild::source::opengauss::channels::{self, Channel};
use gsbuild::source::opengauss::fetch::FetchForm;
use gsbuild::source::opengauss::{OpenGaussOptions, OpenGaussSource};
use gsbuild::source::{ChunkSink, FetchRange, Source, TransferSink};
use gsbuild::timeline::TimeLineHistoryEntry;
use gsbuild::TimeLineId;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use support::opengauss::*;
use support::TestDir;

const SEG: u64 = 16 << 20;

fn client() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(30),
        status_interval: Duration::from_secs(10),
    }
}

fn login(user: &str, password: Option<&str>) -> Login {
    Login {
        user: user.into(),
        password: password.map(|p| gsbuild::conninfo::Password::new(p.into())),
        sslmode: SslMode::Prefer,
        sslrootcert: None,
    }
}

/// A target configuration whose replconninfo1 goes nowhere and replconninfo2 to `c`.
fn channels_to(c: &OgCluster, dir: &TestDir) -> Vec<Channel> {
    let dead = support::free_port();
    std::fs::write(
        dir.path.join("postgresql.conf"),
        format!(
            "replconninfo1 = 'localhost=127.0.0.1 localport=1 remotehost=127.0.0.1 remoteport={dead}'\n\
             replconninfo2 = 'localhost=127.0.0.1 localport=2 remotehost=127.0.0.1 remoteport={}'\n",
            c.port + 1
        ),
    )
    .expect("write conf");
    let s = Settings::read_target(&dir.path, None).expect("read conf");
    let ch = channels::from_settings(&s);
    assert!(ch.problems.is_empty(), "{:?}", ch.problems);
    assert_eq!(ch.channels.len(), 2);
    ch.channels
}

/// One node alone, started as a primary, with a table, checkpointed and idle.
fn primary(og: &OgInstall) -> OgCluster {
    let port = free_port_block();
    let mut c = OgCluster::init(og, "src", port, port + 10);
    c.start("primary");
    let abs = c.dir.path.join("ts_abs");
    std::fs::create_dir(&abs).unwrap();
    chown_to_og(&abs);
    c.sql(&format!(
        "create tablespace ts_abs location '{}'; create tablespace ts_rel relative location 'tsrel_dir';
         create table in_abs(a int) tablespace ts_abs; insert into in_abs values (1);
         create table in_rel(a int) tablespace ts_rel; insert into in_rel values (1);",
        abs.display()
    ));
    c.sql(
        "create table t1(id int primary key, v text);
         insert into t1 select g, repeat(md5(g::text), 4) from generate_series(1, 20000) g;
         vacuum freeze t1; checkpoint;",
    );
    c
}

fn source(c: &OgCluster, dir: &TestDir) -> OpenGaussSource {
    let user = channels::datadir_owner(&c.datadir()).expect("owner");
    assert_eq!(user, OG_USER);
    let options = OpenGaussOptions {
        login: login(&user, None),
        client: client(),
        local_term: Some(1),
    };
    OpenGaussSource::connect(&channels_to(c, dir), options).expect("connect")
}

#[derive(Default)]
struct Collect {
    chunks: BTreeMap<(String, u64), Vec<u8>>,
    vanished: Vec<String>,
    wal: BTreeMap<u64, Vec<u8>>,
}

impl ChunkSink for Collect {
    fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> gsbuild::Result<()> {
        let prev = self.chunks.insert((path.into(), offset), data.to_vec());
        assert!(prev.is_none(), "{path} at {offset} delivered twice");
        Ok(())
    }
    fn vanished(&mut self, path: &str) -> gsbuild::Result<()> {
        self.vanished.push(path.into());
        Ok(())
    }
}

impl TransferSink for Collect {
    fn wal(&mut self, start: Lsn, data: &[u8], _: &[TimeLineHistoryEntry]) -> gsbuild::Result<()> {
        self.wal.insert(start.0, data.to_vec());
        Ok(())
    }
}

impl Collect {
    /// The bytes of `path` from `offset` as delivered, contiguous.
    fn bytes(&self, path: &str, offset: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for ((p, o), d) in self.chunks.range((path.to_string(), 0)..) {
            if p != path {
                break;
            }
            if *o >= offset && *o < offset + len {
                assert_eq!(*o, offset + out.len() as u64, "gap in {path}");
                out.extend_from_slice(d);
            }
        }
        out
    }

    /// The streamed WAL from `start`, contiguous, cut to `len`.
    fn wal_from(&self, start: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (at, d) in self.wal.range(start..) {
            assert_eq!(*at, start + out.len() as u64, "gap in the WAL");
            out.extend_from_slice(d);
        }
        out.truncate(len as usize);
        out
    }
}

fn relation_path(c: &OgCluster, table: &str) -> String {
    c.sql(&format!("select pg_relation_filepath('{table}')"))
}

fn checkpoint_lsn(c: &OgCluster) -> Lsn {
    let out = c
        .install
        .command("pg_controldata")
        .arg(c.datadir())
        .output()
        .expect("pg_controldata");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("Latest checkpoint location:"))
        .expect("checkpoint line");
    line.rsplit(' ').next().unwrap_or("").parse().expect("lsn")
}

fn segment_file(c: &OgCluster, lsn: Lsn) -> std::path::PathBuf {
    c.datadir().join("pg_xlog").join(format!(
        "{:08X}{:08X}{:08X}",
        1,
        lsn.0 >> 32,
        (lsn.0 & 0xFFFF_FFFF) / SEG
    ))
}

/// What is at a path on disk.
#[derive(Debug, PartialEq, Eq)]
enum OnDisk {
    Dir,
    File(u64),
    /// A symbolic link (followed: what it points to is walked as if it were there).
    Link(String),
}

/// Every path under `dir`, relative, symbolic links followed.
fn walk(dir: &Path) -> BTreeMap<String, OnDisk> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap().display().to_string();
                out.insert(rel, OnDisk::Link(target));
                stack.push(p);
            } else if m.is_dir() {
                out.insert(rel, OnDisk::Dir);
                stack.push(p);
            } else {
                out.insert(rel, OnDisk::File(m.len()));
            }
        }
    }
    out
}

/// Paths a running server creates, changes or removes on its own.
fn transient(path: &str) -> bool {
    [
        "pg_stat_tmp",
        "pg_xlog/xlogtemp",
        "postmaster.pid",
        "pg_log",
        "gaussdb.state",
        "global/pgstat",
        "pg_errorinfo",
        "pg_audit",
        "pg_ctl.lock",
        "global/pg_control",
        "pg_xlog/0",
        "base/pgsql_tmp",
        "undo",
        "global/pg_dw",
    ]
    .iter()
    .any(|t| path.starts_with(t))
        || path.contains("_fsm")
        || path.contains("_vm")
}

#[test]
fn source_on_a_primary() {
    let Some(og) = og_install() else { return };
    let c = primary(&og);
    let dir = TestDir::new("og-source-conf");
    let t0 = Instant::now();
    let mut src = source(&c, &dir);
    eprintln!("connected in {:?}: {}", t0.elapsed(), src.describe());
    // The first channel refused the connection; the second answered.
    assert_eq!(src.channel().setting, "replconninfo2");
    assert!(src
        .describe()
        .contains(&format!("127.0.0.1:{}", c.port + 1)));
    assert!(!src.describe().contains("password"));
    assert_eq!(src.version().sversion, 90204);
    assert_eq!(src.version().pversion, "MPPDB");
    assert!(src.term().unwrap().unwrap() >= 1);
    let id = src.identify_system().unwrap();
    assert_eq!(id.timeline, TimeLineId(1));
    assert_eq!(id.dbname, None);
    assert!(id.xlogpos.0 > 0);

    check_settings(&mut src, &c);
    check_listing(&mut src, &c);
    check_fetch(&mut src, &c);
    check_wal(&mut src, &c);
    check_copy_with_wal(&mut src, &c);
}

fn check_settings(src: &mut OpenGaussSource, c: &OgCluster) {
    assert_eq!(
        src.setting("full_page_writes").unwrap().as_deref(),
        Some("on")
    );
    assert_eq!(
        src.setting("enable_incremental_checkpoint")
            .unwrap()
            .as_deref(),
        Some("on")
    );
    assert_eq!(
        src.setting("pgxc_node_name").unwrap().as_deref(),
        Some(c.name.as_str())
    );
    assert_eq!(src.setting("no_such_setting").unwrap(), None);
    assert_eq!(src.timeline_history(TimeLineId(2)).unwrap(), None);
    let (tli, pos) = src.wal_position().unwrap();
    assert_eq!(tli, TimeLineId(1));
    assert!(pos.0 > SEG, "{pos}");
}

fn check_listing(src: &mut OpenGaussSource, c: &OgCluster) {
    let t0 = Instant::now();
    let listed = src.list_files().unwrap();
    eprintln!("listed {} paths in {:?}", listed.len(), t0.elapsed());
    let disk = walk(&c.datadir());
    let mut by_path = BTreeMap::new();
    for f in &listed {
        by_path.insert(f.path.clone(), f.kind.clone());
    }
    // pg_xlog and the files a copy excludes are listed too: the file map decides.
    assert!(matches!(
        by_path.get("pg_xlog"),
        Some(gsbuild::datadir::FileKind::Dir)
    ));
    assert!(by_path.contains_key("postgresql.conf"));
    assert!(by_path.contains_key("global/pg_control"));
    let listed_set: BTreeSet<&String> = by_path.keys().collect();
    let disk_set: BTreeSet<&String> = disk.keys().collect();
    let only_disk: Vec<_> = disk_set
        .difference(&listed_set)
        .filter(|p| !transient(p))
        .collect();
    let only_listed: Vec<_> = listed_set
        .difference(&disk_set)
        .filter(|p| !transient(p))
        .collect();
    assert!(only_disk.is_empty(), "on disk, not listed: {only_disk:?}");
    assert!(
        only_listed.is_empty(),
        "listed, not on disk: {only_listed:?}"
    );
    for (path, on_disk) in &disk {
        if transient(path) {
            continue;
        }
        match (on_disk, &by_path[path]) {
            (OnDisk::Dir, FileKind::Dir) => {}
            (OnDisk::File(s), FileKind::File { size }) => assert_eq!(s, size, "size of {path}"),
            // A tablespace: its location as created, which for a relative one is the name
            // under pg_location/ (the link itself points into pg_location/).
            (OnDisk::Link(link), FileKind::Symlink { target }) => {
                assert!(
                    link == target || link.ends_with(&format!("/pg_location/{target}")),
                    "{path}: {link} on disk, {target} listed"
                )
            }
            (d, k) => panic!("{path}: {d:?} on disk, {k:?} listed"),
        }
    }
    let links: Vec<&String> = by_path
        .iter()
        .filter(|(_, k)| matches!(k, FileKind::Symlink { .. }))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    let rel_table = relation_path(c, "in_rel");
    assert!(by_path.contains_key(&rel_table), "{rel_table} not listed");
}

fn check_fetch(src: &mut OpenGaussSource, c: &OgCluster) {
    let rel = relation_path(c, "t1");
    let file = std::fs::read(c.datadir().join(&rel)).unwrap();
    let blocks = file.len() as u64 / 8192;
    assert!(blocks > 100, "{blocks}");
    let mut ranges: Vec<FetchRange> = (0..blocks - 1)
        .step_by(3)
        .map(|b| FetchRange {
            path: rel.clone(),
            offset: b * 8192,
            len: 8192,
        })
        .collect();
    ranges.push(FetchRange {
        path: "PG_VERSION".into(),
        offset: 0,
        len: 100,
    });
    ranges.push(FetchRange {
        path: "base/1/no_such_file".into(),
        offset: 0,
        len: 8192,
    });
    // Relation files are read in whole blocks (openGauss refuses other offsets and lengths
    // there); a range past the end gives the bytes that exist.
    ranges.push(FetchRange {
        path: rel.clone(),
        offset: file.len() as u64 - 8192,
        len: 3 * 8192,
    });
    for (form, jobs) in [
        (FetchForm::Values, 1),
        (FetchForm::Values, 4),
        (FetchForm::CopyTable, 3),
        (FetchForm::Arrays, 2),
    ] {
        src.set_fetch_form(form);
        src.set_jobs(jobs);
        let mut got = Collect::default();
        let t0 = Instant::now();
        src.fetch_ranges(&ranges, &mut got).unwrap();
        eprintln!(
            "{form:?} with {jobs} sessions: {} ranges in {:?}",
            ranges.len(),
            t0.elapsed()
        );
        for r in &ranges[..ranges.len() - 3] {
            let off = r.offset as usize;
            assert_eq!(
                got.bytes(&r.path, r.offset, r.len),
                &file[off..off + 8192],
                "{} at {}",
                r.path,
                r.offset
            );
        }
        assert_eq!(
            got.bytes("PG_VERSION", 0, 100),
            std::fs::read(c.datadir().join("PG_VERSION")).unwrap()
        );
        // A range past the end: only the bytes that exist.
        assert_eq!(
            got.bytes(&rel, file.len() as u64 - 8192, 3 * 8192),
            &file[file.len() - 8192..]
        );
        assert_eq!(got.vanished, ["base/1/no_such_file"]);
    }
    src.set_fetch_form(FetchForm::Arrays);
    let control = src.fetch_file("global/pg_control").unwrap();
    assert_eq!(control.len(), 8192);
    assert!(src.fetch_file("base/1/no_such_file").is_err());
}

fn check_wal(src: &mut OpenGaussSource, c: &OgCluster) {
    // A complete segment: switch to the next one, then stream the one before.
    c.sql("select pg_switch_xlog()");
    let (_, pos) = src.wal_position().unwrap();
    let seg_start = Lsn((pos.0 / SEG - 1) * SEG);
    let t0 = Instant::now();
    let mut streamed = Vec::new();
    src.read_wal(seg_start, Lsn(seg_start.0 + SEG), &[], &mut |at, data| {
        assert_eq!(at.0, seg_start.0 + streamed.len() as u64);
        streamed.extend_from_slice(data);
        Ok(true)
    })
    .unwrap();
    eprintln!("streamed {} bytes in {:?}", streamed.len(), t0.elapsed());
    streamed.truncate(SEG as usize);
    let disk = std::fs::read(segment_file(c, seg_start)).unwrap();
    assert!(
        streamed == disk,
        "streamed segment differs from the primary's file"
    );

    // The checkpoint record's CRC as the server tells it, and as its WAL file has it.
    c.sql("checkpoint");
    let ck = checkpoint_lsn(c);
    let seg = std::fs::read(segment_file(c, ck)).unwrap();
    let at = (ck.0 % SEG) as usize;
    assert!(at % 8192 + 32 <= 8192, "header of {ck} split across pages");
    let crc = u32::from_le_bytes(seg[at + 28..at + 32].try_into().unwrap());
    assert_eq!(src.record_crc(ck).unwrap(), Some(Some(crc)), "at {ck}");
    // Where no record starts: "no record" (no standby streams from this server).
    let nowhere = Lsn(ck.0 + 8);
    assert_eq!(src.record_crc(nowhere).unwrap(), Some(None));
    assert_eq!(src.record_crc(Lsn(pos.0 + 100 * SEG)).unwrap(), Some(None));
}

fn check_copy_with_wal(src: &mut OpenGaussSource, c: &OgCluster) {
    let (_, before) = src.wal_position().unwrap();
    let wal_start = Lsn(before.0 / SEG * SEG);
    let rel = relation_path(c, "t1");
    let ranges = vec![
        FetchRange {
            path: rel.clone(),
            offset: 0,
            len: 3 << 20,
        },
        FetchRange {
            path: "PG_VERSION".into(),
            offset: 0,
            len: 4,
        },
    ];
    src.set_jobs(2);
    let mut got = Collect::default();
    let t0 = Instant::now();
    let end = src
        .copy_with_wal(&ranges, wal_start, &[], &mut got)
        .unwrap();
    eprintln!("copy with WAL to {} in {:?}", end.end, t0.elapsed());
    assert_eq!(end.tli, TimeLineId(1));
    assert!(end.end >= before);
    let file = std::fs::read(c.datadir().join(&rel)).unwrap();
    let n = file.len().min(3 << 20);
    assert_eq!(got.bytes(&rel, 0, 3 << 20), &file[..n]);
    let len = end.end.0 - wal_start.0;
    let wal = got.wal_from(wal_start.0, len);
    assert_eq!(wal.len() as u64, len);
    let disk = std::fs::read(segment_file(c, wal_start)).unwrap();
    assert!(
        wal[..] == disk[..len as usize],
        "streamed WAL differs from the segment file"
    );
}

/// The HA port with passwords: the initial user with sha256, a wrong password, a normal user
/// (refused there), and md5 and md5_sha256 logins on the SQL port.
#[test]
fn passwords() {
    let Some(og) = og_install() else { return };
    let port = free_port_block();
    let mut c = OgCluster::init(&og, "pw", port, port + 10);
    c.start("primary");
    c.sql("create user u_sha password 'Test_sha256#1'; create user u_sha2md5 password 'Test_sha2md5#1'");
    let guc = |v: &str| {
        let out = c
            .install
            .command("gs_guc")
            .args(["reload", "-D"])
            .arg(c.datadir())
            .args(["-c", &format!("password_encryption_type={v}")])
            .output()
            .expect("gs_guc");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    guc("0");
    c.sql("create user u_md5 password 'Test_md5#1'");
    guc("2");
    let hba = c.datadir().join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    let lines = "host all omm 127.0.0.1/32 sha256\nhost replication omm 127.0.0.1/32 sha256\n\
                 host all u_sha 127.0.0.1/32 sha256\nhost all u_md5 127.0.0.1/32 md5\n\
                 host all u_sha2md5 127.0.0.1/32 md5\n";
    std::fs::write(&hba, format!("{lines}{text}")).unwrap();
    let out = c.gs_ctl(&["reload"]);
    assert!(out.status.success());
    std::thread::sleep(Duration::from_secs(1));

    let dir = TestDir::new("og-pw-conf");
    let chans = channels_to(&c, &dir);
    let try_as = |user: &str, pw: Option<&str>| {
        OpenGaussSource::connect(
            &chans,
            OpenGaussOptions {
                login: login(user, pw),
                client: client(),
                local_term: None,
            },
        )
    };
    let mut ok = try_as(OG_USER, Some(OG_PASSWORD)).expect("sha256 login of the initial user");
    assert!(ok.list_files().unwrap().len() > 100);
    assert!(!ok.describe().contains(OG_PASSWORD));
    let e = try_as(OG_USER, Some("wrong"))
        .err()
        .expect("wrong password")
        .to_string();
    eprintln!("{e}");
    assert!(e.contains("Invalid username/password,login denied"), "{e}");
    assert!(!e.contains("wrong"), "{e}");
    let e = try_as(OG_USER, None)
        .err()
        .expect("no password")
        .to_string();
    assert!(e.contains("none was given"), "{e}");
    let e = try_as("u_sha", Some("Test_sha256#1"))
        .err()
        .expect("normal user on HA")
        .to_string();
    // As the replication probe (gs_ctl) connects first, the refusal is the inner tools' one;
    // an SQL session would be told "Normal user is not allowed to use HA channel!".
    assert!(
        e.contains("Inner maintenance tools only for the initial user."),
        "{e}"
    );
    assert!(e.contains("only its initial user"), "{e}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let sql_port = gsbuild::ogwire::Endpoint {
        target: gsbuild::conninfo::Target {
            host: gsbuild::conninfo::Host::Tcp("127.0.0.1".into()),
            hostaddr: None,
            port: c.port,
        },
        bind: None,
    };
    for (user, pw) in [
        ("u_sha", "Test_sha256#1"),
        ("u_md5", "Test_md5#1"),
        ("u_sha2md5", "Test_sha2md5#1"),
    ] {
        rt.block_on(async {
            let mut s = OgConn::connect(&sql_port, &login(user, Some(pw)), Kind::Client, client())
                .await
                .unwrap_or_else(|e| panic!("{user}: {e}"));
            assert_eq!(
                s.query_text("select current_user")
                    .await
                    .unwrap()
                    .as_deref(),
                Some(user)
            );
        });
    }
    // An open source (its SQL sessions; no replication session is held) does not hold up the
    // server's fast shutdown.
    let t0 = Instant::now();
    c.stop();
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    drop(ok);
}

/// The two batch forms compared (`cargo test --release --test opengauss_source -- --ignored
/// --nocapture`): a few thousand scattered 8 KiB blocks, and a whole relation in 1 MiB chunks,
/// with one and four sessions.
#[test]
#[ignore]
fn batch_forms_compared() {
    let Some(og) = og_install() else { return };
    let port = free_port_block();
    let mut c = OgCluster::init(&og, "bench", port, port + 10);
    c.start("primary");
    c.sql(
        "create table big(id int, v text);
         insert into big select g, repeat(md5(g::text), 6) from generate_series(1, 500000) g;
         vacuum freeze big; checkpoint;",
    );
    let rel = relation_path(&c, "big");
    let size = std::fs::metadata(c.datadir().join(&rel)).unwrap().len();
    let blocks: Vec<FetchRange> = (0..size / 8192)
        .step_by(2)
        .take(6000)
        .map(|b| FetchRange {
            path: rel.clone(),
            offset: b * 8192,
            len: 8192,
        })
        .collect();
    let whole = vec![FetchRange {
        path: rel.clone(),
        offset: 0,
        len: size,
    }];
    let dir = TestDir::new("og-bench-conf");
    let mut src = source(&c, &dir);
    for (what, ranges) in [
        ("scattered 8 KiB blocks", &blocks),
        ("1 MiB chunks", &whole),
    ] {
        let bytes: u64 = ranges.iter().map(|r| r.len).sum();
        for jobs in [1, 4] {
            for form in [FetchForm::Values, FetchForm::CopyTable, FetchForm::Arrays] {
                src.set_fetch_form(form);
                src.set_jobs(jobs);
                let mut best = Duration::MAX;
                for _ in 0..5 {
                    let mut got = Collect::default();
                    let t0 = Instant::now();
                    src.fetch_ranges(ranges, &mut got).unwrap();
                    best = best.min(t0.elapsed());
                }
                eprintln!(
                    "{what}: {} ranges, {} MiB, {jobs} sessions, {form:?}: {best:?} ({:.0} MiB/s)",
                    ranges.len(),
                    bytes >> 20,
                    bytes as f64 / (1 << 20) as f64 / best.as_secs_f64()
                );
            }
        }
    }
}

/// A pair: the standby is refused as a source (`IDENTIFY_MODE` 3), and on the primary, with
/// the standby streaming from it, a position without a record is "cannot say" (`1`).
#[test]
fn primary_and_standby() {
    let Some(og) = og_install() else { return };
    let (p, s) = og_pair(&og, 1000);
    let dir = TestDir::new("og-pair-conf");
    let options = || OpenGaussOptions {
        login: login(OG_USER, None),
        client: client(),
        local_term: None,
    };
    let e = OpenGaussSource::connect(&channels_to(&s, &dir), options())
        .err()
        .expect("a standby is no source")
        .to_string();
    assert!(e.contains("mode is Standby (3)"), "{e}");
    let mut src = OpenGaussSource::connect(&channels_to(&p, &dir), options()).unwrap();
    p.sql("checkpoint");
    let ck = checkpoint_lsn(&p);
    let seg = std::fs::read(segment_file(&p, ck)).unwrap();
    let at = (ck.0 % SEG) as usize;
    let crc = u32::from_le_bytes(seg[at + 28..at + 32].try_into().unwrap());
    assert_eq!(src.record_crc(ck).unwrap(), Some(Some(crc)));
    assert_eq!(src.record_crc(Lsn(ck.0 + 8)).unwrap(), None);
}
