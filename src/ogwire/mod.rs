//! A client for openGauss's protocol 3.51, the one its own tools speak (tokio-postgres cannot:
//! openGauss answers a 3.0 startup with its own authentication codes). Two kinds of session,
//! with the startup packets `gs_ctl build` and `gs_rewind` send:
//!
//! - replication ([`Kind::Replication`]): `database=replication replication=true
//!   options='-c remotetype=application ' application_name=gs_ctl`, no SSLRequest unless TLS is
//!   required; `IDENTIFY_VERSION`, `IDENTIFY_MODE`, `IDENTIFY_SYSTEM`, `IDENTIFY_CONSISTENCE`,
//!   `START_REPLICATION` ([`stream`]);
//! - SQL ([`Kind::Sql`]): `database=postgres application_name=gs_rewind`, SSLRequest first
//!   (per `sslmode`); simple queries with text results, extended queries with binary results
//!   ([`OgConn::send_binary_query`], rows read one by one), `COPY … FROM STDIN`; and an
//!   ordinary client's ([`Kind::Client`], `application_name=gsbuild`) for other roles.
//!
//! Authentication: trust, md5, sha256, md5_sha256 ([`auth`]). Every wait is bounded by the
//! caller's [`ClientOptions`]; errors name the server; decoding never panics.
//!
//! Phases 2, 3 and 6 (the openGauss source, [`crate::source::opengauss`]).

pub mod auth;
pub mod message;
mod replication;
pub mod stream;
#[cfg(test)]
mod tests;

pub use replication::{Consistence, IdentifyVersion, ServerMode};

use crate::conninfo::{Host, Password, SslMode, Target};
use crate::replication::transport::{self, Conn};
use crate::replication::ClientOptions;
use crate::{Error, Result};
use bytes::Bytes;
use message::Column;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Which session a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A replication session on the HA port, as `gs_ctl build` opens it.
    Replication,
    /// An SQL session, as `gs_rewind` opens it (openGauss admits its inner tools' names for
    /// the initial user only).
    Sql,
    /// An SQL session of an ordinary client (`application_name=gsbuild`), for other roles.
    Client,
}

/// Where a session goes: the server, and for replication sessions the local address to
/// bind first (openGauss checks that an HA client comes from its `replconninfo` peer; gs_ctl
/// binds the channel's `localhost` the same way, with port 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The server.
    pub target: Target,
    /// The local address replication sessions bind.
    pub bind: Option<IpAddr>,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.target.fmt(f)
    }
}

/// Who connects, and how.
#[derive(Clone, Debug)]
pub struct Login {
    /// The role (openGauss's HA port admits only its initial user).
    pub user: String,
    /// Its password; `None` for trust.
    pub password: Option<Password>,
    /// TLS policy (libpq's `sslmode`).
    pub sslmode: SslMode,
    /// The CA file, for the `verify-*` modes.
    pub sslrootcert: Option<PathBuf>,
}

/// The startup parameters of a session of `kind` for `user`, in the order openGauss's tools
/// send them.
pub fn startup_params(kind: Kind, user: &str) -> Vec<(&str, &str)> {
    match kind {
        Kind::Replication => vec![
            ("user", user),
            ("database", "replication"),
            ("replication", "true"),
            // gs_ctl's `-c remotetype=application %s` with an empty uuid: the space is sent.
            ("options", "-c remotetype=application "),
            // A build sender: any other name registers an ordinary (possibly synchronous)
            // standby with the server.
            ("application_name", "gs_ctl"),
        ],
        Kind::Sql => vec![
            ("user", user),
            ("database", "postgres"),
            ("application_name", "gs_rewind"),
        ],
        Kind::Client => vec![
            ("user", user),
            ("database", "postgres"),
            ("application_name", "gsbuild"),
        ],
    }
}

/// One row: the values as sent (text or binary per the query), `None` for NULL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OgRow {
    /// The result's columns.
    pub columns: Arc<[Column]>,
    /// The values.
    pub values: Vec<Option<Bytes>>,
}

impl OgRow {
    /// Value `i` as raw bytes; `None` when NULL or out of range.
    pub fn bytes(&self, i: usize) -> Option<&Bytes> {
        self.values.get(i)?.as_ref()
    }

    /// Value `i` as text; `None` when NULL, out of range or not UTF-8.
    pub fn text(&self, i: usize) -> Option<&str> {
        std::str::from_utf8(self.bytes(i)?).ok()
    }
}

/// A session with one openGauss server.
pub struct OgConn {
    conn: Conn,
    kind: Kind,
    /// ParameterStatus values the server sent at startup.
    pub parameters: HashMap<String, String>,
    /// BackendKeyData (SQL sessions only; a replication session gets none).
    pub backend_key: Option<(i32, i32)>,
    options: ClientOptions,
    /// Set while an extended query's results are being read ([`OgConn::next_row`]).
    columns: Arc<[Column]>,
}

