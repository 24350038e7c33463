//! The process environment as libpq consults it (`PG*` variables, OS user, home directory,
//! default socket directory), as a value so that resolution is testable without touching the
//! real environment.
//!
//! Phase 2 (connecting to the source).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The process environment as libpq reads it, made explicit so that tests (and callers with
/// their own settings) need not touch the real environment.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    pub(super) os_user: Option<String>,
    home: Option<PathBuf>,
    pub(super) default_socket_dir: PathBuf,
}

/// The `PG*` variables libpq consults, and the keyword each one supplies.
const ENV_VARS: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGPASSFILE", "passfile"),
    ("PGOPTIONS", "options"),
    ("PGAPPNAME", "application_name"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
];

impl Environment {
    /// Nothing set: no `PG*` variables, OS user `postgres`, no home, sockets in `/tmp`.
    pub fn empty() -> Environment {
        Environment {
            os_user: Some("postgres".into()),
            default_socket_dir: "/tmp".into(),
            ..Environment::default()
        }
    }

    /// This process's environment, OS user and home directory. The default socket directory is
    /// `/var/run/postgresql` when it exists (Debian's and Red Hat's libpq), else `/tmp`.
    pub fn from_process() -> Environment {
        let vars = ENV_VARS
            .iter()
            .filter_map(|(k, _)| Some((k.to_string(), std::env::var(k).ok()?)))
            .collect();
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let run = Path::new("/var/run/postgresql");
        Environment {
            vars,
            os_user: os_user_name(),
            home,
            default_socket_dir: if run.is_dir() {
                run.into()
            } else {
                "/tmp".into()
            },
        }
    }

    /// Sets one variable (e.g. `PGPASSFILE`).
    pub fn with_var(mut self, name: &str, value: &str) -> Environment {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Sets the OS user name (the default user).
    pub fn with_os_user(mut self, user: &str) -> Environment {
        self.os_user = Some(user.into());
        self
    }

    /// Sets the home directory (where `.pgpass` is looked for).
    pub fn with_home(mut self, home: impl Into<PathBuf>) -> Environment {
        self.home = Some(home.into());
        self
    }

    /// Sets the socket directory used when no host is given.
    pub fn with_default_socket_dir(mut self, dir: impl Into<PathBuf>) -> Environment {
        self.default_socket_dir = dir.into();
        self
    }

    /// The home directory, where `.pgpass` and `.postgresql/root.crt` are looked for.
    pub fn home(&self) -> Option<&Path> {
        self.home.as_deref()
    }

    /// The socket directory used when no host is given.
    pub fn default_socket_dir(&self) -> &Path {
        &self.default_socket_dir
    }

    /// The value of the environment variable `name` (`PGUSER`), when set and not empty.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(super) fn var_for_key(&self, key: &str) -> Option<&str> {
        let (name, _) = ENV_VARS.iter().find(|(_, k)| *k == key)?;
        self.vars.get(*name).map(String::as_str)
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&String> = self.vars.keys().collect();
        f.debug_struct("Environment")
            .field("vars", &names)
            .field("os_user", &self.os_user)
            .field("home", &self.home)
            .field("default_socket_dir", &self.default_socket_dir)
            .finish()
    }
}

/// The effective user name of this process (libpq's `pg_fe_getauthname`).
fn os_user_name() -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: passwd is plain data; getpwuid_r writes only into `pwd` and `buf` (whose length is
    // passed) and sets `result` to null or to `pwd`.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(pwd.pw_name);
        name.to_str().ok().map(str::to_owned)
    }
}
