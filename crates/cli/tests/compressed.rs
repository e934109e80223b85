//! Mail that unseal cannot read because it is compressed (Dovecot's zlib and mail_compress
//! plugins store Maildir files with gzip, bzip2, xz or zstd) never passes as plain: a compressed
//! message fails with the reason, unless it is gzip that was looked into and holds no envelope;
//! a compressed file outside the Maildir's messages is an error item; `verify` is not safe.
//! The files are made with the system's gzip, bzip2, xz and zstd (scripts/install-deps.sh
//! installs them); a tool that is missing skips its case with the reason printed.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::*;

/// `data` compressed by `tool -c`; `None` (and a printed reason) if the tool is not there.
fn compressed(tool: &str, data: &[u8]) -> Option<Vec<u8>> {
    let child = Command::new(tool)
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("skipping {tool}: not installed");
        return None;
    };
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    out.status.success().then_some(out.stdout)
}

fn maildir(root: &Path) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
}

#[test]
fn compressed_maildir_messages_fail_unless_gzip_shows_nothing_encrypted() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("md");
    maildir(&md);
    let secret = msg("aes128-cbc.der.eml");
    let mut expected_failed = Vec::new();
    for (i, tool) in ["gzip", "bzip2", "xz", "zstd", "lz4"].iter().enumerate() {
        let Some(z) = compressed(tool, &secret) else {
            continue;
        };
        let name = format!("{i}.host:2,SZ");
        std::fs::write(md.join("cur").join(&name), z).unwrap();
        expected_failed.push((format!("md/cur/{name}"), *tool));
    }
    // A plain message in gzip is looked into and passes; in xz it cannot be.
    let plain_gz = compressed("gzip", &plain(1));
    if let Some(z) = &plain_gz {
        std::fs::write(md.join("cur/10.host:2,S"), z).unwrap();
    }
    if let Some(z) = compressed("xz", &plain(2)) {
        std::fs::write(md.join("cur/11.host:2,S"), z).unwrap();
        expected_failed.push(("md/cur/11.host:2,S".into(), "xz"));
    }
    std::fs::write(md.join("cur/20.host:2,S"), msg("des-ede3-cbc.ber.eml")).unwrap();
    if expected_failed.is_empty() {
        return;
    }
    let out = t.path().join("out");
    let report = t.path().join("r.jsonl");
    decrypt(&md, &out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1);
    let lines = report_lines(&report);
    for (item, tool) in &expected_failed {
        let rec = lines
            .iter()
            .find(|l| l["item"] == item.as_str())
            .unwrap_or_else(|| panic!("{item} not reported"));
        assert_eq!(rec["status"], "failed", "{rec}");
        let reason = rec["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("a {tool}-compressed message")),
            "{reason}"
        );
    }
    let by_item = |item: &str| lines.iter().find(|l| l["item"] == item).cloned();
    assert_eq!(
        by_item("md/cur/20.host:2,S").unwrap()["status"],
        "decrypted"
    );
    if plain_gz.is_some() {
        assert_eq!(by_item("md/cur/10.host:2,S").unwrap()["status"], "plain");
    }
    // Copied unchanged, and verify says they are still encrypted.
    let v = verify(&md, &out).assert().code(1);
    let err = String::from_utf8_lossy(&v.get_output().stderr).to_string();
    assert!(
        err.contains(&format!("{} still encrypted", expected_failed.len())),
        "{err}"
    );
}

#[test]
fn compressed_files_beside_the_maildirs_messages_are_not_passed_over() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("md");
    maildir(&md);
    std::fs::write(md.join("cur/1.host:2,S"), msg("aes128-cbc.der.eml")).unwrap();
    let secret = msg("aes256-cbc.ber.eml");
    let (Some(gz), Some(bz)) = (compressed("gzip", &secret), compressed("bzip2", &secret)) else {
        return;
    };
    // Not a .Folder: its files are no messages of this Maildir.
    std::fs::create_dir_all(md.join("archive/cur")).unwrap();
    std::fs::write(md.join("archive/cur/4.h.gz"), &gz).unwrap();
    std::fs::write(md.join("archive/cur/5.h.bz2"), &bz).unwrap();
    // Beside cur/, new/ and tmp/: copied as a stray file, but not as plain.
    std::fs::write(md.join("old.bz2"), &bz).unwrap();
    let out = t.path().join("out");
    let r = decrypt(&md, &out).assert().code(1);
    let err = String::from_utf8_lossy(&r.get_output().stderr).to_string();
    assert!(err.contains("archive/cur/4.h.gz"), "{err}");
    assert!(err.contains("archive/cur/5.h.bz2"), "{err}");
    assert!(
        err.contains("bzip2-compressed, outside the Maildir's messages"),
        "{err}"
    );
    assert!(err.contains("old.bz2"), "{err}");
    let v = verify(&md, &out).assert().code(1);
    let stdout = String::from_utf8_lossy(&v.get_output().stdout).to_string();
    for name in ["archive/cur/4.h.gz", "archive/cur/5.h.bz2", "old.bz2"] {
        assert!(stdout.contains(name), "{name}: {stdout}");
    }
    assert!(stdout.contains("NOT safe"), "{stdout}");
}

#[test]
fn compressed_files_in_a_folder_of_eml_files_are_not_plain() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("saved");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a.eml"), msg("aes128-cbc.der.eml")).unwrap();
    let secret = msg("aes256-cbc.ber.eml");
    let (Some(gz), Some(xz)) = (compressed("gzip", &secret), compressed("xz", &secret)) else {
        return;
    };
    // Named as a message but gzip inside; and an archive of one.
    std::fs::write(tree.join("c.eml"), &gz).unwrap();
    std::fs::write(tree.join("d.eml.xz"), &xz).unwrap();
    let out = t.path().join("out");
    let report = t.path().join("r.jsonl");
    decrypt(&tree, &out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1);
    let lines = report_lines(&report);
    let status = |item: &str| {
        let l = lines.iter().find(|l| l["item"] == item).unwrap();
        (
            l["status"].clone(),
            l["reason"].as_str().unwrap_or("").to_string(),
        )
    };
    assert_eq!(status("saved/a.eml").0, "decrypted");
    let (s, why) = status("saved/c.eml");
    assert_eq!(s, "failed", "{why}");
    assert!(
        why.contains("gzip-compressed message holding an encrypted envelope"),
        "{why}"
    );
    let (s, why) = status("saved/d.eml.xz");
    assert_eq!(s, "failed", "{why}");
    assert!(
        why.contains("xz-compressed file, which unseal cannot look into"),
        "{why}"
    );
    verify(&tree, &out).assert().code(1);
}
