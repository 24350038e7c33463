//! Changed blocks by page LSN (phase 4): which of the target's relation files the page-LSN
//! scan ([`crate::pagescan`]) reads, with which threshold, and what the result means.
//!
//! - `--changed-blocks=page-lsn` ([`page_lsn_blocks`]): the blocks the target changed are the
//!   pages whose `pd_lsn` is at or after the redo point recovery will replay the source's WAL
//!   from, plus pages whose `pd_lsn` is 0. No target WAL is read, so a target whose WAL after
//!   the common checkpoint is gone can still be rebuilt; the common checkpoint itself then comes
//!   from the source's WAL (phase 3, `rewind::divergence`).
//! - `--verify-blocks` ([`verify_wal_blocks`]): every page whose `pd_lsn` is at or after the
//!   divergence point must be in the block set derived from the target's WAL; one that is not
//!   is a bug in the WAL scan, and the rebuild stops before writing anything.
//!
//! Both read only the files the plan patches block by block: main-fork segments that are
//! regular files on both sides, in this cluster's tablespace directories, of WAL-logged
//! relations. docs/architecture.md ("When the page-LSN method is safe") gives the reasoning.

use crate::datadir::FileKind;
use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::pagescan::{self, ScanResult, ScanStats, Selection};
use crate::relpath::{classify, ForkNumber, RelFileLocator};
use crate::reporter::Reporter;
use crate::walscan::ChangedBlocks;
use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

/// What a page-LSN scan of the target needs to know.
pub struct ScanInput<'a> {
    /// The target data directory.
    pub target: &'a Path,
    /// The source's listing.
    pub source_files: &'a [(String, FileKind)],
    /// The target's listing.
    pub target_files: &'a [(String, FileKind)],
    /// This cluster's `PG_<major>_<catver>` tablespace directory name.
    pub tablespace_dir: &'a str,
    /// The divergence point.
    pub divergence: Lsn,
    /// The redo point of the common checkpoint, where recovery of the rebuilt target starts.
    pub redo: Lsn,
}

/// The target files the plan patches block by block and the scan reads: main-fork relation
/// segments that are regular files on both sides, not of an unlogged relation (one with an
/// `_init` fork on either side: its main fork is not WAL-logged, and recovery replaces it with
/// the init fork anyway), and, in a tablespace, inside this cluster's version directory (another
/// major's directory in the same location has LSNs of another WAL). Temporary relations are not
/// relation files to [`classify`]; other forks are copied whole by the plan.
pub fn scan_candidates(
    source: &[(String, FileKind)],
    target: &[(String, FileKind)],
    tablespace_dir: &str,
) -> Vec<String> {
    let is_file = |k: &FileKind| matches!(k, FileKind::File { .. });
    let source_files: HashSet<&str> = source
        .iter()
        .filter(|(_, k)| is_file(k))
        .map(|(p, _)| p.as_str())
        .collect();
    let unlogged: HashSet<RelFileLocator> = source
        .iter()
        .chain(target)
        .filter_map(|(p, _)| classify(p))
        .filter(|f| f.fork == ForkNumber::Init)
        .map(|f| f.locator)
        .collect();
    target
        .iter()
        .filter(|(p, k)| is_file(k) && source_files.contains(p.as_str()))
        .filter(|(p, _)| in_cluster_dir(p, tablespace_dir))
        .filter(|(p, _)| {
            classify(p)
                .is_some_and(|f| f.fork == ForkNumber::Main && !unlogged.contains(&f.locator))
        })
        .map(|(p, _)| p.clone())
        .collect()
}

fn in_cluster_dir(path: &str, tablespace_dir: &str) -> bool {
    match path.strip_prefix("pg_tblspc/") {
        Some(rest) => rest.split('/').nth(1) == Some(tablespace_dir),
        None => true,
    }
}

