//! mbox in all four classic variants (see qmail's mbox(5) and RFC 4155):
//!
//! * **mboxo** — body lines starting `From ` are written as `>From `; lossy (an original
//!   `>From ` reads back as `From `).
//! * **mboxrd** — every line matching `>*From ` gets one more `>`; reading strips one from
//!   `>+From `. Reversible.
//! * **mboxcl** — mboxo quoting plus a `Content-Length:` header giving the stored body length.
//! * **mboxcl2** — no quoting; `Content-Length:` alone delimits the body.
//!
//! Hand-written because no crate in the workspace's dependency set parses mbox, and the crates
//! that exist (e.g. `mbox-reader`) neither keep the From_ line byte-exact nor handle the
//! Content-Length variants, quoting variants or memory-mapped splitting we need.
//!
//! Framing used for reading and writing: `From_ line` + message + one line ending. Reading
//! removes exactly that one trailing line ending, so any byte string round-trips, including a
//! message that does not end in a newline.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use memchr::memmem;
use memmap2::Mmap;

use crate::atomic;
use crate::body::{Body, map_file};
use crate::{Error, Fill, Filled, Item, ItemKind, Location, Meta, Sink};

/// The quoting / delimiting convention of an mbox file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MboxVariant {
    Mboxo,
    Mboxrd,
    Mboxcl,
    Mboxcl2,
}

impl MboxVariant {
    fn uses_content_length(self) -> bool {
        matches!(self, MboxVariant::Mboxcl | MboxVariant::Mboxcl2)
    }
}

/// Line ending of the From_ lines and of the separator line the file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Eol {
    Lf,
    CrLf,
}

impl Eol {
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Eol::Lf => b"\n",
            Eol::CrLf => b"\r\n",
        }
    }
}

/// Position and framing of one message in an mbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MboxMeta {
    /// 0-based message index.
    pub index: u64,
    /// Byte offset of the From_ line in the input file.
    pub offset: u64,
    /// The From_ line exactly as found, including its line ending.
    pub from_line: Vec<u8>,
    pub variant: MboxVariant,
    pub eol: Eol,
    /// Whether a line ending separated this message from what follows. Only the last message of
    /// a file that does not end in a line ending lacks one; writing it back the same way keeps
    /// the copy byte-identical.
    pub trailing_eol: bool,
}

pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether `line` (with or without its line ending) is an mbox From_ separator line.
///
/// Beyond the `From ` prefix we require the shape `From <sender>[ <date>]` where the date, if
/// present, contains a clock time: real separators look like `From - `, `From a@b`,
/// `From a@b Mon Jun  3 12:50:27 1996`, while an unquoted body line such as
/// `From Russia with love` has words but no time and is not taken as a separator.
pub fn is_from_line(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"From ") else {
        return false;
    };
    let rest = trim_eol(rest);
    let mut tokens = rest
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty());
    let _sender = tokens.next();
    let mut any = false;
    for t in tokens {
        any = true;
        if t.windows(3)
            .any(|w| w[0].is_ascii_digit() && w[1] == b':' && w[2].is_ascii_digit())
        {
            return true;
        }
    }
    !any
}

/// A CR anywhere but just before the line's final LF.
fn has_bare_cr(line: &[u8]) -> bool {
    memchr::memchr(b'\r', trim_eol(line)).is_some()
}

fn trim_eol(mut s: &[u8]) -> &[u8] {
    if let Some(x) = s.strip_suffix(b"\n") {
        s = x;
    }
    if let Some(x) = s.strip_suffix(b"\r") {
        s = x;
    }
    s
}

/// The line starting at `start` (up to and including its '\n', or to the end).
fn line_at(data: &[u8], start: usize) -> &[u8] {
    let rest = data.get(start..).unwrap_or(&[]);
    match memchr::memchr(b'\n', rest) {
        Some(i) => rest.get(..=i).unwrap_or(rest),
        None => rest,
    }
}

fn is_sep_at(data: &[u8], pos: usize) -> bool {
    is_from_line(line_at(data, pos))
}

/// Which kinds of `From ` lines a scan passed (lines that are not separators).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Quotes {
    /// `From ` with no `>`.
    bare: bool,
    /// `>From `.
    one: bool,
    /// `>>From ` and deeper.
    more: bool,
}

impl Quotes {
    /// Whether [`unquote`] may have something to remove.
    fn need_unquote(self, variant: MboxVariant) -> bool {
        match variant {
            MboxVariant::Mboxrd => self.one || self.more,
            MboxVariant::Mboxo | MboxVariant::Mboxcl => self.one,
            MboxVariant::Mboxcl2 => false,
        }
    }
}

