//! EnvelopedData (RFC 5652 §6) and AuthEnvelopedData (RFC 5083) headers, read with the
//! streaming [`ber`](super::ber) reader so that the encrypted content stays a borrowed slice
//! (or a list of borrowed chunks) of the input.

use super::ber::{self, Class, Header, Reader, Tag};
use crate::error::{Error, Result};
use crate::oid;
use der::asn1::ObjectIdentifier;

/// Which of the two envelope types a ContentInfo holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    Enveloped,
    AuthEnveloped,
}

impl EnvelopeKind {
    pub fn name(self) -> &'static str {
        match self {
            EnvelopeKind::Enveloped => "enveloped-data",
            EnvelopeKind::AuthEnveloped => "authEnveloped-data",
        }
    }
}

/// Upper bound for everything but the encrypted content (recipient infos, attributes, MAC):
/// real headers are a few KiB even with hundreds of recipients.
pub const MAX_HEADER_PART: usize = 16 * 1024 * 1024;

/// The parsed envelope, borrowing the input.
#[derive(Debug)]
pub struct EnvelopeHeader<'a> {
    pub kind: EnvelopeKind,
    pub version: i64,
    /// Each RecipientInfo re-encoded as DER (ready for `cms` types), with its input offset.
    pub recipient_infos: Vec<(Vec<u8>, u64)>,
    /// The content type inside (normally id-data).
    pub content_type: ObjectIdentifier,
    /// contentEncryptionAlgorithm, re-encoded as DER.
    pub content_algorithm_der: Vec<u8>,
    pub content_algorithm_offset: u64,
    /// The encryptedContent as it appears: absent (detached), or a header plus the reader
    /// positioned at it, so the caller streams its segments with [`EnvelopeHeader::content_segments`].
    content: Option<(Header, Reader<'a>)>,
    /// AuthEnvelopedData only: the DER of authAttrs with the SET tag (the GCM AAD), and the MAC.
    pub auth_attrs_der: Option<Vec<u8>>,
    pub mac: Option<Vec<u8>>,
}

impl<'a> EnvelopeHeader<'a> {
    /// Whether the content is carried inside the envelope.
    pub fn has_content(&self) -> bool {
        self.content.is_some()
    }

    /// Upper bound of the ciphertext length (exact for a primitive encoding).
    pub fn content_len_hint(&self) -> u64 {
        match &self.content {
            Some((h, r)) => h.len.map_or(r.remaining() as u64, |l| l as u64),
            None => 0,
        }
    }

