//! Decrypting one large message without holding it.
//!
//! [`crate::mime::decrypt_message`] needs the message, the decoded ContentInfo and the plaintext
//! in memory at once: three copies of a 200 MB message. This module handles the common shape of
//! a large encrypted message, a top-level `application/pkcs7-mime` CBC envelope (base64 or
//! binary), in bounded memory: the input is read once, in blocks, each block base64-decoded,
//! its framing followed by a [`crate::cms::content_stream::ContentStream`],
//! CBC-decrypted and written out, while the input and output SHA-256 and the next block's
//! decoding run beside it on other threads.
//!
//! Anything else is left to the in-memory path, which is always correct: [`prepare`] returns
//! `None` (not an envelope at top level, GCM whose tag and authenticated attributes follow the
//! content, several candidate keys, no key), and [`MessageStream::run`] returns
//! [`StreamError::NotStreamable`] before writing anything when the plaintext is a message or a
//! digest, or is itself labelled S/MIME (the MIME walk would go on into it). A multipart
//! plaintext streams under a watch (`HeaderScan`) that hands it back at the first part the
//! walk could act on. A [`StreamError::Failed`] (that hand-back, bad padding at the very end,
//! malformed framing, a write error) means the caller discards what was written; the CLI then
//! runs the in-memory path, so the item's final result and error message are the same as if it
//! had never been streamed.

use std::io::Write;
use std::ops::Range;

use crate::cms::ber::Header;
use crate::cms::content_stream::ContentStream;
use crate::cms::envelope::{self, Enclosing, EnvelopeKind, MAX_HEADER_PART};
use crate::content::cbc::CbcStream;
use crate::error::Error;
use crate::mime::detect::{self, Cte, PartKind};
use crate::mime::header::{self, ContentType, HeaderBlock};
use crate::mime::rewrite;
use crate::mime::walk::{Data, Piece};
use crate::mime::{MessageOptions, line_ending};
use crate::provider::HashAlg;
use crate::{Decryptor, LayerInfo};

/// Input read per step: big enough that thread hand-offs are rare, small enough to stay a few
/// MB of buffers.
const BLOCK: usize = 2 * 1024 * 1024;

/// Plaintext gathered before the inner entity's header block must have ended.
const HEAD_LIMIT: usize = 64 * 1024;

/// Why a message was not (or not completely) streamed.
#[derive(Debug)]
pub enum StreamError {
    /// The message needs the in-memory path; nothing was written.
    NotStreamable(&'static str),
    /// Streaming stopped midway: what was written must be discarded.
    Failed(Error),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::NotStreamable(why) => write!(f, "not streamable: {why}"),
            StreamError::Failed(e) => write!(f, "streaming failed: {e}"),
        }
    }
}

impl From<std::io::Error> for StreamError {
    fn from(e: std::io::Error) -> Self {
        StreamError::Failed(e.into())
    }
}

/// A streamed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streamed {
    /// The opened envelope, with its lengths.
    pub layer: LayerInfo,
    /// Bytes written: the rewritten message.
    pub bytes_out: u64,
    /// SHA-256 of the whole input message and of what was written.
    pub sha256_in: Vec<u8>,
    pub sha256_out: Vec<u8>,
}

/// A message whose top level is an envelope this module can stream, its key already unwrapped.
pub struct MessageStream<'m, 'd> {
    dec: &'d Decryptor<'d>,
    msg: &'m [u8],
    hb: HeaderBlock,
    base64: bool,
    /// The encryptedContent header; its `content_start` is an offset in the decoded ContentInfo.
    content: Header,
    enclosing: Enclosing,
    cbc: CbcStream,
    layer: LayerInfo,
}

/// A top-level EnvelopedData found in a message, up to its encrypted content.
struct Located {
    hb: HeaderBlock,
    base64: bool,
    header: envelope::EnvelopeHeader<'static>,
    content: Header,
    enclosing: Enclosing,
}

