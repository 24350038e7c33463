//! Every write to the target data directory goes through [`TargetDir`]: file copies, block
//! writes, truncation, removal, directory and symlink creation, the WAL stream, `backup_label`
//! and `pg_control`. It owns the dry-run switch, file ownership (files created as root are given
//! to the data directory's owner), and the list of what was touched, which is exactly what gets
//! fsynced at the end.

use crate::datadir;
use crate::error::{Error, Result};
use crate::flavor::Product;
use crate::source::ChunkSink;
use file::{fsync_path, fsync_paths, syncfs, OpenFile};
pub use file::{give_to_owner_of, CreateModes};

mod file;
mod whole;
use std::collections::{BTreeSet, HashSet};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How to make the target durable at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMethod {
    /// fsync every file and directory that was written, and nothing else.
    #[default]
    Fsync,
    /// `syncfs()` on the file systems holding the data directory and its tablespaces.
    Syncfs,
    /// Do not sync (`--no-sync`): fast, unsafe if the machine crashes right after.
    None,
}

/// Files [`TargetDir`] keeps open at once.
const OPEN_FILES: usize = 8;
/// The target data directory, opened for writing.
pub struct TargetDir {
    root: PathBuf,
    dry_run: bool,
    sync: SyncMethod,
    owner: Option<(u32, u32)>,
    modes: CreateModes,
    touched_files: BTreeSet<PathBuf>,
    touched_dirs: BTreeSet<PathBuf>,
    /// Files kept open for positioned writes, most recently used first (at most
    /// [`OPEN_FILES`]): the block copy and the WAL stream write to different files in turn.
    open: Vec<OpenFile>,
    bytes_written: u64,
    synced: usize,
    /// Directories on the way to a written path that were checked not to be symbolic links
    /// (see [`TargetDir::path`]).
    checked_dirs: HashSet<String>,
    /// Files copied whole, and what each still needs ([`whole`]).
    whole: whole::WholeFiles,
}

impl TargetDir {
    /// Opens `root` for the rebuild. With `dry_run`, every write is skipped (and counted).
    pub fn new(root: &Path, dry_run: bool, sync: SyncMethod) -> Result<TargetDir> {
        let meta = fs::metadata(root).map_err(|e| Error::io("stat directory", root, e))?;
        // Files created by a root process would be unreadable to the server, which runs as the
        // data directory's owner.
        // SAFETY: geteuid has no preconditions.
        let owner =
            (unsafe { libc::geteuid() } == 0 && meta.uid() != 0).then(|| (meta.uid(), meta.gid()));
        Ok(TargetDir {
            root: root.to_path_buf(),
            dry_run,
            sync,
            owner,
            modes: CreateModes::for_dir_mode(meta.mode()),
            touched_files: BTreeSet::new(),
            touched_dirs: BTreeSet::new(),
            open: Vec::new(),
            bytes_written: 0,
            synced: 0,
            checked_dirs: HashSet::new(),
            whole: whole::WholeFiles::default(),
        })
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether writes are skipped.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Bytes written so far (or that would have been, in a dry run).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// `rel` under the root, checked: a plain relative path ([`datadir::check_relative`]), and
    /// no directory on the way is a symbolic link other than `pg_wal` and the tablespaces
    /// (`pg_tblspc/<oid>`). The plan's paths were checked already; this holds for whatever a
    /// source delivers and whatever the target holds, so writes stay inside the data directory
    /// and its tablespaces. (The last component is never followed either: files are opened
    /// with `O_NOFOLLOW`.)
    fn path(&mut self, rel: &str) -> Result<PathBuf> {
        let full = datadir::join(&self.root, rel)?;
        let mut end = 0;
        while let Some(i) = rel.get(end..).and_then(|r| r.find('/')) {
            let dir = rel.get(..end + i).unwrap_or(rel);
            end += i + 1;
            if self.checked_dirs.contains(dir) {
                continue;
            }
            match fs::symlink_metadata(self.root.join(dir)) {
                Ok(m)
                    if m.file_type().is_symlink()
                        && !Product::ALL.iter().any(|p| p.table().wal_dir == dir)
                        && !datadir::is_tablespace_link(dir) =>
                {
                    return Err(Error::Usage(format!(
                        "refusing to write \"{}\": \"{dir}\" in the target is a symbolic link, and only the WAL directory and tablespaces may be",
                        full.display()
                    )));
                }
                Ok(_) => {
                    self.checked_dirs.insert(dir.to_string());
                }
                // Not there (yet): neither is anything below it.
                Err(_) => break,
            }
        }
        Ok(full)
    }

    fn touch(&mut self, full: &Path) {
        self.touched_files.insert(full.to_path_buf());
        if let Some(parent) = full.parent() {
            self.touched_dirs.insert(parent.to_path_buf());
        }
    }

    fn chown(&self, full: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::lchown(full, Some(uid), Some(gid))
                .map_err(|e| Error::io("change owner of", full, e))?;
        }
        Ok(())
    }

