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

/// Files copied whole end with exactly what was delivered, as if each had been emptied first:
/// overwritten in place or emptied on first open ([`whole`]).
#[test]
fn files_copied_whole_hold_only_what_was_delivered() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    for f in [
        "same",
        "shrank",
        "holes",
        "emptied",
        "untouched_empty",
        "gone",
    ] {
        fs::write(root.join(f), [b'o'; 100]).unwrap();
    }
    let mut t = TargetDir::new(root, false, SyncMethod::Fsync).unwrap();
    for f in ["same", "shrank", "holes", "gone"] {
        t.overwrite_in_place(f);
    }
    t.empty_before_writing("emptied");
    t.empty_before_writing("untouched_empty");
    t.empty_before_writing("created");
    // Delivered: all of "same"; "shrank" read short; "holes" with a chunk missing between two.
    t.write_at("same", 0, &[b'n'; 100]).unwrap();
    t.write_at("shrank", 0, &[b'n'; 40]).unwrap();
    t.write_at("holes", 0, &[b'n'; 10]).unwrap();
    t.write_at("holes", 20, &[b'n'; 10]).unwrap();
    t.write_at("emptied", 50, b"nn").unwrap();
    // A file that vanished from the source is removed, and stays so.
    t.remove_file("gone", false).unwrap();
    t.finish_whole_files().unwrap();
    t.sync().unwrap();
    let read = |f: &str| fs::read(root.join(f)).unwrap();
    assert_eq!(read("same"), vec![b'n'; 100]);
    assert_eq!(read("shrank"), vec![b'n'; 40]);
    let mut holes = vec![b'n'; 30];
    holes[10..20].fill(0);
    assert_eq!(read("holes"), holes);
    let mut emptied = vec![0; 52];
    emptied[50..].copy_from_slice(b"nn");
    assert_eq!(read("emptied"), emptied);
    assert_eq!(read("untouched_empty"), Vec::<u8>::new());
    assert_eq!(read("created"), Vec::<u8>::new());
    assert!(!root.join("gone").exists());
}

/// Many paths are fsynced from several threads; a failure among them is reported.
#[test]
fn fsyncs_many_paths_and_reports_a_failure() {
    let d = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..40).map(|i| d.path().join(format!("f{i}"))).collect();
    for f in &files {
        fs::write(f, b"x").unwrap();
    }
    let mut paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    file::fsync_paths(&paths).unwrap();
    // Under a regular file: opening it fails with "not a directory".
    let bad = [d.path().join("f3/a"), d.path().join("f30/b")];
    paths.insert(20, &bad[1]);
    paths.insert(5, &bad[0]);
    let e = file::fsync_paths(&paths).unwrap_err().to_string();
    assert!(e.contains("f3/a") || e.contains("f30/b"), "{e}");
}
