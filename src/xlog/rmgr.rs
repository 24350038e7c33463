//! Resource manager ids and names (`rmgrlist.h`), as `pg_waldump` prints them.
//!
//! The 22 built-in resource managers are the same in 14–18; 15 added custom resource managers
//! (ids 128..=255), which `pg_waldump` names `custom###`.
//!
//! openGauss has its own table (names as its `pg_xlogdump` prints them). Its ids 0..=19 are
//! fixed; the ids after Barrier (19) depend on the build: a server built with MOT has MOT at 20
//! and every later id one higher. The names of ids above 19 are those of the build without MOT
//! (the lite and default packages) and are for people only; nothing decides on them.
//!
//! Phases 3 and 4 (and `inspect wal`).

use crate::flavor::{Flavor, RecordFormat};
use std::borrow::Cow;

/// `RM_XLOG_ID`.
pub const RM_XLOG_ID: u8 = 0;
/// `RM_XACT_ID`.
pub const RM_XACT_ID: u8 = 1;
/// `RM_SMGR_ID`.
pub const RM_SMGR_ID: u8 = 2;
/// `RM_DBASE_ID`.
pub const RM_DBASE_ID: u8 = 4;
/// `RM_HEAP_ID`.
pub const RM_HEAP_ID: u8 = 10;

/// First custom resource manager id (`RM_MIN_CUSTOM_ID`).
pub const RM_MIN_CUSTOM_ID: u8 = 128;

/// Names of the built-in resource managers, indexed by id.
const BUILTIN: [&str; 22] = [
    "XLOG",
    "Transaction",
    "Storage",
    "CLOG",
    "Database",
    "Tablespace",
    "MultiXact",
    "RelMap",
    "Standby",
    "Heap2",
    "Heap",
    "Btree",
    "Hash",
    "Gin",
    "Gist",
    "Sequence",
    "SPGist",
    "BRIN",
    "CommitTs",
    "ReplicationOrigin",
    "Generic",
    "LogicalMessage",
];

/// openGauss's resource managers, by id, in a build without MOT.
const OPENGAUSS: [&str; 34] = [
    "XLOG",
    "Transaction",
    "Storage",
    "CLOG",
    "Database",
    "Tablespace",
    "MultiXact",
    "RelMap",
    "Standby",
    "Heap2",
    "Heap",
    "Btree",
    "Hash",
    "Gin",
    "Gist",
    "Sequence",
    "SPGist",
    "Slot",
    "Heap3",
    "Barrier",
    "UHeap",
    "UHeap2",
    "UndoLog",
    "UHeapUndo",
    "UndoAction",
    "UBtree",
    "UBtree2",
    "SegpageStorage",
    "ReplicationOrigin",
    "CompressionRelation",
    "LogicalDDLMessage",
    "Generic",
    "UBtree3",
    "UBtree4",
];

/// The highest id an openGauss server may write: the last of [`OPENGAUSS`] moved up by MOT.
const OPENGAUSS_MAX_ID: u8 = OPENGAUSS.len() as u8;

/// Whether `rmid` may appear in WAL written by `flavor` (`RmgrIdIsValid`).
pub fn is_valid(rmid: u8, flavor: Flavor) -> bool {
    match flavor.formats().record {
        RecordFormat::PostgreSql => {
            usize::from(rmid) < BUILTIN.len()
                || (flavor.has_custom_rmgrs() && rmid >= RM_MIN_CUSTOM_ID)
        }
        RecordFormat::OpenGauss => rmid <= OPENGAUSS_MAX_ID,
    }
}

/// The name `pg_waldump` prints for `rmid`: the built-in name, `custom###` for custom ids,
/// `unknown###` for ids no major uses; for openGauss, `pg_xlogdump`'s name.
pub fn name(rmid: u8, flavor: Flavor) -> Cow<'static, str> {
    let (table, custom): (&[&'static str], bool) = match flavor.formats().record {
        RecordFormat::PostgreSql => (&BUILTIN, true),
        RecordFormat::OpenGauss => (&OPENGAUSS, false),
    };
    match table.get(usize::from(rmid)) {
        Some(n) => Cow::Borrowed(n),
        None if custom && rmid >= RM_MIN_CUSTOM_ID => Cow::Owned(format!("custom{rmid:03}")),
        None => Cow::Owned(format!("unknown{rmid:03}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_validity() {
        assert_eq!(name(RM_HEAP_ID, Flavor::Pg16), "Heap");
        assert_eq!(name(21, Flavor::Pg16), "LogicalMessage");
        assert_eq!(name(130, Flavor::Pg16), "custom130");
        assert_eq!(name(RM_HEAP_ID, Flavor::OpenGauss), "Heap");
        assert_eq!(name(17, Flavor::OpenGauss), "Slot");
        assert_eq!(name(27, Flavor::OpenGauss), "SegpageStorage");
        assert!(is_valid(34, Flavor::OpenGauss) && !is_valid(35, Flavor::OpenGauss));
        assert!(!is_valid(128, Flavor::OpenGauss));
        assert!(is_valid(21, Flavor::Pg14) && !is_valid(22, Flavor::Pg15));
        assert!(!is_valid(128, Flavor::Pg14) && is_valid(128, Flavor::Pg15));
    }
}
