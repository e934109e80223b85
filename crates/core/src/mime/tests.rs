//! Splicing tests with a fake opener: a "ciphertext" here is
//! `SEQUENCE { OID enveloped-data, [0] { OCTET STRING plaintext } }`, so the walker and the
//! rewrite run for real while decryption is trivial.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::signed::{self, read_tlv};
use super::*;
use crate::cms::{EnvelopeKind, RecipientId};

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else {
        v.push(0x84);
        v.extend_from_slice(&(n as u32).to_be_bytes());
    }
    v.extend_from_slice(content);
    v
}

fn fake_env(plain: &[u8]) -> Vec<u8> {
    let body = [
        tlv(0x06, crate::oid::ENVELOPED_DATA.as_bytes()),
        tlv(0xa0, &tlv(0x04, plain)),
    ]
    .concat();
    tlv(0x30, &body)
}

fn b64(data: &[u8], eol: &str) -> String {
    let s = STANDARD.encode(data);
    s.as_bytes()
        .chunks(64)
        .map(|c| format!("{}{eol}", std::str::from_utf8(c).unwrap()))
        .collect()
}

/// An application/pkcs7-mime part (headers + blank line + base64 body) around `plain`.
fn env_part(plain: &[u8], eol: &str) -> String {
    format!(
        "Content-Type: application/pkcs7-mime; name=smime.p7m;{eol}    smime-type=enveloped-data{eol}\
         Content-Transfer-Encoding: base64{eol}Content-Disposition: attachment; filename=smime.p7m{eol}{eol}{}",
        b64(&fake_env(plain), eol)
    )
}

fn signed_part(content: &[u8], eol: &str) -> String {
    format!(
        "Content-Type: application/pkcs7-mime; name=smime.p7m; smime-type=signed-data{eol}\
         Content-Transfer-Encoding: base64{eol}{eol}{}",
        b64(&signed::tests::fake_signed(content, true), eol)
    )
}

struct Fake;

impl EnvelopeOpener for Fake {
    fn open(&self, cms: &[u8], out: &mut Vec<u8>) -> Result<LayerInfo> {
        let ci = read_tlv(cms, 0, 0)?;
        let oid = read_tlv(cms, ci.content_start, 1)?;
        let explicit = read_tlv(cms, oid.end, 1)?;
        let os = read_tlv(cms, explicit.content_start, 2)?;
        let plain = &cms[os.content_start..os.content_end];
        if plain.starts_with(b"FAIL") {
            return Err(Error::WrongKey {
                recipient: "Bob".into(),
                reason: "bad padding".into(),
            });
        }
        out.extend_from_slice(plain);
        let rid = RecipientId::SubjectKeyId(vec![0x1f]);
        Ok(LayerInfo {
            kind: EnvelopeKind::Enveloped,
            content_cipher: "AES-256-CBC".into(),
            key_transport: "RSA PKCS#1 v1.5".into(),
            recipients: vec![rid.clone()],
            used_recipient: rid,
            key_source: "fake".into(),
            ciphertext_len: cms.len() as u64,
            plaintext_len: plain.len() as u64,
        })
    }
}

fn opts() -> MessageOptions {
    MessageOptions {
        trace_header: true,
        max_depth: 16,
        timestamp: "Tue, 2 Jan 2024 03:04:05 +0000".into(),
    }
}

fn run(msg: &str) -> MessageOutcome {
    decrypt_message_with(&Fake, msg.as_bytes(), &opts()).expect("decrypts")
}

fn out_text(o: &MessageOutcome) -> String {
    String::from_utf8(o.output.clone().expect("output")).unwrap()
}

/// The trace field for a fake layer (its exact format and folding are tested in rewrite.rs).
fn trace(path: &str, eol: &str) -> String {
    let mut plain = Vec::new();
    let info = Fake.open(&fake_env(b"x"), &mut plain).unwrap();
    let f = rewrite::layer_field(&info, path, &opts().timestamp, eol.as_bytes());
    let text = String::from_utf8(f).unwrap();
    let unfolded = text.replace(&format!("{eol} "), " ");
    let part = if path.is_empty() {
        String::new()
    } else {
        format!(" part=\"{path}\";")
    };
    assert_eq!(
        unfolded,
        format!(
            "X-Unseal-Decrypted: enveloped-data;{part} cipher=AES-256-CBC; key-transport=\"RSA PKCS#1 v1.5\"; \
             recipient=\"subjectKeyIdentifier 1F\"; at=\"Tue, 2 Jan 2024 03:04:05 +0000\"{eol}"
        )
    );
    text
}

