//! Which parts are envelopes (or opaque signatures that may hold one), decided by the
//! ContentInfo OID at the start of the decoded body; the MIME label only selects candidates.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::header::ContentType;
use crate::oid;

/// What a part holds, as far as decryption cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// ContentInfo with EnvelopedData or AuthEnvelopedData.
    Envelope,
    /// ContentInfo with SignedData (opaque signature: its encapsulated content may hold an envelope).
    SignedData,
    /// ContentInfo with CompressedData (RFC 3274): what it holds cannot be looked into here.
    Compressed,
    /// Anything else.
    Other,
}

/// Content transfer encodings we decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cte {
    /// 7bit, 8bit, binary, or missing: the body is the data.
    Identity,
    Base64,
    QuotedPrintable,
    /// x-uuencode and other unknown encodings: left alone.
    Unknown,
}

impl Cte {
    /// Leniently, as clients write it: comments, quotes and an `x-` prefix do not hide base64
    /// or quoted-printable (an envelope behind an encoding we did not recognise would be read
    /// as plain).
    pub fn parse(value: Option<&str>) -> Cte {
        let v = value
            .map(|v| {
                let mut depth = 0usize;
                let bare: String = v
                    .chars()
                    .filter(|&c| match c {
                        '(' => {
                            depth += 1;
                            false
                        }
                        ')' => {
                            depth = depth.saturating_sub(1);
                            false
                        }
                        '"' => false,
                        _ => depth == 0,
                    })
                    .collect();
                bare.trim().to_ascii_lowercase()
            })
            .unwrap_or_default();
        match v.strip_prefix("x-").unwrap_or(&v) {
            "" | "7bit" | "8bit" | "binary" => Cte::Identity,
            "base64" => Cte::Base64,
            "quoted-printable" => Cte::QuotedPrintable,
            _ => Cte::Unknown,
        }
    }
}

/// Is this label one that may carry a CMS ContentInfo?
/// `application/pkcs7-mime`, `application/x-pkcs7-mime` (any or no smime-type), and
/// `application/octet-stream` (or a missing type) whose name or filename ends in `.p7m`.
pub fn is_candidate_label(ct: &ContentType, disposition: Option<&ContentType>) -> bool {
    match ct.mime_type.as_str() {
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => true,
        "application/octet-stream" | "application/x-octet-stream" | "" => {
            let named_p7m = |v: Option<&str>| {
                v.is_some_and(|n| n.trim().to_ascii_lowercase().ends_with(".p7m"))
            };
            named_p7m(ct.param("name")) || named_p7m(disposition.and_then(|d| d.param("filename")))
        }
        _ => false,
    }
}

/// Did the label promise an envelope (so that an undecodable body is an error, not a leaf)?
pub fn label_says_envelope(ct: &ContentType) -> bool {
    matches!(
        ct.mime_type.as_str(),
        "application/pkcs7-mime" | "application/x-pkcs7-mime"
    ) && ct.param("smime-type").is_some_and(|t| {
        let t = t.trim().to_ascii_lowercase();
        t == "enveloped-data" || t == "authenveloped-data"
    })
}

/// Decides by the ContentInfo OID of the (encoded) body; reads only its first bytes.
pub fn classify_body(body: &[u8], cte: Cte) -> PartKind {
    match peek_oid(body, cte) {
        Some(o) => kind_of_oid(&o),
        None => PartKind::Other,
    }
}

/// The content-type OID (its DER content bytes) announced at the start of the encoded body.
pub fn peek_oid(body: &[u8], cte: Cte) -> Option<Vec<u8>> {
    let prefix = match cte {
        Cte::Identity => {
            let b = skip_leading_ws(body);
            b.get(..64).unwrap_or(b).to_vec()
        }
        Cte::Base64 => decode_base64_prefix(body, 96),
        Cte::QuotedPrintable => decode_qp(body.get(..384).unwrap_or(body)),
        Cte::Unknown => return None,
    };
    // A line break encoded before the DER (some clients do) is skipped as in a binary body.
    content_type_oid(skip_leading_ws(&prefix)).map(<[u8]>::to_vec)
}

fn kind_of_oid(o: &[u8]) -> PartKind {
    if o == oid::ENVELOPED_DATA.as_bytes() || o == oid::AUTH_ENVELOPED_DATA.as_bytes() {
        PartKind::Envelope
    } else if o == oid::SIGNED_DATA.as_bytes() {
        PartKind::SignedData
    } else if o == oid::COMPRESSED_DATA.as_bytes() {
        PartKind::Compressed
    } else {
        PartKind::Other
    }
}

fn skip_leading_ws(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    b.get(n..).unwrap_or(&[])
}

/// `SEQUENCE { OID ... }`: which content type the ContentInfo announces.
pub fn classify_der_prefix(der: &[u8]) -> PartKind {
    content_type_oid(der)
        .map(kind_of_oid)
        .unwrap_or(PartKind::Other)
}

/// The content bytes of the first OID in a ContentInfo, without needing the rest of it.
pub fn content_type_oid(der: &[u8]) -> Option<&[u8]> {
    if *der.first()? != 0x30 {
        return None;
    }
    let len0 = *der.get(1)?;
    let mut pos = 2usize;
    if len0 > 0x80 {
        let n = (len0 & 0x7f) as usize;
        if n > 8 {
            return None;
        }
        pos += n;
    }
    if *der.get(pos)? != 0x06 {
        return None;
    }
    // BER allows the OID's length in the long form (`81 09`); OpenSSL reads it.
    let (len, at) = match *der.get(pos + 1)? {
        0x81 => (*der.get(pos + 2)? as usize, pos + 3),
        l => (l as usize, pos + 2),
    };
    if len == 0 || len > 0x7f {
        return None;
    }
    der.get(at..at + len)
}