/// Start of the next From_ separator line at or after `from` (which must be a line start), or
/// `data.len()`, and the quoted or bare `From ` lines passed on the way (so that the reader
/// knows, without a second pass, whether a message needs unquoting). The search goes window by
/// window and reports each window it has finished to `scanned`, so that the reader can drop
/// the pages of a very large message behind it.
fn find_sep(data: &[u8], from: usize, scanned: &mut dyn FnMut(usize)) -> (usize, Quotes) {
    let mut quotes = Quotes::default();
    if from >= data.len() {
        return (data.len(), quotes);
    }
    if is_sep_at(data, from) {
        return (from, quotes);
    }
    let mut at = from;
    while at < data.len() {
        // Windows overlap by the needle's length so no match is cut in two; a match starting
        // in the overlap belongs to the next window.
        let end = (at + SCAN_WINDOW).min(data.len());
        for (j, n) in from_lines_in(data, from, at..end) {
            match n {
                0 if is_sep_at(data, j) => return (j, quotes),
                0 => quotes.bare = true,
                1 => quotes.one = true,
                _ => quotes.more = true,
            }
        }
        scanned(end);
        at = end;
    }
    (data.len(), quotes)
}

/// Index just past the blank line ending the header block of `msg`, if there is one.
fn header_end(msg: &[u8]) -> Option<usize> {
    if msg.starts_with(b"\n") {
        return Some(1);
    }
    if msg.starts_with(b"\r\n") {
        return Some(2);
    }
    // One pass that stops at the first blank line: searching for LF LF and LF CR LF separately
    // would read all of a 200 MB message for the one that is not there.
    memchr::memchr_iter(b'\n', msg).find_map(|i| match msg.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if msg.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

/// The value of the first `Content-Length:` header in a header block.
fn content_length(headers: &[u8]) -> Option<u64> {
    for line in headers.split(|&b| b == b'\n') {
        if let Some(v) = strip_header_name(line, b"content-length") {
            let v = trim_eol(v).trim_ascii();
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return None;
            }
            return std::str::from_utf8(v).ok()?.parse().ok();
        }
    }
    None
}

/// If `line` is header `name` (case-insensitive), the bytes after the colon.
fn strip_header_name<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let head = line.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let rest = line.get(name.len()..)?;
    let rest = rest.trim_ascii_start();
    rest.strip_prefix(b":")
}

/// One message's framing inside the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    from_start: usize,
    from_end: usize,
    msg_end: usize,
    next: usize,
    /// Whether Content-Length (rather than the next From_ line) delimited the message.
    by_length: bool,
    /// `From ` lines seen up to the next separator.
    quotes: Quotes,
}

/// Frames the message whose From_ line starts at `pos`.
fn frame(data: &[u8], pos: usize, eol: Eol, use_cl: bool, scanned: &mut dyn FnMut(usize)) -> Span {
    let from_end = (pos + line_at(data, pos).len()).min(data.len());
    let (cand, quotes) = find_sep(data, from_end, scanned);
    if use_cl && let Some((msg_end, next)) = frame_by_length(data, from_end, cand) {
        return Span {
            from_start: pos,
            from_end,
            msg_end,
            next,
            by_length: true,
            // Seen up to the next separator only, which may lie inside this message: the
            // reader does not rely on it for such a message.
            quotes,
        };
    }
    let region = data.get(from_end..cand).unwrap_or(&[]);
    let strip = match eol {
        Eol::CrLf if region.ends_with(b"\r\n") => 2,
        _ if region.ends_with(b"\n") => 1,
        _ => 0,
    };
    Span {
        from_start: pos,
        from_end,
        msg_end: cand - strip,
        next: cand,
        by_length: false,
        quotes,
    }
}

/// Uses the Content-Length header if it lands exactly on the end of the file or on a From_
/// line (optionally after one line ending); otherwise `None` and the caller falls back to
/// From_ scanning. Real files carry wrong lengths (MimeKit's sample has several), so an
/// unverified length is never trusted.
fn frame_by_length(data: &[u8], from_end: usize, cand: usize) -> Option<(usize, usize)> {
    let head_region = data.get(from_end..cand)?;
    let hend = header_end(head_region)?;
    let cl = content_length(head_region.get(..hend)?)?;
    let body_start = from_end + hend;
    let end = usize::try_from(cl).ok()?.checked_add(body_start)?;
    if end > data.len() {
        return None;
    }
    if end == data.len() || is_sep_at(data, end) {
        return Some((end, end));
    }
    let rest = data.get(end..)?;
    let skip = if rest.starts_with(b"\r\n") {
        2
    } else if rest.starts_with(b"\n") {
        1
    } else {
        return None;
    };
    let next = end + skip;
    if next == data.len() || is_sep_at(data, next) {
        Some((end, next))
    } else {
        None
    }
}

/// For each `From ` at a line start (possibly behind `>`s): (line start, count of `>`).
fn from_lines(msg: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    from_lines_in(msg, 0, 0..msg.len())
}

