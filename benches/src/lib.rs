//! Set-up helpers for the unseal benchmarks: every input (RSA ciphertexts, CMS messages, the PFX
//! escrow) is made at bench start-up by the OpenSSL CLI, so nothing large is committed and the
//! inputs come from an independent implementation.
//!
//! When a bench binary runs without `--bench` (e.g. `cargo test --benches`, where criterion only
//! checks that each bench runs once), [`full_run`] is false and the helpers' callers shrink the
//! inputs so the check stays quick.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use unseal_core::keyring::KeyRing;

/// The workspace root (the folder holding `fixtures/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ sits in the workspace")
        .to_path_buf()
}

/// The cargo target folder (`CARGO_TARGET_DIR` if set, else `<root>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join("target"),
    }
}

pub fn fixture(rel: &str) -> PathBuf {
    workspace_root().join("fixtures").join(rel)
}

/// True under `cargo bench` (criterion is passed `--bench`); false in test mode.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `UNSEAL_BENCH_BIG=1` asks for the 200 MB message instead of the default 32 MB.
pub fn big() -> bool {
    std::env::var("UNSEAL_BENCH_BIG").is_ok_and(|v| v == "1")
}

/// Short criterion settings, the same for every bench: the machine is shared with people
/// compiling, so each measurement is kept to a few seconds.
pub const WARM_UP: Duration = Duration::from_millis(500);
pub const MEASUREMENT: Duration = Duration::from_secs(3);
pub const SAMPLES: usize = 10;

