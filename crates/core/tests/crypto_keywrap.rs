//! AES key wrap (RFC 3394 §4 vectors) and CMS Triple-DES key wrap (RFC 3217, with `openssl` as
//! the oracle), on every provider.

use std::process::Command;
use unseal_core::Error;
use unseal_core::provider::all_providers;
use unseal_core::unwrap::keywrap::{aes_key_unwrap, des3_key_unwrap};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// RFC 3394 §4.1 .. §4.6: (KEK, key data, ciphertext).
const RFC3394: [(&str, &str, &str); 6] = [
    (
        "000102030405060708090A0B0C0D0E0F",
        "00112233445566778899AABBCCDDEEFF",
        "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5",
    ),
    (
        "000102030405060708090A0B0C0D0E0F1011121314151617",
        "00112233445566778899AABBCCDDEEFF",
        "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D",
    ),
    (
        "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
        "00112233445566778899AABBCCDDEEFF",
        "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7",
    ),
    (
        "000102030405060708090A0B0C0D0E0F1011121314151617",
        "00112233445566778899AABBCCDDEEFF0001020304050607",
        "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2",
    ),
    (
        "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
        "00112233445566778899AABBCCDDEEFF0001020304050607",
        "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1",
    ),
    (
        "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
        "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
        "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21",
    ),
];

#[test]
fn aes_key_unwrap_rfc3394_vectors() {
    for p in all_providers() {
        for (i, (kek, key, ct)) in RFC3394.iter().enumerate() {
            let out = aes_key_unwrap(p, &hex(kek), &hex(ct))
                .unwrap_or_else(|e| panic!("{} vector 4.{}: {e}", p.name(), i + 1));
            assert_eq!(
                out.as_slice(),
                hex(key).as_slice(),
                "{} vector 4.{}",
                p.name(),
                i + 1
            );
        }
    }
}

#[test]
fn aes_key_unwrap_detects_tampering_and_wrong_kek() {
    for p in all_providers() {
        for (kek, _, ct) in RFC3394 {
            let kek = hex(kek);
            let ct = hex(ct);
            for pos in [0, 8, ct.len() - 1] {
                let mut bad = ct.clone();
                bad[pos] ^= 0x01;
                let err = aes_key_unwrap(p, &kek, &bad).unwrap_err();
                assert!(
                    matches!(err, Error::WrongKey { .. }),
                    "{}: {err:?}",
                    p.name()
                );
            }
            let mut wrong = kek.clone();
            wrong[0] ^= 0x80;
            let err = aes_key_unwrap(p, &wrong, &ct).unwrap_err();
            assert!(
                matches!(err, Error::WrongKey { .. }),
                "{}: {err:?}",
                p.name()
            );
        }
    }
}

#[test]
fn aes_key_unwrap_rejects_bad_lengths() {
    let kek = [7u8; 16];
    for p in all_providers() {
        for len in [0, 8, 16, 23, 25, 31] {
            let err = aes_key_unwrap(p, &kek, &vec![0u8; len]).unwrap_err();
            assert!(matches!(err, Error::Crypto { .. }), "{len}: {err:?}");
        }
        for kek_len in [0, 8, 15, 17, 33] {
            let err = aes_key_unwrap(p, &vec![0u8; kek_len], &[0u8; 24]).unwrap_err();
            assert!(matches!(err, Error::Crypto { .. }), "{kek_len}: {err:?}");
        }
    }
}

fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: `openssl` is not on PATH");
    }
    ok
}

