//! From a contentEncryptionAlgorithm AlgorithmIdentifier to a cipher with its parameters.

use super::super::cms::ber::{self, Reader, Tag};
use crate::error::{Error, Result};
use crate::oid;
use crate::provider::BlockCipher;
use der::asn1::ObjectIdentifier;

/// A content cipher with everything its parameters said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentCipher {
    Cbc {
        cipher: BlockCipher,
        iv: Vec<u8>,
        /// The key length the OID implies, if it implies one. AES OIDs name a length, but a real
        /// encoder bug sends e.g. a 32-byte key under the AES-128 OID: the CEK length wins.
        nominal_key_len: Option<usize>,
        oid: ObjectIdentifier,
    },
    Gcm {
        nonce: Vec<u8>,
        tag_len: usize,
        nominal_key_len: usize,
        oid: ObjectIdentifier,
    },
}

impl ContentCipher {
    pub fn oid(&self) -> &ObjectIdentifier {
        match self {
            ContentCipher::Cbc { oid, .. } | ContentCipher::Gcm { oid, .. } => oid,
        }
    }

    /// Which key lengths the CEK may have for this cipher.
    pub fn accepts_key_len(&self, len: usize) -> bool {
        match self {
            ContentCipher::Cbc { cipher, .. } => match cipher {
                BlockCipher::Des => len == 8,
                BlockCipher::DesEde3 => len == 24,
                BlockCipher::Rc2 { .. } => (1..=128).contains(&len),
                BlockCipher::Cast5 => (5..=16).contains(&len),
                BlockCipher::Aes | BlockCipher::Camellia => matches!(len, 16 | 24 | 32),
                BlockCipher::Seed => len == 16,
            },
            ContentCipher::Gcm { .. } => matches!(len, 16 | 24 | 32),
        }
    }

    /// A human name including the actual key length, e.g. "AES-256-CBC", "RC2-CBC/40", "CAST5-CBC/128".
    pub fn describe(&self, key_len: usize) -> String {
        match self {
            ContentCipher::Cbc { cipher, .. } => match cipher {
                BlockCipher::Des => "DES-CBC".into(),
                BlockCipher::DesEde3 => "DES-EDE3-CBC".into(),
                BlockCipher::Rc2 { effective_bits } => format!("RC2-CBC/{effective_bits}"),
                BlockCipher::Cast5 => format!("CAST5-CBC/{}", key_len * 8),
                BlockCipher::Aes => format!("AES-{}-CBC", key_len * 8),
                BlockCipher::Camellia => format!("CAMELLIA-{}-CBC", key_len * 8),
                BlockCipher::Seed => "SEED-CBC".into(),
            },
            ContentCipher::Gcm { .. } => format!("AES-{}-GCM", key_len * 8),
        }
    }
}

/// RC2 parameter version → effective key bits (RFC 2268 §6: 160 = 40, 120 = 64, 58 = 128; a
/// version of 256 or more is the bit count itself).
fn rc2_effective_bits(version: i64) -> Option<u16> {
    match version {
        160 => Some(40),
        120 => Some(64),
        58 => Some(128),
        v if (256..=1024).contains(&v) => u16::try_from(v).ok(),
        _ => None,
    }
}

