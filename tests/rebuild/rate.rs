//! `--max-rate`: everything fetched (files, blocks, WAL) at most at the given rate; the result
//! is as good as without it.

use crate::support::scenario::*;
use crate::support::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// A divergence of some 40 MB fetched at 8 MB/s takes at least bytes / rate; the rebuilt
/// target follows the source with its data. (Only that lower bound is a property: how close to
/// the limit a run comes is measured, not asserted — docs/cli.md.)
pub(crate) fn max_rate_bounds_the_transfer(major: u32) {
    let Some(pg) = install(major) else { return };
    let (mut old, new) = primary_and_standby(&pg, "rate", small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    new.psql_script(
        "postgres",
        "CREATE TABLE big AS SELECT g, md5(g::text) AS v FROM generate_series(1, 400000) g;",
    );
    old.stop();
    let rate: u64 = 8 << 20;
    let t0 = Instant::now();
    let out = Command::new(gsbuild_bin())
        .args(["-q", "--max-rate", "8M", "--format", "json", "-D"])
        .arg(old.datadir())
        .args(["--source-server", &new.connstr("postgres")])
        .output()
        .expect("run gsbuild");
    let secs = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let fetched = doc["outcome"]["bytes_fetched"]
        .as_u64()
        .expect("bytes_fetched");
    assert!(fetched > 30 << 20, "only {fetched} bytes fetched");
    let floor = Duration::from_secs_f64(fetched as f64 / rate as f64);
    eprintln!(
        "--max-rate 8M: {fetched} bytes in {secs:.2?} ({:.2} MB/s; the limit allows {floor:.2?})",
        fetched as f64 / secs.as_secs_f64() / f64::from(1 << 20)
    );
    assert!(secs >= floor, "{fetched} bytes in {secs:?} at 8 MB/s");
    restore_connection_conf(&old);
    configure_standby(&old, &new);
    verify_standby(&new, &mut old);
}

#[test]
fn max_rate_bounds_the_transfer_pg17() {
    max_rate_bounds_the_transfer(17);
}

/// `gsbuild status -D` while a build runs (slowed by `--max-rate`): its pid, step, bytes
/// copied and time left; once it ended, no build in progress.
pub(crate) fn status_of_a_running_build(major: u32) {
    let Some(pg) = install(major) else { return };
    let (mut old, new) = primary_and_standby(&pg, "running", small_setup, &[]);
    new.promote();
    small_diverge(&new, &old);
    old.stop();
    let mut child = Command::new(gsbuild_bin())
        .args(["-q", "--max-rate", "1M", "-D"])
        .arg(old.datadir())
        .args(["--source-server", &new.connstr("postgres")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run gsbuild");
    let status = || {
        let out = Command::new(gsbuild_bin())
            .args(["status", "-D"])
            .arg(old.datadir())
            .output()
            .expect("status");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let t0 = Instant::now();
    let seen = loop {
        let text = status();
        if text.contains("copied:") && text.contains("remaining:") {
            break text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120) && child.try_wait().expect("wait").is_none(),
            "never saw the copy in progress; last status:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("{seen}");
    assert!(
        seen.contains(&format!("is running (pid {})", child.id())),
        "{seen}"
    );
    assert!(seen.contains("step:      copying"), "{seen}");
    assert!(child.wait().expect("wait").success());
    assert!(
        status().starts_with("no rebuild in progress"),
        "{}",
        status()
    );
    configure_standby(&old, &new);
    verify_standby(&new, &mut old);
}

#[test]
fn status_of_a_running_build_pg15() {
    status_of_a_running_build(15);
}
