//! End-to-end: whole S/MIME messages from third-party corpora go through `decrypt_message` /
//! `find_envelopes`. Thunderbird's 40 message files cover envelopes in every nesting (in
//! multiparts, under opaque and multipart signatures, around signatures, two per message).
//! The corpora live outside the repository; without them these tests print why and pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use unseal_core::cms::{EnvelopeKind, RecipientId};
use unseal_core::keyring::KeyRing;
use unseal_core::mime::{
    EnvelopeOpener, MessageOptions, MessageOutcome, decrypt_message, decrypt_message_with,
    find_envelopes,
};
use unseal_core::provider::default_provider;
use unseal_core::{DecryptOptions, Decryptor, LayerInfo};

fn corpora() -> Option<PathBuf> {
    let p = std::env::var_os("UNSEAL_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: corpora folder {} is absent", p.display());
        None
    }
}

fn opts() -> MessageOptions {
    MessageOptions {
        trace_header: true,
        max_depth: 16,
        timestamp: "Mon, 1 Jan 2024 00:00:00 +0000".into(),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// `openssl cms -verify -noverify` on a whole message; `None` when openssl is missing.
fn openssl_verifies(msg: &[u8]) -> Option<bool> {
    if Command::new("openssl").arg("version").output().is_err() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.eml");
    std::fs::write(&path, msg).unwrap();
    let out = Command::new("openssl")
        .args(["cms", "-verify", "-noverify", "-out"])
        .arg(dir.path().join("content"))
        .arg("-in")
        .arg(&path)
        .output()
        .ok()?;
    Some(out.status.success())
}

/// (file, structure) rows of a corpus's `_derived/structure-table.md`.
fn structure_table(corpus: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(corpus.join("_derived/structure-table.md")).unwrap();
    text.lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).filter(|c| !c.is_empty());
            let file = cells
                .next()?
                .strip_prefix('`')?
                .strip_suffix('`')?
                .to_string();
            Some((file, cells.next().unwrap_or("").to_string()))
        })
        .collect()
}

/// `ENV[...] { SIG[...` in a structure row: a signature inside an envelope.
fn env_wraps_signature(structure: &str) -> bool {
    structure.match_indices("ENV[").any(|(i, _)| {
        let rest = &structure[i..];
        rest.find(']')
            .is_some_and(|j| rest[j..].starts_with("] { SIG["))
    })
}

/// How many signatures around an envelope the Thunderbird test file names promise.
fn expected_removals(name: &str) -> usize {
    let env_then_sig = ["alice.env.sig.", "alice.env.dsig.", "alice.env.mixed.dsig."]
        .iter()
        .any(|p| name.starts_with(p));
    if env_then_sig && name.contains(".dave.sig.") {
        2
    } else if env_then_sig
        || name.starts_with("outer-")
        || name == "alice.dsig.SHA256.multipart.env.dsig.eml"
    {
        1
    } else {
        0
    }
}

#[test]
fn thunderbird_every_envelope_decrypts_in_place() {
    let Some(root) = corpora() else { return };
    let tb = root.join("thunderbird-smime");
    let mut ring = KeyRing::new();
    for p12 in [
        "mailnews-test-data-smime/Bob.p12",
        "legacy-2023-keys/Bob.p12",
    ] {
        ring.load_file(&tb.join(p12), Some("nss"))
            .unwrap_or_else(|e| panic!("{p12}: {e}"));
    }
    let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
    check_thunderbird(&tb, &dec);
}

/// The same walk with OpenSSL as the decryptor (an oracle independent of this crate's
/// crypto): checks the MIME splicing on real messages now.
#[test]
fn thunderbird_every_envelope_spliced_with_openssl_oracle() {
    let Some(root) = corpora() else { return };
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipping: openssl is not installed");
        return;
    }
    let tb = root.join("thunderbird-smime");
    let keys = ["_derived/keys/Bob", "_derived/legacy2023-keys/Bob"]
        .iter()
        .map(|k| {
            (
                tb.join(format!("{k}.key.pem")),
                tb.join(format!("{k}.cert.pem")),
            )
        })
        .collect();
    check_thunderbird(&tb, &OpensslOpener { keys });
}

struct OpensslOpener {
    keys: Vec<(PathBuf, PathBuf)>,
}

