//! Property checks shared by the fuzz targets (`fuzz/fuzz_targets/*`) and the corpus regression
//! test (`tests/fuzz_corpus.rs`): each `check_*` takes raw fuzzer input, runs it through one
//! decoder, and panics when a property of the result does not hold. Returning normally means
//! the input was rejected cleanly or decoded consistently.
//!
//! Not part of the tool; public only so that the fuzz crate and the tests reach it. Input
//! formats (what the leading bytes mean) are documented per function and in `fuzz/README.md`.
//!
//! No phase: it checks the decoders of phases 1–5 on hostile input.

use crate::conninfo::{self, ConnInfo, Environment};
use crate::control::{CheckPoint, ControlError, ControlFile};
use crate::flavor::Flavor;
use crate::lsn::{Lsn, TimeLineId, XLogSegNo};
use crate::relpath::{self, ForkNumber, RelFile, RelFileLocator};
use crate::timeline::{self, TimeLineHistoryEntry};
use crate::xlog::{EndOfWal, Record, WalStreamReader, XLOG_BLCKSZ};
use bytes::Bytes;

/// The WAL segment size the WAL targets read with (the default, 16 MiB).
pub const FUZZ_SEG_SIZE: u32 = 16 << 20;

/// Where the CRC of pg_control lies in 14–17, in 18 and in openGauss.
const CONTROL_CRC_OFFSETS: [usize; 3] = [288, 292, 224];

fn le_u64(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = data.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

/// pg_control (PostgreSQL's and openGauss's): a file that decodes encodes back to bytes that
/// decode to the same value and encode to the same bytes; with a new state and minimum
/// recovery point (what a rebuild's finish writes) it still does, with those values; openGauss's
/// `pg_control.backup` image decodes to the same value. A file whose only fault is its CRC is
/// also tried with the CRC fixed, so that the fuzzer reaches the field decoding. Every 88-byte
/// prefix is also decoded as a `CheckPoint` of every flavor, which must round-trip.
pub fn check_control(data: &[u8]) {
    match ControlFile::decode(data) {
        Ok(cf) => control_round_trip(&cf),
        Err(ControlError::Crc { stored, computed }) => {
            for at in CONTROL_CRC_OFFSETS {
                if data.get(at..at + 4) == Some(&stored.to_le_bytes()[..]) {
                    let mut fixed = data.to_vec();
                    fixed[at..at + 4].copy_from_slice(&computed.to_le_bytes());
                    if let Ok(cf) = ControlFile::decode(&fixed) {
                        control_round_trip(&cf);
                    }
                }
            }
        }
        Err(_) => {}
    }
    for flavor in Flavor::ALL {
        if let Ok(cp) = CheckPoint::decode(data, flavor) {
            let enc = cp.encode(flavor);
            let again = CheckPoint::decode(&enc, flavor).expect("encoded checkpoint decodes");
            assert_eq!(again, cp, "CheckPoint round trip ({flavor})");
            assert_eq!(
                again.encode(flavor),
                enc,
                "CheckPoint re-encoding ({flavor})"
            );
        }
    }
}

fn control_round_trip(cf: &ControlFile) {
    let enc = cf.encode();
    let again = ControlFile::decode(&enc).expect("encoded pg_control decodes");
    assert_eq!(&again, cf, "pg_control decode(encode(cf)) == cf");
    assert_eq!(again.encode(), enc, "pg_control encode is stable");
    if let Some(image) = cf.backup_image() {
        let backup = ControlFile::decode(&image).expect("the backup image decodes");
        assert_eq!(&backup, cf, "pg_control.backup holds the same values");
    }
    let mut finished = cf.clone();
    finished.state = crate::control::DbState::InArchiveRecovery;
    finished.min_recovery_point = Lsn(cf.checkpoint.0.wrapping_add(0x1234_5678));
    let back = ControlFile::decode(&finished.encode()).expect("a finished pg_control decodes");
    assert_eq!(
        (back.state, back.min_recovery_point),
        (finished.state, finished.min_recovery_point)
    );
    assert_eq!(
        back.encode(),
        finished.encode(),
        "a finished pg_control re-encodes"
    );
}

/// What reading a WAL byte stream gave: the records, then how it ended (the end of WAL, or
/// the error's message).
#[derive(Debug, PartialEq)]
struct WalOutcome {
    records: Vec<Record>,
    end: Result<Option<EndOfWal>, String>,
}

/// Polls until the reader needs input or fails; `false` when it failed.
fn drain(r: &mut WalStreamReader, out: &mut WalOutcome) -> bool {
    loop {
        match r.poll() {
            Ok(Some(rec)) => out.records.push(rec),
            Ok(None) => return true,
            Err(e) => {
                out.end = Err(e.to_string());
                return false;
            }
        }
    }
}

/// Reads `wal` as the bytes from `start` on, in chunks of the sizes `chunks` yields.
fn read_wal(start: Lsn, wal: &[u8], mut chunks: impl FnMut() -> usize) -> WalOutcome {
    let mut r = WalStreamReader::new(start, FUZZ_SEG_SIZE, None);
    let mut out = WalOutcome {
        records: Vec::new(),
        end: Ok(None),
    };
    let mut rest = wal;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(chunks().clamp(1, rest.len()));
        rest = tail;
        r.feed(chunk);
        if !drain(&mut r, &mut out) {
            return out;
        }
    }
    r.finish();
    if drain(&mut r, &mut out) {
        out.end = Ok(r.end_of_wal().cloned());
    }
    out
}

