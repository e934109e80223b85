//! Looking inside archives as they stream past, for the stream's `EncodedWatch`: the in-memory
//! walk inflates every gzip, zlib and zip attachment it decodes (`detect::compressed_envelope`)
//! and fails the message when an envelope shows inside. Handing every such message back to the
//! in-memory path cost three times the message in memory, and docx, xlsx and odt attachments
//! are zip files; so the watch inflates them too, a piece at a time, with the same bound on
//! what one archive or member may inflate to. Hand-written on `flate2::Decompress`: its `read`
//! and `write` adapters want the whole input, or hide where a member's deflate stream ends.

use flate2::{Decompress, FlushDecompress, Status};

use crate::mime::detect;

/// Most bytes inflated from one archive or member, as in the walk.
const INFLATE_LIMIT: u64 = 256 << 20;

/// Members inflated at once: every `PK\x03\x04` starts one, as in the walk, and one that is
/// really inside compressed data fails within a few bytes. More than this at once hands back.
const MAX_MEMBERS: usize = 16;

/// [`detect::envelope_signs`] over data arriving in pieces.
#[derive(Default)]
pub(super) struct SignWatch {
    carry: Vec<u8>,
}

impl SignWatch {
    /// Whether a sign shows in `d`, or across the join with what came before.
    pub(super) fn feed(&mut self, d: &[u8]) -> bool {
        if d.is_empty() {
            return false;
        }
        let n = d.len().min(detect::SIGN_MAX);
        self.carry.extend_from_slice(&d[..n]);
        let found = detect::envelope_signs(&self.carry) || detect::envelope_signs(d);
        // Keep the stream's last SIGN_MAX bytes.
        self.carry.truncate(self.carry.len() - n);
        if d.len() >= detect::SIGN_MAX {
            self.carry.clear();
            self.carry
                .extend_from_slice(&d[d.len() - detect::SIGN_MAX..]);
        } else {
            let over = (self.carry.len() + d.len()).saturating_sub(detect::SIGN_MAX);
            self.carry.drain(..over.min(self.carry.len()));
            self.carry.extend_from_slice(d);
        }
        found
    }
}

/// What an inflated stream is searched with: text as the walk searches it (its
/// `watch_reader` uses [`detect::MarkerWatch`]); binary output by [`SignWatch`], since the
/// base64 half of the marker search would look at every `M`.
enum Search {
    Undecided,
    Text(detect::MarkerWatch),
    Binary(SignWatch),
}

impl Search {
    fn feed(&mut self, d: &[u8]) -> bool {
        if d.is_empty() {
            return false;
        }
        if matches!(self, Search::Undecided) {
            let head = &d[..d.len().min(8)];
            *self = if head
                .iter()
                .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
            {
                Search::Text(detect::MarkerWatch::default())
            } else {
                Search::Binary(SignWatch::default())
            };
        }
        match self {
            Search::Text(m) => {
                m.feed(d);
                m.found().is_some()
            }
            Search::Binary(s) => s.feed(d),
            Search::Undecided => false,
        }
    }
}

/// One deflate stream (raw, or zlib-wrapped) inflated as its bytes come.
struct Inflate {
    z: Decompress,
    search: Search,
    out: Vec<u8>,
    done: bool,
}

impl Inflate {
    fn new(zlib: bool) -> Inflate {
        Inflate {
            z: Decompress::new(zlib),
            search: Search::Undecided,
            out: vec![0; 64 * 1024],
            done: false,
        }
    }

    /// Inflates `input`, drawing on `budget` (what the whole archive may still inflate to);
    /// whether an envelope showed. Returns the bytes the stream used (all of `input` unless it
    /// ended inside it).
    fn feed(&mut self, mut input: &[u8], budget: &mut u64) -> (bool, usize) {
        let mut used_all = 0;
        // A full output buffer means the inflater may hold more: drained even once the input
        // is used up, or the stream's last bytes would never be searched.
        let mut full = false;
        while !self.done && (!input.is_empty() || full) {
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress(input, &mut self.out, FlushDecompress::None);
            let used = (self.z.total_in() - in0) as usize;
            let made = (self.z.total_out() - out0) as usize;
            used_all += used;
            input = &input[used..];
            full = made == self.out.len();
            *budget = budget.saturating_sub(made as u64);
            if self.search.feed(&self.out[..made]) {
                return (true, used_all);
            }
            match status {
                Ok(Status::StreamEnd) | Err(_) => self.done = true,
                Ok(_) if used == 0 && made == 0 => break,
                Ok(_) => {}
            }
            if self.z.total_out() >= INFLATE_LIMIT || *budget == 0 {
                self.done = true;
            }
        }
        (false, used_all)
    }
}

