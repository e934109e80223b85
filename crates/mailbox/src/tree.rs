//! EML trees: a folder of `.eml` files at any depth. Every other regular file is passed through
//! (copied unchanged) so the output tree is complete, except mailboxes (mbox and PST files,
//! Maildir folders), which are reported as errors: see [`nested_mailbox_error`]. Relative paths
//! and modification times are kept. Symbolic links are not followed (they could point outside
//! the tree) and are reported.

use std::path::{Component, Path, PathBuf};

use walkdir::WalkDir;

use crate::atomic;
use crate::body::{Body, load_file};
use crate::{Error, Fill, Filled, Item, ItemKind, Location, Meta, Sink};

/// `a/b/c.eml` with "/" separators whatever the platform, for ids.
fn rel_id(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

fn is_eml(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("eml"))
}

fn is_msg(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("msg"))
}

/// An Outlook .msg in a tree: S/MIME ones are converted to MIME and written back as `.eml`
/// (`a.msg.eml` if an `a.eml` already sits beside it, `a.msg.1.eml` if that does too, and so
/// on) so they can be decrypted; all others,
/// including ones that fail to parse, are copied unchanged — converting a plain .msg would only
/// lose Outlook-specific properties.
fn msg_item(path: &Path, rel: PathBuf, body: Body) -> (ItemKind, PathBuf, Body) {
    match crate::msg::msg_to_mime(body.bytes()) {
        Ok(c) if c.is_smime => {
            // The first of a.eml, a.msg.eml, a.msg.1.eml, ... that no file beside it has.
            let free = |r: &Path| {
                !path
                    .with_file_name(r.file_name().unwrap_or_default())
                    .exists()
            };
            let out = std::iter::once(rel.with_extension("eml"))
                .chain((0..100).map(|i| {
                    let mut n = rel.clone().into_os_string();
                    if i > 0 {
                        n.push(format!(".{i}"));
                    }
                    n.push(".eml");
                    PathBuf::from(n)
                }))
                .find(|r| free(r))
                .unwrap_or_else(|| rel.with_extension("eml"));
            (ItemKind::Message, out, Body::Owned(c.mime))
        }
        _ => (ItemKind::Passthrough, rel, body),
    }
}

/// Whether a file's bytes are a whole mailbox: an mbox (a From_ line first) or a PST.
fn mailbox_file(bytes: &[u8]) -> Option<&'static str> {
    let text = bytes.strip_prefix(crate::mbox::BOM).unwrap_or(bytes);
    let first_line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    if crate::mbox::is_from_line(first_line) {
        Some("an mbox mailbox")
    } else if bytes.starts_with(crate::detect::PST_MAGIC) {
        Some("a PST file")
    } else {
        None
    }
}

/// A mailbox inside a tree is not opened: copied like a stray file, its encrypted messages would
/// pass through unread and `verify` would call the tree safe. It is reported instead (and not
/// copied), saying how to decrypt it.
fn nested_mailbox_error(id: String, path: &Path, what: &str) -> Error {
    Error::unsupported(
        id,
        format!(
            "{what} inside the folder is not opened here (its encrypted messages would be copied \
             unread); decrypt it as an input of its own: unseal decrypt ... {}",
            path.display()
        ),
    )
}

/// Walks a tree in sorted order (by file name at each level, so runs are reproducible).
pub struct TreeReader {
    root: PathBuf,
    walk: walkdir::IntoIter,
}

impl TreeReader {
    pub fn open(root: &Path) -> Result<TreeReader, Error> {
        if !root.is_dir() {
            return Err(Error::format(root.display(), "not a folder"));
        }
        Ok(TreeReader {
            root: root.to_path_buf(),
            walk: WalkDir::new(root)
                .follow_links(false)
                .sort_by_file_name()
                .into_iter(),
        })
    }
}

