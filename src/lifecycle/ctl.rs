//! The product's server control program (`pg_ctl`, `gs_ctl`), found as `postgres` is for
//! crash recovery (next to gsbuild, on `PATH`, then the distributions' places; openGauss: under
//! `GAUSSHOME`), run as the data directory's owner: stop a running target, start the rebuilt one
//! as a standby.

use crate::error::{Error, Result};
use crate::flavor::{Flavor, Product};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How to stop a running server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// Checkpoint, then stop (pg_ctl/gs_ctl `-m fast`): a clean shutdown.
    Fast,
    /// Stop at once (`-m immediate`): crash recovery runs at the next start.
    Immediate,
}

/// The server control program of one data directory.
pub struct ServerCtl {
    program: PathBuf,
    datadir: PathBuf,
    product: Product,
    /// openGauss's programs need `GAUSSHOME` and its libraries.
    home: Option<PathBuf>,
}

impl ServerCtl {
    /// The control program for `datadir`, a cluster of `flavor`; `explicit` when given.
    pub fn find(datadir: &Path, flavor: Flavor, explicit: Option<&Path>) -> Result<ServerCtl> {
        let name = flavor.table().server_ctl;
        let program = match explicit {
            Some(p) => p.to_path_buf(),
            None => candidates(name, flavor)
                .into_iter()
                .find(|p| p.is_file() && right_major(p, flavor))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "program \"{name}\" is needed to stop and start \"{}\" but was not found next to gsbuild, on PATH{}",
                        datadir.display(),
                        match flavor.product() {
                            Product::PostgreSql => format!(" nor in /usr/lib/postgresql/{}/bin", flavor.number()),
                            Product::OpenGauss => " nor under GAUSSHOME".into(),
                        }
                    ))
                })?,
        };
        let home = (flavor.product() == Product::OpenGauss)
            .then(|| {
                program
                    .parent()
                    .and_then(Path::parent)
                    .map(Path::to_path_buf)
            })
            .flatten();
        Ok(ServerCtl {
            program,
            datadir: datadir.to_path_buf(),
            product: flavor.product(),
            home,
        })
    }

    /// The program.
    pub fn program(&self) -> &Path {
        &self.program
    }

    fn command(&self) -> Result<Command> {
        let mut cmd = crate::pgserver::as_owner(&self.program, &self.datadir)?;
        if let Some(home) = &self.home {
            cmd.env("GAUSSHOME", home)
                .env("LD_LIBRARY_PATH", home.join("lib"));
        }
        Ok(cmd)
    }

    fn run(&self, args: &[&str], what: &str) -> Result<String> {
        let mut cmd = self.command()?;
        cmd.args(args).arg("-D").arg(&self.datadir);
        let out = cmd
            .output()
            .map_err(|e| Error::io("execute", &self.program, e))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            return Err(Error::Usage(format!(
                "could not {what} \"{}\" with {} ({}): {}",
                self.datadir.display(),
                self.program.display(),
                out.status,
                text.trim_end()
            )));
        }
        Ok(text)
    }

    /// Stops the server and waits until it is down.
    pub fn stop(&self, mode: StopMode) -> Result<()> {
        let m = match mode {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        self.run(&["stop", "-w", "-m", m], "stop")?;
        Ok(())
    }

    /// Starts the server as a standby (`mode`: openGauss's `-M`, `standby` or
    /// `cascade_standby`; PostgreSQL starts as one from `standby.signal`), its server log in
    /// `log` (PostgreSQL's `-l`), and waits until it runs.
    ///
    /// PostgreSQL fsyncs every file of a data directory that was not shut down cleanly before
    /// recovery starts (`recovery_init_sync_method = fsync`): after a rebuild, whose writes
    /// are durable and whose other files were, that pass is redundant, and at 100,000 files it
    /// takes longer than the rebuild. Unless the configuration chooses a method, this start
    /// asks for one `syncfs` per file system instead (PostgreSQL 14+, all we support).
    pub fn start_standby(&self, mode: &str, log: &Path) -> Result<()> {
        let log = log.display().to_string();
        match self.product {
            Product::PostgreSql => {
                let mut args = vec!["start", "-w", "-t", "600", "-l", &log];
                if self.sync_method_unset() {
                    args.extend(["-o", "-c recovery_init_sync_method=syncfs"]);
                }
                self.run(&args, "start")
            }
            Product::OpenGauss => self.run(&["start", "-M", mode], "start"),
        }?;
        Ok(())
    }

    /// Whether the target's configuration leaves `recovery_init_sync_method` at its default
    /// (an unreadable configuration counts as set: nothing is overridden then).
    fn sync_method_unset(&self) -> bool {
        crate::pgconf::Settings::read_target(&self.datadir, None)
            .map(|s| s.get("recovery_init_sync_method").is_none())
            .unwrap_or(false)
    }

    /// `gs_ctl query`'s HA state (openGauss), field by field.
    pub fn ha_state(&self) -> Result<Vec<(String, String)>> {
        let text = self.run(&["query"], "query")?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(" : ").or_else(|| l.split_once(':')))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .filter(|(k, _)| !k.is_empty() && !k.contains(' '))
            .collect())
    }
}

/// Whether a PostgreSQL control program at `p` runs a `postgres` of the flavor's major (one of
/// another major would refuse the data directory); openGauss has one version.
fn right_major(p: &Path, flavor: Flavor) -> bool {
    match flavor.product() {
        Product::PostgreSql => p
            .parent()
            .map(|d| {
                crate::pgserver::postgres_major(&d.join("postgres")).ok() == Some(flavor.number())
            })
            .unwrap_or(false),
        Product::OpenGauss => true,
    }
}

/// Where the control program named `name` may be, in order.
fn candidates(name: &str, flavor: Flavor) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir.join(name));
    }
    if let Some(path) = std::env::var_os("PATH") {
        out.extend(std::env::split_paths(&path).map(|d| d.join(name)));
    }
    match flavor.product() {
        Product::PostgreSql => {
            out.push(format!("/usr/lib/postgresql/{}/bin/{name}", flavor.number()).into());
            out.push(format!("/usr/pgsql-{}/bin/{name}", flavor.number()).into());
        }
        Product::OpenGauss => {
            if let Some(home) = std::env::var_os("GAUSSHOME") {
                out.push(PathBuf::from(home).join("bin").join(name));
            }
        }
    }
    out
}