/// [`from_lines`] for the `From ` that start inside `range` of `data` (the match may run past
/// its end), with positions in `data`; a `>` run is not followed back before `line`, a line
/// start at or before `range`.
fn from_lines_in(
    data: &[u8],
    line: usize,
    range: std::ops::Range<usize>,
) -> impl Iterator<Item = (usize, usize)> + '_ {
    let window = data
        .get(range.start..(range.end + 4).min(data.len()))
        .unwrap_or(&[]);
    memmem::find_iter(window, b"From ")
        .map(move |i| range.start + i)
        .take_while(move |&i| i < range.end)
        .filter_map(move |i| {
            let mut j = i;
            while j > line && data.get(j - 1) == Some(&b'>') {
                j -= 1;
            }
            if j == 0 || data.get(j - 1) == Some(&b'\n') {
                Some((j, i - j))
            } else {
                None
            }
        })
}

/// Removes the quoting `variant` adds to body lines.
pub fn unquote(msg: &[u8], variant: MboxVariant) -> Cow<'_, [u8]> {
    let drop: Vec<usize> = match variant {
        MboxVariant::Mboxcl2 => return Cow::Borrowed(msg),
        MboxVariant::Mboxrd => from_lines(msg)
            .filter(|&(_, n)| n >= 1)
            .map(|(j, _)| j)
            .collect(),
        MboxVariant::Mboxo | MboxVariant::Mboxcl => from_lines(msg)
            .filter(|&(_, n)| n == 1)
            .map(|(j, _)| j)
            .collect(),
    };
    if drop.is_empty() {
        return Cow::Borrowed(msg);
    }
    let mut out = Vec::with_capacity(msg.len());
    let mut last = 0;
    for j in drop {
        out.extend_from_slice(msg.get(last..j).unwrap_or(&[]));
        last = j + 1;
    }
    out.extend_from_slice(msg.get(last..).unwrap_or(&[]));
    Cow::Owned(out)
}

/// Appends `msg` with the quoting `variant` requires.
pub fn quote_into(msg: &[u8], variant: MboxVariant, out: &mut Vec<u8>) {
    let mut last = 0;
    match variant {
        MboxVariant::Mboxcl2 => {}
        MboxVariant::Mboxrd => {
            for (j, _) in from_lines(msg) {
                out.extend_from_slice(msg.get(last..j).unwrap_or(&[]));
                out.push(b'>');
                last = j;
            }
        }
        MboxVariant::Mboxo | MboxVariant::Mboxcl => {
            for (j, n) in from_lines(msg) {
                if n == 0 {
                    out.extend_from_slice(msg.get(last..j).unwrap_or(&[]));
                    out.push(b'>');
                    last = j;
                }
            }
        }
    }
    out.extend_from_slice(msg.get(last..).unwrap_or(&[]));
}

/// [`quote_into`] for a message that arrives in pieces: lines are looked at where they start,
/// so a `From ` split between two writes is still quoted. Only the start of a line is ever held
/// back, as a count of `>` and up to four bytes of `From `, never a whole line.
pub struct QuotingWriter<W: Write> {
    inner: W,
    variant: MboxVariant,
    /// At the start of a line (nothing of it written yet).
    line_start: bool,
    /// The current line so far, while it could still become a From_ line: `gts` times `>`,
    /// then the first `partial` bytes of `From `.
    gts: usize,
    partial: usize,
}

const FROM_: &[u8; 5] = b"From ";

impl<W: Write> QuotingWriter<W> {
    pub fn new(inner: W, variant: MboxVariant) -> Self {
        QuotingWriter {
            inner,
            variant,
            line_start: true,
            gts: 0,
            partial: 0,
        }
    }

    fn deciding(&self) -> bool {
        self.gts > 0 || self.partial > 0
    }

    /// Writes the held line start, with a `>` in front if it needs one.
    fn settle(&mut self, quote: bool) -> std::io::Result<()> {
        const GTS: [u8; 64] = [b'>'; 64];
        let mut n = self.gts + usize::from(quote);
        while n > 0 {
            let k = n.min(GTS.len());
            self.inner.write_all(&GTS[..k])?;
            n -= k;
        }
        self.inner.write_all(&FROM_[..self.partial])?;
        self.gts = 0;
        self.partial = 0;
        self.line_start = false;
        Ok(())
    }

