//! AES-GCM (NIST SP 800-38D) for AuthEnvelopedData (RFC 5083, RFC 5084), streaming.
//!
//! Built on [`CryptoProvider::aes_encryptor`] (hash key `H = E(K, 0^128)`, the CTR keystream made
//! in batches of blocks) and the `ghash` crate, so any provider gets it. The decryptor releases
//! plaintext as it goes: the caller must hold it back until [`GcmDecryptor::finish`] succeeds.

use crate::error::{Error, Result};
use crate::provider::{AesEncrypt, CryptoProvider};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use zeroize::{Zeroize, Zeroizing};

/// Keystream blocks made per call to the AES primitive.
const BATCH_BLOCKS: usize = 64;

/// SP 800-38D §5.2.1.1: at most 2^39 - 256 bits of plaintext.
const MAX_TEXT_BYTES: u64 = (1 << 36) - 32;

/// RFC 5084 §3.2: the ICV (tag) is 12 to 16 bytes.
const TAG_RANGE: std::ops::RangeInclusive<usize> = 12..=16;

fn crypto(detail: impl Into<String>) -> Error {
    Error::Crypto {
        operation: "AES-GCM",
        detail: detail.into(),
    }
}

/// Streaming AES-GCM decryption.
pub struct GcmDecryptor {
    aes: Box<dyn AesEncrypt>,
    ghash: GHash,
    /// E(K, J0), XORed into the GHASH output to make the tag.
    tag_mask: Zeroizing<[u8; 16]>,
    /// The counter block for the next keystream block (its low 32 bits increment mod 2^32).
    counter: [u8; 16],
    keystream: Zeroizing<Vec<u8>>,
    /// Unused keystream is `keystream[ks_pos..ks_len]`.
    ks_pos: usize,
    ks_len: usize,
    /// Ciphertext not yet hashed (less than one block).
    partial: [u8; 16],
    partial_len: usize,
    aad_len: u64,
    text_len: u64,
    /// The hash key `H`, for [`GcmDecryptor::finish_with_late_aad`].
    h_key: Zeroizing<[u8; 16]>,
}

impl std::fmt::Debug for GcmDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcmDecryptor")
            .field("text_len", &self.text_len)
            .finish_non_exhaustive()
    }
}

impl GcmDecryptor {
    /// Sets up decryption with an AES key (16, 24 or 32 bytes), a nonce of any non-zero length
    /// (12 bytes is the fast path; others go through GHASH per SP 800-38D §7.1) and the
    /// additional authenticated data (for CMS the DER of authAttrs, or empty).
    pub fn new(p: &dyn CryptoProvider, key: &[u8], nonce: &[u8], aad: &[u8]) -> Result<Self> {
        if !matches!(key.len(), 16 | 24 | 32) {
            return Err(crypto(format!(
                "{}-byte key (16, 24 or 32 expected)",
                key.len()
            )));
        }
        if nonce.is_empty() {
            return Err(crypto("empty nonce"));
        }
        let aes = p.aes_encryptor(key)?;
        let mut h = Zeroizing::new([0u8; 16]);
        aes.encrypt_blocks(&mut h[..])?;
        let h_key = ghash::Key::from(*h);

        let mut j0 = [0u8; 16];
        if nonce.len() == 12 {
            j0[..12].copy_from_slice(nonce);
            j0[15] = 1;
        } else {
            let mut g = GHash::new(&h_key);
            g.update_padded(nonce);
            let mut len_block = [0u8; 16];
            let bits = (nonce.len() as u64)
                .checked_mul(8)
                .ok_or_else(|| crypto("nonce too long"))?;
            len_block[8..].copy_from_slice(&bits.to_be_bytes());
            g.update(&[ghash::Block::from(len_block)]);
            j0.copy_from_slice(&g.finalize());
        }
        let mut tag_mask = Zeroizing::new(j0);
        aes.encrypt_blocks(&mut tag_mask[..])?;
        let mut counter = j0;
        inc32(&mut counter);

        let mut ghash = GHash::new(&h_key);
        ghash.update_padded(aad);
        Ok(GcmDecryptor {
            aes,
            ghash,
            tag_mask,
            counter,
            keystream: Zeroizing::new(vec![0u8; BATCH_BLOCKS * 16]),
            ks_pos: 0,
            ks_len: 0,
            partial: [0u8; 16],
            partial_len: 0,
            aad_len: aad.len() as u64,
            text_len: 0,
            h_key: h,
        })
    }

