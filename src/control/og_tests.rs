//! Unit tests of openGauss's control file: a synthetic file laid out from the struct's offsets
//! (independently of the decoder's tables), and two real files the server wrote (the fuzz
//! seeds `fuzz/corpus/control/opengauss-*`).

use super::*;

const STOPPED_STANDBY: &[u8] =
    include_bytes!("../../fuzz/corpus/control/opengauss-stopped-standby");
const RUNNING_PRIMARY: &[u8] =
    include_bytes!("../../fuzz/corpus/control/opengauss-running-primary");

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn seal(buf: &mut [u8]) {
    let crc = crc32c::crc32c(&buf[..224]);
    put(buf, 224, &crc.to_le_bytes());
}

/// A file with a distinct value in every field and 0xA5 in every padding byte of the struct.
fn synthetic() -> Vec<u8> {
    let mut b = vec![0u8; 8192];
    b[..232].fill(0xA5);
    let mut p = |at: usize, v: &[u8]| put(&mut b, at, v);
    p(0, &0x0123_4567_89AB_CDEFu64.to_le_bytes());
    p(8, &923u32.to_le_bytes());
    p(12, &201_611_171u32.to_le_bytes());
    p(16, &7u32.to_le_bytes());
    p(20, &5i32.to_le_bytes());
    p(24, &1_700_000_001i64.to_le_bytes());
    p(32, &0x1_0000_0028u64.to_le_bytes());
    p(40, &0x1_0000_0010u64.to_le_bytes());
    // checkPointCopy at 48
    p(48, &0x1_0000_0020u64.to_le_bytes());
    p(56, &2u32.to_le_bytes());
    p(60, &[1]);
    p(64, &0x1_0000_0753u64.to_le_bytes());
    p(72, &24576u32.to_le_bytes());
    p(80, &0x2_0000_0005u64.to_le_bytes());
    p(88, &0x3_0000_0009u64.to_le_bytes());
    p(96, &0x4_0000_0003u64.to_le_bytes());
    p(104, &11u32.to_le_bytes());
    p(112, &1_700_000_002i64.to_le_bytes());
    p(120, &0x1_0000_0001u64.to_le_bytes());
    p(128, &0x5_0000_0013u64.to_le_bytes());
    // the rest of ControlFileData
    p(136, &0x2_0000_0100u64.to_le_bytes());
    p(144, &0x10u64.to_le_bytes());
    p(152, &0x20u64.to_le_bytes());
    p(160, &[1]);
    p(164, &3i32.to_le_bytes());
    for (i, at) in [168, 172, 176].into_iter().enumerate() {
        p(at, &(10 + i as i32).to_le_bytes());
    }
    p(180, &8u32.to_le_bytes());
    p(184, &1234567.0f64.to_le_bytes());
    for (i, v) in [8192u32, 131072, 8192, 16 << 20, 64, 32, 1996]
        .into_iter()
        .enumerate()
    {
        p(192 + 4 * i, &v.to_le_bytes());
    }
    p(220, &[1, 0, 1, 0]);
    seal(&mut b);
    b
}

#[test]
fn every_field_of_a_synthetic_file() {
    let f = ControlFile::decode(&synthetic()).unwrap();
    assert_eq!(f.flavor, Flavor::OpenGauss);
    assert_eq!(f.system_identifier, 0x0123_4567_89AB_CDEF);
    assert_eq!(
        (f.pg_control_version, f.catalog_version_no),
        (923, 201_611_171)
    );
    assert_eq!(f.startup_timeline, Some(TimeLineId(7)));
    assert_eq!(f.state, DbState::InArchiveRecovery);
    assert_eq!(f.time, 1_700_000_001);
    assert_eq!(f.checkpoint, Lsn(0x1_0000_0028));
    assert_eq!(f.prev_checkpoint, Some(Lsn(0x1_0000_0010)));
    let cp = &f.checkpoint_copy;
    assert_eq!(cp.redo, Lsn(0x1_0000_0020));
    assert_eq!(
        (cp.this_timeline_id, cp.prev_timeline_id),
        (TimeLineId(2), TimeLineId(2))
    );
    assert!(cp.full_page_writes);
    assert_eq!(cp.wal_level, None);
    assert_eq!(cp.next_xid.0, 0x1_0000_0753);
    assert_eq!(cp.next_oid, 24576);
    assert_eq!(
        (cp.next_multi, cp.next_multi_offset),
        (0x2_0000_0005, 0x3_0000_0009)
    );
    assert_eq!((cp.oldest_xid, cp.oldest_xid_db), (0x4_0000_0003, 11));
    assert_eq!(cp.time, 1_700_000_002);
    assert_eq!(cp.remove_seg, Some(0x1_0000_0001));
    assert_eq!(cp.oldest_active_xid, 0x5_0000_0013);
    assert_eq!((cp.oldest_multi, cp.oldest_commit_ts_xid), (0, 0));
    assert_eq!(f.min_recovery_point, Lsn(0x2_0000_0100));
    assert_eq!(f.min_recovery_point_tli, TimeLineId(2), "the checkpoint's");
    assert_eq!(
        (f.backup_start_point, f.backup_end_point),
        (Lsn(0x10), Lsn(0x20))
    );
    assert!(f.backup_end_required);
    assert_eq!(f.wal_level, WalLevel(3));
    assert_eq!(
        (
            f.max_connections,
            f.max_prepared_xacts,
            f.max_locks_per_xact
        ),
        (10, 11, 12)
    );
    assert_eq!((f.max_align, f.blcksz, f.relseg_size), (8, 8192, 131072));
    assert_eq!((f.xlog_blcksz, f.xlog_seg_size), (8192, 16 << 20));
    assert_eq!(
        (f.name_data_len, f.index_max_keys, f.toast_max_chunk_size),
        (64, 32, 1996)
    );
    assert_eq!(f.enable_int_times, Some(true));
    assert_eq!(f.float4_by_val, Some(false));
    assert!(f.float8_by_val);
    assert_eq!(f.bootstrap_segment, Some(false));
    assert_eq!(f.data_checksum_version, 0);
    assert!(!f.wal_log_hints);
    assert!(f.missing_fields().contains(&"minRecoveryPointTLI"));
    assert_eq!(f.default_char_signedness, None);
}

