//! Resource manager ids and names (`rmgrlist.h`), as `pg_waldump` prints them.
//!
//! The 22 built-in resource managers are the same in 14–18; 15 added custom resource managers
//! (ids 128..=255), which `pg_waldump` names `custom###`.
//!
//! Phases 3 and 4 (and `inspect wal`).

use crate::flavor::Flavor;
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

/// Whether `rmid` may appear in WAL written by `major` (`RmgrIdIsValid`).
pub fn is_valid(rmid: u8, flavor: Flavor) -> bool {
    usize::from(rmid) < BUILTIN.len() || (flavor.has_custom_rmgrs() && rmid >= RM_MIN_CUSTOM_ID)
}

/// The name `pg_waldump` prints for `rmid`: the built-in name, `custom###` for custom ids,
/// `unknown###` for ids no major uses.
pub fn name(rmid: u8) -> Cow<'static, str> {
    match BUILTIN.get(usize::from(rmid)) {
        Some(n) => Cow::Borrowed(n),
        None if rmid >= RM_MIN_CUSTOM_ID => Cow::Owned(format!("custom{rmid:03}")),
        None => Cow::Owned(format!("unknown{rmid:03}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_validity() {
        assert_eq!(name(RM_HEAP_ID), "Heap");
        assert_eq!(name(21), "LogicalMessage");
        assert_eq!(name(130), "custom130");
        assert!(is_valid(21, Flavor::Pg14) && !is_valid(22, Flavor::Pg15));
        assert!(!is_valid(128, Flavor::Pg14) && is_valid(128, Flavor::Pg15));
    }
}
