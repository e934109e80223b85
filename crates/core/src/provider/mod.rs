//! The crypto provider: the one small trait behind which every primitive lives, in the manner of
//! rustls' `CryptoProvider`. The CMS code above it never names a crypto crate.
//!
//! Two providers exist: [`aws_lc::AwsLc`] (the default: aws-lc-rs for RSA, ECDH and AES; this
//! crate's bitsliced DES/3DES, several times faster than aws-lc's; RustCrypto `rc2`, `cast5` and
//! `camellia` and this crate's [`seed`], which aws-lc does not offer) and, behind the `pure-rust` cargo feature,
//! [`pure_rust::PureRust`] (RustCrypto throughout). Tests decrypt every fixture with both.

pub mod aws_lc;
pub(crate) mod bitsliced_des;
#[cfg(feature = "pure-rust")]
pub mod pure_rust;
pub(crate) mod rustcrypto;
pub(crate) mod rustcrypto_rsa;
pub(crate) mod seed;

use crate::error::Result;
use zeroize::Zeroizing;

/// Hash functions CMS uses in OAEP, MGF1 and the X9.63 KDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha224 => "SHA-224",
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }
}

/// Elliptic curves for ECDH key agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    P256,
    P384,
    P521,
}

impl EcCurve {
    pub fn name(self) -> &'static str {
        match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
            EcCurve::P521 => "P-521",
        }
    }
}

/// Block ciphers used in CBC mode for CMS content and key wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockCipher {
    Des,
    DesEde3,
    /// RC2 with the effective key length (in bits) from its parameters.
    Rc2 {
        effective_bits: u16,
    },
    Cast5,
    Aes,
    /// Camellia (RFC 3713), 128-, 192- or 256-bit key.
    Camellia,
    /// SEED (RFC 4269), 128-bit key.
    Seed,
}

impl BlockCipher {
    pub fn block_len(self) -> usize {
        match self {
            BlockCipher::Aes | BlockCipher::Camellia | BlockCipher::Seed => 16,
            BlockCipher::Des
            | BlockCipher::DesEde3
            | BlockCipher::Rc2 { .. }
            | BlockCipher::Cast5 => 8,
        }
    }
}

/// A parsed RSA private key, ready for repeated use.
pub trait RsaPrivateKey: Send + Sync {
    /// Modulus length in bytes.
    fn size_bytes(&self) -> usize;
    /// RSAES-PKCS1-v1_5 decryption. An `Err` means the padding was wrong; `Ok` does **not** prove
    /// the key right (implicit rejection may return random bytes): callers check what follows.
    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
    /// RSAES-OAEP decryption with the given hash, MGF1 hash and label.
    fn decrypt_oaep(
        &self,
        hash: HashAlg,
        mgf1: HashAlg,
        label: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>>;
}

/// A parsed EC private key for ephemeral-static ECDH.
pub trait EcPrivateKey: Send + Sync {
    fn curve(&self) -> EcCurve;
    /// The shared secret Z (x coordinate) with the peer's uncompressed point.
    fn agree(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

/// CBC decryption without padding: the caller handles chunking, IV chaining and padding, which
/// lets the same code stream, check padding uniformly, and split big inputs across threads.
pub trait CbcDecrypt: Send + Sync {
    fn block_len(&self) -> usize;
    /// Decrypts `data` (a whole number of blocks) in place, chaining from `iv`.
    fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<()>;
}

/// AES in ECB direction "encrypt", used to build GCM (hash key and CTR keystream) on top of any
/// provider.
pub trait AesEncrypt: Send + Sync {
    /// Encrypts `data` (a whole number of 16-byte blocks) in place, each block independently.
    fn encrypt_blocks(&self, data: &mut [u8]) -> Result<()>;
}

/// Everything the CMS layer needs from cryptography.
pub trait CryptoProvider: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// Parses an RSA private key from PKCS#8 DER.
    fn rsa_private_key(&self, pkcs8_der: &[u8]) -> Result<Box<dyn RsaPrivateKey>>;
    /// Parses an EC private key from PKCS#8 DER.
    fn ec_private_key(&self, curve: EcCurve, pkcs8_der: &[u8]) -> Result<Box<dyn EcPrivateKey>>;
    fn cbc_decryptor(&self, cipher: BlockCipher, key: &[u8]) -> Result<Box<dyn CbcDecrypt>>;
    fn aes_encryptor(&self, key: &[u8]) -> Result<Box<dyn AesEncrypt>>;
    /// One-shot AES-GCM decryption in place, for providers with a fast implementation of the
    /// common case (96-bit nonce, 128-bit tag). `Ok(false)`: not offered for these parameters,
    /// use [`crate::content::gcm::GcmDecryptor`]. `Err`: the tag does not verify.
    fn aes_gcm_open(
        &self,
        _key: &[u8],
        _nonce: &[u8],
        _aad: &[u8],
        _data: &mut [u8],
        _tag: &[u8],
    ) -> Result<bool> {
        Ok(false)
    }
    fn digest(&self, hash: HashAlg, parts: &[&[u8]]) -> Vec<u8>;
    /// An incremental hash, for data that never is in memory at once (a streamed message).
    fn hasher(&self, hash: HashAlg) -> Box<dyn Hasher>;
}

/// An incremental hash from [`CryptoProvider::hasher`].
pub trait Hasher: Send {
    fn update(&mut self, data: &[u8]);
    fn finish(self: Box<Self>) -> Vec<u8>;
}

/// The provider used when none is chosen.
pub fn default_provider() -> &'static dyn CryptoProvider {
    &aws_lc::AwsLc
}

/// Every provider compiled in, for tests and benches that compare them.
pub fn all_providers() -> Vec<&'static dyn CryptoProvider> {
    #[allow(unused_mut)]
    let mut v: Vec<&'static dyn CryptoProvider> = vec![&aws_lc::AwsLc];
    #[cfg(feature = "pure-rust")]
    v.push(&pure_rust::PureRust);
    v
}

/// Checks a key length for a cipher before handing it to a primitive that might panic on it.
pub(crate) fn check_key_len(cipher: BlockCipher, key: &[u8]) -> Result<()> {
    let ok = match cipher {
        BlockCipher::Des => key.len() == 8,
        BlockCipher::DesEde3 => key.len() == 24,
        BlockCipher::Rc2 { .. } => (1..=128).contains(&key.len()),
        BlockCipher::Cast5 => (5..=16).contains(&key.len()),
        BlockCipher::Aes | BlockCipher::Camellia => matches!(key.len(), 16 | 24 | 32),
        BlockCipher::Seed => key.len() == 16,
    };
    if ok {
        Ok(())
    } else {
        Err(crate::Error::Crypto {
            operation: "cipher key setup",
            detail: format!("{cipher:?} cannot take a {}-byte key", key.len()),
        })
    }
}

pub(crate) fn check_blocks(len: usize, block: usize, iv: &[u8]) -> Result<()> {
    if !len.is_multiple_of(block) || iv.len() != block {
        return Err(crate::Error::Crypto {
            operation: "CBC",
            detail: format!(
                "data length {len} or IV length {} does not fit block size {block}",
                iv.len()
            ),
        });
    }
    Ok(())
}