    /// Writes out a line start still undecided at the end (it is no From_ line: it ends there).
    pub fn finish(mut self) -> std::io::Result<W> {
        if self.deciding() {
            self.settle(false)?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for QuotingWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.variant == MboxVariant::Mboxcl2 {
            return self.inner.write(data);
        }
        let mut i = 0;
        // Bytes data[run..i] are decided and not yet written.
        let mut run = 0;
        while i < data.len() {
            if self.deciding() || (self.line_start && matches!(data[i], b'>' | b'F')) {
                if run < i {
                    self.inner.write_all(&data[run..i])?;
                }
                // Follow the line start byte by byte until it is decided.
                loop {
                    let Some(&b) = data.get(i) else {
                        return Ok(data.len());
                    };
                    if self.partial == 0 && b == b'>' {
                        self.gts += 1;
                    } else if b == FROM_[self.partial] {
                        self.partial += 1;
                        if self.partial == FROM_.len() {
                            i += 1;
                            let quote = match self.variant {
                                MboxVariant::Mboxrd => true,
                                MboxVariant::Mboxo | MboxVariant::Mboxcl => self.gts == 0,
                                MboxVariant::Mboxcl2 => false,
                            };
                            self.settle(quote)?;
                            break;
                        }
                    } else {
                        // Not a From_ line; `b` itself is left for the line's remainder.
                        self.settle(false)?;
                        break;
                    }
                    i += 1;
                }
                run = i;
                continue;
            }
            // Inside a line, or at the start of one that cannot be a From_ line: skip to the
            // next line start.
            match memchr::memchr(b'\n', &data[i..]) {
                Some(k) => {
                    i += k + 1;
                    self.line_start = true;
                }
                None => {
                    i = data.len();
                    self.line_start = false;
                }
            }
        }
        if run < data.len() {
            self.inner.write_all(&data[run..])?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Appends the headers of `headers` (a header block without its blank line) with every
/// Content-Length set to `len`, adding one if there is none.
fn headers_with_length(headers: &[u8], len: usize, eol: &[u8], out: &mut Vec<u8>) {
    let mut found = false;
    let mut lines = headers.split_inclusive(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if strip_header_name(line, b"content-length").is_some() {
            let le: &[u8] = if line.ends_with(b"\r\n") {
                b"\r\n"
            } else if line.ends_with(b"\n") {
                b"\n"
            } else {
                eol
            };
            out.extend_from_slice(format!("Content-Length: {len}").as_bytes());
            out.extend_from_slice(le);
            found = true;
            // Drop folded continuation lines of the old value.
            while lines
                .peek()
                .is_some_and(|l| l.first().is_some_and(|&b| b == b' ' || b == b'\t'))
            {
                lines.next();
            }
        } else {
            out.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                out.extend_from_slice(eol);
            }
        }
    }
    if !found {
        out.extend_from_slice(format!("Content-Length: {len}").as_bytes());
        out.extend_from_slice(eol);
    }
}

/// Appends one framed message: From_ line, quoted message (Content-Length rewritten for the
/// -cl variants), separator line ending.
pub fn encode_message(
    from_line: &[u8],
    eol: Eol,
    variant: MboxVariant,
    msg: &[u8],
    out: &mut Vec<u8>,
) {
    encode_framed(from_line, eol, variant, msg, false, true, out)
}

/// The message a reader of the output yields for `msg` once [`encode_message`] has framed it
/// with a Content-Length variant, which rewrites that header (so the copy read back differs
/// from `msg`, and a hash of `msg` would not match it); `None` for the other variants, which
/// give `msg` back as it was.
pub fn stored_form(eol: Eol, variant: MboxVariant, msg: &[u8]) -> Option<Vec<u8>> {
    if !variant.uses_content_length() {
        return None;
    }
    let mut framed = Vec::new();
    let from = b"From unseal@localhost Thu Jan  1 00:00:00 1970";
    encode_message(from, eol, variant, msg, &mut framed);
    let span = frame(&framed, 0, eol, true, &mut |_| {});
    let raw = framed.get(span.from_end..span.msg_end)?;
    Some(unquote(raw, variant).into_owned())
}

/// As [`encode_message`]; with `unchanged`, the headers are written as they are (no
/// Content-Length rewrite), so an item copied through comes out byte-identical.
fn encode_framed(
    from_line: &[u8],
    eol: Eol,
    variant: MboxVariant,
    msg: &[u8],
    unchanged: bool,
    trailing_eol: bool,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(from_line);
    if !from_line.ends_with(b"\n") {
        out.extend_from_slice(eol.bytes());
    }
    if variant.uses_content_length() && !unchanged {
        let (headers, blank, body): (&[u8], &[u8], &[u8]) = match header_end(msg) {
            Some(h) => {
                let head = msg.get(..h).unwrap_or(&[]);
                let blank_len = if head.ends_with(b"\r\n") { 2 } else { 1 };
                let split = h - blank_len;
                (
                    msg.get(..split).unwrap_or(&[]),
                    msg.get(split..h).unwrap_or(&[]),
                    msg.get(h..).unwrap_or(&[]),
                )
            }
            // No blank line: all headers, no body. The blank line is added so the result is a
            // well-formed message whose Content-Length (0) can be verified on reading.
            None => (msg, eol.bytes(), &[]),
        };
        let mut qbody = Vec::with_capacity(body.len());
        quote_into(body, variant, &mut qbody);
        let heol: &[u8] = if blank == b"\r\n" { b"\r\n" } else { b"\n" };
        headers_with_length(headers, qbody.len(), heol, out);
        out.extend_from_slice(blank);
        out.extend_from_slice(&qbody);
    } else {
        quote_into(msg, variant, out);
    }
    // A changed message always ends its frame with a line ending: without one, a body that does
    // not end in a newline would run into the next From_ line (possible where Content-Length,
    // not a blank line, delimited the original).
    if trailing_eol || !unchanged {
        out.extend_from_slice(eol.bytes());
    }
}

/// How many messages / bytes variant detection looks at.
const SAMPLE_MESSAGES: usize = 200;

/// Guesses variant and line ending from the start of the file (`data` from the first From_
/// line). Content-Length variants win when most sampled messages carry a length that checks
/// out; then quoted `>From ` lines inside length-delimited bodies mean mboxcl, bare `From `
/// lines mean mboxcl2. Otherwise `>>From ` proves mboxrd; with no evidence either way mboxrd is
/// assumed because it is the one variant that round-trips every message.
pub fn detect_variant(data: &[u8], first: usize) -> (MboxVariant, Eol) {
    detect_variant_in(data, first, &mut |_| {}, &mut Vec::new())
}

/// [`detect_variant`], reporting how far framing has read to `scanned` (see [`find_sep`]).
/// Only the first [`RESIDENT_WINDOW`] bytes of a message are searched for quoted lines.
fn detect_variant_in(
    data: &[u8],
    first: usize,
    scanned: &mut dyn FnMut(usize),
    spans: &mut Vec<Span>,
) -> (MboxVariant, Eol) {
    let eol = if trim_eol(line_at(data, first)).len() + 2 == line_at(data, first).len() {
        Eol::CrLf
    } else {
        Eol::Lf
    };
    let (mut n, mut by_len, mut quoted, mut bare, mut double) =
        (0usize, 0usize, false, false, false);
    let mut pos = first;
    while pos < data.len() && n < SAMPLE_MESSAGES {
        let s = frame(data, pos, eol, true, scanned);
        spans.push(s);
        let msg = data.get(s.from_end..s.msg_end).unwrap_or(&[]);
        let msg = msg.get(..RESIDENT_WINDOW).unwrap_or(msg);
        for (_, q) in from_lines(msg) {
            match q {
                0 => bare = true,
                1 => quoted = true,
                _ => double = true,
            }
        }
        n += 1;
        by_len += usize::from(s.by_length);
        if s.next <= pos {
            break;
        }
        pos = s.next;
    }
    let variant = if by_len > 0 && by_len * 2 >= n {
        if bare && !quoted {
            MboxVariant::Mboxcl2
        } else {
            MboxVariant::Mboxcl
        }
    } else {
        // `double` proves mboxrd; nothing proves mboxo, so it is never guessed.
        let _ = double;
        MboxVariant::Mboxrd
    };
    (variant, eol)
}

/// Reads an mbox file message by message from a memory map.
pub struct MboxReader {
    name: String,
    map: Option<Arc<Mmap>>,
    pos: usize,
    index: u64,
    variant: MboxVariant,
    eol: Eol,
    preamble: Option<std::ops::Range<usize>>,
    mtime: Option<SystemTime>,
    /// Bytes of the mapping before this offset were handed back to the kernel.
    released: usize,
    /// The messages variant detection framed, in order: not framed (read) a second time.
    detected: std::collections::VecDeque<Span>,
}

/// How far behind the read position mapped pages are kept resident. Items in flight (the CLI
/// holds at most two batches of 16 MiB) live in this window; one larger than it only faults its
/// pages in again, with the same contents.
const RESIDENT_WINDOW: usize = 32 << 20;

/// How far behind a scan through one huge message its pages are kept (framing it, looking for
/// quoted lines): the scan is the only reader, items in flight before it only fault back in.
const SCAN_WINDOW: usize = 8 << 20;

impl MboxReader {
    /// Opens `path`; `variant` overrides detection.
    pub fn open(path: &Path, variant: Option<MboxVariant>) -> Result<MboxReader, Error> {
        let file = File::open(path).map_err(|e| Error::io_path(path, "open", e))?;
        let md = file
            .metadata()
            .map_err(|e| Error::io_path(path, "stat", e))?;
        let map = map_file(path, &file)?;
        let data: &[u8] = map.as_deref().map(|m| &m[..]).unwrap_or(&[]);
        let start = if data.starts_with(BOM) { BOM.len() } else { 0 };
        let first = find_sep(data, start, &mut |_| {}).0;
        if first == data.len() && start < data.len() {
            return Err(Error::format(path.display(), "no mbox From_ line found"));
        }
        if has_bare_cr(line_at(data, first)) {
            // Otherwise the whole file is one From_ line and the mailbox looks empty.
            return Err(Error::format(
                path.display(),
                "the first From_ line holds a bare CR: the file's lines end in CR alone (classic \
                 Mac OS), which no mbox reader takes as line breaks; convert them (`tr '\\r' \
                 '\\n'`) and run again",
            ));
        }
        // Detection frames up to 200 messages: for a file of huge ones, that is most of it.
        let mut released = 0;
        let mut spans = Vec::new();
        let (v, eol) = detect_variant_in(
            data,
            first,
            &mut |at| {
                if let Some(m) = &map {
                    release_behind(m, &mut released, at, SCAN_WINDOW);
                }
            },
            &mut spans,
        );
        Ok(MboxReader {
            name: path.display().to_string(),
            pos: first,
            index: 0,
            variant: variant.unwrap_or(v),
            eol,
            preamble: (first > 0).then_some(0..first),
            mtime: crate::mtime_of(&md),
            map,
            released: 0,
            detected: spans.into(),
        })
    }

    pub fn variant(&self) -> MboxVariant {
        self.variant
    }

    pub fn eol(&self) -> Eol {
        self.eol
    }
}

/// Keeps RSS flat in the mailbox's size: the pages of a read-only file mapping stay resident
/// once touched, so a 10 GB mbox would otherwise end a run with 10 GB resident.
fn release_behind(map: &Mmap, released: &mut usize, pos: usize, keep: usize) {
    if pos < *released + 2 * keep {
        return;
    }
    let upto = pos - keep;
    // SAFETY: the mapping is read-only and file-backed (memmap2 maps it MAP_SHARED, read-only: never written), so
    // MADV_DONTNEED only drops resident pages: a later read of the range, by an item still in
    // flight, faults the same bytes in again from the file (which, as everywhere in unseal, is
    // not modified during a run). No reference is invalidated; the range stays mapped.
    let _ = unsafe {
        map.unchecked_advise_range(
            memmap2::UncheckedAdvice::DontNeed,
            *released,
            upto - *released,
        )
    };
    *released = upto;
}

impl Iterator for MboxReader {
    type Item = Result<Item, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let map = self.map.clone()?;
        if let Some(r) = self.preamble.take() {
            return Some(Ok(Item::new(
                "preamble".into(),
                ItemKind::Passthrough,
                Meta {
                    location: Location::MboxPreamble,
                    mtime: self.mtime,
                },
                Body::Mapped(map, r),
            )));
        }
        let data: &[u8] = &map;
        if self.pos >= data.len() {
            return None;
        }
        let use_cl = self.variant.uses_content_length();
        // Detection framed these with Content-Length in mind: the same result unless it used a
        // length this variant does not trust.
        let cached = match self.detected.pop_front() {
            Some(c) if c.from_start == self.pos && (use_cl || !c.by_length) => Some(c),
            _ => {
                self.detected.clear();
                None
            }
        };
        let released = &mut self.released;
        let s = cached.unwrap_or_else(|| {
            frame(data, self.pos, self.eol, use_cl, &mut |at| {
                release_behind(&map, released, at, SCAN_WINDOW)
            })
        });
        if s.next <= self.pos {
            // Cannot happen (a From_ line is never empty), but never loop forever on data.
            self.pos = data.len();
            return Some(Err(Error::format(
                &self.name,
                "mbox framing did not advance",
            )));
        }
        self.pos = s.next;
        release_behind(&map, &mut self.released, s.from_start, RESIDENT_WINDOW);
        let index = self.index;
        self.index += 1;
        let msg = data.get(s.from_end..s.msg_end).unwrap_or(&[]);
        // Framing saw every `From ` line up to the next separator: unquoting (a pass that may
        // copy) only when needed. A message delimited by its Content-Length may run past that
        // separator (a From_-like line inside its body), so it is always checked.
        let body = match if s.by_length || s.quotes.need_unquote(self.variant) {
            unquote(msg, self.variant)
        } else {
            Cow::Borrowed(msg)
        } {
            Cow::Borrowed(_) => Body::Mapped(map.clone(), s.from_end..s.msg_end),
            Cow::Owned(v) => Body::Owned(v),
        };
        let meta = MboxMeta {
            index,
            offset: s.from_start as u64,
            from_line: data.get(s.from_start..s.from_end).unwrap_or(&[]).to_vec(),
            variant: self.variant,
            eol: self.eol,
            trailing_eol: s.next > s.msg_end,
        };
        Some(Ok(Item::new(
            index.to_string(),
            ItemKind::Message,
            Meta {
                location: Location::Mbox(meta),
                mtime: self.mtime,
            },
            body,
        )))
    }
}

/// Writes an mbox to `<final>.unseal-partial`, renamed to the final name by `finish`.
pub struct MboxSink {
    final_path: PathBuf,
    partial: PathBuf,
    file: File,
    pos: u64,
    /// Nothing written and no resume yet: the first write starts the partial file afresh.
    fresh: bool,
    buf: Vec<u8>,
}

/// Suffix of an mbox being written.
pub const PARTIAL_SUFFIX: &str = ".unseal-partial";

impl MboxSink {
    pub fn create(final_path: &Path) -> Result<MboxSink, Error> {
        let mut partial = final_path.as_os_str().to_owned();
        partial.push(PARTIAL_SUFFIX);
        let partial = PathBuf::from(partial);
        // Not truncated here: a resumed run calls `resume` to keep the durable prefix.
        let file = atomic::create_private(&partial, false)
            .map_err(|e| Error::io_path(&partial, "create", e))?;
        Ok(MboxSink {
            final_path: final_path.to_path_buf(),
            partial,
            file,
            pos: 0,
            fresh: true,
            buf: Vec::new(),
        })
    }

    fn start_fresh(&mut self) -> Result<(), Error> {
        if self.fresh {
            self.resume(0)?;
        }
        Ok(())
    }
}

impl MboxSink {
    fn write_item(&mut self, meta: &Meta, body: &[u8], unchanged: bool) -> Result<(), Error> {
        self.start_fresh()?;
        self.buf.clear();
        match &meta.location {
            Location::MboxPreamble => self.buf.extend_from_slice(body),
            Location::Mbox(m)
                if is_from_line(&m.from_line) && !trim_eol(&m.from_line).contains(&b'\n') =>
            {
                encode_framed(
                    &m.from_line,
                    m.eol,
                    m.variant,
                    body,
                    unchanged,
                    m.trailing_eol,
                    &mut self.buf,
                )
            }
            _ => {
                let line = generated_from_line(meta.mtime);
                encode_message(
                    line.as_bytes(),
                    Eol::Lf,
                    MboxVariant::Mboxrd,
                    body,
                    &mut self.buf,
                )
            }
        }
        self.file
            .write_all(&self.buf)
            .map_err(|e| Error::io_path(&self.partial, "write", e))?;
        self.pos += self.buf.len() as u64;
        Ok(())
    }
}

impl MboxSink {
    /// The From_ line, line ending and variant an item is written with (as [`Self::write_item`]
    /// frames it).
    fn framing(meta: &Meta) -> (Vec<u8>, Eol, MboxVariant) {
        match &meta.location {
            Location::Mbox(m)
                if is_from_line(&m.from_line) && !trim_eol(&m.from_line).contains(&b'\n') =>
            {
                (m.from_line.clone(), m.eol, m.variant)
            }
            _ => (
                generated_from_line(meta.mtime).into_bytes(),
                Eol::Lf,
                MboxVariant::Mboxrd,
            ),
        }
    }

    fn stream_item(&mut self, meta: &Meta, fill: &mut Fill<'_>) -> std::io::Result<Filled> {
        let (from_line, eol, variant) = Self::framing(meta);
        let mut w = std::io::BufWriter::with_capacity(
            atomic::STREAM_BUFFER,
            atomic::Writeback::new(&self.file, self.pos),
        );
        w.write_all(&from_line)?;
        if !from_line.ends_with(b"\n") {
            w.write_all(eol.bytes())?;
        }
        let mut q = QuotingWriter::new(w, variant);
        if let Err(e) = fill(&mut q) {
            return Ok(Err(e));
        }
        let mut w = q.finish()?;
        // A changed message always ends its frame with a line ending (as `encode_framed`).
        w.write_all(eol.bytes())?;
        w.flush()?;
        Ok(Ok(()))
    }
}

impl Sink for MboxSink {
    fn write(&mut self, meta: &Meta, body: &[u8]) -> Result<(), Error> {
        self.write_item(meta, body, false)
    }

    fn stored_form(&self, meta: &Meta, body: &[u8]) -> Option<Vec<u8>> {
        if matches!(meta.location, Location::MboxPreamble) {
            return None;
        }
        let (_, eol, variant) = Self::framing(meta);
        stored_form(eol, variant, body)
    }

    fn can_stream(&self, meta: &Meta) -> bool {
        !matches!(meta.location, Location::MboxPreamble)
            && !Self::framing(meta).2.uses_content_length()
    }

    fn write_streamed(&mut self, meta: &Meta, fill: &mut Fill<'_>) -> Result<Filled, Error> {
        if !self.can_stream(meta) {
            return Err(Error::unsupported(
                self.partial.display(),
                "an mbox with Content-Length headers cannot take a streamed item",
            ));
        }
        self.start_fresh()?;
        let before = self.pos;
        let r = self.stream_item(meta, fill);
        if !matches!(r, Ok(Ok(()))) {
            // Cut off whatever of the item reached the file; the output is as it was.
            self.resume(before)?;
        }
        let filled = r.map_err(|e| Error::io_path(&self.partial, "write", e))?;
        if filled.is_ok() {
            self.pos = self
                .file
                .stream_position()
                .map_err(|e| Error::io_path(&self.partial, "seek", e))?;
        }
        Ok(filled)
    }

    fn write_unchanged(&mut self, meta: &Meta, body: &[u8]) -> Result<(), Error> {
        self.write_item(meta, body, true)
    }

    fn position(&self) -> u64 {
        self.pos
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.file
            .sync_data()
            .map_err(|e| Error::io_path(&self.partial, "fsync", e))
    }

    fn resume(&mut self, position: u64) -> Result<(), Error> {
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io_path(&self.partial, "stat", e))?
            .len();
        if position > len {
            return Err(Error::format(
                self.partial.display(),
                format!("cannot resume at byte {position}: partial output has only {len} bytes"),
            ));
        }
        self.file
            .set_len(position)
            .map_err(|e| Error::io_path(&self.partial, "truncate", e))?;
        self.file
            .seek(SeekFrom::Start(position))
            .map_err(|e| Error::io_path(&self.partial, "seek", e))?;
        self.pos = position;
        self.fresh = false;
        Ok(())
    }

    fn output(&self) -> &Path {
        &self.final_path
    }

    fn finish(mut self: Box<Self>) -> Result<PathBuf, Error> {
        self.start_fresh()?;
        self.file
            .sync_all()
            .map_err(|e| Error::io_path(&self.partial, "fsync", e))?;
        atomic::rename_durable(&self.partial, &self.final_path)
            .map_err(|e| Error::io_path(&self.final_path, "rename into place", e))?;
        Ok(self.final_path.clone())
    }
}

/// One mbox per PST folder, in Thunderbird's layout: folder `["Inbox", "Sub"]` is the mbox file
/// `root/Inbox.sbd/Sub`, `["Inbox"]` is `root/Inbox`, so the result can be dropped into a
/// Thunderbird profile. Each file is an [`MboxSink`] (partial file renamed on `finish`).
/// Resuming is not supported here (one journal offset cannot describe many files): use the
/// Maildir output for resumable PST runs.
pub struct MboxFolderSink {
    root: PathBuf,
    open: std::collections::BTreeMap<Vec<String>, MboxSink>,
}

impl MboxFolderSink {
    pub fn create(root: &Path) -> Result<MboxFolderSink, Error> {
        atomic::create_dir_all_private(root)
            .map_err(|e| Error::io_path(root, "create folder", e))?;
        Ok(MboxFolderSink {
            root: root.to_path_buf(),
            open: Default::default(),
        })
    }

