//! The scenario generator: a seed becomes a [`Scenario`] — a PostgreSQL major, a topology, the
//! settings of the clusters, and the SQL each side runs before and after the split. Everything
//! is drawn from [`Rng`] up front, so that the same seed always builds the same clusters in the
//! same way. The SQL is generated against a [`Model`] of what exists (tables, databases,
//! tablespaces, prepared transactions, …) so that every statement is valid; at the split the
//! model is cloned, and each side goes on with its own copy.

use super::rng::Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The majors the generator draws from.
pub const MAJORS: [u32; 5] = [14, 15, 16, 17, 18];

/// The topology family of a scenario (the brief's letters a–g).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Topology {
    /// (a) primary → standby; the standby is promoted, the old primary rebuilt from it.
    Promote,
    /// (b) the source is a standby of the new primary.
    CascadeSource,
    /// (c) a chain A → B [→ D] → C; C is promoted and rebuilt from the standby before it.
    Chain,
    /// (d) two standbys promoted to the same timeline; one is rebuilt from the other.
    SameTimeline,
    /// (e) the target crashed (`stop -m immediate`) instead of stopping cleanly.
    CrashedTarget,
    /// (f) the source restarts between the two rebuilds, or in the middle of gsbuild's.
    SourceRestart,
    /// (g) the target's WAL after the split was never archived (`archive_command` fails).
    UnarchivedTail,
}

impl Topology {
    /// All, in letter order.
    pub const ALL: [Topology; 7] = [
        Topology::Promote,
        Topology::CascadeSource,
        Topology::Chain,
        Topology::SameTimeline,
        Topology::CrashedTarget,
        Topology::SourceRestart,
        Topology::UnarchivedTail,
    ];

    /// `a`..`g`.
    pub fn letter(self) -> char {
        (b'a' + Topology::ALL.iter().position(|t| *t == self).unwrap() as u8) as char
    }

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Topology::Promote => "promote",
            Topology::CascadeSource => "cascade-source",
            Topology::Chain => "chain",
            Topology::SameTimeline => "same-timeline",
            Topology::CrashedTarget => "crashed-target",
            Topology::SourceRestart => "source-restart",
            Topology::UnarchivedTail => "unarchived-tail",
        }
    }

    /// `a:promote`.
    pub fn label(self) -> String {
        format!("{}:{}", self.letter(), self.name())
    }
}

/// How the nodes are arranged (the modifiers e–g apply to one of these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    /// P → S; S promoted; P (target) rebuilt from S.
    Promote,
    /// P → S and a third node X; S promoted; X follows S (re-pointed, or a fresh copy of S
    /// when `from_new`); P (target) rebuilt from X.
    Cascade {
        /// X is made from S after the promotion instead of re-pointed from P.
        from_new: bool,
    },
    /// A → B [→ D] → C; C promoted; C (target) rebuilt from the last standby before it.
    Chain {
        /// Standbys between A and C (1: B; 2: B → D).
        depth: usize,
        /// The source makes a restartpoint (CHECKPOINT on it) after replaying A's last
        /// checkpoint before the split.
        restartpoint: bool,
    },
    /// P → A and P → B; P stops; A and B promoted (both to timeline 2); B rebuilt from A.
    SameTimeline,
}

impl Base {
    fn describe(&self) -> String {
        match self {
            Base::Promote => "promote".into(),
            Base::Cascade { from_new } => {
                format!("cascade({})", if *from_new { "fresh" } else { "repointed" })
            }
            Base::Chain {
                depth,
                restartpoint,
            } => format!(
                "chain(depth={depth}{})",
                if *restartpoint { ",restartpoint" } else { "" }
            ),
            Base::SameTimeline => "same-timeline".into(),
        }
    }
}

/// Source of the rebuilds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// `--source-server` (with `-R`).
    Server,
    /// `--source-pgdata` of the stopped source.
    Local,
}

/// A source restart around the rebuilds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restart {
    /// None.
    No,
    /// After pg_rewind's run, before gsbuild's.
    Between,
    /// gsbuild is killed at this failpoint (`GSBUILD_FAILPOINT`), the source restarts, and
    /// gsbuild runs again (it must resume).
    MidRun(String),
}

/// One thing a workload step does.
#[derive(Clone, Debug)]
pub enum Action {
    /// A psql script in a database.
    Sql {
        /// Database.
        db: String,
        /// Statements (run one by one, autocommit).
        sql: String,
    },
    /// pgbench with these arguments (on `postgres`).
    Pgbench(Vec<String>),
    /// CREATE TABLESPACE at an absolute location (a directory made for each node at run time;
    /// standbys get theirs through `pg_basebackup --tablespace-mapping`).
    CreateAbsTablespace(String),
}

