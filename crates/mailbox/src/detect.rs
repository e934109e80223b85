//! Format detection by content first, file name second: extensions lie (a `.txt` mbox, a
//! `.dat` PST), magic numbers do not.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::{Error, Format, maildir};

const CFB_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
pub(crate) const PST_MAGIC: &[u8] = b"!BDN";
/// DER of OID 1.2.840.113549.1.7 (PKCS #7 content types), as it follows the outer SEQUENCE
/// header of a ContentInfo.
const PKCS7_OID_PREFIX: &[u8] = &[0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07];

fn ext_is(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| exts.contains(&e.as_str()))
}

/// Whether the first line looks like an RFC 5322 header field ("Name: value").
pub fn looks_like_headers(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    match memchr::memchr(b':', line) {
        Some(i) if i > 0 => line
            .get(..i)
            .is_some_and(|n| n.iter().all(|&b| (33..=126).contains(&b))),
        _ => false,
    }
}

/// Whether the bytes mention `pkcs7-mime` (any case), the media type of every S/MIME envelope
/// (`application/pkcs7-mime`, `application/x-pkcs7-mime`): a file that does may hold encrypted
/// mail whatever its name.
pub fn mentions_pkcs7_mime(data: &[u8]) -> bool {
    memchr::memmem::find_iter(data, b"7-").any(|i| {
        i >= 4
            && data
                .get(i - 4..i + 6)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"pkcs7-mime"))
    })
}

/// Whether the bytes show any sign of S/MIME: `pkcs7-mime`, a `.p7m` name, or the start of a
/// ContentInfo announcing (Auth)EnvelopedData in binary or in base64 (as it reads when the
/// ContentInfo starts a base64 text, for every length form). A byte search, no decoding: the
/// mailbox readers use it to decide that a file they would otherwise pass over must be looked
/// at (the exact search is `unseal_core::mime::detect::envelope_markers`, run on every item).
// The same signs as `unseal_core::mime::detect::BASE64_SIGNS` (and the binary OIDs): kept
// here too, since neither crate depends on the other.
pub fn mentions_smime(data: &[u8]) -> bool {
    const SIGNS: [&[u8]; 8] = [
        b"GCSqGSIb3DQEHA6",
        b"BgkqhkiG9w0BBwOg",
        b"YJKoZIhvcNAQcDo",
        b"GCyqGSIb3DQEJEAEXo",
        b"BgsqhkiG9w0BCRABF6",
        b"YLKoZIhvcNAQkQAReg",
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03],
        &[
            0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
        ],
    ];
    mentions_pkcs7_mime(data)
        || memchr::memmem::find_iter(data, b".").any(|i| {
            data.get(i + 1..i + 4)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"p7m"))
        })
        || SIGNS
            .iter()
            .any(|s| memchr::memmem::find(data, s).is_some())
}