/// `--changed-blocks=page-lsn`: the pages of the candidate files whose `pd_lsn` is at or after
/// the redo point, or is 0, by segment path — the same shape and meaning as the WAL scan's
/// set (blocks changed since the redo point).
pub fn page_lsn_blocks(input: &ScanInput<'_>, rep: &mut dyn Reporter) -> Result<ChangedBlocks> {
    let files = scan_candidates(input.source_files, input.target_files, input.tablespace_dir);
    rep.step(&format!(
        "scanning page LSNs of {} relation files in target",
        files.len()
    ));
    let sel = Selection {
        from: input.redo,
        zero_lsn: true,
    };
    let t = Instant::now();
    let scan = pagescan::scan(input.target, &files, sel)?;
    rep.step(&format!(
        "{} pages changed since the redo point {} or never stamped by WAL, in {} files ({})",
        scan.hits(),
        input.redo,
        scan.files.len(),
        describe(&scan.stats, t)
    ));
    let mut changed = ChangedBlocks::with_capacity(scan.files.len());
    for f in scan.files {
        changed.insert(f.path, f.pages.iter().map(|p| p.block).collect());
    }
    Ok(changed)
}

/// `--verify-blocks`: scans the candidate files for pages with `pd_lsn` at or after the
/// divergence point and checks each against `wal` (see [`check_against_wal`]).
pub fn verify_wal_blocks(
    input: &ScanInput<'_>,
    wal: &ChangedBlocks,
    rep: &mut dyn Reporter,
) -> Result<ScanStats> {
    let files = scan_candidates(input.source_files, input.target_files, input.tablespace_dir);
    rep.step(&format!(
        "verifying changed blocks: scanning page LSNs of {} relation files in target",
        files.len()
    ));
    let sel = Selection {
        from: input.divergence,
        zero_lsn: false,
    };
    let t = Instant::now();
    let scan = pagescan::scan(input.target, &files, sel)?;
    check_against_wal(&scan, wal, input.divergence)?;
    rep.step(&format!(
        "verified: all {} pages written at or after {} (in {} files) are in the WAL's block set ({})",
        scan.hits(),
        input.divergence,
        scan.files.len(),
        describe(&scan.stats, t)
    ));
    Ok(scan.stats)
}

fn describe(stats: &ScanStats, since: Instant) -> String {
    let secs = since.elapsed().as_secs_f64();
    format!(
        "{} files, {} pages, {} MB read in {:.2} s",
        stats.files,
        stats.pages,
        stats.bytes / 1_000_000,
        secs
    )
}

