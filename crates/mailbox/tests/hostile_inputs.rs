//! Hostile containers: lying Content-Length headers and pathological mbox files, damaged .msg
//! compound files, junk and truncated PST files. Every case ends in items or error values,
//! quickly, never in a panic or an allocation beyond the file.

use std::io::{Cursor, Write};
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use unseal_mailbox::mbox::{MboxReader, MboxVariant};
use unseal_mailbox::msg::{MsgError, msg_to_mime};
use unseal_mailbox::pst::read_pst;

const FAST: Duration = Duration::from_secs(5);

fn mbox_items(dir: &Path, name: &str, data: &[u8], variant: Option<MboxVariant>) -> Vec<Vec<u8>> {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    let t = Instant::now();
    let reader = MboxReader::open(&p, variant).unwrap_or_else(|e| panic!("{name}: {e}"));
    let items: Vec<Vec<u8>> = reader
        .map(|r| r.unwrap_or_else(|e| panic!("{name}: {e}")).bytes().to_vec())
        .collect();
    assert!(t.elapsed() < FAST, "{name} took {:?}", t.elapsed());
    let total: usize = items.iter().map(Vec::len).sum();
    assert!(
        total <= data.len(),
        "{name}: items hold more bytes than the file"
    );
    items
}

#[test]
fn lying_content_length_headers_fall_back_to_from_lines() {
    let dir = tempfile::tempdir().unwrap();
    for (i, cl) in [
        "1099511627776",
        "18446744073709551615",
        "99999999999999999999999999",
        "-5",
        "0",
        "3",
        "0x10",
    ]
    .into_iter()
    .enumerate()
    {
        let data = format!(
            "From a@b Mon Jan  1 00:00:00 2024\nContent-Length: {cl}\n\nfirst body\n\nFrom a@b Mon Jan  1 00:00:01 2024\nSubject: two\n\nsecond\n"
        );
        for v in [None, Some(MboxVariant::Mboxcl), Some(MboxVariant::Mboxcl2)] {
            let items = mbox_items(dir.path(), &format!("cl{i}.mbox"), data.as_bytes(), v);
            assert_eq!(items.len(), 2, "Content-Length {cl} ({v:?}): {items:?}");
            assert!(items[1].ends_with(b"second\n") || items[1].ends_with(b"second"));
        }
    }
}

#[test]
fn a_hundred_thousand_tiny_messages_split_in_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Vec::new();
    for i in 0..100_000 {
        data.extend_from_slice(
            format!("From x Mon Jan  1 00:00:00 2024\nSubject: {i}\n\n>From quoted\n\n").as_bytes(),
        );
    }
    let items = mbox_items(dir.path(), "many.mbox", &data, None);
    assert_eq!(items.len(), 100_000);
    assert!(items[5].ends_with(b"From quoted\n"), "{:?}", items[5]);
}

#[test]
fn degenerate_mbox_files_are_items_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("from-only", b"From ".to_vec()),
        (
            "from-line-no-eol",
            b"From a@b Mon Jan  1 00:00:00 2024".to_vec(),
        ),
        ("from-lines-only", b"From a\nFrom b\nFrom c\n".repeat(1000)),
        (
            "crlf-mixed",
            b"From a\r\nX: 1\n\r\nbody\rFrom b\n\n".to_vec(),
        ),
        ("bom", b"\xef\xbb\xbfFrom a\n\nx\n".to_vec()),
        ("nul", b"From a\n\x00\x00\x00\nFrom b\n\x00".to_vec()),
        ("header-no-end", b"From a\nContent-Length: 5\nX: y".to_vec()),
        ("one-huge-line", {
            let mut v = b"From a\nSubject: ".to_vec();
            v.extend(std::iter::repeat_n(b'x', 4 << 20));
            v
        }),
    ];
    for (name, data) in &cases {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| match MboxReader::open(&p, None) {
            Ok(reader) => {
                let mut n = 0;
                for item in reader.take(data.len() + 2) {
                    let _ = item.map(|i| i.bytes().len());
                    n += 1;
                }
                n
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                0
            }
        }));
        assert!(r.is_ok(), "{name}: panicked");
        assert!(t.elapsed() < FAST, "{name} took {:?}", t.elapsed());
    }
    // Empty file: no items.
    assert!(mbox_items(dir.path(), "empty", b"", None).is_empty());
}

// ---- .msg ------------------------------------------------------------------------------------

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A small S/MIME .msg: message class, subject, and the p7m attachment.
fn smime_msg() -> Vec<u8> {
    let mut cf = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    let stream = |cf: &mut cfb::CompoundFile<Cursor<Vec<u8>>>, path: &str, data: &[u8]| {
        cf.create_stream(path).unwrap().write_all(data).unwrap();
    };
    stream(&mut cf, "/__properties_version1.0", &[0u8; 32]);
    stream(&mut cf, "/__substg1.0_001A001F", &utf16("IPM.Note.SMIME"));
    stream(&mut cf, "/__substg1.0_0037001F", &utf16("hostile"));
    cf.create_storage("/__attach_version1.0_#00000000").unwrap();
    stream(
        &mut cf,
        "/__attach_version1.0_#00000000/__properties_version1.0",
        &[0u8; 8],
    );
    stream(
        &mut cf,
        "/__attach_version1.0_#00000000/__substg1.0_370E001F",
        &utf16("application/pkcs7-mime"),
    );
    stream(
        &mut cf,
        "/__attach_version1.0_#00000000/__substg1.0_37010102",
        &[
            0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
        ],
    );
    cf.flush().unwrap();
    cf.into_inner().into_inner()
}

