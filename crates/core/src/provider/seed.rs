//! SEED (RFC 4269), the Korean national block cipher: 128-bit blocks and keys, sixteen Feistel
//! rounds. CMS carries it as id-seedCBC (RFC 4010), and GnuPG's gpgsm writes it when asked
//! (`--cipher-algo SEED`); Korean government and banking PKIs used it for S/MIME.
//!
//! Hand-written because no maintained crate offers it: RustCrypto's block ciphers do not include
//! SEED, and aws-lc dropped it. Only decryption is used outside the tests. Checked against the
//! four test vectors of RFC 4269 Appendix B (below), against `openssl enc -seed-cbc`
//! (`tests/crypto_providers.rs`) and against a message gpgsm encrypted (`fixtures/`).
//!
//! The round function's `G` is four lookups in 32-bit tables built at compile time from the two
//! 8-bit S-boxes and the four masks of RFC 4269 section 2.2, so that the only constants typed in
//! are the ones the RFC prints; a test checks the tables against `G` as the RFC writes it. Like
//! every table-driven cipher (RC2 and CAST5 here too), the lookups are not constant-time; a
//! mailbox decryption is not an oracle an attacker can time (docs/security.md).

use super::{CbcDecrypt, check_blocks};
use crate::error::{Error, Result};
use zeroize::Zeroize;

/// S1, RFC 4269 Appendix A.1.
const S1: [u8; 256] = [
    0xa9, 0x85, 0xd6, 0xd3, 0x54, 0x1d, 0xac, 0x25, 0x5d, 0x43, 0x18, 0x1e, 0x51, 0xfc, 0xca, 0x63,
    0x28, 0x44, 0x20, 0x9d, 0xe0, 0xe2, 0xc8, 0x17, 0xa5, 0x8f, 0x03, 0x7b, 0xbb, 0x13, 0xd2, 0xee,
    0x70, 0x8c, 0x3f, 0xa8, 0x32, 0xdd, 0xf6, 0x74, 0xec, 0x95, 0x0b, 0x57, 0x5c, 0x5b, 0xbd, 0x01,
    0x24, 0x1c, 0x73, 0x98, 0x10, 0xcc, 0xf2, 0xd9, 0x2c, 0xe7, 0x72, 0x83, 0x9b, 0xd1, 0x86, 0xc9,
    0x60, 0x50, 0xa3, 0xeb, 0x0d, 0xb6, 0x9e, 0x4f, 0xb7, 0x5a, 0xc6, 0x78, 0xa6, 0x12, 0xaf, 0xd5,
    0x61, 0xc3, 0xb4, 0x41, 0x52, 0x7d, 0x8d, 0x08, 0x1f, 0x99, 0x00, 0x19, 0x04, 0x53, 0xf7, 0xe1,
    0xfd, 0x76, 0x2f, 0x27, 0xb0, 0x8b, 0x0e, 0xab, 0xa2, 0x6e, 0x93, 0x4d, 0x69, 0x7c, 0x09, 0x0a,
    0xbf, 0xef, 0xf3, 0xc5, 0x87, 0x14, 0xfe, 0x64, 0xde, 0x2e, 0x4b, 0x1a, 0x06, 0x21, 0x6b, 0x66,
    0x02, 0xf5, 0x92, 0x8a, 0x0c, 0xb3, 0x7e, 0xd0, 0x7a, 0x47, 0x96, 0xe5, 0x26, 0x80, 0xad, 0xdf,
    0xa1, 0x30, 0x37, 0xae, 0x36, 0x15, 0x22, 0x38, 0xf4, 0xa7, 0x45, 0x4c, 0x81, 0xe9, 0x84, 0x97,
    0x35, 0xcb, 0xce, 0x3c, 0x71, 0x11, 0xc7, 0x89, 0x75, 0xfb, 0xda, 0xf8, 0x94, 0x59, 0x82, 0xc4,
    0xff, 0x49, 0x39, 0x67, 0xc0, 0xcf, 0xd7, 0xb8, 0x0f, 0x8e, 0x42, 0x23, 0x91, 0x6c, 0xdb, 0xa4,
    0x34, 0xf1, 0x48, 0xc2, 0x6f, 0x3d, 0x2d, 0x40, 0xbe, 0x3e, 0xbc, 0xc1, 0xaa, 0xba, 0x4e, 0x55,
    0x3b, 0xdc, 0x68, 0x7f, 0x9c, 0xd8, 0x4a, 0x56, 0x77, 0xa0, 0xed, 0x46, 0xb5, 0x2b, 0x65, 0xfa,
    0xe3, 0xb9, 0xb1, 0x9f, 0x5e, 0xf9, 0xe6, 0xb2, 0x31, 0xea, 0x6d, 0x5f, 0xe4, 0xf0, 0xcd, 0x88,
    0x16, 0x3a, 0x58, 0xd4, 0x62, 0x29, 0x07, 0x33, 0xe8, 0x1b, 0x05, 0x79, 0x90, 0x6a, 0x2a, 0x9a,
];

