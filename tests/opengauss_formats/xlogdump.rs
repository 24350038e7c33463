//! Parsing `pg_xlogdump -b` output and `gsbuild inspect wal --blocks` output on openGauss WAL
//! into the same records, for comparing them.

/// One block reference: everything `pg_xlogdump` says about it but its compression options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpBlock {
    pub id: u32,
    /// `spc/db/rel/bucket/opt`.
    pub rel: String,
    pub forknum: u32,
    /// `HEAP DISK` or `SEGMENT PAGE`.
    pub storage: String,
    pub blk: u32,
    /// `(extent size, block)` of a segment-page block.
    pub phy: Option<(u32, u32)>,
    pub last_lsn: String,
    /// `(hole offset, hole length)` of a full-page image.
    pub fpw: Option<(u32, u32)>,
}

/// One record: the text before `; desc: ` (start, end, prev, xid, term, len, total, crc), the
/// resource manager, the block references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpRecord {
    pub head: String,
    pub rmgr: String,
    pub blocks: Vec<DumpBlock>,
}

/// Records of a dump; lines that do not start a record continue the one before (multi-line
/// descriptions). Panics on a record it cannot parse, so that a format drift cannot hide one.
pub fn parse(text: &str, who: &str) -> Vec<DumpRecord> {
    let mut joined: Vec<String> = Vec::new();
    for line in text.lines() {
        match joined.last_mut() {
            Some(last) if !line.starts_with("REDO @ ") => {
                last.push(' ');
                last.push_str(line);
            }
            _ if line.starts_with("REDO @ ") => joined.push(line.to_string()),
            _ if line.trim().is_empty() => {}
            _ => panic!("{who}: unexpected line before any record: {line}"),
        }
    }
    joined
        .iter()
        .map(|r| parse_record(r).unwrap_or_else(|| panic!("{who}: cannot parse {r}")))
        .collect()
}

fn parse_record(r: &str) -> Option<DumpRecord> {
    let (head, desc) = r.split_once("; desc: ")?;
    let rmgr = desc.split(" - ").next()?.to_string();
    let mut blocks = Vec::new();
    for part in desc.split("blkref #").skip(1) {
        blocks.push(parse_block(part)?);
    }
    Some(DumpRecord {
        head: head.to_string(),
        rmgr,
        blocks,
    })
}

/// `N: rel a/b/c/d/e, forknum:F[, compressed ….] storage KIND[ fork F] blk B[ (phy loc E/B)]
/// lastlsn L[ (FPW); hole: offset: O, length: H| FPW]`.
fn parse_block(part: &str) -> Option<DumpBlock> {
    let (id, rest) = part.split_once(": rel ")?;
    let (rel, rest) = rest.split_once(", forknum:")?;
    let forknum: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let rest = &rest[rest.find(" storage ")? + " storage ".len()..];
    let (storage, rest) = if let Some(r) = rest.strip_prefix("HEAP DISK") {
        ("HEAP DISK", r)
    } else {
        ("SEGMENT PAGE", rest.strip_prefix("SEGMENT PAGE")?)
    };
    let rest = &rest[rest.find(" blk ")? + " blk ".len()..];
    let (blk, rest) = rest.split_once(' ')?;
    let (phy, rest) = match rest.strip_prefix("(phy loc ") {
        Some(r) => {
            let (loc, r) = r.split_once(") ")?;
            let (e, b) = loc.split_once('/')?;
            (Some((e.parse().ok()?, b.parse().ok()?)), r)
        }
        None => (None, rest),
    };
    let rest = rest.strip_prefix("lastlsn ")?;
    let last_lsn: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',')
        .collect();
    let rest = &rest[last_lsn.len()..];
    let fpw = if let Some(r) = rest.strip_prefix(" (FPW); hole: offset: ") {
        let (o, r) = r.split_once(", length: ")?;
        let h: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
        Some((o.parse().ok()?, h.parse().ok()?))
    } else if rest.starts_with(" FPW") {
        Some((u32::MAX, u32::MAX))
    } else {
        None
    };
    Some(DumpBlock {
        id: id.trim().parse().ok()?,
        rel: rel.to_string(),
        forknum: forknum.parse().ok()?,
        storage: storage.to_string(),
        blk: blk.parse().ok()?,
        phy,
        last_lsn,
        fpw,
    })
}