/// The standard alphabet, padding optional, trailing bits tolerated.
pub(crate) const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn is_b64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

/// Decodes base64 leniently: CRLF or LF, stray whitespace and other non-alphabet bytes are
/// skipped, padding may be missing. Works in chunks so that no filtered copy of the whole body
/// is made. A dangling single character (6 bits, no whole byte) is dropped.
pub fn decode_base64(body: &[u8]) -> Vec<u8> {
    decode_base64_lines(body).unwrap_or_else(|| decode_base64_filtered(body))
}

/// Decodes base64 characters in place with SIMD (`base64-simd`, about five times the scalar
/// crate here): a whole number of quanta, or the last one, padded or not, trailing bits
/// tolerated, as [`LENIENT`]. `None` if anything but base64 is among them, whitespace included:
/// the "forgiving" decoder would drop it silently, shifting every later quantum, because the
/// caller cut the characters into quanta counting it.
pub(crate) fn decode_quanta_inplace(chars: &mut [u8]) -> Option<&mut [u8]> {
    if memchr::memchr3(b' ', b'\t', b'\r', chars).is_some()
        || memchr::memchr2(b'\x0c', b'\n', chars).is_some()
    {
        return None;
    }
    base64_simd::forgiving_decode_inplace(chars).ok()
}

/// The lines of a base64 body, each trimmed of blanks and its CR. Encoders write lines of one
/// width (64 or 76 characters), so with `guess` the next line end is first looked for where the
/// last one was: one comparison instead of a search per line. A wrong guess (a shorter line
/// whose LF lies exactly one width on) yields a "line" with an LF inside, which
/// [`decode_quanta_inplace`] refuses: callers then take a path without guessing, so a guess
/// never changes a result.
pub(crate) struct Base64Lines<'a> {
    rest: &'a [u8],
    width: Option<usize>,
    guess: bool,
}

impl<'a> Base64Lines<'a> {
    pub(crate) fn new(body: &'a [u8], guess: bool) -> Self {
        Base64Lines {
            rest: body,
            width: None,
            guess,
        }
    }
}

impl<'a> Iterator for Base64Lines<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let end = match self.width {
            Some(w) if self.guess && self.rest.get(w) == Some(&b'\n') => w,
            _ => {
                let e = memchr::memchr(b'\n', self.rest).unwrap_or(self.rest.len());
                self.width = Some(e);
                e
            }
        };
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest.get(1..).unwrap_or(&[]);
        Some(line.trim_ascii())
    }
}

/// The fast path for well-formed bodies (lines of base64, any line ending, trailing blanks):
/// lines ([`Base64Lines`]) are gathered behind what is decoded so far and decoded there, in
/// place, in large blocks by [`decode_quanta_inplace`]. Decoding shrinks four bytes to three,
/// so each block's bytes land where they belong and one buffer, filled once, is the result.
/// `None` when anything else is in there (or a line-width guess went wrong); the filtering path
/// then takes over.
fn decode_base64_lines(body: &[u8]) -> Option<Vec<u8>> {
    const BLOCK: usize = 64 * 1024;
    // Room for the result and for one block's characters beyond it.
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + body.len().min(BLOCK + 1024) / 4 + 4);
    let mut done = 0;
    for line in Base64Lines::new(body, true) {
        out.extend_from_slice(line);
        let pending = out.len() - done;
        if pending >= BLOCK {
            let keep = pending - pending % 4;
            let n = decode_quanta_inplace(out.get_mut(done..done + keep)?)?.len();
            // The characters of an unfinished quantum (at most three) move up behind it.
            out.copy_within(done + keep.., done + n);
            done += n;
            out.truncate(done + pending - keep);
        }
    }
    if (out.len() - done) % 4 == 1 {
        out.pop();
    }
    if out.len() > done {
        let n = decode_quanta_inplace(out.get_mut(done..)?)?.len();
        out.truncate(done + n);
    }
    Some(out)
}

fn decode_base64_filtered(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 3);
    let mut chunk: Vec<u8> = Vec::with_capacity(4096);
    for &c in body {
        if is_b64(c) {
            chunk.push(c);
            if chunk.len() == 4096 {
                // A multiple of 4: decodes on its own.
                let _ = LENIENT.decode_vec(&chunk, &mut out);
                chunk.clear();
            }
        }
    }
    if chunk.len() % 4 == 1 {
        chunk.pop();
    }
    if !chunk.is_empty() {
        let _ = LENIENT.decode_vec(&chunk, &mut out);
    }
    out
}

/// Decodes about `want` bytes from the start of a base64 body.
pub fn decode_base64_prefix(body: &[u8], want: usize) -> Vec<u8> {
    let need = want.div_ceil(3) * 4;
    let mut chunk = Vec::with_capacity(need);
    for &c in body {
        if is_b64(c) {
            chunk.push(c);
            if chunk.len() >= need {
                break;
            }
        }
    }
    let keep = chunk.len() - chunk.len() % 4;
    chunk.truncate(keep);
    let mut out = Vec::new();
    let _ = LENIENT.decode_vec(&chunk, &mut out);
    out
}

