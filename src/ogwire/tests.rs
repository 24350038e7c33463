//! Unit tests of the openGauss codecs and password computations (no server needed). The
//! password answers are ones a real openGauss 7.0 server accepted, for the salts and tokens it
//! sent.

use super::auth::*;
use super::message::*;
use super::replication::Consistence;
use super::stream::*;
use super::{startup_params, Kind};
use crate::lsn::Lsn;
use bytes::{BufMut, Bytes, BytesMut};

#[test]
fn startup_packets_are_the_tools_ones() {
    let mut b = BytesMut::new();
    startup(&mut b, &startup_params(Kind::Replication, "omm"));
    let mut want = vec![0, 0, 0, 0x73, 0, 3, 0, 0x33];
    want.extend_from_slice(
        b"user\0omm\0database\0replication\0replication\0true\0options\0-c remotetype=application \0application_name\0gs_ctl\0\0",
    );
    assert_eq!(&b[..], &want[..]);
    assert_eq!(b.len(), 115);
    let mut b = BytesMut::new();
    startup(&mut b, &startup_params(Kind::Sql, "omm"));
    assert_eq!(&b[..8], &[0, 0, 0, 0x3f, 0, 3, 0, 0x33]);
    assert_eq!(
        &b[8..],
        b"user\0omm\0database\0postgres\0application_name\0gs_rewind\0\0"
    );
}

#[test]
fn md5_answer() {
    let salt = unhex(b"89b967a9").unwrap();
    assert_eq!(
        md5_response("Test_md5#1", "u_md5", &salt),
        "md5e3c429feae86d914a480efc54a963e7a"
    );
}

#[test]
fn sha256_answer() {
    let salt = "0c86329c9967b5e578abb821ca7f47f9e5c25a5836813b64503da708c7cc1246";
    let token = "92ef17b2";
    assert_eq!(
        sha256_response(
            "Test_sha256#1",
            &unhex(salt.as_bytes()).unwrap(),
            &unhex(token.as_bytes()).unwrap(),
            10_000
        ),
        "acb461e59f0d568905125557538afceea33c9c372a1e6725c15bff1af6adad2e"
    );
    // The same through the request as the server sends it.
    let mut req = 2i32.to_be_bytes().to_vec();
    req.extend_from_slice(salt.as_bytes());
    req.extend_from_slice(token.as_bytes());
    req.extend_from_slice(&10_000i32.to_be_bytes());
    assert_eq!(
        answer(AUTH_SHA256, &req, "u_sha", Some("Test_sha256#1")).unwrap(),
        "acb461e59f0d568905125557538afceea33c9c372a1e6725c15bff1af6adad2e"
    );
    // Every truncation is an error, never a panic.
    for n in 0..req.len() {
        assert!(
            answer(AUTH_SHA256, &req[..n], "u", Some("p")).is_err(),
            "{n}"
        );
    }
    let e = answer(AUTH_SHA256, &req, "u_sha", None).unwrap_err();
    assert!(e.contains("none was given"), "{e}");
    let mut md5_stored = req.clone();
    md5_stored[3] = 1;
    assert!(answer(AUTH_SHA256, &md5_stored, "u", Some("p")).is_err());
}

#[test]
fn md5_sha256_answer() {
    assert_eq!(encode_iteration(10_000), "ecdfecefade");
    let salt = "1aa279ccaa53ee6d3551347bf99df7174f085d6b3df0c7f56f5e9d00d468d8c9";
    let md5_salt = unhex(b"b447540c").unwrap();
    assert_eq!(
        md5_sha256_response("Test_sha2md5#1", salt, &md5_salt, 10_000).unwrap(),
        "md5409c50a3963dc06b8fe8ad8e6ea09ad3"
    );
    let mut req = salt.as_bytes().to_vec();
    req.extend_from_slice(&md5_salt);
    assert_eq!(
        answer(AUTH_MD5_SHA256, &req, "u_sha2md5", Some("Test_sha2md5#1")).unwrap(),
        "md5409c50a3963dc06b8fe8ad8e6ea09ad3"
    );
    assert!(answer(AUTH_MD5_SHA256, &req[..67], "u", Some("p")).is_err());
}

