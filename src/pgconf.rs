//! Reading PostgreSQL configuration files (`postgresql.conf`, `postgresql.auto.conf`): the
//! settings gsbuild needs from the target — `primary_conninfo` (the default source),
//! `restore_command` (`-c`) — with the server's precedence: later lines win, and
//! `postgresql.auto.conf` is read after `postgresql.conf`.
//!
//! The parser follows the server's lexical rules for the parts that matter here: `name = value`
//! or `name value`, values quoted with `'…'` (a doubled `''` or `\'` is a quote, backslash
//! escapes), `#` comments, `include`/`include_if_exists`/`include_dir` directives (relative to
//! the including file).
//!
//! Phases 1–3 (the target's configuration, through `cluster::TargetCluster`).

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Settings read from configuration files, by lower-case name.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    values: HashMap<String, String>,
}

impl Settings {
    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Reads the target's configuration: `config_file` (or `<datadir>/postgresql.conf`), then
    /// `<datadir>/postgresql.auto.conf`. Missing files are skipped.
    pub fn read_target(datadir: &Path, config_file: Option<&Path>) -> Result<Settings> {
        let mut s = Settings::default();
        let main = config_file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| datadir.join("postgresql.conf"));
        s.read_file(&main, 0, config_file.is_some())?;
        s.read_file(&datadir.join("postgresql.auto.conf"), 0, false)?;
        Ok(s)
    }

    fn read_file(&mut self, path: &Path, depth: u32, required: bool) -> Result<()> {
        if depth > 10 {
            return Err(Error::Usage(format!(
                "could not open configuration file \"{}\": maximum nesting depth exceeded",
                path.display()
            )));
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(()),
            Err(e) => return Err(Error::io("open configuration file", path, e)),
        };
        let base = path.parent().unwrap_or(Path::new("."));
        for (n, line) in text.lines().enumerate() {
            let Some((name, value)) = parse_line(line).map_err(|why| {
                Error::Usage(format!(
                    "syntax error in file \"{}\" line {}: {why}",
                    path.display(),
                    n + 1
                ))
            })?
            else {
                continue;
            };
            match name.as_str() {
                "include" => self.read_file(&base.join(&value), depth + 1, true)?,
                "include_if_exists" => self.read_file(&base.join(&value), depth + 1, false)?,
                "include_dir" => self.read_dir(&base.join(&value), depth + 1)?,
                _ => {
                    self.values.insert(name, value);
                }
            }
        }
        Ok(())
    }

    fn read_dir(&mut self, dir: &Path, depth: u32) -> Result<()> {
        let rd = std::fs::read_dir(dir)
            .map_err(|e| Error::io("open configuration directory", dir, e))?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.ends_with(".conf") && !name.starts_with('.')
            })
            .collect();
        files.sort();
        for f in files {
            self.read_file(&f, depth, true)?;
        }
        Ok(())
    }
}

/// Parses one line into `(lower-case name, value)`; `Ok(None)` for blank and comment lines.
pub fn parse_line(line: &str) -> std::result::Result<Option<(String, String)>, String> {
    let s = line.trim_start();
    if s.is_empty() || s.starts_with('#') {
        return Ok(None);
    }
    let name_len = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-'))
        .unwrap_or(s.len());
    if name_len == 0 {
        return Err(format!("unexpected character at \"{s}\""));
    }
    let name = s[..name_len].to_ascii_lowercase();
    let mut rest = s[name_len..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    let value = if let Some(quoted) = rest.strip_prefix('\'') {
        let (v, after) =
            unquote(quoted).ok_or_else(|| format!("unterminated quoted string for \"{name}\""))?;
        check_trailing(after, &name)?;
        v
    } else {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '#')
            .unwrap_or(rest.len());
        check_trailing(&rest[end..], &name)?;
        rest[..end].to_string()
    };
    Ok(Some((name, value)))
}

fn check_trailing(after: &str, name: &str) -> std::result::Result<(), String> {
    let after = after.trim_start();
    if after.is_empty() || after.starts_with('#') {
        Ok(())
    } else {
        Err(format!("unexpected text after the value of \"{name}\""))
    }
}

/// Reads a `'…'` string body (after the opening quote); returns the value and the rest.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' if matches!(chars.peek(), Some((_, '\''))) => {
                chars.next();
                out.push('\'');
            }
            '\'' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Quotes `value` for a configuration file (`'` doubled, backslashes escaped).
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let p = |l: &str| parse_line(l).unwrap();
        assert_eq!(p("  # x"), None);
        assert_eq!(p(""), None);
        assert_eq!(p("port = 5433 # c"), Some(("port".into(), "5433".into())));
        assert_eq!(p("Port 5433"), Some(("port".into(), "5433".into())));
        assert_eq!(
            p("primary_conninfo = 'host=/tmp port=5 password=''a b'' x=\\'y'"),
            Some((
                "primary_conninfo".into(),
                "host=/tmp port=5 password='a b' x='y".into()
            ))
        );
        assert_eq!(
            p("restore_command='cp /a/%f \"%p\"'"),
            Some(("restore_command".into(), "cp /a/%f \"%p\"".into()))
        );
        assert!(parse_line("x = 'unterminated").is_err());
        assert!(parse_line("x = a b").is_err());
        assert!(parse_line("= a").is_err());
        let v = "it's a \\ test";
        assert_eq!(
            p(&format!("x = {}", quote(v))),
            Some(("x".into(), v.into()))
        );
    }

    #[test]
    fn precedence_and_includes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("conf.d")).unwrap();
        std::fs::write(
            d.path().join("postgresql.conf"),
            "primary_conninfo = 'a'\ninclude_dir 'conf.d'\ninclude_if_exists 'missing.conf'\n",
        )
        .unwrap();
        std::fs::write(d.path().join("conf.d/10.conf"), "restore_command = 'b'\n").unwrap();
        std::fs::write(
            d.path().join("postgresql.auto.conf"),
            "primary_conninfo = 'c'\n",
        )
        .unwrap();
        let s = Settings::read_target(d.path(), None).unwrap();
        assert_eq!(s.get("primary_conninfo"), Some("c"));
        assert_eq!(s.get("RESTORE_COMMAND"), Some("b"));
        std::fs::write(d.path().join("postgresql.conf"), "include 'nope.conf'\n").unwrap();
        let err = Settings::read_target(d.path(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.conf"), "{err}");
    }
}
