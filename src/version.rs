//! PostgreSQL major versions as data: [`PgMajor`] and the per-version constants every decoder
//! needs (WAL page magic, pg_control version, `bimg_info` bits, RM_DBASE info codes).
//!
//! No decoder matches on the version for layout; it asks a `PgMajor` for a capability or a
//! constant, so supporting a new major is a new row here, not copied code.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A supported PostgreSQL major version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "u32", try_from = "u32")]
pub enum PgMajor {
    /// PostgreSQL 14.
    V14,
    /// PostgreSQL 15.
    V15,
    /// PostgreSQL 16.
    V16,
    /// PostgreSQL 17.
    V17,
    /// PostgreSQL 18.
    V18,
}

/// Bits of `XLogRecordBlockImageHeader.bimg_info` for one major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BimgFlags {
    /// `BKPIMAGE_HAS_HOLE`.
    pub has_hole: u8,
    /// `BKPIMAGE_APPLY` (the image is restored at redo).
    pub apply: u8,
    /// Every bit that means "compressed" (14: `IS_COMPRESSED`; 15+: PGLZ | LZ4 | ZSTD).
    pub compressed_mask: u8,
    /// `BKPIMAGE_COMPRESS_PGLZ` (14: `BKPIMAGE_IS_COMPRESSED`, which is always pglz).
    pub pglz: u8,
    /// `BKPIMAGE_COMPRESS_LZ4`, 0 when the major has none.
    pub lz4: u8,
    /// `BKPIMAGE_COMPRESS_ZSTD`, 0 when the major has none.
    pub zstd: u8,
}

/// `xl_info` codes of RM_DBASE records (high nibble; `XLR_INFO_MASK` already removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DbaseInfo {
    /// Database created by copying a template's files (14: the only create record).
    pub create_file_copy: u8,
    /// Database created through WAL-logged block copies (15+), `None` before 15.
    pub create_wal_log: Option<u8>,
    /// `XLOG_DBASE_DROP`.
    pub drop: u8,
}

/// One row of the version table.
struct Row {
    major: PgMajor,
    number: u32,
    wal_page_magic: u16,
    control_version: u32,
    catversion_min: u32,
    catversion_max: u32,
}

/// The table. Catalog version ranges cover every release of the major, from its first beta's
/// `CATALOG_VERSION_NO` to the next major's; they only serve to name the major in errors when
/// `pg_control_version` alone cannot (14, 15 and 16 all use 1300).
const TABLE: [Row; 5] = [
    Row {
        major: PgMajor::V14,
        number: 14,
        wal_page_magic: 0xD10D,
        control_version: 1300,
        // 13's final catalog version is 202007201 and 13 also writes pg_control version 1300.
        catversion_min: 202_007_201 + 1,
        catversion_max: 202_107_181,
    },
    Row {
        major: PgMajor::V15,
        number: 15,
        wal_page_magic: 0xD110,
        control_version: 1300,
        catversion_min: 202_107_181 + 1,
        catversion_max: 202_209_061,
    },
    Row {
        major: PgMajor::V16,
        number: 16,
        wal_page_magic: 0xD113,
        control_version: 1300,
        catversion_min: 202_209_061 + 1,
        catversion_max: 202_307_071,
    },
    Row {
        major: PgMajor::V17,
        number: 17,
        wal_page_magic: 0xD116,
        control_version: 1700,
        catversion_min: 202_307_071 + 1,
        catversion_max: 202_406_281,
    },
    Row {
        major: PgMajor::V18,
        number: 18,
        wal_page_magic: 0xD118,
        control_version: 1800,
        catversion_min: 202_406_281 + 1,
        catversion_max: 202_506_291 + 99_999,
    },
];

impl PgMajor {
    /// Every supported major, oldest first.
    pub const ALL: [PgMajor; 5] = [
        PgMajor::V14,
        PgMajor::V15,
        PgMajor::V16,
        PgMajor::V17,
        PgMajor::V18,
    ];