/// One step of a workload.
#[derive(Clone, Debug)]
pub struct Step {
    /// What kind of step (for summaries).
    pub kind: &'static str,
    /// What it does, in order.
    pub actions: Vec<Action>,
}

/// Everything a seed decides.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The seed.
    pub seed: u64,
    /// PostgreSQL major.
    pub major: u32,
    /// Topology family.
    pub topology: Topology,
    /// Node arrangement.
    pub base: Base,
    /// Target stopped with `-m immediate`.
    pub crash_target: bool,
    /// Source restart.
    pub restart: Restart,
    /// archive_command starts failing at the split.
    pub unarchived_tail: bool,
    /// Source kind.
    pub source: SourceKind,
    /// WAL segment size in MiB.
    pub segsize_mb: u32,
    /// initdb -k.
    pub checksums: bool,
    /// wal_log_hints (always on without checksums).
    pub wal_log_hints: bool,
    /// wal_compression value.
    pub wal_compression: String,
    /// gsbuild runs as root (else as the server user, like pg_rewind).
    pub gsbuild_as_root: bool,
    /// After verification, promote each rebuilt node and check it as a primary too.
    pub promote_after_verify: bool,
    /// On the first primary before any standby exists.
    pub pre: Vec<Step>,
    /// On the first primary with the standbys following.
    pub common: Vec<Step>,
    /// CHECKPOINT on the primary just before the split.
    pub ckpt_before_split: bool,
    /// CHECKPOINT (a restartpoint) on the standby to be promoted, just before promotion.
    pub restartpoint_before_promote: bool,
    /// CHECKPOINT right after each promotion (else the promoted node's checkpoint comes after
    /// its writes).
    pub checkpoint_at_promotion: bool,
    /// On the source's primary after the split.
    pub source_steps: Vec<Step>,
    /// On the target after the split.
    pub target_steps: Vec<Step>,
}

