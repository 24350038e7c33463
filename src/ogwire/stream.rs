//! `START_REPLICATION X/X` on an openGauss replication session: the CopyBoth stream as
//! `gs_ctl build` reads it. The CopyData bodies are the sender's C structs in its byte order
//! (little-endian on every platform openGauss ships for; the first `w` is checked to start
//! where it was asked, which a byte-order mix-up would not):
//!
//! - `k` `WalSndrMessage` (32 bytes): `walEnd` u64 @0, `peer_role` i32 @8, `peer_state` i32
//!   @12, `sendTime` i64 @16, `replyRequested` u8 @24, `catchup` u8 @25, the rest padding;
//! - `w` `WalDataMessageHeader` (64 bytes), then WAL: `dataStart` u64 @0, `walEnd` u64 @8,
//!   `sendTime` i64 @16, `sender_sent` @24, `sender_write` @32, `sender_flush` @40,
//!   `sender_replay` @48, `catchup` u8 @56, padding;
//! - `r` `StandbyReplyMessage` (64 bytes), sent when a `k` asks for it: positions all zero (a
//!   build has no slot to advance), `peer_role` STANDBY (3), `peer_state` BUILDING (7).
//!
//! The stream is ended by the client with Terminate and no CopyDone (a CopyDone makes the
//! server reset the connection), so the session is used up: [`OgWalStream::finish`].

use super::{message, OgConn};
use crate::lsn::Lsn;
use crate::replication::{Streamed, WalChunk};
use crate::{Error, Result};
use bytes::Bytes;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Size of `WalSndrMessage`.
pub const KEEPALIVE_LEN: usize = 32;
/// Size of `WalDataMessageHeader`.
pub const WAL_HEADER_LEN: usize = 64;
/// Size of `StandbyReplyMessage`.
pub const REPLY_LEN: usize = 64;
/// `peer_role` STANDBY_MODE.
const ROLE_STANDBY: i32 = 3;
/// `peer_state` BUILDING_STATE.
const STATE_BUILDING: i32 = 7;
/// Seconds from the Unix epoch to 2000-01-01, the protocol's clock.
const EPOCH_2000: u64 = 946_684_800;

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn le_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A `k` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// The sender's end of WAL.
    pub wal_end: Lsn,
    /// Its role (2 = primary).
    pub peer_role: i32,
    /// Its state (1 = normal).
    pub peer_state: i32,
    /// Microseconds since 2000-01-01.
    pub send_time: i64,
    /// Whether it wants an `r` now.
    pub reply_requested: bool,
    /// Whether it is catching up.
    pub catchup: bool,
}

/// Decodes a `k` CopyData body (with its type byte).
pub fn parse_keepalive(body: &[u8]) -> Option<Keepalive> {
    let b = body.strip_prefix(b"k")?;
    Some(Keepalive {
        wal_end: Lsn(le_u64(b, 0)?),
        peer_role: le_i32(b, 8)?,
        peer_state: le_i32(b, 12)?,
        send_time: le_u64(b, 16)? as i64,
        reply_requested: *b.get(24)? != 0,
        catchup: *b.get(25)? != 0,
    })
}

/// The header of a `w` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalDataHeader {
    /// Position of the first WAL byte.
    pub data_start: Lsn,
    /// The sender's flush end.
    pub wal_end: Lsn,
    /// Microseconds since 2000-01-01.
    pub send_time: i64,
    /// End of this message's data.
    pub sender_sent: Lsn,
    /// The sender's write position.
    pub sender_write: Lsn,
    /// Its flush position.
    pub sender_flush: Lsn,
    /// Its replay position.
    pub sender_replay: Lsn,
    /// Whether it is catching up.
    pub catchup: bool,
}

/// Decodes a `w` CopyData body (with its type byte): the header and the WAL after it.
pub fn parse_wal_data(body: &Bytes) -> Option<(WalDataHeader, Bytes)> {
    let b = body.get(1..)?;
    if body.first() != Some(&b'w') || b.len() < WAL_HEADER_LEN {
        return None;
    }
    let h = WalDataHeader {
        data_start: Lsn(le_u64(b, 0)?),
        wal_end: Lsn(le_u64(b, 8)?),
        send_time: le_u64(b, 16)? as i64,
        sender_sent: Lsn(le_u64(b, 24)?),
        sender_write: Lsn(le_u64(b, 32)?),
        sender_flush: Lsn(le_u64(b, 40)?),
        sender_replay: Lsn(le_u64(b, 48)?),
        catchup: *b.get(56)? != 0,
    };
    Some((h, body.slice(1 + WAL_HEADER_LEN..)))
}

/// An `r` CopyData body (with its type byte): every position zero, STANDBY/BUILDING, `now`.
pub fn standby_reply(now: i64) -> [u8; 1 + REPLY_LEN] {
    let mut r = [0u8; 1 + REPLY_LEN];
    r[0] = b'r';
    r[41..45].copy_from_slice(&ROLE_STANDBY.to_le_bytes());
    r[45..49].copy_from_slice(&STATE_BUILDING.to_le_bytes());
    r[49..57].copy_from_slice(&now.to_le_bytes());
    r
}

