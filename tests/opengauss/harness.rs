//! The test clusters themselves: a diverged pair is what the harness says it is.

use crate::support::opengauss::*;

/// The old primary of a diverged pair, started as a standby of the new one, is told it needs
/// repair (openGauss 7.0 says `Need repair` with `WAL segment removed`).
#[test]
fn diverged_old_primary_needs_repair() {
    let Some(og) = og_install() else { return };
    let (mut old, new) = og_diverged_pair(&og, 20_000);
    assert_eq!(new.sql("select count(*) from t2"), "2");
    old.start("standby");
    let mut state = None;
    for _ in 0..60 {
        state = old.ha_state("db_state");
        if state.as_deref() == Some("Need repair") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let detail = old.ha_state("detail_information");
    eprintln!("old primary as standby: {state:?} / {detail:?}");
    assert_eq!(state.as_deref(), Some("Need repair"));
    old.stop();
}

/// For working on gsbuild by hand: a diverged pair, both stopped, copied to
/// `$GSBUILD_OG_KEEP/{old,new}` (`cargo test --test opengauss keep -- --ignored`).
#[test]
#[ignore]
fn keep_diverged_pair() {
    let Some(og) = og_install() else { return };
    let Ok(keep) = std::env::var("GSBUILD_OG_KEEP") else {
        panic!("set GSBUILD_OG_KEEP to a directory")
    };
    let (old, mut new) = og_diverged_pair(&og, 20_000);
    new.stop();
    std::fs::create_dir_all(&keep).unwrap();
    for (c, name) in [(&old, "old"), (&new, "new")] {
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(c.datadir())
            .arg(format!("{keep}/{name}"))
            .status()
            .unwrap();
        assert!(st.success());
    }
    chown_to_og(std::path::Path::new(&keep));
}
