//! The CopyBoth phase of `START_REPLICATION PHYSICAL`: `XLogData` (`w`) and keepalive (`k`)
//! messages in, standby status updates (`r`) out, and the two ways the stream ends — the
//! server's CopyDone at the end of a historic timeline (followed by the next timeline and its
//! start position) or our own [`WalStream::stop`].

use super::{collect_results_from, source_err, ReplicationClient, Row};
use crate::lsn::{Lsn, TimeLineId};
use crate::Result;
use bytes::{BufMut, Bytes, BytesMut};
use postgres_protocol::message::frontend;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A piece of WAL as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalChunk {
    /// Position of the first byte of `data`.
    pub start: Lsn,
    /// The WAL bytes (contiguous with the previous chunk's end in a healthy stream).
    pub data: Bytes,
}

/// What [`WalStream::next_or`] returns.
#[derive(Debug)]
pub enum Streamed<T> {
    /// A piece of WAL.
    Wal(WalChunk),
    /// The server ended the stream (see [`WalStream::timeline_end`]).
    Ended,
    /// The interrupting future completed first, with this value.
    Interrupted(T),
}

/// How a historic timeline ended: the server's answer after it finished streaming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineEnd {
    /// The timeline that follows.
    pub next_tli: TimeLineId,
    /// Where that timeline branched off (the end of the streamed one).
    pub switch: Lsn,
}

/// Seconds from the Unix epoch to PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_OFFSET_SECS: u64 = 946_684_800;

/// An active WAL stream; it borrows the client, which is usable again once the stream ended
/// ([`WalStream::next`] returned `None`) or was stopped.
pub struct WalStream<'a> {
    client: &'a mut ReplicationClient,
    query: String,
    /// End of the last WAL received.
    received: Lsn,
    /// What the caller reported as durably written (sent as the flush position).
    flushed: Lsn,
    last_status: Instant,
    last_server_message: Instant,
    finished: bool,
    timeline_end: Option<TimelineEnd>,
}

impl<'a> WalStream<'a> {
    pub(super) fn new(client: &'a mut ReplicationClient, start: Lsn, query: String) -> Self {
        let now = Instant::now();
        WalStream {
            client,
            query,
            received: start,
            flushed: Lsn::INVALID,
            last_status: now,
            last_server_message: now,
            finished: false,
            timeline_end: None,
        }
    }

    pub(super) fn ended(
        client: &'a mut ReplicationClient,
        start: Lsn,
        query: String,
        end: TimelineEnd,
    ) -> Self {
        let mut s = WalStream::new(client, start, query);
        s.finished = true;
        s.timeline_end = Some(end);
        s
    }

    /// End of the WAL received so far.
    pub fn received(&self) -> Lsn {
        self.received
    }

    /// Tells the server (in the next status update) that WAL up to `lsn` is safely stored.
    pub fn set_flushed(&mut self, lsn: Lsn) {
        self.flushed = lsn;
    }

    /// Set once the server ended the stream at the end of a historic timeline.
    pub fn timeline_end(&self) -> Option<TimelineEnd> {
        self.timeline_end
    }

    /// The next piece of WAL, or `None` when the server ended the stream (see
    /// [`WalStream::timeline_end`]). Waits as long as the server keeps answering keepalive
    /// requests; fails when it stays silent for the read timeout.
    pub async fn next(&mut self) -> Result<Option<WalChunk>> {
        match self.next_or(&mut std::future::pending::<()>()).await? {
            Streamed::Wal(chunk) => Ok(Some(chunk)),
            Streamed::Ended | Streamed::Interrupted(()) => Ok(None),
        }
    }

    /// As [`WalStream::next`], but returns [`Streamed::Interrupted`] as soon as `interrupt`
    /// completes while waiting for the server. The stream stays usable (only a read that had
    /// not received a whole message is abandoned, and what it read is kept), so the caller may
    /// go on with [`WalStream::next`] or [`WalStream::stop`]. `interrupt` must not be passed
    /// again once it completed.
    pub async fn next_or<F: Future + Unpin>(
        &mut self,
        interrupt: &mut F,
    ) -> Result<Streamed<F::Output>> {
        let opts = *self.client.options();
        while !self.finished {
            if self.last_status.elapsed() >= opts.status_interval {
                let ask = self.last_server_message.elapsed() >= opts.status_interval;
                self.send_status(ask).await?;
            }
            let wait = opts
                .status_interval
                .saturating_sub(self.last_status.elapsed());
            // Reading is cancel-safe (`recv_within`); writing a status update is not, and is
            // never raced.
            let received = tokio::select! {
                r = self.client.conn.recv_within(wait.max(Duration::from_millis(1))) => r?,
                v = &mut *interrupt => return Ok(Streamed::Interrupted(v)),
            };
            let frame = match received {
                Some(f) => f,
                None if self.last_server_message.elapsed() >= opts.read_timeout => {
                    return Err(self.client.conn.timeout(opts.read_timeout, "streaming WAL"));
                }
                None => continue,
            };
            self.last_server_message = Instant::now();
            match frame.tag {
                b'd' => {
                    if let Some(chunk) = self.copy_data(frame.body).await? {
                        return Ok(Streamed::Wal(chunk));
                    }
                }
                b'c' => self.server_done().await?,
                _ => {
                    // An ErrorResponse (or anything else) ends COPY: read up to ReadyForQuery.
                    self.finished = true;
                    let mut rows = Vec::new();
                    collect_results_from(
                        &mut self.client.conn,
                        &self.query,
                        &mut rows,
                        Some(frame),
                    )
                    .await
                    .map_err(|e| super::wal_removed(e, self.received))?;
                    return Err(source_err(
                        &self.query,
                        "server ended streaming unexpectedly".into(),
                    ));
                }
            }
        }
        Ok(Streamed::Ended)
    }

