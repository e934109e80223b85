//! The whole workflow through the binary, on the fixtures: keys, scan, decrypt, kill and resume,
//! verify (and its failures), in-place with backup, exit codes.

use std::path::PathBuf;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

#[test]
fn keys_lists_the_key_and_names_a_bad_file() {
    let out = unseal().arg("keys").args(key_args()).assert().code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(stdout.contains("CN=unseal test rsa2048"), "{stdout}");
    assert!(stdout.contains("serial:"), "{stdout}");
    assert!(stdout.contains("RSA-2048"), "{stdout}");

    let t = tempfile::tempdir().unwrap();
    let pw = t.path().join("pw.txt");
    std::fs::write(&pw, "Xyzzy-not-it\n").unwrap();
    let out = unseal()
        .arg("keys")
        .arg("--key")
        .arg(keys().join("rsa2048.p12"))
        .arg("--password-file")
        .arg(&pw)
        .assert()
        .code(1);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.get_output().stdout),
        String::from_utf8_lossy(&out.get_output().stderr)
    );
    assert!(all.contains("rsa2048.p12"), "{all}");
    assert!(all.contains("wrong password"), "{all}");
    assert!(!all.contains("Xyzzy"), "password printed: {all}");

    // A certificate given as a key: named, with the reason.
    let out = unseal()
        .arg("keys")
        .arg("--key")
        .arg(keys().join("other.cert.pem"))
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("other.cert.pem") && err.contains("no private key"),
        "{err}"
    );
}

#[test]
fn scan_reports_a_missing_key_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("box.mbox");
    write_mbox(&mbox, 1, &[msg("other-only.eml")]);
    let report = t.path().join("scan.jsonl");
    let out = unseal()
        .arg("scan")
        .args(key_args())
        .arg(&mbox)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("missing key:") && err.contains("CN=unseal test other"),
        "{err}"
    );
    assert!(err.contains("1 item in 1 mailbox"), "{err}");
    let lines = report_lines(&report);
    assert_eq!(lines.len(), ENCRYPTED.len() + 2 + 1);
    assert_eq!(lines[ENCRYPTED.len() + 1]["status"], "no_key");
    assert_eq!(lines[0]["status"], "key_found");
    assert!(lines.last().unwrap()["summary"].is_object());
    // Nothing but the report.
    let mut names: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["box.mbox", "scan.jsonl"]);

    // --trial proves the keys; without the foreign message everything has a key: exit 0.
    write_mbox(&mbox, 1, &[]);
    unseal()
        .arg("scan")
        .args(key_args())
        .arg(&mbox)
        .arg("--trial")
        .arg("--report")
        .arg(&report)
        .assert()
        .code(0);
    let lines = report_lines(&report);
    assert_eq!(lines[0]["status"], "decrypted");
    assert_eq!(lines[0]["cipher"], "AES-128-CBC");
}

