//! What is wrong with a control file: [`ControlError`], the error of every control-file
//! decoder (phase 1 reads the target's, phase 2 the source's), kept apart from the decoders so
//! that the library's error type can name it without depending on them.

use super::constants::{FLOAT_FORMAT_VALUE, PG_CONTROL_FILE_SIZE};
use crate::flavor::Flavor;

/// What is wrong with a control file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The file is shorter than the fields it must hold.
    #[error(
        "file is {have} bytes, too short for the {need}-byte control data \
         (PostgreSQL writes {PG_CONTROL_FILE_SIZE}-byte files)"
    )]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes found.
        have: usize,
    },
    /// No supported major writes this pair of version numbers.
    #[error(
        "pg_control version {control_version} with catalog version {catalog_version} is not a \
         supported PostgreSQL flavor ({}–{})",
        Flavor::POSTGRESQL[0],
        Flavor::POSTGRESQL[Flavor::POSTGRESQL.len() - 1]
    )]
    UnsupportedVersion {
        /// `pg_control_version` found.
        control_version: u32,
        /// `catalog_version_no` found.
        catalog_version: u32,
    },
    /// The stored CRC does not match the contents.
    #[error(
        "calculated CRC checksum {computed:08X} does not match value stored in file {stored:08X}"
    )]
    Crc {
        /// CRC stored in the file.
        stored: u32,
        /// CRC-32C of the bytes before it.
        computed: u32,
    },
    /// `floatFormat` is not 1234567.0: another platform's file, or garbage.
    #[error(
        "float format check value is {}, expected {FLOAT_FORMAT_VALUE:.1}",
        f64::from_bits(*.bits)
    )]
    FloatFormat {
        /// The stored double, as bits.
        bits: u64,
    },
    /// `state` is not one of the seven `DBState` values.
    #[error("unrecognized database cluster state {0}")]
    UnknownState(i32),
}

impl From<crate::cursor::Truncated> for ControlError {
    fn from(t: crate::cursor::Truncated) -> Self {
        ControlError::Truncated {
            need: t.at.saturating_add(t.need),
            have: t.at.saturating_add(t.have),
        }
    }
}
