//! WAL page headers (`XLogPageHeaderData`, `XLogLongPageHeaderData`): decoding and the checks
//! `xlogreader.c` makes before it trusts a page (magic, info bits, page address, timeline, and
//! the long header's system id and sizes).
//!
//! Every WAL page of 8192 bytes starts with a 24-byte header; the first page of a segment has a
//! 40-byte long header that also names the system and the segment and page sizes.

use super::WalError;
use crate::cursor::Cursor;
use crate::flavor::Flavor;
use crate::lsn::{Lsn, TimeLineId};

/// WAL page size in bytes (`XLOG_BLCKSZ`). Only the default build is supported: a long header
/// that names another size is rejected.
pub const XLOG_BLCKSZ: u32 = 8192;
/// Size of a short page header, MAXALIGNed (`SizeOfXLogShortPHD`).
pub const SHORT_HEADER_LEN: u32 = 24;
/// Size of a long page header, MAXALIGNed (`SizeOfXLogLongPHD`).
pub const LONG_HEADER_LEN: u32 = 40;

/// `XLP_FIRST_IS_CONTRECORD`: the page starts with the rest of a record begun earlier.
pub const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
/// `XLP_LONG_HEADER`: the page has a long header (first page of a segment).
pub const XLP_LONG_HEADER: u16 = 0x0002;
/// `XLP_BKP_REMOVABLE`: full-page images on this page may be removed by archivers.
pub const XLP_BKP_REMOVABLE: u16 = 0x0004;
/// `XLP_FIRST_IS_OVERWRITE_CONTRECORD`: the record that was continuing onto this page was
/// aborted (lost at a crash) and an `XLOG_OVERWRITE_CONTRECORD` record starts here instead.
pub const XLP_FIRST_IS_OVERWRITE_CONTRECORD: u16 = 0x0008;

/// A decoded page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// `xlp_magic`.
    pub magic: u16,
    /// The major that wrote the page (from the magic).
    pub flavor: Flavor,
    /// `xlp_info` flag bits.
    pub info: u16,
    /// `xlp_tli`: timeline of the page's first record.
    pub tli: TimeLineId,
    /// `xlp_pageaddr`: the WAL position of the page's first byte.
    pub pageaddr: Lsn,
    /// `xlp_rem_len`: bytes of a record continued from earlier pages that are still to come,
    /// counted from this page's payload.
    pub rem_len: u32,
    /// openGauss's `xlp_total_len` (always 0 outside its shared-storage mode); `None` where
    /// the bytes are alignment padding (PostgreSQL).
    pub total_len: Option<u32>,
    /// The long header's fields, when `XLP_LONG_HEADER` is set.
    pub long: Option<LongHeader>,
}

/// The extra fields of a long page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongHeader {
    /// `xlp_sysid`: the database system identifier.
    pub sysid: u64,
    /// `xlp_seg_size`: WAL segment size in bytes.
    pub seg_size: u32,
    /// `xlp_xlog_blcksz`: WAL page size in bytes.
    pub page_size: u32,
}

/// What a reader expects of a page at a given position.
#[derive(Debug, Clone, Copy)]
pub struct PageExpect {
    /// Where the page is (must be a multiple of [`XLOG_BLCKSZ`]).
    pub pageaddr: Lsn,
    /// WAL segment size in bytes.
    pub seg_size: u32,
    /// The system id, when known.
    pub sysid: Option<u64>,
    /// The major of the pages read before, when any.
    pub flavor: Option<Flavor>,
    /// The highest timeline of the pages read before (0 when none).
    pub min_tli: u32,
}

/// Why a page cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageFault {
    /// The page was never written at this position: all zeros, or an older page address left
    /// in a recycled segment. This is where valid WAL ends.
    Stale,
    /// The page is damaged or belongs to something else.
    Bad(WalError),
}

impl PageHeader {
    /// Length of the header at `pageaddr` in bytes: 40 at the start of a segment, else 24.
    pub fn len_at(pageaddr: Lsn, seg_size: u32) -> u32 {
        if pageaddr.segment_offset(seg_size) == 0 {
            LONG_HEADER_LEN
        } else {
            SHORT_HEADER_LEN
        }
    }