#[test]
fn top_level_envelope_keeps_outer_headers_in_order() {
    for eol in ["\n", "\r\n"] {
        let inner = format!("Content-Type: text/plain; charset=utf-8{eol}{eol}Grüße, Bob{eol}");
        let msg = format!(
            "Received: from a{eol}\tby b{eol}From: alice@example.com{eol}Subject: folded{eol} subject{eol}\
             Content-Type: application/pkcs7-mime; name=smime.p7m;{eol}    smime-type=enveloped-data{eol}\
             X-Between: 1{eol}Content-Transfer-Encoding: base64{eol}content-description: lower case{eol}\
             X-After: 2{eol}{eol}{}",
            b64(&fake_env(inner.as_bytes()), eol)
        );
        let o = run(&msg);
        let expected = format!(
            "Received: from a{eol}\tby b{eol}From: alice@example.com{eol}Subject: folded{eol} subject{eol}\
             X-Between: 1{eol}X-After: 2{eol}{}{inner}",
            trace("", eol)
        );
        assert_eq!(out_text(&o), expected);
        assert_eq!(o.layers.len(), 1);
        assert_eq!(o.layers[0].path, "");
        assert_eq!(o.layers[0].info.content_cipher, "AES-256-CBC");
        assert!(o.signatures_removed.is_empty());
    }
}

#[test]
fn top_level_envelope_exact_output() {
    for eol in ["\n", "\r\n"] {
        let inner = format!(
            "Content-Type: multipart/mixed; boundary=x{eol}{eol}--x{eol}{eol}hi{eol}--x--{eol}"
        );
        let msg = format!(
            "From: a{eol}Content-Type: application/x-pkcs7-mime{eol}To: b{eol}\
             Content-Transfer-Encoding: base64{eol}MIME-Version: 1.0{eol}Subject: s{eol}  t{eol}{eol}{}",
            b64(&fake_env(inner.as_bytes()), eol)
        );
        let o = run(&msg);
        // MIME-Version stays: the inner entity has none.
        let expected = format!(
            "From: a{eol}To: b{eol}MIME-Version: 1.0{eol}Subject: s{eol}  t{eol}{}{inner}",
            trace("", eol)
        );
        assert_eq!(out_text(&o), expected);

        let no_trace = MessageOptions {
            trace_header: false,
            ..opts()
        };
        let o = decrypt_message_with(&Fake, msg.as_bytes(), &no_trace).unwrap();
        let expected =
            format!("From: a{eol}To: b{eol}MIME-Version: 1.0{eol}Subject: s{eol}  t{eol}{inner}");
        assert_eq!(String::from_utf8(o.output.unwrap()).unwrap(), expected);
    }
}

