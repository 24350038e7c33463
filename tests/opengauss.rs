//! openGauss end to end, on a real server (`.ci/install-opengauss.sh`): the seed's story — a
//! pair, a failover, writes on both sides, the old primary reporting `Need repair` — rebuilt
//! by gsbuild, and the same pair rebuilt by `gs_ctl build` for comparison.

mod support;

#[path = "opengauss/full.rs"]
mod full;
#[path = "opengauss/harness.rs"]
mod harness;
#[path = "opengauss/rebuild.rs"]
mod rebuild;
