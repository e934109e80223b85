//! Private keys in any encoding (PKCS#8, PKCS#1, SEC1) into one canonical unencrypted PKCS#8,
//! plus the public key (SPKI) and its SHA-1 key identifier.
//!
//! Canonical form: version 0, no attributes, no v2 public key field. RSA keys carry
//! `{rsaEncryption, NULL}` and the PKCS#1 key re-encoded in DER; EC keys carry
//! `{id-ecPublicKey, namedCurve}` and an ECPrivateKey (version 1, the scalar padded to the field
//! size, no [0] parameters, [1] public key) — the same bytes `openssl pkcs8 -topk8 -nocrypt`
//! writes, whatever the key was loaded from.

use super::ber::{
    BIT_STRING, INTEGER, NULL, OCTET_STRING, OID, SEQUENCE, Tlv, der, der_secret, oid_text,
    strip_zeros,
};
use super::{KeyMaterial, sha1};
use crate::provider::EcCurve;
use zeroize::Zeroizing;

pub const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
pub const DSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

/// Why a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// A key we do not decrypt with (DSA, Ed25519, an unknown curve ...): named for a warning.
    Unsupported(String),
    Corrupt(String),
}

impl From<super::ber::BerError> for KeyError {
    fn from(e: super::ber::BerError) -> Self {
        KeyError::Corrupt(e.0)
    }
}

pub struct ParsedKey {
    pub material: KeyMaterial,
    pub spki_der: Vec<u8>,
    pub key_id: Vec<u8>,
}

pub fn curve_from_oid(oid: &[u8]) -> Option<EcCurve> {
    match oid {
        P256 => Some(EcCurve::P256),
        P384 => Some(EcCurve::P384),
        P521 => Some(EcCurve::P521),
        _ => None,
    }
}

const EXPLICIT: [(EcCurve, &str, &str); 3] = [
    (
        EcCurve::P256,
        "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF",
        "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551",
    ),
    (
        EcCurve::P384,
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF",
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
    ),
    (
        EcCurve::P521,
        "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
    ),
];

/// The curve named by EC parameters: a namedCurve OID, or explicit parameters (as BouncyCastle
/// writes them) recognised by their prime and order.
pub fn curve_from_params(t: &Tlv<'_>) -> Result<EcCurve, KeyError> {
    if t.tag == OID {
        return curve_from_oid(t.content)
            .ok_or_else(|| KeyError::Unsupported(format!("EC curve {}", oid_text(t.content))));
    }
    let unknown =
        || KeyError::Unsupported("EC key with unrecognised explicit curve parameters".into());
    let f = t.seq().map_err(|_| unknown())?;
    let field = f.get(1).and_then(|x| x.seq().ok()).ok_or_else(unknown)?;
    let p = field
        .get(1)
        .filter(|x| x.tag == INTEGER)
        .ok_or_else(unknown)?;
    let n = f.get(4).filter(|x| x.tag == INTEGER).ok_or_else(unknown)?;
    let p = crate::cms::recipient::hex(strip_zeros(p.content));
    let n = crate::cms::recipient::hex(strip_zeros(n.content));
    EXPLICIT
        .iter()
        .find(|(_, ep, en)| ep.trim_start_matches('0') == p && en.trim_start_matches('0') == n)
        .map(|(c, ..)| *c)
        .ok_or_else(unknown)
}

fn curve_oid(c: EcCurve) -> &'static [u8] {
    match c {
        EcCurve::P256 => P256,
        EcCurve::P384 => P384,
        EcCurve::P521 => P521,
    }
}

fn field_len(c: EcCurve) -> usize {
    match c {
        EcCurve::P256 => 32,
        EcCurve::P384 => 48,
        EcCurve::P521 => 66,
    }
}

/// A name for an algorithm OID in messages.
pub fn algorithm_name(oid: &[u8]) -> String {
    match oid {
        DSA => "DSA".into(),
        [0x2b, 0x65, 0x70] => "Ed25519".into(),
        [0x2b, 0x65, 0x71] => "Ed448".into(),
        [0x2b, 0x65, 0x6e] => "X25519".into(),
        [0x2b, 0x65, 0x6f] => "X448".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x03, 0x01] => "DH".into(),
        [0x2a, 0x86, 0x48, 0xce, 0x3e, 0x02, 0x01] => "X9.42 DH".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a] => "RSASSA-PSS".into(),
        _ => format!("algorithm {}", oid_text(oid)),
    }
}

/// Minimal INTEGER content (strips redundant leading zero bytes, keeps a sign byte).
fn canonical_int(c: &[u8]) -> &[u8] {
    let mut c = c;
    while c.len() > 1 && c[0] == 0 && c[1] & 0x80 == 0 {
        c = &c[1..];
    }
    c
}

