//! WAL records (`XLogRecord`) and their block references, decoded and validated the way
//! `xlogreader.c`'s `DecodeXLogRecord` does: block ids strictly increasing, `HAS_DATA` and data
//! lengths consistent, image hole/compression fields consistent, every header byte accounted
//! for. `bimg_info` bits are read per major from [`Flavor::bimg_flags`]. openGauss's records
//! (another header and block-reference layout) have their own decoder, `ogrecord`, picked by
//! the flavor's [`RecordFormat`].

use super::ogrecord::{self, OgBlock, OgBody, OgHeader};
use super::rmgr;
use super::WalError;
use crate::cursor::Cursor;
use crate::flavor::{Flavor, RecordFormat};
use crate::lsn::Lsn;
use crate::relpath::{BlockNumber, ForkNumber, RelFileLocator, BLCKSZ};
use bytes::Bytes;
use std::borrow::Cow;

/// Largest `xl_tot_len` accepted (PostgreSQL's allocation limit, 1 GiB - 1).
pub const MAX_RECORD_LEN: u32 = 0x3FFF_FFFF;
/// Highest block id of a block reference (`XLR_MAX_BLOCK_ID`).
pub const XLR_MAX_BLOCK_ID: u8 = 32;
/// `xl_info` bits reserved for the WAL machinery; the rest belong to the resource manager.
pub const XLR_INFO_MASK: u8 = 0x0F;
/// `XLR_SPECIAL_REL_UPDATE`: the record changes relation files in ways block references do
/// not describe.
pub const XLR_SPECIAL_REL_UPDATE: u8 = 0x01;

const BLOCK_ID_DATA_SHORT: u8 = 255;
const BLOCK_ID_DATA_LONG: u8 = 254;
const BLOCK_ID_ORIGIN: u8 = 253;
const BLOCK_ID_TOPLEVEL_XID: u8 = 252;

const BKPBLOCK_FORK_MASK: u8 = 0x0F;
const BKPBLOCK_HAS_IMAGE: u8 = 0x10;
const BKPBLOCK_HAS_DATA: u8 = 0x20;
const BKPBLOCK_WILL_INIT: u8 = 0x40;
const BKPBLOCK_SAME_REL: u8 = 0x80;

/// RM_XLOG info codes this crate acts on (high nibble of `xl_info`).
pub mod xlog_info {
    /// `XLOG_CHECKPOINT_SHUTDOWN`.
    pub const CHECKPOINT_SHUTDOWN: u8 = 0x00;
    /// `XLOG_CHECKPOINT_ONLINE`.
    pub const CHECKPOINT_ONLINE: u8 = 0x10;
    /// `XLOG_SWITCH`.
    pub const SWITCH: u8 = 0x40;
    /// `XLOG_OVERWRITE_CONTRECORD`.
    pub const OVERWRITE_CONTRECORD: u8 = 0xD0;
}

/// The fixed record header (24 bytes; openGauss's 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// `xl_tot_len`: the whole record in bytes, header included, page headers excluded.
    pub tot_len: u32,
    /// `xl_xid` (32 bits in PostgreSQL, 64 in openGauss).
    pub xid: u64,
    /// `xl_prev`: start of the previous record.
    pub prev: Lsn,
    /// `xl_info`.
    pub info: u8,
    /// `xl_rmid`.
    pub rmid: u8,
    /// `xl_crc`.
    pub crc: u32,
    /// openGauss's `xl_term`: the failover term of the primary that wrote the record (its
    /// high bit, `XLOG_CONTAIN_CSN`, says the record carries a CSN). `None` for PostgreSQL.
    pub term: Option<u32>,
    /// openGauss's `xl_bucket_id`: the bucket id + 1 (0 for ordinary records). `None` for
    /// PostgreSQL.
    pub bucket_id: Option<u16>,
}

impl RecordHeader {
    /// Decodes the header at the start of `bytes` in `flavor`'s layout.
    pub fn decode(bytes: &[u8], flavor: Flavor) -> Result<RecordHeader, WalError> {
        match flavor.formats().record {
            RecordFormat::PostgreSql => Self::decode_pg(bytes),
            RecordFormat::OpenGauss => ogrecord::decode_header(bytes).map(Self::from_og),
        }
    }

