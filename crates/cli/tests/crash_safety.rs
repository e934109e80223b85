//! Crash safety: `unseal decrypt` killed with SIGKILL at several points, and run into a full
//! disk, always leaves a consistent journal, no partial file under a final name and untouched
//! inputs; the same command then completes with every item exactly once and verify passes.

use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

fn journal_items(journal: &Path) -> usize {
    std::fs::read_to_string(journal)
        .map(|s| s.lines().filter(|l| l.contains("\"t\":\"item\"")).count())
        .unwrap_or(0)
}

/// Starts a decrypt and SIGKILLs it once the journal holds more than `after` items. Returns
/// false if the run finished first.
fn run_and_kill(input: &Path, out: &Path, journal: &Path, after: usize) -> bool {
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("unseal"))
        .arg("decrypt")
        .args(key_args())
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(["--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if journal_items(journal) > after {
            child.kill().unwrap();
            let _ = child.wait();
            return true;
        }
        if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(120) {
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn sha(p: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut v = Vec::new();
    std::fs::File::open(p).unwrap().read_to_end(&mut v).unwrap();
    v
}

#[test]
fn mbox_killed_at_several_points_completes_exactly_once() {
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("box.mbox");
    let n = write_mbox(&mbox, 200, &[]);
    let before = sha(&mbox);
    let out = t.path().join("out");
    let journal = out.join(".unseal-journal/box.mbox.jsonl");
    let mut kills = 0;
    for after in [0, 150, 400] {
        if run_and_kill(&mbox, &out, &journal, after) {
            kills += 1;
            assert!(
                !out.join("box.mbox").exists(),
                "no partial output under the final name"
            );
            assert!(journal_items(&journal) < n);
        }
    }
    assert!(kills >= 2, "the runs ended before they could be killed");
    decrypt(&mbox, &out).assert().code(0);
    assert_eq!(
        mbox_messages(&out.join("box.mbox")),
        n,
        "an item is duplicated or lost"
    );
    assert_eq!(count_enveloped(&out.join("box.mbox")), 0);
    assert_eq!(sha(&mbox), before, "the input is untouched");
    verify(&mbox, &out).assert().code(0);
}

#[test]
fn maildir_killed_mid_run_leaves_no_partial_files() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Mail");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    let mut n = 0;
    for r in 0..60 {
        for (i, e) in ENCRYPTED.iter().enumerate() {
            std::fs::write(md.join(format!("cur/{r:03}{i}.host:2,S")), msg(e)).unwrap();
            n += 1;
        }
    }
    let out = t.path().join("out");
    let journal = out.join(".unseal-journal/Mail.jsonl");
    let killed = run_and_kill(&md, &out, &journal, 0);
    assert!(killed, "the run ended before it could be killed");
    // Whatever is under a final name is complete: it decrypts to a message without envelope.
    for e in std::fs::read_dir(out.join("Mail/cur"))
        .into_iter()
        .flatten()
    {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with(unseal_mailbox::atomic::TEMP_PREFIX) {
            continue;
        }
        assert_eq!(count_enveloped(&p), 0, "{name} is a finished output");
    }
    decrypt(&md, &out).assert().code(0);
    let finals = std::fs::read_dir(out.join("Mail/cur"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(unseal_mailbox::atomic::TEMP_PREFIX)
        })
        .count();
    assert_eq!(finals, n);
    verify(&md, &out).assert().code(0);
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_cleanly_and_the_run_continues_with_space() {
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = StdCommand::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping: cannot mount a small tmpfs here (needs root) to simulate a full disk");
        return;
    }
    let _guard = Mount(mnt.clone());
    let mbox = t.path().join("box.mbox");
    let n = write_mbox(&mbox, 30, &[]);
    let before = sha(&mbox);
    let out = mnt.join("out");
    let a = decrypt(&mbox, &out).assert().code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        !out.join("box.mbox").exists(),
        "no partial output under the final name"
    );
    assert_eq!(sha(&mbox), before, "the input is untouched");
    let journaled = journal_items(&out.join(".unseal-journal/box.mbox.jsonl"));
    assert!(journaled < n);

    // More space: the same command continues from the journal and completes.
    let grown = StdCommand::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(grown.success());
    decrypt(&mbox, &out).assert().code(0);
    assert_eq!(mbox_messages(&out.join("box.mbox")), n);
    verify(&mbox, &out).assert().code(0);
}

#[test]
fn an_input_changed_after_an_interrupted_run_starts_over() {
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("box.mbox");
    let n = write_mbox(&mbox, 200, &[]);
    let out = t.path().join("out");
    let journal = out.join(".unseal-journal/box.mbox.jsonl");
    assert!(
        run_and_kill(&mbox, &out, &journal, 0),
        "the run ended before it could be killed"
    );
    // New mail arrives at the front (a compaction would shift ids the same way).
    let mut data =
        b"From bob@example.org Mon Jun  3 12:50:27 1996\nSubject: new\n\nnew mail\n\n".to_vec();
    data.extend(std::fs::read(&mbox).unwrap());
    std::fs::write(&mbox, data).unwrap();
    let a = decrypt(&mbox, &out).assert().code(0);
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(
        err.contains("the input changed since the earlier run"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&std::fs::read(out.join("box.mbox")).unwrap()).to_string();
    assert_eq!(
        text.matches("\nFrom ").count() + 1,
        n + 1,
        "every item exactly once"
    );
    verify(&mbox, &out).assert().code(0);
}

#[test]
fn another_input_with_the_same_name_is_refused_not_mixed() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    write_mbox(&a.join("inbox"), 2, &[]);
    write_mbox(&b.join("inbox"), 3, &[]);
    let out = t.path().join("out");
    decrypt(&a.join("inbox"), &out).assert().code(0);
    let first = std::fs::read(out.join("inbox")).unwrap();
    let r = decrypt(&b.join("inbox"), &out).assert();
    let code = r.get_output().status.code();
    assert_ne!(code, Some(0), "b must not be reported as done");
    let err = String::from_utf8_lossy(&r.get_output().stderr).to_string();
    assert!(err.contains("journal of another input"), "{err}");
    assert_eq!(
        std::fs::read(out.join("inbox")).unwrap(),
        first,
        "a's output is left alone"
    );
}
