//! openGauss's password exchanges, as its server asks for them: md5 (code 5, PostgreSQL's),
//! sha256 (code 10: PBKDF2-HMAC-SHA1 keys, then an HMAC-SHA256 proof over the server's token)
//! and md5_sha256 (code 11: a sha256-stored password under an `md5` hba line, answered with
//! the md5 of the stored verifier). Trust needs none; cleartext (3) is answered as asked.
//!
//! The computations are pure functions (tested against logins a real server accepted); the
//! exchange reads the requests until AuthenticationOk.

use super::message::{self, hex, unhex};
use crate::conninfo::Password;
use crate::replication::transport::Conn;
use crate::Result;
use hmac::{KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// `AUTH_REQ_OK`.
pub const AUTH_OK: i32 = 0;
/// `AUTH_REQ_PASSWORD`: cleartext.
pub const AUTH_CLEARTEXT: i32 = 3;
/// `AUTH_REQ_MD5`.
pub const AUTH_MD5: i32 = 5;
/// `AUTH_REQ_SHA256`.
pub const AUTH_SHA256: i32 = 10;
/// `AUTH_REQ_MD5_SHA256`.
pub const AUTH_MD5_SHA256: i32 = 11;
/// The stored-method word of a sha256 request for a sha256-stored password.
const SHA256_PASSWORD: i32 = 2;
/// The iteration count a md5_sha256 request implies (the server's default
/// `auth_iteration_count`; the request does not carry it).
pub const DEFAULT_ITERATIONS: u32 = 10_000;

fn md5_hex(data: &[u8]) -> String {
    hex(&Md5::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data);
    m.finalize().into_bytes().into()
}

/// md5 (code 5): `"md5" + md5hex(md5hex(password + user) + salt)`.
pub fn md5_response(password: &str, user: &str, salt: &[u8]) -> String {
    let inner = md5_hex(format!("{password}{user}").as_bytes());
    let mut outer = inner.into_bytes();
    outer.extend_from_slice(salt);
    format!("md5{}", md5_hex(&outer))
}

/// The keys a sha256 verifier holds: (ServerKey, ClientKey, StoredKey), from
/// `K = PBKDF2-HMAC-SHA1(password, salt, iterations, 32)`.
pub fn sha256_keys(password: &str, salt: &[u8], iterations: u32) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let mut k = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password.as_bytes(), salt, iterations, &mut k);
    // "Sever Key" (sic) is what openGauss computes.
    let server_key = hmac_sha256(&k, b"Sever Key");
    let client_key = hmac_sha256(&k, b"Client Key");
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    (server_key, client_key, stored_key)
}

/// sha256 (code 10): `hex(HMAC-SHA256(StoredKey, token) XOR ClientKey)`, lower case.
pub fn sha256_response(password: &str, salt: &[u8], token: &[u8], iterations: u32) -> String {
    let (_, client_key, stored_key) = sha256_keys(password, salt, iterations);
    let h = hmac_sha256(&stored_key, token);
    let proof: Vec<u8> = h.iter().zip(client_key).map(|(a, b)| a ^ b).collect();
    hex(&proof)
}

/// How openGauss writes an iteration count at the end of a stored verifier: 11 characters,
/// digit `i` (least significant first) added to `"ecdfdcefade"[i]`.
pub fn encode_iteration(mut n: u32) -> String {
    b"ecdfdcefade"
        .iter()
        .map(|&base| {
            let c = (base + (n % 10) as u8) as char;
            n /= 10;
            c
        })
        .collect()
}

/// md5_sha256 (code 11): `"md5" + md5hex(salt_hex + hex(ServerKey) + hex(StoredKey) +
/// encode_iteration(iterations) + md5salt)`, the md5 of the stored verifier (less its
/// `sha256` prefix) salted.
pub fn md5_sha256_response(
    password: &str,
    salt_hex: &str,
    md5_salt: &[u8],
    iterations: u32,
) -> Option<String> {
    let salt = unhex(salt_hex.as_bytes())?;
    let (server_key, _, stored_key) = sha256_keys(password, &salt, iterations);
    let mut s = format!(
        "{salt_hex}{}{}{}",
        hex(&server_key),
        hex(&stored_key),
        encode_iteration(iterations)
    )
    .into_bytes();
    s.extend_from_slice(md5_salt);
    Some(format!("md5{}", md5_hex(&s)))
}

