//! Outlook `.msg` files ([MS-OXMSG], a CFB container) to MIME.
//!
//! No cryptography here: for S/MIME items (`IPM.Note.SMIME*`) the output is the original
//! S/MIME message (transport headers + the `smime.p7m` attachment as
//! `application/pkcs7-mime`, or the stored `multipart/signed` entity verbatim); other items
//! become an ordinary MIME message built from their properties.

use std::fmt;
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

mod mime;
pub(crate) mod model;
mod rtf;

use model::{AttachmentContent, MapiAttachment, MapiMessage, PropBag, PropValue, tag};

pub(crate) use mime::build as build_mime;

/// A `.msg` converted to MIME.
#[derive(Clone, Debug)]
pub struct MsgConverted {
    /// The reconstructed RFC 5322 / MIME message (CRLF line endings in the parts we generate).
    pub mime: Vec<u8>,
    /// PR_MESSAGE_CLASS, e.g. `IPM.Note`, `IPM.Note.SMIME`, `IPM.Note.SMIME.MultipartSigned`.
    pub message_class: String,
    /// True when the body of `mime` is the S/MIME payload (application/pkcs7-mime or the
    /// stored multipart/signed entity).
    pub is_smime: bool,
}

/// Why a `.msg` could not be converted.
#[derive(Debug)]
pub enum MsgError {
    /// Not a compound file, or the CFB structure is damaged.
    Container(String),
    /// A CFB stream could not be read (path inside the container, reason).
    Stream { stream: String, reason: String },
    /// The file has no `__properties_version1.0` stream and no `__substg1.0_` streams.
    NotAMessage,
    /// The reader hit an internal failure on malformed input (reported, not propagated).
    Malformed(String),
}

impl fmt::Display for MsgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsgError::Container(r) => write!(f, "not a readable Outlook .msg (CFB): {r}"),
            MsgError::Stream { stream, reason } => {
                write!(f, ".msg stream {stream:?} unreadable: {reason}")
            }
            MsgError::NotAMessage => {
                write!(
                    f,
                    "CFB file has no MAPI property streams (not an Outlook .msg)"
                )
            }
            MsgError::Malformed(r) => write!(f, "malformed .msg: {r}"),
        }
    }
}

impl std::error::Error for MsgError {}

/// Convert an Outlook `.msg` file to MIME.
pub fn msg_to_mime(bytes: &[u8]) -> Result<MsgConverted, MsgError> {
    let msg = catch_unwind(AssertUnwindSafe(|| read_msg(bytes))).map_err(|p| {
        MsgError::Malformed(
            p.downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "reader panicked".to_owned()),
        )
    })??;
    let built = build_mime(&msg);
    Ok(MsgConverted {
        mime: built.mime,
        message_class: built.message_class,
        is_smime: built.is_smime,
    })
}

/// PidTagAttachMethod of an OLE object.
const ATTACH_OLE: i64 = 6;

/// Nesting limit for embedded messages.
const MAX_EMBED_DEPTH: usize = 16;

fn read_msg(bytes: &[u8]) -> Result<MapiMessage, MsgError> {
    let mut cf = cfb::CompoundFile::open(Cursor::new(bytes))
        .map_err(|e| MsgError::Container(e.to_string()))?;
    let root = PathBuf::from("/");
    let mut reader = MsgReader {
        cf: &mut cf,
        limit: bytes.len() as u64,
    };
    let streams = reader.children(&root)?;
    if !streams
        .iter()
        .any(|(n, _)| n == "__properties_version1.0" || n.starts_with("__substg1.0_"))
    {
        return Err(MsgError::NotAMessage);
    }
    reader.message(&root, 32, 0, None)
}

struct MsgReader<'a> {
    cf: &'a mut cfb::CompoundFile<Cursor<&'a [u8]>>,
    /// No stream can legitimately be longer than the whole file.
    limit: u64,
}