    /// Walks the ciphertext chunks in order, borrowed from the input.
    pub fn content_segments(
        &self,
        each: &mut dyn FnMut(&'a [u8], u64) -> Result<()>,
    ) -> Result<()> {
        match &self.content {
            Some((h, r)) => {
                let mut r = r.clone();
                ber::for_each_segment(&mut r, h, 0, each)
            }
            None => Err(Error::Asn1 {
                what: "encryptedContent",
                offset: 0,
                detail: "the envelope carries no content (detached content is not supported)"
                    .into(),
            }),
        }
    }
}

/// Reads `ContentInfo` and returns the content type and a reader positioned on the content's
/// header (inside the `[0] EXPLICIT`).
pub fn content_info(input: &[u8]) -> Result<(ObjectIdentifier, Reader<'_>)> {
    content_info_from(Reader::new(input)).map(|(ct, r, _)| (ct, r))
}

/// Where a ContentInfo and its `[0]` end, when their lengths are definite.
#[derive(Debug, Clone, Copy)]
struct Ends {
    content_info: Option<usize>,
    explicit: Option<usize>,
}

impl Ends {
    /// The values that close with an end-of-contents after the Enveloped/AuthEnvelopedData
    /// when they are indefinite (`None` end), innermost first.
    fn closers(&self) -> [(Option<usize>, &'static str); 2] {
        [
            (self.explicit, "ContentInfo.content"),
            (self.content_info, "ContentInfo"),
        ]
    }
}

/// As [`content_info`]; also where the ContentInfo and its `[0]` end (see [`Ends`]).
fn content_info_from(mut r: Reader<'_>) -> Result<(ObjectIdentifier, Reader<'_>, Ends)> {
    let outer = r.expect(Tag::SEQUENCE, "ContentInfo")?;
    let mut inner = r.contents_reader(&outer);
    let ct = inner.read_oid("ContentInfo.contentType")?;
    let at = inner.offset();
    let explicit = inner.header("ContentInfo.content")?;
    if !explicit.tag.is_context(0) || !explicit.tag.constructed {
        return Err(Error::Asn1 {
            what: "ContentInfo.content",
            offset: at,
            detail: "expected [0] EXPLICIT".into(),
        });
    }
    let end = |h: &Header| h.len.map(|l| h.content_start.saturating_add(l));
    Ok((
        ct,
        inner.contents_reader(&explicit),
        Ends {
            content_info: end(&outer),
            explicit: end(&explicit),
        },
    ))
}

/// Everything before the encrypted content, with the readers positioned to go on from there.
struct Front<'a> {
    kind: EnvelopeKind,
    version: i64,
    recipient_infos: Vec<(Vec<u8>, u64)>,
    content_type: ObjectIdentifier,
    content_algorithm_der: Vec<u8>,
    content_algorithm_offset: u64,
    /// Inside the ContentInfo's [0] (at the Enveloped/AuthEnvelopedData SEQUENCE's end).
    r: Reader<'a>,
    seq: Header,
    /// Inside the Enveloped/AuthEnvelopedData SEQUENCE.
    s: Reader<'a>,
    eci: Header,
    /// Inside EncryptedContentInfo, at encryptedContent (or its end, when detached).
    e: Reader<'a>,
    /// Where the ContentInfo and its `[0]` end (see [`content_info_from`]).
    ends: Ends,
}

fn front(r: Reader<'_>) -> Result<Front<'_>> {
    let (ct, mut r, ends) = content_info_from(r)?;
    let kind = if ct == oid::ENVELOPED_DATA {
        EnvelopeKind::Enveloped
    } else if ct == oid::AUTH_ENVELOPED_DATA {
        EnvelopeKind::AuthEnveloped
    } else {
        return Err(Error::NotEnveloped {
            content_type: oid::name(&ct),
        });
    };
    let seq = r.expect(Tag::SEQUENCE, kind.name())?;
    let mut s = r.contents_reader(&seq);
    let version = s.read_small_int("version")?;

    // originatorInfo [0] IMPLICIT OPTIONAL: certificates we don't need.
    if s.peek_tag().is_some_and(|t| t.is_context(0)) {
        let h = s.header("originatorInfo")?;
        s.skip_contents(&h, 0)?;
    }

    // recipientInfos SET OF RecipientInfo: each element re-encoded on its own. We don't hand the
    // SET to `der`, which would insist on DER ordering that real encoders don't keep.
    let at = s.offset();
    let set = s.expect(Tag::SET, "recipientInfos")?;
    let mut rs = s.contents_reader(&set);
    let mut recipient_infos = Vec::new();
    let mut total = 0usize;
    while !rs.at_end_of(&set) {
        let off = rs.offset();
        let raw = rs.read_raw("RecipientInfo")?;
        total += raw.len();
        if total > MAX_HEADER_PART {
            return Err(Error::Limit {
                what: "recipientInfos size",
                limit: MAX_HEADER_PART as u64,
            });
        }
        recipient_infos.push((ber::to_der(raw, off)?, off));
    }
    s.end_of(&set, &rs, "recipientInfos")?;
    if recipient_infos.is_empty() {
        return Err(Error::Asn1 {
            what: "recipientInfos",
            offset: at,
            detail: "empty".into(),
        });
    }

    // EncryptedContentInfo
    let eci = s.expect(Tag::SEQUENCE, "encryptedContentInfo")?;
    let mut e = s.contents_reader(&eci);
    let content_type = e.read_oid("encryptedContentInfo.contentType")?;
    let content_algorithm_offset = e.offset();
    let alg_raw = e.read_raw("contentEncryptionAlgorithm")?;
    let content_algorithm_der = ber::to_der(alg_raw, content_algorithm_offset)?;
    Ok(Front {
        kind,
        version,
        recipient_infos,
        content_type,
        content_algorithm_der,
        content_algorithm_offset,
        r,
        seq,
        s,
        eci,
        e,
        ends,
    })
}

/// Reads the header of encryptedContent, which must be `[0]`.
fn content_header(e: &mut Reader<'_>) -> Result<Header> {
    let at = e.offset();
    let h = e.header("encryptedContent")?;
    if h.tag.class != Class::Context || h.tag.number != 0 {
        return Err(Error::Asn1 {
            what: "encryptedContent",
            offset: at,
            detail: format!("expected [0], found {:?} {}", h.tag.class, h.tag.number),
        });
    }
    Ok(h)
}

/// Where the encrypted content starts in a message being streamed, found by
/// [`parse_prefix`].
#[derive(Debug)]
pub struct ContentStart {
    /// The header with no content, MAC or authAttrs (those follow the content): it borrows
    /// nothing.
    pub header: EnvelopeHeader<'static>,
    /// The encryptedContent TLV header; `content_start` is its offset in the decoded input.
    pub content: Header,
    /// What encloses it, for [`check_after_content`].
    pub enclosing: Enclosing,
}

/// The EnvelopedData SEQUENCE and EncryptedContentInfo around a streamed content.
#[derive(Debug, Clone, Copy)]
pub struct Enclosing {
    seq: Header,
    eci: Header,
    /// The ends of the ContentInfo and its `[0]`, when definite: nothing inside may pass them,
    /// and the decoded input must reach them.
    ends: Ends,
}

/// Checks what follows a streamed encrypted content as [`parse`] would: the end of
/// EncryptedContentInfo, then unprotected attributes or unknown fields up to the end of the
/// EnvelopedData. `after` is what was decoded from offset `at` (where the content ended) on.
/// `Err(Error::Truncated)`: not decided yet, more bytes are needed.
pub fn check_after_content(enc: &Enclosing, after: &[u8], at: usize) -> Result<()> {
    let mut r = Reader::with_base(after, at as u64);
    let malformed = |what: &'static str, off: usize| Error::Asn1 {
        what,
        offset: off as u64,
        detail: "trailing data inside a value".into(),
    };
    let need_more = |what: &'static str, off: usize| Error::Truncated {
        what,
        offset: off as u64,
    };
    // A structure that runs past the ContentInfo's end is malformed, not waiting for bytes.
    let settled = |e: Error| Error::Asn1 {
        what: "EnvelopedData",
        offset: enc.seq.start as u64,
        detail: format!("runs past the end of its ContentInfo ({e})"),
    };
    match enc.eci.len {
        Some(l) if at != enc.eci.content_start.saturating_add(l) => {
            return Err(malformed("encryptedContentInfo", at));
        }
        Some(_) => {}
        None if r.at_eoc() => {}
        None if r.remaining() < 2 => return Err(need_more("encryptedContentInfo", at)),
        None => {
            return Err(Error::Asn1 {
                what: "encryptedContentInfo",
                offset: at as u64,
                detail: "missing end-of-contents".into(),
            });
        }
    }
    // The ContentInfo's `[0]` must fit in it, the EnvelopedData in both, and the decoded
    // input must be as long as they say (the in-memory parser checks each header's length).
    let past_limit = |end: usize| -> Result<()> {
        let outer = enc.ends.content_info.unwrap_or(usize::MAX);
        let explicit = enc.ends.explicit.unwrap_or(usize::MAX);
        if explicit > outer || end > outer.min(explicit) {
            return Err(Error::Truncated {
                what: "EnvelopedData",
                offset: enc.seq.start as u64,
            });
        }
        Ok(())
    };
    let available = at + after.len();
    // `seq_end`: where the EnvelopedData ended. Then, as `parse` requires, an end-of-contents
    // for the `[0]` and for the ContentInfo in the indefinite form.
    let reached = |settled_ok: Result<()>, seq_end: usize| -> Result<()> {
        settled_ok?;
        let mut pos = seq_end;
        for (end, what) in enc.ends.closers() {
            if end.is_some() {
                continue;
            }
            let rel = pos.saturating_sub(at);
            match after.get(rel..rel + 2) {
                Some([0, 0]) => pos += 2,
                Some(_) => {
                    return Err(Error::Asn1 {
                        what,
                        offset: pos as u64,
                        detail: "missing end-of-contents".into(),
                    });
                }
                None => return Err(need_more(what, pos)),
            }
        }
        match enc.ends.content_info.or(enc.ends.explicit) {
            Some(end) if end > available => Err(need_more("ContentInfo", available)),
            _ => Ok(()),
        }
    };
    loop {
        let abs = at + r.position();
        match enc.seq.len {
            Some(l) => {
                let end = enc.seq.content_start.saturating_add(l);
                if abs == end {
                    return reached(past_limit(end).map_err(settled), end);
                }
                if abs > end {
                    return Err(malformed("EnvelopedData", end));
                }
            }
            None if r.at_eoc() => {
                let end = at + r.position();
                return reached(past_limit(end).map_err(settled), end);
            }
            None => {}
        }
        if r.is_empty() {
            return Err(need_more("EnvelopedData", abs));
        }
        // unprotectedAttrs, or a field of a later version: skipped, as `parse` does.
        let h = r.header("trailing field")?;
        r.skip_contents(&h, 0)?;
        if r.position() > after.len() {
            return Err(need_more("trailing field", abs));
        }
    }
}

