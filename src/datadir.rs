//! Listing a data directory on local disk: every file, directory and symlink, with paths
//! relative to the data directory. Used for the target (phase 5) and for a local source.
//!
//! `pg_wal` is listed as a directory even when it is a symlink, and the symlinks in
//! `pg_tblspc/` are listed as symlinks whose contents are listed under their own path, as
//! pg_rewind does, so that both sides compare tablespace contents by OID.

use crate::error::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// What a path is on one side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FileKind {
    /// A regular file of `size` bytes.
    File {
        /// Size in bytes.
        size: u64,
    },
    /// A directory (also `pg_wal` when it is a symlink: pg_rewind's rule, so that a symlinked
    /// `pg_wal` on one side and a plain one on the other are not a conflict).
    Dir,
    /// A symbolic link (tablespaces under `pg_tblspc/`).
    Symlink {
        /// Where it points.
        target: String,
    },
}

impl FileKind {
    /// The size of a regular file, 0 for anything else.
    pub fn size(&self) -> u64 {
        match self {
            FileKind::File { size } => *size,
            _ => 0,
        }
    }

    /// What it is, in pg_rewind's words ("regular file", "directory", "symbolic link").
    pub fn type_name(&self) -> &'static str {
        match self {
            FileKind::File { .. } => "regular file",
            FileKind::Dir => "directory",
            FileKind::Symlink { .. } => "symbolic link",
        }
    }
}

/// One listed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Relative, `/`-separated path.
    pub path: String,
    /// What is there.
    pub kind: FileKind,
}

/// Lists `root` recursively; `wal_dir` is the cluster's WAL directory (`pg_wal`), listed as a
/// directory even when it is a symbolic link. Entries vanishing during the walk are skipped (a
/// running server removes temporary files at any time); any other error names the path.
///
/// The walk is parallel: the first level (and the second under `base/` and `pg_tblspc/`) is
/// read here, and every subtree below — each database directory, each tablespace, each other
/// top-level directory — is walked by `walkdir` on the rayon pool. Each entry comes before
/// the entries under it; the order is otherwise unspecified.
pub fn list(root: &Path, wal_dir: &str) -> Result<Vec<Listed>> {
    enum Piece {
        Entry(Listed),
        Subtree(String),
    }
    let mut pieces = Vec::new();
    for (entry, descend) in read_level(root, "", wal_dir)? {
        let path = entry.path.clone();
        pieces.push(Piece::Entry(entry));
        if !descend {
            continue;
        }
        if path == "base" || path == "pg_tblspc" {
            for (inner, descend) in read_level(root, &path, wal_dir)? {
                let inner_path = inner.path.clone();
                pieces.push(Piece::Entry(inner));
                if descend {
                    pieces.push(Piece::Subtree(inner_path));
                }
            }
        } else {
            pieces.push(Piece::Subtree(path));
        }
    }
    let parts: Vec<Vec<Listed>> = pieces
        .into_par_iter()
        .map(|p| match p {
            Piece::Entry(l) => Ok(vec![l]),
            Piece::Subtree(rel) => walk_subtree(root, &rel),
        })
        .collect::<Result<_>>()?;
    Ok(parts.concat())
}

/// The entries of directory `rel` (`""`: the root), each with whether to list what is under it:
/// directories, `pg_wal` when it is a symlink (listed as a directory), and the symlinks in
/// `pg_tblspc/` (listed as symlinks, their contents under their own path). A directory other
/// than the root that vanished has no entries.
fn read_level(root: &Path, rel: &str, wal_dir: &str) -> Result<Vec<(Listed, bool)>> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !rel.is_empty() => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(Error::io("open directory", &dir, e)),
    };
    let mut out = Vec::new();
    for item in rd {
        let item = item.map_err(|e| Error::io("read directory", &dir, e))?;
        let name = item.file_name();
        let name = utf8_name(&name, &dir)?;
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
            if path == wal_dir {
                out.push((
                    Listed {
                        path,
                        kind: FileKind::Dir,
                    },
                    true,
                ));
            } else {
                let kind = symlink_kind(&full)?;
                out.push((Listed { path, kind }, rel == "pg_tblspc"));
            }
        } else if ft.is_dir() {
            out.push((
                Listed {
                    path,
                    kind: FileKind::Dir,
                },
                true,
            ));
        } else if ft.is_file() {
            let kind = FileKind::File { size: meta.len() };
            out.push((Listed { path, kind }, false));
        }
        // Sockets, FIFOs and devices are never part of a cluster's state.
    }
    Ok(out)
}