#[test]
fn inner_mime_version_replaces_outer() {
    let inner = "MIME-Version: 1.0\nContent-Type: text/plain\n\nx\n";
    let msg = format!(
        "MIME-Version: 1.0\nFrom: a\n{}",
        env_part(inner.as_bytes(), "\n")
    );
    let o = decrypt_message_with(
        &Fake,
        msg.as_bytes(),
        &MessageOptions {
            trace_header: false,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(o.output.unwrap()).unwrap(),
        format!("From: a\n{inner}")
    );
}

#[test]
fn plaintext_without_headers_gets_a_blank_line() {
    let msg = format!(
        "From: a\n{}",
        env_part(b"Hello Bob, no headers here.\n", "\n")
    );
    let o = decrypt_message_with(
        &Fake,
        msg.as_bytes(),
        &MessageOptions {
            trace_header: false,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(o.output.unwrap()).unwrap(),
        "From: a\n\nHello Bob, no headers here.\n"
    );
}

#[test]
fn multipart_part_replaced_rest_byte_exact() {
    for eol in ["\n", "\r\n"] {
        let inner = format!("Content-Type: text/html{eol}{eol}<p>secret</p>{eol}");
        let head = format!(
            "From: a{eol}Content-Type: multipart/mixed; boundary=\"==b==\"{eol}{eol}preamble{eol}"
        );
        let p1 = format!("--==b==  {eol}Content-Type: text/plain{eol}{eol}first{eol}");
        let p2 = format!("{eol}--==b=={eol}");
        let p3 = format!(
            "{eol}--==b=={eol}Content-Type: image/png{eol}Content-Transfer-Encoding: base64{eol}{eol}iVBORw0K{eol}"
        );
        let tail = format!("--==b==--{eol}epilogue{eol}");
        let msg = format!(
            "{head}{p1}{p2}{}{p3}{tail}",
            env_part(inner.as_bytes(), eol)
        );
        let o = run(&msg);
        // Part 2 is exactly the envelope part (the line ending before "--==b==" belongs to the
        // delimiter); it becomes the plaintext, everything else stays, the trace goes at the end
        // of the top-level header block.
        let expected = format!(
            "From: a{eol}Content-Type: multipart/mixed; boundary=\"==b==\"{eol}{}{eol}preamble{eol}{p1}{p2}{inner}{p3}{tail}",
            trace("2", eol)
        );
        assert_eq!(out_text(&o), expected);
        assert_eq!(o.layers.len(), 1);
        assert_eq!(o.layers[0].path, "2");
    }
}

#[test]
fn multipart_splice_exact_simple() {
    let inner = "Content-Type: text/plain\n\nsecret\n";
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n{}--b--\n",
        env_part(inner.as_bytes(), "\n")
    );
    let o = decrypt_message_with(
        &Fake,
        msg.as_bytes(),
        &MessageOptions {
            trace_header: false,
            ..opts()
        },
    )
    .unwrap();
    // The part content ends before the "\n" that precedes "--b--"; the plaintext's own final
    // newline is kept, so the part now ends in a blank line.
    assert_eq!(
        String::from_utf8(o.output.unwrap()).unwrap(),
        format!("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n{inner}\n--b--\n")
    );
}

#[test]
fn several_envelopes_and_nested_multiparts() {
    let msg = format!(
        "Content-Type: multipart/alternative; boundary=o\n\n--o\n{}\n--o\n\
         Content-Type: multipart/related; boundary=i\n\n--i\n{}\n--i--\n\n--o--\n",
        env_part(b"Content-Type: text/plain\n\nA\n", "\n"),
        env_part(b"Content-Type: text/html\n\nB\n", "\n"),
    );
    let o = run(&msg);
    let paths: Vec<&str> = o.layers.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(paths, ["1", "2.1"]);
    let text = out_text(&o);
    assert!(
        text.contains("--o\nContent-Type: text/plain\n\nA\n\n--o\n"),
        "{text}"
    );
    assert!(
        text.contains("--i\nContent-Type: text/html\n\nB\n\n--i--\n"),
        "{text}"
    );
    assert_eq!(text.matches("X-Unseal-Decrypted:").count(), 2);
    assert!(!text.contains("pkcs7"));
}

#[test]
fn forwarded_message_attachment() {
    let fwd = format!(
        "From: c\nSubject: fwd\nMIME-Version: 1.0\n{}",
        env_part(b"Content-Type: text/plain\n\ninner secret\n", "\n")
    );
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nsee attached\n--b\nContent-Type: message/rfc822\n\n{fwd}\n--b--\n"
    );
    let o = run(&msg);
    assert_eq!(o.layers[0].path, "2/rfc822");
    let text = out_text(&o);
    assert!(
        text.contains("Content-Type: message/rfc822\n\nFrom: c\nSubject: fwd\nMIME-Version: 1.0\nContent-Type: text/plain\n\ninner secret\n\n--b--\n"),
        "{text}"
    );
    // base64-encoded forwarded message: re-encoded after rewriting.
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n{}--b--\n",
        b64(fwd.as_bytes(), "\n")
    );
    let o = run(&msg);
    let text = out_text(&o);
    let body = text
        .split("base64\n\n")
        .nth(1)
        .unwrap()
        .split("--b--")
        .next()
        .unwrap();
    let decoded = detect::decode_base64(body.as_bytes());
    assert!(
        String::from_utf8(decoded)
            .unwrap()
            .ends_with("Content-Type: text/plain\n\ninner secret\n")
    );
}

#[test]
fn sign_then_encrypt_keeps_inner_signature() {
    let signed = "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=s\r\n\r\n\
                  --s\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n--s\r\n\
                  Content-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqG\r\n--s--\r\n";
    let msg = format!("From: a\r\n{}", env_part(signed.as_bytes(), "\r\n"));
    let o = run(&msg);
    assert!(o.signatures_removed.is_empty());
    assert!(out_text(&o).ends_with(signed));
    // Opaque: the decrypted SignedData stays as it is, too.
    let opaque = signed_part(b"Content-Type: text/plain\r\n\r\nhi\r\n", "\r\n");
    let msg = format!("From: a\r\n{}", env_part(opaque.as_bytes(), "\r\n"));
    let o = run(&msg);
    assert!(o.signatures_removed.is_empty());
    assert!(out_text(&o).ends_with(&opaque));
}