#[test]
fn unsupported_methods_are_named() {
    for (code, name) in [
        (7, "gss"),
        (9, "sspi"),
        (12, "sha256 rfc"),
        (13, "sm3"),
        (42, "42"),
    ] {
        let e = answer(code, &[], "u", Some("p")).unwrap_err();
        assert!(e.contains(name) && e.contains("not supported"), "{e}");
    }
    assert_eq!(answer(AUTH_CLEARTEXT, &[], "u", Some("pw")).unwrap(), "pw");
}

#[test]
fn error_fields() {
    let body = b"SFATAL\0C28000\0MNormal user is not allowed to use HA channel!\0dBACKEND\0\0";
    let m = server_message(body);
    assert_eq!(
        m.to_string(),
        "FATAL:  Normal user is not allowed to use HA channel! (SQLSTATE 28000)"
    );
    // Truncated anywhere: whatever decoded, no panic.
    for n in 0..body.len() {
        let _ = server_message(&body[..n]);
    }
}

#[test]
fn rows_and_descriptions() {
    let mut t = BytesMut::new();
    t.put_u16(2);
    for (name, oid) in [("path", 25u32), ("chunk", 17)] {
        t.put_slice(name.as_bytes());
        t.put_u8(0);
        t.put_u32(0);
        t.put_i16(0);
        t.put_u32(oid);
        t.put_i16(-1);
        t.put_i32(0);
        t.put_i16(1);
    }
    let cols = row_description(&t).unwrap();
    assert_eq!(cols[1].name, "chunk");
    assert_eq!((cols[1].type_oid, cols[1].format), (17, 1));
    for n in 0..t.len() {
        assert!(row_description(&t[..n]).is_err(), "{n}");
    }
    let mut d = BytesMut::new();
    d.put_u16(3);
    d.put_i32(3);
    d.put_slice(b"abc");
    d.put_i32(-1);
    d.put_i32(0);
    let d = d.freeze();
    let row = data_row(&d).unwrap();
    assert_eq!(
        row,
        vec![Some(Bytes::from_static(b"abc")), None, Some(Bytes::new())]
    );
    for n in 0..d.len() {
        assert!(data_row(&d.slice(..n)).is_err(), "{n}");
    }
    let mut huge = BytesMut::new();
    huge.put_u16(1);
    huge.put_i32(i32::MAX);
    assert!(data_row(&huge.freeze()).is_err());
}

#[test]
fn extended_query_layout() {
    let mut b = BytesMut::new();
    extended_query(&mut b, "SELECT $1", &[Some(b"x"), None]);
    let tags: Vec<u8> = {
        let mut at = 0;
        let mut tags = Vec::new();
        while at < b.len() {
            tags.push(b[at]);
            let len = u32::from_be_bytes(b[at + 1..at + 5].try_into().unwrap()) as usize;
            at += 1 + len;
        }
        tags
    };
    assert_eq!(tags, b"PBDES");
    // Bind: portal "", statement "", 0 parameter formats, 2 parameters, 1 result format: 1.
    let bind_at = 1 + 4 + (1 + 10 + 2);
    assert_eq!(b[bind_at], b'B');
    assert_eq!(
        &b[bind_at + 5..],
        &[
            0, 0, 0, 0, 0, 2, 0, 0, 0, 1, b'x', 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 1, b'D', 0, 0, 0,
            6, b'P', 0, b'E', 0, 0, 0, 9, 0, 0, 0, 0, 0, b'S', 0, 0, 0, 4
        ][..]
    );
}