    fn row(self) -> &'static Row {
        // TABLE is indexed in declaration order of the enum.
        &TABLE[self as usize]
    }

    /// The major as a number (14..=18).
    pub fn number(self) -> u32 {
        self.row().number
    }

    /// The major with this number, if supported.
    pub fn from_number(n: u32) -> Option<PgMajor> {
        TABLE.iter().find(|r| r.number == n).map(|r| r.major)
    }

    /// `XLOG_PAGE_MAGIC`.
    pub fn wal_page_magic(self) -> u16 {
        self.row().wal_page_magic
    }

    /// The major whose WAL pages carry `magic`.
    pub fn from_wal_page_magic(magic: u16) -> Option<PgMajor> {
        TABLE
            .iter()
            .find(|r| r.wal_page_magic == magic)
            .map(|r| r.major)
    }

    /// `PG_CONTROL_VERSION`.
    pub fn control_version(self) -> u32 {
        self.row().control_version
    }

    /// The major that wrote a control file with these two numbers, or `None` when no supported
    /// major matches both.
    pub fn from_control(control_version: u32, catalog_version: u32) -> Option<PgMajor> {
        TABLE
            .iter()
            .find(|r| {
                r.control_version == control_version
                    && (r.catversion_min..=r.catversion_max).contains(&catalog_version)
            })
            .map(|r| r.major)
    }

    /// `bimg_info` bits of full-page images in WAL records.
    pub fn bimg_flags(self) -> BimgFlags {
        if self == PgMajor::V14 {
            BimgFlags {
                has_hole: 0x01,
                apply: 0x04,
                compressed_mask: 0x02,
                pglz: 0x02,
                lz4: 0,
                zstd: 0,
            }
        } else {
            BimgFlags {
                has_hole: 0x01,
                apply: 0x02,
                compressed_mask: 0x1C,
                pglz: 0x04,
                lz4: 0x08,
                zstd: 0x10,
            }
        }
    }

    /// RM_DBASE info codes.
    pub fn dbase_info(self) -> DbaseInfo {
        if self == PgMajor::V14 {
            DbaseInfo {
                create_file_copy: 0x00,
                create_wal_log: None,
                drop: 0x10,
            }
        } else {
            DbaseInfo {
                create_file_copy: 0x00,
                create_wal_log: Some(0x10),
                drop: 0x20,
            }
        }
    }

    /// Whether the major writes `XLOG_CHECKPOINT_REDO` (0xE0) records (17+).
    pub fn has_checkpoint_redo_record(self) -> bool {
        self >= PgMajor::V17
    }

    /// Whether WAL may carry custom resource manager ids 128..=255 (15+).
    pub fn has_custom_rmgrs(self) -> bool {
        self >= PgMajor::V15
    }

    /// Whether `CheckPoint` carries `wal_level` (17+), which moves the fields after
    /// `fullPageWrites`.
    pub fn checkpoint_has_wal_level(self) -> bool {
        self >= PgMajor::V17
    }

    /// Whether pg_control has `default_char_signedness` (18+).
    pub fn control_has_char_signedness(self) -> bool {
        self >= PgMajor::V18
    }

    /// Whether a side's timeline is the max of checkpoint TLI and `minRecoveryPointTLI` when
    /// finding the divergence (pg_rewind 16+ rule; older ones used the checkpoint TLI only).
    pub fn uses_min_recovery_tli(self) -> bool {
        self >= PgMajor::V16
    }
}

impl From<PgMajor> for u32 {
    fn from(m: PgMajor) -> u32 {
        m.number()
    }
}

impl TryFrom<u32> for PgMajor {
    type Error = String;

    fn try_from(n: u32) -> Result<PgMajor, String> {
        PgMajor::from_number(n)
            .ok_or_else(|| format!("PostgreSQL {n} is not a supported major (14–18)"))
    }
}

impl fmt::Display for PgMajor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order() {
        for (i, m) in PgMajor::ALL.iter().enumerate() {
            assert_eq!(TABLE[i].major, *m);
            assert_eq!(PgMajor::from_number(m.number()), Some(*m));
            assert_eq!(PgMajor::from_wal_page_magic(m.wal_page_magic()), Some(*m));
        }
    }

    #[test]
    fn serialises_as_the_number() {
        assert_eq!(serde_json::to_string(&PgMajor::V15).unwrap(), "15");
        assert_eq!(serde_json::from_str::<PgMajor>("18").unwrap(), PgMajor::V18);
        assert!(serde_json::from_str::<PgMajor>("13").is_err());
    }

    #[test]
    fn control_versions() {
        // catalog versions of real releases: 14.x, 15.x, 16.x, 17.x, 18.x
        assert_eq!(PgMajor::from_control(1300, 202107181), Some(PgMajor::V14));
        assert_eq!(PgMajor::from_control(1300, 202209061), Some(PgMajor::V15));
        assert_eq!(PgMajor::from_control(1300, 202307071), Some(PgMajor::V16));
        assert_eq!(PgMajor::from_control(1700, 202406281), Some(PgMajor::V17));
        assert_eq!(PgMajor::from_control(1800, 202506291), Some(PgMajor::V18));
        assert_eq!(PgMajor::from_control(1700, 202107181), None);
        assert_eq!(PgMajor::from_control(1201, 201909212), None);
        assert_eq!(PgMajor::from_control(1300, 202007201), None);
    }
}
