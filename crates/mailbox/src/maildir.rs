//! Maildir and Maildir++ (Courier/Dovecot): a folder with `cur/`, `new/`, `tmp/`; subfolders are
//! sibling folders named `.Name` or `.Name.Sub` at the top level. Messages keep their file
//! names (the unique part and the `:2,FLAGS` info) and modification times. Files in `tmp/` are
//! deliveries in progress and are ignored; names starting with "." in cur/new are ignored as the
//! Maildir spec says. Other plain files at a folder's top (dovecot-uidlist, maildirfolder,
//! subscriptions, keyword lists) are copied unchanged so UIDs and keywords survive; Dovecot's
//! `dovecot.index*` caches are skipped because they describe the encrypted originals and are
//! rebuilt by Dovecot.
//!
//! Hand-written because the format is only a directory convention; the maildir crates available
//! deliver into a maildir rather than enumerating one read-only in a stable order.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::atomic;
use crate::body::load_file;
use crate::{Error, Fill, Filled, Item, ItemKind, Location, Meta, Sink};

/// `cur` or `new`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaildirSub {
    Cur,
    New,
}

impl MaildirSub {
    pub fn as_str(self) -> &'static str {
        match self {
            MaildirSub::Cur => "cur",
            MaildirSub::New => "new",
        }
    }
}

/// A file's place in a Maildir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildirMeta {
    /// "" for the top folder, ".Name" / ".Name.Sub" for Maildir++ subfolders.
    pub folder: String,
    /// `Some` for messages, `None` for a bookkeeping file at the folder's top.
    pub sub: Option<MaildirSub>,
    /// File name, kept exactly (with `:2,FLAGS`).
    pub name: String,
}

impl MaildirMeta {
    /// Path relative to the maildir root.
    pub fn rel_path(&self) -> PathBuf {
        let mut p = PathBuf::new();
        if !self.folder.is_empty() {
            p.push(&self.folder);
        }
        if let Some(s) = self.sub {
            p.push(s.as_str());
        }
        p.push(&self.name);
        p
    }

    /// The flags after `:2,` (e.g. "RS"), empty if none.
    pub fn flags(&self) -> &str {
        match self.name.rsplit_once(":2,") {
            Some((_, f)) => f,
            None => "",
        }
    }

    /// A path-safe id: "cur/123.host:2,S", ".Sub/new/456.host".
    pub fn id(&self) -> String {
        let mut s = String::new();
        if !self.folder.is_empty() {
            s.push_str(&self.folder);
            s.push('/');
        }
        if let Some(sub) = self.sub {
            s.push_str(sub.as_str());
            s.push('/');
        }
        s.push_str(&self.name);
        s
    }

    /// What stays the same while a mail client works on the message: its folder and the unique
    /// part of its name, before the `:` that starts the info (flags). Moving it from new/ to
    /// cur/ or changing its flags renames the file; this does not change. `None` for a
    /// bookkeeping file.
    pub fn identity(&self) -> Option<String> {
        self.sub?;
        Some(identity(&self.folder, &self.name))
    }
}

fn identity(folder: &str, name: &str) -> String {
    let unique = name.split_once(':').map_or(name, |(u, _)| u);
    format!("{folder}/{unique}")
}

/// [`MaildirMeta::identity`] of the message whose [`MaildirMeta::id`] is `id` (as journals and
/// reports record it); `None` for an id that names no message in cur/ or new/.
pub fn identity_of_id(id: &str) -> Option<String> {
    let (dir, name) = id.rsplit_once('/')?;
    let folder = match dir.rsplit_once('/') {
        Some((folder, sub)) if sub == "cur" || sub == "new" => folder,
        None if dir == "cur" || dir == "new" => "",
        _ => return None,
    };
    Some(identity(folder, name))
}

/// Whether `dir` looks like a maildir folder (has cur/ and new/).
pub fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() && dir.join("new").is_dir()
}