impl std::fmt::Debug for OgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OgConn")
            .field("peer", &self.conn.peer)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl OgConn {
    /// Connects to `endpoint` as `login` and authenticates, within the connect timeout.
    pub async fn connect(
        endpoint: &Endpoint,
        login: &Login,
        kind: Kind,
        options: ClientOptions,
    ) -> Result<OgConn> {
        let limit = options.connect_timeout;
        match tokio::time::timeout(limit, Self::open(endpoint, login, kind, options)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Connect {
                peer: endpoint.to_string(),
                message: format!("timeout expired after {limit:?}"),
            }),
        }
    }

    async fn open(
        endpoint: &Endpoint,
        login: &Login,
        kind: Kind,
        options: ClientOptions,
    ) -> Result<OgConn> {
        let target = &endpoint.target;
        let (want, required) = transport::tls_policy(login.sslmode);
        // gs_rewind's SQL session sends an SSLRequest (and goes on in plaintext on `N` unless
        // TLS is required); gs_ctl's replication sessions send none.
        let want = match kind {
            Kind::Sql | Kind::Client => want,
            Kind::Replication => required,
        };
        let tls = match (want, &target.host) {
            (true, Host::Tcp(_)) => {
                let config = crate::replication::tls::client_config(
                    login.sslmode,
                    login.sslrootcert.as_deref(),
                )
                .map_err(|message| Error::Connect {
                    peer: target.to_string(),
                    message,
                })?;
                Some((Arc::new(config), required))
            }
            _ => None,
        };
        let bind = endpoint.bind.filter(|_| kind == Kind::Replication);
        let mut conn = transport::open_from(target, bind, tls, options.read_timeout).await?;
        message::startup(&mut conn.wbuf, &startup_params(kind, &login.user));
        conn.flush().await?;
        auth::authenticate(&mut conn, &login.user, login.password.as_ref()).await?;
        let mut c = OgConn {
            conn,
            kind,
            parameters: HashMap::new(),
            backend_key: None,
            options,
            columns: Arc::from(Vec::new()),
        };
        c.finish_startup().await?;
        Ok(c)
    }

    /// Reads ParameterStatus, BackendKeyData and notices until ReadyForQuery.
    async fn finish_startup(&mut self) -> Result<()> {
        loop {
            let frame = self.conn.recv().await?;
            let body = &frame.body;
            match frame.tag {
                b'S' => {
                    let (k, v) =
                        message::parameter_status(body).map_err(|e| self.conn.error(e.0))?;
                    self.parameters.insert(k, v);
                }
                b'K' => {
                    self.backend_key =
                        Some(message::backend_key(body).map_err(|e| self.conn.error(e.0))?)
                }
                b'N' => tracing::info!("server notice: {}", message::server_message(body)),
                b'E' => return Err(self.conn.error(message::server_message(body).to_string())),
                b'Z' => return Ok(()),
                t => {
                    return Err(self.conn.error(format!(
                        "unexpected message type '{}' during startup",
                        t as char
                    )))
                }
            }
        }
    }

    /// The server as errors name it (`host:port`).
    pub fn peer(&self) -> &str {
        &self.conn.peer
    }

    /// The session's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The time limits it runs with.
    pub fn options(&self) -> ClientOptions {
        self.options
    }

    /// Runs `sql` with the simple protocol; returns the rows of every statement (text values).
    /// A server error is [`Error::Source`] with the SQLSTATE, after ReadyForQuery (the session
    /// stays usable).
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<OgRow>> {
        message::query(&mut self.conn.wbuf, sql);
        self.conn.flush().await?;
        let mut rows = Vec::new();
        let mut columns: Arc<[Column]> = Arc::from(Vec::new());
        let mut failure = None;
        loop {
            let frame = self.conn.recv().await?;
            match frame.tag {
                b'T' => {
                    columns = Arc::from(
                        message::row_description(&frame.body).map_err(|e| query_err(sql, e.0))?,
                    )
                }
                b'D' => rows.push(OgRow {
                    columns: columns.clone(),
                    values: message::data_row(&frame.body).map_err(|e| query_err(sql, e.0))?,
                }),
                b'E' => failure = Some(message::server_message(&frame.body)),
                b'N' => tracing::info!("server notice: {}", message::server_message(&frame.body)),
                b'Z' => {
                    return match failure {
                        Some(m) => Err(query_err(sql, m.to_string())),
                        None => Ok(rows),
                    }
                }
                b'G' | b'H' | b'W' => {
                    return Err(query_err(sql, "unexpected COPY response".into()))
                }
                _ => {}
            }
        }
    }

    /// The first column of the single row `sql` returns, as text (`None` for NULL).
    pub async fn query_text(&mut self, sql: &str) -> Result<Option<String>> {
        let rows = self.simple_query(sql).await?;
        match rows.as_slice() {
            [row] => Ok(row.text(0).map(str::to_string)),
            _ => Err(query_err(
                sql,
                format!("expected 1 row, got {}", rows.len()),
            )),
        }
    }

    /// Queues an extended query with text parameters and binary results (sent with the next
    /// [`OgConn::flush`]). Several may be queued and sent before their rows are read: rows
    /// come back query by query, each query's ending with `None` from [`OgConn::next_row`].
    pub fn send_binary_query(&mut self, sql: &str, params: &[Option<&[u8]>]) {
        message::extended_query(&mut self.conn.wbuf, sql, params);
    }

    /// Sends what is queued, reading (and keeping) what the server sends meanwhile.
    pub async fn flush(&mut self) -> Result<()> {
        self.conn.flush_while_reading().await
    }

    /// The next row of the extended query being read, `None` after its last row (at its
    /// ReadyForQuery). The query's error is returned at its ReadyForQuery.
    pub async fn next_row(&mut self, sql: &str) -> Result<Option<OgRow>> {
        let mut failure = None;
        loop {
            let frame = self.conn.recv().await?;
            match frame.tag {
                b'1' | b'2' | b'n' | b'C' | b's' | b'I' => {}
                b'T' => {
                    let cols =
                        message::row_description(&frame.body).map_err(|e| query_err(sql, e.0))?;
                    self.columns = Arc::from(cols);
                }
                b'D' if failure.is_none() => {
                    return Ok(Some(OgRow {
                        columns: self.columns.clone(),
                        values: message::data_row(&frame.body).map_err(|e| query_err(sql, e.0))?,
                    }))
                }
                b'E' => failure = Some(message::server_message(&frame.body)),
                b'N' => tracing::info!("server notice: {}", message::server_message(&frame.body)),
                b'Z' => {
                    return match failure {
                        Some(m) => Err(query_err(sql, m.to_string())),
                        None => Ok(None),
                    }
                }
                b'D' => {}
                t => {
                    return Err(query_err(
                        sql,
                        format!("unexpected message type '{}'", t as char),
                    ))
                }
            }
        }
    }

    /// Runs one extended query and collects its rows (for small results).
    pub async fn binary_query(
        &mut self,
        sql: &str,
        params: &[Option<&[u8]>],
    ) -> Result<Vec<OgRow>> {
        self.send_binary_query(sql, params);
        self.flush().await?;
        let mut rows = Vec::new();
        while let Some(r) = self.next_row(sql).await? {
            rows.push(r);
        }
        Ok(rows)
    }

    /// `sql` (a `COPY … FROM STDIN`), then `data` (CopyData messages of at most 64 KiB) and
    /// CopyDone; returns the command tag (`COPY n`).
    pub async fn copy_in(&mut self, sql: &str, data: &[u8]) -> Result<String> {
        self.queue_copy_in(sql, data);
        self.flush().await?;
        self.read_simple(sql).await
    }

    /// Queues a simple query without sending it; its results are read by
    /// [`OgConn::read_simple`].
    pub fn queue_simple(&mut self, sql: &str) {
        message::query(&mut self.conn.wbuf, sql);
    }

    /// Queues `sql` (a `COPY … FROM STDIN`), `data` and CopyDone without waiting for the
    /// server's CopyInResponse (it reads them in order); read its results with
    /// [`OgConn::read_simple`]. Should the COPY fail, the server ignores the data.
    pub fn queue_copy_in(&mut self, sql: &str, data: &[u8]) {
        message::query(&mut self.conn.wbuf, sql);
        for piece in data.chunks(64 * 1024) {
            message::copy_data(&mut self.conn.wbuf, piece);
        }
        message::copy_done(&mut self.conn.wbuf);
    }

    /// Reads the results of a queued simple query (rows discarded) up to its ReadyForQuery;
    /// returns its last command tag, or its error.
    pub async fn read_simple(&mut self, sql: &str) -> Result<String> {
        let (mut tag, mut failure) = (String::new(), None);
        loop {
            let frame = self.conn.recv().await?;
            match frame.tag {
                b'C' => tag = message::command_tag(&frame.body).map_err(|e| query_err(sql, e.0))?,
                b'E' => failure = Some(message::server_message(&frame.body)),
                b'N' => tracing::info!("server notice: {}", message::server_message(&frame.body)),
                b'Z' => return failure.map_or(Ok(tag), |m| Err(query_err(sql, m.to_string()))),
                _ => {}
            }
        }
    }

    /// Ends the session: Terminate, then the socket is closed.
    pub async fn close(mut self) {
        message::terminate(&mut self.conn.wbuf);
        let _ = self.conn.flush().await;
    }
}

/// An [`Error::Source`] for `query` (its first line).
pub(crate) fn query_err(query: &str, message: String) -> Error {
    Error::Source {
        query: query.lines().next().unwrap_or(query).to_string(),
        message,
    }
}
