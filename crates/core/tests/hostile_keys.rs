//! Key files that are wrong in every way an admin meets: wrong or missing password, truncated
//! or MAC-failing PKCS#12, a key without certificate, a certificate without key, an expired
//! certificate. Each gives a precise classification and message. Uses only fixtures/keys, so
//! it runs everywhere (crates/core/tests/keyring.rs covers the same on the external corpora).

use std::path::{Path, PathBuf};
use unseal_core::keyring::KeyRing;
use unseal_core::provider::default_provider;
use unseal_core::{DecryptOptions, Decryptor, Error, KeyProblem};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("keys").join(name)).unwrap()
}

const PASSWORD: &str = "unseal-test";

/// Loads `data` and returns the classification and the message of the failure.
fn failure(name: &str, data: &[u8], password: Option<&str>) -> (KeyProblem, String) {
    let mut r = KeyRing::new();
    match r.load_bytes(name, data, password) {
        Err(e @ Error::Key { reason, .. }) => {
            assert!(r.is_empty(), "{name}: a failed load added keys");
            (reason, e.to_string())
        }
        other => panic!("{name}: expected a key error, got {other:?}"),
    }
}

#[test]
fn the_fixture_password_is_the_one_in_password_txt() {
    let pw = std::fs::read_to_string(fixtures().join("keys/password.txt")).unwrap();
    assert_eq!(pw.lines().next(), Some(PASSWORD));
}

#[test]
fn wrong_password_for_every_encrypted_format() {
    for f in [
        "rsa2048.p12",
        "rsa2048.legacy.p12",
        "rsa2048.nomac.p12",
        "rsa2048.key.enc.pem",
        "rsa2048.key.enc.der",
        "rsa2048.key.enc-pbes1.pem",
        "rsa2048.key.pkcs1-aes256.pem",
        "rsa2048.key.pkcs1-des3.pem",
    ] {
        let (p, msg) = failure(f, &key_file(f), Some("not-the-password"));
        assert_eq!(p, KeyProblem::WrongPassword, "{f}: {msg}");
        assert!(msg.starts_with(&format!("{f}: wrong password")), "{msg}");
        assert!(msg.contains("does not decrypt"), "{msg}");
        let (p, msg) = failure(f, &key_file(f), None);
        assert_eq!(p, KeyProblem::NeedsPassword, "{f}: {msg}");
        assert!(msg.contains("password needed"), "{msg}");
        // And the right one works.
        let mut r = KeyRing::new();
        r.load_bytes(f, &key_file(f), Some(PASSWORD))
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(r.len(), 1);
    }
}

