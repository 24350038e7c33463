//! Where an openGauss source is, and as whom to connect: the target's `replconninfo1` …
//! `replconninfo8` (its HA channels to its peers, in `postgresql.conf`) give the servers to
//! try, in order; the data directory's owner is the user when none is given.
//!
//! A `replconninfoN` value holds one or more channels separated by `,`, each a list of
//! `key=value` words: `localhost`, `localport`, `remotehost`, `remoteport` (the peer's HA port,
//! where both connections go), heartbeat and service ports, `iscascade`, …. A channel without
//! `remotehost` or `remoteport` cannot be tried and is reported as such.
//!
//! Phase 2 (finding the source).

use crate::conninfo::{Host, Target};
use crate::ogwire::Endpoint;
use crate::pgconf::Settings;
use std::net::IpAddr;
use std::path::Path;

/// The settings naming the channels, in the order they are tried.
pub const SETTINGS: [&str; 8] = [
    "replconninfo1",
    "replconninfo2",
    "replconninfo3",
    "replconninfo4",
    "replconninfo5",
    "replconninfo6",
    "replconninfo7",
    "replconninfo8",
];

/// One HA channel to a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    /// The setting it comes from (`replconninfo2`).
    pub setting: String,
    /// This node's address on the channel (`localhost`), which replication sessions bind.
    pub local_host: Option<String>,
    /// This node's HA port (`localport`).
    pub local_port: Option<u16>,
    /// The peer (`remotehost`).
    pub remote_host: String,
    /// The peer's HA port (`remoteport`).
    pub remote_port: u16,
    /// `iscascade=true`: the peer is a cascaded standby.
    pub cascade: bool,
}

impl Channel {
    /// Where a session over this channel goes (binding `localhost` when it is an address).
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            target: Target {
                host: Host::Tcp(self.remote_host.clone()),
                hostaddr: None,
                port: self.remote_port,
            },
            bind: self
                .local_host
                .as_deref()
                .and_then(|h| h.parse::<IpAddr>().ok()),
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.endpoint(), self.setting)
    }
}

/// The channels of all `replconninfoN` settings, in order, and what could not be used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Channels {
    /// Channels to try, in order.
    pub channels: Vec<Channel>,
    /// Why some channel could not be used (`replconninfo2: channel 1 has no remoteport`).
    pub problems: Vec<String>,
}

/// The channels `settings` (the target's configuration) name.
pub fn from_settings(settings: &Settings) -> Channels {
    let mut out = Channels::default();
    for name in SETTINGS {
        if let Some(value) = settings.get(name) {
            parse_into(name, value, &mut out);
        }
    }
    out
}

/// The channels of one `replconninfoN` value (`name` = `value`, the quotes removed).
pub fn parse(name: &str, value: &str) -> Channels {
    let mut out = Channels::default();
    parse_into(name, value, &mut out);
    out
}

fn parse_into(name: &str, value: &str, out: &mut Channels) {
    let pieces: Vec<&str> = value.split(',').filter(|p| !p.trim().is_empty()).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let which = if pieces.len() > 1 {
            format!("{name}: channel {}", i + 1)
        } else {
            name.to_string()
        };
        match channel(name, piece) {
            Ok(c) => out.channels.push(c),
            Err(why) => out.problems.push(format!("{which} {why}")),
        }
    }
}

fn channel(setting: &str, text: &str) -> Result<Channel, String> {
    let mut get = std::collections::HashMap::new();
    for word in text.split_whitespace() {
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| format!("has \"{word}\", which is not key=value"))?;
        get.insert(k.to_ascii_lowercase(), v.to_string());
    }
    let port = |key: &str| -> Result<Option<u16>, String> {
        get.get(key)
            .map(|v| {
                v.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("has an invalid {key} \"{v}\""))
            })
            .transpose()
    };
    let remote_host = get
        .get("remotehost")
        .filter(|h| !h.is_empty())
        .cloned()
        .ok_or("has no remotehost")?;
    let remote_port = port("remoteport")?.ok_or("has no remoteport")?;
    Ok(Channel {
        setting: setting.to_string(),
        local_host: get.get("localhost").filter(|h| !h.is_empty()).cloned(),
        local_port: port("localport")?,
        remote_host,
        remote_port,
        cascade: get
            .get("iscascade")
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1" || v == "on"),
    })
}

