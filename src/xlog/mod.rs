//! The write-ahead log: page headers, the incremental record reader, record and block-reference
//! decoding. (Being written.)

/// What is wrong with the WAL at some position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalError {
    /// The record's CRC does not match its contents.
    #[error("incorrect resource manager data checksum in record")]
    BadCrc,
}
