//! The default provider: aws-lc-rs, the fastest of the candidates measured here for RSA and AES
//! (figures in docs/performance.md). DES and 3DES are the crate's own bitsliced implementation
//! (`bitsliced_des`), several times faster than aws-lc's. RC2 and CAST5 come from RustCrypto
//! because aws-lc has neither; RSA keys under 2048 bits too (aws-lc refuses them);
//! OAEP with unusual hash pairs (SHA-224, or MGF1 hash != OAEP hash) from the `rsa` crate because
//! aws-lc-rs only offers the four matched pairs.

use super::{
    AesEncrypt, BlockCipher, CbcDecrypt, CryptoProvider, EcCurve, EcPrivateKey, HashAlg, Hasher,
    RsaPrivateKey, bitsliced_des, check_blocks, check_key_len, rustcrypto,
};
use crate::error::{Error, Result};
use aws_lc_rs::{agreement, cipher, digest, rsa};
use std::sync::OnceLock;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, Default)]
pub struct AwsLc;

fn crypto_err(operation: &'static str) -> impl Fn(aws_lc_rs::error::Unspecified) -> Error {
    move |_| Error::Crypto {
        operation,
        detail: "rejected by aws-lc".into(),
    }
}

struct AwsRsa {
    pkcs1: rsa::Pkcs1PrivateDecryptingKey,
    oaep: rsa::OaepPrivateDecryptingKey,
    size: usize,
    /// Kept (zeroized on drop) only to build the fallback key for OAEP variants aws-lc lacks.
    pkcs8: Zeroizing<Vec<u8>>,
    fallback: OnceLock<std::result::Result<::rsa::PrivateKey, String>>,
}

impl RsaPrivateKey for AwsRsa {
    fn size_bytes(&self) -> usize {
        self.size
    }

    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; self.pkcs1.min_output_size()]);
        let n = self
            .pkcs1
            .decrypt(ciphertext, &mut out)
            .map_err(crypto_err("RSA PKCS#1 v1.5 decryption"))?
            .len();
        out.truncate(n);
        Ok(out)
    }

    fn decrypt_oaep(
        &self,
        hash: HashAlg,
        mgf1: HashAlg,
        label: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let alg = match (hash, mgf1) {
            (HashAlg::Sha1, HashAlg::Sha1) => Some(&rsa::OAEP_SHA1_MGF1SHA1),
            (HashAlg::Sha256, HashAlg::Sha256) => Some(&rsa::OAEP_SHA256_MGF1SHA256),
            (HashAlg::Sha384, HashAlg::Sha384) => Some(&rsa::OAEP_SHA384_MGF1SHA384),
            (HashAlg::Sha512, HashAlg::Sha512) => Some(&rsa::OAEP_SHA512_MGF1SHA512),
            _ => None,
        };
        let Some(alg) = alg else {
            let key = self
                .fallback
                .get_or_init(|| super::rustcrypto_rsa::parse(&self.pkcs8))
                .as_ref()
                .map_err(|e| Error::Crypto {
                    operation: "RSA key setup",
                    detail: e.clone(),
                })?;
            return super::rustcrypto_rsa::decrypt_oaep(key, hash, mgf1, label, ciphertext);
        };
        let mut out = Zeroizing::new(vec![0u8; self.oaep.min_output_size()]);
        let label = if label.is_empty() { None } else { Some(label) };
        let n = self
            .oaep
            .decrypt(alg, ciphertext, &mut out, label)
            .map_err(crypto_err("RSA OAEP decryption"))?
            .len();
        out.truncate(n);
        Ok(out)
    }
}

struct AwsEc {
    curve: EcCurve,
    key: agreement::PrivateKey,
}

fn ec_alg(curve: EcCurve) -> &'static agreement::Algorithm {
    match curve {
        EcCurve::P256 => &agreement::ECDH_P256,
        EcCurve::P384 => &agreement::ECDH_P384,
        EcCurve::P521 => &agreement::ECDH_P521,
    }
}

