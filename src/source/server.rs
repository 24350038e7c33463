//! A live server as the source (`--source-server`): the file list in one recursive SQL query,
//! file contents with `pg_read_binary_file` over up to `jobs` SQL sessions in parallel
//! (`super::concurrent`, queries cut by [`super::batch`]), and WAL over a replication
//! connection ([`crate::replication`]), streamed alongside the copy.
//!
//! The SQL sessions are read-only and have every timeout that could cut a long copy turned
//! off; the caller's own timeouts bound them instead: connecting (`connect_timeout`), and every
//! wait for the server's next message (`read_timeout`, `--timeout`), which fails with
//! [`Error::Timeout`] instead of hanging on a server that stopped answering.

use super::concurrent::{
    self, handle, next_delivery, AbortOnDrop, Delivery, Fetcher, NoWal, Queue,
};
use super::session::{open_session, source_err, texts, Limits, Sql};
use super::sqlwal;
use super::{ChunkSink, FetchRange, Source, SourceFile, TransferSink, WalEnd, WalSink};
use crate::conninfo::{ConnInfo, Environment};
use crate::datadir::FileKind;
use crate::error::{Error, Result};
use crate::lsn::{Lsn, TimeLineId};
use crate::replication::tls::client_config;
use crate::replication::{ClientOptions, ReplicationClient};
use crate::timeline::{history_file_name, TimeLineHistoryEntry};
use futures_util::StreamExt;
use std::path::Path;
use std::sync::Arc;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use super::batch::{split_chunks, MAX_CHUNK, MAX_CHUNKS_PER_QUERY};

/// An SQL session, with the fetch query once prepared on it.
struct Session {
    client: Arc<Client>,
    fetch: Option<Statement>,
}

/// A running server reached over SQL, plus a replication session for WAL.
pub struct ServerSource {
    rt: Runtime,
    /// Session 0 answers everything but range fetches; fetches use up to `jobs` sessions.
    sessions: Vec<Session>,
    jobs: usize,
    config: tokio_postgres::Config,
    connector: MakeRustlsConnect,
    limits: Limits,
    info: ConnInfo,
    env: Environment,
    repl: Option<ReplicationClient>,
    options: ClientOptions,
    /// Set when the replication session was refused: WAL then comes over SQL.
    sql_wal: Option<String>,
    /// A backup started on session 0 and not yet stopped (a full build).
    in_backup: bool,
}

