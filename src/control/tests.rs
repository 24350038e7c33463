//! Unit tests of pg_control decoding on synthetic files, laid out here from PostgreSQL's struct
//! definitions independently of the decoder's offset tables.

use super::*;

const CATVERSION: [(Flavor, u32, u32); 5] = [
    (Flavor::Pg14, 1300, 202107181),
    (Flavor::Pg15, 1300, 202209061),
    (Flavor::Pg16, 1300, 202307071),
    (Flavor::Pg17, 1700, 202406281),
    (Flavor::Pg18, 1800, 202506291),
];

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn seal(buf: &mut [u8], flavor: Flavor) {
    let crc_at = if flavor.control_has_char_signedness() {
        292
    } else {
        288
    };
    let crc = crc32c::crc32c(&buf[..crc_at]);
    put(buf, crc_at, &crc.to_le_bytes());
}

/// A file with a distinct value in every field and 0xA5 in every padding byte of the struct.
pub(super) fn synthetic(flavor: Flavor) -> Vec<u8> {
    let (_, control, catalog) = CATVERSION[flavor as usize];
    let mut b = vec![0u8; 8192];
    b[..296].fill(0xA5);
    let mut p = |at: usize, v: &[u8]| put(&mut b, at, v);
    p(0, &0x0123_4567_89AB_CDEFu64.to_le_bytes());
    p(8, &control.to_le_bytes());
    p(12, &catalog.to_le_bytes());
    p(16, &5i32.to_le_bytes());
    p(24, &1_700_000_001i64.to_le_bytes());
    p(32, &0x1_0000_0028u64.to_le_bytes());
    // checkPointCopy at 40
    p(40, &0x1_0000_0020u64.to_le_bytes());
    p(48, &2u32.to_le_bytes());
    p(52, &1u32.to_le_bytes());
    p(56, &[1]);
    if flavor.checkpoint_has_wal_level() {
        p(60, &2i32.to_le_bytes());
    }
    p(64, &((3u64 << 32) | 753).to_le_bytes());
    for (i, at) in [72, 76, 80, 84, 88, 92, 96].into_iter().enumerate() {
        p(at, &(100 + i as u32).to_le_bytes());
    }
    p(104, &1_700_000_002i64.to_le_bytes());
    p(112, &201u32.to_le_bytes());
    p(116, &202u32.to_le_bytes());
    p(120, &203u32.to_le_bytes());
    // the rest of ControlFileData
    p(128, &0x3E8u64.to_le_bytes());
    p(136, &0x2_0000_0100u64.to_le_bytes());
    p(144, &2u32.to_le_bytes());
    p(152, &0x10u64.to_le_bytes());
    p(160, &0x20u64.to_le_bytes());
    p(168, &[1]);
    p(172, &2i32.to_le_bytes());
    p(176, &[1]);
    for (i, at) in [180, 184, 188, 192, 196].into_iter().enumerate() {
        p(at, &(10 + i as i32).to_le_bytes());
    }
    p(200, &[1]);
    p(204, &8u32.to_le_bytes());
    p(208, &1234567.0f64.to_le_bytes());
    for (i, v) in [8192u32, 131072, 8192, 1 << 20, 64, 32, 1996, 2048]
        .into_iter()
        .enumerate()
    {
        p(216 + 4 * i, &v.to_le_bytes());
    }
    p(248, &[1]);
    p(252, &1u32.to_le_bytes());
    let nonce: Vec<u8> = (0..32).collect();
    if flavor.control_has_char_signedness() {
        p(256, &[0]);
        p(257, &nonce);
    } else {
        p(256, &nonce);
    }
    seal(&mut b, flavor);
    b
}

