//! Password-based decryption of key containers: PKCS#12 PBE (RFC 7292 appendix B/C), PKCS#5
//! PBES1 and PBES2, the PKCS#12 MAC, and OpenSSL's legacy PEM encryption (EVP_BytesToKey-MD5).
//!
//! Passwords and derived keys live in `Zeroizing` buffers and never appear in error texts.

use super::ber::{BerError, OCTET_STRING, SEQUENCE, Tlv, oid_text};
use crate::provider::{BlockCipher, default_provider};
use zeroize::Zeroizing;

/// Iteration counts above this are refused before any work (a hostile file could otherwise pin
/// a CPU for hours). Real files use 1..=600 000.
pub const MAX_ITERATIONS: u64 = 10_000_000;

/// Why decryption failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbeError {
    /// Bad padding or garbage plaintext: almost always the wrong password.
    WrongPassword,
    Unsupported(String),
    Corrupt(String),
}

impl From<BerError> for PbeError {
    fn from(e: BerError) -> Self {
        PbeError::Corrupt(e.0)
    }
}

/// A password in the two encodings key containers use.
pub struct Password {
    /// UTF-8 bytes (PBES2, PKCS#5 PBES1, legacy PEM).
    pub utf8: Zeroizing<Vec<u8>>,
    /// BMPString with the two-byte terminator (PKCS#12 KDF); empty for "no password at all".
    pub bmp: Zeroizing<Vec<u8>>,
}

impl Password {
    pub fn new(s: &str) -> Self {
        let mut bmp = Zeroizing::new(Vec::with_capacity(s.len() * 2 + 2));
        for u in s.encode_utf16() {
            bmp.extend_from_slice(&u.to_be_bytes());
        }
        bmp.extend_from_slice(&[0, 0]);
        Password {
            utf8: Zeroizing::new(s.as_bytes().to_vec()),
            bmp,
        }
    }

    /// The "NULL password" of PKCS#12: zero bytes fed to the KDF (some tools write this when
    /// asked for no password, others use the empty string with its terminator).
    pub fn absent() -> Self {
        Password {
            utf8: Zeroizing::new(Vec::new()),
            bmp: Zeroizing::new(Vec::new()),
        }
    }
}

// OID content octets.
const PKCS12_PBE_PREFIX: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01];
const PKCS5_PREFIX: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05];
const PBES2: u8 = 13;
const PBE_MD5_DES: u8 = 3;
const PBE_SHA1_DES: u8 = 10;

const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
const SHA2_PREFIX: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

fn hash_from_oid(oid: &[u8]) -> Option<Hash> {
    if oid == SHA1 {
        return Some(Hash::Sha1);
    }
    match oid.strip_prefix(SHA2_PREFIX) {
        Some([1]) => Some(Hash::Sha256),
        Some([2]) => Some(Hash::Sha384),
        Some([3]) => Some(Hash::Sha512),
        Some([4]) => Some(Hash::Sha224),
        _ => None,
    }
}

fn pkcs12_kdf(
    hash: Hash,
    pw: &[u8],
    salt: &[u8],
    id: pkcs12::kdf::Pkcs12KeyType,
    rounds: i32,
    len: usize,
) -> Zeroizing<Vec<u8>> {
    use pkcs12::kdf::derive_key;
    Zeroizing::new(match hash {
        Hash::Sha1 => derive_key::<sha1::Sha1>(pw, salt, id, rounds, len),
        Hash::Sha224 => derive_key::<sha2::Sha224>(pw, salt, id, rounds, len),
        Hash::Sha256 => derive_key::<sha2::Sha256>(pw, salt, id, rounds, len),
        Hash::Sha384 => derive_key::<sha2::Sha384>(pw, salt, id, rounds, len),
        Hash::Sha512 => derive_key::<sha2::Sha512>(pw, salt, id, rounds, len),
    })
}

fn check_iterations(n: u64) -> Result<i32, PbeError> {
    if n == 0 || n > MAX_ITERATIONS {
        return Err(PbeError::Unsupported(format!(
            "iteration count {n} outside 1..={MAX_ITERATIONS}"
        )));
    }
    Ok(n as i32)
}

