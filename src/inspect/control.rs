//! `gsbuild inspect control`: pg_control printed line for line as `pg_controldata` prints it
//! (same labels, order and value formats, untranslated), so tests can use pg_controldata as an
//! oracle and people can diff the two.
//!
//! No phase: a tool for people and tests.

use crate::control::{read_control_file, ControlFile};
use crate::flavor::ControlLayout;
use chrono::TimeZone;
use std::io::Write;
use std::path::Path;

/// Width of pg_controldata's label column, colon included.
const LABEL_WIDTH: usize = 38;

/// Prints the control file of `datadir` (or the file itself when `datadir` is a file) to `out`.
pub fn run(datadir: &Path, out: &mut dyn Write) -> crate::Result<()> {
    let file = read_control_file(datadir)?;
    for (label, value) in lines(&file) {
        let label = format!("{label}:");
        writeln!(out, "{label:<LABEL_WIDTH$}{value}")
            .map_err(|e| crate::Error::io("write to", "standard output", e))?;
    }
    Ok(())
}

/// Every line pg_controldata prints for the file's flavor, as `(label, value)`.
pub fn lines(f: &ControlFile) -> Vec<(&'static str, String)> {
    if f.flavor.formats().control == ControlLayout::OpenGauss {
        let mut v = og_checkpoint_lines(f);
        v.extend(og_setting_lines(f));
        return v;
    }
    let mut v = checkpoint_lines(f);
    v.extend(setting_lines(f));
    v
}

fn checkpoint_lines(f: &ControlFile) -> Vec<(&'static str, String)> {
    let cp = &f.checkpoint_copy;
    let redo_file = f.redo_wal_file_name().unwrap_or_else(|| "???".into());
    vec![
        (
            "pg_control version number",
            f.pg_control_version.to_string(),
        ),
        ("Catalog version number", f.catalog_version_no.to_string()),
        (
            "Database system identifier",
            f.system_identifier.to_string(),
        ),
        ("Database cluster state", f.state.to_string()),
        ("pg_control last modified", local_time(f.time)),
        ("Latest checkpoint location", f.checkpoint.to_string()),
        ("Latest checkpoint's REDO location", cp.redo.to_string()),
        ("Latest checkpoint's REDO WAL file", redo_file),
        (
            "Latest checkpoint's TimeLineID",
            cp.this_timeline_id.to_string(),
        ),
        (
            "Latest checkpoint's PrevTimeLineID",
            cp.prev_timeline_id.to_string(),
        ),
        (
            "Latest checkpoint's full_page_writes",
            on_off(cp.full_page_writes),
        ),
        ("Latest checkpoint's NextXID", cp.next_xid.to_string()),
        ("Latest checkpoint's NextOID", cp.next_oid.to_string()),
        (
            "Latest checkpoint's NextMultiXactId",
            cp.next_multi.to_string(),
        ),
        (
            "Latest checkpoint's NextMultiOffset",
            cp.next_multi_offset.to_string(),
        ),
        ("Latest checkpoint's oldestXID", cp.oldest_xid.to_string()),
        (
            "Latest checkpoint's oldestXID's DB",
            cp.oldest_xid_db.to_string(),
        ),
        (
            "Latest checkpoint's oldestActiveXID",
            cp.oldest_active_xid.to_string(),
        ),
        (
            "Latest checkpoint's oldestMultiXid",
            cp.oldest_multi.to_string(),
        ),
        (
            "Latest checkpoint's oldestMulti's DB",
            cp.oldest_multi_db.to_string(),
        ),
        (
            "Latest checkpoint's oldestCommitTsXid",
            cp.oldest_commit_ts_xid.to_string(),
        ),
        (
            "Latest checkpoint's newestCommitTsXid",
            cp.newest_commit_ts_xid.to_string(),
        ),
        ("Time of latest checkpoint", local_time(cp.time)),
    ]
}

fn setting_lines(f: &ControlFile) -> Vec<(&'static str, String)> {
    let by_value = if f.float8_by_val {
        "by value"
    } else {
        "by reference"
    };
    let mut v = vec![
        (
            "Fake LSN counter for unlogged rels",
            f.unlogged_lsn.to_string(),
        ),
        (
            "Minimum recovery ending location",
            f.min_recovery_point.to_string(),
        ),
        (
            "Min recovery ending loc's timeline",
            f.min_recovery_point_tli.to_string(),
        ),
        ("Backup start location", f.backup_start_point.to_string()),
        ("Backup end location", f.backup_end_point.to_string()),
        (
            "End-of-backup record required",
            yes_no(f.backup_end_required),
        ),
        ("wal_level setting", f.wal_level.to_string()),
        ("wal_log_hints setting", on_off(f.wal_log_hints)),
        ("max_connections setting", f.max_connections.to_string()),
        (
            "max_worker_processes setting",
            f.max_worker_processes.to_string(),
        ),
        ("max_wal_senders setting", f.max_wal_senders.to_string()),
        (
            "max_prepared_xacts setting",
            f.max_prepared_xacts.to_string(),
        ),
        (
            "max_locks_per_xact setting",
            f.max_locks_per_xact.to_string(),
        ),
        (
            "track_commit_timestamp setting",
            on_off(f.track_commit_timestamp),
        ),
        ("Maximum data alignment", f.max_align.to_string()),
        ("Database block size", f.blcksz.to_string()),
        (
            "Blocks per segment of large relation",
            f.relseg_size.to_string(),
        ),
        ("WAL block size", f.xlog_blcksz.to_string()),
        ("Bytes per WAL segment", f.xlog_seg_size.to_string()),
        ("Maximum length of identifiers", f.name_data_len.to_string()),
        ("Maximum columns in an index", f.index_max_keys.to_string()),
        (
            "Maximum size of a TOAST chunk",
            f.toast_max_chunk_size.to_string(),
        ),
        ("Size of a large-object chunk", f.loblksize.to_string()),
        // Not stored any more; pg_controldata prints the only value still possible.
        ("Date/time type storage", "64-bit integers".into()),
        ("Float8 argument passing", by_value.into()),
        (
            "Data page checksum version",
            f.data_checksum_version.to_string(),
        ),
    ];
    if let Some(signed) = f.default_char_signedness {
        let words = if signed { "signed" } else { "unsigned" };
        v.push(("Default char data signedness", words.into()));
    }
    let nonce: String = f
        .mock_authentication_nonce
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    v.push(("Mock authentication nonce", nonce));
    v
}