#[test]
fn encrypt_then_sign_multipart_signature_removed() {
    let inner = "Content-Type: text/plain\n\nsecret\n";
    let msg = format!(
        "From: a\nMIME-Version: 1.0\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=s\n\n\
         This is a signed message.\n--s\n{}\n--s\nContent-Type: application/pkcs7-signature\n\nMIAGCSqG\n--s--\n",
        env_part(inner.as_bytes(), "\n")
    );
    let o = run(&msg);
    assert_eq!(
        o.signatures_removed,
        ["multipart/signed around part 1 (encrypt-then-sign): signature removed"]
    );
    assert_eq!(o.layers[0].path, "1");
    let text = out_text(&o);
    let removal = rewrite::removal_field("", &o.signatures_removed[0], &opts().timestamp, b"\n");
    let removal = String::from_utf8(removal).unwrap();
    assert_eq!(
        text,
        format!(
            "From: a\nMIME-Version: 1.0\n{removal}{}{inner}",
            trace("1", "\n")
        )
    );
}

#[test]
fn encrypt_then_sign_opaque_removed_even_twice() {
    let inner = "Content-Type: text/plain\n\nsecret\n";
    let once = signed_part(env_part(inner.as_bytes(), "\n").as_bytes(), "\n");
    let twice = signed_part(once.as_bytes(), "\n");
    let msg = format!("Subject: x\n{twice}");
    let o = decrypt_message_with(
        &Fake,
        msg.as_bytes(),
        &MessageOptions {
            trace_header: false,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(o.output.unwrap()).unwrap(),
        format!("Subject: x\n{inner}")
    );
    assert_eq!(o.signatures_removed.len(), 2);
    assert!(o.signatures_removed[0].starts_with("opaque SignedData at top level"));
    // With trace: removals (outer first) precede the layer.
    let o = run(&msg);
    let text = out_text(&o);
    let a = text.find("signature-removed").unwrap();
    let b = text.rfind("signature-removed").unwrap();
    let c = text.find("enveloped-data").unwrap();
    assert!(a < b && b < c, "{text}");
}

#[test]
fn signature_without_envelope_untouched() {
    let msg = "Content-Type: multipart/signed; boundary=s\n\n--s\n\nhello\n--s\nContent-Type: application/pkcs7-signature\n\nMIAG\n--s--\n";
    assert_eq!(run(msg).output, None);
    let msg = format!(
        "From: a\n{}",
        signed_part(b"Content-Type: text/plain\n\nhi\n", "\n")
    );
    assert_eq!(run(&msg).output, None);
}

#[test]
fn envelope_in_envelope() {
    let innermost = "Content-Type: text/plain\r\n\r\ndeep\r\n";
    let middle = env_part(innermost.as_bytes(), "\r\n");
    let msg = format!("To: b\r\n{}", env_part(middle.as_bytes(), "\r\n"));
    let o = decrypt_message_with(
        &Fake,
        msg.as_bytes(),
        &MessageOptions {
            trace_header: false,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(o.output.unwrap()).unwrap(),
        format!("To: b\r\n{innermost}")
    );
    assert_eq!(o.layers.len(), 2);
    assert_eq!(
        o.layers[0].info.ciphertext_len as usize,
        fake_env(middle.as_bytes()).len()
    );
}

#[test]
fn depth_limit() {
    let mut m = env_part(b"Content-Type: text/plain\n\nx\n", "\n");
    for _ in 0..20 {
        m = env_part(m.as_bytes(), "\n");
    }
    let err = decrypt_message_with(&Fake, m.as_bytes(), &opts()).unwrap_err();
    assert_eq!(
        err,
        Error::Limit {
            what: "MIME nesting depth",
            limit: 16
        }
    );
    let mut m = "Content-Type: text/plain\n\nx\n".to_string();
    for i in 0..10 {
        m = format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n{m}\n--b{i}--\n");
    }
    let shallow = MessageOptions {
        max_depth: 5,
        ..opts()
    };
    assert!(matches!(
        decrypt_message_with(&Fake, m.as_bytes(), &shallow),
        Err(Error::Limit { .. })
    ));
    assert!(matches!(
        find_envelopes(m.as_bytes(), &shallow),
        Err(Error::Limit { .. })
    ));
    assert_eq!(
        decrypt_message_with(&Fake, m.as_bytes(), &opts())
            .unwrap()
            .output,
        None
    );
}

#[test]
fn plain_messages_give_none() {
    for msg in [
        "",
        "no headers at all",
        "From: a\r\nSubject: b\r\n\r\nbody\r\n",
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n",
        "Content-Type: application/pkcs7-mime; smime-type=certs-only\nContent-Transfer-Encoding: base64\n\nMIIBBgYJKoZIhvcNAQcCoA==\n",
        "Content-Type: application/pkcs7-signature\nContent-Transfer-Encoding: base64\n\nMIIBBgYJKoZIhvcNAQcCoA==\n",
        "Content-Type: message/rfc822\n\nFrom: x\n\nhello\n",
    ] {
        let o = decrypt_message_with(&Fake, msg.as_bytes(), &opts()).unwrap();
        assert_eq!(
            o,
            MessageOutcome {
                output: None,
                layers: vec![],
                signatures_removed: vec![]
            },
            "{msg}"
        );
    }
}

#[test]
fn failure_anywhere_fails_the_message() {
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n{}\n--b\n{}\n--b--\n",
        env_part(b"Content-Type: text/plain\n\nok\n", "\n"),
        env_part(b"FAIL", "\n")
    );
    let err = decrypt_message_with(&Fake, msg.as_bytes(), &opts()).unwrap_err();
    assert_eq!(
        err,
        Error::InPart {
            path: "2".into(),
            source: Box::new(Error::WrongKey {
                recipient: "Bob".into(),
                reason: "bad padding".into()
            })
        }
    );
    assert_eq!(err.kind(), "wrong_key");
    assert_eq!(
        err.to_string(),
        "MIME part 2: wrong key for recipient Bob: bad padding"
    );
    // A part that promises an envelope but holds no ContentInfo.
    let msg = "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\nContent-Transfer-Encoding: base64\n\n!!!!\n";
    assert!(matches!(
        decrypt_message_with(&Fake, msg.as_bytes(), &opts()),
        Err(Error::Mime { .. })
    ));
}

#[test]
fn lying_labels_binary_and_p7m_attachments() {
    let inner = "Content-Type: text/plain\n\nz\n";
    // Labelled signed-data, really enveloped.
    let lying = format!(
        "Content-Type: application/pkcs7-mime; smime-type=signed-data\nContent-Transfer-Encoding: base64\n\n{}",
        b64(&fake_env(inner.as_bytes()), "\n")
    );
    assert_eq!(run(&lying).layers.len(), 1);
    // Binary body with a trailing newline after the DER.
    let mut bin =
        b"Content-Type: application/pkcs7-mime\nContent-Transfer-Encoding: binary\n\n".to_vec();
    bin.extend_from_slice(&fake_env(inner.as_bytes()));
    bin.extend_from_slice(b"\n");
    let o = decrypt_message_with(
        &Fake,
        &bin,
        &MessageOptions {
            trace_header: false,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(o.output.unwrap(), inner.as_bytes());
    // octet-stream attachment named *.p7m in a multipart.
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/octet-stream\n\
         Content-Disposition: attachment; filename=\"mail.P7M\"\nContent-Transfer-Encoding: base64\n\n{}--b--\n",
        b64(&fake_env(inner.as_bytes()), "\n")
    );
    assert_eq!(run(&msg).layers[0].path, "1");
}

#[test]
fn envelopes_are_opened_whatever_the_label() {
    let inner = "Content-Type: text/plain\n\nz\n";
    let body = b64(&fake_env(inner.as_bytes()), "\n");
    for head in [
        "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n",
        "Content-Disposition: attachment; filename=\"smime.p7m\"\nContent-Transfer-Encoding: base64\n",
        "Content-Type: application / pkcs7-mime; smime-type=enveloped-data\nContent-Transfer-Encoding: base64\n",
        "Content-Type: application/pkcs7-signature\nContent-Transfer-Encoding: base64\n",
        "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n",
    ] {
        let o = run(&format!("{head}\n{body}"));
        assert_eq!(o.layers.len(), 1, "{head}");
        assert!(out_text(&o).ends_with("\n\nz\n"), "{head}");
        // And as a part of a multipart.
        let msg =
            format!("Content-Type: multipart/mixed; boundary=b\n\n--b\n{head}\n{body}--b--\n");
        assert_eq!(run(&msg).layers[0].path, "1", "{head}");
    }
}

/// `decrypt_message` and `find_envelopes` both refuse `msg`, naming the envelope left out.
fn out_of_reach(msg: &[u8]) -> String {
    let e = decrypt_message_with(&Fake, msg, &opts()).expect_err("decrypt must fail");
    assert_eq!(e.kind(), "mime", "{e:?}");
    let text = e.to_string();
    assert!(text.contains("no MIME part leads to"), "{text}");
    let e = find_envelopes(msg, &opts()).expect_err("find must fail");
    assert!(e.to_string().contains("no MIME part leads to"), "{e}");
    text
}

#[test]
fn an_envelope_the_walk_cannot_reach_is_an_error_never_plain() {
    let part = env_part(b"Content-Type: text/plain\n\nA\n", "\n");
    // Classic Mac OS line ends: one long header line to the walk.
    let cr = format!("From: a\nSubject: b\n{part}").replace('\n', "\r");
    assert!(out_of_reach(cr.as_bytes()).contains("bare CR"));
    for msg in [
        format!("Content-Type: multipart/mixed; boundary=\"\"\n\n--\n{part}\n----\n"),
        format!("Content-Type: multipart/mixed\n\n--b\n{part}\n--b--\n"),
        format!("Content-Type: text/plain\n\nHere is what I got:\n\n{part}\n"),
        format!(
            "Content-Type: text/plain; charset=x-uuencode\nContent-Transfer-Encoding: x-unknown\n\n{part}"
        ),
    ] {
        out_of_reach(msg.as_bytes());
    }
}

#[test]
fn a_multipart_signed_of_unusual_shape_is_walked_part_by_part() {
    let part = env_part(b"Content-Type: text/plain\n\nA\n", "\n");
    // A third part after the signature, and a second part that is no signature.
    for msg in [
        format!(
            "Content-Type: multipart/signed; boundary=s\n\n--s\nContent-Type: text/plain\n\nhi\n\
             --s\nContent-Type: application/pkcs7-signature\n\nMIAG\n--s\n{part}\n--s--\n"
        ),
        format!(
            "Content-Type: multipart/signed; boundary=s\n\n--s\nContent-Type: text/plain\n\nhi\n--s\n{part}\n--s--\n"
        ),
    ] {
        let o = run(&msg);
        assert_eq!(o.layers.len(), 1, "{msg}");
        assert!(o.signatures_removed.is_empty());
        let text = out_text(&o);
        assert!(
            text.contains("\n--s\nContent-Type: text/plain\n\nhi\n"),
            "{text}"
        );
        assert!(text.ends_with("\n\nA\n\n--s--\n"), "{text}");
    }
}

#[test]
fn encodings_that_hide_an_envelope_are_opened_or_refused() {
    let inner = env_part(b"Content-Type: text/plain\n\nA\n", "\n");
    let fwd = format!("From: x\nSubject: fwd\n{inner}");
    // A forwarded encrypted message attached as octet-stream: base64 inside base64, walked as a
    // message and re-encoded.
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nsee\n--b\n\
         Content-Type: application/octet-stream; name=\"fwd.eml\"\nContent-Transfer-Encoding: base64\n\n{}--b--\n",
        b64(fwd.as_bytes(), "\n")
    );
    let o = run(&msg);
    assert_eq!(o.layers.len(), 1);
    let found = find_envelopes(msg.as_bytes(), &opts()).unwrap();
    assert_eq!(found.len(), 1);
    // The same under a transfer encoding written with a comment or quotes.
    for cte in ["base64 (as sent)", "\"base64\"", "x-base64"] {
        let m = msg.replacen(
            "Content-Transfer-Encoding: base64\n\n",
            &format!("Content-Transfer-Encoding: {cte}\n\n"),
            2,
        );
        assert_eq!(run(&m).layers.len(), 1, "{cte}");
    }
    // An armoured envelope inside base64: not a message, so refused.
    let pem = format!(
        "-----BEGIN PKCS7-----\n{}-----END PKCS7-----\n",
        b64(&fake_env(b"x"), "\n")
    );
    let msg = format!(
        "Content-Type: application/octet-stream; name=smime.p7m\nContent-Transfer-Encoding: base64\n\n{}",
        b64(pem.as_bytes(), "\n")
    );
    let e = decrypt_message_with(&Fake, msg.as_bytes(), &opts()).unwrap_err();
    assert!(
        e.to_string()
            .contains("decoded body holds an encrypted CMS envelope"),
        "{e}"
    );
    assert!(find_envelopes(msg.as_bytes(), &opts()).is_err());
    // A line break before the DER inside the base64.
    let mut crlf = b"\r\n".to_vec();
    crlf.extend(fake_env(b"Content-Type: text/plain\n\nA\n"));
    let msg = format!(
        "Content-Type: application/octet-stream; name=smime.p7m\nContent-Transfer-Encoding: base64\n\n{}",
        b64(&crlf, "\n")
    );
    assert_eq!(run(&msg).layers.len(), 1);
}

#[test]
fn a_body_the_walk_cannot_take_apart_is_still_searched_one_encoding_down() {
    let inner = env_part(b"Content-Type: text/plain\n\nA\n", "\n");
    let fwd = b64(format!("From: x\n{inner}").as_bytes(), "\n");
    for msg in [
        // The boundary declared is not the one used.
        format!(
            "Content-Type: multipart/mixed; boundary=YY\n\n--XX\nContent-Type: message/rfc822\n\
             Content-Transfer-Encoding: base64\n\n{fwd}--XX--\n"
        ),
        // A forwarded message in an encoding nobody knows.
        format!("Content-Type: message/rfc822\nContent-Transfer-Encoding: x-gzip64\n\n{fwd}"),
    ] {
        let e = decrypt_message_with(&Fake, msg.as_bytes(), &opts()).unwrap_err();
        assert!(
            e.to_string().contains("structure cannot be followed"),
            "{e}"
        );
        assert!(find_envelopes(msg.as_bytes(), &opts()).is_err());
    }
    // Base64 without an envelope in it is no reason to fail.
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=YY\n\n--XX\nContent-Transfer-Encoding: base64\n\n{}--XX--\n",
        b64(&[7u8; 300], "\n")
    );
    assert_eq!(run_plain(&msg), None);
}

