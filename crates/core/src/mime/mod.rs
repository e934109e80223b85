//! Finding S/MIME envelopes anywhere in a message and splicing their plaintext back in,
//! byte-exact: every byte that is not part of an opened envelope (or of a signature that had to
//! go) is copied unchanged.
//!
//! * [`decrypt_message`]: open every envelope (top level, inside multiparts, forwarded
//!   message/rfc822 attachments, opaque or multipart signatures, envelopes in envelopes) and
//!   return the rewritten message, or `None` when there was nothing to decrypt.
//! * [`find_envelopes`]: list the envelopes visible without decrypting, for `scan`.
//!
//! Sign-then-encrypt keeps the inner signature untouched (it still verifies). Encrypt-then-sign
//! (a signature around an envelope) cannot verify after decryption: that signature layer is
//! removed and the removal is reported and traced.

pub mod detect;
pub mod header;
pub mod rewrite;
pub mod signed;
pub mod walk;

use crate::error::{Error, Result};
use crate::{Decryptor, EnvelopeSummary, LayerInfo};
use walk::{Data, Event, Piece, Visitor, Walker};

pub use detect::{PartKind, is_envelope_part};
pub use rewrite::TRACE_HEADER;

/// How [`decrypt_message`] and [`find_envelopes`] work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageOptions {
    /// Add one `X-Unseal-Decrypted` header field per opened layer (and per removed signature).
    pub trace_header: bool,
    /// Deepest MIME nesting followed (multiparts, forwarded messages, signatures and envelopes
    /// each count one level); deeper gives [`Error::Limit`].
    pub max_depth: usize,
    /// RFC 2822 date written into the trace header, given by the caller.
    pub timestamp: String,
}

impl Default for MessageOptions {
    fn default() -> Self {
        MessageOptions {
            trace_header: true,
            max_depth: 32,
            timestamp: String::new(),
        }
    }
}

/// One opened envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerReport {
    /// MIME part path: "" for top level, "2", "2.1", "2/rfc822/1". An envelope found in the
    /// plaintext of another (or in a signature's content) has the path of the part it replaces.
    pub path: String,
    pub info: LayerInfo,
}

/// What [`decrypt_message`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageOutcome {
    /// `None`: nothing was encrypted; the caller copies the original byte-identical.
    pub output: Option<Vec<u8>>,
    /// Every envelope opened, outermost first.
    pub layers: Vec<LayerReport>,
    /// e.g. "multipart/signed around part 1 (encrypt-then-sign): signature removed".
    pub signatures_removed: Vec<String>,
}

/// An envelope seen by [`find_envelopes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundEnvelope {
    pub path: String,
    /// The decoded ContentInfo (DER or BER).
    pub cms: Vec<u8>,
    pub summary: Result<EnvelopeSummary, Error>,
}

/// Opens one envelope. Implemented by [`Decryptor`]; a seam for tests and other callers.
pub trait EnvelopeOpener {
    /// Decrypts the ContentInfo `cms` and appends the plaintext to `out`.
    fn open(&self, cms: &[u8], out: &mut Vec<u8>) -> Result<LayerInfo>;
}

impl EnvelopeOpener for Decryptor<'_> {
    fn open(&self, cms: &[u8], out: &mut Vec<u8>) -> Result<LayerInfo> {
        self.decrypt_cms(cms, out)
    }
}

/// The line ending of the message's first line (CRLF when there is none).
pub fn line_ending(msg: &[u8]) -> &'static [u8] {
    match memchr::memchr(b'\n', msg) {
        Some(i) if i > 0 && msg.get(i - 1) == Some(&b'\r') => b"\r\n",
        Some(_) => b"\n",
        None => b"\r\n",
    }
}

struct Opening<'o> {
    opener: &'o dyn EnvelopeOpener,
}

impl Visitor for Opening<'_> {
    type Layer = LayerInfo;
    fn envelope(&mut self, _path: &str, cms: Vec<u8>) -> Result<Option<(Vec<u8>, LayerInfo)>> {
        let mut out = Vec::new();
        let info = self.opener.open(&cms, &mut out)?;
        Ok(Some((out, info)))
    }
}

