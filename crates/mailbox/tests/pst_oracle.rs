//! PST reading checked against independent implementations: `readpst` (libpst, Debian
//! pst-utils) and `pffexport` (libpff, Debian pff-tools). Install them with
//! scripts/install-oracles.sh; without them these tests print "skipping: ..." and pass.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;

use mail_parser::{MessageParser, MimeHeaders};
use unseal_mailbox::pst::{PstFormat, PstItem, PstSummary, read_pst};

fn corpora() -> Option<PathBuf> {
    let dir = std::env::var_os("UNSEAL_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora")
        });
    dir.is_dir().then_some(dir)
}

fn sample(rel: &str) -> Option<PathBuf> {
    let Some(root) = corpora() else {
        println!("skipping: corpora not found (set UNSEAL_CORPORA)");
        return None;
    };
    let p = root.join(rel);
    if !p.is_file() {
        println!("skipping: {} not present", p.display());
        return None;
    }
    Some(p)
}

fn tool(name: &str) -> bool {
    let ok = Command::new(name)
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("skipping: {name} not installed (run scripts/install-oracles.sh)");
    }
    ok
}

fn read_all(path: &Path) -> (Vec<PstItem>, PstSummary) {
    let mut items = Vec::new();
    let summary = read_pst(path, &mut |item| {
        items.push(item);
        ControlFlow::Continue(())
    })
    .expect("read_pst");
    (items, summary)
}

/// What we compare between implementations.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Facts {
    folder: Vec<String>,
    subject: String,
    message_id: Option<String>,
    from: Option<String>,
    attachments: Vec<String>,
}

fn facts(folder: Vec<String>, mime: &[u8]) -> Facts {
    let m = MessageParser::default().parse(mime).expect("parsable MIME");
    let mut attachments: Vec<String> = m
        .attachments()
        .filter_map(|a| a.attachment_name().map(str::to_owned))
        .collect();
    attachments.sort();
    Facts {
        folder,
        subject: m.subject().unwrap_or("").trim().to_owned(),
        message_id: m.message_id().map(str::to_owned),
        from: m
            .from()
            .and_then(|f| f.first())
            .and_then(|a| a.address())
            .map(str::to_ascii_lowercase),
        attachments,
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// `readpst -e -o DIR FILE`: one .eml per e-mail under DIR/<store name>/<folders>/N.eml.
fn readpst_facts(pst: &Path) -> Vec<Facts> {
    let dir = tempfile::tempdir().expect("tempdir");
    let st = Command::new("readpst")
        .args(["-q", "-e", "-o"])
        .arg(dir.path())
        .arg(pst)
        .status()
        .expect("run readpst");
    assert!(st.success(), "readpst failed on {}", pst.display());
    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "eml"))
        .map(|f| {
            let rel = f.strip_prefix(dir.path()).expect("under dir");
            // Drop the top folder (readpst names it after the store) and the file name.
            let folder: Vec<String> = rel
                .parent()
                .map(|p| {
                    p.components()
                        .skip(1)
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            facts(folder, &std::fs::read(f).expect("read eml"))
        })
        .collect()
}

/// (folder, kind, Message-ID, attachment names) of one pffexport item.
type PffItem = (Vec<String>, String, Option<String>, Vec<String>);

/// `pffexport -t DIR FILE`: per item a directory `DIR.export/<folders>/<Kind>NNNNN/`; returns
/// (folder below "Top of Personal Folders", item kind, Message-ID from InternetHeaders.txt,
/// attachment file names with pffexport's "N_" prefix removed).
fn pffexport_items(pst: &Path) -> Vec<PffItem> {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("out");
    let st = Command::new("pffexport")
        .args(["-q", "-t"])
        .arg(&target)
        .arg(pst)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run pffexport");
    assert!(st.success(), "pffexport failed on {}", pst.display());
    let top = dir
        .path()
        .join("out.export")
        .join("Top of Personal Folders");
    let mut out = Vec::new();
    walk_pff(&top, &mut Vec::new(), &mut out);
    out
}

fn walk_pff(dir: &Path, folder: &mut Vec<String>, out: &mut Vec<PffItem>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries.into_iter().filter(|p| p.is_dir()) {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let is_item = kind.len() < name.len()
            && name.len() - kind.len() == 5
            && matches!(
                kind,
                "Message"
                    | "Appointment"
                    | "Contact"
                    | "DistributionList"
                    | "Task"
                    | "Note"
                    | "Meeting"
                    | "Item"
            );
        if is_item {
            let headers = std::fs::read(p.join("InternetHeaders.txt")).unwrap_or_default();
            let message_id = MessageParser::default()
                .parse_headers(&headers)
                .and_then(|m| m.message_id().map(str::to_owned));
            let mut attachments: Vec<String> = std::fs::read_dir(p.join("Attachments"))
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .map(|n| match n.split_once('_') {
                            Some((num, rest)) if num.bytes().all(|b| b.is_ascii_digit()) => {
                                rest.to_owned()
                            }
                            _ => n,
                        })
                        .collect()
                })
                .unwrap_or_default();
            attachments.sort();
            out.push((folder.clone(), kind.to_owned(), message_id, attachments));
        } else {
            folder.push(name);
            walk_pff(&p, folder, out);
            folder.pop();
        }
    }
}

