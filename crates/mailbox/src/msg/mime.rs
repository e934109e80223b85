//! MIME reconstruction from a [`MapiMessage`].
//!
//! * S/MIME items (`IPM.Note.SMIME*`, or an `IPM.Note` whose only attachment is an S/MIME
//!   payload): the RFC 5322 header comes from `PR_TRANSPORT_MESSAGE_HEADERS` (content headers
//!   removed) or is synthesised from properties; the body is the S/MIME attachment, either as an
//!   `application/pkcs7-mime` base64 part (DER/BER CMS) or verbatim when the attachment is itself
//!   a complete MIME entity (Outlook's storage of `multipart/signed`).
//! * Everything else: header as above plus text/HTML bodies and every attachment as a base64
//!   part (embedded messages as `message/rfc822`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::model::{AttachmentContent, MapiAttachment, MapiMessage, PropBag, tag};

/// Result of MIME reconstruction.
pub(crate) struct Built {
    pub(crate) mime: Vec<u8>,
    pub(crate) message_class: String,
    pub(crate) is_smime: bool,
}

/// Nesting limit for embedded messages (message/rfc822 inside message/rfc822 ...).
const MAX_DEPTH: usize = 16;

pub(crate) fn build(msg: &MapiMessage) -> Built {
    build_at(msg, 0)
}

fn build_at(msg: &MapiMessage, depth: usize) -> Built {
    let message_class = msg
        .props
        .text(tag::MESSAGE_CLASS)
        .unwrap_or("IPM.Note")
        .to_owned();
    let class_is_smime = message_class
        .to_ascii_lowercase()
        .starts_with("ipm.note.smime");

    let mut out = Vec::new();
    write_header(msg, &mut out);

    if let Some((payload, chosen)) = smime_payload(msg, class_is_smime) {
        // Outlook stores an S/MIME message as its one attachment. Any other attachment is kept
        // beside it (multipart/mixed), not dropped: it may hold an envelope of its own.
        let others: Vec<Part> = msg
            .attachments
            .iter()
            .filter(|a| !std::ptr::eq(*a, chosen) && !matches!(a.content, AttachmentContent::None))
            .map(|a| attachment_part(a, depth))
            .collect();
        let part = match payload {
            // Verbatim: a signed entity's bytes must not change.
            SmimePayload::Entity(entity) if others.is_empty() => {
                if !entity_has_field(entity, b"mime-version") {
                    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
                }
                out.extend_from_slice(entity);
                return Built {
                    mime: out,
                    message_class,
                    is_smime: true,
                };
            }
            SmimePayload::Entity(entity) => entity_part(entity),
            SmimePayload::Cms(der) => {
                let smime_type = cms_smime_type(&der);
                let mut body = Vec::new();
                base64_lines(&der, &mut body);
                Part {
                    headers: format!(
                        "Content-Type: application/pkcs7-mime; smime-type={smime_type}; name=\"smime.p7m\"\r\n\
                         Content-Transfer-Encoding: base64\r\n\
                         Content-Disposition: attachment; filename=\"smime.p7m\"\r\n"
                    ),
                    body,
                }
            }
        };
        let entity = if others.is_empty() {
            part
        } else {
            let mut parts = vec![part];
            parts.extend(others);
            multipart("mixed", &parts)
        };
        out.extend_from_slice(b"MIME-Version: 1.0\r\n");
        entity.write(&mut out);
        return Built {
            mime: out,
            message_class,
            is_smime: true,
        };
    }

    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    let body = body_entity(msg, depth);
    out.extend_from_slice(&body);
    Built {
        mime: out,
        message_class,
        is_smime: false,
    }
}

// ---------------------------------------------------------------------------------------------
// Header

/// Header fields that describe the body; replaced by our own.
fn is_content_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "mime-version"
        || n == "content-type"
        || n == "content-transfer-encoding"
        || n == "content-disposition"
        || n == "content-description"
        || n == "content-id"
        || n == "content-length"
}

