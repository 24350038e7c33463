//! Hostile and broken input (issue 5): every bad input gets exit code 1 from the `gsbuild`
//! binary, an error naming the file, LSN, setting or peer at fault, and a target that is
//! byte-for-byte, mode, owner and mtime what it was (`tree_digest` before and after).
//!
//! One diverged pair serves all read-only cases: each case damages a copy of the target (or
//! the source, restored afterwards), and every refusal happens before gsbuild's point of no
//! return. A second pair serves a source whose file listing is hostile, driven through the
//! library with a `Source` that wraps a real stopped cluster and adds what a malicious server
//! could send: nothing may ever be written outside the target.

mod support;

use gsbuild::filemap::FileKind;
use gsbuild::rewind;
use gsbuild::source::local::LocalSource;
use gsbuild::source::{ChunkSink, FetchRange, Source, SourceFile, WalSink};
use gsbuild::timeline::TimeLineHistoryEntry;
use gsbuild::{Lsn, TimeLineId};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::run::{copy_dir, gsbuild, s};
use support::scenario::*;
use support::*;

const LIMIT: Duration = Duration::from_secs(180);

/// Runs gsbuild on `target` with `args` and checks the refusal: exit code 1, every one of
/// `needles` in stderr, the target unchanged. Returns stderr.
fn refused(case: &str, target: &Path, args: &[String], needles: &[&str]) -> String {
    let before = tree_digest(target);
    let run = gsbuild(args, &[], LIMIT);
    assert_eq!(run.code, Some(1), "{case}: {run}");
    for n in needles {
        assert!(run.stderr.contains(n), "{case}: {n:?} missing in\n{run}");
    }
    assert_same_tree(
        &before,
        &tree_digest(target),
        &format!("{case}: the refused run changed the target"),
    );
    run.stderr
}

/// `gsbuild -q -b incremental -D target` and `source`: the refusals of the incremental engine
/// (`-b auto`, the default, would build some of these targets in full instead: a target whose
/// own WAL or history is unusable; tests/rebuild/full.rs covers that).
fn args(target: &Path, source: &[String]) -> Vec<String> {
    let mut a = vec![
        "-q".to_string(),
        "-b".into(),
        "incremental".into(),
        "-D".into(),
        s(target),
    ];
    a.extend_from_slice(source);
    a
}

fn server(c: &Cluster) -> Vec<String> {
    vec!["--source-server".into(), c.connstr("postgres")]
}

fn local(c: &Cluster) -> Vec<String> {
    vec!["--source-pgdata".into(), s(c.datadir())]
}

/// One WAL record, as pg_waldump lists it.
#[derive(Debug, Clone, Copy)]
struct WalRec {
    lsn: u64,
    len: u64,
}

fn parse_lsn(t: &str) -> u64 {
    let (hi, lo) = t.trim().split_once('/').expect("X/X");
    (u64::from_str_radix(hi, 16).expect("hex") << 32) | u64::from_str_radix(lo, 16).expect("hex")
}

/// Records of `pg_wal` in `[start, end)` on timeline 1, from pg_waldump (the oracle).
fn records(pg: &PgInstall, wal: &Path, start: &str, end: &str) -> Vec<WalRec> {
    let out = run_ok(
        std::process::Command::new(pg.tool("pg_waldump"))
            .arg("-p")
            .arg(wal)
            .args(["-s", start, "-e", end]),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let len = l.split("len (rec/tot):").nth(1)?.split(',').next()?;
            let len = len.split('/').nth(1)?.trim().parse().ok()?;
            let lsn = l.split("lsn: ").nth(1)?.split(',').next()?;
            Some(WalRec {
                lsn: parse_lsn(lsn),
                len,
            })
        })
        .collect()
}

const SEG: u64 = 16 << 20;
const PAGE: u64 = 8192;

fn segment_name(tli: u32, lsn: u64) -> String {
    let segno = lsn / SEG;
    format!(
        "{tli:08X}{:08X}{:08X}",
        segno / (0x1_0000_0000 / SEG),
        segno % (0x1_0000_0000 / SEG)
    )
}

fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for patching");
    f.write_all_at(bytes, offset).expect("patch");
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(path).expect("open");
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, offset).expect("read");
    buf
}

/// Starts `c` with extra server options (`pg_ctl -o`).
fn start_with(c: &mut Cluster, options: &str) {
    run_ok(
        server_command(c.install.tool("pg_ctl"))
            .arg("-D")
            .arg(c.datadir())
            .arg("-l")
            .arg(c.log_path())
            .arg("-o")
            .arg(options)
            .args(["-w", "-t", "120", "start"]),
    );
    c.set_running(true);
}

/// Keeps a pristine copy of a stopped target and puts it back.
struct Pristine {
    _dir: TestDir,
    copy: PathBuf,
    digest: BTreeMap<String, String>,
}

impl Pristine {
    fn save(target: &Path) -> Pristine {
        let dir = TestDir::new("pristine");
        let copy = dir.path.join("data");
        copy_dir(target, &copy);
        Pristine {
            digest: tree_digest(target),
            _dir: dir,
            copy,
        }
    }

    fn restore(&self, target: &Path) {
        copy_dir(&self.copy, target);
        assert_same_tree(&self.digest, &tree_digest(target), "restored target");
    }
}

/// Another cluster of `pg`'s major, running: a different system identifier.
fn stranger(pg: &PgInstall, name: &str) -> Cluster {
    let mut c = Cluster::init(pg, name, &InitOptions::default());
    c.start();
    c
}

