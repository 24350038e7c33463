//! pg_control (`global/pg_control`): decode, validate and encode. (Being written.)

/// What is wrong with a control file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The file is shorter than the fields it must hold.
    #[error("file is {have} bytes, expected {need}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes found.
        have: usize,
    },
}
