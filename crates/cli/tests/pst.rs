//! A real Outlook PST (go-pst's support.pst, 17 e-mails, no S/MIME) through decrypt and verify:
//! every item lands in the Maildir++ output, verify passes. Skips without the corpora.

use assert_cmd::Command;
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

fn unseal() -> Command {
    let mut c = Command::cargo_bin("unseal").unwrap();
    c.env_remove("UNSEAL_PASSWORD");
    c
}

fn key_args() -> Vec<String> {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/keys");
    vec![
        "--key".into(),
        keys.join("rsa2048.p12").display().to_string(),
        "--password-file".into(),
        keys.join("password.txt").display().to_string(),
    ]
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
    unseal()
        .arg("decrypt")
        .args(key_args())
        .arg(&pst)
        .arg("--out")
        .arg(&out)
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
    unseal()
        .arg("verify")
        .arg(&pst)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(0);
    // The originals are never touched.
    assert_eq!(std::fs::metadata(&pst).unwrap().len(), 1_033_216);
}