/// The WAL stream reader: input is `start: u64 LE` (rounded down to a page), `split seed: u64
/// LE`, then WAL bytes. Fed whole and fed in chunks whose sizes come from the seed, the reader
/// must return the same records and end the same way; records come in increasing LSN order
/// from `start` on, and the end of WAL is not before the last record's end.
pub fn check_wal_stream(data: &[u8]) {
    let start = Lsn(le_u64(data, 0) & !u64::from(XLOG_BLCKSZ - 1));
    let mut state = le_u64(data, 8) | 1;
    let wal = data.get(16..).unwrap_or_default();
    let whole = read_wal(start, wal, || usize::MAX);
    let chunked = read_wal(start, wal, || {
        // xorshift64: split sizes from 1 byte to a few pages, biased to page-ish sizes.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (state >> 8) as usize;
        match state % 4 {
            0 => 1 + n % 16,
            1 => 1 + n % XLOG_BLCKSZ as usize,
            2 => XLOG_BLCKSZ as usize - n % 64,
            _ => 1 + n % (3 * XLOG_BLCKSZ as usize),
        }
    });
    let lsns = |o: &WalOutcome| o.records.iter().map(|r| r.lsn).collect::<Vec<_>>();
    assert_eq!(
        (&whole.end, lsns(&whole)),
        (&chunked.end, lsns(&chunked)),
        "whole and chunked feeding end differently"
    );
    assert_eq!(whole, chunked, "whole and chunked feeding disagree");
    let mut last: Option<&Record> = None;
    for rec in &whole.records {
        assert!(
            rec.lsn >= start && rec.end_lsn > rec.lsn,
            "record at {}",
            rec.lsn
        );
        assert!(
            last.is_none_or(|l| rec.lsn >= l.end_lsn),
            "overlap at {}",
            rec.lsn
        );
        last = Some(rec);
    }
    if let (Ok(Some(end)), Some(l)) = (&whole.end, last) {
        assert!(
            end.lsn >= l.end_lsn,
            "end of WAL {} before {}",
            end.lsn,
            l.end_lsn
        );
    }
}

