//! Raw CMS envelopes from third-party corpora (RFC 4134, pyca/cryptography, GnuPG, NSS 2019) decrypt
//! to the plaintext their producers (checked with OpenSSL) give, with every provider.
//! The corpora live outside the repository; without them these tests print why and pass.

use std::path::{Path, PathBuf};
use unseal_core::keyring::KeyRing;
use unseal_core::provider::all_providers;
use unseal_core::{DecryptOptions, Decryptor};

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

fn unarmour(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine;
    if !bytes.starts_with(b"-----") {
        return bytes.to_vec();
    }
    let text = String::from_utf8_lossy(bytes);
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':'))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .expect("armoured base64")
}

/// Decrypts `cms` with `ring` using every provider and checks the plaintext.
fn check(name: &str, ring: &KeyRing, cms: &[u8], expected: &[u8], check_mime: bool) {
    for provider in all_providers() {
        let dec = Decryptor::new(ring, provider, DecryptOptions::default()).unwrap();
        let mut out = Vec::new();
        let info = dec
            .decrypt_cms_with(cms, &mut out, check_mime)
            .unwrap_or_else(|e| panic!("{name} [{}]: {e}", provider.name()));
        assert_eq!(
            out,
            expected,
            "{name} [{}]: plaintext differs",
            provider.name()
        );
        assert!(!info.key_transport.is_empty());
    }
}

fn ring(files: &[(PathBuf, Option<&str>)]) -> KeyRing {
    let mut r = KeyRing::new();
    for (f, pw) in files {
        let name = f.to_string_lossy();
        if name.ends_with(".cert.pem") || name.ends_with("_ca.pem") || name.ends_with(".cer") {
            r.add_certificates_file(f)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        } else {
            r.load_file(f, *pw)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        }
    }
    r
}

#[test]
fn rfc4134_enveloped_examples() {
    let Some(c) = corpora() else { return };
    let d = c.join("rfc4134/extracted");
    let ring = ring(&[(d.join("BobPrivRSAEncrypt.pri"), None)]);
    let mut r2 = ring;
    r2.add_certificates_file(&d.join("BobRSASignByCarl.cer"))
        .unwrap();
    let expected = std::fs::read(d.join("ExContent.bin")).unwrap();
    // 5.1: 3DES. 5.2: RC2/40 with a second, KEK recipient we cannot open (must not get in the way).
    for name in ["5.1.bin", "5.2.bin"] {
        check(
            name,
            &r2,
            &std::fs::read(d.join(name)).unwrap(),
            &expected,
            false,
        );
    }
}

#[test]
fn pyca_vectors() {
    let Some(c) = corpora() else { return };
    let d = c.join("pyca-cryptography-pkcs7");
    let ca = ring(&[
        (d.join("x509-custom-ca/rsa_key.pem"), None),
        (d.join("x509-custom-ca/rsa_ca.pem"), None),
    ]);
    for name in [
        "enveloped-aes-192-cbc.pem",
        "enveloped-aes-256-cbc.pem",
        "enveloped-rsa-oaep.pem",
        "enveloped-triple-des.pem",
    ] {
        let cms = unarmour(&std::fs::read(d.join("vectors-pkcs7").join(name)).unwrap());
        let expected = std::fs::read(
            d.join("_derived/decrypted")
                .join(format!("{name}.decrypted")),
        )
        .unwrap();
        check(name, &ca, &cms, &expected, false);
    }
    // Two recipients (LAMPS draft Bob and Alice); either key opens it.
    let cms = unarmour(&std::fs::read(d.join("vectors-pkcs7/enveloped.pem")).unwrap());
    let expected = std::fs::read(d.join("_derived/decrypted/enveloped.pem.decrypted")).unwrap();
    for who in ["bob", "alice"] {
        let keys = d.join("_derived/keys");
        let r = ring(&[
            (keys.join(format!("lamps-draft-{who}.key.pem")), None),
            (keys.join(format!("lamps-draft-{who}.cert.pem")), None),
        ]);
        check(&format!("enveloped.pem ({who})"), &r, &cms, &expected, true);
    }
}

#[test]
fn gnupg_gpgsm_envelopes_with_t61_issuer() {
    let Some(c) = corpora() else { return };
    let d = c.join("gnupg-gpgsm-tests");
    // Key only, no certificate: the issuer (a T61String with a Latin-1 ü) can't be matched, so
    // the key must be tried because it is the only one: that is what --try-all-keys is for.
    let r = ring(&[(d.join("_derived/keys/gpgsm-test-cert-1.key.pem"), None)]);
    for name in ["plain-1", "plain-3"] {
        let cms = unarmour(&std::fs::read(d.join(format!("tests-gpgsm/{name}.cms.asc"))).unwrap());
        let expected = std::fs::read(d.join(format!("_derived/{name}.cms.decrypted"))).unwrap();
        let dec = Decryptor::new(&r, all_providers()[0], DecryptOptions::default()).unwrap();
        let err = dec
            .decrypt_cms_with(&cms, &mut Vec::new(), false)
            .unwrap_err();
        assert!(err.to_string().contains("no key"), "{name}: {err}");
        for provider in all_providers() {
            let opts = DecryptOptions {
                try_all_keys: true,
                check_mime: false,
                ..DecryptOptions::default()
            };
            let dec = Decryptor::new(&r, provider, opts).unwrap();
            let mut out = Vec::new();
            dec.decrypt_cms(&cms, &mut out)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(out, expected, "{name} [{}]", provider.name());
        }
    }
}

#[test]
fn nss_2019_raw_envelopes_with_legacy_pkcs12() {
    let Some(c) = corpora() else { return };
    let d = c.join("thunderbird-smime");
    let r = ring(&[(d.join("legacy-2019-keys/Bob.p12"), Some(""))]);
    let mut n = 0;
    for entry in std::fs::read_dir(d.join("mailnews-test-data-smime")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".env") {
            continue;
        }
        let expected = std::fs::read(
            d.join("_derived/decrypted")
                .join(format!("{name}.decrypted")),
        )
        .unwrap();
        check(&name, &r, &std::fs::read(&path).unwrap(), &expected, true);
        n += 1;
    }
    assert_eq!(n, 9, "the nine raw DER envelopes of 2019");
}
