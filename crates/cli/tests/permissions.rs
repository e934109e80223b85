//! Plaintext lands only in the output folder, readable by the owner alone: output files and the
//! journal 0600, folders 0700.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;

mod common;
use common::*;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn outputs_and_journal_are_private() {
    let t = tempfile::tempdir().unwrap();
    let mbox = t.path().join("box.mbox");
    write_mbox(&mbox, 2, &[]);
    let out = t.path().join("out");
    decrypt(&mbox, &out).assert().code(0);
    assert_eq!(mode(&out), 0o700);
    assert_eq!(mode(&out.join("box.mbox")), 0o600);
    assert_eq!(mode(&out.join(".unseal-journal")), 0o700);
    assert_eq!(mode(&out.join(".unseal-journal/box.mbox.jsonl")), 0o600);
    // Nothing else was left in the output folder (no temporary files).
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}
