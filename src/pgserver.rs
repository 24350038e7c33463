//! Running the target's own PostgreSQL programs: finding `postgres` (next to gsbuild, then on
//! `PATH`), telling whether the target is running, single-user crash recovery of a target that
//! was not shut down cleanly (phase 1, as pg_rewind 13+ does), and `restore_command` for target
//! WAL missing from `pg_wal` (`-c`).
//!
//! Child processes run as the data directory's owner: the server refuses root, and files they
//! create must belong to the owner.

use crate::error::{Error, Result};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Finds the `postgres` executable of major `major`: `explicit` when given, else the first of
/// these whose version matches: next to the running binary (as pg_rewind does with
/// `find_other_exec`), on `PATH`, then the distributions' layouts (`/usr/lib/postgresql/N/bin`,
/// `/usr/pgsql-N/bin`). A `postgres` of another major would refuse the data directory.
pub fn find_postgres(explicit: Option<&Path>, major: u32) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("postgres"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("postgres")));
    }
    candidates.push(PathBuf::from(format!(
        "/usr/lib/postgresql/{major}/bin/postgres"
    )));
    candidates.push(PathBuf::from(format!("/usr/pgsql-{major}/bin/postgres")));
    let mut wrong = Vec::new();
    for p in candidates.into_iter().filter(|p| p.is_file()) {
        match postgres_major(&p) {
            Ok(m) if m == major => return Ok(p),
            Ok(m) => wrong.push(format!("{} is version {m}", p.display())),
            Err(_) => wrong.push(format!("{} did not report its version", p.display())),
        }
    }
    let seen = if wrong.is_empty() {
        String::new()
    } else {
        format!(" ({})", wrong.join("; "))
    };
    Err(Error::Usage(format!(
        "program \"postgres\" of version {major} is needed by gsbuild but was not found in the same directory as gsbuild, on PATH, nor in /usr/lib/postgresql/{major}/bin{seen}"
    )))
}

/// The major version `postgres -V` reports (e.g. 15 for "postgres (PostgreSQL) 15.19").
pub fn postgres_major(postgres: &Path) -> Result<u32> {
    let out = Command::new(postgres)
        .arg("-V")
        .output()
        .map_err(|e| Error::io("execute", postgres, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .last()
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| {
            Error::Usage(format!(
                "could not read the version of \"{}\": {text}",
                postgres.display()
            ))
        })
}

/// A command that runs as the owner of `datadir` (unchanged when gsbuild is not root).
pub fn as_owner(program: &Path, datadir: &Path) -> Result<Command> {
    let meta = std::fs::metadata(datadir).map_err(|e| Error::io("stat directory", datadir, e))?;
    let mut cmd = Command::new(program);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 && meta.uid() != 0 {
        // std clears root's supplementary groups when it sets the uid.
        cmd.uid(meta.uid()).gid(meta.gid());
    }
    // What it creates in the data directory (a segment restore_command copies into pg_wal)
    // gets the directory's modes, as under PostgreSQL, whose umask its children inherit.
    let mask = !crate::target::CreateModes::of(datadir)?.dir & 0o777;
    // SAFETY: umask is async-signal-safe and only sets the child's file creation mask.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask as libc::mode_t);
            Ok(())
        });
    }
    Ok(cmd)
}

/// Whether a postmaster is running on `datadir`, judged by `postmaster.pid` and whether its
/// process exists.
pub fn is_running(datadir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(datadir.join("postmaster.pid")) else {
        return false;
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
    else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// Runs single-user crash recovery on the target (`postgres --single -F -D DATADIR template1`
/// with no input), which replays its WAL and shuts it down cleanly.
pub fn crash_recovery(postgres: &Path, datadir: &Path, config_file: Option<&Path>) -> Result<()> {
    let mut cmd = as_owner(postgres, datadir)?;
    cmd.arg("--single").arg("-F").arg("-D").arg(datadir);
    if let Some(cf) = config_file {
        cmd.arg("-c").arg(format!("config_file={}", cf.display()));
    }
    cmd.arg("template1")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    tracing::info!(
        "executing \"{}\" for target server to complete crash recovery",
        postgres.display()
    );
    let out = cmd
        .output()
        .map_err(|e| Error::io("execute", postgres, e))?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "postgres single-user mode in target cluster failed\n{}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        )));
    }
    Ok(())
}

/// Fetches WAL file `name` into `wal_dir` (the WAL directory of `datadir`) with
/// `restore_command`, run in `datadir` as its owner, substituting `%f` (file name), `%p`
/// (destination path), `%r` (`last_restart`), `%%`.
pub fn restore_wal_file(
    restore_command: &str,
    datadir: &Path,
    wal_dir: &Path,
    name: &str,
    last_restart: &str,
) -> Result<()> {
    let dest = wal_dir.join(name);
    let mut cmdline = String::new();
    let mut chars = restore_command.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            cmdline.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => cmdline.push_str(name),
            Some('p') => cmdline.push_str(&dest.to_string_lossy()),
            Some('r') => cmdline.push_str(last_restart),
            Some('%') => cmdline.push('%'),
            Some(other) => {
                cmdline.push('%');
                cmdline.push(other);
            }
            None => cmdline.push('%'),
        }
    }
    let mut cmd = as_owner(Path::new("/bin/sh"), datadir)?;
    cmd.arg("-c")
        .arg(&cmdline)
        .current_dir(datadir)
        .stdin(Stdio::null());
    tracing::debug!("restore_command: {cmdline}");
    let status = cmd
        .status()
        .map_err(|e| Error::io("execute", "/bin/sh", e))?;
    if !status.success() || !dest.is_file() {
        return Err(Error::Usage(format!(
            "could not restore file \"{name}\" from archive (restore_command \"{restore_command}\" exited with {status})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_substitutes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("pg_wal")).unwrap();
        let archive = tempfile::tempdir().unwrap();
        std::fs::write(archive.path().join("000000010000000000000002"), b"wal").unwrap();
        let cmd = format!(
            "cp {}/%f %p && echo 100%% > /dev/null",
            archive.path().display()
        );
        let wal = d.path().join("pg_wal");
        restore_wal_file(&cmd, d.path(), &wal, "000000010000000000000002", "x").unwrap();
        assert_eq!(
            std::fs::read(d.path().join("pg_wal/000000010000000000000002")).unwrap(),
            b"wal"
        );
        let err = restore_wal_file(&cmd, d.path(), &wal, "000000010000000000000009", "x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("could not restore file \"000000010000000000000009\""),
            "{err}"
        );
    }

    #[test]
    fn not_running_without_pid_file() {
        let d = tempfile::tempdir().unwrap();
        assert!(!is_running(d.path()));
        std::fs::write(
            d.path().join("postmaster.pid"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        assert!(is_running(d.path()));
    }
}
