//! The byte stream under the replication client and the openGauss client ([`crate::ogwire`])
//! (TCP, unix socket, or TLS over TCP after an `SSLRequest`) and the framing of protocol
//! messages on it, every read and write bounded by a timeout so that an unresponsive server
//! produces an error naming it instead of a hang.

use crate::conninfo::{Host, SslMode, Target};
use crate::{Error, Result};
use bytes::{Bytes, BytesMut};
use postgres_protocol::message::{backend, frontend};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// Largest message accepted from the server. WAL arrives in pieces of at most 128 KiB and
/// history files are small; the bound keeps a corrupt length from allocating gigabytes.
const MAX_MESSAGE: usize = 64 << 20;

/// A connected socket, possibly encrypted.
pub(crate) enum Transport {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Transport::Tcp($s) => $e,
            Transport::Unix($s) => $e,
            Transport::Tls($s) => $e,
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// One message from the server: its type byte and body (without the length word).
pub(crate) struct Frame {
    pub tag: u8,
    pub body: Bytes,
    whole: Bytes,
}

impl Frame {
    /// Decodes a message type that `postgres-protocol` knows (everything but `W`).
    pub fn decode(&self) -> io::Result<backend::Message> {
        let mut buf = BytesMut::from(&self.whole[..]);
        backend::Message::parse(&mut buf)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "incomplete message"))
    }
}

/// A framed protocol connection to one server.
pub(crate) struct Conn {
    io: Transport,
    rbuf: BytesMut,
    /// Messages queued by the caller; [`Conn::flush`] sends them.
    pub wbuf: BytesMut,
    /// The server as errors name it (`host:port` or the socket path).
    pub peer: String,
    /// Bound on any single read or write.
    pub io_timeout: Duration,
}