impl Iterator for TreeReader {
    type Item = Result<Item, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let entry = match self.walk.next()? {
                Ok(e) => e,
                Err(e) => {
                    let item = e.path().map_or_else(
                        || self.root.display().to_string(),
                        |p| p.display().to_string(),
                    );
                    let io = e
                        .into_io_error()
                        .unwrap_or_else(|| std::io::Error::other("walk error"));
                    return Some(Err(Error::io(item, "walk", io)));
                }
            };
            let ft = entry.file_type();
            if ft.is_dir() {
                if entry.depth() > 0 && crate::maildir::is_maildir(entry.path()) {
                    let id = entry
                        .path()
                        .strip_prefix(&self.root)
                        .map_or_else(|_| entry.path().display().to_string(), rel_id);
                    let err = nested_mailbox_error(id, entry.path(), "a Maildir");
                    self.walk.skip_current_dir();
                    return Some(Err(err));
                }
                continue;
            }
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(&self.root) else {
                continue;
            };
            let rel = rel.to_path_buf();
            let id = rel_id(&rel);
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(atomic::TEMP_PREFIX)
            {
                continue;
            }
            if !ft.is_file() {
                return Some(Err(Error::format(
                    id,
                    "not a regular file (symbolic link or device); skipped",
                )));
            }
            let mtime = entry.metadata().ok().and_then(|m| m.modified().ok());
            let body = match load_file(path) {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            };
            let starts_with_headers = |b: &Body| {
                let text = b.bytes();
                crate::detect::looks_like_headers(
                    text.strip_prefix(crate::mbox::BOM).unwrap_or(text),
                )
            };
            let (kind, rel, body) = if is_eml(&rel) {
                (ItemKind::Message, rel, body)
            } else if is_msg(&rel) {
                msg_item(path, rel, body)
            } else if let Some(what) = mailbox_file(body.bytes()) {
                return Some(Err(nested_mailbox_error(id, path, what)));
            } else if crate::single::is_envelope_file(body.bytes(), &rel) {
                // An encrypted blob under any name: decrypted in place of a copy, or it would
                // be missed when the key is destroyed. The body stays the file's own bytes.
                (ItemKind::Cms, rel, body)
            } else if crate::detect::mentions_pkcs7_mime(body.bytes()) {
                // S/MIME under another name than .eml (MH and Claws folders name messages by
                // number, a saved message may be .txt): a message is opened like an .eml and
                // written back under its own name; anything else is reported, never copied
                // over unread.
                if starts_with_headers(&body) {
                    (ItemKind::Message, rel, body)
                } else {
                    return Some(Err(Error::unsupported(
                        id,
                        "mentions S/MIME (pkcs7-mime) but does not start with header fields, \
                         so it is not a message unseal can open; it is not copied. Convert it \
                         to an .eml (or remove the mention) and run again",
                    )));
                }
            } else if crate::detect::mentions_smime(body.bytes()) && starts_with_headers(&body) {
                // A message whose envelope carries another label (octet-stream `smime.p7m`):
                // opened like an .eml. What is no message stays a copied file, which the CLI
                // still reports when an envelope shows in it.
                (ItemKind::Message, rel, body)
            } else {
                (ItemKind::Passthrough, rel, body)
            };
            return Some(Ok(Item::new(
                id,
                kind,
                Meta {
                    location: Location::Tree { rel_path: rel },
                    mtime,
                },
                body,
            )));
        }
    }
}

/// Accepts only plain relative paths (no "..", root or prefix) so metadata cannot steer a write
/// outside the output root.
pub(crate) fn safe_relative(p: &Path) -> bool {
    let mut any = false;
    for c in p.components() {
        match c {
            Component::Normal(_) => any = true,
            _ => return false,
        }
    }
    any
}

/// Writes each item to `root/<relative path>` atomically, restoring its modification time.
pub struct TreeSink {
    root: PathBuf,
    /// Folders made (or found) so far: each is created once, not for every item (a `mkdir` and a
    /// `stat` a message otherwise).
    made: std::collections::HashSet<PathBuf>,
    /// Files written by this run: a second item that maps to one of them (two inputs, one
    /// output name) is refused instead of replacing the first one's copy.
    written: std::collections::HashSet<PathBuf>,
    pending: atomic::DeferredSync,
}

impl TreeSink {
    pub fn create(root: &Path) -> Result<TreeSink, Error> {
        atomic::create_dir_all_private(root)
            .map_err(|e| Error::io_path(root, "create folder", e))?;
        Ok(TreeSink {
            root: root.to_path_buf(),
            made: std::collections::HashSet::new(),
            written: std::collections::HashSet::new(),
            pending: atomic::DeferredSync::default(),
        })
    }

    fn target(&self, meta: &Meta) -> Result<PathBuf, Error> {
        let rel: PathBuf = match &meta.location {
            Location::Tree { rel_path } => rel_path.clone(),
            Location::File { name } => name.clone(),
            Location::Maildir(m) => m.rel_path(),
            other => {
                return Err(Error::unsupported(
                    format!("{other:?}"),
                    "cannot be written into a tree",
                ));
            }
        };
        if !safe_relative(&rel) {
            return Err(Error::format(rel.display(), "unsafe relative path"));
        }
        Ok(self.root.join(rel))
    }
}

