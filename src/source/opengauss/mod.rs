//! A live openGauss server as the source, reached the way `gs_ctl build -b incremental` reaches
//! it: over the HA port of the first of the target's `replconninfoN` channels that answers
//! ([`channels`]), with a replication session (`IDENTIFY_VERSION`, `IDENTIFY_MODE`,
//! `IDENTIFY_CONSISTENCE`; WAL with `START_REPLICATION`) and SQL sessions as gs_rewind's
//! (`pg_stat_file_recursive`, `pg_read_binary_file`), all over [`crate::ogwire`].
//!
//! Unlike gs_ctl it fetches over up to `jobs` SQL sessions at once, streams the WAL alongside
//! the copy instead of after it, stops the stream as soon as it has the WAL it needs, and ends
//! it with Terminate (a CopyDone makes openGauss reset the connection).
//!
//! The timeline is always 1 (openGauss has no timeline switches; its failovers are fenced by
//! the term instead, [`Source::term`]).

mod backup;
pub mod channels;
pub mod fetch;
pub mod open;

use super::concurrent::NoWal;
use super::{ChunkSink, FetchRange, Source, SourceFile, TransferSink, WalEnd, WalSink};
use crate::datadir::FileKind;
use crate::error::{Error, Result};
use crate::flavor::Product;
use crate::lsn::{Lsn, TimeLineId};
use crate::ogwire::{Consistence, Endpoint, IdentifyVersion, Kind, Login, OgConn, OgRow};
use crate::replication::ClientOptions;
use crate::timeline::TimeLineHistoryEntry;
use channels::Channel;
use fetch::{handle, next_delivery, Delivery, FetchForm, Queue};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

/// The server version gsbuild's openGauss formats are for (`IDENTIFY_VERSION`'s `sversion`).
pub const SERVER_VERSION: u32 = 90204;
/// The protocol name `IDENTIFY_VERSION` must say.
pub const PROTOCOL_NAME: &str = "MPPDB";

fn texts() -> &'static crate::flavor::ProductTable {
    Product::OpenGauss.table()
}

/// A task aborted when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How to reach the source.
#[derive(Clone, Debug)]
pub struct OpenGaussOptions {
    /// Who connects.
    pub login: Login,
    /// Time limits of every session.
    pub client: ClientOptions,
    /// The target's term, when known: a channel whose server has a smaller one is refused
    /// (it is not the newest primary), as gs_ctl does.
    pub local_term: Option<u32>,
}

/// A running openGauss server reached over its HA port.
pub struct OpenGaussSource {
    rt: Runtime,
    channel: Channel,
    endpoint: Endpoint,
    options: OpenGaussOptions,
    version: IdentifyVersion,
    /// SQL sessions; the first answers everything but range fetches.
    sessions: Vec<OgConn>,
    jobs: usize,
    form: FetchForm,
    /// The channels tried before this one, and what each answered.
    skipped: Vec<String>,
    /// The session holding a full build's backup mode, from `backup_start` to `backup_stop`.
    backup: Option<OgConn>,
}

