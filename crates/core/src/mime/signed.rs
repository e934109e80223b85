//! Opaque SignedData (`smime-type=signed-data`): getting at the encapsulated content to look
//! for envelopes inside, and finding where a BER ContentInfo ends.
//!
//! A small hand-written BER walker rather than the `der` crate: S/MIME agents (NSS, OpenSSL
//! `-stream`) emit indefinite-length BER with constructed OCTET STRINGs, which DER decoders
//! reject. Only the path ContentInfo → SignedData → EncapsulatedContentInfo → eContent is
//! followed; nothing is verified here (signatures stay untouched or are removed whole).

use crate::cms::ber;
use crate::error::{Error, Result};
use crate::oid;

/// Deepest BER nesting we follow (real SignedData needs well under 10).
const MAX_BER_DEPTH: usize = 48;

/// One TLV: the tag's first byte, where its content starts and ends, and where the TLV ends
/// (after the end-of-contents octets for indefinite lengths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u8,
    pub content_start: usize,
    pub content_end: usize,
    pub end: usize,
}

impl Tlv {
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }
}

fn asn1(what: &'static str, offset: usize, detail: &str) -> Error {
    Error::Asn1 {
        what,
        offset: offset as u64,
        detail: detail.to_string(),
    }
}

/// Reads the TLV starting at `pos`, walking indefinite-length content to find its end (with the
/// crate's one BER reader, [`crate::cms::ber`]).
pub fn read_tlv(data: &[u8], pos: usize, depth: usize) -> Result<Tlv> {
    if depth > MAX_BER_DEPTH {
        return Err(Error::Limit {
            what: "BER nesting depth",
            limit: MAX_BER_DEPTH as u64,
        });
    }
    let at = data.get(pos..).ok_or(Error::Truncated {
        what: "BER element",
        offset: pos as u64,
    })?;
    let mut r = ber::Reader::with_base(at, pos as u64);
    let h = r.header("BER element")?;
    let raw_len = r.finish_raw(&h, depth)?.len();
    let tag = at.first().copied().unwrap_or(0);
    let content_start = pos + h.content_start;
    let end = pos + raw_len;
    let content_end = match h.len {
        Some(l) => content_start + l,
        None => end - 2,
    };
    Ok(Tlv {
        tag,
        content_start,
        content_end,
        end,
    })
}

/// The children of a constructed TLV.
fn children(data: &[u8], tlv: &Tlv, depth: usize) -> Result<Vec<Tlv>> {
    let mut out = Vec::new();
    let mut p = tlv.content_start;
    while p < tlv.content_end {
        let child = read_tlv(data, p, depth + 1)?;
        p = child.end;
        out.push(child);
    }
    Ok(out)
}

/// Appends the content of an OCTET STRING, primitive or constructed (BER chunks).
fn octets(data: &[u8], tlv: &Tlv, depth: usize, out: &mut Vec<u8>) -> Result<()> {
    if depth > MAX_BER_DEPTH {
        return Err(Error::Limit {
            what: "BER nesting depth",
            limit: MAX_BER_DEPTH as u64,
        });
    }
    match tlv.tag {
        0x04 => {
            out.extend_from_slice(data.get(tlv.content_start..tlv.content_end).unwrap_or(&[]));
            Ok(())
        }
        0x24 => {
            for c in children(data, tlv, depth)? {
                octets(data, &c, depth + 1, out)?;
            }
            Ok(())
        }
        t => Err(asn1(
            "eContent",
            tlv.content_start,
            &format!("expected OCTET STRING, found tag 0x{t:02x}"),
        )),
    }
}

/// Length of the ContentInfo at the start of `data` (to drop trailing bytes after it, e.g. a
/// newline after a binary body). `None` when it cannot be parsed.
pub fn content_info_len(data: &[u8]) -> Option<usize> {
    read_tlv(data, 0, 0)
        .ok()
        .filter(|t| t.tag == 0x30)
        .map(|t| t.end)
}