    fn from_og(h: OgHeader) -> RecordHeader {
        RecordHeader {
            tot_len: h.tot_len,
            xid: h.xid,
            prev: h.prev,
            info: h.info,
            rmid: h.rmid,
            crc: h.crc,
            term: Some(h.term),
            bucket_id: Some(h.bucket_id),
        }
    }

    /// PostgreSQL's 24-byte header.
    fn decode_pg(bytes: &[u8]) -> Result<RecordHeader, WalError> {
        let mut c = Cursor::new(bytes);
        let t = |_| WalError::BadLength;
        let tot_len = c.u32().map_err(t)?;
        let xid = c.u32().map_err(t)?.into();
        let prev = Lsn(c.u64().map_err(t)?);
        let info = c.u8().map_err(t)?;
        let rmid = c.u8().map_err(t)?;
        c.skip(2).map_err(t)?;
        let crc = c.u32().map_err(t)?;
        Ok(RecordHeader {
            tot_len,
            xid,
            prev,
            info,
            rmid,
            crc,
            term: None,
            bucket_id: None,
        })
    }

    /// Checks the header of the record at `lsn` (`ValidXLogRecordHeader`). `expected_prev`:
    /// the previous record when reading sequentially; `None` at a random-access start, where
    /// `xl_prev` only has to lie before the record.
    pub fn check(
        &self,
        lsn: Lsn,
        expected_prev: Option<Lsn>,
        flavor: Flavor,
    ) -> Result<(), WalError> {
        if self.tot_len < flavor.record_header_len() || self.tot_len > MAX_RECORD_LEN {
            return Err(WalError::BadRecordLength(self.tot_len));
        }
        if !rmgr::is_valid(self.rmid, flavor) {
            return Err(WalError::BadRmgr(self.rmid));
        }
        let prev_ok = match expected_prev {
            Some(p) => self.prev == p,
            None => self.prev < lsn,
        };
        if !prev_ok {
            return Err(WalError::BadPrevLink(self.prev));
        }
        Ok(())
    }
}

/// CRC-32C of a whole record of `flavor` as its server computes it: the payload after the
/// header, then the header up to (not including) `xl_crc`, its last field in both layouts.
/// `None` when `raw` is shorter than a header.
pub fn record_crc(raw: &[u8], flavor: Flavor) -> Option<u32> {
    let header_len = flavor.record_header_len() as usize;
    let payload = raw.get(header_len..)?;
    let head = raw.get(..header_len.checked_sub(4)?)?;
    Some(crc32c::crc32c_append(crc32c::crc32c(payload), head))
}

/// How a full-page image is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is (minus the hole).
    None,
    /// pglz (`wal_compression=pglz` or `on`).
    Pglz,
    /// LZ4 (15+).
    Lz4,
    /// Zstandard (15+).
    Zstd,
}

impl Compression {
    /// The method's name as `pg_waldump` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Pglz => "pglz",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// A full-page image in a block reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockImage {
    /// Stored bytes of the image (`bimg_len`: after removing the hole and compressing).
    pub length: u16,
    /// Start of the hole (unused bytes left out of the image), bytes from the page start.
    pub hole_offset: u16,
    /// Length of the hole in bytes.
    pub hole_length: u16,
    /// Raw `bimg_info` bits (meaning depends on the major).
    pub bimg_info: u8,
    /// Whether redo restores the page from the image (`BKPIMAGE_APPLY`); when false the image
    /// is only there for `wal_consistency_checking`.
    pub apply: bool,
    /// Compression method.
    pub compression: Compression,
    /// The stored image bytes (`length` of them).
    pub bytes: Bytes,
}

/// One block reference of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRef {
    /// Block id within the record (0..=32).
    pub id: u8,
    /// Raw `fork_flags` byte.
    pub fork_flags: u8,
    /// The fork.
    pub fork: ForkNumber,
    /// The relation (the previous reference's when `BKPBLOCK_SAME_REL` was set).
    pub rel: RelFileLocator,
    /// The block.
    pub blk: BlockNumber,
    /// Whether redo initialises the page from scratch (`BKPBLOCK_WILL_INIT`).
    pub will_init: bool,
    /// The full-page image, if any.
    pub image: Option<BlockImage>,
    /// Per-block data (`BKPBLOCK_HAS_DATA` iff non-empty).
    pub data: Bytes,
    /// What openGauss adds (bucket node and compression options, `extra_flag`, segment-page
    /// physical location, the page's previous LSN); `None` for PostgreSQL.
    pub og: Option<OgBlock>,
}