/// Whether a name is safe as one path component we create (no separators, not "." / "..").
pub(crate) fn safe_component(name: &str) -> bool {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || (cfg!(windows) && name.contains('\\'));
    !bad
}

/// Lists a maildir read-only in a stable order: folder "" first, then subfolders sorted by
/// name; in each folder its bookkeeping files, then cur/, then new/, each sorted by name.
pub struct MaildirReader {
    root: PathBuf,
    entries: std::vec::IntoIter<Result<MaildirMeta, Error>>,
}

/// The entries of `dir` sorted by name. Maildir names are ASCII by construction: an entry whose
/// name is not UTF-8 cannot be carried to the output under its own name, so it becomes an error
/// entry in `bad` (and its path goes into `unread`), never a file read under a mangled name.
fn sorted_names(
    dir: &Path,
    bad: &mut Vec<Result<MaildirMeta, Error>>,
    unread: &mut HashSet<PathBuf>,
) -> Result<Vec<(String, fs::FileType)>, Error> {
    let rd = fs::read_dir(dir).map_err(|e| Error::io_path(dir, "list folder", e))?;
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io_path(dir, "list folder", e))?;
        let ft = e
            .file_type()
            .map_err(|er| Error::io_path(&e.path(), "stat", er))?;
        match e.file_name().into_string() {
            Ok(n) => v.push((n, ft)),
            Err(_) => {
                bad.push(Err(Error::unsupported(
                    e.path().display(),
                    "the name is not UTF-8, which a Maildir name never is; it is not decrypted \
                     or copied. Rename it and run again",
                )));
                unread.insert(e.path());
            }
        }
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

impl MaildirReader {
    pub fn open(root: &Path) -> Result<MaildirReader, Error> {
        if !is_maildir(root) {
            return Err(Error::format(
                root.display(),
                "not a maildir (no cur/ and new/)",
            ));
        }
        let mut folders = vec![String::new()];
        let mut bad = Vec::new();
        let mut unread = HashSet::new();
        for (name, ft) in sorted_names(root, &mut bad, &mut unread)? {
            // A Maildir++ folder with cur/ but no new/ (or the reverse) is still a folder:
            // skipping it would leave its messages out without a word.
            let dir = root.join(&name);
            if ft.is_dir()
                && name.starts_with('.')
                && name != "."
                && name != ".."
                && (dir.join("cur").is_dir() || dir.join("new").is_dir())
            {
                folders.push(name);
            }
        }
        let mut entries = Vec::new();
        for folder in folders {
            let fdir = if folder.is_empty() {
                root.to_path_buf()
            } else {
                root.join(&folder)
            };
            match sorted_names(&fdir, &mut bad, &mut unread) {
                Ok(names) => {
                    for (name, ft) in names {
                        if ft.is_file()
                            && !name.starts_with("dovecot.index")
                            && !name.starts_with(atomic::TEMP_PREFIX)
                        {
                            entries.push(Ok(MaildirMeta {
                                folder: folder.clone(),
                                sub: None,
                                name,
                            }));
                        }
                    }
                }
                Err(e) => entries.push(Err(e)),
            }
            for sub in [MaildirSub::Cur, MaildirSub::New] {
                let sdir = fdir.join(sub.as_str());
                if !folder.is_empty() && !sdir.exists() {
                    continue;
                }
                match sorted_names(&sdir, &mut bad, &mut unread) {
                    Ok(names) => {
                        for (name, ft) in names {
                            if name.starts_with('.') {
                                continue;
                            }
                            if !ft.is_file() {
                                entries.push(Err(Error::format(
                                    sdir.join(&name).display(),
                                    "not a regular file; skipped",
                                )));
                                continue;
                            }
                            entries.push(Ok(MaildirMeta {
                                folder: folder.clone(),
                                sub: Some(sub),
                                name,
                            }));
                        }
                    }
                    Err(e) => entries.push(Err(e)),
                }
            }
        }
        let stray = stray_smime(root, &entries, &unread);
        entries.extend(bad);
        entries.extend(stray);
        Ok(MaildirReader {
            root: root.to_path_buf(),
            entries: entries.into_iter(),
        })
    }
}

