//! README's first command, `gsbuild demo`, run as a test: a throwaway pair is diverged,
//! rebuilt by gsbuild, started as a standby and compared with the new primary.

mod support;

use std::process::Command;

#[test]
fn demo_passes_with_debian_postgres() {
    let Some(pg) = support::debian_install().or_else(|| support::install(15)) else {
        return;
    };
    let work = support::TestDir::new("demo");
    let out = Command::new(support::gsbuild_bin())
        .arg("demo")
        .arg("--bindir")
        .arg(&pg.bin)
        .arg("--workdir")
        .arg(work.path.join("w"))
        .output()
        .expect("run gsbuild demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("servers diverged at WAL location"),
        "{stdout}"
    );
    assert!(stdout.contains("== demo passed"), "{stdout}");
}
