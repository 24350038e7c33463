//! A small client for PostgreSQL's streaming replication protocol, used by the Connect phase
//! (`IDENTIFY_SYSTEM`, `TIMELINE_HISTORY`) and by Execute (streaming the source's WAL into the
//! target's `pg_wal`). tokio-postgres cannot open a replication connection, so this speaks the
//! protocol itself on top of `postgres-protocol` (see DESIGN §3).
//!
//! The session is opened with `replication=database`, so plain SQL works on it too
//! ([`ReplicationClient::simple_query`]). Every wait is bounded ([`ClientOptions`]); errors name
//! the server; nothing read from the network is indexed without a bounds check.

mod auth;
mod stream;
pub(crate) mod tls;
pub(crate) mod transport;

pub use stream::{Streamed, TimelineEnd, WalChunk, WalStream};

use crate::conninfo::{ConnInfo, Environment, Host, SslMode, Target};
use crate::lsn::{Lsn, TimeLineId};
use crate::{Error, Result};
use bytes::Bytes;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{ErrorFields, Message};
use postgres_protocol::message::frontend;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use transport::Conn;

/// Time limits of a replication session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Bound on opening the socket, TLS and authentication, per server tried; the connection
    /// string's `connect_timeout` wins when given.
    pub connect_timeout: Duration,
    /// Bound on waiting for any answer from the server (a query's next message, or while
    /// streaming, a reply to our keepalive request).
    pub read_timeout: Duration,
    /// How often a standby status update is sent while streaming (`wal_receiver_status_interval`).
    pub status_interval: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            status_interval: Duration::from_secs(10),
        }
    }
}

/// What the server told us at startup.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    /// ParameterStatus values (`server_version`, `integer_datetimes`, …).
    pub parameters: HashMap<String, String>,
    /// BackendKeyData: process id and cancel key.
    pub backend_key: Option<(i32, i32)>,
}

/// One row of a simple-query result: text-format values, `None` for NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Option<Bytes>>,
}

impl Row {
    /// Column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True for a row without columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Value `i` as text; `None` when NULL, out of range or not UTF-8.
    pub fn get(&self, i: usize) -> Option<&str> {
        std::str::from_utf8(self.get_bytes(i)?).ok()
    }

    /// Value `i` as raw bytes; `None` when NULL or out of range.
    pub fn get_bytes(&self, i: usize) -> Option<&[u8]> {
        self.values.get(i)?.as_deref()
    }
}

/// The answer to `IDENTIFY_SYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifySystem {
    /// The cluster's system identifier (pg_control's `system_identifier`).
    pub systemid: u64,
    /// The server's current timeline.
    pub timeline: TimeLineId,
    /// Current WAL flush position.
    pub xlogpos: Lsn,
    /// The database of this session (always set for `replication=database`).
    pub dbname: Option<String>,
}

/// A replication-mode session with one server.
pub struct ReplicationClient {
    conn: Conn,
    server: ServerInfo,
    options: ClientOptions,
}

impl std::fmt::Debug for ReplicationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationClient")
            .field("peer", &self.conn.peer)
            .finish_non_exhaustive()
    }
}

