//! The `CheckPoint` struct: the copy of the latest checkpoint inside pg_control, and the main data
//! of `XLOG_CHECKPOINT_SHUTDOWN` / `XLOG_CHECKPOINT_ONLINE` WAL records. Also the small value types
//! pg_control shares with it ([`DbState`], [`WalLevel`], [`FullTransactionId`]).
//!
//! Used by the inspect phase (pg_control) and by the WAL scan (checkpoint records), so decoding is
//! a standalone function of the bytes and the major.

use super::io::{Reader, Writer};
use crate::cursor::Truncated;
use crate::flavor::{ControlLayout, Flavor};
use crate::lsn::{Lsn, TimeLineId};
use std::fmt;

/// Byte offsets inside `CheckPoint` (x86-64 alignment). Every major from 14 to 18 has the same
/// offsets: 17's `wal_level` went into what was alignment padding after `fullPageWrites`.
mod off {
    pub const REDO: usize = 0;
    pub const THIS_TLI: usize = 8;
    pub const PREV_TLI: usize = 12;
    pub const FULL_PAGE_WRITES: usize = 16;
    pub const WAL_LEVEL: usize = 20;
    pub const NEXT_XID: usize = 24;
    pub const NEXT_OID: usize = 32;
    pub const NEXT_MULTI: usize = 36;
    pub const NEXT_MULTI_OFFSET: usize = 40;
    pub const OLDEST_XID: usize = 44;
    pub const OLDEST_XID_DB: usize = 48;
    pub const OLDEST_MULTI: usize = 52;
    pub const OLDEST_MULTI_DB: usize = 56;
    pub const TIME: usize = 64;
    pub const OLDEST_COMMIT_TS_XID: usize = 72;
    pub const NEWEST_COMMIT_TS_XID: usize = 76;
    pub const OLDEST_ACTIVE_XID: usize = 80;
}

/// State of the cluster recorded in pg_control (`DBState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DbState {
    /// `DB_STARTUP` (0).
    StartingUp,
    /// `DB_SHUTDOWNED` (1): cleanly stopped primary.
    ShutDown,
    /// `DB_SHUTDOWNED_IN_RECOVERY` (2): cleanly stopped standby.
    ShutDownInRecovery,
    /// `DB_SHUTDOWNING` (3).
    ShuttingDown,
    /// `DB_IN_CRASH_RECOVERY` (4).
    InCrashRecovery,
    /// `DB_IN_ARCHIVE_RECOVERY` (5): running standby (or archive recovery).
    InArchiveRecovery,
    /// `DB_IN_PRODUCTION` (6): running primary, or crashed one.
    InProduction,
}

impl DbState {
    /// Every state, in the order of its numeric value (0..=6).
    pub const ALL: [DbState; 7] = [
        DbState::StartingUp,
        DbState::ShutDown,
        DbState::ShutDownInRecovery,
        DbState::ShuttingDown,
        DbState::InCrashRecovery,
        DbState::InArchiveRecovery,
        DbState::InProduction,
    ];

    /// The state stored as `value`, if it is one of 0..=6.
    pub fn from_i32(value: i32) -> Option<DbState> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The value stored in the file.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The words pg_controldata prints for this state (untranslated).
    pub fn as_str(self) -> &'static str {
        match self {
            DbState::StartingUp => "starting up",
            DbState::ShutDown => "shut down",
            DbState::ShutDownInRecovery => "shut down in recovery",
            DbState::ShuttingDown => "shutting down",
            DbState::InCrashRecovery => "in crash recovery",
            DbState::InArchiveRecovery => "in archive recovery",
            DbState::InProduction => "in production",
        }
    }
}

impl fmt::Display for DbState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `wal_level` setting as stored (`WalLevel` enum). Kept as the raw number so that any stored
/// value survives a decode/encode round trip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WalLevel(pub i32);

impl WalLevel {
    /// `WAL_LEVEL_MINIMAL`.
    pub const MINIMAL: WalLevel = WalLevel(0);
    /// `WAL_LEVEL_REPLICA`.
    pub const REPLICA: WalLevel = WalLevel(1);
    /// `WAL_LEVEL_LOGICAL`.
    pub const LOGICAL: WalLevel = WalLevel(2);
}

impl fmt::Display for WalLevel {
    /// pg_controldata's words: `minimal`, `replica`, `logical`, else `unrecognized wal_level`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match *self {
            WalLevel::MINIMAL => "minimal",
            WalLevel::REPLICA => "replica",
            WalLevel::LOGICAL => "logical",
            _ => "unrecognized wal_level",
        })
    }
}

/// A 64-bit transaction id: epoch in the high 32 bits, xid in the low 32. Prints as
/// pg_controldata does, `epoch:xid` (e.g. `0:753`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FullTransactionId(pub u64);

impl FullTransactionId {
    /// The number of xid wraparounds.
    pub fn epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The 32-bit xid.
    pub fn xid(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for FullTransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch(), self.xid())
    }
}

