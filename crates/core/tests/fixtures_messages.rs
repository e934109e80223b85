//! Whole messages from fixtures/ (every structure: top-level envelopes, nesting, signatures,
//! plain) go through `mime::decrypt_message`: the expected inner entity appears byte-exact, no
//! envelope is left, inner signatures still verify with OpenSSL, outer ones that cannot are
//! removed and recorded, plain messages are untouched.

mod common;

use common::{all_keys, fixtures};
use unseal_core::mime::{MessageOptions, decrypt_message, find_envelopes};
use unseal_core::provider::default_provider;
use unseal_core::{DecryptOptions, Decryptor};

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn rows() -> Vec<Vec<String>> {
    std::fs::read_to_string(fixtures().join("index.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn opts() -> MessageOptions {
    MessageOptions {
        timestamp: "Wed, 25 Nov 2026 12:00:00 +0000".into(),
        ..MessageOptions::default()
    }
}

fn openssl_verifies(message: &[u8]) -> Option<bool> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.eml");
    std::fs::write(&f, message).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["cms", "-verify", "-in"])
        .arg(&f)
        .arg("-CAfile")
        .arg(fixtures().join("keys/signer-ca.cert.pem"))
        .args(["-out", "/dev/null"])
        .output()
        .ok()?;
    Some(out.status.success())
}

#[test]
fn every_fixture_message_decrypts_in_place() {
    let ring = all_keys();
    let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
    let mut checked = 0;
    for row in rows() {
        let (message, format, expected, structure) = (&row[0], &row[1], &row[4], &row[8]);
        if format != "eml"
            || (expected == "-" && !structure.starts_with("plain") && structure != "sig-multipart")
        {
            continue;
        }
        if row[6].starts_with("pwri") || row[6].starts_with("kekri") {
            continue;
        }
        let input = std::fs::read(fixtures().join(message)).unwrap();
        let outcome =
            decrypt_message(&dec, &input, &opts()).unwrap_or_else(|e| panic!("{message}: {e}"));
        if structure == "plain" || structure == "sig-multipart" {
            assert!(
                outcome.output.is_none(),
                "{message}: a message without envelope is left as it is"
            );
            assert!(outcome.layers.is_empty());
            checked += 1;
            continue;
        }
        let out = outcome
            .output
            .unwrap_or_else(|| panic!("{message}: nothing decrypted"));
        let exp = std::fs::read(fixtures().join(expected)).unwrap();
        let inner = std::fs::read(fixtures().join(expected.replace(".out", ".inner"))).ok();
        let second = std::fs::read(fixtures().join(format!("{expected}2"))).ok();
        match structure.as_str() {
            "env(env)" => {
                assert!(
                    contains(&out, inner.as_ref().unwrap()),
                    "{message}: innermost plaintext"
                );
                assert_eq!(outcome.layers.len(), 2, "{message}");
            }
            "multipart(env,env)" => {
                assert!(
                    contains(&out, &exp) && contains(&out, second.as_ref().unwrap()),
                    "{message}"
                );
                assert_eq!(outcome.layers.len(), 2, "{message}");
            }
            _ => assert!(
                contains(&out, &exp),
                "{message}: the decrypted entity appears byte-exact"
            ),
        }
        assert!(!outcome.layers.is_empty(), "{message}");
        let left = find_envelopes(&out, &opts()).unwrap();
        assert!(left.is_empty(), "{message}: no envelope is left");
        assert!(
            contains(&out, b"X-Unseal-Decrypted: "),
            "{message}: trace header"
        );
        match structure.as_str() {
            "env(sig-opaque)" | "env(sig-multipart)" => {
                assert!(outcome.signatures_removed.is_empty(), "{message}");
                if let Some(ok) = openssl_verifies(&out) {
                    assert!(
                        ok,
                        "{message}: the inner signature still verifies after decryption"
                    );
                } else {
                    eprintln!("skipping signature check for {message}: openssl not found");
                }
            }
            "sig-opaque(env)" | "sig-multipart(env)" => {
                assert_eq!(
                    outcome.signatures_removed.len(),
                    1,
                    "{message}: the outer signature is removed and recorded"
                );
                assert!(
                    contains(&out, b"signature-removed"),
                    "{message}: and the trace says so"
                );
            }
            _ => {}
        }
        checked += 1;
    }
    assert!(checked >= 60, "only {checked} messages checked");
}

#[test]
fn no_trace_header_when_switched_off() {
    let ring = all_keys();
    let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
    let input = std::fs::read(fixtures().join("messages/aes256-cbc.der.eml")).unwrap();
    let o = MessageOptions {
        trace_header: false,
        ..opts()
    };
    let out = decrypt_message(&dec, &input, &o).unwrap().output.unwrap();
    assert!(!contains(&out, b"X-Unseal-Decrypted"));
    // Outer headers kept, Content-* from the inner entity.
    let exp = std::fs::read(fixtures().join("expected/aes256-cbc.der.eml.out")).unwrap();
    assert!(out.ends_with(&exp));
    assert!(contains(&out, b"Subject: "));
}
