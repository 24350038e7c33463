//! Record::decode for every major: no panic, and a decoded record is consistent with its
//! bytes. The property lives in `gsbuild::fuzzing::check_wal_record`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gsbuild::fuzzing::check_wal_record(data));
