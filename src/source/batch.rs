//! How a server source cuts the ranges of a fetch into queries: contiguous ranges of one file
//! become one read, reads are cut into chunks of at most [`MAX_CHUNK`] bytes (one result row
//! each, pg_rewind's chunk size), and chunks are grouped into queries by the bytes they ask
//! for ([`MAX_BATCH_BYTES`]) as well as by count ([`MAX_CHUNKS_PER_QUERY`]).
//!
//! Pure functions, used by phase 6 ([`super::server`]).

use super::FetchRange;

/// Largest range fetched in one piece (one row of a fetch query; pg_rewind's chunk size).
pub const MAX_CHUNK: u64 = 1 << 20;
/// Most chunks in one query.
pub const MAX_CHUNKS_PER_QUERY: usize = 1000;
/// Most bytes one query asks for. Rows are streamed, so this bounds no buffer; it keeps the
/// queries of a fetch numerous enough to spread over the sessions and short enough that the
/// last one does not keep one session busy long after the others finished.
pub const MAX_BATCH_BYTES: u64 = 4 << 20;

/// Joins each range to the previous one when they are of the same file and contiguous
/// (adjacent changed blocks, a tail right after them). Order is kept; overlapping or
/// separated ranges stay apart; empty ranges are dropped.
pub fn merge_contiguous(ranges: &[FetchRange]) -> Vec<FetchRange> {
    let mut out: Vec<FetchRange> = Vec::with_capacity(ranges.len());
    for r in ranges.iter().filter(|r| r.len > 0) {
        match out.last_mut() {
            Some(last) if last.path == r.path && last.offset + last.len == r.offset => {
                last.len += r.len
            }
            _ => out.push(r.clone()),
        }
    }
    out
}

/// Splits ranges into chunks of at most [`MAX_CHUNK`] bytes.
pub fn split_chunks(ranges: &[FetchRange]) -> Vec<FetchRange> {
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let mut off = r.offset;
        let end = r.offset + r.len;
        while off < end {
            let len = (end - off).min(MAX_CHUNK);
            out.push(FetchRange {
                path: r.path.clone(),
                offset: off,
                len,
            });
            off += len;
        }
    }
    out
}

/// Groups chunks, in order, into queries of at most [`MAX_BATCH_BYTES`] requested bytes and
/// [`MAX_CHUNKS_PER_QUERY`] chunks (a single chunk larger than the byte limit is a query of
/// its own).
pub fn batches(chunks: Vec<FetchRange>) -> Vec<Vec<FetchRange>> {
    let mut out: Vec<Vec<FetchRange>> = Vec::new();
    let mut current: Vec<FetchRange> = Vec::new();
    let mut bytes = 0u64;
    for c in chunks {
        if !current.is_empty()
            && (bytes + c.len > MAX_BATCH_BYTES || current.len() == MAX_CHUNKS_PER_QUERY)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += c.len;
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The queries of a fetch: [`merge_contiguous`], [`split_chunks`], [`batches`].
pub fn plan_queries(ranges: &[FetchRange]) -> Vec<Vec<FetchRange>> {
    batches(split_chunks(&merge_contiguous(ranges)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str, offset: u64, len: u64) -> FetchRange {
        FetchRange {
            path: p.into(),
            offset,
            len,
        }
    }

    #[test]
    fn chunks() {
        let got = split_chunks(&[r("a", 10, 3 * MAX_CHUNK + 5), r("b", 0, 0), r("c", 0, 1)]);
        assert_eq!(got.len(), 5);
        assert_eq!(got[3], r("a", 10 + 3 * MAX_CHUNK, 5));
        assert_eq!(got[4], r("c", 0, 1));
    }

    #[test]
    fn merges_only_contiguous_ranges_of_one_file() {
        let b = 8192;
        let got = merge_contiguous(&[
            r("f", 0, b),
            r("f", b, b),
            r("f", 2 * b, 3 * b), // a tail right after two blocks
            r("f", 7 * b, b),     // a gap
            r("g", 8 * b, b),     // another file, contiguous offsets
            r("g", 9 * b, 0),     // empty
            r("g", 9 * b, b),
            r("g", 9 * b, b), // overlapping: kept apart
        ]);
        assert_eq!(
            got,
            vec![
                r("f", 0, 5 * b),
                r("f", 7 * b, b),
                r("g", 8 * b, 2 * b),
                r("g", 9 * b, b)
            ]
        );
    }

    #[test]
    fn merged_blocks_are_then_cut_into_chunks() {
        let blocks: Vec<FetchRange> = (0..300).map(|i| r("f", i * 8192, 8192)).collect();
        let got = plan_queries(&blocks);
        assert_eq!(got.len(), 1);
        let lens: Vec<u64> = got[0].iter().map(|c| c.len).collect();
        assert_eq!(lens, vec![MAX_CHUNK, MAX_CHUNK, 300 * 8192 - 2 * MAX_CHUNK]);
    }

    #[test]
    fn batches_by_bytes_and_by_count() {
        // Whole 1 MiB chunks: four per query.
        let big: Vec<FetchRange> = (0..10).map(|i| r("f", i * MAX_CHUNK, MAX_CHUNK)).collect();
        let got = batches(big);
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        assert!(got
            .iter()
            .all(|b| b.iter().map(|c| c.len).sum::<u64>() <= MAX_BATCH_BYTES));
        // Single bytes: the count limit.
        let tiny: Vec<FetchRange> = (0..2500).map(|i| r("f", i * 2, 1)).collect();
        assert_eq!(
            batches(tiny).iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1000, 1000, 500]
        );
        // A chunk over the byte limit on its own (not produced by split_chunks, but allowed).
        let got = batches(vec![
            r("a", 0, 1),
            r("b", 0, MAX_BATCH_BYTES + 1),
            r("c", 0, 1),
        ]);
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1, 1]);
        // Every chunk exactly once, in order.
        let blocks: Vec<FetchRange> = (0..5000).map(|i| r("f", i * 3 * 8192, 8192)).collect();
        let flat: Vec<FetchRange> = plan_queries(&blocks).into_iter().flatten().collect();
        assert_eq!(flat, blocks);
    }
}