/// Files of the Maildir that are not its messages or bookkeeping (in `tmp/`, in a folder that
/// is not `cur/`, `new/` or a `.Folder`, like `archive/2019/`) and that mention S/MIME: each is
/// an error entry. They are not read as messages, and left out without a word they would let
/// `verify` call the mailbox safe while they stay encrypted.
fn stray_smime(
    root: &Path,
    listed: &[Result<MaildirMeta, Error>],
    unread: &HashSet<PathBuf>,
) -> Vec<Result<MaildirMeta, Error>> {
    let known: HashSet<PathBuf> = listed
        .iter()
        .filter_map(|e| e.as_ref().ok().map(MaildirMeta::rel_path))
        .collect();
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
    {
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let name = entry.file_name().to_string_lossy();
        if known.contains(rel)
            || unread.iter().any(|u| entry.path().starts_with(u))
            || name.starts_with(atomic::TEMP_PREFIX)
            || name.starts_with("dovecot.index")
        {
            continue;
        }
        let Ok(body) = load_file(entry.path()) else {
            continue;
        };
        if crate::detect::mentions_smime(body.bytes())
            || crate::detect::mentions_uuencode(body.bytes())
        {
            out.push(Err(Error::unsupported(
                rel.display(),
                "looks like S/MIME (pkcs7-mime, .p7m, an envelope or a uuencoded block) but is not a message of this Maildir (only cur/ \
                 and new/ of the top and of .Folder folders are); it is not decrypted or copied. \
                 Move it into a cur/ folder, or decrypt it as an input of its own",
            )));
        } else if let Some(kind) = crate::detect::compression(body.bytes()) {
            out.push(Err(Error::unsupported(
                rel.display(),
                format!(
                    "{kind}-compressed, outside the Maildir's messages (only cur/ and new/ of \
                     the top and of .Folder folders are): not looked into, so not proven free \
                     of encrypted mail, and not copied. Decompress or extract it and decrypt \
                     what it holds"
                ),
            )));
        }
    }
    out
}

impl Iterator for MaildirReader {
    type Item = Result<Item, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let m = match self.entries.next()? {
            Ok(m) => m,
            Err(e) => return Some(Err(e)),
        };
        let path = self.root.join(m.rel_path());
        let mtime = fs::symlink_metadata(&path)
            .ok()
            .and_then(|md| md.modified().ok());
        let kind = if m.sub.is_some() {
            ItemKind::Message
        } else {
            ItemKind::Passthrough
        };
        Some(load_file(&path).map(|body| {
            Item::new(
                m.id(),
                kind,
                Meta {
                    location: Location::Maildir(m),
                    mtime,
                },
                body,
            )
        }))
    }
}

/// Writes a Maildir(++) tree, one file at a time, atomically.
pub struct MaildirSink {
    root: PathBuf,
    made: HashSet<String>,
    pending: atomic::DeferredSync,
    /// Per output folder, listed on first need: the files an earlier run left in its cur/ and
    /// new/, by [`MaildirMeta::identity`] (`None`: more than one file has it).
    earlier: HashMap<String, HashMap<String, Option<PathBuf>>>,
}

impl MaildirSink {
    pub fn create(root: &Path) -> Result<MaildirSink, Error> {
        let mut s = MaildirSink {
            root: root.to_path_buf(),
            made: HashSet::new(),
            pending: atomic::DeferredSync::default(),
            earlier: HashMap::new(),
        };
        s.ensure_folder("")?;
        Ok(s)
    }

    /// Creates folder `folder` ("" or ".A.B") with cur/new/tmp, once.
    fn ensure_folder(&mut self, folder: &str) -> Result<PathBuf, Error> {
        let dir = if folder.is_empty() {
            self.root.clone()
        } else {
            self.root.join(folder)
        };
        if self.made.insert(folder.to_string()) {
            for sub in ["cur", "new", "tmp"] {
                let p = dir.join(sub);
                atomic::create_dir_all_private(&p)
                    .map_err(|e| Error::io_path(&p, "create folder", e))?;
            }
        }
        Ok(dir)
    }

