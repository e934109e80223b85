//! A PKCS#12 file some tools hand out PEM-armoured (`-----BEGIN PKCS12-----`) loads like the DER
//! one, with the same key; a wrong password still says so.

use base64::Engine;
use std::path::{Path, PathBuf};
use unseal_core::keyring::KeyRing;
use unseal_core::{Error, KeyProblem};

fn keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/keys")
}

#[test]
fn pem_armoured_pkcs12_loads_like_der() {
    let der = std::fs::read(keys().join("rsa2048.p12")).unwrap();
    let pw = std::fs::read_to_string(keys().join("password.txt")).unwrap();
    let pw = pw.lines().next().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PKCS12-----\n{}\n-----END PKCS12-----\n",
        lines.join("\n")
    );

    let mut a = KeyRing::new();
    a.load_bytes("rsa2048.p12.pem", pem.as_bytes(), Some(pw))
        .unwrap();
    let mut b = KeyRing::new();
    b.load_file(&keys().join("rsa2048.p12"), Some(pw)).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(
        a.keys()[0].material.pkcs8_der(),
        b.keys()[0].material.pkcs8_der()
    );
    assert_eq!(a.keys()[0].certs.len(), 1, "the certificate comes along");

    let err = KeyRing::new()
        .load_bytes("rsa2048.p12.pem", pem.as_bytes(), Some("not it"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Key {
                reason: KeyProblem::WrongPassword,
                ..
            }
        ),
        "{err}"
    );
}