/// RSAPublicKey / SPKI / key id for a modulus and exponent.
fn rsa_public(n: &[u8], e: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut seq = der(INTEGER, canonical_int(n));
    seq.extend_from_slice(&der(INTEGER, canonical_int(e)));
    let rsa_pub = der(SEQUENCE, &seq);
    let key_id = sha1(&rsa_pub);
    let mut bits = vec![0u8];
    bits.extend_from_slice(&rsa_pub);
    let mut spki = rsa_alg_id();
    spki.extend_from_slice(&der(BIT_STRING, &bits));
    (der(SEQUENCE, &spki), key_id)
}

fn rsa_alg_id() -> Vec<u8> {
    let mut alg = der(OID, RSA_ENCRYPTION);
    alg.extend_from_slice(&der(NULL, &[]));
    der(SEQUENCE, &alg)
}

pub fn ec_spki(curve: EcCurve, point: &[u8]) -> Vec<u8> {
    let mut alg = der(OID, EC_PUBLIC_KEY);
    alg.extend_from_slice(&der(OID, curve_oid(curve)));
    let mut spki = der(SEQUENCE, &alg);
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    spki.extend_from_slice(&der(BIT_STRING, &bits));
    der(SEQUENCE, &spki)
}

/// Bit length of an unsigned big-endian magnitude.
pub fn bit_len(mag: &[u8]) -> usize {
    let m = strip_zeros(mag);
    match m.first() {
        None => 0,
        Some(&b) => m.len() * 8 - b.leading_zeros() as usize,
    }
}

/// PKCS#1 RSAPrivateKey (DER or BER).
pub fn from_pkcs1(data: &[u8]) -> Result<ParsedKey, KeyError> {
    let t = Tlv::parse_exact(data)?;
    let f = t.seq()?;
    if f.len() < 9 || f.iter().take(9).any(|x| x.tag != INTEGER) {
        return Err(KeyError::Corrupt(
            "RSAPrivateKey needs nine INTEGERs".into(),
        ));
    }
    if f[0].small_uint()? > 1 {
        return Err(KeyError::Corrupt("unknown RSAPrivateKey version".into()));
    }
    let n = f[1].content;
    if n.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(KeyError::Corrupt("negative RSA modulus".into()));
    }
    let bits = bit_len(n);
    if !(512..=16384).contains(&bits) {
        return Err(KeyError::Unsupported(format!("RSA key of {bits} bits")));
    }
    let pkcs1 = t.to_der()?;
    let (spki_der, key_id) = rsa_public(n, f[2].content);
    let mut body = Zeroizing::new(der(INTEGER, &[0]));
    body.extend_from_slice(&rsa_alg_id());
    body.extend_from_slice(&der_secret(OCTET_STRING, &pkcs1));
    let pkcs8_der = der_secret(SEQUENCE, &body);
    Ok(ParsedKey {
        material: KeyMaterial::Rsa { pkcs8_der, bits },
        spki_der,
        key_id,
    })
}

