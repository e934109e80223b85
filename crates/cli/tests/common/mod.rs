//! Helpers shared by the CLI integration tests: fixture paths, generated mailboxes, running
//! the binary, reading reports.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

pub fn keys() -> PathBuf {
    fixtures().join("keys")
}

/// Messages encrypted to the rsa2048 test key, of several ciphers and structures.
pub const ENCRYPTED: &[&str] = &[
    "aes128-cbc.der.eml",
    "des-ede3-cbc.ber.eml",
    "oaep-sha256.eml",
    "aes256-gcm.der.eml",
    "aes256-cbc.ber.eml",
];

pub fn msg(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("messages").join(name))
        .unwrap()
        .iter()
        .copied()
        .filter(|&b| b != b'\r')
        .collect()
}

pub fn plain(i: usize) -> Vec<u8> {
    format!("From: alice@example.org\nSubject: plain {i}\n\nplain body {i}\n").into_bytes()
}

/// An mbox of `rounds` x (every ENCRYPTED message + a plain one), plus `extra` messages.
pub fn write_mbox(path: &Path, rounds: usize, extra: &[Vec<u8>]) -> usize {
    let mut out = Vec::new();
    let mut n = 0;
    let mut push = |m: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(b"From alice@example.org Mon Jun  3 12:50:27 1996\n");
        out.extend_from_slice(m);
        if !m.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.push(b'\n');
        n += 1;
    };
    for r in 0..rounds {
        for e in ENCRYPTED {
            push(&msg(e), &mut out);
        }
        push(&plain(r), &mut out);
    }
    for m in extra {
        push(m, &mut out);
    }
    std::fs::write(path, out).unwrap();
    n
}

pub fn unseal() -> Command {
    let mut c = Command::cargo_bin("unseal").unwrap();
    c.env_remove("UNSEAL_PASSWORD");
    c
}

pub fn key_args() -> Vec<String> {
    vec![
        "--key".into(),
        keys().join("rsa2048.p12").display().to_string(),
        "--password-file".into(),
        keys().join("password.txt").display().to_string(),
    ]
}

pub fn report_lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn mbox_messages(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("From alice@example.org Mon Jun"))
        .count()
}

pub fn count_enveloped(p: &Path) -> usize {
    let s = String::from_utf8_lossy(&std::fs::read(p).unwrap()).to_ascii_lowercase();
    s.matches("smime-type=enveloped-data").count()
        + s.matches("smime-type=authenveloped-data").count()
}

/// `unseal decrypt` with the rsa2048 test key, one input and an output folder; more arguments
/// may follow.
pub fn decrypt(input: &Path, out: &Path) -> Command {
    let mut c = unseal();
    c.arg("decrypt")
        .args(key_args())
        .arg(input)
        .arg("--out")
        .arg(out);
    c
}

/// `unseal verify` of one input against an output folder.
pub fn verify(input: &Path, out: &Path) -> Command {
    let mut c = unseal();
    c.arg("verify").arg(input).arg("--out").arg(out);
    c
}
