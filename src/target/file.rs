//! The pieces of [`super::TargetDir`] below the data directory's rules: the permissions new
//! files and directories get, files kept open with their writeback spans, ownership, and fsync.
//!
//! Phases 6 and 7.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The permissions of what is created in a data directory, PostgreSQL's rule: directories 0700
/// and files 0600, or 0750 and 0640 when the data directory itself allows group access
/// (`initdb -g`). Applied explicitly, whatever the process umask: WAL and relation files hold
/// row data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateModes {
    /// Mode of new directories.
    pub dir: u32,
    /// Mode of new files.
    pub file: u32,
}

impl CreateModes {
    /// The modes for a data directory whose own mode is `dir_mode`.
    pub fn for_dir_mode(dir_mode: u32) -> CreateModes {
        if dir_mode & 0o750 == 0o750 {
            CreateModes {
                dir: 0o750,
                file: 0o640,
            }
        } else {
            CreateModes {
                dir: 0o700,
                file: 0o600,
            }
        }
    }

    /// The modes for `datadir`.
    pub fn of(datadir: &Path) -> Result<CreateModes> {
        let meta = fs::metadata(datadir).map_err(|e| Error::io("stat directory", datadir, e))?;
        Ok(CreateModes::for_dir_mode(meta.mode()))
    }

    /// Gives `file`, just created at `path`, the file mode.
    pub fn apply_to_file(&self, file: &File, path: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(self.file))
            .map_err(|e| Error::io("change mode of", path, e))
    }

    /// Gives the directory at `path` the directory mode.
    pub fn apply_to_dir(&self, path: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(self.dir))
            .map_err(|e| Error::io("change mode of", path, e))
    }
}

/// Writeback of a file's new data is started once this many bytes were written to it, so that
/// the disk works during the copy and the final fsync has little left to do (PostgreSQL's
/// `*_flush_after`).
pub(super) const WRITEBACK_AFTER: u64 = 1 << 20;

/// A file open for writing, with the span written since its writeback was last started.
pub(super) struct OpenFile {
    pub rel: String,
    pub file: File,
    /// `[from, to)` of the bytes written and not yet handed to writeback.
    pub dirty: Option<(u64, u64)>,
    pub dirty_bytes: u64,
}

impl OpenFile {
    /// Notes a write of `len` bytes at `offset`; starts writeback of the dirty span when it
    /// holds enough (`start`), or when `force`.
    pub fn wrote(&mut self, offset: u64, len: u64, start: bool) {
        let end = offset + len;
        self.dirty = Some(match self.dirty {
            Some((from, to)) => (from.min(offset), to.max(end)),
            None => (offset, end),
        });
        self.dirty_bytes += len;
        if start && self.dirty_bytes >= WRITEBACK_AFTER {
            self.start_writeback();
        }
    }

    /// Asks the kernel to start writing the dirty span back, without waiting: a hint, whose
    /// failure changes nothing (the fsync at the end is what makes data durable).
    pub fn start_writeback(&mut self) {
        if let Some((from, to)) = self.dirty.take() {
            #[cfg(target_os = "linux")]
            {
                use std::os::fd::AsRawFd;
                // SAFETY: the descriptor is valid for the duration of the call.
                unsafe {
                    libc::sync_file_range(
                        self.file.as_raw_fd(),
                        from as libc::off64_t,
                        (to - from) as libc::off64_t,
                        libc::SYNC_FILE_RANGE_WRITE,
                    );
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = (from, to);
        }
        self.dirty_bytes = 0;
    }
}

/// Gives `path` to the owner of `datadir` when running as root (new tablespace directories
/// outside the data directory).
pub fn give_to_owner_of(path: &Path, datadir: &Path) -> Result<()> {
    let meta = fs::metadata(datadir).map_err(|e| Error::io("stat directory", datadir, e))?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 && meta.uid() != 0 {
        std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))
            .map_err(|e| Error::io("change owner of", path, e))?;
    }
    Ok(())
}

pub(super) fn fsync_path(p: &Path) -> Result<()> {
    let f = match File::open(p) {
        Ok(f) => f,
        // Removed again after it was written (a file that vanished on the source).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("open file", p, e)),
    };
    f.sync_all().map_err(|e| Error::io("fsync file", p, e))
}

/// Fsyncs every one of `paths`, from a few threads at once when there are many: the file
/// system commits the concurrent requests together (on the benchmark machine's ext4, 400
/// small files took 30 ms one after another). After a failure no further fsync is started; the
/// earliest failed path (in `paths`' order) is reported once every thread has stopped.
pub(super) fn fsync_paths(paths: &[&Path]) -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const THREADS: usize = 4;
    const PER_THREAD: usize = 16;
    let threads = paths.len().div_ceil(PER_THREAD).clamp(1, THREADS);
    if threads == 1 {
        return paths.iter().try_for_each(|p| fsync_path(p));
    }
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    // Each thread stops at its first failure: it returns that one, with its index.
    let work = || -> Option<(usize, Error)> {
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let p = paths.get(i)?;
            if let Err(e) = fsync_path(p) {
                failed.store(true, Ordering::Relaxed);
                return Some((i, e));
            }
        }
        None
    };
    let failures: Vec<(usize, Error)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        workers
            .into_iter()
            .filter_map(|w| {
                w.join().unwrap_or_else(|_| {
                    let e = std::io::Error::other("the thread panicked");
                    Some((
                        usize::MAX,
                        Error::io("fsync file", Path::new("(a syncing thread)"), e),
                    ))
                })
            })
            .collect()
    });
    match failures.into_iter().min_by_key(|(i, _)| *i) {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

pub(super) fn syncfs(root: &Path) -> Result<()> {
    let f = File::open(root).map_err(|e| Error::io("open directory", root, e))?;
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is valid for the duration of the call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(Error::io(
            "synchronize file system for",
            root,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