impl EcPrivateKey for AwsEc {
    fn curve(&self) -> EcCurve {
        self.curve
    }

    fn agree(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let peer = agreement::UnparsedPublicKey::new(ec_alg(self.curve), peer_point);
        agreement::agree(
            &self.key,
            peer,
            Error::Crypto {
                operation: "ECDH",
                detail: "peer public key rejected".into(),
            },
            |z| Ok(Zeroizing::new(z.to_vec())),
        )
    }
}

struct AwsCbc {
    key: cipher::DecryptingKey,
    block: usize,
}

impl CbcDecrypt for AwsCbc {
    fn block_len(&self) -> usize {
        self.block
    }

    fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<()> {
        check_blocks(data.len(), self.block, iv)?;
        if data.is_empty() {
            return Ok(());
        }
        let ctx = match self.block {
            16 => {
                let iv: [u8; 16] = iv.try_into().map_err(|_| bad_iv())?;
                cipher::DecryptionContext::Iv128(iv.into())
            }
            _ => {
                let iv: [u8; 8] = iv.try_into().map_err(|_| bad_iv())?;
                cipher::DecryptionContext::Iv64(iv.into())
            }
        };
        self.key
            .decrypt(data, ctx)
            .map_err(crypto_err("CBC decryption"))?;
        Ok(())
    }
}

fn bad_iv() -> Error {
    Error::Crypto {
        operation: "CBC",
        detail: "IV length".into(),
    }
}

struct AwsAes(cipher::EncryptingKey);

impl AesEncrypt for AwsAes {
    fn encrypt_blocks(&self, data: &mut [u8]) -> Result<()> {
        if !data.len().is_multiple_of(16) {
            return Err(Error::Crypto {
                operation: "AES",
                detail: "partial block".into(),
            });
        }
        if data.is_empty() {
            return Ok(());
        }
        self.0
            .encrypt(data)
            .map_err(crypto_err("AES block encryption"))?;
        Ok(())
    }
}

fn aes_alg(key: &[u8]) -> Result<&'static cipher::Algorithm> {
    Ok(match key.len() {
        16 => &cipher::AES_128,
        24 => &cipher::AES_192,
        32 => &cipher::AES_256,
        n => {
            return Err(Error::Crypto {
                operation: "AES key setup",
                detail: format!("{n}-byte key"),
            });
        }
    })
}

