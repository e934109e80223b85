//! Shared helpers for the fuzz targets: a key ring built from fixture keys embedded in the
//! binary (no file system access per run), and a BER walker that exercises `Reader`.

use std::sync::OnceLock;
use unseal_core::cms::ber::{self, Reader};
use unseal_core::keyring::KeyRing;
use unseal_core::provider::default_provider;
use unseal_core::{DecryptOptions, Decryptor};

static RSA_KEY: &[u8] = include_bytes!("../../fixtures/keys/rsa2048.key.pem");
static RSA_CERT: &[u8] = include_bytes!("../../fixtures/keys/rsa2048.cert.pem");
static EC_KEY: &[u8] = include_bytes!("../../fixtures/keys/ec-p256.key.pem");
static EC_CERT: &[u8] = include_bytes!("../../fixtures/keys/ec-p256.cert.pem");

/// The fixture keys (RSA-2048 and EC P-256, with their certificates), loaded once.
pub fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        let mut r = KeyRing::new();
        for (name, key) in [("rsa2048.key.pem", RSA_KEY), ("ec-p256.key.pem", EC_KEY)] {
            r.load_bytes(name, key, None).expect("fixture key loads");
        }
        for (name, cert) in [
            ("rsa2048.cert.pem", RSA_CERT),
            ("ec-p256.cert.pem", EC_CERT),
        ] {
            // Certificates attach to the loaded keys (issuer+serial lookup).
            r.load_bytes(name, cert, None).ok();
        }
        r
    })
}

/// A decryptor over [`ring`] with the default provider.
pub fn decryptor() -> Decryptor<'static> {
    Decryptor::new(ring(), default_provider(), DecryptOptions::default()).expect("decryptor")
}

/// A decryptor over [`ring`] that spools AES-GCM plaintext in `dir` until its tag verifies, as
/// the CLI does: with it, [`unseal_core::stream::prepare`] takes AuthEnvelopedData too.
pub fn spooling_decryptor(dir: &std::path::Path) -> Decryptor<'static> {
    let options = DecryptOptions {
        spool_dir: Some(dir.to_path_buf()),
        ..DecryptOptions::default()
    };
    Decryptor::new(ring(), default_provider(), options).expect("decryptor")
}

/// Walks every TLV of `data` with the streaming reader: headers, raw values, string segments,
/// descending into constructed values. Errors end the walk; panics are the bugs.
pub fn walk_ber(data: &[u8]) {
    let mut r = Reader::new(data);
    let _ = walk(&mut r, 0);
}

fn walk(r: &mut Reader<'_>, depth: usize) -> unseal_core::Result<()> {
    if depth > ber::MAX_DEPTH {
        return Ok(());
    }
    while !r.is_empty() {
        if r.at_eoc() {
            // The end of an indefinite-length value: its contents end here.
            if depth > 0 {
                return Ok(());
            }
            continue;
        }
        let h = r.header("fuzz")?;
        if h.tag.constructed {
            // Segments (as a string) on a copy, then structure on another copy.
            let mut seg = r.clone();
            let _ = ber::for_each_segment(&mut seg, &h, 0, &mut |_, _| Ok(()));
            let mut inner = r.contents_reader(&h);
            let _ = walk(&mut inner, depth + 1);
            let mut raw = r.clone();
            let _ = raw.finish_raw(&h, 0);
            r.skip_contents(&h, 0)?;
        } else {
            r.primitive_contents(&h, "fuzz")?;
        }
    }
    Ok(())
}

/// libfuzzer-sys installs a panic hook that aborts on *every* panic, even one the code under
/// test catches on purpose (the .msg and PST readers contain panics of third-party crates and
/// report them as errors). This replaces the hook with one that only prints, so a contained
/// panic is not a crash, while a panic that escapes the API still aborts (libfuzzer-sys aborts
/// when the target closure unwinds).
pub fn contained_panics_are_not_crashes() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("panic (a crash only if it escapes the API): {info}");
        }));
    });
}
