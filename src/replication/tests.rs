//! Unit tests of the message decoders on hand-made and truncated input (no server needed).

use super::stream::{parse_keepalive, parse_xlog_data};
use super::*;
use bytes::BufMut;

fn xlog_data(start: u64, payload: &[u8]) -> Bytes {
    let mut b = bytes::BytesMut::new();
    b.put_u8(b'w');
    b.put_u64(start);
    b.put_u64(start + payload.len() as u64);
    b.put_i64(0);
    b.put_slice(payload);
    b.freeze()
}

#[test]
fn xlog_data_and_keepalive() {
    let m = xlog_data(0x1_0000_0000, b"abc");
    let (start, data) = parse_xlog_data(&m).unwrap();
    assert_eq!((start, &data[..]), (Lsn(0x1_0000_0000), &b"abc"[..]));
    // Every truncation of the header is rejected, never a panic.
    for n in 0..25 {
        assert!(parse_xlog_data(&m.slice(..n)).is_none(), "{n}");
    }
    assert_eq!(parse_xlog_data(&m.slice(..25)).unwrap().1.len(), 0);
    let mut k = vec![b'k'];
    k.extend_from_slice(&[0; 16]);
    k.push(1);
    assert_eq!(parse_keepalive(&k), Some(true));
    for n in 0..18 {
        assert_eq!(parse_keepalive(&k[..n]), None);
    }
}

#[test]
fn error_response_formatting() {
    let mut body = Vec::new();
    for (t, v) in [
        (b'S', "FATAL"),
        (b'C', "28P01"),
        (b'M', "password authentication failed"),
        (b'H', "try again"),
    ] {
        body.push(t);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut frame = bytes::BytesMut::new();
    frame.put_u8(b'E');
    frame.put_u32(body.len() as u32 + 4);
    frame.put_slice(&body);
    let Ok(Some(Message::ErrorResponse(e))) = Message::parse(&mut frame) else {
        panic!("not parsed")
    };
    assert_eq!(
        server_error(e.fields()),
        "FATAL:  password authentication failed (SQLSTATE 28P01)\nHINT:  try again"
    );
}

#[test]
fn rows_give_text_bytes_and_nulls() {
    let row = Row {
        columns: Arc::from(vec!["a".to_string(), "b".to_string(), "c".to_string()]),
        values: vec![
            Some(Bytes::from_static(b"x")),
            None,
            Some(Bytes::from_static(&[0xff])),
        ],
    };
    assert_eq!(row.get(0), Some("x"));
    assert_eq!(row.get(1), None);
    assert_eq!(row.get(2), None);
    assert_eq!(row.get_bytes(2), Some(&[0xff][..]));
    assert_eq!(row.get(9), None);
    assert_eq!(row.columns().len(), 3);
}
