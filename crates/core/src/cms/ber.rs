//! A small BER reader over a byte slice.
//!
//! Why hand-written: the `der` crate (and `cms` on top of it) decodes a whole value into owned
//! types, so a 200 MB encryptedContent would be copied into memory before the first byte is
//! decrypted, and the reassembly of constructed OCTET STRING chunks (as NSS, Outlook and
//! `openssl -stream` write them) would be a second copy. This reader walks the outer framing
//! only, hands out borrowed slices, and lets the content be decrypted chunk by chunk. The small
//! inner structures (RecipientInfo, AlgorithmIdentifier) are normalised to DER with [`to_der`] and
//! decoded with the RustCrypto types.
//!
//! Every length is checked against the bytes actually present before anything is sliced or
//! allocated, and nesting is bounded, so hostile input yields an [`Error`], never a panic.

use crate::error::{Error, Result};

/// Deepest nesting of constructed encodings we follow (indefinite-length chunks inside chunks).
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Universal,
    Application,
    Context,
    Private,
}

/// An identifier octet (plus high tag number form) as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub class: Class,
    pub constructed: bool,
    pub number: u32,
}

impl Tag {
    pub const SEQUENCE: Tag = Tag {
        class: Class::Universal,
        constructed: true,
        number: 16,
    };
    pub const SET: Tag = Tag {
        class: Class::Universal,
        constructed: true,
        number: 17,
    };
    pub const OID: Tag = Tag {
        class: Class::Universal,
        constructed: false,
        number: 6,
    };
    pub const INTEGER: Tag = Tag {
        class: Class::Universal,
        constructed: false,
        number: 2,
    };

    pub fn is_universal(&self, number: u32) -> bool {
        self.class == Class::Universal && self.number == number
    }
    pub fn is_context(&self, number: u32) -> bool {
        self.class == Class::Context && self.number == number
    }
    pub fn is_eoc(&self) -> bool {
        self.class == Class::Universal && !self.constructed && self.number == 0
    }
}

/// A TLV header: the tag, where it starts, where its contents start, and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub tag: Tag,
    /// Offset of the identifier octet.
    pub start: usize,
    /// Offset of the first content octet.
    pub content_start: usize,
    /// `None` for the indefinite form (contents end at a matching end-of-contents).
    pub len: Option<usize>,
}