#[test]
fn hostile_inputs_pg15() {
    let Some(pg) = install(15) else { return };
    let Some(pg16) = install(16) else { return };
    let (mut old, mut new) = primary_and_standby(&pg, "hostile", small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    new.psql(
        "postgres",
        "CREATE TABLE vanishing AS SELECT g, md5(g::text) AS t FROM generate_series(1, 20000) g",
    );
    old.stop();
    let target = old.datadir();
    let pristine = Pristine::save(&target);
    let mut tried = 0;

    // Where the rebuild reads the target's WAL: from the common checkpoint's redo point to the
    // target's last checkpoint (a dry run's JSON plan says where).
    let dry = gsbuild(
        &[
            args(&target, &server(&new)),
            vec!["-n".into(), "--format".into(), "json".into()],
        ]
        .concat(),
        &[],
        LIMIT,
    );
    assert_eq!(dry.code, Some(0), "{dry}");
    let plan: serde_json::Value = serde_json::from_str(&dry.stdout).expect("JSON plan");
    let redo = plan["plan"]["checkpoint"]["redo"]
        .as_str()
        .expect("redo")
        .to_string();
    let last_ckpt = old.controldata()["Latest checkpoint location"].clone();
    let recs = records(&pg, &old.wal_dir(), &redo, &last_ckpt);
    let inner: Vec<WalRec> = recs
        .iter()
        .copied()
        .filter(|r| r.len >= 64 && r.lsn % PAGE >= 64 && r.lsn % PAGE + 64 <= PAGE)
        .collect();
    assert!(inner.len() >= 3, "too few records to damage: {recs:?}");
    let victim = inner[inner.len() / 2];
    let seg_name = segment_name(1, victim.lsn);
    let seg_path = old.wal_dir().join(&seg_name);
    let page = victim.lsn - victim.lsn % PAGE;
    eprintln!(
        "damaging the record at {} in {seg_name}",
        lsn_text(victim.lsn)
    );

    // --- pg_control
    let control = target.join("global/pg_control");
    let byte = read_at(&control, 40, 1)[0];
    patch(&control, 40, &[byte ^ 0x10]);
    refused(
        "pg_control with a bad CRC",
        &target,
        &args(&target, &server(&new)),
        &["global/pg_control", "CRC"],
    );
    pristine.restore(&target);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&control)
        .and_then(|f| f.set_len(100))
        .expect("truncate pg_control");
    refused(
        "truncated pg_control",
        &target,
        &args(&target, &server(&new)),
        &["global/pg_control"],
    );
    pristine.restore(&target);
    tried += 2;

    // --- the target's WAL between the common redo point and its end
    let at = lsn_text(victim.lsn);
    let b = read_at(&seg_path, victim.lsn % SEG + 30, 1)[0];
    patch(&seg_path, victim.lsn % SEG + 30, &[b ^ 0x01]);
    refused(
        "a flipped byte in a WAL record",
        &target,
        &args(&target, &server(&new)),
        &[&at],
    );
    pristine.restore(&target);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg_path)
        .and_then(|f| f.set_len(page % SEG))
        .expect("truncate segment");
    refused(
        "a truncated WAL segment",
        &target,
        &args(&target, &server(&new)),
        &[&seg_name],
    );
    pristine.restore(&target);
    patch(&seg_path, page % SEG + 8, &(page + SEG).to_le_bytes());
    refused(
        "a WAL page with a wrong address",
        &target,
        &args(&target, &server(&new)),
        &[&lsn_text(page)],
    );
    pristine.restore(&target);
    // The same segment of another cluster (same name, same page addresses: only the system
    // identifier in its long header and the records differ).
    let mut other = stranger(&pg, "hostile-other");
    for i in 0..200 {
        if other.psql("postgres", "SELECT pg_walfile_name(pg_current_wal_lsn())") > seg_name {
            break;
        }
        other.psql_script(
            "postgres",
            &format!("CREATE TABLE IF NOT EXISTS pad (i int); INSERT INTO pad VALUES ({i}); SELECT pg_switch_wal();"),
        );
    }
    std::fs::copy(other.wal_dir().join(&seg_name), &seg_path).expect("copy foreign segment");
    refused(
        "a WAL segment from another cluster",
        &target,
        &args(&target, &server(&new)),
        &[
            "WAL file is from different database system",
            &lsn_text(victim.lsn - victim.lsn % SEG),
        ],
    );
    pristine.restore(&target);
    tried += 4;

    // --- the source's timeline history (read by the server for TIMELINE_HISTORY)
    let history = new.wal_dir().join("00000002.history");
    let honest = std::fs::read(&history).expect("read history");
    for (case, text, needle) in [
        (
            "a malformed history file",
            "this is not a history file\n",
            "syntax error in line 1",
        ),
        (
            "a history whose switchpoint lies beyond the source's WAL",
            "1\tFF/0\tno recovery target specified\n",
            "beyond the cluster's end of WAL",
        ),
        (
            "a history whose timelines do not increase",
            "1\t0/1000000\tx\n1\t0/2000000\ty\n",
            "increasing sequence",
        ),
    ] {
        std::fs::write(&history, text).expect("write history");
        refused(
            case,
            &target,
            &args(&target, &server(&new)),
            &["00000002.history", needle],
        );
        tried += 1;
    }
    std::fs::write(&history, &honest).expect("restore history");

    // --- clusters that do not fit
    let sysids = |c: &Cluster| c.controldata()["Database system identifier"].clone();
    let theirs = sysids(&other);
    let ours = old.controldata()["Database system identifier"].clone();
    refused(
        "a source from another initdb",
        &target,
        &args(&target, &server(&other)),
        &["different systems", &theirs, &ours],
    );
    let mut newer = stranger(&pg16, "hostile-16");
    refused(
        "a source of another major",
        &target,
        &args(&target, &server(&newer)),
        &["source is PostgreSQL 16", "target is PostgreSQL 15"],
    );
    other.stop();
    newer.stop();
    refused(
        "a stopped source from another initdb",
        &target,
        &args(&target, &local(&other)),
        &["different systems", &theirs, &ours],
    );
    refused(
        "a stopped source of another major",
        &target,
        &args(&target, &local(&newer)),
        &["source is PostgreSQL 16", "target is PostgreSQL 15"],
    );
    tried += 4;

    // --- the target running (idle: no autovacuum, no timed checkpoint, so only gsbuild could
    // change it while it runs)
    // (pg_rewind's command line refuses it; `gsbuild -D` would stop it first, see the
    // lifecycle tests.)
    start_with(&mut old, "-c autovacuum=off -c checkpoint_timeout=1h");
    let mut rewind = vec!["rewind".to_string(), "-D".into(), s(&target)];
    rewind.extend(server(&new));
    refused(
        "a running target",
        &target,
        &rewind,
        &["a postmaster is running on", &s(&target)],
    );
    old.stop_mode("immediate");
    pristine.restore(&target);
    tried += 1;

    // --- source and target the same cluster (also through a symlink)
    refused(
        "the target as its own source",
        &target,
        &args(&target, &local(&old)),
        &["source and target data directory are the same", &s(&target)],
    );
    let alias = old.dir.path.join("alias");
    std::os::unix::fs::symlink(&target, &alias).expect("symlink");
    refused(
        "the target as its own source, through a symlink",
        &target,
        &args(&target, &["--source-pgdata".into(), s(&alias)]),
        &["source and target data directory are the same", &s(&target)],
    );
    std::fs::remove_file(&alias).expect("remove symlink");
    tried += 2;

    // --- a target without checksums or wal_log_hints: a copy made so with the real tools
    let bare_dir = TestDir::new("hostile-bare");
    let bare = bare_dir.path.join("data");
    copy_dir(&target, &bare);
    run_ok(
        server_command(pg.tool("pg_checksums"))
            .arg("--disable")
            .arg("-D")
            .arg(&bare),
    );
    run_ok(
        server_command(pg.tool("pg_ctl"))
            .arg("-D")
            .arg(&bare)
            .arg("-l")
            .arg(bare_dir.path.join("log"))
            .arg("-o")
            .arg(format!(
                "-c wal_log_hints=off -c unix_socket_directories={} -c listen_addresses=''",
                bare_dir.path.display()
            ))
            .args(["-w", "-t", "120", "start"]),
    );
    run_ok(
        server_command(pg.tool("pg_ctl"))
            .arg("-D")
            .arg(&bare)
            .args(["-w", "-t", "120", "-m", "fast", "stop"]),
    );
    refused(
        "a target without checksums or wal_log_hints",
        &bare,
        &args(&bare, &server(&new)),
        &["data checksums", "wal_log_hints"],
    );
    tried += 1;

    // --- a source without full_page_writes, live and stopped
    new.psql("postgres", "ALTER SYSTEM SET full_page_writes = off");
    new.psql("postgres", "SELECT pg_reload_conf()");
    for _ in 0..100 {
        if new.psql("postgres", "SHOW full_page_writes") == "off" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    refused(
        "a live source without full_page_writes",
        &target,
        &args(&target, &server(&new)),
        &["full_page_writes"],
    );
    new.stop();
    refused(
        "a stopped source without full_page_writes",
        &target,
        &args(&target, &local(&new)),
        &["full_page_writes"],
    );
    new.start();
    new.psql("postgres", "ALTER SYSTEM RESET full_page_writes");
    new.psql("postgres", "SELECT pg_reload_conf()");
    tried += 2;

    // --- a file that vanishes on the source between the listing and the copy: the server
    // source reports it gone (NULL from pg_read_binary_file) and the rebuild goes on, since
    // replaying the source's WAL removes the file anyway.
    let rel = relpath(&new, "postgres", "vanishing");
    let opts = options(&old, &new, SourceKind::Server);
    let mut rep = Collect::default();
    let prep = rewind::prepare(opts, &mut rep).expect("prepare");
    assert!(
        prep.plan.files.iter().any(|f| f.path == rel),
        "{rel} is not in the plan"
    );
    new.psql("postgres", "DROP TABLE vanishing");
    new.psql("postgres", "CHECKPOINT");
    assert!(!new.datadir().join(&rel).exists());
    gsbuild::rewind::execute(prep, &mut rep).expect("a vanished file is not an error");
    assert!(
        rep.saw(&format!("\"{rel}\", file has been deleted")),
        "{:?}",
        rep.lines
    );
    verify_standby(&new, &mut old);
    assert_lost_gone(&old);
    tried += 1;
    eprintln!("hostile inputs: {tried} bad inputs tried, all refused or handled");
}

