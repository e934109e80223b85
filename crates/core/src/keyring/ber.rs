//! A small BER/DER reader and DER writer for key containers.
//!
//! NSS and BouncyCastle write PKCS#12 files in BER (indefinite lengths, constructed OCTET
//! STRINGs), which strict DER decoders reject. This reader accepts both, never allocates from a
//! length field (every length is checked against the bytes actually present) and limits nesting.

use zeroize::Zeroizing;

pub const SEQUENCE: u8 = 0x30;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;

const MAX_DEPTH: usize = 48;

/// Why a structure could not be read (kept short: it ends up in a `KeyProblem::Corrupt` detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BerError(pub String);

impl BerError {
    pub fn new(s: impl Into<String>) -> Self {
        BerError(s.into())
    }
}

pub type BerResult<T> = Result<T, BerError>;

/// One element: its identifier octet and its contents (for indefinite lengths, without the
/// end-of-contents octets).
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    /// The whole encoding, header included.
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// Parses exactly one element that must fill `input` (trailing bytes are an error).
    pub fn parse_exact(input: &'a [u8]) -> BerResult<Tlv<'a>> {
        let (t, rest) = read_tlv(input, 0)?;
        if !rest.is_empty() {
            return Err(BerError::new(format!("{} trailing bytes", rest.len())));
        }
        Ok(t)
    }

    /// Parses the first element of `input`, returning it and the bytes after it.
    pub fn parse_prefix(input: &'a [u8]) -> BerResult<(Tlv<'a>, &'a [u8])> {
        read_tlv(input, 0)
    }

    /// The child elements of a constructed element.
    pub fn children(&self) -> BerResult<Vec<Tlv<'a>>> {
        self.children_at(0)
    }

    fn children_at(&self, depth: usize) -> BerResult<Vec<Tlv<'a>>> {
        if !self.constructed() {
            return Err(BerError::new(format!(
                "tag 0x{:02x} is not constructed",
                self.tag
            )));
        }
        let mut out = Vec::new();
        let mut rest = self.content;
        while !rest.is_empty() {
            let (t, r) = read_tlv(rest, depth + 1)?;
            out.push(t);
            rest = r;
        }
        Ok(out)
    }

    /// The children, checking that this is a SEQUENCE.
    pub fn seq(&self) -> BerResult<Vec<Tlv<'a>>> {
        self.expect(SEQUENCE)?;
        self.children()
    }

    pub fn expect(&self, tag: u8) -> BerResult<()> {
        if self.tag != tag {
            return Err(BerError::new(format!(
                "expected tag 0x{tag:02x}, found 0x{:02x}",
                self.tag
            )));
        }
        Ok(())
    }

    /// The value of an OCTET STRING (or an implicitly tagged one), concatenating the segments of
    /// a constructed encoding.
    pub fn octets(&self) -> BerResult<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.content.len()));
        self.octets_into(&mut out, 0)?;
        Ok(out)
    }

    fn octets_into(&self, out: &mut Vec<u8>, depth: usize) -> BerResult<()> {
        if depth > MAX_DEPTH {
            return Err(BerError::new("nesting too deep"));
        }
        if self.constructed() {
            for c in self.children_at(depth)? {
                if c.tag & !0x20 != OCTET_STRING {
                    return Err(BerError::new(
                        "constructed string segment is not an OCTET STRING",
                    ));
                }
                c.octets_into(out, depth + 1)?;
            }
        } else {
            out.extend_from_slice(self.content);
        }
        Ok(())
    }

    /// The OID's content octets.
    pub fn oid(&self) -> BerResult<&'a [u8]> {
        self.expect(OID)?;
        if self.content.is_empty() {
            return Err(BerError::new("empty OID"));
        }
        Ok(self.content)
    }

    /// A non-negative INTEGER that fits in a u64.
    pub fn small_uint(&self) -> BerResult<u64> {
        self.expect(INTEGER)?;
        let c = self.content;
        if c.is_empty() || c[0] & 0x80 != 0 {
            return Err(BerError::new("negative or empty INTEGER"));
        }
        let c = strip_zeros(c);
        if c.len() > 8 {
            return Err(BerError::new("INTEGER too large"));
        }
        Ok(c.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)))
    }

    /// Re-encodes this element in DER form (definite minimal lengths, primitive strings).
    pub fn to_der(self) -> BerResult<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.raw.len() + 8));
        self.der_into(&mut out, 0)?;
        Ok(out)
    }

    fn der_into(&self, out: &mut Vec<u8>, depth: usize) -> BerResult<()> {
        if depth > MAX_DEPTH {
            return Err(BerError::new("nesting too deep"));
        }
        if !self.constructed() {
            push_header(out, self.tag, self.content.len());
            out.extend_from_slice(self.content);
        } else if self.tag == (OCTET_STRING | 0x20) {
            let v = self.octets()?;
            push_header(out, OCTET_STRING, v.len());
            out.extend_from_slice(&v);
        } else {
            let mut inner = Zeroizing::new(Vec::with_capacity(self.content.len()));
            for c in self.children_at(depth)? {
                c.der_into(&mut inner, depth + 1)?;
            }
            push_header(out, self.tag, inner.len());
            out.extend_from_slice(&inner);
        }
        Ok(())
    }
}

