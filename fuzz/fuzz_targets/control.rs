//! pg_control and CheckPoint: decode → encode → decode is the identity, encode is stable.
//! The property lives in `gsbuild::fuzzing::check_control`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gsbuild::fuzzing::check_control(data));
