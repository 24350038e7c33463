//! Backup mode on a source server for a full build: `pg_backup_start` (`pg_start_backup` before
//! PostgreSQL 15) with a fast checkpoint, non-exclusive, on the session that stays open for the
//! whole copy, and `pg_backup_stop` (`pg_stop_backup`) on the same session once it is done.
//! While the backup runs the server writes full-page images whatever `full_page_writes` says,
//! so a page copied while it is written is repaired by replay.

use super::session::{source_err, Sql};
use crate::error::{Error, Result};
use crate::lsn::Lsn;
use tokio_postgres::types::ToSql;

/// The first major with `pg_backup_start`/`pg_backup_stop`.
const RENAMED_IN: i32 = 150000;

/// Starts a non-exclusive backup labelled `label` with a fast checkpoint; its start LSN.
pub(super) fn start(sql: &Sql<'_>, label: &str) -> Result<Lsn> {
    let query = match version_num(sql)? >= RENAMED_IN {
        true => "SELECT pg_catalog.pg_backup_start($1, true)::text",
        false => "SELECT pg_catalog.pg_start_backup($1, true, false)::text",
    };
    lsn_of(
        sql,
        "starting the backup (fast checkpoint)",
        query,
        &[&label],
    )
}

/// Ends the backup [`start`] began on this session; the backup's end LSN.
pub(super) fn stop(sql: &Sql<'_>) -> Result<Lsn> {
    let query = match version_num(sql)? >= RENAMED_IN {
        true => "SELECT lsn::text FROM pg_catalog.pg_backup_stop(false)",
        false => "SELECT lsn::text FROM pg_catalog.pg_stop_backup(false, false)",
    };
    lsn_of(sql, "ending the backup", query, &[])
}

fn version_num(sql: &Sql<'_>) -> Result<i32> {
    let query = "SELECT pg_catalog.current_setting('server_version_num')::int4";
    sql.query_one("reading the server version", query, &[])?
        .try_get::<_, i32>(0)
        .map_err(|e| source_err(query, e))
}

fn lsn_of(sql: &Sql<'_>, during: &str, query: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Lsn> {
    let text: String = sql
        .query_one(during, query, params)?
        .try_get(0)
        .map_err(|e| source_err(query, e))?;
    text.parse().map_err(|_| Error::Source {
        query: query.into(),
        message: format!(
            "the server answered \"{}\", not a WAL location",
            text.escape_debug()
        ),
    })
}
