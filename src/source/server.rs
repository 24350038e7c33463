//! A live server as the source (`--source-server`): the file list in one recursive SQL query,
//! file contents with `pg_read_binary_file` in batches of ranges, and WAL over a replication
//! connection ([`crate::replication`]).
//!
//! The SQL session is read-only and has every timeout that could cut a long copy turned off;
//! the caller's own timeouts (connect, read) bound it instead.

use super::sqlwal;
use super::{ChunkSink, FetchRange, Source, SourceFile, WalSink};
use crate::conninfo::{ConnInfo, Environment};
use crate::error::{Error, Result};
use crate::filemap::FileKind;
use crate::lsn::{Lsn, TimeLineId};
use crate::replication::tls::client_config;
use crate::replication::{ClientOptions, ReplicationClient};
use crate::timeline::{history_file_name, TimeLineHistoryEntry};
use tokio::runtime::Runtime;
use tokio_postgres::Client;

/// Largest range fetched in one piece (pg_rewind's chunk size).
pub const MAX_CHUNK: u64 = 1 << 20;
/// Most chunks in one query.
pub const MAX_CHUNKS_PER_QUERY: usize = 1000;

/// Session settings: a rebuild must not be cut by the role's or database's timeouts, and must
/// never write.
const SESSION_SETUP: &str = "SET statement_timeout = 0; SET lock_timeout = 0; \
     SET idle_in_transaction_session_timeout = 0; SET default_transaction_read_only = on; \
     SET search_path = pg_catalog";

/// The whole data directory, recursively, in one round trip. `pg_stat_file(…, true)` gives
/// NULL for a file that vanished between the two calls; such rows are skipped. Tablespace
/// symlinks are recognised by their OID in `pg_tablespace`.
const LIST_QUERY: &str = "\
WITH RECURSIVE files (path, filename, size, isdir) AS (
    SELECT '' AS path, fn AS filename, st.size, st.isdir
      FROM pg_ls_dir('.', true, false) AS fn, pg_stat_file(fn, true) AS st
  UNION ALL
    SELECT parent.path || parent.filename || '/', fn, st.size, st.isdir
      FROM files AS parent,
           pg_ls_dir(parent.path || parent.filename, true, false) AS fn,
           pg_stat_file(parent.path || parent.filename || '/' || fn, true) AS st
     WHERE parent.isdir
)
SELECT path || filename, size, isdir, pg_tablespace_location(t.oid)
  FROM files LEFT JOIN pg_tablespace t ON files.path = 'pg_tblspc/' AND t.oid::text = files.filename
 WHERE size IS NOT NULL";

const FETCH_QUERY: &str = "SELECT path, begin, pg_read_binary_file(path, begin, len, true) \
     FROM unnest($1::text[], $2::int8[], $3::int4[]) AS x(path, begin, len)";

/// A running server reached over SQL, plus a replication session for WAL.
pub struct ServerSource {
    rt: Runtime,
    client: Client,
    info: ConnInfo,
    env: Environment,
    repl: Option<ReplicationClient>,
    options: ClientOptions,
    /// Set when the replication session was refused: WAL then comes over SQL.
    sql_wal: Option<String>,
}

fn source_err(query: &str, e: tokio_postgres::Error) -> Error {
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    Error::Source {
        query: query.lines().next().unwrap_or(query).to_string(),
        message,
    }
}