impl MsgReader<'_> {
    /// (name, is_storage) of the direct children of a storage.
    fn children(&mut self, path: &Path) -> Result<Vec<(String, bool)>, MsgError> {
        let entries = self.cf.read_storage(path).map_err(|e| MsgError::Stream {
            stream: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(entries
            .map(|e| (e.name().to_owned(), e.is_storage()))
            .collect())
    }

    /// Every stream below a storage, depth first in name order, end to end (an OLE object's
    /// `\x01Ole10Native`, `CONTENTS` and the rest), at most the file's size in all.
    fn storage_bytes(&mut self, path: &Path, depth: usize) -> Result<Vec<u8>, MsgError> {
        let mut out = Vec::new();
        if depth > MAX_EMBED_DEPTH {
            return Ok(out);
        }
        let mut children = self.children(path)?;
        children.sort();
        for (name, is_storage) in children {
            let part = if is_storage {
                self.storage_bytes(&path.join(&name), depth + 1)?
            } else {
                self.stream(&path.join(&name))?
            };
            out.extend_from_slice(&part);
            if out.len() as u64 > self.limit {
                out.truncate(self.limit as usize);
                break;
            }
        }
        Ok(out)
    }

    fn stream(&mut self, path: &Path) -> Result<Vec<u8>, MsgError> {
        let err = |e: std::io::Error| MsgError::Stream {
            stream: path.display().to_string(),
            reason: e.to_string(),
        };
        let s = self.cf.open_stream(path).map_err(err)?;
        let mut out = Vec::new();
        s.take(self.limit).read_to_end(&mut out).map_err(err)?;
        Ok(out)
    }

    /// Properties of one storage: fixed-size values from `__properties_version1.0` (after a
    /// header of `header_len` bytes) and variable-size values from `__substg1.0_*` streams.
    fn props(
        &mut self,
        dir: &Path,
        header_len: usize,
        codepage: Option<i64>,
    ) -> Result<(PropBag, Vec<(String, bool)>), MsgError> {
        let children = self.children(dir)?;
        let mut bag = PropBag::default();
        if children
            .iter()
            .any(|(n, s)| !s && n == "__properties_version1.0")
        {
            let data = self.stream(&dir.join("__properties_version1.0"))?;
            for entry in data.get(header_len..).unwrap_or(&[]).chunks_exact(16) {
                let prop_tag = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
                let (id, ty) = ((prop_tag >> 16) as u16, (prop_tag & 0xFFFF) as u16);
                let v = &entry[8..16];
                let i32v = i64::from(i32::from_le_bytes([v[0], v[1], v[2], v[3]]));
                let i64v = i64::from_le_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]);
                let value = match ty {
                    0x0002 => PropValue::Int(i64::from(i16::from_le_bytes([v[0], v[1]]))),
                    0x0003 | 0x000A => PropValue::Int(i32v),
                    0x0014 => PropValue::Int(i64v),
                    0x0040 => PropValue::Time(i64v),
                    0x000B => PropValue::Bool(v[0] != 0),
                    _ => continue,
                };
                bag.insert(id, value);
            }
        }
        // The code page for PtypString8 values lives in the same storage (or the parent's).
        let mut string8 = Vec::new();
        for (name, is_storage) in &children {
            if *is_storage {
                continue;
            }
            let Some(hex) = name.strip_prefix("__substg1.0_") else {
                continue;
            };
            let Ok(prop_tag) = u32::from_str_radix(hex.get(..8).unwrap_or(""), 16) else {
                continue;
            };
            let (id, ty) = ((prop_tag >> 16) as u16, (prop_tag & 0xFFFF) as u16);
            match ty {
                0x001F => {
                    let data = self.stream(&dir.join(name))?;
                    bag.insert(id, PropValue::Str(model::decode_utf16le(&data)));
                }
                0x001E => {
                    let data = self.stream(&dir.join(name))?;
                    string8.push((id, data));
                }
                0x0102 => {
                    let data = self.stream(&dir.join(name))?;
                    bag.insert(id, PropValue::Bin(data));
                }
                _ => {}
            }
        }
        let codepage = bag
            .int(tag::INTERNET_CPID)
            .or_else(|| bag.int(tag::MESSAGE_CODEPAGE))
            .or(codepage);
        for (id, data) in string8 {
            // A Unicode value for the same id wins over its 8-bit twin.
            if bag.str(id).is_none() {
                bag.insert(id, PropValue::Str(model::decode_string8(&data, codepage)));
            }
        }
        Ok((bag, children))
    }

    fn message(
        &mut self,
        dir: &Path,
        header_len: usize,
        depth: usize,
        codepage: Option<i64>,
    ) -> Result<MapiMessage, MsgError> {
        let (props, children) = self.props(dir, header_len, codepage)?;
        let codepage = props
            .int(tag::INTERNET_CPID)
            .or_else(|| props.int(tag::MESSAGE_CODEPAGE))
            .or(codepage);
        let mut msg = MapiMessage {
            props,
            ..MapiMessage::default()
        };
        let mut recips: Vec<&String> = children
            .iter()
            .filter(|(n, s)| *s && n.starts_with("__recip_version1.0_"))
            .map(|(n, _)| n)
            .collect();
        recips.sort();
        for name in recips {
            let (bag, _) = self.props(&dir.join(name), 8, codepage)?;
            msg.recipients.push(bag);
        }
        let mut attachments: Vec<&String> = children
            .iter()
            .filter(|(n, s)| *s && n.starts_with("__attach_version1.0_"))
            .map(|(n, _)| n)
            .collect();
        attachments.sort();
        for name in attachments {
            let adir = dir.join(name);
            let (props, achildren) = self.props(&adir, 8, codepage)?;
            let embedded = achildren
                .iter()
                .any(|(n, s)| *s && n.eq_ignore_ascii_case("__substg1.0_3701000D"));
            // An OLE object (attach method 6) keeps its data in that storage too, but it is no
            // message: its streams are the attachment's bytes, so nothing in them is lost.
            let ole = props.int(tag::ATTACH_METHOD) == Some(ATTACH_OLE);
            let content = if embedded && ole {
                AttachmentContent::Bytes(self.storage_bytes(&adir.join("__substg1.0_3701000D"), 0)?)
            } else if embedded && depth < MAX_EMBED_DEPTH {
                let inner =
                    self.message(&adir.join("__substg1.0_3701000D"), 24, depth + 1, codepage)?;
                AttachmentContent::Message(Box::new(inner))
            } else if let Some(b) = props.bin(tag::ATTACH_DATA) {
                AttachmentContent::Bytes(b.to_vec())
            } else {
                AttachmentContent::None
            };
            let mut props = props;
            props.0.remove(&tag::ATTACH_DATA); // don't keep two copies
            msg.attachments.push(MapiAttachment { props, content });
        }
        Ok(msg)
    }
}
