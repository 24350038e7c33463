//! A live source's query errors name the server they came from. [`PeerNamed`] wraps a source
//! and adds its description (host and port, user, database; never the password) to every
//! [`Error::Source`] that does not name it yet, so that "connection closed" in the middle of a
//! copy says which server closed it.
//!
//! It forwards every [`Source`] method, the defaulted ones included: a method added to the
//! trait must be forwarded here too.

use super::{ChunkSink, FetchRange, Source, SourceFile, WalSink};
use crate::error::{Error, Result};
use crate::lsn::{Lsn, TimeLineId};
use crate::timeline::TimeLineHistoryEntry;

/// A source whose query errors name it.
pub struct PeerNamed<S> {
    inner: S,
    peer: String,
}

impl<S: Source> PeerNamed<S> {
    /// Wraps `inner`, naming it by its [`Source::describe`].
    pub fn new(inner: S) -> PeerNamed<S> {
        let peer = inner.describe();
        PeerNamed { inner, peer }
    }

    fn named<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| match e {
            Error::Source { query, message } if !message.contains(&self.peer) => Error::Source {
                query,
                message: format!("{message} (source {})", self.peer),
            },
            e => e,
        })
    }
}

impl<S: Source> Source for PeerNamed<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn list_files(&mut self) -> Result<Vec<SourceFile>> {
        let r = self.inner.list_files();
        self.named(r)
    }

    fn fetch_file(&mut self, path: &str) -> Result<Vec<u8>> {
        let r = self.inner.fetch_file(path);
        self.named(r)
    }

    fn fetch_ranges(&mut self, ranges: &[FetchRange], sink: &mut dyn ChunkSink) -> Result<()> {
        let r = self.inner.fetch_ranges(ranges, sink);
        self.named(r)
    }

    fn wal_position(&mut self) -> Result<(TimeLineId, Lsn)> {
        let r = self.inner.wal_position();
        self.named(r)
    }

    fn timeline_history(&mut self, tli: TimeLineId) -> Result<Option<Vec<u8>>> {
        let r = self.inner.timeline_history(tli);
        self.named(r)
    }

    fn setting(&mut self, name: &str) -> Result<Option<String>> {
        let r = self.inner.setting(name);
        self.named(r)
    }

    fn read_wal(
        &mut self,
        start: Lsn,
        end: Lsn,
        history: &[TimeLineHistoryEntry],
        sink: &mut WalSink<'_>,
    ) -> Result<()> {
        let r = self.inner.read_wal(start, end, history, sink);
        self.named(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;

    impl Source for Failing {
        fn describe(&self) -> String {
            "server=db1:5432 user=u dbname=d sslmode=prefer".into()
        }
        fn list_files(&mut self) -> Result<Vec<SourceFile>> {
            Err(Error::Source {
                query: "SELECT".into(),
                message: "connection closed".into(),
            })
        }
        fn fetch_file(&mut self, path: &str) -> Result<Vec<u8>> {
            Err(Error::io(
                "open file",
                path,
                std::io::Error::other("not a query error"),
            ))
        }
        fn fetch_ranges(&mut self, _: &[FetchRange], _: &mut dyn ChunkSink) -> Result<()> {
            Ok(())
        }
        fn wal_position(&mut self) -> Result<(TimeLineId, Lsn)> {
            Err(Error::Source {
                query: "IDENTIFY_SYSTEM".into(),
                message: format!("lost {}", self.describe()),
            })
        }
        fn timeline_history(&mut self, _: TimeLineId) -> Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn read_wal(
            &mut self,
            _: Lsn,
            _: Lsn,
            _: &[TimeLineHistoryEntry],
            _: &mut WalSink<'_>,
        ) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn query_errors_name_the_server_once() {
        let mut s = PeerNamed::new(Failing);
        let e = s.list_files().unwrap_err().to_string();
        assert!(
            e.contains("connection closed (source server=db1:5432 user=u"),
            "{e}"
        );
        let e = s.wal_position().unwrap_err().to_string();
        assert_eq!(e.matches("server=db1:5432").count(), 1, "{e}");
        let e = s.fetch_file("x").unwrap_err().to_string();
        assert!(!e.contains("db1"), "{e}");
    }
}
