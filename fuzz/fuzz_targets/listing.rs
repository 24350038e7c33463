//! A source's file listing (and the target's): the path checks never accept a path that leaves
//! the data directory, and no plan built from any listing acts outside it. The property lives
//! in `gsbuild::fuzzing::check_listing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gsbuild::fuzzing::check_listing(data));