/// The `checkPointCopy` values [`synthetic`] writes.
fn assert_checkpoint(cp: &CheckPoint, flavor: Flavor) {
    assert_eq!(cp.redo, Lsn(0x1_0000_0020));
    assert_eq!((cp.this_timeline_id.0, cp.prev_timeline_id.0), (2, 1));
    assert!(cp.full_page_writes);
    let level = (flavor.checkpoint_has_wal_level()).then_some(WalLevel::LOGICAL);
    assert_eq!(cp.wal_level, level);
    assert_eq!(cp.next_xid.to_string(), "3:753");
    let xids = [
        cp.next_oid.into(),
        cp.next_multi,
        cp.next_multi_offset,
        cp.oldest_xid,
        cp.oldest_xid_db.into(),
        cp.oldest_multi.into(),
        cp.oldest_multi_db.into(),
    ];
    assert_eq!(xids, [100, 101, 102, 103, 104, 105, 106]);
    assert_eq!(cp.time, 1_700_000_002);
    let ts = [
        cp.oldest_commit_ts_xid.into(),
        cp.newest_commit_ts_xid.into(),
        cp.oldest_active_xid,
    ];
    assert_eq!(ts, [201, 202, 203]);
}

#[test]
fn every_field_of_a_synthetic_file() {
    for flavor in Flavor::POSTGRESQL {
        let bytes = synthetic(flavor);
        let f = ControlFile::decode(&bytes).unwrap_or_else(|e| panic!("{flavor}: {e}"));
        assert_eq!(f.flavor, flavor);
        assert_eq!(f.system_identifier, 0x0123_4567_89AB_CDEF);
        assert_eq!(f.pg_control_version, CATVERSION[flavor as usize].1);
        assert_eq!(f.catalog_version_no, CATVERSION[flavor as usize].2);
        assert_eq!(f.state, DbState::InArchiveRecovery);
        assert_eq!(f.time, 1_700_000_001);
        assert_eq!(f.checkpoint, Lsn(0x1_0000_0028));
        assert_checkpoint(&f.checkpoint_copy, flavor);
        assert_eq!(f.unlogged_lsn, Lsn(0x3E8));
        assert_eq!(f.min_recovery_point, Lsn(0x2_0000_0100));
        assert_eq!(f.min_recovery_point_tli, TimeLineId(2));
        assert_eq!(
            (f.backup_start_point, f.backup_end_point),
            (Lsn(0x10), Lsn(0x20))
        );
        assert!(f.backup_end_required && f.wal_log_hints && f.track_commit_timestamp);
        assert_eq!(f.wal_level, WalLevel::LOGICAL);
        let settings = [
            f.max_connections,
            f.max_worker_processes,
            f.max_wal_senders,
            f.max_prepared_xacts,
            f.max_locks_per_xact,
        ];
        assert_eq!(settings, [10, 11, 12, 13, 14]);
        assert_eq!(f.max_align, 8);
        assert_eq!(f.float_format, FLOAT_FORMAT_VALUE);
        let sizes = [
            f.blcksz,
            f.relseg_size,
            f.xlog_blcksz,
            f.xlog_seg_size,
            f.name_data_len,
            f.index_max_keys,
            f.toast_max_chunk_size,
            f.loblksize,
        ];
        assert_eq!(sizes, [8192, 131072, 8192, 1 << 20, 64, 32, 1996, 2048]);
        assert!(f.float8_by_val);
        assert_eq!(f.data_checksum_version, 1);
        let signed = (flavor.control_has_char_signedness()).then_some(false);
        assert_eq!(f.default_char_signedness, signed);
        let nonce: Vec<u8> = (0..32).collect();
        assert_eq!(f.mock_authentication_nonce.as_slice(), nonce.as_slice());
        assert_eq!(
            f.redo_wal_file_name().as_deref(),
            Some("000000020000000100000000")
        );
    }
}

#[test]
fn round_trip_keeps_padding_bytes() {
    for flavor in Flavor::POSTGRESQL {
        let bytes = synthetic(flavor);
        let f = ControlFile::decode(&bytes).unwrap();
        assert_eq!(f.encode(), bytes, "{flavor}");
    }
}

#[test]
fn modified_fields_are_written_with_a_new_crc() {
    let mut f = ControlFile::decode(&synthetic(Flavor::Pg18)).unwrap();
    f.state = DbState::ShutDownInRecovery;
    f.min_recovery_point = Lsn(0x5_0000_0000);
    f.checkpoint_copy.this_timeline_id = TimeLineId(9);
    f.default_char_signedness = Some(true);
    let again = ControlFile::decode(&f.encode()).unwrap();
    assert_eq!(again.state, DbState::ShutDownInRecovery);
    assert_eq!(again.min_recovery_point, Lsn(0x5_0000_0000));
    assert_eq!(again.checkpoint_copy.this_timeline_id, TimeLineId(9));
    assert_eq!(again.default_char_signedness, Some(true));
    assert_eq!(again.encode(), f.encode());
}