/// Decrypts every envelope in `msg` with `dec`. See [`decrypt_message_with`].
pub fn decrypt_message(
    dec: &Decryptor,
    msg: &[u8],
    opts: &MessageOptions,
) -> Result<MessageOutcome, Error> {
    decrypt_message_with(dec, msg, opts)
}

/// Decrypts every envelope in `msg`, wherever it is, and splices the plaintext back. Any
/// envelope failing gives that error (with the MIME path added to its detail): never a
/// half-decrypted message.
pub fn decrypt_message_with(
    opener: &dyn EnvelopeOpener,
    msg: &[u8],
    opts: &MessageOptions,
) -> Result<MessageOutcome, Error> {
    let eol = line_ending(msg);
    let mut visitor = Opening { opener };
    let mut walker = Walker {
        visitor: &mut visitor,
        max_depth: opts.max_depth,
        eol,
        events: Vec::new(),
        seen: 0,
    };
    let data = Data::Borrowed(msg);
    let rewritten = walker.entity(&data, 0, msg.len(), "", 0, "text/plain")?;
    let events = std::mem::take(&mut walker.events);
    let Some(mut rw) = rewritten else {
        if let Some(e) = detect::unreached(msg, 0) {
            return Err(e);
        }
        return Ok(MessageOutcome {
            output: None,
            layers: Vec::new(),
            signatures_removed: Vec::new(),
        });
    };
    let mut trace: Vec<Piece> = Vec::new();
    let mut layers = Vec::new();
    let mut signatures_removed = Vec::new();
    for ev in events {
        match ev {
            Event::Layer { path, layer } => {
                if opts.trace_header {
                    trace.push(Piece::owned(rewrite::layer_field(
                        &layer,
                        &path,
                        &opts.timestamp,
                        eol,
                    )));
                }
                layers.push(LayerReport { path, info: layer });
            }
            Event::SignatureRemoved { path, description } => {
                if opts.trace_header {
                    trace.push(Piece::owned(rewrite::removal_field(
                        &path,
                        &description,
                        &opts.timestamp,
                        eol,
                    )));
                }
                signatures_removed.push(description);
            }
        }
    }
    rw.insert_fields(trace);
    let output = rw.flatten();
    // An envelope left in the output is one the walk did not reach (or the plaintext quotes
    // one as text): the message is not decrypted through and through.
    if let Some(e) = detect::unreached(&output, 0) {
        return Err(e);
    }
    Ok(MessageOutcome {
        output: Some(output),
        layers,
        signatures_removed,
    })
}

struct Finding {
    found: Vec<FoundEnvelope>,
}

impl Visitor for Finding {
    type Layer = ();
    fn envelope(&mut self, path: &str, cms: Vec<u8>) -> Result<Option<(Vec<u8>, ())>> {
        let summary = Decryptor::inspect_cms(&cms);
        self.found.push(FoundEnvelope {
            path: path.to_string(),
            cms,
            summary,
        });
        Ok(None)
    }
}

/// The envelopes visible without decrypting: at top level, in multiparts, in forwarded
/// messages, inside opaque and multipart signatures. Fails on structural limits (depth), on a
/// part labelled enveloped-data whose body is no ContentInfo, and when the raw bytes show more
/// envelopes than the walk reached ([`detect::envelope_markers`]).
pub fn find_envelopes(msg: &[u8], opts: &MessageOptions) -> Result<Vec<FoundEnvelope>, Error> {
    let mut visitor = Finding { found: Vec::new() };
    let mut walker = Walker {
        visitor: &mut visitor,
        max_depth: opts.max_depth,
        eol: line_ending(msg),
        events: Vec::new(),
        seen: 0,
    };
    walker.entity(&Data::Borrowed(msg), 0, msg.len(), "", 0, "text/plain")?;
    // More envelopes in the raw bytes than the walk found: some are out of its reach.
    if let Some(e) = detect::unreached(msg, visitor.found.len()) {
        return Err(e);
    }
    Ok(visitor.found)
}

#[cfg(test)]
mod tests;
