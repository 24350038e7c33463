//! The build lock: one build of a data directory at a time. The build holds an exclusive
//! `flock` on the data directory itself, which the kernel releases when the process ends,
//! however it ends; a second build finds it held and refuses, naming the holder's pid (from
//! `/proc/locks`). No file is created for it, so a build refused or failed before its first
//! write leaves the directory exactly as it was. The product's own build pid file (openGauss's
//! `gs_build.pid`, which `gs_ctl querybuild` and the cluster manager read) gets the pid, and
//! `0` once the build is done.

use crate::error::{Error, Result};
use crate::flavor::ProductTable;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A held build lock; dropping it releases the lock.
pub struct BuildLock {
    /// Held open: the flock lives as long as this descriptor.
    _dir: File,
    product_pid_file: Option<PathBuf>,
    datadir: PathBuf,
}

impl BuildLock {
    /// Takes the lock of `datadir` or says which process holds it.
    pub fn acquire(datadir: &Path, table: &ProductTable) -> Result<BuildLock> {
        let dir = File::open(datadir).map_err(|e| Error::io("open directory", datadir, e))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let holder = holder_of(&dir).map_or_else(|| "unknown".into(), |p| p.to_string());
            return Err(Error::Incompatible(format!(
                "another build of \"{}\" is running (pid {holder}, which holds a lock on the directory)",
                datadir.display(),
            )));
        }
        let lock = BuildLock {
            _dir: dir,
            product_pid_file: table.build_pid_file.map(|f| datadir.join(f)),
            datadir: datadir.to_path_buf(),
        };
        lock.set_product_pid(std::process::id())?;
        Ok(lock)
    }

    /// The build is over: the product's build pid file says `0` (gs_ctl's "no build").
    pub fn release(self) -> Result<()> {
        self.set_product_pid(0)
    }

    fn set_product_pid(&self, pid: u32) -> Result<()> {
        let Some(path) = &self.product_pid_file else {
            return Ok(());
        };
        let mut f = File::create(path).map_err(|e| Error::io("create file", path, e))?;
        f.write_all(pid.to_string().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("write file", path, e))?;
        crate::target::give_to_owner_of(path, &self.datadir)
    }
}

/// The pid of the build running on `datadir`, if one holds its lock (read from `/proc/locks`,
/// without taking the lock: a build starting now must not find it held by a look).
pub fn running_build(datadir: &Path) -> Option<u32> {
    holder_of(&File::open(datadir).ok()?)
}

/// The pid holding a `flock` on the file `f` is open on, from `/proc/locks` (lines such as
/// `3: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF`, the device's major and minor in hex).
fn holder_of(f: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata().ok()?;
    let id = format!(
        "{:02x}:{:02x}:{}",
        libc::major(m.dev()),
        libc::minor(m.dev()),
        m.ino()
    );
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, "FLOCK", _, _, pid, dev, ..] if *dev == id => pid.parse().ok(),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flavor::Flavor;

    #[test]
    fn one_build_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let table = Flavor::OpenGauss.table();
        let lock = BuildLock::acquire(d.path(), table).unwrap();
        let pid = std::process::id().to_string();
        assert_eq!(
            std::fs::read_to_string(d.path().join("gs_build.pid")).unwrap(),
            pid
        );
        // Another open file description of the directory conflicts, as another process's
        // would.
        let e = BuildLock::acquire(d.path(), table)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("another build") && e.contains(&pid), "{e}");
        lock.release().unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("gs_build.pid")).unwrap(),
            "0"
        );
        // PostgreSQL has no build pid file: the directory is left as it was.
        let pg = tempfile::tempdir().unwrap();
        let again = BuildLock::acquire(pg.path(), Flavor::Pg15.table()).unwrap();
        drop(again);
        assert_eq!(std::fs::read_dir(pg.path()).unwrap().count(), 0);
    }
}
