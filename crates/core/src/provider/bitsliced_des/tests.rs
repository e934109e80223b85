//! The bitsliced DES against FIPS vectors, RustCrypto's DES and itself at every width.

use super::*;
use cipher::{BlockCipherDecrypt, KeyInit};

/// A fixed-seed generator: the same "random" keys and data on every run.
struct XorShift(u64);

impl XorShift {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 24) as u8
            })
            .collect()
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// CBC decryption with RustCrypto's one-block-at-a-time DES, the reference.
fn reference_cbc<C: BlockCipherDecrypt>(c: &C, iv: &[u8], data: &[u8]) -> Vec<u8> {
    let mut prev = iv.to_vec();
    let mut out = Vec::with_capacity(data.len());
    for block in data.chunks_exact(8) {
        let mut b = cipher::Block::<C>::try_from(block).unwrap();
        c.decrypt_block(&mut b);
        out.extend(b.iter().zip(&prev).map(|(x, p)| x ^ p));
        prev = block.to_vec();
    }
    out
}

fn reference(key: &[u8], iv: &[u8], data: &[u8]) -> Vec<u8> {
    match key.len() {
        8 => reference_cbc(&des::Des::new_from_slice(key).unwrap(), iv, data),
        16 => reference_cbc(&des::TdesEde2::new_from_slice(key).unwrap(), iv, data),
        _ => reference_cbc(&des::TdesEde3::new_from_slice(key).unwrap(), iv, data),
    }
}

fn ours(key: &[u8], iv: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    DesCbc::new(key).unwrap().decrypt(iv, &mut out).unwrap();
    out
}

#[test]
fn transpose_swaps_rows_and_columns() {
    let mut rng = XorShift(7);
    let mut m = [Lanes::<2>::splat(0); 64];
    for w in m.iter_mut() {
        let b = rng.bytes(16);
        w.0 = [
            u64::from_le_bytes(b[..8].try_into().unwrap()),
            u64::from_le_bytes(b[8..].try_into().unwrap()),
        ];
    }
    let before = m;
    transpose(&mut m);
    for lane in 0..2 {
        for (r, row) in before.iter().enumerate() {
            for (c, column) in m.iter().enumerate() {
                let was = (row.0[lane] >> (63 - c)) & 1;
                let now = (column.0[lane] >> (63 - r)) & 1;
                assert_eq!(was, now, "lane {lane}, row {r}, column {c}");
            }
        }
    }
}

/// FIPS 81, appendix B (ECB and CBC with key 0123456789abcdef): decrypting its ciphertexts
/// gives back "Now is the time for all ".
#[test]
fn fips_81_examples() {
    let key = hex("0123456789abcdef");
    let ecb = hex("3fa40e8a984d48156a271787ab8883f9893d51ec4b563b53");
    let mut got = ecb.clone();
    DesCbc::new(&key).unwrap().ecb(&mut got);
    assert_eq!(got, b"Now is the time for all ");

    let iv = hex("1234567890abcdef");
    let cbc = hex("e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6");
    assert_eq!(ours(&key, &iv, &cbc), b"Now is the time for all ");
}

/// Every key length and every batch shape (wide batches, narrow ones, a padded last one)
/// against RustCrypto.
#[test]
fn matches_rustcrypto_on_random_keys_and_lengths() {
    let mut rng = XorShift(0x5eed);
    for key_len in [8, 16, 24] {
        for blocks in [1, 2, 63, 64, 65, 511, 512, 513, 1024 + 64 + 3, 3000] {
            let key = rng.bytes(key_len);
            let iv = rng.bytes(8);
            let data = rng.bytes(blocks * 8);
            assert_eq!(
                ours(&key, &iv, &data),
                reference(&key, &iv, &data),
                "{key_len}-byte key, {blocks} blocks"
            );
        }
    }
}

/// aws-lc refuses these keys; a sender's random CEK can still be one, and must decrypt.
#[test]
fn weak_and_semi_weak_keys_decrypt() {
    let mut rng = XorShift(99);
    let data = rng.bytes(700 * 8);
    let iv = rng.bytes(8);
    for k in [
        "0101010101010101",
        "fefefefefefefefe",
        "01fe01fe01fe01fe",
        "e0e0e0e0f1f1f1f1",
    ] {
        let key = hex(k);
        assert_eq!(ours(&key, &iv, &data), reference(&key, &iv, &data), "{k}");
        let key3: Vec<u8> = key.iter().cycle().take(24).copied().collect();
        assert_eq!(
            ours(&key3, &iv, &data),
            reference(&key3, &iv, &data),
            "{k} x3"
        );
    }
}

/// The portable, AVX2 and AVX-512 builds of the batch give the same blocks.
#[test]
fn every_width_this_cpu_runs_agrees() {
    let mut rng = XorShift(3);
    let key = rng.bytes(24);
    let data = rng.bytes(WIDE_BYTES);
    let des = DesCbc::new(&key).unwrap();
    let mut portable = data.clone();
    wide(Level::Portable, &des.keys, &mut portable);
    let mut narrow = data.clone();
    for chunk in narrow.chunks_exact_mut(NARROW_BYTES) {
        ecb_batch(feistel_narrow, &des.keys, chunk);
    }
    assert_eq!(portable, narrow);
    assert_ne!(portable, data);
    #[cfg(target_arch = "x86_64")]
    for (level, feature) in [(Level::Avx2, "avx2"), (Level::Avx512, "avx512f")] {
        let have = match feature {
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            _ => std::arch::is_x86_feature_detected!("avx512f"),
        };
        if !have {
            eprintln!("skipping the {feature} build: this CPU does not have {feature}");
            continue;
        }
        let mut got = data.clone();
        wide(level, &des.keys, &mut got);
        assert_eq!(got, portable, "{feature}");
    }
}

#[test]
fn refuses_bad_lengths() {
    assert!(DesCbc::new(&[0; 7]).is_err());
    assert!(DesCbc::new(&[0; 32]).is_err());
    let des = DesCbc::new(&[1; 24]).unwrap();
    assert!(des.decrypt(&[0; 8], &mut [0; 12]).is_err());
    assert!(des.decrypt(&[0; 16], &mut [0; 16]).is_err());
    let mut empty: [u8; 0] = [];
    assert!(des.decrypt(&[0; 8], &mut empty).is_ok());
}