/// Quoted-printable (RFC 2045 §6.7), lenient: malformed escapes are kept literally.
pub fn decode_qp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body.get(i).copied().unwrap_or(0);
        if b != b'=' {
            out.push(b);
            i += 1;
            continue;
        }
        let hex = |j: usize| body.get(j).and_then(|c| (*c as char).to_digit(16));
        if let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        // Soft line break: '=' then optional trailing whitespace then (CR)LF or end.
        let mut j = i + 1;
        while matches!(body.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        match body.get(j) {
            Some(b'\n') => i = j + 1,
            Some(b'\r') if body.get(j + 1) == Some(&b'\n') => i = j + 2,
            None => i = j,
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// [`decode_body`] for a part that holds a CMS object: blank lines encoded before the DER are
/// no part of it (as [`peek_oid`] and a binary body skip them).
pub fn decode_der(body: &[u8], cte: Cte) -> Vec<u8> {
    let mut der = decode_body(body, cte);
    let lead = der.iter().take_while(|c| c.is_ascii_whitespace()).count();
    der.drain(..lead);
    der
}

/// Decodes a body by its transfer encoding (`Unknown` gives the bytes as they are).
pub fn decode_body(body: &[u8], cte: Cte) -> Vec<u8> {
    match cte {
        Cte::Base64 => decode_base64(body),
        Cte::QuotedPrintable => decode_qp(body),
        // A ContentInfo starts with 0x30, never with whitespace: a stray blank line goes.
        Cte::Identity => skip_leading_ws(body).to_vec(),
        Cte::Unknown => body.to_vec(),
    }
}

/// The bytes every ContentInfo announcing EnvelopedData or AuthEnvelopedData holds, wherever
/// it starts: `OID <content type>` and the `[0]` tag of its content.
/// Made once: every message and every output is searched for them.
fn marker_bytes() -> &'static [Vec<u8>] {
    static MARKERS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    MARKERS.get_or_init(|| {
        let mut v = Vec::new();
        for o in [oid::ENVELOPED_DATA, oid::AUTH_ENVELOPED_DATA] {
            let o = o.as_bytes();
            // The OID's length in the short form, and in BER's long form (`81 len`).
            for head in [vec![0x06, o.len() as u8], vec![0x06, 0x81, o.len() as u8]] {
                let mut p = head;
                p.extend_from_slice(o);
                p.push(0xa0);
                v.push(p);
            }
        }
        v
    })
}

/// The arc `1.2.840.113549.1` (PKCS) that both content types lie under: rare bytes, so that a
/// search for it runs at memory speed.
const PKCS_ARC: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01];

/// How far past a line start base64 is decoded to see whether a ContentInfo begins there
/// (with room for short lines).
const LOOKAHEAD: usize = 256;

/// Does base64 starting here decode to the start of an (Auth)EnvelopedData ContentInfo?
fn base64_envelope_at(bytes: &[u8]) -> bool {
    let text = bytes.get(..LOOKAHEAD).unwrap_or(bytes);
    content_type_oid(&decode_base64_prefix(text, 24))
        .is_some_and(|o| kind_of_oid(o) == PartKind::Envelope)
}

/// Envelopes visible in raw bytes whatever their MIME structure, by offset: a ContentInfo
/// announcing (Auth)EnvelopedData in binary (`OID, [0]` anywhere), or in base64 starting at a
/// line start (as every MIME body and PEM block does; `M` is how a SEQUENCE's base64 begins)
/// or after any other byte that is no base64 character (indented or quoted lines, a data: URI,
/// an encoded word, JSON, HTML).
/// Found by content, not by label, this is the backstop that keeps an envelope the MIME walk
/// cannot reach (bare-CR line ends, an empty boundary, a part hidden from the structure) from
/// passing as plain text. An envelope inside another, in base64 inside base64 (a forwarded
/// message, an opaque signature) or in quoted-printable is not visible here; the walk reaches
/// those.
/// (The offset is the content type's for binary, the line start's for base64.)
pub fn envelope_markers(bytes: &[u8]) -> Vec<usize> {
    let mut hits: Vec<usize> = binary_envelope_markers(bytes).collect();
    // Where base64 can start: an `M` (how a SEQUENCE's base64 begins) at the start of the data
    // or after a byte that is no base64 character: a line start, blanks and `>` (indented or
    // quoted in a reply; the decoding skips those on the following lines too), `base64,` of a
    // data: URI, `?B?` of an encoded word, a quote in JSON, a tag in HTML. One pass over the
    // `M`s; in a base64 body only those that start a line are looked at further.
    let line_starts = memchr::memchr_iter(b'M', bytes)
        .filter(|&p| p == 0 || bytes.get(p - 1).is_some_and(|&c| !is_b64(c)));
    hits.extend(line_starts.filter(|&p| base64_envelope_at(bytes.get(p..).unwrap_or(&[]))));
    hits.sort_unstable();
    hits.dedup();
    hits
}

/// The binary half of [`envelope_markers`], at memory speed: where `OID (Auth)EnvelopedData,
/// [0]` starts, for data that is no text (a decoded attachment), in which the base64 half
/// would look at every `M`.
pub fn binary_envelope_markers(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let markers = marker_bytes();
    memchr::memmem::find_iter(bytes, PKCS_ARC).filter_map(move |p| {
        [2, 3]
            .into_iter()
            .filter_map(|back| p.checked_sub(back))
            .find(|&p| {
                let at = bytes.get(p..).unwrap_or(&[]);
                markers.iter().any(|m| at.starts_with(m))
            })
    })
}

/// The base64 of `OID (Auth)EnvelopedData, [0]` at each of the three alignments a base64 text
/// can give it: what a ContentInfo shows wherever its base64 starts.
/// (The mailbox crate, which has no cryptography and does not depend on this one, keeps the
/// same list in `unseal_mailbox::detect::mentions_smime`.)
const BASE64_SIGNS: [&[u8]; 6] = [
    b"GCSqGSIb3DQEHA6",
    b"BgkqhkiG9w0BBwOg",
    b"YJKoZIhvcNAQcDo",
    b"GCyqGSIb3DQEJEAEXo",
    b"BgsqhkiG9w0BCRABF6",
    b"YLKoZIhvcNAQkQAReg",
];

