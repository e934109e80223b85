//! A small, owned model of a MAPI message (properties, recipients, attachments) shared by the
//! `.msg` (CFB) reader and the PST reader. Both readers convert their native representation into
//! this model; [`super::mime`] turns it into MIME bytes.

use std::collections::BTreeMap;

/// A MAPI property value, reduced to what MIME reconstruction needs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PropValue {
    Str(String),
    Bin(Vec<u8>),
    Int(i64),
    /// FILETIME: 100 ns intervals since 1601-01-01.
    Time(i64),
    Bool(bool),
}

/// Properties keyed by property id (the high 16 bits of the tag).
#[derive(Clone, Debug, Default)]
pub(crate) struct PropBag(pub(crate) BTreeMap<u16, PropValue>);

impl PropBag {
    pub(crate) fn insert(&mut self, id: u16, value: PropValue) {
        self.0.insert(id, value);
    }

    pub(crate) fn str(&self, id: u16) -> Option<&str> {
        match self.0.get(&id) {
            Some(PropValue::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// A non-empty string (after trimming NULs and whitespace).
    pub(crate) fn text(&self, id: u16) -> Option<&str> {
        self.str(id)
            .map(|s| s.trim_matches(|c: char| c == '\0' || c.is_whitespace()))
            .filter(|s| !s.is_empty())
    }

    pub(crate) fn bin(&self, id: u16) -> Option<&[u8]> {
        match self.0.get(&id) {
            Some(PropValue::Bin(b)) => Some(b.as_slice()),
            _ => None,
        }
    }

    pub(crate) fn int(&self, id: u16) -> Option<i64> {
        match self.0.get(&id) {
            Some(PropValue::Int(v)) => Some(*v),
            Some(PropValue::Bool(b)) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// A time property as Unix seconds (None if absent or outside years 1601..=9999).
    pub(crate) fn unix_time(&self, id: u16) -> Option<i64> {
        match self.0.get(&id) {
            Some(PropValue::Time(ft)) => filetime_to_unix(*ft),
            _ => None,
        }
    }
}

/// FILETIME (100 ns since 1601) to Unix seconds; None for 0 and values past year 9999.
pub(crate) fn filetime_to_unix(ft: i64) -> Option<i64> {
    const EPOCH_DIFF: i64 = 11_644_473_600;
    const MAX_UNIX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if ft <= 0 {
        return None;
    }
    let unix = ft / 10_000_000 - EPOCH_DIFF;
    (unix <= MAX_UNIX).then_some(unix)
}

#[derive(Clone, Debug, Default)]
pub(crate) struct MapiMessage {
    pub(crate) props: PropBag,
    pub(crate) recipients: Vec<PropBag>,
    pub(crate) attachments: Vec<MapiAttachment>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct MapiAttachment {
    pub(crate) props: PropBag,
    pub(crate) content: AttachmentContent,
}

#[derive(Clone, Debug, Default)]
pub(crate) enum AttachmentContent {
    #[default]
    None,
    Bytes(Vec<u8>),
    Message(Box<MapiMessage>),
}

/// Property ids used by the readers and the MIME builder.
pub(crate) mod tag {
    pub const MESSAGE_CLASS: u16 = 0x001A;
    pub const SUBJECT: u16 = 0x0037;
    pub const CLIENT_SUBMIT_TIME: u16 = 0x0039;
    pub const SENT_REPRESENTING_NAME: u16 = 0x0042;
    pub const SENT_REPRESENTING_ADDRTYPE: u16 = 0x0064;
    pub const SENT_REPRESENTING_EMAIL: u16 = 0x0065;
    pub const TRANSPORT_MESSAGE_HEADERS: u16 = 0x007D;
    pub const RECIPIENT_TYPE: u16 = 0x0C15;
    pub const SENDER_NAME: u16 = 0x0C1A;
    pub const SENDER_ADDRTYPE: u16 = 0x0C1E;
    pub const SENDER_EMAIL: u16 = 0x0C1F;
    pub const MESSAGE_DELIVERY_TIME: u16 = 0x0E06;
    pub const MESSAGE_FLAGS: u16 = 0x0E07;
    pub const MESSAGE_STATUS: u16 = 0x0E17;
    pub const BODY: u16 = 0x1000;
    pub const RTF_COMPRESSED: u16 = 0x1009;
    pub const HTML: u16 = 0x1013;
    pub const INTERNET_MESSAGE_ID: u16 = 0x1035;
    pub const INTERNET_REFERENCES: u16 = 0x1039;
    pub const IN_REPLY_TO_ID: u16 = 0x1042;
    pub const LAST_VERB_EXECUTED: u16 = 0x1081;
    pub const FLAG_STATUS: u16 = 0x1090;
    pub const DISPLAY_NAME: u16 = 0x3001;
    pub const ADDRTYPE: u16 = 0x3002;
    pub const EMAIL_ADDRESS: u16 = 0x3003;
    pub const CREATION_TIME: u16 = 0x3007;
    pub const ATTACH_DATA: u16 = 0x3701;
    /// PidTagAttachMethod: 5 an embedded message, 6 an OLE object ([MS-OXCMSG] 2.2.2.9).
    pub const ATTACH_METHOD: u16 = 0x3705;
    pub const ATTACH_FILENAME: u16 = 0x3704;
    pub const ATTACH_LONG_FILENAME: u16 = 0x3707;
    pub const ATTACH_MIME_TAG: u16 = 0x370E;
    pub const ATTACH_CONTENT_ID: u16 = 0x3712;
    pub const SMTP_ADDRESS: u16 = 0x39FE;
    pub const INTERNET_CPID: u16 = 0x3FDE;
    pub const MESSAGE_CODEPAGE: u16 = 0x3FFD;
    pub const SENDER_SMTP_ADDRESS: u16 = 0x5D01;
    pub const SENT_REPRESENTING_SMTP_ADDRESS: u16 = 0x5D02;
    pub const CREATOR_SMTP_ADDRESS: u16 = 0x5D0A;
}

/// Decode an 8-bit MAPI string (PtypString8) in the given Windows code page. Only UTF-8 and
/// Windows-1252/Latin-1 are decoded exactly; other code pages fall back to UTF-8 if valid, else
/// Windows-1252 (lossy but never failing).
pub(crate) fn decode_string8(bytes: &[u8], codepage: Option<i64>) -> String {
    let bytes = match bytes.iter().position(|&b| b == 0) {
        Some(nul) => &bytes[..nul],
        None => bytes,
    };
    if let Ok(s) = std::str::from_utf8(bytes)
        && (bytes.is_ascii() || !matches!(codepage, Some(1252 | 28591)))
    {
        return s.to_owned();
    }
    bytes.iter().map(|&b| cp1252_char(b)).collect()
}

fn cp1252_char(b: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{FFFD}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{FFFD}',
        '\u{017D}', '\u{FFFD}', '\u{FFFD}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}',
        '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}',
        '\u{0153}', '\u{FFFD}', '\u{017E}', '\u{0178}',
    ];
    if (0x80..0xA0).contains(&b) {
        HIGH[usize::from(b - 0x80)]
    } else {
        char::from(b)
    }
}

/// Decode UTF-16LE bytes (PtypString), stopping at the first NUL code unit.
pub(crate) fn decode_utf16le(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}
