//! Relation identity and paths: [`RelFileLocator`], [`ForkNumber`], [`BlockNumber`], and the
//! classification of data-directory paths into relation files (`global/`, `base/<db>/`,
//! `pg_tblspc/<spc>/PG_<major>_<catver>/<db>/`, forks `_fsm _vm _init`, segments `.N`, temp `tN_`).
//!
//! Used by the WAL scan (block references name a locator and block) and the file map (which
//! files are main-fork relation segments whose changed blocks can be copied one by one).
//!
//! Names are parsed as PostgreSQL's `parse_filename_for_nontemp_relation` does: every number is
//! decimal, starts with a non-zero digit (so `0123` and `0` are not relation files, and a name has
//! exactly one spelling) and fits in 32 bits; a segment suffix is `.N` with N >= 1 (segment 0 has
//! no suffix). This is also what pg_rewind's `isRelDataFile` ends up accepting, since it rebuilds
//! the path from the parsed numbers and rejects any name that does not come back identical.

#[cfg(test)]
mod og_tests;
mod opengauss;

use crate::flavor::{Flavor, RelationFiles};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// OID of the `pg_global` tablespace (`GLOBALTABLESPACE_OID`).
pub const GLOBAL_TABLESPACE_OID: u32 = 1664;
/// OID of the `pg_default` tablespace (`DEFAULTTABLESPACE_OID`).
pub const DEFAULT_TABLESPACE_OID: u32 = 1663;
/// Blocks per relation segment file with the default build (`RELSEG_SIZE`, 1 GiB of 8 KiB pages).
pub const RELSEG_SIZE: u32 = 131_072;
/// Page size with the default build (`BLCKSZ`).
pub const BLCKSZ: u32 = 8192;

/// Physical identity of a relation (`RelFileLocator`, `RelFileNode` before 16):
/// tablespace, database and relfilenumber OIDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RelFileLocator {
    /// Tablespace OID.
    pub spc: u32,
    /// Database OID (0 for shared relations).
    pub db: u32,
    /// Relfilenumber.
    pub rel: u32,
}

impl fmt::Display for RelFileLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.spc, self.db, self.rel)
    }
}

/// A relation fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ForkNumber {
    /// The main data fork (no suffix).
    Main,
    /// Free space map (`_fsm`).
    Fsm,
    /// Visibility map (`_vm`).
    VisibilityMap,
    /// Init fork of an unlogged relation (`_init`).
    Init,
    /// openGauss's bitmap of the blocks data replication changed (`_bcm`; fork number 3 in its
    /// WAL, where its init fork is 4).
    Bcm,
    /// An openGauss column-store file of attribute N: `<rel>_C<N>.<seg>`, the segment number
    /// always written (`.0` too). Not block-wise: its units are compressed CUs.
    Column(u16),
    /// The `_bcm` of an openGauss column-store file: `<rel>_C<N>_bcm[.<seg>]`.
    ColumnBcm(u16),
    /// An openGauss compressed (CFS) main fork: `<rel>_compress`, `<rel>.<seg>_compress`. Its
    /// pages are not at `block * BLCKSZ`, so it is copied whole.
    Compressed,
}

impl ForkNumber {
    /// The fork with PostgreSQL's number `n` (0..=3).
    pub fn from_u8(n: u8) -> Option<ForkNumber> {
        match n {
            0 => Some(ForkNumber::Main),
            1 => Some(ForkNumber::Fsm),
            2 => Some(ForkNumber::VisibilityMap),
            3 => Some(ForkNumber::Init),
            _ => None,
        }
    }

    /// The fork with openGauss's number `n` (0..=4: main, fsm, vm, bcm, init).
    pub fn from_opengauss(n: u8) -> Option<ForkNumber> {
        match n {
            0 => Some(ForkNumber::Main),
            1 => Some(ForkNumber::Fsm),
            2 => Some(ForkNumber::VisibilityMap),
            3 => Some(ForkNumber::Bcm),
            4 => Some(ForkNumber::Init),
            _ => None,
        }
    }

    /// The fork name as PostgreSQL prints it (`main`, `fsm`, `vm`, `init`), and openGauss's
    /// (`bcm`, `C<N>`, `C<N>_bcm`, `compress`): the file name suffix without its `_`.
    pub fn name(self) -> Cow<'static, str> {
        match self {
            ForkNumber::Main => "main".into(),
            ForkNumber::Fsm => "fsm".into(),
            ForkNumber::VisibilityMap => "vm".into(),
            ForkNumber::Init => "init".into(),
            ForkNumber::Bcm => "bcm".into(),
            ForkNumber::Column(n) => format!("C{n}").into(),
            ForkNumber::ColumnBcm(n) => format!("C{n}_bcm").into(),
            ForkNumber::Compressed => "compress".into(),
        }
    }
}

impl fmt::Display for ForkNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A block number within a relation fork (all segments counted from 0).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct BlockNumber(pub u32);

impl BlockNumber {
    /// The segment file (`.N`, 0 = no suffix) that holds this block, with `RELSEG_SIZE` blocks
    /// per segment.
    pub fn segment(self) -> u32 {
        self.0 / RELSEG_SIZE
    }

