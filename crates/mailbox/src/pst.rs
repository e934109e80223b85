//! Outlook PST/OST reading (Unicode and ANSI) with the `outlook-pst` crate.
//!
//! [`read_pst`] walks every folder from the store's root folder, converts each message to MIME
//! exactly like [`crate::msg`] does for `.msg` files (S/MIME items: transport headers + the
//! `smime.p7m` attachment), and hands out owned [`PstItem`]s one at a time. The crate's types
//! are `Rc`-based, so everything happens on the calling thread. Messages that cannot be read
//! are listed in [`PstSummary::skipped`] and the walk continues.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use outlook_pst::ltp::prop_context::PropertyValue;
use outlook_pst::ltp::table_context::TableContext;
use outlook_pst::messaging::attachment::{
    AnsiAttachment, Attachment, AttachmentData, UnicodeAttachment,
};
use outlook_pst::messaging::message::{AnsiMessage, Message, UnicodeMessage};
use outlook_pst::messaging::store::{AnsiStore, EntryId, Store, UnicodeStore};
use outlook_pst::ndb::node_id::{NID_ROOT_FOLDER, NodeId, NodeIdType};
use outlook_pst::{AnsiPstFile, UnicodePstFile};

use crate::msg::model::{
    AttachmentContent, MapiAttachment, MapiMessage, PropBag, PropValue, decode_string8, tag,
};

/// Read/flagged/answered state of a PST message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PstFlags {
    /// PR_MESSAGE_FLAGS has MSGFLAG_READ.
    pub read: bool,
    /// PR_FLAG_STATUS is "flagged" (follow-up, not completed).
    pub flagged: bool,
    /// PR_LAST_VERB_EXECUTED is reply/reply-all, or PR_MSG_STATUS has MSGSTATUS_ANSWERED.
    pub answered: bool,
    /// PR_LAST_VERB_EXECUTED is forward.
    pub forwarded: bool,
    /// PR_MESSAGE_FLAGS has MSGFLAG_UNSENT.
    pub draft: bool,
}

/// One message from a PST, as owned MIME bytes.
#[derive(Clone, Debug)]
pub struct PstItem {
    /// Folder names from below the IPM subtree ("Top of Personal Folders" excluded), e.g.
    /// `["Inbox", "Project"]`. Folders outside the IPM subtree start with their own name.
    pub folder_path: Vec<String>,
    /// The message's PST node id (NID): stable within this file, unique across folders.
    pub node_id: u32,
    /// PR_MESSAGE_CLASS, e.g. `IPM.Note`, `IPM.Note.SMIME`, `IPM.Appointment`.
    pub message_class: String,
    /// The reconstructed MIME message.
    pub mime: Vec<u8>,
    pub flags: PstFlags,
    /// Sent time (PR_CLIENT_SUBMIT_TIME), else delivery, else creation time; Unix seconds.
    pub date: Option<i64>,
    /// True when `mime`'s body is the S/MIME payload (see [`crate::msg::MsgConverted`]).
    pub is_smime: bool,
}

/// The PST flavour that was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PstFormat {
    Unicode,
    Ansi,
}

/// A message or folder that could not be read (or was read incompletely).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PstProblem {
    /// Folder the node is in (for a folder problem: the folder's own path).
    pub folder_path: Vec<String>,
    /// Node id of the message or folder.
    pub node_id: u32,
    pub reason: String,
}

impl fmt::Display for PstProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/node 0x{:X}: {}",
            self.folder_path.join("/"),
            self.node_id,
            self.reason
        )
    }
}

/// What a walk did.
#[derive(Clone, Debug)]
pub struct PstSummary {
    pub format: PstFormat,
    /// Folders visited.
    pub folders: usize,
    /// Items handed to the callback.
    pub messages: usize,
    /// Messages and folders that could not be read (the walk went on without them).
    pub skipped: Vec<PstProblem>,
    /// Items handed out with something missing (e.g. attachments of embedded messages).
    pub warnings: Vec<PstProblem>,
    /// The callback returned `ControlFlow::Break`.
    pub stopped: bool,
}

impl PstSummary {
    pub fn skipped_count(&self) -> usize {
        self.skipped.len()
    }
}

/// The PST as a whole could not be read.
#[derive(Debug)]
pub enum PstError {
    /// Neither a Unicode nor an ANSI PST/OST, or unreadable.
    Open { path: PathBuf, reason: String },
    /// The store object (root properties) is unreadable.
    Store { path: PathBuf, reason: String },
}

