//! The target cluster as phase 1 finds it: its data directory, its control file decoded once,
//! its flavor and WAL geometry, and every read of the target the later phases need — its
//! timeline history, its WAL directory, its configuration. Writes never go through here (see
//! [`crate::target::TargetDir`]).

use crate::control::{ControlFile, PG_CONTROL_FILE_SIZE};
use crate::error::{Error, Result};
use crate::flavor::Flavor;
use crate::lsn::TimeLineId;
use crate::pgconf::Settings;
use crate::timeline::{self, TimeLineHistoryEntry};
use crate::walscan::RestoringWalDir;
use std::path::{Path, PathBuf};

/// A stopped target data directory and what it holds.
#[derive(Clone, Debug)]
pub struct TargetCluster {
    path: PathBuf,
    control: ControlFile,
    control_crc: u32,
    config_file: Option<PathBuf>,
    settings: Option<Settings>,
    restored: crate::walscan::Restored,
}

impl TargetCluster {
    /// Reads the control file of the data directory `path`; `config_file` is its main
    /// configuration file when that lives elsewhere.
    pub fn open(path: &Path, config_file: Option<&Path>) -> Result<TargetCluster> {
        TargetCluster::open_with_control(path, config_file, crate::journal::CONTROL_FILE)
    }

    /// [`TargetCluster::open`] with the control file read from `control` (relative to the
    /// data directory; a rebuild in progress keeps the original aside).
    pub fn open_with_control(
        path: &Path,
        config_file: Option<&Path>,
        control: &str,
    ) -> Result<TargetCluster> {
        let file = path.join(control);
        let bytes = read_small(&file)?;
        let decoded =
            ControlFile::decode(&bytes).map_err(|kind| Error::Control { path: file, kind })?;
        Ok(TargetCluster {
            path: path.to_path_buf(),
            control: decoded,
            control_crc: crc32c::crc32c(&bytes),
            config_file: config_file.map(Path::to_path_buf),
            settings: None,
            restored: Default::default(),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The decoded control file.
    pub fn control(&self) -> &ControlFile {
        &self.control
    }

    /// CRC-32C of the whole control file as read (the journal recognises a finished rebuild
    /// by a different one).
    pub fn control_crc(&self) -> u32 {
        self.control_crc
    }

    /// Which database wrote it.
    pub fn flavor(&self) -> Flavor {
        self.control.flavor
    }

    /// WAL segment size in bytes.
    pub fn seg_size(&self) -> u32 {
        self.control.xlog_seg_size
    }

    /// The system identifier.
    pub fn system_identifier(&self) -> u64 {
        self.control.system_identifier
    }

    /// The main configuration file when it is not the data directory's own.
    pub fn config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    /// The target's timeline: the later of its checkpoint's and its minimum recovery point's
    /// (a standby that followed a promotion may not have made a restartpoint on the new
    /// timeline yet).
    pub fn timeline(&self) -> TimeLineId {
        let c = &self.control;
        c.checkpoint_copy
            .this_timeline_id
            .max(c.min_recovery_point_tli)
    }

    /// The history of the target's timeline, from its history file (timeline 1 has none).
    pub fn history(&self) -> Result<Vec<TimeLineHistoryEntry>> {
        let tli = self.timeline();
        if tli.0 <= 1 {
            return timeline::parse_history("", tli).map_err(|kind| Error::History {
                path: self.path.clone(),
                kind,
            });
        }
        let name = timeline::history_file_name(tli);
        timeline::read_history_file(&self.path.join(self.flavor().wal_path(&name)), tli)
    }

    /// The WAL directory, its segment files named along `history`; with `restore_command`,
    /// missing segments are fetched with it.
    pub fn wal_dir(
        &self,
        history: Vec<TimeLineHistoryEntry>,
        restore_command: Option<String>,
    ) -> RestoringWalDir {
        RestoringWalDir::new(
            &self.path,
            self.flavor(),
            self.seg_size(),
            history,
            restore_command,
        )
        .with_restored(self.restored.clone())
    }

    /// The WAL segments its readers fetched with `restore_command` so far.
    pub fn restored_segments(&self) -> Vec<String> {
        self.restored.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The target's configuration (read on first use).
    pub fn settings(&mut self) -> Result<&Settings> {
        if self.settings.is_none() {
            self.settings = Some(Settings::read_target(
                &self.path,
                self.config_file.as_deref(),
            )?);
        }
        Ok(self.settings.get_or_insert_with(Settings::default))
    }

    /// A setting of the target's configuration that is set and not empty.
    pub fn setting(&mut self, name: &str) -> Result<Option<String>> {
        Ok(self
            .settings()?
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_string))
    }

    /// The directory a tablespace holds for this cluster (openGauss names the node in it:
    /// `pgxc_node_name` of its configuration).
    pub fn tablespace_dir(&mut self) -> Result<String> {
        let node = match self.flavor().product() {
            crate::flavor::Product::OpenGauss => {
                self.setting("pgxc_node_name")?.ok_or_else(|| Error::Usage(format!(
                    "\"{}\" has no pgxc_node_name in its configuration, which names its tablespace directories",
                    self.path.display()
                )))?
            }
            crate::flavor::Product::PostgreSql => String::new(),
        };
        Ok(self
            .flavor()
            .tablespace_version_dir(self.control.catalog_version_no, &node))
    }

    /// Whether a postmaster runs on the data directory.
    pub fn is_running(&self) -> bool {
        crate::pgserver::is_running(&self.path)
    }
}

/// A control file's bytes (it is 8 KiB; more is read only to report the size).
fn read_small(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("open file", path, e))?;
    let mut bytes = Vec::with_capacity(PG_CONTROL_FILE_SIZE);
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io("read file", path, e))?;
    Ok(bytes)
}
