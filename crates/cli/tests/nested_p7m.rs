//! A .p7m whose content is S/MIME again must not pass as decrypted with an envelope still shut:
//! a message encrypted twice is opened layer by layer; content that still shows an envelope,
//! or a SignedData wrapped around one (encrypted, then signed), fails, and `verify` calls it
//! still encrypted. Made with the OpenSSL CLI; skipped (with the reason printed) without it.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::*;

/// Runs `openssl cms ARGS`; false (and a printed reason) when OpenSSL is not there.
fn openssl_cms(args: &[&str], files: &[&Path]) -> bool {
    let mut c = Command::new("openssl");
    c.arg("cms").args(args).args(files);
    let ok = c.status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "skipping: openssl cms {} failed or is not installed",
            args.join(" ")
        );
    }
    ok
}

/// `input` encrypted with AES-256 to `cert`, as DER (`.p7m`) or as an S/MIME message.
fn encrypt(input: &Path, output: &Path, cert: &str, der: bool) -> bool {
    let cert = keys().join(cert);
    let form: &[&str] = if der {
        &["-encrypt", "-binary", "-aes256", "-outform", "DER", "-in"]
    } else {
        &["-encrypt", "-aes256", "-in"]
    };
    let mut files: Vec<&Path> = vec![input, Path::new("-out"), output];
    files.push(&cert);
    openssl_cms(form, &files)
}

fn inner_message(dir: &Path, cert: &str) -> Option<PathBuf> {
    let plain = dir.join("plain.eml");
    std::fs::write(
        &plain,
        "Content-Type: text/plain\r\n\r\nthe secret two layers down\r\n",
    )
    .unwrap();
    let inner = dir.join("inner.eml");
    encrypt(&plain, &inner, cert, false).then_some(inner)
}

fn run(input: &Path, out: &Path) -> (i32, serde_json::Value) {
    let report = out.with_extension("jsonl");
    let a = decrypt(input, out).arg("--report").arg(&report).assert();
    let lines = report_lines(&report);
    (a.get_output().status.code().unwrap(), lines[0].clone())
}

/// Decrypting `p7m` exits 1 with `status` and a reason that says `why`; the original is copied
/// unchanged, so `verify` finds it still encrypted.
fn fails_and_stays_encrypted(p7m: &Path, out: &Path, status: &str, why: &str) {
    let (code, rec) = run(p7m, out);
    assert_eq!(code, 1, "{rec}");
    assert_eq!(rec["status"], status, "{rec}");
    let reason = rec["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(why), "{rec}");
    let v = verify(p7m, out).assert().code(1);
    let err = String::from_utf8_lossy(&v.get_output().stderr).to_string();
    assert!(err.contains("1 still encrypted"), "{err}");
}

#[test]
fn a_p7m_holding_a_message_encrypted_again_is_opened_layer_by_layer() {
    let t = tempfile::tempdir().unwrap();
    let Some(inner) = inner_message(t.path(), "rsa2048.cert.pem") else {
        return;
    };
    let p7m = t.path().join("twice.p7m");
    if !encrypt(&inner, &p7m, "rsa2048.cert.pem", true) {
        return;
    }
    let out = t.path().join("out");
    let (code, rec) = run(&p7m, &out);
    assert_eq!(code, 0, "{rec}");
    assert_eq!(rec["status"], "decrypted");
    assert_eq!(rec["cipher"], "AES-256-CBC", "{rec}");
    let written = std::fs::read_to_string(out.join("twice.eml")).unwrap();
    assert!(written.contains("the secret two layers down"), "{written}");
    assert!(!written.contains("pkcs7-mime"), "{written}");
    verify(&p7m, &out).assert().code(0);
}

#[test]
fn a_p7m_whose_inner_message_lacks_its_key_is_not_called_decrypted() {
    let t = tempfile::tempdir().unwrap();
    let Some(inner) = inner_message(t.path(), "other.cert.pem") else {
        return;
    };
    let p7m = t.path().join("twice.p7m");
    if !encrypt(&inner, &p7m, "rsa2048.cert.pem", true) {
        return;
    }
    fails_and_stays_encrypted(
        &p7m,
        &t.path().join("out"),
        "no_key",
        "message whose own envelope did not open",
    );
}

#[test]
fn a_p7m_whose_content_is_an_envelope_in_base64_fails() {
    let t = tempfile::tempdir().unwrap();
    let inner_der = t.path().join("inner.p7m");
    let plain = t.path().join("plain.txt");
    std::fs::write(&plain, "the secret\n").unwrap();
    if !encrypt(&plain, &inner_der, "rsa2048.cert.pem", true) {
        return;
    }
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&inner_der).unwrap());
    let text = t.path().join("b64.txt");
    std::fs::write(&text, b64).unwrap();
    let p7m = t.path().join("b64.txt.p7m");
    if !encrypt(&text, &p7m, "rsa2048.cert.pem", true) {
        return;
    }
    fails_and_stays_encrypted(
        &p7m,
        &t.path().join("out"),
        "failed",
        "its content still shows an envelope",
    );
}