/// A cursor over BER bytes. `base` is added to every offset in errors, so that an error inside a
/// nested blob still names the offset in the outer input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    /// `data` is only a prefix of the value (see [`Reader::prefix`]).
    partial: bool,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader {
            data,
            pos: 0,
            base: 0,
            partial: false,
        }
    }

    pub fn with_base(data: &'a [u8], base: u64) -> Self {
        Reader {
            data,
            pos: 0,
            base,
            partial: false,
        }
    }

    /// A reader over the first bytes of a longer value (a large message being streamed): a
    /// length that runs past `data` is accepted in a header, but anything read from beyond
    /// `data` is [`Error::Truncated`], so a caller can retry with a longer prefix.
    pub fn prefix(data: &'a [u8]) -> Self {
        Reader {
            data,
            pos: 0,
            base: 0,
            partial: true,
        }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn truncated(&self, what: &'static str) -> Error {
        Error::Truncated {
            what,
            offset: self.offset(),
        }
    }

    fn malformed(&self, what: &'static str, detail: impl Into<String>) -> Error {
        Error::Asn1 {
            what,
            offset: self.offset(),
            detail: detail.into(),
        }
    }

    fn byte(&mut self, what: &'static str) -> Result<u8> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads a tag and length. The contents are not consumed.
    pub fn header(&mut self, what: &'static str) -> Result<Header> {
        let start = self.pos;
        let id = self.byte(what)?;
        let class = match id >> 6 {
            0 => Class::Universal,
            1 => Class::Application,
            2 => Class::Context,
            _ => Class::Private,
        };
        let constructed = id & 0x20 != 0;
        let mut number = u32::from(id & 0x1f);
        if number == 0x1f {
            number = 0;
            for i in 0.. {
                let b = self.byte(what)?;
                if i >= 4 {
                    return Err(self.malformed(what, "tag number too large"));
                }
                number = (number << 7) | u32::from(b & 0x7f);
                if b & 0x80 == 0 {
                    break;
                }
            }
            // X.690 8.1.2.2: numbers up to 30 take the one-octet form. A long spelling of one
            // would make a universal string type (1F 0C for UTF8String) that normalisation
            // re-tags, and no encoder writes it.
            if number < 0x1f {
                return Err(self.malformed(
                    what,
                    format!("tag number {number} in the high-tag-number form"),
                ));
            }
        }
        let first = self.byte(what)?;
        let len = if first & 0x80 == 0 {
            Some(usize::from(first))
        } else if first == 0x80 {
            if !constructed {
                return Err(self.malformed(what, "indefinite length on a primitive encoding"));
            }
            None
        } else {
            let n = usize::from(first & 0x7f);
            if n > 8 || first == 0xff {
                return Err(self.malformed(what, format!("length of {n} octets")));
            }
            let mut v: u64 = 0;
            for _ in 0..n {
                v = (v << 8) | u64::from(self.byte(what)?);
            }
            Some(usize::try_from(v).map_err(|_| self.malformed(what, "length overflows"))?)
        };
        let h = Header {
            tag: Tag {
                class,
                constructed,
                number,
            },
            start,
            content_start: self.pos,
            len,
        };
        if let Some(l) = len
            && l > self.remaining()
            && !self.partial
        {
            return Err(Error::Truncated {
                what,
                offset: self.base + start as u64,
            });
        }
        Ok(h)
    }

    /// Reads a header and checks its tag.
    pub fn expect(&mut self, tag: Tag, what: &'static str) -> Result<Header> {
        let at = self.offset();
        let h = self.header(what)?;
        if h.tag.class != tag.class || h.tag.number != tag.number {
            return Err(Error::Asn1 {
                what,
                offset: at,
                detail: format!(
                    "expected tag {:?} {}, found {:?} {}",
                    tag.class, tag.number, h.tag.class, h.tag.number
                ),
            });
        }
        Ok(h)
    }

    /// Peeks the next tag without consuming anything. `None` at the end of input.
    pub fn peek_tag(&self) -> Option<Tag> {
        let mut r = self.clone();
        r.header("peek").ok().map(|h| h.tag)
    }

    /// After an indefinite-length header: true (and consumed) if an end-of-contents follows.
    pub fn at_eoc(&mut self) -> bool {
        if self.data.get(self.pos..self.pos + 2) == Some(&[0, 0]) {
            self.pos += 2;
            true
        } else {
            false
        }
    }

    /// Consumes the contents of `h` (and its end-of-contents for the indefinite form) and returns
    /// the raw bytes of the whole TLV, as encoded.
    pub fn finish_raw(&mut self, h: &Header, depth: usize) -> Result<&'a [u8]> {
        self.skip_contents(h, depth)?;
        self.data
            .get(h.start..self.pos)
            .ok_or_else(|| self.truncated("value"))
    }

    /// Skips the contents of `h`.
    pub fn skip_contents(&mut self, h: &Header, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::Limit {
                what: "BER nesting depth",
                limit: MAX_DEPTH as u64,
            });
        }
        match h.len {
            Some(l) => {
                self.pos = h.content_start.saturating_add(l);
                Ok(())
            }
            None => loop {
                if self.at_eoc() {
                    return Ok(());
                }
                if self.is_empty() {
                    return Err(self.truncated("indefinite-length contents"));
                }
                let inner = self.header("indefinite-length contents")?;
                self.skip_contents(&inner, depth + 1)?;
            },
        }
    }

    /// Reads a whole TLV and returns its raw bytes.
    pub fn read_raw(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let h = self.header(what)?;
        self.finish_raw(&h, 0)
    }

    /// Contents of a primitive TLV (definite length by construction).
    pub fn primitive_contents(&mut self, h: &Header, what: &'static str) -> Result<&'a [u8]> {
        match h.len {
            Some(l) if !h.tag.constructed => {
                let s = self
                    .data
                    .get(h.content_start..h.content_start.saturating_add(l))
                    .ok_or_else(|| self.truncated(what))?;
                self.pos = h.content_start.saturating_add(l);
                Ok(s)
            }
            _ => Err(self.malformed(what, "expected a primitive encoding")),
        }
    }

    /// Reads an OBJECT IDENTIFIER.
    pub fn read_oid(&mut self, what: &'static str) -> Result<der::asn1::ObjectIdentifier> {
        let at = self.offset();
        let h = self.expect(Tag::OID, what)?;
        let bytes = self.primitive_contents(&h, what)?;
        der::asn1::ObjectIdentifier::from_bytes(bytes).map_err(|e| Error::Asn1 {
            what,
            offset: at,
            detail: e.to_string(),
        })
    }

    /// Reads a small INTEGER as i64.
    pub fn read_small_int(&mut self, what: &'static str) -> Result<i64> {
        let h = self.expect(Tag::INTEGER, what)?;
        let bytes = self.primitive_contents(&h, what)?;
        int_value(bytes).ok_or_else(|| self.malformed(what, "integer out of range"))
    }

    /// A sub-reader over the definite contents of `h` (or up to the end for indefinite), leaving
    /// this reader positioned at the contents start; call [`Reader::end_of`] after.
    pub fn contents_reader(&self, h: &Header) -> Reader<'a> {
        let end = match h.len {
            Some(l) => h.content_start.saturating_add(l).min(self.data.len()),
            None => self.data.len(),
        };
        Reader {
            data: &self.data[..end],
            pos: h.content_start,
            base: self.base,
            partial: self.partial,
        }
    }

    /// Moves to the end of a constructed value whose contents `inner` has consumed: for the
    /// indefinite form, also consumes the end-of-contents.
    pub fn end_of(&mut self, h: &Header, inner: &Reader<'a>, what: &'static str) -> Result<()> {
        self.pos = inner.pos;
        match h.len {
            Some(l) => {
                if inner.pos != h.content_start.saturating_add(l) {
                    return Err(self.malformed(what, "trailing data inside a value"));
                }
                Ok(())
            }
            None => {
                if self.at_eoc() {
                    Ok(())
                } else {
                    Err(self.malformed(what, "missing end-of-contents"))
                }
            }
        }
    }

    /// True when the contents of a constructed value read through `self` (a contents reader) are
    /// exhausted: at the definite end, or at an end-of-contents (not consumed).
    pub fn at_end_of(&self, h: &Header) -> bool {
        match h.len {
            Some(_) => self.is_empty(),
            None => self.data.get(self.pos..self.pos + 2) == Some(&[0, 0]) || self.is_empty(),
        }
    }
}

