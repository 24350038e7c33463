//! Timeline history files (`NNNNNNNN.history`): parsing with PostgreSQL's rules, the timeline a
//! WAL position belongs to, and the point where two histories part.
//!
//! Used by the divergence phase: the target's history comes from its `pg_wal`, the source's from
//! the `TIMELINE_HISTORY` replication command (or the source's `pg_wal`).
//!
//! A history file lists the timelines that *precede* its own, one per line:
//! `<parent tli><whitespace><switchpoint X/X><whitespace><reason>`. Blank lines and lines whose
//! first non-blank character is `#` are ignored. PostgreSQL (`readTimeLineHistory`, and
//! pg_rewind's copy of it) requires the TLIs to increase strictly and to be below the file's own
//! timeline; we also require the switchpoints not to go backwards, because a history in which a
//! child timeline begins before its parent would make every "which timeline holds this LSN"
//! answer ambiguous.

use crate::lsn::{Lsn, TimeLineId, XLogSegNo};
use std::path::Path;

/// One timeline of a history: the WAL range `[begin, end)` written on `tli`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeLineHistoryEntry {
    /// The timeline.
    pub tli: TimeLineId,
    /// First position on this timeline (inclusive); `0/0` for the first timeline.
    pub begin: Lsn,
    /// Switchpoint to the next timeline (exclusive); `None` for the last entry, which is the
    /// timeline whose history this is and which extends without limit.
    pub end: Option<Lsn>,
}

impl TimeLineHistoryEntry {
    /// Whether `lsn` lies in `[begin, end)`.
    pub fn contains(&self, lsn: Lsn) -> bool {
        self.begin <= lsn && self.end.is_none_or(|end| lsn < end)
    }
}

/// What is wrong with a history file. Line numbers are 1-based and count every line, including
/// comments and blank ones, so that they match what an editor shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A line is not `tli<ws>X/X[<ws>reason]`, or its TLI is 0 or out of range.
    #[error("syntax error in line {line}")]
    Syntax {
        /// 1-based line number.
        line: usize,
    },
    /// A TLI is not greater than the one on a previous line.
    #[error(
        "timeline IDs must be in increasing sequence: {tli} follows {previous} in line {line}"
    )]
    NonIncreasingTli {
        /// 1-based line number.
        line: usize,
        /// The TLI on that line.
        tli: TimeLineId,
        /// The TLI of the previous entry.
        previous: TimeLineId,
    },
    /// A switchpoint is lower than the one on a previous line.
    #[error("switchpoint {lsn} in line {line} precedes the previous switchpoint {previous}")]
    SwitchpointBackwards {
        /// 1-based line number.
        line: usize,
        /// The switchpoint on that line.
        lsn: Lsn,
        /// The previous switchpoint.
        previous: Lsn,
    },
    /// A TLI is not below the timeline the file belongs to.
    #[error(
        "timeline ID {tli} in line {line} must be less than the history's own timeline {target}"
    )]
    TliNotBelowTarget {
        /// 1-based line number.
        line: usize,
        /// The TLI on that line.
        tli: TimeLineId,
        /// The timeline whose history the file is.
        target: TimeLineId,
    },
    /// A timeline's switchpoint lies beyond the end of the WAL of the cluster the history
    /// belongs to: the file does not describe that cluster.
    #[error("timeline {tli} ends at {switchpoint}, beyond the cluster's end of WAL at {end}")]
    SwitchpointBeyondEnd {
        /// The timeline that ends there.
        tli: TimeLineId,
        /// Its switchpoint.
        switchpoint: Lsn,
        /// The cluster's end of WAL.
        end: Lsn,
    },
}

/// Checks a parsed history against the WAL position its cluster has reached: every
/// switchpoint must lie at or before `end`, since a cluster is on its current timeline only
/// once it has passed the switch to it.
pub fn check_reached(history: &[TimeLineHistoryEntry], end: Lsn) -> Result<(), HistoryError> {
    match history
        .iter()
        .find_map(|e| e.end.filter(|&sw| sw > end).map(|sw| (e.tli, sw)))
    {
        Some((tli, switchpoint)) => Err(HistoryError::SwitchpointBeyondEnd {
            tli,
            switchpoint,
            end,
        }),
        None => Ok(()),
    }
}

/// The file name of timeline `tli`'s history: `%08X.history` (`TLHistoryFileName`).
pub fn history_file_name(tli: TimeLineId) -> String {
    format!("{:08X}.history", tli.0)
}