impl EnvelopeOpener for OpensslOpener {
    fn open(&self, cms: &[u8], out: &mut Vec<u8>) -> unseal_core::Result<LayerInfo> {
        let dir = tempfile::tempdir()?;
        let input = dir.path().join("in.der");
        std::fs::write(&input, cms)?;
        for (key, cert) in &self.keys {
            let o = Command::new("openssl")
                .args(["cms", "-decrypt", "-binary", "-inform", "DER", "-in"])
                .arg(&input)
                .arg("-inkey")
                .arg(key)
                .arg("-recip")
                .arg(cert)
                .output()?;
            if o.status.success() {
                out.extend_from_slice(&o.stdout);
                let rid = RecipientId::SubjectKeyId(vec![0xb0, 0xb0]);
                return Ok(LayerInfo {
                    kind: EnvelopeKind::Enveloped,
                    content_cipher: "AES-128-CBC".into(),
                    key_transport: "RSA PKCS#1 v1.5".into(),
                    recipients: vec![rid.clone()],
                    used_recipient: rid,
                    key_source: key.display().to_string(),
                    ciphertext_len: cms.len() as u64,
                    plaintext_len: o.stdout.len() as u64,
                });
            }
        }
        Err(unseal_core::Error::NoMatchingKey {
            recipients: vec!["Bob".into()],
        })
    }
}

fn check_thunderbird(tb: &Path, opener: &dyn EnvelopeOpener) {
    let mut checked = 0;
    let mut verified = 0;
    for (file, structure) in structure_table(tb) {
        // The raw DER files are no messages (and need the 2019 key): tests/corpora.rs has them.
        if !file.ends_with(".eml") || !structure.contains("ENV[") {
            continue;
        }
        let name = file.rsplit('/').next().unwrap();
        let msg = std::fs::read(tb.join(&file)).unwrap();
        let o: MessageOutcome =
            decrypt_message_with(opener, &msg, &opts()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let out = o
            .output
            .as_deref()
            .unwrap_or_else(|| panic!("{file}: no output"));
        if let Some(dump) = std::env::var_os("UNSEAL_MIME_DUMP") {
            std::fs::write(Path::new(&dump).join(name), out).unwrap();
        }
        assert_eq!(
            o.layers.len(),
            structure.matches("ENV[").count(),
            "{file}: layers"
        );
        assert_eq!(
            o.signatures_removed.len(),
            expected_removals(name),
            "{file}: {:?}",
            o.signatures_removed
        );
        let traces = String::from_utf8_lossy(out)
            .matches("X-Unseal-Decrypted:")
            .count();
        assert_eq!(
            traces,
            o.layers.len() + o.signatures_removed.len(),
            "{file}"
        );
        assert!(
            find_envelopes(out, &opts()).unwrap().is_empty(),
            "{file}: envelope left"
        );
        let expected = tb
            .join("_derived/decrypted")
            .join(format!("{name}.decrypted"));
        if let Ok(plain) = std::fs::read(&expected) {
            assert!(
                contains(out, &plain),
                "{file}: plaintext not spliced in byte-exact"
            );
        }
        // Sign-then-encrypt (and the inner signature of the triple wrap): the signature that
        // was inside the envelope still verifies.
        if env_wraps_signature(&structure)
            && let Some(ok) = openssl_verifies(out)
        {
            assert!(ok, "{file}: inner signature no longer verifies");
            verified += 1;
        }
        checked += 1;
    }
    assert_eq!(checked, 40, "Thunderbird message files with envelopes");
    eprintln!("{checked} messages decrypted, {verified} inner signatures verified");
}

#[test]
fn thunderbird_find_envelopes_without_keys() {
    let Some(root) = corpora() else { return };
    let tb = root.join("thunderbird-smime");
    let mut n = 0;
    for (file, structure) in structure_table(&tb) {
        if !file.ends_with(".eml") {
            continue;
        }
        let msg = std::fs::read(tb.join(&file)).unwrap();
        let found = find_envelopes(&msg, &opts()).unwrap_or_else(|e| panic!("{file}: {e}"));
        // Visible without decrypting: every envelope not inside another one (Thunderbird has
        // no envelope in an envelope, so all of them).
        let visible = structure.matches("ENV[").count();
        assert_eq!(found.len(), visible, "{file}: {structure}");
        for f in &found {
            assert_eq!(f.cms.first(), Some(&0x30), "{file}");
        }
        n += found.len();
    }
    assert_eq!(n, 50 - 9, "envelopes in the .eml files");
}

#[test]
fn netscape_1996_mbox_envelopes_without_smime_type() {
    let Some(root) = corpora() else { return };
    let mbox = std::fs::read(root.join("mimekit-testdata/mbox/content-length.mbox.txt")).unwrap();
    // Content-Length mbox with "From - " separators: split at those lines.
    let mut starts: Vec<usize> = Vec::new();
    if mbox.starts_with(b"From ") {
        starts.push(0);
    }
    for (i, w) in mbox.windows(6).enumerate() {
        if w == b"\nFrom " {
            starts.push(i + 1);
        }
    }
    starts.push(mbox.len());
    let messages: Vec<&[u8]> = starts.windows(2).map(|w| &mbox[w[0]..w[1]]).collect();
    assert_eq!(messages.len(), 29);
    let mut with_envelopes = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        // Skip the "From - ..." separator line: it is no header field.
        let body = m
            .iter()
            .position(|&b| b == b'\n')
            .map_or(*m, |p| &m[p + 1..]);
        let found = find_envelopes(body, &opts()).unwrap_or_else(|e| panic!("message {i}: {e}"));
        if !found.is_empty() {
            let paths: Vec<String> = found.iter().map(|f| f.path.clone()).collect();
            with_envelopes.push((i, paths));
        }
        // No envelope means nothing to decrypt: the message is copied as it is.
        let ring = KeyRing::new();
        let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
        if found.is_empty() {
            assert_eq!(
                decrypt_message(&dec, body, &opts()).unwrap().output,
                None,
                "message {i}"
            );
        } else {
            assert!(
                decrypt_message(&dec, body, &opts()).is_err(),
                "message {i}: no key, must fail"
            );
        }
    }
    // 15 and 16 forward message 11 (message/rfc822, once at top level, once in a multipart).
    let expected: Vec<(usize, Vec<String>)> = [
        (11, ""),
        (14, ""),
        (15, "rfc822"),
        (16, "2/rfc822"),
        (18, ""),
        (20, ""),
    ]
    .iter()
    .map(|(i, p)| (*i, vec![p.to_string()]))
    .collect();
    assert_eq!(with_envelopes, expected);
}