#[test]
fn truncated_pkcs12_is_corrupt_with_the_right_password() {
    let p12 = key_file("rsa2048.p12");
    for cut in [1, 4, 100, p12.len() / 2, p12.len() - 40, p12.len() - 1] {
        let (p, msg) = failure("cut.p12", &p12[..cut], Some(PASSWORD));
        assert_eq!(p, KeyProblem::Corrupt, "cut at {cut}: {msg}");
        assert!(msg.contains("corrupt"), "{msg}");
    }
    // The DER reader says how much was missing.
    let (_, msg) = failure("half.p12", &p12[..p12.len() / 2], Some(PASSWORD));
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn mac_failing_pkcs12_is_corrupt_not_wrong_password() {
    let p12 = key_file("rsa2048.p12");
    // The MAC digest sits in the last bytes (macData: digest, salt, iterations).
    let mut bad = p12.clone();
    let n = bad.len();
    bad[n - 30] ^= 0x01;
    let (p, msg) = failure("badmac.p12", &bad, Some(PASSWORD));
    assert_eq!(p, KeyProblem::Corrupt, "{msg}");
    assert!(msg.contains("MAC does not verify"), "{msg}");
    assert!(msg.contains("damaged or was altered"), "{msg}");
    // With a wrong password the same file is a wrong password (the MAC cannot tell).
    let (p, msg) = failure("badmac.p12", &bad, Some("nope"));
    assert_eq!(p, KeyProblem::WrongPassword, "{msg}");
}

#[test]
fn key_without_certificate_loads_with_a_warning() {
    let mut r = KeyRing::new();
    let rep = r
        .load_bytes(
            "rsa2048.keyonly.p12",
            &key_file("rsa2048.keyonly.p12"),
            Some(PASSWORD),
        )
        .unwrap();
    assert_eq!(rep.keys_added, 1);
    assert!(
        rep.warnings
            .iter()
            .any(|w| w.contains("key without certificate") && w.contains("key id only")),
        "{rep:?}"
    );
    // Without the certificate, an issuer+serial recipient is still found through --cert.
    assert!(r.keys()[0].certs.is_empty());
}

#[test]
fn certificate_without_key_is_no_private_key() {
    for (f, pw) in [
        ("rsa2048.certonly.p12", Some(PASSWORD)),
        ("rsa2048.cert.pem", None),
        ("rsa2048.cert.der", None),
    ] {
        let (p, msg) = failure(f, &key_file(f), pw);
        assert_eq!(p, KeyProblem::NoPrivateKey, "{f}: {msg}");
        assert!(msg.contains("no private key"), "{msg}");
        assert!(msg.contains("certificate"), "{msg}");
    }
}

/// A copy of the fixture certificate whose notAfter is 2020-01-01 (the signature no longer
/// matches; the key ring reads validity for the warning, it does not verify chains).
fn expired_cert_der() -> Vec<u8> {
    let mut der = key_file("rsa2048.cert.der");
    // validity ::= SEQUENCE { notBefore Time, notAfter Time }: UTCTime (17 0d) or
    // GeneralizedTime (18 0f); the fixture's notAfter is in 2126, so GeneralizedTime.
    let times: Vec<(usize, u8)> = der
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w == &[0x17, 0x0d] || w == &[0x18, 0x0f])
        .map(|(i, w)| (i, w[1]))
        .collect();
    assert!(times.len() >= 2, "validity times not found");
    for ((at, len), (utc, generalized)) in times[..2].iter().zip([
        (&b"190101000000Z"[..], &b"20190101000000Z"[..]),
        (b"200101000000Z", b"20200101000000Z"),
    ]) {
        let value = if *len == 0x0d { utc } else { generalized };
        der[at + 2..at + 2 + value.len()].copy_from_slice(value);
    }
    der
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for l in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(l).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

#[test]
fn expired_certificate_warns_and_still_decrypts() {
    let mut bundle = String::from_utf8(key_file("rsa2048.key.pem")).unwrap();
    bundle.push_str(&pem("CERTIFICATE", &expired_cert_der()));
    let mut r = KeyRing::new();
    let rep = r
        .load_bytes("expired.pem", bundle.as_bytes(), None)
        .unwrap();
    assert_eq!(rep.keys_added, 1, "{rep:?}");
    assert!(
        rep.warnings
            .iter()
            .any(|w| w.contains("expired 2020-01-01") && w.contains("still usable")),
        "{rep:?}"
    );
    assert!(r.keys()[0].description().contains("expired 2020-01-01"));
    // Still usable: the certificate's issuer+serial find the key, the message decrypts.
    let dec = Decryptor::new(&r, default_provider(), DecryptOptions::default()).unwrap();
    let cms = std::fs::read(fixtures().join("messages/aes256-cbc.der.p7m")).unwrap();
    let expected = std::fs::read(fixtures().join("expected/aes256-cbc.der.p7m.out")).unwrap();
    let mut out = Vec::new();
    let info = dec.decrypt_cms_with(&cms, &mut out, false).unwrap();
    assert_eq!(out, expected);
    assert_eq!(info.key_source, "expired.pem");
}

#[test]
fn garbage_and_empty_key_files_are_corrupt() {
    for (name, data) in [
        ("empty", &b""[..]),
        ("text", b"not a key at all\n"),
        (
            "huge-length",
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02][..],
        ),
        (
            "bad-pem",
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n@@@@\n-----END ENCRYPTED PRIVATE KEY-----\n",
        ),
    ] {
        let (p, msg) = failure(name, data, Some(PASSWORD));
        assert_eq!(p, KeyProblem::Corrupt, "{name}: {msg}");
    }
}