/// S2, RFC 4269 Appendix A.1.
const S2: [u8; 256] = [
    0x38, 0xe8, 0x2d, 0xa6, 0xcf, 0xde, 0xb3, 0xb8, 0xaf, 0x60, 0x55, 0xc7, 0x44, 0x6f, 0x6b, 0x5b,
    0xc3, 0x62, 0x33, 0xb5, 0x29, 0xa0, 0xe2, 0xa7, 0xd3, 0x91, 0x11, 0x06, 0x1c, 0xbc, 0x36, 0x4b,
    0xef, 0x88, 0x6c, 0xa8, 0x17, 0xc4, 0x16, 0xf4, 0xc2, 0x45, 0xe1, 0xd6, 0x3f, 0x3d, 0x8e, 0x98,
    0x28, 0x4e, 0xf6, 0x3e, 0xa5, 0xf9, 0x0d, 0xdf, 0xd8, 0x2b, 0x66, 0x7a, 0x27, 0x2f, 0xf1, 0x72,
    0x42, 0xd4, 0x41, 0xc0, 0x73, 0x67, 0xac, 0x8b, 0xf7, 0xad, 0x80, 0x1f, 0xca, 0x2c, 0xaa, 0x34,
    0xd2, 0x0b, 0xee, 0xe9, 0x5d, 0x94, 0x18, 0xf8, 0x57, 0xae, 0x08, 0xc5, 0x13, 0xcd, 0x86, 0xb9,
    0xff, 0x7d, 0xc1, 0x31, 0xf5, 0x8a, 0x6a, 0xb1, 0xd1, 0x20, 0xd7, 0x02, 0x22, 0x04, 0x68, 0x71,
    0x07, 0xdb, 0x9d, 0x99, 0x61, 0xbe, 0xe6, 0x59, 0xdd, 0x51, 0x90, 0xdc, 0x9a, 0xa3, 0xab, 0xd0,
    0x81, 0x0f, 0x47, 0x1a, 0xe3, 0xec, 0x8d, 0xbf, 0x96, 0x7b, 0x5c, 0xa2, 0xa1, 0x63, 0x23, 0x4d,
    0xc8, 0x9e, 0x9c, 0x3a, 0x0c, 0x2e, 0xba, 0x6e, 0x9f, 0x5a, 0xf2, 0x92, 0xf3, 0x49, 0x78, 0xcc,
    0x15, 0xfb, 0x70, 0x75, 0x7f, 0x35, 0x10, 0x03, 0x64, 0x6d, 0xc6, 0x74, 0xd5, 0xb4, 0xea, 0x09,
    0x76, 0x19, 0xfe, 0x40, 0x12, 0xe0, 0xbd, 0x05, 0xfa, 0x01, 0xf0, 0x2a, 0x5e, 0xa9, 0x56, 0x43,
    0x85, 0x14, 0x89, 0x9b, 0xb0, 0xe5, 0x48, 0x79, 0x97, 0xfc, 0x1e, 0x82, 0x21, 0x8c, 0x1b, 0x5f,
    0x77, 0x54, 0xb2, 0x1d, 0x25, 0x4f, 0x00, 0x46, 0xed, 0x58, 0x52, 0xeb, 0x7e, 0xda, 0xc9, 0xfd,
    0x30, 0x95, 0x65, 0x3c, 0xb6, 0xe4, 0xbb, 0x7c, 0x0e, 0x50, 0x39, 0x26, 0x32, 0x84, 0x69, 0x93,
    0x37, 0xe7, 0x24, 0xa4, 0xcb, 0x53, 0x0a, 0x87, 0xd9, 0x4c, 0x83, 0x8f, 0xce, 0x3b, 0x4a, 0xb7,
];

/// m0..m3 of RFC 4269 section 2.2.
const MASKS: [u8; 4] = [0xfc, 0xf3, 0xcf, 0x3f];

/// `SS[i][x]` is input byte `Xi` = `x`'s share of `G`: through S1 (even `i`) or S2 (odd `i`),
/// its output byte `Zj` masked with m((i + j) mod 4). `G` is the XOR of the four.
const SS: [[u32; 256]; 4] = {
    let mut t = [[0u32; 256]; 4];
    let mut i = 0;
    while i < 4 {
        let mut x = 0;
        while x < 256 {
            let s = if i % 2 == 0 { S1[x] } else { S2[x] };
            let mut word = 0u32;
            let mut j = 0;
            while j < 4 {
                word |= ((s & MASKS[(i + j) % 4]) as u32) << (8 * j);
                j += 1;
            }
            t[i][x] = word;
            x += 1;
        }
        i += 1;
    }
    t
};

