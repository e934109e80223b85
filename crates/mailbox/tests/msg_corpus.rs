//! `.msg` → MIME against the simple-java-mail corpus (Outlook .msg files with .eml twins).

use std::path::PathBuf;

use mail_parser::{MessageParser, MimeHeaders};
use unseal_mailbox::msg::{MsgError, msg_to_mime};

fn corpora() -> Option<PathBuf> {
    let dir = std::env::var_os("UNSEAL_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora")
        });
    dir.is_dir().then_some(dir)
}

macro_rules! corpus_file {
    ($rel:expr) => {{
        let Some(root) = corpora() else {
            println!("skipping: corpora not found (set UNSEAL_CORPORA)");
            return;
        };
        let p = root.join($rel);
        if !p.is_file() {
            println!("skipping: {} not present", p.display());
            return;
        }
        std::fs::read(&p).expect("read corpus file")
    }};
}

const SJM: &str = "simple-java-mail/pkcs12/test messages";

/// Decoded contents of every part whose Content-Type is `ctype/subtype`.
fn parts_of(mime: &[u8], ctype: &str, subtype: &str) -> Vec<Vec<u8>> {
    let msg = MessageParser::default().parse(mime).expect("parsable MIME");
    msg.parts
        .iter()
        .filter(|p| {
            p.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case(ctype)
                    && ct
                        .subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
            })
        })
        .map(|p| p.contents().to_vec())
        .collect()
}

fn header_triplet(mime: &[u8]) -> (Option<String>, Option<String>, Option<String>) {
    let msg = MessageParser::default().parse(mime).expect("parsable MIME");
    (
        msg.subject().map(str::to_owned),
        msg.message_id().map(str::to_owned),
        msg.from()
            .and_then(|f| f.first())
            .and_then(|a| a.address())
            .map(str::to_owned),
    )
}

/// The body of a message (everything after the first empty line), line endings normalised.
fn body_after_header(mime: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = mime.iter().copied().filter(|&b| b != b'\r').collect();
    let pos = memchr::memmem::find(&text, b"\n\n").expect("header/body separator");
    text[pos + 2..].to_vec()
}

fn check_encrypted_twin(name: &str) {
    let msg = corpus_file!(format!("{SJM}/{name}.msg"));
    let eml = corpus_file!(format!("{SJM}/{name}.eml"));
    let out = msg_to_mime(&msg).expect("convert .msg");
    assert_eq!(out.message_class, "IPM.Note.SMIME");
    assert!(out.is_smime);
    let ours = parts_of(&out.mime, "application", "pkcs7-mime");
    let theirs = parts_of(&eml, "application", "pkcs7-mime");
    assert_eq!(ours.len(), 1, "exactly one p7m part");
    assert_eq!(theirs.len(), 1);
    assert!(ours[0].len() > 1000);
    assert_eq!(
        ours[0], theirs[0],
        "p7m must be byte-identical to the .eml twin's"
    );
    assert_eq!(header_triplet(&out.mime), header_triplet(&eml));
    let text = String::from_utf8_lossy(&out.mime);
    assert!(text.contains("smime-type=enveloped-data"));
    assert_eq!(text.matches("MIME-Version:").count(), 1);
}

#[test]
fn encrypted_msg_yields_same_p7m_as_eml_twin() {
    check_encrypted_twin("S_MIME test message encrypted");
}

#[test]
fn signed_and_encrypted_msg_yields_same_p7m_as_eml_twin() {
    check_encrypted_twin("S_MIME test message signed & encrypted");
}

