//! Backup mode on an openGauss source for a full build: a non-exclusive backup with a fast
//! checkpoint (`pg_start_backup(label, true, false)`), held by a SQL session of its own for the
//! whole copy, and ended on that session (`pg_stop_backup(false)`). The server aborts a
//! non-exclusive backup whose session ends, so a build that dies leaves nothing behind on the
//! source, unlike an exclusive backup's `backup_label` in the source's data directory.
//!
//! Why this and not the walsender's `BASE_BACKUP` (what `gs_ctl build -b full` reads): the
//! files are then fetched over up to `-j` sessions with `pg_read_binary_file`, as the
//! incremental build fetches them, and the server checks the same thing on both paths. With
//! incremental checkpoints on, the server writes no full-page images, backup or not, and
//! `pg_read_binary_file`, like `BASE_BACKUP`'s file sender, verifies each page's checksum of a
//! row-store data file and reads the page again while it does not match (a page read while it
//! was written), up to 60 times a second apart. With incremental checkpoints off, backup mode
//! makes the server write full-page images, which replay applies over a torn page.

use super::{open_sql, OpenGaussOptions};
use crate::error::Result;
use crate::lsn::Lsn;
use crate::ogwire::{query_err, Endpoint, OgConn};

/// The session holding the backup, and the backup's start LSN.
pub(super) async fn start(
    endpoint: &Endpoint,
    options: &OpenGaussOptions,
    label: &str,
) -> Result<(OgConn, Lsn)> {
    let mut c = open_sql(endpoint, options).await?;
    let sql = format!(
        "SELECT pg_start_backup('{}', true, false)",
        label.replace('\'', "''")
    );
    let lsn = lsn_of(&mut c, &sql).await?;
    Ok((c, lsn))
}

/// Ends the backup `c` holds; its end LSN. The session is closed after it.
pub(super) async fn stop(mut c: OgConn) -> Result<Lsn> {
    let r = lsn_of(&mut c, "SELECT lsn FROM pg_stop_backup(false)").await;
    c.close().await;
    r
}

async fn lsn_of(c: &mut OgConn, sql: &str) -> Result<Lsn> {
    let text = c
        .query_text(sql)
        .await?
        .ok_or_else(|| query_err(sql, "no WAL location".into()))?;
    text.parse().map_err(|_| {
        query_err(
            sql,
            format!(
                "the server answered \"{}\", not a WAL location",
                text.escape_debug()
            ),
        )
    })
}