impl fmt::Display for PstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PstError::Open { path, reason } => {
                write!(f, "{}: cannot open as PST/OST: {reason}", path.display())
            }
            PstError::Store { path, reason } => {
                write!(
                    f,
                    "{}: PST message store unreadable: {reason}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for PstError {}

/// Folder nesting limit (also guards against hierarchy cycles in damaged files).
const MAX_FOLDER_DEPTH: usize = 64;

/// Walk all folders of the PST/OST at `path`, calling `each` once per message, in folder order
/// (depth first) and contents-table order. Return `ControlFlow::Break(())` to stop early.
pub fn read_pst(
    path: &Path,
    each: &mut dyn FnMut(PstItem) -> ControlFlow<()>,
) -> Result<PstSummary, PstError> {
    let (store, format) = open(path)?;
    let mut walk = Walk {
        store,
        each,
        summary: PstSummary {
            format,
            folders: 0,
            messages: 0,
            skipped: Vec::new(),
            warnings: Vec::new(),
            stopped: false,
        },
        visited: HashSet::new(),
        ipm_subtree: None,
    };
    let dyn_store = walk.store.dyn_store();
    walk.ipm_subtree = dyn_store
        .properties()
        .ipm_sub_tree_entry_id()
        .ok()
        .map(|e| u32::from(e.node_id()));
    let root = dyn_store
        .properties()
        .make_entry_id(NID_ROOT_FOLDER)
        .map_err(|e| PstError::Store {
            path: path.to_owned(),
            reason: format!("no root folder entry id: {e}"),
        })?;
    let root_id = u32::from(NID_ROOT_FOLDER);
    if let Err(reason) = walk.folder(&root, root_id, Vec::new(), 0) {
        // The root folder itself is unreadable: nothing else is reachable.
        return Err(PstError::Store {
            path: path.to_owned(),
            reason: format!("root folder: {reason}"),
        });
    }
    Ok(walk.summary)
}

enum TypedStore {
    Unicode(Rc<UnicodeStore>),
    Ansi(Rc<AnsiStore>),
}

impl TypedStore {
    fn dyn_store(&self) -> Rc<dyn Store> {
        match self {
            TypedStore::Unicode(s) => s.clone(),
            TypedStore::Ansi(s) => s.clone(),
        }
    }

    fn entry_id(&self, node: NodeId) -> io::Result<EntryId> {
        self.dyn_store().properties().make_entry_id(node)
    }

    /// Read one message with its recipients and attachments into the owned model.
    fn message(&self, node: NodeId, warnings: &mut Vec<String>) -> Result<MapiMessage, String> {
        let entry = self.entry_id(node).map_err(|e| format!("entry id: {e}"))?;
        match self {
            TypedStore::Unicode(s) => {
                let m = UnicodeMessage::read(s.clone(), &entry, None)
                    .map_err(|e| format!("message unreadable: {e}"))?;
                convert_message(
                    m.as_ref(),
                    &|sub| {
                        UnicodeAttachment::read(m.clone(), sub, None)
                            .map(|a| a as Rc<dyn Attachment>)
                    },
                    warnings,
                )
            }
            TypedStore::Ansi(s) => {
                let m = AnsiMessage::read(s.clone(), &entry, None)
                    .map_err(|e| format!("message unreadable: {e}"))?;
                convert_message(
                    m.as_ref(),
                    &|sub| {
                        AnsiAttachment::read(m.clone(), sub, None).map(|a| a as Rc<dyn Attachment>)
                    },
                    warnings,
                )
            }
        }
    }
}

fn open(path: &Path) -> Result<(TypedStore, PstFormat), PstError> {
    let guarded = |f: &dyn Fn() -> io::Result<(TypedStore, PstFormat)>| {
        catch_unwind(AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err(io::Error::other("PST reader panicked on malformed data")))
    };
    let unicode = guarded(&|| {
        let file = UnicodePstFile::open(path)?;
        Ok((
            TypedStore::Unicode(UnicodeStore::read(Rc::new(file))?),
            PstFormat::Unicode,
        ))
    });
    match unicode {
        Ok(s) => Ok(s),
        Err(unicode_err) => guarded(&|| {
            let file = AnsiPstFile::open(path)?;
            Ok((
                TypedStore::Ansi(AnsiStore::read(Rc::new(file))?),
                PstFormat::Ansi,
            ))
        })
        .map_err(|ansi_err| PstError::Open {
            path: path.to_owned(),
            reason: format!("as Unicode PST: {unicode_err}; as ANSI PST: {ansi_err}"),
        }),
    }
}

struct Walk<'a> {
    store: TypedStore,
    each: &'a mut dyn FnMut(PstItem) -> ControlFlow<()>,
    summary: PstSummary,
    visited: HashSet<u32>,
    ipm_subtree: Option<u32>,
}

impl Walk<'_> {
    /// Visit a folder: its messages, then its subfolders. Err only if the folder itself could
    /// not be opened (the caller records or reports it).
    fn folder(
        &mut self,
        entry: &EntryId,
        node_id: u32,
        path: Vec<String>,
        depth: usize,
    ) -> Result<(), String> {
        if !self.visited.insert(node_id) {
            return Ok(()); // hierarchy cycle in a damaged file
        }
        let folder = guard(|| {
            self.store
                .dyn_store()
                .open_folder(entry)
                .map_err(|e| format!("folder unreadable: {e}"))
        })?;
        self.summary.folders += 1;

        if let Some(contents) = folder.contents_table() {
            let rows = guard(|| Ok(table_rows(contents.as_ref(), None))).unwrap_or_default();
            for (id, row) in rows {
                if self.summary.stopped {
                    return Ok(());
                }
                self.message(id, row, &path);
            }
        }

        // Guarded like the contents table: a damaged hierarchy table panics inside the PST crate
        // (reading it is lazy, so both the table and its rows are guarded).
        let children: Vec<u32> = guard(|| {
            Ok(folder
                .hierarchy_table()
                .map(|h| h.rows_matrix().map(|r| u32::from(r.id())).collect())
                .unwrap_or_default())
        })?;
        for child in children {
            if self.summary.stopped {
                return Ok(());
            }
            let child_node = NodeId::from(child);
            // Search folders only list messages that live in other folders.
            if child_node.id_type().ok() != Some(NodeIdType::NormalFolder) {
                continue;
            }
            if depth + 1 >= MAX_FOLDER_DEPTH {
                self.summary.skipped.push(PstProblem {
                    folder_path: path.clone(),
                    node_id: child,
                    reason: format!("folder nesting deeper than {MAX_FOLDER_DEPTH}"),
                });
                continue;
            }
            let opened = self
                .store
                .entry_id(child_node)
                .map_err(|e| format!("entry id: {e}"))
                .and_then(|e| {
                    let f = guard(|| {
                        self.store
                            .dyn_store()
                            .open_folder(&e)
                            .map_err(|err| format!("folder unreadable: {err}"))
                    })?;
                    Ok((e, f))
                });
            let (child_entry, child_folder) = match opened {
                Ok(x) => x,
                Err(reason) => {
                    self.summary.skipped.push(PstProblem {
                        folder_path: path.clone(),
                        node_id: child,
                        reason,
                    });
                    continue;
                }
            };
            let name = child_folder
                .properties()
                .display_name()
                .unwrap_or_else(|_| format!("folder-{child:X}"));
            drop(child_folder);
            let child_path = if Some(child) == self.ipm_subtree {
                Vec::new() // "Top of Personal Folders" is not part of the path
            } else {
                let mut p = path.clone();
                p.push(name);
                p
            };
            if let Err(reason) = self.folder(&child_entry, child, child_path.clone(), depth + 1) {
                self.summary.skipped.push(PstProblem {
                    folder_path: child_path,
                    node_id: child,
                    reason,
                });
            }
        }
        Ok(())
    }

    /// Read, convert and hand out one message. `row` holds the message's columns from the
    /// folder's contents table, the fallback when the message object itself is unreadable
    /// (the crate refuses e.g. messages without a sub-node tree).
    fn message(&mut self, id: u32, row: PropBag, path: &[String]) {
        let node = NodeId::from(id);
        let mut warnings = Vec::new();
        let result = guard(|| self.store.message(node, &mut warnings));
        let msg = match result {
            Ok(m) => m,
            Err(reason) if row.text(tag::MESSAGE_CLASS).is_some() && !is_smime_class(&row) => {
                warnings.push(format!(
                    "{reason}; exported from the folder contents table columns only"
                ));
                MapiMessage {
                    props: row,
                    ..MapiMessage::default()
                }
            }
            Err(reason) => {
                self.summary.skipped.push(PstProblem {
                    folder_path: path.to_vec(),
                    node_id: id,
                    reason,
                });
                return;
            }
        };
        for reason in warnings {
            self.summary.warnings.push(PstProblem {
                folder_path: path.to_vec(),
                node_id: id,
                reason,
            });
        }
        let built = crate::msg::build_mime(&msg);
        let p = &msg.props;
        let item = PstItem {
            folder_path: path.to_vec(),
            node_id: id,
            message_class: built.message_class,
            mime: built.mime,
            flags: flags_of(p),
            date: p
                .unix_time(tag::CLIENT_SUBMIT_TIME)
                .or_else(|| p.unix_time(tag::MESSAGE_DELIVERY_TIME))
                .or_else(|| p.unix_time(tag::CREATION_TIME)),
            is_smime: built.is_smime,
        };
        self.summary.messages += 1;
        if (self.each)(item).is_break() {
            self.summary.stopped = true;
        }
    }
}

