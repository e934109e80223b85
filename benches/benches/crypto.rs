//! Primitive throughput through the provider trait, for every provider compiled in
//! (`--features pure-rust` adds the RustCrypto one):
//! - RSA private-key unwrap per key size and padding (ciphertexts made by `openssl pkeyutl`),
//! - ECDH agreement per curve,
//! - each CBC content cipher through `CbcStream`, and AES-GCM through `GcmDecryptor`, in MB/s.
//!
//! `cargo bench -p unseal-benches --bench crypto [--features pure-rust]`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use unseal_benches as ub;
use unseal_core::content::cbc::CbcStream;
use unseal_core::content::gcm::GcmDecryptor;
use unseal_core::provider::{BlockCipher, EcCurve, HashAlg, all_providers};

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(ub::WARM_UP)
        .measurement_time(ub::MEASUREMENT)
        .sample_size(ub::SAMPLES)
}

/// A 32-byte CEK, as an AES-256 content key would be.
const CEK: [u8; 32] = [0x5a; 32];

#[derive(Clone, Copy)]
enum Pad {
    Pkcs1,
    OaepSha1,
    OaepSha256,
}

impl Pad {
    fn name(self) -> &'static str {
        match self {
            Pad::Pkcs1 => "pkcs1v15",
            Pad::OaepSha1 => "oaep-sha1",
            Pad::OaepSha256 => "oaep-sha256",
        }
    }
    fn pkeyopts(self) -> &'static [&'static str] {
        match self {
            Pad::Pkcs1 => &["rsa_padding_mode:pkcs1"],
            Pad::OaepSha1 => &["rsa_padding_mode:oaep"],
            Pad::OaepSha256 => &[
                "rsa_padding_mode:oaep",
                "rsa_oaep_md:sha256",
                "rsa_mgf1_md:sha256",
            ],
        }
    }
}

fn rsa(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("rsa_unwrap");
    for bits in [1024, 2048, 3072, 4096] {
        let key = ub::fixture(&format!("keys/rsa{bits}.key.pem"));
        let cert = ub::fixture(&format!("keys/rsa{bits}.cert.pem"));
        let pkcs8 = ub::pkcs8_of(&key);
        for pad in [Pad::Pkcs1, Pad::OaepSha1, Pad::OaepSha256] {
            let ct = ub::rsa_encrypt(tmp.path(), &cert, &CEK, pad.pkeyopts());
            for p in all_providers() {
                let k = p.rsa_private_key(&pkcs8).unwrap();
                // Check once that the unwrap is right before timing it.
                let check = |ct: &[u8]| match pad {
                    Pad::Pkcs1 => k.decrypt_pkcs1v15(ct),
                    Pad::OaepSha1 => k.decrypt_oaep(HashAlg::Sha1, HashAlg::Sha1, &[], ct),
                    Pad::OaepSha256 => k.decrypt_oaep(HashAlg::Sha256, HashAlg::Sha256, &[], ct),
                };
                assert_eq!(&check(&ct).unwrap()[..], &CEK[..]);
                g.throughput(Throughput::Elements(1));
                g.bench_with_input(
                    BenchmarkId::new(format!("{}/{}", p.name(), pad.name()), bits),
                    &ct,
                    |b, ct| b.iter(|| check(black_box(ct)).unwrap()),
                );
            }
        }
    }
    g.finish();
}

fn ecdh(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("ecdh_agree");
    for (curve, name, file) in [
        (EcCurve::P256, "P-256", "ec-p256"),
        (EcCurve::P384, "P-384", "ec-p384"),
        (EcCurve::P521, "P-521", "ec-p521"),
    ] {
        let pkcs8 = ub::pkcs8_of(&ub::fixture(&format!("keys/{file}.key.pem")));
        let peer = ub::ec_ephemeral_point(tmp.path(), name);
        for p in all_providers() {
            // The pure-Rust provider has no ECDH; it says so here.
            let Ok(k) = p.ec_private_key(curve, &pkcs8) else {
                continue;
            };
            g.throughput(Throughput::Elements(1));
            g.bench_with_input(BenchmarkId::new(p.name(), name), &peer, |b, peer| {
                b.iter(|| k.agree(black_box(peer)).unwrap())
            });
        }
    }
    g.finish();
}

fn random_bytes(len: usize) -> Vec<u8> {
    // xorshift: cheap, deterministic, and not all-zero (which some ciphers might shortcut).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn cbc(c: &mut Criterion) {
    // 1 MiB per iteration; random ciphertext, so `finish` reports bad padding, which costs the
    // same as good padding and is not what is measured.
    let len = if ub::full_run() { 1 << 20 } else { 1 << 12 };
    let ct = random_bytes(len);
    let ciphers: [(&str, BlockCipher, usize); 8] = [
        ("DES", BlockCipher::Des, 8),
        ("3DES", BlockCipher::DesEde3, 24),
        (
            "RC2-128",
            BlockCipher::Rc2 {
                effective_bits: 128,
            },
            16,
        ),
        ("CAST5", BlockCipher::Cast5, 16),
        ("AES-128", BlockCipher::Aes, 16),
        ("AES-256", BlockCipher::Aes, 32),
        ("CAMELLIA-256", BlockCipher::Camellia, 32),
        ("SEED", BlockCipher::Seed, 16),
    ];
    let mut g = c.benchmark_group("cbc_stream");
    g.throughput(Throughput::Bytes(len as u64));
    for (name, cipher, key_len) in ciphers {
        // Distinct bytes: a repeated byte would make a degenerate 3DES key (K1 = K2 = K3).
        let key: Vec<u8> = (0..key_len).map(|i| (i * 37 + 11) as u8).collect();
        let iv = vec![0x24u8; cipher.block_len()];
        for p in all_providers() {
            g.bench_with_input(BenchmarkId::new(p.name(), name), &ct, |b, ct| {
                b.iter(|| {
                    let dec = p.cbc_decryptor(cipher, &key).unwrap();
                    let mut s = CbcStream::new(dec, &iv);
                    s.update(black_box(ct), &mut std::io::sink()).unwrap();
                    let _ = black_box(s.finish(&mut std::io::sink()));
                })
            });
        }
    }
    g.finish();
}

fn gcm(c: &mut Criterion) {
    let len = if ub::full_run() { 1 << 20 } else { 1 << 12 };
    let mut data = random_bytes(len);
    let nonce = [7u8; 12];
    let mut g = c.benchmark_group("gcm");
    g.throughput(Throughput::Bytes(len as u64));
    for (name, key_len) in [("AES-128-GCM", 16), ("AES-256-GCM", 32)] {
        let key: Vec<u8> = (0..key_len).map(|i| (i * 37 + 11) as u8).collect();
        for p in all_providers() {
            g.bench_function(BenchmarkId::new(p.name(), name), |b| {
                b.iter(|| {
                    let mut d = GcmDecryptor::new(p, &key, &nonce, &[]).unwrap();
                    // In place: each iteration decrypts the previous output, same cost.
                    d.update(black_box(&mut data[..])).unwrap();
                    let _ = black_box(d.finish(&[0u8; 16]));
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = rsa, ecdh, cbc, gcm
}
criterion_main!(benches);