/// One record, decoded as each flavor (PostgreSQL's majors and openGauss): no panic, and a
/// record that decodes is consistent with its bytes (lengths add up, block ids increase, flags
/// match the decoded parts; openGauss's references all carry its additions).
pub fn check_wal_record(data: &[u8]) {
    let lsn = Lsn(0x0100_0028);
    let end = Lsn(lsn.0 + data.len() as u64);
    for flavor in Flavor::ALL {
        let Ok(rec) = Record::decode(lsn, end, Bytes::copy_from_slice(data), flavor) else {
            continue;
        };
        let og = flavor.formats().record == crate::flavor::RecordFormat::OpenGauss;
        let fork_of = |n: u8| match og {
            true => ForkNumber::from_opengauss(n),
            false => ForkNumber::from_u8(n),
        };
        assert_eq!(rec.tot_len() as usize, data.len());
        assert!(rec.rec_len() <= rec.tot_len());
        assert_eq!(rec.rec_len() + rec.fpi_len(), rec.tot_len());
        assert_eq!(rec.header.term.is_some(), og, "{flavor}: term");
        let mut used = flavor.record_header_len() as usize + rec.main_data().len();
        for (i, b) in rec.blocks.iter().enumerate() {
            assert!(
                b.id <= 32 && (i == 0 || rec.blocks[i - 1].id < b.id),
                "block ids"
            );
            assert_eq!(b.og.is_some(), og, "{flavor}: openGauss block fields");
            assert_eq!(fork_of(b.fork_flags & 0x0F), Some(b.fork));
            assert_eq!(b.fork_flags & 0x10 != 0, b.image.is_some());
            assert_eq!(b.fork_flags & 0x20 != 0, b.has_data());
            assert_eq!(b.fork_flags & 0x40 != 0, b.will_init);
            if b.fork_flags & 0x80 != 0 {
                assert_eq!(Some(b.rel), i.checked_sub(1).map(|p| rec.blocks[p].rel));
            }
            let image = b.image.as_ref().map_or(0, |im| {
                assert_eq!(im.bytes.len(), usize::from(im.length));
                im.bytes.len()
            });
            used += b.data.len() + image;
        }
        assert!(used <= data.len(), "decoded parts exceed the record");
    }
}

/// A history file: input is `target tli: u32 LE`, then the text. A history that parses lists
/// contiguous ranges from `0/0` with increasing TLIs ending at the target, every position
/// belongs to some entry, and the entries rendered as PostgreSQL writes them parse the same.
pub fn check_history(data: &[u8]) {
    let Some((tli, text)) = data.split_first_chunk::<4>() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let target = TimeLineId(u32::from_le_bytes(*tli));
    let Ok(entries) = timeline::parse_history(text, target) else {
        return;
    };
    let (last, earlier) = entries.split_last().expect("at least the target's entry");
    assert_eq!((last.tli, last.end), (target, None));
    assert_eq!(entries[0].begin, Lsn::INVALID);
    for w in entries.windows(2) {
        assert!(w[0].tli < w[1].tli, "TLIs increase");
        assert!(w[0].begin <= w[1].begin, "begins do not go back");
        assert_eq!(w[0].end, Some(w[1].begin), "contiguous");
    }
    for e in &entries {
        if e.end.is_none_or(|end| e.begin < end) {
            assert_eq!(timeline::tli_at(&entries, e.begin), Some(e.tli));
        }
    }
    let rendered: String = earlier
        .iter()
        .map(|e: &TimeLineHistoryEntry| {
            let end = e.end.expect("only the last entry is open");
            format!("{}\t{end}\tno recovery target specified\n", e.tli)
        })
        .collect();
    assert_eq!(timeline::parse_history(&rendered, target), Ok(entries));
}

/// A connection string: parsing and resolving never panic; a resolved connection printed with
/// `to_conninfo_string` resolves to the same servers, user, database and TLS mode and prints
/// the same again; `redacted` does not depend on the password.
pub fn check_conninfo(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let env = Environment::empty();
    let _ = conninfo::parse(s);
    let Ok(info) = ConnInfo::resolve(s, &env) else {
        return;
    };
    let printed = info.to_conninfo_string();
    let again = ConnInfo::resolve(&printed, &env).expect("printed conninfo resolves");
    assert_eq!(again.targets, info.targets);
    assert_eq!((&again.user, &again.dbname), (&info.user, &info.dbname));
    assert_eq!(again.sslmode, info.sslmode);
    assert_eq!(again.to_conninfo_string(), printed, "printing is stable");
    let with = |pw: &str| {
        let info = ConnInfo::resolve(&format!("{printed} password={pw}"), &env)
            .expect("adding a password keeps it valid");
        let r = info.redacted();
        assert!(!r.contains(pw), "password in redacted(): {r}");
        r
    };
    let a = with("GsbuildFuzzSecretA");
    assert_eq!(
        a,
        with("GsbuildFuzzSecretB"),
        "redacted() depends on the password"
    );
    if info.has_password() {
        assert_eq!(info.redacted(), a);
    }
}