/// The G function (RFC 4269 section 2.2); `X0` is the least significant byte.
#[inline]
fn g(x: u32) -> u32 {
    let [x0, x1, x2, x3] = x.to_le_bytes();
    SS[0][x0 as usize] ^ SS[1][x1 as usize] ^ SS[2][x2 as usize] ^ SS[3][x3 as usize]
}

/// The round function F (RFC 4269 section 2.1) of the right half `(r0, r1)` with the round's
/// subkeys.
#[inline]
fn f(r0: u32, r1: u32, k0: u32, k1: u32) -> (u32, u32) {
    let a = r0 ^ k0;
    let c = g(a ^ r1 ^ k1);
    let d = g(c.wrapping_add(a));
    let e = g(d.wrapping_add(c));
    (e.wrapping_add(d), e)
}

/// SEED with its key schedule: `(Ki,0, Ki,1)` for rounds 1 to 16. Zeroed on drop.
pub(crate) struct Seed {
    round_keys: [[u32; 2]; 16],
}

impl Drop for Seed {
    fn drop(&mut self) {
        self.round_keys.zeroize();
    }
}

impl Seed {
    pub(crate) fn new(key: &[u8]) -> Result<Seed> {
        let key: &[u8; 16] = key.try_into().map_err(|_| Error::Crypto {
            operation: "SEED key setup",
            detail: format!("{}-byte key (16 allowed)", key.len()),
        })?;
        let word = |i: usize| u32::from_be_bytes([key[i], key[i + 1], key[i + 2], key[i + 3]]);
        // Key0 || Key1 and Key2 || Key3 as two 64-bit halves, which the schedule rotates.
        let mut a = (u64::from(word(0)) << 32) | u64::from(word(4));
        let mut b = (u64::from(word(8)) << 32) | u64::from(word(12));
        let mut round_keys = [[0u32; 2]; 16];
        for (i, k) in round_keys.iter_mut().enumerate() {
            // KCi: the golden-ratio constant 0x9E3779B9 rotated left by i (RFC 4269 2.3).
            let kc = 0x9e37_79b9_u32.rotate_left(i as u32);
            let (k0, k1, k2, k3) = ((a >> 32) as u32, a as u32, (b >> 32) as u32, b as u32);
            *k = [
                g(k0.wrapping_add(k2).wrapping_sub(kc)),
                g(k1.wrapping_sub(k3).wrapping_add(kc)),
            ];
            // After the RFC's odd rounds (1, 3, ..) Key0 || Key1 turns right by 8 bits; after
            // the even ones Key2 || Key3 turns left.
            if i % 2 == 0 {
                a = a.rotate_right(8);
            } else {
                b = b.rotate_left(8);
            }
        }
        Ok(Seed { round_keys })
    }

