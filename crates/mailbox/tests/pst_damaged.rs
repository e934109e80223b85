//! Damaged PST files: errors are values, bad items are reported, nothing panics.

use std::ops::ControlFlow;
use std::path::PathBuf;

use unseal_mailbox::pst::{PstError, read_pst};

fn support_pst() -> Option<Vec<u8>> {
    let root = std::env::var_os("UNSEAL_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora")
        });
    let p = root.join("go-pst-samples/support.pst");
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(e) => {
            println!("skipping: {} unreadable: {e}", p.display());
            None
        }
    }
}

#[test]
fn missing_and_non_pst_files_are_error_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.pst");
    let err = read_pst(&missing, &mut |_| ControlFlow::Continue(())).expect_err("missing");
    assert!(matches!(err, PstError::Open { .. }));
    assert!(err.to_string().contains("nope.pst"), "{err}");

    let junk = dir.path().join("junk.pst");
    std::fs::write(&junk, b"!BDN this is not really a PST file at all").expect("write");
    let err = read_pst(&junk, &mut |_| ControlFlow::Continue(())).expect_err("junk");
    assert!(err.to_string().contains("junk.pst"), "{err}");
}

#[test]
fn truncated_and_corrupted_pst_never_panics() {
    let Some(orig) = support_pst() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("damaged.pst");
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut variants: Vec<Vec<u8>> = [512, 4096, orig.len() / 3, orig.len() / 2, orig.len() - 512]
        .iter()
        .map(|&n| orig[..n].to_vec())
        .collect();
    for _ in 0..40 {
        let mut m = orig.clone();
        for _ in 0..32 {
            // Past the 512-byte header (its CRC would just reject the file).
            let i = 512 + (next() as usize) % (m.len() - 512);
            m[i] ^= (next() as u8) | 1;
        }
        variants.push(m);
    }
    for v in variants {
        std::fs::write(&path, &v).expect("write");
        let mut n = 0usize;
        match read_pst(&path, &mut |item| {
            assert!(!item.mime.is_empty());
            n += 1;
            ControlFlow::Continue(())
        }) {
            Ok(summary) => {
                assert_eq!(summary.messages, n);
                for p in &summary.skipped {
                    assert!(!p.reason.is_empty());
                }
            }
            Err(e) => assert!(e.to_string().contains("damaged.pst"), "{e}"),
        }
    }
}
