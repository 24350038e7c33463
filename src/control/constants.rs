//! Fixed values of the PostgreSQL control file that both its decoder and its error messages
//! name.
//!
//! Phases 1, 2 and 7 (every read and write of a control file).

/// Size of the file PostgreSQL writes (`PG_CONTROL_FILE_SIZE`), in bytes; everything past the
/// struct is zero.
pub const PG_CONTROL_FILE_SIZE: usize = 8192;

/// `FLOATFORMAT_VALUE`: the double every control file stores to detect foreign float formats.
pub const FLOAT_FORMAT_VALUE: f64 = 1234567.0;
