//! libpq connection strings and URIs (`--source-server`, `primary_conninfo`), resolved the way
//! libpq resolves them: explicit value, then environment (`PGHOST`, `PGPORT`, …), then defaults
//! (default socket directory, port 5432, the OS user, dbname = user), and the password file.
//!
//! Used by the Connect phase for both sessions: [`ConnInfo::to_tokio_config`] for the SQL session
//! and [`crate::replication::ReplicationClient`] for the replication session;
//! [`ConnInfo::to_conninfo_string`] writes `primary_conninfo` for `-R`.
//!
//! Keywords: see [`SUPPORTED_KEYS`] and [`IGNORED_KEYS`]; any other keyword is an error naming it.
//! The password never appears in [`ConnInfo`]'s `Display`, `Debug`, [`ConnInfo::redacted`] or an
//! error message.

mod env;
mod parse;
mod pgpass;
mod target;

pub use env::Environment;
pub use target::{Host, Target};

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Keywords gsbuild implements.
pub const SUPPORTED_KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "connect_timeout",
    "application_name",
    "fallback_application_name",
    "options",
    "sslmode",
    "sslrootcert",
];

/// libpq keywords that are accepted, have no effect on gsbuild's own connections, and are kept
/// for [`ConnInfo::to_conninfo_string`] so the standby's walreceiver still gets them.
/// `target_session_attrs`: the source is tried host by host and any server is accepted;
/// `replication`: gsbuild sets it itself where needed; TCP keepalive and GSS settings: the
/// platform defaults apply and GSS encryption is never attempted. `channel_binding=require` and
/// `gssencmode=require` are refused instead, because ignoring them would weaken security.
pub const IGNORED_KEYS: &[&str] = &[
    "target_session_attrs",
    "replication",
    "client_encoding",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "load_balance_hosts",
    "channel_binding",
    "gssencmode",
    "gsslib",
    "gssdelegation",
    "krbsrvname",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "sslnegotiation",
    "sslcertmode",
    "requirepeer",
];

/// Port used when none is given.
pub const DEFAULT_PORT: u16 = 5432;

/// A connection string that cannot be used (bad syntax, unknown keyword, bad value). The message
/// never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid connection string: {0}")]
pub struct ConnInfoError(String);

impl ConnInfoError {
    fn new(message: String) -> ConnInfoError {
        ConnInfoError(message)
    }
}