/// AuthEnvelopedData's fields after the AuthEncryptedContentInfo: authAttrs `[1]` (returned as
/// the DER the MAC covers, with the SET OF tag), the mac, and unauthAttrs `[2]` (skipped).
fn auth_fields(s: &mut Reader<'_>) -> Result<(Option<Vec<u8>>, Vec<u8>)> {
    let mut auth_attrs_der = None;
    if s.peek_tag().is_some_and(|t| t.is_context(1)) {
        let off = s.offset();
        let raw = s.read_raw("authAttrs")?;
        if raw.len() > MAX_HEADER_PART {
            return Err(Error::Limit {
                what: "authAttrs size",
                limit: MAX_HEADER_PART as u64,
            });
        }
        let mut der = ber::to_der(raw, off)?;
        // The MAC is computed over the DER with the SET OF tag, not the [1] IMPLICIT tag.
        if let Some(first) = der.first_mut() {
            *first = 0x31;
        }
        auth_attrs_der = Some(der);
    }
    let h = s.header("mac")?;
    if !h.tag.is_universal(4) {
        return Err(Error::Asn1 {
            what: "mac",
            offset: s.offset(),
            detail: "expected OCTET STRING".into(),
        });
    }
    let mac = ber::collect_string(s, &h, 1024)?;
    if s.peek_tag().is_some_and(|t| t.is_context(2)) {
        let h = s.header("unauthAttrs")?;
        s.skip_contents(&h, 0)?;
    }
    Ok((auth_attrs_der, mac))
}

