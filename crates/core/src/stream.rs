//! Decrypting one large message without holding it.
//!
//! [`crate::mime::decrypt_message`] needs the message, the decoded ContentInfo and the plaintext
//! in memory at once: three copies of a 200 MB message. This module handles the common shape of
//! a large encrypted message, a top-level `application/pkcs7-mime` envelope (base64 or binary;
//! EnvelopedData under a CBC cipher, or AuthEnvelopedData under AES-GCM), in bounded memory: the
//! input is read once, in blocks, each block base64-decoded, its framing followed by a
//! [`crate::cms::content_stream::ContentStream`], decrypted and written out, while the input and
//! output SHA-256 and the next block's decoding run beside it on other threads. GCM output goes
//! to an unnamed spool file first and reaches the caller's writer only once the tag (over the
//! authAttrs that follow the content, too) has verified.
//!
//! Anything else is left to the in-memory path, which is always correct: [`prepare`] returns
//! `None` (not an envelope at top level, GCM without a spool folder, several candidate keys, no
//! key), and [`MessageStream::run`] returns
//! [`StreamError::NotStreamable`] before writing anything when the plaintext is a message or a
//! digest, or is itself labelled S/MIME (the MIME walk would go on into it). A multipart
//! plaintext streams under a watch (`HeaderScan`) that hands it back at the first part the
//! walk could act on; every plaintext under two more (an envelope visible in it, and
//! `EncodedWatch`: base64 attachments decoded as they pass, an archive, a uuencoded block). A [`StreamError::Failed`] (that hand-back, bad padding or a bad tag at the
//! very end, malformed framing, a write error) means the caller discards what was written; the
//! CLI then runs the in-memory path, so the item's final result and error message are the same
//! as if it had never been streamed.

use std::io::Write;
use std::ops::Range;

mod inflate;

use crate::cms::ber::Header;
use crate::cms::content_stream::ContentStream;
use crate::cms::envelope::{self, Enclosing, MAX_HEADER_PART};
use crate::content::cbc::CbcStream;
use crate::content::gcm::GcmDecryptor;
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

/// The content decryption of a streamed envelope, its key unwrapped.
pub(crate) enum StreamCipher {
    /// EnvelopedData under a CBC cipher: plaintext is written as it comes (the CLI discards
    /// the output should the padding at the very end be wrong).
    Cbc(CbcStream),
    /// AuthEnvelopedData under AES-GCM: plaintext goes to an unnamed temporary file in
    /// `spool_dir` and reaches the output only once the tag (over the authAttrs that follow
    /// the content, too) has verified.
    Gcm {
        gcm: Box<GcmDecryptor>,
        tag_len: usize,
        spool_dir: std::path::PathBuf,
    },
}

impl StreamCipher {
    fn update(&mut self, ct: &[u8], sink: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            StreamCipher::Cbc(cbc) => cbc.update(ct, sink),
            StreamCipher::Gcm { gcm, .. } => {
                let from = sink.len();
                sink.extend_from_slice(ct);
                gcm.update(&mut sink[from..])
            }
        }
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
    found: Located,
    cipher: StreamCipher,
    layer: LayerInfo,
}

/// A top-level EnvelopedData found in a message, up to its encrypted content.
struct Located {
    hb: HeaderBlock,
    base64: bool,
    header: envelope::EnvelopeHeader<'static>,
    /// The encryptedContent header; its `content_start` is an offset in the decoded ContentInfo.
    content: Header,
    enclosing: Enclosing,
}

