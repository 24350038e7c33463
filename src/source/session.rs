//! One SQL session on a source server, as every part of the server source uses it: the bound
//! on each wait ([`Limits`]), calls from synchronous code ([`Sql`]), opening a session
//! ([`open_session`]) and query errors ([`source_err`]). Phase 2 opens the sessions; phases 3–6
//! query through them.

use crate::error::{Error, Result};
use crate::flavor::Product;
use std::future::Future;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the server source asks a PostgreSQL server.
pub(super) fn texts() -> &'static crate::flavor::ProductTable {
    Product::PostgreSql.table()
}

/// The bound on every wait for the source, and the name errors give it.
#[derive(Clone, Debug)]
pub(super) struct Limits {
    /// The server (redacted connection string).
    pub peer: String,
    /// `--timeout`.
    pub read_timeout: Duration,
    /// How connection failures say where the connection went (libpq's wording, of the last
    /// server tried: the one whose error is reported).
    pub location: String,
    /// The bound on opening a session (`connect_timeout`, else `--connect-timeout`).
    pub connect_timeout: Duration,
    /// The password file the password came from, named when authentication fails.
    pub password_file: Option<std::path::PathBuf>,
}

impl Limits {
    /// Awaits `fut`, failing with [`Error::Timeout`] when it takes longer than the read
    /// timeout.
    pub async fn within<T>(&self, during: &str, fut: impl Future<Output = T>) -> Result<T> {
        tokio::time::timeout(self.read_timeout, fut)
            .await
            .map_err(|_| Error::Timeout {
                peer: self.peer.clone(),
                after: self.read_timeout,
                during: during.into(),
            })
    }
}

/// One SQL session's calls from synchronous code, each bounded by the read timeout.
pub(super) struct Sql<'a> {
    pub rt: &'a Runtime,
    pub client: &'a Client,
    pub limits: &'a Limits,
}

impl Sql<'_> {
    /// The single row `query` returns.
    pub fn query_one(
        &self,
        during: &str,
        query: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row> {
        self.rt
            .block_on(
                self.limits
                    .within(during, self.client.query_one(query, params)),
            )?
            .map_err(|e| source_err(query, e))
    }

    /// The row `query` returns, if any.
    pub fn query_opt(
        &self,
        during: &str,
        query: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        self.rt
            .block_on(
                self.limits
                    .within(during, self.client.query_opt(query, params)),
            )?
            .map_err(|e| source_err(query, e))
    }
}

/// An [`Error::Source`] for `query` (its first line), with the server's SQLSTATE and message.
pub(super) fn source_err(query: &str, e: tokio_postgres::Error) -> Error {
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    Error::Source {
        query: query.lines().next().unwrap_or(query).to_string(),
        message,
    }
}

/// Why a connection failed, in libpq's words: the server's message with its severity, else
/// the innermost cause (the operating system's error, the TLS alert or certificate problem),
/// never tokio-postgres's bare "error connecting to server".
fn connect_reason(e: &tokio_postgres::Error, password_file: Option<&std::path::Path>) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!(
            "{}:  {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let (Some(f), "28P01") = (password_file, db.code().code()) {
            text.push_str(&format!(
                "\npassword retrieved from file \"{}\"",
                f.display()
            ));
        }
        return text;
    }
    let mut causes: Vec<String> = Vec::new();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        let text = match cause.downcast_ref::<std::io::Error>() {
            Some(io) if io.kind() == std::io::ErrorKind::TimedOut => "timeout expired".into(),
            Some(io) => crate::error::os_reason(io),
            None => cause.to_string(),
        };
        if !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        next = cause.source();
    }
    let tls = e.to_string() == "error performing TLS handshake";
    match causes.join(": ").as_str() {
        "" => e.to_string(),
        "server does not support TLS" => "server does not support SSL, but SSL was required".into(),
        "password missing" => "fe_sendauth: no password supplied".into(),
        c if tls => format!("SSL connection could not be established: {c}"),
        c => c.to_string(),
    }
}

/// Opens one SQL session and sets it up (the product's session settings).
pub(super) async fn open_session(
    config: tokio_postgres::Config,
    connector: MakeRustlsConnect,
    limits: Limits,
) -> Result<Client> {
    // tokio-postgres bounds only the TCP connect by `connect_timeout`; a server that accepts
    // the connection and then says nothing would hold the startup handshake forever. As in
    // libpq, `connect_timeout` bounds the whole of it.
    let failed = |reason: String| Error::Connect {
        peer: limits.peer.clone(),
        message: format!("connection to server {} failed: {reason}", limits.location),
    };
    let (client, conn) = tokio::time::timeout(limits.connect_timeout, config.connect(connector))
        .await
        .map_err(|_| {
            failed(format!(
                "timeout expired (connect_timeout {} s)",
                limits.connect_timeout.as_secs_f64()
            ))
        })?
        .map_err(|e| failed(connect_reason(&e, limits.password_file.as_deref())))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("source connection ended: {e}");
        }
    });
    limits
        .within(
            "setting up the session",
            client.batch_execute(texts().session_setup),
        )
        .await?
        .map_err(|e| source_err(texts().session_setup, e))?;
    Ok(client)
}
