//! The page-LSN scan: reads the LSN in the header of every 8 KiB page of a set of relation
//! files (`pd_lsn`, the first 8 bytes of each page) and reports the pages whose LSN is at or
//! after a threshold. Used in phase 4 by `--changed-blocks=page-lsn` (the blocks the target
//! changed, without its WAL) and by `--verify-blocks` (every page the target wrote after the
//! divergence must be in the WAL-derived block set); see [`crate::pagelsn`] for which files
//! and which thresholds, and docs/architecture.md for when the method is safe.
//!
//! Files are memory-mapped and scanned in parallel with rayon: over files, and over
//! [`CHUNK`]-sized pieces of large files, so one big relation segment keeps every core busy.
//! The inner loop reads 8 bytes per page and allocates only when a page is reported, so a
//! warm page cache is scanned at page-fault speed rather than memory bandwidth (numbers in
//! docs/benchmarks.md).
//!
//! The target is a stopped cluster (checked in phase 1), so its files do not change during the
//! scan. A file truncated by someone else while it is mapped would make the process fault
//! (`SIGBUS`) instead of failing with an error; that is the price of mapping, and the reason
//! the scan must only ever run on a stopped data directory.

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::relpath::BLCKSZ;
use rayon::prelude::*;
use std::fs::File;
use std::path::Path;

/// Bytes per page (`BLCKSZ`).
pub const PAGE_SIZE: usize = BLCKSZ as usize;

/// Large files are scanned in pieces of this many bytes in parallel (a multiple of the page
/// size). Small enough that a 1 GiB segment splits into 32 tasks, large enough that the cost of
/// a task is negligible next to its pages.
pub const CHUNK: usize = 32 << 20;

/// Which pages a scan reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Report pages whose `pd_lsn` is at or after this LSN (inclusive).
    pub from: Lsn,
    /// Also report pages whose `pd_lsn` is 0: pages never stamped by WAL since they were added
    /// to the file (all-zero pages left by relation extension, mostly).
    pub zero_lsn: bool,
}

/// One reported page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHit {
    /// Block number within the file (segment-relative, as in the plan).
    pub block: u32,
    /// The page's `pd_lsn`.
    pub lsn: Lsn,
}

/// The reported pages of one file, in block order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHits {
    /// Path relative to the scanned directory, as given to [`scan`].
    pub path: String,
    /// Reported pages, sorted by block.
    pub pages: Vec<PageHit>,
}

/// What a scan read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Files scanned (empty ones included).
    pub files: u64,
    /// Pages read.
    pub pages: u64,
    /// Bytes in those files.
    pub bytes: u64,
}

impl ScanStats {
    fn add(mut self, other: ScanStats) -> ScanStats {
        self.files += other.files;
        self.pages += other.pages;
        self.bytes += other.bytes;
        self
    }
}

/// The result of [`scan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// Files with at least one reported page, in the order they were given.
    pub files: Vec<FileHits>,
    /// Totals over every scanned file.
    pub stats: ScanStats,
}

impl ScanResult {
    /// Number of reported pages.
    pub fn hits(&self) -> u64 {
        self.files.iter().map(|f| f.pages.len() as u64).sum()
    }
}

/// Scans the files `paths` (relative to `root`) in parallel on the current rayon pool and
/// reports the pages `sel` selects. Fails, naming the file, when one cannot be opened, read or
/// mapped, or when its size is not a whole number of pages (a stopped cluster's relation files
/// always hold whole pages: PostgreSQL extends them page by page and only a crash mid-extension
/// leaves a partial page, which crash recovery has dealt with before a clean shutdown).
pub fn scan(root: &Path, paths: &[String], sel: Selection) -> Result<ScanResult> {
    scan_chunked(root, paths, sel, CHUNK)
}

/// [`scan`] with files larger than `chunk` bytes (a multiple of the page size) split into
/// pieces of that size.
fn scan_chunked(root: &Path, paths: &[String], sel: Selection, chunk: usize) -> Result<ScanResult> {
    let per_file: Vec<(Option<FileHits>, ScanStats)> = paths
        .par_iter()
        .map(|p| scan_file(root, p, sel, chunk))
        .collect::<Result<_>>()?;
    let mut out = ScanResult::default();
    for (hits, stats) in per_file {
        out.stats = out.stats.add(stats);
        out.files.extend(hits);
    }
    Ok(out)
}

