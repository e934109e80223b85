//! Key unwrap for key agreement recipients: AES Key Wrap (RFC 3394) and the CMS Triple-DES key
//! wrap (RFC 3217 §3). Both are built on [`CryptoProvider::cbc_decryptor`] only, so every provider
//! gets them: a one-block CBC decryption with a zero IV is a raw block decryption.
//!
//! A failed integrity check means the key-encryption key is wrong (or the wrapped key was
//! altered). It is reported as [`Error::WrongKey`] with an empty `recipient`: the caller, who knows
//! which recipient it was trying, fills that in.

use crate::error::{Error, Result};
use crate::provider::{BlockCipher, CryptoProvider, HashAlg};
use zeroize::Zeroizing;

/// The RFC 3394 §2.2.3.1 default initial value.
const AES_WRAP_IV: [u8; 8] = [0xA6; 8];

/// The fixed IV of the second (outer) encryption pass of RFC 3217 §3.
const DES3_WRAP_IV: [u8; 8] = [0x4a, 0xdd, 0xa2, 0x2c, 0x79, 0xe8, 0x21, 0x05];

/// Compares two byte strings without an early exit (the lengths are public).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn integrity_failure(what: &str) -> Error {
    Error::WrongKey {
        recipient: String::new(),
        reason: format!("{what} integrity check failed (wrong key-encryption key or altered key)"),
    }
}

fn bad_length(operation: &'static str, detail: String) -> Error {
    Error::Crypto { operation, detail }
}

/// RFC 3394 §2.2.2 key unwrap with the default IV `A6A6A6A6A6A6A6A6`.
///
/// `kek` must be 16, 24 or 32 bytes; `wrapped` a multiple of 8 bytes and at least 24 (two 64-bit
/// key blocks plus the integrity block). Returns the unwrapped key (`wrapped.len() - 8` bytes).
pub fn aes_key_unwrap(
    p: &dyn CryptoProvider,
    kek: &[u8],
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    const OP: &str = "AES key unwrap";
    check_lengths(OP, matches!(kek.len(), 16 | 24 | 32), kek, wrapped)?;
    let n = wrapped.len() / 8 - 1;
    let aes = p.cbc_decryptor(BlockCipher::Aes, kek)?;
    let zero_iv = [0u8; 16];

    let (a0, rest) = wrapped.split_at(8);
    let mut a = [0u8; 8];
    a.copy_from_slice(a0);
    let mut r = Zeroizing::new(rest.to_vec());
    let mut block = Zeroizing::new([0u8; 16]);
    for j in (0..6u64).rev() {
        for i in (1..=n).rev() {
            // n < 2^61 because it came from a slice length, so this cannot overflow.
            let t = (n as u64) * j + i as u64;
            let ri = r
                .get_mut((i - 1) * 8..i * 8)
                .ok_or_else(|| bad_length(OP, "index".into()))?;
            for ((dst, x), y) in block[..8].iter_mut().zip(&a).zip(t.to_be_bytes()) {
                *dst = x ^ y;
            }
            block[8..].copy_from_slice(ri);
            aes.decrypt(&zero_iv, &mut block[..])?;
            a.copy_from_slice(&block[..8]);
            ri.copy_from_slice(&block[8..]);
        }
    }
    if !ct_eq(&a, &AES_WRAP_IV) {
        return Err(integrity_failure(OP));
    }
    Ok(r)
}

/// The length checks both unwraps make: a key-encryption key the cipher takes (`kek_fits`), and
/// a wrapped key of whole 8-byte blocks, at least three.
fn check_lengths(op: &'static str, kek_fits: bool, kek: &[u8], wrapped: &[u8]) -> Result<()> {
    if !kek_fits {
        return Err(bad_length(
            op,
            format!("{}-byte key-encryption key", kek.len()),
        ));
    }
    if !wrapped.len().is_multiple_of(8) || wrapped.len() < 24 {
        return Err(bad_length(
            op,
            format!(
                "wrapped key is {} bytes (a multiple of 8, at least 24, is needed)",
                wrapped.len()
            ),
        ));
    }
    Ok(())
}

/// RFC 3217 §3.2 Triple-DES key unwrap (id-alg-CMS3DESwrap).
///
/// `kek` is a 24-byte 3DES key. `wrapped` is normally 40 bytes (a 3DES CEK); like OpenSSL any
/// multiple of 8 of at least 24 bytes is accepted, giving a key of `wrapped.len() - 16` bytes.
/// The CMS key checksum (the first 8 bytes of SHA-1 of the key) is checked; key parity is not.
pub fn des3_key_unwrap(
    p: &dyn CryptoProvider,
    kek: &[u8],
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    const OP: &str = "Triple-DES key unwrap";
    check_lengths(OP, kek.len() == 24, kek, wrapped)?;
    let des = p.cbc_decryptor(BlockCipher::DesEde3, kek)?;
    // Outer pass: TEMP3 -> TEMP2 = reverse(TEMP3) = IV || TEMP1.
    let mut temp = Zeroizing::new(wrapped.to_vec());
    des.decrypt(&DES3_WRAP_IV, &mut temp)?;
    temp.reverse();
    let (iv, temp1) = temp.split_at_mut(8);
    // Inner pass: TEMP1 -> CEK || ICV.
    des.decrypt(iv, temp1)?;
    let (cek, icv) = temp1.split_at(temp1.len() - 8);
    let sum = p.digest(HashAlg::Sha1, &[cek]);
    let expected = sum
        .get(..8)
        .ok_or_else(|| bad_length(OP, "short SHA-1".into()))?;
    if !ct_eq(expected, icv) {
        return Err(integrity_failure(OP));
    }
    Ok(Zeroizing::new(cek.to_vec()))
}
