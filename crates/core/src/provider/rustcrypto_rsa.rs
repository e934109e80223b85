//! RSA from the RustCrypto `rsa` crate: the whole of RSA for the pure-Rust provider, and the
//! OAEP hash combinations aws-lc-rs does not offer (SHA-224, or an MGF1 hash that differs from
//! the OAEP hash) for the default one.

use super::HashAlg;
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
                HashAlg::Sha1 => key.decrypt(Oaep::<$h, Sha1>::new_with_mgf_hash_and_label(label), ciphertext),
                HashAlg::Sha224 => key.decrypt(Oaep::<$h, Sha224>::new_with_mgf_hash_and_label(label), ciphertext),
                HashAlg::Sha256 => key.decrypt(Oaep::<$h, Sha256>::new_with_mgf_hash_and_label(label), ciphertext),
                HashAlg::Sha384 => key.decrypt(Oaep::<$h, Sha384>::new_with_mgf_hash_and_label(label), ciphertext),
                HashAlg::Sha512 => key.decrypt(Oaep::<$h, Sha512>::new_with_mgf_hash_and_label(label), ciphertext),
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
    result
        .map(Zeroizing::new)
        .map_err(|e| Error::Crypto { operation: "RSA OAEP decryption", detail: e.to_string() })
}

pub(crate) fn decrypt_pkcs1v15(key: &PrivateKey, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    key.decrypt(rsa::Pkcs1v15Encrypt, ciphertext)
        .map(Zeroizing::new)
        .map_err(|e| Error::Crypto { operation: "RSA PKCS#1 v1.5 decryption", detail: e.to_string() })
}
