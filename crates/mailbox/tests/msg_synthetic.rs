//! `.msg` files built here with the `cfb` writer: the non-S/MIME path (headers synthesised
//! from properties, text + HTML body, attachments) and the IPM.Note.SMIME path without
//! transport headers.

use std::io::{Cursor, Write};

use mail_parser::{MessageParser, MimeHeaders};
use unseal_mailbox::msg::msg_to_mime;

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A property-stream entry for a fixed-size value.
fn fixed(tag: u32, value: u64) -> Vec<u8> {
    let mut e = tag.to_le_bytes().to_vec();
    e.extend_from_slice(&6u32.to_le_bytes()); // readable | writable
    e.extend_from_slice(&value.to_le_bytes());
    e
}

struct Builder {
    cf: cfb::CompoundFile<Cursor<Vec<u8>>>,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            cf: cfb::CompoundFile::create(Cursor::new(Vec::new())).expect("create cfb"),
        }
    }
    fn stream(&mut self, path: &str, data: &[u8]) {
        let mut s = self.cf.create_stream(path).expect("create stream");
        s.write_all(data).expect("write stream");
    }
    fn storage(&mut self, path: &str) {
        self.cf.create_storage(path).expect("create storage");
    }
    fn finish(mut self) -> Vec<u8> {
        self.cf.flush().expect("flush");
        self.cf.into_inner().into_inner()
    }
}

fn plain_msg() -> Vec<u8> {
    let mut b = Builder::new();
    let mut props = vec![0u8; 32];
    // PR_CLIENT_SUBMIT_TIME = 2019-04-27T16:47:26Z as FILETIME; PR_MESSAGE_FLAGS = read.
    let ft = (1_556_383_646u64 + 11_644_473_600) * 10_000_000;
    props.extend(fixed(0x0039_0040, ft));
    props.extend(fixed(0x0E07_0003, 1));
    b.stream("/__properties_version1.0", &props);
    b.stream("/__substg1.0_001A001F", &utf16("IPM.Note"));
    b.stream("/__substg1.0_0037001F", &utf16("Grüße aus Köln"));
    b.stream("/__substg1.0_0C1A001F", &utf16("Alice Example"));
    b.stream("/__substg1.0_5D01001F", &utf16("alice@example.org"));
    b.stream("/__substg1.0_1035001F", &utf16("<abc@example.org>"));
    b.stream("/__substg1.0_1000001F", &utf16("Hello\nworld"));
    b.stream("/__substg1.0_10130102", b"<p>Hello <b>world</b></p>");
    b.storage("/__recip_version1.0_#00000000");
    let mut rp = vec![0u8; 8];
    rp.extend(fixed(0x0C15_0003, 1));
    b.stream("/__recip_version1.0_#00000000/__properties_version1.0", &rp);
    b.stream(
        "/__recip_version1.0_#00000000/__substg1.0_3001001F",
        &utf16("Bob"),
    );
    b.stream(
        "/__recip_version1.0_#00000000/__substg1.0_39FE001F",
        &utf16("bob@example.org"),
    );
    b.storage("/__attach_version1.0_#00000000");
    let mut ap = vec![0u8; 8];
    ap.extend(fixed(0x3705_0003, 1));
    b.stream(
        "/__attach_version1.0_#00000000/__properties_version1.0",
        &ap,
    );
    b.stream(
        "/__attach_version1.0_#00000000/__substg1.0_3707001F",
        &utf16("report ü.pdf"),
    );
    b.stream(
        "/__attach_version1.0_#00000000/__substg1.0_370E001F",
        &utf16("application/pdf"),
    );
    b.stream(
        "/__attach_version1.0_#00000000/__substg1.0_37010102",
        b"%PDF-1.4 \x00\x01\x02 binary",
    );
    b.finish()
}

#[test]
fn plain_msg_becomes_complete_mime() {
    let out = msg_to_mime(&plain_msg()).expect("convert");
    assert_eq!(out.message_class, "IPM.Note");
    assert!(!out.is_smime);
    let m = MessageParser::default().parse(&out.mime).expect("parse");
    assert_eq!(m.subject(), Some("Grüße aus Köln"));
    assert_eq!(m.message_id(), Some("abc@example.org"));
    let from = m.from().and_then(|f| f.first()).expect("from");
    assert_eq!(from.address(), Some("alice@example.org"));
    assert_eq!(from.name(), Some("Alice Example"));
    let to = m.to().and_then(|t| t.first()).expect("to");
    assert_eq!(to.address(), Some("bob@example.org"));
    assert_eq!(
        m.date().map(|d| d.to_timestamp()),
        Some(1_556_383_646),
        "Date from PR_CLIENT_SUBMIT_TIME"
    );
    assert_eq!(m.body_text(0).as_deref(), Some("Hello\r\nworld"));
    assert!(m.body_html(0).is_some_and(|h| h.contains("<b>world</b>")));
    let atts: Vec<_> = m.attachments().collect();
    assert_eq!(atts.len(), 1);
    assert_eq!(atts[0].attachment_name(), Some("report ü.pdf"));
    assert_eq!(atts[0].contents(), b"%PDF-1.4 \x00\x01\x02 binary");
    assert_eq!(
        atts[0].content_type().and_then(|c| c.subtype()),
        Some("pdf")
    );
}

