//! The plan as people read it (`--dry-run`).

use super::{action_counts, action_name, Action, Plan, RecoveryStartFrom};
use crate::lsn::human_bytes;
use std::fmt::Write as _;

impl Plan {
    /// The divergence and the checkpoint recovery starts from.
    fn write_start(&self, s: &mut String) {
        match &self.divergence {
            None if self.full => s.push_str("full build: every file copied from the source\n"),
            None => s.push_str("no rewind required\n"),
            Some(d) => {
                let _ = writeln!(
                    s,
                    "servers diverged at WAL location {} on timeline {} ({})",
                    d.lsn,
                    d.tli,
                    d.method.as_str()
                );
            }
        }
        if let Some(c) = self.checkpoint.as_ref().filter(|_| self.full) {
            let _ = writeln!(
                s,
                "recovery starts at the source's checkpoint at {} on timeline {}, redo {}",
                c.lsn, c.tli, c.redo
            );
        } else if let Some(c) = &self.checkpoint {
            let _ = writeln!(
                s,
                "rewinding from last common checkpoint at {} on timeline {}, redo {}",
                c.lsn, c.tli, c.redo
            );
        }
    }

    /// The plan's WAL and replay lines of [`Plan::to_text`].
    fn write_wal_text(&self, s: &mut String) {
        if let Some(w) = &self.wal {
            let r = &w.recovery_start;
            if r.from == RecoveryStartFrom::SourceRestartpoint {
                let _ = writeln!(
                    s,
                    "recovery starts at the source's last restartpoint at {} on timeline {}, redo {} (older than the common checkpoint)",
                    r.checkpoint, r.tli, r.redo
                );
            }
            if w.target_segments_kept > 0 {
                let _ = writeln!(
                    s,
                    "WAL: keep the target's {} segments of common history from the redo point",
                    w.target_segments_kept
                );
            }
            let _ = writeln!(
                s,
                "WAL: stream from {} (segment {}), source now at {}",
                w.start, w.first_segment, w.source_position
            );
        }
        if self.totals.blocks_left_to_replay > 0 {
            let _ = writeln!(
                s,
                "blocks: {} changed blocks left to replay (their first record after the redo point rewrites them whole)",
                self.totals.blocks_left_to_replay
            );
        }
        if self.totals.blocks_deferred > 0 {
            let _ = writeln!(
                s,
                "blocks: {} changed blocks copied only if the source's WAL does not rewrite them first",
                self.totals.blocks_deferred
            );
        }
    }

    /// The plan for people: the divergence, then one line per acted-on path.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "source: {}\ntarget: {}\nmajor: {}",
            self.source, self.target, self.flavor
        );
        self.write_start(&mut s);
        self.write_wal_text(&mut s);
        for f in &self.files {
            // A file left alone but for its changed blocks reads as what happens to it.
            let blocks = f.blocks.len() + f.deferred_blocks.len();
            let what = match (f.action, blocks) {
                (Action::None, 1..) => "blocks",
                (a, _) => action_name(a),
            };
            let _ = write!(s, "{what:<9} {}", f.path);
            let plural = |n: usize| if n == 1 { "block" } else { "blocks" };
            match f.deferred_blocks.len() {
                _ if blocks == 0 => {}
                0 => {
                    let _ = write!(s, " ({blocks} {})", plural(blocks));
                }
                d => {
                    let _ = write!(
                        s,
                        " ({blocks} {}, {d} waiting for the source's WAL)",
                        plural(blocks)
                    );
                }
            }
            let _ = writeln!(s, " [{}]", human_bytes(f.bytes));
        }
        let t = &self.totals;
        let _ = writeln!(
            s,
            "total: {} to copy ({} blocks) of {} in the source; {}",
            human_bytes(t.bytes_to_copy),
            t.blocks,
            human_bytes(t.source_bytes),
            action_counts::by_name(&t.actions)
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        s
    }
}
