//! Walking the MIME tree: multiparts, forwarded messages, opaque and multipart signatures,
//! envelopes (and whatever their plaintext holds), with a depth limit.
//!
//! The walker never copies unchanged bytes: a rewritten entity is a list of [`Piece`]s that
//! point into the original message or into decrypted buffers, flattened once at the end.

use std::ops::Range;
use std::rc::Rc;

use super::detect::{self, Cte, PartKind};
use super::header::{self, ContentType, HeaderBlock};
use super::rewrite;
use super::signed;
use crate::error::{Error, Result};

/// Bytes a piece points into: the caller's message or a buffer made while walking.
#[derive(Debug, Clone)]
pub(crate) enum Data<'a> {
    Borrowed(&'a [u8]),
    Shared(Rc<Vec<u8>>),
}

impl Data<'_> {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Data::Borrowed(b) => b,
            Data::Shared(v) => v.as_slice(),
        }
    }
}

/// A byte range of some [`Data`].
#[derive(Debug, Clone)]
pub(crate) struct Piece<'a> {
    pub data: Data<'a>,
    pub range: Range<usize>,
}

impl<'a> Piece<'a> {
    pub(crate) fn new(data: &Data<'a>, range: Range<usize>) -> Self {
        Piece {
            data: data.clone(),
            range,
        }
    }

    pub(crate) fn owned(bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        Piece {
            data: Data::Shared(Rc::new(bytes)),
            range: 0..len,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.data.bytes().get(self.range.clone()).unwrap_or(&[])
    }
}

/// A rewritten entity: its pieces, and where in them its header fields end (where trace
/// header fields can be inserted).
#[derive(Debug, Clone)]
pub(crate) struct Rewritten<'a> {
    pub pieces: Vec<Piece<'a>>,
    pub header_insert: usize,
    /// The header section carries a MIME-Version field.
    pub mime_version: bool,
}

impl<'a> Rewritten<'a> {
    /// Puts header fields (trace fields) after the entity's own fields.
    pub(crate) fn insert_fields(&mut self, fields: impl IntoIterator<Item = Piece<'a>>) {
        let at = self.header_insert.min(self.pieces.len());
        self.pieces.splice(at..at, fields);
    }

    pub(crate) fn flatten(&self) -> Vec<u8> {
        let len = self.pieces.iter().map(|p| p.range.len()).sum();
        let mut out = Vec::with_capacity(len);
        for p in &self.pieces {
            out.extend_from_slice(p.bytes());
        }
        out
    }
}

/// What to do with an envelope: decrypt it (returning the plaintext entity and a layer record)
/// or only note it (returning `None`).
pub(crate) trait Visitor {
    type Layer;
    fn envelope(&mut self, path: &str, cms: Vec<u8>) -> Result<Option<(Vec<u8>, Self::Layer)>>;
}

/// What happened while walking, in trace order (a removed signature before the layers inside it).
#[derive(Debug)]
pub(crate) enum Event<L> {
    Layer { path: String, layer: L },
    SignatureRemoved { path: String, description: String },
}

pub(crate) struct Walker<'v, V: Visitor> {
    pub visitor: &'v mut V,
    pub max_depth: usize,
    /// Line ending for lines we add ("\r\n" or "\n").
    pub eol: &'static [u8],
    pub events: Vec<Event<V::Layer>>,
    /// Envelopes reached so far (opened, or noted by a visitor that only looks).
    pub seen: usize,
}

/// `""` + 2 → `"2"`, `"2"` + 1 → `"2.1"`, `"2/rfc822"` + 1 → `"2/rfc822/1"`.
pub fn child_path(path: &str, index: usize) -> String {
    if path.is_empty() {
        index.to_string()
    } else if path.ends_with("rfc822") {
        format!("{path}/{index}")
    } else {
        format!("{path}.{index}")
    }
}

