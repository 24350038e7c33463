//! pg_control (`global/pg_control`): decode, validate and encode the control file of PostgreSQL
//! 14–18 and of openGauss (x86-64 layouts; openGauss's in [`opengauss`]'s own decoder, picked
//! by the versions the file holds).
//!
//! The inspect phase reads the target's file to learn its state, timelines and WAL geometry; the
//! finish phase writes the source's copy back with a new minimum recovery point. Layout
//! differences between majors are data (the `Layout` table, and the capability methods of
//! [`Flavor`]), not per-version code. A decoded file remembers the bytes it came from, so that
//! re-encoding an unmodified file reproduces it exactly, alignment padding included.

mod checkpoint;
mod constants;
pub mod error;
mod io;
#[cfg(test)]
mod og_tests;
mod opengauss;
#[cfg(test)]
mod tests;

pub use checkpoint::{CheckPoint, DbState, FullTransactionId, WalLevel};
pub use constants::{FLOAT_FORMAT_VALUE, PG_CONTROL_FILE_SIZE};
pub use error::ControlError;
pub use opengauss::{CheckPointUndo, BACKUP_FILE_SIZE};

use crate::error::Error;
use crate::flavor::{ControlLayout, Flavor};
use crate::lsn::{Lsn, TimeLineId};
use io::{Reader, Writer};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where the control file lives inside a data directory.
pub const CONTROL_FILE_PATH: &str = "global/pg_control";

/// openGauss's copy of the control file's first [`BACKUP_FILE_SIZE`] bytes, which its server
/// reads when `global/pg_control` has a bad CRC ([`ControlFile::backup_image`]).
pub const CONTROL_BACKUP_PATH: &str = "global/pg_control.backup";

/// Length of `mock_authentication_nonce`, in bytes.
pub const MOCK_AUTH_NONCE_LEN: usize = 32;

/// Byte offsets in `ControlFileData` that every supported major shares.
mod off {
    pub const SYSTEM_IDENTIFIER: usize = 0;
    pub const CONTROL_VERSION: usize = 8;
    pub const CATALOG_VERSION: usize = 12;
    pub const STATE: usize = 16;
    pub const TIME: usize = 24;
    pub const CHECKPOINT: usize = 32;
    pub const CHECKPOINT_COPY: usize = 40;
    pub const UNLOGGED_LSN: usize = 128;
    pub const MIN_RECOVERY_POINT: usize = 136;
    pub const MIN_RECOVERY_POINT_TLI: usize = 144;
    pub const BACKUP_START_POINT: usize = 152;
    pub const BACKUP_END_POINT: usize = 160;
    pub const BACKUP_END_REQUIRED: usize = 168;
    pub const WAL_LEVEL: usize = 172;
    pub const WAL_LOG_HINTS: usize = 176;
    pub const MAX_CONNECTIONS: usize = 180;
    pub const MAX_WORKER_PROCESSES: usize = 184;
    pub const MAX_WAL_SENDERS: usize = 188;
    pub const MAX_PREPARED_XACTS: usize = 192;
    pub const MAX_LOCKS_PER_XACT: usize = 196;
    pub const TRACK_COMMIT_TIMESTAMP: usize = 200;
    pub const MAX_ALIGN: usize = 204;
    pub const FLOAT_FORMAT: usize = 208;
    pub const BLCKSZ: usize = 216;
    pub const RELSEG_SIZE: usize = 220;
    pub const XLOG_BLCKSZ: usize = 224;
    pub const XLOG_SEG_SIZE: usize = 228;
    pub const NAME_DATA_LEN: usize = 232;
    pub const INDEX_MAX_KEYS: usize = 236;
    pub const TOAST_MAX_CHUNK_SIZE: usize = 240;
    pub const LOBLKSIZE: usize = 244;
    pub const FLOAT8_BY_VAL: usize = 248;
    pub const DATA_CHECKSUM_VERSION: usize = 252;
}

/// The offsets that differ between majors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    /// `default_char_signedness` (18+).
    char_signedness: Option<usize>,
    /// `mock_authentication_nonce`.
    nonce: usize,
    /// `crc`; the CRC covers every byte before it.
    crc: usize,
    /// `sizeof(ControlFileData)`.
    size: usize,
}