    /// Length of this header in bytes (24 or 40).
    pub fn header_len(&self) -> u32 {
        if self.long.is_some() {
            LONG_HEADER_LEN
        } else {
            SHORT_HEADER_LEN
        }
    }

    /// Whether the page starts with the continuation of an earlier record.
    pub fn is_contrecord(&self) -> bool {
        self.info & XLP_FIRST_IS_CONTRECORD != 0
    }

    /// Whether the record continuing onto this page was aborted and overwritten.
    pub fn is_overwrite_contrecord(&self) -> bool {
        self.info & XLP_FIRST_IS_OVERWRITE_CONTRECORD != 0
    }

    /// Decodes a header from the page's first bytes (at least 24, or 40 when the long-header
    /// flag is set). Only the magic is checked here; see [`PageHeader::check`].
    pub fn decode(bytes: &[u8]) -> Result<PageHeader, WalError> {
        let trunc = |_| WalError::BadLength;
        let mut c = Cursor::new(bytes);
        let magic = c.u16().map_err(trunc)?;
        let flavor = Flavor::from_wal_page_magic(magic).ok_or(WalError::BadMagic(magic))?;
        let info = c.u16().map_err(trunc)?;
        let tli = TimeLineId(c.u32().map_err(trunc)?);
        let pageaddr = Lsn(c.u64().map_err(trunc)?);
        let rem_len = c.u32().map_err(trunc)?;
        let total_len = c.u32().map_err(trunc)?;
        let total_len = flavor.formats().page_total_len.then_some(total_len);
        let long = if info & XLP_LONG_HEADER != 0 {
            Some(LongHeader {
                sysid: c.u64().map_err(trunc)?,
                seg_size: c.u32().map_err(trunc)?,
                page_size: c.u32().map_err(trunc)?,
            })
        } else {
            None
        };
        Ok(PageHeader {
            magic,
            flavor,
            info,
            tli,
            pageaddr,
            rem_len,
            total_len,
            long,
        })
    }

    /// Decodes and checks the header of the page at `exp.pageaddr`, as `xlogreader.c`'s
    /// `XLogReaderValidatePageHeader` does. `bytes` must hold at least
    /// [`PageHeader::len_at`] bytes.
    pub fn read_checked(bytes: &[u8], exp: &PageExpect) -> Result<PageHeader, PageFault> {
        let want = PageHeader::len_at(exp.pageaddr, exp.seg_size) as usize;
        let head = bytes.get(..want).unwrap_or(bytes);
        if head.iter().all(|&b| b == 0) {
            return Err(PageFault::Stale);
        }
        let h = PageHeader::decode(head).map_err(PageFault::Bad)?;
        h.check(exp)?;
        Ok(h)
    }

