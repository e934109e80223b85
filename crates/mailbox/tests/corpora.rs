//! Real-world files from the shared corpora: detection, single-file sources and trees.
//! Skips (passes with a message) when the corpora are not present.

use std::path::{Path, PathBuf};

use unseal_mailbox::{Format, Item, ItemKind, Location, OutFormat, create_sink, detect, open};

fn corpora() -> Option<PathBuf> {
    let p = match std::env::var_os("UNSEAL_CORPORA") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"),
    };
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipping: corpora not found at {} (set UNSEAL_CORPORA)",
            p.display()
        );
        None
    }
}

fn items(path: &Path, f: Format) -> Vec<Item> {
    open(path, f).unwrap().map(|r| r.unwrap()).collect()
}

#[test]
fn rfc4134_cms_and_eml_files() {
    let Some(c) = corpora() else { return };
    let dir = c.join("rfc4134/extracted");
    if !dir.is_dir() {
        eprintln!("skipping: {} absent", dir.display());
        return;
    }
    // 3.1 is BER indefinite-length, 5.1/5.2 DER EnvelopedData.
    for name in ["3.1.bin", "5.1.bin", "5.2.bin", "7.1.bin"] {
        let p = dir.join(name);
        assert_eq!(detect(&p).unwrap(), Format::P7m, "{name}");
        let it = items(&p, Format::P7m);
        assert_eq!(it.len(), 1);
        assert_eq!(it[0].kind, ItemKind::Cms);
        assert_eq!(it[0].bytes(), std::fs::read(&p).unwrap(), "{name}");
    }
    for name in ["5.3.eml", "4.8.eml"] {
        assert_eq!(detect(&dir.join(name)).unwrap(), Format::Eml, "{name}");
    }
}

#[test]
fn outlook_msg_files_become_mime() {
    let Some(c) = corpora() else { return };
    let dir = c.join("simple-java-mail/pkcs12/test messages");
    if !dir.is_dir() {
        eprintln!("skipping: {} absent", dir.display());
        return;
    }
    let p = dir.join("S_MIME test message encrypted.msg");
    assert_eq!(detect(&p).unwrap(), Format::Msg);
    let it = items(&p, Format::Msg);
    assert_eq!(it.len(), 1);
    assert_eq!(it[0].kind, ItemKind::Message);
    let lower = String::from_utf8_lossy(it[0].bytes()).to_ascii_lowercase();
    assert!(
        lower.contains("pkcs7-mime"),
        "converted message lacks the envelope"
    );

    // In a tree, S/MIME .msg files are converted and re-homed as .eml; here each has an .eml
    // twin beside it, so they become `X.msg.eml` instead of overwriting the twin.
    let tree = items(&dir, Format::EmlTree);
    assert_eq!(tree.len(), 6);
    for i in &tree {
        assert_eq!(i.kind, ItemKind::Message, "{}", i.id);
        let Location::Tree { rel_path } = &i.meta.location else {
            panic!()
        };
        if i.id.ends_with(".msg") {
            assert_eq!(rel_path.to_str().unwrap(), format!("{}.eml", i.id));
        } else {
            assert_eq!(rel_path.to_str().unwrap(), i.id);
        }
    }
    let d = tempfile::tempdir().unwrap();
    let mut sink = create_sink(OutFormat::EmlTree, &dir, d.path()).unwrap();
    for i in &tree {
        sink.write(&i.meta, i.bytes()).unwrap();
    }
    let root = sink.finish().unwrap();
    assert!(root.join("S_MIME test message encrypted.msg.eml").is_file());
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 6);
}

#[test]
fn thunderbird_eml_folder_is_a_tree() {
    let Some(c) = corpora() else { return };
    let dir = c.join("thunderbird-smime/mailnews-test-data-smime-manual");
    if !dir.is_dir() {
        eprintln!("skipping: {} absent", dir.display());
        return;
    }
    assert_eq!(detect(&dir).unwrap(), Format::EmlTree);
    let it = items(&dir, Format::EmlTree);
    assert!(!it.is_empty());
    let mut ids: Vec<&str> = it.iter().map(|i| i.id.as_str()).collect();
    let sorted = {
        let mut s = ids.clone();
        s.sort();
        s
    };
    // walkdir sorts per directory level; for a flat folder that is plain name order.
    assert_eq!(ids, sorted);
    ids.retain(|i| i.ends_with(".eml"));
    for i in it.iter().filter(|i| i.id.ends_with(".eml")) {
        assert_eq!(i.kind, ItemKind::Message);
        assert_eq!(detect(&dir.join(&i.id)).unwrap(), Format::Eml, "{}", i.id);
    }
}

#[test]
fn pst_to_maildir_and_per_folder_mbox() {
    let Some(c) = corpora() else { return };
    let p = c.join("go-pst-samples/support.pst");
    if !p.is_file() {
        eprintln!("skipping: {} absent", p.display());
        return;
    }
    assert_eq!(detect(&p).unwrap(), Format::Pst);
    let all: Vec<_> = open(&p, Format::Pst).unwrap().collect();
    let it: Vec<Item> = all.into_iter().filter_map(Result::ok).collect();
    // readpst extracts 17 e-mails from this file.
    assert_eq!(it.len(), 17);
    let mut ids: Vec<&str> = it.iter().map(|i| i.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 17, "ids must be unique");
    assert_eq!(OutFormat::for_input(Format::Pst), OutFormat::Maildir);

    let d = tempfile::tempdir().unwrap();
    let mut sink = create_sink(OutFormat::Maildir, &p, d.path()).unwrap();
    for i in &it {
        sink.write(&i.meta, i.bytes()).unwrap();
        assert!(sink.already_written(&i.meta));
    }
    let root = sink.finish().unwrap();
    assert_eq!(root, d.path().join("support"));
    let back = items(&root, Format::Maildir);
    let msgs: Vec<&Item> = back
        .iter()
        .filter(|i| i.kind == ItemKind::Message)
        .collect();
    assert_eq!(msgs.len(), 17);

    let d2 = tempfile::tempdir().unwrap();
    let mut sink = create_sink(OutFormat::MboxPerFolder, &p, d2.path()).unwrap();
    for i in &it {
        sink.write(&i.meta, i.bytes()).unwrap();
    }
    let root = sink.finish().unwrap();
    let mut n = 0;
    for e in walkdir::WalkDir::new(&root) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            assert_eq!(detect(e.path()).unwrap(), Format::Mbox);
            n += open(e.path(), Format::Mbox).unwrap().count();
        }
    }
    assert_eq!(n, 17);

    // Dropping a PST source early stops its reader thread instead of hanging.
    let mut src = open(&p, Format::Pst).unwrap();
    assert!(src.next().is_some());
    drop(src);
}
