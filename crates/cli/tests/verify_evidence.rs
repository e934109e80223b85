//! `verify` says "safe" only on evidence: every decrypted copy must have its hash in the journal
//! of the run that wrote it, for this input. A copy no journal vouches for is `unchecked`, a
//! damaged journal or one written for another input is not evidence, and verify reads journals
//! without changing them.

use std::path::Path;

mod common;
use common::*;

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).to_string()
}

/// Runs a `verify` that must exit 1 with the NOT safe verdict; its output.
fn not_safe(cmd: &mut assert_cmd::Command) -> String {
    let text = stdout(&cmd.assert().code(1));
    assert!(text.contains("NOT safe"), "{text}");
    text
}

/// The `sha256_out` value (JSON, quoted) of item `id`'s line in `journal`.
fn hash_of(journal: &str, id: &str) -> String {
    let line = journal
        .lines()
        .find(|l| l.contains(&format!("\"id\":\"{id}\"")))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["sha256_out"].to_string()
}

fn journal_of(out: &Path, name: &str) -> std::path::PathBuf {
    out.join(".unseal-journal").join(format!("{name}.jsonl"))
}

#[test]
fn a_decrypted_copy_without_a_journal_entry_is_unchecked_not_safe() {
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("box.mbox");
    let n = write_mbox(&mbox, 1, &[]);
    let out = t.path().join("out");
    decrypt(&mbox, &out).assert().code(0);
    verify(&mbox, &out).assert().code(0);

    // One item's line gone from the journal: that copy is present but unproven.
    let jpath = journal_of(&out, "box.mbox");
    let journal = std::fs::read_to_string(&jpath).unwrap();
    let kept: String = journal
        .lines()
        .filter(|l| !l.contains(r#""id":"1""#))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(kept, journal);
    std::fs::write(&jpath, &kept).unwrap();
    let report = t.path().join("verify.jsonl");
    let text = not_safe(verify(&mbox, &out).arg("--report").arg(&report));
    assert!(text.contains("box.mbox#1: unchecked"), "{text}");
    let lines = report_lines(&report);
    assert_eq!(lines[1]["status"], "unchecked");
    assert_eq!(lines[0]["status"], "ok");
    assert_eq!(lines[n]["summary"]["counts"]["unchecked"], 1);
    assert_eq!(lines[n]["summary"]["safe"], false);

    // A line that records no hash proves nothing either.
    let no_hash = journal.replacen(
        &format!("\"sha256_out\":{}", hash_of(&journal, "0")),
        "\"sha256_out\":null",
        1,
    );
    assert_ne!(no_hash, journal);
    std::fs::write(&jpath, &no_hash).unwrap();
    let text = not_safe(verify(&mbox, &out).arg("--report").arg(&report));
    assert!(text.contains("box.mbox#0: unchecked"), "{text}");

    // No journal at all: every decrypted copy unchecked, the plain one still ok; and the
    // verdict does not claim that nothing was encrypted.
    std::fs::remove_dir_all(out.join(".unseal-journal")).unwrap();
    let text = not_safe(verify(&mbox, &out).arg("--report").arg(&report));
    assert!(!text.contains("no encrypted item found"), "{text}");
    let lines = report_lines(&report);
    let counts = &lines[n]["summary"]["counts"];
    assert_eq!(counts["unchecked"], ENCRYPTED.len() as u64, "{counts}");
    assert_eq!(counts["encrypted"], ENCRYPTED.len() as u64, "{counts}");
    assert_eq!(counts["ok"], 1, "{counts}");
}

#[test]
fn a_damaged_journal_is_not_evidence_and_verify_leaves_it_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("box.mbox");
    write_mbox(&mbox, 1, &[]);
    let out = t.path().join("out");
    decrypt(&mbox, &out).assert().code(0);
    let jpath = journal_of(&out, "box.mbox");
    let journal = std::fs::read_to_string(&jpath).unwrap();
    // Line 3 (the second item) loses its closing brace; the lines after it are intact.
    let damaged: String = journal
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 2 {
                format!("{}\n", &l[..l.len() - 1])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&jpath, &damaged).unwrap();
    let text = not_safe(&mut verify(&mbox, &out));
    assert!(text.contains("journal damaged at line 3"), "{text}");
    assert_eq!(std::fs::read_to_string(&jpath).unwrap(), damaged);

    // A torn last line (a run killed while writing it) is no damage: that item was never
    // journaled, so its copy is unchecked, and the others verify.
    let mut torn: String = journal.lines().take(3).map(|l| format!("{l}\n")).collect();
    torn.push_str(r#"{"t":"item","id":"2","sta"#);
    std::fs::write(&jpath, &torn).unwrap();
    let text = not_safe(&mut verify(&mbox, &out));
    assert!(!text.contains("journal damaged"), "{text}");
    assert!(text.contains("box.mbox#2: unchecked"), "{text}");
    assert!(!text.contains("box.mbox#0:"), "{text}");
    assert_eq!(std::fs::read_to_string(&jpath).unwrap(), torn);
}

#[test]
fn a_journal_written_for_another_input_of_the_same_name_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    write_mbox(&a.join("box.mbox"), 1, &[]);
    write_mbox(&b.join("box.mbox"), 1, &[plain(7)]);
    let out = t.path().join("out");
    decrypt(&a.join("box.mbox"), &out).assert().code(0);
    let text = not_safe(&mut verify(&b.join("box.mbox"), &out));
    assert!(text.contains("written for another input"), "{text}");
    verify(&a.join("box.mbox"), &out).assert().code(0);
}

#[test]
fn two_inputs_that_would_share_an_output_do_not_vouch_for_each_other() {
    let t = tempfile::tempdir().unwrap();
    let inputs = t.path().join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    let messages = fixtures().join("messages");
    // Both would be written as x.eml: the second is refused, and never decrypted.
    let p7m = inputs.join("x.p7m");
    let eml = inputs.join("x.eml");
    std::fs::copy(messages.join("aes256-cbc.der.p7m"), &p7m).unwrap();
    std::fs::copy(messages.join("aes128-cbc.der.eml"), &eml).unwrap();
    let out = t.path().join("out");
    unseal()
        .arg("decrypt")
        .args(key_args())
        .arg(&p7m)
        .arg(&eml)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1);
    let text = not_safe(
        unseal()
            .arg("verify")
            .arg(&p7m)
            .arg(&eml)
            .arg("--out")
            .arg(&out),
    );
    assert!(text.contains("x.eml"), "{text}");
}

