//! parse_history: a parsed history is well formed and re-renders to text that parses the same.
//! Input: target TLI (u32 LE), then the file text. The property lives in
//! `gsbuild::fuzzing::check_history`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gsbuild::fuzzing::check_history(data));
