//! openGauss's WAL records: the 32-byte `XLogRecord` and the record body with its block
//! references, decoded as its server writes them (`XLogRecordAssemble`) and checked on real
//! WAL.
//!
//! The header: `xl_tot_len` u32, `xl_term` u32 (the failover term; its high bit
//! `XLOG_CONTAIN_CSN` says the record carries a CSN), `xl_xid` u64, `xl_prev` u64, `xl_info`
//! u8, `xl_rmid` u8, `xl_bucket_id` u16 (bucket id + 1: 0 for ordinary records), `xl_crc`. The
//! CRC-32C covers the payload, then the header up to `xl_crc`.
//!
//! A block reference: the id byte (bits 0..5 the id; 0x80: a 16-byte `RelFileNode` follows
//! instead of the 12-byte one; 0x40: a TDE key follows it), `fork_flags`, `data_length`, an
//! image header (`hole_offset`, `hole_length`; the image is the page minus the hole) when it
//! has an image, then — unless `SAME_REL` — the relation node and `extra_flag`, the block
//! number, a segment-page relation's physical location (file number, block, and optionally
//! its visibility map's), and always the page's previous LSN (`last_lsn`). Block id 253 is the
//! replication origin (4 bytes); 255 and 254 the main data (last). Every byte must be
//! accounted for: a record whose bytes do not add up in this layout is an error
//! ([`WalError::NotUnderstood`]), whatever its page magic says — the magic has not changed
//! across the releases whose formats did.
//!
//! Phases 3, 4 and 6 (every WAL read of an openGauss cluster), and `inspect wal`.

use super::WalError;
use crate::cursor::{Cursor, Truncated};
use crate::lsn::Lsn;
use crate::relpath::{BlockNumber, ForkNumber, RelFileLocator, BLCKSZ};
use bytes::Bytes;

/// `SizeOfXLogRecord`.
pub const RECORD_HEADER_LEN: u32 = 32;
/// Highest block id of a block reference (`XLR_MAX_BLOCK_ID`).
const XLR_MAX_BLOCK_ID: u8 = 32;

const BLOCK_ID_DATA_SHORT: u8 = 255;
const BLOCK_ID_DATA_LONG: u8 = 254;
const BLOCK_ID_ORIGIN: u8 = 253;
/// `BKID_HAS_BUCKET_OR_SEGPAGE`: the 16-byte `RelFileNode` follows.
const BKID_HAS_BUCKET_OR_SEGPAGE: u8 = 0x80;
/// `BKID_HAS_TDE_PAGE`: a TDE key follows the relation node.
const BKID_HAS_TDE_PAGE: u8 = 0x40;
const BKID_MASK: u8 = 0x3F;

const BKPBLOCK_FORK_MASK: u8 = 0x0F;
const BKPBLOCK_HAS_IMAGE: u8 = 0x10;
const BKPBLOCK_HAS_DATA: u8 = 0x20;
const BKPBLOCK_SAME_REL: u8 = 0x80;
/// In `seg_fileno`: the visibility map's location follows.
const BKPBLOCK_HAS_VM_LOC: u8 = 0x80;
const SEG_FILENO_MASK: u8 = 0x3F;

/// `InvalidBktId`: the relation node of a plain (heap-file) relation.
pub const INVALID_BUCKET: i16 = -1;
/// `SegmentBktId`: the bucket of segment-page storage.
pub const SEGMENT_BUCKET: i16 = 16384;
/// Tablespace OID the server never gives physical locations for.
const NO_PHYSICAL_LOCATION_SPC: u32 = 8;
/// Relation numbers of segment-page storage's physical files (`<db>/1` … `<db>/5`).
pub const MAX_PHYSICAL_SEGMENT_REL: u32 = 5;

