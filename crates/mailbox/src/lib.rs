//! unseal-mailbox: reads mail containers item by item and writes them back in the same shape.
//! No cryptography lives here: a [`Source`] yields [`Item`]s (bytes plus the [`Meta`] needed to
//! put them back), the CLI decrypts the bytes, and a [`Sink`] writes the results under an output
//! root, never touching the input. See docs/formats.md for every format's rules.

pub mod atomic;
mod body;
pub mod date;
pub mod detect;
pub mod error;
pub mod maildir;
pub mod mbox;
pub mod pst_source;
pub mod single;
pub mod tree;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use body::Body;
pub use detect::detect;
pub use error::Error;
pub use maildir::{MaildirMeta, MaildirSub};
pub use mbox::{Eol, MboxMeta, MboxVariant};

/// Container formats this crate can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Any mbox variant (mboxo, mboxrd, mboxcl, mboxcl2; LF or CRLF), detected per file.
    Mbox,
    /// Maildir or Maildir++ (a folder with cur/ and new/, subfolders `.Name`).
    Maildir,
    /// A folder of .eml files at any depth; other files are copied unchanged.
    EmlTree,
    /// One RFC 5322 message file.
    Eml,
    /// One CMS blob (DER, BER, PEM or bare base64).
    P7m,
    /// Outlook .msg (compound file).
    Msg,
    /// Outlook .pst / .ost.
    Pst,
}

/// What an item's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// An RFC 5322 message: decrypt the S/MIME parts inside it.
    Message,
    /// A raw CMS ContentInfo (DER/BER): decrypt it and write the content.
    Cms,
    /// Not mail (a stray file in a tree, maildir bookkeeping, bytes before the first mbox
    /// message): copy unchanged.
    Passthrough,
}

/// Where an item came from, in enough detail for a [`Sink`] to put it back the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A message in an mbox file.
    Mbox(MboxMeta),
    /// Bytes of an mbox file before its first From_ line (a byte-order mark, junk).
    MboxPreamble,
    /// A file in a Maildir.
    Maildir(MaildirMeta),
    /// A file in an EML tree, relative to the tree root.
    Tree { rel_path: PathBuf },
    /// A single-file input (.eml, .p7m, .msg): the input file name.
    File { name: PathBuf },
    /// A message from a PST: its folder path (top of the store excluded) and node id.
    Pst {
        folder_path: Vec<String>,
        node_id: u32,
        /// Maildir flag letters for the message's state ("RS" = replied, seen).
        flags: String,
    },
}

/// What a sink needs to write an item back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub location: Location,
    /// Modification time of the input file, restored on the output file where one exists.
    pub mtime: Option<SystemTime>,
}

/// One unit of work: a message, a CMS blob, or a file to copy.
#[derive(Debug)]
pub struct Item {
    /// Stable id relative to the input: "17" (mbox index), "cur/123.host:2,S", "sub/a.eml".
    pub id: String,
    pub kind: ItemKind,
    pub meta: Meta,
    body: Body,
}

impl Item {
    pub fn new(id: String, kind: ItemKind, meta: Meta, body: Body) -> Item {
        Item {
            id,
            kind,
            meta,
            body,
        }
    }

    /// The item's bytes (for mbox: already un-quoted).
    pub fn bytes(&self) -> &[u8] {
        self.body.bytes()
    }

    /// Drops the resident pages behind `range` of [`Item::bytes`] (see [`Body::release`]).
    pub fn release_pages(&self, range: std::ops::Range<usize>) {
        self.body.release(range)
    }

    /// Gives up the bytes, copying only if they are memory-mapped.
    pub fn into_vec(self) -> Vec<u8> {
        self.body.into_vec()
    }
}

/// A stream of items in input order. Errors about one item do not end the stream unless the
/// container itself became unreadable (then iteration stops after that error).
pub trait Source: Iterator<Item = Result<Item, Error>> + Send {}
impl<T: Iterator<Item = Result<Item, Error>> + Send> Source for T {}

