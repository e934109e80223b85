//! The pure-Rust provider: RustCrypto throughout (`rsa`, `des`, `aes`, `rc2`, `cast5`, `sha1`,
//! `sha2`). It exists to cross-check aws-lc and for builds that cannot link C.
//!
//! ECDH is not offered: the `p256`/`p384`/`p521` crates are not dependencies of this workspace,
//! so [`CryptoProvider::ec_private_key`] returns [`Error::UnsupportedAlgorithm`].
//!
//! RSA PKCS#1 v1.5 in `rsa` 0.10 uses implicit rejection: a wrong key gives random bytes rather
//! than an error, which the trait allows (callers check the CEK length and the content).

use super::rustcrypto;
use super::{
    AesEncrypt, BlockCipher, CbcDecrypt, CryptoProvider, EcCurve, EcPrivateKey, HashAlg, Hasher,
    RsaPrivateKey, check_key_len, rustcrypto_rsa,
};
use crate::error::{Error, Result};
use cipher::{Block, BlockCipherEncrypt, KeyInit};

/// RustCrypto for every primitive except ECDH.
#[derive(Debug, Clone, Copy, Default)]
pub struct PureRust;

enum PureAes {
    Aes128(aes::Aes128),
    Aes192(aes::Aes192),
    Aes256(aes::Aes256),
}

fn encrypt_with<C: BlockCipherEncrypt>(c: &C, data: &mut [u8]) -> Result<()> {
    let (blocks, rest) = Block::<C>::slice_as_chunks_mut(data);
    if !rest.is_empty() {
        return Err(Error::Crypto {
            operation: "AES",
            detail: "partial block".into(),
        });
    }
    c.encrypt_blocks(blocks);
    Ok(())
}

impl AesEncrypt for PureAes {
    fn encrypt_blocks(&self, data: &mut [u8]) -> Result<()> {
        match self {
            PureAes::Aes128(c) => encrypt_with(c, data),
            PureAes::Aes192(c) => encrypt_with(c, data),
            PureAes::Aes256(c) => encrypt_with(c, data),
        }
    }
}

fn aes_key_err(key: &[u8]) -> Error {
    Error::Crypto {
        operation: "AES key setup",
        detail: format!("{}-byte key", key.len()),
    }
}

impl CryptoProvider for PureRust {
    fn name(&self) -> &'static str {
        "pure-rust"
    }

    fn rsa_private_key(&self, pkcs8_der: &[u8]) -> Result<Box<dyn RsaPrivateKey>> {
        Ok(Box::new(rustcrypto_rsa::RustCryptoRsa::from_pkcs8(
            pkcs8_der,
        )?))
    }

    fn ec_private_key(&self, curve: EcCurve, pkcs8_der: &[u8]) -> Result<Box<dyn EcPrivateKey>> {
        use pkcs8::DecodePrivateKey;
        let err = |e: pkcs8::Error| Error::Crypto {
            operation: "EC key setup",
            detail: e.to_string(),
        };
        Ok(match curve {
            EcCurve::P256 => Box::new(PureEc::P256(
                p256::SecretKey::from_pkcs8_der(pkcs8_der).map_err(err)?,
            )),
            EcCurve::P384 => Box::new(PureEc::P384(
                p384::SecretKey::from_pkcs8_der(pkcs8_der).map_err(err)?,
            )),
            EcCurve::P521 => Box::new(PureEc::P521(
                p521::SecretKey::from_pkcs8_der(pkcs8_der).map_err(err)?,
            )),
        })
    }

    fn cbc_decryptor(&self, c: BlockCipher, key: &[u8]) -> Result<Box<dyn CbcDecrypt>> {
        check_key_len(c, key)?;
        match c {
            BlockCipher::Des | BlockCipher::DesEde3 => rustcrypto::des_cbc(c, key),
            BlockCipher::Rc2 { effective_bits } => {
                Ok(Box::new(rustcrypto::rc2(key, effective_bits)?))
            }
            BlockCipher::Cast5 => Ok(Box::new(rustcrypto::cast5(key)?)),
            BlockCipher::Camellia => rustcrypto::camellia(key),
            BlockCipher::Seed => Ok(Box::new(super::seed::Seed::new(key)?)),
            BlockCipher::Aes => {
                rustcrypto::by_key_len::<aes::Aes128, aes::Aes192, aes::Aes256>("AES", key)
            }
        }
    }

    fn aes_encryptor(&self, key: &[u8]) -> Result<Box<dyn AesEncrypt>> {
        let err = |_| aes_key_err(key);
        Ok(Box::new(match key.len() {
            16 => PureAes::Aes128(aes::Aes128::new_from_slice(key).map_err(err)?),
            24 => PureAes::Aes192(aes::Aes192::new_from_slice(key).map_err(err)?),
            32 => PureAes::Aes256(aes::Aes256::new_from_slice(key).map_err(err)?),
            _ => return Err(aes_key_err(key)),
        }))
    }

    fn digest(&self, hash: HashAlg, parts: &[&[u8]]) -> Vec<u8> {
        use sha2::Digest;
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match hash {
            HashAlg::Sha1 => run::<sha1::Sha1>(parts),
            HashAlg::Sha224 => run::<sha2::Sha224>(parts),
            HashAlg::Sha256 => run::<sha2::Sha256>(parts),
            HashAlg::Sha384 => run::<sha2::Sha384>(parts),
            HashAlg::Sha512 => run::<sha2::Sha512>(parts),
        }
    }

    fn hasher(&self, hash: HashAlg) -> Box<dyn Hasher> {
        match hash {
            HashAlg::Sha1 => Box::new(RcHasher(sha1::Sha1::default())),
            HashAlg::Sha224 => Box::new(RcHasher(sha2::Sha224::default())),
            HashAlg::Sha256 => Box::new(RcHasher(sha2::Sha256::default())),
            HashAlg::Sha384 => Box::new(RcHasher(sha2::Sha384::default())),
            HashAlg::Sha512 => Box::new(RcHasher(sha2::Sha512::default())),
        }
    }
}

struct RcHasher<D>(D);

impl<D: sha2::Digest + Send> Hasher for RcHasher<D> {
    fn update(&mut self, data: &[u8]) {
        sha2::Digest::update(&mut self.0, data);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        sha2::Digest::finalize(self.0).to_vec()
    }
}

/// ECDH on the RustCrypto NIST curves. Parsing the peer point checks it is on the curve.
enum PureEc {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    P521(p521::SecretKey),
}

impl EcPrivateKey for PureEc {
    fn curve(&self) -> EcCurve {
        match self {
            PureEc::P256(_) => EcCurve::P256,
            PureEc::P384(_) => EcCurve::P384,
            PureEc::P521(_) => EcCurve::P521,
        }
    }

    fn agree(&self, peer_point: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let bad = |_| Error::Crypto {
            operation: "ECDH",
            detail: "peer public key rejected".into(),
        };
        macro_rules! dh {
            ($curve:ident, $k:expr) => {{
                let peer = $curve::PublicKey::from_sec1_bytes(peer_point).map_err(bad)?;
                let shared = $curve::ecdh::diffie_hellman($k.to_nonzero_scalar(), peer.as_affine());
                zeroize::Zeroizing::new(shared.raw_secret_bytes().to_vec())
            }};
        }
        Ok(match self {
            PureEc::P256(k) => dh!(p256, k),
            PureEc::P384(k) => dh!(p384, k),
            PureEc::P521(k) => dh!(p521, k),
        })
    }
}