/// Longest of [`BASE64_SIGNS`] and the binary markers.
pub const SIGN_MAX: usize = 18;

/// Whether an envelope's content type shows in `bytes`, in binary or in base64 at any
/// alignment: a cruder [`envelope_markers`] (no line start needed, no decoding) that runs at
/// memory speed, for data that is no text, in which the base64 half of that search would look
/// at every `M`.
pub fn envelope_signs(bytes: &[u8]) -> bool {
    binary_envelope_markers(bytes).next().is_some()
        || BASE64_SIGNS
            .iter()
            .any(|s| memchr::memmem::find(bytes, s).is_some())
}

/// For structure the walk could not follow (a multipart whose boundary never occurs, an
/// unknown transfer encoding): the first run of base64 lines in `bytes` whose decoding shows an
/// envelope ([`envelope_markers`]), as the offset of the run. One level down only.
pub fn envelope_in_base64_runs(bytes: &[u8]) -> Option<usize> {
    let is_b64_line = |l: &[u8]| {
        let l = l.trim_ascii_end();
        l.len() >= 16 && l.iter().all(|&c| is_b64(c) || c == b'=')
    };
    let mut pos = 0;
    let mut run: Option<usize> = None;
    while pos <= bytes.len() {
        let end =
            memchr::memchr(b'\n', bytes.get(pos..).unwrap_or(&[])).map_or(bytes.len(), |i| pos + i);
        let line = bytes.get(pos..end).unwrap_or(&[]);
        let b64 = is_b64_line(line);
        if b64 && run.is_none() {
            run = Some(pos);
        }
        if (!b64 || end >= bytes.len())
            && let Some(start) = run.take()
        {
            let stop = if b64 { end } else { pos };
            let decoded = decode_base64(bytes.get(start..stop).unwrap_or(&[]));
            if !envelope_markers(&decoded).is_empty() {
                return Some(start);
            }
        }
        pos = end + 1;
    }
    None
}

/// The text of a file in UTF-16 (a byte-order mark, or ASCII with every other byte NUL, as
/// some Windows tools save a message), as UTF-8; `None` for anything else. Mail is never
/// UTF-16, so nothing in such a file is reached by the walk: the caller searches this instead.
pub fn utf16_as_utf8(bytes: &[u8]) -> Option<Vec<u8>> {
    let head = bytes.get(..64.min(bytes.len() & !1))?;
    let ascii_at = |odd: bool| {
        head.len() >= 16
            && head.chunks(2).all(|p| {
                let (text, zero) = if odd { (p[1], p[0]) } else { (p[0], p[1]) };
                zero == 0 && text != 0 && text.is_ascii()
            })
    };
    let (le, skip) = match bytes {
        [0xff, 0xfe, ..] => (true, 2),
        [0xfe, 0xff, ..] => (false, 2),
        _ if ascii_at(false) => (true, 0),
        _ if ascii_at(true) => (false, 0),
        _ => return None,
    };
    let units = bytes.get(skip..)?.chunks_exact(2).map(|p| {
        if le {
            u16::from_le_bytes([p[0], p[1]])
        } else {
            u16::from_be_bytes([p[0], p[1]])
        }
    });
    let text: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    Some(text.into_bytes())
}

/// Where, in characters, an envelope starts in the text of a UTF-16 file (see
/// [`utf16_as_utf8`]).
pub fn utf16_envelope_at(bytes: &[u8]) -> Option<usize> {
    envelope_markers(&utf16_as_utf8(bytes)?).first().copied()
}

/// An envelope in a UTF-16 file: the error that says so.
pub(crate) fn utf16_envelope(bytes: &[u8]) -> Option<crate::error::Error> {
    let at = utf16_envelope_at(bytes)?;
    Some(crate::error::Error::Mime {
        detail: format!(
            "the file is UTF-16 text, which mail never is, and character {at} of it starts an \
             encrypted CMS envelope; convert it to UTF-8 (iconv -f UTF-16 -t UTF-8) and run \
             again"
        ),
    })
}

/// Whether a line (its end trimmed) starts a uuencoded block: `begin`, a mode of digits, a
/// name.
pub fn is_uuencode_begin(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"begin ") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && rest.get(digits) == Some(&b' ')
}

/// The first uuencoded block (`begin 644 name` ... `end`) whose data holds an envelope, as the
/// offset of its `begin` line. Old clients (and some gateways) attach files that way, outside
/// MIME, so the walk never decodes them.
pub fn uuencoded_envelope(bytes: &[u8]) -> Option<usize> {
    for at in memchr::memmem::find_iter(bytes, b"begin ") {
        if at > 0 && !matches!(bytes.get(at - 1), Some(b'\n' | b'\r')) {
            continue;
        }
        let rest = bytes.get(at..)?;
        let mut lines = rest.split(|&c| c == b'\n').map(<[u8]>::trim_ascii_end);
        if !is_uuencode_begin(lines.next()?) {
            continue;
        }
        let mut data = Vec::new();
        for line in lines {
            if line == b"end" || line.is_empty() {
                break;
            }
            let Some((&len, chars)) = line.split_first() else {
                break;
            };
            let n = usize::from(len.wrapping_sub(32) & 63);
            if n == 0 {
                continue;
            }
            let six = |q: &[u8], i: usize| q.get(i).copied().unwrap_or(b' ').wrapping_sub(32) & 63;
            let line_start = data.len();
            for q in chars.chunks(4) {
                let v = [six(q, 0), six(q, 1), six(q, 2), six(q, 3)];
                data.extend_from_slice(&[
                    v[0] << 2 | v[1] >> 4,
                    v[1] << 4 | v[2] >> 2,
                    v[2] << 6 | v[3],
                ]);
            }
            data.truncate(line_start + n);
            if data.len() > INFLATE_LIMIT as usize {
                break;
            }
        }
        if !envelope_markers(&data).is_empty() || compressed_envelope(&data).is_some() {
            return Some(at);
        }
    }
    None
}