/// Parses the DER AlgorithmIdentifier. `cek_len` is unknown at this point; RC2 with an
/// unrecognised version takes its effective length from the CEK later (see [`resolve_rc2`]).
pub fn parse(alg_der: &[u8], offset: u64) -> Result<ContentCipher> {
    let mut r = Reader::with_base(alg_der, offset);
    let seq = r.expect(Tag::SEQUENCE, "contentEncryptionAlgorithm")?;
    let mut s = r.contents_reader(&seq);
    let alg = s.read_oid("contentEncryptionAlgorithm.algorithm")?;
    let params_at = s.offset();
    let params = if s.at_end_of(&seq) {
        None
    } else {
        Some(s.read_raw("contentEncryptionAlgorithm.parameters")?)
    };
    let bad = |detail: &str| Error::BadParameters {
        what: "content cipher",
        oid: oid::name(&alg),
        detail: format!("{detail} (offset {params_at})"),
    };
    let octets = |p: Option<&[u8]>| -> Result<Vec<u8>> {
        let p = p.ok_or_else(|| bad("parameters missing"))?;
        let mut pr = Reader::with_base(p, params_at);
        let h = pr.header("IV")?;
        if !h.tag.is_universal(4) {
            return Err(bad("IV is not an OCTET STRING"));
        }
        ber::collect_string(&mut pr, &h, 64)
    };
    let cbc = |cipher: BlockCipher, iv: Vec<u8>, nominal: Option<usize>| -> Result<ContentCipher> {
        if iv.len() != cipher.block_len() {
            return Err(bad(&format!(
                "IV of {} bytes, block is {}",
                iv.len(),
                cipher.block_len()
            )));
        }
        Ok(ContentCipher::Cbc {
            cipher,
            iv,
            nominal_key_len: nominal,
            oid: alg,
        })
    };

    if alg == oid::DES_CBC {
        cbc(BlockCipher::Des, octets(params)?, Some(8))
    } else if alg == oid::DES_EDE3_CBC {
        cbc(BlockCipher::DesEde3, octets(params)?, Some(24))
    } else if alg == oid::AES128_CBC || alg == oid::AES192_CBC || alg == oid::AES256_CBC {
        let n = if alg == oid::AES128_CBC {
            16
        } else if alg == oid::AES192_CBC {
            24
        } else {
            32
        };
        cbc(BlockCipher::Aes, octets(params)?, Some(n))
    } else if alg == oid::CAMELLIA128_CBC
        || alg == oid::CAMELLIA192_CBC
        || alg == oid::CAMELLIA256_CBC
    {
        // CamelliaCBCParameter ::= CamelliaIV ::= OCTET STRING (SIZE(16)) (RFC 3657).
        let n = if alg == oid::CAMELLIA128_CBC {
            16
        } else if alg == oid::CAMELLIA192_CBC {
            24
        } else {
            32
        };
        cbc(BlockCipher::Camellia, octets(params)?, Some(n))
    } else if alg == oid::SEED_CBC {
        // SeedCBCParameter ::= OCTET STRING (SIZE(16)), the IV (RFC 4010).
        cbc(BlockCipher::Seed, octets(params)?, Some(16))
    } else if alg == oid::RC2_CBC {
        // RC2-CBCParameter ::= SEQUENCE { rc2ParameterVersion INTEGER OPTIONAL, iv OCTET STRING }
        // Very old encoders put the bare IV OCTET STRING here.
        let p = params.ok_or_else(|| bad("parameters missing"))?;
        let mut pr = Reader::with_base(p, params_at);
        let h = pr.header("RC2-CBCParameter")?;
        let (version, iv) = if h.tag.is_universal(4) {
            (None, ber::collect_string(&mut pr, &h, 64)?)
        } else if h.tag.is_universal(16) {
            let mut ps = pr.contents_reader(&h);
            let version = if ps.peek_tag().is_some_and(|t| t.is_universal(2)) {
                Some(ps.read_small_int("rc2ParameterVersion")?)
            } else {
                None
            };
            let ivh = ps.header("RC2 IV")?;
            (version, ber::collect_string(&mut ps, &ivh, 64)?)
        } else {
            return Err(bad("neither SEQUENCE nor OCTET STRING"));
        };
        // 0 marks "unknown: take it from the CEK length" (resolved after unwrapping).
        let bits = match version {
            None => 32,
            Some(v) => rc2_effective_bits(v).unwrap_or(0),
        };
        cbc(
            BlockCipher::Rc2 {
                effective_bits: bits,
            },
            iv,
            None,
        )
    } else if alg == oid::CAST5_CBC {
        // CAST5CBCParameters ::= SEQUENCE { iv OCTET STRING DEFAULT 0, keyLength INTEGER } (RFC 2984).
        // OpenSSL writes only the IV OCTET STRING; the key length then comes from the CEK.
        let p = params.ok_or_else(|| bad("parameters missing"))?;
        let mut pr = Reader::with_base(p, params_at);
        let h = pr.header("CAST5CBCParameters")?;
        if h.tag.is_universal(4) {
            let iv = ber::collect_string(&mut pr, &h, 64)?;
            return cbc(BlockCipher::Cast5, iv, None);
        }
        if !h.tag.is_universal(16) {
            return Err(bad("neither SEQUENCE nor OCTET STRING"));
        }
        let mut ps = pr.contents_reader(&h);
        let iv = if ps.peek_tag().is_some_and(|t| t.is_universal(4)) {
            let ivh = ps.header("CAST5 IV")?;
            ber::collect_string(&mut ps, &ivh, 64)?
        } else {
            vec![0; 8]
        };
        let bits = ps.read_small_int("CAST5 keyLength")?;
        if !(40..=128).contains(&bits) || bits % 8 != 0 {
            return Err(bad(&format!("keyLength {bits}")));
        }
        cbc(BlockCipher::Cast5, iv, Some((bits / 8) as usize))
    } else if alg == oid::AES128_GCM || alg == oid::AES192_GCM || alg == oid::AES256_GCM {
        let p = params.ok_or_else(|| bad("parameters missing"))?;
        let (nonce, tag_len) = super::gcm::parse_gcm_parameters(p)?;
        let n = if alg == oid::AES128_GCM {
            16
        } else if alg == oid::AES192_GCM {
            24
        } else {
            32
        };
        Ok(ContentCipher::Gcm {
            nonce,
            tag_len,
            nominal_key_len: n,
            oid: alg,
        })
    } else {
        Err(Error::UnsupportedAlgorithm {
            what: "content cipher",
            oid: oid::name(&alg),
        })
    }
}

