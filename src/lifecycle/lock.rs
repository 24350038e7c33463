//! The build lock: one build of a data directory at a time. `gsbuild.pid` in the data
//! directory holds the pid of the build, under an exclusive `flock` that the kernel releases
//! when the process ends, however it ends; a second build finds it held and refuses, naming the
//! pid. The product's own build pid file (openGauss's `gs_build.pid`, which `gs_ctl querybuild`
//! and the cluster manager read) gets the pid too, and `0` once the build is done.

use crate::error::{Error, Result};
use crate::flavor::ProductTable;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// gsbuild's lock file in the data directory.
pub const LOCK_FILE: &str = "gsbuild.pid";

/// A held build lock; dropping it releases the lock (the file stays, with a dead pid).
pub struct BuildLock {
    /// Held open: the flock lives as long as this descriptor.
    _file: File,
    product_pid_file: Option<PathBuf>,
    datadir: PathBuf,
}

impl BuildLock {
    /// Takes the lock of `datadir` or says which process holds it.
    pub fn acquire(datadir: &Path, table: &ProductTable) -> Result<BuildLock> {
        let path = datadir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open file", &path, e))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(Error::Incompatible(format!(
                "another build of \"{}\" is running (pid {}, lock file \"{}\")",
                datadir.display(),
                holder.trim(),
                path.display()
            )));
        }
        crate::target::give_to_owner_of(&path, datadir)?;
        write_pid(&mut file, &path, std::process::id())?;
        let product_pid_file = table.build_pid_file.map(|f| datadir.join(f));
        let lock = BuildLock {
            _file: file,
            product_pid_file,
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

/// Replaces the content of `file` with `pid` (decimal, no newline), durably.
fn write_pid(file: &mut File, path: &Path, pid: u32) -> Result<()> {
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.to_string().as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("write file", path, e))
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
        // Another open file description of the same lock file conflicts, as another
        // process's would.
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
        let again = BuildLock::acquire(d.path(), Flavor::Pg15.table()).unwrap();
        drop(again);
    }
}