/// Relation paths, LSNs and segment file names: input is 24 bytes of numbers (for the
/// value → text → value direction), then text (for text → value → text).
pub fn check_paths(data: &[u8]) {
    let (n1, n2, n3) = (le_u64(data, 0), le_u64(data, 8), le_u64(data, 16));
    relfile_round_trip(n1, n2);
    let lsn = Lsn(n3);
    assert_eq!(lsn.to_string().parse::<Lsn>(), Ok(lsn));
    for seg_size in [1 << 20, 16 << 20, 1 << 30] {
        let per = 0x1_0000_0000 / u64::from(seg_size);
        let no = XLogSegNo(n3 % (per << 32));
        let tli = TimeLineId(n1 as u32);
        assert_eq!(
            XLogSegNo::parse_file_name(&no.file_name(tli, seg_size), seg_size),
            Some((tli, no))
        );
    }
    let Ok(text) = std::str::from_utf8(data.get(24..).unwrap_or_default()) else {
        return;
    };
    for flavor in [Flavor::Pg15, Flavor::OpenGauss] {
        if let Some(rf) = relpath::classify_in(text, flavor) {
            let version_dir = text.split('/').nth(2).unwrap_or("");
            assert_eq!(
                relpath::relation_path(rf.locator, rf.fork, rf.segment, version_dir),
                text,
                "{flavor}"
            );
        }
    }
    if let Ok(lsn) = text.parse::<Lsn>() {
        let printed = lsn.to_string();
        assert_eq!(printed.parse::<Lsn>(), Ok(lsn));
        let canon = |s: &str| s.trim_start_matches('0').to_ascii_uppercase();
        let (hi, lo) = text.split_once('/').expect("an LSN has a slash");
        let (phi, plo) = printed.split_once('/').expect("printed with a slash");
        assert_eq!((canon(hi), canon(lo)), (canon(phi), canon(plo)));
    }
    for seg_size in [1 << 20, 16 << 20, 1 << 30] {
        if let Some((tli, no)) = XLogSegNo::parse_file_name(text, seg_size) {
            assert!(no.file_name(tli, seg_size).eq_ignore_ascii_case(text));
        }
    }
}

/// A relation file built from two numbers prints as a path that classifies back to it.
fn relfile_round_trip(n1: u64, n2: u64) {
    let fork = ForkNumber::from_u8((n2 & 3) as u8).expect("0..=3 is a fork");
    let spc = match (n2 >> 2) & 3 {
        0 => relpath::GLOBAL_TABLESPACE_OID,
        1 => relpath::DEFAULT_TABLESPACE_OID,
        _ => ((n2 >> 32) as u32).max(1),
    };
    let db = if spc == relpath::GLOBAL_TABLESPACE_OID {
        0
    } else {
        (n1 as u32).max(1)
    };
    let rf = RelFile {
        locator: RelFileLocator {
            spc,
            db,
            rel: ((n1 >> 32) as u32).max(1),
        },
        fork,
        segment: ((n2 >> 4) as u32) & 0xFFFF,
    };
    let path = relpath::relation_path(rf.locator, rf.fork, rf.segment, "PG_15_202209061");
    assert_eq!(relpath::classify(&path), Some(rf), "{path}");
}

/// A source's file listing, as a broken or malicious server could send it. Input: lines of
/// `<kind><path>[\t<link target>]`, kind `d` (directory), `l` (symbolic link) or anything else
/// (a file of the line's length); a line `--` switches from the source's listing to the
/// target's. Properties: the path checks never panic and never accept a path that leaves the
/// data directory; `join` agrees with `check_relative`; an accepted listing has tablespace
/// links with absolute locations and nothing below any other link; and every path of a plan
/// built from the listings is inside the data directory and below no symbolic link but a
/// tablespace's, and the only links a plan creates are tablespaces.
pub fn check_listing(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (source, target) = parse_listings(text);
    check_accepted_listing(&source);
    check_listing_plan(source, target);
}

type FuzzListing = Vec<(String, crate::datadir::FileKind)>;

/// Both listings of [`check_listing`]'s input, checking every path on the way.
fn parse_listings(text: &str) -> (FuzzListing, FuzzListing) {
    use crate::datadir::FileKind;
    let mut source = Vec::new();
    let mut target = Vec::new();
    let mut side = &mut source;
    for line in text.split('\n') {
        if line == "--" {
            side = &mut target;
            continue;
        }
        let mut chars = line.chars();
        let kind_char = chars.next();
        let rest = chars.as_str();
        let (path, kind) = match (kind_char, rest.split_once('\t')) {
            (Some('l'), Some((p, t))) => (p, FileKind::Symlink { target: t.into() }),
            (Some('l'), None) => (
                rest,
                FileKind::Symlink {
                    target: "/ts".into(),
                },
            ),
            (Some('d'), _) => (rest, FileKind::Dir),
            _ => (
                rest,
                FileKind::File {
                    size: line.len() as u64,
                },
            ),
        };
        check_path(path);
        side.push((path.to_string(), kind));
    }
    (source, target)
}

