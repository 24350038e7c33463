//! The write-ahead log of PostgreSQL 14–18 and openGauss: page headers ([`page`]), record and
//! block-reference decoding ([`record`]; openGauss's layout in [`ogrecord`]), resource manager
//! names ([`rmgr`]), the incremental record reader that
//! assembles records from a byte stream ([`reader`]), random access over WAL segment files
//! ([`segment`]), and reading the next segment ahead while one is decoded ([`readahead`]).
//!
//! Used by the divergence phase (reading the checkpoint record before the divergence point by
//! following `xl_prev` backwards), the target WAL scan (block references of every record from
//! the common checkpoint to the end of WAL), WAL streaming (the same reader fed from
//! `START_REPLICATION`) and `gsbuild inspect wal`.
//!
//! Every error names the LSN of the record or page at fault ([`crate::Error::Wal`]); the reader
//! tells the end of valid WAL (a zero length, a recycled page, a torn record at the tail) from
//! a corrupt record in the middle of valid WAL.

pub mod ogrecord;
pub mod page;
pub mod readahead;
pub mod reader;
pub mod record;
pub mod rmgr;
pub mod segment;

#[cfg(test)]
mod og_tests;
#[cfg(test)]
pub(crate) mod og_testwal;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testwal;

pub use ogrecord::{OgBlock, SegLocation};
pub use page::{PageHeader, XLOG_BLCKSZ};
pub use reader::{EndOfWal, WalStreamReader};
pub use record::{BlockImage, BlockRef, Compression, Record};
pub use segment::{Records, SegmentSource, WalDir, WalReader};

use crate::lsn::Lsn;

/// What is wrong with the WAL at some position (the position is in [`crate::Error::Wal`]).
/// Messages follow `xlogreader.c`'s wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// The record's CRC does not match its contents.
    #[error("incorrect resource manager data checksum in record")]
    BadCrc,
    /// The page's `xlp_magic` is not the WAL magic of any supported major.
    #[error("invalid magic number {0:04X} in WAL page")]
    BadMagic(u16),
    /// The page's magic belongs to another major than the pages read before it.
    #[error("WAL page magic {found:04X} differs from the magic {expected:04X} read before")]
    MagicChanged {
        /// Magic of the first page read.
        expected: u16,
        /// Magic of this page.
        found: u16,
    },
    /// Unknown bits in `xlp_info`, or a segment's first page without a long header.
    #[error("invalid info bits {0:04X} in WAL page")]
    BadInfoBits(u16),
    /// The long header names another system.
    #[error("WAL file is from different database system: WAL file database system identifier is {found}, pg_control database system identifier is {expected}")]
    SysidMismatch {
        /// System id the reader was told to expect.
        expected: u64,
        /// System id in the page.
        found: u64,
    },
    /// The long header's segment size is not the reader's.
    #[error("WAL file is from different database system: incorrect segment size {found} in page header (expected {expected})")]
    SegSizeMismatch {
        /// Segment size the reader uses, in bytes.
        expected: u32,
        /// Segment size in the page.
        found: u32,
    },
    /// The long header's page size is not 8192.
    #[error(
        "WAL file is from different database system: incorrect XLOG_BLCKSZ {0} in page header"
    )]
    PageSizeMismatch(u32),
    /// `xlp_pageaddr` is not the page's position (and not an older, recycled one).
    #[error("unexpected pageaddr {0} in WAL page")]
    BadPageAddr(Lsn),
    /// `xlp_tli` is lower than the timeline of an earlier page.
    #[error("out-of-sequence timeline ID {tli} (after {after}) in WAL page")]
    TliBackwards {
        /// Timeline of this page.
        tli: u32,
        /// Timeline of the page before.
        after: u32,
    },
    /// A record continues on a page that does not say so.
    #[error("there is no contrecord flag in WAL page")]
    NoContrecordFlag,
    /// The continuation page's `xlp_rem_len` disagrees with the record being assembled.
    #[error("invalid contrecord length {found} (expected {expected})")]
    BadContrecordLength {
        /// `xlp_rem_len` of the page.
        found: u32,
        /// Bytes of the record still missing.
        expected: u32,
    },
    /// A record is expected at the start of a page that continues an earlier record.
    #[error("contrecord is requested")]
    ContrecordRequested,
    /// The record position lies inside a page header or is not 8-byte aligned.
    #[error("invalid record offset")]
    BadRecordOffset,
    /// `xl_tot_len` is smaller than a record header or larger than PostgreSQL allows.
    #[error("invalid record length: expected at least 24, got {0}")]
    BadRecordLength(u32),
    /// `xl_rmid` names no resource manager of this major.
    #[error("invalid resource manager ID {0}")]
    BadRmgr(u8),
    /// `xl_prev` does not point at the previous record.
    #[error("record with incorrect prev-link {0}")]
    BadPrevLink(Lsn),
    /// The record's headers claim more bytes than the record has, or leave bytes unused.
    #[error("record with invalid length")]
    BadLength,
    /// A block id is not above the one before it.
    #[error("out-of-order block_id {0}")]
    BlockIdOutOfOrder(u8),
    /// A block id is neither 0..=32 nor one of the special ids 252..=255.
    #[error("invalid block_id {0}")]
    BadBlockId(u8),
    /// A block reference names a fork PostgreSQL does not have.
    #[error("invalid fork number {0} in block reference")]
    BadFork(u8),
    /// `BKPBLOCK_HAS_DATA` and the data length disagree.
    #[error("BKPBLOCK_HAS_DATA and data length {0} disagree")]
    BlockDataFlag(u16),
    /// `BKPBLOCK_SAME_REL` on the first block reference.
    #[error("BKPBLOCK_SAME_REL set but no previous rel")]
    SameRelWithoutRel,
    /// The image header's hole and compression fields contradict each other.
    #[error("inconsistent block image: bimg_info {info:02X}, length {length}, hole offset {hole_offset}, hole length {hole_length}")]
    BadImage {
        /// `bimg_info`.
        info: u8,
        /// Stored image length.
        length: u16,
        /// `hole_offset`.
        hole_offset: u16,
        /// Hole length (stored, or implied).
        hole_length: u16,
    },
    /// A page marked "overwrite contrecord" is not followed by the matching
    /// `XLOG_OVERWRITE_CONTRECORD` record.
    #[error("missing overwrite contrecord record for the aborted record at {0}")]
    BadOverwrite(Lsn),
    /// The WAL segment holding the position is not there.
    #[error("could not open file \"{0}\": No such file or directory")]
    MissingSegment(String),
    /// No valid record starts at the position (end of WAL there).
    #[error("no valid record (end of WAL)")]
    NoRecord,
    /// A record whose CRC matched does not decode in its flavor's format: written by a server
    /// whose format this decoder does not know. Never taken for the end of WAL.
    #[error("record format not understood: {0}")]
    NotUnderstood(String),
}

/// Shorthand for an [`crate::Error::Wal`].
pub(crate) fn wal_err(lsn: Lsn, kind: WalError) -> crate::Error {
    crate::Error::Wal { lsn, kind }
}