impl TreeSink {
    /// The item's output path, its folder created.
    fn prepare(&mut self, meta: &Meta) -> Result<PathBuf, Error> {
        let dest = self.target(meta)?;
        if self.written.contains(&dest) {
            return Err(Error::unsupported(
                dest.display(),
                "another item of this folder was already written under this name by this run; \
                 not overwritten (rename one of the two inputs)",
            ));
        }
        let dir = atomic::parent_dir(&dest);
        if !self.made.contains(dir) {
            atomic::create_dir_all_private(dir)
                .map_err(|e| Error::io_path(dir, "create folder", e))?;
            self.made.insert(dir.to_path_buf());
        }
        Ok(dest)
    }
}

impl Sink for TreeSink {
    fn write(&mut self, meta: &Meta, body: &[u8]) -> Result<(), Error> {
        let dest = self.prepare(meta)?;
        self.pending.write_item(&dest, meta, body)?;
        self.written.insert(dest);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.pending.sync_output(&self.root)
    }

    fn can_stream(&self, _meta: &Meta) -> bool {
        true
    }

    fn write_streamed(&mut self, meta: &Meta, fill: &mut Fill<'_>) -> Result<Filled, Error> {
        let dest = self.prepare(meta)?;
        let filled = self.pending.write_item_streamed(&dest, meta, fill)?;
        if filled.is_ok() {
            self.written.insert(dest);
        }
        Ok(filled)
    }

    fn already_written(&self, meta: &Meta) -> bool {
        self.target(meta).is_ok_and(|p| p.exists())
    }

    fn output(&self) -> &Path {
        &self.root
    }

    fn finish(mut self: Box<Self>) -> Result<PathBuf, Error> {
        self.sync()?;
        atomic::fsync_dir(&self.root).map_err(|e| Error::io_path(&self.root, "fsync", e))?;
        Ok(self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_second_item_for_a_name_already_written_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut sink = TreeSink::create(&d.path().join("out")).unwrap();
        let meta = Meta {
            location: Location::Tree {
                rel_path: PathBuf::from("sub/a.eml"),
            },
            mtime: None,
        };
        sink.write(&meta, b"the decrypted one").unwrap();
        let e = sink.write(&meta, b"a plain file of that name").unwrap_err();
        assert!(
            e.to_string().contains("already written under this name"),
            "{e}"
        );
        sink.sync().unwrap();
        let kept = fs::read(d.path().join("out/sub/a.eml")).unwrap();
        assert_eq!(kept, b"the decrypted one");
    }

    /// Writes `files` under `src` and reads the tree back: (id, kind), or (error text, None).
    fn read_tree(src: &Path, files: &[(&str, &[u8])]) -> Vec<(String, Option<ItemKind>)> {
        crate::write_test_files(src, files);
        TreeReader::open(src)
            .unwrap()
            .map(|r| match r {
                Ok(i) => (i.id, Some(i.kind)),
                Err(e) => (e.to_string(), None),
            })
            .collect()
    }

    #[test]
    fn smime_under_other_names_is_opened_or_reported_never_passed_through() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("mh");
        let smime: &[u8] = b"Subject: s\nContent-Type: application/x-PKCS7-mime; smime-type=enveloped-data\n\nMIAG\n";
        let files: [(&str, &[u8]); 5] = [
            ("inbox/1", smime),
            ("inbox/2", b"Subject: plain\n\nno envelope here\n"),
            ("saved.txt", smime),
            (
                "a.emlx",
                b"1234\nSubject: s\nContent-Type: application/pkcs7-mime\n\nMIAG\n",
            ),
            ("notes.txt", b"keys to rotate: pkcs7 and mime are words\n"),
        ];
        let got = read_tree(&src, &files);
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(got[0].0.starts_with("a.emlx: mentions S/MIME"), "{got:?}");
        assert_eq!(got[0].1, None);
        assert_eq!(got[1], ("inbox/1".into(), Some(ItemKind::Message)));
        assert_eq!(got[2], ("inbox/2".into(), Some(ItemKind::Passthrough)));
        assert_eq!(got[3], ("notes.txt".into(), Some(ItemKind::Passthrough)));
        assert_eq!(got[4], ("saved.txt".into(), Some(ItemKind::Message)));
    }