pub fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

/// One element at the start of `input`, with the crate's one BER reader ([`crate::cms::ber`]).
fn read_tlv(input: &[u8], depth: usize) -> BerResult<(Tlv<'_>, &[u8])> {
    if depth > MAX_DEPTH {
        return Err(BerError::new("nesting too deep"));
    }
    let tag = *input
        .first()
        .ok_or_else(|| BerError::new("unexpected end of data"))?;
    if tag & 0x1f == 0x1f {
        return Err(BerError::new("multi-byte tags are not used in key files"));
    }
    let mut r = crate::cms::ber::Reader::new(input);
    let short = |e: crate::Error| BerError::new(e.to_string());
    let h = r.header("element").map_err(short)?;
    let raw = r.finish_raw(&h, depth).map_err(short)?;
    let content_end = match h.len {
        Some(l) => h.content_start + l,
        None => raw.len() - 2,
    };
    let content = input.get(h.content_start..content_end).unwrap_or(&[]);
    Ok((Tlv { tag, content, raw }, &input[raw.len()..]))
}

/// Appends a DER header.
pub fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Encodes one element in DER.
pub fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    push_header(&mut out, tag, content.len());
    out.extend_from_slice(content);
    out
}

/// Encodes one element whose content is secret.
pub fn der_secret(tag: u8, content: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(content.len() + 6));
    push_header(&mut out, tag, content.len());
    out.extend_from_slice(content);
    out
}

/// Dotted text of OID content octets (for messages).
pub fn oid_text(content: &[u8]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut v: u64 = 0;
    for (i, &b) in content.iter().enumerate() {
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let (a, b2) = if v < 40 {
                    (0, v)
                } else if v < 80 {
                    (1, v - 40)
                } else {
                    (2, v - 80)
                };
                parts.push(a.to_string());
                parts.push(b2.to_string());
            } else {
                parts.push(v.to_string());
            }
            v = 0;
        } else if i == content.len() - 1 || v > (u64::MAX >> 8) {
            return format!("<bad OID {}>", crate::cms::recipient::hex(content));
        }
    }
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_and_constructed_strings() {
        // SEQUENCE (indef) { OCTET STRING (constructed, indef) { 04 01 aa, 04 02 bb cc }, INTEGER 5 }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x01, 0xaa, 0x04, 0x02, 0xbb, 0xcc, 0x00, 0x00, 0x02,
            0x01, 0x05, 0x00, 0x00,
        ];
        let t = Tlv::parse_exact(&ber).unwrap();
        let c = t.seq().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(&c[0].octets().unwrap()[..], &[0xaa, 0xbb, 0xcc]);
        assert_eq!(c[1].small_uint().unwrap(), 5);
        assert_eq!(
            &t.to_der().unwrap()[..],
            &[0x30, 0x08, 0x04, 0x03, 0xaa, 0xbb, 0xcc, 0x02, 0x01, 0x05]
        );
    }

    #[test]
    fn hostile_lengths_fail_cleanly() {
        assert!(Tlv::parse_exact(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Tlv::parse_exact(&[0x30, 0x80, 0x30, 0x80]).is_err());
        assert!(Tlv::parse_exact(&[0x04, 0x80, 0x00, 0x00]).is_err());
        let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 1000)
            .flatten()
            .collect();
        assert!(Tlv::parse_exact(&deep).is_err());
        assert!(Tlv::parse_exact(&[]).is_err());
    }

    #[test]
    fn oid_text_works() {
        assert_eq!(
            oid_text(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]),
            "1.2.840.113549.1.1.1"
        );
    }

    #[test]
    fn long_header() {
        let v = vec![0u8; 300];
        let d = der(OCTET_STRING, &v);
        assert_eq!(&d[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(&Tlv::parse_exact(&d).unwrap().octets().unwrap()[..], &v[..]);
    }
}
