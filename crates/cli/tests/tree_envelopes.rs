//! An encrypted blob inside a folder of .eml files, under any name (a raw DER attachment saved as
//! .bin, a PEM .p7m), is decrypted in place rather than copied: otherwise it would be lost with
//! the key. Ordinary files are still copied byte for byte.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

#[test]
fn envelopes_under_any_name_in_a_tree_are_decrypted() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("saved");
    std::fs::create_dir_all(tree.join("attachments")).unwrap();
    let m = fixtures().join("messages");
    std::fs::copy(
        m.join("aes256-cbc.der.p7m"),
        tree.join("attachments/blob.bin"),
    )
    .unwrap();
    std::fs::copy(
        m.join("aes128-cbc.pem.p7m"),
        tree.join("attachments/report.p7m"),
    )
    .unwrap();
    std::fs::copy(m.join("des-cbc.der.eml"), tree.join("mail.eml")).unwrap();
    std::fs::write(tree.join("notes.txt"), b"not mail\n").unwrap();
    // An envelope quoted inside prose: the file is copied as it is, not replaced by a part of
    // it, and reported: the quoted envelope stays encrypted.
    let mut quoted = b"Dear Bob, here is what I got:\n".to_vec();
    quoted.extend(std::fs::read(m.join("aes128-cbc.pem.p7m")).unwrap());
    quoted.extend_from_slice(b"\nregards\n");
    std::fs::write(tree.join("quoted.txt"), &quoted).unwrap();
    let out = t.path().join("out");
    let keys = fixtures().join("keys");
    let run = |cmd: &str| {
        let mut c = Command::cargo_bin("unseal").unwrap();
        c.env_remove("UNSEAL_PASSWORD").arg(cmd);
        if cmd != "verify" {
            c.arg("--key").arg(keys.join("rsa2048.p12"));
            c.arg("--password-file").arg(keys.join("password.txt"));
        }
        c.arg(&tree).arg("--out").arg(&out);
        c
    };
    let r = run("decrypt").assert().code(1);
    let err = String::from_utf8_lossy(&r.get_output().stderr).to_string();
    assert!(
        err.contains("saved/quoted.txt: failed: not a message of this mailbox, but byte"),
        "{err}"
    );
    assert_eq!(err.matches(": failed:").count(), 1, "{err}");
    let expected = |name: &str| std::fs::read(fixtures().join("expected").join(name)).unwrap();
    assert_eq!(
        std::fs::read(out.join("saved/attachments/blob.bin")).unwrap(),
        expected("aes256-cbc.der.p7m.out")
    );
    assert_eq!(
        std::fs::read(out.join("saved/attachments/report.p7m")).unwrap(),
        expected("aes128-cbc.pem.p7m.out")
    );
    assert_eq!(
        std::fs::read(out.join("saved/notes.txt")).unwrap(),
        b"not mail\n"
    );
    assert_eq!(std::fs::read(out.join("saved/quoted.txt")).unwrap(), quoted);
    let r = run("verify").assert().code(1);
    let o = r.get_output();
    let err = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("saved/quoted.txt"), "{err}");
    assert!(err.contains("1 still encrypted"), "{err}");
}