/// Run reader code, turning a panic inside the PST crate into an error value.
fn guard<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("PST reader failed on malformed data {what}"))
    })
}

fn flags_of(p: &PropBag) -> PstFlags {
    const MSGFLAG_READ: i64 = 0x1;
    const MSGFLAG_UNSENT: i64 = 0x8;
    const MSGSTATUS_ANSWERED: i64 = 0x200;
    const FOLLOWUP_FLAGGED: i64 = 2;
    const VERB_REPLY_TO_SENDER: i64 = 102;
    const VERB_REPLY_TO_ALL: i64 = 103;
    const VERB_FORWARD: i64 = 104;
    let mflags = p.int(tag::MESSAGE_FLAGS).unwrap_or(0);
    let status = p.int(tag::MESSAGE_STATUS).unwrap_or(0);
    let verb = p.int(tag::LAST_VERB_EXECUTED).unwrap_or(0);
    PstFlags {
        read: mflags & MSGFLAG_READ != 0,
        draft: mflags & MSGFLAG_UNSENT != 0,
        flagged: p.int(tag::FLAG_STATUS) == Some(FOLLOWUP_FLAGGED),
        answered: status & MSGSTATUS_ANSWERED != 0
            || verb == VERB_REPLY_TO_SENDER
            || verb == VERB_REPLY_TO_ALL,
        forwarded: verb == VERB_FORWARD,
    }
}

