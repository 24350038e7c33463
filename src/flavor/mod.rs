//! Which database wrote a data directory, as data: a [`Flavor`] is a product and its major
//! version, and every decoder and phase asks it for a constant or a capability instead of
//! comparing versions. Supporting another major is a row of its table; another product is its
//! rows, its [`ProductTable`] (directory names, exclusion list, SQL and replication command
//! texts, the files of the finish) and its own decoders where its formats differ.
//!
//! Used by every phase: the control file and WAL decoders (formats), the file map (names and
//! exclusions), the sources (queries and commands) and the finish (marker files).

mod formats;
mod name;
mod product;

pub use formats::{ControlLayout, Formats, RecordFormat, RelationFiles};
use name::FlavorName;
pub use product::{Product, ProductTable, SourceProtocol};
use serde::{Deserialize, Serialize};

/// A supported database: product and major version. Not ordered: what differs between two
/// flavors is a capability of each, never "newer than". Serialised as the major's number for
/// PostgreSQL (`15`) and as `"opengauss"` for openGauss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "FlavorName", try_from = "FlavorName")]
pub enum Flavor {
    /// PostgreSQL 14.
    Pg14,
    /// PostgreSQL 15.
    Pg15,
    /// PostgreSQL 16.
    Pg16,
    /// PostgreSQL 17.
    Pg17,
    /// PostgreSQL 18.
    Pg18,
    /// openGauss 2.1 to 7.0 (`pg_control` version 923, catalog 201611171, the block
    /// references with `last_lsn` that 2.1 introduced).
    OpenGauss,
}

/// Bits of `XLogRecordBlockImageHeader.bimg_info` for one flavor.
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
    /// `BKPIMAGE_COMPRESS_LZ4`, 0 when the flavor has none.
    pub lz4: u8,
    /// `BKPIMAGE_COMPRESS_ZSTD`, 0 when the flavor has none.
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

const BIMG_14: BimgFlags = BimgFlags {
    has_hole: 0x01,
    apply: 0x04,
    compressed_mask: 0x02,
    pglz: 0x02,
    lz4: 0,
    zstd: 0,
};
const BIMG_15: BimgFlags = BimgFlags {
    has_hole: 0x01,
    apply: 0x02,
    compressed_mask: 0x1C,
    pglz: 0x04,
    lz4: 0x08,
    zstd: 0x10,
};
const DBASE_14: DbaseInfo = DbaseInfo {
    create_file_copy: 0x00,
    create_wal_log: None,
    drop: 0x10,
};
const DBASE_15: DbaseInfo = DbaseInfo {
    create_file_copy: 0x00,
    create_wal_log: Some(0x10),
    drop: 0x20,
};

/// One row of the flavor table: every constant and capability a decoder or phase asks for.
struct Row {
    flavor: Flavor,
    product: Product,
    number: u32,
    wal_page_magic: u16,
    control_version: u32,
    /// Catalog versions of every release of the major, from its first beta's
    /// `CATALOG_VERSION_NO` to the next major's; they name the major when `pg_control_version`
    /// alone cannot (14, 15 and 16 all write 1300).
    catversion: (u32, u32),
    bimg: BimgFlags,
    dbase: DbaseInfo,
    /// Writes `XLOG_CHECKPOINT_REDO` (0xE0) records.
    checkpoint_redo_record: bool,
    /// WAL may carry custom resource manager ids 128..=255.
    custom_rmgrs: bool,
    /// `CheckPoint` carries `wal_level`, which moves the fields after `fullPageWrites`.
    checkpoint_wal_level: bool,
    /// pg_control has `default_char_signedness`.
    control_char_signedness: bool,
    /// A side's timeline is the max of its checkpoint TLI and `minRecoveryPointTLI` when the
    /// divergence is found (pg_rewind 16+; older ones used the checkpoint TLI only).
    min_recovery_tli_rule: bool,
    /// The layouts of its control file, WAL pages and WAL records.
    formats: Formats,
}

