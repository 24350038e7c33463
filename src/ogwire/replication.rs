//! openGauss's replication commands with a result set: `IDENTIFY_VERSION`, `IDENTIFY_MODE`,
//! `IDENTIFY_SYSTEM` and `IDENTIFY_CONSISTENCE`, each one row of text values.

use super::{query_err, OgConn, OgRow};
use crate::lsn::{Lsn, TimeLineId};
use crate::replication::IdentifySystem;
use crate::Result;

/// The answer to `IDENTIFY_VERSION`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentifyVersion {
    /// `PG_VERSION_NUM` of the server (openGauss says 90204).
    pub sversion: u32,
    /// Its protocol name (`MPPDB`).
    pub pversion: String,
    /// Its term: a failover raises it, and a node never follows one with a smaller term.
    pub term: u32,
}

/// The server's HA mode, as `IDENTIFY_MODE` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerMode(pub i32);

impl ServerMode {
    /// A node alone (`NORMAL_MODE`).
    pub const NORMAL: ServerMode = ServerMode(1);
    /// A primary (`PRIMARY_MODE`).
    pub const PRIMARY: ServerMode = ServerMode(2);
    /// A standby (`STANDBY_MODE`).
    pub const STANDBY: ServerMode = ServerMode(3);

    /// Whether a build may copy from it (what `gs_ctl build` accepts).
    pub fn can_be_source(self) -> bool {
        self == Self::NORMAL || self == Self::PRIMARY
    }
}

impl std::fmt::Display for ServerMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            0 => write!(f, "Unknown (0)"),
            1 => write!(f, "Normal (1)"),
            2 => write!(f, "Primary (2)"),
            3 => write!(f, "Standby (3)"),
            n => write!(f, "mode {n}"),
        }
    }
}

/// What `IDENTIFY_CONSISTENCE` says about the record at a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistence {
    /// The record there has this `xl_crc`.
    Crc(u32),
    /// `0`: the server has no valid record there.
    NoRecord,
    /// `1` (`IGNORE_REC_CRC`): it cannot say (it has no valid record there, and a standby is
    /// streaming from it).
    CannotSay,
}

impl Consistence {
    /// Parses the first column (`%X`: upper-case hex without padding). A record whose CRC is
    /// really 0 or 1 reads as [`Consistence::NoRecord`] or [`Consistence::CannotSay`]: the
    /// server's answer cannot tell them apart.
    pub fn parse(text: &str) -> Option<Consistence> {
        match text {
            "0" => Some(Consistence::NoRecord),
            "1" => Some(Consistence::CannotSay),
            t if !t.is_empty() && t.len() <= 8 => {
                u32::from_str_radix(t, 16).ok().map(Consistence::Crc)
            }
            _ => None,
        }
    }
}

/// The single row of a command's answer, with at least `columns` values.
fn one_row(query: &str, rows: Vec<OgRow>, columns: usize) -> Result<OgRow> {
    let n = rows.len();
    match rows.into_iter().next() {
        Some(row) if n == 1 && row.values.len() >= columns => Ok(row),
        _ => Err(query_err(
            query,
            format!("expected 1 row with at least {columns} columns, got {n} rows"),
        )),
    }
}

fn field<'a>(query: &str, row: &'a OgRow, i: usize, what: &str) -> Result<&'a str> {
    row.text(i)
        .ok_or_else(|| query_err(query, format!("missing or invalid {what}")))
}

fn number<T: std::str::FromStr>(query: &str, row: &OgRow, i: usize, what: &str) -> Result<T> {
    let t = field(query, row, i, what)?;
    t.trim()
        .parse()
        .map_err(|_| query_err(query, format!("invalid {what} \"{t}\"")))
}

impl OgConn {
    /// `IDENTIFY_VERSION`: the server's version, protocol name and term.
    pub async fn identify_version(&mut self) -> Result<IdentifyVersion> {
        const Q: &str = "IDENTIFY_VERSION";
        let row = one_row(Q, self.simple_query(Q).await?, 3)?;
        Ok(IdentifyVersion {
            sversion: number(Q, &row, 0, "sversion")?,
            pversion: field(Q, &row, 1, "pversion")?.to_string(),
            term: number(Q, &row, 2, "term")?,
        })
    }

    /// `IDENTIFY_MODE`: primary, standby, alone, ….
    pub async fn identify_mode(&mut self) -> Result<ServerMode> {
        const Q: &str = "IDENTIFY_MODE";
        let row = one_row(Q, self.simple_query(Q).await?, 1)?;
        Ok(ServerMode(number(Q, &row, 0, "smode")?))
    }

    /// `IDENTIFY_SYSTEM`: system identifier, timeline and flush position (no database).
    pub async fn identify_system(&mut self) -> Result<IdentifySystem> {
        const Q: &str = "IDENTIFY_SYSTEM";
        let row = one_row(Q, self.simple_query(Q).await?, 3)?;
        let xlogpos = field(Q, &row, 2, "xlogpos")?;
        Ok(IdentifySystem {
            systemid: number(Q, &row, 0, "systemid")?,
            timeline: TimeLineId(number(Q, &row, 1, "timeline")?),
            xlogpos: xlogpos
                .parse()
                .map_err(|e| query_err(Q, format!("invalid xlogpos: {e}")))?,
            dbname: row.text(3).map(str::to_string),
        })
    }

    /// `IDENTIFY_CONSISTENCE lsn`: what the server says about the record starting at `lsn`.
    pub async fn identify_consistence(&mut self, lsn: Lsn) -> Result<Consistence> {
        let q = format!("IDENTIFY_CONSISTENCE {lsn}");
        let row = one_row(&q, self.simple_query(&q).await?, 1)?;
        let crc = field(&q, &row, 0, "requestRemoteCrc")?;
        Consistence::parse(crc)
            .ok_or_else(|| query_err(&q, format!("invalid record CRC \"{crc}\"")))
    }
}