pub fn rfc822_path(path: &str) -> String {
    if path.is_empty() {
        "rfc822".to_string()
    } else {
        format!("{path}/rfc822")
    }
}

/// "top level" or "part 2.1", for messages.
pub fn describe_path(path: &str) -> String {
    if path.is_empty() {
        "top level".to_string()
    } else {
        format!("part {path}")
    }
}

/// Names the MIME part an error happened in (keeping the error itself, and so its report
/// category, inside).
pub fn with_path(e: Error, path: &str) -> Error {
    if path.is_empty() || matches!(e, Error::InPart { .. }) {
        return e;
    }
    Error::InPart {
        path: path.to_string(),
        source: Box::new(e),
    }
}

/// Splits a multipart body at its delimiter lines (RFC 2046 §5.1.1). Returns the content range
/// of every body part (the line ending before a delimiter belongs to the delimiter), or `None`
/// when no delimiter line is found. A missing close delimiter ends the last part at `end`.
pub fn split_multipart(
    bytes: &[u8],
    start: usize,
    end: usize,
    boundary: &[u8],
) -> Option<Vec<Range<usize>>> {
    if boundary.is_empty() {
        return None;
    }
    let end = end.min(bytes.len());
    let hay = bytes.get(start..end)?;
    let mut needle = Vec::with_capacity(boundary.len() + 2);
    needle.extend_from_slice(b"--");
    needle.extend_from_slice(boundary);
    let mut parts = Vec::new();
    let mut open: Option<usize> = None;
    let mut found = false;
    for rel in memchr::memmem::find_iter(hay, &needle) {
        let p = start + rel;
        let at_line_start = p == start || bytes.get(p - 1) == Some(&b'\n');
        if !at_line_start {
            continue;
        }
        let after = p + needle.len();
        let close = bytes.get(after..after + 2) == Some(b"--");
        let rest_start = if close { after + 2 } else { after };
        let line_end = header::line_end(bytes, rest_start, end);
        let rest = bytes.get(rest_start..line_end).unwrap_or(&[]);
        if !rest
            .iter()
            .all(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        {
            continue; // "--boundaryX": a longer boundary or text, not a delimiter
        }
        found = true;
        if let Some(s) = open.take() {
            let mut e = p;
            if e > start && bytes.get(e - 1) == Some(&b'\n') {
                e -= 1;
                if e > start && bytes.get(e - 1) == Some(&b'\r') {
                    e -= 1;
                }
            }
            parts.push(s..e.max(s));
        }
        if close {
            return Some(parts);
        }
        open = Some(line_end);
    }
    if let Some(s) = open {
        parts.push(s..end);
    }
    found.then_some(parts)
}

/// The parts of a multipart entity whose header block is `hb` and which ends at `end`; `None`
/// without a boundary parameter or when the body does not split on it.
fn body_parts(
    bytes: &[u8],
    hb: &HeaderBlock,
    ct: &ContentType,
    end: usize,
) -> Option<Vec<Range<usize>>> {
    let boundary = ct.param("boundary")?;
    split_multipart(bytes, hb.body_start, end, boundary.as_bytes())
}

impl<'a, V: Visitor> Walker<'_, V> {
    fn record_removal(&mut self, mark: usize, path: &str, description: String) {
        let at = mark.min(self.events.len());
        self.events.insert(
            at,
            Event::SignatureRemoved {
                path: path.to_string(),
                description,
            },
        );
    }

    /// Processes the entity `data[start..end]`; `Some` when anything in it was decrypted.
    pub(crate) fn entity(
        &mut self,
        data: &Data<'a>,
        start: usize,
        end: usize,
        path: &str,
        depth: usize,
        default_type: &str,
    ) -> Result<Option<Rewritten<'a>>> {
        if depth > self.max_depth {
            return Err(Error::Limit {
                what: "MIME nesting depth",
                limit: self.max_depth as u64,
            });
        }
        let bytes = data.bytes();
        let end = end.min(bytes.len());
        let hb = header::parse_block(bytes, start, end);
        if hb.overflow {
            return Err(with_path(
                Error::Limit {
                    what: "header fields in one entity",
                    limit: header::MAX_FIELDS as u64,
                },
                path,
            ));
        }
        let ct = match hb.get(bytes, "content-type") {
            Some(v) => ContentType::parse(&v),
            None => ContentType::parse(default_type),
        };
        let body = hb.body_start..end;
        let cte = Cte::parse(hb.get(bytes, "content-transfer-encoding").as_deref());

        if ct.mime_type == "multipart/signed" {
            return self.multipart_signed(data, &hb, &ct, start, end, path, depth);
        }
        if ct.main_type() == "multipart" {
            return self.multipart(data, &hb, &ct, start, end, path, depth);
        }
        if matches!(ct.mime_type.as_str(), "message/rfc822" | "message/global") {
            return self.embedded(data, &hb, cte, start, end, path, depth);
        }
        let disposition = hb
            .get(bytes, "content-disposition")
            .map(|v| ContentType::parse(&v));
        let candidate = detect::is_candidate_label(&ct, disposition.as_ref());
        let body_bytes = bytes.get(body.clone()).unwrap_or(&[]);
        // The body decides, whatever the label (see `detect::is_envelope_part`): an envelope is
        // opened, an opaque signature looked into.
        match detect::classify_body(body_bytes, cte) {
            PartKind::Envelope => self.envelope(data, &hb, cte, end, path, depth),
            PartKind::SignedData => self.opaque_signed(data, &hb, cte, end, path, depth),
            PartKind::Compressed => Err(Error::Mime {
                detail: format!(
                    "{}: CMS compressed-data is not supported, so an envelope inside it could \
                     not be opened",
                    describe_path(path)
                ),
            }),
            PartKind::Other
                if candidate
                    && detect::label_says_envelope(&ct)
                    && detect::peek_oid(body_bytes, cte).is_none() =>
            {
                Err(Error::Mime {
                    detail: format!(
                        "{}: labelled {} but the body is no CMS ContentInfo",
                        describe_path(path),
                        ct.param("smime-type").unwrap_or("enveloped-data")
                    ),
                })
            }
            PartKind::Other => self.encoded_leaf(data, &hb, cte, start, end, path, depth),
        }
    }

    /// A leaf that is no CMS object itself may still hide one in its transfer encoding: a
    /// forwarded S/MIME message attached as `application/octet-stream` (base64 of a message
    /// holding base64), an armoured (PEM) `smime.p7m`. Its decoded body is searched for
    /// envelopes ([`detect::envelope_markers`]): a message is walked like message/rfc822,
    /// anything else with an envelope in it fails the item rather than pass as plain.
    #[allow(clippy::too_many_arguments)]
    fn encoded_leaf(
        &mut self,
        data: &Data<'a>,
        hb: &HeaderBlock,
        cte: Cte,
        start: usize,
        end: usize,
        path: &str,
        depth: usize,
    ) -> Result<Option<Rewritten<'a>>> {
        if !matches!(cte, Cte::Base64 | Cte::QuotedPrintable) {
            return Ok(None);
        }
        let bytes = data.bytes();
        let decoded = detect::decode_body(bytes.get(hb.body_start..end).unwrap_or(&[]), cte);
        let markers = detect::envelope_markers(&decoded);
        let Some(&at) = markers.first() else {
            if let Some(kind) = detect::compressed_envelope(&decoded) {
                return Err(with_path(
                    Error::Mime {
                        detail: format!(
                            "a {kind} archive whose contents hold an encrypted CMS envelope; \
                             envelopes inside archives are not opened (extract it and decrypt \
                             what it holds)"
                        ),
                    },
                    path,
                ));
            }
            return Ok(None);
        };
        if rewrite::starts_like_entity(&decoded) && !decoded.starts_with(b"-----") {
            drop(decoded);
            let before = self.seen;
            let rw = self.embedded(data, hb, cte, start, end, path, depth)?;
            if self.seen - before >= markers.len() {
                return Ok(rw);
            }
        }
        Err(with_path(
            Error::Mime {
                detail: format!(
                    "byte {at} of the decoded body holds an encrypted CMS envelope that is not \
                     opened (armoured or encoded twice, or in a message the walk cannot \
                     follow); nothing was decrypted"
                ),
            },
            path,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn envelope(
        &mut self,
        data: &Data<'a>,
        hb: &HeaderBlock,
        cte: Cte,
        end: usize,
        path: &str,
        depth: usize,
    ) -> Result<Option<Rewritten<'a>>> {
        let bytes = data.bytes();
        self.seen += 1;
        let mut cms = detect::decode_der(bytes.get(hb.body_start..end).unwrap_or(&[]), cte);
        if let Some(at) = detect::envelope_after_content_info(&cms) {
            return Err(with_path(second_envelope(at), path));
        }
        if let Some(n) = signed::content_info_len(&cms) {
            cms.truncate(n);
        }
        let Some((plain, layer)) = self
            .visitor
            .envelope(path, cms)
            .map_err(|e| with_path(e, path))?
        else {
            return Ok(None);
        };
        self.events.push(Event::Layer {
            path: path.to_string(),
            layer,
        });
        let len = plain.len();
        let plain = Data::Shared(Rc::new(plain));
        let inner = self.entity(&plain, 0, len, path, depth + 1, "text/plain")?;
        Ok(Some(rewrite::replace_entity(
            data,
            hb,
            &plain,
            0..len,
            inner,
            self.eol,
        )))
    }

    #[allow(clippy::too_many_arguments)]
    fn opaque_signed(
        &mut self,
        data: &Data<'a>,
        hb: &HeaderBlock,
        cte: Cte,
        end: usize,
        path: &str,
        depth: usize,
    ) -> Result<Option<Rewritten<'a>>> {
        let bytes = data.bytes();
        let der = detect::decode_der(bytes.get(hb.body_start..end).unwrap_or(&[]), cte);
        // A signature we cannot parse holds no envelope we could reach: leave it alone.
        let Ok(Some(content)) = signed::encapsulated_content(&der) else {
            return Ok(None);
        };
        drop(der);
        let len = content.len();
        let content = Data::Shared(Rc::new(content));
        let mark = self.events.len();
        let Some(inner) = self.entity(&content, 0, len, path, depth + 1, "text/plain")? else {
            return Ok(None);
        };
        // Encrypt-then-sign: the signature covered ciphertext that is gone now.
        self.record_removal(
            mark,
            path,
            format!(
                "opaque SignedData at {} (encrypt-then-sign): signature removed",
                describe_path(path)
            ),
        );
        Ok(Some(rewrite::replace_entity(
            data,
            hb,
            &content,
            0..len,
            Some(inner),
            self.eol,
        )))
    }

    #[allow(clippy::too_many_arguments)]
    fn multipart_signed(
        &mut self,
        data: &Data<'a>,
        hb: &HeaderBlock,
        ct: &ContentType,
        start: usize,
        end: usize,
        path: &str,
        depth: usize,
    ) -> Result<Option<Rewritten<'a>>> {
        let bytes = data.bytes();
        let Some(parts) = body_parts(bytes, hb, ct, end) else {
            return no_structure(bytes.get(hb.body_start..end).unwrap_or(&[]), path);
        };
        // The usual shape is content + one signature; anything else (a third part, a second
        // part that is no signature) is walked part by part like any multipart, so that
        // nothing after the first part goes unread.
        let signature_second = parts.len() == 2
            && parts.get(1).is_some_and(|p| {
                let h = header::parse_block(bytes, p.start, p.end);
                h.get(bytes, "content-type").is_some_and(|v| {
                    let t = ContentType::parse(&v);
                    t.mime_type.ends_with("-signature") || t.mime_type.ends_with("/signature")
                })
            });
        if !signature_second {
            return self.multipart(data, hb, ct, start, end, path, depth);
        }
        let Some(first) = parts.first().cloned() else {
            return Ok(None);
        };
        let first_path = child_path(path, 1);
        let mark = self.events.len();
        let Some(inner) = self.entity(
            data,
            first.start,
            first.end,
            &first_path,
            depth + 1,
            "text/plain",
        )?
        else {
            return Ok(None);
        };
        self.record_removal(
            mark,
            path,
            format!(
                "multipart/signed around part {first_path} (encrypt-then-sign): signature removed"
            ),
        );
        Ok(Some(rewrite::replace_entity(
            data,
            hb,
            data,
            first,
            Some(inner),
            self.eol,
        )))
    }

    #[allow(clippy::too_many_arguments)]
    fn multipart(
        &mut self,
        data: &Data<'a>,
        hb: &HeaderBlock,
        ct: &ContentType,
        start: usize,
        end: usize,
        path: &str,
        depth: usize,
    ) -> Result<Option<Rewritten<'a>>> {
        let bytes = data.bytes();
        let Some(parts) = body_parts(bytes, hb, ct, end) else {
            return no_structure(bytes.get(hb.body_start..end).unwrap_or(&[]), path);
        };
        let default = if ct.mime_type == "multipart/digest" {
            "message/rfc822"
        } else {
            "text/plain"
        };
        let mut pieces = vec![Piece::new(data, start..hb.fields_end)];
        let mut cursor = hb.fields_end;
        let mut changed = false;
        for (i, part) in parts.iter().enumerate() {
            let p = child_path(path, i + 1);
            if let Some(rw) = self.entity(data, part.start, part.end, &p, depth + 1, default)? {
                pieces.push(Piece::new(data, cursor..part.start));
                pieces.extend(rw.pieces);
                cursor = part.end;
                changed = true;
            }
        }
        if !changed {
            return Ok(None);
        }
        pieces.push(Piece::new(data, cursor..end));
        Ok(Some(Rewritten {
            pieces,
            header_insert: 1,
            mime_version: hb.has(bytes, "mime-version"),
        }))
    }

    /// A forwarded message (message/rfc822): recurse into it. Transfer-encoded ones are decoded,
    /// rewritten and encoded again with the same encoding (base64) or as 8bit text (QP).
    #[allow(clippy::too_many_arguments)]
    fn embedded(
        &mut self,
        data: &Data<'a>,
        hb: &HeaderBlock,
        cte: Cte,
        start: usize,
        end: usize,
        path: &str,
        depth: usize,
    ) -> Result<Option<Rewritten<'a>>> {
        let bytes = data.bytes();
        let inner_path = rfc822_path(path);
        let head = [
            Piece::new(data, start..hb.fields_end),
            Piece::new(data, hb.fields_end..hb.body_start),
        ];
        let mime_version = hb.has(bytes, "mime-version");
        match cte {
            Cte::Identity => {
                let Some(rw) = self.entity(
                    data,
                    hb.body_start,
                    end,
                    &inner_path,
                    depth + 1,
                    "text/plain",
                )?
                else {
                    return Ok(None);
                };
                let mut pieces = head.to_vec();
                pieces.extend(rw.pieces);
                Ok(Some(Rewritten {
                    pieces,
                    header_insert: 1,
                    mime_version,
                }))
            }
            Cte::Base64 | Cte::QuotedPrintable => {
                let decoded =
                    detect::decode_body(bytes.get(hb.body_start..end).unwrap_or(&[]), cte);
                let len = decoded.len();
                let decoded = Data::Shared(Rc::new(decoded));
                let Some(rw) =
                    self.entity(&decoded, 0, len, &inner_path, depth + 1, "text/plain")?
                else {
                    return Ok(None);
                };
                let flat = rw.flatten();
                let mut pieces = Vec::new();
                if cte == Cte::Base64 {
                    pieces.extend(head);
                    pieces.push(Piece::owned(rewrite::encode_base64_lines(&flat, self.eol)));
                } else {
                    // QP cannot be re-encoded byte-exact; the plaintext goes out as 8bit.
                    pieces.extend(rewrite::fields_without(
                        data,
                        hb,
                        &["content-transfer-encoding"],
                        self.eol,
                    ));
                    let mut cte_line = b"Content-Transfer-Encoding: 8bit".to_vec();
                    cte_line.extend_from_slice(self.eol);
                    pieces.push(Piece::owned(cte_line));
                    pieces.push(Piece::new(data, hb.fields_end..hb.body_start));
                    pieces.push(Piece::owned(flat));
                }
                Ok(Some(Rewritten {
                    pieces,
                    header_insert: 1,
                    mime_version,
                }))
            }
            Cte::Unknown => no_structure(bytes.get(hb.body_start..end).unwrap_or(&[]), path),
        }
    }
}

