//! ECDH ephemeral-static key agreement (RFC 5753, RFC 5652 §6.2.2), as `openssl cms -encrypt`
//! makes for an EC recipient certificate: the sender's ephemeral public key is in `originator`,
//! `Z` is the x coordinate of the shared point, the KEK comes from the ANSI X9.63 KDF over
//! `Z` and an ECC-CMS-SharedInfo, and the CEK is key-wrapped (AES or Triple-DES) under the KEK.
//!
//! The cofactor variants compute the same thing: the NIST curves have cofactor 1.

use super::keywrap::{aes_key_unwrap, des3_key_unwrap};
use crate::error::{Error, Result};
use crate::oid;
use crate::provider::{CryptoProvider, EcCurve, EcPrivateKey, HashAlg};
use cms::enveloped_data::{KeyAgreeRecipientInfo, OriginatorIdentifierOrKey};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Tagged};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

/// The outcome of a key agreement recipient: the CEK and what was used to get it.
#[derive(Debug)]
pub struct KariUnwrap {
    pub cek: Zeroizing<Vec<u8>>,
    /// e.g. "ECDH P-384 X9.63-KDF SHA-384, AES-256-WRAP".
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrap {
    Aes(usize),
    Des3,
}

impl Wrap {
    fn kek_len(self) -> usize {
        match self {
            Wrap::Aes(n) => n,
            Wrap::Des3 => 24,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Wrap::Aes(16) => "AES-128-WRAP",
            Wrap::Aes(24) => "AES-192-WRAP",
            Wrap::Aes(_) => "AES-256-WRAP",
            Wrap::Des3 => "DES-EDE3-WRAP",
        }
    }
}

/// keyEncryptionAlgorithm OID -> (KDF hash, cofactor variant).
fn kdf_scheme(alg: &ObjectIdentifier) -> Option<(HashAlg, bool)> {
    Some(match *alg {
        oid::DH_SINGLE_PASS_STD_SHA1_KDF => (HashAlg::Sha1, false),
        oid::DH_SINGLE_PASS_STD_SHA224_KDF => (HashAlg::Sha224, false),
        oid::DH_SINGLE_PASS_STD_SHA256_KDF => (HashAlg::Sha256, false),
        oid::DH_SINGLE_PASS_STD_SHA384_KDF => (HashAlg::Sha384, false),
        oid::DH_SINGLE_PASS_STD_SHA512_KDF => (HashAlg::Sha512, false),
        oid::DH_SINGLE_PASS_COFACTOR_SHA1_KDF => (HashAlg::Sha1, true),
        oid::DH_SINGLE_PASS_COFACTOR_SHA224_KDF => (HashAlg::Sha224, true),
        oid::DH_SINGLE_PASS_COFACTOR_SHA256_KDF => (HashAlg::Sha256, true),
        oid::DH_SINGLE_PASS_COFACTOR_SHA384_KDF => (HashAlg::Sha384, true),
        oid::DH_SINGLE_PASS_COFACTOR_SHA512_KDF => (HashAlg::Sha512, true),
        _ => return None,
    })
}

fn wrap_alg(alg: &ObjectIdentifier) -> Option<Wrap> {
    Some(match *alg {
        oid::AES128_WRAP => Wrap::Aes(16),
        oid::AES192_WRAP => Wrap::Aes(24),
        oid::AES256_WRAP => Wrap::Aes(32),
        oid::DES_EDE3_WRAP => Wrap::Des3,
        _ => return None,
    })
}

fn curve_oid(curve: EcCurve) -> ObjectIdentifier {
    match curve {
        EcCurve::P256 => oid::SECP256R1,
        EcCurve::P384 => oid::SECP384R1,
        EcCurve::P521 => oid::SECP521R1,
    }
}

fn coordinate_len(curve: EcCurve) -> usize {
    match curve {
        EcCurve::P256 => 32,
        EcCurve::P384 => 48,
        EcCurve::P521 => 66,
    }
}

fn bad_params(what: &'static str, oid: &ObjectIdentifier, detail: impl Into<String>) -> Error {
    Error::BadParameters {
        what,
        oid: oid::name(oid),
        detail: detail.into(),
    }
}

/// Recovers the CEK from a KeyAgreeRecipientInfo whose `encrypted_key` (the RecipientEncryptedKey
/// that names our certificate) was wrapped under a KEK agreed with `key`.
///
/// Errors: a non-`originatorKey` originator or an unknown KDF/wrap algorithm are
/// [`Error::UnsupportedAlgorithm`]; a malformed or off-curve point [`Error::BadParameters`] or
/// [`Error::Crypto`]; a failed key-wrap integrity check [`Error::WrongKey`] (with an empty
/// recipient for the caller to fill in).
pub fn unwrap_kari(
    p: &dyn CryptoProvider,
    key: &dyn EcPrivateKey,
    kari: &KeyAgreeRecipientInfo,
    encrypted_key: &[u8],
) -> Result<KariUnwrap> {
    let curve = key.curve();

    // The sender's ephemeral public key.
    let opk = match &kari.originator {
        OriginatorIdentifierOrKey::OriginatorKey(k) => k,
        OriginatorIdentifierOrKey::IssuerAndSerialNumber(_) => {
            return Err(unsupported_originator("issuerAndSerialNumber"));
        }
        OriginatorIdentifierOrKey::SubjectKeyIdentifier(_) => {
            return Err(unsupported_originator("subjectKeyIdentifier"));
        }
    };
    let ec_oid = &opk.algorithm.oid;
    if *ec_oid != oid::EC_PUBLIC_KEY {
        return Err(Error::UnsupportedAlgorithm {
            what: "originator public key algorithm",
            oid: oid::name(ec_oid),
        });
    }
    // Parameters are usually absent or NULL (RFC 5753 §7.1.2 allows either); a named curve, if
    // given, must be the recipient key's.
    if let Some(params) = &opk.algorithm.parameters
        && params.tag() == der::Tag::ObjectIdentifier
    {
        let named = params
            .decode_as::<ObjectIdentifier>()
            .map_err(|e| bad_params("originator public key", ec_oid, e.to_string()))?;
        if named != curve_oid(curve) {
            return Err(bad_params(
                "originator public key",
                ec_oid,
                format!(
                    "curve {named} does not match the recipient key's {}",
                    curve.name()
                ),
            ));
        }
    }
    let point = opk.public_key.as_bytes().ok_or_else(|| {
        bad_params(
            "originator public key",
            ec_oid,
            "BIT STRING has unused bits",
        )
    })?;
    let expected_len = 1 + 2 * coordinate_len(curve);
    if point.first() != Some(&0x04) || point.len() != expected_len {
        return Err(bad_params(
            "originator public key",
            ec_oid,
            format!(
                "not an uncompressed {} point ({} bytes, first byte {:#04x}; {expected_len} bytes \
                 starting 0x04 expected)",
                curve.name(),
                point.len(),
                point.first().copied().unwrap_or(0)
            ),
        ));
    }

    // Key agreement and key wrap algorithms.
    let ka_oid = &kari.key_enc_alg.oid;
    let (hash, cofactor) = kdf_scheme(ka_oid).ok_or_else(|| Error::UnsupportedAlgorithm {
        what: "key agreement algorithm",
        oid: oid::name(ka_oid),
    })?;
    let wrap_any =
        kari.key_enc_alg.parameters.as_ref().ok_or_else(|| {
            bad_params("key agreement algorithm", ka_oid, "no key wrap algorithm")
        })?;
    // keyInfo in the SharedInfo is the wrap AlgorithmIdentifier exactly as the message encodes it.
    let wrap_der = wrap_any
        .to_der()
        .map_err(|e| bad_params("key agreement algorithm", ka_oid, e.to_string()))?;
    let wrap_id = AlgorithmIdentifierOwned::from_der(&wrap_der)
        .map_err(|e| bad_params("key agreement algorithm", ka_oid, e.to_string()))?;
    let wrap = wrap_alg(&wrap_id.oid).ok_or_else(|| Error::UnsupportedAlgorithm {
        what: "key wrap algorithm",
        oid: oid::name(&wrap_id.oid),
    })?;

    // Z, then the KEK.
    let z = key.agree(point)?;
    let ukm = kari.ukm.as_ref().map(|u| u.as_bytes());
    let shared_info = ecc_cms_shared_info(&wrap_der, ukm, wrap.kek_len());
    let kek = x963_kdf(p, hash, &z, &shared_info, wrap.kek_len());

    let cek = match wrap {
        Wrap::Aes(_) => aes_key_unwrap(p, &kek, encrypted_key)?,
        Wrap::Des3 => des3_key_unwrap(p, &kek, encrypted_key)?,
    };
    let description = format!(
        "ECDH{} {} X9.63-KDF {}, {}",
        if cofactor { " (cofactor)" } else { "" },
        curve.name(),
        hash.name(),
        wrap.name()
    );
    Ok(KariUnwrap { cek, description })
}

fn unsupported_originator(choice: &str) -> Error {
    Error::UnsupportedAlgorithm {
        what: "key agreement originator (only originatorKey, ephemeral-static ECDH, is supported)",
        oid: choice.to_string(),
    }
}

/// Appends a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let sig = &bytes[skip..];
        out.push(0x80 | sig.len() as u8);
        out.extend_from_slice(sig);
    }
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    push_len(out, value.len());
    out.extend_from_slice(value);
}