/// Convert crate property values; `codepage` decodes PtypString8.
fn convert_props<'a>(
    props: impl Iterator<Item = (u16, &'a PropertyValue)>,
    inherited_codepage: Option<i64>,
) -> PropBag {
    let props: Vec<(u16, &PropertyValue)> = props.collect();
    let codepage = props
        .iter()
        .find_map(|(id, v)| match (*id, v) {
            (tag::INTERNET_CPID | tag::MESSAGE_CODEPAGE, PropertyValue::Integer32(c)) => {
                Some(i64::from(*c))
            }
            _ => None,
        })
        .or(inherited_codepage);
    let mut bag = PropBag::default();
    for (id, v) in props {
        if let Some(value) = convert_value(v, codepage) {
            bag.insert(id, value);
        }
    }
    bag
}

fn convert_value(v: &PropertyValue, codepage: Option<i64>) -> Option<PropValue> {
    Some(match v {
        PropertyValue::Integer16(i) => PropValue::Int(i64::from(*i)),
        PropertyValue::Integer32(i) => PropValue::Int(i64::from(*i)),
        PropertyValue::Integer64(i) => PropValue::Int(*i),
        PropertyValue::Boolean(b) => PropValue::Bool(*b),
        PropertyValue::Time(t) => PropValue::Time(*t),
        PropertyValue::String8(s) => PropValue::Str(decode_string8(s.buffer(), codepage)),
        PropertyValue::Unicode(s) => PropValue::Str(
            String::from_utf16_lossy(s.buffer())
                .trim_end_matches('\0')
                .to_owned(),
        ),
        PropertyValue::Binary(b) => PropValue::Bin(b.buffer().to_vec()),
        _ => return None,
    })
}