    /// The block's index inside its segment file.
    pub fn in_segment(self) -> u32 {
        self.0 % RELSEG_SIZE
    }
}

impl fmt::Display for BlockNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A data-directory file that holds one segment of one fork of a relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RelFile {
    /// The relation.
    pub locator: RelFileLocator,
    /// The fork.
    pub fork: ForkNumber,
    /// The segment (`.N` suffix; 0 for the file without suffix).
    pub segment: u32,
}

/// Parses a positive decimal OID or segment number without leading zeros or signs.
fn parse_number(s: &str) -> Option<u32> {
    let first = *s.as_bytes().first()?;
    if !(b'1'..=b'9').contains(&first) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses the file-name part `<rel>[_fork][.seg]`.
fn parse_file_name(name: &str) -> Option<(u32, ForkNumber, u32)> {
    let (stem, segment) = match name.split_once('.') {
        Some((stem, seg)) => (stem, parse_number(seg)?),
        None => (name, 0),
    };
    let (rel, fork) = match stem.split_once('_') {
        Some((rel, "fsm")) => (rel, ForkNumber::Fsm),
        Some((rel, "vm")) => (rel, ForkNumber::VisibilityMap),
        Some((rel, "init")) => (rel, ForkNumber::Init),
        Some(_) => return None,
        None => (stem, ForkNumber::Main),
    };
    Some((parse_number(rel)?, fork, segment))
}

/// Whether `dir` looks like a tablespace version directory `PG_<major>_<catversion>`.
fn is_tablespace_version_dir(dir: &str) -> bool {
    let Some(rest) = dir.strip_prefix("PG_") else {
        return false;
    };
    let Some((major, catver)) = rest.split_once('_') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(catver)
}

/// Classifies a data-directory-relative path (`/` separators, no leading `/` or `./`) as a
/// relation file: `global/<rel>`, `base/<db>/<rel>` or
/// `pg_tblspc/<spc>/PG_<major>_<catver>/<db>/<rel>`, each with an optional fork suffix
/// (`_fsm`, `_vm`, `_init`) and segment suffix (`.N`).
///
/// Returns `None` for everything else, including temporary relations (`t<backend>_<rel>`): they
/// live only as long as their session, have no WAL, and are never worth copying block by block
/// (the file map treats them as ordinary files, which pg_rewind excludes anyway). The version
/// directory is accepted for any major; the caller compares it with its own when that matters.
pub fn classify(path: &str) -> Option<RelFile> {
    classify_with(path, is_tablespace_version_dir, parse_file_name)
}

/// A file-name parser: `<rel>[suffix]` → relfilenumber, fork, segment.
type NameParser = fn(&str) -> Option<(u32, ForkNumber, u32)>;

/// [`classify`] with a flavor's tablespace version directory and file name rules.
fn classify_with(path: &str, version_dir: fn(&str) -> bool, names: NameParser) -> Option<RelFile> {
    // At most five components; no allocation (the file map classifies every listed path).
    let mut parts = [""; 5];
    let mut n = 0;
    for part in path.split('/') {
        *parts.get_mut(n)? = part;
        n += 1;
    }
    let (spc, db, name) = match parts.get(..n)? {
        ["global", name] => (GLOBAL_TABLESPACE_OID, 0, *name),
        ["base", db, name] => (DEFAULT_TABLESPACE_OID, parse_number(db)?, *name),
        ["pg_tblspc", spc, version, db, name] if version_dir(version) => {
            (parse_number(spc)?, parse_number(db)?, *name)
        }
        _ => return None,
    };
    let (rel, fork, segment) = names(name)?;
    Some(RelFile {
        locator: RelFileLocator { spc, db, rel },
        fork,
        segment,
    })
}

/// Whether `path` is a segment of a relation's main fork: the files whose changed blocks the
/// WAL scan can name, and so the only ones copied block by block (other forks are copied whole,
/// as pg_rewind does).
pub fn is_main_fork_data_file(path: &str) -> bool {
    classify(path).is_some_and(|f| f.fork == ForkNumber::Main)
}

/// [`classify`] with the relation file names of `flavor` (openGauss: its forks, column-store
/// and compressed files, and tablespace directories that name the node).
pub fn classify_in(path: &str, flavor: Flavor) -> Option<RelFile> {
    match flavor.formats().relation_files {
        RelationFiles::PostgreSql => classify(path),
        RelationFiles::OpenGauss => opengauss::classify(path),
    }
}

/// [`is_main_fork_data_file`] for a data directory of `flavor`: only a main-fork segment in the
/// plain page layout (not a column-store or compressed file) is handled block by block.
pub fn is_main_fork_data_file_in(path: &str, flavor: Flavor) -> bool {
    classify_in(path, flavor).is_some_and(|f| f.fork == ForkNumber::Main)
}

/// The data-directory-relative path of segment `segment` of `fork` of `locator`
/// (`GetRelationPath` plus the segment suffix). `tablespace_version_dir` is the
/// `PG_<major>_<catver>` directory (openGauss: `PG_9.2_<catver>_<node>`), used only for
/// tablespaces other than `pg_global` and `pg_default`. The inverse of [`classify_in`] for the
/// paths it accepts: a column-store file always has its segment suffix, a compressed one has
/// `_compress` after it.
pub fn relation_path(
    locator: RelFileLocator,
    fork: ForkNumber,
    segment: u32,
    tablespace_version_dir: &str,
) -> String {
    let RelFileLocator { spc, db, rel } = locator;
    let mut path = match spc {
        GLOBAL_TABLESPACE_OID => format!("global/{rel}"),
        DEFAULT_TABLESPACE_OID => format!("base/{db}/{rel}"),
        _ => format!("pg_tblspc/{spc}/{tablespace_version_dir}/{db}/{rel}"),
    };
    if !matches!(fork, ForkNumber::Main | ForkNumber::Compressed) {
        path.push('_');
        path.push_str(&fork.name());
    }
    if segment > 0 || matches!(fork, ForkNumber::Column(_)) {
        path.push('.');
        path.push_str(&segment.to_string());
    }
    if fork == ForkNumber::Compressed {
        path.push_str("_compress");
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rf(spc: u32, db: u32, rel: u32, fork: ForkNumber, segment: u32) -> RelFile {
        RelFile {
            locator: RelFileLocator { spc, db, rel },
            fork,
            segment,
        }
    }

    const TS: &str = "PG_15_202209061";

    #[test]
    fn classifies_relation_files() {
        use ForkNumber::*;
        let cases = [
            ("global/1262", rf(1664, 0, 1262, Main, 0)),
            ("global/1262_fsm", rf(1664, 0, 1262, Fsm, 0)),
            ("global/1262_vm.3", rf(1664, 0, 1262, VisibilityMap, 3)),
            ("base/5/16384", rf(1663, 5, 16384, Main, 0)),
            ("base/5/16384.1", rf(1663, 5, 16384, Main, 1)),
            ("base/5/16384_init", rf(1663, 5, 16384, Init, 0)),
            (
                "base/16401/4294967295.12",
                rf(1663, 16401, u32::MAX, Main, 12),
            ),
            (
                "pg_tblspc/16500/PG_15_202209061/16384/16501_fsm.2",
                rf(16500, 16384, 16501, Fsm, 2),
            ),
            (
                "pg_tblspc/16500/PG_18_202506291/1/2",
                rf(16500, 1, 2, Main, 0),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(classify(path), Some(want), "{path}");
            let dir = path.split('/').nth(2).unwrap_or(TS);
            let back = relation_path(want.locator, want.fork, want.segment, dir);
            assert_eq!(back, path);
            assert_eq!(is_main_fork_data_file(path), want.fork == Main, "{path}");
        }
    }

    #[test]
    fn rejects_other_files() {
        let cases = [
            "",
            "global",
            "global/",
            "global/pg_control",
            "global/pg_filenode.map",
            "global/pg_internal.init",
            "base/5",
            "base/5/",
            "base/5/PG_VERSION",
            "base/5/pg_filenode.map",
            "base/5/t3_16384",
            "base/5/t3_16384_fsm",
            "base/5/016384",
            "base/05/16384",
            "base/0/16384",
            "base/5/0",
            "base/5/16384.0",
            "base/5/16384.01",
            "base/5/16384.",
            "base/5/16384._",
            "base/5/+16384",
            "base/5/-1",
            "base/5/4294967296",
            "base/5/16384.4294967296",
            "base/5/16384_main",
            "base/5/16384_fs",
            "base/5/16384_fsm_vm",
            "base/5/16384.1.2",
            "base/5/16384.1_fsm",
            "base/5/16384 ",
            "base/5/１２",
            "/base/5/16384",
            "./base/5/16384",
            "base/5/16384/",
            "base/5/6/16384",
            "pg_tblspc/16500/16384/16501",
            "pg_tblspc/16500/PG_15/16384/16501",
            "pg_tblspc/16500/PG__1/16384/16501",
            "pg_tblspc/0/PG_15_202209061/16384/16501",
            "pg_tblspc/16500/PG_15_202209061/pgsql_tmp/16501",
            "pg_tblspc/16500/PG_15_202209061/16384",
            "pg_wal/000000010000000000000001",
            "pg_xact/0000",
        ];
        for path in cases {
            assert_eq!(classify(path), None, "{path}");
            assert!(!is_main_fork_data_file(path), "{path}");
        }
    }

    #[test]
    fn builds_paths() {
        use ForkNumber::*;
        let loc = |spc, db, rel| RelFileLocator { spc, db, rel };
        let cases = [
            (loc(1664, 0, 1262), Main, 0, "global/1262"),
            (loc(1663, 5, 16384), VisibilityMap, 0, "base/5/16384_vm"),
            (loc(1663, 5, 16384), Main, 7, "base/5/16384.7"),
            (
                loc(16500, 5, 6),
                Init,
                1,
                "pg_tblspc/16500/PG_15_202209061/5/6_init.1",
            ),
        ];
        for (locator, fork, seg, want) in cases {
            assert_eq!(relation_path(locator, fork, seg, TS), want);
        }
    }
}