/// Where a segment-page relation's page lives: block `blockno` of the physical file
/// `<db>/<fileno>` (one file per extent size: 1 for metadata, 2..=5 for extents of 8, 128,
/// 1024 and 8192 pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegLocation {
    /// `seg_fileno`, the physical file's relation number (1..=5).
    pub fileno: u8,
    /// `seg_blockno`, the block in that file (all its segments counted from 0).
    pub blockno: BlockNumber,
    /// The visibility map page's location, when the record gives it.
    pub vm: Option<(u8, BlockNumber)>,
}

impl SegLocation {
    /// The extent size (in pages) of physical file `fileno`, as `pg_xlogdump` prints it
    /// ("phy loc 8/4157"); 0 for a file number without extents.
    pub fn extent_size(fileno: u8) -> u32 {
        match fileno {
            1 => 1,
            2 => 8,
            3 => 128,
            4 => 1024,
            5 => 8192,
            _ => 0,
        }
    }
}

/// What openGauss adds to a block reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OgBlock {
    /// `bucketNode` of the relation node: [`INVALID_BUCKET`] for a plain relation (and for
    /// every 12-byte node), [`SEGMENT_BUCKET`] for segment-page storage, 0..16383 for a hash
    /// bucket.
    pub bucket_node: i16,
    /// `opt`: a compressed (CFS) relation's options (algorithm, chunk size…); 0 otherwise.
    pub opt: u16,
    /// `extra_flag` (the previous reference's with `SAME_REL`).
    pub extra_flag: u16,
    /// A logical segment-page relation's physical location of the page.
    pub seg: Option<SegLocation>,
    /// `last_lsn`: the page's LSN before this change (0/0 for a new page).
    pub last_lsn: Lsn,
}

impl OgBlock {
    /// Whether the relation lives in segment-page storage (`IsSegmentFileNode`).
    pub fn is_segment(&self) -> bool {
        self.bucket_node > INVALID_BUCKET
    }
}

/// openGauss's `XLogRecord`.
#[derive(Debug, Clone, Copy)]
pub(super) struct OgHeader {
    pub(super) tot_len: u32,
    pub(super) term: u32,
    pub(super) xid: u64,
    pub(super) prev: Lsn,
    pub(super) info: u8,
    pub(super) rmid: u8,
    pub(super) bucket_id: u16,
    pub(super) crc: u32,
}

/// A full-page image: the page without its hole.
#[derive(Debug)]
pub(super) struct OgImage {
    pub(super) hole_offset: u16,
    pub(super) hole_length: u16,
    pub(super) bytes: Bytes,
}

impl OgImage {
    /// The stored image's length.
    pub(super) fn stored_len(&self) -> usize {
        (BLCKSZ - u32::from(self.hole_length)) as usize
    }
}

/// One decoded block reference.
#[derive(Debug)]
pub(super) struct OgBlockRef {
    pub(super) id: u8,
    pub(super) fork_flags: u8,
    pub(super) fork: ForkNumber,
    pub(super) rel: RelFileLocator,
    pub(super) blk: BlockNumber,
    pub(super) image: Option<OgImage>,
    pub(super) data: Bytes,
    pub(super) og: OgBlock,
}

/// A decoded record body.
#[derive(Debug)]
pub(super) struct OgBody {
    pub(super) blocks: Vec<OgBlockRef>,
    pub(super) origin: Option<u32>,
    pub(super) main_data: Bytes,
}

/// The relation node of a block reference and what comes with it.
#[derive(Clone, Copy)]
struct Node {
    rel: RelFileLocator,
    bucket_node: i16,
    opt: u16,
    extra_flag: u16,
}

fn not_understood(what: impl Into<String>) -> WalError {
    WalError::NotUnderstood(what.into())
}

fn short(t: Truncated) -> WalError {
    not_understood(format!("the record's headers end early ({t})"))
}