impl Layout {
    fn of(flavor: Flavor) -> Layout {
        if flavor.control_has_char_signedness() {
            Layout {
                char_signedness: Some(256),
                nonce: 257,
                crc: 292,
                size: 296,
            }
        } else {
            Layout {
                char_signedness: None,
                nonce: 256,
                crc: 288,
                size: 296,
            }
        }
    }

    /// The fewest bytes any supported major needs, checked before the major is known.
    fn min_size() -> usize {
        Flavor::POSTGRESQL
            .iter()
            .map(|m| Layout::of(*m).size)
            .min()
            .unwrap_or(PG_CONTROL_FILE_SIZE)
    }
}

/// The struct bytes a file was decoded from, kept to reproduce its padding on encode.
#[derive(Clone, Default, PartialEq, Eq)]
struct Original(Vec<u8>);

impl fmt::Debug for Original {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Original({} bytes)", self.0.len())
    }
}

/// The contents of pg_control (`ControlFileData`), every field pg_controldata prints.
///
/// Equality also compares the padding bytes of the file it was decoded from.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlFile {
    /// The major whose layout the file has (from its version numbers).
    pub flavor: Flavor,
    /// `system_identifier`: unique per `initdb`, shared by its standbys.
    pub system_identifier: u64,
    /// `pg_control_version`.
    pub pg_control_version: u32,
    /// `catalog_version_no`.
    pub catalog_version_no: u32,
    /// `state`.
    pub state: DbState,
    /// `time`: last update of the file, seconds since the Unix epoch.
    pub time: i64,
    /// `checkPoint`: position of the latest checkpoint record.
    pub checkpoint: Lsn,
    /// `checkPointCopy`: the latest checkpoint record's contents.
    pub checkpoint_copy: CheckPoint,
    /// `unloggedLSN`: fake LSN counter for unlogged relations.
    pub unlogged_lsn: Lsn,
    /// `minRecoveryPoint`: recovery must replay up to here before the cluster is consistent.
    pub min_recovery_point: Lsn,
    /// `minRecoveryPointTLI`: timeline of `min_recovery_point` (0 when unset).
    pub min_recovery_point_tli: TimeLineId,
    /// `backupStartPoint`.
    pub backup_start_point: Lsn,
    /// `backupEndPoint`.
    pub backup_end_point: Lsn,
    /// `backupEndRequired`.
    pub backup_end_required: bool,
    /// `wal_level` setting.
    pub wal_level: WalLevel,
    /// `wal_log_hints` setting.
    pub wal_log_hints: bool,
    /// `max_connections` setting (`MaxConnections`).
    pub max_connections: i32,
    /// `max_worker_processes` setting.
    pub max_worker_processes: i32,
    /// `max_wal_senders` setting.
    pub max_wal_senders: i32,
    /// `max_prepared_transactions` setting.
    pub max_prepared_xacts: i32,
    /// `max_locks_per_transaction` setting.
    pub max_locks_per_xact: i32,
    /// `track_commit_timestamp` setting.
    pub track_commit_timestamp: bool,
    /// `maxAlign`, bytes.
    pub max_align: u32,
    /// `floatFormat`; always [`FLOAT_FORMAT_VALUE`] in a file that decoded.
    pub float_format: f64,
    /// `blcksz`: data page size, bytes.
    pub blcksz: u32,
    /// `relseg_size`: blocks per relation segment file.
    pub relseg_size: u32,
    /// `xlog_blcksz`: WAL page size, bytes.
    pub xlog_blcksz: u32,
    /// `xlog_seg_size`: WAL segment size, bytes.
    pub xlog_seg_size: u32,
    /// `nameDataLen`, bytes.
    pub name_data_len: u32,
    /// `indexMaxKeys`.
    pub index_max_keys: u32,
    /// `toast_max_chunk_size`, bytes.
    pub toast_max_chunk_size: u32,
    /// `loblksize`, bytes.
    pub loblksize: u32,
    /// `float8ByVal`.
    pub float8_by_val: bool,
    /// `data_checksum_version`: 0 without data checksums.
    pub data_checksum_version: u32,
    /// `default_char_signedness` (true: signed); `None` before 18, which did not store it.
    pub default_char_signedness: Option<bool>,
    /// `mock_authentication_nonce`.
    pub mock_authentication_nonce: [u8; MOCK_AUTH_NONCE_LEN],
    /// `crc` as stored; [`ControlFile::encode`] recomputes it.
    pub crc: u32,
    /// openGauss's `prevCheckPoint`: the checkpoint before the latest; `None` for PostgreSQL.
    pub prev_checkpoint: Option<Lsn>,
    /// openGauss's `timeline` field, which pg_controldata prints as "Database system
    /// TimeLine": a counter raised at every server start, not a WAL timeline. `None` for
    /// PostgreSQL.
    pub startup_timeline: Option<TimeLineId>,
    /// openGauss's `enableIntTimes`; `None` for PostgreSQL, which no longer stores it.
    pub enable_int_times: Option<bool>,
    /// openGauss's `float4ByVal`; `None` for PostgreSQL, which no longer stores it.
    pub float4_by_val: Option<bool>,
    /// openGauss's `bootstrap_segment` (initdb made segment-page storage the default);
    /// `None` for PostgreSQL.
    pub bootstrap_segment: Option<bool>,
    original: Original,
}

