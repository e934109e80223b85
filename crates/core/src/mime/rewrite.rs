//! Splicing: an outer entity's headers around an inner entity, and the trace header.

use std::ops::Range;

use base64::Engine as _;

use super::header::{self, HeaderBlock};
use super::walk::{Data, Piece, Rewritten};
use crate::LayerInfo;

/// Name of the trace header field (one per opened layer and per removed signature).
pub const TRACE_HEADER: &str = "X-Unseal-Decrypted";

/// Soft limit for trace header lines; the hard limit of RFC 5322 is 998 bytes.
const SOFT_LINE: usize = 78;
const HARD_LINE: usize = 990;

fn is_mime_field(name: &[u8]) -> bool {
    name.len() >= 8
        && name
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"content-"))
}

/// Does the entity start with a header field (`name:`) or with the blank line of an empty
/// header section? If not (a plaintext with no headers at all), a blank line must separate it
/// from the outer headers spliced in front of it.
pub fn starts_like_entity(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"\n") || bytes.starts_with(b"\r\n") || bytes.is_empty() {
        return true;
    }
    let line_end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
    let line = bytes.get(..line_end).unwrap_or(bytes);
    match memchr::memchr(b':', line) {
        Some(colon) if colon > 0 => line
            .get(..colon)
            .is_some_and(|n| n.iter().all(|&c| (33..=126).contains(&c))),
        _ => false,
    }
}

/// The outer entity's header fields without those named in `drop` (lower-case), each ending in
/// a line break.
pub(crate) fn fields_without<'a>(
    data: &Data<'a>,
    hb: &HeaderBlock,
    drop: &[&str],
    eol: &'static [u8],
) -> Vec<Piece<'a>> {
    let bytes = data.bytes();
    let mut pieces = Vec::new();
    for f in &hb.fields {
        if drop.iter().any(|d| f.name_is(bytes, d)) {
            continue;
        }
        pieces.push(Piece::new(data, f.range()));
        if !bytes.get(f.range()).is_some_and(|b| b.ends_with(b"\n")) {
            pieces.push(Piece::owned(eol.to_vec()));
        }
    }
    pieces
}

/// Replaces an entity by an inner one (decrypted plaintext, or the content of a removed
/// signature): every outer header field is kept in order except Content-* (which come from the
/// inner entity) and MIME-Version when the inner entity has its own; then the inner entity
/// follows byte-exact (or as rewritten, when it held envelopes itself).
pub(crate) fn replace_entity<'a>(
    outer: &Data<'a>,
    outer_hb: &HeaderBlock,
    inner: &Data<'a>,
    inner_range: Range<usize>,
    inner_rw: Option<Rewritten<'a>>,
    eol: &'static [u8],
) -> Rewritten<'a> {
    let inner_bytes = inner.bytes().get(inner_range.clone()).unwrap_or(&[]);
    let inner_mv = match &inner_rw {
        Some(rw) => rw.mime_version,
        None => {
            header::parse_block(inner_bytes, 0, inner_bytes.len()).has(inner_bytes, "mime-version")
        }
    };
    let outer_bytes = outer.bytes();
    let mut pieces = Vec::new();
    let mut outer_mv = false;
    for f in &outer_hb.fields {
        let name = f.name(outer_bytes);
        if is_mime_field(name) {
            continue;
        }
        if name.eq_ignore_ascii_case(b"mime-version") {
            if inner_mv {
                continue;
            }
            outer_mv = true;
        }
        pieces.push(Piece::new(outer, f.range()));
        if !outer_bytes
            .get(f.range())
            .is_some_and(|b| b.ends_with(b"\n"))
        {
            pieces.push(Piece::owned(eol.to_vec()));
        }
    }
    let header_insert = pieces.len();
    if !starts_like_entity(inner_bytes) {
        pieces.push(Piece::owned(eol.to_vec()));
    }
    match inner_rw {
        Some(rw) => pieces.extend(rw.pieces),
        None => pieces.push(Piece::new(inner, inner_range)),
    }
    Rewritten {
        pieces,
        header_insert,
        mime_version: outer_mv || inner_mv,
    }
}

/// Base64 in 76-character lines.
pub fn encode_base64_lines(data: &[u8], eol: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(text.len() + text.len() / 76 * eol.len() + eol.len());
    for line in text.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(eol);
    }
    out
}

/// A quoted-string with `"` and `\` escaped and control characters (CR, LF, ...) replaced, so
/// that text from a hostile certificate cannot inject header lines.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An RFC 2045 token as it is, anything else quoted.
fn token_or_quoted(s: &str) -> String {
    let is_token = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b));
    if is_token { s.to_string() } else { quote(s) }
}

/// `Name: p1; p2; ...` folded between parameters near 78 bytes, and inside over-long values
/// so that no line exceeds 990 bytes; every line ends with `eol`.
pub fn fold_field(name: &str, params: &[String], eol: &[u8]) -> Vec<u8> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = format!("{name}:");
    for (i, p) in params.iter().enumerate() {
        let sep = if i + 1 < params.len() { ";" } else { "" };
        if i > 0 && cur.len() + 1 + p.len() + sep.len() > SOFT_LINE {
            lines.push(std::mem::take(&mut cur));
        }
        cur.push(' ');
        cur.push_str(p);
        cur.push_str(sep);
    }
    lines.push(cur);
    let mut out = Vec::new();
    // Continuation lines start with the space pushed before each parameter.
    for line in &lines {
        for (j, chunk) in hard_wrap(line).iter().enumerate() {
            if j > 0 && !chunk.starts_with(' ') {
                out.push(b' ');
            }
            out.extend_from_slice(chunk.as_bytes());
            out.extend_from_slice(eol);
        }
    }
    out
}