impl OpenGaussSource {
    /// Connects to the first of `channels` whose server answers as a source should: the
    /// replication probe (`IDENTIFY_VERSION`: this version, this protocol, a term not smaller
    /// than the target's; `IDENTIFY_MODE`: Normal or Primary), then the SQL session. When none
    /// does, the error says what each channel answered.
    pub fn connect(channels: &[Channel], options: OpenGaussOptions) -> Result<OpenGaussSource> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("start runtime for", "source connection", e))?;
        let mut failures = Vec::new();
        for c in channels {
            match rt.block_on(open_channel(c, &options)) {
                Ok((version, sql)) => {
                    tracing::debug!("openGauss source on {c}: {version:?}");
                    return Ok(OpenGaussSource {
                        rt,
                        channel: c.clone(),
                        endpoint: c.endpoint(),
                        options,
                        version,
                        sessions: vec![sql],
                        jobs: 1,
                        form: FetchForm::Arrays,
                        skipped: failures,
                        backup: None,
                    });
                }
                Err(e) => {
                    tracing::info!("channel {c}: {e}");
                    failures.push(format!("{c}: {e}{}", role_hint(&e)));
                }
            }
        }
        Err(Error::Connect {
            peer: "the openGauss source".into(),
            message: if failures.is_empty() {
                "no replconninfo channel to try".into()
            } else {
                format!("no channel answered as a source:\n{}", failures.join("\n"))
            },
        })
    }

    /// Fetch with up to `jobs` SQL sessions (`-j`; at least 1).
    pub fn set_jobs(&mut self, jobs: usize) {
        self.jobs = jobs.max(1);
    }

    /// How batches of ranges are sent (the arrays form unless told otherwise).
    pub fn set_fetch_form(&mut self, form: FetchForm) {
        self.form = form;
    }

    /// The channels tried before the one in use, each with what it answered
    /// (`127.0.0.1:5433 (replconninfo1): connection refused`).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The channel in use.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// What `IDENTIFY_VERSION` said at connect time.
    pub fn version(&self) -> &IdentifyVersion {
        &self.version
    }

    /// `IDENTIFY_SYSTEM` on a probe session: the system identifier, timeline 1 and the
    /// source's flush position.
    pub fn identify_system(&mut self) -> Result<crate::replication::IdentifySystem> {
        self.on_probe(async |c| c.identify_system().await)
    }

    /// Runs `f` on a replication session of its own, ended after it, as gs_ctl does for each
    /// probe: an idle replication session held open would keep a walsender, which makes the
    /// source's fast shutdown wait for it (60 s, then `gs_ctl stop` gives up).
    fn on_probe<T>(&mut self, f: impl AsyncFnOnce(&mut OgConn) -> Result<T>) -> Result<T> {
        let mut c = self.replication_session()?;
        self.rt.block_on(async {
            let r = f(&mut c).await;
            c.close().await;
            r
        })
    }

    /// Runs `f` on the main SQL session, reopening it first when an earlier call lost it.
    fn on_sql<T>(&mut self, f: impl AsyncFnOnce(&mut OgConn) -> Result<T>) -> Result<T> {
        if self.sessions.is_empty() {
            let c = self.rt.block_on(open_sql(&self.endpoint, &self.options))?;
            self.sessions.push(c);
        }
        let OpenGaussSource { rt, sessions, .. } = self;
        let conn = sessions
            .first_mut()
            .ok_or_else(|| Error::Usage("no SQL session".into()))?;
        let r = rt.block_on(f(conn));
        if matches!(r, Err(Error::Connect { .. } | Error::Timeout { .. })) {
            sessions.remove(0);
        }
        r
    }

    /// A new replication session (each WAL stream uses one up).
    fn replication_session(&self) -> Result<OgConn> {
        self.rt.block_on(OgConn::connect(
            &self.endpoint,
            &self.options.login,
            Kind::Replication,
            self.options.client,
        ))
    }

    /// SQL sessions for `batches` batches: up to `jobs`, opening the missing ones together (a
    /// session the server refuses only means fewer), taken out of `self` while they fetch.
    fn take_fetchers(&mut self, batches: usize) -> Vec<OgConn> {
        let want = self.jobs.min(batches).max(1);
        if self.sessions.len() < want {
            let opening: Vec<_> = (self.sessions.len()..want)
                .map(|_| {
                    self.rt.spawn(open_sql_for_fetch(
                        self.endpoint.clone(),
                        self.options.clone(),
                        self.form,
                    ))
                })
                .collect();
            for h in opening {
                match self.rt.block_on(h) {
                    Ok(Ok(c)) => self.sessions.push(c),
                    Ok(Err(e)) => tracing::warn!("could not open another session: {e}"),
                    Err(e) => tracing::warn!("could not open another session: {e}"),
                }
            }
        }
        let n = want.min(self.sessions.len());
        self.sessions.drain(..n).collect()
    }

    /// Starts one task per fetch session over the batches of `ranges`.
    fn start_fetch(
        &mut self,
        ranges: &[FetchRange],
        tx: &mpsc::Sender<Delivery>,
    ) -> Result<Vec<AbortOnDrop<()>>> {
        let batches = super::batch::plan_queries(ranges);
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let mut fetchers = self.take_fetchers(batches.len());
        if self.form == FetchForm::CopyTable {
            for c in &mut fetchers {
                self.rt.block_on(ensure_table(c))?;
            }
        }
        if fetchers.is_empty() {
            return Err(Error::Connect {
                peer: self.describe(),
                message: "no SQL session to fetch with".into(),
            });
        }
        let queue: Queue = Arc::new(Mutex::new(VecDeque::from(batches)));
        Ok(fetchers
            .into_iter()
            .map(|c| {
                AbortOnDrop(self.rt.spawn(fetch::fetch_session(
                    c,
                    self.form,
                    queue.clone(),
                    tx.clone(),
                )))
            })
            .collect())
    }

    /// Receives deliveries until every fetch task is done, handing them to `sink`; the sessions
    /// come back. Notes in `stopped` where the WAL stream stopped, if it did.
    fn drain_fetch(
        &mut self,
        rx: &mut mpsc::Receiver<Delivery>,
        mut fetching: usize,
        sink: &mut dyn TransferSink,
        history: &[TimeLineHistoryEntry],
        stopped: &mut Option<Lsn>,
    ) -> Result<()> {
        while fetching > 0 {
            match next_delivery(rx)? {
                Delivery::FetchDone(conn) => {
                    self.sessions.push(*conn);
                    fetching -= 1;
                }
                other => handle(other, sink, history, stopped)?,
            }
        }
        Ok(())
    }

    /// [`Source::copy_with_wal`] with the WAL streamed on `repl` during the copy.
    fn copy_alongside(
        &mut self,
        repl: OgConn,
        ranges: &[FetchRange],
        wal_start: Lsn,
        history: &[TimeLineHistoryEntry],
        sink: &mut dyn TransferSink,
    ) -> Result<WalEnd> {
        let (tx, mut rx) = mpsc::channel(fetch::CHANNEL_PARCELS);
        let (stop_tx, stop_rx) = oneshot::channel();
        let _wal = AbortOnDrop(self.rt.spawn(fetch::stream_alongside(
            repl,
            wal_start,
            tx.clone(),
            stop_rx,
        )));
        let tasks = self.start_fetch(ranges, &tx)?;
        drop(tx);
        let mut stopped = None;
        self.drain_fetch(&mut rx, tasks.len(), sink, history, &mut stopped)?;
        // Everything the copied blocks hold is in the source's WAL before this position.
        let (tli, end) = self.wal_position()?;
        let _ = stop_tx.send(end);
        let reached = loop {
            if let Some(r) = stopped {
                break r;
            }
            handle(next_delivery(&mut rx)?, sink, history, &mut stopped)?;
        };
        if reached < end {
            return Err(Error::Usage(format!(
                "the source's WAL stream stopped at {reached}, before {end}"
            )));
        }
        Ok(WalEnd { tli, end })
    }
}