    /// Decrypts `data` in place (any length; keeps partial-block state across calls).
    pub fn update(&mut self, data: &mut [u8]) -> Result<()> {
        let total = self
            .text_len
            .checked_add(data.len() as u64)
            .filter(|&t| t <= MAX_TEXT_BYTES)
            .ok_or_else(|| crypto("ciphertext longer than GCM allows (2^36 - 32 bytes)"))?;
        self.hash_ciphertext(data);
        self.apply_keystream(data)?;
        self.text_len = total;
        Ok(())
    }

    /// Feeds ciphertext to GHASH, buffering any trailing partial block.
    fn hash_ciphertext(&mut self, mut data: &[u8]) {
        if self.partial_len > 0 {
            let take = (16 - self.partial_len).min(data.len());
            let (head, rest) = data.split_at(take);
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(head);
            self.partial_len += take;
            data = rest;
            if self.partial_len < 16 {
                return;
            }
            self.ghash.update(&[ghash::Block::from(self.partial)]);
            self.partial_len = 0;
        }
        let (blocks, rest) = ghash::Block::slice_as_chunks(data);
        self.ghash.update(blocks);
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }

    /// XORs the CTR keystream into `data`, making more keystream in batches as needed.
    fn apply_keystream(&mut self, data: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < data.len() {
            if self.ks_pos == self.ks_len {
                let wanted = (data.len() - done).div_ceil(16).clamp(1, BATCH_BLOCKS);
                self.refill(wanted)?;
            }
            let n = (self.ks_len - self.ks_pos).min(data.len() - done);
            let ks = &self.keystream[self.ks_pos..self.ks_pos + n];
            for (d, k) in data[done..done + n].iter_mut().zip(ks) {
                *d ^= k;
            }
            self.ks_pos += n;
            done += n;
        }
        Ok(())
    }

    fn refill(&mut self, blocks: usize) -> Result<()> {
        let buf = &mut self.keystream[..blocks * 16];
        for chunk in buf.chunks_exact_mut(16) {
            chunk.copy_from_slice(&self.counter);
            inc32(&mut self.counter);
        }
        self.aes.encrypt_blocks(buf)?;
        self.ks_pos = 0;
        self.ks_len = blocks * 16;
        Ok(())
    }

    /// Ciphertext (and so plaintext) bytes decrypted so far.
    pub fn text_len(&self) -> u64 {
        self.text_len
    }

    /// Checks the tag (12..=16 bytes; a shorter tag is compared against the start of the full
    /// one) in constant time. `Err(Error::AuthenticationFailed { .. })` on mismatch.
    pub fn finish(self, tag: &[u8]) -> Result<()> {
        self.finish_with_late_aad(&[], tag)
    }

    /// As [`GcmDecryptor::finish`], for additional authenticated data that arrives only after
    /// the ciphertext (a streamed AuthEnvelopedData: its authAttrs follow the content). The
    /// decryptor must have been made with an empty `aad`.
    ///
    /// GHASH is linear: for AAD blocks `A1..Ap`, ciphertext blocks `C1..Cq` and the length
    /// block `L`, `GHASH(A || C || L) = GHASH(C || L) + GHASH(A || 0^(q+1))` in GF(2^128),
    /// because each block is multiplied by `H` once for every block after it, and a zero block
    /// only multiplies what came before by `H`. So the ciphertext is hashed as it streams and
    /// the AAD's share is added at the end, at the cost of hashing `q + 1` zero blocks.
    pub fn finish_with_late_aad(&self, aad: &[u8], tag: &[u8]) -> Result<()> {
        if !TAG_RANGE.contains(&tag.len()) {
            return Err(Error::AuthenticationFailed {
                detail: format!("GCM tag is {} bytes (12 to 16 allowed)", tag.len()),
            });
        }
        if !aad.is_empty() && self.aad_len != 0 {
            return Err(crypto("additional data given twice"));
        }
        let mut ghash = self.ghash.clone();
        if self.partial_len > 0 {
            ghash.update_padded(&self.partial[..self.partial_len]);
        }
        let aad_len = self.aad_len + aad.len() as u64;
        let mut len_block = [0u8; 16];
        len_block[..8].copy_from_slice(&aad_len.wrapping_mul(8).to_be_bytes());
        len_block[8..].copy_from_slice(&self.text_len.wrapping_mul(8).to_be_bytes());
        ghash.update(&[ghash::Block::from(len_block)]);
        let mut sum = ghash.finalize();
        if !aad.is_empty() {
            sum = xor16(&sum, &self.late_aad_share(aad));
        }
        let mut full = Zeroizing::new([0u8; 16]);
        for ((f, s), m) in full.iter_mut().zip(sum).zip(self.tag_mask.iter()) {
            *f = s ^ m;
        }
        if crate::unwrap::keywrap::ct_eq(&full[..tag.len()], tag) {
            Ok(())
        } else {
            Err(Error::AuthenticationFailed {
                detail: "AES-GCM tag mismatch".into(),
            })
        }
    }

