//! End-to-end rebuilds on real clusters. A rich diverged pair per (major, source kind) covers
//! most scenarios at once; smaller tests cover the cases that need a topology of their own.
//! After every rebuild the target starts as a standby of the source, catches up, and must hold
//! exactly the source's data (see `support::scenario::verify_standby`).

mod support;

#[path = "rebuild/check.rs"]
mod check;
#[path = "rebuild/full.rs"]
mod full;
#[path = "rebuild/lifecycle.rs"]
mod lifecycle;
#[path = "rebuild/matrix.rs"]
mod matrix;
#[path = "rebuild/rate.rs"]
mod rate;
#[path = "rebuild/replayed.rs"]
mod replayed;
#[path = "rebuild/rich.rs"]
mod rich;
#[path = "rebuild/small.rs"]
mod small;
#[path = "rebuild/standby_source.rs"]
mod standby_source;
#[path = "rebuild/twophase.rs"]
mod twophase;
