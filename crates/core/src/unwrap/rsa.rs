//! RSA key transport: PKCS#1 v1.5 and RSAES-OAEP (RFC 3560 / RFC 8017 parameters).

use crate::cms::ber::{Reader, Tag};
use crate::error::{Error, Result};
use crate::oid;
use crate::provider::{HashAlg, RsaPrivateKey};
use der::asn1::ObjectIdentifier;
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

/// The padding a KeyTransRecipientInfo asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RsaPadding {
    Pkcs1v15,
    Oaep {
        hash: HashAlg,
        mgf1: HashAlg,
        label: Vec<u8>,
    },
}

impl RsaPadding {
    pub fn describe(&self) -> String {
        match self {
            RsaPadding::Pkcs1v15 => "RSA PKCS#1 v1.5".into(),
            RsaPadding::Oaep { hash, mgf1, label } => {
                let l = if label.is_empty() { "" } else { ", label" };
                format!("RSAES-OAEP {}/MGF1-{}{l}", hash.name(), mgf1.name())
            }
        }
    }
}

pub fn hash_from_oid(o: &ObjectIdentifier) -> Option<HashAlg> {
    Some(match *o {
        x if x == oid::SHA1 => HashAlg::Sha1,
        x if x == oid::SHA224 => HashAlg::Sha224,
        x if x == oid::SHA256 => HashAlg::Sha256,
        x if x == oid::SHA384 => HashAlg::Sha384,
        x if x == oid::SHA512 => HashAlg::Sha512,
        _ => return None,
    })
}

/// Reads the keyEncryptionAlgorithm of a KeyTransRecipientInfo.
pub fn padding(alg: &AlgorithmIdentifierOwned) -> Result<RsaPadding> {
    if alg.oid == oid::RSA_ENCRYPTION || alg.oid == oid::RSA_X509 {
        return Ok(RsaPadding::Pkcs1v15);
    }
    if alg.oid != oid::RSAES_OAEP {
        return Err(Error::UnsupportedAlgorithm {
            what: "key transport",
            oid: oid::name(&alg.oid),
        });
    }
    let bad = |detail: String| Error::BadParameters {
        what: "key transport",
        oid: oid::name(&alg.oid),
        detail,
    };
    let (mut hash, mut mgf1, mut label) = (HashAlg::Sha1, HashAlg::Sha1, Vec::new());
    let Some(params) = &alg.parameters else {
        return Ok(RsaPadding::Oaep { hash, mgf1, label });
    };
    let params = der::Encode::to_der(params).map_err(|e| bad(e.to_string()))?;
    // RSAES-OAEP-params ::= SEQUENCE { hashFunc [0] AlgorithmIdentifier DEFAULT sha1,
    //   maskGenFunc [1] AlgorithmIdentifier DEFAULT mgf1SHA1, pSourceFunc [2] DEFAULT pSpecifiedEmpty }
    // Some encoders write NULL instead of an empty SEQUENCE for "all defaults".
    let mut r = Reader::new(&params);
    let seq = r.header("RSAES-OAEP-params")?;
    if seq.tag.is_universal(5) {
        return Ok(RsaPadding::Oaep { hash, mgf1, label });
    }
    if !seq.tag.is_universal(16) {
        return Err(bad("parameters are not a SEQUENCE".into()));
    }
    let mut s = r.contents_reader(&seq);
    while !s.at_end_of(&seq) {
        let field = s.header("RSAES-OAEP-params field")?;
        let mut f = s.contents_reader(&field);
        let aseq = f.expect(Tag::SEQUENCE, "AlgorithmIdentifier")?;
        let mut a = f.contents_reader(&aseq);
        let o = a.read_oid("AlgorithmIdentifier.algorithm")?;
        match field.tag.number {
            0 => hash = hash_from_oid(&o).ok_or_else(|| bad(format!("hash {}", oid::name(&o))))?,
            1 => {
                if o != oid::MGF1 {
                    return Err(bad(format!("mask generation {}", oid::name(&o))));
                }
                let hseq = a.expect(Tag::SEQUENCE, "MGF1 hash")?;
                let mut h = a.contents_reader(&hseq);
                let ho = h.read_oid("MGF1 hash")?;
                mgf1 = hash_from_oid(&ho)
                    .ok_or_else(|| bad(format!("MGF1 hash {}", oid::name(&ho))))?;
            }
            2 => {
                if o != oid::P_SPECIFIED {
                    return Err(bad(format!("pSource {}", oid::name(&o))));
                }
                if !a.is_empty() {
                    let lh = a.header("pSpecified label")?;
                    label = crate::cms::ber::collect_string(&mut a, &lh, 4096)?;
                }
            }
            n => return Err(bad(format!("unknown field [{n}]"))),
        }
        s.skip_contents(&field, 0)?;
    }
    Ok(RsaPadding::Oaep { hash, mgf1, label })
}

/// Unwraps the CEK. Returns the padding actually used (it can differ from the declared one when
/// the MGF1 fallback was needed).
pub fn unwrap(
    key: &dyn RsaPrivateKey,
    padding: &RsaPadding,
    encrypted_key: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, RsaPadding)> {
    match padding {
        RsaPadding::Pkcs1v15 => Ok((key.decrypt_pkcs1v15(encrypted_key)?, padding.clone())),
        RsaPadding::Oaep { hash, mgf1, label } => {
            match key.decrypt_oaep(*hash, *mgf1, label, encrypted_key) {
                Ok(k) => Ok((k, padding.clone())),
                // A real-world encoder bug: declaring MGF1-SHA-1 (the default) while using MGF1 with
                // the OAEP hash. Try that before giving up.
                Err(first) if mgf1 != hash => {
                    let fixed = RsaPadding::Oaep {
                        hash: *hash,
                        mgf1: *hash,
                        label: label.clone(),
                    };
                    key.decrypt_oaep(*hash, *hash, label, encrypted_key)
                        .map(|k| (k, fixed))
                        .map_err(|_| first)
                }
                Err(e) => Err(e),
            }
        }
    }
}