fn run_plain(msg: &str) -> Option<Vec<u8>> {
    decrypt_message_with(&Fake, msg.as_bytes(), &opts())
        .unwrap()
        .output
}

#[test]
fn two_envelopes_in_one_body_fail_rather_than_lose_the_second() {
    let both = [
        fake_env(b"Content-Type: text/plain\n\nA\n"),
        fake_env(b"Content-Type: text/plain\n\nB\n"),
    ]
    .concat();
    let msg = format!(
        "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\nContent-Transfer-Encoding: base64\n\n{}",
        b64(&both, "\n")
    );
    let e = decrypt_message_with(&Fake, msg.as_bytes(), &opts()).unwrap_err();
    assert!(
        e.to_string().contains("a second encrypted CMS envelope"),
        "{e}"
    );
    // A newline or other bytes after one envelope are no second one.
    let mut one = fake_env(b"Content-Type: text/plain\n\nA\n");
    one.extend_from_slice(b"\r\ntrailing");
    let msg = format!(
        "Content-Type: application/pkcs7-mime\nContent-Transfer-Encoding: base64\n\n{}",
        b64(&one, "\n")
    );
    assert_eq!(run(&msg).layers.len(), 1);
}

#[test]
fn a_utf16_message_with_an_envelope_is_refused_not_plain() {
    let msg = format!(
        "From: a\r\n{}",
        env_part(b"Content-Type: text/plain\n\nA\n", "\r\n")
    );
    let le: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(msg.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let be_no_bom: Vec<u8> = msg.encode_utf16().flat_map(u16::to_be_bytes).collect();
    for bytes in [le, be_no_bom] {
        let e = decrypt_message_with(&Fake, &bytes, &opts()).unwrap_err();
        assert!(e.to_string().contains("UTF-16"), "{e}");
        assert!(find_envelopes(&bytes, &opts()).is_err());
    }
    // UTF-16 without an envelope is no error, and ordinary text is not UTF-16.
    let plain: Vec<u8> = "From: a\r\n\r\nhello\r\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert!(
        decrypt_message_with(&Fake, &plain, &opts())
            .unwrap()
            .output
            .is_none()
    );
    assert!(super::detect::utf16_as_utf8(msg.as_bytes()).is_none());
}

