//! RSA from the RustCrypto `rsa` crate: the whole of RSA for the pure-Rust provider, and the
//! OAEP hash combinations aws-lc-rs does not offer (SHA-224, or an MGF1 hash that differs from
//! the OAEP hash) for the default one.

use super::{HashAlg, RsaPrivateKey};
use crate::error::{Error, Result};
use rsa::{Oaep, PrivateKey};
use zeroize::Zeroizing;

pub(crate) fn parse(pkcs8: &[u8]) -> std::result::Result<PrivateKey, String> {
    use rsa::pkcs8::DecodePrivateKey;
    PrivateKey::from_pkcs8_der(pkcs8).map_err(|e| e.to_string())
}

pub(crate) fn decrypt_oaep(
    key: &PrivateKey,
    hash: HashAlg,
    mgf1: HashAlg,
    label: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    use sha1::Sha1;
    use sha2::{Sha224, Sha256, Sha384, Sha512};
    let label = label.to_vec();
    macro_rules! with_mgf {
        ($h:ty) => {
            match mgf1 {
                HashAlg::Sha1 => key.decrypt(
                    Oaep::<$h, Sha1>::new_with_mgf_hash_and_label(label),
                    ciphertext,
                ),
                HashAlg::Sha224 => key.decrypt(
                    Oaep::<$h, Sha224>::new_with_mgf_hash_and_label(label),
                    ciphertext,
                ),
                HashAlg::Sha256 => key.decrypt(
                    Oaep::<$h, Sha256>::new_with_mgf_hash_and_label(label),
                    ciphertext,
                ),
                HashAlg::Sha384 => key.decrypt(
                    Oaep::<$h, Sha384>::new_with_mgf_hash_and_label(label),
                    ciphertext,
                ),
                HashAlg::Sha512 => key.decrypt(
                    Oaep::<$h, Sha512>::new_with_mgf_hash_and_label(label),
                    ciphertext,
                ),
            }
        };
    }
    let result = match hash {
        HashAlg::Sha1 => with_mgf!(Sha1),
        HashAlg::Sha224 => with_mgf!(Sha224),
        HashAlg::Sha256 => with_mgf!(Sha256),
        HashAlg::Sha384 => with_mgf!(Sha384),
        HashAlg::Sha512 => with_mgf!(Sha512),
    };
    result.map(Zeroizing::new).map_err(|e| Error::Crypto {
        operation: "RSA OAEP decryption",
        detail: e.to_string(),
    })
}

pub(crate) fn decrypt_pkcs1v15(key: &PrivateKey, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    key.decrypt(rsa::Pkcs1v15Encrypt, ciphertext)
        .map(Zeroizing::new)
        .map_err(|e| Error::Crypto {
            operation: "RSA PKCS#1 v1.5 decryption",
            detail: e.to_string(),
        })
}

/// An RSA key on the `rsa` crate: the pure-Rust provider's RSA, and the default provider's for
/// keys aws-lc refuses (it rejects moduli under 2048 bits, and 1024-bit keys are common in old
/// mail archives).
pub(crate) struct RustCryptoRsa(PrivateKey);

impl RustCryptoRsa {
    pub(crate) fn from_pkcs8(pkcs8_der: &[u8]) -> Result<Self> {
        parse(pkcs8_der)
            .map(RustCryptoRsa)
            .map_err(|detail| Error::Crypto {
                operation: "RSA key setup",
                detail,
            })
    }
}

impl RsaPrivateKey for RustCryptoRsa {
    fn size_bytes(&self) -> usize {
        use rsa::traits::PublicKeyParts;
        self.0.size()
    }

    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        decrypt_pkcs1v15(&self.0, ciphertext)
    }

    fn decrypt_oaep(
        &self,
        hash: HashAlg,
        mgf1: HashAlg,
        label: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        decrypt_oaep(&self.0, hash, mgf1, label, ciphertext)
    }
}
