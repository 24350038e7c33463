//! openGauss's control file (`ControlFileData`, `pg_control_version` 923, catalog version
//! 201611171) and its `CheckPoint`, decoded into the same [`ControlFile`] and [`CheckPoint`]
//! as PostgreSQL's.
//!
//! The struct is 232 bytes (x86-64): the CRC-32C at 224 covers bytes [0, 224), and 4 bytes of
//! padding follow it; the server writes 8192-byte files, zero after the struct, and also the
//! first 512 bytes of the same image as `global/pg_control.backup`, which it reads when the
//! CRC of `pg_control` is bad. Fields PostgreSQL has and openGauss does not are given the
//! value that means the same (see [`ControlFile::missing_fields`]); what only openGauss has
//! are the `Option` fields that are `None` for PostgreSQL.
//!
//! Phases 1, 2 and 7 (every read and write of a control file).

use super::io::{Reader, Writer};
use super::{CheckPoint, FullTransactionId, FLOAT_FORMAT_VALUE, PG_CONTROL_FILE_SIZE};
use super::{ControlError, ControlFile, DbState, Original, WalLevel};
use crate::cursor::Truncated;
use crate::flavor::Flavor;
use crate::lsn::{Lsn, TimeLineId};

/// Offsets in openGauss's `ControlFileData`.
mod off {
    pub const SYSTEM_IDENTIFIER: usize = 0;
    pub const CONTROL_VERSION: usize = 8;
    pub const CATALOG_VERSION: usize = 12;
    pub const TIMELINE: usize = 16;
    pub const STATE: usize = 20;
    pub const TIME: usize = 24;
    pub const CHECKPOINT: usize = 32;
    pub const PREV_CHECKPOINT: usize = 40;
    pub const CHECKPOINT_COPY: usize = 48;
    pub const MIN_RECOVERY_POINT: usize = 136;
    pub const BACKUP_START_POINT: usize = 144;
    pub const BACKUP_END_POINT: usize = 152;
    pub const BACKUP_END_REQUIRED: usize = 160;
    pub const WAL_LEVEL: usize = 164;
    pub const MAX_CONNECTIONS: usize = 168;
    pub const MAX_PREPARED_XACTS: usize = 172;
    pub const MAX_LOCKS_PER_XACT: usize = 176;
    pub const MAX_ALIGN: usize = 180;
    pub const FLOAT_FORMAT: usize = 184;
    pub const BLCKSZ: usize = 192;
    pub const RELSEG_SIZE: usize = 196;
    pub const XLOG_BLCKSZ: usize = 200;
    pub const XLOG_SEG_SIZE: usize = 204;
    pub const NAME_DATA_LEN: usize = 208;
    pub const INDEX_MAX_KEYS: usize = 212;
    pub const TOAST_MAX_CHUNK_SIZE: usize = 216;
    pub const ENABLE_INT_TIMES: usize = 220;
    pub const FLOAT4_BY_VAL: usize = 221;
    pub const FLOAT8_BY_VAL: usize = 222;
    pub const BOOTSTRAP_SEGMENT: usize = 223;
    /// `crc`; it covers every byte before it.
    pub const CRC: usize = 224;
    /// `sizeof(ControlFileData)`.
    pub const SIZE: usize = 232;
}

/// Offsets in openGauss's `CheckPoint` (88 bytes; 64-bit transaction and multixact ids).
mod cp {
    pub const REDO: usize = 0;
    pub const THIS_TLI: usize = 8;
    pub const FULL_PAGE_WRITES: usize = 12;
    pub const NEXT_XID: usize = 16;
    pub const NEXT_OID: usize = 24;
    pub const NEXT_MULTI: usize = 32;
    pub const NEXT_MULTI_OFFSET: usize = 40;
    pub const OLDEST_XID: usize = 48;
    pub const OLDEST_XID_DB: usize = 56;
    pub const TIME: usize = 64;
    pub const REMOVE_SEG: usize = 72;
    pub const OLDEST_ACTIVE_XID: usize = 80;
}

/// Size of the server's `global/pg_control.backup`: the first bytes of the control file image.
pub const BACKUP_FILE_SIZE: usize = 512;

