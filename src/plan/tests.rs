//! Unit tests of plan building: order, blocks, totals, and the sort-merge against a map.
use super::*;
use crate::lsn::XLogSegNo;

fn f(size: u64) -> FileKind {
    FileKind::File { size }
}

#[test]
fn builds_sorted_plan_with_blocks() {
    let b = u64::from(BLCKSZ);
    let source = vec![
        ("base".into(), FileKind::Dir),
        ("base/5".into(), FileKind::Dir),
        ("base/5/100".into(), f(4 * b)),
        ("base/5/200".into(), f(2 * b)),
        ("base/5/300".into(), f(8 * b)),
        ("base/5/400".into(), f(b)),
        ("base/6".into(), FileKind::Dir),
        ("pg_wal".into(), FileKind::Dir),
        ("pg_wal/000000010000000000000002".into(), f(16 << 20)),
    ];
    let target = vec![
        ("base".into(), FileKind::Dir),
        ("base/5".into(), FileKind::Dir),
        ("base/5/100".into(), f(4 * b)),
        ("base/5/200".into(), f(4 * b)),
        ("base/5/300".into(), f(2 * b)),
        ("base/7".into(), FileKind::Dir),
        ("base/7/1".into(), f(b)),
        ("pg_wal".into(), FileKind::Dir),
        ("pg_wal/000000010000000000000001".into(), f(16 << 20)),
        ("pg_wal/000000010000000000000002".into(), f(16 << 20)),
        ("pg_wal/000000010000000000000003".into(), f(16 << 20)),
    ];
    let mut changed = HashMap::new();
    changed.insert("base/5/100".to_string(), BTreeSet::from([0, 1, 3, 9]));
    changed.insert("base/5/200".to_string(), BTreeSet::from([1, 3]));
    changed.insert("base/5/300".to_string(), BTreeSet::from([1, 5]));
    let wal = WalWindow {
        first_segment: XLogSegNo(2),
        stream_from: XLogSegNo(2),
        required: Default::default(),
        source_history: crate::timeline::parse_history("", TimeLineId(1)).unwrap(),
        wal_dir: "pg_wal".into(),
        seg_size: 16 << 20,
    };
    let is_rel = |p: &str| p.starts_with("base/5/");
    let input = FileMapInput {
        source,
        target,
        changed_blocks: &changed,
        is_rel_main: &is_rel,
        policy: &Policy::new(crate::flavor::Flavor::Pg15),
        wal: &wal,
    };
    let (files, totals) = build_files(input).unwrap();
    let got: Vec<_> = files
        .iter()
        .map(|f| (action_name(f.action), f.path.as_str(), f.blocks.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("create", "base/6", vec![]),
            ("copy", "base/5/400", vec![]),
            ("copy_tail", "base/5/300", vec![1]),
            ("none", "base/5/100", vec![0, 1, 3]),
            ("truncate", "base/5/200", vec![1]),
            ("remove", "pg_wal/000000010000000000000003", vec![]),
            ("remove", "pg_wal/000000010000000000000002", vec![]),
            // Only the target has it, and recovery does not read it.
            ("remove", "pg_wal/000000010000000000000001", vec![]),
            ("remove", "base/7/1", vec![]),
            ("remove", "base/7", vec![]),
        ]
    );
    assert_eq!(totals.blocks, 5);
    assert_eq!(totals.bytes_to_copy, b + 6 * b + 5 * b);
    let r = files[3].ranges();
    assert_eq!(
        r.iter()
            .map(|r| (r.offset / b, r.len / b))
            .collect::<Vec<_>>(),
        vec![(0, 2), (3, 1)]
    );
    assert_eq!(
        files[2]
            .ranges()
            .iter()
            .map(|r| (r.offset / b, r.len / b))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 6)]
    );
}

