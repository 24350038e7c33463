//! Table-driven tests of the file map's decisions.

use super::*;

fn file(size: u64) -> Option<FileKind> {
    Some(FileKind::File { size })
}
fn dir() -> Option<FileKind> {
    Some(FileKind::Dir)
}
fn link(t: &str) -> Option<FileKind> {
    Some(FileKind::Symlink { target: t.into() })
}
fn entry(path: &str, source: Option<FileKind>, target: Option<FileKind>, rel: bool) -> FileEntry {
    FileEntry {
        is_rel_main: rel,
        source,
        target,
        ..FileEntry::new(path)
    }
}

#[test]
fn decision_table() {
    let p = Policy::new(Flavor::Pg15);
    let cases: Vec<(FileEntry, Action)> = vec![
        (
            entry("global/pg_control", file(8192), file(8192), false),
            Action::None,
        ),
        (
            entry("postmaster.pid", file(80), file(80), false),
            Action::Remove,
        ),
        (entry("postmaster.pid", file(80), None, false), Action::None),
        (entry(".DS_Store", file(6), None, false), Action::None),
        // The trash a crash left: emptied by the rebuild itself, never planned.
        (entry("gsbuild-trash", None, dir(), false), Action::None),
        (
            entry("gsbuild-trash/3", None, file(16 << 20), false),
            Action::None,
        ),
        (
            entry("gsbuild-trashy", None, file(1), false),
            Action::Remove,
        ),
        (entry("base/.DS_Store", None, file(6), false), Action::None),
        (
            entry("pg_replslot/s1/state", file(200), file(200), false),
            Action::Remove,
        ),
        (entry("pg_replslot", dir(), dir(), false), Action::None),
        (
            entry("base/1/pg_internal.init.42", file(9), file(9), false),
            Action::Remove,
        ),
        (
            entry("base/pgsql_tmp/pgsql_tmp1.0", file(9), file(9), false),
            Action::Remove,
        ),
        (entry("base/5/16384", file(8192), None, true), Action::Copy),
        (entry("base/5", dir(), None, false), Action::Create),
        (
            entry("pg_tblspc/16385", link("/srv/ts"), None, false),
            Action::Create,
        ),
        (
            entry("base/5/16384", None, file(8192), true),
            Action::Remove,
        ),
        (entry("base/5", None, dir(), false), Action::Remove),
        (
            entry("base/5/PG_VERSION", file(3), file(3), false),
            Action::None,
        ),
        (entry("base/5", dir(), dir(), false), Action::None),
        (
            entry("pg_tblspc/16385", link("/a"), link("/b"), false),
            Action::None,
        ),
        (
            entry("postgresql.conf", file(10), file(20), false),
            Action::Copy,
        ),
        (
            entry("base/5/16384_fsm", file(24576), file(24576), false),
            Action::Copy,
        ),
        (
            entry("base/5/16384", file(16384), file(8192), true),
            Action::CopyTail,
        ),
        (
            entry("base/5/16384", file(8192), file(16384), true),
            Action::Truncate,
        ),
        (
            entry("base/5/16384", file(8192), file(8192), true),
            Action::None,
        ),
    ];
    for (e, want) in cases {
        assert_eq!(decide_action(&e, &p), Ok(want), "{e:?}");
    }
}

#[test]
fn decision_errors_and_policy() {
    let p = Policy::new(Flavor::Pg15);
    let e = entry("base/5/16384", file(1), dir(), true);
    assert!(matches!(
        decide_action(&e, &p),
        Err(FileMapError::TypeMismatch { .. })
    ));
    let e = entry("base/5/evil", link("/etc/passwd"), None, false);
    assert!(matches!(
        decide_action(&e, &p),
        Err(FileMapError::NotATablespace { .. })
    ));
    let e = entry(
        "postgresql.conf",
        link("/etc/pg.conf"),
        link("/etc/pg.conf"),
        false,
    );
    assert_eq!(decide_action(&e, &p), Ok(Action::None));
    let e = entry("x", None, None, false);
    assert_eq!(
        decide_action(&e, &p),
        Err(FileMapError::Neither("x".into()))
    );
    let keep = Policy {
        keep_config: true,
        ..Policy::new(Flavor::Pg15)
    };
    assert_eq!(
        decide_action(&entry("pg_hba.conf", file(1), file(2), false), &keep),
        Ok(Action::None)
    );
    assert_eq!(
        decide_action(&entry("pg_hba.conf", file(1), None, false), &keep),
        Ok(Action::Copy)
    );
    assert_eq!(
        decide_action(&entry("pg_hba.conf", None, file(1), false), &keep),
        Ok(Action::None)
    );
}

#[test]
fn future_twophase_files_are_left_to_replay() {
    // PostgreSQL 17+ names: epoch and xid, 16 hex digits.
    let next = (1 << 32) | 900;
    assert!(is_future_twophase("pg_twophase/0000000100000384", next));
    assert!(is_future_twophase("pg_twophase/0000000100000385", next));
    assert!(!is_future_twophase("pg_twophase/0000000100000383", next));
    assert!(!is_future_twophase("pg_twophase/00000000FFFFFFFF", next));
    // Older names: 32-bit xids, compared modulo 2^32 (FFFFFFF0 precedes 0x384).
    assert!(is_future_twophase("pg_twophase/00000384", next));
    assert!(!is_future_twophase("pg_twophase/00000383", next));
    assert!(!is_future_twophase("pg_twophase/FFFFFFF0", next));
    assert!(is_future_twophase("pg_twophase/00000002", 0xFFFF_FFF0));
    for odd in [
        "pg_twophase/0384",
        "pg_twophase/0000038g",
        "base/00000384",
        "pg_twophase/",
    ] {
        assert!(!is_future_twophase(odd, next), "{odd}");
    }
    let p = Policy {
        twophase_next_xid: Some(next),
        ..Policy::new(Flavor::Pg17)
    };
    let future = "pg_twophase/0000000100000390";
    let both = entry(future, file(200), file(200), false);
    assert_eq!(decide_action(&both, &p), Ok(Action::Remove));
    let source_only = entry(future, file(200), None, false);
    assert_eq!(decide_action(&source_only, &p), Ok(Action::None));
    let past = entry("pg_twophase/0000000100000001", file(200), None, false);
    assert_eq!(decide_action(&past, &p), Ok(Action::Copy));
    let unruled = Policy::new(Flavor::Pg17);
    assert_eq!(decide_action(&source_only, &unruled), Ok(Action::Copy));
}