impl ControlFile {
    /// Decodes and validates a control file: at least `sizeof(ControlFileData)` bytes (PostgreSQL
    /// and openGauss write 8192), version numbers of a supported flavor (which pick the
    /// layout), a matching CRC-32C, the float format check value and a known cluster state.
    pub fn decode(bytes: &[u8]) -> Result<ControlFile, ControlError> {
        let versions = Reader::new(bytes)
            .u32(off::CONTROL_VERSION)
            .and_then(|v| Ok((v, Reader::new(bytes).u32(off::CATALOG_VERSION)?)));
        let flavor = versions.ok().and_then(|(v, c)| Flavor::from_control(v, c));
        if let Some(f) = flavor.filter(|f| f.formats().control == ControlLayout::OpenGauss) {
            return opengauss::decode(bytes, f);
        }
        let min = Layout::min_size();
        if bytes.len() < min {
            return Err(ControlError::Truncated {
                need: min,
                have: bytes.len(),
            });
        }
        let r = Reader::new(bytes);
        let control_version = r.u32(off::CONTROL_VERSION)?;
        let catalog_version = r.u32(off::CATALOG_VERSION)?;
        let flavor = Flavor::from_control(control_version, catalog_version)
            .filter(|f| f.formats().control == ControlLayout::PostgreSql)
            .ok_or(ControlError::UnsupportedVersion {
                control_version,
                catalog_version,
            })?;
        let layout = Layout::of(flavor);
        let stored = r.u32(layout.crc)?;
        let computed = crc32c::crc32c(r.bytes(0, layout.crc)?);
        if stored != computed {
            return Err(ControlError::Crc { stored, computed });
        }
        let float_format = r.f64(off::FLOAT_FORMAT)?;
        if float_format.to_bits() != FLOAT_FORMAT_VALUE.to_bits() {
            return Err(ControlError::FloatFormat {
                bits: float_format.to_bits(),
            });
        }
        let raw_state = r.i32(off::STATE)?;
        let state = DbState::from_i32(raw_state).ok_or(ControlError::UnknownState(raw_state))?;
        let mut file = Self::decode_fields(&r, flavor, layout, state)?;
        file.original = Original(r.bytes(0, layout.size)?.to_vec());
        Ok(file)
    }

