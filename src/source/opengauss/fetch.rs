//! The concurrent half of an openGauss source's copy (phase 6): SQL sessions fetching byte
//! ranges in batches ([`crate::source::batch`]: contiguous ranges merged, 1 MiB chunks, at most
//! 4 MiB and 1000 chunks a query), two batches in flight per session (the next is sent before
//! the rows of the current one are read), rows read one by one and handed to the caller's
//! thread in parcels of about 1 MiB through one bounded channel, where the sink writes them;
//! and the WAL stream on a replication session of its own, alongside.
//!
//! A batch is one query in one of three forms ([`FetchForm`]): three array parameters unnested
//! side by side (the default: one statement, a short text parsed once, nothing written on the
//! source), the ranges as a `VALUES` list in the query text, or gs_rewind's way, a temporary
//! table filled with `COPY … FROM STDIN` and read by the fetch query (three statements sent
//! together). Measured on 7.0 (`batch_forms_compared` in tests/opengauss_source.rs, best of
//! five, a loaded 2-core machine): 6000 scattered 8 KiB blocks with 1/4 sessions took
//! 325/257 ms as `VALUES`, 233/186 ms with `COPY`, 260/200 ms as arrays; 111 MiB in 1 MiB
//! chunks 275/290, 405/335 and 311/191 ms. Arrays are never far from the best form, which
//! differs by range size.

use crate::error::{Error, Result};
use crate::flavor::Product;
use crate::lsn::Lsn;
use crate::ogwire::stream::OgWalStream;
use crate::ogwire::OgConn;
use crate::replication::{Streamed, WalChunk};
use crate::source::{FetchRange, TransferSink};
use crate::timeline::TimeLineHistoryEntry;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Parcels the channel to the caller's thread holds.
pub const CHANNEL_PARCELS: usize = 4;
/// Rows are handed over in parcels of about this many bytes.
const PARCEL_BYTES: usize = 1 << 20;

/// How a batch of ranges is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchForm {
    /// `SELECT … FROM (VALUES (path, begin, len), …)`: one statement per batch.
    Values,
    /// `TRUNCATE` a temporary table, `COPY` the ranges into it, `SELECT` from it (gs_rewind's
    /// form), sent together.
    CopyTable,
    /// Three array parameters unnested side by side: one statement, a short query text.
    Arrays,
}

/// What the tasks hand to the caller's thread.
pub enum Delivery {
    /// Checked rows: each range, and its bytes (`None`: the file is gone).
    Chunks(Vec<(FetchRange, Option<Bytes>)>),
    /// WAL from the stream.
    Wal(WalChunk),
    /// A fetch session found the queue empty; here it is back.
    FetchDone(Box<OgConn>),
    /// The WAL stream stopped, having delivered everything before this position.
    WalStopped(Lsn),
    /// A task failed; the copy fails with this error.
    Failed(Error),
}

/// The batches of one fetch, taken by the sessions in order.
pub type Queue = Arc<Mutex<VecDeque<Vec<FetchRange>>>>;

fn texts() -> &'static crate::flavor::ProductTable {
    Product::OpenGauss.table()
}

fn gone() -> Error {
    Error::Usage("the copy was abandoned".into())
}

/// A string literal for any text (backslashes and quotes escaped, whatever
/// `standard_conforming_strings` says).
pub fn literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The fetch query of `batch` in the `VALUES` form.
pub fn values_query(batch: &[FetchRange]) -> String {
    let rows: Vec<String> = batch
        .iter()
        .map(|r| {
            format!(
                "({}::text, {}::int8, {}::int8)",
                literal(&r.path),
                r.offset,
                r.len
            )
        })
        .collect();
    format!(
        "SELECT path, begin, pg_read_binary_file(path, begin, len, true) \
         FROM (VALUES {}) AS x(path, begin, len)",
        rows.join(", ")
    )
}

/// A text-format array literal of `items`, each quoted.
pub fn array_literal<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let quoted: Vec<String> = items
        .map(|i| {
            format!(
                "\"{}\"",
                i.to_string().replace('\\', "\\\\").replace('"', "\\\"")
            )
        })
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// The temporary table of the `COPY` form, created once per session.
pub const CREATE_TABLE: &str =
    "CREATE TEMPORARY TABLE gsbuild_fetch(seq int4, path text, begin int8, len int8)";
const TRUNCATE: &str = "TRUNCATE gsbuild_fetch";
const COPY: &str = "COPY gsbuild_fetch FROM STDIN";
const SELECT: &str = "SELECT path, begin, pg_read_binary_file(path, begin, len, true) \
     FROM gsbuild_fetch ORDER BY seq";