/// Runs the openssl CLI; panics with its stderr on failure (a bench cannot start without it).
pub fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI is on PATH (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A MIME entity of about `len` bytes: a header, an empty line and lines of text.
pub fn mime_plaintext(len: usize) -> Vec<u8> {
    let mut v = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n".to_vec();
    let line = b"The quick brown fox jumps over the lazy dog, 0123456789 times, said unseal.\r\n";
    while v.len() < len {
        let take = line.len().min(len - v.len());
        v.extend_from_slice(&line[..take]);
    }
    v
}

/// Encrypts a MIME plaintext of `len` bytes to `cert` with `openssl cms -encrypt -binary
/// -outform DER -<cipher>` and returns the DER ContentInfo. `cipher` is an openssl cipher name
/// such as `aes256`, `des3`, `aes-256-gcm`.
pub fn cms_encrypt(dir: &Path, name: &str, len: usize, cipher: &str, cert: &Path) -> Vec<u8> {
    let plain = dir.join(format!("{name}.txt"));
    let der = dir.join(format!("{name}.der"));
    std::fs::write(&plain, mime_plaintext(len)).unwrap();
    openssl(&[
        "cms",
        "-encrypt",
        "-binary",
        "-outform",
        "DER",
        &format!("-{cipher}"),
        "-in",
        plain.to_str().unwrap(),
        "-out",
        der.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&plain);
    let bytes = std::fs::read(&der).unwrap();
    let _ = std::fs::remove_file(&der);
    bytes
}

/// An S/MIME message (headers, base64 `application/pkcs7-mime` body) made by `openssl cms
/// -encrypt -<cipher>` from a MIME plaintext of `len` bytes, as a mail client would send it.
pub fn smime_encrypt(dir: &Path, name: &str, len: usize, cipher: &str, cert: &Path) -> Vec<u8> {
    let plain = dir.join(format!("{name}.txt"));
    let eml = dir.join(format!("{name}.eml"));
    std::fs::write(&plain, mime_plaintext(len)).unwrap();
    openssl(&[
        "cms",
        "-encrypt",
        "-binary",
        &format!("-{cipher}"),
        "-from",
        "Alice <alice@unseal.test>",
        "-to",
        "Bob <bob@unseal.test>",
        "-subject",
        name,
        "-in",
        plain.to_str().unwrap(),
        "-out",
        eml.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&plain);
    let bytes = std::fs::read(&eml).unwrap();
    let _ = std::fs::remove_file(&eml);
    let mut msg =
        format!("Date: Mon, 1 Jan 2024 08:00:00 +0100\nMessage-ID: <{name}@unseal.bench>\n")
            .into_bytes();
    msg.extend_from_slice(&bytes);
    msg
}

/// RSA-encrypts `msg` to the public key in `cert` with `openssl pkeyutl`; `opts` are
/// `-pkeyopt` values such as `rsa_padding_mode:oaep`.
pub fn rsa_encrypt(dir: &Path, cert: &Path, msg: &[u8], opts: &[&str]) -> Vec<u8> {
    let input = dir.join("rsa-in.bin");
    let output = dir.join("rsa-out.bin");
    std::fs::write(&input, msg).unwrap();
    let mut args = vec![
        "pkeyutl",
        "-encrypt",
        "-certin",
        "-inkey",
        cert.to_str().unwrap(),
        "-in",
        input.to_str().unwrap(),
        "-out",
        output.to_str().unwrap(),
    ];
    for o in opts {
        args.push("-pkeyopt");
        args.push(o);
    }
    openssl(&args);
    std::fs::read(&output).unwrap()
}

/// The uncompressed public point of a fresh key on `curve` (an openssl curve name), as the
/// sender's ephemeral key in ECDH would be.
pub fn ec_ephemeral_point(dir: &Path, curve: &str) -> Vec<u8> {
    let key = dir.join(format!("eph-{curve}.pem"));
    let spki = dir.join(format!("eph-{curve}.spki.der"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        &format!("ec_paramgen_curve:{curve}"),
        "-out",
        key.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        spki.to_str().unwrap(),
    ]);
    let spki = std::fs::read(&spki).unwrap();
    // The SPKI ends with the BIT STRING holding 04 || X || Y.
    let coord = match curve {
        "P-256" => 32,
        "P-384" => 48,
        "P-521" => 66,
        other => panic!("unknown curve {other}"),
    };
    spki[spki.len() - (1 + 2 * coord)..].to_vec()
}

/// Loads one unencrypted key file and returns the canonical PKCS#8 DER unseal keeps for it.
pub fn pkcs8_of(path: &Path) -> Vec<u8> {
    let mut ring = KeyRing::new();
    ring.load_file(path, None)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ring.keys()[0].material.pkcs8_der().to_vec()
}

/// A ring with one key (and its certificate, for recipient matching).
pub fn ring(key: &Path, cert: &Path) -> KeyRing {
    let mut ring = KeyRing::new();
    ring.load_file(key, None)
        .unwrap_or_else(|e| panic!("{}: {e}", key.display()));
    ring.add_certificates_file(cert)
        .unwrap_or_else(|e| panic!("{}: {e}", cert.display()));
    ring
}

/// The escrow password used for every generated PFX file.
pub const ESCROW_PASSWORD: &str = "unseal-bench";

/// Makes sure `<target>/bench-escrow` holds at least `n` PKCS#12 files (RSA-2048, one key and
/// self-signed certificate each, OpenSSL 3 defaults: PBES2/AES-256-CBC, PBKDF2 2048 iterations,
/// SHA-256 MAC). Files are made once and reused; generation runs one openssl per core.
pub fn escrow(n: usize) -> Vec<PathBuf> {
    let dir = target_dir().join("bench-escrow");
    std::fs::create_dir_all(&dir).unwrap();
    let path = |i: usize| dir.join(format!("user{i:04}.p12"));
    let missing: Vec<usize> = (0..n).filter(|&i| !path(i).exists()).collect();
    if !missing.is_empty() {
        eprintln!(
            "unseal-benches: generating {} PFX files in {} (once)",
            missing.len(),
            dir.display()
        );
        let script = format!(
            r#"set -e
i=$1; d={dir}
t=$(mktemp -d)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$t/k.pem" -out "$t/c.pem" -days 3650 -subj "/CN=escrow user $i" 2>/dev/null
openssl pkcs12 -export -inkey "$t/k.pem" -in "$t/c.pem" -passout pass:{pw} -out "$t/u.p12"
mv "$t/u.p12" "$d/$(printf 'user%04d.p12' "$i")"
rm -rf "$t""#,
            dir = dir.display(),
            pw = ESCROW_PASSWORD
        );
        let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
        let list: String = missing.iter().map(|i| format!("{i}\n")).collect();
        let mut child = Command::new("xargs")
            .args([
                "-P",
                &jobs.to_string(),
                "-n",
                "1",
                "bash",
                "-c",
                &script,
                "escrow",
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("xargs and bash are present");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(list.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "PFX generation failed");
    }
    (0..n).map(path).collect()
}
