//! Hostile input, mutation style: every fixture message (fixtures/messages/*) is truncated at
//! many points, bit-flipped, has its BER length fields blown up and its base64 garbled. Each
//! mutation must give an `Err` that names a reason, or decrypt; it must never panic (each run is
//! inside `catch_unwind`, so the report names the mutation) and never allocate more than the
//! input can justify (a counting global allocator measures the peak of every run). A run over
//! a list mixing mutated and intact items still decrypts every intact one.
//!
//! Bounded: a fixed pseudo-random seed, a few thousand mutations in total.

mod common;

use common::{all_keys, fixtures};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use base64::Engine;
use unseal_core::cms::ber::Reader;
use unseal_core::provider::default_provider;
use unseal_core::{DecryptOptions, Decryptor, Error, MessageOptions, decrypt_message};

// ---- a per-thread counting allocator -------------------------------------------------------

struct Counting;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    // `try_with`: the thread-locals may be gone while a thread is being torn down.
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + size;
        c.set(now);
        let _ = PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now);
            }
        });
    });
}

fn note_free(size: usize) {
    let _ = CURRENT.try_with(|c| c.set(c.get().saturating_sub(size)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            note_alloc(new_size - layout.size());
        } else {
            note_free(layout.size() - new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result and the peak number of bytes it had allocated at once (on
/// this thread, above what was live when it started).
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get);
    (r, peak.saturating_sub(base))
}

/// The most a run over `input_len` bytes may allocate at once.
fn budget(input_len: usize) -> usize {
    64 * input_len + (1 << 20)
}

// ---- fixtures --------------------------------------------------------------------------------

/// Every file in fixtures/messages, sorted by name.
fn messages() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures().join("messages"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// How an input is fed: a whole message, or a raw CMS blob.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Message,
    Cms,
}

/// The raw CMS of a .p7m (DER, BER, or PEM/armour around base64), or `None` for a message.
fn p7m_cms(name: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    if !name.ends_with(".p7m") {
        return None;
    }
    if bytes.first() == Some(&0x30) {
        return Some(bytes.to_vec());
    }
    let text = String::from_utf8_lossy(bytes);
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':'))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
}

// ---- a fixed pseudo-random sequence ----------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

// ---- mutations -------------------------------------------------------------------------------

/// Where the length octets of each TLV in a BER blob are (`start..end` of the length field),
/// descending into constructed values.
fn length_fields(cms: &[u8]) -> Vec<std::ops::Range<usize>> {
    fn walk(cms: &[u8], r: &mut Reader<'_>, depth: usize, out: &mut Vec<std::ops::Range<usize>>) {
        while !r.is_empty() && depth < 32 && out.len() < 4096 {
            if r.at_eoc() {
                // The end of the indefinite-length value this reader walks.
                if depth > 0 {
                    return;
                }
                continue;
            }
            let Ok(h) = r.header("t") else { return };
            let id_len = if cms[h.start] & 0x1f == 0x1f {
                1 + cms[h.start + 1..]
                    .iter()
                    .position(|b| b & 0x80 == 0)
                    .map_or(0, |p| p + 1)
            } else {
                1
            };
            out.push(h.start + id_len..h.content_start);
            if h.tag.constructed {
                walk(cms, &mut r.contents_reader(&h), depth + 1, out);
            }
            if r.skip_contents(&h, 0).is_err() {
                return;
            }
        }
    }
    let mut out = Vec::new();
    walk(cms, &mut Reader::new(cms), 0, &mut out);
    out
}

/// Replacement length fields that lie about the size.
const BLOWUPS: &[&[u8]] = &[
    &[0x84, 0xff, 0xff, 0xff, 0xff],
    &[0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x85, 0x01, 0x00, 0x00, 0x00, 0x00],
    &[0x84, 0x7f, 0xff, 0xff, 0xff],
    &[0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    &[0xff],
    &[0x80],
    &[0x00],
];

/// A message around a CMS blob, as a mail client would send it.
fn wrap_cms(cms: &[u8]) -> Vec<u8> {
    let mut m = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: mutated\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(cms);
    for line in b64.as_bytes().chunks(76) {
        m.extend_from_slice(line);
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// Where a message's body starts (after the first empty line), if it has one.
fn body_start(msg: &[u8]) -> Option<usize> {
    msg.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| msg.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
}

struct Mutation {
    what: String,
    kind: Kind,
    bytes: Vec<u8>,
}

fn mutations_of(
    name: &str,
    bytes: &[u8],
    envelope_cms: Option<&[u8]>,
    rng: &mut Rng,
) -> Vec<Mutation> {
    let mut out = Vec::new();
    let (kind, base): (Kind, Vec<u8>) = match p7m_cms(name, bytes) {
        Some(cms) => (Kind::Cms, cms),
        None => (Kind::Message, bytes.to_vec()),
    };
    let n = base.len();
    // Truncations: spread over the input, plus the last few bytes.
    let mut cuts: Vec<usize> = (1..8).map(|i| n * i / 8).collect();
    cuts.extend([
        0,
        1,
        n.saturating_sub(1),
        n.saturating_sub(2),
        n.saturating_sub(17),
    ]);
    for _ in 0..4 {
        cuts.push(rng.below(n));
    }
    cuts.sort_unstable();
    cuts.dedup();
    for c in cuts.into_iter().filter(|&c| c < n) {
        out.push(Mutation {
            what: format!("truncated at {c} of {n}"),
            kind,
            bytes: base[..c].to_vec(),
        });
    }
    // Bit flips (one and several).
    for i in 0..10 {
        let mut b = base.clone();
        let flips = if i < 7 { 1 } else { 1 + rng.below(8) };
        let mut at = Vec::new();
        for _ in 0..flips {
            let p = rng.below(n);
            let bit = rng.below(8);
            b[p] ^= 1 << bit;
            at.push(format!("{p}.{bit}"));
        }
        out.push(Mutation {
            what: format!("bits flipped at {}", at.join(",")),
            kind,
            bytes: b,
        });
    }
    // The same at the CMS level, fed as a raw blob and as a message around it.
    if let Some(cms) = envelope_cms {
        let fields = length_fields(cms);
        let step = (fields.len() / 6).max(1);
        for (fi, f) in fields.iter().enumerate().step_by(step) {
            for (bi, blow) in BLOWUPS.iter().enumerate() {
                // Not every replacement for every field: a rotating subset keeps the count down.
                if (fi + bi) % 3 != 0 {
                    continue;
                }
                let mut b = cms[..f.start].to_vec();
                b.extend_from_slice(blow);
                b.extend_from_slice(&cms[f.end..]);
                out.push(Mutation {
                    what: format!("length at {}..{} set to {blow:02x?}", f.start, f.end),
                    kind: Kind::Cms,
                    bytes: b.clone(),
                });
                out.push(Mutation {
                    what: format!(
                        "length at {}..{} set to {blow:02x?}, in a message",
                        f.start, f.end
                    ),
                    kind: Kind::Message,
                    bytes: wrap_cms(&b),
                });
            }
        }
        for _ in 0..4 {
            let mut b = cms.to_vec();
            let p = rng.below(b.len());
            b[p] ^= 1 << rng.below(8);
            out.push(Mutation {
                what: format!("CMS byte {p} flipped"),
                kind: Kind::Cms,
                bytes: b,
            });
        }
    }
    // Garbage base64 in a message body.
    if kind == Kind::Message
        && let Some(bs) = body_start(&base)
        && bs < n
    {
        let body = bs..n;
        let mut garbage: Vec<(String, Vec<u8>)> = Vec::new();
        let mut b = base.clone();
        for _ in 0..8 {
            let p = body.start + rng.below(body.len());
            b[p] = b"!*%\x00\xff="[rng.below(6)];
        }
        garbage.push(("base64 sprinkled with invalid characters".into(), b));
        let mid = body.start + body.len() / 2;
        let mut b = base[..mid].to_vec();
        b.extend_from_slice(b"====\r\n");
        b.extend_from_slice(&base[mid..]);
        garbage.push(("padding in the middle of the base64".into(), b));
        let mut b = base[..body.start].to_vec();
        b.extend((0..body.len()).map(|_| b"ABCD+/xyz019\r\n"[rng.next() as usize % 14]));
        garbage.push(("body replaced by random base64 alphabet".into(), b));
        let mut b = base[..body.start].to_vec();
        b.extend_from_slice(&base[body.start..body.start + (body.len() / 3) * 2 + 1]);
        garbage.push(("base64 cut mid-quantum".into(), b));
        for (what, bytes) in garbage {
            out.push(Mutation { what, kind, bytes });
        }
    }
    out
}

// ---- running ---------------------------------------------------------------------------------

fn opts() -> MessageOptions {
    MessageOptions {
        timestamp: "Wed, 25 Nov 2026 12:00:00 +0000".into(),
        ..MessageOptions::default()
    }
}

/// The result of one run, reduced to what can be compared.
#[derive(Debug, PartialEq, Eq)]
enum Ran {
    Decrypted(Option<Vec<u8>>),
    Failed(String),
}

fn run(dec: &Decryptor<'_>, kind: Kind, bytes: &[u8]) -> Result<Ran, Error> {
    match kind {
        Kind::Message => decrypt_message(dec, bytes, &opts()).map(|o| Ran::Decrypted(o.output)),
        Kind::Cms => {
            let mut out = Vec::new();
            dec.decrypt_cms_with(bytes, &mut out, false)
                .map(|_| Ran::Decrypted(Some(out)))
        }
    }
}

/// Runs one input under `catch_unwind` and the allocation meter; a problem is described.
fn check(dec: &Decryptor<'_>, label: &str, kind: Kind, bytes: &[u8]) -> Result<Ran, String> {
    let (r, peak) = measured(|| catch_unwind(AssertUnwindSafe(|| run(dec, kind, bytes))));
    let limit = budget(bytes.len());
    if peak > limit {
        return Err(format!(
            "{label}: allocated {peak} bytes at once for {} input bytes (limit {limit})",
            bytes.len()
        ));
    }
    match r {
        Err(p) => Err(format!(
            "{label}: PANIC {}",
            p.downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        )),
        Ok(Ok(ran)) => Ok(ran),
        Ok(Err(e)) => {
            let text = e.to_string();
            if text.trim().is_empty() || e.kind().is_empty() {
                return Err(format!("{label}: an error without a reason: {e:?}"));
            }
            Ok(Ran::Failed(format!("{}: {text}", e.kind())))
        }
    }
}

#[test]
fn mutated_fixture_messages_fail_cleanly_and_intact_ones_still_decrypt() {
    let ring = all_keys();
    let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
    let mut rng = Rng(0x5eed_u64 << 32 | 0x0f5e_a1ed);
    let mut problems = Vec::new();
    let mut baselines = Vec::new();
    let mut all = Vec::new();
    let mut count = 0usize;
    let mut failed = 0usize;
    let started = std::time::Instant::now();

    for (name, bytes) in messages() {
        let kind = if p7m_cms(&name, &bytes).is_some() {
            Kind::Cms
        } else {
            Kind::Message
        };
        let intact = match kind {
            Kind::Cms => p7m_cms(&name, &bytes).unwrap(),
            Kind::Message => bytes.clone(),
        };
        let base = match check(&dec, &format!("{name} intact"), kind, &intact) {
            Ok(r) => r,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        // The first envelope's CMS, for length blow-ups.
        let cms = match kind {
            Kind::Cms => Some(intact.clone()),
            Kind::Message => unseal_core::find_envelopes(&intact, &opts())
                .ok()
                .and_then(|v| v.into_iter().next())
                .map(|f| f.cms),
        };
        for m in mutations_of(&name, &bytes, cms.as_deref(), &mut rng) {
            count += 1;
            let label = format!("{name}: {}", m.what);
            match check(&dec, &label, m.kind, &m.bytes) {
                Err(p) => problems.push(p),
                Ok(Ran::Failed(_)) => failed += 1,
                Ok(Ran::Decrypted(_)) => {}
            }
            if all.len() < 400 && rng.below(8) == 0 {
                all.push((label, m.kind, m.bytes, None));
            }
        }
        all.push((format!("{name} intact"), kind, intact.clone(), Some(base)));
        baselines.push(name);
    }

    // A run over a list mixing mutated and intact items: every intact item gives exactly what it
    // gave alone (a failure before it leaves nothing behind).
    let mut order: Vec<usize> = (0..all.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut intact_seen = 0;
    let mut intact_decrypted = 0;
    for i in order {
        let (label, kind, bytes, expected) = &all[i];
        match (check(&dec, label, *kind, bytes), expected) {
            (Err(p), _) => problems.push(format!("in the mixed run: {p}")),
            (Ok(got), Some(want)) => {
                intact_seen += 1;
                if matches!(got, Ran::Decrypted(Some(_))) {
                    intact_decrypted += 1;
                }
                if &got != want {
                    problems.push(format!("{label}: differs in the mixed run: {got:?}"));
                }
            }
            (Ok(_), None) => {}
        }
    }

    println!(
        "{count} mutations ({failed} failed cleanly, the rest decrypted or had nothing to \
         decrypt) of {} fixture messages; mixed run of {} items ({intact_seen} intact, \
         {intact_decrypted} of them decrypted); {:?}",
        baselines.len(),
        all.len(),
        started.elapsed()
    );
    assert!(count >= 2000, "only {count} mutations");
    assert_eq!(intact_seen, baselines.len());
    assert!(
        intact_decrypted >= 60,
        "only {intact_decrypted} intact items decrypted in the mixed run"
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The meter itself works: a big allocation is seen, and so is the budget breach.
#[test]
fn the_allocation_meter_sees_allocations() {
    let (v, peak) = measured(|| vec![1u8; 8 << 20]);
    assert!(peak >= 8 << 20, "{peak}");
    assert!(peak > budget(100_000));
    drop(v);
    let (_, small) = measured(|| Vec::<u8>::with_capacity(10));
    assert!(small < 1024, "{small}");
}

/// The intact fixtures that the rest of the suite decrypts also decrypt here (so that "Err or
/// decrypts" above is not vacuous).
#[test]
fn intact_fixtures_decrypt_under_the_meter() {
    let ring = all_keys();
    let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
    let mut decrypted = 0;
    for name in [
        "aes256-cbc.der.eml",
        "aes128-gcm.ber.eml",
        "des-ede3-cbc.ber.eml",
        "ecdh-p384-sha384-aes256.ber.eml",
        "nest-env-env.eml",
    ] {
        let bytes = std::fs::read(fixtures().join("messages").join(name)).unwrap();
        match check(&dec, name, Kind::Message, &bytes) {
            Ok(Ran::Decrypted(Some(_))) => decrypted += 1,
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(decrypted, 5);
}