/// Splits one non-comment line into its TLI and switchpoint; the reason is ignored.
fn parse_line(line: &str) -> Option<(TimeLineId, Lsn)> {
    let mut fields = line.split_ascii_whitespace();
    let tli = fields.next()?;
    // `%u` in PostgreSQL's sscanf accepts only digits here in practice; a sign or hex would be
    // a file no server wrote.
    if !tli.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let tli: u32 = tli.parse().ok().filter(|&t| t != 0)?;
    let lsn: Lsn = fields.next()?.parse().ok()?;
    Some((TimeLineId(tli), lsn))
}

/// Parses the text of the history file of `target_tli`. The result lists every timeline from
/// the first to `target_tli`, oldest first; each entry begins where the previous one ends, the
/// first at `0/0`, and the last (`target_tli`) has no end. A file without entries (or an absent
/// file, which the caller may pass as `""`) means `target_tli` began at `0/0`.
pub fn parse_history(
    text: &str,
    target_tli: TimeLineId,
) -> Result<Vec<TimeLineHistoryEntry>, HistoryError> {
    let mut entries: Vec<TimeLineHistoryEntry> = Vec::new();
    let mut prev_end = Lsn::INVALID;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (tli, lsn) = parse_line(line).ok_or(HistoryError::Syntax { line: line_no })?;
        if let Some(last) = entries.last() {
            if tli <= last.tli {
                return Err(HistoryError::NonIncreasingTli {
                    line: line_no,
                    tli,
                    previous: last.tli,
                });
            }
            if lsn < prev_end {
                return Err(HistoryError::SwitchpointBackwards {
                    line: line_no,
                    lsn,
                    previous: prev_end,
                });
            }
        }
        if tli >= target_tli {
            return Err(HistoryError::TliNotBelowTarget {
                line: line_no,
                tli,
                target: target_tli,
            });
        }
        entries.push(TimeLineHistoryEntry {
            tli,
            begin: prev_end,
            end: Some(lsn),
        });
        prev_end = lsn;
    }
    entries.push(TimeLineHistoryEntry {
        tli: target_tli,
        begin: prev_end,
        end: None,
    });
    Ok(entries)
}

/// Reads and parses the history file at `path`, which belongs to timeline `tli`. Errors name
/// the file: [`crate::Error::Io`] when it cannot be read, [`crate::Error::History`] when it is
/// malformed (including text that is not UTF-8, reported as a syntax error in line 1).
pub fn read_history_file(path: &Path, tli: TimeLineId) -> crate::Result<Vec<TimeLineHistoryEntry>> {
    let bytes = std::fs::read(path).map_err(|e| crate::Error::io("open file", path, e))?;
    let history_error = |kind| crate::Error::History {
        path: path.to_path_buf(),
        kind,
    };
    let text =
        String::from_utf8(bytes).map_err(|_| history_error(HistoryError::Syntax { line: 1 }))?;
    parse_history(&text, tli).map_err(history_error)
}

/// The timeline that holds `lsn` according to `history` (`tliOfPointInHistory`), or `None` when
/// no entry covers it. A history from [`parse_history`] covers every position, so `None` only
/// comes from an empty or hand-made slice.
pub fn tli_at(history: &[TimeLineHistoryEntry], lsn: Lsn) -> Option<TimeLineId> {
    history.iter().find(|e| e.contains(lsn)).map(|e| e.tli)
}

/// The file name of WAL segment `segno` (of `seg_size` bytes) along `history`: the timeline that
/// holds the segment's last byte, i.e. the newest timeline begun in or before the segment —
/// the file recovery opens (`XLogFileReadAnyTLI`). Timeline 1 when the history is empty.
pub fn segment_file_name(
    history: &[TimeLineHistoryEntry],
    segno: XLogSegNo,
    seg_size: u32,
) -> String {
    let last = Lsn(segno.next().start_lsn(seg_size).0.saturating_sub(1));
    segno.file_name(tli_at(history, last).unwrap_or(TimeLineId(1)), seg_size)
}

/// Where the histories of the source and the target part, as pg_rewind's
/// `findCommonAncestorTimeline` finds it: walk both from the start while entries agree on `tli`
/// and `begin`; the last agreeing entry is the common ancestor timeline, and the divergence point
/// is the lower of its two ends (an end of `None`, "still current", counts as infinity).
///
/// Returns `Some((lsn, tli))` with `tli` the common ancestor timeline. This includes the case
/// where one history is a prefix of the other (e.g. the target stayed on timeline 1 and the
/// source was promoted to 2 at X): the result is `(X, 1)`, and the caller decides from the
/// target's end of WAL whether anything was written past X.
///
/// Returns `None` when the histories tell nothing: either their first entries already differ
/// (no common ancestor, which pg_rewind reports as an error), or every entry agrees and both end
/// on the same still-current timeline (same TLI: only comparing the two sides' WAL records can
/// tell whether they diverged). Tell the two apart with `source.first() == target.first()`.
pub fn find_divergence(
    source: &[TimeLineHistoryEntry],
    target: &[TimeLineHistoryEntry],
) -> Option<(Lsn, TimeLineId)> {
    let common = source
        .iter()
        .zip(target)
        .take_while(|(s, t)| s.tli == t.tli && s.begin == t.begin)
        .last()?;
    let (s, t) = common;
    let end = match (s.end, t.end) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return None,
    };
    Some((end, s.tli))
}