/// Everything under `rel` (a directory, or a symlink to one, which is followed), not following
/// any symlink below it.
fn walk_subtree(root: &Path, rel: &str) -> Result<Vec<Listed>> {
    let base = root.join(rel);
    let mut out = Vec::new();
    for item in walkdir::WalkDir::new(&base)
        .min_depth(1)
        .follow_links(false)
    {
        let entry = match item {
            Ok(entry) => entry,
            Err(e) => {
                let path = e.path().unwrap_or(&base).to_path_buf();
                let op = if e.depth() == 0 {
                    "open directory"
                } else {
                    "read directory"
                };
                match e.into_io_error() {
                    Some(io) if io.kind() == std::io::ErrorKind::NotFound => continue,
                    Some(io) => return Err(Error::io(op, path, io)),
                    None => {
                        return Err(Error::Usage(format!(
                            "could not list directory \"{}\"",
                            path.display()
                        )))
                    }
                }
            }
        };
        let full = entry.path();
        let parent = full.parent().unwrap_or(&base);
        utf8_name(entry.file_name(), parent)?;
        // Every component above was checked when its directory was listed.
        let sub = full
            .strip_prefix(&base)
            .ok()
            .and_then(Path::to_str)
            .ok_or_else(|| {
                Error::Usage(format!("path \"{}\" is not valid UTF-8", full.display()))
            })?;
        let path = format!("{rel}/{sub}");
        let ft = entry.file_type();
        let kind = if ft.is_symlink() {
            symlink_kind(full)?
        } else if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_file() {
            match entry.metadata() {
                Ok(m) => FileKind::File { size: m.len() },
                Err(e) => match e.into_io_error() {
                    Some(io) if io.kind() == std::io::ErrorKind::NotFound => continue,
                    Some(io) => return Err(Error::io("stat file", full, io)),
                    None => continue,
                },
            }
        } else {
            continue;
        };
        out.push(Listed { path, kind });
    }
    Ok(out)
}

fn symlink_kind(full: &Path) -> Result<FileKind> {
    let target = fs::read_link(full).map_err(|e| Error::io("read symbolic link", full, e))?;
    Ok(FileKind::Symlink {
        target: target.to_string_lossy().into_owned(),
    })
}

fn utf8_name<'a>(name: &'a std::ffi::OsStr, dir: &Path) -> Result<&'a str> {
    name.to_str().ok_or_else(|| {
        Error::Usage(format!(
            "file name \"{}\" in \"{}\" is not valid UTF-8",
            name.to_string_lossy(),
            dir.display()
        ))
    })
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