/// COPY text-format lines for `batch` (tabs, newlines and backslashes escaped).
pub fn copy_lines(batch: &[FetchRange]) -> Vec<u8> {
    let mut out = String::new();
    for (i, r) in batch.iter().enumerate() {
        let path = r
            .path
            .replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n")
            .replace('\r', "\\r");
        out.push_str(&format!("{i}\t{path}\t{}\t{}\n", r.offset, r.len));
    }
    out.into_bytes()
}

/// Queues the statements of one batch on `conn` (not sent yet).
fn queue_batch(conn: &mut OgConn, form: FetchForm, batch: &[FetchRange]) {
    match form {
        FetchForm::Values => conn.send_binary_query(&values_query(batch), &[]),
        FetchForm::Arrays => {
            let paths = array_literal(batch.iter().map(|r| &r.path));
            let begins = array_literal(batch.iter().map(|r| r.offset));
            let lens = array_literal(batch.iter().map(|r| r.len));
            conn.send_binary_query(
                texts().fetch_ranges,
                &[
                    Some(paths.as_bytes()),
                    Some(begins.as_bytes()),
                    Some(lens.as_bytes()),
                ],
            )
        }
        FetchForm::CopyTable => {
            conn.queue_simple(TRUNCATE);
            conn.queue_copy_in(COPY, &copy_lines(batch));
            conn.send_binary_query(SELECT, &[]);
        }
    }
}