/// The name of the OS user owning `datadir`: openGauss's tools connect as that user (the
/// cluster's initial user, the only one admitted on the HA port) when none is given, which a
/// run as root must do too.
pub fn datadir_owner(datadir: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(datadir)?.uid();
    user_name(uid).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "the owner of \"{}\" (uid {uid}) has no user name",
                datadir.display()
            ),
        )
    })
}

/// The user name of `uid` (`getpwuid_r`).
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: `passwd` is plain data filled by getpwuid_r; `buf` outlives every pointer into
    // it that `result` may hold, and is used only while it lives.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(pwd.pw_name)
            .to_str()
            .ok()
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_channel_as_the_harness_writes_it() {
        let c = parse(
            "replconninfo1",
            "localhost=127.0.0.1 localport=25401 localheartbeatport=25405 localservice=25406 remotehost=127.0.0.1 remoteport=25411 remoteheartbeatport=25415 remoteservice=25416",
        );
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(
            c.channels,
            vec![Channel {
                setting: "replconninfo1".into(),
                local_host: Some("127.0.0.1".into()),
                local_port: Some(25401),
                remote_host: "127.0.0.1".into(),
                remote_port: 25411,
                cascade: false,
            }]
        );
        let e = c.channels[0].endpoint();
        assert_eq!(e.target.port, 25411);
        assert_eq!(e.bind, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(c.channels[0].to_string(), "127.0.0.1:25411 (replconninfo1)");
    }

    #[test]
    fn several_channels_in_one_value_and_missing_keys() {
        let c = parse(
            "replconninfo2",
            "localhost=10.0.0.1 remotehost=10.0.0.2 remoteport=5001, localhost=10.0.1.1 remotehost=10.0.1.2 remoteport=5002 iscascade=true ,remotehost=h3 , localhost=x remoteport=7,",
        );
        let ports: Vec<u16> = c.channels.iter().map(|c| c.remote_port).collect();
        assert_eq!(ports, [5001, 5002]);
        assert!(c.channels[1].cascade && !c.channels[0].cascade);
        assert_eq!(
            c.problems,
            [
                "replconninfo2: channel 3 has no remoteport",
                "replconninfo2: channel 4 has no remotehost"
            ]
        );
        let c = parse("replconninfo3", "remotehost=h remoteport=99999 localport=1");
        assert_eq!(
            c.problems,
            ["replconninfo3 has an invalid remoteport \"99999\""]
        );
        let c = parse("replconninfo3", "remotehost=h remoteport=1 junk");
        assert_eq!(
            c.problems,
            ["replconninfo3 has \"junk\", which is not key=value"]
        );
        let c = parse(
            "replconninfo4",
            "remotehost=name.example remoteport=1 localhost=name",
        );
        assert_eq!(c.channels[0].endpoint().bind, None);
        assert_eq!(parse("replconninfo5", "  "), Channels::default());
    }

    #[test]
    fn from_the_configuration_file_in_order() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("postgresql.conf"),
            "port = 1\n\
             replconninfo2 = 'localhost=127.0.0.1 remotehost=127.0.0.3 remoteport=2001' # second\n\
             replconninfo1='localhost=127.0.0.1 remotehost=127.0.0.2 remoteport=1001'\n\
             #replconninfo3 = 'remotehost=commented remoteport=3'\n\
             replconninfo4 = ''\n\
             replconninfo8 = 'remotehost=''quoted'' remoteport=8001'\n",
        )
        .unwrap();
        let s = Settings::read_target(d.path(), None).unwrap();
        let c = from_settings(&s);
        let got: Vec<String> = c.channels.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            got,
            [
                "127.0.0.2:1001 (replconninfo1)",
                "127.0.0.3:2001 (replconninfo2)",
                "'quoted':8001 (replconninfo8)"
            ]
        );
        assert!(c.problems.is_empty());
    }

    #[test]
    fn the_owner_of_a_directory() {
        let d = tempfile::tempdir().unwrap();
        let me = datadir_owner(d.path()).unwrap();
        assert!(!me.is_empty());
        assert!(datadir_owner(&d.path().join("missing")).is_err());
    }
}
