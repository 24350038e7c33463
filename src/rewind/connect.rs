//! Phase 2, the source: open it (a server by connection string or the target's own
//! `primary_conninfo` — for a product reached over its HA port, openGauss, the host and port of
//! the connection string or the target's `replconninfoN` channels — a stopped data directory,
//! or the caller's own), read its control file,
//! and check that the two clusters fit — same flavor, same system, checksums or
//! `wal_log_hints` on the target, `full_page_writes` on the source, not the same directory.

use super::options::{Options, SourceSpec};
use crate::cluster::TargetCluster;
use crate::conninfo::ConnInfo;
use crate::control::{ControlFile, DbState};
use crate::error::{Error, Result};
use crate::flavor::SourceProtocol;
use crate::reporter::Reporter;
use crate::source::local::LocalSource;
use crate::source::opengauss::open::{self, OpenRequest};
use crate::source::server::ServerSource;
use crate::source::Source;
use std::path::Path;

/// The source, opened and checked.
pub(crate) struct Connected {
    /// Where everything is copied from.
    pub source: Box<dyn Source + Send>,
    /// Its connection settings, for a server (what `-R` writes).
    pub conninfo: Option<ConnInfo>,
    /// Its control file as read before anything was copied (phase 3 takes the source's redo
    /// point from it; see `RecoveryStart::earlier_of`).
    pub control: ControlFile,
}

/// What the source is opened for: its checks differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Build {
    /// All of them.
    Incremental,
    /// All but the target's checksums or `wal_log_hints`, which only finding the target's
    /// changed blocks needs.
    Full,
}

/// Opens the source (the caller's `given` one, else what `opts.source` names; `peer` is set to
/// its description, for errors) and checks it against `target` for a `build`.
pub(super) fn open(
    opts: &Options,
    given: Option<Box<dyn Source + Send>>,
    peer: &mut Option<String>,
    target: &mut TargetCluster,
    build: Build,
    rep: &mut dyn Reporter,
) -> Result<Connected> {
    let mut conn = open_unchecked(opts, given, peer, target, rep)?;
    let (t, src) = (target.control(), conn.source.as_mut());
    match build {
        Build::Incremental => check_compatible(opts, t, &conn.control, src)?,
        Build::Full => {
            check_identity(t, &conn.control)?;
            check_source(opts, &conn.control, src)?;
        }
    }
    needs_conninfo(opts, &conn)?;
    Ok(conn)
}

/// `-R` writes the connection string of a server source.
fn needs_conninfo(opts: &Options, conn: &Connected) -> Result<()> {
    if opts.write_recovery_conf && conn.conninfo.is_none() {
        return Err(Error::Usage(
            "--write-recovery-conf requires --source-server".into(),
        ));
    }
    Ok(())
}

/// The source, opened but not checked, and its control file (for a run that only has to say
/// that an earlier one completed).
pub(super) fn open_unchecked(
    opts: &Options,
    given: Option<Box<dyn Source + Send>>,
    peer: &mut Option<String>,
    target: &mut TargetCluster,
    rep: &mut dyn Reporter,
) -> Result<Connected> {
    let (mut source, conninfo) = match given {
        Some(source) => (source, None),
        None => open_source(opts, target, rep)?,
    };
    *peer = Some(source.describe());
    let control = source_control(source.as_mut(), target)?;
    Ok(Connected {
        source,
        conninfo,
        control,
    })
}

/// The source's control file.
pub(super) fn source_control(
    source: &mut dyn Source,
    target: &TargetCluster,
) -> Result<ControlFile> {
    ControlFile::decode(&source.fetch_file(target.flavor().table().control_file)?).map_err(|kind| {
        Error::Control {
            path: format!("{} global/pg_control", source.describe()).into(),
            kind,
        }
    })
}

fn open_source(
    opts: &Options,
    target: &mut TargetCluster,
    rep: &mut dyn Reporter,
) -> Result<(Box<dyn Source + Send>, Option<ConnInfo>)> {
    let ha = target.flavor().table().source_protocol == SourceProtocol::HaChannels;
    let connstr = match &opts.source {
        SourceSpec::Local(dir) => {
            let mut local = LocalSource::new(dir);
            local.set_jobs(opts.jobs);
            return Ok((Box::new(local), None));
        }
        _ if ha => return Ok((open_ha_source(opts, target, rep)?, None)),
        SourceSpec::Server(s) => s.clone(),
        SourceSpec::PrimaryConninfo => match target.setting("primary_conninfo")? {
            Some(s) => s,
            None => {
                return Err(Error::Usage(format!(
                    "no source given and \"{}\" has no primary_conninfo: use --source-server CONNSTR or --source-pgdata DIRECTORY",
                    opts.target.display()
                )))
            }
        },
    };
    let info = ConnInfo::resolve(&connstr, &opts.env).map_err(|e| Error::Usage(e.to_string()))?;
    let mut server = ServerSource::connect(info.clone(), opts.env.clone(), opts.client)?;
    server.set_jobs(opts.jobs);
    rep.step("connected to server");
    Ok((Box::new(server), Some(info)))
}