    fn decode_fields(
        r: &Reader<'_>,
        flavor: Flavor,
        layout: Layout,
        state: DbState,
    ) -> Result<ControlFile, crate::cursor::Truncated> {
        let char_signedness = layout.char_signedness.map(|at| r.bool(at)).transpose()?;
        let checkpoint_bytes = r.bytes(off::CHECKPOINT_COPY, CheckPoint::SIZE)?;
        Ok(ControlFile {
            flavor,
            system_identifier: r.u64(off::SYSTEM_IDENTIFIER)?,
            pg_control_version: r.u32(off::CONTROL_VERSION)?,
            catalog_version_no: r.u32(off::CATALOG_VERSION)?,
            state,
            time: r.i64(off::TIME)?,
            checkpoint: Lsn(r.u64(off::CHECKPOINT)?),
            checkpoint_copy: CheckPoint::decode(checkpoint_bytes, flavor)?,
            unlogged_lsn: Lsn(r.u64(off::UNLOGGED_LSN)?),
            min_recovery_point: Lsn(r.u64(off::MIN_RECOVERY_POINT)?),
            min_recovery_point_tli: TimeLineId(r.u32(off::MIN_RECOVERY_POINT_TLI)?),
            backup_start_point: Lsn(r.u64(off::BACKUP_START_POINT)?),
            backup_end_point: Lsn(r.u64(off::BACKUP_END_POINT)?),
            backup_end_required: r.bool(off::BACKUP_END_REQUIRED)?,
            wal_level: WalLevel(r.i32(off::WAL_LEVEL)?),
            wal_log_hints: r.bool(off::WAL_LOG_HINTS)?,
            max_connections: r.i32(off::MAX_CONNECTIONS)?,
            max_worker_processes: r.i32(off::MAX_WORKER_PROCESSES)?,
            max_wal_senders: r.i32(off::MAX_WAL_SENDERS)?,
            max_prepared_xacts: r.i32(off::MAX_PREPARED_XACTS)?,
            max_locks_per_xact: r.i32(off::MAX_LOCKS_PER_XACT)?,
            track_commit_timestamp: r.bool(off::TRACK_COMMIT_TIMESTAMP)?,
            max_align: r.u32(off::MAX_ALIGN)?,
            float_format: r.f64(off::FLOAT_FORMAT)?,
            blcksz: r.u32(off::BLCKSZ)?,
            relseg_size: r.u32(off::RELSEG_SIZE)?,
            xlog_blcksz: r.u32(off::XLOG_BLCKSZ)?,
            xlog_seg_size: r.u32(off::XLOG_SEG_SIZE)?,
            name_data_len: r.u32(off::NAME_DATA_LEN)?,
            index_max_keys: r.u32(off::INDEX_MAX_KEYS)?,
            toast_max_chunk_size: r.u32(off::TOAST_MAX_CHUNK_SIZE)?,
            loblksize: r.u32(off::LOBLKSIZE)?,
            float8_by_val: r.bool(off::FLOAT8_BY_VAL)?,
            data_checksum_version: r.u32(off::DATA_CHECKSUM_VERSION)?,
            default_char_signedness: char_signedness,
            mock_authentication_nonce: r.array(layout.nonce)?,
            crc: r.u32(layout.crc)?,
            prev_checkpoint: None,
            startup_timeline: None,
            enable_int_times: None,
            float4_by_val: None,
            bootstrap_segment: None,
            original: Original::default(),
        })
    }

    /// The file as `self.major` lays it out: [`PG_CONTROL_FILE_SIZE`] bytes, zero past the
    /// struct, CRC recomputed. Padding inside the struct is copied from the decoded file, so an
    /// unmodified file encodes to exactly the bytes it was decoded from.
    pub fn encode(&self) -> Vec<u8> {
        if self.flavor.formats().control == ControlLayout::OpenGauss {
            return opengauss::encode(self);
        }
        let layout = Layout::of(self.flavor);
        let mut buf = vec![0u8; PG_CONTROL_FILE_SIZE];
        let keep = self.original.0.len().min(layout.size);
        if let (Some(dst), Some(src)) = (buf.get_mut(..keep), self.original.0.get(..keep)) {
            dst.copy_from_slice(src);
        }
        self.encode_fields(&mut Writer::new(&mut buf), layout);
        let crc = crc32c::crc32c(buf.get(..layout.crc).unwrap_or_default());
        Writer::new(&mut buf).u32(layout.crc, crc);
        buf
    }