fn scan_file(
    root: &Path,
    rel: &str,
    sel: Selection,
    chunk: usize,
) -> Result<(Option<FileHits>, ScanStats)> {
    let full = crate::datadir::join(root, rel)?;
    let file = File::open(&full).map_err(|e| Error::io("open file", &full, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat file", &full, e))?
        .len();
    if len % PAGE_SIZE as u64 != 0 {
        return Err(Error::Relation {
            path: full,
            message: format!(
                "size {len} is not a multiple of the {PAGE_SIZE}-byte page size (a partial page in a cleanly stopped cluster)"
            ),
        });
    }
    let pages = len / PAGE_SIZE as u64;
    if u32::try_from(pages).is_err() {
        return Err(Error::Relation {
            path: full,
            message: format!("{pages} pages are more than a relation segment can hold"),
        });
    }
    let stats = ScanStats {
        files: 1,
        pages,
        bytes: len,
    };
    if len == 0 {
        return Ok((None, stats));
    }
    // SAFETY: the mapping is read-only and the file belongs to a stopped cluster (see the module
    // documentation): nothing writes or truncates it while it is mapped.
    let map = unsafe { memmap2::MmapOptions::new().map(&file) }
        .map_err(|e| Error::io("map file", &full, e))?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    let pages = scan_mapped(&map, sel, chunk);
    let hits = (!pages.is_empty()).then(|| FileHits {
        path: rel.to_string(),
        pages,
    });
    Ok((hits, stats))
}

/// Scans a whole file's bytes, splitting one larger than `chunk` into pieces scanned in
/// parallel.
fn scan_mapped(data: &[u8], sel: Selection, chunk: usize) -> Vec<PageHit> {
    if data.len() <= chunk {
        let mut out = Vec::new();
        scan_pages(data, 0, sel, &mut out);
        return out;
    }
    let pages_per_chunk = (chunk / PAGE_SIZE) as u32;
    let parts: Vec<Vec<PageHit>> = data
        .par_chunks(chunk)
        .enumerate()
        .map(|(i, chunk)| {
            let mut out = Vec::new();
            // `i` < pages / pages_per_chunk, which fits in u32 (checked by the caller).
            scan_pages(chunk, i as u32 * pages_per_chunk, sel, &mut out);
            out
        })
        .collect();
    parts.concat()
}

/// Appends to `out` the pages of `data` (whole pages; a trailing partial page is ignored) that
/// `sel` selects; `first_block` is the block number of `data`'s first page.
pub fn scan_pages(data: &[u8], first_block: u32, sel: Selection, out: &mut Vec<PageHit>) {
    let from = sel.from.0;
    for (i, page) in data.chunks_exact(PAGE_SIZE).enumerate() {
        let Some(lsn) = page_lsn(page) else { continue };
        if lsn >= from || (sel.zero_lsn && lsn == 0) {
            out.push(PageHit {
                block: first_block.wrapping_add(i as u32),
                lsn: Lsn(lsn),
            });
        }
    }
}

/// `pd_lsn` of a page: `xlogid` then `xrecoff`, each a native-endian u32 (PostgreSQL stores
/// the struct as it is in memory). `None` for fewer than 8 bytes.
pub fn page_lsn(page: &[u8]) -> Option<u64> {
    let head = page.first_chunk::<8>()?;
    let [a, b, c, d, e, f, g, h] = *head;
    let hi = u32::from_ne_bytes([a, b, c, d]);
    let lo = u32::from_ne_bytes([e, f, g, h]);
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// Writes `lsn` as a page's `pd_lsn` (for tests and benchmarks that build relation files).
pub fn set_page_lsn(page: &mut [u8], lsn: u64) {
    let hi = ((lsn >> 32) as u32).to_ne_bytes();
    let lo = (lsn as u32).to_ne_bytes();
    for (dst, src) in page.iter_mut().zip(hi.iter().chain(lo.iter())) {
        *dst = *src;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A relation file of pages with the given LSNs (other bytes: a pattern, not zeros).
    fn write_rel(root: &Path, rel: &str, lsns: &[u64]) -> PathBuf {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut data = vec![0u8; lsns.len() * PAGE_SIZE];
        for (page, &lsn) in data.chunks_exact_mut(PAGE_SIZE).zip(lsns) {
            if lsn != 0 {
                page.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
            }
            set_page_lsn(page, lsn);
        }
        std::fs::write(&path, data).unwrap();
        path
    }

    fn sel(from: u64, zero_lsn: bool) -> Selection {
        Selection {
            from: Lsn(from),
            zero_lsn,
        }
    }

    fn blocks(r: &ScanResult, path: &str) -> Vec<(u32, u64)> {
        r.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.pages.iter().map(|p| (p.block, p.lsn.0)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn lsn_layout_is_xlogid_then_xrecoff() {
        let mut page = vec![0u8; PAGE_SIZE];
        page[..4].copy_from_slice(&1u32.to_ne_bytes());
        page[4..8].copy_from_slice(&0x2000_0028u32.to_ne_bytes());
        assert_eq!(page_lsn(&page), Some(0x1_2000_0028));
        set_page_lsn(&mut page, 0x0000_0003_0000_0010);
        assert_eq!(page_lsn(&page), Some(0x3_0000_0010));
        assert_eq!(page_lsn(&page[..7]), None);
    }

    #[test]
    fn threshold_is_inclusive() {
        let d = tempfile::tempdir().unwrap();
        let t = 0x1_0000_0100u64;
        write_rel(
            d.path(),
            "base/5/16384",
            &[t - 1, t, t + 1, 0, 0x10, u64::MAX],
        );
        let paths = vec!["base/5/16384".to_string()];
        let r = scan(d.path(), &paths, sel(t, false)).unwrap();
        assert_eq!(
            blocks(&r, "base/5/16384"),
            vec![(1, t), (2, t + 1), (5, u64::MAX)]
        );
        assert_eq!(
            r.stats,
            ScanStats {
                files: 1,
                pages: 6,
                bytes: 6 * PAGE_SIZE as u64
            }
        );
        // Zero-LSN pages only when asked for.
        let r = scan(d.path(), &paths, sel(t, true)).unwrap();
        assert_eq!(
            blocks(&r, "base/5/16384"),
            vec![(1, t), (2, t + 1), (3, 0), (5, u64::MAX)]
        );
        // Threshold above everything: nothing; files without hits are not listed.
        let r = scan(d.path(), &paths, sel(u64::MAX, false)).unwrap();
        assert_eq!(blocks(&r, "base/5/16384"), vec![(5, u64::MAX)]);
        let r = scan(d.path(), &paths, sel(0x2_0000_0000, false)).unwrap();
        assert_eq!(r.hits(), 1);
    }

    #[test]
    fn all_zero_pages_are_lsn_zero() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("base/5/16390");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![0u8; 4 * PAGE_SIZE]).unwrap();
        let paths = vec!["base/5/16390".to_string()];
        assert_eq!(scan(d.path(), &paths, sel(1, false)).unwrap().hits(), 0);
        let r = scan(d.path(), &paths, sel(1, true)).unwrap();
        assert_eq!(
            blocks(&r, "base/5/16390"),
            vec![(0, 0), (1, 0), (2, 0), (3, 0)]
        );
    }

    #[test]
    fn empty_file_counts_but_reports_nothing() {
        let d = tempfile::tempdir().unwrap();
        write_rel(d.path(), "base/5/16391", &[]);
        let r = scan(d.path(), &["base/5/16391".to_string()], sel(0, true)).unwrap();
        assert!(r.files.is_empty());
        assert_eq!(
            r.stats,
            ScanStats {
                files: 1,
                pages: 0,
                bytes: 0
            }
        );
    }

    #[test]
    fn partial_page_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        write_rel(d.path(), "base/5/16384", &[5, 6]);
        let bad = d.path().join("base/5/16392");
        std::fs::write(&bad, vec![1u8; PAGE_SIZE + 100]).unwrap();
        let paths = vec!["base/5/16384".to_string(), "base/5/16392".to_string()];
        let err = scan(d.path(), &paths, sel(0, false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("base/5/16392"), "{err}");
        assert!(
            err.contains("not a multiple of the 8192-byte page size"),
            "{err}"
        );
        let missing = vec!["base/5/404".to_string()];
        let err = scan(d.path(), &missing, sel(0, false))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("could not open file") && err.contains("base/5/404"),
            "{err}"
        );
    }

    #[test]
    fn multi_segment_relation_and_chunked_files() {
        let d = tempfile::tempdir().unwrap();
        // Segment .1 spans several chunks of 4 pages; hits in several chunks, in order.
        let chunk = 4 * PAGE_SIZE;
        let pages = 4 * 5 + 3;
        let mut lsns = vec![100u64; pages];
        let marked = [0, 1, 3, 4, 9, 12, pages - 1];
        for &b in &marked {
            lsns[b] = 0x5_0000_0000 + b as u64;
        }
        write_rel(d.path(), "base/5/16384", &[100, 0x5_0000_0000]);
        write_rel(d.path(), "base/5/16384.1", &lsns);
        write_rel(
            d.path(),
            "pg_tblspc/16500/PG_15_202209061/5/16501",
            &[0x6_0000_0000],
        );
        let paths: Vec<String> = [
            "base/5/16384",
            "base/5/16384.1",
            "pg_tblspc/16500/PG_15_202209061/5/16501",
        ]
        .map(String::from)
        .to_vec();
        let r = scan_chunked(d.path(), &paths, sel(0x5_0000_0000, false), chunk).unwrap();
        assert_eq!(blocks(&r, "base/5/16384"), vec![(1, 0x5_0000_0000)]);
        let want: Vec<(u32, u64)> = marked
            .iter()
            .map(|&b| (b as u32, 0x5_0000_0000 + b as u64))
            .collect();
        assert_eq!(blocks(&r, "base/5/16384.1"), want);
        assert_eq!(r.files.len(), 3);
        assert_eq!(r.files[1].path, "base/5/16384.1");
        assert_eq!(r.stats.files, 3);
        assert_eq!(r.stats.pages, 2 + pages as u64 + 1);
        // Unsplit, and on one thread, the answer is the same.
        assert_eq!(
            scan(d.path(), &paths, sel(0x5_0000_0000, false)).unwrap(),
            r
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let one = pool
            .install(|| scan_chunked(d.path(), &paths, sel(0x5_0000_0000, false), chunk))
            .unwrap();
        assert_eq!(one, r);
    }

    #[test]
    fn rejects_escaping_paths() {
        let d = tempfile::tempdir().unwrap();
        let err = scan(d.path(), &["../x".to_string()], sel(0, false)).unwrap_err();
        assert!(err.to_string().contains("../x"), "{err}");
    }
}