fn summary(steps: &[Step]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in steps {
        *counts.entry(s.kind).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| {
            if *n == 1 {
                (*k).to_string()
            } else {
                format!("{k}x{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Scenario {
    /// The scenario in one line.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "seed={} pg{} topo={} base={} source={} seg={}MB {} hints={} wal_compression={} gsbuild-as={}",
            self.seed,
            self.major,
            self.topology.label(),
            self.base.describe(),
            match self.source {
                SourceKind::Server => "server",
                SourceKind::Local => "local",
            },
            self.segsize_mb,
            if self.checksums { "checksums" } else { "no-checksums" },
            if self.wal_log_hints { "on" } else { "off" },
            self.wal_compression,
            if self.gsbuild_as_root { "root" } else { "postgres" },
        );
        if self.crash_target {
            s.push_str(" crash-target");
        }
        match &self.restart {
            Restart::No => {}
            Restart::Between => s.push_str(" restart=between"),
            Restart::MidRun(fp) => {
                let _ = write!(s, " restart=mid-run({fp})");
            }
        }
        if self.unarchived_tail {
            s.push_str(" unarchived-tail");
        }
        if self.ckpt_before_split {
            s.push_str(" ckpt-before-split");
        }
        if self.restartpoint_before_promote {
            s.push_str(" restartpoint-before-promote");
        }
        s.push_str(if self.checkpoint_at_promotion {
            " ckpt-at-promotion"
        } else {
            " ckpt-after-writes"
        });
        if self.promote_after_verify {
            s.push_str(" promote-after-verify");
        }
        let _ = write!(
            s,
            " pre=[{}] common=[{}] source=[{}] target=[{}]",
            summary(&self.pre),
            summary(&self.common),
            summary(&self.source_steps),
            summary(&self.target_steps)
        );
        s
    }

    /// The workload as a JSON object of step-kind counts per phase.
    pub fn workload_json(&self) -> serde_json::Value {
        let phase = |steps: &[Step]| {
            let mut m = serde_json::Map::new();
            for st in steps {
                let n = m.get(st.kind).and_then(|v| v.as_u64()).unwrap_or(0);
                m.insert(st.kind.to_string(), (n + 1).into());
            }
            serde_json::Value::Object(m)
        };
        serde_json::json!({
            "pre": phase(&self.pre),
            "common": phase(&self.common),
            "source": phase(&self.source_steps),
            "target": phase(&self.target_steps),
        })
    }

    /// Whether any step of any phase has this kind.
    pub fn has_step(&self, kind: &str) -> bool {
        [
            &self.pre,
            &self.common,
            &self.source_steps,
            &self.target_steps,
        ]
        .iter()
        .any(|p| p.iter().any(|s| s.kind == kind))
    }

    /// The scenario for `seed`.
    pub fn generate(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed);
        let major = *rng.pick(&MAJORS);
        let topology = *rng.pick(&Topology::ALL);
        let mut r = rng.fork();
        let pick_base = |r: &mut Rng| match r.weighted(&[3, 1, 1, 1]) {
            0 => Base::Promote,
            1 => Base::Cascade {
                from_new: r.chance(20),
            },
            2 => Base::Chain {
                depth: 1 + r.below(2) as usize,
                restartpoint: r.chance(50),
            },
            _ => Base::SameTimeline,
        };
        let base = match topology {
            Topology::Promote => Base::Promote,
            // A standby made from the new primary after the promotion lacks the WAL from the
            // divergence on: no rebuild from it can start (a negative case, kept rare).
            Topology::CascadeSource => Base::Cascade {
                from_new: r.chance(20),
            },
            Topology::Chain => Base::Chain {
                depth: 1 + r.below(2) as usize,
                restartpoint: r.chance(50),
            },
            Topology::SameTimeline => Base::SameTimeline,
            _ => pick_base(&mut r),
        };
        let crash_target = topology == Topology::CrashedTarget || r.chance(10);
        let restart = if topology == Topology::SourceRestart || r.chance(8) {
            if r.chance(50) {
                Restart::Between
            } else {
                let fp = r.pick(&[
                    "list-source",
                    "journal-written",
                    "control-aside",
                    "create:1",
                    "truncate-remove:1",
                    "copy-chunk:1",
                    "copy-chunk:3",
                    "wal-segment:1",
                    "backup-label",
                    "synced",
                ]);
                Restart::MidRun((*fp).to_string())
            }
        } else {
            Restart::No
        };
        let unarchived_tail = topology == Topology::UnarchivedTail || r.chance(8);
        let source = if r.chance(35) {
            SourceKind::Local
        } else {
            SourceKind::Server
        };
        let segsize_mb = if r.chance(50) { 1 } else { 16 };
        let checksums = r.chance(50);
        let wal_log_hints = !checksums || r.chance(50);
        let wal_compression = if major == 14 {
            r.pick(&["off", "on"]).to_string()
        } else if major == 15 {
            // The toolsets of .ci/install-pg.sh: 15 is built with lz4 only, 16+ with zstd too.
            r.pick(&["off", "pglz", "lz4"]).to_string()
        } else {
            r.pick(&["off", "pglz", "lz4", "zstd"]).to_string()
        };
        let gsbuild_as_root = r.chance(50);
        let promote_after_verify = r.chance(40);
        let ckpt_before_split = r.chance(50);
        let restartpoint_before_promote = r.chance(30);
        let checkpoint_at_promotion = r.chance(50);

        let mut w = rng.fork();
        let mut model = Model::new(major);
        let pre_n = w.range(2, 5) as usize;
        let mut pre = vec![model.base_step()];
        for _ in 0..pre_n {
            pre.push(model.step(&mut w, Phase::Pre));
        }
        let mut common = Vec::new();
        for _ in 0..w.range(3, 9) {
            common.push(model.step(&mut w, Phase::Common));
        }
        // The last common step writes rows nobody reads, so hint bits are left to set after
        // the split.
        if let Some(t) = model.pick_table(&mut w, false) {
            common.push(model.insert(&mut w, t));
        }
        let mut source_model = model.clone();
        let mut target_model = model;
        let mut s_rng = w.fork();
        let mut t_rng = w.fork();
        let mut source_steps = Vec::new();
        for _ in 0..s_rng.range(2, 9) {
            source_steps.push(source_model.step(&mut s_rng, Phase::Source));
        }
        let mut target_steps = Vec::new();
        for _ in 0..t_rng.range(1, 8) {
            target_steps.push(target_model.step(&mut t_rng, Phase::Target));
        }
        // The target always writes rows of its own after the split (they must disappear).
        target_steps.push(target_model.lost_rows_step());
        Scenario {
            seed,
            major,
            topology,
            base,
            crash_target,
            restart,
            unarchived_tail,
            source,
            segsize_mb,
            checksums,
            wal_log_hints,
            wal_compression,
            gsbuild_as_root,
            promote_after_verify,
            pre,
            common,
            ckpt_before_split,
            restartpoint_before_promote,
            checkpoint_at_promotion,
            source_steps,
            target_steps,
        }
    }
}

/// Which part of the history a step is for (some steps are only valid in some phases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before the first standby exists.
    Pre,
    /// Replicated to the standbys.
    Common,
    /// On the source side after the split.
    Source,
    /// On the target after the split.
    Target,
}

#[derive(Clone, Debug)]
struct Table {
    name: String,
    db: String,
    toast: bool,
    unlogged: bool,
    /// Tablespace given at creation or by a move (None: the database's default).
    ts: Option<String>,
    next_id: u64,
    indexes: usize,
}

#[derive(Clone, Debug)]
struct Db {
    name: String,
    ts: Option<String>,
}