/// Fills in an RC2 effective key length the parameters did not give (an unknown version
/// number, e.g. the 0xC4 seen in 1997 Netscape mail): the transported key length decides.
pub fn resolve_rc2(cipher: &mut ContentCipher, cek_len: usize) {
    if let ContentCipher::Cbc {
        cipher: BlockCipher::Rc2 { effective_bits },
        ..
    } = cipher
        && *effective_bits == 0
    {
        *effective_bits = u16::try_from(cek_len * 8).unwrap_or(1024).min(1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alg(oid_der: &[u8], params: &[u8]) -> Vec<u8> {
        let mut body = oid_der.to_vec();
        body.extend_from_slice(params);
        let mut out = vec![0x30];
        ber::push_len(&mut out, body.len());
        out.extend_from_slice(&body);
        out
    }

    const AES128_OID: [u8; 11] = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02,
    ];
    const RC2_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x02];

    #[test]
    fn aes_cbc_with_iv() {
        let mut p = vec![0x04, 16];
        p.extend_from_slice(&[7u8; 16]);
        let c = parse(&alg(&AES128_OID, &p), 0).unwrap();
        assert!(matches!(
            c,
            ContentCipher::Cbc {
                cipher: BlockCipher::Aes,
                nominal_key_len: Some(16),
                ..
            }
        ));
        assert!(c.accepts_key_len(32), "the CEK length wins over the OID");
    }

    #[test]
    fn short_iv_is_rejected_with_the_oid_named() {
        let p = [0x04, 8, 0, 0, 0, 0, 0, 0, 0, 0];
        let e = parse(&alg(&AES128_OID, &p), 0).unwrap_err();
        assert!(e.to_string().contains("2.16.840.1.101.3.4.1.2"), "{e}");
    }

    #[test]
    fn rc2_versions() {
        for (version, bits) in [
            (&[0x00u8, 0xa0][..], 40u16),
            (&[0x78][..], 64),
            (&[0x3a][..], 128),
        ] {
            let mut seq = vec![0x02, version.len() as u8];
            seq.extend_from_slice(version);
            seq.extend_from_slice(&[0x04, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
            let mut p = vec![0x30, seq.len() as u8];
            p.extend_from_slice(&seq);
            let c = parse(&alg(&RC2_OID, &p), 0).unwrap();
            assert!(
                matches!(c, ContentCipher::Cbc { cipher: BlockCipher::Rc2 { effective_bits }, .. } if effective_bits == bits)
            );
        }
        // The odd single-byte 0xC4 of 1997 Netscape mail: resolved from the key length.
        let p = [
            0x30, 0x0d, 0x02, 0x01, 0xc4, 0x04, 8, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let mut c = parse(&alg(&RC2_OID, &p), 0).unwrap();
        resolve_rc2(&mut c, 5);
        assert!(matches!(
            c,
            ContentCipher::Cbc {
                cipher: BlockCipher::Rc2 { effective_bits: 40 },
                ..
            }
        ));
    }

    #[test]
    fn camellia_and_seed_take_a_16_byte_iv_and_name_their_key_length() {
        // id-camellia256-cbc 1.2.392.200011.61.1.1.1.4 and id-seedCBC 1.2.410.200004.1.4.
        let camellia = [
            0x06, 0x0b, 0x2a, 0x83, 0x08, 0x8c, 0x9a, 0x4b, 0x3d, 0x01, 0x01, 0x01, 0x04,
        ];
        let seed = [0x06, 0x08, 0x2a, 0x83, 0x1a, 0x8c, 0x9a, 0x44, 0x01, 0x04];
        let mut iv = vec![0x04, 16];
        iv.extend_from_slice(&[9u8; 16]);
        let c = parse(&alg(&camellia, &iv), 0).unwrap();
        assert_eq!(c.oid().to_string(), "1.2.392.200011.61.1.1.1.4");
        assert_eq!(c.describe(32), "CAMELLIA-256-CBC");
        assert!(c.accepts_key_len(24) && !c.accepts_key_len(20));
        let s = parse(&alg(&seed, &iv), 0).unwrap();
        assert_eq!(s.oid().to_string(), "1.2.410.200004.1.4");
        assert_eq!(s.describe(16), "SEED-CBC");
        assert!(s.accepts_key_len(16) && !s.accepts_key_len(32));
        let short = [0x04, 8, 0, 0, 0, 0, 0, 0, 0, 0];
        for oid in [&camellia[..], &seed[..]] {
            let e = parse(&alg(oid, &short), 0).unwrap_err();
            assert!(e.to_string().contains("IV of 8 bytes, block is 16"), "{e}");
        }
    }

    #[test]
    fn unknown_oid_is_named() {
        let e = parse(&alg(&[0x06, 0x03, 0x2a, 0x03, 0x04], &[]), 0).unwrap_err();
        assert!(matches!(e, Error::UnsupportedAlgorithm { .. }));
        assert!(e.to_string().contains("1.2.3.4"));
    }
}