/// Something a hostile source does to the sink before it copies honestly.
type Attack = fn(&mut dyn ChunkSink, &[FetchRange]) -> gsbuild::Result<()>;

/// A source whose listing (and, later, whose answers) a malicious server could have sent: a
/// real stopped cluster's, plus `extra` entries, and `on_fetch` writing into the sink before
/// the honest copy.
struct HostileSource {
    inner: LocalSource,
    extra: Vec<SourceFile>,
    on_fetch: Option<Attack>,
}

impl Source for HostileSource {
    fn describe(&self) -> String {
        format!("hostile wrapper of {}", self.inner.describe())
    }
    fn list_files(&mut self) -> gsbuild::Result<Vec<SourceFile>> {
        let mut files = self.inner.list_files()?;
        files.extend(self.extra.iter().cloned());
        Ok(files)
    }
    fn fetch_file(&mut self, path: &str) -> gsbuild::Result<Vec<u8>> {
        self.inner.fetch_file(path)
    }
    fn fetch_ranges(
        &mut self,
        ranges: &[FetchRange],
        sink: &mut dyn ChunkSink,
    ) -> gsbuild::Result<()> {
        if let Some(f) = self.on_fetch {
            f(sink, ranges)?;
        }
        self.inner.fetch_ranges(ranges, sink)
    }
    fn wal_position(&mut self) -> gsbuild::Result<(TimeLineId, Lsn)> {
        self.inner.wal_position()
    }
    fn timeline_history(&mut self, tli: TimeLineId) -> gsbuild::Result<Option<Vec<u8>>> {
        self.inner.timeline_history(tli)
    }
    fn read_wal(
        &mut self,
        start: Lsn,
        end: Lsn,
        history: &[TimeLineHistoryEntry],
        sink: &mut WalSink<'_>,
    ) -> gsbuild::Result<()> {
        self.inner.read_wal(start, end, history, sink)
    }
}