/// Finds a top-level EnvelopedData with CBC content that this module could stream: the MIME
/// label, the transfer encoding and the header before the content. No key is touched.
fn locate(msg: &[u8]) -> Option<Located> {
    let hb = header::parse_block(msg, 0, msg.len());
    let ct = ContentType::parse(&hb.get(msg, "content-type")?);
    let disposition = hb
        .get(msg, "content-disposition")
        .map(|v| ContentType::parse(&v));
    if !detect::is_candidate_label(&ct, disposition.as_ref()) {
        return None;
    }
    let cte = Cte::parse(hb.get(msg, "content-transfer-encoding").as_deref());
    let body = msg.get(hb.body_start..)?;
    if detect::classify_body(body, cte) != PartKind::Envelope {
        return None;
    }
    let base64 = match cte {
        Cte::Base64 => true,
        // Binary DER must start at once: the in-memory path would not skip anything either.
        Cte::Identity if body.first() == Some(&0x30) => false,
        _ => return None,
    };
    // The part before the content (recipients, algorithm) is small but unbounded in principle:
    // decode more of it until it parses, up to the limit the in-memory parser also sets.
    let mut want = 64 * 1024;
    loop {
        let prefix = if base64 {
            detect::decode_base64_prefix(body, want)
        } else {
            body.get(..want.min(body.len()))?.to_vec()
        };
        match envelope::parse_prefix(&prefix) {
            Ok(Some(s)) => {
                if s.header.kind != EnvelopeKind::Enveloped {
                    return None;
                }
                let cipher = crate::content::algorithm::parse(
                    &s.header.content_algorithm_der,
                    s.header.content_algorithm_offset,
                )
                .ok()?;
                if !matches!(cipher, crate::content::ContentCipher::Cbc { .. }) {
                    return None;
                }
                return Some(Located {
                    hb,
                    base64,
                    header: s.header.without_content(),
                    content: s.content,
                    enclosing: s.enclosing,
                });
            }
            Ok(None) => return None,
            Err(_) if prefix.len() >= want && want < MAX_HEADER_PART => want *= 4,
            Err(_) => return None,
        }
    }
}

/// Whether `msg` looks streamable, without touching a key: a top-level CBC EnvelopedData in
/// base64 or binary. [`prepare`] may still decline (no key or several, a key that does not
/// unwrap) and [`MessageStream::run`] too (a plaintext holding S/MIME). Costs a look at the first
/// kilobytes.
pub fn plausible(msg: &[u8]) -> bool {
    locate(msg).is_some()
}

/// Checks whether `msg` can be streamed and, if so, unwraps its content key. Costs one
/// private-key operation and a look at the first kilobytes.
pub fn prepare<'m, 'd>(dec: &'d Decryptor<'d>, msg: &'m [u8]) -> Option<MessageStream<'m, 'd>> {
    let found = locate(msg)?;
    let (cbc, layer) = dec.open_cbc_stream(&found.header)?;
    Some(MessageStream {
        dec,
        msg,
        hb: found.hb,
        base64: found.base64,
        content: found.content,
        enclosing: found.enclosing,
        cbc,
        layer,
    })
}

/// Watches a multipart plaintext as it streams for any header that could make the in-memory
/// MIME walk act: a part labelled `pkcs7-mime`, named `*.p7m`, a `message/*` or a digest, or a
/// header it cannot judge safely here (RFC 2231 continuations, encoded words). Deliberately
/// cruder than the walk, and conservative: it does not follow the multipart structure, it looks
/// at every `Content-Type` and `Content-Disposition` line anywhere (a text that quotes one
/// only sends the message to the in-memory path). What the walk leaves alone then is exactly a
/// plaintext it copies unchanged, which is what streaming writes.
#[derive(Default)]
struct HeaderScan {
    /// The current line so far, while it may matter (bounded by [`SCAN_LINE`]).
    line: Vec<u8>,
    /// Inside a line that does not matter: skip to its end.
    skipping: bool,
    /// The value of a Content-Type / Content-Disposition field being collected (continuation
    /// lines follow it).
    field: Option<Vec<u8>>,
    found: Option<&'static str>,
}

