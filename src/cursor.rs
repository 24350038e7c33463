//! A bounds-checked little-endian reader over a byte slice, for every decoder of bytes that came
//! from disk or the network (pg_control, WAL pages and records, replication messages).
//!
//! Every read returns [`Truncated`] instead of panicking, so a decoder built on it cannot crash on
//! hostile input; callers attach the file or LSN to the error.

/// A read ran past the end of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("needed {need} bytes at offset {at}, only {have} available")]
pub struct Truncated {
    /// Offset (within the decoded buffer) where the read started.
    pub at: usize,
    /// Bytes the read needed.
    pub need: usize,
    /// Bytes that were left.
    pub have: usize,
}

/// Reads fixed-size little-endian values from a slice, advancing as it goes.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Current offset from the start of the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The unread rest of the buffer, without consuming it.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        let have = self.remaining();
        if n > have {
            return Err(Truncated {
                at: self.pos,
                need: n,
                have,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), Truncated> {
        self.bytes(n).map(|_| ())
    }

    /// Takes the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, Truncated> {
        self.array().map(u16::from_le_bytes)
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, Truncated> {
        self.array().map(u32::from_le_bytes)
    }

    /// Reads a little-endian `i32`.
    pub fn i32(&mut self) -> Result<i32, Truncated> {
        self.array().map(i32::from_le_bytes)
    }

    /// Reads a little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, Truncated> {
        self.array().map(u64::from_le_bytes)
    }

    /// Reads a little-endian `i64`.
    pub fn i64(&mut self) -> Result<i64, Truncated> {
        self.array().map(i64::from_le_bytes)
    }
}

/// Reads a little-endian `u32` at `at` in `buf` without a cursor.
pub fn u32_at(buf: &[u8], at: usize) -> Result<u32, Truncated> {
    let mut c = Cursor::new(buf);
    c.skip(at)?;
    c.u32()
}

/// Reads a little-endian `u64` at `at` in `buf` without a cursor.
pub fn u64_at(buf: &[u8], at: usize) -> Result<u64, Truncated> {
    let mut c = Cursor::new(buf);
    c.skip(at)?;
    c.u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_truncates() {
        let mut c = Cursor::new(&[1, 2, 0, 3, 0, 0, 0, 9]);
        assert_eq!(c.u8().unwrap(), 1);
        assert_eq!(c.u8().unwrap(), 2);
        assert_eq!(c.u8().unwrap(), 0);
        assert_eq!(c.u32().unwrap(), 3);
        assert_eq!(
            c.u32(),
            Err(Truncated {
                at: 7,
                need: 4,
                have: 1
            })
        );
        assert_eq!(c.u8().unwrap(), 9);
        assert_eq!(c.remaining(), 0);
        assert!(u64_at(&[0; 7], 0).is_err());
        assert_eq!(u32_at(&[0, 1, 0, 0, 0], 1).unwrap(), 1);
        assert!(u32_at(&[0; 4], usize::MAX).is_err());
    }
}
