//! Field access at fixed offsets, for C structs whose layout is a table of offsets: reads are
//! bounds-checked through [`Cursor`]; writes go into buffers this module's callers size
//! themselves.
//!
//! Phases 1, 2 and 7 (every read and write of a control file).

use crate::cursor::{Cursor, Truncated};

/// Reads little-endian fields at absolute offsets of a buffer.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// `n` bytes at `at`; the error reports `at` relative to the whole buffer.
    pub(super) fn bytes(&self, at: usize, n: usize) -> Result<&'a [u8], Truncated> {
        let rest = self.buf.get(at..).unwrap_or_default();
        Cursor::new(rest)
            .bytes(n)
            .map_err(|e| Truncated { at, ..e })
    }

    pub(super) fn array<const N: usize>(&self, at: usize) -> Result<[u8; N], Truncated> {
        let rest = self.buf.get(at..).unwrap_or_default();
        Cursor::new(rest).array().map_err(|e| Truncated { at, ..e })
    }

    pub(super) fn u32(&self, at: usize) -> Result<u32, Truncated> {
        self.array(at).map(u32::from_le_bytes)
    }

    pub(super) fn i32(&self, at: usize) -> Result<i32, Truncated> {
        self.array(at).map(i32::from_le_bytes)
    }

    pub(super) fn u64(&self, at: usize) -> Result<u64, Truncated> {
        self.array(at).map(u64::from_le_bytes)
    }

    pub(super) fn i64(&self, at: usize) -> Result<i64, Truncated> {
        self.array(at).map(i64::from_le_bytes)
    }

    pub(super) fn f64(&self, at: usize) -> Result<f64, Truncated> {
        self.array(at).map(f64::from_le_bytes)
    }

    /// A C `bool`: any non-zero byte is true, as in C.
    pub(super) fn bool(&self, at: usize) -> Result<bool, Truncated> {
        self.array::<1>(at).map(|[b]| b != 0)
    }
}

/// Writes little-endian fields at absolute offsets of a buffer.
pub(super) struct Writer<'a> {
    buf: &'a mut [u8],
}

impl<'a> Writer<'a> {
    pub(super) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf }
    }

    pub(super) fn bytes(&mut self, at: usize, value: &[u8]) {
        let len = self.buf.len();
        let dst = at
            .checked_add(value.len())
            .and_then(|end| self.buf.get_mut(at..end));
        // Callers size the buffer for the layout they write, so a miss is a bug in a layout table.
        debug_assert!(dst.is_some(), "field at {at} outside a {len}-byte buffer");
        if let Some(dst) = dst {
            dst.copy_from_slice(value);
        }
    }

    pub(super) fn u32(&mut self, at: usize, v: u32) {
        self.bytes(at, &v.to_le_bytes());
    }

    pub(super) fn i32(&mut self, at: usize, v: i32) {
        self.bytes(at, &v.to_le_bytes());
    }

    pub(super) fn u64(&mut self, at: usize, v: u64) {
        self.bytes(at, &v.to_le_bytes());
    }

    pub(super) fn i64(&mut self, at: usize, v: i64) {
        self.bytes(at, &v.to_le_bytes());
    }

    pub(super) fn f64(&mut self, at: usize, v: f64) {
        self.bytes(at, &v.to_le_bytes());
    }

    /// Writes `v` as 0 or 1, except that a nonzero byte already there stays when `v` is true:
    /// [`Reader::bool`] reads any nonzero byte as true, so rewriting it as 1 would change the
    /// bytes (and CRC) of an unmodified file that holds, say, 2.
    pub(super) fn bool(&mut self, at: usize, v: bool) {
        let current = self.buf.get(at).copied();
        if current.map(|b| b != 0) != Some(v) {
            self.bytes(at, &[u8::from(v)]);
        }
    }
}
