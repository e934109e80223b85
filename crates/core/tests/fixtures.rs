//! Every envelope in fixtures/ (made by OpenSSL, gpgsm and pyca/cryptography, see
//! fixtures/index.tsv) decrypts to its expected plaintext, byte for byte, with every crypto
//! provider compiled in; the providers agree.

use std::path::{Path, PathBuf};
use unseal_core::keyring::KeyRing;
use unseal_core::provider::all_providers;
use unseal_core::{DecryptOptions, Decryptor, Error};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

struct Row {
    message: String,
    format: String,
    key: String,
    cert: String,
    expected: String,
    cipher: String,
    transport: String,
    structure: String,
}

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(fixtures().join("index.tsv"))
        .expect("fixtures/index.tsv is committed");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let g = |i: usize| f.get(i).copied().unwrap_or("-").to_string();
            Row {
                message: g(0),
                format: g(1),
                key: g(2),
                cert: g(3),
                expected: g(4),
                cipher: g(5),
                transport: g(6),
                structure: g(8),
            }
        })
        .collect()
}

fn password() -> String {
    std::fs::read_to_string(fixtures().join("keys/password.txt"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

/// The CMS blob of a top-level envelope: raw for .p7m, the decoded body for .eml.
fn cms_of(row: &Row) -> Vec<u8> {
    let bytes = std::fs::read(fixtures().join(&row.message)).unwrap();
    match row.format.as_str() {
        "p7m-der" | "p7m-ber" => bytes,
        "p7m-pem" => {
            use base64::Engine;
            let text = String::from_utf8(bytes).unwrap();
            let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
        }
        _ => {
            let msg = mail_parser::MessageParser::default()
                .parse(&bytes)
                .expect("fixture parses");
            msg.root_part().contents().to_vec()
        }
    }
}

fn ring_for(row: &Row) -> KeyRing {
    let mut ring = KeyRing::new();
    ring.load_file(&fixtures().join(&row.key), Some(&password()))
        .unwrap();
    if row.cert != "-" {
        ring.add_certificates_file(&fixtures().join(&row.cert))
            .unwrap();
    }
    ring
}

fn top_level_rows() -> Vec<Row> {
    rows()
        .into_iter()
        .filter(|r| matches!(r.structure.as_str(), "env" | "authenv"))
        .collect()
}

fn supported(row: &Row) -> bool {
    row.key != "-"
        && row.expected != "-"
        && !row.transport.starts_with("pwri")
        && !row.transport.starts_with("kekri")
}

#[test]
fn every_top_level_fixture_decrypts_with_every_provider() {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut ciphers = std::collections::BTreeSet::new();
    for row in top_level_rows().iter().filter(|r| supported(r)) {
        let cms = cms_of(row);
        let expected = std::fs::read(fixtures().join(&row.expected)).unwrap();
        let ring = ring_for(row);
        let mut outputs = Vec::new();
        for provider in all_providers() {
            let dec = Decryptor::new(&ring, provider, DecryptOptions::default()).unwrap();
            let mut out = Vec::new();
            match dec.decrypt_cms_with(&cms, &mut out, row.format == "eml") {
                Ok(info) => {
                    if out != expected {
                        failures.push(format!(
                            "{} [{}]: plaintext differs",
                            row.message,
                            provider.name()
                        ));
                    }
                    assert_eq!(info.plaintext_len, out.len() as u64);
                    outputs.push(out);
                }
                Err(e) => failures.push(format!("{} [{}]: {e}", row.message, provider.name())),
            }
        }
        outputs.dedup();
        assert_eq!(outputs.len(), 1, "{}: providers disagree", row.message);
        checked += 1;
        ciphers.insert(row.cipher.clone());
    }
    // Every content cipher a producer wrote for a key we hold was among those decrypted.
    let written: std::collections::BTreeSet<String> = top_level_rows()
        .into_iter()
        .filter(|r| r.key != "-")
        .map(|r| r.cipher)
        .collect();
    assert_eq!(ciphers, written, "content ciphers decrypted vs written");
    assert!(ciphers.contains("seed-cbc") && ciphers.contains("camellia-256-cbc"));
    assert!(
        failures.is_empty(),
        "{} of {checked} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 40, "only {checked} fixtures checked");
}

#[test]
fn unsupported_recipient_kinds_say_what_they_are() {
    for row in top_level_rows()
        .iter()
        .filter(|r| !supported(r) && r.key != "-")
    {
        let cms = cms_of(row);
        let ring = ring_for(row);
        let dec = Decryptor::new(&ring, all_providers()[0], DecryptOptions::default()).unwrap();
        let err = dec.decrypt_cms(&cms, &mut Vec::new()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, Error::NoMatchingKey { .. }),
            "{}: {text}",
            row.message
        );
    }
}

#[test]
fn a_message_for_someone_else_names_the_recipient() {
    let other: Vec<Row> = top_level_rows()
        .into_iter()
        .filter(|r| r.key == "-" && r.transport.starts_with("rsa"))
        .collect();
    assert!(
        !other.is_empty(),
        "the fixtures include a message for a key we don't have"
    );
    let mut ring = KeyRing::new();
    ring.load_file(&fixtures().join("keys/rsa2048.key.pem"), None)
        .unwrap();
    ring.add_certificates_file(&fixtures().join("keys/rsa2048.cert.pem"))
        .unwrap();
    let dec = Decryptor::new(&ring, all_providers()[0], DecryptOptions::default()).unwrap();
    for row in other {
        let err = dec.decrypt_cms(&cms_of(&row), &mut Vec::new()).unwrap_err();
        assert!(
            matches!(&err, Error::NoMatchingKey { recipients } if !recipients.is_empty()),
            "{err}"
        );
        assert!(err.to_string().contains("serial 0x"), "{err}");
    }
}

#[test]
fn a_wrong_key_tried_with_try_all_keys_is_reported_never_garbage() {
    // Every RSA fixture against an unrelated RSA key: try-all-keys forces the attempt.
    let mut ring = KeyRing::new();
    ring.load_file(&fixtures().join("keys/other.key.pem"), None)
        .unwrap();
    ring.add_certificates_file(&fixtures().join("keys/other.cert.pem"))
        .unwrap();
    let opts = DecryptOptions {
        try_all_keys: true,
        ..DecryptOptions::default()
    };
    let mut n = 0;
    for row in top_level_rows()
        .iter()
        .filter(|r| supported(r) && r.transport.starts_with("rsa") && r.key != "keys/other.key.pem")
    {
        // Skip messages that really are addressed to the other key too.
        let summary = Decryptor::inspect_cms(&cms_of(row)).unwrap();
        if summary
            .recipients
            .iter()
            .any(|id| !ring.lookup(id).is_empty())
        {
            continue;
        }
        for provider in all_providers() {
            let dec = Decryptor::new(&ring, provider, opts.clone()).unwrap();
            let mut out = Vec::new();
            let r = dec.decrypt_cms_with(&cms_of(row), &mut out, row.format == "eml");
            assert!(
                matches!(r, Err(Error::WrongKey { .. })),
                "{} [{}]: {r:?}",
                row.message,
                provider.name()
            );
            assert!(
                out.is_empty(),
                "{}: nothing is written for a wrong key",
                row.message
            );
            n += 1;
        }
    }
    assert!(n > 20);
}

#[test]
fn inspect_lists_recipients_without_a_key() {
    for row in top_level_rows().iter().filter(|r| supported(r)) {
        let s =
            Decryptor::inspect_cms(&cms_of(row)).unwrap_or_else(|e| panic!("{}: {e}", row.message));
        assert!(
            !s.recipients.is_empty() || !s.other_recipients.is_empty(),
            "{}",
            row.message
        );
    }
}