/// A gzip file: its header read, then its deflate stream.
struct Gzip {
    header: Vec<u8>,
    body: Option<Inflate>,
    /// Bytes after the member's deflate stream, in all pieces.
    after: usize,
}

/// The length of a gzip header at the start of `h`, once all of it is there.
fn gzip_header_len(h: &[u8]) -> Option<usize> {
    let flags = *h.get(3)?;
    let mut at = 10;
    if flags & 0x04 != 0 {
        let xlen = usize::from(u16::from_le_bytes([*h.get(10)?, *h.get(11)?]));
        at += 2 + xlen;
    }
    for bit in [0x08, 0x10] {
        if flags & bit != 0 {
            at += memchr::memchr(0, h.get(at..)?)? + 1;
        }
    }
    if flags & 0x02 != 0 {
        at += 2;
    }
    (h.len() >= at).then_some(at)
}

/// A run of decoded bytes being looked into as an archive, and what all of it may still
/// inflate to (members together: one deflate bomb that many headers point at costs once).
pub(super) struct Archive(Kind, u64);

enum Kind {
    Gzip(Gzip),
    Zlib(Inflate),
    Zip {
        /// The stream's last bytes, for a `PK\x03\x04` across two pieces.
        tail: Vec<u8>,
        /// Local headers cut by the end of a piece.
        headers: Vec<Vec<u8>>,
        members: Vec<Inflate>,
    },
}

/// A gzip header longer than this (a name without its end) is not waited for: hand back.
const HEADER_LIMIT: usize = 64 * 1024;

const LOCAL_HEADER: &[u8] = b"PK\x03\x04";

/// What looking into an archive concluded, for a piece.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Seen {
    Nothing,
    /// An envelope inside.
    Envelope,
    /// Something the watch does not follow (an overlong header, too many members at once, a
    /// gzip of several members): the in-memory path is to decide.
    Unsure,
}

impl Archive {
    /// The archive `head` (a run's first decoded bytes) starts, if one the walk looks into.
    pub(super) fn starting(head: &[u8]) -> Option<Archive> {
        let kind = if head.starts_with(&[0x1f, 0x8b]) {
            Kind::Gzip(Gzip {
                header: Vec::new(),
                body: None,
                after: 0,
            })
        } else if detect::is_zlib_header(head) {
            Kind::Zlib(Inflate::new(true))
        } else if head.starts_with(LOCAL_HEADER) {
            Kind::Zip {
                tail: Vec::new(),
                headers: Vec::new(),
                members: Vec::new(),
            }
        } else {
            return None;
        };
        Some(Archive(kind, INFLATE_LIMIT))
    }

    /// The next decoded bytes of the run.
    pub(super) fn feed(&mut self, d: &[u8]) -> Seen {
        let budget = &mut self.1;
        if *budget == 0 {
            return Seen::Nothing;
        }
        match &mut self.0 {
            Kind::Zlib(z) => {
                if z.feed(d, budget).0 {
                    Seen::Envelope
                } else {
                    Seen::Nothing
                }
            }
            Kind::Gzip(g) => g.feed(d, budget),
            Kind::Zip {
                tail,
                headers,
                members,
            } => zip_feed(tail, headers, members, d, budget),
        }
    }
}

impl Gzip {
    fn feed(&mut self, mut d: &[u8], budget: &mut u64) -> Seen {
        if self.body.is_none() {
            let had = self.header.len();
            let room = HEADER_LIMIT.saturating_sub(had);
            self.header.extend_from_slice(&d[..d.len().min(room)]);
            let Some(n) = gzip_header_len(&self.header) else {
                return if self.header.len() >= HEADER_LIMIT {
                    Seen::Unsure
                } else {
                    Seen::Nothing
                };
            };
            d = &d[n.saturating_sub(had).min(d.len())..];
            self.header = Vec::new();
            self.body = Some(Inflate::new(false));
        }
        let Some(body) = self.body.as_mut() else {
            return Seen::Nothing;
        };
        let after = if body.done {
            d.len()
        } else {
            let (found, used) = body.feed(d, budget);
            if found {
                return Seen::Envelope;
            }
            if !body.done {
                return Seen::Nothing;
            }
            d.len() - used
        };
        // Past the member: its 8-byte trailer, and anything more is another member.
        self.after += after;
        if self.after > 8 && *budget > 0 {
            Seen::Unsure
        } else {
            Seen::Nothing
        }
    }
}