    /// `GHASH(aad || 0^(q+1))`, `q` being the ciphertext's length in blocks: what the AAD adds
    /// to the hash of the ciphertext and length block (see [`GcmDecryptor::finish_with_late_aad`]).
    fn late_aad_share(&self, aad: &[u8]) -> ghash::Block {
        const ZEROS: usize = 256;
        let mut g = GHash::new(&ghash::Key::from(*self.h_key));
        g.update_padded(aad);
        let zeros = [ghash::Block::default(); ZEROS];
        let mut left = self.text_len.div_ceil(16) + 1;
        while left > 0 {
            let n = left.min(ZEROS as u64) as usize;
            g.update(&zeros[..n]);
            left -= n as u64;
        }
        g.finalize()
    }
}

fn xor16(a: &ghash::Block, b: &ghash::Block) -> ghash::Block {
    let mut out = ghash::Block::default();
    for ((o, x), y) in out.iter_mut().zip(a.iter()).zip(b.iter()) {
        *o = x ^ y;
    }
    out
}

impl Drop for GcmDecryptor {
    fn drop(&mut self) {
        self.partial.zeroize();
        self.counter.zeroize();
    }
}

/// Increments the low 32 bits of a counter block, modulo 2^32 (SP 800-38D §6.2).
fn inc32(block: &mut [u8; 16]) {
    let mut low = [0u8; 4];
    low.copy_from_slice(&block[12..]);
    let next = u32::from_be_bytes(low).wrapping_add(1);
    block[12..].copy_from_slice(&next.to_be_bytes());
}

fn bad_params(detail: impl Into<String>) -> Error {
    Error::BadParameters {
        what: "GCMParameters",
        oid: "AES-GCM".into(),
        detail: detail.into(),
    }
}

/// Parses RFC 5084 `GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER
/// DEFAULT 12 }` (the DER of the AlgorithmIdentifier's parameters) into the nonce and the tag
/// length (12..=16).
pub fn parse_gcm_parameters(params_der: &[u8]) -> Result<(Vec<u8>, usize)> {
    use der::{Decode, Reader, SliceReader, asn1::OctetStringRef};
    let parse = |r: &mut SliceReader<'_>| -> der::Result<(Vec<u8>, Option<u8>)> {
        r.sequence(|r| {
            let nonce = <&OctetStringRef>::decode(r)?;
            let icv: Option<u8> = Option::decode(r)?;
            Ok((nonce.as_bytes().to_vec(), icv))
        })
    };
    let mut reader = SliceReader::new(params_der).map_err(|e| bad_params(e.to_string()))?;
    let (nonce, icv) = parse(&mut reader).map_err(|e| bad_params(e.to_string()))?;
    if !reader.is_finished() {
        return Err(bad_params("trailing data after the SEQUENCE"));
    }
    if nonce.is_empty() {
        return Err(bad_params("empty nonce"));
    }
    let tag_len = usize::from(icv.unwrap_or(12));
    if !TAG_RANGE.contains(&tag_len) {
        return Err(bad_params(format!(
            "aes-ICVlen {tag_len} (12 to 16 allowed)"
        )));
    }
    Ok((nonce, tag_len))
}