#[test]
fn exclusions() {
    assert!(is_excluded("pg_stat_tmp/global.stat", Flavor::Pg15.table()));
    assert!(!is_excluded("pg_stat_tmp", Flavor::Pg15.table()));
    assert!(!is_excluded("pg_stat_tmpx/a", Flavor::Pg15.table()));
    assert!(is_excluded("backup_label", Flavor::Pg15.table()));
    assert!(!is_excluded("base/1/backup_label", Flavor::Pg15.table()));
    assert!(is_excluded(
        "pg_tblspc/16385/PG_15_202209061/pgsql_tmp/x",
        Flavor::Pg15.table()
    ));
    assert!(!is_excluded("base/1/1259", Flavor::Pg15.table()));
}

#[test]
fn wal_segments() {
    assert_eq!(
        wal_segment_name("pg_wal/000000010000000000000003", "pg_wal"),
        Some("000000010000000000000003")
    );
    assert_eq!(
        wal_segment_name("pg_wal/000000010000000000000003.partial", "pg_wal"),
        Some("000000010000000000000003")
    );
    assert_eq!(wal_segment_name("pg_wal/00000002.history", "pg_wal"), None);
    assert_eq!(
        wal_segment_name(
            "pg_wal/archive_status/000000010000000000000003.done",
            "pg_wal"
        ),
        None
    );
    let seg: u32 = 16 << 20;
    // Timeline 2 begins inside segment 5 (the divergence point); the last common
    // checkpoint is in segment 4, recovery starts in 3, the stream at 5.
    let history =
        crate::timeline::parse_history("1\t0/5000100\tpromoted\n", crate::lsn::TimeLineId(2))
            .unwrap();
    let w = WalWindow {
        first_segment: XLogSegNo(3),
        stream_from: XLogSegNo(5),
        required: ["000000010000000000000004", "000000010000000000000005"]
            .into_iter()
            .map(String::from)
            .collect(),
        source_history: history,
        wal_dir: "pg_wal".into(),
        seg_size: seg,
    };
    let target_only = |n: &str| entry(&format!("pg_wal/{n}"), None, file(seg.into()), false);
    let both = |n: &str| {
        entry(
            &format!("pg_wal/{n}"),
            file(seg.into()),
            file(seg.into()),
            false,
        )
    };
    let cases = [
        // Older than recovery needs: pg_rewind's rule for files only the target has.
        (target_only("000000010000000000000001"), Action::Remove),
        (both("000000010000000000000002"), Action::None),
        // Recovery reads the target's own copy, even where the source recycled it.
        (target_only("000000010000000000000003"), Action::None),
        (both("000000010000000000000003"), Action::None),
        (target_only("000000010000000000000004"), Action::None),
        // Required, and not a name the stream writes.
        (target_only("000000010000000000000005"), Action::None),
        // The stream writes the source's version.
        (both("000000020000000000000005"), Action::Remove),
        (target_only("000000020000000000000006"), Action::Remove),
        // Diverged WAL the target alone wrote.
        (target_only("000000010000000000000006"), Action::Remove),
        (
            target_only("000000010000000000000005.partial"),
            Action::Remove,
        ),
    ];
    for (e, want) in cases {
        let name = wal_segment_name(&e.path, "pg_wal").unwrap();
        assert_eq!(decide_wal_segment(&e, name, &w), want, "{}", e.path);
    }
    let source_only = entry(
        "pg_wal/000000020000000000000007",
        file(seg.into()),
        None,
        false,
    );
    assert_eq!(
        decide_wal_segment(&source_only, "000000020000000000000007", &w),
        Action::None
    );
}

#[test]
fn full_build_copies_every_file_whole() {
    let full = Policy {
        keep_config: true,
        full: true,
        ..Policy::new(Flavor::Pg16)
    };
    let cases = [
        (
            entry("base/5/16384", file(8192), file(8192), true),
            Action::Copy,
        ),
        (
            entry("base/5/16384", file(8192), file(16384), true),
            Action::Copy,
        ),
        (
            entry("base/5/16384", None, file(8192), true),
            Action::Remove,
        ),
        (
            entry("pg_xact/0000", file(8192), file(8192), false),
            Action::Copy,
        ),
        (
            entry("postgresql.conf", file(10), file(20), false),
            Action::None,
        ),
        (entry("pg_ident.conf", file(10), None, false), Action::Copy),
        (
            entry("global/pg_control", file(8192), file(8192), false),
            Action::None,
        ),
        (
            entry("postmaster.pid", None, file(80), false),
            Action::Remove,
        ),
    ];
    for (e, want) in cases {
        assert_eq!(decide_action(&e, &full), Ok(want), "{}", e.path);
    }
}
