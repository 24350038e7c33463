//! `pg_waldump` and `pg_controldata` as oracles for `gsbuild inspect wal` and
//! `gsbuild inspect control`, on WAL written by real servers of every supported major (see
//! `support::workload`), on both timelines of a promotion; plus corrupted WAL, and the
//! timeline history file the promotion wrote.
//!
//! Checks that need only PostgreSQL's tools run first and panic at once (a broken workload makes
//! every later comparison meaningless); checks of gsbuild's output are collected and reported
//! together at the end, each with at most a screenful of differences.

mod support;

use gsbuild::lsn::{Lsn, TimeLineId, XLogSegNo};
use gsbuild::timeline::{read_history_file, tli_at};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use support::workload::{self, Workload, WAL_SEGSIZE_MB};
use support::{debian_install, gsbuild_bin, install, parse_controldata, Cluster, PgInstall};

const SEG_SIZE: u32 = WAL_SEGSIZE_MB << 20;
/// Most differences shown per failed comparison.
const MAX_DIFF: usize = 20;

#[test]
fn wal_oracle_pg14() {
    if let Some(pg) = install(14) {
        oracle(&pg);
    }
}

#[test]
fn wal_oracle_pg15() {
    if let Some(pg) = install(15) {
        oracle(&pg);
    }
}

#[test]
fn wal_oracle_pg16() {
    if let Some(pg) = install(16) {
        oracle(&pg);
    }
}

#[test]
fn wal_oracle_pg17() {
    if let Some(pg) = install(17) {
        oracle(&pg);
    }
}

#[test]
fn wal_oracle_pg18() {
    if let Some(pg) = install(18) {
        oracle(&pg);
    }
}

#[test]
fn wal_oracle_debian_pg15() {
    if let Some(pg) = debian_install() {
        oracle(&pg);
    }
}

/// The record line of a dump: everything pg_waldump prints before `desc:`, plus the desc.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    lsn: Lsn,
    rmgr: String,
    rec_len: u32,
    tot_len: u32,
    xid: u32,
    prev: Lsn,
    desc: String,
}

impl Rec {
    /// The fields both tools must agree on (gsbuild prints `info: 0xNN` instead of a desc).
    fn key(&self) -> (Lsn, &str, u32, u32, u32, Lsn) {
        let r = self;
        (r.lsn, r.rmgr.as_str(), r.rec_len, r.tot_len, r.xid, r.prev)
    }
}

/// A block reference: (record LSN, block id, spc, db, rel, fork, blk).
type BlockKey = (Lsn, u8, u32, u32, u32, String, u32);

/// A parsed dump: records in order, block references, and the text after each block reference's
/// `blk N` (pg_waldump puts image details there).
#[derive(Default)]
struct Dump {
    records: Vec<Rec>,
    blocks: BTreeSet<BlockKey>,
    block_details: Vec<String>,
}

/// The text after `key` up to the next comma (or the end), trimmed.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = &line[line.find(key)? + key.len()..];
    Some(rest.split(',').next().unwrap_or(rest).trim())
}

fn parse_record_line(line: &str) -> Option<Rec> {
    let rmgr = line.strip_prefix("rmgr:")?.split_whitespace().next()?;
    let (rec_len, tot_len) = field(line, "len (rec/tot):")?.split_once('/')?;
    let desc = line.find("desc:").map_or("", |i| line[i + 5..].trim());
    Some(Rec {
        lsn: field(line, " lsn:")?.parse().ok()?,
        rmgr: rmgr.to_string(),
        rec_len: rec_len.trim().parse().ok()?,
        tot_len: tot_len.trim().parse().ok()?,
        xid: field(line, " tx:")?.parse().ok()?,
        prev: field(line, " prev ")?.parse().ok()?,
        desc: desc.to_string(),
    })
}

/// `\tblkref #ID: rel SPC/DB/REL fork FORK blk N[ details]` → key and details.
fn parse_block_line(line: &str, rec: Lsn) -> Option<(BlockKey, String)> {
    let rest = line.strip_prefix("\tblkref #")?;
    let (id, rest) = rest.split_once(':')?;
    let mut words = rest.split_whitespace();
    let (Some("rel"), Some(rel), Some("fork"), Some(fork), Some("blk"), Some(blk)) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return None;
    };
    let mut rel = rel.split('/').map(|n| n.parse::<u32>().ok());
    let (Some(Some(spc)), Some(Some(db)), Some(Some(rel))) = (rel.next(), rel.next(), rel.next())
    else {
        return None;
    };
    let blk = blk.trim_end_matches([';', ',']).parse().ok()?;
    let details = words.collect::<Vec<_>>().join(" ");
    let key = (rec, id.parse().ok()?, spc, db, rel, fork.to_string(), blk);
    Some((key, details))
}

