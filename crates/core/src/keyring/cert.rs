//! X.509 certificates: the fields recipient matching and reports need.
//!
//! Parsed with the tolerant BER reader so that old or slightly non-DER certificates still index;
//! the issuer is kept as its exact encoded bytes, which is what CMS copies into
//! issuerAndSerialNumber.

use super::ber::{BIT_STRING, INTEGER, OCTET_STRING, SEQUENCE, Tlv};
use super::key::{DSA, EC_PUBLIC_KEY, RSA_ENCRYPTION, algorithm_name, bit_len, curve_from_params};
use super::{CertInfo, sha1};
use crate::cms::recipient::normalize_serial;

const SKI_OID: &[u8] = &[0x55, 0x1d, 0x0e];

/// A certificate and the SHA-1 identifier of its public key (which links it to a private key).
#[derive(Debug, Clone)]
pub struct ParsedCert {
    pub info: CertInfo,
    pub key_id: Vec<u8>,
}

pub fn name_text(der: &[u8]) -> String {
    use der::Decode;
    match x509_cert::name::Name::from_der(der) {
        Ok(n) => {
            let s = n.to_string();
            if s.is_empty() {
                "<empty name>".into()
            } else {
                s
            }
        }
        Err(_) => "<unparsable name>".into(),
    }
}

pub fn parse_cert(data: &[u8]) -> Result<ParsedCert, String> {
    let t = Tlv::parse_exact(data).map_err(|e| e.0)?;
    let top = t.seq().map_err(|e| e.0)?;
    if top.len() != 3 || top[0].tag != SEQUENCE || top[2].tag != BIT_STRING {
        return Err("not an X.509 certificate".into());
    }
    let tbs = top[0].children().map_err(|e| e.0)?;
    let mut i = 0;
    if tbs.first().is_some_and(|x| x.tag == 0xa0) {
        i = 1;
    }
    let field = |k: usize| {
        tbs.get(i + k)
            .ok_or_else(|| "certificate too short".to_string())
    };
    let serial_t = field(0)?;
    if serial_t.tag != INTEGER {
        return Err("certificate serial is not an INTEGER".into());
    }
    let issuer_t = field(2)?;
    let validity = field(3)?.seq().map_err(|e| e.0)?;
    let subject_t = field(4)?;
    let spki_t = field(5)?;
    if issuer_t.tag != SEQUENCE || subject_t.tag != SEQUENCE || validity.len() != 2 {
        return Err("malformed certificate names or validity".into());
    }
    let (not_before, _) = parse_time(&validity[0])?;
    let (not_after, not_after_unix) = parse_time(&validity[1])?;

    let spki = spki_t.seq().map_err(|e| e.0)?;
    if spki.len() != 2 || spki[1].tag != BIT_STRING {
        return Err("malformed subjectPublicKeyInfo".into());
    }
    let bits = spki[1].octets().map_err(|e| e.0)?;
    if bits.first() != Some(&0) {
        return Err("subjectPublicKey with unused bits".into());
    }
    let key_id = sha1(&bits[1..]);
    let alg = spki[0].seq().map_err(|e| e.0)?;
    let alg_oid = alg.first().and_then(|o| o.oid().ok()).unwrap_or(&[]);
    let key_algorithm = match alg_oid {
        RSA_ENCRYPTION => Tlv::parse_exact(&bits[1..])
            .and_then(|k| k.seq())
            .ok()
            .and_then(|f| f.first().map(|n| format!("RSA-{}", bit_len(n.content))))
            .unwrap_or_else(|| "RSA".into()),
        EC_PUBLIC_KEY => match alg.get(1).and_then(|p| curve_from_params(p).ok()) {
            Some(c) => format!("EC {}", c.name()),
            None => "EC (other curve)".into(),
        },
        DSA => "DSA".into(),
        other => algorithm_name(other),
    };

    let mut ski = None;
    for x in &tbs[i + 6..] {
        if x.tag != 0xa3 {
            continue;
        }
        let exts = x.children().map_err(|e| e.0)?;
        let list = exts
            .first()
            .ok_or("empty extensions")?
            .seq()
            .map_err(|e| e.0)?;
        for ext in list {
            let parts = ext.seq().map_err(|e| e.0)?;
            if parts.first().and_then(|o| o.oid().ok()) != Some(SKI_OID) {
                continue;
            }
            if let Some(v) = parts.last().filter(|v| v.tag & !0x20 == OCTET_STRING) {
                let inner = v.octets().map_err(|e| e.0)?;
                if let Ok(k) = Tlv::parse_exact(&inner)
                    && k.tag == OCTET_STRING
                {
                    ski = Some(k.content.to_vec());
                }
            }
        }
    }

    let info = CertInfo {
        der: data.to_vec(),
        subject: name_text(subject_t.raw),
        issuer: name_text(issuer_t.raw),
        issuer_der: issuer_t.raw.to_vec(),
        serial: normalize_serial(serial_t.content),
        ski,
        not_before,
        not_after,
        not_after_unix,
        key_algorithm,
    };
    Ok(ParsedCert { info, key_id })
}

/// UTCTime / GeneralizedTime → (RFC 3339 UTC text, unix seconds).
fn parse_time(t: &Tlv<'_>) -> Result<(String, i64), String> {
    let s = std::str::from_utf8(t.content).map_err(|_| "time is not ASCII")?;
    let s = s.strip_suffix('Z').ok_or("time is not UTC")?;
    let (year, rest) = match t.tag {
        0x17 => {
            let yy: i64 = s
                .get(..2)
                .and_then(|v| v.parse().ok())
                .ok_or("bad UTCTime")?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        0x18 => (
            s.get(..4)
                .and_then(|v| v.parse().ok())
                .ok_or("bad GeneralizedTime")?,
            &s[4..],
        ),
        _ => return Err("validity is not a time".into()),
    };
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        rest.get(r)
            .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| "bad time".to_string())
    };
    let (mo, d, h, mi) = (num(0..2)?, num(2..4)?, num(4..6)?, num(6..8)?);
    let sec = if rest.len() >= 10 { num(8..10)? } else { 0 };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err("time out of range".into());
    }
    let unix = days_from_civil(year, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    Ok((
        format!("{year:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}Z"),
        unix,
    ))
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(2024, 7, 3) * 86400, 1_719_964_800);
    }

    #[test]
    fn times() {
        let utc = super::super::ber::der(0x17, b"240703120000Z");
        let (s, u) = parse_time(&Tlv::parse_exact(&utc).unwrap()).unwrap();
        assert_eq!(s, "2024-07-03T12:00:00Z");
        assert_eq!(u, 1_720_008_000);
        let gt = super::super::ber::der(0x18, b"20491231235959Z");
        assert_eq!(
            parse_time(&Tlv::parse_exact(&gt).unwrap()).unwrap().0,
            "2049-12-31T23:59:59Z"
        );
        let bad = super::super::ber::der(0x17, b"24");
        assert!(parse_time(&Tlv::parse_exact(&bad).unwrap()).is_err());
    }

    #[test]
    fn garbage_cert() {
        assert!(parse_cert(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_err());
        assert!(parse_cert(&[]).is_err());
    }
}
