//! The messages of openGauss's protocol 3.51 that gsbuild sends and reads, as pure functions
//! over bytes: frontend messages are appended to a buffer, backend message bodies are decoded
//! with every length checked (a malformed message is an error, never a panic).
//!
//! The framing (type byte, length) is the transport's ([`crate::replication::transport`]); this
//! module sees the body after the length word.

use bytes::{BufMut, Bytes, BytesMut};

/// Protocol 3.51, what openGauss's own clients send (`PG_PROTOCOL(3, 51)`).
pub const PROTOCOL_3_51: u32 = (3 << 16) | 51;

/// A message body that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(what: &str) -> Malformed {
    Malformed(format!("malformed {what} message"))
}

/// Appends a message with type byte `tag` and body `body`.
fn put_message(buf: &mut BytesMut, tag: u8, body: &[u8]) {
    buf.put_u8(tag);
    buf.put_u32(body.len() as u32 + 4);
    buf.put_slice(body);
}

/// The startup packet: protocol 3.51, then `name\0value\0` pairs and a final `\0`.
pub fn startup(buf: &mut BytesMut, params: &[(&str, &str)]) {
    let mut body = BytesMut::new();
    body.put_u32(PROTOCOL_3_51);
    for (k, v) in params {
        body.put_slice(k.as_bytes());
        body.put_u8(0);
        body.put_slice(v.as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    buf.put_u32(body.len() as u32 + 4);
    buf.put_slice(&body);
}

/// `PasswordMessage` (`p`) with a NUL-terminated text.
pub fn password(buf: &mut BytesMut, text: &str) {
    let mut body = text.as_bytes().to_vec();
    body.push(0);
    put_message(buf, b'p', &body);
}

/// Simple `Query` (`Q`).
pub fn query(buf: &mut BytesMut, sql: &str) {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    put_message(buf, b'Q', &body);
}

/// Parse, Bind (text parameters, every result column binary), Describe portal, Execute all
/// rows, Sync: one extended-protocol query with the unnamed statement and portal. A `None`
/// parameter is NULL.
pub fn extended_query(buf: &mut BytesMut, sql: &str, params: &[Option<&[u8]>]) {
    let mut parse = BytesMut::new();
    parse.put_u8(0);
    parse.put_slice(sql.as_bytes());
    parse.put_u8(0);
    parse.put_u16(0);
    put_message(buf, b'P', &parse);
    let mut bind = BytesMut::new();
    bind.put_u8(0);
    bind.put_u8(0);
    bind.put_u16(0);
    bind.put_u16(params.len() as u16);
    for p in params {
        match p {
            Some(v) => {
                bind.put_i32(v.len() as i32);
                bind.put_slice(v);
            }
            None => bind.put_i32(-1),
        }
    }
    bind.put_u16(1);
    bind.put_u16(1);
    put_message(buf, b'B', &bind);
    put_message(buf, b'D', b"P\0");
    put_message(buf, b'E', &[0, 0, 0, 0, 0]);
    put_message(buf, b'S', &[]);
}

/// `CopyData` (`d`).
pub fn copy_data(buf: &mut BytesMut, data: &[u8]) {
    put_message(buf, b'd', data);
}

/// `CopyDone` (`c`).
pub fn copy_done(buf: &mut BytesMut) {
    put_message(buf, b'c', &[]);
}

/// `Terminate` (`X`).
pub fn terminate(buf: &mut BytesMut) {
    put_message(buf, b'X', &[]);
}

/// A bounds-checked reader over a message body.
struct Body<'a> {
    b: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Body<'a> {
    fn new(b: &'a [u8], what: &'static str) -> Self {
        Body { b, at: 0, what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.at.checked_add(n).ok_or_else(|| bad(self.what))?;
        let s = self.b.get(self.at..end).ok_or_else(|| bad(self.what))?;
        self.at = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn i32(&mut self) -> Result<i32, Malformed> {
        let s = self.take(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn cstr(&mut self) -> Result<&'a [u8], Malformed> {
        let rest = self.b.get(self.at..).ok_or_else(|| bad(self.what))?;
        let n = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| bad(self.what))?;
        self.at += n + 1;
        Ok(&rest[..n])
    }
    fn rest(&self) -> &'a [u8] {
        self.b.get(self.at..).unwrap_or(&[])
    }
}

/// An authentication request (`R`): its code and the bytes after it.
pub fn auth_request(body: &[u8]) -> Result<(i32, &[u8]), Malformed> {
    let mut b = Body::new(body, "authentication");
    let code = b.i32()?;
    Ok((code, b.rest()))
}

/// The fields of an ErrorResponse or NoticeResponse, by field type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerMessage {
    /// `S`: ERROR, FATAL, PANIC, NOTICE, …
    pub severity: String,
    /// `C`: the SQLSTATE.
    pub code: String,
    /// `M`: the primary message.
    pub message: String,
    /// `D`: detail, when given.
    pub detail: Option<String>,
    /// `H`: hint, when given.
    pub hint: Option<String>,
}

impl std::fmt::Display for ServerMessage {
    /// As libpq prints it: `FATAL:  message (SQLSTATE 28000)`, then detail and hint lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:  {} (SQLSTATE {})",
            self.severity, self.message, self.code
        )?;
        if let Some(d) = &self.detail {
            write!(f, "\nDETAIL:  {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\nHINT:  {h}")?;
        }
        Ok(())
    }
}