/// SEC1 ECPrivateKey; `curve_param` is the namedCurve from the PKCS#8 AlgorithmIdentifier, if any.
pub fn from_sec1(data: &[u8], curve_param: Option<&[u8]>) -> Result<ParsedKey, KeyError> {
    let t = Tlv::parse_exact(data)?;
    let f = t.seq()?;
    if f.len() < 2 || f[0].small_uint()? != 1 {
        return Err(KeyError::Corrupt(
            "ECPrivateKey is not {1, privateKey, ...}".into(),
        ));
    }
    f[1].expect(OCTET_STRING)?;
    let d = f[1].octets()?;
    let mut inner_curve: Option<&[u8]> = None;
    let mut stated_point: Option<Vec<u8>> = None;
    for x in &f[2..] {
        match x.tag {
            0xa0 => {
                let c = x.children()?;
                let p = c
                    .first()
                    .ok_or_else(|| KeyError::Corrupt("empty [0] parameters".into()))?;
                inner_curve = Some(curve_oid(curve_from_params(p)?));
            }
            0xa1 => {
                let c = x.children()?;
                let bs = c
                    .first()
                    .ok_or_else(|| KeyError::Corrupt("empty [1] publicKey".into()))?;
                bs.expect(BIT_STRING)?;
                let v = bs.octets()?;
                if v.first() != Some(&0) {
                    return Err(KeyError::Corrupt(
                        "public key BIT STRING with unused bits".into(),
                    ));
                }
                stated_point = Some(v[1..].to_vec());
            }
            _ => {}
        }
    }
    let curve_oid_bytes = match (curve_param, inner_curve) {
        (Some(a), Some(b)) if a != b => {
            return Err(KeyError::Corrupt("curve in PKCS#8 and SEC1 differ".into()));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => return Err(KeyError::Corrupt("EC key names no curve".into())),
    };
    let curve = curve_from_oid(curve_oid_bytes)
        .ok_or_else(|| KeyError::Unsupported(format!("EC curve {}", oid_text(curve_oid_bytes))))?;
    let flen = field_len(curve);
    let d_min = strip_zeros(&d);
    if d_min.is_empty() || d_min.len() > flen {
        return Err(KeyError::Corrupt("EC private scalar out of range".into()));
    }
    let mut scalar = Zeroizing::new(vec![0u8; flen - d_min.len()]);
    scalar.extend_from_slice(d_min);

    // Derive the public point from the scalar (this also checks 0 < d < n).
    use aws_lc_rs::agreement;
    let alg = match curve {
        EcCurve::P256 => &agreement::ECDH_P256,
        EcCurve::P384 => &agreement::ECDH_P384,
        EcCurve::P521 => &agreement::ECDH_P521,
    };
    let pk = agreement::PrivateKey::from_private_key(alg, &scalar)
        .map_err(|_| KeyError::Corrupt("EC private scalar rejected".into()))?;
    let point = pk
        .compute_public_key()
        .map_err(|_| KeyError::Corrupt("cannot compute EC public key".into()))?
        .as_ref()
        .to_vec();
    if let Some(sp) = &stated_point
        && sp != &point
        && !(sp.len() == flen + 1 && sp[1..] == point[1..=flen])
    {
        return Err(KeyError::Corrupt(
            "EC public key does not match the private key".into(),
        ));
    }
    let mut ec = Zeroizing::new(der(INTEGER, &[1]));
    ec.extend_from_slice(&der_secret(OCTET_STRING, &scalar));
    let mut bits = vec![0u8];
    bits.extend_from_slice(&point);
    ec.extend_from_slice(&der(0xa1, &der(BIT_STRING, &bits)));
    let ec = der_secret(SEQUENCE, &ec);

    let mut alg_id = der(OID, EC_PUBLIC_KEY);
    alg_id.extend_from_slice(&der(OID, curve_oid(curve)));
    let mut body = Zeroizing::new(der(INTEGER, &[0]));
    body.extend_from_slice(&der(SEQUENCE, &alg_id));
    body.extend_from_slice(&der_secret(OCTET_STRING, &ec));
    let pkcs8_der = der_secret(SEQUENCE, &body);
    Ok(ParsedKey {
        material: KeyMaterial::Ec { curve, pkcs8_der },
        spki_der: ec_spki(curve, &point),
        key_id: sha1(&point),
    })
}

/// Does this look like a PKCS#8 PrivateKeyInfo ({INTEGER 0|1, AlgorithmIdentifier, OCTET STRING, ...})?
pub fn looks_like_pkcs8(f: &[Tlv<'_>]) -> bool {
    f.len() >= 3
        && f[0].tag == INTEGER
        && f[1].tag == SEQUENCE
        && f[2].tag & !0x20 == OCTET_STRING
        && f[1].children().ok().and_then(|c| c.first().map(|o| o.tag)) == Some(OID)
}

/// PKCS#8 PrivateKeyInfo / OneAsymmetricKey (DER or BER).
pub fn from_pkcs8(data: &[u8]) -> Result<ParsedKey, KeyError> {
    let t = Tlv::parse_exact(data)?;
    let f = t.seq()?;
    if !looks_like_pkcs8(&f) {
        return Err(KeyError::Corrupt("not a PKCS#8 PrivateKeyInfo".into()));
    }
    if f[0].small_uint()? > 1 {
        return Err(KeyError::Corrupt("unknown PKCS#8 version".into()));
    }
    let alg = f[1].children()?;
    let oid = alg[0].oid()?;
    let inner = f[2].octets()?;
    match oid {
        RSA_ENCRYPTION => from_pkcs1(&inner),
        EC_PUBLIC_KEY => {
            let param = match alg.get(1) {
                Some(p) if p.tag == NULL => None,
                None => None,
                Some(p) => Some(curve_oid(curve_from_params(p)?)),
            };
            from_sec1(&inner, param)
        }
        other => Err(KeyError::Unsupported(format!(
            "{} key",
            algorithm_name(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[0x00, 0x80, 0]), 16);
        assert_eq!(bit_len(&[0x01]), 1);
        assert_eq!(bit_len(&[]), 0);
    }

    #[test]
    fn garbage_is_corrupt_not_panic() {
        for data in [
            &b""[..],
            &[0x30, 0x00],
            &[0x30, 0x03, 0x02, 0x01, 0x00],
            &[0x02, 0x01, 0x00],
        ] {
            assert!(from_pkcs8(data).is_err());
            assert!(from_pkcs1(data).is_err());
            assert!(from_sec1(data, None).is_err());
        }
    }
}