    fn crypt(&self, block: &mut [u8; 16], decrypt: bool) {
        let word =
            |i: usize| u32::from_be_bytes([block[i], block[i + 1], block[i + 2], block[i + 3]]);
        let (mut l0, mut l1, mut r0, mut r1) = (word(0), word(4), word(8), word(12));
        for i in 0..16 {
            let [k0, k1] = self.round_keys[if decrypt { 15 - i } else { i }];
            let (f0, f1) = f(r0, r1, k0, k1);
            (l0, l1, r0, r1) = (r0, r1, l0 ^ f0, l1 ^ f1);
        }
        // The last round does not swap the halves: undo the swap the loop made.
        for (i, w) in [r0, r1, l0, l1].into_iter().enumerate() {
            block[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
    }

    pub(crate) fn decrypt_block(&self, block: &mut [u8; 16]) {
        self.crypt(block, true);
    }

    #[cfg(test)]
    fn encrypt_block(&self, block: &mut [u8; 16]) {
        self.crypt(block, false);
    }
}

impl CbcDecrypt for Seed {
    fn block_len(&self) -> usize {
        16
    }

    fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<()> {
        check_blocks(data.len(), 16, iv)?;
        let mut prev = [0u8; 16];
        prev.copy_from_slice(iv);
        for chunk in data.chunks_exact_mut(16) {
            let mut block = [0u8; 16];
            block.copy_from_slice(chunk);
            let ct = block;
            self.decrypt_block(&mut block);
            for (o, (b, p)) in chunk.iter_mut().zip(block.iter().zip(prev.iter())) {
                *o = b ^ p;
            }
            prev = ct;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 4269 Appendix B: (key, plaintext, ciphertext).
    const VECTORS: [(&str, &str, &str); 4] = [
        (
            "00000000000000000000000000000000",
            "000102030405060708090a0b0c0d0e0f",
            "5ebac6e0054e166819aff1cc6d346cdb",
        ),
        (
            "000102030405060708090a0b0c0d0e0f",
            "00000000000000000000000000000000",
            "c11f22f20140505084483597e4370f43",
        ),
        (
            "4706480851e61be85d74bfb3fd956185",
            "83a2f8a288641fb9a4e9a5cc2f131c7d",
            "ee54d13ebcae706d226bc3142cd40d4a",
        ),
        (
            "28dbc3bc49ffd87dcfa509b11d422be7",
            "b41e6be2eba84a148e2eed84593c5ec7",
            "9b9b7bfcd1813cb95d0b3618f40f5122",
        ),
    ];

    #[test]
    fn the_rfc_4269_test_vectors_encrypt_and_decrypt() {
        for (key, pt, ct) in VECTORS {
            let s = Seed::new(&hex(key)).unwrap();
            let mut block: [u8; 16] = hex(pt).try_into().unwrap();
            s.encrypt_block(&mut block);
            assert_eq!(block.to_vec(), hex(ct), "encrypt under {key}");
            s.decrypt_block(&mut block);
            assert_eq!(block.to_vec(), hex(pt), "decrypt under {key}");
        }
    }

    /// G as RFC 4269 section 2.2 writes it, byte by byte with the masks.
    fn g_as_written(x: u32) -> u32 {
        let [x0, x1, x2, x3] = x.to_le_bytes().map(usize::from);
        let (a0, a1, a2, a3) = (S1[x0], S2[x1], S1[x2], S2[x3]);
        let [m0, m1, m2, m3] = MASKS;
        let z0 = (a0 & m0) ^ (a1 & m1) ^ (a2 & m2) ^ (a3 & m3);
        let z1 = (a0 & m1) ^ (a1 & m2) ^ (a2 & m3) ^ (a3 & m0);
        let z2 = (a0 & m2) ^ (a1 & m3) ^ (a2 & m0) ^ (a3 & m1);
        let z3 = (a0 & m3) ^ (a1 & m0) ^ (a2 & m1) ^ (a3 & m2);
        u32::from_le_bytes([z0, z1, z2, z3])
    }

    #[test]
    fn the_tables_compute_g_as_the_rfc_writes_it() {
        let mut x = 0x0123_4567u32;
        for _ in 0..10_000 {
            x = x.wrapping_mul(0x9e37_79b9).wrapping_add(0x7f4a_7c15);
            assert_eq!(g(x), g_as_written(x), "{x:08x}");
        }
        // The first entries the RFC prints of its SS tables (Appendix A.2).
        assert_eq!((SS[0][0], SS[0][255]), (0x2989_a1a8, 0x1a8a_9298));
        assert_eq!((SS[1][0], SS[1][1]), (0x3838_0830, 0xe828_c8e0));
    }

    #[test]
    fn both_s_boxes_are_permutations() {
        for s in [&S1, &S2] {
            let mut seen = [false; 256];
            for &v in s {
                assert!(!seen[v as usize], "{v:#04x} twice");
                seen[v as usize] = true;
            }
        }
    }

    #[test]
    fn cbc_chains_blocks_and_refuses_bad_lengths() {
        let (key, pt, ct) = VECTORS[2];
        let s = Seed::new(&hex(key)).unwrap();
        // One block with a zero IV is the bare cipher.
        let mut data = hex(ct);
        s.decrypt(&[0; 16], &mut data).unwrap();
        assert_eq!(data, hex(pt));
        // Two blocks: the second is XORed with the first ciphertext block.
        let mut two = hex(ct);
        let mut second: [u8; 16] = hex(pt).try_into().unwrap();
        for (b, c) in second.iter_mut().zip(hex(ct)) {
            *b ^= c;
        }
        s.encrypt_block(&mut second);
        two.extend_from_slice(&second);
        s.decrypt(&[0; 16], &mut two).unwrap();
        assert_eq!(&two[..16], &hex(pt)[..]);
        assert_eq!(&two[16..], &hex(pt)[..]);
        assert!(s.decrypt(&[0; 16], &mut [0; 15]).is_err());
        assert!(s.decrypt(&[0; 8], &mut [0; 16]).is_err());
        assert!(Seed::new(&[0; 15]).is_err() && Seed::new(&[0; 24]).is_err());
    }
}
