//! Whole-envelope decryption with `Decryptor::decrypt_cms` (parse, recipient match, unwrap,
//! checks, stream-decrypt into a sink), for every provider compiled in. Messages are made at
//! start-up by `openssl cms -encrypt -binary -outform DER`:
//! - 20 KB AES-256-CBC, 20 KB 3DES, 20 KB AES-256-GCM (AuthEnvelopedData) to RSA-2048,
//! - 8 MB 3DES, and a large AES-256-CBC message: 32 MB, or 200 MB with `UNSEAL_BENCH_BIG=1`,
//! - a short message to each EC key (P-256/384/521): the ECDH unwrap (agreement, X9.63 KDF, AES
//!   key unwrap) dominates.
//!
//! `message_paths`: the same large AES-256-CBC message as a whole S/MIME message (headers,
//! base64 body), through `mime::decrypt_message` (in memory) and `stream::prepare`/`run` (the
//! streaming path the CLI takes for large messages), default provider.
//!
//! `cargo bench -p unseal-benches --bench messages [--features pure-rust]`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use unseal_benches as ub;
use unseal_core::provider::all_providers;
use unseal_core::{DecryptOptions, Decryptor, Error};

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(ub::WARM_UP)
        .measurement_time(ub::MEASUREMENT)
        .sample_size(ub::SAMPLES)
}

const MB: usize = 1 << 20;

fn size(len: usize) -> String {
    if len >= MB {
        format!("{}MB", len / MB)
    } else {
        format!("{}KB", len / 1024)
    }
}

/// (bench name, openssl cipher, plaintext bytes)
fn rsa_messages() -> Vec<(String, &'static str, usize)> {
    let full = ub::full_run();
    let (medium, large) = if !full {
        (64 * 1024, 128 * 1024)
    } else if ub::big() {
        (8 * MB, 200 * MB)
    } else {
        (8 * MB, 32 * MB)
    };
    vec![
        ("20KB AES-256-CBC".into(), "aes256", 20 * 1024),
        ("20KB 3DES".into(), "des3", 20 * 1024),
        ("20KB AES-256-GCM".into(), "aes-256-gcm", 20 * 1024),
        (format!("{} 3DES", size(medium)), "des3", medium),
        (format!("{} AES-256-CBC", size(large)), "aes256", large),
    ]
}

fn whole_messages(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let cert = ub::fixture("keys/rsa2048.cert.pem");
    let ring = ub::ring(&ub::fixture("keys/rsa2048.key.pem"), &cert);
    let mut g = c.benchmark_group("decrypt_cms");
    for (name, cipher, len) in rsa_messages() {
        let cms = ub::cms_encrypt(tmp.path(), "m", len, cipher, &cert);
        g.throughput(Throughput::Bytes(cms.len() as u64));
        for p in all_providers() {
            let dec = Decryptor::new(&ring, p, DecryptOptions::default()).unwrap();
            let info = dec.decrypt_cms(&cms, &mut std::io::sink()).unwrap();
            assert_eq!(info.plaintext_len, len as u64, "{name}");
            g.bench_with_input(BenchmarkId::new(p.name(), &name), &cms, |b, cms| {
                b.iter(|| {
                    dec.decrypt_cms(black_box(cms), &mut std::io::sink())
                        .unwrap()
                })
            });
        }
    }
    g.finish();
}

fn ecdh_messages(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("decrypt_cms_ecdh");
    g.throughput(Throughput::Elements(1));
    for (curve, file) in [
        ("P-256", "ec-p256"),
        ("P-384", "ec-p384"),
        ("P-521", "ec-p521"),
    ] {
        let cert = ub::fixture(&format!("keys/{file}.cert.pem"));
        let ring = ub::ring(&ub::fixture(&format!("keys/{file}.key.pem")), &cert);
        let cms = ub::cms_encrypt(tmp.path(), file, 200, "aes256", &cert);
        for p in all_providers() {
            let dec = Decryptor::new(&ring, p, DecryptOptions::default()).unwrap();
            match dec.decrypt_cms(&cms, &mut std::io::sink()) {
                Ok(_) => {}
                // The pure-Rust provider has no ECDH.
                Err(Error::WrongKey { .. }) if p.name() != "aws-lc-rs" => continue,
                Err(e) => panic!("{curve} [{}]: {e}", p.name()),
            }
            g.bench_with_input(
                BenchmarkId::new(p.name(), format!("{curve} 200B AES-256-CBC")),
                &cms,
                |b, cms| {
                    b.iter(|| {
                        dec.decrypt_cms(black_box(cms), &mut std::io::sink())
                            .unwrap()
                    })
                },
            );
        }
    }
    g.finish();
}

fn message_paths(c: &mut Criterion) {
    use unseal_core::{MessageOptions, decrypt_message, stream};
    let tmp = tempfile::tempdir().unwrap();
    let cert = ub::fixture("keys/rsa2048.cert.pem");
    let ring = ub::ring(&ub::fixture("keys/rsa2048.key.pem"), &cert);
    let dec = Decryptor::new(
        &ring,
        unseal_core::provider::default_provider(),
        DecryptOptions::default(),
    )
    .unwrap();
    let (_, _, len) = rsa_messages().pop().unwrap();
    let msg = ub::smime_encrypt(tmp.path(), "big", len, "aes256", &cert);
    let opts = MessageOptions::default();
    let mut g = c.benchmark_group("message_paths");
    g.throughput(Throughput::Bytes(len as u64));
    let name = format!("{} AES-256-CBC", size(len));
    g.bench_with_input(BenchmarkId::new("in memory", &name), &msg, |b, msg| {
        b.iter(|| decrypt_message(&dec, black_box(msg), &opts).unwrap())
    });
    // The backstop every message and every output passes through (`mime::detect`).
    g.bench_with_input(
        BenchmarkId::new("envelope markers", &name),
        &msg,
        |b, msg| b.iter(|| unseal_core::mime::detect::envelope_markers(black_box(msg)).len()),
    );
    g.bench_with_input(BenchmarkId::new("streamed", &name), &msg, |b, msg| {
        b.iter(|| {
            let job = stream::prepare(&dec, black_box(msg)).expect("streams");
            job.run(&opts, &mut std::io::sink(), &mut |_| {}).unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = whole_messages, ecdh_messages, message_paths
}
criterion_main!(benches);