#[test]
fn decrypt_mbox_then_verify_then_detect_a_change() {
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("demo.mbox");
    let n = write_mbox(&mbox, 2, &[]);
    let out = t.path().join("out");
    let report = t.path().join("night.jsonl");
    decrypt(&mbox, &out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(0);
    let dec = out.join("demo.mbox");
    assert_eq!(mbox_messages(&dec), n);
    assert!(count_enveloped(&mbox) >= 2 * ENCRYPTED.len());
    assert_eq!(count_enveloped(&dec), 0, "an envelope is left");
    let lines = report_lines(&report);
    assert_eq!(lines.len(), n + 1);
    assert_eq!(lines[0]["item"], "demo.mbox#0");
    assert_eq!(lines[0]["status"], "decrypted");
    assert_eq!(lines[0]["key_transport"], "RSA PKCS#1 v1.5");
    assert_eq!(lines[ENCRYPTED.len()]["status"], "plain");
    assert_eq!(
        lines[ENCRYPTED.len()]["sha256_in"],
        lines[ENCRYPTED.len()]["sha256_out"]
    );
    assert!(out.join(".unseal-journal/demo.mbox.jsonl").exists());

    let v = verify(&mbox, &out).assert().code(0);
    let stdout = String::from_utf8_lossy(&v.get_output().stdout).to_string();
    assert!(
        stdout.contains("safe to destroy the keys used for:"),
        "{stdout}"
    );
    assert!(stdout.contains("CN=unseal test rsa2048"), "{stdout}");

    // Re-run: the journal says complete, nothing is redone.
    decrypt(&mbox, &out).assert().code(0);
    assert_eq!(mbox_messages(&dec), n);

    // Alter one decrypted message: verify fails and names it.
    let text = std::fs::read_to_string(&dec).unwrap();
    let altered = text.replacen("plain body 1", "plain body X", 1);
    assert_ne!(text, altered);
    std::fs::write(&dec, altered).unwrap();
    let v = verify(&mbox, &out).assert().code(1);
    let stdout = String::from_utf8_lossy(&v.get_output().stdout).to_string();
    let idx = 2 * ENCRYPTED.len() + 1;
    assert!(stdout.contains(&format!("demo.mbox#{idx}")), "{stdout}");
    assert!(stdout.contains("NOT safe"), "{stdout}");

    // Output deleted after a complete run: the next run makes it again.
    std::fs::remove_file(&dec).unwrap();
    decrypt(&mbox, &out).assert().code(0);
    verify(&mbox, &out).assert().code(0);
}

#[test]
fn several_mailboxes_in_one_run_are_all_decrypted_whatever_the_pool_size() {
    // As many mailboxes as pool threads, and more: each mailbox's loop waits for its own
    // threads, which must not take the pool threads its batches need (two mailboxes on two
    // threads once hung here). A hang fails the test at the timeout.
    let t = tempfile::tempdir().unwrap();
    let boxes: Vec<PathBuf> = (0..3)
        .map(|i| t.path().join(format!("user{i}.mbox")))
        .collect();
    let counts: Vec<usize> = boxes.iter().map(|b| write_mbox(b, 3, &[])).collect();
    for jobs in ["1", "2", "3"] {
        let out = t.path().join(format!("out-{jobs}"));
        let report = t.path().join(format!("r-{jobs}.jsonl"));
        let mut c = unseal();
        c.arg("decrypt")
            .args(key_args())
            .args(&boxes)
            .arg("--out")
            .arg(&out)
            .arg("--report")
            .arg(&report)
            .arg("--jobs")
            .arg(jobs)
            .timeout(Duration::from_secs(120));
        c.assert().code(0);
        for (b, n) in boxes.iter().zip(&counts) {
            let name = b.file_name().unwrap();
            assert_eq!(
                mbox_messages(&out.join(name)),
                *n,
                "--jobs {jobs}: {name:?}"
            );
            assert_eq!(
                count_enveloped(&out.join(name)),
                0,
                "--jobs {jobs}: {name:?}"
            );
        }
        let lines = report_lines(&report);
        let items = lines.iter().filter(|l| l.get("item").is_some()).count();
        assert_eq!(items, counts.iter().sum::<usize>(), "--jobs {jobs}");
        let mut v = unseal();
        v.arg("verify").args(&boxes).arg("--out").arg(&out);
        v.timeout(Duration::from_secs(120)).assert().code(0);
    }
    // The same mailbox named twice (a glob and a path): decrypted once, not refused.
    let twice = t.path().join("./user0.mbox");
    let out = t.path().join("out-twice");
    let a = decrypt(&boxes[0], &out)
        .arg(&twice)
        .timeout(Duration::from_secs(120))
        .assert()
        .code(0);
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(err.contains("given more than once"), "{err}");
    assert_eq!(mbox_messages(&out.join("user0.mbox")), counts[0]);
}

#[test]
fn a_long_mailbox_keeps_its_order_through_growing_and_shrinking_batches() {
    // 61 rounds x 6 = 366 messages: batches grow 16, 32, ... 256, and once the source is
    // exhausted the rest is taken in halves. Every message must come out once, in input order.
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("long.mbox");
    let n = write_mbox(&mbox, 61, &[]);
    let out = t.path().join("out");
    let report = t.path().join("r.jsonl");
    decrypt(&mbox, &out)
        .arg("--report")
        .arg(&report)
        .timeout(Duration::from_secs(300))
        .assert()
        .code(0);
    let text = std::fs::read_to_string(out.join("long.mbox")).unwrap();
    let subjects: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Subject: plain "))
        .collect();
    let want: Vec<String> = (0..61).map(|r| format!("Subject: plain {r}")).collect();
    assert_eq!(subjects, want, "the plain messages, in order");
    assert_eq!(mbox_messages(&out.join("long.mbox")), n);
    assert_eq!(count_enveloped(&out.join("long.mbox")), 0);
    let ids: Vec<u64> = report_lines(&report)
        .iter()
        .filter_map(|l| l.get("id")?.as_str()?.parse().ok())
        .collect();
    assert_eq!(ids.len(), n, "one record per message");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "records in input order"
    );
    verify(&mbox, &out).assert().code(0);
}