/// The table, in the enum's declaration order.
const ROWS: [Row; 6] = [
    Row {
        flavor: Flavor::Pg14,
        product: Product::PostgreSql,
        number: 14,
        wal_page_magic: 0xD10D,
        control_version: 1300,
        // 13's final catalog version is 202007201 and 13 also writes pg_control version 1300.
        catversion: (202_007_201 + 1, 202_107_181),
        bimg: BIMG_14,
        dbase: DBASE_14,
        checkpoint_redo_record: false,
        custom_rmgrs: false,
        checkpoint_wal_level: false,
        control_char_signedness: false,
        min_recovery_tli_rule: false,
        formats: formats::POSTGRESQL,
    },
    Row {
        flavor: Flavor::Pg15,
        product: Product::PostgreSql,
        number: 15,
        wal_page_magic: 0xD110,
        control_version: 1300,
        catversion: (202_107_181 + 1, 202_209_061),
        bimg: BIMG_15,
        dbase: DBASE_15,
        checkpoint_redo_record: false,
        custom_rmgrs: true,
        checkpoint_wal_level: false,
        control_char_signedness: false,
        min_recovery_tli_rule: false,
        formats: formats::POSTGRESQL,
    },
    Row {
        flavor: Flavor::Pg16,
        product: Product::PostgreSql,
        number: 16,
        wal_page_magic: 0xD113,
        control_version: 1300,
        catversion: (202_209_061 + 1, 202_307_071),
        bimg: BIMG_15,
        dbase: DBASE_15,
        checkpoint_redo_record: false,
        custom_rmgrs: true,
        checkpoint_wal_level: false,
        control_char_signedness: false,
        min_recovery_tli_rule: true,
        formats: formats::POSTGRESQL,
    },
    Row {
        flavor: Flavor::Pg17,
        product: Product::PostgreSql,
        number: 17,
        wal_page_magic: 0xD116,
        control_version: 1700,
        catversion: (202_307_071 + 1, 202_406_281),
        bimg: BIMG_15,
        dbase: DBASE_15,
        checkpoint_redo_record: true,
        custom_rmgrs: true,
        checkpoint_wal_level: true,
        control_char_signedness: false,
        min_recovery_tli_rule: true,
        formats: formats::POSTGRESQL,
    },
    Row {
        flavor: Flavor::Pg18,
        product: Product::PostgreSql,
        number: 18,
        wal_page_magic: 0xD118,
        control_version: 1800,
        catversion: (202_406_281 + 1, 202_506_291 + 99_999),
        bimg: BIMG_15,
        dbase: DBASE_15,
        checkpoint_redo_record: true,
        custom_rmgrs: true,
        checkpoint_wal_level: true,
        control_char_signedness: true,
        min_recovery_tli_rule: true,
        formats: formats::POSTGRESQL,
    },
    Row {
        flavor: Flavor::OpenGauss,
        product: Product::OpenGauss,
        // openGauss reports itself as PostgreSQL 9.2 (`server_version_num` 90204).
        number: 923,
        wal_page_magic: 0xD074,
        control_version: 923,
        catversion: (201_611_171, 201_611_171),
        // Its images carry no `bimg_info` (see its own block decoder); its database records
        // use 9.2's codes.
        bimg: BIMG_14,
        dbase: DBASE_14,
        checkpoint_redo_record: false,
        custom_rmgrs: false,
        checkpoint_wal_level: false,
        control_char_signedness: false,
        min_recovery_tli_rule: false,
        formats: formats::OPENGAUSS,
    },
];

impl Flavor {
    /// Every supported flavor, in table order.
    pub const ALL: [Flavor; 6] = [
        Flavor::Pg14,
        Flavor::Pg15,
        Flavor::Pg16,
        Flavor::Pg17,
        Flavor::Pg18,
        Flavor::OpenGauss,
    ];

    /// The PostgreSQL majors, oldest first.
    pub const POSTGRESQL: [Flavor; 5] = [
        Flavor::Pg14,
        Flavor::Pg15,
        Flavor::Pg16,
        Flavor::Pg17,
        Flavor::Pg18,
    ];