/// What the raw `bytes` of a message show beyond the `reached` envelopes the walk opened or
/// noted: an envelope visible as it is ([`envelope_markers`]), one uuencoded, or a UTF-16 file
/// with one. The error for the first such, if any.
pub(crate) fn unreached(bytes: &[u8], reached: usize) -> Option<crate::error::Error> {
    if reached == 0
        && let Some(e) = utf16_envelope(bytes)
    {
        return Some(e);
    }
    if let Some(&at) = envelope_markers(bytes).get(reached) {
        return Some(unreachable_envelope(bytes, at));
    }
    if let Some(at) = uuencoded_envelope(bytes) {
        return Some(crate::error::Error::Mime {
            detail: format!(
                "the uuencoded block at byte {at} holds an encrypted CMS envelope; uuencode is \
                 not opened, so nothing was decrypted"
            ),
        });
    }
    None
}

/// Most bytes inflated from one archive (or archive member) while looking for envelopes: a
/// bound on time and on what a zip bomb can cost; what lies beyond is not looked at.
const INFLATE_LIMIT: u64 = 256 << 20;

/// Reads `r` in pieces through a [`MarkerWatch`], drawing on `budget` (what the whole archive
/// may still inflate to: members together, so that one deflate bomb many headers point at
/// costs once).
fn watch_reader(mut r: impl std::io::Read, budget: &mut u64) -> bool {
    let mut w = MarkerWatch::default();
    let mut buf = vec![0u8; 64 * 1024];
    while *budget > 0 {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                w.feed(buf.get(..n).unwrap_or(&[]));
                *budget = budget.saturating_sub(n as u64);
                if w.found().is_some() {
                    return true;
                }
            }
        }
    }
    false
}

/// Whether `bytes` start a zlib stream: CMF 0x78 (deflate, 32 KiB window) and a header
/// checksum that holds.
pub fn is_zlib_header(bytes: &[u8]) -> bool {
    matches!(bytes, [0x78, flg, ..] if (0x7800u16 | u16::from(*flg)).is_multiple_of(31))
}

/// Whether `bytes`, a gzip file or a zip archive, holds an envelope in what it compresses
/// (a mailbox or message saved as `.gz`, encrypted mail sent on as a zip). Looked for, not
/// opened: unseal does not write archives, so such an item can only be reported. Zip members
/// are found by their local headers and inflated one by one (stored ones show as they are).
pub fn compressed_envelope(bytes: &[u8]) -> Option<&'static str> {
    let mut budget = INFLATE_LIMIT;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return watch_reader(flate2::read::MultiGzDecoder::new(bytes), &mut budget)
            .then_some("gzip");
    }
    if is_zlib_header(bytes) {
        return watch_reader(flate2::read::ZlibDecoder::new(bytes), &mut budget).then_some("zlib");
    }
    if !bytes.starts_with(b"PK\x03\x04") {
        return None;
    }
    for at in memchr::memmem::find_iter(bytes, b"PK\x03\x04") {
        let Some(h) = bytes.get(at..at + 30) else {
            break;
        };
        let le16 = |i: usize| usize::from(u16::from_le_bytes([h[i], h[i + 1]]));
        let method = le16(8);
        let data = at + 30 + le16(26) + le16(28);
        let Some(member) = bytes.get(data..) else {
            continue;
        };
        // Deflate streams end by themselves, whatever the sizes in the header say.
        if budget == 0 {
            break;
        }
        if method == 8 && watch_reader(flate2::read::DeflateDecoder::new(member), &mut budget) {
            return Some("zip");
        }
    }
    None
}

/// Where a second envelope starts after the ContentInfo at the start of `cms` (two envelopes
/// written back to back into one body or file): the caller opens the first only, so the
/// second would be dropped without a word.
pub fn envelope_after_content_info(cms: &[u8]) -> Option<usize> {
    let n = super::signed::content_info_len(cms)?;
    let rest = cms.get(n..)?;
    envelope_markers(rest).first().map(|&at| n + at)
}

/// [`envelope_markers`] over data arriving in pieces: whether any piece, or any join of two,
/// held a marker.
#[derive(Debug, Default)]
pub struct MarkerWatch {
    /// The end of the data so far: a marker starting there may need what comes next.
    carry: Vec<u8>,
    /// Offset of the first marker found, counted from the start of the data.
    found: Option<u64>,
    seen: u64,
}

impl MarkerWatch {
    pub fn feed(&mut self, data: &[u8]) {
        if self.found.is_some() || data.is_empty() {
            return;
        }
        // Enough for a binary marker, or a line start and the base64 decoded after it.
        let keep = LOOKAHEAD + 16;
        let base = self.seen - self.carry.len() as u64;
        let mut joined = std::mem::take(&mut self.carry);
        if data.len() < keep {
            // Small pieces: carry and piece together, and the end of that carried on.
            joined.extend_from_slice(data);
            self.found = envelope_markers(&joined)
                .first()
                .map(|&at| base + at as u64);
            let from = joined.len().saturating_sub(keep);
            joined.drain(..from);
            self.carry = joined;
        } else {
            // A marker across the join starts in the carry and ends in the piece's first bytes.
            joined.extend_from_slice(data.get(..keep).unwrap_or(data));
            self.found = envelope_markers(&joined)
                .first()
                .map(|&at| base + at as u64)
                .or_else(|| {
                    envelope_markers(data)
                        .first()
                        .map(|&at| self.seen + at as u64)
                });
            joined.clear();
            joined.extend_from_slice(data.get(data.len() - keep..).unwrap_or(&[]));
            self.carry = joined;
        }
        self.seen += data.len() as u64;
    }