/// Big-endian two's complement INTEGER contents to i64, if it fits.
pub fn int_value(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    let mut v: i64 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in bytes {
        v = (v << 8) | i64::from(b);
    }
    Some(v)
}

/// Walks the segments of a (possibly constructed, possibly indefinite) string value: primitive
/// contents are one segment; constructed ones are the concatenation of their primitive chunks.
/// `each` sees the segments in order, as borrowed slices.
pub fn for_each_segment<'a>(
    r: &mut Reader<'a>,
    h: &Header,
    depth: usize,
    each: &mut dyn FnMut(&'a [u8], u64) -> Result<()>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::Limit {
            what: "BER string chunk nesting",
            limit: MAX_DEPTH as u64,
        });
    }
    if !h.tag.constructed {
        let offset = r.base + h.content_start as u64;
        let s = r.primitive_contents(h, "string segment")?;
        return each(s, offset);
    }
    let mut inner = r.contents_reader(h);
    while !inner.at_end_of(h) {
        let ch = inner.header("string chunk")?;
        // Chunks of a constructed string must be strings themselves (BER allows any string tag
        // here in practice encoders always use OCTET STRING).
        if ch.tag.class != Class::Universal {
            return Err(inner.malformed(
                "string chunk",
                format!("unexpected tag {:?} {}", ch.tag.class, ch.tag.number),
            ));
        }
        for_each_segment(&mut inner, &ch, depth + 1, each)?;
    }
    r.end_of(h, &inner, "constructed string")
}

/// Collects a string value's segments into one buffer (for small values only: the caller
/// bounds `limit`).
pub fn collect_string(r: &mut Reader<'_>, h: &Header, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for_each_segment(r, h, 0, &mut |s, _| {
        if out.len() + s.len() > limit {
            return Err(Error::Limit {
                what: "string value size",
                limit: limit as u64,
            });
        }
        out.extend_from_slice(s);
        Ok(())
    })?;
    Ok(out)
}

/// Re-encodes a BER value as DER-style definite lengths so the `der`-based types can decode it:
/// indefinite lengths become definite, constructed universal OCTET/BIT/character strings become
/// primitive. (SET ordering is not touched; callers don't decode SETs with `der`.)
pub fn to_der(ber: &[u8], base: u64) -> Result<Vec<u8>> {
    let mut r = Reader::with_base(ber, base);
    let mut out = Vec::with_capacity(ber.len());
    encode_value(&mut r, &mut out, 0)?;
    if !r.is_empty() {
        return Err(r.malformed("value", "trailing data"));
    }
    Ok(out)
}