    fn file_for(&self, folder: &[String]) -> PathBuf {
        let mut p = self.root.clone();
        let n = folder.len();
        for (i, part) in folder.iter().enumerate() {
            let mut name: String = part
                .chars()
                .map(|c| {
                    if matches!(c, '/' | '\\' | '\0') {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            if name.is_empty() || name == "." || name == ".." || name.ends_with(".sbd") {
                name.insert(0, '_');
            }
            if i + 1 < n {
                name.push_str(".sbd");
            }
            p.push(name);
        }
        if n == 0 {
            p.push("Inbox");
        }
        p
    }
}

impl Sink for MboxFolderSink {
    fn write(&mut self, meta: &Meta, body: &[u8]) -> Result<(), Error> {
        let folder = match &meta.location {
            Location::Pst { folder_path, .. } => folder_path.clone(),
            other => {
                return Err(Error::unsupported(
                    format!("{other:?}"),
                    "only PST items go to per-folder mboxes",
                ));
            }
        };
        if !self.open.contains_key(&folder) {
            let path = self.file_for(&folder);
            let dir = atomic::parent_dir(&path);
            atomic::create_dir_all_private(dir)
                .map_err(|e| Error::io_path(dir, "create folder", e))?;
            self.open.insert(folder.clone(), MboxSink::create(&path)?);
        }
        match self.open.get_mut(&folder) {
            Some(s) => s.write(meta, body),
            None => Err(Error::unsupported(
                self.root.display(),
                "folder sink vanished",
            )),
        }
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.open.values_mut().try_for_each(|s| s.sync())
    }

    fn resume(&mut self, position: u64) -> Result<(), Error> {
        if position == 0 {
            return Ok(());
        }
        Err(Error::unsupported(
            self.root.display(),
            "per-folder mbox output cannot resume; use Maildir",
        ))
    }

    fn output(&self) -> &Path {
        &self.root
    }

    fn finish(self: Box<Self>) -> Result<PathBuf, Error> {
        for (_, s) in self.open {
            Box::new(s).finish()?;
        }
        Ok(self.root)
    }
}

/// A From_ line for a message that did not come from an mbox: `From MAILER-DAEMON <asctime>`.
pub fn generated_from_line(t: Option<SystemTime>) -> String {
    let secs = t
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    format!("From MAILER-DAEMON {}\n", asctime(secs))
}

/// `Thu Jan  1 00:00:00 1970` for seconds since the epoch (UTC).
fn asctime(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = crate::date::civil_from_days(days as i64);
    let wd = DAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
    let mon = MONTHS
        .get(m.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    format!(
        "{wd} {mon} {d:>2} {:02}:{:02}:{:02} {y}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod folder_tests {
    use super::*;

    #[test]
    fn pst_folders_become_thunderbird_mboxes() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Box::new(MboxFolderSink::create(&d.path().join("arch")).unwrap());
        let meta = |f: &[&str]| Meta {
            location: Location::Pst {
                folder_path: f.iter().map(|x| x.to_string()).collect(),
                node_id: 1,
                flags: String::new(),
            },
            mtime: None,
        };
        s.write(&meta(&["Inbox"]), b"A: 1\n\none").unwrap();
        s.write(&meta(&["Inbox", "Sub/x"]), b"A: 2\n\ntwo").unwrap();
        s.write(&meta(&["Inbox"]), b"From me\n").unwrap();
        s.write(&meta(&[".."]), b"x").unwrap();
        assert!(s.resume(5).is_err());
        let root = s.finish().unwrap();
        let inbox = std::fs::read(root.join("Inbox")).unwrap();
        assert!(inbox.starts_with(b"From MAILER-DAEMON "));
        assert!(inbox.ends_with(b"\n>From me\n\n"));
        assert!(root.join("Inbox.sbd/Sub_x").is_file());
        assert!(root.join("_..").is_file());
    }
}
