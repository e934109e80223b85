//! Single-file inputs never overwrite each other or an original: `a.p7m` and `a.eml` both
//! decrypt to `a.eml`, so one run refuses the second; `--out` pointing at the inputs' own
//! folder refuses to replace an existing `a.eml` there.

mod common;
use common::*;

#[test]
fn two_inputs_with_one_output_name_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let m = fixtures().join("messages");
    std::fs::copy(m.join("aes256-cbc.der.p7m"), t.path().join("a.p7m")).unwrap();
    std::fs::copy(m.join("des-cbc.der.eml"), t.path().join("a.eml")).unwrap();
    let out = t.path().join("out");
    let r = unseal()
        .arg("decrypt")
        .args(key_args())
        .arg(t.path().join("a.p7m"))
        .arg(t.path().join("a.eml"))
        .arg("--out")
        .arg(&out)
        .assert();
    assert_ne!(r.get_output().status.code(), Some(0));
    let err = String::from_utf8_lossy(&r.get_output().stderr).to_string();
    assert!(err.contains("another input also writes a.eml"), "{err}");
    // The first one was decrypted; its output is intact.
    let expected = std::fs::read(fixtures().join("expected/aes256-cbc.der.p7m.out")).unwrap();
    assert_eq!(std::fs::read(out.join("a.eml")).unwrap(), expected);
}

#[test]
fn an_original_in_the_output_folder_is_never_replaced() {
    let t = tempfile::tempdir().unwrap();
    let m = fixtures().join("messages");
    std::fs::copy(m.join("aes256-cbc.der.p7m"), t.path().join("a.p7m")).unwrap();
    let original = b"From: me\n\nan original, not ours\n";
    std::fs::write(t.path().join("a.eml"), original).unwrap();
    let r = unseal()
        .arg("decrypt")
        .args(key_args())
        .arg(t.path().join("a.p7m"))
        .arg("--out")
        .arg(t.path())
        .assert();
    assert_ne!(r.get_output().status.code(), Some(0));
    let err = String::from_utf8_lossy(&r.get_output().stderr).to_string();
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read(t.path().join("a.eml")).unwrap(), original);
}

#[test]
fn a_p7m_that_fails_is_reported_under_the_name_it_was_copied_to() {
    let t = tempfile::tempdir().unwrap();
    let der = std::fs::read(fixtures().join("messages/aes256-cbc.der.p7m")).unwrap();
    let input = t.path().join("cut.p7m");
    std::fs::write(&input, &der[..300]).unwrap();
    let out = t.path().join("out");
    let report = t.path().join("r.jsonl");
    decrypt(&input, &out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1);
    assert_eq!(std::fs::read(out.join("cut.p7m")).unwrap(), &der[..300]);
    assert!(!out.join("cut.eml").exists());
    let summary = report_lines(&report).pop().unwrap();
    let written = summary["summary"]["mailboxes"][0]["output"]
        .as_str()
        .unwrap();
    assert!(written.ends_with("cut.p7m"), "{written}");
    // verify finds the copy and says what it is: still encrypted, not missing.
    let r = verify(&input, &out).assert().code(1);
    let err = String::from_utf8_lossy(&r.get_output().stderr).to_string();
    assert!(err.contains("1 still encrypted"), "{err}");
    assert!(err.contains("0 missing"), "{err}");
}

#[test]
fn two_envelopes_back_to_back_are_refused_not_half_decrypted() {
    let t = tempfile::tempdir().unwrap();
    let der = std::fs::read(fixtures().join("messages/aes256-cbc.der.p7m")).unwrap();
    let input = t.path().join("both.p7m");
    std::fs::write(&input, [der.clone(), der].concat()).unwrap();
    let out = t.path().join("out");
    let r = decrypt(&input, &out).assert().code(1);
    let err = String::from_utf8_lossy(&r.get_output().stderr).to_string();
    assert!(
        err.contains("a second encrypted CMS envelope follows"),
        "{err}"
    );
    let r = unseal()
        .arg("scan")
        .args(key_args())
        .arg(&input)
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&r.get_output().stderr).to_string();
    assert!(err.contains("a second encrypted CMS envelope"), "{err}");
    verify(&input, &out).assert().code(1);
}
