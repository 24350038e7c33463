//! Rebuild scenarios on real clusters: split a primary and its standby by promotion, run a
//! rebuild (library or binary), then start the rebuilt target as a standby of the source and
//! prove it holds the source's data: every table of every database compared in full, every
//! index checked with `pg_amcheck`, every file owned by the data directory's owner.

use super::*;
use gsbuild::plan::Plan;
use gsbuild::rewind::Outcome;
use gsbuild::rewind::{Options, Reporter, SourceSpec};
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

/// Which kind of source a scenario rebuilds from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The running new primary (`--source-server`).
    Server,
    /// The new primary's data directory after a clean stop (`--source-pgdata`).
    Local,
}

/// A [`Reporter`] that keeps every line.
pub struct Collect {
    /// Messages, in order.
    pub lines: Vec<String>,
    start: Instant,
}

impl Default for Collect {
    fn default() -> Self {
        Collect {
            lines: Vec::new(),
            start: Instant::now(),
        }
    }
}

impl Reporter for Collect {
    fn info(&mut self, msg: &str) {
        eprintln!("  [{:>7.2?}] {msg}", self.start.elapsed());
        self.lines.push(msg.to_string());
    }
    fn debug(&mut self, msg: &str) {
        eprintln!("  [{:>7.2?}] {msg}", self.start.elapsed());
        self.lines.push(msg.to_string());
    }
}

impl Collect {
    /// Whether some line contains `s`.
    pub fn saw(&self, s: &str) -> bool {
        self.lines.iter().any(|l| l.contains(s))
    }
}

/// Runs a rebuild through the library, timing it.
pub fn rebuild(opts: Options) -> (gsbuild::Result<(Plan, Option<Outcome>)>, Collect) {
    let mut rep = Collect::default();
    let t = Instant::now();
    let r = gsbuild::rewind::run(opts, &mut rep);
    eprintln!("rebuild took {:.2?}", t.elapsed());
    (r, rep)
}

/// Library options for rebuilding `target` from `source` the way `kind` says.
pub fn options(target: &Cluster, source: &Cluster, kind: SourceKind) -> Options {
    let spec = match kind {
        SourceKind::Server => SourceSpec::Server(source.connstr("postgres")),
        SourceKind::Local => SourceSpec::Local(source.datadir()),
    };
    let mut o = Options::new(target.datadir(), spec);
    o.write_recovery_conf = kind == SourceKind::Server;
    o.postgres = Some(target.install.tool("postgres"));
    // fsync costs seconds on a busy CI disk and proves nothing here; the binary runs keep it.
    o.sync = gsbuild::target::SyncMethod::None;
    o
}

