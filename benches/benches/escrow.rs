//! Loading a key escrow: `KeyRing::load_file` over N PKCS#12 files (RSA-2048, OpenSSL 3
//! defaults: PBES2 AES-256-CBC with PBKDF2-SHA256 at 2048 iterations and a SHA-256 MAC). The
//! files are made once by openssl into `target/bench-escrow` and reused by later runs.
//! N is 500 under `cargo bench`, 4 in test mode; `UNSEAL_BENCH_ESCROW=N` overrides.
//!
//! `cargo bench -p unseal-benches --bench escrow`

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use unseal_benches as ub;
use unseal_core::keyring::KeyRing;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(ub::WARM_UP)
        .measurement_time(ub::MEASUREMENT)
        .sample_size(ub::SAMPLES)
}

fn escrow(c: &mut Criterion) {
    let n = std::env::var("UNSEAL_BENCH_ESCROW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if ub::full_run() { 500 } else { 4 });
    let files = ub::escrow(n);
    let mut g = c.benchmark_group("keyring");
    g.throughput(Throughput::Elements(n as u64));
    // Each iteration takes long: the same few iterations per sample, not 1..=10.
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function(format!("load_file {n} x PFX RSA-2048"), |b| {
        b.iter(|| {
            let mut ring = KeyRing::new();
            for f in &files {
                ring.load_file(f, Some(ub::ESCROW_PASSWORD)).unwrap();
            }
            assert_eq!(ring.len(), n);
            ring
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = escrow
}
criterion_main!(benches);