impl ServerSource {
    /// Connects the SQL session (TLS per `sslmode`) to the server `info` names. The
    /// replication session is opened when WAL is first needed.
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
        let peer = info.redacted();
        let mut config = info.to_tokio_config(&env);
        if info.connect_timeout.is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let tls = client_config(info.sslmode, info.sslrootcert.as_deref()).map_err(|message| {
            Error::Connect {
                peer: peer.clone(),
                message,
            }
        })?;
        let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
        let client = rt.block_on(async {
            let (client, conn) = config
                .connect(connector)
                .await
                .map_err(|e| Error::Connect {
                    peer: peer.clone(),
                    message: match e.as_db_error() {
                        Some(db) => format!("{}: {}", db.code().code(), db.message()),
                        None => e.to_string(),
                    },
                })?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("source connection ended: {e}");
                }
            });
            client
                .batch_execute(SESSION_SETUP)
                .await
                .map_err(|e| source_err(SESSION_SETUP, e))?;
            Ok::<_, Error>(client)
        })?;
        Ok(ServerSource {
            rt,
            client,
            info,
            env,
            repl: None,
            options,
            sql_wal: None,
        })
    }

    /// The connection settings (for `primary_conninfo` with `-R`).
    pub fn conninfo(&self) -> &ConnInfo {
        &self.info
    }

    /// Whether WAL must come over SQL: true once the server refused a replication session
    /// (a role without `REPLICATION`, or no `replication` line in `pg_hba.conf`), which is
    /// tried once.
    fn use_sql_wal(&mut self) -> bool {
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

    fn wal_segment_size(&mut self) -> Result<u32> {
        const Q: &str = "SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'";
        let row = self
            .rt
            .block_on(self.client.query_one(Q, &[]))
            .map_err(|e| source_err(Q, e))?;
        let size: i64 = row.try_get(0).map_err(|e| source_err(Q, e))?;
        u32::try_from(size)
            .ok()
            .filter(|s| crate::lsn::is_valid_seg_size(*s))
            .ok_or_else(|| Error::Source {
                query: Q.into(),
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
        self.rt.block_on(async {
            let rows = self
                .client
                .simple_query(sql)
                .await
                .map_err(|e| source_err(sql, e))?;
            for m in rows {
                if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                    return Ok(r.get(0).map(str::to_string));
                }
            }
            Ok(None)
        })
    }

    async fn fetch_batch(&self, batch: &[FetchRange], sink: &mut dyn ChunkSink) -> Result<()> {
        let paths: Vec<&str> = batch.iter().map(|r| r.path.as_str()).collect();
        let begins: Vec<i64> = batch.iter().map(|r| r.offset as i64).collect();
        let lens: Vec<i32> = batch.iter().map(|r| r.len as i32).collect();
        let rows = self
            .client
            .query(FETCH_QUERY, &[&paths, &begins, &lens])
            .await
            .map_err(|e| source_err(FETCH_QUERY, e))?;
        if rows.len() != batch.len() {
            return Err(Error::Source {
                query: FETCH_QUERY.into(),
                message: format!(
                    "unexpected result set size {} (expected {})",
                    rows.len(),
                    batch.len()
                ),
            });
        }
        for (row, want) in rows.iter().zip(batch) {
            let path: &str = row.try_get(0).map_err(|e| source_err(FETCH_QUERY, e))?;
            let begin: i64 = row.try_get(1).map_err(|e| source_err(FETCH_QUERY, e))?;
            if path != want.path || begin as u64 != want.offset {
                return Err(Error::Source {
                    query: FETCH_QUERY.into(),
                    message: format!(
                        "received chunk for \"{path}\" at {begin}, expected \"{}\" at {}",
                        want.path, want.offset
                    ),
                });
            }
            match row
                .try_get::<_, Option<&[u8]>>(2)
                .map_err(|e| source_err(FETCH_QUERY, e))?
            {
                None => sink.vanished(&want.path)?,
                Some(data) if data.len() as u64 > want.len => {
                    return Err(Error::Source {
                        query: FETCH_QUERY.into(),
                        message: format!(
                            "received {} bytes for \"{path}\" at {begin}, asked for {}",
                            data.len(),
                            want.len
                        ),
                    });
                }
                Some(data) => sink.write(&want.path, want.offset, data)?,
            }
        }
        Ok(())
    }
}

/// Splits ranges into chunks of at most [`MAX_CHUNK`] bytes.
pub fn split_chunks(ranges: &[FetchRange]) -> Vec<FetchRange> {
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let mut off = r.offset;
        let end = r.offset + r.len;
        while off < end {
            let len = (end - off).min(MAX_CHUNK);
            out.push(FetchRange {
                path: r.path.clone(),
                offset: off,
                len,
            });
            off += len;
        }
    }
    out
}

impl Source for ServerSource {
    fn describe(&self) -> String {
        self.info.redacted()
    }

    fn list_files(&mut self) -> Result<Vec<SourceFile>> {
        let rows = self
            .rt
            .block_on(self.client.query(LIST_QUERY, &[]))
            .map_err(|e| source_err(LIST_QUERY, e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let get_err = |e| source_err(LIST_QUERY, e);
            let path: String = row.try_get(0).map_err(get_err)?;
            let size: i64 = row.try_get(1).map_err(get_err)?;
            let isdir: bool = row.try_get(2).map_err(get_err)?;
            let link: Option<String> = row.try_get(3).map_err(get_err)?;
            let kind = match link {
                Some(target) if !target.is_empty() => FileKind::Symlink { target },
                _ if isdir => FileKind::Dir,
                _ => FileKind::File {
                    size: size.max(0) as u64,
                },
            };
            out.push(SourceFile { path, kind });
        }
        Ok(out)
    }

    fn fetch_file(&mut self, path: &str) -> Result<Vec<u8>> {
        const Q: &str = "SELECT pg_read_binary_file($1)";
        let row = self
            .rt
            .block_on(self.client.query_one(Q, &[&path]))
            .map_err(|e| source_err(Q, e))?;
        row.try_get::<_, Vec<u8>>(0).map_err(|e| source_err(Q, e))
    }

    fn fetch_ranges(&mut self, ranges: &[FetchRange], sink: &mut dyn ChunkSink) -> Result<()> {
        let chunks = split_chunks(ranges);
        for batch in chunks.chunks(MAX_CHUNKS_PER_QUERY) {
            self.rt.block_on(self.fetch_batch(batch, sink))?;
        }
        Ok(())
    }

    fn setting(&mut self, name: &str) -> Result<Option<String>> {
        const Q: &str = "SELECT current_setting($1, true)";
        let row = match self.rt.block_on(self.client.query_one(Q, &[&name])) {
            Ok(row) => row,
            // Some settings (data_directory) need pg_read_all_settings; a least-privilege
            // role cannot see them, which only skips the check that needs them.
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(source_err(Q, e)),
        };
        row.try_get::<_, Option<String>>(0)
            .map_err(|e| source_err(Q, e))
    }

    fn wal_position(&mut self) -> Result<(TimeLineId, Lsn)> {
        if self.use_sql_wal() {
            return sqlwal::wal_position(&self.rt, &self.client);
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
                .fetch_file(&format!("pg_wal/{}", history_file_name(tli)))
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
            return sqlwal::read_wal(&self.rt, &self.client, seg_size, start, end, history, sink);
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
                    query: format!("START_REPLICATION {start} TIMELINE {}", entry.tli),
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
                        query: format!("START_REPLICATION {pos} TIMELINE {}", entry.tli),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks() {
        let r = |p: &str, o, l| FetchRange {
            path: p.into(),
            offset: o,
            len: l,
        };
        let got = split_chunks(&[r("a", 10, 3 * MAX_CHUNK + 5), r("b", 0, 0), r("c", 0, 1)]);
        assert_eq!(got.len(), 5);
        assert_eq!(got[3], r("a", 10 + 3 * MAX_CHUNK, 5));
        assert_eq!(got[4], r("c", 0, 1));
    }
}
