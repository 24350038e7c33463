//! openGauss relation file names, as its server writes them.

use super::*;

const TS: &str = "PG_9.2_201611171_dn_6001";

fn rf(spc: u32, db: u32, rel: u32, fork: ForkNumber, segment: u32) -> RelFile {
    RelFile {
        locator: RelFileLocator { spc, db, rel },
        fork,
        segment,
    }
}

#[test]
fn classifies_opengauss_files() {
    use ForkNumber::*;
    let og = Flavor::OpenGauss;
    let cases = [
        ("global/1262", rf(1664, 0, 1262, Main, 0)),
        ("base/15037/16384", rf(1663, 15037, 16384, Main, 0)),
        ("base/15037/16384.3", rf(1663, 15037, 16384, Main, 3)),
        ("base/15037/16384_fsm", rf(1663, 15037, 16384, Fsm, 0)),
        (
            "base/15037/16384_vm",
            rf(1663, 15037, 16384, VisibilityMap, 0),
        ),
        ("base/15037/16384_init", rf(1663, 15037, 16384, Init, 0)),
        ("base/15037/16384_bcm.2", rf(1663, 15037, 16384, Bcm, 2)),
        // segment-page physical files: main-fork segments like any other
        ("base/15037/1", rf(1663, 15037, 1, Main, 0)),
        ("base/15037/5.1", rf(1663, 15037, 5, Main, 1)),
        ("base/15037/2_fsm", rf(1663, 15037, 2, Fsm, 0)),
        // column store: the segment is always written
        (
            "base/15037/16412_C1.0",
            rf(1663, 15037, 16412, Column(1), 0),
        ),
        (
            "base/15037/16412_C12.3",
            rf(1663, 15037, 16412, Column(12), 3),
        ),
        (
            "base/15037/16412_C1_bcm",
            rf(1663, 15037, 16412, ColumnBcm(1), 0),
        ),
        (
            "base/15037/16412_C1_bcm.1",
            rf(1663, 15037, 16412, ColumnBcm(1), 1),
        ),
        // compressed (CFS)
        (
            "base/15037/16428_compress",
            rf(1663, 15037, 16428, Compressed, 0),
        ),
        (
            "base/15037/16428.1_compress",
            rf(1663, 15037, 16428, Compressed, 1),
        ),
        (
            "pg_tblspc/16384/PG_9.2_201611171_dn_6001/15037/16386_vm",
            rf(16384, 15037, 16386, VisibilityMap, 0),
        ),
        (
            "pg_tblspc/16385/PG_9.2_201611171_x/15037/16389",
            rf(16385, 15037, 16389, Main, 0),
        ),
    ];
    for (path, want) in cases {
        assert_eq!(classify_in(path, og), Some(want), "{path}");
        let dir = path.split('/').nth(2).unwrap_or(TS);
        let back = relation_path(want.locator, want.fork, want.segment, dir);
        assert_eq!(back, path);
        assert_eq!(
            is_main_fork_data_file_in(path, og),
            want.fork == Main,
            "{path}"
        );
    }
}

#[test]
fn only_plain_main_segments_are_block_wise() {
    let og = Flavor::OpenGauss;
    for path in [
        "base/15037/16412_C1.0",
        "base/15037/16428_compress",
        "base/15037/16384_bcm",
        "base/15037/2_fsm",
        "base/15037/16384_init",
    ] {
        assert!(!is_main_fork_data_file_in(path, og), "{path}");
        // PostgreSQL's rules never take openGauss's files for main forks either.
        assert!(!is_main_fork_data_file(path), "{path}");
    }
}

#[test]
fn rejects_other_opengauss_files() {
    let og = Flavor::OpenGauss;
    for path in [
        "global/pg_control.backup",
        "global/pg_dw_0",
        "global/pg_remain_segs",
        "base/15037/16412_C1",
        "base/15037/16412_C0.0",
        "base/15037/16412_C01.0",
        "base/15037/16412_C1.00",
        "base/15037/16412_C70000.0",
        "base/15037/16412_C1_fsm",
        "base/15037/16412_D1.0",
        "base/15037/16428_compress.1",
        "base/15037/16428.0_compress",
        "base/15037/_compress",
        "base/15037/16384.0",
        "base/15037/16384_bcm.0",
        "base/15037/t3_16384",
        "undo/permanent/00000",
        "pg_tblspc/16384/PG_9.2_201611171/15037/16386",
        "pg_tblspc/16384/PG_9.2__x/15037/16386",
        "pg_tblspc/16384/PG_15_202209061/15037/16386",
        "pg_xlog/000000010000000000000001",
    ] {
        assert_eq!(classify_in(path, og), None, "{path}");
    }
    // and PostgreSQL's directories stay PostgreSQL's
    assert_eq!(
        classify_in("pg_tblspc/16384/PG_9.2_201611171_x/1/2", Flavor::Pg16),
        None
    );
}

#[test]
fn opengauss_fork_numbers() {
    use ForkNumber::*;
    let forks: Vec<_> = (0..6).map(ForkNumber::from_opengauss).collect();
    assert_eq!(
        forks,
        [
            Some(Main),
            Some(Fsm),
            Some(VisibilityMap),
            Some(Bcm),
            Some(Init),
            None
        ]
    );
    assert_eq!(Column(3).to_string(), "C3");
    assert_eq!(Compressed.to_string(), "compress");
}