/// Opens `path` as `format`.
pub fn open(path: &Path, format: Format) -> Result<Box<dyn Source>, Error> {
    match format {
        Format::Mbox => Ok(Box::new(mbox::MboxReader::open(path, None)?)),
        Format::Maildir => Ok(Box::new(maildir::MaildirReader::open(path)?)),
        Format::EmlTree => Ok(Box::new(tree::TreeReader::open(path)?)),
        Format::Eml | Format::P7m | Format::Msg => Ok(Box::new(single::open(path, format)?)),
        Format::Pst => Ok(Box::new(pst_source::PstSource::open(path)?)),
    }
}

/// Output shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutFormat {
    /// One mbox file, same variant and line endings as the input items.
    Mbox,
    /// A Maildir(++) tree; PST folders become `.Folder.Sub`.
    Maildir,
    /// A folder tree of files at the items' relative paths.
    EmlTree,
    /// One file for a single-file input (.eml, .p7m content, .msg as .eml).
    File,
    /// One mbox per PST folder, Thunderbird layout (`Inbox`, `Inbox.sbd/Sub`); no resume.
    MboxPerFolder,
}

impl OutFormat {
    /// The output shape that mirrors an input format.
    pub fn for_input(f: Format) -> OutFormat {
        match f {
            Format::Mbox => OutFormat::Mbox,
            Format::Maildir | Format::Pst => OutFormat::Maildir,
            Format::EmlTree => OutFormat::EmlTree,
            Format::Eml | Format::P7m | Format::Msg => OutFormat::File,
        }
    }
}

/// What a [`Fill`] returns when it cannot go on.
pub type FillError = Box<dyn std::error::Error + Send + Sync>;

/// Writes a streamed item's bytes into the writer a [`Sink`] hands it.
pub type Fill<'f> = dyn FnMut(&mut (dyn std::io::Write + Send)) -> Result<(), FillError> + 'f;

/// A streamed write that the sink completed: `Err` when the producer failed (and nothing of
/// the item remains in the output).
pub type Filled = Result<(), FillError>;

/// Receives items' final bytes in input order and writes them under the output root.
pub trait Sink: Send {
    /// Writes one item. `meta` is the item's [`Meta`] from the source.
    fn write(&mut self, meta: &Meta, body: &[u8]) -> Result<(), Error>;

    /// Writes an item whose bytes are exactly as the source yielded them (plain, or left
    /// encrypted for want of a key). A sink may then keep framing it would otherwise
    /// normalise, so the copy is byte-identical: an mbox keeps a Content-Length header even
    /// when it is wrong, as old Netscape mailboxes have them.
    fn write_unchanged(&mut self, meta: &Meta, body: &[u8]) -> Result<(), Error> {
        self.write(meta, body)
    }

    /// Whether [`Sink::write_streamed`] takes this item. Not where a Content-Length header
    /// must precede the body (mboxcl, mboxcl2) or where items go to several files (PST to mbox).
    fn can_stream(&self, _meta: &Meta) -> bool {
        false
    }

    /// Writes one item whose bytes `fill` produces piece by piece, so that a large item is
    /// never whole in memory. When `fill` fails, whatever it wrote is discarded, the sink is as
    /// it was before, and its error comes back as `Ok(Err(_))`; `Err(_)` is the sink's own.
    fn write_streamed(&mut self, meta: &Meta, _fill: &mut Fill<'_>) -> Result<Filled, Error> {
        Err(Error::unsupported(
            self.output().display(),
            format!(
                "{:?}: this output cannot take a streamed item",
                meta.location
            ),
        ))
    }

    /// What a reader of this output will yield for `body` written by [`Sink::write`], when that
    /// differs from `body` (an mbox with Content-Length headers rewrites them): the bytes whose
    /// hash `verify` will find. `None` when the copy reads back as `body`.
    fn stored_form(&self, _meta: &Meta, _body: &[u8]) -> Option<Vec<u8>> {
        None
    }

    /// A copy an earlier run wrote for this item under another name, which a mail client has
    /// since changed in the input (a Maildir message moved from new/ to cur/, or given other
    /// flags): renames that copy to this item's name (durable at the next [`Sink::sync`]) and
    /// returns true; false when there is no such copy, or more than one.
    fn rename_earlier(&mut self, _meta: &Meta) -> Result<bool, Error> {
        Ok(false)
    }