    fn encode_fields(&self, w: &mut Writer<'_>, layout: Layout) {
        w.u64(off::SYSTEM_IDENTIFIER, self.system_identifier);
        w.u32(off::CONTROL_VERSION, self.pg_control_version);
        w.u32(off::CATALOG_VERSION, self.catalog_version_no);
        w.i32(off::STATE, self.state.as_i32());
        w.i64(off::TIME, self.time);
        w.u64(off::CHECKPOINT, self.checkpoint.0);
        self.checkpoint_copy
            .encode_into(w, off::CHECKPOINT_COPY, self.flavor);
        w.u64(off::UNLOGGED_LSN, self.unlogged_lsn.0);
        w.u64(off::MIN_RECOVERY_POINT, self.min_recovery_point.0);
        w.u32(off::MIN_RECOVERY_POINT_TLI, self.min_recovery_point_tli.0);
        w.u64(off::BACKUP_START_POINT, self.backup_start_point.0);
        w.u64(off::BACKUP_END_POINT, self.backup_end_point.0);
        w.bool(off::BACKUP_END_REQUIRED, self.backup_end_required);
        w.i32(off::WAL_LEVEL, self.wal_level.0);
        w.bool(off::WAL_LOG_HINTS, self.wal_log_hints);
        w.i32(off::MAX_CONNECTIONS, self.max_connections);
        w.i32(off::MAX_WORKER_PROCESSES, self.max_worker_processes);
        w.i32(off::MAX_WAL_SENDERS, self.max_wal_senders);
        w.i32(off::MAX_PREPARED_XACTS, self.max_prepared_xacts);
        w.i32(off::MAX_LOCKS_PER_XACT, self.max_locks_per_xact);
        w.bool(off::TRACK_COMMIT_TIMESTAMP, self.track_commit_timestamp);
        w.u32(off::MAX_ALIGN, self.max_align);
        w.f64(off::FLOAT_FORMAT, self.float_format);
        w.u32(off::BLCKSZ, self.blcksz);
        w.u32(off::RELSEG_SIZE, self.relseg_size);
        w.u32(off::XLOG_BLCKSZ, self.xlog_blcksz);
        w.u32(off::XLOG_SEG_SIZE, self.xlog_seg_size);
        w.u32(off::NAME_DATA_LEN, self.name_data_len);
        w.u32(off::INDEX_MAX_KEYS, self.index_max_keys);
        w.u32(off::TOAST_MAX_CHUNK_SIZE, self.toast_max_chunk_size);
        w.u32(off::LOBLKSIZE, self.loblksize);
        w.bool(off::FLOAT8_BY_VAL, self.float8_by_val);
        w.u32(off::DATA_CHECKSUM_VERSION, self.data_checksum_version);
        if let Some(at) = layout.char_signedness {
            w.bool(at, self.default_char_signedness.unwrap_or(false));
        }
        w.bytes(layout.nonce, &self.mock_authentication_nonce);
    }

    /// The image of `global/pg_control.backup` for a flavor whose server keeps one (openGauss):
    /// the first [`BACKUP_FILE_SIZE`] bytes of [`ControlFile::encode`], so it holds the same
    /// values with a valid CRC. `None` for PostgreSQL.
    pub fn backup_image(&self) -> Option<Vec<u8>> {
        if self.flavor.formats().control != ControlLayout::OpenGauss {
            return None;
        }
        let mut image = self.encode();
        image.truncate(BACKUP_FILE_SIZE);
        Some(image)
    }

    /// The PostgreSQL fields the file's layout does not store (their values here mean the
    /// same as what the layout has: `min_recovery_point_tli` is the checkpoint's timeline,
    /// `data_checksum_version` 0, the settings false or 0), by their C names. Empty for
    /// PostgreSQL.
    pub fn missing_fields(&self) -> &'static [&'static str] {
        match self.flavor.formats().control {
            ControlLayout::PostgreSql => &[],
            ControlLayout::OpenGauss => opengauss::MISSING_FIELDS,
        }
    }

    /// Name of the WAL segment file holding the latest checkpoint's REDO point, on the
    /// checkpoint's timeline; `None` when the segment size is 0 (a corrupt file).
    pub fn redo_wal_file_name(&self) -> Option<String> {
        let seg_size = self.xlog_seg_size;
        (seg_size != 0).then(|| {
            let cp = &self.checkpoint_copy;
            cp.redo
                .segment(seg_size)
                .file_name(cp.this_timeline_id, seg_size)
        })
    }
}

/// Reads and decodes the control file of a data directory (`<dir>/global/pg_control`), or the
/// file itself when `datadir_or_file` is not a directory. Errors name the file.
pub fn read_control_file(datadir_or_file: &Path) -> crate::Result<ControlFile> {
    let path: PathBuf = if datadir_or_file.is_dir() {
        datadir_or_file.join(CONTROL_FILE_PATH)
    } else {
        datadir_or_file.to_path_buf()
    };
    let mut file = std::fs::File::open(&path).map_err(|e| Error::io("open file", &path, e))?;
    let mut bytes = Vec::with_capacity(PG_CONTROL_FILE_SIZE);
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io("read file", &path, e))?;
    ControlFile::decode(&bytes).map_err(|kind| Error::Control { path, kind })
}