fn encode_value(r: &mut Reader<'_>, out: &mut Vec<u8>, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::Limit {
            what: "BER nesting depth",
            limit: MAX_DEPTH as u64,
        });
    }
    let h = r.header("value")?;
    let id_bytes = &r.data[h.start..];
    // Identifier octets exactly as read (high-tag form included), minus nothing.
    let id_len = identifier_len(id_bytes);
    let is_string = h.tag.class == Class::Universal
        && matches!(h.tag.number, 3 | 4 | 12 | 19 | 20 | 22 | 26 | 28 | 30);
    if !h.tag.constructed {
        let contents = r.primitive_contents(&h, "value")?;
        out.extend_from_slice(&id_bytes[..id_len]);
        push_len(out, contents.len());
        out.extend_from_slice(contents);
        return Ok(());
    }
    if is_string {
        let joined = collect_string(r, &h, usize::MAX)?;
        out.push(id_bytes[0] & !0x20);
        push_len(out, joined.len());
        out.extend_from_slice(&joined);
        return Ok(());
    }
    // The contents go straight into `out` behind a one-byte length, widened once their size is
    // known: no buffer per level (a RecipientInfo nests five or six).
    out.extend_from_slice(&id_bytes[..id_len]);
    let at = out.len();
    out.push(0);
    let mut inner = r.contents_reader(&h);
    while !inner.at_end_of(&h) {
        encode_value(&mut inner, out, depth + 1)?;
    }
    r.end_of(&h, &inner, "value")?;
    let (len, n) = der_len(out.len() - at - 1);
    if n == 1 {
        out[at] = len[0];
    } else {
        out.splice(at..=at, len[..n].iter().copied());
    }
    Ok(())
}

fn identifier_len(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(b) if b & 0x1f == 0x1f => {
            1 + bytes[1..]
                .iter()
                .position(|b| b & 0x80 == 0)
                .map_or(0, |p| p + 1)
        }
        _ => 1,
    }
}

/// Appends a DER length.
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    let (bytes, n) = der_len(len);
    out.extend_from_slice(&bytes[..n]);
}

