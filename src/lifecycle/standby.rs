//! The started standby: waits until it streams from its primary and says how far behind it
//! is. PostgreSQL: asked over its local socket (`pg_stat_wal_receiver`, the replay position);
//! openGauss: `gs_ctl query` (db_state, receiver and sender positions).

use super::ServerCtl;
use crate::cluster::TargetCluster;
use crate::error::{Error, Result};
use crate::flavor::{Flavor, Product};
use crate::lsn::Lsn;
use crate::reporter::Reporter;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the started standby is asked whether it streams (it was 500 ms, up to half a
/// second added to every `gsbuild -D` run; issue 14).
const POLL: Duration = Duration::from_millis(100);

/// Where a started standby stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StandbyState {
    /// Whether it streams from its primary.
    pub streaming: bool,
    /// The position it replayed to.
    pub replayed: Option<Lsn>,
    /// The primary's position it last heard of.
    pub primary: Option<Lsn>,
    /// Bytes between the two.
    pub lag_bytes: Option<u64>,
}

/// Waits up to `wait` for the standby of `datadir` to stream, and reports where it stands. A
/// standby that does not stream by then is reported as such, not an error: it runs, and may
/// still connect (a primary that restarted can take a while to accept it).
pub fn wait_streaming(
    datadir: &Path,
    flavor: Flavor,
    ctl: &ServerCtl,
    wait: Duration,
    rep: &mut dyn Reporter,
) -> Result<StandbyState> {
    let t0 = Instant::now();
    let mut last = StandbyState {
        streaming: false,
        replayed: None,
        primary: None,
        lag_bytes: None,
    };
    while t0.elapsed() < wait {
        match current(datadir, flavor, ctl) {
            Ok(s) if s.streaming => {
                rep.info(&describe(&s));
                return Ok(s);
            }
            Ok(s) => last = s,
            Err(e) => rep.debug(&format!("standby not ready: {e}")),
        }
        // pg_ctl -w returned, so the standby is up; the walreceiver connects within
        // milliseconds, and each poll is one local connection: poll often.
        std::thread::sleep(POLL);
    }
    rep.info(&format!(
        "the standby runs but does not stream from its primary yet (waited {} s)",
        wait.as_secs()
    ));
    Ok(last)
}

/// Where the running standby of `datadir` stands now.
pub(super) fn current(datadir: &Path, flavor: Flavor, ctl: &ServerCtl) -> Result<StandbyState> {
    match flavor.product() {
        Product::PostgreSql => postgres_state(datadir),
        Product::OpenGauss => opengauss_state(ctl),
    }
}

fn describe(s: &StandbyState) -> String {
    match (s.replayed, s.primary, s.lag_bytes) {
        (Some(r), Some(p), Some(lag)) => format!(
            "streaming from its primary: replayed to {r}, {lag} bytes behind the primary's {p}"
        ),
        _ => "streaming from its primary".into(),
    }
}

/// PostgreSQL: the walreceiver's status and positions over the local socket, as the data
/// directory's owner.
fn postgres_state(datadir: &Path) -> Result<StandbyState> {
    let mut cluster = TargetCluster::open(datadir, None)?;
    let port = cluster.setting("port")?.unwrap_or_else(|| "5432".into());
    let sockets = cluster
        .setting("unix_socket_directories")?
        .unwrap_or_else(|| "/var/run/postgresql".into());
    let socket = sockets.split(',').next().unwrap_or("").trim().to_string();
    let user = owner_name(datadir)?;
    let conninfo =
        format!("host='{socket}' port={port} user='{user}' dbname=postgres connect_timeout=5");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start runtime for", "the standby's state", e))?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .map_err(|e| Error::Connect {
                peer: format!("the rebuilt standby at {socket}:{port}"),
                message: e.to_string(),
            })?;
        tokio::spawn(conn);
        let row = client
            .query_one(
                "SELECT (SELECT status FROM pg_stat_wal_receiver), \
                        (SELECT latest_end_lsn FROM pg_stat_wal_receiver)::text, \
                        pg_last_wal_replay_lsn()::text",
                &[],
            )
            .await
            .map_err(|e| Error::Source {
                query: "pg_stat_wal_receiver".into(),
                message: e.to_string(),
            })?;
        let status: Option<String> = row.try_get(0).ok().flatten();
        let lsn = |i: usize| -> Option<Lsn> {
            row.try_get::<_, Option<String>>(i)
                .ok()
                .flatten()
                .and_then(|t| t.parse().ok())
        };
        let (primary, replayed) = (lsn(1), lsn(2));
        Ok(StandbyState {
            streaming: status.as_deref() == Some("streaming"),
            replayed,
            primary,
            lag_bytes: primary.zip(replayed).map(|(p, r)| p.0.saturating_sub(r.0)),
        })
    })
}

/// openGauss: `gs_ctl query`'s HA state and receiver positions.
fn opengauss_state(ctl: &ServerCtl) -> Result<StandbyState> {
    let fields = ctl.ha_state()?;
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let lsn = |k: &str| get(k).and_then(|v| v.parse::<Lsn>().ok());
    let replayed = lsn("receiver_replay_location");
    let primary = lsn("sender_flush_location");
    Ok(StandbyState {
        streaming: get("local_role") == Some("Standby") && get("db_state") == Some("Normal"),
        replayed,
        primary,
        lag_bytes: primary.zip(replayed).map(|(p, r)| p.0.saturating_sub(r.0)),
    })
}

/// The OS user name of the data directory's owner.
fn owner_name(datadir: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(datadir)
        .map_err(|e| Error::io("stat directory", datadir, e))?
        .uid();
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, both valid for the call; `result` points
    // to `pwd` on success.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(Error::Usage(format!("no user name for uid {uid}")));
    }
    // SAFETY: on success pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Ok(name.to_string_lossy().into_owned())
}
