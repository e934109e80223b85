//! Large AuthEnvelopedData plaintext waits for its tag in a temporary file of the spool folder
//! (the output folder, in the CLI), not in memory; nothing is left behind and nothing is
//! published for a bad tag.

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

fn spooled(dir: &Path, threshold: u64) -> DecryptOptions {
    DecryptOptions {
        spool_dir: Some(dir.to_path_buf()),
        spool_threshold: threshold,
        ..DecryptOptions::default()
    }
}

#[test]
fn spooled_gcm_decrypts_and_leaves_nothing_behind() {
    let cms = std::fs::read(fixtures().join("messages/aes128-gcm.ber.p7m")).unwrap();
    let expected = std::fs::read(fixtures().join("expected/aes128-gcm.ber.p7m.out")).unwrap();
    let r = ring();
    for p in all_providers() {
        let dir = tempfile::tempdir().unwrap();
        let dec = Decryptor::new(&r, p, spooled(dir.path(), 0)).unwrap();
        let mut out = Vec::new();
        dec.decrypt_cms_with(&cms, &mut out, false).unwrap();
        assert_eq!(out, expected, "[{}]", p.name());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no file left in the spool folder"
        );

        // A bad tag: nothing published, nothing left.
        let mut bad = cms.clone();
        let mac = unseal_core::cms::envelope::parse(&bad)
            .unwrap()
            .mac
            .unwrap();
        let at = bad.windows(mac.len()).rposition(|w| w == &mac[..]).unwrap();
        bad[at] ^= 0x80;
        let mut out = Vec::new();
        let err = dec.decrypt_cms_with(&bad, &mut out, false).unwrap_err();
        assert!(err.to_string().contains("tag"), "{err}");
        assert!(out.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

#[test]
fn the_spool_is_used_from_the_threshold_on() {
    let cms = std::fs::read(fixtures().join("messages/aes128-gcm.ber.p7m")).unwrap();
    let r = ring();
    // A spool folder that does not exist shows whether the spool was used.
    let missing = tempfile::tempdir().unwrap().path().join("gone");
    let dec = Decryptor::new(&r, all_providers()[0], spooled(&missing, 0)).unwrap();
    let err = dec
        .decrypt_cms_with(&cms, &mut Vec::new(), false)
        .unwrap_err();
    assert!(err.to_string().contains("spool file"), "{err}");
    let dec = Decryptor::new(&r, all_providers()[0], spooled(&missing, u64::MAX)).unwrap();
    dec.decrypt_cms_with(&cms, &mut Vec::new(), false).unwrap();
}
