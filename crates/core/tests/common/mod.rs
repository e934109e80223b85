//! Helpers shared by the integration tests that use the fixture keys.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use unseal_core::keyring::KeyRing;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Every fixture key (RSA 1024–4096, EC P-256–P-521) with its certificate.
pub fn all_keys() -> KeyRing {
    let pw = std::fs::read_to_string(fixtures().join("keys/password.txt")).unwrap();
    let pw = pw.lines().next().unwrap().to_string();
    let mut ring = KeyRing::new();
    for name in [
        "rsa1024", "rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384", "ec-p521",
    ] {
        ring.load_file(&fixtures().join(format!("keys/{name}.key.pem")), Some(&pw))
            .unwrap();
        ring.add_certificates_file(&fixtures().join(format!("keys/{name}.cert.pem")))
            .unwrap();
    }
    ring
}
