//! The password file (`~/.pgpass` or `PGPASSFILE`), read with libpq's rules
//! (`passwordFromFile` in `fe-connect.c`): lines `host:port:db:user:password`, `*` matches
//! anything, `\:` and `\\` escape, `#` starts a comment line, the first matching line wins, and
//! a file that group or others can read is ignored with a warning.
//!
//! Phase 2 (connecting to the source).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Looks up the password for `(host, port, dbname, user)` in `path`. `host` is what libpq would
/// compare: `localhost` for the default unix socket directory, the directory for another socket.
/// A missing, unreadable or too open file yields `None` (the latter two with a warning).
pub(super) fn lookup(
    path: &Path,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        tracing::warn!("password file \"{}\" is not a plain file", path.display());
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("could not read password file \"{}\": {e}", path.display());
            return None;
        }
    };
    lookup_in(&text, host, port, dbname, user)
}

/// The matching logic on the file's text, separate for tests.
pub(super) fn lookup_in(
    text: &str,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|line| {
            let rest = field_matches(line, host)?;
            let rest = field_matches(rest, port)?;
            let rest = field_matches(rest, dbname)?;
            let rest = field_matches(rest, user)?;
            Some(unescape_password(rest))
        })
}

/// If the first field of `line` is `*` or equals `token` (after unescaping), returns the rest
/// of the line after that field's terminating colon (`pwdfMatchesString`).
fn field_matches<'a>(line: &'a str, token: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let mut want = token.chars();
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        let (c, escaped) = if c == '\\' {
            match chars.next() {
                Some((_, n)) => (n, true),
                None => return None,
            }
        } else {
            (c, false)
        };
        if c == ':' && !escaped {
            return want.next().is_none().then(|| line.get(i + 1..)).flatten();
        }
        if want.next() != Some(c) {
            return None;
        }
    }
    None
}

/// The password field: escapes removed, ending at the first unescaped colon.
fn unescape_password(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_rules() {
        let file = "# comment\n\
                    db1host:5432:*:alice:pw1\n\
                    *:*:db\\:2:*:pw\\:2\\\\x\r\n\
                    localhost:5433:*:*:local:ignored\n\
                    *:*:*:bob:\n\
                    *:*:*:*:last\n";
        let cases = [
            (("db1host", "5432", "x", "alice"), Some("pw1")),
            (("db1host", "5433", "x", "alice"), Some("last")),
            (("h", "1", "db:2", "u"), Some("pw:2\\x")),
            (("localhost", "5433", "d", "u"), Some("local")),
            (("h", "1", "d", "bob"), Some("")),
            (("h", "1", "db", "u"), Some("last")),
        ];
        for ((h, p, d, u), want) in cases {
            assert_eq!(
                lookup_in(file, h, p, d, u).as_deref(),
                want,
                "{h} {p} {d} {u}"
            );
        }
        assert_eq!(lookup_in("a:b:c:d", "a", "b", "c", "d"), None);
        assert_eq!(
            lookup_in("a:b:c:d:e\\", "a", "b", "c", "d").as_deref(),
            Some("e\\")
        );
        assert_eq!(lookup_in("\\", "a", "b", "c", "d"), None);
    }

    #[test]
    fn too_open_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:pw\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(lookup(&path, "h", "1", "d", "u"), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup(&path, "h", "1", "d", "u").as_deref(), Some("pw"));
        assert_eq!(lookup(&dir.path().join("none"), "h", "1", "d", "u"), None);
    }
}