/// A header line longer than this is judged as it is (it is judged suspicious if it is one of
/// the two fields).
const SCAN_LINE: usize = 16 * 1024;

impl HeaderScan {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.found.is_none() {
            if self.skipping {
                match memchr::memchr(b'\n', data) {
                    Some(i) => {
                        self.skipping = false;
                        data = &data[i + 1..];
                    }
                    None => return,
                }
                continue;
            }
            if self.line.is_empty() {
                // A line start: only `C`/`c` (a field name) and blanks (a continuation of a
                // field being collected) matter.
                let first = data[0];
                let relevant = matches!(first, b'C' | b'c')
                    || (self.field.is_some() && matches!(first, b' ' | b'\t'));
                if !relevant {
                    self.end_field();
                    self.skipping = true;
                    continue;
                }
            }
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    self.take(&data[..=i]);
                    data = &data[i + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line);
                }
                None => {
                    self.take(data);
                    return;
                }
            }
        }
    }

    fn take(&mut self, part: &[u8]) {
        let room = SCAN_LINE.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn line_done(&mut self, line: &[u8]) {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(f) = &mut self.field {
                f.extend_from_slice(line);
                if f.len() > SCAN_LINE {
                    self.found = Some("a header field too long to judge");
                }
            }
            return;
        }
        self.end_field();
        let Some(colon) = memchr::memchr(b':', line) else {
            return;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-type")
            || name.eq_ignore_ascii_case(b"content-disposition")
        {
            self.field = Some(line[colon + 1..].to_vec());
        }
    }

    /// Judges the field collected so far, if any.
    fn end_field(&mut self) {
        let Some(value) = self.field.take() else {
            return;
        };
        let v = value.to_ascii_lowercase();
        let has = |p: &[u8]| memchr::memmem::find(&v, p).is_some();
        if self.found.is_some() {
            return;
        }
        self.found = if has(b"pkcs7-mime") {
            Some("a part labelled pkcs7-mime")
        } else if has(b"p7m") {
            Some("a part named .p7m")
        } else if has(b"message/") || has(b"digest") {
            Some("a message part")
        } else if has(b"=?") || has(b"*") {
            Some("a header in an encoding not judged here")
        } else {
            None
        };
    }

    fn finish(&mut self) {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.line_done(&line);
        }
        self.end_field();
    }
}

/// Base64 decoding of successive blocks; characters that do not make a whole quantum wait for
/// the next block.
struct Decoder {
    base64: bool,
    carry: Vec<u8>,
}

impl Decoder {
    fn decode(&mut self, block: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), StreamError> {
        out.clear();
        if !self.base64 {
            out.extend_from_slice(block);
            return Ok(());
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', block).chain(std::iter::once(block.len())) {
            if let Some(line) = block.get(start..end) {
                self.carry.extend_from_slice(line.trim_ascii());
            }
            start = end + 1;
        }
        let mut keep = self.carry.len() - self.carry.len() % 4;
        if last {
            if self.carry.len() % 4 == 1 {
                self.carry.pop();
            }
            keep = self.carry.len();
        }
        // SIMD decoding (the scalar crate took a tenth of a second per 200 MB message). A body
        // with anything else in its lines fails here, and the in-memory path's filtering decoder
        // takes it.
        let decoded = detect::decode_quanta_inplace(&mut self.carry[..keep]).ok_or_else(|| {
            StreamError::Failed(Error::Mime {
                detail: "base64 body: not only base64 characters in its lines".into(),
            })
        })?;
        out.extend_from_slice(decoded);
        self.carry.drain(..keep);
        Ok(())
    }
}