    /// Where an item goes, or an error for metadata this sink cannot place.
    fn target(&self, meta: &Meta) -> Result<(String, Option<MaildirSub>, String), Error> {
        match &meta.location {
            Location::Maildir(m) => {
                let folder_ok =
                    m.folder.is_empty() || (m.folder.starts_with('.') && safe_component(&m.folder));
                if !folder_ok || !safe_component(&m.name) {
                    return Err(Error::format(m.id(), "unsafe maildir path"));
                }
                Ok((m.folder.clone(), m.sub, m.name.clone()))
            }
            Location::Pst {
                folder_path,
                node_id,
                flags,
            } => {
                let folder = pst_folder_name(folder_path);
                let secs = meta
                    .mtime
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                // Unique and stable across runs: time + node id (unique within the PST).
                if !flags.chars().all(|c| c.is_ascii_uppercase()) {
                    return Err(Error::format(
                        format!("node {node_id}"),
                        "bad maildir flags",
                    ));
                }
                Ok((
                    folder,
                    Some(MaildirSub::Cur),
                    format!("{secs}.N{node_id}.unseal:2,{flags}"),
                ))
            }
            other => Err(Error::unsupported(
                format!("{other:?}"),
                "cannot be written into a maildir",
            )),
        }
    }
}

/// The message files in `dir`'s cur/ and new/ by identity (`None` where two share one), for
/// [`MaildirSink::rename_earlier`]. Temporary files of a killed run are left out.
fn identities_in(dir: &Path, folder: &str) -> HashMap<String, Option<PathBuf>> {
    let mut map: HashMap<String, Option<PathBuf>> = HashMap::new();
    for sub in [MaildirSub::Cur, MaildirSub::New] {
        let Ok(entries) = fs::read_dir(dir.join(sub.as_str())) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if name.starts_with(atomic::TEMP_PREFIX) {
                continue;
            }
            map.entry(identity(folder, &name))
                .and_modify(|p| *p = None)
                .or_insert_with(|| Some(e.path()));
        }
    }
    map
}

/// Maildir++ folder name for a PST folder path: ".A.B"; dots and slashes inside a name become
/// "_" because "." is the hierarchy separator.
pub fn pst_folder_name(path: &[String]) -> String {
    let mut s = String::new();
    for part in path {
        s.push('.');
        s.extend(part.chars().map(|c| {
            if c == '.' || c == '/' || c == '\\' || c == '\0' {
                '_'
            } else {
                c
            }
        }));
    }
    s
}

impl MaildirSink {
    /// The output folder that `folder` ("" for the top, ".Sub") names.
    fn folder_dir(&self, folder: &str) -> PathBuf {
        if folder.is_empty() {
            self.root.clone()
        } else {
            self.root.join(folder)
        }
    }

    /// The item's output path, its folder created.
    fn prepare(&mut self, meta: &Meta) -> Result<PathBuf, Error> {
        let (folder, sub, name) = self.target(meta)?;
        let mut dir = self.ensure_folder(&folder)?;
        if let Some(s) = sub {
            dir.push(s.as_str());
        }
        Ok(dir.join(&name))
    }
}

impl Sink for MaildirSink {
    fn write(&mut self, meta: &Meta, body: &[u8]) -> Result<(), Error> {
        let dest = self.prepare(meta)?;
        self.pending.write_item(&dest, meta, body)
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.pending.sync_output(&self.root)
    }

    fn can_stream(&self, _meta: &Meta) -> bool {
        true
    }

    fn write_streamed(&mut self, meta: &Meta, fill: &mut Fill<'_>) -> Result<Filled, Error> {
        let dest = self.prepare(meta)?;
        self.pending.write_item_streamed(&dest, meta, fill)
    }

