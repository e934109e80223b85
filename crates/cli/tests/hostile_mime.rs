//! Messages whose MIME does not say what they hold. An envelope is opened whatever its label;
//! one the MIME structure does not lead to (bare-CR line ends, an empty boundary) fails its item
//! and keeps `verify` from calling the mailbox safe: it never passes as plain text.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The OpenSSL fixture with its top-level Content-* fields replaced by `head`.
fn relabelled(head: &str) -> Vec<u8> {
    let m = String::from_utf8(msg("aes128-cbc.der.eml")).unwrap();
    let (fields, body) = m.split_once("\n\n").unwrap();
    let mut out: String = fields
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-"))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(head);
    out.push('\n');
    out.push_str(body);
    out.into_bytes()
}

fn expected_body() -> Vec<u8> {
    let e = std::fs::read(fixtures().join("expected/aes128-cbc.der.eml.out")).unwrap();
    let e = String::from_utf8(e).unwrap().replace('\r', "");
    e.split_once("\n\n").unwrap().1.to_string().into_bytes()
}

/// `unseal decrypt INPUT --out DIR/out --report DIR/r.jsonl`, expecting exit `code`; the output
/// folder and the report's item records.
fn decrypt_expecting(input: &Path, dir: &Path, code: i32) -> (PathBuf, Vec<serde_json::Value>) {
    let out = dir.join("out");
    let report = dir.join("r.jsonl");
    decrypt(input, &out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(code);
    (out, records(&report))
}

fn records(report: &Path) -> Vec<serde_json::Value> {
    report_lines(report)
        .into_iter()
        .filter(|r| r.get("summary").is_none())
        .collect()
}

#[test]
fn mislabelled_envelopes_are_decrypted_and_verified() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("mail");
    std::fs::create_dir(&dir).unwrap();
    let heads = [
        "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n",
        "Content-Disposition: attachment; filename=\"smime.p7m\"\nContent-Transfer-Encoding: base64\n",
        "Content-Type: application / pkcs7-mime; smime-type=enveloped-data\nContent-Transfer-Encoding: base64\n",
        "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n",
    ];
    for (i, h) in heads.iter().enumerate() {
        std::fs::write(dir.join(format!("{i}.eml")), relabelled(h)).unwrap();
    }
    let (out, recs) = decrypt_expecting(&dir, t.path(), 0);
    assert_eq!(recs.len(), heads.len());
    for r in &recs {
        assert_eq!(r["status"], "decrypted", "{r}");
    }
    let want = expected_body();
    for i in 0..heads.len() {
        let got = std::fs::read(out.join(format!("mail/{i}.eml"))).unwrap();
        let got: Vec<u8> = got.into_iter().filter(|&b| b != b'\r').collect();
        assert!(got.ends_with(&want), "{i}.eml");
    }
    verify(&dir, &out).assert().code(0);
}

#[test]
fn an_envelope_out_of_the_structure_fails_and_is_never_safe() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("mail");
    std::fs::create_dir(&dir).unwrap();
    let original = msg("aes128-cbc.der.eml");
    let text = String::from_utf8(original.clone()).unwrap();
    let cr = text.replace('\n', "\r");
    std::fs::write(dir.join("mac.eml"), &cr).unwrap();
    let (fields, body) = text.split_once("\n\n").unwrap();
    let (outer, inner): (Vec<&str>, Vec<&str>) = fields
        .lines()
        .partition(|l| !l.to_ascii_lowercase().starts_with("content-"));
    let empty_boundary = format!(
        "{}\nContent-Type: multipart/mixed; boundary=\"\"\n\n--\n{}\n\n{body}\n----\n",
        outer.join("\n"),
        inner.join("\n")
    );
    std::fs::write(dir.join("empty-boundary.eml"), &empty_boundary).unwrap();
    let (out, recs) = decrypt_expecting(&dir, t.path(), 1);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r["status"], "failed", "{r}");
        let reason = r["reason"].as_str().unwrap();
        assert!(reason.contains("no MIME part leads to"), "{reason}");
    }
    let mac = recs.iter().find(|r| r["id"] == "mac.eml").unwrap();
    assert!(mac["reason"].as_str().unwrap().contains("bare CR"));
    // Inputs untouched; copies unchanged; verify does not call them safe.
    assert_eq!(std::fs::read(dir.join("mac.eml")).unwrap(), cr.as_bytes());
    assert_eq!(
        std::fs::read(out.join("mail/mac.eml")).unwrap(),
        cr.as_bytes()
    );
    let vreport = t.path().join("v.jsonl");
    verify(&dir, &out)
        .arg("--report")
        .arg(&vreport)
        .assert()
        .code(1);
    for r in records(&vreport) {
        assert_ne!(r["status"], "ok", "{r}");
    }
}