#[test]
fn round_trip_keeps_padding_bytes() {
    for bytes in [
        synthetic(),
        STOPPED_STANDBY.to_vec(),
        RUNNING_PRIMARY.to_vec(),
    ] {
        let f = ControlFile::decode(&bytes).unwrap();
        assert_eq!(f.encode(), bytes);
        assert_eq!(ControlFile::decode(&f.encode()).unwrap(), f);
    }
}

#[test]
fn state_and_minimum_recovery_point_are_written_at_their_offsets() {
    // What the finish of a rebuild changes (gs_rewind: state 5, minRecoveryPoint = end).
    let mut f = ControlFile::decode(RUNNING_PRIMARY).unwrap();
    f.state = DbState::InArchiveRecovery;
    f.min_recovery_point = Lsn(0x5195400);
    f.min_recovery_point_tli = TimeLineId(9);
    let out = f.encode();
    let mut want = RUNNING_PRIMARY.to_vec();
    want[20..24].copy_from_slice(&5i32.to_le_bytes());
    want[136..144].copy_from_slice(&0x5195400u64.to_le_bytes());
    seal(&mut want);
    assert_eq!(out, want);
    let back = ControlFile::decode(&out).unwrap();
    assert_eq!(
        (back.state, back.min_recovery_point),
        (f.state, f.min_recovery_point)
    );
    assert_eq!(back.min_recovery_point_tli, TimeLineId(1), "not stored");
}

#[test]
fn backup_image_is_the_first_512_bytes() {
    let f = ControlFile::decode(STOPPED_STANDBY).unwrap();
    let image = f.backup_image().unwrap();
    assert_eq!(image.len(), BACKUP_FILE_SIZE);
    assert_eq!(image[..], STOPPED_STANDBY[..512]);
    // The server reads the backup as a control file of its own.
    assert_eq!(ControlFile::decode(&image).unwrap(), f);
    let pg = ControlFile::decode(&super::tests::synthetic(Flavor::Pg16)).unwrap();
    assert_eq!(pg.backup_image(), None);
    assert!(pg.missing_fields().is_empty());
}

#[test]
fn damaged_files() {
    let bytes = synthetic();
    for len in [16, 100, 231] {
        assert_eq!(
            ControlFile::decode(&bytes[..len]),
            Err(ControlError::Truncated {
                need: 232,
                have: len
            })
        );
    }
    let mut bad = bytes.clone();
    bad[30] ^= 1;
    assert!(matches!(
        ControlFile::decode(&bad),
        Err(ControlError::Crc { .. })
    ));
    // the CRC covers [0, 224) only: the padding after it may hold anything
    let mut pad = bytes.clone();
    pad[229] = 7;
    assert!(ControlFile::decode(&pad).is_ok());
    let mut state = bytes.clone();
    put(&mut state, 20, &9i32.to_le_bytes());
    seal(&mut state);
    assert_eq!(
        ControlFile::decode(&state),
        Err(ControlError::UnknownState(9))
    );
    let mut float = bytes;
    put(&mut float, 184, &1.0f64.to_le_bytes());
    seal(&mut float);
    assert!(matches!(
        ControlFile::decode(&float),
        Err(ControlError::FloatFormat { .. })
    ));
}

#[test]
fn prints_like_pg_controldata() {
    let f = ControlFile::decode(RUNNING_PRIMARY).unwrap();
    let lines = crate::inspect::control::lines(&f);
    assert_eq!(lines.len(), 39);
    let get = |label: &str| {
        lines
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{label}"))
    };
    assert_eq!(get("Prior checkpoint location"), "0/51C46B0");
    assert_eq!(get("Latest checkpoint's NextXID"), "13624");
    assert_eq!(get("Latest checkpoint's remove lsn"), "0/1");
    assert_eq!(get("Current wal_level setting"), "hot_standby");
    assert_eq!(get("Float4 argument passing"), "by value");
    assert_eq!(get("Database system TimeLine"), "3");
}

#[test]
fn checkpoint_round_trip() {
    let f = ControlFile::decode(STOPPED_STANDBY).unwrap();
    let cp = f.checkpoint_copy;
    let enc = cp.encode(Flavor::OpenGauss);
    assert_eq!(enc[..], STOPPED_STANDBY[48..136]);
    assert_eq!(CheckPoint::decode(&enc, Flavor::OpenGauss), Ok(cp));
    let mut undo = enc.to_vec();
    undo.extend(1624u64.to_le_bytes());
    undo.extend(120u64.to_le_bytes());
    undo.extend(12979u64.to_le_bytes());
    undo.extend(5u64.to_le_bytes());
    assert_eq!(CheckPoint::decode(&undo, Flavor::OpenGauss), Ok(cp));
    let u = CheckPointUndo::decode(&undo).unwrap();
    assert_eq!(
        (u.next_csn, u.length, u.recent_global_xmin),
        (1624, 120, 12979)
    );
    assert_eq!(u.global_recycle_xid, 5);
    assert_eq!(CheckPointUndo::decode(&enc), None);
}