/// Decodes the 32-byte record header.
pub(super) fn decode_header(bytes: &[u8]) -> Result<OgHeader, WalError> {
    let mut c = Cursor::new(bytes);
    let t = |_| WalError::BadLength;
    let tot_len = c.u32().map_err(t)?;
    let term = c.u32().map_err(t)?;
    let xid = c.u64().map_err(t)?;
    let prev = Lsn(c.u64().map_err(t)?);
    let info = c.u8().map_err(t)?;
    let rmid = c.u8().map_err(t)?;
    let bucket_id = c.u16().map_err(t)?;
    let crc = c.u32().map_err(t)?;
    Ok(OgHeader {
        tot_len,
        term,
        xid,
        prev,
        info,
        rmid,
        bucket_id,
        crc,
    })
}

/// Decodes everything after the 32-byte header: block headers, origin, main-data header, then
/// the data they announce, which must be exactly the rest of the record.
pub(super) fn decode_body(body: &Bytes) -> Result<OgBody, WalError> {
    let mut c = Cursor::new(body);
    let mut blocks: Vec<OgBlockRef> = Vec::new();
    let mut origin = None;
    let mut main_len = 0usize;
    let mut data_total = 0usize;
    let mut data_lens: Vec<usize> = Vec::new();
    let mut last_node: Option<Node> = None;
    while c.remaining() > data_total {
        match c.u8().map_err(short)? {
            BLOCK_ID_DATA_SHORT => {
                main_len = usize::from(c.u8().map_err(short)?);
                data_total += main_len;
                break;
            }
            BLOCK_ID_DATA_LONG => {
                main_len = c.u32().map_err(short)? as usize;
                data_total = data_total.saturating_add(main_len);
                break;
            }
            BLOCK_ID_ORIGIN => origin = Some(c.u32().map_err(short)?),
            id if id & BKID_MASK <= XLR_MAX_BLOCK_ID => {
                if blocks.last().is_some_and(|b| id & BKID_MASK <= b.id) {
                    return Err(not_understood(format!(
                        "block id {} out of order",
                        id & BKID_MASK
                    )));
                }
                let (b, node, data_len) = decode_block(&mut c, id, last_node)?;
                last_node = Some(node);
                data_total += data_len + b.image.as_ref().map_or(0, OgImage::stored_len);
                data_lens.push(data_len);
                blocks.push(b);
            }
            id => return Err(not_understood(format!("block id {id}"))),
        }
    }
    if c.remaining() != data_total {
        return Err(not_understood(format!(
            "its headers announce {data_total} bytes of data, {} follow them",
            c.remaining()
        )));
    }
    let mut at = c.position();
    let mut take = |n: usize| {
        let s = body.slice(at..at + n);
        at += n;
        s
    };
    for (b, &n) in blocks.iter_mut().zip(&data_lens) {
        if let Some(img) = &mut b.image {
            img.bytes = take(img.stored_len());
        }
        b.data = take(n);
    }
    Ok(OgBody {
        blocks,
        origin,
        main_data: take(main_len),
    })
}

/// Decodes one block header; returns the reference (its data attached later), its relation
/// node, and the announced data length.
fn decode_block(
    c: &mut Cursor<'_>,
    id_byte: u8,
    last: Option<Node>,
) -> Result<(OgBlockRef, Node, usize), WalError> {
    let id = id_byte & BKID_MASK;
    let fork_flags = c.u8().map_err(short)?;
    let fork_no = fork_flags & BKPBLOCK_FORK_MASK;
    let fork = ForkNumber::from_opengauss(fork_no)
        .ok_or_else(|| not_understood(format!("fork number {fork_no} in block reference {id}")))?;
    let data_len = c.u16().map_err(short)?;
    if (fork_flags & BKPBLOCK_HAS_DATA != 0) != (data_len > 0) {
        return Err(not_understood(format!(
            "block reference {id}: HAS_DATA and data length {data_len} disagree"
        )));
    }
    let image = match fork_flags & BKPBLOCK_HAS_IMAGE {
        0 => None,
        _ => Some(decode_image(c, id)?),
    };
    let node = if fork_flags & BKPBLOCK_SAME_REL == 0 {
        decode_node(c, id_byte)?
    } else {
        last.ok_or_else(|| not_understood(format!("block reference {id}: SAME_REL first")))?
    };
    let blk = BlockNumber(c.u32().map_err(short)?);
    let seg = match needs_physical_location(&node) {
        true => Some(decode_seg_location(c)?),
        false => None,
    };
    let last_lsn = Lsn(c.u64().map_err(short)?);
    let og = OgBlock {
        bucket_node: node.bucket_node,
        opt: node.opt,
        extra_flag: node.extra_flag,
        seg,
        last_lsn,
    };
    let b = OgBlockRef {
        id,
        fork_flags,
        fork,
        rel: node.rel,
        blk,
        image,
        data: Bytes::new(),
        og,
    };
    Ok((b, node, usize::from(data_len)))
}

