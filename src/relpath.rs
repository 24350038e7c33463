//! Relation identity and paths: [`RelFileLocator`], [`ForkNumber`], [`BlockNumber`], and the
//! classification of data-directory paths into relation files (`global/`, `base/<db>/`,
//! `pg_tblspc/<spc>/PG_<major>_<catver>/<db>/`, forks `_fsm _vm _init`, segments `.N`, temp `tN_`).
//!
//! Used by the WAL scan (block references name a locator and block) and the file map (which
//! files are main-fork relation segments whose changed blocks can be copied one by one).

use serde::{Deserialize, Serialize};
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
}

impl ForkNumber {
    /// The fork with on-disk number `n` (0..=3).
    pub fn from_u8(n: u8) -> Option<ForkNumber> {
        match n {
            0 => Some(ForkNumber::Main),
            1 => Some(ForkNumber::Fsm),
            2 => Some(ForkNumber::VisibilityMap),
            3 => Some(ForkNumber::Init),
            _ => None,
        }
    }

    /// The fork name as PostgreSQL prints it (`main`, `fsm`, `vm`, `init`).
    pub fn name(self) -> &'static str {
        match self {
            ForkNumber::Main => "main",
            ForkNumber::Fsm => "fsm",
            ForkNumber::VisibilityMap => "vm",
            ForkNumber::Init => "init",
        }
    }
}

impl fmt::Display for ForkNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