#[test]
fn a_uuencoded_envelope_is_refused_not_plain() {
    fn uuencode(data: &[u8]) -> String {
        let c = |v: u8| if v == 0 { '`' } else { (v + 32) as char };
        let mut out = String::from("begin 644 smime.p7m\n");
        for line in data.chunks(45) {
            out.push(c(line.len() as u8));
            for q in line.chunks(3) {
                let b = [q[0], *q.get(1).unwrap_or(&0), *q.get(2).unwrap_or(&0)];
                out.push(c(b[0] >> 2));
                out.push(c((b[0] & 3) << 4 | b[1] >> 4));
                out.push(c((b[1] & 15) << 2 | b[2] >> 6));
                out.push(c(b[2] & 63));
            }
            out.push('\n');
        }
        out.push_str("`\nend\n");
        out
    }
    let body = uuencode(&fake_env(b"Content-Type: text/plain\n\nA\n"));
    let msg = format!("From: a\nSubject: old client\n\nsee the file:\n\n{body}");
    let e = decrypt_message_with(&Fake, msg.as_bytes(), &opts()).unwrap_err();
    assert!(e.to_string().contains("uuencoded block"), "{e}");
    assert!(find_envelopes(msg.as_bytes(), &opts()).is_err());
    // A uuencoded file that is no envelope is plain.
    let msg = format!(
        "From: a\n\n{}",
        uuencode(b"just a text file, nothing secret")
    );
    assert!(
        decrypt_message_with(&Fake, msg.as_bytes(), &opts())
            .unwrap()
            .output
            .is_none()
    );
}