fn file(path: &str, size: u64) -> SourceFile {
    SourceFile {
        path: path.into(),
        kind: FileKind::File { size },
    }
}

fn link(path: &str, target: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        kind: FileKind::Symlink {
            target: target.into(),
        },
    }
}

/// Everything next to the target data directory (the sentinel directory, logs, the parent
/// directory's own entry), which no rebuild may change.
fn surroundings(c: &Cluster) -> BTreeMap<String, String> {
    let mut d = tree_digest(&c.dir.path);
    d.retain(|k, _| k != "data" && !k.starts_with("data/"));
    d
}

#[test]
fn hostile_listing_never_escapes_pg16() {
    let Some(pg) = install(16) else { return };
    let (mut old, mut new) = primary_and_standby(&pg, "listing", small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    old.stop();
    new.stop();
    let target = old.datadir();
    let sentinel = old.dir.path.join("sentinel");
    std::fs::create_dir(&sentinel).expect("sentinel dir");
    std::fs::write(sentinel.join("canary"), "untouched").expect("canary");
    let outside = surroundings(&old);
    let before = tree_digest(&target);
    let relative_ts = "gsbuild-hostile-relative-tablespace";
    let opts = || options(&old, &new, SourceKind::Local);
    let hostile = |extra: Vec<SourceFile>| HostileSource {
        inner: LocalSource::new(&new.datadir()),
        extra,
        on_fetch: None,
    };
    let sentinel_s = s(&sentinel);
    let cases: Vec<(&str, Vec<SourceFile>, String)> = vec![
        (
            "a path with ..",
            vec![file("../escape", 10)],
            "\"../escape\"".into(),
        ),
        (
            "an absolute path",
            vec![file(&format!("{sentinel_s}/abs"), 10)],
            format!("\"{sentinel_s}/abs\""),
        ),
        (
            "an empty component",
            vec![file("base//1", 10)],
            "\"base//1\"".into(),
        ),
        (
            "a symlink out of the data directory, and a file through it",
            vec![link("evil", &sentinel_s), file("evil/owned", 10)],
            "\"evil\"".into(),
        ),
        (
            "a symlink inside a database directory",
            vec![link("base/1/evil", &sentinel_s)],
            "\"base/1/evil\"".into(),
        ),
        (
            "a tablespace with a relative location",
            vec![
                link("pg_tblspc/99999", relative_ts),
                file("pg_tblspc/99999/PG_16_x/1/1", 8192),
            ],
            "\"pg_tblspc/99999\"".into(),
        ),
    ];
    let mut tried = 0;
    for (case, extra, needle) in cases {
        let mut rep = Collect::default();
        let err = match rewind::prepare_with_source(opts(), Box::new(hostile(extra)), &mut rep) {
            Ok(_) => panic!("{case}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(&needle), "{case}: {err}");
        assert_same_tree(&before, &tree_digest(&target), case);
        assert_same_tree(&outside, &surroundings(&old), case);
        tried += 1;
    }
    assert!(!Path::new(relative_ts).exists());

    // A tablespace pointing at a directory that holds something: refused when executing,
    // before the point of no return.
    let extra = vec![
        link("pg_tblspc/99999", &sentinel_s),
        file("pg_tblspc/99999/canary", 5),
    ];
    let mut rep = Collect::default();
    let prep = rewind::prepare_with_source(opts(), Box::new(hostile(extra)), &mut rep)
        .expect("plan with a tablespace");
    let err = gsbuild::rewind::execute(prep, &mut rep)
        .expect_err("a tablespace over a non-empty directory")
        .to_string();
    assert!(err.contains(&format!("\"{sentinel_s}\"")), "{err}");
    assert_same_tree(&before, &tree_digest(&target), "refused tablespace");
    assert_same_tree(&outside, &surroundings(&old), "refused tablespace");
    tried += 1;

    // Answers nobody asked for, during the copy (after the point of no return): each run
    // fails naming the path, writes nothing outside, leaves the journal and the set-aside
    // pg_control alone, and the next run resumes.
    let attacks: [(&str, Attack, &str); 5] = [
        (
            "a chunk for a path with ..",
            |s, _| s.write("../escape", 0, b"x"),
            "\"../escape\"",
        ),
        (
            "a chunk overwriting the journal",
            |s, _| s.write("gsbuild.journal", 0, b"{}"),
            "\"gsbuild.journal\"",
        ),
        (
            "a vanished notice for the set-aside pg_control",
            |s, _| s.vanished("global/pg_control.gsbuild-orig"),
            "\"global/pg_control.gsbuild-orig\"",
        ),
        (
            "a chunk beyond the requested range",
            |s, r| match r.first() {
                Some(r) => s.write(&r.path, r.offset + r.len, &[0; 8192]),
                None => Ok(()),
            },
            "which was not requested",
        ),
        (
            "a chunk for an absolute path",
            |s, _| s.write("/tmp/gsbuild-hostile-absolute", 0, b"x"),
            "\"/tmp/gsbuild-hostile-absolute\"",
        ),
    ];
    for (case, attack, needle) in attacks {
        let mut rep = Collect::default();
        let source = HostileSource {
            on_fetch: Some(attack),
            ..hostile(Vec::new())
        };
        let prep = rewind::prepare_with_source(opts(), Box::new(source), &mut rep).expect("plan");
        let err = gsbuild::rewind::execute(prep, &mut rep)
            .expect_err(case)
            .to_string();
        assert!(err.contains(needle), "{case}: {err}");
        assert_same_tree(&outside, &surroundings(&old), case);
        assert!(target.join("gsbuild.journal").is_file(), "{case}");
        assert!(
            target.join("global/pg_control.gsbuild-orig").is_file(),
            "{case}"
        );
        assert!(!target.join("global/pg_control").exists(), "{case}");
        tried += 1;
    }
    assert!(!Path::new("/tmp/gsbuild-hostile-absolute").exists());
    let (r, rep) = rebuild(opts());
    r.expect("the honest source finishes the rebuild");
    assert!(
        rep.saw("resuming the interrupted rebuild"),
        "{:?}",
        rep.lines
    );
    assert_same_tree(&outside, &surroundings(&old), "resumed rebuild");
    new.start();
    configure_standby(&old, &new);
    verify_standby(&new, &mut old);
    assert_lost_gone(&old);
    eprintln!("hostile listings and answers: {tried} tried, none wrote outside the target");
}