impl BlockRef {
    /// Whether the reference carries a full-page image.
    pub fn has_image(&self) -> bool {
        self.image.is_some()
    }

    /// Whether the reference carries per-block data.
    pub fn has_data(&self) -> bool {
        !self.data.is_empty()
    }
}

/// A decoded, CRC-checked WAL record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position of the record's first byte (`ReadRecPtr`).
    pub lsn: Lsn,
    /// Position right after the record's last byte (page headers included, not aligned).
    pub data_end: Lsn,
    /// Where the next record starts (`EndRecPtr`): `data_end` aligned to 8 bytes, or the start
    /// of the next segment after an `XLOG_SWITCH` record.
    pub end_lsn: Lsn,
    /// The fixed header.
    pub header: RecordHeader,
    /// The major whose pages held the record.
    pub flavor: Flavor,
    /// Block references, in increasing block id order.
    pub blocks: Vec<BlockRef>,
    /// Replication origin (block id 253; 2 bytes in PostgreSQL, 4 in openGauss).
    pub origin: Option<u32>,
    /// Top-level transaction id of a subtransaction's record (block id 252).
    pub toplevel_xid: Option<u32>,
    /// When this record replaced a record aborted at a crash (`XLOG_OVERWRITE_CONTRECORD`
    /// after a page flagged `XLP_FIRST_IS_OVERWRITE_CONTRECORD`): the aborted record's start.
    pub overwritten: Option<Lsn>,
    main_data: Bytes,
}

impl Record {
    /// Decodes the complete record `raw` (header included, `xl_tot_len` bytes) that starts at
    /// `lsn`. The CRC is not checked here; the reader does that first.
    pub fn decode(lsn: Lsn, data_end: Lsn, raw: Bytes, flavor: Flavor) -> Result<Record, WalError> {
        let header = RecordHeader::decode(&raw, flavor)?;
        if header.tot_len as usize != raw.len() {
            return Err(WalError::BadLength);
        }
        let header_len = flavor.record_header_len() as usize;
        if raw.len() < header_len {
            return Err(WalError::BadLength);
        }
        let body = raw.slice(header_len..);
        let parts = match flavor.formats().record {
            RecordFormat::PostgreSql => decode_body(&body, flavor)?,
            RecordFormat::OpenGauss => Body::from_og(ogrecord::decode_body(&body)?),
        };
        Ok(Record {
            lsn,
            data_end,
            end_lsn: data_end.align8(),
            header,
            flavor,
            blocks: parts.blocks,
            origin: parts.origin,
            toplevel_xid: parts.toplevel_xid,
            overwritten: None,
            main_data: parts.main_data,
        })
    }

    /// The record's main data (block id 255/254), empty when it has none.
    pub fn main_data(&self) -> &[u8] {
        &self.main_data
    }

    /// `xl_tot_len` in bytes.
    pub fn tot_len(&self) -> u32 {
        self.header.tot_len
    }

    /// `xl_xid`.
    pub fn xid(&self) -> u64 {
        self.header.xid
    }

    /// openGauss's `xl_term` without its `XLOG_CONTAIN_CSN` bit; `None` for PostgreSQL.
    pub fn term(&self) -> Option<u32> {
        self.header.term.map(|t| t & 0x7FFF_FFFF)
    }

    /// `xl_prev`.
    pub fn prev(&self) -> Lsn {
        self.header.prev
    }

    /// The full `xl_info` byte.
    pub fn info(&self) -> u8 {
        self.header.info
    }

    /// The resource manager's part of `xl_info` (`xl_info & ~XLR_INFO_MASK`).
    pub fn rmgr_info(&self) -> u8 {
        self.header.info & !XLR_INFO_MASK
    }

    /// `xl_rmid`.
    pub fn rmid(&self) -> u8 {
        self.header.rmid
    }

    /// `xl_crc`.
    pub fn crc(&self) -> u32 {
        self.header.crc
    }