    fn close_open(&mut self) {
        self.open.clear();
    }

    /// Whether new data is handed to writeback early (only when it will be synced).
    fn early_writeback(&self) -> bool {
        self.sync != SyncMethod::None
    }

    /// Opens (creating when missing) `rel` for positioned writes, keeping the few files last
    /// written open, as writes arrive grouped by file.
    fn file(&mut self, rel: &str) -> Result<&mut OpenFile> {
        match self.open.iter().position(|o| o.rel == rel) {
            Some(0) => {}
            Some(i) => {
                let f = self.open.remove(i);
                self.open.insert(0, f);
            }
            None => {
                let full = self.path(rel)?;
                let existed = full.exists();
                let empty = self.whole.opening(rel);
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(empty)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&full)
                    .map_err(|e| Error::io("open file", &full, e))?;
                if !existed {
                    self.modes.apply_to_file(&file, &full)?;
                    self.chown(&full)?;
                }
                self.touch(&full);
                if self.open.len() >= OPEN_FILES {
                    let early = self.early_writeback();
                    for mut evicted in self.open.drain(OPEN_FILES - 1..) {
                        if early {
                            evicted.start_writeback();
                        }
                    }
                }
                self.open.insert(
                    0,
                    OpenFile {
                        rel: rel.to_string(),
                        file,
                        dirty: None,
                        dirty_bytes: 0,
                    },
                );
            }
        }
        let full = self.root.join(rel);
        self.open.first_mut().ok_or_else(|| {
            Error::io(
                "open file",
                full,
                std::io::Error::other("no open file after opening it"),
            )
        })
    }

    /// Writes `data` at `offset` of `rel`, creating the file when missing.
    pub fn write_at(&mut self, rel: &str, offset: u64, data: &[u8]) -> Result<()> {
        let full = self.path(rel)?;
        self.bytes_written += data.len() as u64;
        if self.dry_run {
            return Ok(());
        }
        let early = self.early_writeback();
        let f = self.file(rel)?;
        f.file
            .write_all_at(data, offset)
            .map_err(|e| Error::io("write file", &full, e))?;
        f.wrote(offset, data.len() as u64, early);
        self.whole.wrote(rel, offset, data.len() as u64);
        Ok(())
    }

    /// Truncates `rel` to `len` bytes (creating it empty when missing).
    pub fn truncate(&mut self, rel: &str, len: u64) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        let full = self.path(rel)?;
        self.file(rel)?
            .file
            .set_len(len)
            .map_err(|e| Error::io("truncate file", &full, e))
    }

    /// `rel`, about to be copied whole, is emptied (or created) when it is first opened: before
    /// the first byte written into it, or by [`TargetDir::finish_whole_files`] ([`whole`]).
    pub fn empty_before_writing(&mut self, rel: &str) {
        if !self.dry_run {
            self.open.retain(|o| o.rel != rel);
            self.whole.empty_first(rel);
        }
    }

    /// `rel`, about to be copied whole, is overwritten in place: the target's file is at most
    /// as long as the source's ([`whole`]). [`TargetDir::finish_whole_files`] cuts it to what
    /// was delivered.
    pub fn overwrite_in_place(&mut self, rel: &str) {
        if !self.dry_run {
            self.whole.overwrite(rel);
        }
    }

    /// Once the copy is over: empties each file marked by [`TargetDir::empty_before_writing`]
    /// that no chunk opened (it is empty on the source, or became so), and gives each file
    /// overwritten in place exactly the length delivered, zeros in any gap between the chunks
    /// ([`whole`]).
    pub fn finish_whole_files(&mut self) -> Result<()> {
        let left = self.whole.take();
        for rel in left.to_empty {
            self.truncate(&rel, 0)?;
        }
        for (rel, spans) in left.in_place {
            let full = self.path(&rel)?;
            let end = spans.last().map(|s| s.1).unwrap_or(0);
            for (start, stop) in whole::gaps(&spans) {
                const PIECE: u64 = 1 << 20;
                let zeros = vec![0u8; (stop - start).min(PIECE) as usize];
                let mut at = start;
                while at < stop {
                    let n = (stop - at).min(PIECE) as usize;
                    self.write_at(&rel, at, zeros.get(..n).unwrap_or(&zeros))?;
                    at += n as u64;
                }
            }
            // Its length, without opening it again (a write extends it at once).
            let len = fs::symlink_metadata(&full)
                .map_err(|e| Error::io("stat file", &full, e))?
                .len();
            if len > end {
                self.truncate(&rel, end)?;
            }
        }
        Ok(())
    }

    /// Removes a file or symlink (`missing_ok`: a missing one is fine).
    pub fn remove_file(&mut self, rel: &str, missing_ok: bool) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        self.whole.forget(rel);
        self.open.retain(|o| o.rel != rel);
        let full = self.path(rel)?;
        // The checked directories may change kind from here on.
        self.checked_dirs.clear();
        match fs::remove_file(&full) {
            Err(e) if !(missing_ok && e.kind() == std::io::ErrorKind::NotFound) => {
                return Err(Error::io("remove file", &full, e));
            }
            _ => {}
        }
        self.touched_files.remove(&full);
        if let Some(parent) = full.parent() {
            self.touched_dirs.insert(parent.to_path_buf());
        }
        Ok(())
    }

    /// Removes an (empty) directory.
    pub fn remove_dir(&mut self, rel: &str) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        let full = self.path(rel)?;
        // The checked directories may change kind from here on.
        self.checked_dirs.clear();
        match fs::remove_dir(&full) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove directory", &full, e))
            }
            _ => {}
        }
        self.touched_dirs.remove(&full);
        if let Some(parent) = full.parent() {
            self.touched_dirs.insert(parent.to_path_buf());
        }
        Ok(())
    }

    /// The permissions new files and directories get.
    pub fn modes(&self) -> CreateModes {
        self.modes
    }

    /// Creates a directory (mode 0700, or 0750 in a data directory with group access, as
    /// PostgreSQL does).
    pub fn create_dir(&mut self, rel: &str) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        let full = self.path(rel)?;
        match fs::create_dir(&full) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(Error::io("create directory", &full, e));
            }
            _ => {}
        }
        self.modes.apply_to_dir(&full)?;
        self.chown(&full)?;
        self.touched_dirs.insert(full.clone());
        if let Some(parent) = full.parent() {
            self.touched_dirs.insert(parent.to_path_buf());
        }
        Ok(())
    }

    /// Creates a symlink `rel` → `link_target`.
    pub fn create_symlink(&mut self, rel: &str, link_target: &str) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        let full = self.path(rel)?;
        // The checked directories may change kind from here on.
        self.checked_dirs.clear();
        // A resumed rebuild finds the link it made before.
        let made_before = fs::read_link(&full)
            .map(|t| t == Path::new(link_target))
            .unwrap_or(false);
        if !made_before {
            std::os::unix::fs::symlink(link_target, &full)
                .map_err(|e| Error::io("create symbolic link", &full, e))?;
        }
        self.chown(&full)?;
        if let Some(parent) = full.parent() {
            self.touched_dirs.insert(parent.to_path_buf());
        }
        Ok(())
    }

    /// Writes a whole small file atomically: to a temporary name, then renamed over `rel`. It
    /// is made durable with everything else ([`TargetDir::sync`]).
    pub fn write_file_atomic(&mut self, rel: &str, data: &[u8]) -> Result<()> {
        self.replace(rel, data, false)
    }

    /// Replaces `rel` with `data` atomically and durably now, whatever the sync method: a
    /// temporary file, fsynced, renamed over `rel`, then its directory fsynced. For the
    /// journal and `pg_control`, whose order on disk is what makes a rebuild crash safe.
    pub fn replace_durably(&mut self, rel: &str, data: &[u8]) -> Result<()> {
        self.replace(rel, data, true)
    }

    /// The one way a whole file is replaced; `now`: durable before returning.
    fn replace(&mut self, rel: &str, data: &[u8], now: bool) -> Result<()> {
        let full = self.path(rel)?;
        self.bytes_written += data.len() as u64;
        if self.dry_run {
            return Ok(());
        }
        self.close_open();
        let tmp = full.with_file_name(format!(
            "{}.gsbuild-tmp",
            full.file_name().and_then(|n| n.to_str()).unwrap_or("file")
        ));
        {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
                .map_err(|e| Error::io("create file", &tmp, e))?;
            self.modes.apply_to_file(&f, &tmp)?;
            f.write_all_at(data, 0)
                .map_err(|e| Error::io("write file", &tmp, e))?;
            if now || self.sync != SyncMethod::None {
                f.sync_all().map_err(|e| Error::io("fsync file", &tmp, e))?;
            }
        }
        self.chown(&tmp)?;
        fs::rename(&tmp, &full).map_err(|e| Error::io("rename file", &tmp, e))?;
        if now {
            fsync_path(full.parent().unwrap_or(&self.root))?;
        } else {
            self.touch(&full);
        }
        Ok(())
    }

    /// Renames `from` to `to` (both in the same directory) durably now.
    pub fn rename_durably(&mut self, from: &str, to: &str) -> Result<()> {
        let (src, dst) = (self.path(from)?, self.path(to)?);
        if self.dry_run {
            return Ok(());
        }
        self.close_open();
        fs::rename(&src, &dst).map_err(|e| Error::io("rename file", &src, e))?;
        fsync_path(dst.parent().unwrap_or(&self.root))
    }

    /// Moves the file `rel` to `to` (a path in the data directory whose directory exists), to
    /// be removed later; `false` when it cannot be renamed there (another file system: a
    /// tablespace) or is not there (a resumed run: moved by the run before), and the caller
    /// removes it in place.
    pub fn move_aside(&mut self, rel: &str, to: &str) -> Result<bool> {
        let (src, dst) = (self.path(rel)?, self.path(to)?);
        if self.dry_run {
            return Ok(true);
        }
        self.open.retain(|o| o.rel != rel);
        self.whole.forget(rel);
        self.checked_dirs.clear();
        match fs::rename(&src, &dst) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("rename file", &src, e)),
        }
        self.touched_files.remove(&src);
        for dir in [src.parent(), dst.parent()].into_iter().flatten() {
            self.touched_dirs.insert(dir.to_path_buf());
        }
        Ok(true)
    }

    /// Removes the file `rel` (a missing one is fine) durably now.
    pub fn remove_durably(&mut self, rel: &str) -> Result<()> {
        self.remove_file(rel, true)?;
        if self.dry_run {
            return Ok(());
        }
        let full = self.path(rel)?;
        fsync_path(full.parent().unwrap_or(&self.root))
    }

    /// Creates the directory `location` outside the data directory (a tablespace the source has
    /// and the target lacks), with the data directory's directory mode and owner. A location
    /// is absolute, checked by the caller to be empty or the rebuild's own.
    pub fn create_location(&mut self, location: &Path) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        fs::create_dir_all(location).map_err(|e| Error::io("create directory", location, e))?;
        self.modes.apply_to_dir(location)?;
        self.chown(location)
    }

    /// Makes everything written since the last call durable, per the sync method: each
    /// touched file, then each touched directory (so new and removed names are durable too).
    pub fn sync(&mut self) -> Result<()> {
        self.close_open();
        if self.dry_run {
            return Ok(());
        }
        match self.sync {
            SyncMethod::None => {}
            SyncMethod::Syncfs => syncfs(&self.root)?,
            SyncMethod::Fsync => {
                let paths: Vec<&Path> = self
                    .touched_files
                    .iter()
                    .chain(self.touched_dirs.iter())
                    .map(PathBuf::as_path)
                    .collect();
                fsync_paths(&paths)?;
            }
        }
        self.synced += self.touched_count();
        self.touched_files.clear();
        self.touched_dirs.clear();
        Ok(())
    }

    /// Number of files and directories the next [`TargetDir::sync`] will fsync.
    pub fn touched_count(&self) -> usize {
        self.touched_files.len() + self.touched_dirs.len()
    }

    /// Number of files and directories synced so far.
    pub fn synced_count(&self) -> usize {
        self.synced
    }
}

impl ChunkSink for TargetDir {
    fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<()> {
        self.write_at(path, offset, data)
    }

    fn vanished(&mut self, path: &str) -> Result<()> {
        self.remove_file(path, true)
    }
}

#[cfg(test)]
mod tests;