/// Decodes an ErrorResponse or NoticeResponse body (a field list ending with a `\0`; a missing
/// final terminator is tolerated).
pub fn server_message(body: &[u8]) -> ServerMessage {
    let mut m = ServerMessage::default();
    let mut b = Body::new(body, "error");
    while let Some(&t) = b.rest().first() {
        if t == 0 {
            break;
        }
        b.at += 1;
        let Ok(v) = b.cstr() else { break };
        let v = String::from_utf8_lossy(v).into_owned();
        match t {
            b'S' => m.severity = v,
            b'C' => m.code = v,
            b'M' => m.message = v,
            b'D' => m.detail = Some(v),
            b'H' => m.hint = Some(v),
            _ => {}
        }
    }
    m
}

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// The type's OID.
    pub type_oid: u32,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// Decodes a RowDescription (`T`).
pub fn row_description(body: &[u8]) -> Result<Vec<Column>, Malformed> {
    let mut b = Body::new(body, "row description");
    let n = b.u16()?;
    let mut out = Vec::with_capacity(usize::from(n).min(1024));
    for _ in 0..n {
        let name = String::from_utf8_lossy(b.cstr()?).into_owned();
        let fixed = b.take(18)?;
        let type_oid = u32::from_be_bytes([fixed[6], fixed[7], fixed[8], fixed[9]]);
        let format = i16::from_be_bytes([fixed[16], fixed[17]]);
        out.push(Column {
            name,
            type_oid,
            format,
        });
    }
    Ok(out)
}

/// Decodes a DataRow (`D`) into its values (`None` for NULL), sharing `body`'s buffer.
pub fn data_row(body: &Bytes) -> Result<Vec<Option<Bytes>>, Malformed> {
    let mut b = Body::new(body, "data row");
    let n = b.u16()?;
    let mut out = Vec::with_capacity(usize::from(n).min(1024));
    for _ in 0..n {
        let len = b.i32()?;
        if len < 0 {
            out.push(None);
            continue;
        }
        let start = b.at;
        b.take(len as usize)?;
        out.push(Some(body.slice(start..b.at)));
    }
    Ok(out)
}

/// Decodes a ParameterStatus (`S`): name and value.
pub fn parameter_status(body: &[u8]) -> Result<(String, String), Malformed> {
    let mut b = Body::new(body, "parameter status");
    let k = String::from_utf8_lossy(b.cstr()?).into_owned();
    let v = String::from_utf8_lossy(b.cstr()?).into_owned();
    Ok((k, v))
}

/// Decodes a BackendKeyData (`K`): process id and cancel key.
pub fn backend_key(body: &[u8]) -> Result<(i32, i32), Malformed> {
    let mut b = Body::new(body, "backend key");
    Ok((b.i32()?, b.i32()?))
}

/// Decodes a CommandComplete (`C`) tag.
pub fn command_tag(body: &[u8]) -> Result<String, Malformed> {
    let mut b = Body::new(body, "command complete");
    Ok(String::from_utf8_lossy(b.cstr()?).into_owned())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes `text` spells in hex (either case); `None` for odd lengths or other characters.
pub fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}
