//! Secrets never leak into error text. A key is loaded with a known password and a message is
//! decrypted with it; then many operations are made to fail (wrong passwords, damaged key
//! files, damaged messages, wrong keys, tampered GCM tags) and every error's Display and Debug
//! output is searched for the password and for the private key's bytes (raw, hex in both cases,
//! Debug byte lists, base64 of the key file).

use std::path::{Path, PathBuf};

use base64::Engine;
use unseal_core::cms::ber::{Reader, Tag};
use unseal_core::keyring::KeyRing;
use unseal_core::provider::default_provider;
use unseal_core::{DecryptOptions, Decryptor, Error, MessageOptions, decrypt_message};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(rel)).unwrap()
}

/// The secret INTEGERs (d, p, q, dP, dQ, qInv) of an RSA PKCS#8 PrivateKeyInfo.
fn rsa_secrets(pkcs8: &[u8]) -> Vec<Vec<u8>> {
    let mut r = Reader::new(pkcs8);
    let outer = r.expect(Tag::SEQUENCE, "PrivateKeyInfo").unwrap();
    let mut s = r.contents_reader(&outer);
    s.read_small_int("version").unwrap();
    s.read_raw("algorithm").unwrap();
    let h = s.header("privateKey").unwrap();
    let inner = s.primitive_contents(&h, "privateKey").unwrap();
    let mut k = Reader::new(inner);
    let seq = k.expect(Tag::SEQUENCE, "RSAPrivateKey").unwrap();
    let mut f = k.contents_reader(&seq);
    let mut ints = Vec::new();
    while !f.is_empty() {
        let h = f.expect(Tag::INTEGER, "field").unwrap();
        ints.push(f.primitive_contents(&h, "field").unwrap().to_vec());
    }
    // version, n, e, then the secrets.
    assert_eq!(ints.len(), 9, "an RSA two-prime key");
    ints.drain(3..).collect()
}

/// Every form in which (a piece of) a secret could show up in text.
fn needles(secret: &[u8]) -> Vec<String> {
    let mut v = Vec::new();
    // 12-byte windows, stepped: enough to catch any partial dump, few enough to stay fast.
    for w in secret.windows(12).step_by(5) {
        let hex_lower: String = w.iter().map(|b| format!("{b:02x}")).collect();
        v.push(hex_lower.clone());
        v.push(hex_lower.to_uppercase());
        v.push(
            w.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":"),
        );
        let list = format!("{w:?}");
        v.push(list[1..list.len() - 1].to_string());
        v.push(String::from_utf8_lossy(w).into_owned());
    }
    v
}

const PASSWORD: &str = "unseal-test";

fn opts() -> MessageOptions {
    MessageOptions::default()
}