/// The PostgreSQL fields openGauss's control file does not store.
pub(super) const MISSING_FIELDS: &[&str] = &[
    "unloggedLSN",
    "minRecoveryPointTLI",
    "wal_log_hints",
    "max_worker_processes",
    "max_wal_senders",
    "track_commit_timestamp",
    "loblksize",
    "data_checksum_version",
    "mock_authentication_nonce",
    "checkPointCopy.PrevTimeLineID",
    "checkPointCopy.oldestMulti",
    "checkPointCopy.oldestMultiDB",
    "checkPointCopy.oldestCommitTsXid",
    "checkPointCopy.newestCommitTsXid",
];

/// Decodes and validates an openGauss control file (`flavor` came from its version numbers):
/// at least the 232-byte struct, a matching CRC, the float format check value and a known
/// cluster state.
pub(super) fn decode(bytes: &[u8], flavor: Flavor) -> Result<ControlFile, ControlError> {
    if bytes.len() < off::SIZE {
        return Err(ControlError::Truncated {
            need: off::SIZE,
            have: bytes.len(),
        });
    }
    let r = Reader::new(bytes);
    let stored = r.u32(off::CRC)?;
    let computed = crc32c::crc32c(r.bytes(0, off::CRC)?);
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
    let mut file = decode_fields(&r, flavor, state)?;
    file.original = Original(r.bytes(0, off::SIZE)?.to_vec());
    Ok(file)
}

fn decode_fields(r: &Reader<'_>, flavor: Flavor, state: DbState) -> Result<ControlFile, Truncated> {
    let checkpoint_copy = decode_checkpoint(r.bytes(off::CHECKPOINT_COPY, CheckPoint::SIZE)?)?;
    Ok(ControlFile {
        flavor,
        system_identifier: r.u64(off::SYSTEM_IDENTIFIER)?,
        pg_control_version: r.u32(off::CONTROL_VERSION)?,
        catalog_version_no: r.u32(off::CATALOG_VERSION)?,
        state,
        time: r.i64(off::TIME)?,
        checkpoint: Lsn(r.u64(off::CHECKPOINT)?),
        checkpoint_copy,
        unlogged_lsn: Lsn::INVALID,
        min_recovery_point: Lsn(r.u64(off::MIN_RECOVERY_POINT)?),
        // Not stored: recovery to the minimum point stays on the checkpoint's timeline.
        min_recovery_point_tli: checkpoint_copy.this_timeline_id,
        backup_start_point: Lsn(r.u64(off::BACKUP_START_POINT)?),
        backup_end_point: Lsn(r.u64(off::BACKUP_END_POINT)?),
        backup_end_required: r.bool(off::BACKUP_END_REQUIRED)?,
        wal_level: WalLevel(r.i32(off::WAL_LEVEL)?),
        wal_log_hints: false,
        max_connections: r.i32(off::MAX_CONNECTIONS)?,
        max_worker_processes: 0,
        max_wal_senders: 0,
        max_prepared_xacts: r.i32(off::MAX_PREPARED_XACTS)?,
        max_locks_per_xact: r.i32(off::MAX_LOCKS_PER_XACT)?,
        track_commit_timestamp: false,
        max_align: r.u32(off::MAX_ALIGN)?,
        float_format: r.f64(off::FLOAT_FORMAT)?,
        blcksz: r.u32(off::BLCKSZ)?,
        relseg_size: r.u32(off::RELSEG_SIZE)?,
        xlog_blcksz: r.u32(off::XLOG_BLCKSZ)?,
        xlog_seg_size: r.u32(off::XLOG_SEG_SIZE)?,
        name_data_len: r.u32(off::NAME_DATA_LEN)?,
        index_max_keys: r.u32(off::INDEX_MAX_KEYS)?,
        toast_max_chunk_size: r.u32(off::TOAST_MAX_CHUNK_SIZE)?,
        loblksize: 0,
        float8_by_val: r.bool(off::FLOAT8_BY_VAL)?,
        data_checksum_version: 0,
        default_char_signedness: None,
        mock_authentication_nonce: [0; super::MOCK_AUTH_NONCE_LEN],
        crc: r.u32(off::CRC)?,
        prev_checkpoint: Some(Lsn(r.u64(off::PREV_CHECKPOINT)?)),
        startup_timeline: Some(TimeLineId(r.u32(off::TIMELINE)?)),
        enable_int_times: Some(r.bool(off::ENABLE_INT_TIMES)?),
        float4_by_val: Some(r.bool(off::FLOAT4_BY_VAL)?),
        bootstrap_segment: Some(r.bool(off::BOOTSTRAP_SEGMENT)?),
        original: Original::default(),
    })
}