#[test]
fn mailboxes_inside_a_folder_fail_loudly_and_verify_is_not_safe() {
    // A folder of exports holding an mbox and a Maildir beside an .eml: copying those two as
    // stray files would carry their encrypted messages over unread, and verify would then
    // call the folder safe to destroy the keys for.
    let t = tempfile::tempdir().unwrap();
    let exports = t.path().join("exports");
    std::fs::create_dir_all(exports.join("bob/cur")).unwrap();
    std::fs::create_dir_all(exports.join("bob/new")).unwrap();
    std::fs::write(exports.join("carol.eml"), msg("aes128-cbc.der.eml")).unwrap();
    write_mbox(&exports.join("alice.mbox"), 1, &[]);
    std::fs::write(
        exports.join("bob/cur/1.host:2,S"),
        msg("aes256-cbc.ber.eml"),
    )
    .unwrap();
    let out = t.path().join("out");
    let report = t.path().join("r.jsonl");

    let scan = unseal()
        .arg("scan")
        .args(key_args())
        .arg(&exports)
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&scan.get_output().stderr).to_string();
    assert!(
        err.contains("alice.mbox: an mbox mailbox inside the folder"),
        "{err}"
    );

    decrypt(&exports, &out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1);
    let lines = report_lines(&report);
    let by_item = |item: &str| {
        lines
            .iter()
            .find(|l| l["item"] == item)
            .unwrap_or_else(|| panic!("no line for {item}: {lines:?}"))
            .clone()
    };
    assert_eq!(by_item("exports/carol.eml")["status"], "decrypted");
    for (item, what) in [
        ("exports/alice.mbox", "an mbox mailbox"),
        ("exports/bob", "a Maildir"),
    ] {
        let l = by_item(item);
        assert_eq!(l["status"], "failed", "{l}");
        let why = l["reason"].as_str().unwrap();
        assert!(
            why.contains(what) && why.contains("as an input of its own"),
            "{why}"
        );
    }
    assert!(
        !out.join("exports/alice.mbox").exists(),
        "nested mbox copied unread"
    );
    assert!(
        !out.join("exports/bob").exists(),
        "nested Maildir copied unread"
    );

    let v = verify(&exports, &out).assert().code(1);
    let stdout = String::from_utf8_lossy(&v.get_output().stdout).to_string();
    assert!(stdout.contains("NOT safe"), "{stdout}");
    assert!(
        stdout.contains("exports/alice.mbox") && stdout.contains("exports/bob"),
        "{stdout}"
    );

    // As inputs of their own, both decrypt and verify.
    let nested = [exports.join("alice.mbox"), exports.join("bob")];
    let out2 = t.path().join("out2");
    let mut c = unseal();
    c.arg("decrypt")
        .args(key_args())
        .args(&nested)
        .arg("--out")
        .arg(&out2);
    c.assert().code(0);
    let mut v = unseal();
    v.arg("verify").args(&nested).arg("--out").arg(&out2);
    v.assert().code(0);
}