#[test]
fn one_envelope_reached_does_not_hide_another_out_of_reach() {
    let part = env_part(b"Content-Type: text/plain\n\nA\n", "\n");
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n{part}\n--b\n\
         Content-Type: multipart/mixed; boundary=\"\"\n\n--\n{part}\n----\n\n--b--\n"
    );
    out_of_reach(msg.as_bytes());
    // Whereas both reached is no error, and the counts agree.
    let msg =
        format!("Content-Type: multipart/mixed; boundary=b\n\n--b\n{part}\n--b\n{part}\n--b--\n");
    assert_eq!(find_envelopes(msg.as_bytes(), &opts()).unwrap().len(), 2);
    assert_eq!(run(&msg).layers.len(), 2);
}

#[test]
fn a_header_flood_is_refused_not_held() {
    let mut msg = "a:\n".repeat(super::header::MAX_FIELDS + 1);
    msg.push_str(&env_part(b"Content-Type: text/plain\n\nA\n", "\n"));
    let e = decrypt_message_with(&Fake, msg.as_bytes(), &opts()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                what: "header fields in one entity",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(find_envelopes(msg.as_bytes(), &opts()).is_err());
    // Just under the limit it is an ordinary message.
    let mut msg = "a:\n".repeat(super::header::MAX_FIELDS - 10);
    msg.push_str(&env_part(b"Content-Type: text/plain\n\nA\n", "\n"));
    assert_eq!(run(&msg).layers.len(), 1);
}

#[test]
fn find_envelopes_without_decrypting() {
    let env = env_part(b"Content-Type: text/plain\n\nA\n", "\n");
    let nested_env = env_part(env.as_bytes(), "\n");
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n{env}\n--b\nContent-Type: message/rfc822\n\nSubject: f\n{env}\n--b\n{}\n--b\n\
         Content-Type: multipart/signed; boundary=s\n\n--s\n{env}\n--s\nContent-Type: application/pkcs7-signature\n\nMIAG\n--s--\n\n--b\n{nested_env}\n--b--\n",
        signed_part(env.as_bytes(), "\n")
    );
    let found = find_envelopes(msg.as_bytes(), &opts()).unwrap();
    let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["1", "2/rfc822", "3", "4.1", "5"]);
    assert_eq!(found[0].cms, fake_env(b"Content-Type: text/plain\n\nA\n"));
    assert_eq!(found[4].cms, fake_env(env.as_bytes()));
    assert!(
        find_envelopes(b"From: a\n\nplain\n", &opts())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn hostile_truncations_never_panic() {
    let env = env_part(b"Content-Type: text/plain\n\nA\n", "\n");
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n{env}\n--b\nContent-Type: message/rfc822\n\n{}\n--b--\n",
        signed_part(env.as_bytes(), "\n")
    );
    let bytes = msg.as_bytes();
    for i in 0..bytes.len() {
        let _ = decrypt_message_with(&Fake, &bytes[..i], &opts());
        let _ = find_envelopes(&bytes[i..], &opts());
    }
}