impl From<ConnInfoError> for crate::Error {
    fn from(e: ConnInfoError) -> crate::Error {
        crate::Error::Usage(e.to_string())
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Plaintext first, TLS if the server insists.
    Allow,
    /// TLS if the server supports it, else plaintext (the default).
    #[default]
    Prefer,
    /// TLS, without checking the certificate (unless a root certificate is present).
    Require,
    /// TLS, certificate signed by `sslrootcert`.
    VerifyCa,
    /// TLS, certificate signed by `sslrootcert` and naming the host.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's spelling.
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// True for the modes that refuse a plaintext TCP connection.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

/// A password. Its `Debug` shows nothing; read it with [`Password::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// A password the caller has (for connections not described by a connection string).
    pub fn new(password: String) -> Password {
        Password(password)
    }

    /// The password itself, for the authentication exchange only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Where a password came from; an authentication failure says "password retrieved from file"
/// like libpq when it came from the password file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordOrigin {
    /// `password=` in the connection string or URI.
    ConnString,
    /// `PGPASSWORD`.
    Environment,
    /// The password file.
    File(PathBuf),
}

/// A resolved connection string: every fallback applied, ready to connect.
#[derive(Clone, PartialEq)]
pub struct ConnInfo {
    /// Servers to try, in order (at least one).
    pub targets: Vec<Target>,
    /// Role name.
    pub user: String,
    /// Database name.
    pub dbname: String,
    /// Whether `dbname` was given (explicitly or by `PGDATABASE`) rather than defaulted.
    pub dbname_given: bool,
    password: Option<(Password, PasswordOrigin)>,
    /// Password file to consult when no password is given.
    pub passfile: Option<PathBuf>,
    /// TLS policy.
    pub sslmode: SslMode,
    /// CA certificates (PEM) for verifying the server.
    pub sslrootcert: Option<PathBuf>,
    /// `application_name` (or `fallback_application_name`).
    pub application_name: Option<String>,
    /// `options` sent at startup (e.g. `-c statement_timeout=0`).
    pub options: Option<String>,
    /// Connect timeout per target; `None` when not given or 0 (callers apply their own bound).
    pub connect_timeout: Option<Duration>,
    /// The raw `host`, `hostaddr` and `port` lists as given, for `to_conninfo_string`.
    raw_lists: [Option<String>; 3],
    /// Ignored keywords and their values, kept for `to_conninfo_string`.
    pub ignored: Vec<(String, String)>,
}

/// Parses a connection string or URI into keyword/value pairs without resolving anything.
/// Never panics; unknown keywords are reported here.
pub fn parse(s: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let pairs = parse::parse_pairs(s)?;
    for (k, v) in &pairs {
        if !SUPPORTED_KEYS.contains(&k.as_str()) && !IGNORED_KEYS.contains(&k.as_str()) {
            return Err(ConnInfoError::new(format!(
                "invalid connection option \"{k}\""
            )));
        }
        if (k == "channel_binding" || k == "gssencmode") && v == "require" {
            return Err(ConnInfoError::new(format!(
                "{k}=require is not supported by gsbuild"
            )));
        }
    }
    Ok(pairs)
}

impl ConnInfo {
    /// Parses and resolves `s` against this process's environment.
    pub fn from_conninfo(s: &str) -> Result<ConnInfo, ConnInfoError> {
        ConnInfo::resolve(s, &Environment::from_process())
    }