/// What to do about a refusal of the role on the HA port.
fn role_hint(e: &Error) -> &'static str {
    let text = e.to_string();
    if text.contains("initial user") || text.contains("not allowed to use HA channel") {
        "\n(openGauss admits only its initial user on the HA port, the owner of the data \
         directory, whose name gsbuild uses when no user is given)"
    } else {
        ""
    }
}

/// The replication probe (ended after it) and the SQL session on one channel.
async fn open_channel(c: &Channel, o: &OpenGaussOptions) -> Result<(IdentifyVersion, OgConn)> {
    let endpoint = c.endpoint();
    let mut probe = OgConn::connect(&endpoint, &o.login, Kind::Replication, o.client).await?;
    let checked = probe_source(&mut probe, o.local_term).await;
    probe.close().await;
    let version = checked?;
    let mut sql = open_sql(&endpoint, o).await?;
    let compat = sql.query_text("show sql_compatibility").await?;
    tracing::debug!("source sql_compatibility = {compat:?}");
    Ok((version, sql))
}

/// gs_ctl's checks on a replication session: version, protocol and term; mode.
async fn probe_source(probe: &mut OgConn, local_term: Option<u32>) -> Result<IdentifyVersion> {
    let version = probe.identify_version().await?;
    check_version(&version, local_term).map_err(Error::Incompatible)?;
    let mode = probe.identify_mode().await?;
    if !mode.can_be_source() {
        return Err(Error::Incompatible(format!(
            "the server's mode is {mode}: a source must be a primary or a node alone"
        )));
    }
    Ok(version)
}

