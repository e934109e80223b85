//! Single-file inputs: one .eml message, or one CMS blob (.p7m) in DER, BER, PEM
//! (`-----BEGIN PKCS7-----` / `-----BEGIN CMS-----`) or bare base64.

use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::atomic;
use crate::body::{Body, load_file};
use crate::{Error, Format, Item, ItemKind, Location, Meta, Sink};

/// Lenient about padding because hand-exported blobs often drop it.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// DER/BER of a ContentInfo starts with SEQUENCE (0x30); PEM and base64 are decoded to it.
pub fn decode_cms(bytes: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    if bytes.first() == Some(&0x30) {
        return Ok(Cow::Borrowed(bytes));
    }
    let text = match memchr::memmem::find(bytes, b"-----BEGIN ") {
        Some(start) => {
            let after = bytes.get(start..).unwrap_or(&[]);
            // Skip the BEGIN line itself, stop at the END line.
            let body_start = memchr::memchr(b'\n', after).map_or(after.len(), |i| i + 1);
            let body = after.get(body_start..).unwrap_or(&[]);
            let end =
                memchr::memmem::find(body, b"-----END ").ok_or("PEM block has no END line")?;
            body.get(..end).unwrap_or(&[])
        }
        None => bytes,
    };
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = B64
        .decode(&compact)
        .map_err(|e| format!("neither DER/BER nor PEM/base64 CMS: {e}"))?;
    if der.first() != Some(&0x30) {
        return Err("decoded data is not a DER/BER SEQUENCE".into());
    }
    Ok(Cow::Owned(der))
}

/// Whether DER/BER bytes start like a CMS ContentInfo holding EnvelopedData or
/// AuthEnvelopedData: SEQUENCE, any length form, then the content-type OID. Format sniffing
/// only (no cryptography): it lets an encrypted blob inside an EML tree be decrypted instead of
/// copied, whatever its file name.
pub fn is_cms_envelope(der: &[u8]) -> bool {
    const ENVELOPED: [u8; 11] = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
    ];
    const AUTH_ENVELOPED: [u8; 13] = [
        0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
    ];
    let Some((&0x30, rest)) = der.split_first() else {
        return false;
    };
    let Some((&len, rest)) = rest.split_first() else {
        return false;
    };
    let skip = match len {
        0x00..=0x80 => 0,
        0x81..=0x84 => usize::from(len & 0x7f),
        _ => return false,
    };
    let oid = rest.get(skip..).unwrap_or(&[]);
    oid.starts_with(&ENVELOPED) || oid.starts_with(&AUTH_ENVELOPED)
}

/// A non-message file of an EML tree that holds an envelope (raw, PEM or base64, any name):
/// its decoded CMS bytes.
pub fn envelope_in_file(bytes: &[u8], name: &Path) -> Option<Vec<u8>> {
    let p7m = name
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("p7m") || e.eq_ignore_ascii_case("p7"));
    if is_cms_envelope(bytes) {
        return Some(bytes.to_vec());
    }
    // Text encodings are only tried where the name or a PEM label says CMS, so that ordinary
    // text files are never decoded on a guess.
    let pem = memchr::memmem::find(bytes, b"-----BEGIN PKCS7-----").is_some()
        || memchr::memmem::find(bytes, b"-----BEGIN CMS-----").is_some();
    if !(p7m || pem) {
        return None;
    }
    decode_cms(bytes)
        .ok()
        .filter(|d| is_cms_envelope(d))
        .map(Cow::into_owned)
}

/// Output file name for a single-file input: `x.txt.p7m` -> `x.txt`, `smime.p7m` ->
/// `smime.eml`, `a.msg` -> `a.eml`, anything else unchanged.
pub fn output_name(name: &Path) -> PathBuf {
    let ext = name
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("p7m" | "p7") => {
            let stem = PathBuf::from(name.file_stem().unwrap_or(name.as_os_str()));
            if stem.extension().is_some() {
                stem
            } else {
                stem.with_extension("eml")
            }
        }
        Some("msg") => name.with_extension("eml"),
        _ => name.to_path_buf(),
    }
}

/// Opens a single .eml, .p7m or .msg file as a one-item source. A .msg is converted to MIME
/// here (see [`crate::msg`]) so the rest of the pipeline only ever sees RFC 5322 messages.
pub fn open(
    path: &Path,
    format: Format,
) -> Result<std::option::IntoIter<Result<Item, Error>>, Error> {
    let name = PathBuf::from(
        path.file_name()
            .ok_or_else(|| Error::unsupported(path.display(), "input has no file name"))?,
    );
    let id = name.to_string_lossy().into_owned();
    let mtime = fs::metadata(path).ok().and_then(|m| m.modified().ok());
    let body = load_file(path)?;
    let (kind, body) = match format {
        Format::Eml => (ItemKind::Message, body),
        Format::P7m => {
            let decoded = match decode_cms(body.bytes()) {
                Ok(Cow::Borrowed(_)) => None,
                Ok(Cow::Owned(v)) => Some(v),
                Err(reason) => return Err(Error::format(path.display(), reason)),
            };
            (ItemKind::Cms, decoded.map_or(body, Body::Owned))
        }
        Format::Msg => match crate::msg::msg_to_mime(body.bytes()) {
            Ok(c) => (ItemKind::Message, Body::Owned(c.mime)),
            Err(e) => return Err(Error::format(path.display(), e.to_string())),
        },
        other => {
            return Err(Error::unsupported(
                path.display(),
                format!("{other:?} is not a single-file format here"),
            ));
        }
    };
    let item = Item::new(
        id,
        kind,
        Meta {
            location: Location::File { name },
            mtime,
        },
        body,
    );
    Ok(Some(Ok(item)).into_iter())
}