/// Every e-mail readpst extracts is found by us with the same folder, Subject, From,
/// Message-ID and attachment names.
fn check_against_readpst(pst: &Path, items: &[PstItem]) -> usize {
    let ours: Vec<Facts> = items
        .iter()
        .map(|i| facts(i.folder_path.clone(), &i.mime))
        .collect();
    let theirs = readpst_facts(pst);
    let mut used = vec![false; ours.len()];
    for t in &theirs {
        let found = ours.iter().enumerate().position(|(i, o)| {
            !used[i]
                && o.folder == t.folder
                && match (&t.message_id, &o.message_id) {
                    (Some(a), Some(b)) => a == b,
                    _ => o.subject == t.subject && o.from == t.from,
                }
        });
        let Some(i) = found else {
            panic!("readpst's message {t:?} not found among ours: {ours:#?}");
        };
        used[i] = true;
        assert_eq!(&ours[i], t, "same headers and attachment names as readpst");
    }
    theirs.len()
}

#[test]
fn support_pst_matches_readpst() {
    let Some(pst) = sample("go-pst-samples/support.pst") else {
        return;
    };
    let (items, summary) = read_all(&pst);
    assert_eq!(summary.format, PstFormat::Unicode);
    assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
    let notes = items
        .iter()
        .filter(|i| i.message_class == "IPM.Note")
        .count();
    assert_eq!(notes, 17, "MANIFEST: 17 e-mails");
    assert!(items.iter().all(|i| !i.is_smime));
    assert!(items.iter().all(|i| i.date.is_some()));
    // Node ids are unique: they identify items for the writer.
    let mut ids: Vec<u32> = items.iter().map(|i| i.node_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), items.len());
    // Drafts are flagged as such, sent items are not.
    for i in &items {
        assert_eq!(
            i.flags.draft,
            i.folder_path == ["Drafts"],
            "{:?}",
            i.folder_path
        );
    }
    let with_att = items
        .iter()
        .map(|i| facts(i.folder_path.clone(), &i.mime))
        .filter(|f| !f.attachments.is_empty())
        .count();
    assert!(with_att >= 1);

    if !tool("readpst") {
        return;
    }
    let n = check_against_readpst(&pst, &items);
    assert!(n >= 16, "readpst extracted {n} e-mails");
}