/// Rows of a table context as property bags (unreadable cells are left out).
fn table_rows(table: &dyn TableContext, codepage: Option<i64>) -> Vec<(u32, PropBag)> {
    let context = table.context();
    table
        .rows_matrix()
        .map(|row| {
            let mut values = Vec::new();
            if let Ok(cells) = row.columns(context) {
                for (col, cell) in context.columns().iter().zip(cells) {
                    if let Some(cell) = cell
                        && let Ok(v) = table.read_column(&cell, col.prop_type())
                    {
                        values.push((col.prop_id(), v));
                    }
                }
            }
            let bag = convert_props(values.iter().map(|(id, v)| (*id, v)), codepage);
            (u32::from(row.id()), bag)
        })
        .collect()
}

type OpenAttachment<'a> = dyn Fn(NodeId) -> io::Result<Rc<dyn Attachment>> + 'a;

fn convert_message(
    m: &dyn Message,
    open_attachment: &OpenAttachment<'_>,
    warnings: &mut Vec<String>,
) -> Result<MapiMessage, String> {
    let props = convert_props(m.properties().iter().map(|(id, v)| (*id, v)), None);
    let codepage = props
        .int(tag::INTERNET_CPID)
        .or_else(|| props.int(tag::MESSAGE_CODEPAGE));
    let recipients = m
        .recipient_table()
        .map(|t| {
            table_rows(t.as_ref(), codepage)
                .into_iter()
                .map(|(_, b)| b)
                .collect()
        })
        .unwrap_or_default();
    let mut attachments = Vec::new();
    if let Some(table) = m.attachment_table() {
        for (row_id, row_props) in table_rows(table.as_ref(), codepage) {
            match open_attachment(NodeId::from(row_id)) {
                Ok(a) => attachments.push(convert_attachment(a.as_ref(), codepage, warnings)),
                Err(e) => {
                    let name = row_props
                        .text(tag::ATTACH_LONG_FILENAME)
                        .or_else(|| row_props.text(tag::ATTACH_FILENAME))
                        .unwrap_or("(unnamed)");
                    let reason = format!("attachment {name:?} (node 0x{row_id:X}) unreadable: {e}");
                    // An S/MIME item without its payload is useless: fail it as a whole.
                    if is_smime_class(&props) {
                        return Err(reason);
                    }
                    warnings.push(format!("{reason}; message exported without it"));
                }
            }
        }
    }
    Ok(MapiMessage {
        props,
        recipients,
        attachments,
    })
}

fn is_smime_class(p: &PropBag) -> bool {
    p.text(tag::MESSAGE_CLASS)
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("ipm.note.smime"))
}

fn convert_attachment(
    a: &dyn Attachment,
    codepage: Option<i64>,
    warnings: &mut Vec<String>,
) -> MapiAttachment {
    let mut props = convert_props(
        a.properties()
            .iter()
            .filter(|(id, _)| **id != tag::ATTACH_DATA)
            .map(|(id, v)| (*id, v)),
        codepage,
    );
    let content = match a.data() {
        Some(AttachmentData::Binary(b)) => AttachmentContent::Bytes(b.buffer().to_vec()),
        Some(AttachmentData::Message(inner)) => {
            // The crate does not expose typed embedded messages, so their own attachments
            // cannot be opened; everything else (headers, bodies, recipients) is kept.
            let n = inner
                .attachment_table()
                .map(|t| t.rows_matrix().count())
                .unwrap_or(0);
            if n > 0 {
                warnings.push(format!(
                    "embedded message {:?}: its {n} attachment(s) are not exported",
                    props.text(tag::DISPLAY_NAME).unwrap_or("(unnamed)")
                ));
            }
            let inner_msg = convert_message_no_attachments(inner.as_ref(), codepage);
            AttachmentContent::Message(Box::new(inner_msg))
        }
        None => AttachmentContent::None,
    };
    if props.text(tag::ATTACH_LONG_FILENAME).is_none()
        && props.text(tag::ATTACH_FILENAME).is_none()
        && let Some(name) = props.text(tag::DISPLAY_NAME).map(str::to_owned)
    {
        props.insert(tag::ATTACH_LONG_FILENAME, PropValue::Str(name));
    }
    MapiAttachment { props, content }
}

fn convert_message_no_attachments(m: &dyn Message, codepage: Option<i64>) -> MapiMessage {
    let props = convert_props(m.properties().iter().map(|(id, v)| (*id, v)), codepage);
    let recipients = m
        .recipient_table()
        .map(|t| {
            table_rows(t.as_ref(), codepage)
                .into_iter()
                .map(|(_, b)| b)
                .collect()
        })
        .unwrap_or_default();
    MapiMessage {
        props,
        recipients,
        attachments: Vec::new(),
    }
}