/// Writes the one output file atomically, keeping the input's modification time.
pub struct FileSink {
    target: PathBuf,
}

impl FileSink {
    pub fn new(target: &Path) -> FileSink {
        FileSink {
            target: target.to_path_buf(),
        }
    }
}

impl Sink for FileSink {
    fn write(&mut self, meta: &Meta, body: &[u8]) -> Result<(), Error> {
        atomic::write_atomic(&self.target, body, meta.mtime)
            .map_err(|e| Error::io_path(&self.target, "write", e))
    }

    fn already_written(&self, _meta: &Meta) -> bool {
        self.target.exists()
    }

    fn output(&self) -> &Path {
        &self.target
    }

    fn finish(self: Box<Self>) -> Result<PathBuf, Error> {
        Ok(self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DER: &[u8] = &[
        0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
    ];

    #[test]
    fn decodes_der_pem_and_bare_base64() {
        assert_eq!(decode_cms(DER).unwrap(), DER);
        let b64 = B64.encode(DER);
        let pem = format!("-----BEGIN PKCS7-----\n{b64}\n-----END PKCS7-----\n");
        assert_eq!(decode_cms(pem.as_bytes()).unwrap(), DER);
        let cms = format!(
            "junk\r\n-----BEGIN CMS-----\r\n{}\r\n{}\r\n-----END CMS-----\r\n",
            &b64[..8],
            &b64[8..]
        );
        assert_eq!(decode_cms(cms.as_bytes()).unwrap(), DER);
        assert_eq!(decode_cms(format!("{b64}\n").as_bytes()).unwrap(), DER);
        assert!(decode_cms(b"hello world").is_err());
        assert!(decode_cms(b"-----BEGIN PKCS7-----\nMAAA").is_err());
        assert!(decode_cms(b"").is_err());
    }

    #[test]
    fn output_names() {
        assert_eq!(output_name(Path::new("x.txt.p7m")), Path::new("x.txt"));
        assert_eq!(output_name(Path::new("smime.p7m")), Path::new("smime.eml"));
        assert_eq!(output_name(Path::new("SMIME.P7M")), Path::new("SMIME.eml"));
        assert_eq!(output_name(Path::new("mail.msg")), Path::new("mail.eml"));
        assert_eq!(output_name(Path::new("a.eml")), Path::new("a.eml"));
    }

    #[test]
    fn p7m_file_yields_cms_item_and_sink_writes_beside() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("report.pdf.p7m");
        fs::write(
            &p,
            format!(
                "-----BEGIN PKCS7-----\n{}\n-----END PKCS7-----\n",
                B64.encode(DER)
            ),
        )
        .unwrap();
        let items: Vec<Item> = crate::open(&p, Format::P7m)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].kind, ItemKind::Cms);
        assert_eq!(items[0].id, "report.pdf.p7m");
        assert_eq!(items[0].bytes(), DER);
        let out = d.path().join("out");
        let mut s = crate::create_sink(crate::OutFormat::File, &p, &out).unwrap();
        s.write(&items[0].meta, b"%PDF").unwrap();
        assert_eq!(s.finish().unwrap(), out.join("report.pdf"));
        assert_eq!(fs::read(out.join("report.pdf")).unwrap(), b"%PDF");
    }
}

#[cfg(test)]
mod sniff_tests {
    use super::*;

    #[test]
    fn envelopes_are_recognised_in_any_length_form() {
        let oid = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
        ];
        for head in [
            &[0x30, 0x80][..],
            &[0x30, 0x20],
            &[0x30, 0x82, 0x01, 0x00],
            &[0x30, 0x84, 0, 0, 1, 0],
        ] {
            let mut v = head.to_vec();
            v.extend_from_slice(&oid);
            assert!(is_cms_envelope(&v), "{head:02x?}");
        }
        // signed-data (…07 02) is not an envelope; nor is text.
        assert!(!is_cms_envelope(&[
            0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02
        ]));
        assert!(!is_cms_envelope(b"0\x80 hello"));
        assert!(!is_cms_envelope(&[]));
    }

    #[test]
    fn text_is_decoded_only_when_named_or_labelled() {
        let der = {
            let mut v = vec![
                0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
            ];
            v.extend_from_slice(&[0xa0, 0x80, 0, 0, 0, 0]);
            v
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(
            envelope_in_file(&der, Path::new("x.bin")).as_deref(),
            Some(&der[..])
        );
        assert_eq!(
            envelope_in_file(b64.as_bytes(), Path::new("x.p7m")).as_deref(),
            Some(&der[..])
        );
        assert_eq!(
            envelope_in_file(b64.as_bytes(), Path::new("notes.txt")),
            None
        );
        let pem = format!("-----BEGIN PKCS7-----\n{b64}\n-----END PKCS7-----\n");
        assert_eq!(
            envelope_in_file(pem.as_bytes(), Path::new("notes.txt")).as_deref(),
            Some(&der[..])
        );
    }
}
