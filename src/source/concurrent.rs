//! The concurrent half of a server source's copy (phase 6): fetch sessions running pipelined
//! range queries (two in flight: the next is sent before the rows of the current one are
//! read, so the server never waits for a round trip) whose rows are streamed, not buffered,
//! and the WAL stream on a replication session of its own. Both hand what they read to the
//! caller's thread through one bounded channel of [`Delivery`] values, where the sink writes
//! it; nothing here touches the target.
//!
//! Memory is bounded by the channel ([`CHANNEL_PARCELS`] parcels of about [`PARCEL_BYTES`])
//! plus one parcel being filled and the socket buffers of each session — not by the size of
//! a query or of the cluster.

use super::session::{source_err, texts, Limits};
use super::{ChunkSink, FetchRange, TransferSink};
use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::replication::{ReplicationClient, Streamed, WalChunk};
use crate::timeline::TimeLineHistoryEntry;
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, RowStream, Statement};

/// Parcels the channel to the caller's thread holds.
pub const CHANNEL_PARCELS: usize = 4;
/// Rows are sent to the caller's thread in parcels of about this many bytes of data (a row of
/// a whole 1 MiB chunk is a parcel of its own), so that small blocks do not cost a thread
/// wake-up each.
pub const PARCEL_BYTES: usize = 1 << 20;

const FETCHING: &str = "fetching file ranges";

/// What the tasks hand to the caller's thread.
pub enum Delivery {
    /// Rows of a fetch query, each with the range it answers (checked: same path and offset,
    /// not longer than asked).
    Chunks(Vec<(FetchRange, Row)>),
    /// WAL from the stream.
    Wal(WalChunk),
    /// A fetch session found the queue empty and finished.
    FetchDone,
    /// The WAL stream stopped, having delivered everything before this position.
    WalStopped(Lsn),
    /// A task failed; the copy fails with this error.
    Failed(Error),
}

/// A task that is aborted when the handle is dropped (so that an error on the caller's side
/// stops every session).
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One SQL session ready to fetch.
pub struct Fetcher {
    /// The session.
    pub client: Arc<Client>,
    /// The product's range fetch query, prepared on it.
    pub statement: Statement,
}

/// The fetch queries still to run, shared by the fetch sessions. An open queue may get more
/// ([`Queue::push`], the deferred blocks a copy hands out as the WAL streams): a session that
/// finds it empty waits until more come or it is closed ([`Queue::close`]).
pub struct Queue {
    state: Mutex<QueueState>,
    more: tokio::sync::Notify,
}

struct QueueState {
    batches: VecDeque<Vec<FetchRange>>,
    open: bool,
}

