//! Which openGauss source a rebuild of a target opens, and as whom: the target's own
//! `replconninfoN` channels (what `gs_ctl build` uses), or the one server a connection string
//! names (its `host` and `port`, the server's HA port). The role is `user`/`PGUSER` when given,
//! else the owner of the target directory (openGauss admits only its initial user on the HA
//! port); the password is `password`/`PGPASSWORD` when given.
//!
//! Phase 2 (finding the source).

use super::channels::{self, Channel};
use super::{OpenGaussOptions, OpenGaussSource};
use crate::conninfo::{Environment, Password, SslMode};
use crate::error::{Error, Result};
use crate::ogwire::Login;
use crate::pgconf::Settings;
use crate::replication::ClientOptions;
use std::path::Path;

/// What the opener needs besides the channels.
pub struct OpenRequest<'a> {
    /// The target data directory (its owner is the default role).
    pub target: &'a Path,
    /// Connection defaults (`PGUSER`, `PGPASSWORD`, `PGSSLMODE`).
    pub env: &'a Environment,
    /// Time limits.
    pub client: ClientOptions,
    /// The target's term, when known.
    pub local_term: Option<u32>,
    /// SQL sessions for fetching.
    pub jobs: usize,
}

/// Opens the first of the target's `replconninfoN` channels (in `settings`) that answers as a
/// source. A channel that cannot be parsed is named in the error when none answers.
pub fn from_channels(settings: &Settings, req: &OpenRequest<'_>) -> Result<OpenGaussSource> {
    let found = channels::from_settings(settings);
    if found.channels.is_empty() {
        let why = match found.problems.is_empty() {
            true => "no replconninfo1 … replconninfo8 is set".to_string(),
            false => found.problems.join("; "),
        };
        return Err(Error::Usage(format!(
            "no source given and \"{}\" names no usable HA channel ({why}): set replconninfo1 or use --source-server \"host=… port=HAPORT\"",
            req.target.display()
        )));
    }
    for p in &found.problems {
        tracing::warn!("{p}: channel skipped");
    }
    connect(&found.channels, req, None, None)
}

/// Opens the server `connstr` names: its first `host` and `port` (the HA port).
pub fn from_connstr(connstr: &str, req: &OpenRequest<'_>) -> Result<OpenGaussSource> {
    let pairs = crate::conninfo::parse(connstr).map_err(|e| Error::Usage(e.to_string()))?;
    let get = |k: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let host = get("host")
        .or_else(|| get("hostaddr"))
        .or_else(|| req.env.var("PGHOST"))
        .unwrap_or("127.0.0.1");
    let host = host.split(',').next().unwrap_or(host).to_string();
    let port_text = get("port").or_else(|| req.env.var("PGPORT")).ok_or_else(|| {
        Error::Usage(format!(
            "--source-server \"{connstr}\" has no port: an openGauss source is reached on its HA port (the remoteport of the target's replconninfo)"
        ))
    })?;
    let port = port_text
        .split(',')
        .next()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::Usage(format!("invalid port \"{port_text}\" in --source-server")))?;
    if host.starts_with('/') {
        return Err(Error::Usage(format!(
            "--source-server host \"{host}\" is a socket directory: an openGauss source is reached over TCP on its HA port"
        )));
    }
    let channel = Channel {
        setting: "--source-server".into(),
        local_host: None,
        local_port: None,
        remote_host: host,
        remote_port: port,
        cascade: false,
    };
    connect(
        &[channel],
        req,
        get("user").map(str::to_string),
        get("password").map(str::to_string),
    )
}

fn connect(
    channels: &[Channel],
    req: &OpenRequest<'_>,
    user: Option<String>,
    password: Option<String>,
) -> Result<OpenGaussSource> {
    let user = match user.or_else(|| req.env.var("PGUSER").map(str::to_string)) {
        Some(u) => u,
        None => channels::datadir_owner(req.target)
            .map_err(|e| Error::io("look up the owner of", req.target, e))?,
    };
    let password = password.or_else(|| req.env.var("PGPASSWORD").map(str::to_string));
    let sslmode = req
        .env
        .var("PGSSLMODE")
        .and_then(SslMode::parse)
        .unwrap_or(SslMode::Prefer);
    let options = OpenGaussOptions {
        login: Login {
            user,
            password: password.map(Password::new),
            sslmode,
            sslrootcert: req.env.var("PGSSLROOTCERT").map(Into::into),
        },
        client: req.client,
        local_term: req.local_term,
    };
    let mut source = OpenGaussSource::connect(channels, options)?;
    source.set_jobs(req.jobs);
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn req<'a>(target: &'a Path, env: &'a Environment) -> OpenRequest<'a> {
        OpenRequest {
            target,
            env,
            client: ClientOptions {
                connect_timeout: Duration::from_secs(2),
                read_timeout: Duration::from_secs(2),
                status_interval: Duration::from_secs(2),
            },
            local_term: None,
            jobs: 1,
        }
    }

    #[test]
    fn connstr_needs_a_tcp_ha_port() {
        let env = Environment::empty();
        let d = tempfile::tempdir().unwrap();
        let r = req(d.path(), &env);
        let no_port = from_connstr("host=127.0.0.1", &r)
            .err()
            .unwrap()
            .to_string();
        assert!(no_port.contains("HA port"), "{no_port}");
        let socket = from_connstr("host=/tmp port=5432", &r)
            .err()
            .unwrap()
            .to_string();
        assert!(socket.contains("socket directory"), "{socket}");
        let bad = from_connstr("host=h port=x", &r).err().unwrap().to_string();
        assert!(bad.contains("invalid port \"x\""), "{bad}");
    }

    #[test]
    fn no_channels_named() {
        let env = Environment::empty();
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("postgresql.conf"),
            "replconninfo1 = 'localhost=127.0.0.1 remotehost=127.0.0.1'\n",
        )
        .unwrap();
        let s = Settings::read_target(d.path(), None).unwrap();
        let e = from_channels(&s, &req(d.path(), &env))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("replconninfo1 has no remoteport"), "{e}");
    }
}
