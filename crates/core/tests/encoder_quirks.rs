//! Real-world encoder bugs the issue names, reproduced by patching OpenSSL output at the byte
//! level: the AES OID that contradicts the key length, and an OAEP MGF1 hash declared wrongly.

use std::path::{Path, PathBuf};
use unseal_core::keyring::KeyRing;
use unseal_core::provider::all_providers;
use unseal_core::{DecryptOptions, Decryptor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn ring() -> KeyRing {
    let mut r = KeyRing::new();
    r.load_file(&fixtures().join("keys/rsa2048.key.pem"), None)
        .unwrap();
    r.add_certificates_file(&fixtures().join("keys/rsa2048.cert.pem"))
        .unwrap();
    r
}

fn body_of(eml: &str) -> Vec<u8> {
    let bytes = std::fs::read(fixtures().join("messages").join(eml)).unwrap();
    mail_parser::MessageParser::default()
        .parse(&bytes)
        .unwrap()
        .root_part()
        .contents()
        .to_vec()
}

/// Replaces the `nth` (0-based) occurrence of `from` with `to` (same length).
fn patch(data: &mut [u8], from: &[u8], to: &[u8], nth: usize) {
    assert_eq!(from.len(), to.len());
    let pos: Vec<usize> = data
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .collect();
    let at = *pos.get(nth).unwrap_or_else(|| {
        panic!(
            "occurrence {nth} of the pattern not found ({} found)",
            pos.len()
        )
    });
    data[at..at + to.len()].copy_from_slice(to);
}

const AES256_CBC: [u8; 11] = [
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a,
];
const AES128_CBC: [u8; 11] = [
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02,
];
const SHA256: [u8; 11] = [
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
];
const SHA384: [u8; 11] = [
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
];

#[test]
fn aes_oid_contradicting_the_key_length_trusts_the_key() {
    let original = std::fs::read(fixtures().join("messages/aes256-cbc.der.p7m")).unwrap();
    let expected = std::fs::read(fixtures().join("expected/aes256-cbc.der.p7m.out")).unwrap();
    let mut cms = original.clone();
    patch(&mut cms, &AES256_CBC, &AES128_CBC, 0);
    let r = ring();
    for p in all_providers() {
        let dec = Decryptor::new(&r, p, DecryptOptions::default()).unwrap();
        let mut out = Vec::new();
        let info = dec.decrypt_cms_with(&cms, &mut out, false).unwrap();
        assert_eq!(out, expected, "[{}]", p.name());
        assert_eq!(
            info.content_cipher, "AES-256-CBC",
            "named by the key actually used"
        );
    }
}

#[test]
fn oaep_with_a_wrongly_declared_mgf1_hash_falls_back_to_the_oaep_hash() {
    let mut cms = body_of("oaep-sha256.eml");
    // hashFunc SHA-256 stays (1st occurrence); the MGF1 hash (2nd) is declared SHA-384.
    patch(&mut cms, &SHA256, &SHA384, 1);
    let expected = std::fs::read(fixtures().join("expected/oaep-sha256.eml.out")).unwrap();
    let r = ring();
    for p in all_providers() {
        let dec = Decryptor::new(&r, p, DecryptOptions::default()).unwrap();
        let summary = Decryptor::inspect_cms(&cms).unwrap();
        assert_eq!(summary.recipients.len(), 1);
        let mut out = Vec::new();
        let info = dec
            .decrypt_cms(&cms, &mut out)
            .unwrap_or_else(|e| panic!("[{}]: {e}", p.name()));
        assert_eq!(out, expected, "[{}]", p.name());
        assert_eq!(
            info.key_transport, "RSAES-OAEP SHA-256/MGF1-SHA-256",
            "reports what really worked"
        );
    }
}

#[test]
fn a_bad_gcm_tag_publishes_nothing_with_any_provider() {
    for name in ["aes128-gcm.ber.p7m"] {
        let mut cms = std::fs::read(fixtures().join("messages").join(name)).unwrap();
        let mac = unseal_core::cms::envelope::parse(&cms)
            .unwrap()
            .mac
            .unwrap();
        let at = cms.windows(mac.len()).rposition(|w| w == &mac[..]).unwrap();
        cms[at + mac.len() - 1] ^= 1;
        let r = ring();
        for p in all_providers() {
            let dec = Decryptor::new(&r, p, DecryptOptions::default()).unwrap();
            let mut out = Vec::new();
            let err = dec.decrypt_cms_with(&cms, &mut out, false).unwrap_err();
            assert_eq!(err.kind(), "wrong_key", "[{}] {err}", p.name());
            assert!(err.to_string().contains("tag"), "[{}] {err}", p.name());
            assert!(out.is_empty(), "[{}] nothing written", p.name());
        }
    }
}
