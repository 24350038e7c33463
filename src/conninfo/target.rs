//! One server of a connection string: where it is ([`Host`], [`Target`]) and how errors name
//! it (`host:port` or the socket path; libpq's "on socket …" / "at …, port …").

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// Where a server is: a host name or IP address, or a unix socket directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// TCP to a name or address.
    Tcp(String),
    /// A unix socket in this directory (the socket is `.s.PGSQL.<port>`).
    Unix(PathBuf),
}

/// One server to try, in list order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Where the server is.
    pub host: Host,
    /// `hostaddr`: the address to connect to instead of resolving `host`.
    pub hostaddr: Option<IpAddr>,
    /// TCP port, or the number in the socket's name.
    pub port: u16,
}

impl Target {
    /// The socket file for a unix-socket target.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match &self.host {
            Host::Unix(dir) => Some(dir.join(format!(".s.PGSQL.{}", self.port))),
            Host::Tcp(_) => None,
        }
    }

    /// Where a connection went, as libpq's messages say it: `on socket "/run/.s.PGSQL.5432"`,
    /// `at "db1", port 5432`, or `at "db1" (10.0.0.5), port 5432` once the address is known.
    pub fn libpq_location(&self, addr: Option<IpAddr>) -> String {
        let name = match (&self.host, self.hostaddr) {
            (Host::Unix(_), _) => {
                let path = self.socket_path().unwrap_or_default();
                return format!("on socket \"{}\"", path.display());
            }
            (Host::Tcp(h), Some(a)) if h.is_empty() => a.to_string(),
            (Host::Tcp(h), _) => h.clone(),
        };
        match addr.or(self.hostaddr) {
            Some(a) if a.to_string() != name => {
                format!("at \"{name}\" ({a}), port {}", self.port)
            }
            _ => format!("at \"{name}\", port {}", self.port),
        }
    }
}

impl fmt::Display for Target {
    /// `host:port`, `[v6]:port`, or the socket file's path: what errors name as the peer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.hostaddr) {
            (Host::Unix(_), _) => write!(f, "{}", self.socket_path().unwrap_or_default().display()),
            (Host::Tcp(h), _) if h.contains(':') => write!(f, "[{h}]:{}", self.port),
            (Host::Tcp(h), Some(a)) if h.is_empty() => write!(f, "{a}:{}", self.port),
            (Host::Tcp(h), _) => write!(f, "{h}:{}", self.port),
        }
    }
}
