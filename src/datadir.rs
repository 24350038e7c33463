//! Listing a data directory on local disk: every file, directory and symlink, with paths
//! relative to the data directory. Used for the target (phase 5) and for a local source.
//!
//! `pg_wal` is listed as a directory even when it is a symlink, and the symlinks in
//! `pg_tblspc/` are listed as symlinks whose contents are listed under their own path, as
//! pg_rewind does, so that both sides compare tablespace contents by OID.

use crate::error::{Error, Result};
use crate::filemap::FileKind;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// One listed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Relative, `/`-separated path.
    pub path: String,
    /// What is there.
    pub kind: FileKind,
}

/// Lists `root` recursively. Entries vanishing during the walk are skipped (a running server
/// removes temporary files at any time); any other error names the path.
pub fn list(root: &Path) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    walk(root, "", &mut out)?;
    Ok(out)
}

fn walk(root: &Path, rel: &str, out: &mut Vec<Listed>) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !rel.is_empty() => return Ok(()),
        Err(e) => return Err(Error::io("open directory", &dir, e)),
    };
    for item in rd {
        let item = item.map_err(|e| Error::io("read directory", &dir, e))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::Usage(format!(
                "file name \"{}\" in \"{}\" is not valid UTF-8",
                name.to_string_lossy(),
                dir.display()
            )));
        };
        let path = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let full = dir.join(name);
        let meta = match fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat file", &full, e)),
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target =
                fs::read_link(&full).map_err(|e| Error::io("read symbolic link", &full, e))?;
            if path == "pg_wal" {
                out.push(Listed {
                    path: path.clone(),
                    kind: FileKind::Dir,
                });
                walk(root, &path, out)?;
            } else {
                let target = target.to_string_lossy().into_owned();
                out.push(Listed {
                    path: path.clone(),
                    kind: FileKind::Symlink { target },
                });
                if rel == "pg_tblspc" {
                    walk(root, &path, out)?;
                }
            }
        } else if ft.is_dir() {
            out.push(Listed {
                path: path.clone(),
                kind: FileKind::Dir,
            });
            walk(root, &path, out)?;
        } else if ft.is_file() {
            out.push(Listed {
                path,
                kind: FileKind::File { size: meta.len() },
            });
        }
        // Sockets, FIFOs and devices are never part of a cluster's state.
    }
    Ok(())
}

/// Checks that `path` is a safe relative data-directory path: not empty, not absolute, no
/// `.`/`..` components, no NUL. Everything a source names goes through this before the target
/// is touched, so a broken or malicious source cannot make gsbuild write outside the target.
pub fn check_relative(path: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Usage(format!(
            "invalid path \"{path}\" from source: {why}"
        )))
    };
    if path.is_empty() || path.contains('\0') {
        return bad("empty or contains NUL");
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("empty, \".\" or \"..\" component");
    }
    if !Path::new(path)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return bad("not a plain relative path");
    }
    Ok(())
}

/// Whether `path` names a tablespace link: a direct child of `pg_tblspc/` named by an OID.
pub fn is_tablespace_link(path: &str) -> bool {
    path.strip_prefix("pg_tblspc/")
        .is_some_and(|oid| !oid.is_empty() && oid.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks one entry of a source's file listing before anything is planned from it. Besides
/// [`check_relative`]: the only symbolic links a data directory may hold are tablespaces
/// (`pg_tblspc/<oid>`), and they must point to an absolute location (PostgreSQL creates no
/// other). Any other symbolic link would let a broken or malicious source steer writes
/// outside the target (a link `evil → /etc` listed with a file `evil/passwd`), and a relative
/// tablespace location would be created relative to wherever gsbuild runs.
pub fn check_source_entry(path: &str, kind: &FileKind) -> Result<()> {
    check_relative(path)?;
    let FileKind::Symlink { target } = kind else {
        return Ok(());
    };
    let why = if !is_tablespace_link(path) {
        "only tablespaces (pg_tblspc/<oid>) may be symbolic links"
    } else if target.contains('\0') || !Path::new(target).is_absolute() {
        "a tablespace location must be an absolute path"
    } else {
        return Ok(());
    };
    Err(Error::Usage(format!(
        "invalid entry \"{path}\" from source: symbolic link to \"{}\": {why}",
        target.escape_debug()
    )))
}

/// `root` joined with a checked relative path.
pub fn join(root: &Path, path: &str) -> Result<PathBuf> {
    check_relative(path)?;
    Ok(root.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_with_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let ts = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("base/1")).unwrap();
        fs::write(root.join("base/1/1259"), [0u8; 100]).unwrap();
        fs::create_dir_all(root.join("pg_tblspc")).unwrap();
        fs::create_dir_all(ts.path().join("PG_15_1/5")).unwrap();
        fs::write(ts.path().join("PG_15_1/5/16384"), [0u8; 8]).unwrap();
        std::os::unix::fs::symlink(ts.path(), root.join("pg_tblspc/16385")).unwrap();
        let wal = tempfile::tempdir().unwrap();
        fs::write(wal.path().join("000000010000000000000001"), [0u8; 4]).unwrap();
        std::os::unix::fs::symlink(wal.path(), root.join("pg_wal")).unwrap();
        let mut got = list(root).unwrap();
        got.sort_by(|a, b| a.path.cmp(&b.path));
        let paths: Vec<_> = got.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "base",
                "base/1",
                "base/1/1259",
                "pg_tblspc",
                "pg_tblspc/16385",
                "pg_tblspc/16385/PG_15_1",
                "pg_tblspc/16385/PG_15_1/5",
                "pg_tblspc/16385/PG_15_1/5/16384",
                "pg_wal",
                "pg_wal/000000010000000000000001"
            ]
        );
        assert_eq!(got[2].kind, FileKind::File { size: 100 });
        assert!(matches!(got[4].kind, FileKind::Symlink { .. }));
        assert_eq!(got[8].kind, FileKind::Dir);
    }

    #[test]
    fn relative_paths() {
        for ok in ["base/1/1259", "pg_wal", "a b/'q\"uote"] {
            assert!(check_relative(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "base/../../x",
            "base//1",
            "./base",
            "base/.",
            "a\0b",
        ] {
            assert!(check_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn source_entries() {
        let link = |t: &str| FileKind::Symlink { target: t.into() };
        let file = FileKind::File { size: 1 };
        assert!(check_source_entry("pg_tblspc/16385", &link("/srv/ts")).is_ok());
        assert!(check_source_entry("base/1/1259", &file).is_ok());
        for (path, kind) in [
            ("pg_tblspc/16385", link("../../x")),
            ("pg_tblspc/16385", link("")),
            ("pg_tblspc/16385", link("/a\0b")),
            ("pg_tblspc/abc", link("/srv/ts")),
            ("pg_tblspc/16385/PG_15_1/evil", link("/etc")),
            ("evil", link("/etc")),
            ("pg_wal", link("/elsewhere")),
            ("../x", file.clone()),
        ] {
            let e = check_source_entry(path, &kind).unwrap_err().to_string();
            assert!(e.contains(&format!("\"{path}\"")), "{e}");
        }
    }
}
