//! The two spellings of a libpq connection string, turned into `(keyword, value)` pairs:
//! `key=value` lists (`conninfo_parse` in libpq's `fe-connect.c`) and
//! `postgresql://` URIs (`conninfo_uri_parse`). Pure functions of the text: no environment,
//! no file access, and no panics on any input (the fuzz target relies on that).
//!
//! Error messages never repeat a value, because the value may be a password.
//!
//! Phase 2 (connecting to the source).

use super::ConnInfoError;

/// One keyword and its value, in the order they appeared (a later duplicate wins).
pub(super) type Pairs = Vec<(String, String)>;

/// Parses either spelling; URIs are recognised by their `postgresql://` or `postgres://` prefix,
/// as libpq does.
pub(super) fn parse_pairs(s: &str) -> Result<Pairs, ConnInfoError> {
    for prefix in ["postgresql://", "postgres://"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            return parse_uri(rest);
        }
    }
    parse_key_values(s)
}

/// `key = value` pairs separated by whitespace. A value is either single-quoted (a backslash
/// escapes the next character, whitespace is kept) or runs to the next whitespace (a backslash
/// still escapes). Whitespace is allowed around `=`; after it, the value starts at the next
/// non-space character even when that is another keyword, exactly like libpq.
fn parse_key_values(s: &str) -> Result<Pairs, ConnInfoError> {
    let mut out = Pairs::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(ConnInfoError::new(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err(ConnInfoError::new(
                            "unterminated quoted string in connection info string".into(),
                        ))
                    }
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// The part of a URI after `postgresql://`:
/// `[user[:password]@][host[:port][,host[:port]…]][/dbname][?key=value[&key=value…]]`.
fn parse_uri(rest: &str) -> Result<Pairs, ConnInfoError> {
    let mut out = Pairs::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    // The user part ends at the last '@' so that an unencoded '@' in a password still works.
    let hostspec = match authority.rsplit_once('@') {
        Some((userspec, hosts)) => {
            let (user, password) = match userspec.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userspec, None),
            };
            if !user.is_empty() {
                out.push(("user".into(), percent_decode(user)?));
            }
            if let Some(p) = password {
                out.push(("password".into(), percent_decode(p)?));
            }
            hosts
        }
        None => authority,
    };
    parse_uri_hosts(hostspec, &mut out)?;
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        out.push(("dbname".into(), percent_decode(db)?));
    }
    if let Some(q) = query {
        parse_uri_query(q, &mut out)?;
    }
    Ok(out)
}

/// A comma-separated list of `host[:port]`, where a host may be `[ipv6]` and either part may
/// be empty (the default). Hosts are percent-decoded, so `%2Ftmp` names a socket directory.
fn parse_uri_hosts(spec: &str, out: &mut Pairs) -> Result<(), ConnInfoError> {
    if spec.is_empty() {
        return Ok(());
    }
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for item in spec.split(',') {
        let (host, port) = if let Some(inner) = item.strip_prefix('[') {
            let (h, after) = inner.split_once(']').ok_or_else(|| {
                ConnInfoError::new(format!(
                    "end of string reached when looking for matching \"]\" in IPv6 host address in URI: \"{item}\""
                ))
            })?;
            if h.is_empty() {
                return Err(ConnInfoError::new(
                    "IPv6 host address may not be empty in URI".into(),
                ));
            }
            let port = match after {
                "" => "",
                p => p.strip_prefix(':').ok_or_else(|| {
                    ConnInfoError::new(format!(
                        "unexpected character after IPv6 host address in URI: \"{item}\""
                    ))
                })?,
            };
            (h.to_string(), port)
        } else {
            match item.split_once(':') {
                Some((h, p)) => (percent_decode(h)?, p),
                None => (percent_decode(item)?, ""),
            }
        };
        hosts.push(host);
        ports.push(percent_decode(port)?);
    }
    out.push(("host".into(), hosts.join(",")));
    if ports.iter().any(|p| !p.is_empty()) {
        out.push(("port".into(), ports.join(",")));
    }
    Ok(())
}