impl ReplicationClient {
    /// Connects to the first server of `info` that accepts, with libpq's TLS policy per
    /// `sslmode`, the password from `info` or the password file (`env` supplies its rules).
    /// On failure the error of the last server tried is returned.
    pub async fn connect(
        info: &ConnInfo,
        env: &Environment,
        options: ClientOptions,
    ) -> Result<ReplicationClient> {
        let mut last = None;
        for target in &info.targets {
            match Self::connect_one(info, env, target, options).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::debug!("connection to {target} failed: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Connect {
            peer: info.redacted(),
            message: "no server to connect to".into(),
        }))
    }

    async fn connect_one(
        info: &ConnInfo,
        env: &Environment,
        target: &Target,
        options: ClientOptions,
    ) -> Result<ReplicationClient> {
        let limit = info.connect_timeout.unwrap_or(options.connect_timeout);
        let attempt = async {
            let (want_tls, required) = transport::tls_policy(info.sslmode);
            let is_tcp = matches!(target.host, Host::Tcp(_));
            let tls = match (want_tls && is_tcp, Self::tls_config(info, env)) {
                (true, Ok(c)) => Some((Arc::new(c), required)),
                (true, Err(message)) => {
                    return Err(Error::Connect {
                        peer: target.to_string(),
                        message,
                    })
                }
                (false, _) => None,
            };
            let password = info.password_for(target, env);
            let mut conn = transport::open(target, tls, options.read_timeout).await?;
            match auth::startup(&mut conn, info, password.clone()).await {
                // sslmode=allow: plaintext first, TLS only when the server refuses plaintext.
                Err(_) if info.sslmode == SslMode::Allow && is_tcp => {
                    let c = Self::tls_config(info, env).map_err(|message| Error::Connect {
                        peer: target.to_string(),
                        message,
                    })?;
                    conn = transport::open(target, Some((Arc::new(c), true)), options.read_timeout)
                        .await?;
                    let server = auth::startup(&mut conn, info, password).await?;
                    Ok((conn, server))
                }
                r => r.map(|server| (conn, server)),
            }
        };
        let failed = |reason: &str| {
            format!(
                "connection to server {} failed: {reason}",
                target.libpq_location(None)
            )
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(Ok((conn, server))) => Ok(ReplicationClient {
                conn,
                server,
                options,
            }),
            // Every failure says where, as libpq's do ("connection to server at … failed:").
            Ok(Err(Error::Connect { peer, message })) if !message.starts_with("connection to") => {
                Err(Error::Connect {
                    peer,
                    message: failed(&message),
                })
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Connect {
                peer: target.to_string(),
                message: failed(&format!(
                    "timeout expired (connect_timeout {} s)",
                    limit.as_secs_f64()
                )),
            }),
        }
    }

    fn tls_config(
        info: &ConnInfo,
        env: &Environment,
    ) -> std::result::Result<rustls::ClientConfig, String> {
        // libpq's default root certificate; with it present, `require` verifies like `verify-ca`.
        let default_root = env.home().map(|h| h.join(".postgresql/root.crt"));
        let root = info
            .sslrootcert
            .clone()
            .or(default_root.filter(|p| p.is_file()));
        tls::client_config(info.sslmode, root.as_deref())
    }

    /// The server as errors name it (`host:port` or the socket path).
    pub fn peer(&self) -> &str {
        &self.conn.peer
    }

    /// What the server reported at startup.
    pub fn server_info(&self) -> &ServerInfo {
        &self.server
    }

    /// The options this session runs with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Runs `sql` with the simple query protocol and returns the rows of every statement in it.
    /// A server error becomes [`Error::Source`] with the SQLSTATE in the message.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Row>> {
        frontend::query(sql, &mut self.conn.wbuf).map_err(|e| source_err(sql, e.to_string()))?;
        self.conn.flush().await?;
        let mut rows = Vec::new();
        collect_results(&mut self.conn, sql, &mut rows).await?;
        Ok(rows)
    }

    /// `IDENTIFY_SYSTEM`: system identifier, current timeline and WAL flush position.
    pub async fn identify_system(&mut self) -> Result<IdentifySystem> {
        let q = texts().identify_system;
        let rows = self.simple_query(q).await?;
        let row = single_row(q, &rows, 4)?;
        let field = |i: usize, what: &str| {
            row.get(i)
                .ok_or_else(|| source_err(q, format!("missing or invalid {what}")))
        };
        let systemid = field(0, "systemid")?;
        let timeline = field(1, "timeline")?;
        let xlogpos = field(2, "xlogpos")?;
        Ok(IdentifySystem {
            systemid: systemid
                .parse()
                .map_err(|_| source_err(q, format!("invalid systemid \"{systemid}\"")))?,
            timeline: TimeLineId(
                timeline
                    .parse()
                    .map_err(|_| source_err(q, format!("invalid timeline \"{timeline}\"")))?,
            ),
            xlogpos: xlogpos.parse().map_err(|e| source_err(q, format!("{e}")))?,
            dbname: row.get(3).map(str::to_string),
        })
    }

    /// `TIMELINE_HISTORY tli`: the history file's name and its exact content.
    pub async fn timeline_history(&mut self, tli: TimeLineId) -> Result<(String, Vec<u8>)> {
        let q = (texts().timeline_history)(tli);
        let rows = self.simple_query(&q).await?;
        let row = single_row(&q, &rows, 2)?;
        let name = row
            .get(0)
            .ok_or_else(|| source_err(&q, "missing filename".into()))?;
        let content = row
            .get_bytes(1)
            .ok_or_else(|| source_err(&q, "missing content".into()))?;
        Ok((name.to_string(), content.to_vec()))
    }

    /// `START_REPLICATION PHYSICAL start TIMELINE tli`: streams WAL from `start` (which the
    /// server rounds down to nothing: it must be a position the server still has). The session
    /// is busy until the stream ends or [`WalStream::stop`] is called.
    pub async fn start_replication(
        &mut self,
        start: Lsn,
        tli: TimeLineId,
    ) -> Result<WalStream<'_>> {
        let q = (texts().start_replication)(start, tli);
        frontend::query(&q, &mut self.conn.wbuf).map_err(|e| source_err(&q, e.to_string()))?;
        self.conn.flush().await?;
        let mut frame = self.conn.recv().await?;
        while frame.tag == b'N' {
            frame = self.conn.recv().await?;
        }
        match frame.tag {
            b'W' => Ok(WalStream::new(self, start, q)),
            // A historic timeline that ends exactly at `start`: no CopyBoth, only the
            // next-timeline result set (or an error).
            b'T' | b'D' | b'C' | b'E' | b'Z' | b'S' => {
                let mut rows = Vec::new();
                collect_results_from(&mut self.conn, &q, &mut rows, Some(frame))
                    .await
                    .map_err(|e| wal_removed(e, start))?;
                let end = stream::parse_timeline_end(&q, &rows)?;
                Ok(WalStream::ended(self, start, q, end))
            }
            t => Err(source_err(
                &q,
                format!("unexpected message type '{}'", t as char),
            )),
        }
    }
}