#[test]
fn random_mutations_never_panic() {
    let env = env_part(
        b"Content-Type: multipart/mixed; boundary=q\n\n--q\n\nA\n--q--\n",
        "\n",
    );
    let msg = format!(
        "Content-Type: multipart/signed; boundary=s\n\n--s\nContent-Type: multipart/mixed; boundary=b\n\n\
         --b\n{env}\n--b\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n{}\n--b--\n\
         --s\nContent-Type: application/pkcs7-signature\n\nMIAG\n--s--\n",
        b64(signed_part(env.as_bytes(), "\n").as_bytes(), "\n")
    );
    assert_eq!(run(&msg).layers.len(), 2);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let specials = b"\r\n-:;=\"\\ \t0\x30\x80\x00\xff";
    for _ in 0..3000 {
        let mut m = msg.as_bytes().to_vec();
        for _ in 0..(next() % 4 + 1) {
            let pos = (next() as usize) % m.len();
            let b = specials[(next() as usize) % specials.len()];
            match next() % 3 {
                0 => m[pos] = b,
                1 => m.insert(pos, b),
                _ => {
                    m.remove(pos);
                }
            }
        }
        let _ = decrypt_message_with(&Fake, &m, &opts());
        let _ = find_envelopes(&m, &opts());
    }
}

#[test]
fn large_attachment_stays_byte_exact() {
    let big: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let big_b64 = b64(&big, "\r\n");
    let plain = format!(
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{big_b64}"
    );
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: image/jpeg\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{big_b64}\r\n--b\r\n{}\r\n--b--\r\n",
        env_part(plain.as_bytes(), "\r\n")
    );
    let t = std::time::Instant::now();
    let o = decrypt_message_with(
        &Fake,
        msg.as_bytes(),
        &MessageOptions {
            trace_header: false,
            ..opts()
        },
    )
    .unwrap();
    let out = o.output.unwrap();
    eprintln!("{} MB in {:?}", msg.len() >> 20, t.elapsed());
    let expected = format!(
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: image/jpeg\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{big_b64}\r\n--b\r\n{plain}\r\n--b--\r\n"
    );
    assert!(out == expected.as_bytes());
}