/// `key=value&…`, both sides percent-decoded; `ssl=true` is libpq's alias for `sslmode=require`.
fn parse_uri_query(query: &str, out: &mut Pairs) -> Result<(), ConnInfoError> {
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = param.split_once('=').ok_or_else(|| {
            ConnInfoError::new(format!(
                "missing key/value separator \"=\" in URI query parameter: \"{}\"",
                param.split('=').next().unwrap_or_default()
            ))
        })?;
        if v.contains('=') {
            return Err(ConnInfoError::new(format!(
                "extra key/value separator \"=\" in URI query parameter: \"{k}\""
            )));
        }
        let (k, v) = (percent_decode(k)?, percent_decode(v)?);
        if k == "ssl" {
            if v != "true" {
                return Err(ConnInfoError::new(
                    "invalid URI query parameter: \"ssl\" (only ssl=true is accepted)".into(),
                ));
            }
            out.push(("sslmode".into(), "require".into()));
        } else {
            out.push((k, v));
        }
    }
    Ok(())
}

/// Decodes `%XX` escapes (no `+` → space, as in libpq). `%00` and malformed escapes are errors.
pub(super) fn percent_decode(s: &str) -> Result<String, ConnInfoError> {
    let bad = || ConnInfoError::new("invalid percent-encoded token in URI".into());
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hi = bytes
            .next()
            .and_then(|c| (c as char).to_digit(16))
            .ok_or_else(bad)?;
        let lo = bytes
            .next()
            .and_then(|c| (c as char).to_digit(16))
            .ok_or_else(bad)?;
        // Both digits are < 16, so the value fits a byte.
        let v = (hi * 16 + lo) as u8;
        if v == 0 {
            return Err(ConnInfoError::new(
                "forbidden value %00 in percent-encoded value".into(),
            ));
        }
        out.push(v);
    }
    String::from_utf8(out)
        .map_err(|_| ConnInfoError::new("percent-encoded value is not valid UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(&'static str, String)> {
        parse_pairs(s)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (&*k.leak(), v))
            .collect()
    }

    #[test]
    fn key_values() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("  host=a  port = 5 ", &[("host", "a"), ("port", "5")]),
            (r"password='a b\'c\\'", &[("password", r"a b'c\")]),
            (r"user=a\ b", &[("user", "a b")]),
            ("dbname=''", &[("dbname", "")]),
            ("host= port=5", &[("host", "port=5")]),
        ];
        for (input, want) in cases {
            let got = pairs(input);
            let want: Vec<_> = want.iter().map(|(k, v)| (*k, v.to_string())).collect();
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn key_value_errors_do_not_echo_values() {
        let e = parse_pairs("host").unwrap_err().to_string();
        assert!(e.contains("missing \"=\" after \"host\""), "{e}");
        assert!(parse_pairs("password='it''").is_err());
        let e = parse_pairs("password='secret").unwrap_err().to_string();
        assert!(e.contains("unterminated") && !e.contains("secret"), "{e}");
    }

    #[test]
    fn uris() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("postgresql://", &[]),
            ("postgres://h", &[("host", "h")]),
            (
                "postgresql://u%40x:p%3Aw@h1:5433,[::1]:5434,h3/db%20x?sslmode=require&application_name=a",
                &[
                    ("user", "u@x"),
                    ("password", "p:w"),
                    ("host", "h1,::1,h3"),
                    ("port", "5433,5434,"),
                    ("dbname", "db x"),
                    ("sslmode", "require"),
                    ("application_name", "a"),
                ],
            ),
            ("postgresql://%2Ftmp%2Fs:6000/", &[("host", "/tmp/s"), ("port", "6000")]),
            ("postgresql:///db?host=/var/run/pg", &[("dbname", "db"), ("host", "/var/run/pg")]),
            ("postgresql://h?ssl=true", &[("host", "h"), ("sslmode", "require")]),
            ("postgresql://a:b@c@h", &[("user", "a"), ("password", "b@c"), ("host", "h")]),
        ];
        for (input, want) in cases {
            let want: Vec<_> = want.iter().map(|(k, v)| (*k, v.to_string())).collect();
            assert_eq!(pairs(input), want, "{input}");
        }
        for bad in [
            "postgresql://h/%zz",
            "postgresql://h/%00",
            "postgresql://[::1",
            "postgresql://[]:5",
            "postgresql://[::1]x",
            "postgresql://h?a",
            "postgresql://h?a=b=c",
            "postgresql://h?ssl=false",
            "postgresql://h/%",
            "postgresql://h/%f",
        ] {
            assert!(parse_pairs(bad).is_err(), "{bad}");
        }
    }
}
