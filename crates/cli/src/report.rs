//! The JSON-lines report (one object per item, then {"summary": ...}), the item record shared
//! with the journal, and time formatting.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One item's line. Field names are the contract's; `null` where a field does not apply.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Record {
    /// Id relative to the input: "box.mbox#17", "Maildir/cur/1.host:2,S", "tree/a/b.eml".
    pub item: String,
    /// decrypted | plain | no_key | failed | skipped (scan also: key_found;
    /// verify: ok | missing | mismatch | undecrypted).
    pub status: String,
    pub reason: Option<String>,
    pub cipher: Option<String>,
    pub key_transport: Option<String>,
    pub recipients: Vec<String>,
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    pub sha256_in: Option<String>,
    pub sha256_out: Option<String>,
    /// The key (file and description) that opened the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The input (mailbox) the item belongs to.
    #[serde(default)]
    pub mailbox: String,
    /// The item's id inside its mailbox.
    #[serde(default)]
    pub id: String,
}

impl Record {
    pub fn new(mailbox: &str, id: &str, item: String, status: &str) -> Record {
        Record {
            item,
            status: status.to_string(),
            mailbox: mailbox.to_string(),
            id: id.to_string(),
            ..Record::default()
        }
    }
}

/// "box.mbox#17" for mbox items, "B/rel/path" for folder items, "B" for a single file.
pub fn item_name(mailbox: &str, id: &str, indexed: bool) -> String {
    if id.is_empty() || id == mailbox {
        mailbox.to_string()
    } else if indexed {
        format!("{mailbox}#{id}")
    } else {
        format!("{mailbox}/{id}")
    }
}

/// SHA-256 through the crypto provider (aws-lc's assembly: this runs over every byte in and
/// out, so it matters for throughput).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&crate::uc::provider::default_provider()
        .digest(crate::uc::provider::HashAlg::Sha256, &[data]))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    crate::uc::cms::recipient::hex_lower(bytes)
}

/// The report file; shared by the workers of all mailboxes.
pub struct Report {
    out: Option<Mutex<BufWriter<File>>>,
}

impl Report {
    pub fn create(path: Option<&Path>) -> Result<Report, String> {
        let out = match path {
            None => None,
            Some(p) => Some(Mutex::new(BufWriter::new(
                File::create(p)
                    .map_err(|e| format!("{}: cannot create report: {e}", p.display()))?,
            ))),
        };
        Ok(Report { out })
    }

    fn line(&self, v: &impl Serialize) {
        if let Some(m) = &self.out
            && let Ok(mut w) = m.lock()
            && let Ok(s) = serde_json::to_string(v)
        {
            let _ = writeln!(w, "{s}");
        }
    }

    pub fn item(&self, r: &Record) {
        self.line(r);
    }

    pub fn flush(&self) {
        if let Some(m) = &self.out
            && let Ok(mut w) = m.lock()
        {
            let _ = w.flush();
        }
    }

    /// The last line, `{"summary": ...}`; flushed and synced.
    pub fn summary(&self, s: serde_json::Value) -> Result<(), String> {
        self.line(&serde_json::json!({ "summary": s }));
        if let Some(m) = &self.out
            && let Ok(mut w) = m.lock()
        {
            w.flush().map_err(|e| format!("report: {e}"))?;
            w.get_ref().sync_all().map_err(|e| format!("report: {e}"))?;
            SUMMARY_WRITTEN.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
}

static SUMMARY_WRITTEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process wrote a report's summary line.
pub fn summary_written() -> bool {
    SUMMARY_WRITTEN.load(std::sync::atomic::Ordering::SeqCst)
}

/// Replaces the report at `path` by one line, `{"summary": {"fatal": REASON}}`: for a run that
/// ended (exit 2) before it could write its own summary.
pub fn write_fatal(path: &Path, reason: &str) -> Result<(), String> {
    let line =
        serde_json::json!({ "summary": { "fatal": reason, "exit_code": crate::EXIT_FATAL } });
    let mut f =
        File::create(path).map_err(|e| format!("{}: cannot write report: {e}", path.display()))?;
    writeln!(f, "{line}")
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: cannot write report: {e}", path.display()))
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 2822 date in UTC, e.g. "Wed, 25 Nov 2026 13:34:52 +0000".
pub fn rfc2822(secs: i64) -> String {
    unseal_mailbox::date::rfc5322(secs)
}

pub fn now_rfc2822() -> String {
    rfc2822(unix_now())
}

/// ISO 8601 UTC, "2026-11-25T13:34:52Z".
pub fn iso(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = unseal_mailbox::date::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn now_iso() -> String {
    iso(unix_now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_sha256sum() {
        // `echo abc | sha256sum`
        assert_eq!(
            sha256_hex(b"abc\n"),
            "edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(rfc2822(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1795613692), "Wed, 25 Nov 2026 13:34:52 +0000");
        assert_eq!(iso(951_782_400), "2000-02-29T00:00:00Z");
    }
}