/// Microseconds since 2000-01-01 UTC.
fn now_2000() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(Duration::from_secs(EPOCH_2000));
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// A running WAL stream; it owns the session, which it ends.
pub struct OgWalStream {
    conn: OgConn,
    query: String,
    /// Where the next WAL byte must start.
    next: Lsn,
    ended: bool,
}

impl OgConn {
    /// `START_REPLICATION start`: WAL from exactly `start` (the server accepts any position it
    /// has; gs_ctl asks for a segment start). A removed segment is [`Error::WalRemoved`].
    pub async fn start_replication(mut self, start: Lsn) -> Result<OgWalStream> {
        let query = format!("START_REPLICATION {start}");
        message::query(&mut self.conn.wbuf, &query);
        self.conn.flush().await?;
        loop {
            let frame = self.conn.recv().await?;
            match frame.tag {
                b'W' => break,
                b'N' => tracing::info!("server notice: {}", message::server_message(&frame.body)),
                b'E' => return Err(stream_error(&query, &frame.body, start)),
                t => {
                    return Err(super::query_err(
                        &query,
                        format!("unexpected message type '{}'", t as char),
                    ))
                }
            }
        }
        Ok(OgWalStream {
            conn: self,
            query,
            next: start,
            ended: false,
        })
    }
}

/// The server's error during streaming: [`Error::WalRemoved`] for a removed segment.
fn stream_error(query: &str, body: &[u8], at: Lsn) -> Error {
    let m = message::server_message(body);
    crate::replication::wal_removed(super::query_err(query, m.to_string()), at)
}

impl OgWalStream {
    /// Where the next WAL byte starts (the end of what was received).
    pub fn received(&self) -> Lsn {
        self.next
    }

    /// The next piece of WAL; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<WalChunk>> {
        match self.next_or(&mut std::future::pending::<()>()).await? {
            Streamed::Wal(c) => Ok(Some(c)),
            Streamed::Ended | Streamed::Interrupted(()) => Ok(None),
        }
    }

    /// As [`OgWalStream::next`], returning [`Streamed::Interrupted`] as soon as `interrupt`
    /// completes while waiting (the stream stays usable). Fails when the server says nothing
    /// for the read timeout.
    pub async fn next_or<F: Future + Unpin>(
        &mut self,
        interrupt: &mut F,
    ) -> Result<Streamed<F::Output>> {
        let limit = self.conn.options.read_timeout;
        let mut last = Instant::now();
        while !self.ended {
            let wait = limit
                .saturating_sub(last.elapsed())
                .max(Duration::from_millis(1));
            let received = tokio::select! {
                r = self.conn.conn.recv_within(wait) => r?,
                v = &mut *interrupt => return Ok(Streamed::Interrupted(v)),
            };
            let Some(frame) = received else {
                if last.elapsed() >= limit {
                    return Err(self.conn.conn.timeout(limit, "streaming WAL"));
                }
                continue;
            };
            last = Instant::now();
            match frame.tag {
                b'd' => {
                    if let Some(chunk) = self.copy_data(frame.body).await? {
                        return Ok(Streamed::Wal(chunk));
                    }
                }
                b'c' => self.ended = true,
                b'E' => {
                    self.ended = true;
                    return Err(stream_error(&self.query, &frame.body, self.next));
                }
                b'N' => tracing::info!("server notice: {}", message::server_message(&frame.body)),
                t => {
                    return Err(super::query_err(
                        &self.query,
                        format!("unexpected message type '{}' while streaming", t as char),
                    ))
                }
            }
        }
        Ok(Streamed::Ended)
    }

    async fn copy_data(&mut self, body: Bytes) -> Result<Option<WalChunk>> {
        match body.first() {
            Some(b'w') => {
                let (h, data) = parse_wal_data(&body)
                    .ok_or_else(|| self.conn.conn.error("truncated WAL data message"))?;
                if h.data_start != self.next {
                    return Err(super::query_err(
                        &self.query,
                        format!("received WAL at {}, expected {}", h.data_start, self.next),
                    ));
                }
                self.next = h
                    .data_start
                    .checked_add(data.len() as u64)
                    .ok_or_else(|| self.conn.conn.error("WAL data position overflows"))?;
                Ok((!data.is_empty()).then_some(WalChunk {
                    start: h.data_start,
                    data,
                }))
            }
            Some(b'k') => {
                let k = parse_keepalive(&body)
                    .ok_or_else(|| self.conn.conn.error("truncated keepalive message"))?;
                if k.reply_requested {
                    message::copy_data(&mut self.conn.conn.wbuf, &standby_reply(now_2000()));
                    self.conn.conn.flush().await?;
                }
                Ok(None)
            }
            other => Err(self.conn.conn.error(format!(
                "unexpected streaming message type {:?}",
                other.map(|b| *b as char)
            ))),
        }
    }

    /// Ends the stream and the session: Terminate without CopyDone, as gs_ctl does.
    pub async fn finish(self) {
        self.conn.close().await;
    }
}
