//! Single-file inputs: one .eml message, or one CMS blob (.p7m) in DER, BER, PEM
//! (`-----BEGIN PKCS7-----` / `-----BEGIN CMS-----`) or bare base64.

use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::atomic;
use crate::body::{Body, load_file};
use crate::{Error, Fill, Filled, Format, Item, ItemKind, Location, Meta, Sink};

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

/// Whether a non-message file of an EML tree is, as a whole, an envelope (raw DER/BER, one
/// PEM `PKCS7`/`CMS` block, or bare base64 in a file named `.p7m`), whatever its name. A file
/// that merely contains a PEM envelope among other text is not: it is copied, never replaced by
/// part of itself.
pub fn is_envelope_file(bytes: &[u8], name: &Path) -> bool {
    if is_cms_envelope(bytes) {
        return true;
    }
    let p7m = name
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("p7m") || e.eq_ignore_ascii_case("p7"));
    let text = bytes.trim_ascii();
    let pem =
        text.starts_with(b"-----BEGIN PKCS7-----") || text.starts_with(b"-----BEGIN CMS-----");
    if pem {
        // Exactly one block: nothing after its END line.
        let Some(end) = memchr::memmem::find(text, b"-----END ") else {
            return false;
        };
        let after = text.get(end..).unwrap_or(&[]);
        let end_line = memchr::memchr(b'\n', after).map_or(after.len(), |i| i + 1);
        if !after.get(end_line..).unwrap_or(&[]).trim_ascii().is_empty() {
            return false;
        }
    } else if !p7m {
        return false;
    }
    decode_cms(bytes).is_ok_and(|d| is_cms_envelope(&d))
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
            // The item keeps the file's own bytes (decode with [`decode_cms`]), so that an
            // item copied unchanged is the file, not its decoded form.
            if let Err(reason) = decode_cms(body.bytes()) {
                return Err(Error::format(path.display(), reason));
            }
            (ItemKind::Cms, body)
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
    /// Where an item copied unchanged goes when that differs from `target`: a `.p7m` that could
    /// not be decrypted keeps its own name rather than take the name of its content.
    unchanged_target: Option<PathBuf>,
    /// The file actually written (what [`Sink::finish`] names).
    written: Option<PathBuf>,
}

impl FileSink {
    pub fn new(target: &Path) -> FileSink {
        FileSink {
            target: target.to_path_buf(),
            unchanged_target: None,
            written: None,
        }
    }

    /// A sink for a `.p7m` input: decrypted content goes to `target`, an undecryptable file
    /// is copied under its own name `unchanged`.
    pub fn for_p7m(target: &Path, unchanged: &Path) -> FileSink {
        FileSink {
            target: target.to_path_buf(),
            unchanged_target: (target != unchanged).then(|| unchanged.to_path_buf()),
            written: None,
        }
    }
}

impl Sink for FileSink {
    fn write(&mut self, meta: &Meta, body: &[u8]) -> Result<(), Error> {
        atomic::write_atomic(&self.target, body, meta.mtime)
            .map_err(|e| Error::io_path(&self.target, "write", e))?;
        self.written = Some(self.target.clone());
        Ok(())
    }

    fn can_stream(&self, _meta: &Meta) -> bool {
        true
    }

    fn write_streamed(&mut self, meta: &Meta, fill: &mut Fill<'_>) -> Result<Filled, Error> {
        let filled = atomic::write_atomic_streamed(&self.target, meta.mtime, fill)
            .map_err(|e| Error::io_path(&self.target, "write", e))?;
        self.written = Some(self.target.clone());
        Ok(filled)
    }

    fn write_unchanged(&mut self, meta: &Meta, body: &[u8]) -> Result<(), Error> {
        let target = self
            .unchanged_target
            .clone()
            .unwrap_or_else(|| self.target.clone());
        atomic::write_atomic(&target, body, meta.mtime)
            .map_err(|e| Error::io_path(&target, "write", e))?;
        self.written = Some(target);
        Ok(())
    }

    fn already_written(&self, _meta: &Meta) -> bool {
        self.target.exists()
    }

    fn output(&self) -> &Path {
        &self.target
    }

    /// The file written: the content's name, or the input's own for a `.p7m` copied unchanged.
    fn finish(self: Box<Self>) -> Result<PathBuf, Error> {
        Ok(self.written.unwrap_or(self.target))
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
        // The item is the file as it is; decode_cms gives the DER.
        assert_eq!(items[0].bytes(), fs::read(&p).unwrap());
        assert_eq!(decode_cms(items[0].bytes()).unwrap().as_ref(), DER);
        let out = d.path().join("out");
        let mut s = crate::create_sink(crate::OutFormat::File, &p, &out).unwrap();
        s.write(&items[0].meta, b"%PDF").unwrap();
        assert_eq!(s.finish().unwrap(), out.join("report.pdf"));
        assert_eq!(fs::read(out.join("report.pdf")).unwrap(), b"%PDF");
        // One that could not be decrypted keeps its own name: never encrypted bytes under the
        // name of the content.
        let out2 = d.path().join("out2");
        let mut s = crate::create_sink(crate::OutFormat::File, &p, &out2).unwrap();
        s.write_unchanged(&items[0].meta, items[0].bytes()).unwrap();
        assert_eq!(s.finish().unwrap(), out2.join("report.pdf.p7m"));
        assert!(!out2.join("report.pdf").exists());
        assert_eq!(
            fs::read(out2.join("report.pdf.p7m")).unwrap(),
            fs::read(&p).unwrap()
        );
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
    fn only_whole_files_are_envelopes() {
        let der = {
            let mut v = vec![
                0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
            ];
            v.extend_from_slice(&[0xa0, 0x80, 0, 0, 0, 0]);
            v
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        assert!(is_envelope_file(&der, Path::new("x.bin")));
        assert!(is_envelope_file(b64.as_bytes(), Path::new("x.p7m")));
        assert!(!is_envelope_file(b64.as_bytes(), Path::new("notes.txt")));
        let pem = format!("-----BEGIN PKCS7-----\n{b64}\n-----END PKCS7-----\n");
        assert!(is_envelope_file(pem.as_bytes(), Path::new("notes.txt")));
        // Prose around the block, or a certificate before it: not replaced by the envelope.
        let prose = format!("Dear Bob,\n{pem}\nregards\n");
        assert!(!is_envelope_file(prose.as_bytes(), Path::new("notes.txt")));
        let two = format!("{pem}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(!is_envelope_file(two.as_bytes(), Path::new("x.p7m")));
    }
}
