//! The library's typed errors. Messages follow PostgreSQL's wording (`could not open file
//! "…": …`) so that users and HA tools recognise them; every variant carries the file, LSN,
//! setting or peer at fault. Only `main` turns an [`Error`] into an exit code.

use crate::lsn::Lsn;
use std::path::PathBuf;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any failure of the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("could not {op} \"{}\": {}", path.display(), os_reason(source))]
    Io {
        /// What was attempted, in PostgreSQL's words: "open file", "read file", "fsync file"…
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The control file is unusable.
    #[error("invalid control file \"{}\": {kind}", path.display())]
    Control {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        kind: crate::control::error::ControlError,
    },
    /// WAL is missing, corrupt or not understood.
    #[error("{kind} at {lsn}")]
    Wal {
        /// Position of the record or page at fault.
        lsn: Lsn,
        /// What is wrong there.
        kind: crate::xlog::WalError,
    },
    /// A timeline history file is malformed or inconsistent.
    #[error("invalid timeline history file \"{}\": {kind}", path.display())]
    History {
        /// The file (or the name the source gave it).
        path: PathBuf,
        /// What is wrong with it.
        kind: crate::timeline::HistoryError,
    },
    /// The two clusters cannot be rewound onto each other (different system, version, settings).
    #[error("{0}")]
    Incompatible(String),
    /// A query or command on the source failed.
    #[error("query failed: {message}\nquery was: {query}")]
    Source {
        /// The query or replication command.
        query: String,
        /// The server's or the connection's message.
        message: String,
    },
    /// A connection to the source could not be made or was lost.
    #[error("{}", connect_text(peer, message))]
    Connect {
        /// The server as the user named it (host, port, database; never the password).
        peer: String,
        /// What went wrong.
        message: String,
    },
    /// The source did not answer for longer than the read timeout (`--timeout`).
    #[error("source server \"{peer}\" did not answer within {} s (--timeout) while {during}", after.as_secs_f64())]
    Timeout {
        /// The server as the user named it (never the password).
        peer: String,
        /// How long gsbuild waited.
        after: std::time::Duration,
        /// What gsbuild was waiting for ("fetching file ranges", "streaming WAL", …).
        during: String,
    },
    /// The journal of an interrupted rebuild cannot be used.
    #[error("rebuild journal \"{}\": {message}", path.display())]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A relation file cannot be scanned (its size is not a whole number of pages).
    #[error("relation file \"{}\": {message}", path.display())]
    Relation {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `--verify-blocks`: a page the target wrote at or after the divergence point is missing
    /// from the block set derived from the target's WAL. Copying only that set would leave the
    /// page as the target wrote it: the WAL scan is wrong, and the rebuild stops.
    #[error(
        "block {block} of file \"{path}\" has page LSN {lsn}, at or after the divergence point {divergence}, \
         but the target's WAL names no change to it{}; the WAL-derived block set is incomplete \
         (a bug in gsbuild's WAL scan: rebuilding from it would lose this page's changes), so nothing was written. \
         --changed-blocks=page-lsn finds changed blocks without the WAL",
        if *more > 0 { format!(" ({more} more such pages)") } else { String::new() }
    )]
    UnaccountedPage {
        /// The relation segment file, relative to the data directory.
        path: String,
        /// Block number within that file.
        block: u32,
        /// The page's `pd_lsn`.
        lsn: Lsn,
        /// The divergence point (the scan's threshold).
        divergence: Lsn,
        /// How many other pages failed the same check.
        more: u64,
    },
    /// WAL a phase needs is missing, damaged or not what it must be: the position, the segment
    /// file when one is at fault, and what is wrong.
    #[error("{kind}")]
    WalUse {
        /// The position at fault.
        lsn: Lsn,
        /// The segment file (or the source's name for it) when one is at fault.
        segment: Option<String>,
        /// What is wrong.
        kind: WalUseError,
    },
    /// The source no longer has WAL at a position a rebuild asked for: its segment was
    /// removed or recycled (a checkpoint since, a small `wal_keep_size`).
    #[error("{message}")]
    WalRemoved {
        /// Where reading began.
        lsn: Lsn,
        /// The source's message, naming the segment.
        message: String,
    },
    /// No action could be decided for a path of the two listings.
    #[error(transparent)]
    FileMap(#[from] crate::filemap::error::FileMapError),
    /// Bad options or a bad command line.
    #[error("{0}")]
    Usage(String),
}