/// The decrypting half of the pipeline: decoded ContentInfo in, rewritten message out.
struct Decrypting<'a> {
    /// Offset in the decoded ContentInfo of the next byte.
    der_pos: usize,
    content_start: usize,
    content: ContentStream,
    cbc: CbcStream,
    /// Plaintext held until the inner header block has ended; `None` once written.
    head: Option<Vec<u8>>,
    msg: &'a [u8],
    hb: &'a HeaderBlock,
    layer: &'a LayerInfo,
    opts: &'a MessageOptions,
    written: u64,
    enclosing: Enclosing,
    /// For a multipart plaintext: the watch for parts the in-memory walk would act on.
    scan: Option<HeaderScan>,
    /// What follows the content, until [`envelope::check_after_content`] has decided on it.
    after: Vec<u8>,
    /// Where the content ended (an offset in the decoded ContentInfo).
    after_at: usize,
    after_ok: bool,
}

/// What may follow the content before the end of the EnvelopedData (unprotected attributes):
/// more than this, and the message goes to the in-memory path, which allows 16 MiB.
const AFTER_LIMIT: usize = 1 << 20;

impl Decrypting<'_> {
    /// Decrypts `der` and appends what is to be written to `plain`.
    fn feed(&mut self, der: &[u8], plain: &mut Vec<u8>) -> Result<(), StreamError> {
        let from = plain.len();
        self.feed_unscanned(der, plain)?;
        self.watch(plain.get(from..).unwrap_or(&[]), false)
    }

    /// Runs the header watch of a multipart plaintext over output about to be written.
    fn watch(&mut self, out: &[u8], end: bool) -> Result<(), StreamError> {
        if let Some(scan) = &mut self.scan {
            scan.feed(out);
            if end {
                scan.finish();
            }
            if let Some(why) = &scan.found {
                return Err(StreamError::Failed(Error::Mime {
                    detail: format!(
                        "the plaintext has a part the message walk would open ({why}); decrypt it in memory"
                    ),
                }));
            }
        }
        Ok(())
    }

    fn feed_unscanned(&mut self, der: &[u8], plain: &mut Vec<u8>) -> Result<(), StreamError> {
        let skip = self
            .content_start
            .saturating_sub(self.der_pos)
            .min(der.len());
        let base = self.der_pos;
        self.der_pos += der.len();
        let rest = der.get(skip..).unwrap_or(&[]);
        let mut after = rest;
        if !self.content.is_done() && !rest.is_empty() {
            let sink: &mut Vec<u8> = match &mut self.head {
                Some(h) => h,
                None => plain,
            };
            let cbc = &mut self.cbc;
            let used = self
                .content
                .feed(rest, &mut |ct| cbc.update(ct, sink))
                .map_err(StreamError::Failed)?;
            after = rest.get(used..).unwrap_or(&[]);
            if self.content.is_done() {
                self.after_at = base + skip + used;
            }
        }
        if self.content.is_done() && !self.after_ok && !after.is_empty() {
            if self.after.len() + after.len() > AFTER_LIMIT {
                // Output was written already: a failure, for the in-memory path to redo.
                return Err(StreamError::Failed(Error::Limit {
                    what: "bytes after a streamed content",
                    limit: AFTER_LIMIT as u64,
                }));
            }
            self.after.extend_from_slice(after);
            match envelope::check_after_content(&self.enclosing, &self.after, self.after_at) {
                Ok(()) => self.after_ok = true,
                Err(Error::Truncated { .. }) => {}
                Err(e) => return Err(StreamError::Failed(e)),
            }
        }
        self.flush_head(plain, false)
    }

    /// Once the inner header block is complete (or the plaintext ended), decides whether the
    /// plaintext can be streamed and puts the rewritten header in front of it.
    fn flush_head(&mut self, plain: &mut Vec<u8>, end: bool) -> Result<(), StreamError> {
        let Some(head) = &self.head else {
            return Ok(());
        };
        let hb = header::parse_block(head, 0, head.len());
        let complete = hb.fields_end < hb.body_start;
        if !complete && !end {
            if head.len() >= HEAD_LIMIT {
                return Err(StreamError::NotStreamable(
                    "the plaintext has no header block end in its first 64 KiB",
                ));
            }
            return Ok(());
        }
        let ct = match hb.get(head, "content-type") {
            Some(v) => ContentType::parse(&v),
            None => ContentType::parse("text/plain"),
        };
        if ct.mime_type == "multipart/digest"
            || matches!(ct.mime_type.as_str(), "message/rfc822" | "message/global")
        {
            return Err(StreamError::NotStreamable(
                "the plaintext is a message or a digest of messages (it may hold more envelopes)",
            ));
        }
        if ct.main_type() == "multipart" {
            // Its parts may hold envelopes the in-memory walk would open: watch every header.
            self.scan = Some(HeaderScan::default());
        }
        let disposition = hb
            .get(head, "content-disposition")
            .map(|v| ContentType::parse(&v));
        if detect::is_candidate_label(&ct, disposition.as_ref()) {
            return Err(StreamError::NotStreamable(
                "the plaintext is itself labelled S/MIME",
            ));
        }
        let Some(head) = self.head.take() else {
            return Ok(());
        };
        // The same splice as the in-memory path: outer fields but Content-*, the trace field,
        // a blank line if the plaintext has no header block, then the plaintext.
        let eol = line_ending(self.msg);
        let outer = Data::Borrowed(self.msg);
        let inner = Data::Borrowed(&head);
        let mut rw = rewrite::replace_entity(&outer, self.hb, &inner, 0..head.len(), None, eol);
        if self.opts.trace_header {
            let at = rw.header_insert.min(rw.pieces.len());
            let field = rewrite::layer_field(self.layer, "", &self.opts.timestamp, eol);
            rw.pieces.insert(at, Piece::owned(field));
        }
        plain.extend_from_slice(&rw.flatten());
        Ok(())
    }

    fn finish(mut self, plain: &mut Vec<u8>) -> Result<(u64, u64), StreamError> {
        if !self.content.is_done() {
            return Err(StreamError::Failed(Error::Truncated {
                what: "encryptedContent",
                offset: self.der_pos as u64,
            }));
        }
        // What follows the content must be what the in-memory parser accepts (the end of the
        // content's SEQUENCE, attributes, the end of the EnvelopedData).
        if !self.after_ok {
            envelope::check_after_content(&self.enclosing, &self.after, self.after_at)
                .map_err(StreamError::Failed)?;
        }
        let sink: &mut Vec<u8> = match &mut self.head {
            Some(h) => h,
            None => plain,
        };
        let plain_len = self.cbc.finish(sink).map_err(|e| match e {
            Ok(p) => StreamError::Failed(Error::WrongKey {
                recipient: self.layer.used_recipient.to_string(),
                reason: p.0,
            }),
            Err(e) => StreamError::Failed(e),
        })?;
        let from = plain.len();
        self.flush_head(plain, true)?;
        let tail = plain.split_off(from);
        self.watch(&tail, true)?;
        plain.extend_from_slice(&tail);
        Ok((self.content.content_len(), plain_len))
    }
}

