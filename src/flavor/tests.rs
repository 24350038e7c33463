//! Unit tests of the flavor table.

use super::*;

#[test]
fn table_is_in_enum_order() {
    for (i, m) in Flavor::ALL.iter().enumerate() {
        assert_eq!(ROWS[i].flavor, *m);
        let by_number = (m.product() == Product::PostgreSql).then_some(*m);
        assert_eq!(Flavor::from_number(m.number()), by_number);
        assert_eq!(Flavor::from_wal_page_magic(m.wal_page_magic()), Some(*m));
    }
}

#[test]
fn serialises_as_the_number() {
    assert_eq!(
        serde_json::to_string(&Flavor::OpenGauss).unwrap(),
        "\"opengauss\""
    );
    assert_eq!(
        serde_json::from_str::<Flavor>("\"opengauss\"").unwrap(),
        Flavor::OpenGauss
    );
    assert_eq!(serde_json::to_string(&Flavor::Pg15).unwrap(), "15");
    assert_eq!(serde_json::from_str::<Flavor>("18").unwrap(), Flavor::Pg18);
    assert!(serde_json::from_str::<Flavor>("13").is_err());
}

#[test]
fn control_versions() {
    // catalog versions of real releases: 14.x, 15.x, 16.x, 17.x, 18.x
    assert_eq!(Flavor::from_control(1300, 202107181), Some(Flavor::Pg14));
    assert_eq!(Flavor::from_control(1300, 202209061), Some(Flavor::Pg15));
    assert_eq!(Flavor::from_control(1300, 202307071), Some(Flavor::Pg16));
    assert_eq!(Flavor::from_control(1700, 202406281), Some(Flavor::Pg17));
    assert_eq!(Flavor::from_control(1800, 202506291), Some(Flavor::Pg18));
    assert_eq!(Flavor::from_control(1700, 202107181), None);
    assert_eq!(Flavor::from_control(1201, 201909212), None);
    assert_eq!(Flavor::from_control(1300, 202007201), None);
    assert_eq!(
        Flavor::from_control(923, 201611171),
        Some(Flavor::OpenGauss)
    );
}

#[test]
fn names_in_the_wal_directory() {
    let f = Flavor::Pg16;
    assert_eq!(f.wal_path("00000002.history"), "pg_wal/00000002.history");
    assert_eq!(
        f.wal_file_name("pg_wal/0000000100000000000000A1"),
        Some("0000000100000000000000A1")
    );
    assert_eq!(f.wal_file_name("pg_walx/1"), None);
    assert_eq!(f.tablespace_version_dir(202307071, "n"), "PG_16_202307071");
    assert_eq!(
        Flavor::OpenGauss.tablespace_version_dir(201611171, "dn_6001"),
        "PG_9.2_201611171_dn_6001"
    );
    assert_eq!(
        Flavor::OpenGauss.wal_path("000000010000000000000004"),
        "pg_xlog/000000010000000000000004"
    );
}
