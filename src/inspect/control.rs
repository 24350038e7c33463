//! `gsbuild inspect control`: pg_control printed with pg_controldata's field names. (Being written.)

use std::io::Write;
use std::path::Path;

/// Prints the control file of `datadir` (or the file itself when `datadir` is a file) to `out`.
pub fn run(datadir: &Path, out: &mut dyn Write) -> crate::Result<()> {
    let _ = (datadir, out);
    Err(crate::Error::Usage(
        "inspect control is not built yet".into(),
    ))
}