    /// Handles one CopyData payload; returns WAL when it carried some.
    async fn copy_data(&mut self, body: Bytes) -> Result<Option<WalChunk>> {
        match body.first() {
            Some(b'w') => {
                let (start, data) = parse_xlog_data(&body)
                    .ok_or_else(|| self.client.conn.error("truncated XLogData message"))?;
                let end = start
                    .checked_add(data.len() as u64)
                    .ok_or_else(|| self.client.conn.error("XLogData position overflows"))?;
                self.received = self.received.max(end);
                Ok((!data.is_empty()).then_some(WalChunk { start, data }))
            }
            Some(b'k') => {
                let reply = parse_keepalive(&body)
                    .ok_or_else(|| self.client.conn.error("truncated keepalive message"))?;
                if reply {
                    self.send_status(false).await?;
                }
                Ok(None)
            }
            other => Err(self.client.conn.error(format!(
                "unexpected streaming message type {:?}",
                other.map(|b| *b as char)
            ))),
        }
    }

    /// The server finished a historic timeline: answer CopyDone, read the next-timeline row.
    async fn server_done(&mut self) -> Result<()> {
        self.finished = true;
        frontend::copy_done(&mut self.client.conn.wbuf);
        self.client.conn.flush().await?;
        let mut rows = Vec::new();
        collect_results_from(&mut self.client.conn, &self.query, &mut rows, None).await?;
        if !rows.is_empty() {
            self.timeline_end = Some(parse_timeline_end(&self.query, &rows)?);
        }
        Ok(())
    }

    /// Ends the stream: sends CopyDone and reads (discarding WAL still in flight) up to
    /// ReadyForQuery, so that the client can run further commands.
    pub async fn stop(mut self) -> Result<Option<TimelineEnd>> {
        if self.finished {
            return Ok(self.timeline_end);
        }
        self.finished = true;
        frontend::copy_done(&mut self.client.conn.wbuf);
        self.client.conn.flush().await?;
        loop {
            let frame = self.client.conn.recv().await?;
            match frame.tag {
                b'd' => continue,
                b'c' => {
                    let mut rows = Vec::new();
                    collect_results_from(&mut self.client.conn, &self.query, &mut rows, None)
                        .await?;
                    if !rows.is_empty() {
                        self.timeline_end = Some(parse_timeline_end(&self.query, &rows)?);
                    }
                    return Ok(self.timeline_end);
                }
                _ => {
                    let mut rows = Vec::new();
                    collect_results_from(
                        &mut self.client.conn,
                        &self.query,
                        &mut rows,
                        Some(frame),
                    )
                    .await
                    .map_err(|e| super::wal_removed(e, self.received))?;
                    return Ok(self.timeline_end);
                }
            }
        }
    }

    /// Sends a standby status update: write = received, flush = what the caller confirmed,
    /// apply = invalid (we replay nothing); `reply` asks the server to answer at once, which is
    /// how a silent server is told apart from an idle one.
    async fn send_status(&mut self, reply: bool) -> Result<()> {
        let mut msg = BytesMut::with_capacity(34);
        msg.put_u8(b'r');
        msg.put_u64(self.received.0);
        msg.put_u64(self.flushed.0);
        msg.put_u64(0);
        msg.put_i64(pg_now_micros());
        msg.put_u8(u8::from(reply));
        frontend::CopyData::new(msg.freeze())
            .map_err(|e| self.client.conn.error(e.to_string()))?
            .write(&mut self.client.conn.wbuf);
        self.client.conn.flush().await?;
        self.last_status = Instant::now();
        Ok(())
    }
}

/// Microseconds since 2000-01-01 UTC (the protocol's clock).
fn pg_now_micros() -> i64 {
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let micros = since_unix
        .saturating_sub(Duration::from_secs(PG_EPOCH_OFFSET_SECS))
        .as_micros();
    i64::try_from(micros).unwrap_or(i64::MAX)
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    let bytes = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// `w`, start u64, end u64, send time i64, then the WAL bytes.
pub(super) fn parse_xlog_data(body: &Bytes) -> Option<(Lsn, Bytes)> {
    let start = be_u64(body, 1)?;
    be_u64(body, 9)?;
    be_u64(body, 17)?;
    let data = body.get(25..).map(|_| body.slice(25..))?;
    Some((Lsn(start), data))
}

/// `k`, server WAL end u64, send time i64, reply-requested u8. Returns the last field.
pub(super) fn parse_keepalive(body: &[u8]) -> Option<bool> {
    be_u64(body, 1)?;
    be_u64(body, 9)?;
    body.get(17).map(|r| *r != 0)
}

/// The one-row result after a historic timeline: `next_tli`, `next_tli_startpos`.
pub(super) fn parse_timeline_end(query: &str, rows: &[Row]) -> Result<TimelineEnd> {
    let row = super::single_row(query, rows, 2)?;
    let tli = row.get(0).and_then(|t| t.parse().ok());
    let pos = row.get(1).and_then(|p| p.parse().ok());
    match (tli, pos) {
        (Some(t), Some(p)) => Ok(TimelineEnd {
            next_tli: TimeLineId(t),
            switch: p,
        }),
        _ => Err(source_err(query, "invalid next-timeline result".into())),
    }
}