/// What gs_ctl checks of `IDENTIFY_VERSION`.
pub fn check_version(
    v: &IdentifyVersion,
    local_term: Option<u32>,
) -> std::result::Result<(), String> {
    if v.sversion != SERVER_VERSION {
        return Err(format!(
            "the server's version is {}, gsbuild's openGauss support is for {SERVER_VERSION}",
            v.sversion
        ));
    }
    if !v.pversion.starts_with(PROTOCOL_NAME) {
        return Err(format!(
            "the server's protocol is \"{}\", not {PROTOCOL_NAME}",
            v.pversion
        ));
    }
    match local_term {
        Some(t) if t > v.term => Err(format!(
            "the server's term {} is smaller than the target's {t}: it is not the newest primary",
            v.term
        )),
        _ => Ok(()),
    }
}

/// One SQL session, set up as gs_rewind's.
async fn open_sql(endpoint: &Endpoint, o: &OpenGaussOptions) -> Result<OgConn> {
    let mut c = OgConn::connect(endpoint, &o.login, Kind::Sql, o.client).await?;
    c.simple_query(texts().session_setup).await?;
    Ok(c)
}

async fn open_sql_for_fetch(
    endpoint: Endpoint,
    o: OpenGaussOptions,
    form: FetchForm,
) -> Result<OgConn> {
    let mut c = open_sql(&endpoint, &o).await?;
    if form == FetchForm::CopyTable {
        ensure_table(&mut c).await?;
    }
    Ok(c)
}

/// Creates the `COPY` form's temporary table on `c` unless it has it.
async fn ensure_table(c: &mut OgConn) -> Result<()> {
    let have = c
        .query_text("SELECT count(*) FROM pg_class WHERE relname = 'gsbuild_fetch' AND relpersistence = 't' AND pg_table_is_visible(oid)")
        .await?;
    if have.as_deref() != Some("1") {
        c.simple_query(fetch::CREATE_TABLE).await?;
    }
    Ok(())
}

/// One row of the listing (text values: path, size, isdir, tablespace location).
fn listed(row: &OgRow) -> Option<SourceFile> {
    let path = row.text(0)?.to_string();
    let size: i64 = row.text(1)?.parse().ok()?;
    let isdir = row.text(2)? == "t";
    let link = row.text(3).filter(|l| !l.is_empty());
    let is_tablespace = path
        .strip_prefix("pg_tblspc/")
        .is_some_and(|oid| !oid.is_empty() && oid.bytes().all(|b| b.is_ascii_digit()));
    let kind = match link {
        // openGauss gives a relative location (`RELATIVE LOCATION`, a directory under
        // `pg_location/`) as written, relative: the file map decides what it means.
        Some(target) if is_tablespace => FileKind::Symlink {
            target: target.to_string(),
        },
        _ if isdir => FileKind::Dir,
        _ => FileKind::File {
            size: size.max(0) as u64,
        },
    };
    Some(SourceFile { path, kind })
}

impl Source for OpenGaussSource {
    fn describe(&self) -> String {
        format!(
            "openGauss server {} ({}) user={}",
            self.endpoint, self.channel.setting, self.options.login.user
        )
    }

    fn list_files(&mut self) -> Result<Vec<SourceFile>> {
        let q = texts().list_files;
        let rows = self.on_sql(async |c| c.simple_query(q).await)?;
        Ok(rows.iter().filter_map(listed).collect())
    }

    fn fetch_file(&mut self, path: &str) -> Result<Vec<u8>> {
        let q = texts().read_file;
        let rows = self.on_sql(async |c| c.binary_query(q, &[Some(path.as_bytes())]).await)?;
        match rows.first().and_then(|r| r.bytes(0)) {
            Some(data) if rows.len() == 1 => Ok(data.to_vec()),
            _ => Err(crate::ogwire::query_err(
                q,
                format!("no content for \"{path}\""),
            )),
        }
    }

