//! Unit tests of the target writer on temporary directories.
use super::*;
use std::fs;

#[test]
fn writes_and_refuses_escapes() {
    let d = tempfile::tempdir().unwrap();
    let mut t = TargetDir::new(d.path(), false, SyncMethod::Fsync).unwrap();
    t.create_dir("base").unwrap();
    t.write_at("base/1", 8192, b"abc").unwrap();
    t.truncate("base/1", 8194).unwrap();
    assert_eq!(fs::metadata(d.path().join("base/1")).unwrap().len(), 8194);
    t.write_file_atomic("backup_label", b"x").unwrap();
    assert!(t.write_at("../escape", 0, b"x").is_err());
    assert!(t.write_at("/tmp/escape", 0, b"x").is_err());
    t.sync().unwrap();
    t.remove_file("base/1", false).unwrap();
    t.remove_dir("base").unwrap();
    assert!(!d.path().join("base").exists());
    assert_eq!(t.bytes_written(), 4);
}

#[test]
fn never_writes_through_symlinks() {
    let d = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = d.path();
    fs::write(outside.path().join("f"), b"outside").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("evil")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("f"), root.join("flink")).unwrap();
    fs::create_dir_all(root.join("pg_tblspc")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("pg_tblspc/16385")).unwrap();
    let mut t = TargetDir::new(root, false, SyncMethod::None).unwrap();
    let e = t.write_at("evil/x", 0, b"x").unwrap_err().to_string();
    assert!(
        e.contains("\"evil\" in the target is a symbolic link"),
        "{e}"
    );
    assert!(t.truncate("evil/f", 0).is_err());
    assert!(t.create_dir("evil/d").is_err());
    assert!(t.remove_file("evil/f", false).is_err());
    assert!(t.write_file_atomic("evil/label", b"x").is_err());
    assert!(t.write_at("flink", 0, b"x").is_err());
    assert!(t.write_file_atomic("flink", b"replaced").is_ok());
    assert_eq!(fs::read(outside.path().join("f")).unwrap(), b"outside");
    assert!(!outside.path().join("x").exists() && !outside.path().join("d").exists());
    // Tablespaces are symbolic links by design.
    t.write_at("pg_tblspc/16385/PG_15_1", 0, b"ts").unwrap();
    assert!(outside.path().join("PG_15_1").is_file());
}

#[test]
fn dry_run_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut t = TargetDir::new(d.path(), true, SyncMethod::Fsync).unwrap();
    t.create_dir("base").unwrap();
    t.write_at("base/1", 0, b"abc").unwrap();
    t.sync().unwrap();
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    assert_eq!(t.bytes_written(), 3);
}

#[test]
fn moves_aside_and_takes_a_missing_file_for_moved() {
    let d = tempfile::tempdir().unwrap();
    let mut t = TargetDir::new(d.path(), false, SyncMethod::None).unwrap();
    t.create_dir("trash").unwrap();
    t.write_at("f", 0, b"x").unwrap();
    assert!(t.move_aside("f", "trash/1").unwrap());
    assert!(!d.path().join("f").exists());
    assert_eq!(fs::read(d.path().join("trash/1")).unwrap(), b"x");
    // A resumed run moves what the run before already moved: nothing to do.
    assert!(!t.move_aside("f", "trash/2").unwrap());
}