#[test]
fn mail_that_arrives_after_a_complete_run_is_decrypted_by_the_next() {
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("box.mbox");
    let n = write_mbox(&mbox, 1, &[]);
    let md = t.path().join("md");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    std::fs::write(md.join("cur/1.host:2,S"), msg("aes128-cbc.der.eml")).unwrap();
    let out = t.path().join("out");
    let run = |report: &std::path::Path| {
        let mut c = unseal();
        c.arg("decrypt")
            .args(key_args())
            .arg(&mbox)
            .arg(&md)
            .arg("--out")
            .arg(&out)
            .arg("--report")
            .arg(report)
            .timeout(Duration::from_secs(120));
        c.assert().code(0);
    };
    run(&t.path().join("r1.jsonl"));
    // New mail: one more message at the end of the mbox, one in the Maildir's new/.
    let mut more = std::fs::read(&mbox).unwrap();
    more.extend_from_slice(b"From alice@example.org Mon Jun  3 12:50:27 1996\n");
    more.extend_from_slice(&msg("aes256-cbc.ber.eml"));
    more.extend_from_slice(b"\n");
    std::fs::write(&mbox, more).unwrap();
    std::fs::write(md.join("new/2.host"), msg("aes256-gcm.der.eml")).unwrap();
    // And the partial copy a killed run would leave: the next run removes it.
    let stale = out.join("md/cur/.unseal-tmp-999999999-7");
    std::fs::write(&stale, b"partial plaintext").unwrap();
    let r2 = t.path().join("r2.jsonl");
    run(&r2);
    assert!(
        !stale.exists(),
        "a killed run's partial file is still there"
    );
    assert_eq!(mbox_messages(&out.join("box.mbox")), n + 1);
    assert_eq!(count_enveloped(&out.join("box.mbox")), 0);
    let new_md = std::fs::read(out.join("md/new/2.host")).expect("the new Maildir message");
    assert!(!String::from_utf8_lossy(&new_md).contains("enveloped-data"));
    let lines = report_lines(&r2);
    let md_new = lines.iter().find(|l| l["item"] == "md/new/2.host").unwrap();
    assert_eq!(md_new["status"], "decrypted");
    let mut v = unseal();
    v.arg("verify").arg(&mbox).arg(&md).arg("--out").arg(&out);
    v.assert().code(0);
}