#[test]
fn an_encrypted_then_signed_p7m_fails_in_scan_decrypt_and_verify() {
    let t = tempfile::tempdir().unwrap();
    let plain = t.path().join("plain.txt");
    std::fs::write(&plain, "the secret\n").unwrap();
    let env = t.path().join("env.der");
    if !encrypt(&plain, &env, "rsa2048.cert.pem", true) {
        return;
    }
    let p7m = t.path().join("ets.p7m");
    let (cert, key) = (
        keys().join("signer.cert.pem"),
        keys().join("signer.key.pem"),
    );
    let files: [&Path; 7] = [
        Path::new("-in"),
        &env,
        Path::new("-out"),
        &p7m,
        Path::new("-signer"),
        &cert,
        Path::new("-inkey"),
    ];
    let mut all: Vec<&Path> = files.to_vec();
    all.push(&key);
    if !openssl_cms(&["-sign", "-binary", "-nodetach", "-outform", "DER"], &all) {
        return;
    }
    let scan = t.path().join("scan.jsonl");
    unseal()
        .arg("scan")
        .args(key_args())
        .arg(&p7m)
        .arg("--report")
        .arg(&scan)
        .assert()
        .code(1);
    let lines = report_lines(&scan);
    assert_eq!(lines[0]["status"], "failed", "{}", lines[0]);
    fails_and_stays_encrypted(
        &p7m,
        &t.path().join("out"),
        "failed",
        "encrypted, then signed",
    );
}

/// The content is a message whose only S/MIME is one encoding deeper: a forwarded S/MIME
/// message attached in base64 under another label. Nothing on the content's surface says
/// S/MIME, so the content is walked because it is a message, and the forwarded one opened.
#[test]
fn a_p7m_holding_a_forwarded_smime_message_in_base64_is_opened_to_the_end() {
    use base64::Engine as _;
    let t = tempfile::tempdir().unwrap();
    let Some(inner) = inner_message(t.path(), "rsa2048.cert.pem") else {
        return;
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&inner).unwrap());
    let lines: String = b64
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let outer = t.path().join("outer.eml");
    std::fs::write(
        &outer,
        format!(
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain\r\n\r\nforwarded:\r\n--b1\r\n\
Content-Type: application/octet-stream; name=\"fwd.eml\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{lines}--b1--\r\n"
        ),
    )
    .unwrap();
    let p7m = t.path().join("fwd.p7m");
    if !encrypt(&outer, &p7m, "rsa2048.cert.pem", true) {
        return;
    }
    let out = t.path().join("out");
    let (code, rec) = run(&p7m, &out);
    assert_eq!(code, 0, "{rec}");
    assert_eq!(rec["status"], "decrypted", "{rec}");
    // The attachment keeps its base64; decoded, it is the forwarded message, opened.
    let written = std::fs::read_to_string(out.join("fwd.eml")).unwrap();
    let after = written.split("name=\"fwd.eml\"").nth(1).unwrap();
    let b64: String = after
        .lines()
        .skip(1)
        .skip_while(|l| !l.trim().is_empty())
        .skip(1)
        .take_while(|l| !l.starts_with("--"))
        .collect();
    let forwarded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    let forwarded = String::from_utf8_lossy(&forwarded);
    assert!(
        forwarded.contains("the secret two layers down"),
        "{forwarded}"
    );
    assert!(!forwarded.contains("pkcs7-mime"), "{forwarded}");
    verify(&p7m, &out).assert().code(0);
}