    pub fn found(&self) -> Option<u64> {
        self.found
    }
}

/// The error for an envelope that [`envelope_markers`] sees but the MIME walk did not reach.
pub(crate) fn unreachable_envelope(msg: &[u8], at: usize) -> crate::error::Error {
    let hint = if memchr::memchr(b'\n', msg).is_none() && memchr::memchr(b'\r', msg).is_some() {
        "; its lines end in a bare CR (classic Mac OS), which is not read as a line break"
    } else {
        " (an empty or missing boundary, a part outside the MIME structure, or an S/MIME \
         message quoted as text)"
    };
    crate::error::Error::Mime {
        detail: format!(
            "byte {at} holds an encrypted CMS envelope that no MIME part leads to{hint}; \
             nothing was decrypted"
        ),
    }
}

/// Convenience for callers holding raw header values: is this part an envelope? The body
/// decides, whatever the label: real clients send envelopes as `application/octet-stream`,
/// `text/plain` or with no Content-Type at all, and an envelope passed over as plain text would
/// be lost once the key is gone. `transfer_encoding` is the Content-Transfer-Encoding value,
/// `body` the encoded body.
pub fn is_envelope_part(transfer_encoding: Option<&str>, body: &[u8]) -> bool {
    classify_body(body, Cte::parse(transfer_encoding)) == PartKind::Envelope
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    /// `SEQUENCE (indefinite) { OID <oid>, [0] { ... } }` — enough for the peek.
    fn content_info(oid: &der::asn1::ObjectIdentifier, definite: bool) -> Vec<u8> {
        let o = oid.as_bytes();
        let mut v = vec![0x06, o.len() as u8];
        v.extend_from_slice(o);
        v.extend_from_slice(&[0xa0, 0x03, 0x02, 0x01, 0x00]);
        let mut out = if definite {
            vec![0x30, 0x82, 0x00, v.len() as u8]
        } else {
            vec![0x30, 0x80]
        };
        out.extend_from_slice(&v);
        if !definite {
            out.extend_from_slice(&[0, 0]);
        }
        out
    }

    fn b64_lines(data: &[u8], eol: &str) -> Vec<u8> {
        let s = STANDARD.encode(data);
        let mut out = String::new();
        for chunk in s.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push_str(eol);
        }
        out.into_bytes()
    }

    fn env() -> Vec<u8> {
        content_info(&oid::ENVELOPED_DATA, false)
    }

    #[test]
    fn candidate_labels_are_the_smime_ones_and_p7m_names() {
        for (ct, cd) in [
            (
                "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m",
                None,
            ),
            ("application/x-pkcs7-mime; smime-type=enveloped-data", None),
            (
                "application/pkcs7-mime; smime-type=authEnveloped-data",
                None,
            ),
            ("application/pkcs7-mime", None),
            ("application/x-pkcs7-mime; name=smime.p7m", None),
            ("application/pkcs7-mime; smime-type=signed-data", None), // lying label
            ("application/octet-stream; name=\"SMIME.P7M\"", None),
            (
                "application/octet-stream",
                Some("attachment; filename=smime.p7m"),
            ),
        ] {
            let cd = cd.map(ContentType::parse);
            assert!(
                is_candidate_label(&ContentType::parse(ct), cd.as_ref()),
                "{ct} {cd:?}"
            );
        }
        for (ct, cd) in [
            ("application/octet-stream", None),
            ("application/octet-stream; name=smime.p7s", None),
            ("text/plain", Some("attachment; filename=smime.p7m")),
            ("application/pkcs7-signature", None),
        ] {
            let cd = cd.map(ContentType::parse);
            assert!(
                !is_candidate_label(&ContentType::parse(ct), cd.as_ref()),
                "{ct} {cd:?}"
            );
        }
    }

    #[test]
    fn an_envelope_is_one_by_its_body_whatever_the_label() {
        assert!(is_envelope_part(Some("base64"), &b64_lines(&env(), "\r\n")));
        let signed = b64_lines(&content_info(&oid::SIGNED_DATA, false), "\n");
        assert!(!is_envelope_part(Some("base64"), &signed));
        assert!(!is_envelope_part(Some("base64"), b"plain text"));
    }

    #[test]
    fn lying_label_decided_by_oid() {
        let signed = b64_lines(&content_info(&oid::SIGNED_DATA, false), "\n");
        assert_eq!(classify_body(&signed, Cte::Base64), PartKind::SignedData);
        let data = b64_lines(&content_info(&oid::DATA, true), "\n");
        assert_eq!(classify_body(&data, Cte::Base64), PartKind::Other);
        let auth = content_info(&oid::AUTH_ENVELOPED_DATA, true);
        assert_eq!(classify_body(&auth, Cte::Identity), PartKind::Envelope);
        assert!(label_says_envelope(&ContentType::parse(
            "application/pkcs7-mime; smime-type=authEnveloped-data"
        )));
        assert!(!label_says_envelope(&ContentType::parse(
            "application/pkcs7-mime"
        )));
    }

    #[test]
    fn transfer_encodings() {
        let der = env();
        assert!(is_envelope_part(Some("binary"), &der));
        assert!(is_envelope_part(Some("8bit"), &der));
        assert!(is_envelope_part(None, &der));
        let qp: Vec<u8> = der
            .iter()
            .flat_map(|b| format!("={b:02X}").into_bytes())
            .collect();
        assert!(is_envelope_part(Some("Quoted-Printable"), &qp));
        assert!(!is_envelope_part(Some("x-uuencode"), &der));
        assert!(!is_envelope_part(Some("base64"), b"not base64 at all!"));
        assert!(!is_envelope_part(Some("base64"), b""));
    }

    /// ContentInfo headers of every length form, so that the marker starts at every offset
    /// modulo 3 of the base64 text.
    fn headed(oid: &der::asn1::ObjectIdentifier, head: &[u8]) -> Vec<u8> {
        let mut v = head.to_vec();
        v.extend_from_slice(&content_info(oid, false)[2..]);
        v
    }

    #[test]
    fn markers_are_found_in_binary_anywhere_and_in_base64_at_line_starts() {
        let heads: [&[u8]; 5] = [
            &[0x30, 0x80],
            &[0x30, 0x81, 0x90],
            &[0x30, 0x82, 0x01, 0x00],
            &[0x30, 0x83, 0x01, 0x00, 0x00],
            &[0x30, 0x20],
        ];
        for o in [oid::ENVELOPED_DATA, oid::AUTH_ENVELOPED_DATA] {
            for head in heads {
                let der = headed(&o, head);
                // Binary: the offset of the content type.
                assert_eq!(envelope_markers(&der), [head.len()], "binary {head:02x?}");
                let mut inside = b"xyz".to_vec();
                inside.extend_from_slice(&der);
                assert_eq!(envelope_markers(&inside), [3 + head.len()]);
                for eol in ["\r\n", "\n", "\r"] {
                    let head_text = format!("Content-Type: text/plain{eol}{eol}");
                    let mut msg = head_text.clone().into_bytes();
                    msg.extend_from_slice(&b64_lines(&der, eol));
                    assert_eq!(
                        envelope_markers(&msg),
                        [head_text.len()],
                        "base64 {head:02x?} {eol:?}"
                    );
                    assert_eq!(envelope_markers(&b64_lines(&der, eol)), [0]);
                }
                // Lines of four characters: the decoding looks past them.
                let text = STANDARD.encode(&der);
                let short: String = text
                    .as_bytes()
                    .chunks(4)
                    .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
                    .collect();
                assert_eq!(envelope_markers(short.as_bytes()), [0]);
                // Quoted in a reply or indented, and in a data: URI: seen.
                let quoted: String = short.lines().map(|l| format!("> {l}\n")).collect();
                assert_eq!(envelope_markers(format!("hi\n{quoted}").as_bytes()), [5]);
                let indented = format!("hi\n\t{text}\n");
                assert_eq!(envelope_markers(indented.as_bytes()), [4]);
                let uri = format!("<img src=\"data:application/pkcs7-mime;base64,{text}\">");
                assert_eq!(envelope_markers(uri.as_bytes()).len(), 1);
                // After any byte that is no base64 character: in prose, JSON, an encoded word.
                for wrapped in [
                    format!("see: {text}"),
                    format!("{{\"data\":\"{text}\"}}"),
                    format!("Subject: =?utf-8?B?{text}?="),
                    format!("<a href=\"DATA:x;BASE64,{text}\">"),
                ] {
                    assert_eq!(envelope_markers(wrapped.as_bytes()).len(), 1, "{wrapped}");
                }
                // Glued to other base64 characters it does not decode as one: not seen.
                assert!(envelope_markers(format!("xyz{text}").as_bytes()).is_empty());
            }
        }
        for o in [oid::SIGNED_DATA, oid::DATA] {
            let der = headed(&o, &[0x30, 0x80]);
            assert_eq!(envelope_markers(&der).len(), 0);
            assert_eq!(envelope_markers(&b64_lines(&der, "\n")).len(), 0);
        }
        assert_eq!(envelope_markers(b"").len(), 0);
    }

    #[test]
    fn envelopes_inside_gzip_and_zip_are_seen() {
        use std::io::Write as _;
        let mut msg = b"Content-Type: application/pkcs7-mime\n\n".to_vec();
        msg.extend(b64_lines(&env(), "\n"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&msg).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(compressed_envelope(&gz), Some("gzip"));
        let mut deflate =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflate.write_all(&msg).unwrap();
        let deflated = deflate.finish().unwrap();
        let zip_of = |member: &[u8], method: u16| {
            let mut z = b"PK\x03\x04".to_vec();
            z.extend_from_slice(&[20, 0, 0, 0]);
            z.extend_from_slice(&method.to_le_bytes());
            z.extend_from_slice(&[0; 4 + 4]); // time, date, crc
            z.extend_from_slice(&(member.len() as u32).to_le_bytes());
            z.extend_from_slice(&(msg.len() as u32).to_le_bytes());
            z.extend_from_slice(&5u16.to_le_bytes());
            z.extend_from_slice(&0u16.to_le_bytes());
            z.extend_from_slice(b"m.eml");
            z.extend_from_slice(member);
            z
        };
        assert_eq!(compressed_envelope(&zip_of(&deflated, 8)), Some("zip"));
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&msg).unwrap();
        assert_eq!(compressed_envelope(&z.finish().unwrap()), Some("zlib"));
        // The same without an envelope in it, and things that are no archive.
        let mut plain = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        plain.write_all(b"From: a\n\nhello\n").unwrap();
        assert_eq!(compressed_envelope(&plain.finish().unwrap()), None);
        assert_eq!(compressed_envelope(&msg), None);
        assert_eq!(compressed_envelope(b"PK\x03\x04short"), None);
        assert_eq!(compressed_envelope(&[0x1f, 0x8b, 0, 1, 2]), None);
    }

    #[test]
    fn the_watch_finds_a_marker_split_between_pieces() {
        let mut data = vec![b'.'; 1000];
        let at = 500;
        let mut text = b"\n".to_vec();
        text.extend(b64_lines(&env(), "\n"));
        data.splice(at..at, text.drain(..));
        let whole = envelope_markers(&data)[0] as u64;
        for piece in [1, 2, 7, 13, 64, 4096] {
            let mut w = MarkerWatch::default();
            for c in data.chunks(piece) {
                w.feed(c);
            }
            assert_eq!(w.found(), Some(whole), "pieces of {piece}");
        }
        let mut w = MarkerWatch::default();
        for c in vec![b'A'; 5000].chunks(3) {
            w.feed(c);
        }
        assert_eq!(w.found(), None);
    }

    #[test]
    fn lenient_base64() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let clean = STANDARD.encode(&data);
        assert_eq!(decode_base64(clean.as_bytes()), data);
        assert_eq!(decode_base64(&b64_lines(&data, "\r\n")), data);
        assert_eq!(decode_base64(&b64_lines(&data, "\n")), data);
        let messy: String = clean
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                if i % 7 == 0 {
                    vec![' ', c, '\t']
                } else {
                    vec![c]
                }
            })
            .collect();
        assert_eq!(decode_base64(messy.as_bytes()), data);
        let unpadded = clean.trim_end_matches('=');
        assert_eq!(decode_base64(unpadded.as_bytes()), data);
        assert_eq!(decode_base64(b"QUJD\nR"), b"ABC");
        assert_eq!(
            decode_base64_prefix(clean.as_bytes(), 64),
            data[..66].to_vec()
        );
    }

    #[test]
    fn qp_soft_breaks_and_garbage() {
        assert_eq!(decode_qp(b"a=3Db=\r\nc= \nd=zz=\r"), b"a=bcd=zz=\r");
        assert_eq!(decode_qp(b"="), b"");
    }

    #[test]
    fn peek_never_panics_on_short_input() {
        for i in 0..20 {
            let der = env();
            let _ = classify_der_prefix(&der[..i.min(der.len())]);
        }
        assert_eq!(classify_der_prefix(&[0x30, 0x89, 1, 2, 3]), PartKind::Other);
        assert_eq!(
            classify_der_prefix(&[0x30, 0x80, 0x06, 0x00]),
            PartKind::Other
        );
    }
}