/// Split a header block into (name, full field text incl. continuation lines, CRLF-terminated).
/// Stops at the first empty line. Lines that are not fields and not continuations are dropped.
pub(crate) fn split_header_fields(block: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for raw in block.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            if fields.is_empty() {
                continue; // tolerate leading blank lines
            }
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, text)) = fields.last_mut() {
                text.push_str(line);
                text.push_str("\r\n");
            }
            continue;
        }
        if let Some(colon) = line.find(':') {
            let name = &line[..colon];
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                fields.push((name.to_owned(), format!("{line}\r\n")));
            }
        }
    }
    fields
}

fn write_header(msg: &MapiMessage, out: &mut Vec<u8>) {
    let p = &msg.props;
    let transport = p
        .text(tag::TRANSPORT_MESSAGE_HEADERS)
        .map(split_header_fields)
        .unwrap_or_default();
    let has = |name: &str| transport.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));

    for (name, text) in &transport {
        if !is_content_header(name) {
            out.extend_from_slice(text.as_bytes());
        }
    }

    // Synthesise what the transport headers lack (all of it when there are none).
    if !has("From")
        && let Some(from) = sender(p)
    {
        push_field(out, "From", &from);
    }
    if transport.is_empty() {
        for (kind, name) in [(1, "To"), (2, "Cc"), (3, "Bcc")] {
            let list: Vec<String> = msg
                .recipients
                .iter()
                .filter(|r| r.int(tag::RECIPIENT_TYPE).unwrap_or(1) == kind)
                .filter_map(recipient_address)
                .collect();
            if !list.is_empty() {
                push_field(out, name, &list.join(",\r\n "));
            }
        }
    }
    if !has("Subject")
        && let Some(subject) = p.str(tag::SUBJECT)
    {
        let subject = subject.trim_end_matches('\0');
        push_field(out, "Subject", &encode_phrase_unstructured(subject));
    }
    if !has("Date") {
        let date = p
            .unix_time(tag::CLIENT_SUBMIT_TIME)
            .or_else(|| p.unix_time(tag::MESSAGE_DELIVERY_TIME))
            .or_else(|| p.unix_time(tag::CREATION_TIME));
        if let Some(date) = date {
            push_field(out, "Date", &rfc5322_date(date));
        }
    }
    if !has("Message-ID")
        && let Some(id) = p.text(tag::INTERNET_MESSAGE_ID).filter(|s| s.is_ascii())
    {
        push_field(out, "Message-ID", id);
    }
    if transport.is_empty() {
        if let Some(id) = p.text(tag::IN_REPLY_TO_ID).filter(|s| s.is_ascii()) {
            push_field(out, "In-Reply-To", id);
        }
        if let Some(refs) = p.text(tag::INTERNET_REFERENCES).filter(|s| s.is_ascii()) {
            push_field(out, "References", refs);
        }
    }
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    // Values never contain bare CR/LF except our own folding "\r\n ".
    let value: String = value
        .split("\r\n ")
        .map(|part| part.replace(['\r', '\n'], " "))
        .collect::<Vec<_>>()
        .join("\r\n ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn sender(p: &PropBag) -> Option<String> {
    let name = p
        .text(tag::SENT_REPRESENTING_NAME)
        .or_else(|| p.text(tag::SENDER_NAME));
    let email = p
        .text(tag::SENT_REPRESENTING_SMTP_ADDRESS)
        .or_else(|| {
            smtp_only(
                p,
                tag::SENT_REPRESENTING_ADDRTYPE,
                tag::SENT_REPRESENTING_EMAIL,
            )
        })
        .or_else(|| p.text(tag::SENDER_SMTP_ADDRESS))
        .or_else(|| smtp_only(p, tag::SENDER_ADDRTYPE, tag::SENDER_EMAIL))
        // Items sent from an Exchange account carry only X.500 sender addresses; the
        // creator's SMTP address is the sender's for items the user sent.
        .or_else(|| p.text(tag::CREATOR_SMTP_ADDRESS));
    format_address(name, email)
}

