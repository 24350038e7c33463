//! Both sources list the same data directory the same way and deliver the same bytes: a live
//! server over SQL and the same cluster's directory read locally after it stopped.

mod support;

use gsbuild::filemap::FileKind;
use gsbuild::source::local::LocalSource;
use gsbuild::source::server::ServerSource;
use gsbuild::source::{ChunkSink, FetchRange, Source};
use std::collections::BTreeMap;
use support::*;

#[derive(Default)]
struct Collect(BTreeMap<(String, u64), Vec<u8>>, Vec<String>);

impl ChunkSink for Collect {
    fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> gsbuild::Result<()> {
        self.0.insert((path.to_string(), offset), data.to_vec());
        Ok(())
    }
    fn vanished(&mut self, path: &str) -> gsbuild::Result<()> {
        self.1.push(path.to_string());
        Ok(())
    }
}

fn listing(src: &mut dyn Source) -> BTreeMap<String, FileKind> {
    src.list_files()
        .unwrap()
        .into_iter()
        .map(|f| (f.path, f.kind))
        .collect()
}

#[test]
fn server_and_local_sources_agree() {
    let Some(pg) = install(15) else { return };
    let mut c = Cluster::init(&pg, "src", &InitOptions::default());
    c.start();
    let ts = TestDir::new("ts");
    c.psql(
        "postgres",
        &format!("CREATE TABLESPACE ts LOCATION '{}'", ts.path.display()),
    );
    c.psql("postgres", "CREATE TABLE big TABLESPACE ts AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 20000) g");
    c.psql("postgres", "CHECKPOINT");
    let rel = c.psql("postgres", "SELECT pg_relation_filepath('big')");
    let env = gsbuild::conninfo::Environment::from_process();
    let info = gsbuild::conninfo::ConnInfo::resolve(&c.connstr("postgres"), &env).unwrap();
    let mut server = ServerSource::connect(info, env, Default::default()).unwrap();
    let live = listing(&mut server);
    assert!(
        matches!(live.get(rel.as_str()), Some(FileKind::File { size }) if *size > 8 << 20),
        "{rel}"
    );
    assert!(matches!(live.get("pg_tblspc").unwrap(), FileKind::Dir));
    let spc = rel.split('/').nth(1).unwrap();
    let link = live.get(&format!("pg_tblspc/{spc}")).unwrap();
    assert_eq!(
        link,
        &FileKind::Symlink {
            target: ts.path.display().to_string()
        }
    );
    let ranges = vec![
        FetchRange {
            path: rel.clone(),
            offset: 0,
            len: 3 << 20,
        },
        FetchRange {
            path: rel.clone(),
            offset: 8192 * 7,
            len: 8192,
        },
        FetchRange {
            path: "base/nonexistent".into(),
            offset: 0,
            len: 10,
        },
    ];
    let mut from_server = Collect::default();
    server.fetch_ranges(&ranges, &mut from_server).unwrap();
    assert_eq!(from_server.1, vec!["base/nonexistent".to_string()]);
    assert_eq!(
        from_server.0.len(),
        4,
        "3 MiB split in 1 MiB chunks, plus one block"
    );
    let pg_version = server.fetch_file("PG_VERSION").unwrap();
    assert_eq!(pg_version, b"15\n");
    drop(server);
    c.stop();

    let mut local = LocalSource::new(&c.datadir());
    let stopped = listing(&mut local);
    for (path, kind) in &stopped {
        if path.starts_with("pg_stat")
            || path.starts_with("pg_wal/")
            || path.starts_with("pg_xact")
            || path == "global/pg_control"
            || path.starts_with("pg_logical")
            || path.starts_with("pg_subtrans")
            || path.starts_with("pg_multixact")
        {
            continue;
        }
        let seen = live.get(path);
        match (kind, seen) {
            (FileKind::File { .. }, Some(FileKind::File { .. })) => {}
            (k, s) => assert_eq!(Some(k), s, "{path}"),
        }
    }
    let mut from_local = Collect::default();
    local.fetch_ranges(&ranges[..2], &mut from_local).unwrap();
    let joined = |c: &Collect| {
        c.0.iter()
            .filter(|((p, _), _)| *p == rel)
            .map(|(_, d)| d.len())
            .sum::<usize>()
    };
    assert_eq!(joined(&from_local), (3 << 20) + 8192);
    let short = [FetchRange {
        path: "PG_VERSION".into(),
        offset: 0,
        len: 100,
    }];
    let err = local
        .fetch_ranges(&short, &mut Collect::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("size of source file") && err.contains("changed concurrently"),
        "{err}"
    );
}