/// Reads the rows answering `batch`, checks each against its range, and sends them on.
async fn receive(
    conn: &mut OgConn,
    form: FetchForm,
    batch: Vec<FetchRange>,
    tx: &mpsc::Sender<Delivery>,
) -> Result<()> {
    let q = match form {
        FetchForm::Values => "SELECT … FROM (VALUES …)",
        FetchForm::Arrays => texts().fetch_ranges,
        FetchForm::CopyTable => {
            conn.read_simple(TRUNCATE).await?;
            conn.read_simple(COPY).await?;
            SELECT
        }
    };
    let expected = batch.len();
    let mut parcel = Vec::new();
    let mut bytes = 0usize;
    for (i, want) in batch.into_iter().enumerate() {
        let Some(row) = conn.next_row(q).await? else {
            return Err(size_mismatch(q, i, expected));
        };
        let data = check_row(q, &row, &want)?;
        bytes += data.as_ref().map_or(0, Bytes::len);
        parcel.push((want, data));
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
    match conn.next_row(q).await? {
        None => Ok(()),
        Some(_) => Err(size_mismatch(q, expected + 1, expected)),
    }
}

fn size_mismatch(q: &str, got: usize, expected: usize) -> Error {
    crate::ogwire::query_err(
        q,
        format!("unexpected result set size {got} (expected {expected})"),
    )
}

/// Checks that `row` (path, begin, data; binary) answers `want`; returns its data.
fn check_row(q: &str, row: &crate::ogwire::OgRow, want: &FetchRange) -> Result<Option<Bytes>> {
    let path = row
        .bytes(0)
        .map(|b| String::from_utf8_lossy(b).into_owned());
    let begin = row
        .bytes(1)
        .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
        .map(i64::from_be_bytes);
    if path.as_deref() != Some(want.path.as_str())
        || begin.and_then(|b| u64::try_from(b).ok()) != Some(want.offset)
    {
        return Err(crate::ogwire::query_err(
            q,
            format!(
                "received chunk for {path:?} at {begin:?}, expected \"{}\" at {}",
                want.path, want.offset
            ),
        ));
    }
    match row.bytes(2) {
        Some(d) if d.len() as u64 > want.len => Err(crate::ogwire::query_err(
            q,
            format!(
                "received {} bytes for \"{}\" at {}, asked for {}",
                d.len(),
                want.path,
                want.offset,
                want.len
            ),
        )),
        d => Ok(d.cloned()),
    }
}

/// Runs batches from `queue` on `conn` until it is empty, two in flight, then hands the
/// session back ([`Delivery::FetchDone`]) or reports the failure.
pub async fn fetch_session(
    mut conn: OgConn,
    form: FetchForm,
    queue: Queue,
    tx: mpsc::Sender<Delivery>,
) {
    let last = match fetch_loop(&mut conn, form, &queue, &tx).await {
        Ok(()) => Delivery::FetchDone(Box::new(conn)),
        Err(e) => Delivery::Failed(e),
    };
    let _ = tx.send(last).await;
}

async fn fetch_loop(
    conn: &mut OgConn,
    form: FetchForm,
    queue: &Queue,
    tx: &mpsc::Sender<Delivery>,
) -> Result<()> {
    let take = || queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
    let mut in_flight = VecDeque::new();
    while let Some(batch) = take() {
        queue_batch(conn, form, &batch);
        conn.flush().await?;
        in_flight.push_back(batch);
        if in_flight.len() < 2 {
            continue;
        }
        if let Some(b) = in_flight.pop_front() {
            receive(conn, form, b, tx).await?;
        }
    }
    while let Some(b) = in_flight.pop_front() {
        receive(conn, form, b, tx).await?;
    }
    Ok(())
}

/// Streams WAL from `start` until told where to stop through `stop_at`, then reports
/// [`Delivery::WalStopped`] (or [`Delivery::Failed`]); the session is ended with Terminate.
pub async fn stream_alongside(
    repl: OgConn,
    start: Lsn,
    tx: mpsc::Sender<Delivery>,
    stop_at: oneshot::Receiver<Lsn>,
) {
    let last = match stream_loop(repl, start, &tx, stop_at).await {
        Ok(reached) => Delivery::WalStopped(reached),
        Err(e) => Delivery::Failed(e),
    };
    let _ = tx.send(last).await;
}

async fn stream_loop(
    repl: OgConn,
    start: Lsn,
    tx: &mpsc::Sender<Delivery>,
    mut stop_at: oneshot::Receiver<Lsn>,
) -> Result<Lsn> {
    let mut stream: OgWalStream = repl.start_replication(start).await?;
    let mut end: Option<Lsn> = None;
    loop {
        if end.is_some_and(|e| stream.received() >= e) {
            break;
        }
        let next = match end {
            None => match stream.next_or(&mut stop_at).await? {
                Streamed::Interrupted(Ok(e)) => {
                    end = Some(e);
                    continue;
                }
                Streamed::Interrupted(Err(_)) => return Err(gone()),
                Streamed::Wal(chunk) => Some(chunk),
                Streamed::Ended => None,
            },
            Some(_) => stream.next().await?,
        };
        let Some(chunk) = next else {
            return Err(crate::ogwire::query_err(
                &format!("START_REPLICATION {start}"),
                "the server ended the WAL stream early".into(),
            ));
        };
        tx.send(Delivery::Wal(chunk)).await.map_err(|_| gone())?;
    }
    let reached = stream.received();
    stream.finish().await;
    Ok(reached)
}

/// The next delivery, received on the caller's thread (blocking).
pub fn next_delivery(rx: &mut mpsc::Receiver<Delivery>) -> Result<Delivery> {
    rx.blocking_recv().ok_or_else(|| Error::Source {
        query: texts().fetch_ranges.into(),
        message: "the copy's tasks ended without a result".into(),
    })
}

/// Hands one delivery to the sink (on the caller's thread).
pub fn handle(
    d: Delivery,
    sink: &mut dyn TransferSink,
    history: &[TimeLineHistoryEntry],
    stopped: &mut Option<Lsn>,
) -> Result<()> {
    match d {
        Delivery::Chunks(parcel) => {
            for (want, data) in parcel {
                match data {
                    None => sink.vanished(&want.path)?,
                    Some(d) => sink.write(&want.path, want.offset, &d)?,
                }
            }
        }
        Delivery::Wal(chunk) => sink.wal(chunk.start, &chunk.data, history)?,
        Delivery::WalStopped(r) => *stopped = Some(r),
        Delivery::Failed(e) => return Err(e),
        Delivery::FetchDone(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(path: &str, offset: u64, len: u64) -> FetchRange {
        FetchRange {
            path: path.into(),
            offset,
            len,
        }
    }

    #[test]
    fn batches_as_text() {
        let batch = [r("base/1/2", 0, 8192), r("it's\\odd\t\"x\"", 8192, 5)];
        assert_eq!(literal("it's\\"), "E'it\\'s\\\\'");
        assert_eq!(
            array_literal(batch.iter().map(|r| &r.path)),
            "{\"base/1/2\",\"it's\\\\odd\t\\\"x\\\"\"}"
        );
        assert_eq!(
            array_literal(batch.iter().map(|r| r.offset)),
            "{\"0\",\"8192\"}"
        );
        assert_eq!(
            String::from_utf8(copy_lines(&batch)).unwrap(),
            "0\tbase/1/2\t0\t8192\n1\tit's\\\\odd\\t\"x\"\t8192\t5\n"
        );
        let q = values_query(&batch);
        assert!(
            q.contains("(E'base/1/2'::text, 0::int8, 8192::int8), (E'it\\'s"),
            "{q}"
        );
    }
}