/// The e-mail address property if it is an SMTP address (not an Exchange X.500 DN).
fn smtp_only(p: &PropBag, addrtype: u16, email: u16) -> Option<&str> {
    let email = p.text(email)?;
    let smtp = p
        .text(addrtype)
        .is_none_or(|t| t.eq_ignore_ascii_case("SMTP"));
    (smtp || email.contains('@') && !email.starts_with('/')).then_some(email)
}

fn recipient_address(r: &PropBag) -> Option<String> {
    let email = r
        .text(tag::SMTP_ADDRESS)
        .or_else(|| smtp_only(r, tag::ADDRTYPE, tag::EMAIL_ADDRESS));
    format_address(r.text(tag::DISPLAY_NAME), email)
}

fn format_address(name: Option<&str>, email: Option<&str>) -> Option<String> {
    let email = email.or(name.filter(|n| is_plain_addr(n)))?;
    if !is_plain_addr(email) {
        // No usable address: keep the display name as an (empty) group.
        return name.or(Some(email)).map(|n| format!("{}:;", phrase(n)));
    }
    match name {
        Some(n) if n != email => Some(format!("{} <{email}>", phrase(n))),
        _ => Some(email.to_owned()),
    }
}

fn is_plain_addr(s: &str) -> bool {
    s.contains('@')
        && s.is_ascii()
        && !s
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b"<>()\",;".contains(&b))
}

/// Display name as an RFC 5322 phrase: atom(s) if safe, quoted string, or RFC 2047 words.
fn phrase(name: &str) -> String {
    if !name.is_ascii() || name.chars().any(|c| c.is_control()) {
        return encoded_words(name);
    }
    let atext = |c: char| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c);
    if name.chars().all(atext) && !name.starts_with(' ') && !name.ends_with(' ') {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn encode_phrase_unstructured(s: &str) -> String {
    if s.is_ascii() && !s.chars().any(|c| c.is_control()) {
        s.to_owned()
    } else {
        encoded_words(s)
    }
}

/// RFC 2047 B-encoded words (UTF-8), folded, each at most 75 characters.
fn encoded_words(s: &str) -> String {
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", B64.encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() || words.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", B64.encode(chunk.as_bytes())));
    }
    words.join("\r\n ")
}

/// RFC 5322 date in UTC.
pub(crate) fn rfc5322_date(unix: i64) -> String {
    crate::date::rfc5322(unix)
}

// ---------------------------------------------------------------------------------------------
// S/MIME

fn bytes_of(a: &MapiAttachment) -> Option<&[u8]> {
    match &a.content {
        AttachmentContent::Bytes(b) if !b.is_empty() => Some(b.as_slice()),
        _ => None,
    }
}

enum SmimePayload<'a> {
    /// A complete MIME entity (headers + body), e.g. multipart/signed.
    Entity(&'a [u8]),
    /// CMS ContentInfo (DER/BER).
    Cms(Vec<u8>),
}

fn attachment_name(a: &MapiAttachment) -> Option<&str> {
    a.props
        .text(tag::ATTACH_LONG_FILENAME)
        .or_else(|| a.props.text(tag::ATTACH_FILENAME))
        .or_else(|| a.props.text(tag::DISPLAY_NAME))
}