    fn rename_earlier(&mut self, meta: &Meta) -> Result<bool, Error> {
        let Location::Maildir(m) = &meta.location else {
            return Ok(false);
        };
        let Some(identity) = m.identity() else {
            return Ok(false);
        };
        let (folder, sub, name) = self.target(meta)?;
        let Some(sub) = sub else {
            return Ok(false);
        };
        let dir = self.folder_dir(&folder);
        let dest = dir.join(sub.as_str()).join(&name);
        let index = self
            .earlier
            .entry(folder.clone())
            .or_insert_with(|| identities_in(&dir, &folder));
        let Some(Some(from)) = index.remove(&identity) else {
            return Ok(false);
        };
        if from == dest || dest.exists() || !from.is_file() {
            return Ok(false);
        }
        self.pending
            .rename(&from, &dest)
            .map_err(|e| Error::io_path(&dest, "rename", e))?;
        Ok(true)
    }

    fn already_written(&self, meta: &Meta) -> bool {
        match self.target(meta) {
            Ok((folder, sub, name)) => {
                let mut p = self.folder_dir(&folder);
                if let Some(s) = sub {
                    p.push(s.as_str());
                }
                p.join(name).exists()
            }
            Err(_) => false,
        }
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

    fn meta(folder: &str, sub: Option<MaildirSub>, name: &str) -> MaildirMeta {
        MaildirMeta {
            folder: folder.into(),
            sub,
            name: name.into(),
        }
    }

    #[test]
    fn a_message_keeps_its_identity_through_new_cur_and_flags() {
        let seen = meta("", Some(MaildirSub::Cur), "123.host:2,S");
        let fresh = meta("", Some(MaildirSub::New), "123.host");
        let replied = meta("", Some(MaildirSub::Cur), "123.host:2,RS");
        assert_eq!(seen.identity(), fresh.identity());
        assert_eq!(seen.identity(), replied.identity());
        let sub = meta(".Sub", Some(MaildirSub::Cur), "123.host:2,S");
        assert_ne!(
            sub.identity(),
            seen.identity(),
            "another folder, another message"
        );
        for m in [&seen, &fresh, &replied, &sub] {
            assert_eq!(identity_of_id(&m.id()), m.identity(), "{}", m.id());
        }
        let bookkeeping = meta(".Sub", None, "dovecot-uidlist");
        assert_eq!(bookkeeping.identity(), None);
        assert_eq!(identity_of_id(&bookkeeping.id()), None);
        assert_eq!(identity_of_id("dovecot-uidlist"), None);
    }

    #[test]
    fn an_earlier_copy_is_renamed_to_the_name_the_message_has_now() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("out");
        let at = |m: &MaildirMeta| Meta {
            location: Location::Maildir(m.clone()),
            mtime: None,
        };
        let fresh = meta(".Sub", Some(MaildirSub::New), "1.h");
        let twin = meta(".Sub", Some(MaildirSub::Cur), "2.h:2,S");
        let mut sink = MaildirSink::create(&root).unwrap();
        sink.write(&at(&fresh), b"one").unwrap();
        sink.write(&at(&twin), b"two").unwrap();
        // Two files with one identity: which is the earlier copy is unknown.
        sink.write(&at(&meta(".Sub", Some(MaildirSub::New), "2.h")), b"two")
            .unwrap();
        sink.sync().unwrap();
        drop(sink);

        let mut sink = MaildirSink::create(&root).unwrap();
        let seen = meta(".Sub", Some(MaildirSub::Cur), "1.h:2,S");
        assert!(sink.rename_earlier(&at(&seen)).unwrap());
        sink.sync().unwrap();
        assert_eq!(fs::read(root.join(".Sub/cur/1.h:2,S")).unwrap(), b"one");
        assert!(!root.join(".Sub/new/1.h").exists());
        // Once only; an unknown message and an ambiguous one are not renamed.
        assert!(!sink.rename_earlier(&at(&seen)).unwrap());
        let other = meta(".Sub", Some(MaildirSub::Cur), "9.h:2,S");
        assert!(!sink.rename_earlier(&at(&other)).unwrap());
        let ambiguous = meta(".Sub", Some(MaildirSub::Cur), "2.h:2,RS");
        assert!(!sink.rename_earlier(&at(&ambiguous)).unwrap());
        assert!(root.join(".Sub/cur/2.h:2,S").exists() && root.join(".Sub/new/2.h").exists());
    }

