//! A real Outlook PST (go-pst's support.pst, 17 e-mails, no S/MIME) through decrypt and verify:
//! every item lands in the Maildir++ output, verify passes. Skips without the corpora.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn corpora() -> Option<PathBuf> {
    let p = std::env::var_os("UNSEAL_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: corpora folder {} is absent", p.display());
        None
    }
}

fn count_files(dir: &Path) -> usize {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_type().is_file()
                && e.path()
                    .parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n == "cur" || n == "new")
        })
        .count()
}

#[test]
fn support_pst_decrypts_to_maildir_and_verifies() {
    let Some(c) = corpora() else { return };
    let pst = c.join("go-pst-samples/support.pst");
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let report = t.path().join("r.jsonl");
    decrypt(&pst, &out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(0);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let plain = lines.iter().filter(|l| l["status"] == "plain").count();
    assert_eq!(plain, 17, "the 17 e-mails readpst and pffexport also find");
    assert_eq!(
        count_files(&out.join("support")),
        17,
        "each written as a Maildir++ file"
    );
    verify(&pst, &out).assert().code(0);
    // One mbox per folder: verify cannot pair those messages with the PST's and says so (not
    // safe, exit 1) instead of reading the mbox files as a folder of stray files.
    let out2 = t.path().join("out2");
    decrypt(&pst, &out2)
        .arg("--out-format")
        .arg("mbox")
        .assert()
        .code(0);
    let v = verify(&pst, &out2).assert().code(1);
    let stdout = String::from_utf8_lossy(&v.get_output().stdout).to_string();
    assert!(
        stdout.contains("one mbox per folder") && stdout.contains("NOT safe"),
        "{stdout}"
    );
    // The originals are never touched.
    assert_eq!(std::fs::metadata(&pst).unwrap().len(), 1_033_216);
}
