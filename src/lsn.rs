//! WAL positions and WAL segment arithmetic: [`Lsn`], [`TimeLineId`], [`XLogSegNo`] and the
//! 24-hex-digit segment file names (`TTTTTTTTXXXXXXXXYYYYYYYY`).
//!
//! Used by every phase: divergence (timeline history), the WAL scan, WAL streaming and the
//! `backup_label` written at the end.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A position in the WAL (a byte offset in the endless WAL stream). Prints and parses as
/// PostgreSQL's `X/X` (upper-case hex, no leading zeros).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `InvalidXLogRecPtr`.
    pub const INVALID: Lsn = Lsn(0);

    /// True unless this is `0/0`.
    pub fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// Offset of this position inside its WAL segment of `seg_size` bytes.
    pub fn segment_offset(self, seg_size: u32) -> u64 {
        self.0 % u64::from(seg_size)
    }

    /// Offset of this position inside its WAL page of `page_size` bytes.
    pub fn page_offset(self, page_size: u32) -> u64 {
        self.0 % u64::from(page_size)
    }

    /// The segment that holds this position.
    pub fn segment(self, seg_size: u32) -> XLogSegNo {
        XLogSegNo(self.0 / u64::from(seg_size))
    }

    /// Rounds up to the next multiple of 8 (`MAXALIGN`), saturating.
    pub fn align8(self) -> Lsn {
        Lsn(self.0.saturating_add(7) & !7)
    }

    /// `self + n`, or `None` on overflow.
    pub fn checked_add(self, n: u64) -> Option<Lsn> {
        self.0.checked_add(n).map(Lsn)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lsn({self})")
    }
}

/// The text was not an `X/X` WAL position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid WAL location \"{0}\"")]
pub struct ParseLsnError(pub String);

impl FromStr for Lsn {
    type Err = ParseLsnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseLsnError(s.to_string());
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        let part = |p: &str| {
            if p.is_empty() || p.len() > 8 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            u32::from_str_radix(p, 16).map_err(|_| err())
        };
        Ok(Lsn((u64::from(part(hi)?) << 32) | u64::from(part(lo)?)))
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A timeline identifier (`TimeLineID`). Timeline 0 is invalid; the first timeline is 1.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TimeLineId(pub u32);

impl fmt::Display for TimeLineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A WAL segment number (`XLogSegNo`): the position divided by the segment size.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct XLogSegNo(pub u64);

/// Smallest WAL segment size PostgreSQL accepts (1 MiB).
pub const MIN_WAL_SEG_SIZE: u32 = 1 << 20;
/// Largest WAL segment size PostgreSQL accepts (1 GiB).
pub const MAX_WAL_SEG_SIZE: u32 = 1 << 30;

/// True when `size` is a power of two between 1 MiB and 1 GiB, inclusive (`IsValidWalSegSize`).
pub fn is_valid_seg_size(size: u32) -> bool {
    size.is_power_of_two() && (MIN_WAL_SEG_SIZE..=MAX_WAL_SEG_SIZE).contains(&size)
}

impl XLogSegNo {
    /// Segments per 4 GiB "xlogid" for this segment size (the middle 8 hex digits of a name).
    fn per_xlogid(seg_size: u32) -> u64 {
        0x1_0000_0000 / u64::from(seg_size)
    }

    /// The segment after this one.
    pub fn next(self) -> XLogSegNo {
        XLogSegNo(self.0.saturating_add(1))
    }

    /// The first position of this segment.
    pub fn start_lsn(self, seg_size: u32) -> Lsn {
        Lsn(self.0.saturating_mul(u64::from(seg_size)))
    }

    /// The segment file name `%08X%08X%08X` (`XLogFileName`) on timeline `tli`.
    pub fn file_name(self, tli: TimeLineId, seg_size: u32) -> String {
        let per = Self::per_xlogid(seg_size);
        format!("{:08X}{:08X}{:08X}", tli.0, self.0 / per, self.0 % per)
    }

    /// Parses a segment file name into its timeline and segment (`XLogFromFileName`). Returns
    /// `None` for anything that is not exactly 24 hex digits with a valid low part.
    pub fn parse_file_name(name: &str, seg_size: u32) -> Option<(TimeLineId, XLogSegNo)> {
        if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let tli = u32::from_str_radix(name.get(0..8)?, 16).ok()?;
        let log = u64::from_str_radix(name.get(8..16)?, 16).ok()?;
        let seg = u64::from_str_radix(name.get(16..24)?, 16).ok()?;
        let per = Self::per_xlogid(seg_size);
        if seg >= per {
            return None;
        }
        Some((
            TimeLineId(tli),
            XLogSegNo(log.checked_mul(per)?.checked_add(seg)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trip() {
        for (text, v) in [
            ("0/0", 0u64),
            ("0/1723A50", 0x1723A50),
            ("16/B374D848", 0x16_B374_D848),
        ] {
            let l: Lsn = text.parse().unwrap();
            assert_eq!(l, Lsn(v));
            assert_eq!(l.to_string(), text);
        }
        assert_eq!("0/0001".parse::<Lsn>().unwrap(), Lsn(1));
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "1",
            "G/0",
            "0/123456789",
            "0/-1",
            " 0/1",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn segment_names() {
        let seg = 16 << 20;
        let l: Lsn = "1/2A000028".parse().unwrap();
        assert_eq!(
            l.segment(seg).file_name(TimeLineId(3), seg),
            "00000003000000010000002A"
        );
        let (tli, no) = XLogSegNo::parse_file_name("00000003000000010000002A", seg).unwrap();
        assert_eq!((tli, no), (TimeLineId(3), l.segment(seg)));
        // 1 GiB segments: only 4 per xlogid, so a low part of 4 is invalid.
        assert!(XLogSegNo::parse_file_name("000000010000000000000004", 1 << 30).is_none());
        assert_eq!(
            XLogSegNo(5).file_name(TimeLineId(1), 1 << 30),
            "000000010000000100000001"
        );
        assert_eq!(
            XLogSegNo(0x1234).file_name(TimeLineId(1), 1 << 20),
            "000000010000000100000234"
        );
        assert!(XLogSegNo::parse_file_name("00000001000000010000002", seg).is_none());
        assert!(XLogSegNo::parse_file_name("00000001000000010000002X", seg).is_none());
    }

    #[test]
    fn seg_sizes() {
        assert!(
            is_valid_seg_size(1 << 20) && is_valid_seg_size(1 << 30) && is_valid_seg_size(16 << 20)
        );
        assert!(
            !is_valid_seg_size(1 << 19) && !is_valid_seg_size(3 << 20) && !is_valid_seg_size(0)
        );
    }
}

/// A byte count for people, in pg_basebackup's units: bytes below 1 kB, kB below 10 MB, MB
/// below 10 GB, then GB (1 kB = 1024 bytes). JSON keeps the raw count.
pub fn human_bytes(n: u64) -> String {
    const K: u64 = 1024;
    match n {
        n if n < K => format!("{n} bytes"),
        n if n < 10 * K * K => format!("{} kB", n.div_ceil(K)),
        n if n < 10 * K * K * K => format!("{} MB", n.div_ceil(K * K)),
        n => format!("{} GB", n.div_ceil(K * K * K)),
    }
}

#[cfg(test)]
mod human_tests {
    use super::human_bytes;

    #[test]
    fn units() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(8192), "8 kB");
        assert_eq!(human_bytes(9_079_058), "8867 kB");
        assert_eq!(human_bytes(11 << 20), "11 MB");
        assert_eq!(human_bytes(12 << 30), "12 GB");
    }
}