#[test]
fn simple_java_mail_and_rfc4134_messages() {
    let Some(root) = corpora() else { return };
    let mut ring = KeyRing::new();
    let sjm = root.join("simple-java-mail/pkcs12/smime_test_user.p12");
    ring.load_file(&sjm, Some("letmein")).unwrap();
    // RFC 4134 5.3's plaintext is no MIME entity: with the one matching key it must still open
    // (the MIME shape only breaks ties between keys).
    let rfc = root.join("rfc4134/extracted");
    ring.load_file(&rfc.join("BobPrivRSAEncrypt.pri"), None)
        .unwrap();
    ring.add_certificates_file(&rfc.join("BobRSASignByCarl.cer"))
        .unwrap();
    let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
    check_others(&root, &dec, true);
}

#[test]
fn rfc4134_and_simple_java_mail_with_openssl_oracle() {
    let Some(root) = corpora() else { return };
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipping: openssl is not installed");
        return;
    }
    let keys = [
        "rfc4134/_derived/keys/BobPrivRSAEncrypt",
        "simple-java-mail/_derived/keys/smime_test_user",
    ]
    .iter()
    .map(|k| {
        (
            root.join(format!("{k}.key.pem")),
            root.join(format!("{k}.cert.pem")),
        )
    })
    .collect();
    check_others(&root, &OpensslOpener { keys }, true);
}

fn check_others(root: &Path, opener: &dyn EnvelopeOpener, rfc4134: bool) {
    let sjm = "simple-java-mail/pkcs12/test messages/S_MIME test message";
    let sjm_plain = "simple-java-mail/_derived/decrypted/S_MIME test message";
    let mut cases = vec![
        (
            format!("{sjm} encrypted.eml"),
            format!("{sjm_plain} encrypted.eml.decrypted"),
            false,
        ),
        (
            format!("{sjm} signed & encrypted.eml"),
            format!("{sjm_plain} signed & encrypted.eml.decrypted"),
            true,
        ),
    ];
    if rfc4134 {
        cases.push((
            "rfc4134/extracted/5.3.eml".into(),
            "rfc4134/_derived/decrypted/5.3.eml.decrypted".into(),
            false,
        ));
    }
    for (msg, expected, signed) in cases {
        let m = std::fs::read(root.join(&msg)).unwrap();
        let o = decrypt_message_with(opener, &m, &opts()).unwrap_or_else(|e| panic!("{msg}: {e}"));
        let out = o.output.unwrap();
        let plain = std::fs::read(root.join(&expected)).unwrap();
        assert!(contains(&out, &plain), "{msg}: plaintext not spliced in");
        assert_eq!(o.layers.len(), 1, "{msg}");
        assert!(o.signatures_removed.is_empty(), "{msg}");
        if signed && let Some(ok) = openssl_verifies(&out) {
            assert!(ok, "{msg}: inner signature no longer verifies");
        }
    }
}

/// The generated fixtures (their set changes while they are being made): scanning a message
/// never fails, and a message named `plain*` holds no envelope.
#[test]
fn fixtures_scan() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/messages");
    let Ok(dir) = std::fs::read_dir(&root) else {
        eprintln!("skipping: {} is absent", root.display());
        return;
    };
    for entry in dir {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Ok(msg) = std::fs::read(&path) else {
            continue;
        };
        if name.ends_with(".p7m") {
            // A bare ContentInfo (DER or PEM) is no message: read as one, its envelope is out
            // of the MIME walk's reach, which must be an error, never "no envelope".
            assert!(find_envelopes(&msg, &opts()).is_err(), "{name}");
            continue;
        }
        let found = find_envelopes(&msg, &opts()).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.starts_with("plain") {
            assert!(found.is_empty(), "{name}");
        }
    }
}