/// For a streamed AuthEnvelopedData: its authAttrs (as [`auth_fields`] returns them) and mac,
/// read from what followed the content (`after`, decoded from offset `at` on), once
/// [`check_after_content`] has accepted it.
pub fn auth_trailer(
    enc: &Enclosing,
    after: &[u8],
    at: usize,
) -> Result<(Option<Vec<u8>>, Vec<u8>)> {
    // The fields belong inside the AuthEnvelopedData: when its length is definite, what
    // follows its end (the ContentInfo's close, or anything else) is no mac, as for `parse`.
    let inside = match enc.seq.len {
        Some(l) => {
            let end = enc.seq.content_start.saturating_add(l);
            after.get(..end.saturating_sub(at)).unwrap_or(after)
        }
        None => after,
    };
    let mut r = Reader::with_base(inside, at as u64);
    if enc.eci.len.is_none() && !r.at_eoc() {
        return Err(Error::Asn1 {
            what: "encryptedContentInfo",
            offset: at as u64,
            detail: "missing end-of-contents".into(),
        });
    }
    auth_fields(&mut r)
}

/// Parses the part of an EnvelopedData that precedes the encrypted content, from a prefix of
/// the decoded ContentInfo. `Err(Error::Truncated)` (or any other error) may mean the prefix is
/// too short: callers retry with more, up to [`MAX_HEADER_PART`]. `Ok(None)`: the content is
/// detached.
pub fn parse_prefix(prefix: &[u8]) -> Result<Option<ContentStart>> {
    let mut f = front(Reader::prefix(prefix))?;
    let enclosing = Enclosing {
        seq: f.seq,
        eci: f.eci,
        ends: f.ends,
    };
    // Out of prefix before the content's header: not the same as a detached content.
    if f.e.is_empty()
        && f.eci
            .len
            .is_none_or(|l| f.eci.content_start.saturating_add(l) > prefix.len())
    {
        return Err(Error::Truncated {
            what: "encryptedContent",
            offset: f.e.offset(),
        });
    }
    if f.e.at_end_of(&f.eci) {
        return Ok(None);
    }
    let h = content_header(&mut f.e)?;
    Ok(Some(ContentStart {
        header: EnvelopeHeader {
            kind: f.kind,
            version: f.version,
            recipient_infos: f.recipient_infos,
            content_type: f.content_type,
            content_algorithm_der: f.content_algorithm_der,
            content_algorithm_offset: f.content_algorithm_offset,
            content: None,
            auth_attrs_der: None,
            mac: None,
        },
        content: h,
        enclosing,
    }))
}

