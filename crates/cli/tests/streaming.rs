//! Large messages are decrypted as a stream (`--stream-above`): the outputs, reports and
//! verification are the same as when every message is decrypted in memory, in every output
//! shape that streams (mbox, Maildir, EML tree), and a message that fails while streaming ends
//! exactly as it would have in memory.

mod common;

use base64::Engine as _;
use common::*;
use std::path::{Path, PathBuf};

/// A message of about `mb` MB made by `openssl cms -encrypt` (DER, AES-256-CBC) to the rsa2048
/// test certificate, with its line breaks as LF. `None` (and a printed reason) without openssl.
fn openssl_message(dir: &Path, mb: usize) -> Option<Vec<u8>> {
    let mut plain = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n".to_vec();
    let mut i = 0u64;
    while plain.len() < mb * 1_000_000 {
        plain.extend_from_slice(format!("From line {i} of a large plaintext\r\n").as_bytes());
        i += 1;
    }
    let p = dir.join("plain.txt");
    std::fs::write(&p, &plain).unwrap();
    let out = dir.join("big.eml");
    let ok = std::process::Command::new("openssl")
        .args(["cms", "-encrypt", "-aes256", "-binary", "-in"])
        .arg(&p)
        .arg("-out")
        .arg(&out)
        .arg(keys().join("rsa2048.cert.pem"))
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: openssl cms -encrypt is not available");
        return None;
    }
    let m: Vec<u8> = std::fs::read(&out)
        .unwrap()
        .into_iter()
        .filter(|&b| b != b'\r')
        .collect();
    Some(m)
}

/// `m` with the top bit of the last byte of the next-to-last AES block flipped: the padding
/// length becomes larger than a block, so the check at the very end fails.
fn with_bad_padding(m: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(m.to_vec()).unwrap();
    let split = text.find("\n\n").unwrap() + 2;
    let (head, body) = text.split_at(split);
    let b64: String = body.split_whitespace().collect();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let at = der.len() - 16 - 1;
    der[at] ^= 0x80;
    let enc = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = head.as_bytes().to_vec();
    for line in enc.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

/// Runs decrypt (no trace header, so two runs compare byte for byte) and returns the report's
/// item records, without what legitimately differs between runs.
fn run(input: &Path, out: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    run_logged(input, out, extra).0
}

/// As [`run`], also returning what was printed on stderr.
fn run_logged(input: &Path, out: &Path, extra: &[&str]) -> (Vec<serde_json::Value>, String) {
    let report = out.with_extension("jsonl");
    let mut c = decrypt(input, out);
    c.arg("--no-trace-header").arg("--report").arg(&report);
    c.args(extra);
    let o = c.output().unwrap();
    assert!(
        o.status.success() || o.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let recs = report_lines(&report)
        .into_iter()
        .filter(|l| l.get("item").is_some())
        .collect();
    (recs, String::from_utf8_lossy(&o.stderr).into_owned())
}

fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && !e.path().to_string_lossy().contains(".unseal"))
        .map(|e| {
            (
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn streamed_and_in_memory_runs_write_the_same_mailbox() {
    let d = tempfile::tempdir().unwrap();
    let Some(big) = openssl_message(d.path(), 3) else {
        return;
    };
    let broken = with_bad_padding(&big);
    let mbox = d.path().join("box.mbox");
    // The fixtures (single-part and multipart plaintexts, GCM), the big one, the broken one.
    let n = write_mbox(&mbox, 2, &[big.clone(), broken.clone(), plain(9)]);

    // Everything from 1 byte up is a streaming candidate; the default streams none of these.
    let memory = run(&mbox, &d.path().join("memory"), &[]);
    let (streamed, log) = run_logged(
        &mbox,
        &d.path().join("streamed"),
        &["--stream-above", "1", "-vv"],
    );
    // The big one and the CBC fixtures streamed, multipart plaintexts included (#1, 3DES BER);
    // the broken one was tried, failed at its padding, and went to the in-memory path; the GCM
    // one (#3) streams too (its plaintext waits in the spool for the tag).
    for expected in [
        format!("box.mbox#{}: decrypted as a stream", n - 3),
        format!("box.mbox#{}: streaming failed", n - 2),
        "box.mbox#1: decrypted as a stream".to_string(),
        "box.mbox#3: decrypted as a stream".to_string(),
    ] {
        assert!(log.contains(&expected), "{expected}: {log}");
    }
    assert_eq!(streamed, memory);
    assert_eq!(
        std::fs::read(d.path().join("streamed/box.mbox")).unwrap(),
        std::fs::read(d.path().join("memory/box.mbox")).unwrap()
    );
    let statuses: Vec<&str> = memory
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == "failed").count(), 1);
    assert!(statuses.iter().filter(|s| **s == "decrypted").count() >= 11);
    // The broken one was copied unchanged: still encrypted in the output.
    let out = std::fs::read_to_string(d.path().join("streamed/box.mbox")).unwrap();
    assert_eq!(out.matches("smime-type=enveloped-data").count(), 1);
    verify(&mbox, &d.path().join("streamed")).assert().code(1); // the failed item is reported as undecrypted
    // The lines that were streamed are quoted as mboxrd wants: the plaintext has `From ` lines.
    assert!(out.contains("\n>From line 7 of a large plaintext\r\n"));

    // Maildir and EML tree outputs, file by file.
    for (shape, input) in [("maildir", "md"), ("eml", "tree")] {
        let src = d.path().join(input);
        let cur = if shape == "maildir" {
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(src.join(sub)).unwrap();
            }
            src.join("cur")
        } else {
            std::fs::create_dir_all(&src).unwrap();
            src.clone()
        };
        let mut msgs: Vec<Vec<u8>> = ENCRYPTED.iter().map(|e| msg(e)).collect();
        msgs.extend([big.clone(), broken.clone(), plain(1)]);
        for (i, m) in msgs.iter().enumerate() {
            let name = if shape == "maildir" {
                format!("{i}.host:2,S")
            } else {
                format!("m{i}.eml")
            };
            std::fs::write(cur.join(name), m).unwrap();
        }
        let a = d.path().join(format!("{shape}-memory"));
        let b = d.path().join(format!("{shape}-streamed"));
        let ra = run(&src, &a, &[]);
        let rb = run(&src, &b, &["--stream-above", "1"]);
        assert_eq!(ra, rb, "{shape}");
        let (ta, tb) = (tree(&a), tree(&b));
        assert_eq!(ta.len(), msgs.len(), "{shape}");
        assert!(ta == tb, "{shape}: outputs differ");
    }
}

#[test]
fn a_large_message_is_decrypted_in_bounded_steps_and_checks_out() {
    // 12 MB, above a 4 MB threshold: streamed; `verify` agrees with what was written.
    let d = tempfile::tempdir().unwrap();
    let Some(big) = openssl_message(d.path(), 12) else {
        return;
    };
    let mbox = d.path().join("big.mbox");
    write_mbox(&mbox, 1, &[big]);
    let out = d.path().join("out");
    let recs = run(&mbox, &out, &["--stream-above", "4000000"]);
    let big_rec = recs.last().unwrap();
    assert_eq!(big_rec["status"], "decrypted");
    assert_eq!(big_rec["cipher"], "AES-256-CBC");
    assert!(big_rec["bytes_out"].as_u64().unwrap() > 12_000_000);
    verify(&mbox, &out).assert().success();
}
