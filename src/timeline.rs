//! Timeline history files (`NNNNNNNN.history`). (Being written.)

/// What is wrong with a history file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A line is not `tli<TAB>X/X<TAB>reason`.
    #[error("syntax error in line {line}")]
    Syntax {
        /// 1-based line number.
        line: usize,
    },
}