/// The first `k` and the first `w` a real server sent (the `w` cut after its header).
#[test]
fn copyboth_messages() {
    let k: Vec<u8> = [
        &b"k"[..],
        &[0, 0, 0, 4, 0, 0, 0, 0],
        &[2, 0, 0, 0],
        &[1, 0, 0, 0],
        &[0x09, 0x69, 0xef, 0x0e, 0x8e, 0x04, 0x03, 0x00],
        &[0x00, 0x01, 0xfd, 0x00],
        &[0xff; 4],
    ]
    .concat();
    assert_eq!(k.len(), 1 + KEEPALIVE_LEN);
    let ka = parse_keepalive(&k).unwrap();
    assert_eq!(ka.wal_end, Lsn(0x400_0000));
    assert_eq!((ka.peer_role, ka.peer_state), (2, 1));
    assert!(!ka.reply_requested && ka.catchup);
    for n in 0..27 {
        assert!(parse_keepalive(&k[..n]).is_none(), "{n}");
    }
    let mut w = vec![b'w'];
    w.extend_from_slice(&0x4000000u64.to_le_bytes());
    w.extend_from_slice(&0x5195378u64.to_le_bytes());
    w.extend_from_slice(&0x3048e0eef8baau64.to_le_bytes());
    w.extend_from_slice(&0x4800000u64.to_le_bytes());
    for _ in 0..3 {
        w.extend_from_slice(&0x5195378u64.to_le_bytes());
    }
    w.extend_from_slice(&[1, 0xfc, 0, 0, 0, 0, 0, 0]);
    w.extend_from_slice(&[0x74, 0xd0, 0x06, 0x00]);
    let w = Bytes::from(w);
    let (h, data) = parse_wal_data(&w).unwrap();
    assert_eq!(h.data_start, Lsn(0x4000000));
    assert_eq!(h.sender_sent, Lsn(0x4800000));
    assert_eq!(h.sender_flush, Lsn(0x5195378));
    assert!(h.catchup);
    assert_eq!(&data[..], &[0x74, 0xd0, 0x06, 0x00]);
    for n in 0..65 {
        assert!(parse_wal_data(&w.slice(..n)).is_none(), "{n}");
    }
    let r = standby_reply(0x0102);
    assert_eq!(r.len(), 65);
    assert_eq!(r[0], b'r');
    assert!(r[1..41].iter().all(|b| *b == 0));
    assert_eq!(&r[41..49], &[3, 0, 0, 0, 7, 0, 0, 0]);
    assert_eq!(&r[49..51], &[2, 1]);
    assert!(r[57..].iter().all(|b| *b == 0));
}

#[test]
fn consistence_answers() {
    assert_eq!(
        Consistence::parse("897A96C4"),
        Some(Consistence::Crc(0x897A96C4))
    );
    assert_eq!(Consistence::parse("A96C4"), Some(Consistence::Crc(0xA96C4)));
    assert_eq!(Consistence::parse("0"), Some(Consistence::NoRecord));
    assert_eq!(Consistence::parse("1"), Some(Consistence::CannotSay));
    assert_eq!(Consistence::parse(""), None);
    assert_eq!(Consistence::parse("123456789"), None);
    assert_eq!(Consistence::parse("xyz"), None);
}

#[test]
fn hex_round_trip() {
    assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    assert_eq!(unhex(b"00AB10"), Some(vec![0, 0xab, 0x10]));
    assert_eq!(unhex(b"0"), None);
    assert_eq!(unhex(b"zz"), None);
}

/// A scripted server on loopback: the client's side of a whole session (startup, sha256, a WAL
/// stream with a keepalive that asks for a reply, the end without CopyDone).
mod scripted {
    use super::super::{Endpoint, Kind, Login, OgConn};
    use crate::conninfo::{Host, Password, SslMode, Target};
    use crate::lsn::Lsn;
    use crate::replication::ClientOptions;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn endpoint(port: u16) -> Endpoint {
        Endpoint {
            target: Target {
                host: Host::Tcp("127.0.0.1".into()),
                hostaddr: None,
                port,
            },
            bind: Some("127.0.0.1".parse().unwrap()),
        }
    }

