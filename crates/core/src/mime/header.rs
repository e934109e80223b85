//! Header blocks and structured header values (Content-Type and friends), as byte ranges.
//!
//! Hand-written rather than taken from `mail-parser`: splicing needs the exact byte extent of
//! every header field (with its folded continuation lines and its own line ending) and of the
//! blank line that ends the block, in entities that may live in the original message or in a
//! decrypted plaintext buffer. `mail-parser` decodes values (charsets, encoded words, bodies),
//! stores offsets as `u32`, and gives offsets relative to each nested message, which makes
//! byte-exact reassembly fragile; here only the few fields S/MIME needs are interpreted.

use std::ops::Range;

/// One header field: `start..end` covers the name, the value, every continuation line and the
/// field's final line ending (if the input had one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub start: usize,
    /// End of the name (position of the ':'), or `start` when the line has no colon.
    pub name_end: usize,
    pub end: usize,
}

/// The header block of one entity, positions relative to the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderBlock {
    pub fields: Vec<Field>,
    /// Where the header fields end: the start of the blank line (or of the body when there is
    /// no blank line, or the end of the entity).
    pub fields_end: usize,
    /// Where the body starts (after the blank line).
    pub body_start: usize,
    /// More than [`MAX_FIELDS`] fields: parsing stopped there, and the positions above are
    /// not to be trusted (the walk refuses such an entity).
    pub overflow: bool,
}

/// The most header fields read in one entity: real ones have tens to hundreds (a long trail of
/// Received fields), while a hostile 60 MB header of `a:` lines would otherwise cost eight
/// times its size in field records.
pub const MAX_FIELDS: usize = 20_000;

/// Position just after the next LF at or after `pos` (or `end`).
pub fn line_end(bytes: &[u8], pos: usize, end: usize) -> usize {
    let hay = bytes.get(pos..end).unwrap_or(&[]);
    match memchr::memchr(b'\n', hay) {
        Some(i) => pos + i + 1,
        None => end,
    }
}

fn is_blank_line(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// Parses the header block of the entity `bytes[start..end]`.
pub fn parse_block(bytes: &[u8], start: usize, end: usize) -> HeaderBlock {
    let end = end.min(bytes.len());
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = start.min(end);
    while pos < end {
        let next = line_end(bytes, pos, end);
        let line = bytes.get(pos..next).unwrap_or(&[]);
        if is_blank_line(line) {
            return HeaderBlock {
                fields,
                fields_end: pos,
                body_start: next,
                overflow: false,
            };
        }
        let first = line.first().copied().unwrap_or(b'\n');
        if (first == b' ' || first == b'\t') && !fields.is_empty() {
            if let Some(f) = fields.last_mut() {
                f.end = next;
            }
        } else {
            if fields.len() == MAX_FIELDS {
                return HeaderBlock {
                    fields,
                    fields_end: pos,
                    body_start: pos,
                    overflow: true,
                };
            }
            let name_end = memchr::memchr(b':', line).map(|i| pos + i).unwrap_or(pos);
            fields.push(Field {
                start: pos,
                name_end,
                end: next,
            });
        }
        pos = next;
    }
    HeaderBlock {
        fields,
        fields_end: end,
        body_start: end,
        overflow: false,
    }
}

impl Field {
    pub fn name<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        trim(bytes.get(self.start..self.name_end).unwrap_or(&[]))
    }

    pub fn name_is(&self, bytes: &[u8], name: &str) -> bool {
        self.name(bytes).eq_ignore_ascii_case(name.as_bytes())
    }

    /// The value unfolded (line breaks removed), lossily decoded as UTF-8.
    pub fn value(&self, bytes: &[u8]) -> String {
        if self.name_end == self.start {
            return String::new();
        }
        let raw = bytes.get(self.name_end + 1..self.end).unwrap_or(&[]);
        let unfolded: Vec<u8> = raw
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect();
        String::from_utf8_lossy(trim(&unfolded)).into_owned()
    }

    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

impl HeaderBlock {
    /// The first field named `name` (case-insensitive).
    pub fn get(&self, bytes: &[u8], name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|f| f.name_is(bytes, name))
            .map(|f| f.value(bytes))
    }

    pub fn has(&self, bytes: &[u8], name: &str) -> bool {
        self.fields.iter().any(|f| f.name_is(bytes, name))
    }
}

pub fn trim(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// The longest Content-Type or Content-Disposition value read, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// The most parameters read from one.
pub const MAX_PARAMS: usize = 64;

/// A parsed `Content-Type` (or `Content-Disposition`: then `mime_type` holds the disposition).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContentType {
    /// Lower-case `type/subtype` (or disposition type).
    pub mime_type: String,
    /// Parameters with lower-case names; RFC 2231 continuations and charsets already joined and
    /// decoded.
    pub params: Vec<(String, String)>,
}