/// Two envelopes back to back in one body: only the first would be opened.
pub fn second_envelope(at: usize) -> Error {
    Error::Mime {
        detail: format!(
            "a second encrypted CMS envelope follows the first at byte {at} of the decoded body; \
             only one envelope per part is opened, so nothing was decrypted"
        ),
    }
}

/// A body the walk cannot take apart (a multipart whose boundary never occurs, a forwarded
/// message in an unknown encoding): nothing to do, unless an envelope shows in it, as it is or
/// once its base64 is decoded, which would otherwise pass as plain.
fn no_structure<'a>(body: &[u8], path: &str) -> Result<Option<Rewritten<'a>>> {
    if let Some(&at) = detect::envelope_markers(body).first() {
        return Err(with_path(detect::unreachable_envelope(body, at), path));
    }
    match detect::envelope_in_base64_runs(body) {
        None => Ok(None),
        Some(at) => Err(with_path(
            Error::Mime {
                detail: format!(
                    "its structure cannot be followed (no boundary line, or an unknown \
                     transfer encoding), and the base64 at byte {at} of its body holds an \
                     encrypted CMS envelope; nothing was decrypted"
                ),
            },
            path,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(child_path("", 2), "2");
        assert_eq!(child_path("2", 1), "2.1");
        assert_eq!(child_path(&rfc822_path("2"), 1), "2/rfc822/1");
        assert_eq!(child_path(&rfc822_path(""), 3), "rfc822/3");
    }

    #[test]
    fn split_crlf_and_lf() {
        for eol in ["\r\n", "\n"] {
            let body = format!(
                "preamble{eol}--b{eol}A: 1{eol}{eol}one{eol}--b  {eol}{eol}two{eol}{eol}--bX{eol}--b--{eol}epilogue{eol}"
            );
            let b = body.as_bytes();
            let parts = split_multipart(b, 0, b.len(), b"b").unwrap();
            assert_eq!(parts.len(), 2);
            assert_eq!(
                &b[parts[0].clone()],
                format!("A: 1{eol}{eol}one").as_bytes()
            );
            assert_eq!(
                &b[parts[1].clone()],
                format!("{eol}two{eol}{eol}--bX").as_bytes()
            );
        }
    }

    #[test]
    fn split_edge_cases() {
        assert_eq!(split_multipart(b"no delimiters", 0, 13, b"b"), None);
        assert_eq!(split_multipart(b"--b", 0, 3, b""), None);
        let b = b"--b\n--b\n--b--";
        assert_eq!(
            split_multipart(b, 0, b.len(), b"b").unwrap(),
            vec![4..4, 8..8]
        );
        let b = b"--b\nunterminated\n";
        assert_eq!(
            split_multipart(b, 0, b.len(), b"b").unwrap(),
            vec![4..b.len()]
        );
        let b = b"x--b\n";
        assert_eq!(split_multipart(b, 0, b.len(), b"b"), None);
    }
}