#[test]
fn no_password_or_key_bytes_in_any_error_text() {
    // The known password opens the key; the key decrypts a known message.
    let enc_key = read("keys/rsa2048.key.enc.pem");
    let mut ring = KeyRing::new();
    ring.load_bytes("rsa2048.key.enc.pem", &enc_key, Some(PASSWORD))
        .unwrap();
    ring.add_certificates_file(&fixtures().join("keys/rsa2048.cert.pem"))
        .unwrap();
    let pkcs8 = ring.keys()[0].material.pkcs8_der().to_vec();
    let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
    let good = read("messages/aes256-cbc.der.eml");
    let out = decrypt_message(&dec, &good, &opts()).unwrap();
    assert!(out.output.is_some());

    let mut errors: Vec<Error> = Vec::new();

    // Key loading failures, the real password somewhere near.
    for (name, data, pw) in [
        ("enc-wrong", enc_key.clone(), format!("{PASSWORD}x")),
        ("enc-prefix", enc_key.clone(), PASSWORD[..6].to_string()),
        (
            "enc-truncated",
            enc_key[..enc_key.len() / 2].to_vec(),
            PASSWORD.into(),
        ),
        ("p12-wrong", read("keys/rsa2048.p12"), "hunter2".into()),
        (
            "p12-badmac",
            {
                let mut d = read("keys/rsa2048.p12");
                let n = d.len();
                d[n - 30] ^= 1;
                d
            },
            PASSWORD.into(),
        ),
        (
            "p12-cut",
            {
                let d = read("keys/rsa2048.p12");
                d[..d.len() - 5].to_vec()
            },
            PASSWORD.into(),
        ),
        (
            "pkcs1-wrong",
            read("keys/rsa2048.key.pkcs1-des3.pem"),
            "wrong".into(),
        ),
        (
            "certonly",
            read("keys/rsa2048.certonly.p12"),
            PASSWORD.into(),
        ),
    ] {
        let mut r = KeyRing::new();
        errors.push(r.load_bytes(name, &data, Some(&pw)).expect_err(name));
        // A key file with its bytes flipped in many places.
        for i in (0..data.len()).step_by(97) {
            let mut d = data.clone();
            d[i] ^= 0x20;
            if let Err(e) = KeyRing::new().load_bytes(name, &d, Some(&pw)) {
                errors.push(e);
            }
        }
    }
    // An unencrypted key file damaged: the error must not quote the key it failed to read.
    let plain = read("keys/rsa2048.key.pem");
    for i in (40..plain.len()).step_by(53) {
        let mut d = plain.clone();
        d[i] = b'!';
        if let Err(e) = KeyRing::new().load_bytes("plain", &d, None) {
            errors.push(e);
        }
    }
    let der = read("keys/rsa2048.key.der");
    for cut in (1..der.len()).step_by(61) {
        if let Err(e) = KeyRing::new().load_bytes("der", &der[..cut], None) {
            errors.push(e);
        }
    }

    // Decryption failures with the key loaded.
    let cms = read("messages/aes256-cbc.der.p7m");
    let gcm = read("messages/aes128-gcm.ber.p7m");
    let mut damaged: Vec<Vec<u8>> = Vec::new();
    for blob in [&cms, &gcm] {
        for i in (0..blob.len()).step_by(7) {
            let mut d = blob.clone();
            d[i] ^= 0x01;
            damaged.push(d);
        }
        for cut in (1..blob.len()).step_by(31) {
            damaged.push(blob[..cut].to_vec());
        }
    }
    for d in &damaged {
        let mut out = Vec::new();
        if let Err(e) = dec.decrypt_cms_with(d, &mut out, true) {
            errors.push(e);
        }
    }
    // The wrong key for the recipient (try-all-keys with an unrelated key).
    let mut other = KeyRing::new();
    other
        .load_file(&fixtures().join("keys/other.key.pem"), None)
        .unwrap();
    let wrong = Decryptor::new(
        &other,
        default_provider(),
        DecryptOptions {
            try_all_keys: true,
            ..DecryptOptions::default()
        },
    )
    .unwrap();
    for blob in [&cms, &gcm] {
        let mut out = Vec::new();
        errors.push(wrong.decrypt_cms(blob, &mut out).unwrap_err());
    }
    // Whole messages, damaged in the base64.
    for i in (200..good.len()).step_by(37) {
        let mut m = good.clone();
        m[i] = b'*';
        if let Err(e) = decrypt_message(&dec, &m, &opts()) {
            errors.push(e);
        }
    }
    assert!(errors.len() > 200, "only {} errors produced", errors.len());
    let kinds: std::collections::BTreeSet<&str> = errors.iter().map(Error::kind).collect();
    println!("{} errors of kinds {kinds:?}", errors.len());
    assert!(kinds.contains("key") && kinds.contains("wrong_key") && kinds.contains("malformed"));

    // What must never appear.
    let mut forbidden: Vec<(String, String)> = vec![
        ("password".into(), PASSWORD.into()),
        ("password (hex)".into(), hex(PASSWORD.as_bytes())),
    ];
    for (i, s) in rsa_secrets(&pkcs8).iter().enumerate() {
        for n in needles(s) {
            forbidden.push((format!("RSA secret #{i}"), n));
        }
    }
    for n in needles(&pkcs8[pkcs8.len() - 200..]) {
        forbidden.push(("PKCS#8 tail".into(), n));
    }
    // Base64 lines of the key files (a PEM body quoted in an error).
    for file in ["keys/rsa2048.key.pem", "keys/rsa2048.key.enc.pem"] {
        let text = String::from_utf8(read(file)).unwrap();
        for line in text
            .lines()
            .filter(|l| l.len() >= 40 && !l.starts_with("-----"))
        {
            forbidden.push((format!("{file} line"), line[8..32].to_string()));
        }
    }
    // And the whole decoded key as base64 (encoded at every alignment).
    for shift in 0..3 {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&pkcs8[shift..]);
        forbidden.push((format!("PKCS#8 base64/{shift}"), b64[40..64].to_string()));
    }

    // The search would see a leak: a hex dump of part of d is caught.
    let d = &rsa_secrets(&pkcs8)[0];
    let fake = format!("detail: {}", hex(&d[5..40]));
    assert!(forbidden.iter().any(|(_, n)| fake.contains(n.as_str())));

    let mut leaks = Vec::new();
    for e in &errors {
        for text in [e.to_string(), format!("{e:?}"), format!("{e:#?}")] {
            for (what, needle) in &forbidden {
                if needle.len() >= 6 && text.contains(needle.as_str()) {
                    leaks.push(format!("{what} in: {text}"));
                }
            }
        }
    }
    // The key ring's own Debug output (as a log line might print it).
    let ring_debug = format!("{ring:?}");
    for (what, needle) in &forbidden {
        if needle.len() >= 6 && ring_debug.contains(needle.as_str()) {
            leaks.push(format!("{what} in the KeyRing Debug output"));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks, e.g.:\n{}",
        leaks.len(),
        leaks
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
