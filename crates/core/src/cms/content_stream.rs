//! The encrypted content of an envelope, pulled out of the decoded ContentInfo as it arrives.
//!
//! Why hand-written: [`super::ber::Reader`] needs the whole value in one slice, which for a
//! 200 MB message means 200 MB of decoded DER in memory. Here the bytes come in pieces (from a
//! streaming base64 decoder), so the TLV framing of the content is tracked as a small state
//! machine instead: the content's own header, then for a constructed (BER) encoding the chunk
//! headers, definite ends and end-of-contents markers, at any nesting up to
//! [`super::ber::MAX_DEPTH`]. A header split between two pieces is carried over.

use super::ber::{Class, Header, MAX_DEPTH, Reader};
use crate::error::{Error, Result};

/// The longest TLV header: one identifier octet, four more of tag number, nine of length.
const MAX_HEADER: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Frame {
    /// Offset just past the frame's contents; `None` for the indefinite form.
    end: Option<u64>,
}

/// Follows the encryptedContent `[0]` value through the bytes fed to it.
#[derive(Debug)]
pub struct ContentStream {
    /// Offset (in the decoded ContentInfo) of the next byte to be fed.
    pos: u64,
    /// Constructed values we are inside, innermost last.
    frames: Vec<Frame>,
    /// Inside a primitive chunk: where it ends.
    leaf_end: Option<u64>,
    /// A chunk header read so far.
    hdr: Vec<u8>,
    done: bool,
    emitted: u64,
}

impl ContentStream {
    /// Starts after the header `h` of the encryptedContent (as found by
    /// [`super::envelope::parse_prefix`]): the next byte fed is at `h.content_start`.
    pub fn new(h: &Header) -> Result<ContentStream> {
        let pos = h.content_start as u64;
        let mut s = ContentStream {
            pos,
            frames: Vec::new(),
            leaf_end: None,
            hdr: Vec::with_capacity(MAX_HEADER),
            done: false,
            emitted: 0,
        };
        if h.tag.constructed {
            s.frames.push(Frame {
                end: h.len.map(|l| pos.saturating_add(l as u64)),
            });
            // An empty definite constructed content (`A0 00`) ends before any byte is fed.
            s.close_frames();
        } else {
            let len = h
                .len
                .ok_or_else(|| s.malformed("primitive value without a length"))?;
            s.leaf_end = Some(pos.saturating_add(len as u64));
            s.done = len == 0;
        }
        Ok(s)
    }

    /// Whether the whole content has gone through.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Content bytes passed to `emit` so far.
    pub fn content_len(&self) -> u64 {
        self.emitted
    }

    fn malformed(&self, detail: impl Into<String>) -> Error {
        Error::Asn1 {
            what: "encryptedContent",
            offset: self.pos,
            detail: detail.into(),
        }
    }