    #[test]
    fn mailboxes_inside_a_tree_are_reported_not_copied() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("exports");
        let files: [(&str, &[u8]); 8] = [
            ("a.eml", b"Subject: a\n\nA"),
            (
                "alice.mbox",
                b"From alice@example.org Mon Jun  3 12:50:27 1996\nSubject: x\n\nx\n",
            ),
            (
                "Inbox",
                b"\xEF\xBB\xBFFrom - Mon Jun  3 12:50:27 1996\r\nSubject: y\r\n\r\ny\r\n",
            ),
            ("bob/cur/1.host:2,S", b"Subject: b\n\nB"),
            ("bob/new/.keep", b""),
            ("carol.pst", b"!BDN\x00\x00"),
            ("letter.txt", b"From Russia with love\n"),
            (
                "z/c.eml",
                b"From alice@example.org Mon Jun  3 12:50:27 1996\nSubject: c\n\nC",
            ),
        ];
        let got = read_tree(&src, &files);
        let ids: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(got.len(), 7, "{ids:?}");
        // Plain files and .eml messages as before, an .eml with a From_ line included.
        assert_eq!(got[1], ("a.eml".into(), Some(ItemKind::Message)));
        assert_eq!(got[5], ("letter.txt".into(), Some(ItemKind::Passthrough)));
        assert_eq!(got[6], ("z/c.eml".into(), Some(ItemKind::Message)));
        // The mailboxes: errors naming each and the way out; the Maildir's files not walked.
        for (i, name, what) in [
            (0, "Inbox", "an mbox mailbox"),
            (2, "alice.mbox", "an mbox mailbox"),
            (3, "bob", "a Maildir"),
            (4, "carol.pst", "a PST file"),
        ] {
            let (msg, kind) = &got[i];
            assert_eq!(*kind, None, "{msg}");
            assert!(
                msg.starts_with(&format!("{name}: {what} inside the folder")),
                "{msg}"
            );
            assert!(msg.contains("decrypt it as an input of its own"), "{msg}");
            assert!(msg.contains(&src.join(name).display().to_string()), "{msg}");
        }
        assert!(
            !ids.iter().any(|i| i.starts_with("bob/")),
            "Maildir files walked: {ids:?}"
        );
    }

    #[test]
    fn round_trip_keeps_paths_kinds_and_mtimes() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("export");
        let files: [(&str, &[u8], u64); 5] = [
            ("a.eml", b"Subject: a\n\nA", 1_000_000_000),
            ("sub/dir/b.EML", b"Subject: b\n\nB", 1_100_000_000),
            ("sub/notes.txt", b"not mail", 1_200_000_000),
            ("sub/z/c.eml", b"", 1_300_000_000),
            ("0first.bin", &[0, 159, 146, 150], 900_000_000),
        ];
        for (rel, data, secs) in files {
            let p = src.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, data).unwrap();
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
                .unwrap();
        }
        fs::create_dir_all(src.join("empty/dir")).unwrap();
        let items: Vec<Item> = TreeReader::open(&src)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let ids: Vec<(&str, ItemKind)> = items.iter().map(|i| (i.id.as_str(), i.kind)).collect();
        assert_eq!(
            ids,
            [
                ("0first.bin", ItemKind::Passthrough),
                ("a.eml", ItemKind::Message),
                ("sub/dir/b.EML", ItemKind::Message),
                ("sub/notes.txt", ItemKind::Passthrough),
                ("sub/z/c.eml", ItemKind::Message),
            ]
        );
        let out = d.path().join("out");
        let mut sink = crate::create_sink(crate::OutFormat::EmlTree, &src, &out).unwrap();
        for it in &items {
            sink.write(&it.meta, it.bytes()).unwrap();
        }
        let root = sink.finish().unwrap();
        for (rel, data, secs) in files {
            let p = root.join(rel);
            assert_eq!(fs::read(&p).unwrap(), data, "{rel}");
            assert_eq!(
                fs::metadata(&p).unwrap().modified().unwrap(),
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
                "{rel}"
            );
        }
    }

    #[test]
    fn output_inside_input_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("t");
        fs::create_dir_all(&src).unwrap();
        assert!(crate::create_sink(crate::OutFormat::EmlTree, &src, &src.join("out")).is_err());
        assert!(crate::create_sink(crate::OutFormat::EmlTree, &src, d.path()).is_err());
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut s = TreeSink::create(&d.path().join("o")).unwrap();
        for bad in ["../x", "/etc/x", "a/../../x", ""] {
            let meta = Meta {
                location: Location::Tree {
                    rel_path: bad.into(),
                },
                mtime: None,
            };
            assert!(s.write(&meta, b"x").is_err(), "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_reported_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("t");
        fs::create_dir_all(&src).unwrap();
        fs::write(d.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), src.join("link.eml")).unwrap();
        let r: Vec<_> = TreeReader::open(&src).unwrap().collect();
        assert_eq!(r.len(), 1);
        let e = r.into_iter().next().unwrap().unwrap_err();
        assert!(
            e.to_string().starts_with("link.eml: not a regular file"),
            "{e}"
        );
    }
}