    fn row(self) -> &'static Row {
        // ROWS is in the enum's declaration order (checked by a test).
        &ROWS[self as usize]
    }

    /// The product.
    pub fn product(self) -> Product {
        self.row().product
    }

    /// What the product names and queries alike in all its majors.
    pub fn table(self) -> &'static ProductTable {
        self.product().table()
    }

    /// The major version as a number (14..=18; openGauss: 923, its control file version).
    pub fn number(self) -> u32 {
        self.row().number
    }

    /// The product and version for people: "PostgreSQL 15", "openGauss".
    pub fn name(self) -> String {
        match self.product() {
            Product::PostgreSql => format!("PostgreSQL {}", self.number()),
            Product::OpenGauss => "openGauss".into(),
        }
    }

    /// The PostgreSQL major with this number, if supported.
    pub fn from_number(n: u32) -> Option<Flavor> {
        ROWS.iter()
            .find(|r| r.product == Product::PostgreSql && r.number == n)
            .map(|r| r.flavor)
    }

    /// `XLOG_PAGE_MAGIC`.
    pub fn wal_page_magic(self) -> u16 {
        self.row().wal_page_magic
    }

    /// The flavor whose WAL pages carry `magic`.
    pub fn from_wal_page_magic(magic: u16) -> Option<Flavor> {
        ROWS.iter()
            .find(|r| r.wal_page_magic == magic)
            .map(|r| r.flavor)
    }

    /// `PG_CONTROL_VERSION`.
    pub fn control_version(self) -> u32 {
        self.row().control_version
    }

    /// The flavor that wrote a control file with these two numbers, or `None` when no
    /// supported flavor matches both.
    pub fn from_control(control_version: u32, catalog_version: u32) -> Option<Flavor> {
        ROWS.iter()
            .find(|r| {
                let (min, max) = r.catversion;
                r.control_version == control_version && (min..=max).contains(&catalog_version)
            })
            .map(|r| r.flavor)
    }

    /// `bimg_info` bits of full-page images in WAL records.
    pub fn bimg_flags(self) -> BimgFlags {
        self.row().bimg
    }

    /// RM_DBASE info codes.
    pub fn dbase_info(self) -> DbaseInfo {
        self.row().dbase
    }

    /// Whether the flavor writes `XLOG_CHECKPOINT_REDO` (0xE0) records.
    pub fn has_checkpoint_redo_record(self) -> bool {
        self.row().checkpoint_redo_record
    }

    /// Whether WAL may carry custom resource manager ids 128..=255.
    pub fn has_custom_rmgrs(self) -> bool {
        self.row().custom_rmgrs
    }

    /// Whether `CheckPoint` carries `wal_level`, which moves the fields after
    /// `fullPageWrites`.
    pub fn checkpoint_has_wal_level(self) -> bool {
        self.row().checkpoint_wal_level
    }

    /// Whether pg_control has `default_char_signedness`.
    pub fn control_has_char_signedness(self) -> bool {
        self.row().control_char_signedness
    }

    /// Whether a side's timeline is the max of checkpoint TLI and `minRecoveryPointTLI` when
    /// finding the divergence.
    pub fn uses_min_recovery_tli(self) -> bool {
        self.row().min_recovery_tli_rule
    }

    /// The layouts of the flavor's control file, WAL pages and WAL records; each decoder has
    /// one implementation per layout and picks it here.
    pub fn formats(self) -> &'static Formats {
        &self.row().formats
    }

    /// The WAL directory inside the data directory.
    pub fn wal_dir(self) -> &'static str {
        self.table().wal_dir
    }

    /// `relative` (a file name) inside the WAL directory, as a data-directory path.
    pub fn wal_path(self, name: &str) -> String {
        format!("{}/{name}", self.wal_dir())
    }

    /// The file name inside the WAL directory when `path` is a data-directory path there.
    pub fn wal_file_name(self, path: &str) -> Option<&str> {
        path.strip_prefix(self.wal_dir())?.strip_prefix('/')
    }

    /// Size of the fixed WAL record header.
    pub fn record_header_len(self) -> u32 {
        self.table().record_header_len
    }

    /// The directory a tablespace holds for this flavor's clusters (`TABLESPACE_VERSION_DIRECTORY`):
    /// `PG_<major>_<catversion>`; openGauss's names the node too, `PG_9.2_<catversion>_<node>`.
    pub fn tablespace_version_dir(self, catalog_version: u32, node_name: &str) -> String {
        match self.product() {
            Product::PostgreSql => format!("PG_{}_{catalog_version}", self.number()),
            Product::OpenGauss => format!("PG_9.2_{catalog_version}_{node_name}"),
        }
    }
}

#[cfg(test)]
mod tests;