#[test]
fn damaged_msg_files_are_error_values() {
    let msg = smime_msg();
    msg_to_mime(&msg).expect("the intact synthetic .msg converts");
    let mut rng = 0x1234_5678_9abc_def0_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut caught_panics = Vec::new();
    let t = Instant::now();
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in (0..msg.len()).step_by(msg.len() / 40) {
        inputs.push((format!("cut at {cut}"), msg[..cut].to_vec()));
    }
    for _ in 0..300 {
        let mut d = msg.clone();
        for _ in 0..1 + next() % 4 {
            let p = (next() as usize) % d.len();
            d[p] ^= 1 << (next() % 8);
        }
        inputs.push(("bit flips".into(), d));
    }
    // Sector-size and count fields in the CFB header blown up.
    for off in [0x1e, 0x2c, 0x30, 0x3c, 0x40, 0x44, 0x48] {
        let mut d = msg.clone();
        d[off..off + 4].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
        inputs.push((format!("header field {off:#x} = 0x7fffffff"), d));
    }
    for (what, d) in &inputs {
        let r = catch_unwind(AssertUnwindSafe(|| msg_to_mime(d)));
        match r {
            Err(_) => panic!("{what}: msg_to_mime panicked through its guard"),
            Ok(Err(MsgError::Malformed(m))) => caught_panics.push(format!("{what}: {m}")),
            Ok(Err(e)) => assert!(!e.to_string().is_empty()),
            Ok(Ok(_)) => {}
        }
    }
    assert!(t.elapsed() < FAST * 2, "{:?}", t.elapsed());
    // msg_to_mime turns a panic of the CFB/MAPI reader into MsgError::Malformed; count them so
    // a regression shows (they are bugs in the reader, contained).
    println!(
        "{} damaged .msg inputs, {} contained reader panics",
        inputs.len(),
        caught_panics.len()
    );
    for p in caught_panics.iter().take(5) {
        println!("  {p}");
    }
}

// ---- PST -------------------------------------------------------------------------------------

fn corpora() -> PathBuf {
    std::env::var_os("UNSEAL_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora")
        })
}

fn walk_pst(path: &Path) -> Result<usize, String> {
    let mut n = 0;
    let r = catch_unwind(AssertUnwindSafe(|| {
        read_pst(path, &mut |_| {
            n += 1;
            ControlFlow::Continue(())
        })
    }));
    match r {
        Err(_) => panic!("{}: read_pst panicked", path.display()),
        Ok(Ok(_)) => Ok(n),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

#[test]
fn junk_and_damaged_pst_files_are_error_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("magic-only".into(), b"!BDN".to_vec()),
        ("magic-and-zeros".into(), {
            let mut v = b"!BDN".to_vec();
            v.resize(4096, 0);
            v
        }),
        ("magic-and-ff".into(), {
            let mut v = b"!BDN".to_vec();
            v.resize(4096, 0xff);
            v
        }),
    ];
    let sample = corpora().join("go-pst-samples/32-bit.pst");
    match std::fs::read(&sample) {
        Ok(pst) => {
            for cut in [512, 1024, 4096, pst.len() / 2, pst.len() - 1] {
                cases.push((format!("32-bit.pst cut at {cut}"), pst[..cut].to_vec()));
            }
            // The header's root/BBT/NBT pointers and sizes pointed at nonsense.
            for off in [0xa8usize, 0xb0, 0xb8, 0xc0, 0xc8, 0xd0, 0xd8, 0xe0] {
                let mut d = pst.clone();
                if off + 8 <= d.len() {
                    d[off..off + 8].copy_from_slice(&[0xff; 8]);
                    cases.push((format!("32-bit.pst field {off:#x} = ff.."), d));
                }
            }
        }
        Err(e) => println!("skipping PST sample cases: {}: {e}", sample.display()),
    }
    for (name, data) in &cases {
        let p = dir.path().join("x.pst");
        std::fs::write(&p, data).unwrap();
        let t = Instant::now();
        let r = walk_pst(&p);
        assert!(t.elapsed() < FAST, "{name} took {:?}", t.elapsed());
        if let Err(e) = r {
            assert!(e.contains("x.pst"), "{name}: the error names the file: {e}");
        }
    }
}

// ---- fuzz regressions ------------------------------------------------------------------------

/// Every input a fuzz target crashed on (crates/mailbox/tests/data/hostile/, by extension) is
/// fed again: no panic may escape the API.
///
/// * `pst-hierarchy-table-panic.pst` (fuzz target `pst`): a damaged folder hierarchy table made
///   `outlook-pst` panic (heap.rs: range end out of range) outside the reader's guard, killing
///   the walk; now the folder's children are skipped and reported.
#[test]
fn fuzz_crash_inputs_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&p).unwrap();
        let t = Instant::now();
        match p.extension().and_then(|x| x.to_str()) {
            Some("pst") => {
                let _ = walk_pst(&p);
            }
            Some("msg") => {
                let r = catch_unwind(AssertUnwindSafe(|| msg_to_mime(&data)));
                assert!(r.is_ok(), "{name}: msg_to_mime panicked");
            }
            Some("mbox") => {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    MboxReader::open(&p, None).map(|r| r.count())
                }));
                assert!(r.is_ok(), "{name}: the mbox reader panicked");
            }
            _ => continue,
        }
        assert!(t.elapsed() < FAST, "{name} took {:?}", t.elapsed());
        n += 1;
    }
    assert!(n >= 1, "no regression inputs found in {}", dir.display());
}
