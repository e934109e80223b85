//! Limits against pathological inputs built here: 10,000 nested multiparts, a declared length
//! of 2^40 bytes, 100,000 recipients, a huge header section, deep BER nesting. Each must give a
//! clear error (or a clean "nothing to do") quickly and without allocating beyond the input.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use unseal_core::cms::envelope;
use unseal_core::keyring::KeyRing;
use unseal_core::provider::default_provider;
use unseal_core::{
    DecryptOptions, Decryptor, Error, MessageOptions, decrypt_message, find_envelopes,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn ring() -> KeyRing {
    let mut ring = KeyRing::new();
    ring.load_file(&fixtures().join("keys/rsa2048.key.pem"), None)
        .unwrap();
    ring.add_certificates_file(&fixtures().join("keys/rsa2048.cert.pem"))
        .unwrap();
    ring
}

/// Generous for a debug build on a shared 2-core machine; the point is "not quadratic, no hang".
const FAST: Duration = Duration::from_secs(5);

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    let took = t.elapsed();
    println!("{what}: {took:?}");
    assert!(took < FAST, "{what} took {took:?}");
    r
}

// ---- DER building ----------------------------------------------------------------------------

fn len_octets(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let b = (len as u64).to_be_bytes();
        let skip = b.iter().position(|&x| x != 0).unwrap();
        let mut v = vec![0x80 | (8 - skip) as u8];
        v.extend_from_slice(&b[skip..]);
        v
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(len_octets(content.len()));
    v.extend_from_slice(content);
    v
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// OID content octets for dotted text.
fn oid(text: &str) -> Vec<u8> {
    let arcs: Vec<u64> = text.split('.').map(|a| a.parse().unwrap()).collect();
    let mut c = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut stack = vec![(a & 0x7f) as u8];
        let mut v = a >> 7;
        while v > 0 {
            stack.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        stack.reverse();
        c.extend(stack);
    }
    tlv(0x06, &c)
}

const ENVELOPED_DATA: &str = "1.2.840.113549.1.7.3";
const DATA: &str = "1.2.840.113549.1.7.1";
const AES256_CBC: &str = "2.16.840.1.101.3.4.1.42";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// A KeyTransRecipientInfo for issuer CN=<cn>, serial `serial`.
fn ktri(cn: &str, serial: u32) -> Vec<u8> {
    let name = seq(&[&tlv(
        0x31,
        &seq(&[&oid("2.5.4.3"), &tlv(0x0c, cn.as_bytes())]),
    )]);
    let serial = tlv(
        0x02,
        &[
            0x01,
            (serial >> 16) as u8,
            (serial >> 8) as u8,
            serial as u8,
        ],
    );
    seq(&[
        &tlv(0x02, &[0]),
        &seq(&[&name, &serial]),
        &seq(&[&oid(RSA_ENCRYPTION), &[0x05, 0x00]]),
        &tlv(0x04, &[0x42; 16]),
    ])
}

/// ContentInfo(EnvelopedData) with these recipient infos and `content` as encryptedContent
/// (its [0] header written by the caller when `raw_content` is set).
fn enveloped(recipients: &[Vec<u8>], content: &[u8], raw_content: bool) -> Vec<u8> {
    let alg = seq(&[&oid(AES256_CBC), &tlv(0x04, &[7; 16])]);
    let enc_content = if raw_content {
        content.to_vec()
    } else {
        tlv(0x80, content)
    };
    let eci = seq(&[&oid(DATA), &alg, &enc_content]);
    let ed = seq(&[&tlv(0x02, &[0]), &tlv(0x31, &recipients.concat()), &eci]);
    seq(&[&oid(ENVELOPED_DATA), &tlv(0xa0, &ed)])
}

fn smime_message(cms: &[u8]) -> Vec<u8> {
    let mut m = b"Subject: hostile\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(cms);
    for l in b64.as_bytes().chunks(76) {
        m.extend_from_slice(l);
        m.extend_from_slice(b"\r\n");
    }
    m
}

fn opts() -> MessageOptions {
    MessageOptions::default()
}

fn root_limit(e: &Error) -> Option<(&'static str, u64)> {
    match e.root() {
        Error::Limit { what, limit } => Some((what, *limit)),
        _ => None,
    }
}

// ---- tests -----------------------------------------------------------------------------------

#[test]
fn ten_thousand_nested_multiparts_hit_the_depth_limit() {
    let depth = 10_000;
    let mut m = Vec::new();
    m.extend_from_slice(b"Subject: nested\r\nMIME-Version: 1.0\r\n");
    for i in 0..depth {
        m.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n")
                .as_bytes(),
        );
    }
    m.extend_from_slice(
        b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIIB\r\n",
    );
    for i in (0..depth).rev() {
        m.extend_from_slice(format!("\r\n--b{i}--\r\n").as_bytes());
    }
    let ring = ring();
    let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
    let e = timed("find_envelopes over 10,000 nested multiparts", || {
        find_envelopes(&m, &opts()).unwrap_err()
    });
    let (what, limit) = root_limit(&e).unwrap_or_else(|| panic!("not a limit: {e}"));
    assert!(what.contains("depth"), "{e}");
    assert_eq!(limit, opts().max_depth as u64);
    assert!(e.to_string().contains("exceeds the limit"), "{e}");
    let e = timed("decrypt_message over 10,000 nested multiparts", || {
        decrypt_message(&dec, &m, &opts()).unwrap_err()
    });
    assert!(root_limit(&e).is_some(), "{e}");
    assert_eq!(e.kind(), "limit");
}