impl ServerSource {
    /// Connects the SQL session (TLS per `sslmode`) to the server `info` names. Further
    /// sessions (see [`ServerSource::set_jobs`]) are opened when a fetch needs them, the
    /// replication session when WAL is first needed.
    pub fn connect(
        info: ConnInfo,
        env: Environment,
        options: ClientOptions,
    ) -> Result<ServerSource> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("start runtime for", "source connection", e))?;
        let last = info.targets.last();
        let limits = Limits {
            peer: info.redacted(),
            read_timeout: options.read_timeout,
            location: match (last, info.targets.len()) {
                (Some(t), 1) => t.libpq_location(None),
                (Some(t), n) => format!("{} (the last of {n} tried)", t.libpq_location(None)),
                (None, _) => String::new(),
            },
            connect_timeout: info.connect_timeout.unwrap_or(options.connect_timeout),
            password_file: info
                .targets
                .first()
                .and_then(|t| info.password_for(t, &env))
                .and_then(|(_, origin)| match origin {
                    crate::conninfo::PasswordOrigin::File(f) => Some(f),
                    _ => None,
                }),
        };
        let mut config = info.to_tokio_config(&env);
        if info.connect_timeout.is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let tls = client_config(info.sslmode, info.sslrootcert.as_deref()).map_err(|message| {
            Error::Connect {
                peer: limits.peer.clone(),
                message,
            }
        })?;
        let connector = MakeRustlsConnect::new(tls);
        let client = rt.block_on(open_session(
            config.clone(),
            connector.clone(),
            limits.clone(),
        ))?;
        Ok(ServerSource {
            rt,
            sessions: vec![Session {
                client: Arc::new(client),
                fetch: None,
            }],
            jobs: 1,
            config,
            connector,
            limits,
            info,
            env,
            repl: None,
            options,
            sql_wal: None,
            in_backup: false,
        })
    }

    /// Fetch with up to `jobs` SQL sessions (`-j`; at least 1, the session already open).
    pub fn set_jobs(&mut self, jobs: usize) {
        self.jobs = jobs.max(1);
    }

    /// The connection settings (for `primary_conninfo` with `-R`).
    pub fn conninfo(&self) -> &ConnInfo {
        &self.info
    }

    fn main_client(&self) -> &Client {
        // The first session is opened by `connect` and never closed.
        &self.sessions[0].client
    }

    fn sql(&self) -> Sql<'_> {
        Sql {
            rt: &self.rt,
            client: self.main_client(),
            limits: &self.limits,
        }
    }

    /// Whether WAL must come over SQL: true once the server refused a replication session
    /// (a role without `REPLICATION`, or no `replication` line in `pg_hba.conf`), which is
    /// tried once.
    fn use_sql_wal(&mut self) -> bool {
        if self.repl.is_none() && self.sql_wal.is_none() && !self.role_can_replicate() {
            let why = format!(
                "role \"{}\" has neither SUPERUSER nor REPLICATION",
                self.info.user
            );
            tracing::info!("{why}: reading WAL over SQL");
            self.sql_wal = Some(why);
        }
        if self.repl.is_none() && self.sql_wal.is_none() {
            match self.rt.block_on(ReplicationClient::connect(
                &self.info,
                &self.env,
                self.options,
            )) {
                Ok(c) => self.repl = Some(c),
                Err(e) => {
                    tracing::warn!(
                        "replication connection refused ({e}); reading WAL over SQL instead"
                    );
                    self.sql_wal = Some(e.to_string());
                }
            }
        }
        self.sql_wal.is_some()
    }

    /// Whether the role may start a walsender (unknown counts as yes: the attempt decides).
    fn role_can_replicate(&self) -> bool {
        let q = texts().role_can_replicate;
        match self.sql().query_opt("checking the role", q, &[]) {
            Ok(Some(row)) => row.try_get::<_, Option<bool>>(0).ok().flatten() != Some(false),
            _ => true,
        }
    }

    fn wal_segment_size(&mut self) -> Result<u32> {
        let q = texts().wal_segment_size;
        let row = self.sql().query_one("reading a setting", q, &[])?;
        let size: i64 = row.try_get(0).map_err(|e| source_err(q, e))?;
        u32::try_from(size)
            .ok()
            .filter(|s| crate::lsn::is_valid_seg_size(*s))
            .ok_or_else(|| Error::Source {
                query: q.into(),
                message: format!("invalid wal_segment_size {size}"),
            })
    }

    /// The runtime and the replication session, opened first when needed.
    fn replication(&mut self) -> Result<(&Runtime, &mut ReplicationClient)> {
        if self.repl.is_none() {
            let c = self.rt.block_on(ReplicationClient::connect(
                &self.info,
                &self.env,
                self.options,
            ))?;
            self.repl = Some(c);
        }
        let ServerSource { rt, repl, info, .. } = self;
        match repl.as_mut() {
            Some(r) => Ok((rt, r)),
            None => Err(Error::Connect {
                peer: info.redacted(),
                message: "no replication session".into(),
            }),
        }
    }

    /// Runs `sql` and returns the first column of the first row as text.
    pub fn query_text(&self, sql: &str) -> Result<Option<String>> {
        let messages = self
            .rt
            .block_on(
                self.limits
                    .within("running a query", self.main_client().simple_query(sql)),
            )?
            .map_err(|e| source_err(sql, e))?;
        for m in messages {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                return Ok(r.get(0).map(str::to_string));
            }
        }
        Ok(None)
    }

    /// Sessions to run `queries` fetch queries on: up to `jobs` (never more than there are
    /// queries), opening the missing ones together and preparing the fetch query on each. A
    /// session the server refuses only means fewer sessions.
    fn fetchers(&mut self, queries: usize) -> Result<Vec<Fetcher>> {
        let want = self.jobs.min(queries).max(1);
        if self.sessions.len() < want {
            let opening: Vec<_> = (self.sessions.len()..want)
                .map(|_| {
                    self.rt.spawn(open_session(
                        self.config.clone(),
                        self.connector.clone(),
                        self.limits.clone(),
                    ))
                })
                .collect();
            for handle in opening {
                match self.rt.block_on(handle) {
                    Ok(Ok(client)) => self.sessions.push(Session {
                        client: Arc::new(client),
                        fetch: None,
                    }),
                    Ok(Err(e)) => tracing::warn!("could not open another session: {e}"),
                    Err(e) => tracing::warn!("could not open another session: {e}"),
                }
            }
            tracing::debug!("fetching with {} sessions", self.sessions.len());
        }
        let mut out = Vec::new();
        for s in self.sessions.iter_mut().take(want) {
            let statement = match &s.fetch {
                Some(st) => st.clone(),
                None => {
                    let prepare = s.client.prepare_typed(
                        texts().fetch_ranges,
                        &[Type::TEXT_ARRAY, Type::INT8_ARRAY, Type::INT4_ARRAY],
                    );
                    let st = self
                        .rt
                        .block_on(self.limits.within("preparing a query", prepare))?
                        .map_err(|e| source_err(texts().fetch_ranges, e))?;
                    s.fetch = Some(st.clone());
                    st
                }
            };
            out.push(Fetcher {
                client: s.client.clone(),
                statement,
            });
        }
        Ok(out)
    }

    /// Starts one task per fetch session over the queries of `ranges`; returns the tasks.
    fn start_fetch(
        &mut self,
        ranges: &[FetchRange],
        tx: &mpsc::Sender<Delivery>,
    ) -> Result<Vec<AbortOnDrop<()>>> {
        let queries = super::batch::plan_queries(ranges);
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let n = queries.len();
        self.start_sessions(Queue::new(queries, false), n, tx)
    }

    /// One fetch task per session (as many as `queries` can keep busy, up to `-j`), all
    /// taking from `queue`.
    fn start_sessions(
        &mut self,
        queue: Arc<Queue>,
        queries: usize,
        tx: &mpsc::Sender<Delivery>,
    ) -> Result<Vec<AbortOnDrop<()>>> {
        let fetchers = self.fetchers(queries)?;
        Ok(fetchers
            .into_iter()
            .map(|f| {
                AbortOnDrop(self.rt.spawn(concurrent::fetch_session(
                    f,
                    queue.clone(),
                    tx.clone(),
                    self.limits.clone(),
                )))
            })
            .collect())
    }

    /// [`Source::copy_with_wal`] with the WAL streamed during the copy on a replication
    /// session of its own (`self.repl` stays free to answer [`Source::wal_position`]).
    fn copy_alongside(
        &mut self,
        repl: ReplicationClient,
        ranges: &[FetchRange],
        wal_start: Lsn,
        history: &[TimeLineHistoryEntry],
        sink: &mut dyn TransferSink,
    ) -> Result<WalEnd> {
        let (tx, mut rx) = mpsc::channel(concurrent::CHANNEL_PARCELS);
        let (stop_tx, stop_rx) = oneshot::channel();
        let _wal_task = AbortOnDrop(self.rt.spawn(concurrent::stream_alongside(
            repl,
            wal_start,
            history.to_vec(),
            tx.clone(),
            stop_rx,
        )));
        let (queue, sessions, mut open) = concurrent::queue_for(ranges, sink);
        let fetch_tasks = match sessions {
            0 => Vec::new(),
            n => self.start_sessions(queue.clone(), n, &tx)?,
        };
        drop(tx);
        let mut fetching = fetch_tasks.len();
        let mut stopped = None;
        while fetching > 0 {
            match next_delivery(&mut rx)? {
                Delivery::FetchDone => fetching -= 1,
                other => handle(other, sink, history, &mut stopped)?,
            }
            concurrent::pass_on_more(sink, &queue, stopped.is_some(), &mut open);
        }
        // The copy is complete: everything it holds is in the source's WAL before this.
        let (tli, end) = self.wal_position()?;
        let same_timeline = history.last().map(|e| e.tli) == Some(tli);
        let _ = stop_tx.send(if same_timeline { end } else { Lsn(0) });
        let reached = loop {
            if let Some(r) = stopped {
                break r;
            }
            handle(next_delivery(&mut rx)?, sink, history, &mut stopped)?;
        };
        if reached < end {
            // The source changed timeline during the copy: the rest along its new history,
            // from the start of the segment (whose name may have changed with it).
            let history = super::current_history(self, history, tli)?;
            let seg_size = self.wal_segment_size()?;
            let from = reached.segment(seg_size).start_lsn(seg_size);
            tracing::debug!("source moved to timeline {tli}; WAL from {from} read again");
            super::read_wal_until(self, from, end, &history, sink)?;
        }
        Ok(WalEnd { tli, end })
    }
}