#[test]
fn multipart_signed_msg_keeps_signed_entity_bytes() {
    let msg = corpus_file!(format!("{SJM}/S_MIME test message signed.msg"));
    let eml = corpus_file!(format!("{SJM}/S_MIME test message signed.eml"));
    let out = msg_to_mime(&msg).expect("convert .msg");
    assert_eq!(out.message_class, "IPM.Note.SMIME.MultipartSigned");
    assert!(out.is_smime);
    let parsed = MessageParser::default().parse(&out.mime).expect("parse");
    let ct = parsed.content_type().expect("content type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("signed"));
    let sig_ours = parts_of(&out.mime, "application", "pkcs7-signature");
    let sig_theirs = parts_of(&eml, "application", "pkcs7-signature");
    assert_eq!(sig_ours.len(), 1);
    assert_eq!(sig_ours, sig_theirs, "signature bytes kept");
    // The whole signed entity (what the signature covers) is unchanged.
    assert_eq!(body_after_header(&out.mime), body_after_header(&eml));
    assert_eq!(header_triplet(&out.mime), header_triplet(&eml));
    let text = String::from_utf8_lossy(&out.mime);
    assert_eq!(text.matches("MIME-Version:").count(), 1);
}

#[test]
fn opaque_signed_msg_without_transport_headers_is_synthesised() {
    let msg = corpus_file!("simple-java-mail/test-messages/SMIME (signed and clear text).msg");
    let eml = corpus_file!("simple-java-mail/test-messages/SMIME (signed and clear text).eml");
    let out = msg_to_mime(&msg).expect("convert .msg");
    assert_eq!(out.message_class, "IPM.Note.SMIME");
    assert!(out.is_smime);
    let text = String::from_utf8_lossy(&out.mime);
    assert!(
        text.contains("smime-type=signed-data"),
        "OID-derived smime-type"
    );
    let ours = parts_of(&out.mime, "application", "pkcs7-mime");
    let theirs = parts_of(&eml, "application", "pkcs7-mime");
    assert_eq!(ours.len(), 1);
    assert_eq!(ours, theirs, "SignedData identical to the .eml twin's");
    // No transport headers in this .msg: From/Subject/Message-ID come from properties.
    assert_eq!(header_triplet(&out.mime), header_triplet(&eml));
    let parsed = MessageParser::default().parse(&out.mime).expect("parse");
    let to = parsed
        .to()
        .and_then(|t| t.first())
        .and_then(|a| a.address());
    assert_eq!(to, Some("a.gasparini@logicaldoc.com"));
    assert!(parsed.date().is_some());
}

#[test]
fn issue_572_multipart_signed_msg() {
    let msg = corpus_file!(
        "simple-java-mail/test-messages/#572 Nullpointer in SMIMESupport.isMimeMessageAttachment.msg"
    );
    let out = msg_to_mime(&msg).expect("convert .msg");
    assert_eq!(out.message_class, "IPM.Note.SMIME.MultipartSigned");
    assert!(out.is_smime);
    let parsed = MessageParser::default().parse(&out.mime).expect("parse");
    assert_eq!(
        parsed.content_type().and_then(|c| c.subtype()),
        Some("signed")
    );
    assert_eq!(
        parsed.message_id(),
        Some("27013addd9414a7686d083cec9e76537@noel.gv.at")
    );
    let sig = parts_of(&out.mime, "application", "pkcs7-signature");
    assert_eq!(sig.len(), 1);
    assert_eq!(sig[0].first(), Some(&0x30), "DER signature");
}

#[test]
fn non_cfb_input_is_an_error_value() {
    let err = msg_to_mime(b"From: x\r\n\r\nhello").expect_err("not a msg");
    assert!(matches!(err, MsgError::Container(_)), "{err}");
    assert!(!err.to_string().is_empty());
    assert!(msg_to_mime(&[]).is_err());
}

/// Truncated and bit-flipped copies of a real .msg never panic or hang.
#[test]
fn damaged_msg_never_panics() {
    let msg = corpus_file!(format!("{SJM}/S_MIME test message encrypted.msg"));
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for cut in [0, 1, 511, 512, 513, 4096, msg.len() / 2, msg.len() - 1] {
        let _ = msg_to_mime(&msg[..cut]);
    }
    for _ in 0..150 {
        let mut m = msg.clone();
        for _ in 0..8 {
            let i = (next() as usize) % m.len();
            m[i] ^= (next() as u8) | 1;
        }
        // Header, FAT and directory sectors are where damage hurts: hit them too.
        let i = (next() as usize) % 2048;
        m[i] = next() as u8;
        match msg_to_mime(&m) {
            Ok(c) => assert!(!c.mime.is_empty()),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}
