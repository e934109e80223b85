//! The providers agree with each other and with known answers: CBC for every cipher (with
//! `openssl enc` as the oracle), raw AES blocks (FIPS-197), digests (FIPS 180 "abc"), and RSA
//! decryption of `openssl pkeyutl -encrypt` output (PKCS#1 v1.5 and OAEP variants).
//! With only aws-lc compiled in (no `pure-rust` feature) the known answers are still checked.

use std::path::Path;
use std::process::Command;
use unseal_core::provider::{BlockCipher, HashAlg, all_providers};

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

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

#[test]
fn pure_rust_provider_is_compiled_in_when_asked() {
    let names: Vec<_> = all_providers().iter().map(|p| p.name()).collect();
    assert_eq!(names[0], "aws-lc-rs");
    if cfg!(feature = "pure-rust") {
        assert_eq!(names, ["aws-lc-rs", "pure-rust"]);
    }
}

/// (openssl enc cipher, our cipher, key length)
const CBC_CASES: &[(&str, BlockCipher, usize)] = &[
    ("-des-cbc", BlockCipher::Des, 8),
    ("-des-ede3-cbc", BlockCipher::DesEde3, 24),
    ("-aes-128-cbc", BlockCipher::Aes, 16),
    ("-aes-192-cbc", BlockCipher::Aes, 24),
    ("-aes-256-cbc", BlockCipher::Aes, 32),
    (
        "-rc2-cbc",
        BlockCipher::Rc2 {
            effective_bits: 128,
        },
        16,
    ),
    ("-rc2-40-cbc", BlockCipher::Rc2 { effective_bits: 40 }, 5),
    ("-rc2-64-cbc", BlockCipher::Rc2 { effective_bits: 64 }, 8),
    ("-cast5-cbc", BlockCipher::Cast5, 16),
    ("-camellia-128-cbc", BlockCipher::Camellia, 16),
    ("-camellia-192-cbc", BlockCipher::Camellia, 24),
    ("-camellia-256-cbc", BlockCipher::Camellia, 32),
    ("-seed-cbc", BlockCipher::Seed, 16),
];