impl Queue {
    /// A queue of `batches`; `open`: more may be pushed until it is closed.
    pub fn new(batches: Vec<Vec<FetchRange>>, open: bool) -> Arc<Queue> {
        Arc::new(Queue {
            state: Mutex::new(QueueState {
                batches: batches.into(),
                open,
            }),
            more: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds queries to an open queue.
    pub fn push(&self, batches: Vec<Vec<FetchRange>>) {
        self.lock().batches.extend(batches);
        self.more.notify_waiters();
    }

    /// No more queries will come: sessions finish once it is empty.
    pub fn close(&self) {
        self.lock().open = false;
        self.more.notify_waiters();
    }

    /// The next query, if one is waiting.
    fn try_take(&self) -> Option<Vec<FetchRange>> {
        self.lock().batches.pop_front()
    }

    /// The next query, waiting for one while the queue is open; `None` once it is closed and
    /// empty.
    async fn take(&self) -> Option<Vec<FetchRange>> {
        loop {
            let notified = self.more.notified();
            tokio::pin!(notified);
            // Registered before the state is looked at, so a push in between wakes it.
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if let Some(b) = st.batches.pop_front() {
                    return Some(b);
                }
                if !st.open {
                    return None;
                }
            }
            notified.await;
        }
    }
}

/// The queue of a copy of `ranges` into `sink`: open when the sink has ranges to come as the
/// WAL streams (deferred blocks, [`TransferSink::more_ranges`]); with the number of sessions
/// it can keep busy (all of them while it is open), and whether it is open.
pub fn queue_for(ranges: &[FetchRange], sink: &mut dyn TransferSink) -> (Arc<Queue>, usize, bool) {
    let first = sink.more_ranges(false);
    let open = first.is_some();
    let mut queries = super::batch::plan_queries(ranges);
    queries.extend(super::batch::plan_queries(first.as_deref().unwrap_or(&[])));
    let sessions = if open { usize::MAX } else { queries.len() };
    (Queue::new(queries, open), sessions, open)
}

/// After a delivery: what the sink has to fetch now joins the queue, and the queue is closed
/// once the sink will have nothing more (`open` then turns false).
pub fn pass_on_more(
    sink: &mut dyn TransferSink,
    queue: &Queue,
    stream_done: bool,
    open: &mut bool,
) {
    while *open {
        match sink.more_ranges(stream_done) {
            Some(more) if more.is_empty() => break,
            Some(more) => queue.push(super::batch::plan_queries(&more)),
            None => {
                queue.close();
                *open = false;
            }
        }
    }
}

fn gone() -> Error {
    Error::Usage("the copy was abandoned".into())
}

/// Runs queries from `queue` on one session until it is empty, then reports
/// [`Delivery::FetchDone`] (or [`Delivery::Failed`]).
pub async fn fetch_session(
    f: Fetcher,
    queue: Arc<Queue>,
    tx: mpsc::Sender<Delivery>,
    limits: Limits,
) {
    let last = match fetch_loop(&f, &queue, &tx, &limits).await {
        Ok(()) => Delivery::FetchDone,
        Err(e) => Delivery::Failed(e),
    };
    let _ = tx.send(last).await;
}

async fn fetch_loop(
    f: &Fetcher,
    queue: &Arc<Queue>,
    tx: &mpsc::Sender<Delivery>,
    limits: &Limits,
) -> Result<()> {
    let start = |batch: Vec<FetchRange>| {
        let query = send_query(f.client.clone(), f.statement.clone(), &batch);
        (batch, AbortOnDrop(tokio::spawn(query)))
    };
    let mut next = queue.take().await.map(start);
    while let Some((batch, mut query)) = next.take() {
        // The rows of the query before were all read: the answer depends on the server alone.
        let rows = limits
            .within(FETCHING, &mut query.0)
            .await?
            .map_err(|e| Error::Source {
                query: texts().fetch_ranges.into(),
                message: format!("fetch task failed: {e}"),
            })?
            .map_err(|e| source_err(texts().fetch_ranges, e))?;
        // Pipelining: the next query goes out before these rows are read, so the server has
        // it when it finishes this one. Sending it only now that this one was answered keeps
        // the two in order on the connection (each query's rows come after the previous
        // query's, and are read in that order).
        next = queue.try_take().map(start);
        receive(rows, batch, tx, limits).await?;
        if next.is_none() {
            next = queue.take().await.map(start);
        }
    }
    Ok(())
}

/// Sends one fetch query for `batch` (the rows are read by [`receive`]).
fn send_query(
    client: Arc<Client>,
    statement: Statement,
    batch: &[FetchRange],
) -> impl std::future::Future<Output = std::result::Result<RowStream, tokio_postgres::Error>> {
    let paths: Vec<String> = batch.iter().map(|r| r.path.clone()).collect();
    let begins: Vec<i64> = batch.iter().map(|r| r.offset as i64).collect();
    let lens: Vec<i32> = batch.iter().map(|r| r.len as i32).collect();
    async move {
        let params: [&(dyn ToSql + Sync); 3] = [&paths, &begins, &lens];
        client.query_raw(&statement, params).await
    }
}

/// Reads the rows answering `batch`, checks each against its range, and sends them on in
/// parcels.
async fn receive(
    rows: RowStream,
    batch: Vec<FetchRange>,
    tx: &mpsc::Sender<Delivery>,
    limits: &Limits,
) -> Result<()> {
    let mut rows = std::pin::pin!(rows);
    let expected = batch.len();
    let mut parcel = Vec::new();
    let mut bytes = 0usize;
    for (i, want) in batch.into_iter().enumerate() {
        let row = match limits.within(FETCHING, rows.next()).await? {
            Some(r) => r.map_err(|e| source_err(texts().fetch_ranges, e))?,
            None => return Err(size_mismatch(i, expected)),
        };
        bytes += check_row(&row, &want)?;
        parcel.push((want, row));
        if bytes >= PARCEL_BYTES {
            tx.send(Delivery::Chunks(std::mem::take(&mut parcel)))
                .await
                .map_err(|_| gone())?;
            bytes = 0;
        }
    }
    if !parcel.is_empty() {
        tx.send(Delivery::Chunks(parcel))
            .await
            .map_err(|_| gone())?;
    }
    match limits.within(FETCHING, rows.next()).await? {
        None => Ok(()),
        Some(Err(e)) => Err(source_err(texts().fetch_ranges, e)),
        Some(Ok(_)) => Err(size_mismatch(expected + 1, expected)),
    }
}

fn size_mismatch(got: usize, expected: usize) -> Error {
    Error::Source {
        query: texts().fetch_ranges.into(),
        message: format!("unexpected result set size {got} (expected {expected})"),
    }
}

/// Checks that `row` answers `want` (same path and offset, no more bytes than asked for);
/// returns its number of bytes (0 for NULL: the file vanished).
fn check_row(row: &Row, want: &FetchRange) -> Result<usize> {
    let path: &str = row
        .try_get(0)
        .map_err(|e| source_err(texts().fetch_ranges, e))?;
    let begin: i64 = row
        .try_get(1)
        .map_err(|e| source_err(texts().fetch_ranges, e))?;
    if path != want.path || u64::try_from(begin).ok() != Some(want.offset) {
        return Err(Error::Source {
            query: texts().fetch_ranges.into(),
            message: format!(
                "received chunk for \"{path}\" at {begin}, expected \"{}\" at {}",
                want.path, want.offset
            ),
        });
    }
    match row
        .try_get::<_, Option<&[u8]>>(2)
        .map_err(|e| source_err(texts().fetch_ranges, e))?
    {
        None => Ok(0),
        Some(data) if data.len() as u64 > want.len => Err(Error::Source {
            query: texts().fetch_ranges.into(),
            message: format!(
                "received {} bytes for \"{path}\" at {begin}, asked for {}",
                data.len(),
                want.len
            ),
        }),
        Some(data) => Ok(data.len()),
    }
}

/// Hands checked rows to the sink (on the caller's thread); returns the bytes written.
pub fn deliver(parcel: Vec<(FetchRange, Row)>, sink: &mut dyn ChunkSink) -> Result<u64> {
    let mut bytes = 0;
    for (want, row) in parcel {
        match row
            .try_get::<_, Option<&[u8]>>(2)
            .map_err(|e| source_err(texts().fetch_ranges, e))?
        {
            None => sink.vanished(&want.path)?,
            Some(data) => {
                sink.write(&want.path, want.offset, data)?;
                bytes += data.len() as u64;
            }
        }
    }
    Ok(bytes)
}

/// Streams WAL from `start` along `history` on `repl` until told where to stop through
/// `stop_at` (everything before that position delivered), or until the server ends a
/// timeline that `history` does not know the successor of; then reports
/// [`Delivery::WalStopped`] with the position reached (or [`Delivery::Failed`]).
pub async fn stream_alongside(
    mut repl: ReplicationClient,
    start: Lsn,
    history: Vec<TimeLineHistoryEntry>,
    tx: mpsc::Sender<Delivery>,
    mut stop_at: oneshot::Receiver<Lsn>,
) {
    let last = match stream_loop(&mut repl, start, &history, &tx, &mut stop_at).await {
        Ok(reached) => Delivery::WalStopped(reached),
        Err(e) => Delivery::Failed(e),
    };
    let _ = tx.send(last).await;
}

async fn stream_loop(
    repl: &mut ReplicationClient,
    start: Lsn,
    history: &[TimeLineHistoryEntry],
    tx: &mpsc::Sender<Delivery>,
    stop_at: &mut oneshot::Receiver<Lsn>,
) -> Result<Lsn> {
    // A standby in recovery (PostgreSQL 14) refuses START_REPLICATION on a session that has
    // not run IDENTIFY_SYSTEM first.
    repl.identify_system().await?;
    let mut pos = start;
    let mut end: Option<Lsn> = None;
    loop {
        let Some(entry) = history.iter().find(|e| e.contains(pos)) else {
            return Ok(pos);
        };
        let query = (texts().start_replication)(pos, entry.tli);
        let mut stream = repl.start_replication(pos, entry.tli).await?;
        let server_ended = loop {
            if end.is_some_and(|e| pos >= e) {
                break false;
            }
            let next = if end.is_none() {
                match stream.next_or(stop_at).await? {
                    Streamed::Interrupted(Ok(e)) => {
                        end = Some(e);
                        continue;
                    }
                    Streamed::Interrupted(Err(_)) => return Err(gone()),
                    Streamed::Wal(chunk) => Some(chunk),
                    Streamed::Ended => None,
                }
            } else {
                stream.next().await?
            };
            let Some(chunk) = next else { break true };
            if chunk.start != pos {
                return Err(Error::Source {
                    query,
                    message: format!("received WAL at {}, expected {pos}", chunk.start),
                });
            }
            pos = Lsn(pos.0 + chunk.data.len() as u64);
            stream.set_flushed(pos);
            tx.send(Delivery::Wal(chunk)).await.map_err(|_| gone())?;
        };
        if !server_ended {
            stream.stop().await?;
            return Ok(pos);
        }
        // The server ended a historic timeline: go on at its switch point on the next one,
        // when the history knows it (else the caller goes on with the source's new history).
        match stream.timeline_end() {
            Some(te) if te.switch >= pos => {
                if !history.iter().any(|e| e.tli == te.next_tli) {
                    return Ok(pos);
                }
                pos = te.switch;
            }
            _ => {
                return Err(Error::Source {
                    query,
                    message: "the server ended the WAL stream early".into(),
                })
            }
        }
    }
}

/// The next delivery, received on the caller's thread (blocking).
pub fn next_delivery(rx: &mut mpsc::Receiver<Delivery>) -> Result<Delivery> {
    rx.blocking_recv().ok_or_else(|| Error::Source {
        query: texts().fetch_ranges.into(),
        message: "the copy's tasks ended without a result".into(),
    })
}

/// Hands one delivery other than [`Delivery::FetchDone`] to the sink (on the caller's thread);
/// notes in `stopped` where the WAL stream stopped.
pub fn handle(
    d: Delivery,
    sink: &mut dyn TransferSink,
    history: &[TimeLineHistoryEntry],
    stopped: &mut Option<Lsn>,
) -> Result<()> {
    match d {
        Delivery::Chunks(parcel) => {
            deliver(parcel, sink)?;
        }
        Delivery::Wal(chunk) => sink.wal(chunk.start, &chunk.data, history)?,
        Delivery::WalStopped(reached) => *stopped = Some(reached),
        Delivery::Failed(e) => return Err(e),
        Delivery::FetchDone => {}
    }
    Ok(())
}

/// A [`TransferSink`] for a fetch without WAL.
pub struct NoWal<'a>(pub &'a mut dyn ChunkSink);

impl ChunkSink for NoWal<'_> {
    fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<()> {
        self.0.write(path, offset, data)
    }
    fn vanished(&mut self, path: &str) -> Result<()> {
        self.0.vanished(path)
    }
}

impl TransferSink for NoWal<'_> {
    fn wal(&mut self, start: Lsn, _: &[u8], _: &[TimeLineHistoryEntry]) -> Result<()> {
        Err(Error::Usage(format!(
            "unexpected WAL at {start} in a fetch"
        )))
    }
}