/// Checks a source's file listing before anything is planned from it: every path is a plain
/// relative path ([`check_relative`]); a tablespace link (`pg_tblspc/<oid>`) points to an
/// absolute location (PostgreSQL creates no other, and a relative one would be created
/// relative to wherever gsbuild runs); and nothing is listed below any other symbolic link,
/// which would steer writes outside the target (a link `evil → /etc` listed with a file
/// `evil/passwd`). Such a link itself may be listed (a stopped source may hold a symlinked
/// configuration file), but the plan never creates one ([`crate::filemap::decide_action`]).
pub fn check_source_listing(entries: &[(String, FileKind)]) -> Result<()> {
    let mut links = std::collections::HashSet::new();
    for (path, kind) in entries {
        check_relative(path)?;
        let FileKind::Symlink { target } = kind else {
            continue;
        };
        if !is_tablespace_link(path) {
            links.insert(path.as_str());
        } else if target.contains('\0') || !Path::new(target).is_absolute() {
            return Err(Error::Usage(format!(
                "invalid entry \"{path}\" from source: tablespace location \"{}\" is not an absolute path",
                target.escape_debug()
            )));
        }
    }
    if links.is_empty() {
        return Ok(());
    }
    for (path, _) in entries {
        let mut rest = path.as_str();
        while let Some((parent, _)) = rest.rsplit_once('/') {
            if links.contains(parent) {
                return Err(Error::Usage(format!(
                    "invalid entry \"{path}\" from source: it lies below the symbolic link \"{parent}\", and only tablespaces (pg_tblspc/<oid>) may be symbolic links with contents"
                )));
            }
            rest = parent;
        }
    }
    Ok(())
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
        let mut got = list(root, "pg_wal").unwrap();
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

    /// The sequential walk `list` replaced, kept as the reference for its output.
    fn reference(root: &Path, rel: &str, out: &mut Vec<Listed>) {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let Ok(rd) = fs::read_dir(&dir) else { return };
        for item in rd {
            let name = item.unwrap().file_name().into_string().unwrap();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let full = dir.join(&name);
            let ft = fs::symlink_metadata(&full).unwrap().file_type();
            if ft.is_symlink() {
                let target = fs::read_link(&full).unwrap().to_string_lossy().into_owned();
                if path == "pg_wal" {
                    out.push(Listed {
                        path: path.clone(),
                        kind: FileKind::Dir,
                    });
                    reference(root, &path, out);
                } else {
                    out.push(Listed {
                        path: path.clone(),
                        kind: FileKind::Symlink { target },
                    });
                    if rel == "pg_tblspc" {
                        reference(root, &path, out);
                    }
                }
            } else if ft.is_dir() {
                out.push(Listed {
                    path: path.clone(),
                    kind: FileKind::Dir,
                });
                reference(root, &path, out);
            } else if ft.is_file() {
                let size = fs::metadata(&full).unwrap().len();
                out.push(Listed {
                    path,
                    kind: FileKind::File { size },
                });
            }
        }
    }

    #[test]
    fn same_as_the_sequential_walk() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = d.path();
        let o = outside.path();
        for db in 1..=12 {
            fs::create_dir_all(root.join(format!("base/{db}/pgsql_tmp"))).unwrap();
            for rel in 0..40 {
                fs::write(
                    root.join(format!("base/{db}/{}", 16384 + rel)),
                    vec![1u8; rel],
                )
                .unwrap();
            }
        }
        fs::create_dir_all(root.join("global")).unwrap();
        fs::write(root.join("global/pg_control"), [0u8; 8192]).unwrap();
        fs::create_dir_all(root.join("pg_wal/archive_status")).unwrap();
        fs::write(root.join("pg_wal/archive_status/x.done"), b"").unwrap();
        fs::write(root.join("PG_VERSION"), b"15\n").unwrap();
        // Symlinks that are not followed: in a database, at the top, inside a tablespace.
        fs::create_dir_all(o.join("elsewhere/deep")).unwrap();
        fs::write(o.join("elsewhere/deep/f"), b"x").unwrap();
        symlink(o.join("elsewhere"), root.join("base/3/link")).unwrap();
        symlink(o.join("elsewhere"), root.join("top-link")).unwrap();
        // Tablespaces: one symlinked (with a symlink inside), one dangling, one in place.
        fs::create_dir_all(o.join("ts/PG_15_1/5")).unwrap();
        fs::write(o.join("ts/PG_15_1/5/16400"), [0u8; 16]).unwrap();
        symlink(o.join("elsewhere"), o.join("ts/PG_15_1/5/inner-link")).unwrap();
        fs::create_dir_all(root.join("pg_tblspc/16500/PG_15_1/7")).unwrap();
        fs::write(root.join("pg_tblspc/16500/PG_15_1/7/1"), [0u8; 3]).unwrap();
        symlink(o.join("ts"), root.join("pg_tblspc/16401")).unwrap();
        symlink(o.join("gone"), root.join("pg_tblspc/16402")).unwrap();
        let mut want = Vec::new();
        reference(root, "", &mut want);
        let mut got = list(root, "pg_wal").unwrap();
        let key = |l: &Listed| l.path.clone();
        want.sort_by_key(key);
        got.sort_by_key(key);
        assert_eq!(got, want);
        assert!(got
            .iter()
            .any(|l| l.path == "pg_tblspc/16401/PG_15_1/5/16400"));
        assert!(got
            .iter()
            .any(|l| l.path == "pg_tblspc/16401/PG_15_1/5/inner-link"));
        assert!(!got.iter().any(|l| l.path.contains("inner-link/")));
        assert!(!got.iter().any(|l| l.path.starts_with("base/3/link/")));
        assert!(got.iter().any(|l| l.path == "pg_tblspc/16402"));
        assert_eq!(got.len(), 12 * 42 + 20);
        // Every entry comes before the entries under it.
        let order = list(root, "pg_wal").unwrap();
        let pos: std::collections::HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, l)| (l.path.as_str(), i))
            .collect();
        for (i, l) in order.iter().enumerate() {
            if let Some((parent, _)) = l.path.rsplit_once('/') {
                assert!(pos[parent] < i, "{} before {parent}", l.path);
            }
        }
    }

    #[test]
    fn non_utf8_names_are_errors_naming_the_directory() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("base/5/sub");
        fs::create_dir_all(&db).unwrap();
        let bad = std::ffi::OsStr::from_bytes(b"rel\xff");
        fs::write(db.join(bad), b"x").unwrap();
        let err = list(d.path(), "pg_wal").unwrap_err().to_string();
        assert!(err.contains("is not valid UTF-8"), "{err}");
        assert!(err.contains("base/5/sub"), "{err}");
        fs::remove_file(db.join(bad)).unwrap();
        fs::write(d.path().join(bad), b"x").unwrap();
        assert!(list(d.path(), "pg_wal").is_err());
        assert!(list(&d.path().join("missing"), "pg_wal").is_err());
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
    fn source_listings() {
        let link = |t: &str| FileKind::Symlink { target: t.into() };
        let file = FileKind::File { size: 1 };
        let listing = |entries: &[(&str, FileKind)]| {
            let v: Vec<(String, FileKind)> = entries
                .iter()
                .map(|(p, k)| (p.to_string(), k.clone()))
                .collect();
            check_source_listing(&v)
        };
        assert!(listing(&[
            ("pg_tblspc/16385", link("/srv/ts")),
            ("pg_tblspc/16385/PG_15_1/5/1", file.clone()),
            ("base/1/1259", file.clone()),
            ("postgresql.conf", link("/etc/postgresql/postgresql.conf")),
        ])
        .is_ok());
        for (entries, named) in [
            (
                vec![("pg_tblspc/16385", link("../../x"))],
                "pg_tblspc/16385",
            ),
            (vec![("pg_tblspc/16385", link(""))], "pg_tblspc/16385"),
            (vec![("pg_tblspc/16385", link("/a\0b"))], "pg_tblspc/16385"),
            (
                vec![("evil", link("/etc")), ("evil/passwd", file.clone())],
                "evil/passwd",
            ),
            (
                vec![
                    ("pg_tblspc/abc", link("/srv")),
                    ("pg_tblspc/abc/x", file.clone()),
                ],
                "pg_tblspc/abc/x",
            ),
            (
                vec![
                    ("pg_tblspc/1/PG_15_1/evil", link("/etc")),
                    ("pg_tblspc/1/PG_15_1/evil/x/y", file.clone()),
                ],
                "pg_tblspc/1/PG_15_1/evil/x/y",
            ),
            (vec![("../x", file.clone())], "../x"),
        ] {
            let e = listing(&entries).unwrap_err().to_string();
            assert!(e.contains(&format!("\"{named}\"")), "{e}");
        }
    }
}
