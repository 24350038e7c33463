//! The on-disk formats a flavor writes, as data: which control-file layout, which WAL record
//! format, which page-header flags, and what `xl_info`'s low bits mean. Every decoder asks its
//! entry here and has one implementation per format, so that supporting a product's format is
//! a decoder of its own, never a test of the product sprinkled through another decoder.

/// The layout of `global/pg_control` (`ControlFileData`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlLayout {
    /// PostgreSQL 14–18 (296 bytes; the CRC covers every byte before it).
    PostgreSql,
    /// openGauss (232 bytes, version 923; the CRC covers bytes [0, 224)).
    OpenGauss,
}

/// How WAL records and their block references are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordFormat {
    /// PostgreSQL: a 24-byte header, images with `bimg_info`, 12-byte relation locators, a
    /// 2-byte replication origin, the top-level xid (block id 252).
    PostgreSql,
    /// openGauss: a 32-byte header (term, 64-bit xid, bucket id), images without `bimg_info`
    /// before the relation, 12- or 16-byte relation nodes, `extra_flag`, segment-page physical
    /// locations, a `last_lsn` on every block reference, a 4-byte replication origin.
    OpenGauss,
}

/// How relation files are named in a data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelationFiles {
    /// PostgreSQL: `<rel>[_fsm|_vm|_init][.N]`, tablespaces' `PG_<major>_<catversion>`.
    PostgreSql,
    /// openGauss: PostgreSQL's forks plus `_bcm`, column-store `<rel>_C<attno>.N`, compressed
    /// `<rel>_compress`, tablespaces' `PG_9.2_<catversion>_<node name>`.
    OpenGauss,
}

/// The formats of one flavor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Formats {
    /// The control file's layout.
    pub control: ControlLayout,
    /// The WAL records' format.
    pub record: RecordFormat,
    /// The names of relation files.
    pub relation_files: RelationFiles,
    /// Every `xlp_info` bit a WAL page may carry (`XLP_ALL_FLAGS`).
    pub page_info_flags: u16,
    /// Bytes 20..24 of a WAL page header hold `xlp_total_len` (openGauss; alignment padding in
    /// PostgreSQL).
    pub page_total_len: bool,
    /// `xl_info & 0x01` is `XLR_SPECIAL_REL_UPDATE`, set on every record that changes relation
    /// files in ways its block references do not show (PostgreSQL). openGauss reuses the bit
    /// (btree inserts carry it), and its `gs_rewind` ignores it.
    pub special_rel_update_flag: bool,
}

/// PostgreSQL 14–18.
pub(super) const POSTGRESQL: Formats = Formats {
    control: ControlLayout::PostgreSql,
    record: RecordFormat::PostgreSql,
    relation_files: RelationFiles::PostgreSql,
    page_info_flags: 0x000F,
    page_total_len: false,
    special_rel_update_flag: true,
};

/// openGauss 2.1–7.0.
pub(super) const OPENGAUSS: Formats = Formats {
    control: ControlLayout::OpenGauss,
    record: RecordFormat::OpenGauss,
    relation_files: RelationFiles::OpenGauss,
    page_info_flags: 0x0007,
    page_total_len: true,
    special_rel_update_flag: false,
};