#[test]
fn in_place_with_its_journal_elsewhere_verifies_with_journal_dir() {
    let t = tempfile::tempdir().unwrap();
    let mail = t.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let mbox = mail.join("box.mbox");
    write_mbox(&mbox, 1, &[]);
    let (backup, jr) = (t.path().join("bak"), t.path().join("jr"));
    unseal()
        .arg("decrypt")
        .args(key_args())
        .arg(&mbox)
        .arg("--in-place")
        .arg("--backup")
        .arg(&backup)
        .arg("--out")
        .arg(&jr)
        .assert()
        .code(0);
    let original = backup.join("box.mbox");
    // Without the journal the copies are unproven; with it, safe.
    let text = not_safe(&mut verify(&original, &mail));
    assert!(text.contains("unchecked"), "{text}");
    verify(&original, &mail)
        .arg("--journal")
        .arg(&jr)
        .assert()
        .code(0);
    // And a change to the replaced mailbox is caught.
    let text = std::fs::read_to_string(&mbox).unwrap();
    std::fs::write(&mbox, text.replacen("Subject:", "Subject: X", 1)).unwrap();
    let text = not_safe(verify(&original, &mail).arg("--journal").arg(&jr));
    assert!(text.contains("mismatch"), "{text}");
}

/// An mbox framed by Content-Length headers (mboxcl2, as Solaris mail tools wrote) has those
/// headers rewritten for the decrypted copies; the journal records the copy as it reads back,
/// so verify finds every one safe, and still catches a changed one.
#[test]
fn a_content_length_mbox_verifies_after_its_headers_are_rewritten() {
    use unseal_mailbox::mbox::{Eol, MboxVariant, encode_message};
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("cl2.mbox");
    let mut data = Vec::new();
    let messages = [
        msg("aes128-cbc.der.eml"),
        plain(0),
        msg("des-ede3-cbc.ber.eml"),
    ];
    for m in &messages {
        let from = b"From alice@example.org Mon Jun  3 12:50:27 1996";
        encode_message(from, Eol::Lf, MboxVariant::Mboxcl2, m, &mut data);
    }
    std::fs::write(&mbox, &data).unwrap();
    let out = t.path().join("out");
    let report = t.path().join("night.jsonl");
    decrypt(&mbox, &out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(0);
    let lines = report_lines(&report);
    assert_eq!(lines[0]["status"], "decrypted");
    assert_eq!(lines[2]["status"], "decrypted");
    let written = std::fs::read_to_string(out.join("cl2.mbox")).unwrap();
    assert_eq!(written.matches("Content-Length: ").count(), 3, "{written}");
    let v = verify(&mbox, &out).assert().code(0);
    assert!(stdout(&v).contains("safe to destroy"), "{}", stdout(&v));

    std::fs::write(
        out.join("cl2.mbox"),
        written.replacen("Subject:", "Subject: X", 1),
    )
    .unwrap();
    let text = not_safe(&mut verify(&mbox, &out));
    assert!(text.contains("cl2.mbox#0: mismatch"), "{text}");
}

/// A live Maildir: after the night's run the user reads mail, so the client moves messages
/// from new/ to cur/ and adds flags, renaming their files. verify still knows each message (by
/// the unique part of its name) and its journaled hash; the next decrypt gives the copies the
/// new names instead of writing second ones.
#[test]
fn maildir_messages_renamed_by_a_mail_client_stay_verified_and_are_not_duplicated() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("md");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    std::fs::write(md.join("new/100.host"), msg("aes128-cbc.der.eml")).unwrap();
    std::fs::write(md.join("cur/200.host:2,S"), msg("des-ede3-cbc.ber.eml")).unwrap();
    std::fs::write(md.join("cur/300.host:2,"), plain(3)).unwrap();
    let out = t.path().join("out");
    decrypt(&md, &out).assert().code(0);
    verify(&md, &out).assert().code(0);

    // Read, replied to, and read.
    std::fs::rename(md.join("new/100.host"), md.join("cur/100.host:2,S")).unwrap();
    std::fs::rename(md.join("cur/200.host:2,S"), md.join("cur/200.host:2,RS")).unwrap();
    std::fs::rename(md.join("cur/300.host:2,"), md.join("cur/300.host:2,S")).unwrap();
    let v = verify(&md, &out).assert().code(0);
    assert!(stdout(&v).contains("safe to destroy"), "{}", stdout(&v));

    let report = t.path().join("again.jsonl");
    decrypt(&md, &out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(0);
    let mut names: Vec<String> = ["cur", "new"]
        .iter()
        .flat_map(|s| std::fs::read_dir(out.join("md").join(s)).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["100.host:2,S", "200.host:2,RS", "300.host:2,S"]);
    let copy = std::fs::read_to_string(out.join("md/cur/100.host:2,S")).unwrap();
    assert!(!copy.contains("pkcs7-mime"), "{copy}");
    let summary = report_lines(&report).pop().unwrap();
    assert_eq!(summary["summary"]["counts"]["resumed"], 3, "{summary}");
    // The journal now names them as they are; verify is safe again, and nothing is doubled.
    verify(&md, &out).assert().code(0);

    // A message whose content changed under the same name is not taken for the old one.
    std::fs::write(md.join("cur/100.host:2,S"), msg("aes256-cbc.ber.eml")).unwrap();
    let text = not_safe(&mut verify(&md, &out));
    assert!(text.contains("md/cur/100.host:2,S"), "{text}");
}