/// The path checks never accept a path that leaves the data directory, and agree.
fn check_path(path: &str) {
    use crate::datadir;
    use std::path::{Component, Path};
    let root = Path::new("/fuzz/root");
    let relative = datadir::check_relative(path);
    if relative.is_ok() {
        assert!(
            Path::new(path)
                .components()
                .all(|c| matches!(c, Component::Normal(_))),
            "accepted a path that is not plain relative: {path:?}"
        );
        assert!(
            path.split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."),
            "accepted {path:?}"
        );
    }
    match datadir::join(root, path) {
        Ok(full) => {
            assert!(
                relative.is_ok(),
                "join accepted what check_relative refused: {path:?}"
            );
            assert!(
                full.starts_with(root) && full != root,
                "{path:?} → {full:?}"
            );
        }
        Err(_) => assert!(relative.is_err(), "join refused {path:?}"),
    }
}

/// An accepted source listing has tablespace links with absolute locations and nothing below
/// any other link.
fn check_accepted_listing(source: &FuzzListing) {
    use crate::datadir::{self, FileKind};
    if datadir::check_source_listing(source).is_err() {
        return;
    }
    for (path, kind) in source {
        if let FileKind::Symlink { target } = kind {
            if datadir::is_tablespace_link(path) {
                assert!(
                    std::path::Path::new(target).is_absolute(),
                    "accepted {path:?} → {target:?}"
                );
            } else {
                let prefix = format!("{path}/");
                assert!(
                    !source.iter().any(|(p, _)| p.starts_with(&prefix)),
                    "accepted entries below the link {path:?}"
                );
            }
        }
    }
}

/// Every path of a plan built from the listings is inside the data directory and below no
/// symbolic link but a tablespace's, and the only links a plan creates are tablespaces.
fn check_listing_plan(source: FuzzListing, mut target: FuzzListing) {
    use crate::datadir::{self, FileKind};
    use crate::filemap::{Policy, WalWindow};
    use crate::plan::{build_files, FileMapInput};
    let changed = std::collections::HashMap::new();
    let is_rel = |p: &str| relpath::is_main_fork_data_file(p);
    let wal = WalWindow {
        first_segment: XLogSegNo(2),
        stream_from: XLogSegNo(3),
        required: ["000000010000000000000003".to_string()].into(),
        source_history: crate::timeline::parse_history("", crate::lsn::TimeLineId(1))
            .unwrap_or_default(),
        wal_dir: "pg_wal".into(),
        seg_size: FUZZ_SEG_SIZE,
    };
    // Target paths come from a walk of the target itself; only the source is untrusted.
    target.retain(|(p, _)| datadir::check_relative(p).is_ok());
    let Ok((files, _)) = build_files(FileMapInput {
        source,
        target,
        changed_blocks: &changed,
        is_rel_main: &is_rel,
        policy: &Policy::new(crate::flavor::Flavor::Pg15),
        wal: &wal,
    }) else {
        return;
    };
    let links: Vec<&str> = files
        .iter()
        .filter(|f| matches!(f.source, Some(FileKind::Symlink { .. })))
        .map(|f| f.path.as_str())
        .collect();
    for f in &files {
        if f.action == crate::filemap::Action::Create {
            if let Some(FileKind::Symlink { .. }) = f.source {
                assert!(
                    datadir::is_tablespace_link(&f.path),
                    "creates link {:?}",
                    f.path
                );
            }
        }
        assert!(
            datadir::check_relative(&f.path).is_ok(),
            "planned {:?}",
            f.path
        );
        for r in f.ranges() {
            assert_eq!(r.path, f.path);
        }
        for link in &links {
            let below = f.path.len() > link.len()
                && f.path.starts_with(link)
                && f.path.as_bytes().get(link.len()) == Some(&b'/');
            assert!(
                !below || datadir::is_tablespace_link(link),
                "{:?} planned below the link {link:?}",
                f.path
            );
        }
    }
}