/// The merge gives what a map of every path, decided one by one and sorted by (action,
/// path; removals reversed), gives — duplicates included (the last listing wins).
#[test]
fn merge_matches_a_map_and_a_sort() {
    let b = u64::from(BLCKSZ);
    let mut source = Vec::new();
    let mut target = Vec::new();
    let mut x = 7u64;
    let mut rnd = |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    for i in 0..3000u64 {
        let path = match rnd(5) {
            0 => format!("base/{}", rnd(20) + 1),
            1 => format!("base/{}/{}_fsm", rnd(20) + 1, rnd(50) + 1),
            2 => format!("pg_wal/0000000100000000000000{:02X}", rnd(8)),
            _ => format!("base/{}/{}", rnd(20) + 1, rnd(50) + 1),
        };
        let kind = if path.matches('/').count() == 1 && path.starts_with("base") {
            FileKind::Dir
        } else {
            f((rnd(4) + 1) * b)
        };
        match i % 3 {
            0 => source.push((path, kind)),
            1 => target.push((path, kind)),
            _ => {
                source.push((path.clone(), kind.clone()));
                target.push((path, kind));
            }
        }
    }
    let mut changed = HashMap::new();
    for r in 1..=50 {
        changed.insert(format!("base/3/{r}"), BTreeSet::from([0, 1, 2, 3]));
    }
    let wal = WalWindow {
        first_segment: XLogSegNo(3),
        stream_from: XLogSegNo(3),
        required: Default::default(),
        source_history: crate::timeline::parse_history("", TimeLineId(1)).unwrap(),
        wal_dir: "pg_wal".into(),
        seg_size: 16 << 20,
    };
    let is_rel = |p: &str| crate::relpath::is_main_fork_data_file(p);
    let policy = Policy::new(crate::flavor::Flavor::Pg15);
    // The reference.
    let mut map: HashMap<String, FileEntry> = HashMap::new();
    for (p, k) in &source {
        map.entry(p.clone())
            .or_insert_with(|| FileEntry::new(p.clone()))
            .source = Some(k.clone());
    }
    for (p, k) in &target {
        map.entry(p.clone())
            .or_insert_with(|| FileEntry::new(p.clone()))
            .target = Some(k.clone());
    }
    let mut want = Vec::new();
    for (_, mut e) in map {
        e.is_rel_main = is_rel(&e.path);
        let action = match filemap::wal_segment_name(&e.path, &wal.wal_dir) {
            Some(name) => filemap::decide_wal_segment(&e, name, &wal),
            None => filemap::decide_action(&e, &policy).unwrap(),
        };
        let blocks = attached_blocks(&e, action, &changed);
        if action != Action::None || !blocks.is_empty() {
            want.push((action, e.path, blocks));
        }
    }
    want.sort_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| {
            if a.0 == Action::Remove {
                b.1.cmp(&a.1)
            } else {
                a.1.cmp(&b.1)
            }
        })
    });
    let (files, totals) = build_files(FileMapInput {
        source,
        target,
        changed_blocks: &changed,
        is_rel_main: &is_rel,
        policy: &policy,
        wal: &wal,
    })
    .unwrap();
    let got: Vec<_> = files
        .into_iter()
        .map(|f| (f.action, f.path, f.blocks))
        .collect();
    assert_eq!(got, want);
    assert_eq!(totals.actions.values().sum::<u64>(), want.len() as u64);
    assert!(want.iter().any(|w| w.0 == Action::Remove));
    assert!(want.iter().any(|w| !w.2.is_empty()));
}

#[test]
fn rejects_escaping_source_paths() {
    let wal = WalWindow {
        first_segment: XLogSegNo(2),
        stream_from: XLogSegNo(2),
        required: Default::default(),
        source_history: crate::timeline::parse_history("", TimeLineId(1)).unwrap(),
        wal_dir: "pg_wal".into(),
        seg_size: 16 << 20,
    };
    let changed = HashMap::new();
    let input = FileMapInput {
        source: vec![("../../etc/passwd".into(), f(1))],
        target: vec![],
        changed_blocks: &changed,
        is_rel_main: &|_| false,
        policy: &Policy::new(crate::flavor::Flavor::Pg15),
        wal: &wal,
    };
    assert!(build_files(input).is_err());
}
