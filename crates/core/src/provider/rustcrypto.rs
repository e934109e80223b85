//! CBC over RustCrypto block ciphers. Used for RC2, CAST5 and Camellia by every provider (aws-lc
//! offers none of them), and for everything by the pure-Rust provider. CBC is written out here rather than
//! taken from the `cbc` crate because the trait wants stateless, IV-per-call decryption.

use super::{CbcDecrypt, check_blocks};
use crate::error::{Error, Result};
use cipher::{Block, BlockCipherDecrypt, BlockSizeUser};

pub(crate) struct RustCryptoCbc<C>(pub C);

impl<C> CbcDecrypt for RustCryptoCbc<C>
where
    C: BlockCipherDecrypt + BlockSizeUser + Send + Sync,
{
    fn block_len(&self) -> usize {
        C::block_size()
    }

    fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<()> {
        let bs = C::block_size();
        check_blocks(data.len(), bs, iv)?;
        let mut prev = Block::<C>::try_from(iv).map_err(|_| bad_iv())?;
        for chunk in data.chunks_exact_mut(bs) {
            let mut block = Block::<C>::try_from(&*chunk).map_err(|_| bad_iv())?;
            let ct = block.clone();
            self.0.decrypt_block(&mut block);
            for (o, (b, p)) in chunk.iter_mut().zip(block.iter().zip(prev.iter())) {
                *o = b ^ p;
            }
            prev = ct;
        }
        Ok(())
    }
}

fn bad_iv() -> Error {
    Error::Crypto {
        operation: "CBC",
        detail: "block size mismatch".into(),
    }
}

/// RC2 with an explicit effective key length (RFC 2268), the way CMS parameters give it.
pub(crate) fn rc2(key: &[u8], effective_bits: u16) -> Result<RustCryptoCbc<rc2::Rc2>> {
    if key.is_empty() || key.len() > 128 || effective_bits == 0 || effective_bits > 1024 {
        return Err(Error::Crypto {
            operation: "RC2 key setup",
            detail: format!("{}-byte key, {effective_bits} effective bits", key.len()),
        });
    }
    Ok(RustCryptoCbc(rc2::Rc2::new_with_eff_key_len(
        key,
        effective_bits as usize,
    )))
}

/// CAST5 (RFC 2144) with a 40..128-bit key.
pub(crate) fn cast5(key: &[u8]) -> Result<RustCryptoCbc<cast5::Cast5>> {
    use cipher::KeyInit;
    cast5::Cast5::new_from_slice(key)
        .map(RustCryptoCbc)
        .map_err(|_| Error::Crypto {
            operation: "CAST5 key setup",
            detail: format!("{}-byte key (5..=16 allowed)", key.len()),
        })
}

/// A cipher family with 128-, 192- and 256-bit keys (`K128`, `K192`, `K256`: AES, Camellia),
/// the member chosen by the key's length; `name` is for the error.
pub(crate) fn by_key_len<K128, K192, K256>(name: &str, key: &[u8]) -> Result<Box<dyn CbcDecrypt>>
where
    K128: cipher::KeyInit + BlockCipherDecrypt + BlockSizeUser + Send + Sync + 'static,
    K192: cipher::KeyInit + BlockCipherDecrypt + BlockSizeUser + Send + Sync + 'static,
    K256: cipher::KeyInit + BlockCipherDecrypt + BlockSizeUser + Send + Sync + 'static,
{
    let err = |_| Error::Crypto {
        operation: "cipher key setup",
        detail: format!("{name}: {}-byte key (16, 24 or 32 allowed)", key.len()),
    };
    Ok(match key.len() {
        16 => Box::new(RustCryptoCbc(K128::new_from_slice(key).map_err(err)?)),
        24 => Box::new(RustCryptoCbc(K192::new_from_slice(key).map_err(err)?)),
        _ => Box::new(RustCryptoCbc(K256::new_from_slice(key).map_err(err)?)),
    })
}

/// Camellia (RFC 3713) with a 128-, 192- or 256-bit key.
pub(crate) fn camellia(key: &[u8]) -> Result<Box<dyn CbcDecrypt>> {
    use camellia::{Camellia128, Camellia192, Camellia256};
    by_key_len::<Camellia128, Camellia192, Camellia256>("Camellia", key)
}

/// DES / 3DES CBC from RustCrypto, for the pure-Rust provider (the default one uses
/// `bitsliced_des`).
#[cfg(feature = "pure-rust")]
pub(crate) fn des_cbc(c: super::BlockCipher, key: &[u8]) -> Result<Box<dyn CbcDecrypt>> {
    use cipher::KeyInit;
    let err = |_| Error::Crypto {
        operation: "DES key setup",
        detail: format!("{}-byte key", key.len()),
    };
    match c {
        super::BlockCipher::Des => Ok(Box::new(RustCryptoCbc(
            des::Des::new_from_slice(key).map_err(err)?,
        ))),
        _ => Ok(Box::new(RustCryptoCbc(
            des::TdesEde3::new_from_slice(key).map_err(err)?,
        ))),
    }
}