    fn mk(root: &Path, rel: &str, data: &[u8], secs: u64) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        let f = fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn round_trip_keeps_names_flags_folders_and_mtimes() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("Mail");
        for s in [
            "cur",
            "new",
            "tmp",
            ".Work/cur",
            ".Work/new",
            ".Work.Old/cur",
            ".Work.Old/new",
        ] {
            fs::create_dir_all(src.join(s)).unwrap();
        }
        mk(
            &src,
            "cur/1600000000.M1P2.host,S=5:2,RS",
            b"a: b\n\nx",
            1_600_000_000,
        );
        mk(&src, "new/1600000001.M2P2.host", b"new one", 1_600_000_001);
        mk(&src, "tmp/in-progress", b"ignored", 1);
        mk(&src, "cur/.hidden", b"ignored", 1);
        mk(&src, "dovecot-uidlist", b"3 V1 N3\n", 5);
        mk(&src, "dovecot.index.cache", b"derived", 5);
        mk(&src, ".Work/maildirfolder", b"", 7);
        mk(&src, ".Work/cur/1.a:2,", b"work", 1_500_000_000);
        mk(&src, ".Work.Old/cur/2.b:2,FS", b"old", 1_400_000_000);
        fs::create_dir_all(src.join("notafolder")).unwrap();

