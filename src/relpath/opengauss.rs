//! openGauss's relation file names: PostgreSQL's forks plus `_bcm`, column-store files
//! `<rel>_C<attno>.<seg>` (the segment always written) and their `_bcm`, compressed (CFS) files
//! `<rel>[.<seg>]_compress`, and tablespace version directories that name the node,
//! `PG_9.2_<catversion>_<node name>`.
//!
//! Segment-page storage keeps the pages of its (logical) relations in the physical files
//! `<db>/1` to `<db>/5` (one per extent size, with forks such as `2_fsm` and segments `.N` of
//! [`super::RELSEG_SIZE`] blocks, like any relation): they classify as the main-fork segments
//! they are, and the WAL scan names their blocks through each record's physical location.

use super::{classify_with, parse_number, ForkNumber, RelFile};

/// Classifies a data-directory path as an openGauss relation file.
pub(super) fn classify(path: &str) -> Option<RelFile> {
    classify_with(path, is_version_dir, parse_file_name)
}

/// `PG_9.2_<catversion>_<node name>`: the node name is any non-empty rest.
fn is_version_dir(dir: &str) -> bool {
    let Some(rest) = dir.strip_prefix("PG_9.2_") else {
        return false;
    };
    let Some((catver, node)) = rest.split_once('_') else {
        return false;
    };
    !catver.is_empty() && catver.bytes().all(|b| b.is_ascii_digit()) && !node.is_empty()
}

/// A segment suffix that may be `0` (column-store files always carry one).
fn parse_segment_or_zero(s: &str) -> Option<u32> {
    if s == "0" {
        Some(0)
    } else {
        parse_number(s)
    }
}

/// A column number `C<N>`.
fn parse_column(s: &str) -> Option<u16> {
    let n = parse_number(s.strip_prefix('C')?)?;
    u16::try_from(n).ok()
}

/// Parses the file-name part `<rel>[_fork][.seg]`, `<rel>_C<N>.<seg>`, `<rel>_C<N>_bcm[.seg]`
/// or `<rel>[.seg]_compress`.
fn parse_file_name(name: &str) -> Option<(u32, ForkNumber, u32)> {
    if let Some(stem) = name.strip_suffix("_compress") {
        let (rel, segment) = match stem.split_once('.') {
            Some((rel, seg)) => (rel, parse_number(seg)?),
            None => (stem, 0),
        };
        return Some((parse_number(rel)?, ForkNumber::Compressed, segment));
    }
    let (stem, segment) = match name.split_once('.') {
        Some((stem, seg)) => (stem, Some(seg)),
        None => (name, None),
    };
    let (rel, fork) = match stem.split_once('_') {
        None => (stem, ForkNumber::Main),
        Some((rel, "fsm")) => (rel, ForkNumber::Fsm),
        Some((rel, "vm")) => (rel, ForkNumber::VisibilityMap),
        Some((rel, "init")) => (rel, ForkNumber::Init),
        Some((rel, "bcm")) => (rel, ForkNumber::Bcm),
        Some((rel, fork)) => match fork.split_once('_') {
            None => (rel, ForkNumber::Column(parse_column(fork)?)),
            Some((col, "bcm")) => (rel, ForkNumber::ColumnBcm(parse_column(col)?)),
            Some(_) => return None,
        },
    };
    let segment = match (fork, segment) {
        (ForkNumber::Column(_), Some(seg)) => parse_segment_or_zero(seg)?,
        (ForkNumber::Column(_), None) => return None,
        (_, Some(seg)) => parse_number(seg)?,
        (_, None) => 0,
    };
    Some((parse_number(rel)?, fork, segment))
}
