//! Every scenario on the other majors (14, 16, 17, 18) with both kinds of source; PostgreSQL 15's
//! runs are declared next to the scenarios themselves.

use crate::rich::{rich, rich_page_lsn};
use crate::small::*;
use crate::support::scenario::SourceKind::{Local, Server};

/// One `#[test]` per (major, scenario, source kind).
macro_rules! matrix {
    ($($major:literal => $m:ident),* $(,)?) => {
        $(
            mod $m {
                use super::*;
                #[test] fn rich_server() { rich($major, Server, false) }
                #[test] fn rich_local() { rich($major, Local, false) }
                #[test] fn standby_as_source_server() { standby_as_source($major, Server) }
                #[test] fn standby_as_source_local() { standby_as_source($major, Local) }
                #[test] fn same_timeline_divergence_server() { same_timeline_divergence($major, Server) }
                #[test] fn same_timeline_divergence_local() { same_timeline_divergence($major, Local) }
                #[test] fn no_rewind_required_server() { no_rewind_required($major, Server) }
                #[test] fn no_rewind_required_local() { no_rewind_required($major, Local) }
                #[test] fn unclean_target_server() { unclean_target($major, Server) }
                #[test] fn unclean_target_local() { unclean_target($major, Local) }
                #[test] fn missing_target_wal_server() { missing_target_wal($major, Server) }
                #[test] fn missing_target_wal_local() { missing_target_wal($major, Local) }
                #[test] fn dry_run_server() { dry_run($major, Server) }
                #[test] fn dry_run_local() { dry_run($major, Local) }
                #[test] fn pg_rewind_dialect() { crate::small::pg_rewind_dialect($major) }
                #[test] fn least_privilege_role() { crate::small::least_privilege_role($major) }
                #[test] fn in_place_tablespaces_server() { in_place_tablespaces($major, Server) }
                #[test] fn promoted_twice() { crate::small::promoted_twice($major) }
                #[test] fn in_place_tablespaces_local() { in_place_tablespaces($major, Local) }
                #[test] fn changed_blocks_left_to_replay() { crate::replayed::changed_blocks_left_to_replay($major) }
                #[test] fn source_wal_rewrites_blocks() { crate::replayed::source_wal_rewrites_blocks($major) }
                #[test] fn prepared_on_both_sides_server() { crate::twophase::prepared_on_both_sides($major, Server) }
            }
        )*
    };
}

matrix!(14 => pg14, 16 => pg16, 17 => pg17, 18 => pg18);

// --changed-blocks=page-lsn beyond PostgreSQL 15: the rich pair on 14 (CREATE DATABASE copies
// files) and 17 (checkpoints start with a REDO record), a target without its WAL on 18.
#[test]
fn rich_page_lsn_pg14_server() {
    rich_page_lsn(14, Server)
}
#[test]
fn rich_page_lsn_pg17_local() {
    rich_page_lsn(17, Local)
}
#[test]
fn missing_target_wal_page_lsn_pg18_server() {
    missing_target_wal_page_lsn(18, Server)
}
