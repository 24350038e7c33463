//! Files copied whole: how none of a file's old bytes outlive its copy, at the least cost in
//! file-system metadata. Emptying an existing file and creating a new one each take about
//! 0.13–0.22 ms on the benchmark machine's ext4, a third of a small rebuild's time when a few
//! hundred free-space and visibility maps are copied.
//!
//! - A file the target has at most as long as the source's is overwritten in place: the copy
//!   writes every byte of the source's length over it. What was written is recorded, so that
//!   when the source delivers less (the file shrank, or was read short while it changed), the
//!   end is cut off and any gap is zeroed: the result is what emptying the file first and
//!   writing the same chunks would have left.
//! - Any other (new, longer on the target, empty on the source, or replaced by a full build)
//!   is emptied, or created, as its first chunk opens it, or after the copy when none came.

use std::collections::{HashMap, HashSet};

/// The files copied whole, and what each still needs ([`super::TargetDir::finish_whole_files`]).
#[derive(Default)]
pub(super) struct WholeFiles {
    /// To be emptied when first opened.
    to_empty: HashSet<String>,
    /// Overwritten in place: the byte intervals `[start, end)` written so far.
    in_place: HashMap<String, Vec<(u64, u64)>>,
}

/// What is left to do for the files copied whole once the copy is over.
pub(super) struct Unfinished {
    /// Files that no chunk opened: they are emptied.
    pub to_empty: Vec<String>,
    /// Files overwritten in place, with the intervals written, sorted and merged.
    pub in_place: Vec<(String, Vec<(u64, u64)>)>,
}

impl WholeFiles {
    /// `rel` is emptied when first opened.
    pub fn empty_first(&mut self, rel: &str) {
        self.in_place.remove(rel);
        self.to_empty.insert(rel.to_string());
    }

    /// `rel` is overwritten in place.
    pub fn overwrite(&mut self, rel: &str) {
        self.to_empty.remove(rel);
        self.in_place.insert(rel.to_string(), Vec::new());
    }

    /// `rel` was removed or moved away: nothing is left to do for it.
    pub fn forget(&mut self, rel: &str) {
        self.to_empty.remove(rel);
        self.in_place.remove(rel);
    }

    /// Whether `rel`, being opened, is to be emptied (once).
    pub fn opening(&mut self, rel: &str) -> bool {
        self.to_empty.remove(rel)
    }

    /// `len` bytes were written at `offset` of `rel`.
    pub fn wrote(&mut self, rel: &str, offset: u64, len: u64) {
        let Some(spans) = self.in_place.get_mut(rel) else {
            return;
        };
        let end = offset.saturating_add(len);
        match spans.last_mut() {
            Some(last) if last.1 == offset => last.1 = end,
            _ => spans.push((offset, end)),
        }
    }

    /// What is left, in path order; nothing is recorded any more.
    pub fn take(&mut self) -> Unfinished {
        let mut to_empty: Vec<String> = self.to_empty.drain().collect();
        to_empty.sort();
        let mut in_place: Vec<(String, Vec<(u64, u64)>)> = self
            .in_place
            .drain()
            .map(|(rel, spans)| (rel, merged(spans)))
            .collect();
        in_place.sort();
        Unfinished { to_empty, in_place }
    }
}

/// `spans` sorted, overlapping and touching ones joined.
fn merged(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// The gaps `[start, end)` between 0 and the end of the last of `spans` (sorted and merged).
pub(super) fn gaps(spans: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0;
    for &(start, end) in spans {
        if start > at {
            out.push((at, start));
        }
        at = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_in_any_order_merge_and_leave_their_gaps() {
        let mut w = WholeFiles::default();
        w.overwrite("a");
        w.wrote("a", 8192, 8192);
        w.wrote("a", 16384, 8192);
        w.wrote("a", 40960, 100);
        w.wrote("a", 0, 4096);
        w.wrote("b", 0, 10); // not copied whole: not recorded
        let left = w.take();
        assert_eq!(
            left.in_place,
            vec![(
                "a".to_string(),
                vec![(0, 4096), (8192, 24576), (40960, 41060)]
            )]
        );
        assert_eq!(
            gaps(&left.in_place[0].1),
            vec![(4096, 8192), (24576, 40960)]
        );
        assert!(left.to_empty.is_empty());
    }

    #[test]
    fn a_file_is_emptied_once_and_a_removed_one_is_forgotten() {
        let mut w = WholeFiles::default();
        w.empty_first("x");
        w.empty_first("y");
        w.overwrite("z");
        assert!(w.opening("x"));
        assert!(!w.opening("x"));
        w.forget("y");
        w.forget("z");
        let left = w.take();
        assert!(left.to_empty.is_empty());
        assert!(left.in_place.is_empty());
    }

    #[test]
    fn nothing_written_is_all_gap_and_no_end() {
        assert!(gaps(&[]).is_empty());
        assert_eq!(gaps(&[(0, 10)]), Vec::<(u64, u64)>::new());
        assert_eq!(gaps(&[(5, 10)]), vec![(0, 5)]);
    }
}