/// A checkpoint (`CheckPoint`), as stored in pg_control's `checkPointCopy` and as the main data of
/// checkpoint WAL records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckPoint {
    /// REDO start point: replay of this checkpoint starts here.
    pub redo: Lsn,
    /// Timeline the checkpoint was written on.
    pub this_timeline_id: TimeLineId,
    /// Previous timeline when the checkpoint ends one (else equal to `this_timeline_id`;
    /// openGauss does not store it: always `this_timeline_id`).
    pub prev_timeline_id: TimeLineId,
    /// `full_page_writes` at the time of the checkpoint.
    pub full_page_writes: bool,
    /// `wal_level` at the time of the checkpoint; `None` before 17, which did not store it.
    pub wal_level: Option<WalLevel>,
    /// Next free transaction id, with epoch.
    pub next_xid: FullTransactionId,
    /// Next free OID.
    pub next_oid: u32,
    /// Next free MultiXactId (32 bits in PostgreSQL, 64 in openGauss).
    pub next_multi: u64,
    /// Next free MultiXact offset (32 bits in PostgreSQL, 64 in openGauss).
    pub next_multi_offset: u64,
    /// Cluster-wide minimum `datfrozenxid` (32 bits in PostgreSQL, 64 in openGauss).
    pub oldest_xid: u64,
    /// Database holding `oldest_xid`.
    pub oldest_xid_db: u32,
    /// Cluster-wide minimum `datminmxid`.
    pub oldest_multi: u32,
    /// Database holding `oldest_multi`. (openGauss stores neither: 0.)
    pub oldest_multi_db: u32,
    /// Time of the checkpoint, seconds since the Unix epoch.
    pub time: i64,
    /// Oldest xid with a valid commit timestamp. (openGauss stores neither timestamp xid: 0.)
    pub oldest_commit_ts_xid: u32,
    /// Newest xid with a valid commit timestamp.
    pub newest_commit_ts_xid: u32,
    /// Oldest xid still running (online checkpoints with hot standby info; else 0). 32 bits
    /// in PostgreSQL, 64 in openGauss.
    pub oldest_active_xid: u64,
    /// openGauss's `remove_seg`: the WAL segment number up to which WAL may be removed; `None`
    /// for PostgreSQL, which does not store it.
    pub remove_seg: Option<u64>,
}

impl CheckPoint {
    /// `sizeof(CheckPoint)` in bytes, the same for every supported flavor.
    pub const SIZE: usize = 88;

    /// Decodes the first [`CheckPoint::SIZE`] bytes of `bytes` as written by `flavor` (its
    /// control layout picks the decoder). Bytes past that are ignored (openGauss's records
    /// carry a longer `CheckPointUndo`); fewer is an error.
    pub fn decode(bytes: &[u8], flavor: Flavor) -> Result<CheckPoint, Truncated> {
        if flavor.formats().control == ControlLayout::OpenGauss {
            return super::opengauss::decode_checkpoint(bytes);
        }
        let r = Reader::new(bytes);
        r.bytes(0, Self::SIZE)?;
        let wal_level = match flavor.checkpoint_has_wal_level() {
            true => Some(WalLevel(r.i32(off::WAL_LEVEL)?)),
            false => None,
        };
        Ok(CheckPoint {
            redo: Lsn(r.u64(off::REDO)?),
            this_timeline_id: TimeLineId(r.u32(off::THIS_TLI)?),
            prev_timeline_id: TimeLineId(r.u32(off::PREV_TLI)?),
            full_page_writes: r.bool(off::FULL_PAGE_WRITES)?,
            wal_level,
            next_xid: FullTransactionId(r.u64(off::NEXT_XID)?),
            next_oid: r.u32(off::NEXT_OID)?,
            next_multi: r.u32(off::NEXT_MULTI)?.into(),
            next_multi_offset: r.u32(off::NEXT_MULTI_OFFSET)?.into(),
            oldest_xid: r.u32(off::OLDEST_XID)?.into(),
            oldest_xid_db: r.u32(off::OLDEST_XID_DB)?,
            oldest_multi: r.u32(off::OLDEST_MULTI)?,
            oldest_multi_db: r.u32(off::OLDEST_MULTI_DB)?,
            time: r.i64(off::TIME)?,
            oldest_commit_ts_xid: r.u32(off::OLDEST_COMMIT_TS_XID)?,
            newest_commit_ts_xid: r.u32(off::NEWEST_COMMIT_TS_XID)?,
            oldest_active_xid: r.u32(off::OLDEST_ACTIVE_XID)?.into(),
            remove_seg: None,
        })
    }

    /// The struct as `major` writes it, alignment padding zeroed (as PostgreSQL's `MemSet` does
    /// before filling a checkpoint). A `wal_level` of `None` is written as 0 on 17+.
    pub fn encode(&self, flavor: Flavor) -> [u8; CheckPoint::SIZE] {
        let mut out = [0u8; CheckPoint::SIZE];
        self.encode_into(&mut Writer::new(&mut out), 0, flavor);
        out
    }