    fn fetch_ranges(&mut self, ranges: &[FetchRange], sink: &mut dyn ChunkSink) -> Result<()> {
        let (tx, mut rx) = mpsc::channel(fetch::CHANNEL_PARCELS);
        let tasks = self.start_fetch(ranges, &tx)?;
        drop(tx);
        self.drain_fetch(&mut rx, tasks.len(), &mut NoWal(sink), &[], &mut None)
    }

    fn copy_with_wal(
        &mut self,
        ranges: &[FetchRange],
        wal_start: Lsn,
        history: &[TimeLineHistoryEntry],
        sink: &mut dyn TransferSink,
    ) -> Result<WalEnd> {
        match self.replication_session() {
            Ok(repl) => self.copy_alongside(repl, ranges, wal_start, history, sink),
            Err(e @ Error::Timeout { .. }) => Err(e),
            // Refused (max_wal_senders reached, say): the WAL after the copy.
            Err(e) => {
                tracing::warn!("no second replication session ({e}); streaming WAL after the copy");
                super::copy_then_wal(self, ranges, wal_start, history, sink)
            }
        }
    }

    fn wal_position(&mut self) -> Result<(TimeLineId, Lsn)> {
        let q = texts().wal_position;
        let text = self.on_sql(async |c| c.query_text(q).await)?;
        let lsn = text
            .ok_or_else(|| crate::ogwire::query_err(q, "no WAL position".into()))?
            .parse::<Lsn>()
            .map_err(|e| crate::ogwire::query_err(q, e.to_string()))?;
        Ok((TimeLineId(1), lsn))
    }

    fn timeline_history(&mut self, _tli: TimeLineId) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    fn setting(&mut self, name: &str) -> Result<Option<String>> {
        let q = texts().setting;
        let r = self.on_sql(async |c| c.binary_query(q, &[Some(name.as_bytes())]).await);
        match r {
            Ok(rows) => Ok(rows
                .first()
                .and_then(|r| r.bytes(0))
                .map(|b| String::from_utf8_lossy(b).into_owned())),
            // Unknown here (42704), or not for this role (42501): the check that asks skips.
            Err(Error::Source { message, .. })
                if message.contains("(SQLSTATE 42704)") || message.contains("(SQLSTATE 42501)") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn backup_start(&mut self, label: &str) -> Result<Option<Lsn>> {
        let (conn, lsn) = self
            .rt
            .block_on(backup::start(&self.endpoint, &self.options, label))?;
        self.backup = Some(conn);
        Ok(Some(lsn))
    }

    fn backup_stop(&mut self) -> Result<()> {
        if let Some(conn) = self.backup.take() {
            let end = self.rt.block_on(backup::stop(conn))?;
            tracing::debug!("backup ended on the source at {end}");
        }
        Ok(())
    }

    fn record_crc(&mut self, lsn: Lsn) -> Result<Option<Option<u32>>> {
        Ok(
            match self.on_probe(async |c| c.identify_consistence(lsn).await)? {
                Consistence::Crc(crc) => Some(Some(crc)),
                Consistence::NoRecord => Some(None),
                Consistence::CannotSay => None,
            },
        )
    }

    fn term(&mut self) -> Result<Option<u64>> {
        let v = self.on_probe(async |c| c.identify_version().await)?;
        Ok(Some(u64::from(v.term)))
    }

    fn read_wal(
        &mut self,
        start: Lsn,
        end: Lsn,
        _history: &[TimeLineHistoryEntry],
        sink: &mut WalSink<'_>,
    ) -> Result<()> {
        let repl = self.replication_session()?;
        self.rt.block_on(async {
            let mut stream = repl.start_replication(start).await?;
            while stream.received() < end {
                let Some(chunk) = stream.next().await? else {
                    break;
                };
                if !sink(chunk.start, &chunk.data)? {
                    break;
                }
            }
            stream.finish().await;
            Ok(())
        })
    }
}