/// A source reached over the HA port (openGauss): the target's first `replconninfoN` channel
/// that answers as a source, or the server `--source-server` names. Channels passed over are
/// reported with what they answered.
fn open_ha_source(
    opts: &Options,
    target: &mut TargetCluster,
    rep: &mut dyn Reporter,
) -> Result<Box<dyn Source + Send>> {
    let req = OpenRequest {
        target: &opts.target,
        env: &opts.env,
        client: opts.client,
        local_term: read_term(&opts.target, target.flavor().table().term_file)?
            .and_then(|t| u32::try_from(t).ok()),
        jobs: opts.jobs,
    };
    let source = match &opts.source {
        SourceSpec::Server(connstr) => open::from_connstr(connstr, &req)?,
        _ => open::from_channels(target.settings()?, &req)?,
    };
    for skipped in source.skipped() {
        rep.info(&format!("channel skipped: {skipped}"));
    }
    let connected = format!("connected to server {}", source.channel());
    match source.skipped().is_empty() {
        true => rep.step(&connected),
        false => rep.info(&connected),
    }
    Ok(Box::new(source))
}

fn check_compatible(
    opts: &Options,
    target: &ControlFile,
    source: &ControlFile,
    src: &mut dyn Source,
) -> Result<()> {
    check_identity(target, source)?;
    let table = target.flavor.table();
    if table.requires_hint_logging && target.data_checksum_version == 0 && !target.wal_log_hints {
        return Err(Error::Incompatible(
            "target server needs to use either data checksums or \"wal_log_hints = on\"".into(),
        ));
    }
    check_source(opts, source, src)
}

/// The source's term, and the source itself (stopped, or live), fit the target.
fn check_source(opts: &Options, source: &ControlFile, src: &mut dyn Source) -> Result<()> {
    check_term(opts, src, source.flavor.table().term_file)?;
    match &opts.source {
        SourceSpec::Local(dir) => check_stopped_source(dir, &opts.target, source),
        _ => check_running_source(src, &opts.target, source.flavor.table().full_page_settings),
    }
}

/// The same product and version, and the same system (one `initdb`).
fn check_identity(target: &ControlFile, source: &ControlFile) -> Result<()> {
    // The flavor first: clusters of two majors do not share a system identifier (even
    // pg_upgrade's new cluster has initdb's own), and "PostgreSQL 16 vs 15" says more than two
    // identifiers would.
    if target.pg_control_version != source.pg_control_version
        || target.catalog_version_no != source.catalog_version_no
    {
        return Err(Error::Incompatible(format!(
            "clusters are not compatible: source is {} (catalog version {}), target is {} (catalog version {})",
            source.flavor.name(), source.catalog_version_no, target.flavor.name(), target.catalog_version_no
        )));
    }
    if target.system_identifier != source.system_identifier {
        return Err(Error::Incompatible(format!(
            "source and target clusters are from different systems (system identifiers {} and {})",
            source.system_identifier, target.system_identifier
        )));
    }
    Ok(())
}

/// A product that fences failovers with a term (openGauss): the source's must not be older
/// than the target's, or the source is not a newer primary of this cluster (gs_ctl's check).
fn check_term(opts: &Options, src: &mut dyn Source, term_file: Option<&str>) -> Result<()> {
    let (Some(file), Some(source_term)) = (term_file, src.term()?) else {
        return Ok(());
    };
    let path = opts.target.join(file);
    match read_term(&opts.target, Some(file))? {
        Some(t) if t > source_term => Err(Error::Incompatible(format!(
            "the target's term {t} (\"{}\") is newer than the source's term {source_term}: the source is not a newer primary of this cluster",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// The target's term from its term file (`None`: no term file, or the product has none).
fn read_term(target: &Path, term_file: Option<&str>) -> Result<Option<u64>> {
    let Some(file) = term_file else {
        return Ok(None);
    };
    let path = target.join(file);
    match std::fs::read(&path) {
        Ok(b) => Ok(b
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(|b| u64::from(u32::from_le_bytes(b)))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read file", &path, e)),
    }
}

/// A stopped data directory as the source: another directory, cleanly shut down, with
/// full-page writes.
fn check_stopped_source(dir: &Path, target: &Path, source: &ControlFile) -> Result<()> {
    if same_dir(dir, target) {
        return Err(Error::Usage(format!(
            "source and target data directory are the same (\"{}\")",
            target.display()
        )));
    }
    if !matches!(
        source.state,
        DbState::ShutDown | DbState::ShutDownInRecovery
    ) || crate::pgserver::is_running(dir)
    {
        return Err(Error::Incompatible(
            "source data directory must be shut down cleanly".into(),
        ));
    }
    // (openGauss records fullPageWrites off when incremental checkpoints log the first change
    // of each page instead: only PostgreSQL's control file can tell.)
    if source.flavor.table().requires_hint_logging && !source.checkpoint_copy.full_page_writes {
        return Err(Error::Incompatible(
            "full_page_writes must be enabled in the source server".into(),
        ));
    }
    Ok(())
}

/// A live server as the source: its settings and identity over SQL.
fn check_running_source(src: &mut dyn Source, target: &Path, full_page: &[&str]) -> Result<()> {
    let mut any_on = false;
    for name in full_page {
        any_on |= src.setting(name)?.as_deref() == Some("on");
    }
    if !any_on {
        return Err(Error::Incompatible(format!(
            "{} must be enabled in the source server",
            full_page.join(" or ")
        )));
    }
    if let Some(dir) = src.setting("data_directory")? {
        if same_dir(Path::new(&dir), target) {
            return Err(Error::Usage("source and target cluster are the same (the source server runs on the target data directory)".into()));
        }
    }
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
