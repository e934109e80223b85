//! End to end: the built `unseal decrypt` binary (target/release/unseal, or `$UNSEAL`) run as a
//! subprocess on a generated mbox and Maildir of 100 S/MIME messages (20 KB AES-256-CBC to
//! RSA-2048, made by `openssl cms -encrypt`), each run into a fresh output folder. Includes
//! process start-up, key loading, parsing, decryption, writing, fsync and the journal.
//!
//! Skipped (with a note) when the binary is absent, and in test mode (`cargo test --benches`).
//! Build it first: `cargo build --release -p unseal-cli`, then
//! `cargo bench -p unseal-benches --bench cli`.

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{
    BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use unseal_benches as ub;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(ub::WARM_UP)
        .measurement_time(ub::MEASUREMENT)
        .sample_size(ub::SAMPLES)
}

const MESSAGES: usize = 100;

fn unseal_bin() -> PathBuf {
    std::env::var_os("UNSEAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| ub::target_dir().join("release/unseal"))
}

fn run(bin: &Path, input: &Path, out: &Path) {
    let key = ub::fixture("keys/rsa2048.key.pem");
    let cert = ub::fixture("keys/rsa2048.cert.pem");
    let o = Command::new(bin)
        .arg("decrypt")
        .arg("--key")
        .arg(&key)
        .arg("--cert")
        .arg(&cert)
        .arg(input)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "unseal decrypt {}: {}",
        input.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn cli(c: &mut Criterion) {
    let bin = unseal_bin();
    if !ub::full_run() {
        eprintln!("cli bench: skipped in test mode");
        return;
    }
    if !bin.exists() {
        eprintln!(
            "cli bench: {} not built (cargo build --release -p unseal-cli); skipped",
            bin.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cert = ub::fixture("keys/rsa2048.cert.pem");
    let mbox = tmp.path().join("inbox.mbox");
    let maildir = tmp.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let mut mbox_bytes = Vec::new();
    for i in 0..MESSAGES {
        let msg = ub::smime_encrypt(tmp.path(), &format!("m{i}"), 20 * 1024, "aes256", &cert);
        mbox_bytes.extend_from_slice(b"From alice@unseal.test Mon Jan  1 08:00:00 2024\n");
        // The S/MIME body is base64 and the headers are ours: no line starts with "From ".
        mbox_bytes.extend_from_slice(&msg);
        mbox_bytes.extend_from_slice(b"\n");
        std::fs::write(maildir.join(format!("cur/{i}.bench:2,S")), &msg).unwrap();
    }
    std::fs::write(&mbox, &mbox_bytes).unwrap();

    let mut g = c.benchmark_group("unseal_decrypt");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    // Each iteration takes long: the same few iterations per sample, not 1..=10.
    g.sampling_mode(SamplingMode::Flat);
    for (name, input) in [("mbox", &mbox), ("maildir", &maildir)] {
        g.bench_with_input(
            BenchmarkId::new(format!("{MESSAGES} x 20KB AES-256"), name),
            input,
            |b, input| {
                b.iter_batched(
                    || tempfile::tempdir_in(tmp.path()).unwrap(),
                    |out| {
                        run(&bin, input, &out.path().join("out"));
                        out // dropped (deleted) outside the timing
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = cli
}
criterion_main!(benches);