impl Source for ServerSource {
    fn describe(&self) -> String {
        self.info.redacted()
    }

    fn list_files(&mut self) -> Result<Vec<SourceFile>> {
        const DURING: &str = "listing files";
        let limits = &self.limits;
        let client = &self.sessions[0].client;
        self.rt.block_on(async {
            let no_params: [&(dyn ToSql + Sync); 0] = [];
            let rows = limits
                .within(DURING, client.query_raw(texts().list_files, no_params))
                .await?
                .map_err(|e| source_err(texts().list_files, e))?;
            let mut rows = std::pin::pin!(rows);
            let mut out = Vec::new();
            while let Some(row) = limits.within(DURING, rows.next()).await? {
                out.push(listed(
                    &row.map_err(|e| source_err(texts().list_files, e))?,
                )?);
            }
            Ok(out)
        })
    }

    fn fetch_file(&mut self, path: &str) -> Result<Vec<u8>> {
        let q = texts().read_file;
        let row = self.sql().query_one("reading a file", q, &[&path])?;
        row.try_get::<_, Vec<u8>>(0).map_err(|e| source_err(q, e))
    }

    fn fetch_ranges(&mut self, ranges: &[FetchRange], sink: &mut dyn ChunkSink) -> Result<()> {
        let (tx, mut rx) = mpsc::channel(concurrent::CHANNEL_PARCELS);
        let tasks = self.start_fetch(ranges, &tx)?;
        drop(tx);
        let mut sink = NoWal(sink);
        let mut fetching = tasks.len();
        while fetching > 0 {
            match next_delivery(&mut rx)? {
                Delivery::FetchDone => fetching -= 1,
                other => handle(other, &mut sink, &[], &mut None)?,
            }
        }
        Ok(())
    }