    /// The resource manager's name as `pg_waldump` (openGauss: `pg_xlogdump`) prints it.
    pub fn rmgr_name(&self) -> Cow<'static, str> {
        rmgr::name(self.header.rmid, self.flavor)
    }

    /// The block reference with this id.
    pub fn block(&self, id: u8) -> Option<&BlockRef> {
        self.blocks.iter().find(|b| b.id == id)
    }

    /// Bytes of full-page images in the record (sum of stored image lengths).
    pub fn fpi_len(&self) -> u32 {
        self.blocks
            .iter()
            .filter_map(|b| b.image.as_ref())
            .map(|i| u32::from(i.length))
            .sum()
    }

    /// `pg_waldump`'s "rec" length: the total length minus [`Record::fpi_len`].
    pub fn rec_len(&self) -> u32 {
        self.header.tot_len.saturating_sub(self.fpi_len())
    }

    /// Whether this is a checkpoint record (RM_XLOG, shutdown or online); its main data is the
    /// `CheckPoint` struct.
    pub fn is_checkpoint(&self) -> bool {
        self.rmid() == rmgr::RM_XLOG_ID
            && matches!(
                self.rmgr_info(),
                xlog_info::CHECKPOINT_SHUTDOWN | xlog_info::CHECKPOINT_ONLINE
            )
    }

    /// Whether this is an `XLOG_SWITCH` record (the rest of its segment is unused).
    pub fn is_switch(&self) -> bool {
        self.rmid() == rmgr::RM_XLOG_ID && self.rmgr_info() == xlog_info::SWITCH
    }

    /// Whether this is an `XLOG_OVERWRITE_CONTRECORD` record.
    pub fn is_overwrite_contrecord(&self) -> bool {
        self.rmid() == rmgr::RM_XLOG_ID && self.rmgr_info() == xlog_info::OVERWRITE_CONTRECORD
    }

    /// Whether `XLR_SPECIAL_REL_UPDATE` is set.
    pub fn has_special_rel_update(&self) -> bool {
        self.header.info & XLR_SPECIAL_REL_UPDATE != 0
    }
}

/// What the body of a record holds, before the data is attached to the block references.
struct Body {
    blocks: Vec<BlockRef>,
    origin: Option<u32>,
    toplevel_xid: Option<u32>,
    main_data: Bytes,
}

impl Body {
    /// openGauss's decoded body as block references (its images: the page minus the hole,
    /// never compressed, always applied).
    fn from_og(b: OgBody) -> Body {
        let blocks = b
            .blocks
            .into_iter()
            .map(|r| BlockRef {
                id: r.id,
                fork_flags: r.fork_flags,
                fork: r.fork,
                rel: r.rel,
                blk: r.blk,
                will_init: r.fork_flags & BKPBLOCK_WILL_INIT != 0,
                image: r.image.map(|i| BlockImage {
                    length: i.stored_len() as u16,
                    hole_offset: i.hole_offset,
                    hole_length: i.hole_length,
                    bimg_info: 0,
                    apply: true,
                    compression: Compression::None,
                    bytes: i.bytes,
                }),
                data: r.data,
                og: Some(r.og),
            })
            .collect();
        Body {
            blocks,
            origin: b.origin,
            toplevel_xid: None,
            main_data: b.main_data,
        }
    }
}

/// Decodes everything after the fixed header: block headers, then the data they announce.
fn decode_body(body: &Bytes, flavor: Flavor) -> Result<Body, WalError> {
    let t = |_| WalError::BadLength;
    let mut c = Cursor::new(body);
    let mut blocks: Vec<BlockRef> = Vec::new();
    let mut origin = None;
    let mut toplevel_xid = None;
    let mut main_len = 0usize;
    // Lengths of the data announced so far; the headers end where the data starts.
    let mut data_total = 0usize;
    let mut max_id: Option<u8> = None;
    let mut data_lens: Vec<usize> = Vec::new();
    while c.remaining() > data_total {
        let id = c.u8().map_err(t)?;
        match id {
            BLOCK_ID_DATA_SHORT => {
                main_len = usize::from(c.u8().map_err(t)?);
                data_total += main_len;
                break;
            }
            BLOCK_ID_DATA_LONG => {
                main_len = c.u32().map_err(t)? as usize;
                data_total += main_len;
                break;
            }
            BLOCK_ID_ORIGIN => origin = Some(c.u16().map_err(t)?.into()),
            BLOCK_ID_TOPLEVEL_XID => toplevel_xid = Some(c.u32().map_err(t)?),
            0..=XLR_MAX_BLOCK_ID => {
                if max_id.is_some_and(|m| id <= m) {
                    return Err(WalError::BlockIdOutOfOrder(id));
                }
                max_id = Some(id);
                let prev_rel = blocks.last().map(|b| b.rel);
                let (b, data_len) = decode_block_header(&mut c, id, prev_rel, flavor)?;
                data_total += data_len + b.image.as_ref().map_or(0, |i| usize::from(i.length));
                data_lens.push(data_len);
                blocks.push(b);
            }
            _ => return Err(WalError::BadBlockId(id)),
        }
    }
    if c.remaining() != data_total {
        return Err(WalError::BadLength);
    }
    // The data follows in block order (image, then data, per block), main data last.
    let mut at = c.position();
    let mut take = |n: usize| {
        let s = body.slice(at..at + n);
        at += n;
        s
    };
    for (b, &n) in blocks.iter_mut().zip(&data_lens) {
        if let Some(img) = &mut b.image {
            img.bytes = take(usize::from(img.length));
        }
        b.data = take(n);
    }
    Ok(Body {
        blocks,
        origin,
        toplevel_xid,
        main_data: take(main_len),
    })
}