#[test]
fn support_pst_matches_pffexport() {
    let Some(pst) = sample("go-pst-samples/support.pst") else {
        return;
    };
    if !tool("pffexport") {
        return;
    }
    let (items, _) = read_all(&pst);
    let theirs = pffexport_items(&pst);
    assert_eq!(
        theirs.len(),
        items.len(),
        "same number of items as pffexport"
    );
    let ours: Vec<Facts> = items
        .iter()
        .map(|i| facts(i.folder_path.clone(), &i.mime))
        .collect();
    // Per-folder counts agree.
    let count = |v: Vec<Vec<String>>| {
        let mut m = BTreeMap::new();
        for f in v {
            *m.entry(f).or_insert(0) += 1;
        }
        m
    };
    assert_eq!(
        count(ours.iter().map(|o| o.folder.clone()).collect()),
        count(theirs.iter().map(|t| t.0.clone()).collect())
    );
    // Items with Internet headers: same Message-ID in the same folder, same attachment names.
    for (folder, kind, mid, atts) in &theirs {
        assert_eq!(kind, "Message");
        let Some(mid) = mid else { continue };
        let o = ours
            .iter()
            .find(|o| o.message_id.as_ref() == Some(mid))
            .unwrap_or_else(|| panic!("pffexport's {mid} not found"));
        assert_eq!(&o.folder, folder);
        // pffexport replaces characters like '@' in file names with '_'.
        let sanitize = |n: &String| -> String {
            n.chars()
                .map(|c| {
                    if c.is_alphanumeric() || " .-_()".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let mut ours_sanitized: Vec<String> = o.attachments.iter().map(sanitize).collect();
        ours_sanitized.sort();
        assert_eq!(&ours_sanitized, atts, "attachments of {mid}");
    }
}

/// The java-libpst samples hold no e-mail, but a contact, a distribution list and an
/// appointment; the walk must find what pffexport finds, per folder, without aborting.
#[test]
fn java_libpst_samples_match_pffexport() {
    for name in ["dist-list.pst", "passworded.pst"] {
        let Some(pst) = sample(&format!(
            "java-libpst-pst-samples/src-test-resources/{name}"
        )) else {
            return;
        };
        let (items, summary) = read_all(&pst);
        assert!(summary.folders > 10);
        assert!(
            items.iter().any(|i| i.message_class == "IPM.Contact"),
            "{name}"
        );
        assert!(
            items.iter().any(|i| i.message_class == "IPM.DistList"),
            "{name}"
        );
        // Every item's MIME parses.
        for i in &items {
            assert!(MessageParser::default().parse(&i.mime).is_some());
        }
        if !tool("pffexport") {
            return;
        }
        let theirs = pffexport_items(&pst);
        let mut theirs_by_folder = BTreeMap::new();
        for (folder, ..) in &theirs {
            *theirs_by_folder.entry(folder.clone()).or_insert(0) += 1;
        }
        for (folder, n) in theirs_by_folder {
            let ours = items.iter().filter(|i| i.folder_path == folder).count();
            assert_eq!(ours, n, "{name}: items in {folder:?}");
        }
        if tool("readpst") {
            assert_eq!(
                check_against_readpst(&pst, &items),
                0,
                "no e-mails in {name}"
            );
        }
    }
}

#[test]
fn ansi_pst_is_read() {
    let Some(pst) = sample("go-pst-samples/32-bit.pst") else {
        return;
    };
    let (items, summary) = read_all(&pst);
    assert_eq!(summary.format, PstFormat::Ansi);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].message_class, "IPM.Appointment");
    assert_eq!(items[0].folder_path, ["Calendar"]);
}

#[test]
fn early_stop_is_honoured() {
    let Some(pst) = sample("go-pst-samples/support.pst") else {
        return;
    };
    let mut n = 0;
    let summary = read_pst(&pst, &mut |_| {
        n += 1;
        if n == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .expect("read");
    assert_eq!(n, 3);
    assert!(summary.stopped);
    assert_eq!(summary.messages, 3);
}