#[cfg(test)]
mod base64_tests {
    use super::*;
    use base64::Engine;

    fn encode_lines(data: &[u8], width: usize, eol: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(width)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        (lines.join(eol) + eol).into_bytes()
    }

    #[test]
    fn fast_and_filtering_paths_agree() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for (width, eol) in [
            (76, "\r\n"),
            (64, "\n"),
            (4, "\n"),
            (1000, "\r\n"),
            (70_001, "\n"),
        ] {
            for len in [0, 1, 2, 3, 4, 5, 100, 65_537, 200_000] {
                let body = encode_lines(&data[..len], width, eol);
                assert!(
                    decode_base64_lines(&body).is_some(),
                    "clean body takes the fast path"
                );
                assert_eq!(
                    decode_base64(&body),
                    data[..len],
                    "width {width}, {len} bytes"
                );
                assert_eq!(decode_base64_filtered(&body), data[..len]);
            }
        }
    }

    /// The line-width guess: lines of changing width, and a guess that spans a short line
    /// (its LF lands where the last width says a line ends), decode as the filtering path does.
    #[test]
    fn lines_of_changing_width_decode_alike() {
        let data: Vec<u8> = (0..30_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        let mut rest = b64.as_bytes();
        let mut body = Vec::new();
        let widths = [64, 64, 8, 4, 3, 64, 76, 76, 1, 12, 76];
        let mut i = 0;
        while !rest.is_empty() {
            let w = widths[i % widths.len()].min(rest.len());
            body.extend_from_slice(&rest[..w]);
            body.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
            rest = &rest[w..];
            i += 1;
        }
        assert_eq!(decode_base64(&body), data);
        // An 8-wide line, then a 3-wide and a 4-wide one: the second's guessed end (8 bytes
        // on) is the third's LF.
        let spans = b"QUJDREVG\nR0h\nJSkt\nMTU5PUFFSU1Q=\n";
        assert_eq!(spans[9 + 8], b'\n');
        assert!(decode_base64_lines(spans).is_none());
        assert_eq!(decode_base64(spans), b"ABCDEFGHIJKLMNOPQRST");
    }

    #[test]
    fn junk_falls_back_to_filtering() {
        let mut body = encode_lines(b"hello, world, this is base64", 8, "\n");
        body.splice(3..3, b"!!".iter().copied());
        assert!(decode_base64_lines(&body).is_none());
        assert_eq!(decode_base64(&body), b"hello, world, this is base64");
    }

    /// Whitespace inside a line (a space, a tab, a CR used as the line ending) must not be
    /// counted into a quantum and then dropped by the decoder: everything after would shift.
    #[test]
    fn whitespace_inside_lines_does_not_shift_the_quanta() {
        assert_eq!(decode_base64(b"QUJD REVG\n"), b"ABCDEF");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let clean = encode_lines(&data, 76, "\n");
        for (at, what) in [(50_000usize, &b" "[..]), (65_000, b"\t"), (70_001, b"\r")] {
            let mut body = clean.clone();
            body.splice(at..at, what.iter().copied());
            assert_eq!(decode_base64(&body), data, "{what:?} at {at}");
        }
        let cr_only = encode_lines(&data, 76, "\r");
        assert_eq!(decode_base64(&cr_only), data);
    }
}