fn smime_msg() -> Vec<u8> {
    let mut b = Builder::new();
    b.stream("/__properties_version1.0", &[0u8; 32]);
    b.stream("/__substg1.0_001A001F", &utf16("IPM.Note.SMIME"));
    b.stream("/__substg1.0_0037001F", &utf16("secret"));
    b.storage("/__attach_version1.0_#00000000");
    let mut ap = vec![0u8; 8];
    ap.extend(fixed(0x3705_0003, 1));
    b.stream(
        "/__attach_version1.0_#00000000/__properties_version1.0",
        &ap,
    );
    b.stream(
        "/__attach_version1.0_#00000000/__substg1.0_3707001F",
        &utf16("smime.p7m"),
    );
    b.stream("/__attach_version1.0_#00000000/__substg1.0_37010102", &DER);
    b.finish()
}

/// ContentInfo { envelopedData OID, [0] } (content irrelevant here).
const DER: [u8; 15] = [
    0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03, 0xA0, 0x00,
];

#[test]
fn smime_msg_without_transport_headers() {
    let der = DER;
    let out = msg_to_mime(&smime_msg()).expect("convert");
    assert!(out.is_smime);
    let text = String::from_utf8_lossy(&out.mime);
    assert!(text.contains(
        "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\""
    ));
    let m = MessageParser::default().parse(&out.mime).expect("parse");
    assert_eq!(m.subject(), Some("secret"));
    assert_eq!(m.parts[0].contents(), der);
}

/// An attachment storage with `__properties_version1.0` (attach method `method`) and name.
fn attachment(b: &mut Builder, n: u32, method: u64, name: &str) -> String {
    let dir = format!("/__attach_version1.0_#{n:08X}");
    b.storage(&dir);
    let mut ap = vec![0u8; 8];
    ap.extend(fixed(0x3705_0003, method));
    b.stream(&format!("{dir}/__properties_version1.0"), &ap);
    b.stream(&format!("{dir}/__substg1.0_3707001F"), &utf16(name));
    dir
}

fn decoded_parts(mime: &[u8]) -> Vec<Vec<u8>> {
    let m = MessageParser::default().parse(mime).expect("parse");
    m.parts.iter().map(|p| p.contents().to_vec()).collect()
}

/// An S/MIME .msg carries one payload; a second attachment, which may hold an envelope of its
/// own, is kept beside it (multipart/mixed) instead of being dropped.
#[test]
fn smime_msg_keeps_every_other_attachment() {
    let mut b = Builder::new();
    b.stream("/__properties_version1.0", &[0u8; 32]);
    b.stream("/__substg1.0_001A001F", &utf16("IPM.Note.SMIME"));
    let first = attachment(&mut b, 0, 1, "smime.p7m");
    let der = DER;
    b.stream(&format!("{first}/__substg1.0_37010102"), &der);
    let second = attachment(&mut b, 1, 1, "second.p7m");
    let other = b"another envelope's bytes".to_vec();
    b.stream(&format!("{second}/__substg1.0_37010102"), &other);
    let out = msg_to_mime(&b.finish()).expect("convert");
    assert!(out.is_smime);
    let text = String::from_utf8_lossy(&out.mime);
    assert!(text.contains("Content-Type: multipart/mixed"), "{text}");
    let parts = decoded_parts(&out.mime);
    assert!(parts.contains(&der.to_vec()), "the payload is there");
    assert!(parts.contains(&other), "the second attachment is there");
}

/// An OLE object (attach method 6) keeps its data as a storage named like an embedded
/// message's; its streams become the attachment's bytes, so an envelope inside is not lost.
#[test]
fn an_ole_attachment_is_kept_as_its_streams_bytes() {
    let mut b = Builder::new();
    b.stream("/__properties_version1.0", &[0u8; 32]);
    b.stream("/__substg1.0_001A001F", &utf16("IPM.Note"));
    b.stream("/__substg1.0_1000001F", &utf16("see the object"));
    let dir = attachment(&mut b, 0, 6, "Package");
    let storage = format!("{dir}/__substg1.0_3701000D");
    b.storage(&storage);
    let native = b"\x01Ole10Native wrapped bytes: an envelope could be here".to_vec();
    b.stream(&format!("{storage}/\u{1}Ole10Native"), &native);
    b.stream(&format!("{storage}/\u{1}CompObj"), b"compobj");
    let out = msg_to_mime(&b.finish()).expect("convert");
    let parts = decoded_parts(&out.mime);
    let joined = parts.concat();
    assert!(
        joined.windows(native.len()).any(|w| w == native.as_slice()),
        "the OLE stream's bytes are in the MIME: {:?}",
        String::from_utf8_lossy(&out.mime)
    );
}

/// In a folder, an S/MIME `a.msg` is written back as `a.eml`, or under the first name of
/// `a.msg.eml`, `a.msg.1.eml`, ... that no file beside it has, so no copy replaces another.
#[test]
fn a_converted_msg_takes_a_name_no_file_beside_it_has() {
    use unseal_mailbox::{Location, tree::TreeReader};
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.msg"), smime_msg()).unwrap();
    let out_name = || {
        TreeReader::open(d.path())
            .unwrap()
            .filter_map(Result::ok)
            .find(|i| i.id == "a.msg")
            .map(|i| match i.meta.location {
                Location::Tree { rel_path } => rel_path.display().to_string(),
                other => panic!("{other:?}"),
            })
            .unwrap()
    };
    assert_eq!(out_name(), "a.eml");
    std::fs::write(d.path().join("a.eml"), b"Subject: a\n\nA\n").unwrap();
    assert_eq!(out_name(), "a.msg.eml");
    std::fs::write(d.path().join("a.msg.eml"), b"Subject: b\n\nB\n").unwrap();
    assert_eq!(out_name(), "a.msg.1.eml");
}