/// Adds to a local header being collected (from its `PK\x03\x04`) as many of `d`'s bytes as it
/// still needs; once whole, how many of `d` it took and whether its member is deflated.
fn grow_header(h: &mut Vec<u8>, d: &[u8]) -> Option<(usize, bool)> {
    let mut took = 0;
    if h.len() < 30 {
        took = (30 - h.len()).min(d.len());
        h.extend_from_slice(&d[..took]);
        if h.len() < 30 {
            return None;
        }
    }
    let le16 = |i: usize| usize::from(u16::from_le_bytes([h[i], h[i + 1]]));
    let data_at = 30 + le16(26) + le16(28);
    let deflated = le16(8) == 8;
    let n = data_at.saturating_sub(h.len()).min(d.len() - took);
    h.extend_from_slice(&d[took..took + n]);
    took += n;
    (h.len() >= data_at).then_some((took, deflated))
}

/// A local header whole at the start of `h`: where its member's data starts, and whether it is
/// deflated; `None` if `h` ends first.
fn header_in(h: &[u8]) -> Option<(usize, bool)> {
    let head = h.get(..30)?;
    let le16 = |i: usize| usize::from(u16::from_le_bytes([head[i], head[i + 1]]));
    let data_at = 30 + le16(26) + le16(28);
    (h.len() >= data_at).then_some((data_at, le16(8) == 8))
}