/// CBC-decrypts and strips PKCS#7 padding; a padding failure means the wrong password.
fn cbc_decrypt(
    cipher: BlockCipher,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, PbeError> {
    let block = cipher.block_len();
    if data.is_empty() || !data.len().is_multiple_of(block) {
        return Err(PbeError::Corrupt(format!(
            "ciphertext length {} is not a multiple of {block}",
            data.len()
        )));
    }
    if iv.len() != block {
        return Err(PbeError::Corrupt(format!(
            "IV length {} for a {block}-byte block cipher",
            iv.len()
        )));
    }
    let dec = default_provider()
        .cbc_decryptor(cipher, key)
        .map_err(|e| PbeError::Unsupported(e.to_string()))?;
    let mut buf = Zeroizing::new(data.to_vec());
    dec.decrypt(iv, &mut buf)
        .map_err(|e| PbeError::Corrupt(e.to_string()))?;
    let pad = usize::from(*buf.last().unwrap_or(&0));
    if pad == 0
        || pad > block
        || buf[buf.len() - pad..]
            .iter()
            .any(|&b| usize::from(b) != pad)
    {
        return Err(PbeError::WrongPassword);
    }
    let n = buf.len() - pad;
    buf.truncate(n);
    Ok(buf)
}

/// Decrypts `data` encrypted under the AlgorithmIdentifier `alg` (PKCS#12 PBE, PBES1 or PBES2).
pub fn decrypt(alg: &Tlv<'_>, data: &[u8], pw: &Password) -> Result<Zeroizing<Vec<u8>>, PbeError> {
    let parts = alg.seq()?;
    let oid = parts
        .first()
        .ok_or_else(|| PbeError::Corrupt("empty AlgorithmIdentifier".into()))?
        .oid()?;
    let params = parts.get(1);
    if let Some(which) = oid.strip_prefix(PKCS12_PBE_PREFIX) {
        let (cipher, key_len) = match which {
            [3] => (BlockCipher::DesEde3, 24),
            [4] => (BlockCipher::DesEde3, 16),
            [5] => (
                BlockCipher::Rc2 {
                    effective_bits: 128,
                },
                16,
            ),
            [6] => (BlockCipher::Rc2 { effective_bits: 40 }, 5),
            _ => {
                return Err(PbeError::Unsupported(format!(
                    "PKCS#12 PBE {} (RC4?)",
                    oid_text(oid)
                )));
            }
        };
        let p = params
            .ok_or_else(|| PbeError::Corrupt("PBE without parameters".into()))?
            .seq()?;
        if p.len() != 2 {
            return Err(PbeError::Corrupt(
                "PBE parameters are not {salt, iterations}".into(),
            ));
        }
        p[0].expect(OCTET_STRING)?;
        let salt = p[0].octets()?;
        let rounds = check_iterations(p[1].small_uint()?)?;
        use pkcs12::kdf::Pkcs12KeyType as K;
        let mut key = pkcs12_kdf(
            Hash::Sha1,
            &pw.bmp,
            &salt,
            K::EncryptionKey,
            rounds,
            key_len,
        );
        if key_len == 16 && cipher == BlockCipher::DesEde3 {
            let k1: Vec<u8> = key[..8].to_vec();
            key.extend_from_slice(&k1);
        }
        let iv = pkcs12_kdf(Hash::Sha1, &pw.bmp, &salt, K::Iv, rounds, 8);
        return cbc_decrypt(cipher, &key, &iv, data);
    }
    match oid.strip_prefix(PKCS5_PREFIX) {
        Some([PBES2]) => pbes2(params, data, pw),
        Some([n @ (PBE_MD5_DES | PBE_SHA1_DES)]) => {
            let p = params
                .ok_or_else(|| PbeError::Corrupt("PBE without parameters".into()))?
                .seq()?;
            if p.len() != 2 {
                return Err(PbeError::Corrupt(
                    "PBE parameters are not {salt, iterations}".into(),
                ));
            }
            let salt = p[0].octets()?;
            let rounds = check_iterations(p[1].small_uint()?)?;
            let dk = pbkdf1(*n == PBE_MD5_DES, &pw.utf8, &salt, rounds as u32);
            cbc_decrypt(BlockCipher::Des, &dk[..8], &dk[8..16], data)
        }
        _ => Err(PbeError::Unsupported(format!(
            "encryption algorithm {}",
            oid_text(oid)
        ))),
    }
}

fn pbkdf1(md5: bool, pw: &[u8], salt: &[u8], rounds: u32) -> Zeroizing<Vec<u8>> {
    use sha1::Digest;
    let mut t: Zeroizing<Vec<u8>> = if md5 {
        Zeroizing::new(
            md5::Md5::new()
                .chain_update(pw)
                .chain_update(salt)
                .finalize()
                .to_vec(),
        )
    } else {
        Zeroizing::new(
            sha1::Sha1::new()
                .chain_update(pw)
                .chain_update(salt)
                .finalize()
                .to_vec(),
        )
    };
    for _ in 1..rounds {
        let next = if md5 {
            md5::Md5::digest(&t[..]).to_vec()
        } else {
            sha1::Sha1::digest(&t[..]).to_vec()
        };
        t = Zeroizing::new(next);
    }
    t
}

fn pbes2(
    params: Option<&Tlv<'_>>,
    data: &[u8],
    pw: &Password,
) -> Result<Zeroizing<Vec<u8>>, PbeError> {
    use der::Decode;
    use pkcs5::pbes2::{Kdf, Parameters};
    let params = params.ok_or_else(|| PbeError::Corrupt("PBES2 without parameters".into()))?;
    if params.tag != SEQUENCE {
        return Err(PbeError::Corrupt(
            "PBES2 parameters are not a SEQUENCE".into(),
        ));
    }
    let der = params.to_der()?;
    let p = Parameters::from_der(&der)
        .map_err(|e| PbeError::Unsupported(format!("PBES2 parameters: {e}")))?;
    match &p.kdf {
        Kdf::Pbkdf2(k) => {
            check_iterations(u64::from(k.iteration_count))?;
        }
        Kdf::Scrypt(s) => {
            let mem = 128u64
                .checked_mul(s.cost_parameter)
                .and_then(|v| v.checked_mul(u64::from(s.block_size)))
                .and_then(|v| v.checked_mul(u64::from(s.parallelization.max(1))));
            if mem.is_none_or(|m| m > 256 * 1024 * 1024) {
                return Err(PbeError::Unsupported(
                    "scrypt parameters need too much memory".into(),
                ));
            }
        }
        _ => {
            return Err(PbeError::Unsupported(
                "PBES2 key derivation function".into(),
            ));
        }
    }
    let mut buf = Zeroizing::new(data.to_vec());
    let n = match p.decrypt_in_place(&pw.utf8[..], &mut buf) {
        Ok(pt) => pt.len(),
        Err(pkcs5::Error::DecryptFailed) => return Err(PbeError::WrongPassword),
        Err(e) => return Err(PbeError::Unsupported(format!("PBES2: {e}"))),
    };
    buf.truncate(n);
    Ok(buf)
}

/// Verifies a PKCS#12 MacData over `content`. `Ok(false)` means a wrong password.
pub fn verify_p12_mac(mac_data: &Tlv<'_>, content: &[u8], pw: &Password) -> Result<bool, PbeError> {
    let md = mac_data.seq()?;
    if md.len() < 2 {
        return Err(PbeError::Corrupt("MacData too short".into()));
    }
    let digest_info = md[0].seq()?;
    if digest_info.len() != 2 {
        return Err(PbeError::Corrupt(
            "DigestInfo is not {algorithm, digest}".into(),
        ));
    }
    let alg = digest_info[0].seq()?;
    let oid = alg
        .first()
        .ok_or_else(|| PbeError::Corrupt("empty MAC algorithm".into()))?
        .oid()?;
    let expected = digest_info[1].octets()?;
    let salt = md[1].octets()?;
    let rounds = match md.get(2) {
        Some(t) => check_iterations(t.small_uint()?)?,
        None => 1,
    };
    let Some(hash) = hash_from_oid(oid) else {
        return Err(PbeError::Unsupported(format!(
            "PKCS#12 MAC digest {} (PBMAC1?)",
            oid_text(oid)
        )));
    };
    use aws_lc_rs::hmac;
    let (alg, len) = match hash {
        Hash::Sha1 => (hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, 20),
        Hash::Sha224 => (hmac::HMAC_SHA224, 28),
        Hash::Sha256 => (hmac::HMAC_SHA256, 32),
        Hash::Sha384 => (hmac::HMAC_SHA384, 48),
        Hash::Sha512 => (hmac::HMAC_SHA512, 64),
    };
    let key = pkcs12_kdf(
        hash,
        &pw.bmp,
        &salt,
        pkcs12::kdf::Pkcs12KeyType::Mac,
        rounds,
        len,
    );
    let key = hmac::Key::new(alg, &key);
    Ok(hmac::verify(&key, content, &expected).is_ok())
}

/// OpenSSL's traditional PEM encryption ("Proc-Type: 4,ENCRYPTED" + "DEK-Info: <cipher>,<iv>").
pub fn decrypt_legacy_pem(
    dek_info: &str,
    data: &[u8],
    pw: &Password,
) -> Result<Zeroizing<Vec<u8>>, PbeError> {
    let (name, iv_hex) = dek_info
        .split_once(',')
        .ok_or_else(|| PbeError::Corrupt("DEK-Info without IV".into()))?;
    let name = name.trim().to_ascii_uppercase();
    let (cipher, key_len) = match name.as_str() {
        "DES-EDE3-CBC" => (BlockCipher::DesEde3, 24),
        "DES-CBC" => (BlockCipher::Des, 8),
        "AES-128-CBC" => (BlockCipher::Aes, 16),
        "AES-192-CBC" => (BlockCipher::Aes, 24),
        "AES-256-CBC" => (BlockCipher::Aes, 32),
        other => return Err(PbeError::Unsupported(format!("PEM encryption {other}"))),
    };
    let iv = hex_decode(iv_hex.trim())
        .ok_or_else(|| PbeError::Corrupt("DEK-Info IV is not hex".into()))?;
    if iv.len() != cipher.block_len() {
        return Err(PbeError::Corrupt(format!(
            "DEK-Info IV has {} bytes",
            iv.len()
        )));
    }
    let key = evp_bytes_to_key_md5(&pw.utf8, &iv[..8], key_len);
    cbc_decrypt(cipher, &key, &iv, data)
}

/// EVP_BytesToKey with MD5 and one iteration: D_i = MD5(D_{i-1} || password || salt).
pub fn evp_bytes_to_key_md5(pw: &[u8], salt: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    use md5::Digest;
    let mut out = Zeroizing::new(Vec::with_capacity(len + 16));
    let mut prev: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    while out.len() < len {
        let d = md5::Md5::new()
            .chain_update(&prev[..])
            .chain_update(pw)
            .chain_update(salt)
            .finalize();
        prev = Zeroizing::new(d.to_vec());
        out.extend_from_slice(&prev);
    }
    out.truncate(len);
    out
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_to_key_matches_openssl() {
        // openssl enc -des-ede3-cbc -P -md md5 -pass pass:secret -S 0102030405060708
        let k = evp_bytes_to_key_md5(b"secret", &[1, 2, 3, 4, 5, 6, 7, 8], 24);
        assert_eq!(k.len(), 24);
        // First 16 bytes are MD5(password || salt).
        use md5::Digest;
        let d = md5::Md5::new()
            .chain_update(b"secret")
            .chain_update([1u8, 2, 3, 4, 5, 6, 7, 8])
            .finalize();
        assert_eq!(&k[..16], &d[..]);
    }

    #[test]
    fn password_encodings() {
        let p = Password::new("ab");
        assert_eq!(&p.bmp[..], &[0, b'a', 0, b'b', 0, 0]);
        assert_eq!(&Password::new("").bmp[..], &[0, 0]);
        assert!(Password::absent().bmp.is_empty());
    }

    #[test]
    fn hostile_iterations_refused() {
        assert!(check_iterations(0).is_err());
        assert!(check_iterations(MAX_ITERATIONS + 1).is_err());
        assert_eq!(check_iterations(2048).unwrap(), 2048);
    }
}