/// Decodes one `XLogRecordBlockHeader` with its optional image header and relation. Returns
/// the reference, whose `data` (and image `bytes`) [`decode_body`] attaches later, and the
/// announced data length in bytes.
fn decode_block_header(
    c: &mut Cursor<'_>,
    id: u8,
    prev_rel: Option<RelFileLocator>,
    flavor: Flavor,
) -> Result<(BlockRef, usize), WalError> {
    let t = |_| WalError::BadLength;
    let fork_flags = c.u8().map_err(t)?;
    let fork_no = fork_flags & BKPBLOCK_FORK_MASK;
    let fork = ForkNumber::from_u8(fork_no).ok_or(WalError::BadFork(fork_no))?;
    let data_len = c.u16().map_err(t)?;
    if (fork_flags & BKPBLOCK_HAS_DATA != 0) != (data_len > 0) {
        return Err(WalError::BlockDataFlag(data_len));
    }
    let image = if fork_flags & BKPBLOCK_HAS_IMAGE != 0 {
        Some(decode_image_header(c, flavor)?)
    } else {
        None
    };
    let rel = if fork_flags & BKPBLOCK_SAME_REL == 0 {
        RelFileLocator {
            spc: c.u32().map_err(t)?,
            db: c.u32().map_err(t)?,
            rel: c.u32().map_err(t)?,
        }
    } else {
        prev_rel.ok_or(WalError::SameRelWithoutRel)?
    };
    let blk = BlockNumber(c.u32().map_err(t)?);
    let b = BlockRef {
        id,
        fork_flags,
        fork,
        rel,
        blk,
        will_init: fork_flags & BKPBLOCK_WILL_INIT != 0,
        image,
        data: Bytes::new(),
        og: None,
    };
    Ok((b, usize::from(data_len)))
}

/// Decodes `XLogRecordBlockImageHeader` (+ `XLogRecordBlockCompressHeader`) and applies
/// `DecodeXLogRecord`'s consistency checks.
fn decode_image_header(c: &mut Cursor<'_>, flavor: Flavor) -> Result<BlockImage, WalError> {
    let t = |_| WalError::BadLength;
    let length = c.u16().map_err(t)?;
    let hole_offset = c.u16().map_err(t)?;
    let info = c.u8().map_err(t)?;
    let f = flavor.bimg_flags();
    let compressed = info & f.compressed_mask != 0;
    let has_hole = info & f.has_hole != 0;
    let hole_length = if compressed {
        if has_hole {
            c.u16().map_err(t)?
        } else {
            0
        }
    } else {
        // Uncompressed images store everything but the hole.
        (BLCKSZ as u16).wrapping_sub(length)
    };
    let full = length as u32 == BLCKSZ;
    let bad = (has_hole && (hole_offset == 0 || hole_length == 0 || full))
        || (!has_hole && (hole_offset != 0 || hole_length != 0))
        || (compressed && full)
        || (!has_hole && !compressed && !full);
    if bad {
        return Err(WalError::BadImage {
            info,
            length,
            hole_offset,
            hole_length,
        });
    }
    // Same precedence as PostgreSQL when several method bits are set.
    let compression = if !compressed {
        Compression::None
    } else if info & f.pglz != 0 {
        Compression::Pglz
    } else if f.lz4 != 0 && info & f.lz4 != 0 {
        Compression::Lz4
    } else {
        Compression::Zstd
    };
    Ok(BlockImage {
        length,
        hole_offset,
        hole_length,
        bimg_info: info,
        apply: info & f.apply != 0,
        compression,
        bytes: Bytes::new(),
    })
}