/// A zip archive's next bytes: every local header starts a member, inflated if deflated
/// (stored members show as they are, to the run's own search), as the walk does.
fn zip_feed(
    tail: &mut Vec<u8>,
    headers: &mut Vec<Vec<u8>>,
    members: &mut Vec<Inflate>,
    d: &[u8],
    budget: &mut u64,
) -> Seen {
    for m in members.iter_mut() {
        if m.feed(d, budget).0 {
            return Seen::Envelope;
        }
    }
    members.retain(|m| !m.done);
    // Where in `d` the data of members whose headers complete here starts.
    let mut starts = Vec::new();
    let mut i = 0;
    while i < headers.len() {
        match grow_header(&mut headers[i], d) {
            Some((took, deflated)) => {
                headers.swap_remove(i);
                if deflated {
                    starts.push(took);
                }
            }
            None => i += 1,
        }
    }
    // Headers whose signature starts in the carried tail and ends in `d`.
    let base = tail.len();
    let mut joined = std::mem::take(tail);
    joined.extend_from_slice(&d[..d.len().min(3)]);
    for p in memchr::memmem::find_iter(&joined, LOCAL_HEADER).filter(|&p| p < base) {
        let mut h = joined[p..base].to_vec();
        match grow_header(&mut h, d) {
            Some((took, true)) => starts.push(took),
            Some((_, false)) => {}
            None => headers.push(h),
        }
    }
    for p in memchr::memmem::find_iter(d, LOCAL_HEADER) {
        match header_in(&d[p..]) {
            Some((at, true)) => starts.push(p + at),
            Some((_, false)) => {}
            // Cut by the end of the piece: kept (a copy of at most one header).
            None if headers.len() < MAX_MEMBERS => headers.push(d[p..].to_vec()),
            None => return Seen::Unsure,
        }
        if starts.len() > MAX_MEMBERS {
            return Seen::Unsure;
        }
    }
    // The stream's last three bytes.
    joined.truncate(base);
    joined.extend_from_slice(d);
    let from = joined.len().saturating_sub(3);
    *tail = joined.split_off(from);
    for at in starts {
        if members.len() >= MAX_MEMBERS {
            return Seen::Unsure;
        }
        let mut m = Inflate::new(false);
        if m.feed(&d[at.min(d.len())..], budget).0 {
            return Seen::Envelope;
        }
        if !m.done {
            members.push(m);
        }
    }
    if headers.len() > MAX_MEMBERS {
        return Seen::Unsure;
    }
    Seen::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn envelope() -> Vec<u8> {
        // OID enveloped-data and the [0] of its content, inside some bytes.
        let mut v = b"some bytes before ".to_vec();
        v.extend_from_slice(&[
            0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0,
            0x80,
        ]);
        v.extend_from_slice(&[0x55; 5000]);
        v
    }

    /// Feeds `data` in pieces of `piece` bytes; what it saw first.
    fn seen(data: &[u8], piece: usize) -> Seen {
        let mut a = Archive::starting(&data[..8]).expect("an archive");
        for p in data.chunks(piece) {
            match a.feed(p) {
                Seen::Nothing => {}
                other => return other,
            }
        }
        Seen::Nothing
    }

    fn zip(members: &[(&str, &[u8], bool)]) -> Vec<u8> {
        // A minimal zip: local headers and data only (the walk reads no central directory).
        let mut out = Vec::new();
        for (name, data, deflate) in members {
            let body = if *deflate {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            } else {
                data.to_vec()
            };
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&[20, 0, 0, 0]);
            out.extend_from_slice(&(if *deflate { 8u16 } else { 0 }).to_le_bytes());
            out.extend_from_slice(&[0; 16]);
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&body);
        }
        out
    }

    #[test]
    fn an_envelope_deflated_in_gzip_zlib_or_zip_is_seen_in_pieces_of_any_size() {
        let env = envelope();
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
            e.write_all(&env).unwrap();
            e.finish().unwrap()
        };
        let zl = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Default::default());
            e.write_all(&env).unwrap();
            e.finish().unwrap()
        };
        let noise: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let zp = zip(&[("a.xml", &noise, true), ("b.bin", &env, true)]);
        for piece in [1, 3, 7, 64, 4096, 1 << 20] {
            assert_eq!(seen(&gz, piece), Seen::Envelope, "gzip, {piece}");
            assert_eq!(seen(&zl, piece), Seen::Envelope, "zlib, {piece}");
            assert_eq!(seen(&zp, piece), Seen::Envelope, "zip, {piece}");
        }
    }

    #[test]
    fn archives_without_an_envelope_are_nothing() {
        let noise: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
            e.write_all(&noise).unwrap();
            e.finish().unwrap()
        };
        let zp = zip(&[
            ("a", &noise, true),
            ("b", &noise, false),
            ("c", &noise, true),
        ]);
        for piece in [5, 1000, 1 << 20] {
            assert_eq!(seen(&gz, piece), Seen::Nothing, "gzip, {piece}");
            assert_eq!(seen(&zp, piece), Seen::Nothing, "zip, {piece}");
        }
        // A second gzip member is not followed: the in-memory path decides.
        let mut two = gz.clone();
        two.extend_from_slice(&gz);
        assert_eq!(seen(&two, 1 << 20), Seen::Unsure);
    }

    /// Hostile bytes after an archive's magic (headers with any lengths, signatures inside
    /// members, cut anywhere) never panic, whatever the pieces.
    #[test]
    fn hostile_archives_in_any_pieces_do_not_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let heads: [&[u8]; 3] = [&[0x1f, 0x8b, 8, 0x1e], &[0x78, 0x9c], b"PK\x03\x04"];
        for round in 0..300 {
            let mut data = heads[round % 3].to_vec();
            while data.len() < 8 + (next() % 3000) as usize {
                match next() % 5 {
                    0 => data.extend_from_slice(b"PK\x03\x04"),
                    1 => data.extend_from_slice(&[8, 0, 0xff, 0xff, 0xff, 0xff]),
                    _ => data.push(next() as u8),
                }
            }
            let mut a = Archive::starting(&data[..8]).expect("an archive");
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = ((next() % 40) as usize + 1).min(rest.len());
                let _ = a.feed(&rest[..n]);
                rest = &rest[n..];
            }
        }
    }

    /// A piece full of local headers with the longest name and extra fields hands back
    /// rather than collecting a copy for each.
    #[test]
    fn a_piece_of_countless_local_headers_hands_back() {
        let mut data = b"PK\x03\x04".to_vec();
        data.extend_from_slice(&[0; 22]);
        data.extend_from_slice(&[0xff; 4]);
        let one = data.clone();
        while data.len() < 2 << 20 {
            data.extend_from_slice(&one);
        }
        let mut a = Archive::starting(&data[..8]).expect("zip");
        assert_eq!(a.feed(&data), Seen::Unsure);
    }

    /// The envelope at the very end of a stream that inflates to far more than it takes, in
    /// pieces of several sizes. (The drain of a full output buffer once the input is used up,
    /// which a reviewer showed miniz_oxide needs, is not reached by this input.)
    #[test]
    fn an_envelope_at_the_end_of_a_large_inflation_is_seen() {
        let mut data = vec![0u8; 300_000];
        let env = envelope();
        data.extend_from_slice(&env[..40]);
        let zl = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Default::default());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        for piece in [zl.len(), zl.len() - 1, 100, 7] {
            assert_eq!(seen(&zl, piece), Seen::Envelope, "{piece}");
        }
    }

    /// Many members pointing at one deflate bomb cost the archive's budget once.
    #[test]
    fn members_share_one_inflation_budget() {
        let zeros = vec![0u8; 1 << 20];
        let members: Vec<(&str, &[u8], bool)> = (0..12).map(|_| ("z", &zeros[..], true)).collect();
        let zp = zip(&members);
        let mut a = Archive::starting(&zp[..8]).unwrap();
        assert_eq!(a.feed(&zp), Seen::Nothing);
        assert_eq!(a.1, INFLATE_LIMIT - 12 * (1 << 20));
    }

    #[test]
    fn signs_across_pieces_are_found() {
        let env = envelope();
        for piece in [1, 2, 5, 17, 18, 19, 100] {
            let mut w = SignWatch::default();
            assert!(env.chunks(piece).any(|p| w.feed(p)), "{piece}");
        }
        let mut w = SignWatch::default();
        assert!(!w.feed(&[0x55; 1000]));
    }
}