/// The commands this client sends: PostgreSQL's replication protocol.
fn texts() -> &'static crate::flavor::ProductTable {
    crate::flavor::Product::PostgreSql.table()
}

/// `e` as an [`Error::WalRemoved`] (at `lsn`) when the server said the WAL segment is gone
/// (SQLSTATE 58P01, undefined_file: "requested WAL segment … has already been removed").
pub(crate) fn wal_removed(e: Error, lsn: Lsn) -> Error {
    match e {
        Error::Source { query, message } if message.contains("(SQLSTATE 58P01)") => {
            Error::WalRemoved {
                lsn,
                message: format!("{query}: {message}"),
            }
        }
        e => e,
    }
}

/// An [`Error::Source`] for `query`.
fn source_err(query: &str, message: String) -> Error {
    Error::Source {
        query: query.to_string(),
        message,
    }
}

/// Formats an ErrorResponse/NoticeResponse like libpq: `SEVERITY:  message`, then detail and
/// hint, with the SQLSTATE.
pub(crate) fn server_error(mut fields: ErrorFields<'_>) -> String {
    let (mut severity, mut code, mut message) = (String::new(), String::new(), String::new());
    let mut extra = String::new();
    while let Ok(Some(f)) = fields.next() {
        let v = String::from_utf8_lossy(f.value_bytes());
        match f.type_() {
            b'S' => severity = v.into_owned(),
            b'C' => code = v.into_owned(),
            b'M' => message = v.into_owned(),
            b'D' => extra.push_str(&format!("\nDETAIL:  {v}")),
            b'H' => extra.push_str(&format!("\nHINT:  {v}")),
            _ => {}
        }
    }
    format!("{severity}:  {message} (SQLSTATE {code}){extra}")
}

fn single_row<'a>(query: &str, rows: &'a [Row], min_cols: usize) -> Result<&'a Row> {
    match rows {
        [row] if row.len() >= min_cols => Ok(row),
        _ => Err(source_err(
            query,
            format!(
                "expected 1 row with at least {min_cols} columns, got {} rows",
                rows.len()
            ),
        )),
    }
}

/// Reads a simple query's results up to ReadyForQuery, appending rows; a server error is
/// returned only after ReadyForQuery so that the session stays usable.
async fn collect_results(conn: &mut Conn, query: &str, rows: &mut Vec<Row>) -> Result<()> {
    collect_results_from(conn, query, rows, None).await
}

async fn collect_results_from(
    conn: &mut Conn,
    query: &str,
    rows: &mut Vec<Row>,
    mut first: Option<transport::Frame>,
) -> Result<()> {
    let mut columns: Arc<[String]> = Arc::from(Vec::new());
    let mut failure = None;
    loop {
        let frame = match first.take() {
            Some(f) => f,
            None => conn.recv().await?,
        };
        let bad =
            |e: std::io::Error| source_err(query, format!("invalid message from server: {e}"));
        let msg = match frame.tag {
            b'W' | b'G' | b'H' => {
                return Err(source_err(
                    query,
                    "COPY is not supported by simple_query".into(),
                ))
            }
            _ => frame.decode().map_err(bad)?,
        };
        match msg {
            Message::RowDescription(d) => {
                let names: Vec<String> = d
                    .fields()
                    .map(|f| Ok(f.name().to_string()))
                    .collect()
                    .map_err(bad)?;
                columns = Arc::from(names);
            }
            Message::DataRow(d) => {
                let buf = d.buffer();
                let values: Vec<Option<Bytes>> = d
                    .ranges()
                    .map(|r| match r {
                        None => Ok(None),
                        Some(r) => buf
                            .get(r)
                            .map(|v| Some(Bytes::copy_from_slice(v)))
                            .ok_or_else(|| {
                                std::io::Error::new(
                                    std::io::ErrorKind::InvalidData,
                                    "column value out of bounds",
                                )
                            }),
                    })
                    .collect()
                    .map_err(bad)?;
                rows.push(Row {
                    columns: columns.clone(),
                    values,
                });
            }
            Message::ErrorResponse(e) => failure = Some(server_error(e.fields())),
            Message::NoticeResponse(n) => {
                tracing::info!("server notice: {}", server_error(n.fields()))
            }
            Message::ReadyForQuery(_) => {
                return match failure {
                    Some(m) => Err(source_err(query, m)),
                    None => Ok(()),
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