    /// Writes the fields at `base` in `w`, leaving the padding bytes between them untouched so
    /// that a re-encoded pg_control keeps whatever the server left there.
    /// PostgreSQL's 32-bit fields take the low 32 bits of the wider ones (a value decoded from
    /// PostgreSQL bytes always fits).
    pub(super) fn encode_into(&self, w: &mut Writer<'_>, base: usize, flavor: Flavor) {
        if flavor.formats().control == ControlLayout::OpenGauss {
            return super::opengauss::encode_checkpoint(self, w, base);
        }
        w.u64(base + off::REDO, self.redo.0);
        w.u32(base + off::THIS_TLI, self.this_timeline_id.0);
        w.u32(base + off::PREV_TLI, self.prev_timeline_id.0);
        w.bool(base + off::FULL_PAGE_WRITES, self.full_page_writes);
        if flavor.checkpoint_has_wal_level() {
            let level = self.wal_level.unwrap_or_default();
            w.i32(base + off::WAL_LEVEL, level.0);
        }
        w.u64(base + off::NEXT_XID, self.next_xid.0);
        w.u32(base + off::NEXT_OID, self.next_oid);
        w.u32(base + off::NEXT_MULTI, self.next_multi as u32);
        w.u32(base + off::NEXT_MULTI_OFFSET, self.next_multi_offset as u32);
        w.u32(base + off::OLDEST_XID, self.oldest_xid as u32);
        w.u32(base + off::OLDEST_XID_DB, self.oldest_xid_db);
        w.u32(base + off::OLDEST_MULTI, self.oldest_multi);
        w.u32(base + off::OLDEST_MULTI_DB, self.oldest_multi_db);
        w.i64(base + off::TIME, self.time);
        w.u32(base + off::OLDEST_COMMIT_TS_XID, self.oldest_commit_ts_xid);
        w.u32(base + off::NEWEST_COMMIT_TS_XID, self.newest_commit_ts_xid);
        w.u32(base + off::OLDEST_ACTIVE_XID, self.oldest_active_xid as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(flavor: Flavor) -> CheckPoint {
        CheckPoint {
            redo: Lsn(0x1_2345_6789),
            this_timeline_id: TimeLineId(3),
            prev_timeline_id: TimeLineId(2),
            full_page_writes: true,
            wal_level: flavor
                .checkpoint_has_wal_level()
                .then_some(WalLevel::LOGICAL),
            next_xid: FullTransactionId((7 << 32) | 753),
            next_oid: 24576,
            next_multi: 5,
            next_multi_offset: 9,
            oldest_xid: 716,
            oldest_xid_db: 1,
            oldest_multi: 2,
            oldest_multi_db: 4,
            time: 1_700_000_000,
            oldest_commit_ts_xid: 11,
            newest_commit_ts_xid: 12,
            oldest_active_xid: 13,
            remove_seg: None,
        }
    }

    #[test]
    fn round_trip_every_major() {
        for flavor in Flavor::POSTGRESQL {
            let cp = sample(flavor);
            let bytes = cp.encode(flavor);
            assert_eq!(CheckPoint::decode(&bytes, flavor), Ok(cp), "{flavor}");
        }
    }

    #[test]
    fn wal_level_only_from_17() {
        let bytes = sample(Flavor::Pg17).encode(Flavor::Pg17);
        assert_eq!(bytes[off::WAL_LEVEL], 2);
        let old = CheckPoint::decode(&bytes, Flavor::Pg16).unwrap();
        assert_eq!(old.wal_level, None);
        assert_eq!(sample(Flavor::Pg16).encode(Flavor::Pg16)[off::WAL_LEVEL], 0);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let bytes = sample(Flavor::Pg18).encode(Flavor::Pg18);
        for len in [0, 1, 20, CheckPoint::SIZE - 1] {
            let err = CheckPoint::decode(&bytes[..len], Flavor::Pg18).unwrap_err();
            assert_eq!(err.have, len);
        }
    }

    #[test]
    fn value_types_print_like_pg_controldata() {
        assert_eq!(FullTransactionId(753).to_string(), "0:753");
        assert_eq!(FullTransactionId((2 << 32) | 5).to_string(), "2:5");
        assert_eq!(WalLevel::REPLICA.to_string(), "replica");
        assert_eq!(WalLevel(9).to_string(), "unrecognized wal_level");
        let words: Vec<&str> = DbState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            [
                "starting up",
                "shut down",
                "shut down in recovery",
                "shutting down",
                "in crash recovery",
                "in archive recovery",
                "in production"
            ]
        );
        for (i, s) in DbState::ALL.iter().enumerate() {
            assert_eq!(DbState::from_i32(i as i32), Some(*s));
            assert_eq!(s.as_i32(), i as i32);
        }
        assert_eq!(DbState::from_i32(7), None);
        assert_eq!(DbState::from_i32(-1), None);
    }
}