/// The file as openGauss writes it: 8192 bytes, zero past the struct, the padding inside it
/// copied from the decoded file, CRC recomputed. The PostgreSQL-only fields are not written;
/// an openGauss-only field that is `None` keeps the decoded file's bytes (zero in a new one).
pub(super) fn encode(f: &ControlFile) -> Vec<u8> {
    let mut buf = vec![0u8; PG_CONTROL_FILE_SIZE];
    let keep = f.original.0.len().min(off::SIZE);
    if let (Some(dst), Some(src)) = (buf.get_mut(..keep), f.original.0.get(..keep)) {
        dst.copy_from_slice(src);
    }
    let mut w = Writer::new(&mut buf);
    w.u64(off::SYSTEM_IDENTIFIER, f.system_identifier);
    w.u32(off::CONTROL_VERSION, f.pg_control_version);
    w.u32(off::CATALOG_VERSION, f.catalog_version_no);
    if let Some(tli) = f.startup_timeline {
        w.u32(off::TIMELINE, tli.0);
    }
    w.i32(off::STATE, f.state.as_i32());
    w.i64(off::TIME, f.time);
    w.u64(off::CHECKPOINT, f.checkpoint.0);
    if let Some(prev) = f.prev_checkpoint {
        w.u64(off::PREV_CHECKPOINT, prev.0);
    }
    encode_checkpoint(&f.checkpoint_copy, &mut w, off::CHECKPOINT_COPY);
    w.u64(off::MIN_RECOVERY_POINT, f.min_recovery_point.0);
    w.u64(off::BACKUP_START_POINT, f.backup_start_point.0);
    w.u64(off::BACKUP_END_POINT, f.backup_end_point.0);
    w.bool(off::BACKUP_END_REQUIRED, f.backup_end_required);
    encode_settings(f, &mut w);
    let crc = crc32c::crc32c(buf.get(..off::CRC).unwrap_or_default());
    Writer::new(&mut buf).u32(off::CRC, crc);
    buf
}

fn encode_settings(f: &ControlFile, w: &mut Writer<'_>) {
    w.i32(off::WAL_LEVEL, f.wal_level.0);
    w.i32(off::MAX_CONNECTIONS, f.max_connections);
    w.i32(off::MAX_PREPARED_XACTS, f.max_prepared_xacts);
    w.i32(off::MAX_LOCKS_PER_XACT, f.max_locks_per_xact);
    w.u32(off::MAX_ALIGN, f.max_align);
    w.f64(off::FLOAT_FORMAT, f.float_format);
    w.u32(off::BLCKSZ, f.blcksz);
    w.u32(off::RELSEG_SIZE, f.relseg_size);
    w.u32(off::XLOG_BLCKSZ, f.xlog_blcksz);
    w.u32(off::XLOG_SEG_SIZE, f.xlog_seg_size);
    w.u32(off::NAME_DATA_LEN, f.name_data_len);
    w.u32(off::INDEX_MAX_KEYS, f.index_max_keys);
    w.u32(off::TOAST_MAX_CHUNK_SIZE, f.toast_max_chunk_size);
    if let Some(v) = f.enable_int_times {
        w.bool(off::ENABLE_INT_TIMES, v);
    }
    if let Some(v) = f.float4_by_val {
        w.bool(off::FLOAT4_BY_VAL, v);
    }
    w.bool(off::FLOAT8_BY_VAL, f.float8_by_val);
    if let Some(v) = f.bootstrap_segment {
        w.bool(off::BOOTSTRAP_SEGMENT, v);
    }
}

