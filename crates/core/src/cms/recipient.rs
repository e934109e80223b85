//! Recipient identifiers and matching them against the key ring.

use std::fmt;

/// How a RecipientInfo names the certificate whose key can open it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecipientId {
    /// issuerAndSerialNumber: the DER of the issuer Name and the serial number (big-endian,
    /// leading zero bytes removed so that encodings compare equal).
    IssuerSerial {
        issuer_der: Vec<u8>,
        serial: Vec<u8>,
    },
    /// subjectKeyIdentifier (or rKeyId in key agreement).
    SubjectKeyId(Vec<u8>),
}

/// Strips leading zero bytes so that `00 9f` and `9f` compare equal (a positive INTEGER may carry
/// a sign byte).
pub fn normalize_serial(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// Upper-case hex, as serials and key identifiers are shown.
pub fn hex(bytes: &[u8]) -> String {
    hex_with(bytes, b"0123456789ABCDEF")
}

/// Lower-case hex, as digests are shown (`sha256sum`'s form).
pub fn hex_lower(bytes: &[u8]) -> String {
    hex_with(bytes, b"0123456789abcdef")
}

// By table: it runs on two digests and a serial of every message, where `format!` per byte
// showed in the profile.
fn hex_with(bytes: &[u8], digits: &[u8; 16]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        s.push(char::from(digits[usize::from(b >> 4)]));
        s.push(char::from(digits[usize::from(b & 15)]));
    }
    s
}

impl RecipientId {
    /// The issuer as RFC 4514 text, when it parses.
    pub fn issuer_text(&self) -> Option<String> {
        use der::Decode;
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        // Formatting a Name looks every attribute type up in const-oid's table; a mailbox names
        // the same few issuers in every message (trace header, report), so the text is kept.
        // Bounded: past this many issuers, texts are made afresh.
        const KEEP: usize = 4096;
        static TEXTS: OnceLock<Mutex<HashMap<Vec<u8>, Option<String>>>> = OnceLock::new();
        match self {
            RecipientId::IssuerSerial { issuer_der, .. } => {
                let texts = TEXTS.get_or_init(Default::default);
                if let Some(t) = texts.lock().ok().and_then(|m| m.get(issuer_der).cloned()) {
                    return t;
                }
                let text = x509_cert::name::Name::from_der(issuer_der)
                    .ok()
                    .map(|n| n.to_string());
                if let Ok(mut m) = texts.lock()
                    && m.len() < KEEP
                {
                    m.insert(issuer_der.clone(), text.clone());
                }
                text
            }
            RecipientId::SubjectKeyId(_) => None,
        }
    }
}

impl fmt::Display for RecipientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipientId::IssuerSerial { serial, .. } => {
                let issuer = self
                    .issuer_text()
                    .unwrap_or_else(|| "<unparsable issuer>".into());
                write!(f, "issuer \"{issuer}\", serial 0x{}", hex(serial))
            }
            RecipientId::SubjectKeyId(ski) => write!(f, "subjectKeyIdentifier {}", hex(ski)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_spells_every_byte_as_format_does() {
        let all: Vec<u8> = (0..=255).collect();
        let upper: String = all.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex(&all), upper);
        assert_eq!(hex_lower(&all), upper.to_lowercase());
        assert_eq!(hex(&[]), "");
        assert_eq!(hex_lower(&[0x0a, 0xf0]), "0af0");
    }
}