/// openGauss's pg_controldata, up to the latest checkpoint's time.
fn og_checkpoint_lines(f: &ControlFile) -> Vec<(&'static str, String)> {
    let cp = &f.checkpoint_copy;
    let prior = f.prev_checkpoint.unwrap_or_default();
    // `remove_seg` is a segment number, printed with the LSN format.
    let remove = crate::lsn::Lsn(cp.remove_seg.unwrap_or(0));
    vec![
        (
            "pg_control version number",
            f.pg_control_version.to_string(),
        ),
        ("Catalog version number", f.catalog_version_no.to_string()),
        (
            "Database system identifier",
            f.system_identifier.to_string(),
        ),
        ("Database cluster state", f.state.to_string()),
        ("pg_control last modified", local_time(f.time)),
        ("Latest checkpoint location", f.checkpoint.to_string()),
        ("Prior checkpoint location", prior.to_string()),
        ("Latest checkpoint's REDO location", cp.redo.to_string()),
        (
            "Latest checkpoint's TimeLineID",
            cp.this_timeline_id.to_string(),
        ),
        (
            "Latest checkpoint's full_page_writes",
            on_off(cp.full_page_writes),
        ),
        ("Latest checkpoint's NextXID", cp.next_xid.0.to_string()),
        ("Latest checkpoint's NextOID", cp.next_oid.to_string()),
        (
            "Latest checkpoint's NextMultiXactId",
            cp.next_multi.to_string(),
        ),
        (
            "Latest checkpoint's NextMultiOffset",
            cp.next_multi_offset.to_string(),
        ),
        ("Latest checkpoint's oldestXID", cp.oldest_xid.to_string()),
        (
            "Latest checkpoint's oldestXID's DB",
            cp.oldest_xid_db.to_string(),
        ),
        (
            "Latest checkpoint's oldestActiveXID",
            cp.oldest_active_xid.to_string(),
        ),
        ("Latest checkpoint's remove lsn", remove.to_string()),
        ("Time of latest checkpoint", local_time(cp.time)),
    ]
}

/// openGauss's pg_controldata, from the minimum recovery point on.
fn og_setting_lines(f: &ControlFile) -> Vec<(&'static str, String)> {
    let by_value = |b: Option<bool>| {
        if b.unwrap_or(false) {
            "by value"
        } else {
            "by reference"
        }
    };
    let times = match f.enable_int_times {
        Some(false) => "floating-point numbers",
        _ => "64-bit integers",
    };
    let wal_level = match f.wal_level.0 {
        0 => "minimal",
        1 => "archive",
        2 => "hot_standby",
        3 => "logical",
        _ => "unrecognized wal_level",
    };
    vec![
        (
            "Minimum recovery ending location",
            f.min_recovery_point.to_string(),
        ),
        ("Backup start location", f.backup_start_point.to_string()),
        ("Backup end location", f.backup_end_point.to_string()),
        (
            "End-of-backup record required",
            yes_no(f.backup_end_required),
        ),
        ("Current wal_level setting", wal_level.into()),
        (
            "Current max_connections setting",
            f.max_connections.to_string(),
        ),
        (
            "Current max_prepared_xacts setting",
            f.max_prepared_xacts.to_string(),
        ),
        (
            "Current max_locks_per_xact setting",
            f.max_locks_per_xact.to_string(),
        ),
        ("Maximum data alignment", f.max_align.to_string()),
        ("Database block size", f.blcksz.to_string()),
        (
            "Blocks per segment of large relation",
            f.relseg_size.to_string(),
        ),
        ("WAL block size", f.xlog_blcksz.to_string()),
        ("Bytes per WAL segment", f.xlog_seg_size.to_string()),
        ("Maximum length of identifiers", f.name_data_len.to_string()),
        ("Maximum columns in an index", f.index_max_keys.to_string()),
        (
            "Maximum size of a TOAST chunk",
            f.toast_max_chunk_size.to_string(),
        ),
        ("Date/time type storage", times.into()),
        ("Float4 argument passing", by_value(f.float4_by_val).into()),
        (
            "Float8 argument passing",
            by_value(Some(f.float8_by_val)).into(),
        ),
        (
            "Database system TimeLine",
            f.startup_timeline.unwrap_or_default().to_string(),
        ),
    ]
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.into()
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// `strftime("%c", localtime(t))` in the C locale, in the process's time zone (`TZ`), as
/// pg_controldata prints times; `???` when the time cannot be represented.
fn local_time(t: i64) -> String {
    match chrono::Local.timestamp_opt(t, 0).single() {
        Some(time) => time.format("%a %b %e %H:%M:%S %Y").to_string(),
        None => "???".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_locale_time_format() {
        // The day of month is space padded, as with %c in the C locale.
        let text = local_time(1_700_000_000);
        assert_eq!(text.len(), "Tue Nov 14 22:13:20 2023".len(), "{text}");
        assert_eq!(local_time(i64::MAX), "???");
    }
}