    /// Timeouts no scripted server comes near, even on a loaded machine (the sha256 login
    /// hashes 10,000 rounds, slow in a debug build).
    fn options() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(20),
            status_interval: Duration::from_secs(10),
        }
    }

    async fn message(s: &mut TcpStream) -> (u8, Vec<u8>) {
        let tag = s.read_u8().await.unwrap();
        let len = s.read_u32().await.unwrap() as usize;
        let mut body = vec![0; len - 4];
        s.read_exact(&mut body).await.unwrap();
        (tag, body)
    }

    async fn send(s: &mut TcpStream, tag: u8, body: &[u8]) {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        s.write_all(&m).await.unwrap();
    }

    async fn server(listener: TcpListener) -> Vec<u8> {
        let (mut s, _) = listener.accept().await.unwrap();
        let len = s.read_u32().await.unwrap() as usize;
        let mut startup = vec![0; len - 4];
        s.read_exact(&mut startup).await.unwrap();
        assert_eq!(&startup[..4], &[0, 3, 0, 0x33]);
        assert!(startup.windows(7).any(|w| w == b"gs_ctl\0"));
        let mut r = 10i32.to_be_bytes().to_vec();
        r.extend_from_slice(&2i32.to_be_bytes());
        r.extend_from_slice(
            b"0c86329c9967b5e578abb821ca7f47f9e5c25a5836813b64503da708c7cc124692ef17b2",
        );
        r.extend_from_slice(&10_000i32.to_be_bytes());
        send(&mut s, b'R', &r).await;
        let (tag, body) = message(&mut s).await;
        assert_eq!(tag, b'p');
        assert_eq!(
            &body[..],
            b"acb461e59f0d568905125557538afceea33c9c372a1e6725c15bff1af6adad2e\0"
        );
        send(&mut s, b'R', &0i32.to_be_bytes()).await;
        send(&mut s, b'S', b"server_version\09.2.4\0").await;
        send(&mut s, b'Z', b"I").await;
        let (tag, body) = message(&mut s).await;
        assert_eq!(
            (tag, &body[..]),
            (b'Q', &b"START_REPLICATION 0/4000000\0"[..])
        );
        send(&mut s, b'W', &[0, 0, 0]).await;
        let mut k = vec![b'k'];
        k.extend_from_slice(&0x4000100u64.to_le_bytes());
        k.extend_from_slice(&[
            2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        ]);
        send(&mut s, b'd', &k).await;
        let (tag, reply) = message(&mut s).await;
        assert_eq!(tag, b'd');
        assert_eq!(reply.len(), 65);
        assert_eq!(&reply[41..49], &[3, 0, 0, 0, 7, 0, 0, 0]);
        for (start, n) in [(0x4000000u64, 100usize), (0x4000064, 156)] {
            let mut w = vec![b'w'];
            w.extend_from_slice(&start.to_le_bytes());
            w.extend_from_slice(&[0; 56]);
            w.extend(std::iter::repeat_n(0xab, n));
            send(&mut s, b'd', &w).await;
        }
        // The client ends the session: Terminate, never CopyDone.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        rest
    }

    #[tokio::test]
    async fn a_whole_stream() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(server(listener));
        let login = Login {
            user: "u_sha".into(),
            password: Some(Password::new("Test_sha256#1".into())),
            sslmode: SslMode::Prefer,
            sslrootcert: None,
        };
        let c = OgConn::connect(&endpoint(port), &login, Kind::Replication, options())
            .await
            .unwrap();
        assert_eq!(c.parameters["server_version"], "9.2.4");
        assert_eq!(c.backend_key, None);
        let mut stream = c.start_replication(Lsn(0x4000000)).await.unwrap();
        let mut got = 0;
        while stream.received() < Lsn(0x4000100) {
            let chunk = stream.next().await.unwrap().unwrap();
            assert_eq!(chunk.start.0, 0x4000000 + got);
            got += chunk.data.len() as u64;
        }
        assert_eq!(got, 256);
        stream.finish().await;
        let rest = server.await.unwrap();
        assert_eq!(rest, [b'X', 0, 0, 0, 4]);
    }

    #[tokio::test]
    async fn a_silent_server_and_an_unknown_method() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            // First client: accepted, never answered.
            let (silent, _) = listener.accept().await.unwrap();
            // Second client: asked for gss.
            let (mut s, _) = listener.accept().await.unwrap();
            let mut b = [0u8; 256];
            let _ = s.read(&mut b).await;
            send(&mut s, b'R', &7i32.to_be_bytes()).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(silent);
        });
        let login = Login {
            user: "omm".into(),
            password: None,
            sslmode: SslMode::Disable,
            sslrootcert: None,
        };
        let t0 = std::time::Instant::now();
        // connect_timeout bounds the whole handshake, whatever read_timeout says.
        let patient = ClientOptions {
            connect_timeout: Duration::from_millis(500),
            read_timeout: Duration::from_secs(30),
            ..options()
        };
        let e = OgConn::connect(&endpoint(port), &login, Kind::Sql, patient)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout expired"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(15));
        let e = OgConn::connect(&endpoint(port), &login, Kind::Sql, options())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("gss (7)") && e.contains("not supported"), "{e}");
        held.abort();
    }
}