/// The S/MIME payload and the attachment it came from.
fn smime_payload(
    msg: &MapiMessage,
    class_is_smime: bool,
) -> Option<(SmimePayload<'_>, &MapiAttachment)> {
    let looks_smime = |a: &MapiAttachment| {
        let name = attachment_name(a).unwrap_or("").to_ascii_lowercase();
        let mime = a
            .props
            .text(tag::ATTACH_MIME_TAG)
            .unwrap_or("")
            .to_ascii_lowercase();
        name.ends_with(".p7m")
            || mime.contains("pkcs7-mime")
            || mime.starts_with("multipart/signed")
    };
    let candidate = if class_is_smime {
        msg.attachments
            .iter()
            .filter(|a| bytes_of(a).is_some())
            .find(|a| looks_smime(a))
            .or_else(|| {
                let mut with_bytes = msg.attachments.iter().filter(|a| bytes_of(a).is_some());
                match (with_bytes.next(), with_bytes.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            })?
    } else {
        // A plain IPM.Note can still carry an S/MIME message (e.g. imported by a third-party
        // tool): exactly one attachment, smime.p7m-like, and no text body of its own.
        if msg.attachments.len() != 1 || msg.props.text(tag::BODY).is_some() {
            return None;
        }
        let a = &msg.attachments[0];
        let name = attachment_name(a).unwrap_or("").to_ascii_lowercase();
        if name != "smime.p7m" || !looks_smime(a) {
            return None;
        }
        a
    };
    let data = bytes_of(candidate)?;
    if is_mime_entity(data) {
        return Some((SmimePayload::Entity(data), candidate));
    }
    if data.first() == Some(&0x30) {
        return Some((SmimePayload::Cms(data.to_vec()), candidate));
    }
    // Some tools store the p7m base64-encoded.
    let compact: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let payload = match B64.decode(&compact) {
        Ok(der) if der.first() == Some(&0x30) => SmimePayload::Cms(der),
        _ if class_is_smime => SmimePayload::Cms(data.to_vec()),
        _ => return None,
    };
    Some((payload, candidate))
}

/// A complete MIME entity (header block, blank line, body) as a [`Part`].
fn entity_part(entity: &[u8]) -> Part {
    // The header block ends at the first blank line, CRLF or LF, whichever comes first.
    let crlf = memchr::memmem::find(entity, b"\r\n\r\n").map(|i| (i, i + 2, i + 4));
    let lf = memchr::memmem::find(entity, b"\n\n").map(|i| (i, i + 1, i + 2));
    let (head, body) = match [crlf, lf].into_iter().flatten().min() {
        Some((_, head_end, body_start)) => (&entity[..head_end], &entity[body_start..]),
        None => (entity, &[][..]),
    };
    Part {
        headers: String::from_utf8_lossy(head).into_owned(),
        body: body.to_vec(),
    }
}

/// True if `data` starts with an RFC 5322 header block containing Content-Type.
pub(crate) fn is_mime_entity(data: &[u8]) -> bool {
    let head = &data[..data.len().min(16 * 1024)];
    let Some(first) = head.first() else {
        return false;
    };
    if !first.is_ascii_alphabetic() {
        return false;
    }
    let mut saw_content_type = false;
    for (i, line) in head.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return saw_content_type && i > 0;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
            return false;
        }
        if name.eq_ignore_ascii_case(b"content-type") {
            saw_content_type = true;
        }
    }
    false
}

/// Whether the header block at the start of `entity` has a field called `name` (lowercase).
fn entity_has_field(entity: &[u8], name: &[u8]) -> bool {
    for line in entity.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return false;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':')
            && line[..colon].trim_ascii().eq_ignore_ascii_case(name)
        {
            return true;
        }
    }
    false
}