/// Finds a top-level EnvelopedData with CBC content, or AuthEnvelopedData with GCM content,
/// that this module could stream: a leaf entity (any label, as the walk), the transfer encoding
/// and the header before the content. No key is touched.
fn locate(msg: &[u8]) -> Option<Located> {
    let hb = header::parse_block(msg, 0, msg.len());
    if hb.overflow {
        return None;
    }
    if let Some(v) = hb.get(msg, "content-type") {
        let ct = ContentType::parse(&v);
        if matches!(ct.main_type(), "multipart" | "message") {
            return None;
        }
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
                let cipher = crate::content::algorithm::parse(
                    &s.header.content_algorithm_der,
                    s.header.content_algorithm_offset,
                )
                .ok()?;
                // CBC in EnvelopedData or GCM in AuthEnvelopedData; anything else is refused
                // by the in-memory path, which names the reason.
                crate::decrypt::check_cipher_fits(s.header.kind, &cipher).ok()?;
                return Some(Located {
                    hb,
                    base64,
                    header: s.header,
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

/// Whether `msg` looks streamable, without touching a key: a top-level CBC EnvelopedData or GCM
/// AuthEnvelopedData in base64 or binary. [`prepare`] may still decline (no key or several, a
/// key that does not unwrap, GCM without a spool folder) and [`MessageStream::run`] too (a
/// plaintext holding S/MIME). Costs a look at the first kilobytes.
pub fn plausible(msg: &[u8]) -> bool {
    locate(msg).is_some()
}

/// Checks whether `msg` can be streamed and, if so, unwraps its content key. Costs one
/// private-key operation and a look at the first kilobytes.
pub fn prepare<'m, 'd>(dec: &'d Decryptor<'d>, msg: &'m [u8]) -> Option<MessageStream<'m, 'd>> {
    let found = locate(msg)?;
    let (cipher, layer) = dec.open_stream(&found.header)?;
    Some(MessageStream {
        dec,
        msg,
        found,
        cipher,
        layer,
    })
}

/// Watches a multipart plaintext as it streams for anything that could make the in-memory
/// MIME walk act on it. Deliberately cruder than the walk, and conservative: it does not follow
/// the multipart structure. Every occurrence of `content-type` or `content-disposition`, in any
/// case, anywhere (a part's header, or a text that merely quotes one), is taken with the rest of
/// its line and its continuation lines as a header field and judged by [`judge_field`]: a
/// `pkcs7-mime` label, a `.p7m` name, a message or digest type, or anything the walk's parser
/// would rewrite before reading (comments, quoted pairs, RFC 2231 parameters, encoded words, a
/// field too long to judge) hands the message back to the in-memory path, and so does an
/// envelope visible in the plaintext (`detect::MarkerWatch`). What lies inside base64
/// attachments, whatever their labels, and in uuencoded blocks, is [`EncodedWatch`]'s.
#[derive(Default)]
struct HeaderScan {
    /// The last bytes seen, lower-cased, so that a name split between two chunks is found.
    carry: Vec<u8>,
    /// A field being collected (lower-cased), and whether its last byte is a line feed (the
    /// next byte then says whether the field goes on).
    field: Option<Vec<u8>>,
    at_line_end: bool,
    /// Lower-cased copy of the current chunk (reused).
    lower: Vec<u8>,
    found: Option<&'static str>,
}

/// A field longer than this is not judged: it hands the message back.
const SCAN_FIELD: usize = 16 * 1024;

const FIELD_NAMES: [&[u8]; 2] = [b"content-type", b"content-disposition"];

/// Whether a header field (`name: value` with its continuation lines, lower-cased) could make
/// the MIME walk open or descend into the part it belongs to.
fn judge_field(field: &[u8]) -> Option<&'static str> {
    let v: Vec<u8> = field
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    let has = |p: &[u8]| memchr::memmem::find(&v, p).is_some();
    if has(b"pkcs7-mime") {
        return Some("a part labelled pkcs7-mime");
    }
    if has(b"p7m") {
        return Some("a part named .p7m");
    }
    if has(b"message/") || has(b"digest") {
        return Some("a message part");
    }
    if has(b"=?") || v.iter().any(|b| matches!(b, b'*' | b'(' | b'\\' | 0)) {
        return Some("a header field in a form not judged here");
    }
    // And what the walk's own parser makes of it.
    let value = memchr::memchr(b':', &v).map_or(&v[..], |c| &v[c + 1..]);
    let ct = ContentType::parse(&String::from_utf8_lossy(value));
    if detect::is_candidate_label(&ct, Some(&ct))
        || ct.main_type() == "message"
        || ct.mime_type == "multipart/digest"
    {
        return Some("a part the walk would open");
    }
    None
}

impl HeaderScan {
    fn feed(&mut self, data: &[u8]) {
        if self.found.is_some() || data.is_empty() {
            return;
        }
        let keep = self.carry.len();
        self.lower.clear();
        self.lower.extend_from_slice(&self.carry);
        self.lower.extend(data.iter().map(u8::to_ascii_lowercase));
        let buf = std::mem::take(&mut self.lower);
        // A field still being collected from the last chunk goes on first.
        let mut at = 0;
        if self.field.is_some() {
            at = self.collect(&buf, keep);
        }
        // Field names starting in this chunk (or in the carried tail before it).
        let mut hits: Vec<usize> = FIELD_NAMES
            .iter()
            .flat_map(|n| memchr::memmem::find_iter(&buf, n).filter(move |&p| p + n.len() > keep))
            .collect();
        hits.sort_unstable();
        for p in hits {
            if self.found.is_some() {
                break;
            }
            if p < at {
                continue; // inside the field just judged
            }
            self.field = Some(Vec::new());
            self.at_line_end = false;
            at = self.collect(&buf, p);
        }
        // The stream's last bytes, for a name that the next chunk completes.
        let from = buf.len().saturating_sub(FIELD_NAMES[1].len() - 1);
        self.carry.clear();
        self.carry.extend_from_slice(&buf[from..]);
        self.lower = buf;
    }

    /// Adds `buf[from..]` to the field being collected until the field ends (a line end not
    /// followed by a blank); returns where it stopped. Judges the field when it has ended.
    fn collect(&mut self, buf: &[u8], from: usize) -> usize {
        let Some(field) = self.field.as_mut() else {
            return from;
        };
        let mut i = from;
        while i < buf.len() {
            let b = buf[i];
            if self.at_line_end && b != b' ' && b != b'\t' {
                // The field ended at the previous line feed.
                let done = self.field.take().unwrap_or_default();
                self.at_line_end = false;
                self.found = judge_field(&done);
                return i;
            }
            field.push(b);
            self.at_line_end = b == b'\n';
            if field.len() > SCAN_FIELD {
                self.field = None;
                self.found = Some("a header field too long to judge");
                return buf.len();
            }
            i += 1;
        }
        buf.len()
    }

    fn finish(&mut self) {
        if let Some(done) = self.field.take()
            && self.found.is_none()
        {
            self.found = judge_field(&done);
        }
    }
}

/// Watches streamed plaintext for what the in-memory walk finds below its surface, which
/// [`HeaderScan`] and the plain [`detect::MarkerWatch`] cannot see: every run of base64 lines
/// (an attachment, whatever its label) is decoded as it passes and searched for an envelope,
/// in binary or in base64 again (a forwarded S/MIME message), and its first bytes for an
/// archive (the walk inflates gzip and zip to look inside); a uuencoded block (`begin 644
/// name`) hands the message back too. Conservative like the header watch: what it finds only
/// sends the message to the in-memory path, which decides.
#[derive(Default)]
struct EncodedWatch {
    /// A line cut by the end of the last block (at most [`LINE_LIMIT`] bytes).
    line: Vec<u8>,
    /// A line longer than that, base64 so far: its bytes go into the run as they come.
    long_line: bool,
    /// A line longer than that with other bytes: skipped to its end.
    skip_line: bool,
    /// The last line was blank (a part's body may start with a short base64 line).
    prev_blank: bool,
    in_run: bool,
    /// Base64 characters of the run not yet decoded: decoded a block at a time.
    pending: Vec<u8>,
    /// The run's first decoded bytes, for the archive check and to tell text from binary.
    head: Vec<u8>,
    head_checked: bool,
    /// Whether the run decodes to text (searched as the walk searches) or to binary data
    /// (searched by [`detect::envelope_signs`]: the walk's search would look at every `M`).
    text: bool,
    markers: detect::MarkerWatch,
    /// A binary run's search.
    signs: inflate::SignWatch,
    /// A gzip, zlib or zip run, inflated as it comes (the walk looks inside those).
    archive: Option<inflate::Archive>,
    /// The plaintext's last bytes, for a quoted-printable sign across two pieces.
    qp_carry: Vec<u8>,
    found: Option<&'static str>,
}

/// The content types' OIDs (from their third byte) in quoted-printable, upper- and lower-case
/// hex: a DER envelope in a quoted-printable part, which the walk decodes and opens.
const QP_SIGNS: [&[u8]; 4] = [
    b"=86H=86=F7=0D=01=07=03",
    b"=86H=86=f7=0d=01=07=03",
    b"=86H=86=F7=0D=01=09=10=01=17",
    b"=86H=86=f7=0d=01=09=10=01=17",
];

/// Longest of [`QP_SIGNS`].
const QP_SIGN_MAX: usize = 28;

/// RFC 5322's line limit, with its line end: a longer line is taken piece by piece.
const LINE_LIMIT: usize = 1000;

/// Whether every byte is of the base64 alphabet or `=`. Without an early exit, so that the
/// compiler can check many bytes at once: most lines tested are base64 through and through.
fn all_base64(l: &[u8]) -> bool {
    l.iter().fold(true, |ok, &c| {
        ok & (c.is_ascii_alphanumeric() | (c == b'+') | (c == b'/') | (c == b'='))
    })
}

impl EncodedWatch {
    fn feed(&mut self, data: &[u8]) {
        self.quoted_printable(data);
        let mut rest = data;
        while self.found.is_none() {
            match memchr::memchr(b'\n', rest) {
                Some(nl) => {
                    let (seg, after) = rest.split_at(nl + 1);
                    self.segment(seg, true);
                    rest = after;
                }
                None => {
                    self.segment(rest, false);
                    break;
                }
            }
        }
        self.decode_pending(false);
    }

    /// A DER envelope in quoted-printable: its OID shows as escapes.
    fn quoted_printable(&mut self, data: &[u8]) {
        let n = data.len().min(QP_SIGN_MAX);
        self.qp_carry.extend_from_slice(&data[..n]);
        let seen = |d: &[u8]| {
            QP_SIGNS
                .iter()
                .any(|s| memchr::memmem::find(d, s).is_some())
        };
        if seen(&self.qp_carry) || seen(data) {
            self.found = Some("a quoted-printable part holding an envelope");
        }
        let mut tail = std::mem::take(&mut self.qp_carry);
        tail.truncate(tail.len() - n);
        tail.extend_from_slice(&data[data.len().saturating_sub(QP_SIGN_MAX)..]);
        let from = tail.len().saturating_sub(QP_SIGN_MAX);
        self.qp_carry = tail.split_off(from);
    }

    /// A piece of a line; `ends` when it holds the line's end.
    fn segment(&mut self, seg: &[u8], ends: bool) {
        if self.long_line {
            // A CR (or blank) before the piece's end may belong to the line's end.
            let body = seg.trim_ascii_end();
            if all_base64(body) {
                self.push_chars(body);
            } else {
                self.end_run();
                self.skip_line = !ends;
            }
            self.long_line = !ends && self.in_run;
            return;
        }
        if self.skip_line {
            self.skip_line = !ends;
            return;
        }
        if ends && self.line.is_empty() {
            self.take_line(seg);
            return;
        }
        self.line.extend_from_slice(seg);
        let line = std::mem::take(&mut self.line);
        if ends {
            self.take_line(&line);
        } else if line.len() > LINE_LIMIT {
            if all_base64(line.trim_ascii_end()) {
                self.start_run();
                self.push_chars(line.trim_ascii_end());
                self.long_line = true;
            } else {
                self.end_run();
                self.skip_line = true;
            }
        } else {
            self.line = line;
            return;
        }
        self.line = line;
        self.line.clear();
    }

    fn finish(&mut self) {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() && !self.long_line && !self.skip_line {
            self.take_line(&line);
        }
        self.end_run();
    }

    fn take_line(&mut self, line: &[u8]) {
        let l = line.trim_ascii_end();
        let after_blank = std::mem::replace(&mut self.prev_blank, l.is_empty());
        if l.first() == Some(&b'b') && detect::is_uuencode_begin(l) {
            self.found = Some("a uuencoded block");
            return;
        }
        if l.is_empty() || !(self.in_run || after_blank || l.len() >= 16) || !all_base64(l) {
            self.end_run();
            return;
        }
        self.start_run();
        self.push_chars(l);
    }

    /// A run's characters, without `=`: the walk's decoder drops padding wherever it stands,
    /// so the quanta are cut in the same sequence of characters.
    fn push_chars(&mut self, l: &[u8]) {
        if memchr::memchr(b'=', l).is_some() {
            self.pending.extend(l.iter().filter(|&&c| c != b'='));
        } else {
            self.pending.extend_from_slice(l);
        }
    }

    fn start_run(&mut self) {
        if !self.in_run {
            self.in_run = true;
            self.head.clear();
            self.head_checked = false;
            self.text = true;
            self.markers = detect::MarkerWatch::default();
            self.signs = inflate::SignWatch::default();
            self.archive = None;
        }
    }

    /// Decodes the run's characters seen so far (all of them at its end, else whole quanta).
    fn decode_pending(&mut self, end: bool) {
        if self.pending.is_empty() || self.found.is_some() {
            return;
        }
        let whole = if end {
            self.pending.len()
        } else {
            self.pending.len() / 4 * 4
        };
        let mut chars = std::mem::take(&mut self.pending);
        self.pending = chars.split_off(whole);
        // As the walk decodes: SIMD for the usual case, the lenient decoder (padding inside,
        // a dangling character) for the rest.
        let lenient;
        let decoded: &[u8] = match detect::decode_quanta_inplace(&mut chars) {
            Some(d) => d,
            None => {
                lenient = detect::decode_base64(&chars);
                &lenient
            }
        };
        self.take_decoded(decoded);
    }

    fn take_decoded(&mut self, decoded: &[u8]) {
        if decoded.is_empty() {
            return;
        }
        if !self.head_checked {
            let earlier = self.head.len();
            let want = 8usize.saturating_sub(earlier).min(decoded.len());
            self.head.extend_from_slice(&decoded[..want]);
            if self.head.len() >= 8 {
                self.check_head();
                // The search and the archive from the run's first byte: the head's bytes from
                // earlier pieces went only to the text search.
                let head = self.head[..earlier].to_vec();
                if !self.text && self.signs.feed(&head) {
                    self.found = Some("an attachment holding an envelope");
                    return;
                }
                self.look_inside(&head);
            }
        }
        let seen = if self.text {
            self.markers.feed(decoded);
            self.markers.found().is_some()
        } else {
            self.signs.feed(decoded)
        };
        if seen {
            self.found = Some("an attachment holding an envelope");
            return;
        }
        self.look_inside(decoded);
    }

    /// Feeds a gzip, zlib or zip run's decoded bytes to its inflater.
    fn look_inside(&mut self, d: &[u8]) {
        let Some(archive) = self.archive.as_mut() else {
            return;
        };
        match archive.feed(d) {
            inflate::Seen::Nothing => {}
            inflate::Seen::Envelope => {
                self.found = Some("an archive attachment holding an envelope");
            }
            inflate::Seen::Unsure => {
                self.found = Some("an archive attachment the stream does not follow");
            }
        }
    }

    fn check_head(&mut self) {
        self.head_checked = true;
        let h = &self.head;
        self.text = h
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
        self.archive = inflate::Archive::starting(h);
    }

    fn end_run(&mut self) {
        if self.in_run {
            self.decode_pending(true);
        }
        self.pending.clear();
        self.in_run = false;
        self.long_line = false;
        self.archive = None;
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
        // Lines are found by guessing their width first (see `Base64Lines`); should a guess have
        // taken an LF in, the block is gathered again line by line before anything is refused.
        let left = self.carry.len();
        let mut guess = true;
        loop {
            for line in detect::Base64Lines::new(block, guess) {
                self.carry.extend_from_slice(line);
            }
            if !guess || memchr::memchr(b'\n', &self.carry[left..]).is_none() {
                break;
            }
            self.carry.truncate(left);
            guess = false;
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
    cipher: StreamCipher,
    /// Plaintext held until the inner header block has ended; `None` once written.
    head: Option<Vec<u8>>,
    msg: &'a [u8],
    hb: &'a HeaderBlock,
    layer: &'a LayerInfo,
    opts: &'a MessageOptions,
    enclosing: Enclosing,
    /// For a multipart plaintext: the watch for parts the in-memory walk would act on.
    scan: Option<HeaderScan>,
    /// Over every plaintext: an envelope in it, whatever its label, is the walk's to open.
    markers: detect::MarkerWatch,
    /// Over every plaintext: attachments decoded, and uuencoded blocks.
    encoded: EncodedWatch,
    /// Over what follows the content: a second envelope after this one's end (the in-memory
    /// path refuses that too).
    tail_watch: detect::MarkerWatch,
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
        self.markers.feed(out);
        if self.markers.found().is_some() {
            return Err(StreamError::Failed(Error::Mime {
                detail: "the plaintext holds an envelope of its own; decrypt it in memory".into(),
            }));
        }
        self.encoded.feed(out);
        if end {
            self.encoded.finish();
        }
        if let Some(why) = self.encoded.found {
            return Err(StreamError::Failed(Error::Mime {
                detail: format!(
                    "the plaintext has {why}, which the message walk looks into; decrypt it in memory"
                ),
            }));
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
        if self.content.is_done() {
            self.tail_watch.feed(rest);
        }
        if !self.content.is_done() && !rest.is_empty() {
            let sink: &mut Vec<u8> = match &mut self.head {
                Some(h) => h,
                None => plain,
            };
            let cipher = &mut self.cipher;
            let used = self
                .content
                .feed(rest, &mut |ct| cipher.update(ct, sink))
                .map_err(StreamError::Failed)?;
            after = rest.get(used..).unwrap_or(&[]);
            if self.content.is_done() {
                self.after_at = base + skip + used;
                self.tail_watch.feed(after);
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
            let field = rewrite::layer_field(self.layer, "", &self.opts.timestamp, eol);
            rw.insert_fields([Piece::owned(field)]);
        }
        plain.extend_from_slice(&rw.flatten());
        Ok(())
    }

    /// For GCM: the tag over the authAttrs and the ciphertext, as the in-memory path checks
    /// it; returns the plaintext length.
    fn check_tag(&mut self) -> Result<u64, StreamError> {
        let StreamCipher::Gcm { gcm, tag_len, .. } = &self.cipher else {
            return Ok(0);
        };
        let (aad, mac) = envelope::auth_trailer(&self.enclosing, &self.after, self.after_at)
            .map_err(StreamError::Failed)?;
        crate::decrypt::check_mac_len(&mac, *tag_len).map_err(StreamError::Failed)?;
        let text_len = gcm.text_len();
        gcm.finish_with_late_aad(aad.as_deref().unwrap_or(&[]), &mac)
            .map_err(|e| {
                StreamError::Failed(Error::WrongKey {
                    recipient: self.layer.used_recipient.to_string(),
                    reason: crate::decrypt::tag_failure(&e),
                })
            })?;
        Ok(text_len)
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
        // Everything from here on is watched: the last block, and the head if still held.
        let from = plain.len();
        let sink: &mut Vec<u8> = match &mut self.head {
            Some(h) => h,
            None => plain,
        };
        let plain_len = match &mut self.cipher {
            StreamCipher::Cbc(cbc) => cbc.finish(sink).map_err(|e| match e {
                Ok(p) => StreamError::Failed(Error::WrongKey {
                    recipient: self.layer.used_recipient.to_string(),
                    reason: p.0,
                }),
                Err(e) => StreamError::Failed(e),
            })?,
            StreamCipher::Gcm { .. } => self.check_tag()?,
        };
        self.flush_head(plain, true)?;
        self.watch(plain.get(from..).unwrap_or(&[]), true)?;
        Ok((self.content.content_len(), plain_len))
    }
}

impl MessageStream<'_, '_> {
    /// The envelope as opened: its kind, ciphers and the recipient whose key unwrapped it (the
    /// lengths are filled in by [`run`](Self::run)).
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
        // GCM: everything is written to a spool first and copied to `out` once the tag
        // verifies, so `out` never sees unauthenticated plaintext.
        let mut spool = match &self.cipher {
            StreamCipher::Gcm { spool_dir, .. } => Some(
                tempfile::tempfile_in(spool_dir)
                    .map_err(|e| StreamError::Failed(crate::decrypt::spool_error(spool_dir, e)))?,
            ),
            StreamCipher::Cbc(_) => None,
        };
        let final_out = out;
        let out: &mut (dyn Write + Send) = match spool.as_mut() {
            Some(f) => f,
            None => &mut *final_out,
        };
        let msg = self.msg;
        let found = self.found;
        let body_start = found.hb.body_start.min(msg.len());
        let mut layer = self.layer;
        let mut dec = Decrypting {
            der_pos: 0,
            content_start: found.content.content_start,
            content: ContentStream::new(&found.content).map_err(StreamError::Failed)?,
            cipher: self.cipher,
            head: Some(Vec::with_capacity(HEAD_LIMIT)),
            msg,
            hb: &found.hb,
            layer: &layer,
            opts,
            enclosing: found.enclosing,
            scan: None,
            markers: detect::MarkerWatch::default(),
            encoded: EncodedWatch::default(),
            tail_watch: detect::MarkerWatch::default(),
            after: Vec::new(),
            // Where an empty content ends (it is done before any byte is fed); otherwise set
            // when the content ends.
            after_at: found.content.content_start,
            after_ok: false,
        };
        let mut decoder = Decoder {
            base64: found.base64,
            carry: Vec::new(),
        };

        // Three stages at once on rayon's pool: while block k is decrypted, block k+1 is hashed
        // and decoded, and the output of block k-1 written and hashed. SHA-256 (about 1.3 GB/s
        // with SHA-NI) costs as much as AES and base64 together, and 3DES keeps every core busy
        // on its own, so the hashes run wherever a core is free. Not threads of their own: each
        // exiting thread madvises its stack away, which flushes the TLB of every core.
        let mut pos = body_start;
        let mut der_cur: Vec<u8> = Vec::new();
        let mut der_next: Vec<u8> = Vec::new();
        let mut plain: Vec<u8> = Vec::new();
        let mut plain_prev: Vec<u8> = Vec::new();
        let mut written = 0u64;
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
            let ((a, c), b) = rayon::join(
                || {
                    rayon::join(
                        || -> Result<(), StreamError> {
                            if let Some(r) = next_block.clone() {
                                let block = msg.get(r.clone()).unwrap_or(&[]);
                                hash_in.update(block);
                                decoder.decode(block, r.end >= msg.len(), &mut der_next)?;
                            }
                            Ok(())
                        },
                        || -> Result<(), StreamError> {
                            out.write_all(&plain_prev)?;
                            hash_out.update(&plain_prev);
                            Ok(())
                        },
                    )
                },
                || {
                    plain.clear();
                    dec.feed(&der_cur, &mut plain)
                },
            );
            a?;
            c?;
            b?;
            if let Some(r) = next_block {
                done_with(r.clone());
                pos = r.end;
            }
            std::mem::swap(&mut der_cur, &mut der_next);
            der_next.clear();
            written += plain.len() as u64;
            std::mem::swap(&mut plain, &mut plain_prev);
        }
        out.write_all(&plain_prev)?;
        hash_out.update(&plain_prev);
        // Reading stopped where the envelope ended; what is left of the body must not hold a
        // second one.
        if let Some(rest) = msg.get(pos..).filter(|r| !r.is_empty()) {
            let mut tail_der = Vec::new();
            decoder.decode(rest, true, &mut tail_der)?;
            dec.tail_watch.feed(&tail_der);
        }
        if let Some(at) = dec.tail_watch.found() {
            return Err(StreamError::Failed(crate::mime::walk::second_envelope(
                dec.after_at + at as usize,
            )));
        }
        // The padding block (and, for a short plaintext, the whole header) comes out last.
        let mut tail = Vec::new();
        let (ct_len, pt_len) = dec.finish(&mut tail)?;
        out.write_all(&tail)?;
        out.flush()?;
        hash_out.update(&tail);
        if let Some(mut file) = spool {
            use std::io::Seek;
            file.rewind()?;
            std::io::copy(&mut file, final_out)?;
            final_out.flush()?;
        }
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
            bytes_out: written + tail.len() as u64,
            sha256_in: hash_in.finish(),
            sha256_out: hash_out.finish(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn scan(p: &[u8], chunk: usize) -> Option<&'static str> {
        let mut s = HeaderScan::default();
        for c in p.chunks(chunk) {
            s.feed(c);
        }
        s.finish();
        s.found
    }

    /// A multipart plaintext whose second part has `part_header` and `body`.
    fn multipart(part_header: &str, body: &str) -> Vec<u8> {
        format!(
            "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n\
             --b\n{part_header}\n{body}\n--b--\n"
        )
        .into_bytes()
    }

    /// Parts the MIME walk opens, written every way a reviewer found to get them past a first
    /// version of the watch: the walk must find an envelope, and the watch must hand back, in
    /// any chunking.
    #[test]
    fn the_watch_catches_every_part_the_walk_would_open() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let env = b64.encode([
            0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0,
            0x80, 0x30, 0x80, 0x02, 0x01, 0x00, 0, 0, 0, 0, 0, 0,
        ]);
        let inner = b64.encode(format!(
            "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\n\
             Content-Transfer-Encoding: base64\n\n{env}\n"
        ));
        let te = "Content-Transfer-Encoding: base64\n";
        let long = " ".repeat(16_400);
        let cases: Vec<Vec<u8>> = vec![
            multipart(&format!("Content-Type: application/pkcs7-mime\n{te}"), &env),
            multipart(&format!("Content-Type: application/octet-stream; name=\"smime.p\\7m\"\n{te}"), &env),
            multipart(&format!("Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"a.\\p7\\m\"\n{te}"), &env),
            multipart(&format!("Content-Type: application/pkcs7-(x)mime\n{te}"), &env),
            multipart(&format!("Content-Type: application/octet-stream; name=smime.p(x)7m\n{te}"), &env),
            multipart(&format!("Content-Type: application/pkcs7-(\n x)mime\n{te}"), &env),
            multipart(&format!("Content-Type: application/pkcs7\r-mime\n{te}"), &env),
            multipart(&format!(" Content-Type: application/pkcs7-mime\n{te}"), &env),
            multipart(&format!("\tContent-Type: application/pkcs7-mime\n{te}"), &env),
            multipart(&format!("X-A: 1\n\x0cContent-Type: application/pkcs7-mime\n{te}"), &env),
            multipart(&format!("X-A: 1\n\rContent-Type: application/pkcs7-mime\n{te}"), &env),
            multipart(&format!("cOnTeNt-TyPe: APPLICATION/PKCS7-MIME\n{te}"), &env),
            multipart(&format!("Content-Type:{long}application/pkcs7-mime\n{te}"), &env),
            multipart(&format!("Content-Type{long}: application/pkcs7-mime\n{te}"), &env),
            multipart(&format!("Content-Type: application/octet-stream; x=\"{}\"; name=smime.p7m\n{te}", "A".repeat(16_400)), &env),
            multipart(&format!("Content-Type: message(x)/rfc822\n{te}"), &inner),
            format!("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/dig(x)est; boundary=d\n\n--d\n{te}\n{inner}\n--d--\n--b--\n").into_bytes(),
        ];
        for (i, p) in cases.iter().enumerate() {
            let found = crate::mime::find_envelopes(p, &MessageOptions::default()).unwrap();
            assert_eq!(found.len(), 1, "case {i}: the walk opens it");
            for chunk in [p.len(), 4096, 7, 1] {
                assert!(scan(p, chunk).is_some(), "case {i} in chunks of {chunk}");
            }
        }
    }

    /// What real mail looks like: attachments, sign-then-encrypt, quoted text, boundaries.
    #[test]
    fn ordinary_multiparts_are_not_handed_back() {
        let attachment = "QUJD".repeat(20_000);
        let cases = [
            multipart(
                "Content-Type: application/pdf; name=\"report.pdf\"\n\
                 Content-Disposition: attachment; filename=\"report.pdf\"\n\
                 Content-Transfer-Encoding: base64\n",
                &attachment,
            ),
            format!(
                "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; \
                 micalg=sha-256;\n boundary=\"----=_Part_0_1.2\"\n\n------=_Part_0_1.2\n\
                 Content-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: 7bit\n\n\
                 hello\n------=_Part_0_1.2\nContent-Type: application/pkcs7-signature; \
                 name=\"smime.p7s\"\nContent-Disposition: attachment; filename=\"smime.p7s\"\n\
                 Content-Transfer-Encoding: base64\n\n{attachment}\n------=_Part_0_1.2--\n"
            )
            .into_bytes(),
        ];
        for (i, p) in cases.iter().enumerate() {
            for chunk in [p.len(), 4096, 7, 1] {
                assert_eq!(scan(p, chunk), None, "case {i} in chunks of {chunk}");
            }
        }
    }

    /// Lines whose width changes, including a short line whose LF lies where the last width
    /// says the next line ends: every split into blocks decodes to the same bytes, and the
    /// stream does not give up on them.
    #[test]
    fn the_decoder_survives_a_wrong_line_width_guess() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 37 % 251) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        let mut body = Vec::new();
        let mut rest = b64.as_bytes();
        // 8 wide, then 3 and 4 wide (the 3-wide line's guessed end is the 4-wide one's LF),
        // then 76 wide with CRLF.
        for (i, w) in [8usize, 3, 4]
            .into_iter()
            .chain(std::iter::repeat(76))
            .enumerate()
        {
            if rest.is_empty() {
                break;
            }
            let w = w.min(rest.len());
            body.extend_from_slice(&rest[..w]);
            body.extend_from_slice(if i < 3 { b"\n" } else { b"\r\n" });
            rest = &rest[w..];
        }
        assert_eq!(body[9 + 8], b'\n');
        for block in [body.len(), 4096, 77, 13, 9] {
            let mut d = Decoder {
                base64: true,
                carry: Vec::new(),
            };
            let mut got = Vec::new();
            let mut out = Vec::new();
            let pieces: Vec<&[u8]> = body.chunks(block).collect();
            for (i, piece) in pieces.iter().enumerate() {
                d.decode(piece, i + 1 == pieces.len(), &mut out)
                    .unwrap_or_else(|_| panic!("blocks of {block}: refused"));
                got.extend_from_slice(&out);
            }
            assert_eq!(got, data, "blocks of {block}");
        }
    }
}