#[derive(Clone, Debug)]
struct Tablespace {
    name: String,
    absolute: bool,
}

/// What exists, as far as the generated SQL is concerned.
#[derive(Clone, Debug)]
pub struct Model {
    major: u32,
    counter: u32,
    tables: Vec<Table>,
    dbs: Vec<Db>,
    tablespaces: Vec<Tablespace>,
    prepared: Vec<String>,
    pgbench: bool,
    sequences: Vec<String>,
    lobs: Vec<u32>,
    matviews: Vec<String>,
    twophase_rows: u64,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn sql(db: &str, text: impl Into<String>) -> Action {
    Action::Sql {
        db: db.to_string(),
        sql: text.into(),
    }
}

impl Model {
    fn new(major: u32) -> Model {
        Model {
            major,
            counter: 0,
            tables: Vec::new(),
            dbs: Vec::new(),
            tablespaces: Vec::new(),
            prepared: Vec::new(),
            pgbench: false,
            sequences: Vec::new(),
            lobs: Vec::new(),
            matviews: Vec::new(),
            twophase_rows: 0,
        }
    }

    fn next(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    /// The tables every scenario has: the table prepared transactions write to (never
    /// touched by DDL: a prepared transaction's lock would block it) and a table of rows
    /// written by both sides.
    fn base_step(&mut self) -> Step {
        self.tables.push(Table {
            name: "common".into(),
            db: "postgres".into(),
            toast: false,
            unlogged: false,
            ts: None,
            next_id: 1001,
            indexes: 1,
        });
        Step {
            kind: "base",
            actions: vec![sql(
                "postgres",
                "CREATE TABLE twophase (id bigint PRIMARY KEY, gid text, v text);
                 CREATE TABLE common (id bigint PRIMARY KEY, k int, v text, pad text) WITH (fillfactor = 80);
                 CREATE INDEX common_k ON common (k);
                 INSERT INTO common SELECT g, g % 97, md5(g::text), 'common' FROM generate_series(1, 1000) g;",
            )],
        }
    }

    /// Rows only the target writes (they must be gone after the rebuild).
    fn lost_rows_step(&mut self) -> Step {
        Step {
            kind: "lost_rows",
            actions: vec![sql(
                "postgres",
                "UPDATE common SET v = 'lost' WHERE id % 10 = 3;
                 CREATE TABLE lost AS SELECT generate_series(1, 5000) AS g;",
            )],
        }
    }

    fn pick_table(&self, r: &mut Rng, logged_only: bool) -> Option<usize> {
        let idx: Vec<usize> = (0..self.tables.len())
            .filter(|&i| !logged_only || !self.tables[i].unlogged)
            .collect();
        if idx.is_empty() {
            None
        } else {
            Some(*r.pick(&idx))
        }
    }

    fn value_expr(toast: bool, r: &mut Rng) -> String {
        if toast {
            // Incompressible enough to be toasted out of line: 32 hex digits per round.
            let rounds = r.range(80, 300);
            format!(
                "(SELECT string_agg(md5(g::text || '.' || x::text || '{}'), '') FROM generate_series(1, {rounds}) x)",
                r.below(1000)
            )
        } else {
            format!("md5(g::text || '{}')", r.below(1000))
        }
    }

    fn create_table(&mut self, r: &mut Rng, phase: Phase) -> Step {
        let name = self.next("t");
        let db = if !self.dbs.is_empty() && r.chance(30) {
            r.pick(&self.dbs).name.clone()
        } else {
            "postgres".to_string()
        };
        let toast = r.chance(25);
        let unlogged = r.chance(15);
        let ff = *r.pick(&[100, 90, 70]);
        let ts = self.pick_tablespace(r, phase, 30);
        let rows = if toast {
            r.range(10, 150)
        } else if r.chance(15) {
            r.range(10_000, 40_000)
        } else {
            r.range(50, 3000)
        };
        let mut s = format!(
            "CREATE {}TABLE {name} (id bigint PRIMARY KEY, k int, v text, pad text) WITH (fillfactor = {ff}){};\n\
             CREATE INDEX {name}_k ON {name} (k);\n",
            if unlogged { "UNLOGGED " } else { "" },
            ts.as_ref().map(|t| format!(" TABLESPACE {t}")).unwrap_or_default()
        );
        if toast {
            let _ = writeln!(s, "ALTER TABLE {name} ALTER COLUMN v SET STORAGE EXTERNAL;");
        }
        let _ = writeln!(
            s,
            "INSERT INTO {name} SELECT g, g % 97, {}, 'p' FROM generate_series(1, {rows}) g;",
            Self::value_expr(toast, r)
        );
        self.tables.push(Table {
            name,
            db: db.clone(),
            toast,
            unlogged,
            ts,
            next_id: rows + 1,
            indexes: 1,
        });
        Step {
            kind: if toast {
                "create_toast_table"
            } else if unlogged {
                "create_unlogged_table"
            } else {
                "create_table"
            },
            actions: vec![sql(&db, s)],
        }
    }

    /// A tablespace for a new object, with probability `percent`: absolute tablespaces are
    /// fine for objects on any side (each node has its own directory).
    fn pick_tablespace(&self, r: &mut Rng, _phase: Phase, percent: u64) -> Option<String> {
        if self.tablespaces.is_empty() || !r.chance(percent) {
            None
        } else {
            Some(r.pick(&self.tablespaces).name.clone())
        }
    }

    fn insert(&mut self, r: &mut Rng, t: usize) -> Step {
        let n = if self.tables[t].toast {
            r.range(5, 60)
        } else {
            r.range(20, 2000)
        };
        let tb = &mut self.tables[t];
        let first = tb.next_id;
        tb.next_id += n;
        let v = Self::value_expr(tb.toast, r);
        Step {
            kind: "insert",
            actions: vec![sql(
                &tb.db,
                format!(
                    "INSERT INTO {} SELECT g, g % 97, {v}, 'i' FROM generate_series({first}, {}) g;",
                    tb.name,
                    first + n - 1
                ),
            )],
        }
    }

    fn modify(&mut self, r: &mut Rng, t: usize) -> Step {
        let tb = &self.tables[t];
        let m = r.range(2, 20);
        let k = r.below(m);
        let tag = r.below(100000);
        let (kind, text) = match r.below(4) {
            0 => (
                "update_hot",
                format!("UPDATE {} SET pad = 'h{tag}' WHERE id % {m} = {k};", tb.name),
            ),
            1 => (
                "update",
                format!(
                    "UPDATE {} SET k = k + 1, v = {} WHERE id % {m} = {k};",
                    tb.name,
                    Self::value_expr(tb.toast, r).replace("g::text", "id::text")
                ),
            ),
            2 => (
                "delete",
                format!("DELETE FROM {} WHERE id % {m} = {k};", tb.name),
            ),
            _ => (
                "delete_insert",
                format!(
                    "DELETE FROM {t} WHERE id % {m} = {k};\nINSERT INTO {t} SELECT g, g % 97, {v}, 'again' FROM generate_series(1, {n}) g ON CONFLICT DO NOTHING;",
                    t = tb.name,
                    v = Self::value_expr(tb.toast, r),
                    n = tb.next_id - 1
                ),
            ),
        };
        Step {
            kind,
            actions: vec![sql(&tb.db, text)],
        }
    }

    fn ddl_on_table(&mut self, r: &mut Rng, t: usize, phase: Phase) -> Step {
        let tb = self.tables[t].clone();
        let name = &tb.name;
        let (kind, text): (&'static str, String) = match r.below(11) {
            0 => {
                let tbm = &mut self.tables[t];
                tbm.indexes += 1;
                let iname = format!("{name}_x{}", tbm.indexes);
                let conc = if r.chance(30) { "CONCURRENTLY " } else { "" };
                let how = match r.below(4) {
                    0 => "(pad, k)".to_string(),
                    1 => "USING hash (k)".to_string(),
                    2 => "USING brin (id)".to_string(),
                    _ => "USING gin (to_tsvector('simple', pad))".to_string(),
                };
                (
                    "create_index",
                    format!("CREATE INDEX {conc}{iname} ON {name} {how};"),
                )
            }
            1 => {
                let how = match r.below(3) {
                    0 => format!("REINDEX TABLE {name};"),
                    1 => format!("REINDEX TABLE CONCURRENTLY {name};"),
                    _ => format!("REINDEX INDEX {name}_pkey;"),
                };
                ("reindex", how)
            }
            2 => {
                self.tables[t].next_id = 1;
                ("truncate", format!("TRUNCATE {name};"))
            }
            3 => ("vacuum_full", format!("VACUUM FULL {name};")),
            4 => ("cluster", format!("CLUSTER {name} USING {name}_pkey;")),
            5 => (
                "vacuum",
                format!(
                    "VACUUM {}{name};",
                    if r.chance(50) { "(FREEZE) " } else { "" }
                ),
            ),
            6 => {
                let tbm = &mut self.tables[t];
                tbm.unlogged = !tbm.unlogged;
                (
                    "set_persistence",
                    format!(
                        "ALTER TABLE {name} SET {};",
                        if tbm.unlogged { "UNLOGGED" } else { "LOGGED" }
                    ),
                )
            }
            7 => ("alter_type", {
                // A rewrite into a new relfilenode; the type goes back and forth.
                let ty = if r.chance(50) { "bigint" } else { "int" };
                format!("ALTER TABLE {name} ALTER COLUMN k TYPE {ty};")
            }),
            8 => {
                let to = self.pick_tablespace(r, phase, 100);
                let tbm = &mut self.tables[t];
                match to {
                    Some(ts) if tbm.ts.as_deref() != Some(ts.as_str()) => {
                        tbm.ts = Some(ts.clone());
                        (
                            "move_table",
                            format!("ALTER TABLE {name} SET TABLESPACE {ts};"),
                        )
                    }
                    _ if tbm.ts.is_some() => {
                        tbm.ts = None;
                        (
                            "move_table",
                            format!("ALTER TABLE {name} SET TABLESPACE pg_default;"),
                        )
                    }
                    _ => ("vacuum", format!("VACUUM {name};")),
                }
            }
            9 => (
                "hint_bits",
                format!("CHECKPOINT;\nSELECT count(*) FROM {name};"),
            ),
            _ => {
                if name == "common" {
                    ("vacuum", format!("VACUUM {name};"))
                } else {
                    self.tables.remove(t);
                    ("drop_table", format!("DROP TABLE {name};"))
                }
            }
        };
        Step {
            kind,
            actions: vec![sql(&tb.db, text)],
        }
    }

    fn create_database(&mut self, r: &mut Rng, phase: Phase) -> Step {
        let name = self.next("db");
        let mut opts = String::new();
        let template = if !self.dbs.is_empty() && r.chance(30) {
            Some(r.pick(&self.dbs).name.clone())
        } else {
            None
        };
        if let Some(t) = &template {
            let _ = write!(opts, " TEMPLATE {t}");
        }
        if self.major >= 15 {
            let _ = write!(
                opts,
                " STRATEGY {}",
                if r.chance(50) { "FILE_COPY" } else { "WAL_LOG" }
            );
        }
        let ts = self.pick_tablespace(r, phase, 30);
        if let Some(t) = &ts {
            let _ = write!(opts, " TABLESPACE {t}");
        }
        if let Some(t) = &template {
            let copied: Vec<Table> = self
                .tables
                .iter()
                .filter(|tb| &tb.db == t)
                .cloned()
                .map(|mut tb| {
                    tb.db = name.clone();
                    // A tablespace named explicitly stays; the default one follows the new
                    // database's.
                    tb
                })
                .collect();
            self.tables.extend(copied);
        }
        self.dbs.push(Db {
            name: name.clone(),
            ts,
        });
        let mut actions = vec![sql("postgres", format!("CREATE DATABASE {name}{opts};"))];
        // Something to compare in it.
        let tname = self.next("t");
        let rows = r.range(100, 2000);
        actions.push(sql(
            &name,
            format!(
                "CREATE TABLE {tname} (id bigint PRIMARY KEY, k int, v text, pad text);\n\
                 INSERT INTO {tname} SELECT g, g % 97, md5(g::text), 'd' FROM generate_series(1, {rows}) g;"
            ),
        ));
        self.tables.push(Table {
            name: tname,
            db: name,
            toast: false,
            unlogged: false,
            ts: None,
            next_id: rows + 1,
            indexes: 1,
        });
        Step {
            kind: if template.is_some() {
                "create_database_template"
            } else {
                "create_database"
            },
            actions,
        }
    }

    fn drop_database(&mut self, r: &mut Rng) -> Step {
        let i = r.below(self.dbs.len() as u64) as usize;
        let db = self.dbs.remove(i);
        self.tables.retain(|t| t.db != db.name);
        Step {
            kind: "drop_database",
            actions: vec![sql(
                "postgres",
                format!("DROP DATABASE {} WITH (FORCE);", db.name),
            )],
        }
    }

    fn create_tablespace(&mut self, r: &mut Rng, phase: Phase) -> Option<Step> {
        // Absolute locations only before the standbys exist (a standby replaying CREATE
        // TABLESPACE on this machine would use the primary's directory), in-place ones on 15+.
        let absolute = phase == Phase::Pre && (self.major < 15 || r.chance(60));
        if !absolute && self.major < 15 {
            return None;
        }
        let name = self.next("ts");
        self.tablespaces.push(Tablespace {
            name: name.clone(),
            absolute,
        });
        let mut actions = Vec::new();
        if absolute {
            actions.push(Action::CreateAbsTablespace(name.clone()));
        } else {
            actions.push(sql(
                "postgres",
                format!("CREATE TABLESPACE {name} LOCATION '';"),
            ));
        }
        // A table in it at once.
        let tname = self.next("t");
        let rows = r.range(100, 3000);
        actions.push(sql(
            "postgres",
            format!(
                "CREATE TABLE {tname} (id bigint PRIMARY KEY, k int, v text, pad text) TABLESPACE {name};\n\
                 INSERT INTO {tname} SELECT g, g % 97, md5(g::text), 'ts' FROM generate_series(1, {rows}) g;"
            ),
        ));
        self.tables.push(Table {
            name: tname,
            db: "postgres".into(),
            toast: false,
            unlogged: false,
            ts: Some(name),
            next_id: rows + 1,
            indexes: 1,
        });
        Some(Step {
            kind: if absolute {
                "create_tablespace"
            } else {
                "create_inplace_tablespace"
            },
            actions,
        })
    }

    fn drop_tablespace(&mut self, r: &mut Rng, phase: Phase) -> Option<Step> {
        // Never an absolute one on the target: its rebuild would recreate the source's link,
        // which on this machine points at the source's own directory.
        let candidates: Vec<usize> = (0..self.tablespaces.len())
            .filter(|&i| {
                let ts = &self.tablespaces[i];
                (!ts.absolute || phase != Phase::Target)
                    && !self
                        .dbs
                        .iter()
                        .any(|d| d.ts.as_deref() == Some(ts.name.as_str()))
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i = *r.pick(&candidates);
        let ts = self.tablespaces.remove(i);
        let mut actions = Vec::new();
        for t in self
            .tables
            .iter_mut()
            .filter(|t| t.ts.as_deref() == Some(ts.name.as_str()))
        {
            t.ts = None;
            actions.push(sql(
                &t.db,
                format!("ALTER TABLE {} SET TABLESPACE pg_default;", t.name),
            ));
        }
        actions.push(sql("postgres", format!("DROP TABLESPACE {};", ts.name)));
        Some(Step {
            kind: "drop_tablespace",
            actions,
        })
    }

    fn large_object(&mut self, r: &mut Rng) -> Step {
        if self.lobs.is_empty() || r.chance(40) {
            let oid = 50000 + self.counter * 10 + r.below(10) as u32;
            self.counter += 1;
            if self.lobs.contains(&oid) {
                return self.sequence(r);
            }
            self.lobs.push(oid);
            let len = r.range(1, 6000);
            return Step {
                kind: "lo_create",
                actions: vec![sql(
                    "postgres",
                    format!(
                        "SELECT lo_from_bytea({oid}, convert_to(repeat(md5('{oid}'), {len}), 'UTF8'));"
                    ),
                )],
            };
        }
        let i = r.below(self.lobs.len() as u64) as usize;
        let oid = self.lobs[i];
        if r.chance(30) {
            self.lobs.remove(i);
            return Step {
                kind: "lo_unlink",
                actions: vec![sql("postgres", format!("SELECT lo_unlink({oid});"))],
            };
        }
        let off = r.range(0, 150000);
        let len = r.range(1, 3000);
        Step {
            kind: "lo_write",
            actions: vec![sql(
                "postgres",
                format!(
                    "SELECT lo_put({oid}, {off}, convert_to(repeat('w{}', {len}), 'UTF8'));",
                    r.below(10)
                ),
            )],
        }
    }

    fn sequence(&mut self, r: &mut Rng) -> Step {
        if self.sequences.is_empty() || r.chance(25) {
            let name = self.next("seq");
            self.sequences.push(name.clone());
            return Step {
                kind: "create_sequence",
                actions: vec![sql("postgres", format!("CREATE SEQUENCE {name};"))],
            };
        }
        let name = r.pick(&self.sequences).clone();
        if r.chance(20) {
            return Step {
                kind: "setval",
                actions: vec![sql(
                    "postgres",
                    format!("SELECT setval('{name}', {});", r.range(1, 1_000_000)),
                )],
            };
        }
        Step {
            kind: "nextval",
            actions: vec![sql(
                "postgres",
                format!(
                    "SELECT count(nextval('{name}')) FROM generate_series(1, {});",
                    r.range(1, 500)
                ),
            )],
        }
    }

    fn twophase(&mut self, r: &mut Rng) -> Step {
        if !self.prepared.is_empty() && (self.prepared.len() >= 4 || r.chance(45)) {
            let i = r.below(self.prepared.len() as u64) as usize;
            let gid = self.prepared.remove(i);
            let commit = r.chance(60);
            return Step {
                kind: if commit {
                    "commit_prepared"
                } else {
                    "rollback_prepared"
                },
                actions: vec![sql(
                    "postgres",
                    format!(
                        "{} PREPARED {};",
                        if commit { "COMMIT" } else { "ROLLBACK" },
                        quote(&gid)
                    ),
                )],
            };
        }
        let gid = self.next("gx");
        self.prepared.push(gid.clone());
        let first = self.twophase_rows + 1;
        let n = r.range(1, 300);
        self.twophase_rows += n;
        // Sometimes the prepared transaction also creates a table (a relation file that
        // exists before its transaction commits).
        let extra = if r.chance(25) {
            format!(
                "CREATE TABLE {gid}_tbl AS SELECT generate_series(1, {}) AS g;\n",
                r.range(1, 2000)
            )
        } else {
            String::new()
        };
        Step {
            kind: "prepare",
            actions: vec![sql(
                "postgres",
                format!(
                    "BEGIN;\nINSERT INTO twophase SELECT g, {q}, md5(g::text) FROM generate_series({first}, {}) g;\n{extra}PREPARE TRANSACTION {q};",
                    first + n - 1,
                    q = quote(&gid)
                ),
            )],
        }
    }

    fn pgbench_step(&mut self, r: &mut Rng) -> Step {
        if !self.pgbench || r.chance(5) {
            self.pgbench = true;
            let scale = if r.chance(20) { r.range(2, 4) } else { 1 };
            let mut args: Vec<String> =
                vec!["-i".into(), "-s".into(), scale.to_string(), "-q".into()];
            if r.chance(30) {
                args.push(format!("--partitions={}", r.range(2, 4)));
            }
            if r.chance(40) {
                args.push(format!("--fillfactor={}", r.pick(&[70, 90])));
            }
            return Step {
                kind: "pgbench_init",
                actions: vec![Action::Pgbench(args)],
            };
        }
        if r.chance(20) {
            return Step {
                kind: "pgbench_hot",
                actions: vec![sql(
                    "postgres",
                    format!(
                        "UPDATE pgbench_accounts SET filler = 'hot{}' WHERE aid % 500 = {};",
                        r.below(1000),
                        r.below(500)
                    ),
                )],
            };
        }
        let mut args: Vec<String> = vec![
            "-n".into(),
            "-t".into(),
            r.range(20, 300).to_string(),
            "-c".into(),
            r.range(1, 2).to_string(),
        ];
        match r.below(4) {
            0 => args.push("-N".into()),
            1 => args.push("-S".into()),
            _ => {}
        }
        Step {
            kind: "pgbench",
            actions: vec![Action::Pgbench(args)],
        }
    }

    fn matview(&mut self, r: &mut Rng) -> Step {
        if self.matviews.is_empty() || r.chance(40) {
            let name = self.next("mv");
            self.matviews.push(name.clone());
            return Step {
                kind: "create_matview",
                actions: vec![sql(
                    "postgres",
                    format!(
                        "CREATE MATERIALIZED VIEW {name} AS SELECT g, md5(g::text) AS m FROM generate_series(1, {}) g;",
                        r.range(10, 3000)
                    ),
                )],
            };
        }
        let i = r.below(self.matviews.len() as u64) as usize;
        let name = self.matviews[i].clone();
        if r.chance(30) {
            self.matviews.remove(i);
            return Step {
                kind: "drop_matview",
                actions: vec![sql("postgres", format!("DROP MATERIALIZED VIEW {name};"))],
            };
        }
        Step {
            kind: "refresh_matview",
            actions: vec![sql(
                "postgres",
                format!("REFRESH MATERIALIZED VIEW {name};"),
            )],
        }
    }

    /// One random step valid in `phase`.
    pub fn step(&mut self, r: &mut Rng, phase: Phase) -> Step {
        loop {
            // create table, insert, modify, ddl, database, tablespace, lo, sequence, 2pc,
            // pgbench, checkpoint, wal switch, matview
            let w = [10, 10, 12, 12, 4, 3, 3, 3, 4, 6, 3, 2, 2];
            let got = match r.weighted(&w) {
                0 => Some(self.create_table(r, phase)),
                1 => self.pick_table(r, false).map(|t| self.insert(r, t)),
                2 => self.pick_table(r, false).map(|t| self.modify(r, t)),
                3 => self
                    .pick_table(r, false)
                    .map(|t| self.ddl_on_table(r, t, phase)),
                4 => {
                    if self.dbs.is_empty() || self.dbs.len() < 3 && r.chance(60) {
                        Some(self.create_database(r, phase))
                    } else {
                        Some(self.drop_database(r))
                    }
                }
                5 => {
                    if self.tablespaces.is_empty() || r.chance(60) {
                        self.create_tablespace(r, phase)
                    } else {
                        self.drop_tablespace(r, phase)
                    }
                }
                6 => Some(self.large_object(r)),
                7 => Some(self.sequence(r)),
                8 => Some(self.twophase(r)),
                9 => Some(self.pgbench_step(r)),
                10 => Some(Step {
                    kind: "checkpoint",
                    actions: vec![sql("postgres", "CHECKPOINT;")],
                }),
                11 => Some(Step {
                    kind: "switch_wal",
                    actions: vec![sql("postgres", "SELECT pg_switch_wal();")],
                }),
                _ => Some(self.matview(r)),
            };
            if let Some(s) = got {
                return s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_scenario() {
        for seed in 0..50 {
            assert_eq!(
                Scenario::generate(seed).describe(),
                Scenario::generate(seed).describe()
            );
        }
    }
}
