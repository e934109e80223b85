//! Outlook .msg files whose envelopes are not where a converter looks first: a second envelope
//! beside the S/MIME payload of an `IPM.Note.SMIME` item is decrypted too, and an envelope
//! inside an OLE object (attach method 6) fails the item, where both used to vanish in the
//! conversion and `verify` called the file safe. The files are built here with the `cfb`
//! writer; the envelopes are fixtures made by OpenSSL.

use std::io::{Cursor, Write};
use std::path::Path;

mod common;
use common::*;

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A compound file of `streams` (path, bytes), storages made as their paths need them.
fn compound(streams: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut cf = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    for (path, data) in streams {
        let parent = Path::new(path).parent().unwrap();
        if parent != Path::new("/") && !cf.exists(parent) {
            cf.create_storage_all(parent).unwrap();
        }
        cf.create_stream(path).unwrap().write_all(data).unwrap();
    }
    cf.flush().unwrap();
    cf.into_inner().into_inner()
}

/// The property stream of an attachment: header, then PR_ATTACH_METHOD.
fn attach_props(method: u32) -> Vec<u8> {
    let mut p = vec![0u8; 8];
    p.extend_from_slice(&0x3705_0003u32.to_le_bytes());
    p.extend_from_slice(&6u32.to_le_bytes());
    p.extend_from_slice(&u64::from(method).to_le_bytes());
    p
}

fn der(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("messages").join(name)).unwrap()
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("expected").join(format!("{name}.out"))).unwrap()
}

fn message(class: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("/__properties_version1.0".into(), vec![0u8; 32]),
        ("/__substg1.0_001A001F".into(), utf16(class)),
        ("/__substg1.0_0037001F".into(), utf16("two envelopes")),
    ]
}

fn attachment(n: u32, method: u32, name: &str) -> (String, Vec<(String, Vec<u8>)>) {
    let dir = format!("/__attach_version1.0_#{n:08X}");
    let streams = vec![
        (
            format!("{dir}/__properties_version1.0"),
            attach_props(method),
        ),
        (format!("{dir}/__substg1.0_3707001F"), utf16(name)),
    ];
    (dir, streams)
}

#[test]
fn a_second_envelope_beside_the_smime_payload_is_decrypted_too() {
    let mut streams = message("IPM.Note.SMIME");
    for (n, (name, file)) in [
        ("smime.p7m", "aes256-cbc.der.p7m"),
        ("second.p7m", "des-ede3-cbc.der.p7m"),
    ]
    .into_iter()
    .enumerate()
    {
        let (dir, s) = attachment(n as u32, 1, name);
        streams.extend(s);
        streams.push((format!("{dir}/__substg1.0_37010102"), der(file)));
    }
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("two.msg");
    std::fs::write(&input, compound(&streams)).unwrap();
    let out = t.path().join("out");
    decrypt(&input, &out).assert().code(0);
    let written = std::fs::read_to_string(out.join("two.eml")).unwrap();
    for name in ["aes256-cbc.der.p7m", "des-ede3-cbc.der.p7m"] {
        let body = expected(name);
        let line = body.lines().find(|l| l.starts_with("Fixture:")).unwrap();
        assert!(written.contains(line), "{name} not decrypted: {written}");
    }
    verify(&input, &out).assert().code(0);
}

#[test]
fn an_envelope_inside_an_ole_object_fails_the_item() {
    let mut streams = message("IPM.Note");
    streams.push(("/__substg1.0_1000001F".into(), utf16("see the object")));
    let (dir, s) = attachment(0, 6, "Package");
    streams.extend(s);
    let mut native = b"\x01\x00\x00\x00packaged file\x00".to_vec();
    native.extend(der("aes256-cbc.der.p7m"));
    streams.push((
        format!("{dir}/__substg1.0_3701000D/\u{1}Ole10Native"),
        native,
    ));
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("ole.msg");
    std::fs::write(&input, compound(&streams)).unwrap();
    let out = t.path().join("out");
    let report = t.path().join("r.jsonl");
    decrypt(&input, &out)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1);
    let rec = &report_lines(&report)[0];
    assert_eq!(rec["status"], "failed", "{rec}");
    let v = verify(&input, &out).assert().code(1);
    let err = String::from_utf8_lossy(&v.get_output().stderr).to_string();
    assert!(err.contains("1 still encrypted"), "{err}");
}