impl ContentType {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn main_type(&self) -> &str {
        self.mime_type.split('/').next().unwrap_or("")
    }

    /// Parses `type/subtype; a=b; c="d"` leniently: comments are dropped, quoted strings
    /// unescaped, `name*=charset''percent%20encoded` and `name*0=`/`name*1*=` continuations
    /// joined. Never fails: garbage gives an empty type.
    pub fn parse(value: &str) -> ContentType {
        // A hostile field can hold millions of parameters; real ones hold a handful. What lies
        // past these limits is not read (an envelope that this hides from the walk is still
        // caught by `detect::envelope_markers`).
        let mut cut = value.len().min(MAX_VALUE);
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        let cleaned = strip_comments(value.get(..cut).unwrap_or(""));
        let mut items = split_params(&cleaned).into_iter().take(MAX_PARAMS + 1);
        // `type / subtype`: RFC 2045's grammar lets blanks stand between the tokens.
        let mime_type = items
            .next()
            .map(|t| {
                let mut m = String::with_capacity(t.len());
                for (i, part) in t.split('/').enumerate() {
                    if i > 0 {
                        m.push('/');
                    }
                    m.push_str(part.trim());
                }
                m.make_ascii_lowercase();
                m
            })
            .unwrap_or_default();
        // (name, section, extended, value)
        let mut raw: Vec<(String, Option<u32>, bool, String)> = Vec::new();
        for item in items {
            let Some((name, val)) = item.split_once('=') else {
                continue;
            };
            let name = name.trim().to_ascii_lowercase();
            let val = unquote(val.trim());
            let (base, extended) = match name.strip_suffix('*') {
                Some(b) => (b.to_string(), true),
                None => (name.clone(), false),
            };
            let (base, section) = match base.rsplit_once('*') {
                Some((b, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => {
                    (b.to_string(), n.parse::<u32>().ok())
                }
                _ => (base, None),
            };
            if base.is_empty() {
                continue;
            }
            raw.push((base, section, extended, val));
        }
        let mut params: Vec<(String, String)> = Vec::new();
        // Plain and single extended parameters first, then continuations joined in order
        // (only those are looked at again, so the others' strings are moved out).
        for (name, section, extended, val) in &mut raw {
            if section.is_some() {
                continue;
            }
            let v = if *extended {
                decode_2231(val, true)
            } else {
                std::mem::take(val)
            };
            set_param(&mut params, std::mem::take(name), v);
        }
        let mut continued: Vec<&str> = raw
            .iter()
            .filter(|r| r.1.is_some())
            .map(|r| r.0.as_str())
            .collect();
        continued.sort_unstable();
        continued.dedup();
        for name in continued {
            let mut sections: Vec<&(String, Option<u32>, bool, String)> = raw
                .iter()
                .filter(|r| r.0 == name && r.1.is_some())
                .collect();
            sections.sort_by_key(|r| r.1);
            let mut joined = String::new();
            for (i, (_, _, extended, val)) in
                sections.iter().map(|r| (&r.0, r.1, r.2, &r.3)).enumerate()
            {
                if extended {
                    joined.push_str(&decode_2231(val, i == 0));
                } else {
                    joined.push_str(val);
                }
            }
            set_param(&mut params, name.to_string(), joined);
        }
        ContentType { mime_type, params }
    }
}

fn set_param(params: &mut Vec<(String, String)>, name: String, value: String) {
    if let Some(p) = params.iter_mut().find(|(n, _)| *n == name) {
        p.1 = value;
    } else {
        params.push((name, value));
    }
}

/// Removes `( ... )` comments outside quoted strings (nesting allowed, as in RFC 5322).
/// Without a `(` there is nothing to remove, and the value is borrowed as it is.
fn strip_comments(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('(') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if depth == 0 {
                out.push(c);
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                in_quote = !in_quote;
                out.push(c);
            }
            '(' if !in_quote => depth += 1,
            ')' if !in_quote && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Splits on ';' outside quoted strings.
fn split_params(s: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            ';' if !in_quote => {
                items.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(s.get(start..).unwrap_or(""));
    items
}

fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"') else {
        return v.to_string();
    };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// RFC 2231 `charset'lang'percent-encoded` (the charset prefix only in the first section).
/// Non-UTF-8 charsets are decoded lossily; file names only need their ASCII suffix here.
fn decode_2231(v: &str, first: bool) -> String {
    let data = if first {
        let mut parts = v.splitn(3, '\'');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(_), Some(_), Some(rest)) => rest,
            _ => v,
        }
    } else {
        v
    };
    let bytes = data.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_with_folded_fields_lf_and_crlf() {
        for eol in ["\n", "\r\n"] {
            let msg = format!("A: 1{eol}B: two{eol}\tthree{eol}C:4{eol}{eol}body{eol}");
            let b = msg.as_bytes();
            let h = parse_block(b, 0, b.len());
            assert_eq!(h.fields.len(), 3);
            assert_eq!(h.get(b, "b").as_deref(), Some("two\tthree"));
            assert_eq!(
                &b[h.fields[1].range()],
                format!("B: two{eol}\tthree{eol}").as_bytes()
            );
            assert_eq!(&b[h.body_start..], format!("body{eol}").as_bytes());
            assert_eq!(h.fields_end, h.fields[2].end);
        }
    }

    #[test]
    fn block_without_blank_line_or_body() {
        let b = b"A: 1\nB: 2";
        let h = parse_block(b, 0, b.len());
        assert_eq!(h.fields.len(), 2);
        assert_eq!(h.body_start, b.len());
        let h = parse_block(b"\nbody", 0, 5);
        assert!(h.fields.is_empty());
        assert_eq!(h.body_start, 1);
    }

    #[test]
    fn content_type_params() {
        let ct = ContentType::parse(
            "Application/PKCS7-MIME (comment; x=y); name=\"smime.p7m\";\r\n    smime-type=enveloped-data",
        );
        assert_eq!(ct.mime_type, "application/pkcs7-mime");
        assert_eq!(ct.param("name"), Some("smime.p7m"));
        assert_eq!(ct.param("SMIME-TYPE"), Some("enveloped-data"));
        let ct = ContentType::parse("multipart/signed; boundary=\"a;b\\\"c\"; protocol=x");
        assert_eq!(ct.param("boundary"), Some("a;b\"c"));
        let ct = ContentType::parse("attachment; filename*0*=utf-8''m%C3%A4il; filename*1=.p7m");
        assert_eq!(ct.param("filename"), Some("mäil.p7m"));
        let ct = ContentType::parse("attachment; filename*=''x%2Ep7m");
        assert_eq!(ct.param("filename"), Some("x.p7m"));
        assert_eq!(ContentType::parse("").mime_type, "");
        assert_eq!(
            ContentType::parse(" Multipart / Mixed ; boundary=b").mime_type,
            "multipart/mixed"
        );
        assert_eq!(ContentType::parse(";;=;\"").params, vec![]);
    }

    /// The splitting and the comment removal at their edges: parentheses and semicolons inside
    /// quotes, escapes, a comment in a parameter, a repeated name (the last wins), text that
    /// is not ASCII, and a value with no comment at all (taken as it is).
    #[test]
    fn content_type_edges() {
        let ct = ContentType::parse(
            "text/plain; name=\"a(b);c\\\\\"; (note; x=1) charset=utf-8; NAME=second; ;",
        );
        assert_eq!(ct.mime_type, "text/plain");
        assert_eq!(
            ct.params,
            vec![
                ("name".to_string(), "second".to_string()),
                ("charset".to_string(), "utf-8".to_string()),
            ]
        );
        let ct = ContentType::parse("text/plain; title=\"x\\\";y\"; z=1");
        assert_eq!(ct.param("title"), Some("x\";y"));
        assert_eq!(ct.param("z"), Some("1"));
        let ct = ContentType::parse("application/x-pkcs7-mime; name=\"Übersicht;März.p7m\"; a=ä");
        assert_eq!(ct.param("name"), Some("Übersicht;März.p7m"));
        assert_eq!(ct.param("a"), Some("ä"));
        let ct = ContentType::parse("text/plain; a=b (c) d");
        assert_eq!(ct.param("a"), Some("b  d"));
    }

    #[test]
    fn a_parameter_flood_is_cut_short() {
        let mut v = String::from("multipart/mixed; boundary=b");
        for i in 0..200_000 {
            v.push_str(&format!("; p{i}*{i}=x"));
        }
        let ct = ContentType::parse(&v);
        assert_eq!(ct.mime_type, "multipart/mixed");
        assert_eq!(ct.param("boundary"), Some("b"));
        assert!(ct.params.len() <= MAX_PARAMS, "{}", ct.params.len());
        // Cut inside a multi-byte character: no panic.
        let long = format!("text/plain; name=\"{}\"", "ä".repeat(MAX_VALUE));
        assert_eq!(ContentType::parse(&long).mime_type, "text/plain");
    }
}