        let items: Vec<Item> = MaildirReader::open(&src)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "dovecot-uidlist",
                "cur/1600000000.M1P2.host,S=5:2,RS",
                "new/1600000001.M2P2.host",
                ".Work/maildirfolder",
                ".Work/cur/1.a:2,",
                ".Work.Old/cur/2.b:2,FS",
            ]
        );
        assert_eq!(items[0].kind, ItemKind::Passthrough);
        assert_eq!(items[1].kind, ItemKind::Message);
        let Location::Maildir(m) = &items[1].meta.location else {
            panic!()
        };
        assert_eq!(m.flags(), "RS");
        let Location::Maildir(m) = &items[5].meta.location else {
            panic!()
        };
        assert_eq!(m.flags(), "FS");

        let out = d.path().join("out");
        fs::create_dir_all(&out).unwrap();
        let mut sink = crate::create_sink(crate::OutFormat::Maildir, &src, &out).unwrap();
        for it in &items {
            assert!(!sink.already_written(&it.meta));
            sink.write(&it.meta, it.bytes()).unwrap();
            assert!(sink.already_written(&it.meta));
        }
        let root = sink.finish().unwrap();
        assert_eq!(root, out.join("Mail"));
        let again: Vec<Item> = MaildirReader::open(&root)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(again.len(), items.len());
        for (a, b) in items.iter().zip(&again) {
            assert_eq!(a.id, b.id);
            assert_eq!(a.bytes(), b.bytes());
            assert_eq!(a.meta, b.meta);
        }
        assert!(root.join("tmp").is_dir() && root.join(".Work.Old/tmp").is_dir());
        assert!(!root.join("dovecot.index.cache").exists());
    }

    #[test]
    fn smime_outside_cur_and_new_is_reported_and_half_made_folders_are_read() {
        let d = tempfile::tempdir().unwrap();
        let md = d.path().join("md");
        let smime: &[u8] = b"Subject: s\nContent-Type: application/pkcs7-mime\n\nMIAG\n";
        let files: [(&str, &[u8]); 6] = [
            ("cur/1.a:2,S", smime),
            ("new/.keep", b""),
            ("tmp/2.a", smime),
            ("archive/2019/old.eml", smime),
            (".Archive/cur/5.b:2,S", smime),
            ("courierimapkeywords/:list", b"$Label1\n"),
        ];
        crate::write_test_files(&md, &files);
        let got: Vec<Result<(String, ItemKind), String>> = MaildirReader::open(&md)
            .unwrap()
            .map(|r| r.map(|i| (i.id, i.kind)).map_err(|e| e.to_string()))
            .collect();
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], Ok(("cur/1.a:2,S".into(), ItemKind::Message)));
        // .Archive has cur/ but no new/: still a folder, its message read.
        assert_eq!(
            got[1],
            Ok((".Archive/cur/5.b:2,S".into(), ItemKind::Message))
        );
        for (i, rel) in [(2, "archive/2019/old.eml"), (3, "tmp/2.a")] {
            let e = got[i].as_ref().unwrap_err();
            assert!(e.starts_with(&format!("{rel}: looks like S/MIME")), "{e}");
        }
    }

    #[test]
    fn uuencoded_and_compressed_files_outside_cur_and_new_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let md = d.path().join("md");
        let uu: &[u8] = b"Subject: s\n\nhere:\nbegin 644 x.bin\nM,(`&\n`\nend\n";
        let not_uu: &[u8] = b"Subject: s\n\nwe begin 644 tomorrow\n";
        let files: [(&str, &[u8]); 5] = [
            ("cur/1.a:2,S", b"Subject: plain\n\nhi\n"),
            ("new/.keep", b""),
            ("tmp/2.a", uu),
            ("archive/cur/3.a:2,S", b"\x28\xb5\x2f\xfd zstd frame"),
            ("archive/cur/4.a:2,S", not_uu),
        ];
        crate::write_test_files(&md, &files);
        let got: Vec<Result<String, String>> = MaildirReader::open(&md)
            .unwrap()
            .map(|r| r.map(|i| i.id).map_err(|e| e.to_string()))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], Ok("cur/1.a:2,S".into()));
        let errors: Vec<&String> = got.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("archive/cur/3.a:2,S: zstd-compressed")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("tmp/2.a: looks like S/MIME")),
            "{errors:?}"
        );
    }

    #[test]
    fn pst_items_get_maildirpp_folders() {
        assert_eq!(
            pst_folder_name(&["Inbox".into(), "a.b/c".into()]),
            ".Inbox.a_b_c"
        );
        let d = tempfile::tempdir().unwrap();
        let mut s = MaildirSink::create(&d.path().join("x")).unwrap();
        let meta = Meta {
            location: Location::Pst {
                folder_path: vec!["Inbox".into(), "Sub".into()],
                node_id: 2097252,
                flags: "RS".into(),
            },
            mtime: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000)),
        };
        s.write(&meta, b"m").unwrap();
        assert_eq!(
            fs::read(d.path().join("x/.Inbox.Sub/cur/1000.N2097252.unseal:2,RS")).unwrap(),
            b"m"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_name_that_is_not_utf8_is_an_error_entry_not_a_mangled_read() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("Mail");
        mk(&root, "cur/1.a:2,S", b"Subject: ok\n\nfine\n", 10);
        fs::create_dir_all(root.join("new")).unwrap();
        let odd = root
            .join("cur")
            .join(std::ffi::OsStr::from_bytes(b"2.caf\xe9:2,S"));
        fs::write(&odd, b"Content-Type: application/pkcs7-mime\n\nx\n").unwrap();
        let items: Vec<_> = MaildirReader::open(&root).unwrap().collect();
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(items.iter().filter(|i| i.is_ok()).count() == 1);
        let e = items.iter().find_map(|i| i.as_ref().err()).unwrap();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }

    #[test]
    fn hostile_names_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut s = MaildirSink::create(&d.path().join("x")).unwrap();
        for (folder, name) in [("", ".."), ("..", "a"), (".a/../..", "b"), ("", "a/b")] {
            let meta = Meta {
                location: Location::Maildir(MaildirMeta {
                    folder: folder.into(),
                    sub: Some(MaildirSub::Cur),
                    name: name.into(),
                }),
                mtime: None,
            };
            assert!(s.write(&meta, b"x").is_err(), "{folder} {name}");
        }
    }
}
