//! The startup packet and authentication: trust, cleartext password, md5 and SCRAM-SHA-256
//! (without channel binding, so the server's `SCRAM-SHA-256-PLUS` offer is declined as libpq
//! does when it cannot bind). Then ParameterStatus and BackendKeyData until ReadyForQuery.
//!
//! Phase 2.

use super::transport::Conn;
use super::{server_error, ServerInfo};
use crate::conninfo::{ConnInfo, Password, PasswordOrigin};
use crate::Result;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

/// Sends the startup packet for a `replication=database` session and authenticates.
pub(super) async fn startup(
    conn: &mut Conn,
    info: &ConnInfo,
    password: Option<(Password, PasswordOrigin)>,
) -> Result<ServerInfo> {
    let mut params: Vec<(&str, &str)> = vec![
        ("user", &info.user),
        ("database", &info.dbname),
        ("replication", "database"),
        ("client_encoding", "UTF8"),
    ];
    if let Some(a) = &info.application_name {
        params.push(("application_name", a));
    }
    if let Some(o) = &info.options {
        params.push(("options", o));
    }
    frontend::startup_message(params.iter().copied(), &mut conn.wbuf)
        .map_err(|e| conn.error(format!("could not build startup packet: {e}")))?;
    conn.flush().await?;
    authenticate(conn, info, password.as_ref()).await?;
    finish_startup(conn).await
}

/// Answers authentication requests until AuthenticationOk.
async fn authenticate(
    conn: &mut Conn,
    info: &ConnInfo,
    password: Option<&(Password, PasswordOrigin)>,
) -> Result<()> {
    let need_password = |conn: &Conn| match password {
        Some((p, _)) => Ok(p.expose().as_bytes().to_vec()),
        None => Err(conn.error("fe_sendauth: no password supplied")),
    };
    let mut scram: Option<ScramSha256> = None;
    loop {
        let frame = conn.recv().await?;
        let msg = frame
            .decode()
            .map_err(|e| conn.error(format!("invalid message during authentication: {e}")))?;
        match msg {
            Message::AuthenticationOk => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(&need_password(conn)?, &mut conn.wbuf)
                    .map_err(|e| conn.error(e.to_string()))?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hash = md5_hash(info.user.as_bytes(), &need_password(conn)?, body.salt());
                frontend::password_message(hash.as_bytes(), &mut conn.wbuf)
                    .map_err(|e| conn.error(e.to_string()))?;
            }
            Message::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut offered = false;
                while let Some(m) = mechanisms.next().map_err(|e| conn.error(e.to_string()))? {
                    offered |= m == SCRAM_SHA_256;
                }
                if !offered {
                    return Err(conn.error(
                        "none of the server's SASL authentication mechanisms are supported",
                    ));
                }
                let s = ScramSha256::new(&need_password(conn)?, ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut conn.wbuf)
                    .map_err(|e| conn.error(e.to_string()))?;
                scram = Some(s);
            }
            Message::AuthenticationSaslContinue(body) => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| conn.error("unexpected SASL continue message"))?;
                s.update(body.data())
                    .map_err(|e| conn.error(format!("SCRAM exchange failed: {e}")))?;
                frontend::sasl_response(s.message(), &mut conn.wbuf)
                    .map_err(|e| conn.error(e.to_string()))?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| conn.error("unexpected SASL final message"))?;
                // Proves the server knew the password too; a forged final message fails here.
                s.finish(body.data())
                    .map_err(|e| conn.error(format!("SCRAM server signature invalid: {e}")))?;
                continue;
            }
            Message::ErrorResponse(body) => {
                let mut message = server_error(body.fields());
                if let Some((_, PasswordOrigin::File(f))) = password {
                    message.push_str(&format!(
                        "\npassword retrieved from file \"{}\"",
                        f.display()
                    ));
                }
                return Err(conn.error(message));
            }
            Message::AuthenticationKerberosV5
            | Message::AuthenticationScmCredential
            | Message::AuthenticationGss
            | Message::AuthenticationGssContinue(_)
            | Message::AuthenticationSspi => {
                return Err(conn.error("authentication method requested by the server is not supported (use trust, password, md5 or scram-sha-256)"));
            }
            _ => {
                return Err(conn.error(format!(
                    "unexpected message type '{}' during authentication",
                    frame.tag as char
                )))
            }
        }
        conn.flush().await?;
    }
}

/// Reads ParameterStatus/BackendKeyData/notices until ReadyForQuery.
async fn finish_startup(conn: &mut Conn) -> Result<ServerInfo> {
    let mut info = ServerInfo::default();
    loop {
        let frame = conn.recv().await?;
        match frame
            .decode()
            .map_err(|e| conn.error(format!("invalid message during startup: {e}")))?
        {
            Message::ParameterStatus(p) => {
                if let (Ok(k), Ok(v)) = (p.name(), p.value()) {
                    info.parameters.insert(k.to_string(), v.to_string());
                }
            }
            Message::BackendKeyData(k) => info.backend_key = Some((k.process_id(), k.secret_key())),
            Message::NoticeResponse(n) => {
                tracing::info!("server notice: {}", server_error(n.fields()))
            }
            Message::ErrorResponse(e) => return Err(conn.error(server_error(e.fields()))),
            Message::ReadyForQuery(_) => return Ok(info),
            _ => {
                return Err(conn.error(format!(
                    "unexpected message type '{}' during startup",
                    frame.tag as char
                )))
            }
        }
    }
}