/// Runs a program of `install` as the server user, panicking on failure.
pub fn tool(install: &PgInstall, name: &str, args: &[&str]) -> String {
    let out = run_ok(server_command(install.tool(name)).args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `pgbench` against `c`.
pub fn pgbench(c: &Cluster, args: &[&str]) {
    let host = c.socket_dir().display().to_string();
    let port = c.port.to_string();
    let mut all = vec!["-h", &host, "-p", &port, "-U", "postgres"];
    all.extend_from_slice(args);
    all.push("postgres");
    tool(&c.install, "pgbench", &all);
}

/// The WAL position everything written to `c` so far has reached.
pub fn current_lsn(c: &Cluster) -> String {
    c.psql(
        "postgres",
        "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END",
    )
}

/// Like [`Cluster::make_standby`], with `pg_basebackup --tablespace-mapping` for tablespaces
/// (needed when both clusters live on one machine).
pub fn make_standby_mapped(
    primary: &Cluster,
    name: &str,
    mapping: &[(PathBuf, PathBuf)],
) -> Cluster {
    primary.make_standby_with(name, false, mapping)
}

/// A primary and a streaming standby that has replayed everything; the caller promotes.
pub fn primary_and_standby(
    pg: &PgInstall,
    name: &str,
    setup: impl FnOnce(&Cluster),
    mapping: &[(PathBuf, PathBuf)],
) -> (Cluster, Cluster) {
    primary_and_standby_with(pg, name, &InitOptions::default(), setup, mapping)
}

/// [`primary_and_standby`] with a primary made with `init`.
pub fn primary_and_standby_with(
    pg: &PgInstall,
    name: &str,
    init: &InitOptions,
    setup: impl FnOnce(&Cluster),
    mapping: &[(PathBuf, PathBuf)],
) -> (Cluster, Cluster) {
    let mut old = Cluster::init(pg, &format!("{name}-old"), init);
    old.start();
    setup(&old);
    let mut new = make_standby_mapped(&old, &format!("{name}-new"), mapping);
    new.start();
    new.wait_replay(&current_lsn(&old));
    (old, new)
}

/// Makes `target` (stopped) a standby of `upstream` by hand (a local-source rebuild writes no
/// standby configuration).
pub fn configure_standby(target: &Cluster, upstream: &Cluster) {
    target.append_file("standby.signal", "");
    target.append_file(
        "postgresql.auto.conf",
        &format!(
            "primary_conninfo = 'host={} port={} user=postgres'",
            upstream.socket_dir().display(),
            upstream.port
        ),
    );
}

/// Connectable databases of `c`, sorted.
pub fn databases(c: &Cluster) -> Vec<String> {
    c.psql(
        "postgres",
        "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Every user relation of `db`: `schema.name persistence kind`, sorted.
fn relations(c: &Cluster, db: &str) -> String {
    c.psql(
        db,
        "SELECT format('%I.%I %s %s', n.nspname, c.relname, c.relpersistence, c.relkind) \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
            AND n.nspname NOT LIKE 'pg_toast%' AND c.relpersistence <> 't' ORDER BY 1",
    )
}

/// One query returning `name digest rows` for every permanent table of `db`, as seen on `c`;
/// the same query runs on both sides. The digest is over the sorted md5s of the rows' text, so
/// it covers every column of every row and stays small for a table over 1 GiB. (Sequences are
/// left out: a standby shows the WAL-logged value, up to 32 ahead of the primary's.)
fn digest_query(c: &Cluster, db: &str) -> String {
    let names = c.psql(
        db,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'm') AND c.relpersistence = 'p' \
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    );
    let parts: Vec<String> = names
        .lines()
        .map(|t| {
            format!(
                "SELECT {lit} || ' ' || coalesce(md5(string_agg(md5(x::text), '' ORDER BY md5(x::text))), '-') || ' ' || count(*) FROM {t} x",
                lit = quote_literal(t)
            )
        })
        .collect();
    if parts.is_empty() {
        return "SELECT 'no tables'".into();
    }
    // Sorted: a UNION ALL of large tables may run as a parallel append, in any order.
    format!(
        "SELECT * FROM ({}) AS d ORDER BY 1",
        parts.join(" UNION ALL ")
    )
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Starts the rebuilt `target` as a standby (of `upstream`, which follows or is `primary`),
/// waits until it replayed everything `primary` wrote, and compares it with `primary`:
/// databases, relations, the full contents of every table and sequence; then `pg_amcheck` on
/// the target. `amcheck` is created on the primary first (it replicates).
pub fn verify_standby(primary: &Cluster, target: &mut Cluster) {
    let t = Instant::now();
    for db in databases(primary) {
        primary.psql(&db, "CREATE EXTENSION IF NOT EXISTS amcheck");
    }
    primary.psql("postgres", "CHECKPOINT");
    target.start();
    let lsn = current_lsn(primary);
    target.wait_replay(&lsn);
    assert_eq!(
        target.psql("postgres", "SELECT pg_is_in_recovery()"),
        "t",
        "the rebuilt target must run as a standby"
    );
    let dbs = databases(primary);
    assert_eq!(databases(target), dbs, "databases differ");
    for db in &dbs {
        assert_eq!(
            relations(target, db),
            relations(primary, db),
            "relations differ in database {db}"
        );
        let q = digest_query(primary, db);
        let (want, got) = (primary.psql(db, &q), target.psql(db, &q));
        assert_eq!(got, want, "table contents differ in database {db}");
    }
    let host = target.socket_dir().display().to_string();
    let port = target.port.to_string();
    tool(
        &target.install,
        "pg_amcheck",
        &[
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            "postgres",
            "--all",
            "--heapallindexed",
        ],
    );
    eprintln!("verified in {:.2?}", t.elapsed());
}

/// Every path under `dir` (not following symlinks) is owned by `uid`.
pub fn assert_owned_by(dir: &Path, uid: u32) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(
            meta.uid(),
            uid,
            "{} is owned by uid {}",
            p.display(),
            meta.uid()
        );
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
}

/// Every directory under `dir` (and `dir`) has mode `dir_mode` and every file `file_mode`
/// (symbolic links are not followed; their own mode means nothing). A rebuild must create
/// what it creates as PostgreSQL would: 0700/0600, or 0750/0640 with group access.
pub fn assert_modes(dir: &Path, dir_mode: u32, file_mode: u32) {
    let mut stack = vec![dir.to_path_buf()];
    let mut wrong = Vec::new();
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.mode() & 0o7777;
        if meta.is_dir() {
            if mode != dir_mode {
                wrong.push(format!("{} is a directory of mode {mode:o}", p.display()));
            }
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if meta.is_file() && mode != file_mode {
            wrong.push(format!("{} has mode {mode:o}", p.display()));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected directories {dir_mode:o} and files {file_mode:o}:\n{}",
        wrong.join("\n")
    );
}

/// The uid of the data directory's owner.
pub fn owner_uid(c: &Cluster) -> u32 {
    std::fs::metadata(c.datadir()).unwrap().uid()
}

/// A digest of a whole tree: every path with its type, mode, owner, size, mtime and content
/// (symlinks: their target, not followed except `pg_wal` and tablespaces, whose trees are
/// included under their own path).
pub fn tree_digest(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
        let full = root.join(rel);
        let meta = std::fs::symlink_metadata(&full).unwrap();
        let key = rel.display().to_string();
        let common = format!(
            "mode={:o} uid={} mtime={}.{}",
            meta.mode(),
            meta.uid(),
            meta.mtime(),
            meta.mtime_nsec()
        );
        if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&full).unwrap();
            out.insert(key, format!("link {} {common}", link.display()));
            walk_dir(root, rel, out);
        } else if meta.is_dir() {
            out.insert(key, format!("dir {common}"));
            walk_dir(root, rel, out);
        } else {
            let data = std::fs::read(&full).unwrap();
            let sum = crc32c::crc32c(&data);
            out.insert(key, format!("file {} {sum:08x} {common}", data.len()));
        }
    }
    fn walk_dir(root: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(root.join(rel)) else {
            return;
        };
        for e in rd {
            walk(root, &rel.join(e.unwrap().file_name()), out);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, Path::new(""), &mut out);
    out
}

/// The relation file of `table` in `db` (relative to the data directory).
pub fn relpath(c: &Cluster, db: &str, table: &str) -> String {
    c.psql(db, &format!("SELECT pg_relation_filepath('{table}')"))
}

/// Panics with the paths whose digests differ between two [`tree_digest`]s.
pub fn assert_same_tree(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    what: &str,
) {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| format!("{k}: {:?} → {:?}", before.get(k), after.get(k)))
        .collect();
    assert!(diff.is_empty(), "{what}:\n{}", diff.join("\n"));
}

/// Puts `c`'s own port and socket directory back at the end of its `postgresql.conf` (after a
/// rebuild that copied the source's configuration files).
pub fn restore_connection_conf(c: &Cluster) {
    c.append_conf(&c.connection_conf());
}

/// Small common history: pgbench tables and a table both sides will change.
pub fn small_setup(c: &Cluster) {
    pgbench(c, &["-i", "-s", "1", "-q"]);
    c.psql_script(
        "postgres",
        "CREATE TABLE common (id int PRIMARY KEY, v text);
         INSERT INTO common SELECT g, md5(g::text) FROM generate_series(1, 1000) g;",
    );
}

/// The least-privilege role HA tools create for pg_rewind (`rewinder`): LOGIN and EXECUTE on
/// the four file functions, no superuser, no `REPLICATION`, no `pg_read_all_settings`.
pub fn create_rewind_role(c: &Cluster) {
    c.psql_script(
        "postgres",
        "CREATE ROLE rewinder LOGIN;
         GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO rewinder;
         GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO rewinder;
         GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO rewinder;
         GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO rewinder;",
    );
}

/// Both sides write after the split; the target's writes are to be lost.
pub fn small_diverge(source: &Cluster, target: &Cluster) {
    pgbench(source, &["-n", "-t", "100"]);
    source.psql_script(
        "postgres",
        "INSERT INTO common SELECT g, 'source' FROM generate_series(1001, 2000) g;
         CREATE TABLE src_only AS SELECT generate_series(1, 3000) AS g;",
    );
    pgbench(target, &["-n", "-t", "100"]);
    target.psql_script(
        "postgres",
        "UPDATE common SET v = 'lost';
         CREATE TABLE lost AS SELECT generate_series(1, 10000) AS g;",
    );
}

/// After verification: the target's lost writes are gone.
pub fn assert_lost_gone(target: &Cluster) {
    assert_eq!(
        target.psql(
            "postgres",
            "SELECT count(*) FROM pg_class WHERE relname = 'lost'"
        ),
        "0"
    );
    assert_eq!(
        target.psql("postgres", "SELECT count(*) FROM common WHERE v = 'lost'"),
        "0"
    );
}
