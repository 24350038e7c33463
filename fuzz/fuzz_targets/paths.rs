//! Relation paths, LSNs and WAL segment names print and parse back to themselves. Input: 24
//! bytes of numbers, then text. The property lives in `gsbuild::fuzzing::check_paths`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gsbuild::fuzzing::check_paths(data));