#[test]
fn a_bare_cr_mbox_is_refused_not_read_as_empty() {
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("mac.mbox");
    let mut data = b"From alice@example.org Mon Jun  3 12:50:27 1996\n".to_vec();
    data.extend(msg("aes128-cbc.der.eml"));
    let data: Vec<u8> = data
        .into_iter()
        .map(|b| if b == b'\n' { b'\r' } else { b })
        .collect();
    std::fs::write(&mbox, &data).unwrap();
    let out = t.path().join("out");
    let report = t.path().join("r.jsonl");
    let assert = decrypt(&mbox, &out).arg("--report").arg(&report).assert();
    let code = assert.get_output().status.code();
    assert!(code == Some(1) || code == Some(2), "{code:?}");
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(stderr.contains("bare CR"), "{stderr}");
    let summary = report_lines(&report).pop().unwrap();
    assert_eq!(summary["summary"]["mailboxes_failed"], 1, "{summary}");
    assert_eq!(std::fs::read(&mbox).unwrap(), data);
    verify(&mbox, &out).assert().failure();
}

#[test]
fn a_fatal_run_replaces_an_old_report() {
    let t = tempfile::tempdir().unwrap();
    let report = t.path().join("r.jsonl");
    std::fs::write(&report, "{\"summary\":{\"safe\":true}}\n").unwrap();
    unseal()
        .arg("decrypt")
        .arg("--key")
        .arg(t.path().join("no-such-key.p12"))
        .arg(fixtures().join("demo/demo.mbox"))
        .arg("--out")
        .arg(t.path().join("out"))
        .arg("--report")
        .arg(&report)
        .assert()
        .code(2);
    let lines = report_lines(&report);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let fatal = lines[0]["summary"]["fatal"].as_str().unwrap();
    assert!(fatal.contains("no usable key"), "{fatal}");
}

/// The fixture's envelope part (headers and base64) under an octet-stream `smime.p7m` label.
fn octet_stream_message() -> Vec<u8> {
    relabelled(
        "Content-Type: application/octet-stream; name=\"smime.p7m\"\nContent-Transfer-Encoding: base64\n",
    )
}

#[test]
fn envelopes_in_files_and_attachments_the_mailbox_does_not_label_are_not_lost() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("saved");
    std::fs::create_dir(&tree).unwrap();
    // A saved message under another name: opened as a message.
    std::fs::write(tree.join("saved.txt"), octet_stream_message()).unwrap();
    // A forwarded encrypted message attached as octet-stream (base64 of a message that holds
    // base64): opened inside its attachment.
    let fwd = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(msg("aes128-cbc.der.eml"));
        let lines: String = b64
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        format!(
            "From: a@b\nSubject: fwd\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n\
             --b\nContent-Type: text/plain\n\nsee attached\n--b\nContent-Type: application/octet-stream; \
             name=\"fwd.eml\"\nContent-Transfer-Encoding: base64\n\n{lines}--b--\n"
        )
    };
    std::fs::write(tree.join("fwd.eml"), &fwd).unwrap();
    let (out, recs) = decrypt_expecting(&tree, t.path(), 0);
    for r in recs {
        assert_eq!(r["status"], "decrypted", "{r}");
    }
    let want = expected_body();
    let saved = std::fs::read(out.join("saved/saved.txt")).unwrap();
    let saved: Vec<u8> = saved.into_iter().filter(|&b| b != b'\r').collect();
    assert!(saved.ends_with(&want));
    verify(&tree, &out).assert().code(0);

    // A Maildir with such a message left in tmp/ (not one of its messages): reported, never
    // passed over as if the Maildir held nothing encrypted.
    let md = t.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    std::fs::write(md.join("cur/1.a:2,S"), plain(1)).unwrap();
    std::fs::write(md.join("tmp/2.b"), octet_stream_message()).unwrap();
    let out2 = t.path().join("out2");
    let r = decrypt(&md, &out2).assert().code(1);
    let err = String::from_utf8_lossy(&r.get_output().stderr).to_string();
    assert!(err.contains("tmp/2.b: looks like S/MIME"), "{err}");
}

#[test]
fn envelopes_in_gzip_files_and_utf16_files_are_reported_not_passed_as_plain() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("saved");
    std::fs::create_dir(&tree).unwrap();
    let m = msg("aes128-cbc.der.eml");
    let gz = std::process::Command::new("gzip")
        .arg("-c")
        .arg(fixtures().join("messages/aes128-cbc.der.eml"))
        .output()
        .expect("gzip is part of every Debian install");
    std::fs::write(tree.join("mail.eml.gz"), &gz.stdout).unwrap();
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(
            String::from_utf8(m.clone())
                .unwrap()
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    std::fs::write(tree.join("u16.eml"), &utf16).unwrap();
    std::fs::write(tree.join("u16.txt"), &utf16).unwrap();
    let (out, recs) = decrypt_expecting(&tree, t.path(), 1);
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert_eq!(r["status"], "failed", "{r}");
    }
    let reason = |id: &str| {
        recs.iter()
            .find(|r| r["id"] == id)
            .and_then(|r| r["reason"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(reason("mail.eml.gz").contains("gzip archive"), "{recs:?}");
    assert!(reason("u16.eml").contains("UTF-16"), "{recs:?}");
    assert!(reason("u16.txt").contains("UTF-16"), "{recs:?}");
    // Copied unchanged, and not safe.
    assert_eq!(
        std::fs::read(out.join("saved/mail.eml.gz")).unwrap(),
        gz.stdout
    );
    verify(&tree, &out).assert().code(1);
}