    fn copy_with_wal(
        &mut self,
        ranges: &[FetchRange],
        wal_start: Lsn,
        history: &[TimeLineHistoryEntry],
        sink: &mut dyn TransferSink,
    ) -> Result<WalEnd> {
        if self.use_sql_wal() {
            return super::copy_then_wal(self, ranges, wal_start, history, sink);
        }
        match self.rt.block_on(ReplicationClient::connect(
            &self.info,
            &self.env,
            self.options,
        )) {
            Ok(repl) => self.copy_alongside(repl, ranges, wal_start, history, sink),
            Err(e @ Error::Timeout { .. }) => Err(e),
            // Refused (max_wal_senders reached, say): the session already open streams the
            // WAL after the copy.
            Err(e) => {
                tracing::warn!(
                    "no second replication connection ({e}); streaming WAL after the copy"
                );
                super::copy_then_wal(self, ranges, wal_start, history, sink)
            }
        }
    }

    fn setting(&mut self, name: &str) -> Result<Option<String>> {
        let q = texts().setting;
        // Some settings (data_directory) need pg_read_all_settings; a least-privilege role
        // gets no row, which only skips the check that needs them.
        match self.sql().query_opt("reading a setting", q, &[&name])? {
            Some(row) => row
                .try_get::<_, Option<String>>(0)
                .map_err(|e| source_err(q, e)),
            None => Ok(None),
        }
    }

    fn backup_start(&mut self, label: &str) -> Result<Option<Lsn>> {
        let lsn = super::backup::start(&self.sql(), label)?;
        self.in_backup = true;
        Ok(Some(lsn))
    }