/// The DER length octets of `len` (short form below 128, else the long form's count and
/// big-endian bytes), and how many of the nine there are.
fn der_len(len: usize) -> ([u8; 9], usize) {
    let mut out = [0u8; 9];
    if len < 0x80 {
        out[0] = len as u8;
        return (out, 1);
    }
    let bytes = (len as u64).to_be_bytes();
    let skip = bytes.iter().position(|&b| b != 0).unwrap_or(7);
    out[0] = 0x80 | (8 - skip) as u8;
    out[1..9 - skip].copy_from_slice(&bytes[skip..]);
    (out, 9 - skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_and_indefinite_headers() {
        let mut r = Reader::new(&[0x30, 0x80, 0x04, 0x01, 0xaa, 0x00, 0x00]);
        let h = r.header("t").unwrap();
        assert_eq!(h.len, None);
        assert!(h.tag.constructed);
        let raw = r.finish_raw(&h, 0).unwrap();
        assert_eq!(raw.len(), 7);
        assert!(r.is_empty());
    }

    #[test]
    fn high_tag_number_form_is_only_for_numbers_from_31() {
        // Found by `fuzz/fuzz_targets/ber.rs`: a constructed UTF8String spelled `3F 0C` was
        // normalised to the identifier `1F` alone, which the next read took as a high tag.
        let data = [0x30, 0x09, 0x3f, 0x0c, 0x00, 0, 0, 0, 0, 0, 0];
        match to_der(&data, 0) {
            Err(Error::Asn1 { detail, .. }) => {
                assert!(detail.contains("tag number 12"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        for id in [[0x1f, 0x00], [0x9f, 0x1e], [0x3f, 0x04]] {
            let data = [id[0], id[1], 0x00];
            let mut r = Reader::new(&data);
            assert!(
                matches!(r.header("t"), Err(Error::Asn1 { .. })),
                "{id:02x?}"
            );
        }
        // From 31 on the high form is the only one, and reads back unchanged.
        for data in [
            &[0x9f, 0x1f, 0x01, 0xaa][..],
            &[0xbf, 0x81, 0x00, 0x02, 0x05, 0x00],
        ] {
            let mut r = Reader::new(data);
            let h = r.header("t").unwrap();
            assert_eq!(h.tag.number, if data[1] == 0x1f { 31 } else { 128 });
            assert_eq!(to_der(data, 0).unwrap(), data);
        }
    }

    #[test]
    fn long_form_length_beyond_input_is_truncation_not_allocation() {
        let mut r = Reader::new(&[0x04, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x00]);
        assert!(matches!(r.header("t"), Err(Error::Truncated { .. })));
        let mut r = Reader::new(&[0x04, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(matches!(r.header("t"), Err(Error::Asn1 { .. })));
    }

    #[test]
    fn constructed_octet_string_segments_in_order() {
        // [0] constructed indefinite { 04 02 'ab', 24 80 { 04 01 'c' } 00 00, 04 00 } 00 00
        let data = [
            0xa0, 0x80, 0x04, 0x02, b'a', b'b', 0x24, 0x80, 0x04, 0x01, b'c', 0x00, 0x00, 0x04,
            0x00, 0x00, 0x00,
        ];
        let mut r = Reader::new(&data);
        let h = r.header("t").unwrap();
        let mut got = Vec::new();
        for_each_segment(&mut r, &h, 0, &mut |s, _| {
            got.extend_from_slice(s);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, b"abc");
        assert!(r.is_empty());
    }

    #[test]
    fn to_der_normalises_indefinite_and_chunked_strings() {
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x01, 0x01, 0x04, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(
            to_der(&ber, 0).unwrap(),
            vec![0x30, 0x04, 0x04, 0x02, 0x01, 0x02]
        );
    }

    /// Contents of 200 and 300 bytes under indefinite lengths: the lengths that replace them
    /// take two and three bytes (`81 c8`, `82 01 2c`), at every level, and DER comes back as it
    /// went in.
    #[test]
    fn to_der_writes_long_form_lengths_at_every_level() {
        // Long forms for 128..=65535, spelled out by hand.
        let long = |n: usize| -> Vec<u8> {
            if n < 256 {
                vec![0x81, n as u8]
            } else {
                vec![0x82, (n >> 8) as u8, n as u8]
            }
        };
        for n in [200usize, 300] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut octets = vec![0x04];
            octets.extend_from_slice(&long(n));
            octets.extend_from_slice(&payload);
            // SEQUENCE { SEQUENCE { OCTET STRING payload }, INTEGER 5 }, both SEQUENCEs
            // indefinite.
            let mut ber = vec![0x30, 0x80, 0x30, 0x80];
            ber.extend_from_slice(&octets);
            ber.extend_from_slice(&[0x00, 0x00, 0x02, 0x01, 0x05, 0x00, 0x00]);
            let mut inner = vec![0x30];
            inner.extend_from_slice(&long(octets.len()));
            inner.extend_from_slice(&octets);
            let mut der = vec![0x30];
            der.extend_from_slice(&long(inner.len() + 3));
            der.extend_from_slice(&inner);
            der.extend_from_slice(&[0x02, 0x01, 0x05]);
            assert_eq!(to_der(&ber, 0).unwrap(), der, "{n} bytes");
            assert_eq!(to_der(&der, 0).unwrap(), der, "DER stays as it is");
        }
    }

    #[test]
    fn missing_end_of_contents_is_an_error() {
        let ber = [0x30, 0x80, 0x04, 0x01, 0x01];
        assert!(to_der(&ber, 0).is_err());
        let mut r = Reader::new(&ber);
        let h = r.header("t").unwrap();
        assert!(r.skip_contents(&h, 0).is_err());
    }

    #[test]
    fn deep_nesting_is_limited() {
        let mut ber = Vec::new();
        for _ in 0..200 {
            ber.extend_from_slice(&[0x30, 0x80]);
        }
        for _ in 0..200 {
            ber.extend_from_slice(&[0x00, 0x00]);
        }
        assert!(matches!(to_der(&ber, 0), Err(Error::Limit { .. })));
    }

    #[test]
    fn integers() {
        assert_eq!(int_value(&[0x00, 0xa0]), Some(160));
        assert_eq!(int_value(&[0xc4]), Some(-60));
        assert_eq!(int_value(&[]), None);
    }
}