/// Parses a ContentInfo holding EnvelopedData or AuthEnvelopedData.
pub fn parse(input: &[u8]) -> Result<EnvelopeHeader<'_>> {
    let Front {
        kind,
        version,
        recipient_infos,
        content_type,
        content_algorithm_der,
        content_algorithm_offset,
        mut r,
        seq,
        mut s,
        eci,
        mut e,
        ends,
    } = front(Reader::new(input))?;
    let content = if !e.at_end_of(&eci) {
        let h = content_header(&mut e)?;
        let start = e.clone();
        e.skip_contents(&h, 0)?;
        Some((h, start))
    } else {
        None
    };
    s.end_of(&eci, &e, "encryptedContentInfo")?;

    let mut auth_attrs_der = None;
    let mut mac = None;
    match kind {
        EnvelopeKind::Enveloped => {
            // unprotectedAttrs [1] IMPLICIT OPTIONAL: ignored.
            if s.peek_tag().is_some_and(|t| t.is_context(1)) {
                let h = s.header("unprotectedAttrs")?;
                s.skip_contents(&h, 0)?;
            }
        }
        EnvelopeKind::AuthEnveloped => {
            let (attrs, tag) = auth_fields(&mut s)?;
            auth_attrs_der = attrs;
            mac = Some(tag);
        }
    }
    // Anything further inside the SEQUENCE is an extension we don't know; skip it.
    while !s.at_end_of(&seq) {
        let h = s.header("trailing field")?;
        s.skip_contents(&h, 0)?;
    }
    r.end_of(&seq, &s, kind.name())?;
    // In the indefinite form the `[0]` and the ContentInfo each close with an end-of-contents:
    // without them the input was cut short, however complete the content looks.
    for (end, what) in ends.closers() {
        if end.is_none() && !r.at_eoc() {
            return Err(Error::Truncated {
                what,
                offset: r.offset(),
            });
        }
    }

    Ok(EnvelopeHeader {
        kind,
        version,
        recipient_infos,
        content_type,
        content_algorithm_der,
        content_algorithm_offset,
        content,
        auth_attrs_der,
        mac,
    })
}

/// Reads only the content type of a ContentInfo (to tell envelopes from signatures).
pub fn content_type(input: &[u8]) -> Result<ObjectIdentifier> {
    content_info(input).map(|(ct, _)| ct)
}
