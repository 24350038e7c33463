//! The layout's rules, checked on the library's own source: no circle of imports between its
//! files, no file over 600 lines and no function over 80 (test code, and the few flat
//! tables and matches listed here, aside), and no reference to a file outside the project.
//! `cargo test --test architecture` prints what it measured.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Files allowed over 600 lines: none today.
const LONG_FILES: &[&str] = &[];

/// Functions allowed over 80 lines, each a flat match or table.
const LONG_FUNCTIONS: &[(&str, &str)] = &[
    // One arm per authentication message of the protocol.
    ("replication/auth.rs", "authenticate"),
];

/// Every library source file (the binary's too, for the size rules), by path under `src/`.
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p
                    .strip_prefix(SRC)
                    .expect("under src")
                    .display()
                    .to_string();
                out.insert(rel, std::fs::read_to_string(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new(SRC), &mut out);
    out
}

/// The code of a file without its test module and comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_test_file(rel: &str) -> bool {
    rel.ends_with("tests.rs") || rel.ends_with("testwal.rs")
}

/// The module path of a library file (`rewind/plan.rs` → `["rewind", "plan"]`).
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Every `crate::…` and `super::…` path a file names, braces of `use` expanded.
fn paths_named(code: &str) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let start_ok = i == 0
            || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':');
        if start_ok && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let is_super = rest.starts_with("super::");
            let (end, paths) = parse_path(&bytes, i + "crate::".len());
            for p in paths {
                out.push((is_super, p));
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// Parses `a::b::{c, d::e}` from `at`; returns where it ended and the expanded paths.
fn parse_path(s: &[char], mut at: usize) -> (usize, Vec<Vec<String>>) {
    let mut prefix = Vec::new();
    loop {
        let ident: String = s[at..]
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_')
            .collect();
        if !ident.is_empty() {
            at += ident.chars().count();
            prefix.push(ident);
            if s.get(at) == Some(&':') && s.get(at + 1) == Some(&':') {
                at += 2;
                continue;
            }
            return (at, vec![prefix]);
        }
        if s.get(at) == Some(&'{') {
            at += 1;
            let mut all = Vec::new();
            loop {
                while s.get(at).is_some_and(|c| c.is_whitespace() || *c == ',') {
                    at += 1;
                }
                if s.get(at) == Some(&'}') || at >= s.len() {
                    return (
                        at + 1,
                        all.into_iter()
                            .map(|p: Vec<String>| [prefix.clone(), p].concat())
                            .collect(),
                    );
                }
                let (end, inner) = parse_path(s, at);
                all.extend(inner);
                at = end.max(at + 1);
            }
        }
        return (at, vec![prefix]);
    }
}

#[test]
fn no_import_circles() {
    let files = sources();
    let modules: BTreeMap<Vec<String>, String> = files
        .keys()
        .filter(|r| !r.starts_with("bin/") && !is_test_file(r))
        .map(|r| (module_of(r), r.clone()))
        .collect();
    let resolve = |path: &[String]| -> Option<&String> {
        (0..=path.len()).rev().find_map(|n| modules.get(&path[..n]))
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &modules {
        for (is_super, p) in paths_named(&code(&files[file])) {
            // `super` of `a/b.rs` and of `a/b/mod.rs` alike is module `a`.
            let full = if is_super {
                let mut base = module.clone();
                base.pop();
                [base, p].concat()
            } else {
                p
            };
            if let Some(to) = resolve(&full) {
                if to != file {
                    edges.entry(file.clone()).or_default().insert(to.clone());
                }
            }
        }
    }
    // A parent module's file declares and re-exports its children; only the children's
    // imports of their parent could close a circle, and they are counted.
    let mut circles = Vec::new();
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    circles.push(trail.join(" -> ") + " -> " + start);
                } else if seen.insert(next.clone()) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
    let n: usize = edges.values().map(BTreeSet::len).sum();
    eprintln!("{} library files, {n} imports between them", modules.len());
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn files_and_functions_are_small() {
    let mut long = Vec::new();
    for (rel, text) in sources() {
        if is_test_file(&rel) {
            continue;
        }
        let lines = text.lines().count();
        if lines > 600 && !LONG_FILES.contains(&rel.as_str()) {
            long.push(format!("{rel}: {lines} lines"));
        }
        let code = code(&text);
        let code_lines: Vec<&str> = code.lines().collect();
        for (i, line) in code_lines.iter().enumerate() {
            let t = line.trim_start();
            let indent = &line[..line.len() - t.len()];
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
                "async fn ",
                "pub async fn ",
                "pub(super) async fn ",
                "pub(crate) async fn ",
            ]
            .iter()
            .any(|p| t.starts_with(p));
            if !is_fn || t.ends_with(';') {
                continue;
            }
            let name: String = t
                .split("fn ")
                .nth(1)
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let close = format!("{indent}}}");
            let Some(len) = code_lines[i..].iter().position(|l| *l == close) else {
                continue;
            };
            if len + 1 > 80 && !LONG_FUNCTIONS.contains(&(rel.as_str(), name.as_str())) {
                long.push(format!("{rel}: fn {name}: {} lines", len + 1));
            }
        }
    }
    assert!(long.is_empty(), "too long:\n{}", long.join("\n"));
}

#[test]
fn the_project_explains_itself() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut texts: Vec<(String, String)> = sources()
        .into_iter()
        .map(|(r, t)| (format!("src/{r}"), t))
        .collect();
    // (.ci names where a CI machine keeps the openGauss server it installs, an input, not an
    // explanation.)
    for dir in ["docs", "tests", "benches"] {
        for e in std::fs::read_dir(root.join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = e.path();
            if p.is_file() {
                if let Ok(t) = std::fs::read_to_string(&p) {
                    texts.push((p.display().to_string(), t));
                }
            }
        }
    }
    texts.push((
        "README.md".into(),
        std::fs::read_to_string(root.join("README.md")).unwrap_or_default(),
    ));
    // Spelled in pieces, so that this file does not name them either.
    let outside = [
        ["DESIGN", ".md"].concat(),
        ["STYLE", ".md"].concat(),
        ["../", "shared"].concat(),
        ["OPENGAUSS", ".md"].concat(),
    ];
    let mut found = Vec::new();
    for (path, text) in &texts {
        for o in &outside {
            if text.contains(o.as_str()) {
                found.push(format!("{path} names {o}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "references to files outside the project:\n{}",
        found.join("\n")
    );
}

/// `rust-version` in Cargo.toml is true: no locked dependency (for this platform, tests and
/// benches included) needs a newer Rust than the one the package states.
#[test]
fn stated_rust_version_covers_the_locked_dependencies() {
    let root = env!("CARGO_MANIFEST_DIR");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let version = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    let packages = meta["packages"].as_array().expect("packages");
    let stated = packages
        .iter()
        .find(|p| p["name"] == "gsbuild")
        .and_then(|p| p["rust_version"].as_str())
        .map(version)
        .expect("gsbuild states a rust-version");
    let newer: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs) > stated)
                .then(|| format!("{} {} needs Rust {needs}", p["name"], p["version"]))
        })
        .collect();
    assert!(
        newer.is_empty(),
        "rust-version {stated:?} is too old:\n{}",
        newer.join("\n")
    );
}