/// smime-type parameter for a CMS ContentInfo, from its contentType OID.
fn cms_smime_type(der: &[u8]) -> &'static str {
    const SIGNED: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];
    const AUTH_ENV: &[u8] = &[
        0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x01, 0x17,
    ];
    const COMPRESSED: &[u8] = &[
        0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x01, 0x09,
    ];
    let oid = (|| {
        // SEQUENCE header (definite or indefinite length), then OBJECT IDENTIFIER.
        let mut i = 1;
        let len0 = *der.get(i)?;
        i += 1;
        if len0 & 0x80 != 0 && len0 != 0x80 {
            i += usize::from(len0 & 0x7F);
        }
        if *der.get(i)? != 0x06 {
            return None;
        }
        let len = usize::from(*der.get(i + 1)?);
        der.get(i + 2..i + 2 + len)
    })();
    match oid {
        Some(SIGNED) => "signed-data",
        Some(AUTH_ENV) => "authEnveloped-data",
        Some(COMPRESSED) => "compressed-data",
        _ => "enveloped-data",
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies and attachments

/// One MIME entity: header lines (without the blank line) and body bytes.
struct Part {
    headers: String,
    body: Vec<u8>,
}

impl Part {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.headers.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

fn body_entity(msg: &MapiMessage, depth: usize) -> Vec<u8> {
    let p = &msg.props;
    let text = p.str(tag::BODY).map(|s| s.trim_end_matches('\0'));
    let html = html_body(p);

    let mut alternatives = Vec::new();
    if let Some(text) = text {
        alternatives.push(text_part("text/plain", "utf-8", text.as_bytes()));
    }
    if let Some((bytes, charset)) = &html {
        alternatives.push(text_part("text/html", charset, bytes));
    }
    if alternatives.is_empty()
        && let Some(rtf) = p
            .bin(tag::RTF_COMPRESSED)
            .and_then(|b| super::rtf::decompress(b).ok())
    {
        alternatives.push(binary_part("text/rtf", None, None, &rtf));
    }
    if alternatives.is_empty() {
        alternatives.push(text_part("text/plain", "utf-8", b""));
    }
    let body = if alternatives.len() == 1 {
        alternatives
            .pop()
            .unwrap_or_else(|| text_part("text/plain", "utf-8", b""))
    } else {
        multipart("alternative", &alternatives)
    };

    let mut parts = vec![body];
    for a in &msg.attachments {
        parts.push(attachment_part(a, depth));
    }
    let entity = if parts.len() == 1 {
        parts
            .pop()
            .unwrap_or_else(|| text_part("text/plain", "utf-8", b""))
    } else {
        multipart("mixed", &parts)
    };
    let mut out = Vec::new();
    entity.write(&mut out);
    out
}

/// HTML body bytes and their charset label.
fn html_body(p: &PropBag) -> Option<(Vec<u8>, String)> {
    if let Some(s) = p.text(tag::HTML) {
        return Some((s.as_bytes().to_vec(), "utf-8".to_owned()));
    }
    let bytes = p.bin(tag::HTML).filter(|b| !b.is_empty())?;
    let bytes = match bytes.iter().position(|&b| b == 0) {
        Some(nul) => &bytes[..nul],
        None => bytes,
    };
    let cpid = p
        .int(tag::INTERNET_CPID)
        .or_else(|| p.int(tag::MESSAGE_CODEPAGE));
    let charset = match cpid {
        _ if std::str::from_utf8(bytes).is_ok()
            && cpid.is_none_or(|c| c == 65001 || c == 20127) =>
        {
            "utf-8".to_owned()
        }
        Some(65001) => "utf-8".to_owned(),
        Some(1252) | None => "windows-1252".to_owned(),
        Some(28591) => "iso-8859-1".to_owned(),
        Some(28592) => "iso-8859-2".to_owned(),
        Some(28605) => "iso-8859-15".to_owned(),
        Some(20127) => "us-ascii".to_owned(),
        Some(932) => "shift_jis".to_owned(),
        Some(50220) => "iso-2022-jp".to_owned(),
        Some(51932) => "euc-jp".to_owned(),
        Some(936) => "gb2312".to_owned(),
        Some(950) => "big5".to_owned(),
        Some(949) => "ks_c_5601-1987".to_owned(),
        Some(20866) => "koi8-r".to_owned(),
        Some(c @ 1250..=1258) => format!("windows-{c}"),
        Some(_) => "windows-1252".to_owned(),
    };
    Some((bytes.to_vec(), charset))
}

fn text_part(content_type: &str, charset: &str, body: &[u8]) -> Part {
    let seven_bit = body.is_ascii()
        && !body.contains(&0)
        && body.split(|&b| b == b'\n').all(|l| l.len() <= 998);
    if seven_bit {
        let mut normalized = Vec::with_capacity(body.len() + body.len() / 32);
        crlf(body, &mut normalized);
        Part {
            headers: format!(
                "Content-Type: {content_type}; charset={charset}\r\nContent-Transfer-Encoding: 7bit\r\n"
            ),
            body: normalized,
        }
    } else {
        let mut encoded = Vec::new();
        base64_lines(body, &mut encoded);
        Part {
            headers: format!(
                "Content-Type: {content_type}; charset={charset}\r\nContent-Transfer-Encoding: base64\r\n"
            ),
            body: encoded,
        }
    }
}

fn binary_part(
    content_type: &str,
    filename: Option<&str>,
    content_id: Option<&str>,
    data: &[u8],
) -> Part {
    let mut headers = format!("Content-Type: {content_type}");
    if let Some(f) = filename {
        headers.push_str(&format!(";\r\n name={}", param_value(f)));
    }
    headers.push_str("\r\nContent-Transfer-Encoding: base64\r\n");
    if let Some(f) = filename {
        headers.push_str(&format!(
            "Content-Disposition: attachment;\r\n filename={}\r\n",
            param_value(f)
        ));
    }
    if let Some(cid) = content_id.filter(|c| c.is_ascii() && !c.contains(['\r', '\n'])) {
        let cid = cid.trim_start_matches('<').trim_end_matches('>');
        headers.push_str(&format!("Content-ID: <{cid}>\r\n"));
    }
    let mut body = Vec::new();
    base64_lines(data, &mut body);
    Part { headers, body }
}

/// A parameter value: quoted ASCII, or an RFC 2047 word in quotes for non-ASCII names (what
/// most mail software, including readpst, emits and understands).
fn param_value(v: &str) -> String {
    let clean: String = v.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        format!("\"{}\"", clean.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("\"=?UTF-8?B?{}?=\"", B64.encode(clean.as_bytes()))
    }
}

fn attachment_part(a: &MapiAttachment, depth: usize) -> Part {
    let name = attachment_name(a);
    let content_id = a.props.text(tag::ATTACH_CONTENT_ID);
    match &a.content {
        AttachmentContent::Message(inner) if depth < MAX_DEPTH => {
            let built = build_at(inner, depth + 1);
            let mut headers = String::from("Content-Type: message/rfc822\r\n");
            if let Some(n) = name {
                headers.push_str(&format!(
                    "Content-Disposition: attachment;\r\n filename={}\r\n",
                    param_value(n)
                ));
            }
            Part {
                headers,
                body: built.mime,
            }
        }
        AttachmentContent::Message(_) => binary_part("text/plain", name, content_id, b""),
        AttachmentContent::Bytes(bytes) => {
            let mime = a
                .props
                .text(tag::ATTACH_MIME_TAG)
                .filter(|m| valid_media_type(m))
                .unwrap_or("application/octet-stream");
            binary_part(mime, name, content_id, bytes)
        }
        AttachmentContent::None => binary_part("application/octet-stream", name, content_id, b""),
    }
}

fn valid_media_type(m: &str) -> bool {
    let mut it = m.splitn(2, '/');
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    matches!((it.next(), it.next()), (Some(a), Some(b)) if token(a) && token(b))
}

fn multipart(subtype: &str, parts: &[Part]) -> Part {
    let mut rendered = Vec::new();
    for p in parts {
        let mut r = Vec::new();
        p.write(&mut r);
        rendered.push(r);
    }
    let boundary = choose_boundary(&rendered);
    let mut body = Vec::new();
    body.extend_from_slice(b"This is a multi-part message in MIME format.\r\n");
    for r in &rendered {
        body.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        body.extend_from_slice(r);
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Part {
        headers: format!("Content-Type: multipart/{subtype};\r\n boundary=\"{boundary}\"\r\n"),
        body,
    }
}

fn choose_boundary(parts: &[Vec<u8>]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter().take(4096) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h = (h ^ p.len() as u64).wrapping_mul(0x100_0000_01b3);
    }
    let mut n = 0u32;
    loop {
        let b = format!("----=_unseal_{h:016x}_{n}");
        if !parts
            .iter()
            .any(|p| memchr::memmem::find(p, b.as_bytes()).is_some())
        {
            return b;
        }
        n += 1;
        h = h.rotate_left(7) ^ u64::from(n);
    }
}

/// Copy text normalising line endings to CRLF.
fn crlf(body: &[u8], out: &mut Vec<u8>) {
    let mut prev = 0u8;
    for &b in body {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        if prev == b'\r' && b != b'\n' {
            out.push(b'\n');
        }
        out.push(b);
        prev = b;
    }
    if prev == b'\r' {
        out.push(b'\n');
    }
}

/// Base64 with 76-character CRLF-terminated lines.
pub(crate) fn base64_lines(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(57) {
        out.extend_from_slice(B64.encode(chunk).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entity_splits_at_its_first_blank_line_whatever_its_line_ends() {
        let lf = entity_part(b"Content-Type: text/plain\n\nbody\r\n\r\nmore");
        assert_eq!(lf.headers, "Content-Type: text/plain\n");
        assert_eq!(lf.body, b"body\r\n\r\nmore");
        let crlf = entity_part(b"Content-Type: text/plain\r\n\r\nbody\n\nmore");
        assert_eq!(crlf.headers, "Content-Type: text/plain\r\n");
        assert_eq!(crlf.body, b"body\n\nmore");
        let none = entity_part(b"Content-Type: text/plain\r\n");
        assert!(none.body.is_empty());
    }
    use crate::msg::model::PropValue;

    #[test]
    fn dates_format_in_utc() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_556_383_646),
            "Sat, 27 Apr 2019 16:47:26 +0000"
        );
    }

    #[test]
    fn header_split_handles_folding_and_blank_lines() {
        let f = split_header_fields("\r\nA: 1\r\n 2\r\nB: x\nnot a field\r\n\r\nC: after");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].1, "A: 1\r\n 2\r\n");
        assert_eq!(f[1].0, "B");
    }

    #[test]
    fn mime_entity_detection() {
        assert!(is_mime_entity(
            b"Content-Type: multipart/signed;\r\n b=1\r\n\r\nbody"
        ));
        assert!(!is_mime_entity(b"\x30\x80\x06\x09"));
        assert!(!is_mime_entity(b"Subject: x\r\n\r\n"));
        assert!(!is_mime_entity(b""));
    }

    #[test]
    fn synthesised_header_and_smime_body() {
        let mut msg = MapiMessage::default();
        msg.props
            .insert(tag::MESSAGE_CLASS, PropValue::Str("IPM.Note.SMIME".into()));
        msg.props
            .insert(tag::SUBJECT, PropValue::Str("Grüße".into()));
        msg.props
            .insert(tag::SENDER_NAME, PropValue::Str("A, B".into()));
        msg.props.insert(
            tag::SENDER_SMTP_ADDRESS,
            PropValue::Str("a@example.org".into()),
        );
        let mut r = PropBag::default();
        r.insert(tag::DISPLAY_NAME, PropValue::Str("Bob".into()));
        r.insert(tag::SMTP_ADDRESS, PropValue::Str("bob@example.org".into()));
        r.insert(tag::RECIPIENT_TYPE, PropValue::Int(1));
        msg.recipients.push(r);
        let mut a = MapiAttachment::default();
        a.props.insert(
            tag::ATTACH_LONG_FILENAME,
            PropValue::Str("smime.p7m".into()),
        );
        let der = vec![0x30, 0x03, 0x06, 0x01, 0x00];
        a.content = AttachmentContent::Bytes(der.clone());
        msg.attachments.push(a);
        let built = build(&msg);
        assert!(built.is_smime);
        let parsed = mail_parser::MessageParser::default()
            .parse(&built.mime)
            .expect("parse");
        assert_eq!(parsed.subject(), Some("Grüße"));
        let from = parsed.from().and_then(|f| f.first()).expect("from");
        assert_eq!(from.address(), Some("a@example.org"));
        assert_eq!(from.name(), Some("A, B"));
        let to = parsed.to().and_then(|t| t.first()).expect("to");
        assert_eq!(to.address(), Some("bob@example.org"));
        let text = String::from_utf8_lossy(&built.mime);
        assert!(text.contains("application/pkcs7-mime; smime-type=enveloped-data"));
        assert!(text.contains(&B64.encode(&der)));
    }
}
