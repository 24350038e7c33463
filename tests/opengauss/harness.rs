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