/// What is wrong with WAL a rebuild needs ([`Error::WalUse`]). Messages in pg_rewind's words.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalUseError {
    /// Walking back through `xl_prev`, the record at the position could not be read.
    #[error("could not find previous WAL record at {lsn}: {cause}")]
    PreviousRecord {
        /// The record's position.
        lsn: Lsn,
        /// Why it could not be read.
        cause: Box<Error>,
    },
    /// A record's `xl_prev` points nowhere valid.
    #[error("could not find previous WAL record at {lsn}: invalid xl_prev {prev}")]
    BadPrevLink {
        /// The record.
        lsn: Lsn,
        /// Its `xl_prev`.
        prev: Lsn,
    },
    /// The record where a checkpoint must be is another kind.
    #[error("WAL record at {lsn} is not a checkpoint record (rmgr {rmgr})")]
    NotACheckpoint {
        /// The record.
        lsn: Lsn,
        /// Its resource manager.
        rmgr: String,
    },
    /// A checkpoint record's payload does not decode.
    #[error("invalid checkpoint record at {lsn}: {detail}")]
    BadCheckpoint {
        /// The record.
        lsn: Lsn,
        /// What is wrong with it.
        detail: String,
    },
    /// The target's WAL ends before its control file says it does.
    #[error("could not read WAL record at {reached}: the target's WAL ends before its end of WAL {end} (missing or damaged segment; with -c, restore_command is used to fetch missing segments)")]
    TargetEndsEarly {
        /// How far it could be read.
        reached: Lsn,
        /// Its end of WAL.
        end: Lsn,
    },
    /// A record changes relation files in a way block references do not show.
    #[error("WAL record modifies a relation, but record type is not recognized: lsn: {lsn}, rmid: {rmid}, rmgr: {rmgr}, info: {info:02X}")]
    UnknownRelationChange {
        /// The record.
        lsn: Lsn,
        /// Its resource manager id.
        rmid: u8,
        /// Its resource manager's name.
        rmgr: String,
        /// Its `xl_info`.
        info: u8,
    },
    /// A record changes a block whose file gsbuild cannot name (openGauss's hash-bucket
    /// storage, a segment-page block without a physical location).
    #[error("WAL record at {lsn} changes a block gsbuild cannot locate: {detail}")]
    UnlocatedBlock {
        /// The record.
        lsn: Lsn,
        /// The block and why.
        detail: String,
    },
    /// No readable record at a position where one must be.
    #[error("could not read WAL record at {lsn}")]
    NoRecord {
        /// The position.
        lsn: Lsn,
    },
    /// The source's WAL holds no checkpoint before the divergence point, or ends first.
    #[error("could not find a checkpoint record before the divergence point {before} in the source's WAL (read back to {read_back_to}): {detail}")]
    NoSourceCheckpoint {
        /// The divergence point.
        before: Lsn,
        /// How far back it was read.
        read_back_to: Lsn,
        /// Why the search stopped.
        detail: String,
    },
    /// A thread reading WAL ahead failed.
    #[error("WAL read-ahead: a reading thread failed")]
    ReadAhead,
}

impl Error {
    /// An [`Error::WalUse`] at `lsn` (no segment named).
    pub fn wal_use(lsn: Lsn, kind: WalUseError) -> Error {
        Error::WalUse {
            lsn,
            segment: None,
            kind,
        }
    }

    /// This error, saying it came from the source `peer` when it is a query error: a lost
    /// connection's message ("connection closed") does not say which server it was.
    pub fn at_source(self, peer: &str) -> Error {
        match self {
            Error::Source { query, message } if !message.contains(peer) => Error::Source {
                query,
                message: format!("{message} (source {peer})"),
            },
            e => e,
        }
    }

    /// An [`Error::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// A connection failure: libpq's own words when the message has them (they say where the
/// connection went), else the server and what went wrong.
fn connect_text(peer: &str, message: &str) -> String {
    if message.starts_with("connection to server") {
        message.to_string()
    } else {
        format!("could not connect to {peer}: {message}")
    }
}

/// An operating system error as libpq and the C library word it (`Connection refused`),
/// without the standard library's ` (os error 111)`.
pub fn os_reason(e: &std::io::Error) -> String {
    without_os_error(&e.to_string()).to_string()
}

/// `text` without a trailing ` (os error N)`.
pub fn without_os_error(text: &str) -> &str {
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_errors_name_the_source_once() {
        let peer = "server=db1:5432 user=u dbname=d sslmode=prefer";
        let lost = Error::Source {
            query: "SELECT 1".into(),
            message: "connection closed".into(),
        };
        let e = lost.at_source(peer).to_string();
        assert!(
            e.contains(&format!("connection closed (source {peer})")),
            "{e}"
        );
        let named = Error::Source {
            query: "SELECT 1".into(),
            message: format!("lost {peer}"),
        };
        assert_eq!(named.at_source(peer).to_string().matches(peer).count(), 1);
        let io = Error::io("open file", "x", std::io::Error::other("no"));
        assert!(!io.at_source(peer).to_string().contains("db1"));
    }
}