/// Parses pg_waldump `--bkp-details` output or `gsbuild inspect wal --blocks` output. Lines of
/// neither kind are errors, so that a format drift cannot hide records.
fn parse_dump(text: &str, who: &str) -> Dump {
    let mut dump = Dump::default();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("rmgr:") {
            let rec = parse_record_line(line)
                .unwrap_or_else(|| panic!("{who}: bad record line {}: {line}", n + 1));
            dump.records.push(rec);
        } else if line.starts_with("\tblkref #") {
            let rec = dump.records.last().map(|r| r.lsn);
            let rec = rec.unwrap_or_else(|| panic!("{who}: block line before any record"));
            let (key, details) = parse_block_line(line, rec)
                .unwrap_or_else(|| panic!("{who}: bad block line {}: {line}", n + 1));
            dump.blocks.insert(key);
            dump.block_details.push(details);
        } else if !line.trim().is_empty() {
            panic!("{who}: unexpected line {}: {line}", n + 1);
        }
    }
    dump
}

/// The WAL of one timeline of one stopped cluster, copied into a directory of its own so that
/// both tools see exactly the same segments and no other timeline.
struct Span {
    label: String,
    dir: PathBuf,
    first_segment: String,
    /// End of the shutdown checkpoint record: the end of valid WAL (exclusive).
    end: Lsn,
}

fn wal_span(c: &Cluster, tli: u32, label: &str) -> Span {
    let dir = c.dir.path.join(format!("wal-tli{tli}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(c.wal_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if XLogSegNo::parse_file_name(&name, SEG_SIZE).is_some_and(|(t, _)| t.0 == tli) {
            std::fs::copy(c.wal_dir().join(&name), dir.join(&name)).unwrap();
            names.push(name);
        }
    }
    names.sort();
    let first_segment = names.first().expect("no WAL segment").clone();
    let checkpoint: Lsn = c.controldata()["Latest checkpoint location"]
        .parse()
        .unwrap();
    let text = pg_waldump(
        &c.install,
        &dir,
        &[
            "-t",
            &tli.to_string(),
            "-s",
            &checkpoint.to_string(),
            "-n",
            "1",
        ],
    );
    let last = parse_dump(&text, "pg_waldump -n 1").records;
    let end = Lsn(checkpoint.0 + u64::from(last[0].tot_len));
    Span {
        label: format!("{} {label}", c.install.label),
        dir,
        first_segment,
        end,
    }
}

