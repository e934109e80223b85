pub mod decrypt;
pub mod keys;
pub mod scan;
pub mod verify;

use crate::report::Report;
use crate::uc::keyring::KeyRing;
use crate::uc::{DecryptOptions, Decryptor};

/// Opens the report and prepares every key with the default provider: the common start of
/// `scan` and `decrypt`.
pub(crate) fn report_and_decryptor<'k>(
    ring: &'k KeyRing,
    report: Option<&std::path::Path>,
    try_all_keys: bool,
    spool_dir: Option<&std::path::Path>,
) -> Result<(Report, Decryptor<'k>), String> {
    let report = Report::create(report)?;
    let options = DecryptOptions {
        try_all_keys,
        spool_dir: spool_dir.map(std::path::Path::to_path_buf),
        ..DecryptOptions::default()
    };
    let dec = Decryptor::new(ring, crate::uc::provider::default_provider(), options)
        .map_err(|e| format!("cannot prepare the keys: {e}"))?;
    Ok((report, dec))
}