#[test]
fn ten_thousand_nested_forwarded_messages_hit_the_depth_limit() {
    let mut m = Vec::new();
    for _ in 0..10_000 {
        m.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    m.extend_from_slice(b"Content-Type: text/plain\r\n\r\nhello\r\n");
    let e = timed("10,000 nested message/rfc822", || {
        find_envelopes(&m, &opts()).unwrap_err()
    });
    assert!(root_limit(&e).is_some(), "{e}");
}

#[test]
fn a_declared_length_of_2_pow_40_is_truncation_not_allocation() {
    let ring = ring();
    let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
    // encryptedContent [0] claims 2^40 bytes but holds 32.
    let mut content = vec![0x80, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00];
    content.extend_from_slice(&[0xab; 32]);
    let cms = enveloped(&[ktri("Someone", 1)], &content, true);
    for (what, input) in [
        ("encryptedContent", cms.clone()),
        // The outer ContentInfo claims 2^40 bytes.
        ("ContentInfo", {
            let mut v = vec![0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00];
            v.extend_from_slice(&cms[2 + (cms[1] & 0x7f) as usize..]);
            v
        }),
        // A lone OCTET STRING of 2^40, and 2^64-1.
        ("OCTET STRING", vec![0x04, 0x85, 0x01, 0, 0, 0, 0, 1, 2, 3]),
        (
            "OCTET STRING 2^64-1",
            vec![
                0x04, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1,
            ],
        ),
    ] {
        let e = timed(&format!("2^40 length in {what}"), || {
            let mut out = Vec::new();
            dec.decrypt_cms(&input, &mut out).unwrap_err()
        });
        assert!(
            matches!(e, Error::Truncated { .. } | Error::Asn1 { .. }),
            "{what}: {e:?}"
        );
        assert_eq!(e.kind(), "malformed", "{what}: {e}");
        assert!(e.to_string().contains("offset"), "{what}: {e}");
        assert!(envelope::parse(&input).is_err());
        assert!(unseal_core::cms::ber::to_der(&input, 0).is_err());
        // The same inside a message.
        let msg = smime_message(&input);
        let e = timed(&format!("2^40 length in {what}, in a message"), || {
            decrypt_message(&dec, &msg, &opts()).unwrap_err()
        });
        // An envelope: the BER error; a bare OCTET STRING: "labelled enveloped-data but the body
        // is no CMS ContentInfo".
        assert!(matches!(e.kind(), "malformed" | "mime"), "{what}: {e}");
    }
}

#[test]
fn one_hundred_thousand_recipients_are_a_clear_error_fast() {
    let ring = ring();
    let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
    let recipients: Vec<Vec<u8>> = (0..100_000).map(|i| ktri("Nobody", i)).collect();
    let cms = enveloped(&recipients, &[0x11; 32], false);
    println!("{} bytes of CMS", cms.len());
    let r = timed("inspect 100,000 recipients", || {
        Decryptor::inspect_cms(&cms)
    });
    match &r {
        Ok(s) => println!("inspect: {} recipients", s.recipients.len()),
        Err(e) => println!("inspect: {e}"),
    }
    let e = timed("decrypt 100,000 recipients", || {
        let mut out = Vec::new();
        dec.decrypt_cms(&cms, &mut out).unwrap_err()
    });
    let text = e.to_string();
    println!("decrypt: {} ({} bytes of message)", e.kind(), text.len());
    assert!(
        matches!(e.root(), Error::Limit { .. } | Error::NoMatchingKey { .. }),
        "{e:?}"
    );
    // A clear error is one a report line can carry: the first recipients, then a count.
    assert!(
        text.len() < 8 * 1024,
        "the error is {} bytes long",
        text.len()
    );
    assert!(text.contains("and 99980 more"), "{text}");
    if let Error::NoMatchingKey { recipients } = e.root() {
        assert_eq!(
            recipients.len(),
            100_000,
            "the structured list stays complete"
        );
    }
}

#[test]
fn a_huge_header_section_is_handled_in_linear_time() {
    let mut m = Vec::new();
    for i in 0..200_000 {
        m.extend_from_slice(format!("X-Junk-{i}: {}\r\n", "v".repeat(20)).as_bytes());
    }
    // One folded field of 4 MB.
    m.extend_from_slice(b"X-Long: start");
    for _ in 0..100_000 {
        m.extend_from_slice(b"\r\n continued line of a folded field");
    }
    m.extend_from_slice(b"\r\nContent-Type: text/plain\r\n\r\nbody\r\n");
    let ring = ring();
    let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
    let r = timed("find_envelopes with a 10 MB header", || {
        find_envelopes(&m, &opts())
    });
    match r {
        Ok(v) => assert!(v.is_empty()),
        Err(e) => assert!(root_limit(&e).is_some(), "{e}"),
    }
    let r = timed("decrypt_message with a 10 MB header", || {
        decrypt_message(&dec, &m, &opts())
    });
    match r {
        Ok(o) => assert!(o.output.is_none(), "nothing to decrypt"),
        Err(e) => assert!(root_limit(&e).is_some(), "{e}"),
    }
}

#[test]
fn a_hundred_thousand_sibling_parts_are_linear() {
    let mut m = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n".to_vec();
    for _ in 0..100_000 {
        m.extend_from_slice(b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n");
    }
    m.extend_from_slice(b"--x--\r\n");
    let r = timed("100,000 sibling parts", || find_envelopes(&m, &opts()));
    assert!(r.unwrap().is_empty());
}

#[test]
fn deep_ber_nesting_is_a_limit() {
    let ring = ring();
    let dec = Decryptor::new(&ring, default_provider(), DecryptOptions::default()).unwrap();
    // 100,000 nested indefinite-length constructed OCTET STRINGs as the encryptedContent.
    let n = 100_000;
    let mut content = Vec::new();
    content.extend_from_slice(&[0xa0, 0x80]);
    for _ in 0..n {
        content.extend_from_slice(&[0x24, 0x80]);
    }
    for _ in 0..n {
        content.extend_from_slice(&[0, 0]);
    }
    content.extend_from_slice(&[0, 0]);
    let cms = enveloped(&[ktri("Someone", 1)], &content, true);
    let e = timed("100,000 nested BER strings", || {
        let mut out = Vec::new();
        dec.decrypt_cms(&cms, &mut out).unwrap_err()
    });
    println!("{e}");
    assert!(
        matches!(e.root(), Error::Limit { .. } | Error::NoMatchingKey { .. }),
        "{e:?}"
    );
    // And as a bare value through the DER normaliser.
    let mut deep = Vec::new();
    for _ in 0..n {
        deep.extend_from_slice(&[0x30, 0x80]);
    }
    for _ in 0..n {
        deep.extend_from_slice(&[0, 0]);
    }
    let e = timed("100,000 nested SEQUENCEs", || {
        unseal_core::cms::ber::to_der(&deep, 0).unwrap_err()
    });
    assert!(matches!(e, Error::Limit { .. }), "{e:?}");
}