fn pg_waldump(pg: &PgInstall, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(pg.tool("pg_waldump"))
        .arg("--bkp-details")
        .arg("-p")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_waldump {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn dump_span(pg: &PgInstall, span: &Span) -> Dump {
    let end = span.end.to_string();
    let tli = XLogSegNo::parse_file_name(&span.first_segment, SEG_SIZE)
        .unwrap()
        .0;
    let last = Lsn(span.end.0 - 1)
        .segment(SEG_SIZE)
        .file_name(tli, SEG_SIZE);
    let text = pg_waldump(pg, &span.dir, &["-e", &end, &span.first_segment, &last]);
    parse_dump(&text, &format!("pg_waldump ({})", span.label))
}

/// Counts of the record kinds the workload must have produced.
#[derive(Debug, Default)]
struct Coverage {
    records: usize,
    blocks: usize,
    fpi_uncompressed: usize,
    fpi_by_method: std::collections::BTreeMap<String, usize>,
    segment_crossing: usize,
    switches: usize,
    dbase: Vec<String>,
    rmgrs: BTreeSet<String>,
    end_of_recovery: Vec<Rec>,
}

fn coverage(dump: &Dump) -> Coverage {
    let mut c = Coverage {
        records: dump.records.len(),
        blocks: dump.blocks.len(),
        ..Coverage::default()
    };
    for d in &dump.block_details {
        if !d.contains("FPW") {
            continue;
        }
        let method = match field(d, "method:") {
            Some(m) => Some(m.to_string()),
            // 14 prints "compression saved" only for compressed images, which are pglz.
            None if d.contains("compression saved") => Some("pglz (14)".into()),
            None => None,
        };
        match method {
            Some(m) if m != "none" => *c.fpi_by_method.entry(m).or_default() += 1,
            _ => c.fpi_uncompressed += 1,
        }
    }
    for r in &dump.records {
        c.rmgrs.insert(r.rmgr.clone());
        let end = Lsn(r.lsn.0 + u64::from(r.tot_len) - 1);
        if r.lsn.segment(SEG_SIZE) != end.segment(SEG_SIZE) {
            c.segment_crossing += 1;
        }
        let kind = r.desc.split_whitespace().next().unwrap_or("");
        match (r.rmgr.as_str(), kind) {
            ("XLOG", "SWITCH") => c.switches += 1,
            ("XLOG", "END_OF_RECOVERY") => c.end_of_recovery.push(r.clone()),
            ("Database", k) => c.dbase.push(k.to_string()),
            _ => {}
        }
    }
    c
}

/// Fails unless the primary's WAL holds every record kind the workload is meant to produce.
fn assert_primary_coverage(pg: &PgInstall, w: &Workload, c: &Coverage) {
    for m in &w.compression_methods {
        let m = if m == "on" { "pglz (14)" } else { m.as_str() };
        assert!(
            c.fpi_by_method.get(m).copied().unwrap_or(0) > 0,
            "no {m} FPI: {c:?}"
        );
    }
    assert!(c.fpi_uncompressed > 0, "no uncompressed FPI: {c:?}");
    assert!(c.segment_crossing > 0, "no segment-crossing record: {c:?}");
    assert!(c.switches > 0, "no XLOG_SWITCH: {c:?}");
    let creates: &[&str] = if pg.major >= 15 {
        &["CREATE_FILE_COPY", "CREATE_WAL_LOG"]
    } else {
        &["CREATE"]
    };
    for kind in creates.iter().chain(&["DROP"]) {
        assert!(c.dbase.iter().any(|k| k == kind), "no DBASE {kind}: {c:?}");
    }
    let rmgrs = [
        "XLOG",
        "Heap",
        "Heap2",
        "Btree",
        "Hash",
        "Gin",
        "Gist",
        "BRIN",
        "Sequence",
        "Storage",
        "Transaction",
        "LogicalMessage",
    ];
    for rmgr in rmgrs {
        assert!(c.rmgrs.contains(rmgr), "no {rmgr} record: {c:?}");
    }
}

/// Runs gsbuild with `args`; returns (success, stdout, stderr).
fn gsbuild(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(gsbuild_bin())
        .args(args)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

/// Up to [`MAX_DIFF`] lines around the first record where the two lists differ.
fn compare_records(ours: &[Rec], theirs: &[Rec]) -> Result<(), String> {
    let first = ours
        .iter()
        .zip(theirs)
        .position(|(a, b)| a.key() != b.key());
    let Some(i) = first.or((ours.len() != theirs.len()).then(|| ours.len().min(theirs.len())))
    else {
        return Ok(());
    };
    let mut msg = format!(
        "records differ at #{i} (gsbuild {} records, pg_waldump {}):\n",
        ours.len(),
        theirs.len()
    );
    for j in i.saturating_sub(2)..(i + MAX_DIFF / 2 - 2) {
        for (who, list) in [("gsbuild   ", ours), ("pg_waldump", theirs)] {
            if let Some(r) = list.get(j) {
                msg += &format!("  #{j} {who} {:?} {}\n", r.key(), r.desc);
            }
        }
    }
    Err(msg)
}

/// The first [`MAX_DIFF`] block references found by one tool only.
fn compare_blocks(ours: &BTreeSet<BlockKey>, theirs: &BTreeSet<BlockKey>) -> Result<(), String> {
    let only_ours: Vec<_> = ours.difference(theirs).take(MAX_DIFF / 2).collect();
    let only_theirs: Vec<_> = theirs.difference(ours).take(MAX_DIFF / 2).collect();
    if only_ours.is_empty() && only_theirs.is_empty() {
        return Ok(());
    }
    Err(format!(
        "block references differ ({} from gsbuild, {} from pg_waldump)\n  only gsbuild: {only_ours:?}\n  only pg_waldump: {only_theirs:?}",
        ours.len(),
        theirs.len()
    ))
}

fn compare_wal(span: &Span, oracle: &Dump) -> Result<(), String> {
    let end = span.end.to_string();
    let (ok, out, err) = gsbuild(&[
        "inspect".as_ref(),
        "wal".as_ref(),
        "--blocks".as_ref(),
        "--end".as_ref(),
        end.as_ref(),
        span.dir.as_os_str(),
    ]);
    if !ok {
        return Err(format!("gsbuild inspect wal failed: {}", err.trim()));
    }
    let ours = parse_dump(&out, "gsbuild inspect wal");
    compare_records(&ours.records, &oracle.records)?;
    compare_blocks(&ours.blocks, &oracle.blocks)
}

/// Every field gsbuild prints must equal pg_controldata's field of the same name.
fn compare_control(c: &Cluster) -> Result<(), String> {
    let datadir = c.datadir();
    let (ok, out, err) = gsbuild(&["inspect".as_ref(), "control".as_ref(), datadir.as_ref()]);
    if !ok {
        return Err(format!("gsbuild inspect control failed: {}", err.trim()));
    }
    let ours = parse_controldata(&out);
    let theirs = c.controldata();
    if ours.len() < 10 {
        return Err(format!(
            "gsbuild inspect control printed too little: {ours:?}"
        ));
    }
    let diffs: Vec<String> = ours
        .iter()
        .filter(|(k, v)| theirs.get(*k) != Some(v))
        .take(MAX_DIFF)
        .map(|(k, v)| format!("  {k}: gsbuild {v:?}, pg_controldata {:?}", theirs.get(k)))
        .collect();
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("control fields differ:\n{}", diffs.join("\n")))
    }
}

/// Flips one byte of a copy of a segment; both pg_waldump and gsbuild must reject it, gsbuild
/// with a message naming an LSN and without panicking.
fn corrupt_and_check(
    pg: &PgInstall,
    span: &Span,
    name: &str,
    offset: u64,
    what: &str,
) -> Result<(), String> {
    let dir = span.dir.with_file_name(format!("corrupt-{what}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let mut bytes = std::fs::read(span.dir.join(name)).unwrap();
    bytes[offset as usize] ^= 0x5A;
    std::fs::write(&path, bytes).unwrap();
    let theirs = Command::new(pg.tool("pg_waldump"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        !theirs.status.success(),
        "pg_waldump accepted a {what} with a flipped byte"
    );
    let (ok, _, err) = gsbuild(&["inspect".as_ref(), "wal".as_ref(), path.as_ref()]);
    let names_lsn = err
        .split(|c: char| c.is_whitespace() || c == ',' || c == ':' || c == '"')
        .any(|w| w.contains('/') && w.parse::<Lsn>().is_ok());
    if ok || !names_lsn || err.contains("panicked at") {
        return Err(format!(
            "gsbuild inspect wal on a {what} with a flipped byte: success={ok}, stderr: {}",
            err.trim()
        ));
    }
    Ok(())
}

/// Corrupts a segment that is neither the first nor the last, in a record that starts after its
/// fourth page and fits in one page (so the page header flipped at page 3 is surely read first).
fn check_corruption(pg: &PgInstall, span: &Span, oracle: &Dump) -> Vec<String> {
    let page = 8192u64;
    let first = oracle.records[0].lsn.segment(SEG_SIZE);
    let last = span.end.segment(SEG_SIZE);
    let rec = oracle
        .records
        .iter()
        .find(|r| {
            let (seg, off) = (r.lsn.segment(SEG_SIZE), r.lsn.segment_offset(SEG_SIZE));
            seg > first && seg < last && off > 4 * page && off % page + u64::from(r.tot_len) < page
        })
        .expect("a record inside one page of a middle segment");
    let tli = XLogSegNo::parse_file_name(&span.first_segment, SEG_SIZE)
        .unwrap()
        .0;
    let name = rec.lsn.segment(SEG_SIZE).file_name(tli, SEG_SIZE);
    let rec_off = rec.lsn.segment_offset(SEG_SIZE) + u64::from(rec.tot_len) - 1;
    [
        corrupt_and_check(pg, span, &name, rec_off, "record"),
        corrupt_and_check(pg, span, &name, 3 * page, "page header"),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect()
}

/// The history file of timeline 2 and what pg_waldump and pg_controldata say about the switch.
fn check_history(w: &Workload, primary: &Dump, standby: &Coverage) {
    let path = w.standby.wal_dir().join("00000002.history");
    let history = read_history_file(&path, TimeLineId(2)).unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(
        (history[0].tli, history[1].tli),
        (TimeLineId(1), TimeLineId(2))
    );
    let switch = history[0].end.expect("switchpoint");
    assert_eq!(history[1].begin, switch);
    assert_eq!(tli_at(&history, switch), Some(TimeLineId(2)));
    assert_eq!(tli_at(&history, Lsn(switch.0 - 1)), Some(TimeLineId(1)));
    // The first record of timeline 2 is the promotion's END_OF_RECOVERY at the switchpoint (after
    // a page header if the switchpoint is on a page boundary); the old primary kept writing
    // from the same position on timeline 1.
    let near = |lsn: Lsn| lsn >= switch && lsn.0 - switch.0 <= 40;
    let eor = standby
        .end_of_recovery
        .first()
        .expect("END_OF_RECOVERY on TLI 2");
    assert!(
        near(eor.lsn),
        "END_OF_RECOVERY at {} vs switchpoint {switch}",
        eor.lsn
    );
    assert!(eor.desc.contains("tli 2; prev tli 1"), "{}", eor.desc);
    assert!(
        primary.records.iter().any(|r| near(r.lsn)),
        "no TLI 1 record at {switch}"
    );
    let cd = w.standby.controldata();
    assert_eq!(cd["Latest checkpoint's TimeLineID"], "2");
}

/// Real relation files of a stopped cluster classify, and their paths round-trip.
fn check_relpaths(c: &Cluster) {
    let data = c.datadir();
    let mut seen = 0;
    for dir in ["global", "base"] {
        for entry in walkdir_files(&data.join(dir)) {
            let rel = entry
                .strip_prefix(&data)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let name = entry.file_name().unwrap().to_string_lossy().into_owned();
            let looks_rel = name.starts_with(|ch: char| ch.is_ascii_digit());
            match gsbuild::relpath::classify(&rel) {
                Some(f) => {
                    seen += 1;
                    let back = gsbuild::relpath::relation_path(f.locator, f.fork, f.segment, "");
                    assert_eq!(back, rel);
                }
                None => assert!(!looks_rel, "{rel} not classified"),
            }
        }
    }
    assert!(seen > 100, "only {seen} relation files");
}

fn walkdir_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn oracle(pg: &PgInstall) {
    let started = Instant::now();
    let w = workload::run(pg);
    let workload_time = started.elapsed();
    let spans = [
        wal_span(&w.primary, 1, "primary TLI 1"),
        wal_span(&w.standby, 2, "promoted standby TLI 2"),
    ];
    let dumps: Vec<Dump> = spans.iter().map(|s| dump_span(pg, s)).collect();
    let covs: Vec<Coverage> = dumps.iter().map(coverage).collect();
    eprintln!("{}: workload {workload_time:?}", pg.label);
    for (span, c) in spans.iter().zip(&covs) {
        eprintln!(
            "{}: {} records, {} block refs, FPIs uncompressed {} compressed {:?}, segment-crossing {}, switches {}, dbase {:?}",
            span.label, c.records, c.blocks, c.fpi_uncompressed, c.fpi_by_method,
            c.segment_crossing, c.switches, c.dbase
        );
    }
    assert_primary_coverage(pg, &w, &covs[0]);
    assert!(covs[1].fpi_uncompressed > 0, "no FPI on TLI 2");
    check_history(&w, &dumps[0], &covs[1]);
    check_relpaths(&w.primary);

    let mut failures = Vec::new();
    for (span, dump) in spans.iter().zip(&dumps) {
        if let Err(e) = compare_wal(span, dump) {
            failures.push(format!("{}: {e}", span.label));
        }
    }
    for c in [&w.primary, &w.standby] {
        if let Err(e) = compare_control(c) {
            failures.push(format!(
                "{} {}: {e}",
                c.install.label,
                c.datadir().display()
            ));
        }
    }
    failures.extend(check_corruption(pg, &spans[0], &dumps[0]));
    eprintln!("{}: total {:?}", pg.label, started.elapsed());
    assert!(
        failures.is_empty(),
        "{}:\n{}",
        pg.label,
        failures.join("\n\n")
    );
}