/// DER of RFC 5753 §7.2 `ECC-CMS-SharedInfo ::= SEQUENCE { keyInfo AlgorithmIdentifier,
/// entityUInfo [0] EXPLICIT OCTET STRING OPTIONAL, suppPubInfo [2] EXPLICIT OCTET STRING }`,
/// suppPubInfo being the KEK length in bits as a 32-bit big-endian number.
pub(crate) fn ecc_cms_shared_info(
    key_info_der: &[u8],
    ukm: Option<&[u8]>,
    kek_len: usize,
) -> Vec<u8> {
    let mut body = key_info_der.to_vec();
    if let Some(ukm) = ukm {
        let mut octets = Vec::with_capacity(ukm.len() + 6);
        push_tlv(&mut octets, 0x04, ukm);
        push_tlv(&mut body, 0xA0, &octets);
    }
    let bits = u32::try_from(kek_len.saturating_mul(8)).unwrap_or(u32::MAX);
    let mut octets = Vec::with_capacity(6);
    push_tlv(&mut octets, 0x04, &bits.to_be_bytes());
    push_tlv(&mut body, 0xA2, &octets);
    let mut out = Vec::with_capacity(body.len() + 6);
    push_tlv(&mut out, 0x30, &body);
    out
}

/// ANSI X9.63 KDF (SEC 1 §3.6.1): `K(i) = Hash(Z || counter_i || SharedInfo)`, counter from 1.
pub(crate) fn x963_kdf(
    p: &dyn CryptoProvider,
    hash: HashAlg,
    z: &[u8],
    shared_info: &[u8],
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.output_len()));
    let mut counter: u32 = 1;
    while out.len() < len {
        let block = Zeroizing::new(p.digest(hash, &[z, &counter.to_be_bytes(), shared_info]));
        out.extend_from_slice(&block);
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const AES128_WRAP_ID: [u8; 13] = [
        0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x05,
    ];

    #[test]
    fn shared_info_without_ukm() {
        let mut expected = vec![0x30, 0x15];
        expected.extend_from_slice(&AES128_WRAP_ID);
        expected.extend_from_slice(&[0xa2, 0x06, 0x04, 0x04, 0x00, 0x00, 0x00, 0x80]);
        assert_eq!(ecc_cms_shared_info(&AES128_WRAP_ID, None, 16), expected);
    }

    #[test]
    fn shared_info_with_ukm() {
        let mut expected = vec![0x30, 0x1c];
        expected.extend_from_slice(&AES128_WRAP_ID);
        expected.extend_from_slice(&[0xa0, 0x05, 0x04, 0x03, 0x01, 0x02, 0x03]);
        expected.extend_from_slice(&[0xa2, 0x06, 0x04, 0x04, 0x00, 0x00, 0x00, 0x80]);
        assert_eq!(
            ecc_cms_shared_info(&AES128_WRAP_ID, Some(&[1, 2, 3]), 16),
            expected
        );
        // A 200-byte ukm needs long-form lengths.
        let ukm = [0x5a; 200];
        let info = ecc_cms_shared_info(&AES128_WRAP_ID, Some(&ukm), 32);
        assert_eq!(&info[..3], &[0x30, 0x81, 13 + 206 + 8]);
        assert_eq!(&info[16..22], &[0xa0, 0x81, 203, 0x04, 0x81, 200]);
        assert_eq!(
            &info[info.len() - 8..],
            &[0xa2, 0x06, 0x04, 0x04, 0x00, 0x00, 0x01, 0x00]
        );
    }

    #[test]
    fn x963_kdf_spans_several_hash_blocks() {
        // KEK longer than one SHA-1 output: blocks are H(Z || 00000001 || info), H(Z || 00000002 || info).
        let p = crate::provider::default_provider();
        let out = x963_kdf(p, HashAlg::Sha1, b"z", b"info", 32);
        let b1 = p.digest(HashAlg::Sha1, &[b"z", &[0, 0, 0, 1], b"info"]);
        let b2 = p.digest(HashAlg::Sha1, &[b"z", &[0, 0, 0, 2], b"info"]);
        assert_eq!(&out[..20], b1.as_slice());
        assert_eq!(&out[20..], &b2[..12]);
    }
}