    fn backup_stop(&mut self) -> Result<()> {
        if std::mem::take(&mut self.in_backup) {
            super::backup::stop(&self.sql())?;
        }
        Ok(())
    }

    fn wal_position(&mut self) -> Result<(TimeLineId, Lsn)> {
        if self.use_sql_wal() {
            return sqlwal::wal_position(&self.sql());
        }
        let (rt, r) = self.replication()?;
        let id = rt.block_on(r.identify_system())?;
        Ok((id.timeline, id.xlogpos))
    }

    fn timeline_history(&mut self, tli: TimeLineId) -> Result<Option<Vec<u8>>> {
        if tli.0 <= 1 {
            return Ok(None);
        }
        if self.use_sql_wal() {
            return self
                .fetch_file(&format!("{}/{}", texts().wal_dir, history_file_name(tli)))
                .map(Some);
        }
        let (rt, r) = self.replication()?;
        let (_, content) = rt.block_on(r.timeline_history(tli))?;
        Ok(Some(content))
    }

    fn read_wal(
        &mut self,
        start: Lsn,
        end: Lsn,
        history: &[TimeLineHistoryEntry],
        sink: &mut WalSink<'_>,
    ) -> Result<()> {
        if self.use_sql_wal() {
            let seg_size = self.wal_segment_size()?;
            return sqlwal::read_wal(&self.sql(), seg_size, start, end, history, sink);
        }
        let (rt, r) = self.replication()?;
        rt.block_on(stream_along_history(r, start, end, history, sink))
    }
}

/// Streams WAL timeline by timeline, as a cascading standby does: `START_REPLICATION` on the
/// timeline holding the current position, until that timeline's switch point, then the next.
async fn stream_along_history(
    repl: &mut ReplicationClient,
    start: Lsn,
    end: Lsn,
    history: &[TimeLineHistoryEntry],
    sink: &mut WalSink<'_>,
) -> Result<()> {
    let mut pos = start;
    while pos < end {
        let Some(entry) = history.iter().find(|e| e.contains(pos)) else {
            return Err(Error::Usage(format!(
                "WAL position {pos} is on no timeline of the source's history"
            )));
        };
        let mut stream = repl.start_replication(pos, entry.tli).await?;
        let mut more = true;
        while more {
            let Some(chunk) = stream.next().await? else {
                break;
            };
            if chunk.start != pos {
                return Err(Error::Source {
                    query: (texts().start_replication)(start, entry.tli),
                    message: format!("received WAL at {}, expected {pos}", chunk.start),
                });
            }
            pos = Lsn(pos.0 + chunk.data.len() as u64);
            stream.set_flushed(pos);
            more = sink(chunk.start, &chunk.data)? && pos < end;
        }
        if more {
            // The server ended a historic timeline: go on at its switch point on the next.
            match stream.timeline_end() {
                Some(te) if te.switch >= pos => pos = te.switch,
                _ => {
                    return Err(Error::Source {
                        query: (texts().start_replication)(pos, entry.tli),
                        message: "the server ended the WAL stream early".into(),
                    })
                }
            }
        } else {
            stream.stop().await?;
            return Ok(());
        }
    }
    Ok(())
}

/// One row of the product's listing query.
fn listed(row: &Row) -> Result<SourceFile> {
    let get_err = |e| source_err(texts().list_files, e);
    let path: String = row.try_get(0).map_err(get_err)?;
    let size: i64 = row.try_get(1).map_err(get_err)?;
    let isdir: bool = row.try_get(2).map_err(get_err)?;
    let link: Option<String> = row.try_get(3).map_err(get_err)?;
    let kind = match link {
        // An in-place tablespace (allow_in_place_tablespaces) is a directory inside the data
        // directory, whose location reads as the relative "pg_tblspc/<oid>".
        Some(target) if !target.is_empty() && Path::new(&target).is_absolute() => {
            FileKind::Symlink { target }
        }
        _ if isdir => FileKind::Dir,
        _ => FileKind::File {
            size: size.max(0) as u64,
        },
    };
    Ok(SourceFile { path, kind })
}