#[cfg(test)]
mod segment_name_tests {
    use super::*;

    #[test]
    fn segments_are_named_by_the_timeline_recovery_opens() {
        let seg = 16 << 20;
        // Timeline 2 begins inside segment 5: segment 4 is on 1, segment 5 on 2.
        let h = parse_history("1\t0/5000100\tpromoted\n", TimeLineId(2)).unwrap();
        assert_eq!(
            segment_file_name(&h, XLogSegNo(4), seg),
            "000000010000000000000004"
        );
        assert_eq!(
            segment_file_name(&h, XLogSegNo(5), seg),
            "000000020000000000000005"
        );
        // A switch exactly at a segment boundary leaves the segment before it on the old one.
        let h = parse_history("1\t0/6000000\tpromoted\n", TimeLineId(2)).unwrap();
        assert_eq!(
            segment_file_name(&h, XLogSegNo(5), seg),
            "000000010000000000000005"
        );
        assert_eq!(
            segment_file_name(&h, XLogSegNo(6), seg),
            "000000020000000000000006"
        );
        assert_eq!(
            segment_file_name(&[], XLogSegNo(1), seg),
            "000000010000000000000001"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsn(s: &str) -> Lsn {
        s.parse().unwrap()
    }

    fn entry(tli: u32, begin: &str, end: Option<&str>) -> TimeLineHistoryEntry {
        TimeLineHistoryEntry {
            tli: TimeLineId(tli),
            begin: lsn(begin),
            end: end.map(lsn),
        }
    }

    #[test]
    fn switchpoints_must_be_reached() {
        let h = parse_history("1\t0/3000000\treason\n2\t0/5000000\n", TimeLineId(3)).unwrap();
        assert_eq!(check_reached(&h, Lsn(0x5000000)), Ok(()));
        assert_eq!(check_reached(&h, Lsn(0x6000000)), Ok(()));
        assert_eq!(
            check_reached(&h, Lsn(0x4000000)),
            Err(HistoryError::SwitchpointBeyondEnd {
                tli: TimeLineId(2),
                switchpoint: Lsn(0x5000000),
                end: Lsn(0x4000000)
            })
        );
    }

    #[test]
    fn valid_histories() {
        let cases: &[(&str, u32, Vec<TimeLineHistoryEntry>)] = &[
            ("", 1, vec![entry(1, "0/0", None)]),
            ("# only a comment\n\n   \n", 3, vec![entry(3, "0/0", None)]),
            (
                "1\t0/3000060\tno recovery target specified\n",
                2,
                vec![entry(1, "0/0", Some("0/3000060")), entry(2, "0/3000060", None)],
            ),
            (
                "# c\n  1 0/3000060 reason with spaces\n\n2\t1/A0\tat restore point \"x\"\n4\t1/A0\n",
                7,
                vec![
                    entry(1, "0/0", Some("0/3000060")),
                    entry(2, "0/3000060", Some("1/A0")),
                    entry(4, "1/A0", Some("1/A0")),
                    entry(7, "1/A0", None),
                ],
            ),
            ("1\t0/10\r\n", 2, vec![entry(1, "0/0", Some("0/10")), entry(2, "0/10", None)]),
        ];
        for (text, tli, want) in cases {
            assert_eq!(
                &parse_history(text, TimeLineId(*tli)).unwrap(),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn malformed_histories() {
        use HistoryError::*;
        let t = TimeLineId;
        let cases: &[(&str, u32, HistoryError)] = &[
            ("x\t0/1\n", 2, Syntax { line: 1 }),
            ("\n1\n", 2, Syntax { line: 2 }),
            ("1\tzz\n", 2, Syntax { line: 1 }),
            ("1\t0/1/2\n", 2, Syntax { line: 1 }),
            ("-1\t0/1\n", 2, Syntax { line: 1 }),
            ("0\t0/1\n", 2, Syntax { line: 1 }),
            ("99999999999\t0/1\n", 2, Syntax { line: 1 }),
            ("1a\t0/1\n", 2, Syntax { line: 1 }),
            ("1\t0/123456789\n", 2, Syntax { line: 1 }),
            (
                "2\t0/1\n2\t0/2\n",
                5,
                NonIncreasingTli {
                    line: 2,
                    tli: t(2),
                    previous: t(2),
                },
            ),
            (
                "3\t0/1\n#\n2\t0/2\n",
                5,
                NonIncreasingTli {
                    line: 3,
                    tli: t(2),
                    previous: t(3),
                },
            ),
            (
                "1\t0/20\n2\t0/10\n",
                3,
                SwitchpointBackwards {
                    line: 2,
                    lsn: lsn("0/10"),
                    previous: lsn("0/20"),
                },
            ),
            (
                "1\t0/1\n2\t0/2\n",
                2,
                TliNotBelowTarget {
                    line: 2,
                    tli: t(2),
                    target: t(2),
                },
            ),
            (
                "3\t0/1\n",
                2,
                TliNotBelowTarget {
                    line: 1,
                    tli: t(3),
                    target: t(2),
                },
            ),
            (
                "1\t0/1\n",
                0,
                TliNotBelowTarget {
                    line: 1,
                    tli: t(1),
                    target: t(0),
                },
            ),
        ];
        for (text, tli, want) in cases {
            assert_eq!(
                &parse_history(text, TimeLineId(*tli)).unwrap_err(),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        let samples = [
            "\u{0}",
            "1\t\u{FFFF}/0",
            "1 0/0 \u{2028}",
            "#\n\t\t\n1",
            "4294967295\t0/0",
        ];
        for s in samples {
            for tli in [0, 1, u32::MAX] {
                let _ = parse_history(s, TimeLineId(tli));
            }
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(history_file_name(TimeLineId(2)), "00000002.history");
        assert_eq!(history_file_name(TimeLineId(0x1A)), "0000001A.history");
    }

    #[test]
    fn read_file_names_path_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000002.history");
        std::fs::write(&path, "1\tnope\n").unwrap();
        let err = read_history_file(&path, TimeLineId(2)).unwrap_err();
        assert!(err.to_string().contains("00000002.history"), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");
        std::fs::write(&path, "1\t0/3000060\tno recovery target specified\n").unwrap();
        let h = read_history_file(&path, TimeLineId(2)).unwrap();
        assert_eq!(h.len(), 2);
        let missing = read_history_file(&dir.path().join("x.history"), TimeLineId(2));
        assert!(matches!(missing, Err(crate::Error::Io { .. })));
    }

    #[test]
    fn timeline_of_position() {
        let h = parse_history("1\t0/100\n3\t0/200\n", TimeLineId(4)).unwrap();
        let cases = [
            ("0/0", 1),
            ("0/FF", 1),
            ("0/100", 3),
            ("0/1FF", 3),
            ("0/200", 4),
            ("FF/0", 4),
        ];
        for (pos, want) in cases {
            assert_eq!(tli_at(&h, lsn(pos)), Some(TimeLineId(want)), "{pos}");
        }
        assert_eq!(tli_at(&[], lsn("0/1")), None);
    }

    #[test]
    fn divergence() {
        let h = |text: &str, tli: u32| parse_history(text, TimeLineId(tli)).unwrap();
        let t1 = h("", 1);
        let t2 = h("1\t0/300\n", 2);
        let t2_other = h("1\t0/280\n", 2);
        let t3 = h("1\t0/300\n2\t0/500\n", 3);
        let t3_via_1 = h("1\t0/400\n", 3);
        let t5 = [entry(5, "0/0", None)];
        type Case<'a> = (
            &'a [TimeLineHistoryEntry],
            &'a [TimeLineHistoryEntry],
            Option<(&'a str, u32)>,
        );
        let cases: Vec<Case> = vec![
            // Same timeline, same history: histories cannot tell.
            (&t1, &t1, None),
            (&t2, &t2, None),
            // One is a prefix of the other: the switchpoint off the common timeline.
            (&t2, &t1, Some(("0/300", 1))),
            (&t1, &t2, Some(("0/300", 1))),
            (&t3, &t2, Some(("0/500", 2))),
            // Two promotions to the same TLI at different points: parted on timeline 1.
            (&t2, &t2_other, Some(("0/280", 1))),
            // Siblings 2 and 3 both forked from 1.
            (&t2, &t3_via_1, Some(("0/300", 1))),
            // No common first entry.
            (&t2, &t5, None),
            (&[][..], &t1, None),
        ];
        for (source, target, want) in cases {
            let want = want.map(|(l, t)| (lsn(l), TimeLineId(t)));
            assert_eq!(
                find_divergence(source, target),
                want,
                "{source:?} vs {target:?}"
            );
        }
    }
}