#[test]
fn crc_mismatch() {
    let mut bytes = synthetic(Flavor::Pg16);
    bytes[100] ^= 0x01;
    assert!(matches!(
        ControlFile::decode(&bytes),
        Err(ControlError::Crc { .. })
    ));
    let mut bytes = synthetic(Flavor::Pg18);
    bytes[292] ^= 0x80;
    let err = ControlFile::decode(&bytes).unwrap_err();
    assert!(
        err.to_string().starts_with("calculated CRC checksum"),
        "{err}"
    );
}

#[test]
fn truncated_files() {
    let bytes = synthetic(Flavor::Pg17);
    for len in [0, 7, 15, 16, 200, 295] {
        let err = ControlFile::decode(&bytes[..len]).unwrap_err();
        assert_eq!(
            err,
            ControlError::Truncated {
                need: 296,
                have: len
            }
        );
        assert!(err.to_string().contains("8192"), "{err}");
    }
    let f = ControlFile::decode(&bytes[..296]).unwrap();
    assert_eq!(f.encode(), bytes);
}

#[test]
fn unknown_versions_name_the_numbers() {
    let mut bytes = synthetic(Flavor::Pg15);
    put(&mut bytes, 8, &1201u32.to_le_bytes());
    put(&mut bytes, 12, &201909212u32.to_le_bytes());
    seal(&mut bytes, Flavor::Pg15);
    let err = ControlFile::decode(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pg_control version 1201 with catalog version 201909212 is not a supported PostgreSQL \
         flavor (14–18)"
    );
    // PostgreSQL 13 shares pg_control version 1300 with 14–16.
    put(&mut bytes, 8, &1300u32.to_le_bytes());
    put(&mut bytes, 12, &202007201u32.to_le_bytes());
    seal(&mut bytes, Flavor::Pg15);
    assert!(matches!(
        ControlFile::decode(&bytes),
        Err(ControlError::UnsupportedVersion {
            control_version: 1300,
            catalog_version: 202007201
        })
    ));
}

#[test]
fn float_format_and_state_are_checked() {
    let mut bytes = synthetic(Flavor::Pg14);
    put(&mut bytes, 208, &1.5f64.to_le_bytes());
    seal(&mut bytes, Flavor::Pg14);
    let err = ControlFile::decode(&bytes).unwrap_err();
    assert!(matches!(err, ControlError::FloatFormat { .. }), "{err}");
    assert!(err.to_string().contains("1234567.0"), "{err}");

    let mut bytes = synthetic(Flavor::Pg14);
    put(&mut bytes, 16, &7i32.to_le_bytes());
    seal(&mut bytes, Flavor::Pg14);
    assert_eq!(
        ControlFile::decode(&bytes),
        Err(ControlError::UnknownState(7))
    );
}

#[test]
fn each_state_string() {
    let expected = [
        "starting up",
        "shut down",
        "shut down in recovery",
        "shutting down",
        "in crash recovery",
        "in archive recovery",
        "in production",
    ];
    for (value, words) in expected.into_iter().enumerate() {
        let mut bytes = synthetic(Flavor::Pg16);
        put(&mut bytes, 16, &(value as i32).to_le_bytes());
        seal(&mut bytes, Flavor::Pg16);
        let f = ControlFile::decode(&bytes).unwrap();
        assert_eq!(f.state.to_string(), words);
        assert_eq!(f.encode(), bytes);
    }
}

#[test]
fn read_control_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("global")).unwrap();
    let path = dir.path().join(CONTROL_FILE_PATH);
    std::fs::write(&path, synthetic(Flavor::Pg18)).unwrap();
    assert_eq!(read_control_file(dir.path()).unwrap().flavor, Flavor::Pg18);
    assert_eq!(read_control_file(&path).unwrap().flavor, Flavor::Pg18);

    std::fs::write(&path, &synthetic(Flavor::Pg18)[..100]).unwrap();
    let err = read_control_file(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");

    let missing = dir.path().join("nope");
    let err = read_control_file(&missing).unwrap_err().to_string();
    assert!(err.starts_with("could not open file"), "{err}");
}