    /// Parses and resolves `s` against `env`.
    pub fn resolve(s: &str, env: &Environment) -> Result<ConnInfo, ConnInfoError> {
        let pairs = parse(s)?;
        let mut explicit: BTreeMap<&str, &str> = BTreeMap::new();
        let mut ignored = Vec::new();
        for (k, v) in &pairs {
            if IGNORED_KEYS.contains(&k.as_str()) {
                ignored.retain(|(ik, _): &(String, String)| ik != k);
                ignored.push((k.clone(), v.clone()));
            } else {
                explicit.insert(k, v);
            }
        }
        let get = |key: &str| -> Option<&str> {
            explicit.get(key).copied().or_else(|| env.var_for_key(key))
        };
        let targets = resolve_targets(get("host"), get("hostaddr"), get("port"), env)?;
        let user = match get("user") {
            Some(u) if !u.is_empty() => u.to_string(),
            _ => env.os_user.clone().ok_or_else(|| {
                ConnInfoError::new("could not look up the local user name".into())
            })?,
        };
        let dbname = get("dbname").filter(|d| !d.is_empty());
        let password = match (explicit.get("password"), env.var_for_key("password")) {
            (Some(p), _) => Some((Password(p.to_string()), PasswordOrigin::ConnString)),
            (None, Some(p)) => Some((Password(p.to_string()), PasswordOrigin::Environment)),
            (None, None) => None,
        }
        .filter(|(p, _)| !p.0.is_empty());
        let passfile = get("passfile")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| env.home().map(|h| h.join(".pgpass")));
        let sslmode = match get("sslmode") {
            None | Some("") => SslMode::Prefer,
            Some(m) => SslMode::parse(m)
                .ok_or_else(|| ConnInfoError::new(format!("invalid sslmode value: \"{m}\"")))?,
        };
        let connect_timeout = match get("connect_timeout").map(str::trim) {
            None | Some("") => None,
            Some(t) => {
                let secs: i64 = t.parse().map_err(|_| {
                    ConnInfoError::new(format!(
                        "invalid integer value \"{t}\" for connection option \"connect_timeout\""
                    ))
                })?;
                // libpq: 0 or less waits forever; anything else is at least 2 s.
                (secs > 0).then(|| Duration::from_secs(secs.max(2).unsigned_abs()))
            }
        };
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty()).map(str::to_string);
        Ok(ConnInfo {
            targets,
            dbname_given: dbname.is_some(),
            dbname: dbname.map_or_else(|| user.clone(), str::to_string),
            user,
            password,
            passfile,
            sslmode,
            sslrootcert: nonempty("sslrootcert").map(PathBuf::from),
            application_name: nonempty("application_name")
                .or_else(|| nonempty("fallback_application_name")),
            options: nonempty("options"),
            connect_timeout,
            raw_lists: [nonempty("host"), nonempty("hostaddr"), nonempty("port")],
            ignored,
        })
    }

    /// The password for `target`: the given one, else the password file's entry for
    /// (host, port, dbname, user), where the default socket directory counts as `localhost`.
    pub fn password_for(
        &self,
        target: &Target,
        env: &Environment,
    ) -> Option<(Password, PasswordOrigin)> {
        if let Some(p) = &self.password {
            return Some(p.clone());
        }
        let file = self.passfile.as_ref()?;
        let host = match &target.host {
            Host::Unix(d) if *d == env.default_socket_dir => "localhost".to_string(),
            Host::Unix(d) => d.display().to_string(),
            Host::Tcp(h) if h.is_empty() => target.hostaddr.map(|a| a.to_string())?,
            Host::Tcp(h) => h.clone(),
        };
        let pw = pgpass::lookup(
            file,
            &host,
            &target.port.to_string(),
            &self.dbname,
            &self.user,
        )?;
        Some((Password(pw), PasswordOrigin::File(file.clone())))
    }

    /// The connection without secrets, for logs and error messages:
    /// `host=… port=… user=… dbname=… sslmode=…`.
    pub fn redacted(&self) -> String {
        let hosts: Vec<String> = self.targets.iter().map(Target::to_string).collect();
        let mut s = format!(
            "server={} user={} dbname={} sslmode={}",
            hosts.join(","),
            self.user,
            self.dbname,
            self.sslmode.as_str()
        );
        if self.password.is_some() {
            s.push_str(" password=***");
        }
        s
    }

    /// A `key='value'` string for `primary_conninfo` (`-R`): what was given, including the
    /// password when one was given (not one from the password file: the standby's walreceiver
    /// reads that file itself, so `passfile` is written instead). The result is a secret when
    /// a password was given; log [`ConnInfo::redacted`] instead.
    pub fn to_conninfo_string(&self) -> String {
        let mut kv: Vec<(&str, String)> = vec![("user", self.user.clone())];
        if let Some((p, _)) = &self.password {
            kv.push(("password", p.0.clone()));
        }
        if let Some(f) = &self.passfile {
            kv.push(("passfile", f.display().to_string()));
        }
        for (key, raw) in ["host", "hostaddr", "port"].iter().zip(&self.raw_lists) {
            if let Some(v) = raw {
                kv.push((key, v.clone()));
            }
        }
        if self.dbname_given {
            kv.push(("dbname", self.dbname.clone()));
        }
        kv.push(("sslmode", self.sslmode.as_str().into()));
        let optional = [
            (
                "sslrootcert",
                self.sslrootcert.as_ref().map(|p| p.display().to_string()),
            ),
            ("application_name", self.application_name.clone()),
            ("options", self.options.clone()),
            (
                "connect_timeout",
                self.connect_timeout.map(|d| d.as_secs().to_string()),
            ),
        ];
        kv.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
        kv.extend(self.ignored.iter().map(|(k, v)| (k.as_str(), v.clone())));
        kv.iter()
            .map(|(k, v)| format!("{k}={}", quote_value(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A `tokio_postgres::Config` for the SQL session: every target, user, dbname, options,
    /// application name, connect timeout, and the password for the first target. TLS modes map
    /// to tokio-postgres's three (`allow` → prefer, `verify-*` → require); certificate checks
    /// are up to the TLS connector the caller supplies.
    pub fn to_tokio_config(&self, env: &Environment) -> tokio_postgres::Config {
        use tokio_postgres::config::SslMode as T;
        let mut c = tokio_postgres::Config::new();
        for t in &self.targets {
            match &t.host {
                Host::Unix(dir) => c.host_path(dir),
                Host::Tcp(h) if h.is_empty() => {
                    c.host(t.hostaddr.map(|a| a.to_string()).unwrap_or_default())
                }
                Host::Tcp(h) => c.host(h),
            };
            c.port(t.port);
        }
        if self.targets.iter().all(|t| t.hostaddr.is_some()) {
            for t in &self.targets {
                c.hostaddr(t.hostaddr.unwrap_or(IpAddr::from([127, 0, 0, 1])));
            }
        }
        c.user(&self.user).dbname(&self.dbname);
        if let Some(first) = self.targets.first() {
            if let Some((p, _)) = self.password_for(first, env) {
                c.password(p.0.as_bytes());
            }
        }
        if let Some(a) = &self.application_name {
            c.application_name(a);
        }
        if let Some(o) = &self.options {
            c.options(o);
        }
        if let Some(t) = self.connect_timeout {
            c.connect_timeout(t);
        }
        c.ssl_mode(match self.sslmode {
            SslMode::Disable => T::Disable,
            SslMode::Allow | SslMode::Prefer => T::Prefer,
            _ => T::Require,
        });
        c
    }

    /// Whether a password was given (connection string or `PGPASSWORD`).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }
}

/// Quotes a value for a `key=value` string when it needs it.
fn quote_value(v: &str) -> String {
    if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        return v.to_string();
    }
    let mut out = String::from("'");
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Pairs the `host`, `hostaddr` and `port` lists into targets (libpq's `connectOptions2`).
fn resolve_targets(
    host: Option<&str>,
    hostaddr: Option<&str>,
    port: Option<&str>,
    env: &Environment,
) -> Result<Vec<Target>, ConnInfoError> {
    let split = |s: Option<&str>| -> Vec<String> {
        s.filter(|s| !s.is_empty())
            .map(|s| s.split(',').map(|p| p.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let (hosts, addrs, ports) = (split(host), split(hostaddr), split(port));
    let count = hosts.len().max(addrs.len()).max(1);
    if (!hosts.is_empty() && hosts.len() != count) || (!addrs.is_empty() && addrs.len() != count) {
        return Err(ConnInfoError::new(format!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            addrs.len()
        )));
    }
    if ports.len() > 1 && ports.len() != count {
        return Err(ConnInfoError::new(format!(
            "could not match {} port numbers to {count} hosts",
            ports.len()
        )));
    }
    (0..count)
        .map(|i| {
            let addr =
                match addrs.get(i).filter(|a| !a.is_empty()) {
                    Some(a) => Some(a.parse::<IpAddr>().map_err(|_| {
                        ConnInfoError::new(format!("invalid hostaddr value: \"{a}\""))
                    })?),
                    None => None,
                };
            let name = hosts.get(i).map(String::as_str).unwrap_or("");
            let port_text = ports
                .get(i)
                .or(ports.first())
                .map(String::as_str)
                .unwrap_or("");
            let port =
                match port_text {
                    "" => DEFAULT_PORT,
                    p => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                        ConnInfoError::new(format!("invalid port number: \"{p}\""))
                    })?,
                };
            let host = if name.starts_with('/') || name.starts_with('@') {
                Host::Unix(name.into())
            } else if name.is_empty() && addr.is_none() {
                Host::Unix(env.default_socket_dir.clone())
            } else {
                Host::Tcp(name.into())
            };
            Ok(Target {
                host,
                hostaddr: addr,
                port,
            })
        })
        .collect()
}

impl fmt::Display for ConnInfo {
    /// Same as [`ConnInfo::redacted`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnInfo")
            .field("targets", &self.targets)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|(_, o)| o))
            .field("passfile", &self.passfile)
            .field("sslmode", &self.sslmode)
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