    /// Whether this item's output already exists (per-file sinks; lets a resumed run skip it).
    fn already_written(&self, _meta: &Meta) -> bool {
        false
    }

    /// Bytes written so far (mbox) — record it in the journal after [`Sink::sync`].
    fn position(&self) -> u64 {
        0
    }

    /// Makes everything written so far durable.
    fn sync(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Continues an interrupted run: drops output after `position` (a value [`Sink::position`]
    /// returned after a [`Sink::sync`]). Must be called before the first write.
    fn resume(&mut self, _position: u64) -> Result<(), Error> {
        Ok(())
    }

    /// Where the output goes (final name).
    fn output(&self) -> &Path;

    /// Completes the output (mbox: renames the partial file to its final name).
    fn finish(self: Box<Self>) -> Result<PathBuf, Error>;
}

/// Creates the sink for `input` under `out_root`: `out_root/B` where B is the input's base
/// name (single files: see [`single::output_name`]). Refuses an output that is, or lies inside,
/// the input.
pub fn create_sink(
    format: OutFormat,
    input: &Path,
    out_root: &Path,
) -> Result<Box<dyn Sink>, Error> {
    let name = input
        .file_name()
        .ok_or_else(|| Error::unsupported(input.display(), "input has no file name"))?;
    atomic::create_dir_all_private(out_root)
        .map_err(|e| Error::io_path(out_root, "create output folder", e))?;
    let target = match format {
        OutFormat::File => out_root.join(single::output_name(Path::new(name))),
        // A PST becomes a folder tree: `archive.pst` -> `archive/`, not a folder named ".pst".
        OutFormat::Maildir | OutFormat::MboxPerFolder if is_pst_name(input) => {
            out_root.join(input.file_stem().unwrap_or(name))
        }
        _ => out_root.join(name),
    };
    guard_not_inside(input, out_root, &target)?;
    match format {
        OutFormat::Mbox => Ok(Box::new(mbox::MboxSink::create(&target)?)),
        OutFormat::Maildir => Ok(Box::new(maildir::MaildirSink::create(&target)?)),
        OutFormat::EmlTree => Ok(Box::new(tree::TreeSink::create(&target)?)),
        OutFormat::File if is_p7m_name(input) => Ok(Box::new(single::FileSink::for_p7m(
            &target,
            &out_root.join(name),
        ))),
        OutFormat::File => Ok(Box::new(single::FileSink::new(&target))),
        OutFormat::MboxPerFolder => Ok(Box::new(mbox::MboxFolderSink::create(&target)?)),
    }
}

fn is_p7m_name(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("p7m") || e.eq_ignore_ascii_case("p7"))
}

/// Originals are never touched: the output must not be the input or inside it, and the input
/// must not be inside the output folder we are about to fill.
fn guard_not_inside(input: &Path, out_root: &Path, target: &Path) -> Result<(), Error> {
    let inp = input
        .canonicalize()
        .map_err(|e| Error::io_path(input, "resolve input path", e))?;
    let root = out_root
        .canonicalize()
        .map_err(|e| Error::io_path(out_root, "resolve output path", e))?;
    let tgt = match target.file_name() {
        Some(n) => root.join(n),
        None => root.clone(),
    };
    if tgt == inp || root.starts_with(&inp) || inp.starts_with(&tgt) {
        return Err(Error::unsupported(
            target.display(),
            format!("output would overlap the input {}", input.display()),
        ));
    }
    Ok(())
}

fn is_pst_name(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pst") || e.eq_ignore_ascii_case("ost"))
}

/// Modification time of a file, if the platform has one.
pub(crate) fn mtime_of(md: &std::fs::Metadata) -> Option<SystemTime> {
    md.modified().ok()
}
pub mod msg;
pub mod pst;

/// Writes each (relative path, bytes) under `root`, making folders: test trees and Maildirs.
#[cfg(test)]
pub(crate) fn write_test_files(root: &Path, files: &[(&str, &[u8])]) {
    for (rel, data) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    }
}