impl CryptoProvider for AwsLc {
    fn name(&self) -> &'static str {
        "aws-lc-rs"
    }

    fn rsa_private_key(&self, pkcs8_der: &[u8]) -> Result<Box<dyn RsaPrivateKey>> {
        let parse = || {
            rsa::PrivateDecryptingKey::from_pkcs8(pkcs8_der).map_err(|e| Error::Crypto {
                operation: "RSA key setup",
                detail: e.to_string(),
            })
        };
        let k1 = match parse() {
            Ok(k) => k,
            // aws-lc refuses moduli under 2048 bits; old archives are full of 1024-bit keys.
            Err(e) if e.to_string().contains("TooSmall") => {
                return Ok(Box::new(super::rustcrypto_rsa::RustCryptoRsa::from_pkcs8(
                    pkcs8_der,
                )?));
            }
            Err(e) => return Err(e),
        };
        let size = k1.key_size_bytes();
        let pkcs1 = rsa::Pkcs1PrivateDecryptingKey::new(k1).map_err(crypto_err("RSA key setup"))?;
        let oaep =
            rsa::OaepPrivateDecryptingKey::new(parse()?).map_err(crypto_err("RSA key setup"))?;
        Ok(Box::new(AwsRsa {
            pkcs1,
            oaep,
            size,
            pkcs8: Zeroizing::new(pkcs8_der.to_vec()),
            fallback: OnceLock::new(),
        }))
    }

    fn ec_private_key(&self, curve: EcCurve, pkcs8_der: &[u8]) -> Result<Box<dyn EcPrivateKey>> {
        let key =
            agreement::PrivateKey::from_private_key_der(ec_alg(curve), pkcs8_der).map_err(|e| {
                Error::Crypto {
                    operation: "EC key setup",
                    detail: e.to_string(),
                }
            })?;
        Ok(Box::new(AwsEc { curve, key }))
    }

    fn cbc_decryptor(&self, c: BlockCipher, key: &[u8]) -> Result<Box<dyn CbcDecrypt>> {
        check_key_len(c, key)?;
        let alg = match c {
            BlockCipher::Rc2 { effective_bits } => {
                return Ok(Box::new(rustcrypto::rc2(key, effective_bits)?));
            }
            BlockCipher::Cast5 => return Ok(Box::new(rustcrypto::cast5(key)?)),
            BlockCipher::Camellia => return rustcrypto::camellia(key),
            BlockCipher::Seed => return Ok(Box::new(super::seed::Seed::new(key)?)),
            BlockCipher::Aes => aes_alg(key)?,
            // Bitsliced, many blocks at once: several times faster than aws-lc's DES, which
            // also refuses the weak keys a sender's random CEK can be.
            BlockCipher::Des | BlockCipher::DesEde3 => {
                return Ok(Box::new(bitsliced_des::DesCbc::new(key)?));
            }
        };
        let unbound = cipher::UnboundCipherKey::new(alg, key);
        match unbound.and_then(cipher::DecryptingKey::cbc) {
            Ok(key) => Ok(Box::new(AwsCbc {
                key,
                block: c.block_len(),
            })),
            Err(_) => Err(Error::Crypto {
                operation: "cipher key setup",
                detail: format!("{c:?}"),
            }),
        }
    }

    fn aes_encryptor(&self, key: &[u8]) -> Result<Box<dyn AesEncrypt>> {
        let unbound = cipher::UnboundCipherKey::new(aes_alg(key)?, key)
            .map_err(crypto_err("AES key setup"))?;
        let key = cipher::EncryptingKey::ecb(unbound).map_err(crypto_err("AES key setup"))?;
        Ok(Box::new(AwsAes(key)))
    }

    fn aes_gcm_open(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> Result<bool> {
        use aws_lc_rs::aead;
        let (Ok(nonce), 16) = (<[u8; 12]>::try_from(nonce), tag.len()) else {
            return Ok(false);
        };
        let alg = match key.len() {
            16 => &aead::AES_128_GCM,
            24 => &aead::AES_192_GCM,
            32 => &aead::AES_256_GCM,
            _ => return Ok(false),
        };
        let key = aead::UnboundKey::new(alg, key).map_err(crypto_err("AES-GCM key setup"))?;
        aead::LessSafeKey::new(key)
            .open_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                tag,
                data,
            )
            .map_err(|_| Error::AuthenticationFailed {
                detail: "AES-GCM tag mismatch".into(),
            })?;
        Ok(true)
    }

    fn digest(&self, hash: HashAlg, parts: &[&[u8]]) -> Vec<u8> {
        let mut ctx = digest::Context::new(digest_alg(hash));
        for p in parts {
            ctx.update(p);
        }
        ctx.finish().as_ref().to_vec()
    }

    fn hasher(&self, hash: HashAlg) -> Box<dyn Hasher> {
        Box::new(AwsHasher(digest::Context::new(digest_alg(hash))))
    }
}

fn digest_alg(hash: HashAlg) -> &'static digest::Algorithm {
    match hash {
        HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha224 => &digest::SHA224,
        HashAlg::Sha256 => &digest::SHA256,
        HashAlg::Sha384 => &digest::SHA384,
        HashAlg::Sha512 => &digest::SHA512,
    }
}

struct AwsHasher(digest::Context);

impl Hasher for AwsHasher {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finish().as_ref().to_vec()
    }
}