/// Whether a line of `data` starts a uuencoded block (`begin 644 name`): old mailers attach
/// files so, and an envelope inside one shows neither its OID nor base64. (The CLI decodes and
/// searches such blocks in the files it reads; this is for the files a reader passes over.)
pub fn mentions_uuencode(data: &[u8]) -> bool {
    memchr::memmem::find_iter(data, b"begin ").any(|i| {
        let rest = &data[i + 6..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        (i == 0 || data[i - 1] == b'\n') && digits > 0 && rest.get(digits) == Some(&b' ')
    })
}

/// The compression format whose magic number starts `data` (gzip, bzip2, xz, zstd, lz4, zip, 7z),
/// if any. Dovecot's zlib/mail_compress plugins store Maildir messages this way, and an
/// archive may hold mail: what unseal cannot open it must not take for plain.
pub fn compression(data: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 8] = [
        (&[0x1f, 0x8b], "gzip"),
        // Dovecot's own LZ4 stream (`zlib_save = lz4`), and the LZ4 frame format.
        (b"Dovecot-LZ4\x0d\x2a\x9b\xc5", "lz4"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
        (b"BZh", "bzip2"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (b"PK\x03\x04", "zip"),
        (&[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c], "7z"),
    ];
    MAGIC
        .iter()
        .find(|(m, _)| data.starts_with(m))
        .map(|&(_, kind)| kind)
}

fn looks_like_base64(head: &[u8]) -> bool {
    !head.is_empty()
        && head
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+/=\r\n \t".contains(&b))
}

/// Detects the format of a file or folder.
pub fn detect(path: &Path) -> Result<Format, Error> {
    let md = std::fs::metadata(path).map_err(|e| Error::io_path(path, "stat", e))?;
    if md.is_dir() {
        return Ok(if maildir::is_maildir(path) {
            Format::Maildir
        } else {
            Format::EmlTree
        });
    }
    let mut head = Vec::with_capacity(4096);
    File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(|e| Error::io_path(path, "read", e))?;
    let text = head.strip_prefix(crate::mbox::BOM).unwrap_or(&head);
    if text.starts_with(b"From ") {
        return Ok(Format::Mbox);
    }
    if head.starts_with(CFB_MAGIC) {
        return Ok(Format::Msg);
    }
    if head.starts_with(PST_MAGIC) {
        return Ok(Format::Pst);
    }
    if ext_is(path, &["pst", "ost"]) {
        return Err(Error::format(
            path.display(),
            "named like a PST but has no !BDN signature",
        ));
    }
    if ext_is(path, &["msg"]) {
        return Err(Error::format(
            path.display(),
            "named like a .msg but is not a compound file",
        ));
    }
    // SEQUENCE, length (short or long form or indefinite), then the pkcs7 OID.
    if head.first() == Some(&0x30) {
        let skip = match head.get(1) {
            Some(&l) if l < 0x80 => 2,
            Some(&0x80) => 2,
            Some(&l) => 2 + usize::from(l & 0x7f),
            None => 2,
        };
        if head
            .get(skip..)
            .is_some_and(|r| r.starts_with(PKCS7_OID_PREFIX))
        {
            return Ok(Format::P7m);
        }
    }
    if memchr::memmem::find(&head, b"-----BEGIN PKCS7-----").is_some()
        || memchr::memmem::find(&head, b"-----BEGIN CMS-----").is_some()
    {
        return Ok(Format::P7m);
    }
    if ext_is(path, &["p7m", "p7", "p7c"])
        && (head.first() == Some(&0x30) || looks_like_base64(&head))
    {
        return Ok(Format::P7m);
    }
    if looks_like_headers(text) {
        return Ok(Format::Eml);
    }
    if md.len() == 0 && ext_is(path, &["mbox", "mbx"]) {
        return Ok(Format::Mbox);
    }
    Err(Error::format(
        path.display(),
        "unrecognised format (not mbox, maildir, eml, p7m, msg or pst)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn detects_by_content_and_name() {
        let d = tempfile::tempdir().unwrap();
        let cases: &[(&str, &[u8], Option<Format>)] = &[
            (
                "box",
                b"From - Mon Jun  3 12:50:27 1996\nA: b\n\nx\n",
                Some(Format::Mbox),
            ),
            ("bom.txt", b"\xEF\xBB\xBFFrom -\nA: b\n", Some(Format::Mbox)),
            ("m.eml", b"Subject: hi\r\n\r\nbody", Some(Format::Eml)),
            ("noext", b"Received: from x\n\n", Some(Format::Eml)),
            (
                "x.msg",
                &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0],
                Some(Format::Msg),
            ),
            ("x.dat", b"!BDN\x00\x00", Some(Format::Pst)),
            ("fake.pst", b"hello", None),
            ("fake.msg", b"Subject: x\n\n", None),
            (
                "a.bin",
                &[
                    0x30, 0x80, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03,
                ],
                Some(Format::P7m),
            ),
            (
                "a.pem",
                b"-----BEGIN PKCS7-----\nMIIB\n-----END PKCS7-----\n",
                Some(Format::P7m),
            ),
            (
                "smime.p7m",
                b"MIAGCSqGSIb3DQEHA6CAMIACAQAx\n",
                Some(Format::P7m),
            ),
            ("junk", &[0, 1, 2, 3], None),
            ("empty.mbox", b"", Some(Format::Mbox)),
        ];
        for (name, data, want) in cases {
            let p = d.path().join(name);
            fs::write(&p, data).unwrap();
            assert_eq!(detect(&p).ok(), *want, "{name}");
        }
        let md = d.path().join("Maildir");
        fs::create_dir_all(md.join("cur")).unwrap();
        fs::create_dir_all(md.join("new")).unwrap();
        assert_eq!(detect(&md).unwrap(), Format::Maildir);
        assert_eq!(detect(d.path()).unwrap(), Format::EmlTree);
        assert!(detect(&d.path().join("missing")).is_err());
    }
}