    /// Checks a decoded header against what the reader expects at this position.
    pub fn check(&self, exp: &PageExpect) -> Result<(), PageFault> {
        let bad = |e| Err(PageFault::Bad(e));
        if let Some(m) = exp.flavor {
            if m != self.flavor {
                return bad(WalError::MagicChanged {
                    expected: m.wal_page_magic(),
                    found: self.magic,
                });
            }
        }
        // A recycled segment keeps its old pages, whose addresses lie one or more segments
        // back: that is the normal end of WAL, not damage.
        if self.pageaddr < exp.pageaddr {
            return Err(PageFault::Stale);
        }
        if self.pageaddr != exp.pageaddr {
            return bad(WalError::BadPageAddr(self.pageaddr));
        }
        let at_seg_start = exp.pageaddr.segment_offset(exp.seg_size) == 0;
        let all_flags = self.flavor.formats().page_info_flags;
        if self.info & !all_flags != 0 || at_seg_start != self.long.is_some() {
            return bad(WalError::BadInfoBits(self.info));
        }
        if let Some(l) = self.long {
            if let Some(sysid) = exp.sysid.filter(|&s| s != l.sysid) {
                return bad(WalError::SysidMismatch {
                    expected: sysid,
                    found: l.sysid,
                });
            }
            if l.seg_size != exp.seg_size {
                return bad(WalError::SegSizeMismatch {
                    expected: exp.seg_size,
                    found: l.seg_size,
                });
            }
            if l.page_size != XLOG_BLCKSZ {
                return bad(WalError::PageSizeMismatch(l.page_size));
            }
        }
        if self.tli.0 < exp.min_tli {
            return bad(WalError::TliBackwards {
                tli: self.tli.0,
                after: exp.min_tli,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u32 = 1 << 20;

    fn header(pageaddr: u64, info: u16, tli: u32, long: bool) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(0xD110u16.to_le_bytes());
        v.extend((info | if long { XLP_LONG_HEADER } else { 0 }).to_le_bytes());
        v.extend(tli.to_le_bytes());
        v.extend(pageaddr.to_le_bytes());
        v.extend(0u32.to_le_bytes());
        v.extend([0; 4]);
        if long {
            v.extend(7u64.to_le_bytes());
            v.extend(SEG.to_le_bytes());
            v.extend(XLOG_BLCKSZ.to_le_bytes());
        }
        v
    }

    fn expect(pageaddr: u64) -> PageExpect {
        PageExpect {
            pageaddr: Lsn(pageaddr),
            seg_size: SEG,
            sysid: Some(7),
            flavor: None,
            min_tli: 1,
        }
    }

    #[test]
    fn good_short_and_long() {
        let h =
            PageHeader::read_checked(&header(SEG as u64, 0, 1, true), &expect(SEG as u64)).unwrap();
        assert_eq!(h.flavor, Flavor::Pg15);
        assert_eq!(h.header_len(), 40);
        assert_eq!(h.long.unwrap().sysid, 7);
        let h =
            PageHeader::read_checked(&header(0x102000, 1, 2, false), &expect(0x102000)).unwrap();
        assert!(h.is_contrecord());
        assert_eq!(h.header_len(), 24);
    }

    #[test]
    fn faults() {
        let e = |b: &[u8], at: u64| PageHeader::read_checked(b, &expect(at)).unwrap_err();
        assert_eq!(e(&[0; 24], 0x102000), PageFault::Stale);
        // recycled: one segment older
        assert_eq!(e(&header(0x2000, 0, 1, false), 0x102000), PageFault::Stale);
        assert_eq!(
            e(&header(0x104000, 0, 1, false), 0x102000),
            PageFault::Bad(WalError::BadPageAddr(Lsn(0x104000)))
        );
        let mut b = header(0x102000, 0, 1, false);
        b[0] = 0x99;
        assert_eq!(e(&b, 0x102000), PageFault::Bad(WalError::BadMagic(0xD199)));
        assert_eq!(
            e(&header(0x102000, 0x10, 1, false), 0x102000),
            PageFault::Bad(WalError::BadInfoBits(0x10))
        );
        // a segment's first page must have a long header
        assert_eq!(
            e(&header(SEG as u64, 0, 1, false), SEG as u64),
            PageFault::Bad(WalError::BadInfoBits(0))
        );
        let mut exp = expect(0x102000);
        exp.min_tli = 3;
        assert_eq!(
            PageHeader::read_checked(&header(0x102000, 0, 2, false), &exp).unwrap_err(),
            PageFault::Bad(WalError::TliBackwards { tli: 2, after: 3 })
        );
        exp.min_tli = 1;
        exp.flavor = Some(Flavor::Pg16);
        assert!(matches!(
            PageHeader::read_checked(&header(0x102000, 0, 2, false), &exp).unwrap_err(),
            PageFault::Bad(WalError::MagicChanged { .. })
        ));
        let mut exp = expect(SEG as u64);
        exp.sysid = Some(8);
        assert!(matches!(
            PageHeader::read_checked(&header(SEG as u64, 0, 1, true), &exp).unwrap_err(),
            PageFault::Bad(WalError::SysidMismatch { .. })
        ));
        exp.sysid = None;
        exp.seg_size = 2 * SEG;
        exp.pageaddr = Lsn(2 * SEG as u64);
        assert!(matches!(
            PageHeader::read_checked(&header(2 * SEG as u64, 0, 1, true), &exp).unwrap_err(),
            PageFault::Bad(WalError::SegSizeMismatch { .. })
        ));
    }
}
