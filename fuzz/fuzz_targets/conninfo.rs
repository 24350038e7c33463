//! conninfo::parse / ConnInfo::resolve: no panic, to_conninfo_string round trip, redacted()
//! independent of the password. The property lives in `gsbuild::fuzzing::check_conninfo`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gsbuild::fuzzing::check_conninfo(data));