/// `openssl enc` with hex key/IV, no padding; stdin -> stdout.
fn openssl_enc(cipher: &str, key: &[u8], iv: Option<&[u8]>, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut cmd = Command::new("openssl");
    cmd.args(["enc", cipher, "-nopad", "-K", &to_hex(key)]);
    if let Some(iv) = iv {
        cmd.args(["-iv", &to_hex(iv)]);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl enc {cipher} failed");
    out.stdout
}

fn cms_checksum(key: &[u8]) -> Vec<u8> {
    use sha1::Digest;
    sha1::Sha1::digest(key)[..8].to_vec()
}

/// Wraps per RFC 3217 §3.1 using `openssl enc -des-ede3-cbc` for both encryption passes.
fn rfc3217_wrap_with_openssl(kek: &[u8], cek: &[u8], iv: &[u8; 8]) -> Vec<u8> {
    let mut cekicv = cek.to_vec();
    cekicv.extend_from_slice(&cms_checksum(cek));
    let temp1 = openssl_enc("-des-ede3-cbc", kek, Some(iv), &cekicv);
    let mut temp2 = iv.to_vec();
    temp2.extend_from_slice(&temp1);
    temp2.reverse();
    openssl_enc("-des-ede3-cbc", kek, Some(&hex("4adda22c79e82105")), &temp2)
}

#[test]
fn des3_key_unwrap_round_trip_built_with_openssl_enc() {
    if !have_openssl() {
        return;
    }
    let kek = hex("8ad8274e56f46773 8edd83d4394e5e29 af7c4089e4f8d9f4");
    let cek = hex("b0a5a2e1b5c49a67 3261d8160e3ffe08 a1372ff4a4d3f107");
    let wrapped = rfc3217_wrap_with_openssl(
        &kek,
        &cek,
        &[0x39, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70],
    );
    assert_eq!(wrapped.len(), 40);
    for p in all_providers() {
        let out = des3_key_unwrap(p, &kek, &wrapped).unwrap();
        assert_eq!(out.as_slice(), cek.as_slice(), "{}", p.name());
        // Any single-bit change in the wrapped key is caught by the checksum.
        for pos in [0, 7, 8, 20, 39] {
            let mut bad = wrapped.clone();
            bad[pos] ^= 0x10;
            let err = des3_key_unwrap(p, &kek, &bad).unwrap_err();
            assert!(
                matches!(err, Error::WrongKey { .. }),
                "{}: {err:?}",
                p.name()
            );
        }
        let mut wrong = kek.clone();
        wrong[23] ^= 0x02; // not a parity bit
        assert!(matches!(
            des3_key_unwrap(p, &wrong, &wrapped),
            Err(Error::WrongKey { .. })
        ));
    }
}

#[test]
fn des3_key_unwrap_matches_openssl_des3_wrap() {
    if !have_openssl() {
        return;
    }
    // OpenSSL's id-alg-CMS3DESwrap with a random IV, for a 3DES key and a 16-byte key.
    let kek = hex("0123456789abcdeffedcba98765432100f1e2d3c4b5a6978");
    for cek in [
        hex("c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8"),
        hex("00112233445566778899aabbccddeeff"),
    ] {
        let wrapped = openssl_enc("-des3-wrap", &kek, None, &cek);
        assert_eq!(wrapped.len(), cek.len() + 16);
        for p in all_providers() {
            let out = des3_key_unwrap(p, &kek, &wrapped).unwrap();
            assert_eq!(out.as_slice(), cek.as_slice(), "{}", p.name());
        }
    }
}

#[test]
fn des3_key_unwrap_rejects_bad_lengths() {
    let kek = [0x5au8; 24];
    for p in all_providers() {
        for len in [0, 8, 16, 39, 41] {
            let err = des3_key_unwrap(p, &kek, &vec![0u8; len]).unwrap_err();
            assert!(matches!(err, Error::Crypto { .. }), "{len}: {err:?}");
        }
        let err = des3_key_unwrap(p, &[0u8; 16], &[0u8; 40]).unwrap_err();
        assert!(matches!(err, Error::Crypto { .. }), "{err:?}");
        // Random bytes of the right size fail the checksum, never panic.
        let err = des3_key_unwrap(p, &kek, &[0xA5u8; 40]).unwrap_err();
        assert!(matches!(err, Error::WrongKey { .. }), "{err:?}");
    }
}