impl MessageStream<'_, '_> {
    /// The envelope as far as known before decrypting.
    pub fn layer(&self) -> &LayerInfo {
        &self.layer
    }

    /// Decrypts the message into `out`. `done_with` is called with each range of the input
    /// once it has been read for the last time, in order (the caller may drop those pages).
    pub fn run(
        self,
        opts: &MessageOptions,
        out: &mut (dyn Write + Send),
        done_with: &mut (dyn FnMut(Range<usize>) + Send),
    ) -> Result<Streamed, StreamError> {
        let provider = self.dec.provider();
        let mut hash_in = provider.hasher(HashAlg::Sha256);
        let mut hash_out = provider.hasher(HashAlg::Sha256);
        let msg = self.msg;
        let body_start = self.hb.body_start.min(msg.len());
        let mut layer = self.layer;
        let mut dec = Decrypting {
            der_pos: 0,
            content_start: self.content.content_start,
            content: ContentStream::new(&self.content).map_err(StreamError::Failed)?,
            cbc: self.cbc,
            head: Some(Vec::with_capacity(HEAD_LIMIT)),
            msg,
            hb: &self.hb,
            layer: &layer,
            opts,
            written: 0,
            enclosing: self.enclosing,
            scan: None,
            after: Vec::new(),
            after_at: 0,
            after_ok: false,
        };
        let mut decoder = Decoder {
            base64: self.base64,
            carry: Vec::new(),
        };

        // Three stages on three threads: while block k is decrypted, block k+1 is hashed and
        // decoded, and the output of block k-1 written and hashed. SHA-256 (about 1.3 GB/s with
        // SHA-NI) costs as much as AES and base64 together, and 3DES keeps every core busy
        // on its own, so the hashes run wherever a core is free. (A scoped thread per 2 MB block
        // costs some microseconds; this crate stays free of a thread-pool dependency.)
        let mut pos = body_start;
        let mut der_cur: Vec<u8> = Vec::new();
        let mut der_next: Vec<u8> = Vec::new();
        let mut plain: Vec<u8> = Vec::new();
        let mut plain_prev: Vec<u8> = Vec::new();
        hash_in.update(msg.get(..body_start).unwrap_or(&[]));
        let mut first = true;
        loop {
            let next_block = if (dec.content.is_done() && dec.after_ok) || pos >= msg.len() {
                None
            } else {
                // End the block at a line end when one is near: a body written as one huge
                // line is cut anywhere (the decoder carries partial quanta over).
                let mut end = (pos + BLOCK).min(msg.len());
                let near = msg.get(end..(end + 64 * 1024).min(msg.len()));
                if let Some(nl) = near.and_then(|r| memchr::memchr(b'\n', r)) {
                    end += nl + 1;
                }
                Some(pos..end)
            };
            if next_block.is_none() && der_cur.is_empty() && !first {
                break;
            }
            first = false;
            let (a, b) = std::thread::scope(|scope| {
                let a = scope.spawn(|| -> Result<(), StreamError> {
                    if let Some(r) = next_block.clone() {
                        let block = msg.get(r.clone()).unwrap_or(&[]);
                        hash_in.update(block);
                        decoder.decode(block, r.end >= msg.len(), &mut der_next)?;
                    }
                    Ok(())
                });
                let c = scope.spawn(|| -> Result<(), StreamError> {
                    out.write_all(&plain_prev)?;
                    hash_out.update(&plain_prev);
                    Ok(())
                });
                plain.clear();
                let b = dec.feed(&der_cur, &mut plain);
                let failed = || {
                    Err(StreamError::Failed(Error::Io {
                        detail: "a hashing, decoding or writing thread failed".into(),
                    }))
                };
                let a = a.join().unwrap_or_else(|_| failed());
                let a = a.and(c.join().unwrap_or_else(|_| failed()));
                (a, b)
            });
            a?;
            b?;
            if let Some(r) = next_block {
                done_with(r.clone());
                pos = r.end;
            }
            std::mem::swap(&mut der_cur, &mut der_next);
            der_next.clear();
            dec.written += plain.len() as u64;
            std::mem::swap(&mut plain, &mut plain_prev);
        }
        out.write_all(&plain_prev)?;
        hash_out.update(&plain_prev);
        // The padding block (and, for a short plaintext, the whole header) comes out last.
        let mut tail = Vec::new();
        let written_before = dec.written;
        let (ct_len, pt_len) = dec.finish(&mut tail)?;
        out.write_all(&tail)?;
        out.flush()?;
        hash_out.update(&tail);
        // What follows the content (unprotected attributes, end-of-contents, line breaks) is
        // part of the input: hash it too.
        for chunk in msg.get(pos..).unwrap_or(&[]).chunks(BLOCK) {
            hash_in.update(chunk);
        }
        if pos < msg.len() {
            done_with(pos..msg.len());
        }
        layer.ciphertext_len = ct_len;
        layer.plaintext_len = pt_len;
        Ok(Streamed {
            layer,
            bytes_out: written_before + tail.len() as u64,
            sha256_in: hash_in.finish(),
            sha256_out: hash_out.finish(),
        })
    }
}