fn openssl_enc(cipher: &str, key: &[u8], iv: &[u8], input: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args([
            "enc",
            cipher,
            "-nopad",
            "-K",
            &to_hex(key),
            "-iv",
            &to_hex(iv),
        ])
        .args(["-provider", "legacy", "-provider", "default"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(input).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status.success().then_some(out.stdout)
}

#[test]
fn cbc_agrees_across_providers_and_with_openssl() {
    let openssl = have_openssl();
    // 37 blocks, and 1100: the bitsliced DES takes 512 blocks at a time, then 64 at a time.
    let cases = CBC_CASES.iter().enumerate();
    for ((i, &(name, cipher, key_len)), blocks) in cases.flat_map(|c| [(c, 37), (c, 1100)]) {
        let key = pattern(key_len, 100 + i as u32);
        let iv = pattern(cipher.block_len(), 200 + i as u32);
        let plain = pattern(cipher.block_len() * blocks, 300 + i as u32);
        // Arbitrary bytes decrypt the same way on every provider.
        let mut reference: Option<Vec<u8>> = None;
        for p in all_providers() {
            let d = p.cbc_decryptor(cipher, &key).unwrap();
            assert_eq!(d.block_len(), cipher.block_len());
            let mut data = plain.clone();
            d.decrypt(&iv, &mut data).unwrap();
            match &reference {
                None => reference = Some(data),
                Some(r) => assert!(*r == data, "{name} x {blocks}: {} differs", p.name()),
            }
        }
        if !openssl {
            continue;
        }
        let Some(ct) = openssl_enc(name, &key, &iv, &plain) else {
            eprintln!("skipping the openssl check of {name}: this openssl cannot run it");
            continue;
        };
        for p in all_providers() {
            let d = p.cbc_decryptor(cipher, &key).unwrap();
            let mut data = ct.clone();
            d.decrypt(&iv, &mut data).unwrap();
            assert!(data == plain, "{name} x {blocks} on {}", p.name());
            // Chaining across calls: the IV of the second half is the last block of the first.
            let mut split = ct.clone();
            let half = cipher.block_len() * 18;
            let (a, b) = split.split_at_mut(half);
            d.decrypt(&iv, a).unwrap();
            d.decrypt(&ct[half - cipher.block_len()..half], b).unwrap();
            assert!(split == plain, "{name} x {blocks} split on {}", p.name());
        }
    }
}

#[test]
fn cbc_rejects_bad_keys_and_lengths() {
    for p in all_providers() {
        for (cipher, bad_key) in [
            (BlockCipher::Des, 7),
            (BlockCipher::DesEde3, 16),
            (BlockCipher::Aes, 20),
            (BlockCipher::Cast5, 4),
            (BlockCipher::Cast5, 17),
            (BlockCipher::Rc2 { effective_bits: 64 }, 0),
            (BlockCipher::Rc2 { effective_bits: 64 }, 129),
            (BlockCipher::Camellia, 20),
            (BlockCipher::Seed, 24),
        ] {
            assert!(
                p.cbc_decryptor(cipher, &vec![1u8; bad_key]).is_err(),
                "{} {cipher:?}",
                p.name()
            );
        }
        let d = p.cbc_decryptor(BlockCipher::Aes, &[0u8; 16]).unwrap();
        assert!(d.decrypt(&[0u8; 16], &mut [0u8; 15]).is_err());
        assert!(d.decrypt(&[0u8; 8], &mut [0u8; 16]).is_err());
        let d = p.cbc_decryptor(BlockCipher::Cast5, &[0u8; 16]).unwrap();
        assert!(d.decrypt(&[0u8; 8], &mut [0u8; 12]).is_err());
    }
}

#[test]
fn aes_blocks_fips197() {
    let pt = hex("00112233445566778899aabbccddeeff");
    for (key, ct) in [
        (
            "000102030405060708090a0b0c0d0e0f",
            "69c4e0d86a7b0430d8cdb78070b4c55a",
        ),
        (
            "000102030405060708090a0b0c0d0e0f1011121314151617",
            "dda97ca4864cdfe06eaf70a0ec0d7191",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "8ea2b7ca516745bfeafc49904b496089",
        ),
    ] {
        let key = hex(key);
        let ct = hex(ct);
        let mut reference: Option<Vec<u8>> = None;
        for p in all_providers() {
            let e = p.aes_encryptor(&key).unwrap();
            // Three copies of the block, each encrypted independently (ECB direction).
            let mut data = [pt.clone(), pt.clone(), pt.clone()].concat();
            e.encrypt_blocks(&mut data).unwrap();
            assert_eq!(
                data,
                [ct.clone(), ct.clone(), ct.clone()].concat(),
                "{}",
                p.name()
            );
            let mut many = pattern(16 * 300, key.len() as u32);
            e.encrypt_blocks(&mut many).unwrap();
            e.encrypt_blocks(&mut []).unwrap();
            assert!(e.encrypt_blocks(&mut [0u8; 17]).is_err());
            match &reference {
                None => reference = Some(many),
                Some(r) => assert!(*r == many, "{} differs", p.name()),
            }
        }
    }
    for p in all_providers() {
        for len in [0, 8, 15, 17, 33] {
            assert!(p.aes_encryptor(&vec![0u8; len]).is_err());
        }
    }
}

#[test]
fn digests_fips180() {
    let abc = [
        (HashAlg::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (
            HashAlg::Sha224,
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
        ),
        (
            HashAlg::Sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            HashAlg::Sha384,
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            HashAlg::Sha512,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ];
    let long = pattern(10_000, 7);
    for p in all_providers() {
        for (h, want) in abc {
            assert_eq!(p.digest(h, &[b"abc"]), hex(want), "{} {h:?}", p.name());
            assert_eq!(
                p.digest(h, &[b"a", b"", b"bc"]),
                hex(want),
                "{} {h:?}",
                p.name()
            );
            assert_eq!(p.digest(h, &[&long]).len(), h.output_len());
            assert_eq!(
                p.digest(h, &[&long[..1234], &long[1234..]]),
                all_providers()[0].digest(h, &[&long]),
                "{} {h:?}",
                p.name()
            );
        }
    }
}

fn openssl_in(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rsa_decrypts_openssl_pkeyutl_output() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    openssl_in(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "key.pem",
        ],
    );
    openssl_in(
        dir,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.p8",
        ],
    );
    let pkcs8 = std::fs::read(dir.join("key.p8")).unwrap();
    let cek = pattern(32, 99);
    std::fs::write(dir.join("cek.bin"), &cek).unwrap();

    let encrypt = |opts: &[&str]| -> Vec<u8> {
        let mut args = vec![
            "pkeyutl", "-encrypt", "-inkey", "key.pem", "-in", "cek.bin", "-out", "ct.bin",
        ];
        for o in opts {
            args.extend(["-pkeyopt", o]);
        }
        openssl_in(dir, &args);
        std::fs::read(dir.join("ct.bin")).unwrap()
    };
    let pkcs1 = encrypt(&[]);
    let oaep_sha1 = encrypt(&["rsa_padding_mode:oaep"]);
    let oaep_256_mgf1 = encrypt(&[
        "rsa_padding_mode:oaep",
        "rsa_oaep_md:sha256",
        "rsa_mgf1_md:sha1",
    ]);
    let oaep_256 = encrypt(&[
        "rsa_padding_mode:oaep",
        "rsa_oaep_md:sha256",
        "rsa_mgf1_md:sha256",
    ]);
    let oaep_384_label = encrypt(&[
        "rsa_padding_mode:oaep",
        "rsa_oaep_md:sha384",
        "rsa_mgf1_md:sha384",
        "rsa_oaep_label:0102030405",
    ]);

    for p in all_providers() {
        let key = p.rsa_private_key(&pkcs8).unwrap();
        assert_eq!(key.size_bytes(), 256, "{}", p.name());
        assert_eq!(
            key.decrypt_pkcs1v15(&pkcs1).unwrap().as_slice(),
            cek.as_slice(),
            "{}",
            p.name()
        );
        let oaep = |h, m, label: &[u8], ct: &[u8]| key.decrypt_oaep(h, m, label, ct);
        assert_eq!(
            oaep(HashAlg::Sha1, HashAlg::Sha1, b"", &oaep_sha1)
                .unwrap()
                .as_slice(),
            cek.as_slice()
        );
        assert_eq!(
            oaep(HashAlg::Sha256, HashAlg::Sha1, b"", &oaep_256_mgf1)
                .unwrap()
                .as_slice(),
            cek.as_slice(),
            "{}",
            p.name()
        );
        assert_eq!(
            oaep(HashAlg::Sha256, HashAlg::Sha256, b"", &oaep_256)
                .unwrap()
                .as_slice(),
            cek.as_slice()
        );
        assert_eq!(
            oaep(
                HashAlg::Sha384,
                HashAlg::Sha384,
                &[1, 2, 3, 4, 5],
                &oaep_384_label
            )
            .unwrap()
            .as_slice(),
            cek.as_slice(),
            "{}",
            p.name()
        );
        // OAEP checks are explicit: wrong hash, wrong MGF1 hash or wrong label is an error.
        assert!(
            oaep(HashAlg::Sha256, HashAlg::Sha256, b"", &oaep_256_mgf1).is_err(),
            "{}",
            p.name()
        );
        assert!(
            oaep(HashAlg::Sha1, HashAlg::Sha1, b"", &oaep_256).is_err(),
            "{}",
            p.name()
        );
        assert!(
            oaep(HashAlg::Sha384, HashAlg::Sha384, b"", &oaep_384_label).is_err(),
            "{}",
            p.name()
        );
        // Garbage input never panics.
        for bad in [&[][..], &[0u8; 10][..], &[0xffu8; 256][..], &[0u8; 300][..]] {
            let _ = key.decrypt_pkcs1v15(bad);
            assert!(
                key.decrypt_oaep(HashAlg::Sha1, HashAlg::Sha1, b"", bad)
                    .is_err()
            );
        }
    }
    for p in all_providers() {
        assert!(p.rsa_private_key(b"not a key").is_err());
        assert!(p.rsa_private_key(&pkcs8[..pkcs8.len() / 2]).is_err());
    }
}