/// The answer to one authentication request, or why there is none.
pub fn answer(
    code: i32,
    rest: &[u8],
    user: &str,
    password: Option<&str>,
) -> std::result::Result<String, String> {
    let need = || {
        password.ok_or_else(|| {
            format!(
                "the server asks for a password (authentication method {}), and none was given",
                method_name(code)
            )
        })
    };
    let malformed = || format!("malformed {} authentication request", method_name(code));
    match code {
        AUTH_CLEARTEXT => Ok(need()?.to_string()),
        AUTH_MD5 => {
            let salt = rest.get(..4).ok_or_else(malformed)?;
            Ok(md5_response(need()?, user, salt))
        }
        AUTH_SHA256 => {
            let stored = rest.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            if stored != Some(SHA256_PASSWORD) {
                return Err(format!(
                    "the server asks for sha256 authentication of a password stored as method {} (only sha256-stored passwords are supported; reset the password with password_encryption_type=2)",
                    stored.map_or_else(|| "?".into(), |s| s.to_string())
                ));
            }
            let salt = rest.get(4..68).and_then(unhex).ok_or_else(malformed)?;
            let token = rest.get(68..76).and_then(unhex).ok_or_else(malformed)?;
            let iterations = rest
                .get(76..80)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .filter(|i| *i > 0)
                .ok_or_else(malformed)?;
            Ok(sha256_response(need()?, &salt, &token, iterations as u32))
        }
        AUTH_MD5_SHA256 => {
            let salt_hex = rest.get(..64).and_then(|s| std::str::from_utf8(s).ok()).ok_or_else(malformed)?;
            let md5_salt = rest.get(64..68).ok_or_else(malformed)?;
            md5_sha256_response(need()?, salt_hex, md5_salt, DEFAULT_ITERATIONS).ok_or_else(malformed)
        }
        other => Err(format!(
            "authentication method {} requested by the server is not supported (gsbuild supports trust, md5, sha256 and md5_sha256)",
            method_name(other)
        )),
    }
}

/// A request code as people know it.
pub fn method_name(code: i32) -> String {
    match code {
        AUTH_CLEARTEXT => "password (3)".into(),
        AUTH_MD5 => "md5 (5)".into(),
        7 | 8 => format!("gss ({code})"),
        9 => "sspi (9)".into(),
        AUTH_SHA256 => "sha256 (10)".into(),
        AUTH_MD5_SHA256 => "md5_sha256 (11)".into(),
        12 => "sha256 rfc (12)".into(),
        13 => "sm3 (13)".into(),
        c => format!("{c}"),
    }
}

/// Answers authentication requests until AuthenticationOk; the server's refusal (an
/// ErrorResponse) is the error, with its FATAL text.
pub(super) async fn authenticate(
    conn: &mut Conn,
    user: &str,
    password: Option<&Password>,
) -> Result<()> {
    loop {
        let frame = conn.recv().await?;
        match frame.tag {
            b'R' => {
                let (code, rest) =
                    message::auth_request(&frame.body).map_err(|e| conn.error(e.0))?;
                if code == AUTH_OK {
                    return Ok(());
                }
                let text = answer(code, rest, user, password.map(Password::expose))
                    .map_err(|m| conn.error(m))?;
                message::password(&mut conn.wbuf, &text);
                conn.flush().await?;
            }
            b'E' => return Err(conn.error(message::server_message(&frame.body).to_string())),
            b'N' => tracing::info!("server notice: {}", message::server_message(&frame.body)),
            // PostgreSQL answers openGauss's protocol 3.51 with the newest minor it speaks.
            b'v' => {
                return Err(conn.error(
                    "the server does not speak openGauss's protocol 3.51 (it answered with NegotiateProtocolVersion, as PostgreSQL does): it is not an openGauss server",
                ))
            }
            t => {
                return Err(conn.error(format!(
                    "unexpected message type '{}' during authentication",
                    t as char
                )))
            }
        }
    }
}
