//! WAL over plain SQL, for a source role without the `REPLICATION` attribute (or a server whose
//! `pg_hba.conf` has no `replication` line), as HA tools' least-privilege rewind roles are: the
//! current position from `pg_current_wal_flush_lsn()` / `pg_last_wal_replay_lsn()`, the timeline
//! from the newest history file in `pg_wal` (a promoted server writes it before accepting
//! writes; `pg_control_checkpoint()` is stale until the next checkpoint and needs more
//! privileges), and segment contents with `pg_read_binary_file`.
//!
//! Phases 3 and 6.

use super::session::{texts, Sql};
use super::WalSink;
use crate::error::{Error, Result};
use crate::lsn::{Lsn, TimeLineId};
use crate::timeline::{segment_file_name, TimeLineHistoryEntry};

/// Bytes read per query.
const CHUNK: u64 = 1 << 20;

fn err(query: &str, e: tokio_postgres::Error) -> Error {
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    Error::Source {
        query: query.to_string(),
        message,
    }
}

/// The source's timeline and the position up to which its WAL is on disk.
pub(super) fn wal_position(sql: &Sql<'_>) -> Result<(TimeLineId, Lsn)> {
    let q = texts().wal_position;
    let row = sql.query_one("reading the WAL position", q, &[])?;
    let lsn: Option<String> = row.try_get(0).map_err(|e| err(q, e))?;
    let tli: Option<i32> = row.try_get(1).map_err(|e| err(q, e))?;
    let lsn = lsn
        .ok_or_else(|| Error::Source {
            query: q.into(),
            message: "the source reported no WAL position".into(),
        })?
        .parse::<Lsn>()
        .map_err(|e| Error::Source {
            query: q.into(),
            message: e.to_string(),
        })?;
    Ok((TimeLineId(tli.unwrap_or(1).max(1) as u32), lsn))
}

/// Reads WAL segment files along `history` from `start`, until `end` or the sink says stop.
pub(super) fn read_wal(
    sql: &Sql<'_>,
    seg_size: u32,
    start: Lsn,
    end: Lsn,
    history: &[TimeLineHistoryEntry],
    sink: &mut WalSink<'_>,
) -> Result<()> {
    let q = texts().read_file_range;
    let mut pos = start;
    while pos < end {
        let segno = pos.segment(seg_size);
        let path = format!(
            "{}/{}",
            texts().wal_dir,
            segment_file_name(history, segno, seg_size)
        );
        let off = pos.segment_offset(seg_size);
        let len = (u64::from(seg_size) - off)
            .min(CHUNK)
            .min(end.0.saturating_sub(pos.0).max(1));
        let row = sql.query_one("reading WAL", q, &[&path, &(off as i64), &(len as i64)])?;
        let data: Option<Vec<u8>> = row.try_get(0).map_err(|e| err(q, e))?;
        let Some(data) = data.filter(|d| !d.is_empty()) else {
            return Err(Error::WalRemoved {
                lsn: pos,
                message: format!("could not read WAL file \"{path}\" at offset {off}: it is not on the source any more"),
            });
        };
        let n = data.len() as u64;
        if !sink(pos, &data)? {
            return Ok(());
        }
        pos = Lsn(pos.0 + n);
    }
    Ok(())
}
