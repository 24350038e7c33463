//! WalStreamReader: the same records and the same end (or error) whether the WAL is fed whole
//! or in chunks split where the input says. Input: start LSN (u64 LE), split seed (u64 LE), WAL
//! bytes. The property lives in `gsbuild::fuzzing::check_wal_stream`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gsbuild::fuzzing::check_wal_stream(data));