/// Fails with [`Error::UnaccountedPage`] naming the first page of `scan` (a scan at or after
/// `divergence`) whose block is not in `wal`, the block set from the target's WAL.
pub fn check_against_wal(scan: &ScanResult, wal: &ChangedBlocks, divergence: Lsn) -> Result<()> {
    let mut first = None;
    let mut count = 0u64;
    for f in &scan.files {
        let set = wal.get(&f.path);
        for p in &f.pages {
            if !set.is_some_and(|s| s.contains(&p.block)) {
                count += 1;
                first.get_or_insert((f.path.as_str(), *p));
            }
        }
    }
    match first {
        None => Ok(()),
        Some((path, p)) => Err(Error::UnaccountedPage {
            path: path.to_string(),
            block: p.block,
            lsn: p.lsn,
            divergence,
            more: count - 1,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pagescan::{FileHits, PageHit};
    use std::collections::BTreeSet;

    fn f(size: u64) -> FileKind {
        FileKind::File { size }
    }

    #[test]
    fn candidates_are_logged_main_forks_on_both_sides() {
        let ts = "PG_15_202209061";
        let source = vec![
            ("base/5".to_string(), FileKind::Dir),
            ("base/5/100".into(), f(8192)),
            ("base/5/100.1".into(), f(8192)),
            ("base/5/100_fsm".into(), f(8192)),
            ("base/5/200".into(), f(8192)),
            ("base/5/300".into(), f(8192)),
            ("base/5/300_init".into(), f(0)),
            ("base/5/400".into(), f(8192)),
            ("base/5/t3_500".into(), f(8192)),
            ("pg_tblspc/9/PG_15_202209061/5/600".into(), f(8192)),
            ("pg_tblspc/9/PG_16_202307071/5/600".into(), f(8192)),
            ("global/1262".into(), f(8192)),
            ("base/5/700".into(), FileKind::Dir),
        ];
        let target = vec![
            ("base/5".to_string(), FileKind::Dir),
            ("base/5/100".into(), f(16384)),
            ("base/5/100.1".into(), f(8192)),
            ("base/5/100_fsm".into(), f(8192)),
            ("base/5/300".into(), f(8192)),
            ("base/5/300_init".into(), f(0)),
            ("base/5/400".into(), f(0)),
            ("base/5/t3_500".into(), f(8192)),
            ("base/5/800".into(), f(8192)),
            ("pg_tblspc/9/PG_15_202209061/5/600".into(), f(8192)),
            ("pg_tblspc/9/PG_16_202307071/5/600".into(), f(8192)),
            ("global/1262".into(), f(8192)),
            ("base/5/700".into(), f(8192)),
        ];
        let got = scan_candidates(&source, &target, ts);
        assert_eq!(
            got,
            [
                "base/5/100",
                "base/5/100.1",
                "base/5/400",
                "pg_tblspc/9/PG_15_202209061/5/600",
                "global/1262"
            ]
        );
    }

    fn hit(block: u32, lsn: u64) -> PageHit {
        PageHit {
            block,
            lsn: Lsn(lsn),
        }
    }

    #[test]
    fn verify_names_the_first_unaccounted_page() {
        let scan = ScanResult {
            files: vec![
                FileHits {
                    path: "base/5/100".into(),
                    pages: vec![hit(1, 0x3_0000_0100), hit(7, 0x3_0000_0200)],
                },
                FileHits {
                    path: "base/5/100.1".into(),
                    pages: vec![hit(0, 0x3_0000_0300)],
                },
            ],
            stats: ScanStats::default(),
        };
        let d = Lsn(0x3_0000_0000);
        let mut wal = ChangedBlocks::new();
        wal.insert("base/5/100".into(), BTreeSet::from([1, 7, 9]));
        wal.insert("base/5/100.1".into(), BTreeSet::from([0]));
        check_against_wal(&scan, &wal, d).unwrap();
        // Block 7 missing from the WAL's set, and the whole second file.
        wal.insert("base/5/100".into(), BTreeSet::from([1, 9]));
        wal.remove("base/5/100.1");
        let err = check_against_wal(&scan, &wal, d).unwrap_err();
        match &err {
            Error::UnaccountedPage {
                path,
                block,
                lsn,
                divergence,
                more,
            } => {
                assert_eq!(
                    (path.as_str(), *block, *lsn, *divergence, *more),
                    ("base/5/100", 7, Lsn(0x3_0000_0200), d, 1)
                );
            }
            other => panic!("{other:?}"),
        }
        let msg = err.to_string();
        for part in [
            "block 7 of file \"base/5/100\"",
            "page LSN 3/200",
            "divergence point 3/0",
            "1 more",
        ] {
            assert!(msg.contains(part), "{part:?} in {msg}");
        }
    }

    #[test]
    fn verify_of_real_files() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("base/5");
        std::fs::create_dir_all(&dir).unwrap();
        let mut data = vec![0u8; 4 * pagescan::PAGE_SIZE];
        for (i, lsn) in [0x100u64, 0x2_0000_0000, 0, 0x1_FFFF_FFFF]
            .iter()
            .enumerate()
        {
            pagescan::set_page_lsn(&mut data[i * pagescan::PAGE_SIZE..], *lsn);
        }
        std::fs::write(dir.join("100"), &data).unwrap();
        let listing = vec![("base/5/100".to_string(), f(data.len() as u64))];
        let input = ScanInput {
            target: d.path(),
            source_files: &listing,
            target_files: &listing,
            tablespace_dir: "PG_15_1",
            divergence: Lsn(0x2_0000_0000),
            redo: Lsn(0x1_0000_0000),
        };
        struct Quiet;
        impl Reporter for Quiet {
            fn info(&mut self, _: &str) {}
        }
        let mut wal = ChangedBlocks::new();
        let err = verify_wal_blocks(&input, &wal, &mut Quiet).unwrap_err();
        assert!(
            err.to_string()
                .contains("block 1 of file \"base/5/100\" has page LSN 2/0"),
            "{err}"
        );
        wal.insert("base/5/100".into(), BTreeSet::from([1]));
        let stats = verify_wal_blocks(&input, &wal, &mut Quiet).unwrap();
        assert_eq!((stats.files, stats.pages), (1, 4));
        // Page-LSN method: from the redo point, and the zero-LSN page.
        let got = page_lsn_blocks(&input, &mut Quiet).unwrap();
        assert_eq!(got["base/5/100"], BTreeSet::from([1, 2, 3]));
    }
}