impl Conn {
    /// An [`Error::Connect`] naming this connection's peer.
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::Connect {
            peer: self.peer.clone(),
            message: message.into(),
        }
    }

    /// Sends what is queued in `wbuf`.
    pub async fn flush(&mut self) -> Result<()> {
        let data = self.wbuf.split().freeze();
        let write = async {
            self.io.write_all(&data).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(self.io_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.error(format!("could not send data to server: {e}"))),
            Err(_) => Err(self.timeout(self.io_timeout, "sending data to it")),
        }
    }

    /// Sends what is queued in `wbuf` while keeping the read side moving: what the server
    /// sends meanwhile (the rows of an earlier query of a pipeline) is read into the buffer for
    /// later [`Conn::recv`] calls, so that neither side can block the other with full socket
    /// buffers. Bounded by the I/O timeout.
    pub async fn flush_while_reading(&mut self) -> Result<()> {
        let data = self.wbuf.split().freeze();
        let Conn { io, rbuf, .. } = self;
        let mut off = 0;
        let mut eof = false;
        let work = std::future::poll_fn(|cx| loop {
            while off < data.len() {
                match Pin::new(&mut *io).poll_write(cx, &data[off..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => off += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            if off >= data.len() {
                return Pin::new(&mut *io).poll_flush(cx);
            }
            if eof {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            let mut tmp = [0u8; 16 * 1024];
            let mut buf = ReadBuf::new(&mut tmp);
            match Pin::new(&mut *io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    eof = buf.filled().is_empty();
                    rbuf.extend_from_slice(buf.filled());
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        });
        match tokio::time::timeout(self.io_timeout, work).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.error(format!("could not send data to server: {e}"))),
            Err(_) => Err(self.timeout(self.io_timeout, "sending data to it")),
        }
    }

    /// The next message, waiting at most the I/O timeout.
    pub async fn recv(&mut self) -> Result<Frame> {
        let limit = self.io_timeout;
        self.recv_within(limit)
            .await?
            .ok_or_else(|| self.timeout(limit, "waiting for its answer"))
    }

    /// An [`Error::Timeout`]: this connection's peer was silent for `after`.
    pub fn timeout(&self, after: Duration, during: &str) -> Error {
        Error::Timeout {
            peer: self.peer.clone(),
            after,
            during: during.into(),
        }
    }

    /// The next message, or `None` when none arrived within `wait`. Cancel-safe: bytes read
    /// before a timeout stay in the buffer for the next call.
    pub async fn recv_within(&mut self, wait: Duration) -> Result<Option<Frame>> {
        match tokio::time::timeout(wait, self.read_frame()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    async fn read_frame(&mut self) -> Result<Frame> {
        self.fill(5).await?;
        let len = self
            .rbuf
            .get(1..5)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0) as usize;
        if !(4..=MAX_MESSAGE).contains(&len) {
            return Err(self.error(format!("invalid message length {len} from server")));
        }
        self.fill(len + 1).await?;
        let whole = self.rbuf.split_to(len + 1).freeze();
        let tag = whole.first().copied().unwrap_or(0);
        Ok(Frame {
            tag,
            body: whole.slice(5..),
            whole,
        })
    }

    async fn fill(&mut self, n: usize) -> Result<()> {
        while self.rbuf.len() < n {
            self.rbuf.reserve(n - self.rbuf.len());
            match self.io.read_buf(&mut self.rbuf).await {
                Ok(0) => {
                    return Err(self.error("server closed the connection unexpectedly"));
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(self.error(format!("could not receive data from server: {e}")))
                }
            }
        }
        Ok(())
    }
}

/// Opens the socket to `target` and negotiates TLS per `sslmode` (never on unix sockets, as
/// in libpq). `tls` is `None` for plaintext, else the client configuration to use; `required`
/// says whether a server that declines TLS is an error or is used in plaintext.
pub(crate) async fn open(
    target: &Target,
    tls: Option<(std::sync::Arc<rustls::ClientConfig>, bool)>,
    io_timeout: Duration,
) -> Result<Conn> {
    open_from(target, None, tls, io_timeout).await
}

/// [`open`], with the TCP socket bound to the local address `bind` first (port 0) when given:
/// openGauss checks that a replication client comes from its `replconninfo`'s peer address.
pub(crate) async fn open_from(
    target: &Target,
    bind: Option<std::net::IpAddr>,
    tls: Option<(std::sync::Arc<rustls::ClientConfig>, bool)>,
    io_timeout: Duration,
) -> Result<Conn> {
    let peer = target.to_string();
    let err = |m: String| Error::Connect {
        peer: peer.clone(),
        message: m,
    };
    let io = match &target.host {
        Host::Unix(_) => {
            let path = target.socket_path().unwrap_or_default();
            let s = UnixStream::connect(&path).await.map_err(|e| {
                err(format!(
                    "connection to server {} failed: {}",
                    target.libpq_location(None),
                    crate::error::os_reason(&e)
                ))
            })?;
            Transport::Unix(s)
        }
        Host::Tcp(name) => {
            let tcp = connect_tcp(name, target, bind).await.map_err(err)?;
            let _ = tcp.set_nodelay(true);
            match tls {
                Some((config, required)) => {
                    let negotiation = negotiate_tls(tcp, name, target, config, required);
                    tokio::time::timeout(io_timeout, negotiation)
                        .await
                        .map_err(|_| {
                            err(format!(
                                "no response to SSL negotiation within {io_timeout:?}"
                            ))
                        })?
                        .map_err(err)?
                }
                None => Transport::Tcp(tcp),
            }
        }
    };
    Ok(Conn {
        io,
        rbuf: BytesMut::with_capacity(8192),
        wbuf: BytesMut::new(),
        peer,
        io_timeout,
    })
}

async fn connect_tcp(
    name: &str,
    target: &Target,
    bind: Option<std::net::IpAddr>,
) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = match target.hostaddr {
        Some(a) => vec![SocketAddr::new(a, target.port)],
        None => tokio::net::lookup_host((name, target.port))
            .await
            .map_err(|e| {
                format!(
                    "could not translate host name \"{name}\" to address: {}",
                    crate::error::os_reason(&e)
                )
            })?
            .collect(),
    };
    let mut last = format!("could not translate host name \"{name}\" to address");
    for a in addrs {
        let attempt = match bind {
            None => TcpStream::connect(a).await,
            Some(local) => {
                let socket = if a.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                };
                match socket.and_then(|s| s.bind(SocketAddr::new(local, 0)).map(|()| s)) {
                    Ok(s) => s.connect(a).await,
                    Err(e) => {
                        last = format!("could not bind to {local}: {e}");
                        continue;
                    }
                }
            }
        };
        match attempt {
            Ok(s) => return Ok(s),
            Err(e) => {
                last = format!(
                    "connection to server {} failed: {}",
                    target.libpq_location(Some(a.ip())),
                    crate::error::os_reason(&e)
                )
            }
        }
    }
    Err(last)
}

/// Sends `SSLRequest` and upgrades on `S`; on `N` continues in plaintext unless `required`.
async fn negotiate_tls(
    mut tcp: TcpStream,
    name: &str,
    target: &Target,
    config: std::sync::Arc<rustls::ClientConfig>,
    required: bool,
) -> Result<Transport, String> {
    let mut req = BytesMut::new();
    frontend::ssl_request(&mut req);
    tcp.write_all(&req)
        .await
        .map_err(|e| format!("could not send SSL negotiation packet: {e}"))?;
    // Exactly one byte, read straight from the socket: anything the server sent after it would
    // otherwise be taken as if it had come through the encrypted channel (CVE-2021-23222).
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)
        .await
        .map_err(|e| format!("could not receive SSL negotiation response: {e}"))?;
    match answer {
        [b'S'] => {
            let host = match (name, target.hostaddr) {
                ("", Some(a)) => a.to_string(),
                _ => name.to_string(),
            };
            let server = super::tls::server_name(&host)?;
            let s = tokio_rustls::TlsConnector::from(config)
                .connect(server, tcp)
                .await
                .map_err(|e| format!("SSL connection could not be established: {e}"))?;
            Ok(Transport::Tls(Box::new(s)))
        }
        [b'N'] if required => Err("server does not support SSL, but SSL was required".into()),
        [b'N'] => Ok(Transport::Tcp(tcp)),
        [b] => Err(format!(
            "received invalid response to SSL negotiation: {}",
            b as char
        )),
    }
}

/// Whether `mode` asks for TLS on a first attempt, and whether it insists on it.
pub(crate) fn tls_policy(mode: SslMode) -> (bool, bool) {
    match mode {
        SslMode::Disable | SslMode::Allow => (false, false),
        SslMode::Prefer => (true, false),
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => (true, true),
    }
}