/// The encapsulated content of a SignedData ContentInfo, or `None` when it has none (detached
/// signature, certs-only).
pub fn encapsulated_content(data: &[u8]) -> Result<Option<Vec<u8>>> {
    let ci = read_tlv(data, 0, 0)?;
    if ci.tag != 0x30 {
        return Err(asn1("ContentInfo", 0, "not a SEQUENCE"));
    }
    let ci_items = children(data, &ci, 0)?;
    let (Some(ct), Some(explicit)) = (ci_items.first(), ci_items.get(1)) else {
        return Err(asn1(
            "ContentInfo",
            ci.content_start,
            "missing contentType or content",
        ));
    };
    if ct.tag != 0x06
        || data.get(ct.content_start..ct.content_end) != Some(oid::SIGNED_DATA.as_bytes())
    {
        return Err(Error::NotEnveloped {
            content_type: "not signed-data".into(),
        });
    }
    if explicit.tag != 0xa0 {
        return Err(asn1(
            "ContentInfo.content",
            explicit.content_start,
            "expected [0]",
        ));
    }
    let sd = read_tlv(data, explicit.content_start, 1)?;
    if sd.tag != 0x30 {
        return Err(asn1("SignedData", sd.content_start, "not a SEQUENCE"));
    }
    // version, digestAlgorithms, encapContentInfo, ...
    let mut p = sd.content_start;
    let mut eci = None;
    for i in 0..3 {
        if p >= sd.content_end {
            break;
        }
        let t = read_tlv(data, p, 2)?;
        p = t.end;
        if i == 2 {
            eci = Some(t);
        }
    }
    let Some(eci) = eci.filter(|t| t.tag == 0x30) else {
        return Err(asn1(
            "SignedData",
            sd.content_start,
            "missing encapContentInfo",
        ));
    };
    let items = children(data, &eci, 2)?;
    let Some(explicit) = items.get(1) else {
        return Ok(None);
    };
    if explicit.tag != 0xa0 {
        return Err(asn1("eContent", explicit.content_start, "expected [0]"));
    }
    let mut out = Vec::new();
    let mut q = explicit.content_start;
    while q < explicit.content_end {
        let os = read_tlv(data, q, 3)?;
        q = os.end;
        octets(data, &os, 4, &mut out)?;
    }
    Ok(Some(out))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        let n = content.len();
        if n < 0x80 {
            v.push(n as u8);
        } else {
            v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
        }
        v.extend_from_slice(content);
        v
    }

    fn indef(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut v = vec![tag, 0x80];
        v.extend_from_slice(content);
        v.extend_from_slice(&[0, 0]);
        v
    }

    /// A structurally plausible SignedData ContentInfo around `content` (no real signature),
    /// BER indefinite with chunked eContent when `ber`.
    pub(crate) fn fake_signed(content: &[u8], ber: bool) -> Vec<u8> {
        let data_oid = tlv(0x06, oid::DATA.as_bytes());
        let econtent = if ber {
            let chunks: Vec<u8> = content.chunks(7).flat_map(|c| tlv(0x04, c)).collect();
            indef(0xa0, &indef(0x24, &chunks))
        } else {
            tlv(0xa0, &tlv(0x04, content))
        };
        let eci = [data_oid, econtent].concat();
        let eci = if ber {
            indef(0x30, &eci)
        } else {
            tlv(0x30, &eci)
        };
        let sd = [tlv(0x02, &[1]), tlv(0x31, &[]), eci, tlv(0x31, &[])].concat();
        let sd = if ber {
            indef(0x30, &sd)
        } else {
            tlv(0x30, &sd)
        };
        let ci = [
            tlv(0x06, oid::SIGNED_DATA.as_bytes()),
            if ber {
                indef(0xa0, &sd)
            } else {
                tlv(0xa0, &sd)
            },
        ]
        .concat();
        if ber {
            indef(0x30, &ci)
        } else {
            tlv(0x30, &ci)
        }
    }

    #[test]
    fn extracts_econtent_der_and_ber() {
        let content = b"Content-Type: text/plain\r\n\r\nhello, this is the signed text\r\n";
        for ber in [false, true] {
            let ci = fake_signed(content, ber);
            assert_eq!(
                encapsulated_content(&ci).unwrap().as_deref(),
                Some(&content[..])
            );
            assert_eq!(content_info_len(&ci), Some(ci.len()));
            let mut trailing = ci.clone();
            trailing.extend_from_slice(b"\r\n");
            assert_eq!(content_info_len(&trailing), Some(ci.len()));
        }
    }

    #[test]
    fn detached_has_no_content() {
        let eci = tlv(0x30, &tlv(0x06, oid::DATA.as_bytes()));
        let sd = tlv(0x30, &[tlv(0x02, &[1]), tlv(0x31, &[]), eci].concat());
        let ci = tlv(
            0x30,
            &[tlv(0x06, oid::SIGNED_DATA.as_bytes()), tlv(0xa0, &sd)].concat(),
        );
        assert_eq!(encapsulated_content(&ci).unwrap(), None);
    }

    #[test]
    fn hostile_input_gives_errors_not_panics() {
        let ci = fake_signed(b"abcdefghijklmnopqrstuvwxyz", true);
        for i in 0..ci.len() {
            let _ = encapsulated_content(&ci[..i]);
            let mut flipped = ci.clone();
            flipped[i] ^= 0xff;
            let _ = encapsulated_content(&flipped);
            let _ = content_info_len(&flipped);
        }
        // Deep indefinite nesting hits the limit.
        let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 1000)
            .flatten()
            .collect();
        assert!(matches!(read_tlv(&deep, 0, 0), Err(Error::Limit { .. })));
        // Huge lengths.
        assert!(
            read_tlv(
                &[0x04, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                0,
                0
            )
            .is_err()
        );
        assert!(read_tlv(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff], 0, 0).is_err());
    }
}