#[test]
fn smime_files_not_named_eml_are_decrypted_or_reported() {
    let t = tempfile::tempdir().unwrap();
    // An MH-style folder: messages named by number.
    let mh = t.path().join("mh");
    std::fs::create_dir_all(mh.join("inbox")).unwrap();
    std::fs::write(mh.join("inbox/1"), msg("aes128-cbc.der.eml")).unwrap();
    std::fs::write(mh.join("inbox/2"), plain(2)).unwrap();
    // A Maildir with an encrypted message kept outside cur/ and new/.
    let md = t.path().join("md");
    for sub in ["cur", "new", "tmp", "archive"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    std::fs::write(md.join("cur/1.host:2,S"), msg("aes256-cbc.ber.eml")).unwrap();
    std::fs::write(md.join("archive/old.eml"), msg("aes128-cbc.der.eml")).unwrap();
    let out = t.path().join("out");
    let report = t.path().join("r.jsonl");
    let mut c = unseal();
    c.arg("decrypt")
        .args(key_args())
        .arg(&mh)
        .arg(&md)
        .arg("--out")
        .arg(&out)
        .arg("--report")
        .arg(&report);
    c.assert().code(1);
    let lines = report_lines(&report);
    let status = |item: &str| {
        lines
            .iter()
            .find(|l| l["item"] == item)
            .map(|l| l["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("mh/inbox/1").as_deref(), Some("decrypted"));
    // Without a mention of S/MIME a file not named .eml is still a stray file, copied.
    assert_eq!(status("mh/inbox/2").as_deref(), Some("skipped"));
    assert_eq!(status("md/cur/1.host:2,S").as_deref(), Some("decrypted"));
    assert_eq!(status("md/archive/old.eml").as_deref(), Some("failed"));
    assert_eq!(count_enveloped(&out.join("mh/inbox/1")), 0);
    verify(&mh, &out).assert().code(0);
    let v = verify(&md, &out).assert().code(1);
    let stdout = String::from_utf8_lossy(&v.get_output().stdout).to_string();
    assert!(
        stdout.contains("archive/old.eml") && stdout.contains("NOT safe"),
        "{stdout}"
    );
}

#[test]
fn an_output_inside_any_input_stops_the_run_before_it_writes() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a.eml"), msg("aes128-cbc.der.eml")).unwrap();
    let mbox = t.path().join("b.mbox");
    write_mbox(&mbox, 1, &[]);
    let before = std::fs::read_dir(&tree).unwrap().count();
    for out in [tree.join("dec"), tree.join("./x/../dec2")] {
        let mut c = unseal();
        c.arg("decrypt")
            .args(key_args())
            .arg(&mbox)
            .arg(&tree)
            .arg("--out")
            .arg(&out);
        let a = c.assert().code(2);
        let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
        assert!(err.contains("is inside the input"), "{err}");
        assert_eq!(
            std::fs::read_dir(&tree).unwrap().count(),
            before,
            "wrote into the input"
        );
    }
    let mut c = unseal();
    c.arg("decrypt")
        .args(key_args())
        .arg(&tree)
        .arg("--in-place")
        .arg("--backup")
        .arg(tree.join("bak"));
    c.assert().code(2);
    assert_eq!(
        std::fs::read_dir(&tree).unwrap().count(),
        before,
        "wrote into the input"
    );
}

#[test]
fn no_key_item_is_copied_unchanged_and_exit_1() {
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("box.mbox");
    let n = write_mbox(&mbox, 1, &[msg("other-only.eml")]);
    let out = t.path().join("out");
    let report = t.path().join("r.jsonl");
    let a = decrypt(&mbox, &out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(
        err.contains(&format!("box.mbox#{}", n - 1)) && err.contains("no_key"),
        "{err}"
    );
    assert_eq!(mbox_messages(&out.join("box.mbox")), n);
    let lines = report_lines(&report);
    let last = &lines[n - 1];
    assert_eq!(last["status"], "no_key");
    assert_eq!(last["sha256_in"], last["sha256_out"]);
    // verify: not safe, the item is still encrypted.
    let v = verify(&mbox, &out).assert().code(1);
    let stdout = String::from_utf8_lossy(&v.get_output().stdout).to_string();
    assert!(stdout.contains("undecrypted"), "{stdout}");
}

#[test]
fn tree_output_deleted_file_is_named_by_verify() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("mail");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    for (i, e) in ENCRYPTED.iter().enumerate() {
        std::fs::write(tree.join("sub").join(format!("{i}.eml")), msg(e)).unwrap();
    }
    std::fs::write(tree.join("plain.eml"), plain(1)).unwrap();
    std::fs::write(tree.join("notes.txt"), b"not mail").unwrap();
    let out = t.path().join("out");
    decrypt(&tree, &out).assert().code(0);
    assert_eq!(
        std::fs::read(out.join("mail/notes.txt")).unwrap(),
        b"not mail"
    );
    assert_eq!(std::fs::read(out.join("mail/plain.eml")).unwrap(), plain(1));
    assert_eq!(count_enveloped(&out.join("mail/sub/0.eml")), 0);
    verify(&tree, &out).assert().code(0);
    std::fs::remove_file(out.join("mail/sub/2.eml")).unwrap();
    let v = verify(&tree, &out).assert().code(1);
    let stdout = String::from_utf8_lossy(&v.get_output().stdout).to_string();
    assert!(
        stdout.contains("mail/sub/2.eml") && stdout.contains("missing"),
        "{stdout}"
    );
    // Re-running decrypt restores exactly that file.
    decrypt(&tree, &out).assert().code(0);
}

#[test]
fn killed_run_resumes_without_duplicates() {
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("big.mbox");
    let n = write_mbox(&mbox, 200, &[]);
    let out = t.path().join("out");
    let journal = out.join(".unseal-journal/big.mbox.jsonl");
    let bin = assert_cmd::cargo::cargo_bin("unseal");
    let mut child = StdCommand::new(&bin)
        .arg("decrypt")
        .args(key_args())
        .arg(&mbox)
        .arg("--out")
        .arg(&out)
        .arg("--jobs")
        .arg("1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut killed = false;
    loop {
        let lines = std::fs::read_to_string(&journal)
            .map(|s| s.lines().filter(|l| l.contains("\"t\":\"item\"")).count())
            .unwrap_or(0);
        if lines > 0 {
            child.kill().unwrap(); // SIGKILL
            killed = true;
            break;
        }
        if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.wait();
    assert!(killed, "the run ended before it could be killed");
    let done = std::fs::read_to_string(&journal).unwrap().lines().count();
    assert!(
        !out.join("big.mbox").exists(),
        "partial output under its final name"
    );
    assert!(done < n, "killed too late to test resuming ({done} of {n})");

    let report = t.path().join("r.jsonl");
    decrypt(&mbox, &out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(0);
    assert_eq!(
        mbox_messages(&out.join("big.mbox")),
        n,
        "an item is duplicated or lost"
    );
    assert_eq!(count_enveloped(&out.join("big.mbox")), 0);
    let lines = report_lines(&report);
    assert_eq!(lines.len(), n + 1);
    for (i, l) in lines[..n].iter().enumerate() {
        assert_eq!(l["item"], format!("big.mbox#{i}"));
    }
    assert!(lines[n]["summary"]["counts"]["resumed"].as_u64().unwrap() > 0);
    verify(&mbox, &out).assert().code(0);
}

#[test]
fn in_place_with_backup_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("mail");
    std::fs::create_dir_all(&dir).unwrap();
    let mbox = dir.join("box.mbox");
    let n = write_mbox(&mbox, 1, &[]);
    let original = std::fs::read(&mbox).unwrap();
    let backup = t.path().join("backup");
    unseal()
        .arg("decrypt")
        .args(key_args())
        .arg(&mbox)
        .arg("--in-place")
        .arg("--backup")
        .arg(&backup)
        .assert()
        .code(0);
    assert_eq!(std::fs::read(backup.join("box.mbox")).unwrap(), original);
    assert_eq!(mbox_messages(&mbox), n);
    assert_eq!(count_enveloped(&mbox), 0);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    // The backup is the input, the replaced file the output.
    verify(&backup.join("box.mbox"), &dir).assert().code(0);
    // A second run changes nothing and never overwrites the backup.
    unseal()
        .arg("decrypt")
        .args(key_args())
        .arg(&mbox)
        .arg("--in-place")
        .arg("--backup")
        .arg(&backup)
        .assert()
        .code(0);
    assert_eq!(std::fs::read(backup.join("box.mbox")).unwrap(), original);
}

#[test]
fn in_place_maildir_backup_keeps_empty_folders_and_mtimes_and_verifies() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("live/md");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    let file = md.join("cur/1.host:2,S");
    std::fs::write(&file, msg("aes128-cbc.der.eml")).unwrap();
    let then = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(then)
        .unwrap();
    let backup = t.path().join("bak");
    let mut c = unseal();
    c.arg("decrypt")
        .args(key_args())
        .arg(&md)
        .arg("--in-place")
        .arg("--backup")
        .arg(&backup);
    c.assert().code(0);
    for sub in ["cur", "new", "tmp"] {
        assert!(backup.join("md").join(sub).is_dir(), "backup lacks {sub}/");
    }
    let copied = std::fs::metadata(backup.join("md/cur/1.host:2,S")).unwrap();
    assert_eq!(copied.modified().unwrap(), then, "backup lost the mtime");
    // The documented check: the backup is the input, the replaced folder's parent the output.
    verify(&backup.join("md"), &t.path().join("live"))
        .assert()
        .code(0);
}

#[test]
fn usage_errors_exit_2() {
    unseal().assert().code(2);
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("box.mbox");
    write_mbox(&mbox, 1, &[]);
    // decrypt without --out
    unseal()
        .arg("decrypt")
        .args(key_args())
        .arg(&mbox)
        .assert()
        .code(2);
    // --in-place without --backup
    unseal()
        .arg("decrypt")
        .args(key_args())
        .arg(&mbox)
        .arg("--in-place")
        .assert()
        .code(2);
    // no usable key at all
    unseal()
        .arg("decrypt")
        .arg(&mbox)
        .arg("--out")
        .arg(t.path().join("o"))
        .assert()
        .code(2);
    // a password is never taken from the command line
    unseal()
        .arg("keys")
        .arg("--password")
        .arg("secret")
        .assert()
        .code(2);
}

fn demo() -> PathBuf {
    fixtures().join("demo")
}

fn demo_keys() -> Vec<String> {
    vec![
        "--key".into(),
        demo().join("demo.p12").display().to_string(),
        "--password-file".into(),
        demo().join("demo.password").display().to_string(),
    ]
}

#[test]
fn demo_mailbox_end_to_end() {
    let out = unseal().arg("keys").args(demo_keys()).assert().code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(stdout.contains("CN=unseal demo"), "{stdout}");

    let a = unseal()
        .arg("scan")
        .args(demo_keys())
        .arg(demo().join("demo.mbox"))
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(
        err.contains("missing key:") && err.contains("CN=unseal demo lost key"),
        "{err}"
    );

    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    unseal()
        .arg("decrypt")
        .args(demo_keys())
        .arg(demo().join("demo.mbox"))
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1); // the message for the lost key
    let dec = std::fs::read(out.join("demo.mbox")).unwrap();
    let text = String::from_utf8_lossy(&dec).replace("\r\n", "\n");
    assert_eq!(text.matches("\nFrom alice@unseal.test ").count() + 1, 8);
    for e in std::fs::read_dir(demo().join("expected")).unwrap() {
        let want = std::fs::read(e.unwrap().path()).unwrap();
        let want = String::from_utf8_lossy(&want).replace("\r\n", "\n");
        assert!(
            text.contains(want.trim_end()),
            "missing decrypted body:\n{want}"
        );
    }
    // Exactly the lost-key message is still an envelope.
    assert_eq!(
        text.to_ascii_lowercase()
            .matches("application/pkcs7-mime")
            .count(),
        1
    );
}

/// README's first command: with the old laptop's key as well, every encrypted message of the
/// demo decrypts, exit 0, and verify says the keys may go.
#[test]
fn demo_with_both_keys_decrypts_everything_as_in_the_readme() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("demo-out");
    let report = t.path().join("demo-out.jsonl");
    let mut keys = demo_keys();
    keys.extend([
        "--key".into(),
        demo().join("old-laptop.p12").display().to_string(),
    ]);
    unseal()
        .arg("scan")
        .args(&keys)
        .arg(demo().join("demo.mbox"))
        .arg("--trial")
        .assert()
        .code(0);
    unseal()
        .arg("decrypt")
        .args(&keys)
        .arg(demo().join("demo.mbox"))
        .arg("--out")
        .arg(&out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(0);
    let lines = report_lines(&report);
    let decrypted = lines.iter().filter(|l| l["status"] == "decrypted").count();
    assert_eq!(decrypted, 6, "six encrypted demo messages");
    assert_eq!(
        count_enveloped(&out.join("demo.mbox")),
        0,
        "no envelope left"
    );
    let v = unseal()
        .arg("verify")
        .arg(demo().join("demo.mbox"))
        .arg("--out")
        .arg(&out)
        .assert()
        .code(0);
    let said = String::from_utf8_lossy(&v.get_output().stdout).to_string()
        + &String::from_utf8_lossy(&v.get_output().stderr);
    assert!(said.contains("safe to destroy"), "{said}");
}

#[test]
fn maildir_escrow_with_password_map_and_a_broken_key_file() {
    let t = tempfile::tempdir().unwrap();
    let escrow = t.path().join("escrow");
    std::fs::create_dir_all(escrow.join("people")).unwrap();
    std::fs::copy(demo().join("demo.p12"), escrow.join("people/bob.pfx")).unwrap();
    std::fs::write(escrow.join("people/broken.p12"), b"not a key at all").unwrap();
    std::fs::copy(keys().join("rsa2048.p12"), escrow.join("rsa.p12")).unwrap();
    let pw_demo = std::fs::read_to_string(demo().join("demo.password")).unwrap();
    let pw_rsa = std::fs::read_to_string(keys().join("password.txt")).unwrap();
    let map = t.path().join("pw.tsv");
    std::fs::write(
        &map,
        format!(
            "people/bob.pfx\t{}\nrsa.p12\t{}\n",
            pw_demo.lines().next().unwrap(),
            pw_rsa.lines().next().unwrap()
        ),
    )
    .unwrap();

    let md = t.path().join("Maildir");
    for d in ["cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"] {
        std::fs::create_dir_all(md.join(d)).unwrap();
    }
    for (i, e) in ENCRYPTED.iter().enumerate() {
        std::fs::write(md.join(format!("cur/{i}.host:2,S")), msg(e)).unwrap();
    }
    std::fs::write(md.join("new/9.host"), plain(9)).unwrap();
    std::fs::write(md.join(".Sent/cur/1.host:2,S"), msg(ENCRYPTED[0])).unwrap();

    let out = t.path().join("out");
    let report = t.path().join("night.jsonl");
    let a = unseal()
        .arg("decrypt")
        .arg("--keys")
        .arg(&escrow)
        .arg("--password-map")
        .arg(&map)
        .arg(&md)
        .arg("--out")
        .arg(&out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(0);
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(err.contains("broken.p12"), "{err}");
    assert!(!err.contains(pw_rsa.trim()), "password printed");
    let lines = report_lines(&report);
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["counts"]["decrypted"], ENCRYPTED.len() as u64 + 1);
    assert!(
        summary["key_files_failed"][0]
            .as_str()
            .unwrap()
            .contains("broken.p12")
    );

    verify(&md, &out).assert().code(0);
    std::fs::remove_file(out.join("Maildir/.Sent/cur/1.host:2,S")).unwrap();
    let v = verify(&md, &out).assert().code(1);
    let stdout = String::from_utf8_lossy(&v.get_output().stdout).to_string();
    assert!(stdout.contains(".Sent/cur/1.host:2,S"), "{stdout}");
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_cleanly_and_the_run_continues() {
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("big.mbox");
    let n = write_mbox(&mbox, 200, &[]);
    let out = t.path().join("out");
    let journal = out.join(".unseal-journal/big.mbox.jsonl");
    let bin = assert_cmd::cargo::cargo_bin("unseal");
    let mut child = StdCommand::new(&bin)
        .arg("decrypt")
        .args(key_args())
        .arg(&mbox)
        .arg("--out")
        .arg(&out)
        .arg("--jobs")
        .arg("1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(&journal).is_ok_and(|s| s.contains("\"t\":\"item\"")) {
        assert!(start.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(5));
    }
    StdCommand::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    if status.code() == Some(0) {
        return; // finished before the signal arrived: nothing to check
    }
    assert_eq!(status.code(), Some(2));
    assert!(!out.join("big.mbox").exists());
    let journaled = std::fs::read_to_string(&journal).unwrap();
    assert!(journaled.ends_with('\n'), "torn journal after Ctrl-C");
    decrypt(&mbox, &out).assert().code(0);
    assert_eq!(mbox_messages(&out.join("big.mbox")), n);
}