    /// Feeds the bytes that follow those fed before and hands the content bytes among them to
    /// `emit`, in order. Returns how many bytes of `data` belonged to the content: fewer than
    /// `data.len()` only once the content has ended (the rest is what follows it).
    pub fn feed(
        &mut self,
        data: &[u8],
        emit: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<usize> {
        let mut i = 0;
        while i < data.len() && !self.done {
            if let Some(end) = self.leaf_end {
                let want = usize::try_from(end - self.pos).unwrap_or(usize::MAX);
                let n = want.min(data.len() - i);
                if n > 0 {
                    emit(&data[i..i + n])?;
                    self.emitted += n as u64;
                }
                i += n;
                self.pos += n as u64;
                if self.pos == end {
                    self.leaf_end = None;
                    self.close_frames();
                }
                continue;
            }
            // Between chunks: a header byte.
            self.hdr.push(data[i]);
            i += 1;
            self.pos += 1;
            self.chunk_header()?;
        }
        Ok(i)
    }

    /// Pops every definite frame that ends here; the content is done when none is left.
    fn close_frames(&mut self) {
        while let Some(f) = self.frames.last() {
            match f.end {
                Some(end) if end == self.pos => {
                    self.frames.pop();
                }
                _ => break,
            }
        }
        if self.frames.is_empty() {
            self.done = true;
        }
    }

    /// Tries to read the chunk header collected in `hdr`; waits for more bytes if incomplete.
    fn chunk_header(&mut self) -> Result<()> {
        let h = match Reader::prefix(&self.hdr).header("encryptedContent chunk") {
            Ok(h) => h,
            Err(Error::Truncated { .. }) if self.hdr.len() < MAX_HEADER => return Ok(()),
            Err(e) => return Err(e),
        };
        // Only the two bytes 00 00 end an indefinite value, as `ber::Reader::at_eoc` reads
        // it; a tag 0 written otherwise (`00 84 00 00 00 00`) is an empty chunk there, and here.
        let eoc = self.hdr.as_slice() == [0, 0];
        self.hdr.clear();
        let parent_end = self.frames.last().and_then(|f| f.end);
        if eoc {
            match self.frames.last() {
                Some(Frame { end: None }) => {
                    self.frames.pop();
                }
                _ => return Err(self.malformed("end-of-contents inside a definite-length value")),
            }
            self.close_frames();
            return Ok(());
        }
        if h.tag.class != Class::Universal {
            return Err(self.malformed(format!(
                "unexpected chunk tag {:?} {}",
                h.tag.class, h.tag.number
            )));
        }
        let end = h.len.map(|l| self.pos.saturating_add(l as u64));
        if let (Some(pe), Some(e)) = (parent_end, end)
            && e > pe
        {
            return Err(self.malformed("chunk runs past the end of its enclosing value"));
        }
        if h.tag.constructed {
            if self.frames.len() >= MAX_DEPTH {
                return Err(Error::Limit {
                    what: "BER string chunk nesting",
                    limit: MAX_DEPTH as u64,
                });
            }
            self.frames.push(Frame { end });
            // An empty definite constructed chunk ends at once.
            self.close_frames();
        } else {
            match end {
                Some(e) if e == self.pos => self.close_frames(),
                Some(e) => self.leaf_end = Some(e),
                None => return Err(self.malformed("primitive chunk without a length")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cms::envelope;

    /// Runs the stream over `der` from the content header on, in pieces of `piece` bytes.
    fn streamed(der: &[u8], piece: usize) -> Result<(Vec<u8>, usize)> {
        let start = envelope::parse_prefix(der)?.expect("content present");
        let mut s = ContentStream::new(&start.content)?;
        let mut out = Vec::new();
        let mut at = start.content.content_start;
        while at < der.len() && !s.is_done() {
            let end = (at + piece).min(der.len());
            let used = s.feed(&der[at..end], &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })?;
            at += used;
        }
        if !s.is_done() {
            return Err(Error::Truncated {
                what: "test",
                offset: at as u64,
            });
        }
        Ok((out, at))
    }

    fn whole(der: &[u8]) -> Vec<u8> {
        let h = envelope::parse(der).unwrap();
        let mut out = Vec::new();
        h.content_segments(&mut |s, _| {
            out.extend_from_slice(s);
            Ok(())
        })
        .unwrap();
        out
    }

    /// `[0]` content wrapped as EnvelopedData would be: enough framing for `parse_prefix`.
    fn envelope_with(content: &[u8]) -> Vec<u8> {
        // A minimal EnvelopedData: version 0, one KTRI-shaped opaque recipient (SEQUENCE of
        // NULL), id-data, AES-128-CBC with a 16-byte IV, then `content`.
        let mut eci = vec![
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
        ];
        eci.extend_from_slice(&[
            0x30, 0x1d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02, 0x04,
            0x10,
        ]);
        eci.extend_from_slice(&[7u8; 16]);
        eci.extend_from_slice(content);
        let mut body = vec![0x02, 0x01, 0x00, 0x31, 0x04, 0x30, 0x02, 0x05, 0x00];
        body.push(0x30);
        body.push(0x80);
        body.extend_from_slice(&eci);
        body.extend_from_slice(&[0, 0]);
        let mut ed = vec![0x30, 0x80];
        ed.extend_from_slice(&body);
        ed.extend_from_slice(&[0, 0]);
        let mut ci = vec![
            0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0,
            0x80,
        ];
        ci.extend_from_slice(&ed);
        ci.extend_from_slice(&[0, 0, 0, 0]);
        ci
    }

    #[test]
    fn every_framing_gives_the_content_in_any_pieces() {
        let primitive = [&[0x80u8, 0x05][..], b"hello"].concat();
        let chunked = [
            &[0xa0u8, 0x80, 0x04, 0x02][..],
            b"he",
            &[0x04, 0x00, 0x04, 0x03],
            b"llo",
            &[0, 0],
        ]
        .concat();
        let nested = [
            &[0xa0u8, 0x0d, 0x24, 0x80, 0x04, 0x02][..],
            b"he",
            &[0x04, 0x03],
            b"llo",
            &[0, 0],
        ]
        .concat();
        let long_form = [&[0xa0u8, 0x82, 0x00, 0x08, 0x04, 0x81, 0x05][..], b"hello"].concat();
        for content in [primitive, chunked, nested, long_form] {
            let der = envelope_with(&content);
            assert_eq!(whole(&der), b"hello");
            for piece in [1, 2, 3, 5, 64, der.len()] {
                let (got, used) = streamed(&der, piece).unwrap();
                assert_eq!(got, b"hello", "pieces of {piece}: {content:02x?}");
                // What follows the content is left for the caller: the EOCs of the outer layers.
                assert_eq!(&der[used..], &[0u8, 0, 0, 0, 0, 0, 0, 0][..]);
            }
        }
    }

    /// An empty content (AES-GCM may seal an empty plaintext) in each framing: done with nothing
    /// emitted, what follows left to the caller, as the whole-value parser reads it.
    #[test]
    fn an_empty_content_is_done_in_every_framing() {
        let framings: [&[u8]; 4] = [
            &[0x80, 0x00],
            &[0xa0, 0x00],
            &[0xa0, 0x80, 0x00, 0x00],
            &[0xa0, 0x02, 0x04, 0x00],
        ];
        for content in framings {
            let der = envelope_with(content);
            assert_eq!(whole(&der), b"", "{content:02x?}");
            for piece in [1, 2, der.len()] {
                let (got, used) = streamed(&der, piece).unwrap();
                assert_eq!(got, b"", "pieces of {piece}: {content:02x?}");
                assert_eq!(&der[used..], &[0u8; 8][..], "{content:02x?}");
            }
        }
    }

    #[test]
    fn lengths_near_the_limits_are_errors_not_overflows() {
        // A ContentInfo claiming 2^64 - 1 bytes: the lenient prefix reader must not add it to
        // an offset and overflow (tests run with overflow checks on).
        let mut der = vec![0x30, 0x88];
        der.extend_from_slice(&[0xff; 8]);
        der.extend_from_slice(&[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0, 0x80, 0x30,
            0x80,
        ]);
        assert!(envelope::parse_prefix(&der).is_err());
        // The same for the content's own length and for a chunk's.
        let huge_content = [&[0x80u8, 0x88][..], &[0xff; 8]].concat();
        let der = envelope_with(&huge_content);
        assert!(streamed(&der, 64).is_err());
        let huge_chunk = [&[0xa0u8, 0x80, 0x04, 0x88][..], &[0xff; 8]].concat();
        let der = envelope_with(&huge_chunk);
        assert!(streamed(&der, 64).is_err());
    }

    #[test]
    fn bad_framing_is_an_error_not_a_panic() {
        let cases: [&[u8]; 5] = [
            // EOC inside a definite-length constructed value.
            &[0xa0, 0x04, 0x00, 0x00, 0x00, 0x00],
            // A chunk longer than its parent.
            &[0xa0, 0x03, 0x04, 0x05, 0x61],
            // A context-tagged chunk.
            &[0xa0, 0x80, 0x81, 0x01, 0x61, 0x00, 0x00],
            // An indefinite length on a primitive chunk.
            &[0xa0, 0x80, 0x04, 0x80, 0x00, 0x00],
            // A length of nine octets.
            &[0xa0, 0x80, 0x04, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        ];
        for c in cases {
            let der = envelope_with(c);
            for piece in [1, 4, der.len()] {
                assert!(
                    streamed(&der, piece).is_err(),
                    "{c:02x?} in pieces of {piece}"
                );
            }
        }
        // Nesting beyond the limit.
        let mut deep = vec![0xa0, 0x80];
        for _ in 0..=MAX_DEPTH {
            deep.extend_from_slice(&[0x24, 0x80]);
        }
        let der = envelope_with(&deep);
        assert!(matches!(
            streamed(&der, 7),
            Err(Error::Limit { .. }) | Err(Error::Truncated { .. })
        ));
    }
}