/// Splits a line longer than [`HARD_LINE`]: before a space when there is one (unfolding then
/// restores the text exactly), else at a character boundary (unfolding adds one space).
fn hard_wrap(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while rest.len() > HARD_LINE {
        let mut cut = HARD_LINE - 1;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let window = rest.get(..cut).unwrap_or(rest);
        let at = match window.rfind(' ') {
            Some(sp) if sp > 0 => sp,
            _ => cut,
        };
        let (head, tail) = rest.split_at(at);
        out.push(head);
        rest = tail;
    }
    out.push(rest);
    out
}

/// The trace field for one opened envelope.
pub fn layer_field(info: &LayerInfo, path: &str, at: &str, eol: &[u8]) -> Vec<u8> {
    let mut params = vec![info.kind.name().to_string()];
    if !path.is_empty() {
        params.push(format!("part={}", quote(path)));
    }
    params.push(format!("cipher={}", token_or_quoted(&info.content_cipher)));
    params.push(format!("key-transport={}", quote(&info.key_transport)));
    params.push(format!(
        "recipient={}",
        quote(&info.used_recipient.to_string())
    ));
    params.push(format!("at={}", quote(at)));
    fold_field(TRACE_HEADER, &params, eol)
}

/// The trace field for a removed encrypt-then-sign signature.
pub fn removal_field(path: &str, description: &str, at: &str, eol: &[u8]) -> Vec<u8> {
    let mut params = vec!["signature-removed".to_string()];
    if !path.is_empty() {
        params.push(format!("part={}", quote(path)));
    }
    params.push(format!("reason={}", quote(description)));
    params.push(format!("at={}", quote(at)));
    fold_field(TRACE_HEADER, &params, eol)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cms::{EnvelopeKind, RecipientId};

    fn info(recipient: RecipientId) -> LayerInfo {
        LayerInfo {
            kind: EnvelopeKind::Enveloped,
            content_cipher: "AES-256-CBC".into(),
            key_transport: "RSA PKCS#1 v1.5".into(),
            recipients: vec![recipient.clone()],
            used_recipient: recipient,
            key_source: "bob.p12".into(),
            ciphertext_len: 10,
            plaintext_len: 8,
        }
    }

    #[test]
    fn layer_field_format_and_folding() {
        let f = layer_field(
            &info(RecipientId::SubjectKeyId(vec![0x1f, 0xa0])),
            "",
            "Mon, 1 Jan 2024 00:00:00 +0000",
            b"\r\n",
        );
        let text = String::from_utf8(f).unwrap();
        assert!(
            text.starts_with("X-Unseal-Decrypted: enveloped-data; cipher=AES-256-CBC;"),
            "{text}"
        );
        assert!(
            text.ends_with("at=\"Mon, 1 Jan 2024 00:00:00 +0000\"\r\n"),
            "{text}"
        );
        let unfolded = text.replace("\r\n ", " ");
        assert_eq!(
            unfolded,
            "X-Unseal-Decrypted: enveloped-data; cipher=AES-256-CBC; key-transport=\"RSA PKCS#1 v1.5\"; \
             recipient=\"subjectKeyIdentifier 1FA0\"; at=\"Mon, 1 Jan 2024 00:00:00 +0000\"\r\n"
        );
        for line in text.split("\r\n") {
            assert!(line.len() <= SOFT_LINE, "{line}");
        }
    }

    #[test]
    fn hostile_recipient_is_quoted_and_wrapped() {
        let long_word = "A".repeat(3000);
        let ski = RecipientId::SubjectKeyId(vec![0xab; 2000]);
        let mut i = info(ski);
        i.content_cipher = format!("RC2-CBC/40 \"x\"\r\nInjected: yes {long_word}");
        let f = layer_field(&i, "2.1", "now", b"\n");
        let text = String::from_utf8(f).unwrap();
        assert!(text.contains("part=\"2.1\""));
        for line in text.split('\n') {
            assert!(line.len() < 998, "{}", line.len());
            assert!(!line.starts_with("Injected"));
        }
        assert!(text.contains("cipher=\"RC2-CBC/40 \\\"x\\\"??Injected: yes"));
        // Every line after the first is a continuation line.
        assert!(
            text.trim_end()
                .split('\n')
                .skip(1)
                .all(|l| l.starts_with(' '))
        );
    }

    #[test]
    fn removal_field_format() {
        let f = removal_field(
            "",
            "opaque SignedData at top level (encrypt-then-sign): signature removed",
            "t",
            b"\n",
        );
        let text = String::from_utf8(f).unwrap().replace("\n ", " ");
        assert_eq!(
            text,
            "X-Unseal-Decrypted: signature-removed; reason=\"opaque SignedData at top level \
             (encrypt-then-sign): signature removed\"; at=\"t\"\n"
        );
    }

    #[test]
    fn entity_start_detection() {
        assert!(starts_like_entity(b"Content-Type: text/plain\r\n\r\nx"));
        assert!(starts_like_entity(b"\r\nbody"));
        assert!(!starts_like_entity(b"Hello Bob, this is: text\n"));
        assert!(!starts_like_entity(b": x\n"));
    }
}