/// Decodes openGauss's 88-byte `CheckPoint` from the start of `bytes` (a checkpoint record's
/// main data may be the longer `CheckPointUndo`; its tail is [`CheckPointUndo`]).
pub(super) fn decode_checkpoint(bytes: &[u8]) -> Result<CheckPoint, Truncated> {
    let r = Reader::new(bytes);
    r.bytes(0, CheckPoint::SIZE)?;
    let this_timeline_id = TimeLineId(r.u32(cp::THIS_TLI)?);
    Ok(CheckPoint {
        redo: Lsn(r.u64(cp::REDO)?),
        this_timeline_id,
        prev_timeline_id: this_timeline_id,
        full_page_writes: r.bool(cp::FULL_PAGE_WRITES)?,
        wal_level: None,
        next_xid: FullTransactionId(r.u64(cp::NEXT_XID)?),
        next_oid: r.u32(cp::NEXT_OID)?,
        next_multi: r.u64(cp::NEXT_MULTI)?,
        next_multi_offset: r.u64(cp::NEXT_MULTI_OFFSET)?,
        oldest_xid: r.u64(cp::OLDEST_XID)?,
        oldest_xid_db: r.u32(cp::OLDEST_XID_DB)?,
        oldest_multi: 0,
        oldest_multi_db: 0,
        time: r.i64(cp::TIME)?,
        oldest_commit_ts_xid: 0,
        newest_commit_ts_xid: 0,
        oldest_active_xid: r.u64(cp::OLDEST_ACTIVE_XID)?,
        remove_seg: Some(r.u64(cp::REMOVE_SEG)?),
    })
}

/// Writes openGauss's `CheckPoint` fields at `base`, padding untouched. A `remove_seg` of
/// `None` is left as the bytes there (zero in a new buffer).
pub(super) fn encode_checkpoint(c: &CheckPoint, w: &mut Writer<'_>, base: usize) {
    w.u64(base + cp::REDO, c.redo.0);
    w.u32(base + cp::THIS_TLI, c.this_timeline_id.0);
    w.bool(base + cp::FULL_PAGE_WRITES, c.full_page_writes);
    w.u64(base + cp::NEXT_XID, c.next_xid.0);
    w.u32(base + cp::NEXT_OID, c.next_oid);
    w.u64(base + cp::NEXT_MULTI, c.next_multi);
    w.u64(base + cp::NEXT_MULTI_OFFSET, c.next_multi_offset);
    w.u64(base + cp::OLDEST_XID, c.oldest_xid);
    w.u32(base + cp::OLDEST_XID_DB, c.oldest_xid_db);
    w.i64(base + cp::TIME, c.time);
    if let Some(seg) = c.remove_seg {
        w.u64(base + cp::REMOVE_SEG, seg);
    }
    w.u64(base + cp::OLDEST_ACTIVE_XID, c.oldest_active_xid);
}

/// The fields openGauss's checkpoint records add after the 88-byte `CheckPoint` when their
/// main data is the 120-byte `CheckPointUndo` (every checkpoint but the bootstrap one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckPointUndo {
    /// `next_csn`: the next commit sequence number.
    pub next_csn: u64,
    /// `length`: the size of the struct the record holds (120).
    pub length: u64,
    /// `recent_global_xmin`.
    pub recent_global_xmin: u64,
    /// `globalRecycleXid`: the oldest xid whose undo is kept.
    pub global_recycle_xid: u64,
}

impl CheckPointUndo {
    /// Size of `CheckPointUndo`, the `CheckPoint` included.
    pub const SIZE: usize = 120;

    /// The undo fields of a checkpoint record's main data; `None` when it is shorter than
    /// `CheckPointUndo` (the bootstrap record's bare `CheckPoint`).
    pub fn decode(main_data: &[u8]) -> Option<CheckPointUndo> {
        let r = Reader::new(main_data);
        r.bytes(0, Self::SIZE).ok()?;
        Some(CheckPointUndo {
            next_csn: r.u64(88).ok()?,
            length: r.u64(96).ok()?,
            recent_global_xmin: r.u64(104).ok()?,
            global_recycle_xid: r.u64(112).ok()?,
        })
    }
}
