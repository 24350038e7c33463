//! Why no action could be decided for a path ([`FileMapError`]), kept apart from the decisions
//! so that the library's error type can name it without depending on them.
//!
//! Phase 5.

/// Why no action could be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileMapError {
    /// The path is a file on one side and a directory or symlink on the other.
    #[error("file \"{path}\" is of different type in source and target ({source_type} vs {target_type})")]
    TypeMismatch {
        /// The path.
        path: String,
        /// What the source has.
        source_type: &'static str,
        /// What the target has.
        target_type: &'static str,
    },
    /// The source has a symbolic link the target lacks, and it is not a tablespace: gsbuild
    /// creates no link that could lead outside the data directory.
    #[error("the source has a symbolic link \"{path}\" to \"{target}\" that the target lacks; only tablespaces (pg_tblspc/<oid>) are created as symbolic links")]
    NotATablespace {
        /// The path.
        path: String,
        /// Where the source's link points.
        target: String,
    },
    /// The entry exists on neither side (a bug in whoever built it).
    #[error("file \"{0}\" exists in neither source nor target")]
    Neither(String),
}