/// `XLogRecordBlockImageHeader` (`hole_offset`, `hole_length`): no `bimg_info`, never
/// compressed; the image is the page without its hole.
fn decode_image(c: &mut Cursor<'_>, id: u8) -> Result<OgImage, WalError> {
    let hole_offset = c.u16().map_err(short)?;
    let hole_length = c.u16().map_err(short)?;
    if u32::from(hole_offset) + u32::from(hole_length) > BLCKSZ {
        return Err(not_understood(format!(
            "block reference {id}: image hole at {hole_offset} of {hole_length} bytes"
        )));
    }
    Ok(OgImage {
        hole_offset,
        hole_length,
        bytes: Bytes::new(),
    })
}

/// The relation node (12 or 16 bytes), a TDE key (refused: its layout is not known here) and
/// `extra_flag`.
fn decode_node(c: &mut Cursor<'_>, id_byte: u8) -> Result<Node, WalError> {
    let rel = RelFileLocator {
        spc: c.u32().map_err(short)?,
        db: c.u32().map_err(short)?,
        rel: c.u32().map_err(short)?,
    };
    let (mut bucket_node, mut opt) = (INVALID_BUCKET, 0);
    if id_byte & BKID_HAS_BUCKET_OR_SEGPAGE != 0 {
        bucket_node = c.u16().map_err(short)? as i16;
        opt = c.u16().map_err(short)?;
        // An older server's RelFileNode read this way (the reader's `CompressTableRecord`).
        if bucket_node <= INVALID_BUCKET && opt == 0xFFFF {
            opt = 0;
        }
    }
    if id_byte & BKID_HAS_TDE_PAGE != 0 {
        return Err(not_understood(format!(
            "block reference {} of an encrypted (TDE) relation {}/{}/{}",
            id_byte & BKID_MASK,
            rel.spc,
            rel.db,
            rel.rel
        )));
    }
    let extra_flag = c.u16().map_err(short)?;
    Ok(Node {
        rel,
        bucket_node,
        opt,
        extra_flag,
    })
}

/// `XLOG_NEED_PHYSICAL_LOCATION`: a logical relation of segment-page storage.
fn needs_physical_location(n: &Node) -> bool {
    n.bucket_node > INVALID_BUCKET
        && n.rel.spc != NO_PHYSICAL_LOCATION_SPC
        && n.rel.rel > MAX_PHYSICAL_SEGMENT_REL
}

/// `seg_fileno` (0x80: the visibility map's location follows), `seg_blockno`, then the
/// visibility map's file number and block.
fn decode_seg_location(c: &mut Cursor<'_>) -> Result<SegLocation, WalError> {
    let raw = c.u8().map_err(short)?;
    let blockno = BlockNumber(c.u32().map_err(short)?);
    let vm = match raw & BKPBLOCK_HAS_VM_LOC {
        0 => None,
        _ => {
            let vm_fileno = c.u8().map_err(short)?;
            Some((vm_fileno, BlockNumber(c.u32().map_err(short)?)))
        }
    };
    // The server masks the file number only when the visibility map's location follows.
    let fileno = match vm {
        Some(_) => raw & SEG_FILENO_MASK,
        None => raw,
    };
    Ok(SegLocation {
        fileno,
        blockno,
        vm,
    })
}
