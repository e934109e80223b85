use super::*;
use proptest::prelude::*;
use std::fs;

fn read_all(path: &Path) -> Vec<Item> {
    MboxReader::open(path, None)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn corpora() -> Option<PathBuf> {
    let p = match std::env::var_os("UNSEAL_CORPORA") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"),
    };
    p.is_dir().then_some(p)
}

/// Writes `msgs` as an mbox of `variant`/`eol` with our encoder.
fn encode_all(msgs: &[Vec<u8>], variant: MboxVariant, eol: Eol) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let line = format!(
            "From sender{i}@example.com Mon Jun  3 12:50:{:02} 1996{}",
            i % 60,
            if eol == Eol::CrLf { "\r\n" } else { "\n" }
        );
        encode_message(line.as_bytes(), eol, variant, m, &mut out);
    }
    out
}

fn split_all(data: &[u8], variant: MboxVariant, eol: Eol) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = find_sep(data, 0, &mut |_| {}).0;
    assert_eq!(pos, 0, "encoded mbox must start with a From_ line");
    while pos < data.len() {
        let s = frame(data, pos, eol, variant.uses_content_length(), &mut |_| {});
        assert!(s.next > pos);
        out.push(unquote(&data[s.from_end..s.msg_end], variant).into_owned());
        pos = s.next;
    }
    out
}

#[test]
fn from_line_shapes() {
    assert!(is_from_line(b"From - \n"));
    assert!(is_from_line(b"From -"));
    assert!(is_from_line(b"From 1844347792267117879@xxx\r\n"));
    assert!(is_from_line(
        b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011\n"
    ));
    assert!(is_from_line(b"From - Mon Jun  3 12:50:27 1996\n"));
    assert!(!is_from_line(b"From Russia with love\n"));
    assert!(!is_from_line(b">From - Mon Jun  3 12:50:27 1996\n"));
    assert!(!is_from_line(b"From: a@b\n"));
}

#[test]
fn rd_quoting_is_reversible() {
    let msg = b"From a\n>From b\n>>From c\nx From d\n\r\nFrom e";
    let mut q = Vec::new();
    quote_into(msg, MboxVariant::Mboxrd, &mut q);
    assert_eq!(q, b">From a\n>>From b\n>>>From c\nx From d\n\r\n>From e");
    assert_eq!(unquote(&q, MboxVariant::Mboxrd), &msg[..]);
    let mut o = Vec::new();
    quote_into(msg, MboxVariant::Mboxo, &mut o);
    assert_eq!(o, b">From a\n>From b\n>>From c\nx From d\n\r\n>From e");
    // mboxo is lossy by definition: ">From b" comes back as "From b".
    assert_eq!(
        unquote(&o, MboxVariant::Mboxo),
        &b"From a\nFrom b\n>>From c\nx From d\n\r\nFrom e"[..]
    );
}

#[test]
fn cl2_rewrites_content_length() {
    let msg = b"Subject: x\nContent-Length: 999\n  7\nX: y\n\nFrom here\nbody";
    let mut out = Vec::new();
    encode_message(b"From a@b\n", Eol::Lf, MboxVariant::Mboxcl2, msg, &mut out);
    assert_eq!(
        out,
        b"From a@b\nSubject: x\nContent-Length: 14\nX: y\n\nFrom here\nbody\n"
    );
    let back = split_all(&out, MboxVariant::Mboxcl2, Eol::Lf);
    assert_eq!(
        back,
        vec![b"Subject: x\nContent-Length: 14\nX: y\n\nFrom here\nbody".to_vec()]
    );
    // Missing header is added; mboxcl counts the quoted body.
    let mut out = Vec::new();
    encode_message(
        b"From a@b\r\n",
        Eol::CrLf,
        MboxVariant::Mboxcl,
        b"A: b\r\n\r\nFrom x\r\n",
        &mut out,
    );
    assert_eq!(
        out,
        b"From a@b\r\nA: b\r\nContent-Length: 9\r\n\r\n>From x\r\n\r\n"
    );
}

#[test]
fn wrong_content_length_falls_back_to_from_lines() {
    let data = b"From a@b\nContent-Length: 3\n\nhello\n\nFrom c@d\nContent-Length: 99999\n\nx\n";
    let got = split_all(data, MboxVariant::Mboxcl, Eol::Lf);
    assert_eq!(
        got,
        vec![
            b"Content-Length: 3\n\nhello\n".to_vec(),
            b"Content-Length: 99999\n\nx".to_vec()
        ]
    );
}

#[test]
fn hostile_inputs_do_not_panic() {
    for data in [
        &b"From "[..],
        b"From \n",
        b"From a\nContent-Length: 18446744073709551615\n\n",
        b"From a\nContent-Length: 99999999999999999999999\n\nx",
        b"From a\r",
        b"From a\nFrom b\nFrom c",
        b"\n\n\n",
    ] {
        for v in [
            MboxVariant::Mboxo,
            MboxVariant::Mboxrd,
            MboxVariant::Mboxcl,
            MboxVariant::Mboxcl2,
        ] {
            let mut pos = find_sep(data, 0, &mut |_| {}).0;
            let mut n = 0;
            while pos < data.len() {
                let s = frame(data, pos, Eol::Lf, v.uses_content_length(), &mut |_| {});
                assert!(
                    s.next > pos
                        && s.msg_end <= data.len()
                        && s.from_end <= s.msg_end.max(s.from_end)
                );
                let _ = unquote(data.get(s.from_end..s.msg_end).unwrap_or(&[]), v);
                pos = s.next;
                n += 1;
            }
            assert!(n <= 3);
        }
    }
}

#[test]
fn unmunged_from_lines_do_not_split() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("u.mbox");
    fs::write(&p, b"\xEF\xBB\xBFFrom -\nSubject: 1\n\nFrom Russia with love\n\nFrom -\nSubject: 2\n\nFrom Russia with love\nYear: 1963\n").unwrap();
    let items = read_all(&p);
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].kind, ItemKind::Passthrough);
    assert_eq!(items[0].bytes(), BOM);
    assert_eq!(items[1].bytes(), b"Subject: 1\n\nFrom Russia with love\n");
    assert_eq!(
        items[2].bytes(),
        b"Subject: 2\n\nFrom Russia with love\nYear: 1963"
    );
    assert_eq!(items[2].id, "1");
    let Location::Mbox(m) = &items[2].meta.location else {
        panic!()
    };
    assert_eq!(m.offset, 45);
    assert_eq!(m.from_line, b"From -\n");
}

#[test]
fn mimekit_content_length_mbox_has_29_messages() {
    let Some(c) = corpora() else {
        eprintln!("skipping: corpora not found (set UNSEAL_CORPORA)");
        return;
    };
    let dir = c.join("mimekit-testdata/mbox");
    let p = dir.join("content-length.mbox.txt");
    if !p.exists() {
        eprintln!("skipping: {} absent", p.display());
        return;
    }
    let r = MboxReader::open(&p, None).unwrap();
    assert_eq!(r.variant(), MboxVariant::Mboxcl);
    assert_eq!(r.eol(), Eol::Lf);
    let items: Vec<Item> = r.map(|r| r.unwrap()).collect();
    assert_eq!(items.len(), 29);
    // The summary lists each message's Subject in order; compare with ours.
    let summary = fs::read_to_string(dir.join("content-length-summary.txt")).unwrap();
    let want: Vec<&str> = summary
        .lines()
        .filter_map(|l| l.strip_prefix("Subject: "))
        .collect();
    assert_eq!(want.len(), 29);
    for (i, (it, w)) in items.iter().zip(&want).enumerate() {
        assert_eq!(it.id, i.to_string());
        assert!(it.bytes().starts_with(b"") && !it.bytes().is_empty());
        let subj = it
            .bytes()
            .split(|&b| b == b'\n')
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(b"Subject: "))
            .unwrap_or_else(|| panic!("message {i} has no Subject"));
        assert_eq!(
            String::from_utf8_lossy(subj).trim(),
            w.trim(),
            "message {i}"
        );
    }
    // Encrypted message 11 is in there whole.
    assert!(memmem::find(items[11].bytes(), b"pkcs7-mime").is_some());

    // Writing everything back as mboxcl reproduces a file that reads back to the same messages.
    let d = tempfile::tempdir().unwrap();
    let mut sink = crate::create_sink(crate::OutFormat::Mbox, &p, d.path()).unwrap();
    for it in &items {
        sink.write(&it.meta, it.bytes()).unwrap();
    }
    let out = sink.finish().unwrap();
    let again = read_all(&out);
    assert_eq!(again.len(), 29);
    for (a, b) in items.iter().zip(&again) {
        let Location::Mbox(ma) = &a.meta.location else {
            panic!()
        };
        let Location::Mbox(mb) = &b.meta.location else {
            panic!()
        };
        assert_eq!(ma.from_line, mb.from_line);
        // Content-Length is rewritten to the true length, everything else is identical.
        let strip = |m: &[u8]| -> Vec<u8> {
            m.split_inclusive(|&b| b == b'\n')
                .filter(|l| !l.starts_with(b"Content-Length:"))
                .flatten()
                .copied()
                .collect()
        };
        assert_eq!(strip(a.bytes()), strip(b.bytes()));
    }

    // Copied through unchanged (nothing to decrypt), the file is byte-identical, its wrong
    // Content-Length headers included.
    let d2 = tempfile::tempdir().unwrap();
    let mut sink = crate::create_sink(crate::OutFormat::Mbox, &p, d2.path()).unwrap();
    for it in &items {
        sink.write_unchanged(&it.meta, it.bytes()).unwrap();
    }
    let out = sink.finish().unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&p).unwrap());
}

#[test]
fn other_mimekit_samples_split_like_their_summaries() {
    let Some(c) = corpora() else {
        eprintln!("skipping: corpora not found (set UNSEAL_CORPORA)");
        return;
    };
    let dir = c.join("mimekit-testdata/mbox");
    for (file, n) in [
        ("simple.mbox.txt", 3),
        ("issue1189.mbox.txt", 4),
        ("unmunged.mbox.txt", 2),
    ] {
        let p = dir.join(file);
        if !p.exists() {
            eprintln!("skipping: {} absent", p.display());
            continue;
        }
        let items = read_all(&p);
        let msgs = items.iter().filter(|i| i.kind == ItemKind::Message).count();
        assert_eq!(msgs, n, "{file}");
        // Round trip through the sink is byte-identical for these (no quoting needed).
        let d = tempfile::tempdir().unwrap();
        let mut sink = crate::create_sink(crate::OutFormat::Mbox, &p, d.path()).unwrap();
        for it in &items {
            sink.write(&it.meta, it.bytes()).unwrap();
        }
        let out = sink.finish().unwrap();
        let again = read_all(&out);
        assert_eq!(again.len(), items.len(), "{file}");
        for (a, b) in items.iter().zip(&again) {
            assert_eq!(a.bytes(), b.bytes(), "{file} {}", a.id);
        }
        if file != "unmunged.mbox.txt" {
            assert_eq!(fs::read(&out).unwrap(), fs::read(&p).unwrap(), "{file}");
        }
    }
}

#[test]
fn sink_resume_truncates_to_recorded_position() {
    let d = tempfile::tempdir().unwrap();
    let fin = d.path().join("box");
    let meta = |i: u64| Meta {
        location: Location::Mbox(MboxMeta {
            index: i,
            offset: 0,
            from_line: b"From a@b\n".to_vec(),
            variant: MboxVariant::Mboxrd,
            eol: Eol::Lf,
            trailing_eol: true,
        }),
        mtime: None,
    };
    let mut s = MboxSink::create(&fin).unwrap();
    s.write(&meta(0), b"A: 1\n\none\n").unwrap();
    s.sync().unwrap();
    let mark = s.position();
    s.write(&meta(1), b"A: 2\n\ntorn").unwrap();
    drop(s); // crash: never finished
    assert!(!fin.exists());
    let mut s = Box::new(MboxSink::create(&fin).unwrap());
    s.resume(mark).unwrap();
    assert!(s.resume(mark + 10_000).is_err());
    s.resume(mark).unwrap();
    s.write(&meta(1), b"A: 2\n\ntwo\n").unwrap();
    let out = s.finish().unwrap();
    assert_eq!(
        fs::read(&out).unwrap(),
        b"From a@b\nA: 1\n\none\n\nFrom a@b\nA: 2\n\ntwo\n\n"
    );
    assert!(!d.path().join("box.unseal-partial").exists());
    // A fresh (non-resumed) run starts from empty even if a partial exists.
    fs::write(d.path().join("box.unseal-partial"), b"stale").unwrap();
    let mut s = Box::new(MboxSink::create(&fin).unwrap());
    s.write(&meta(0), b"x").unwrap();
    s.finish().unwrap();
    assert_eq!(fs::read(&fin).unwrap(), b"From a@b\nx\n");
}

#[test]
fn non_mbox_items_get_generated_from_lines() {
    assert_eq!(
        generated_from_line(None),
        "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"
    );
    let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    assert_eq!(
        generated_from_line(Some(t)),
        "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\n"
    );
    assert!(is_from_line(generated_from_line(Some(t)).as_bytes()));
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop_oneof![
        Just(b"".to_vec()),
        Just(b"From ".to_vec()),
        Just(b">From ".to_vec()),
        Just(b">>From ".to_vec()),
        Just(b"From - Mon Jun  3 12:50:27 1996".to_vec()),
        Just(b"Content-Length: 5".to_vec()),
    ];
    let eol = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"".to_vec())
    ];
    (prefix, proptest::collection::vec(any::<u8>(), 0..12), eol).prop_map(|(mut p, rest, e)| {
        p.extend(rest);
        p.extend(e);
        p
    })
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(line(), 0..8).prop_map(|ls| ls.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mboxrd_round_trips_any_messages(msgs in proptest::collection::vec(message(), 0..6), crlf in any::<bool>()) {
        let eol = if crlf { Eol::CrLf } else { Eol::Lf };
        let data = encode_all(&msgs, MboxVariant::Mboxrd, eol);
        prop_assert_eq!(split_all(&data, MboxVariant::Mboxrd, eol), msgs);
    }

    #[test]
    fn mboxcl2_round_trips_messages_with_true_length(
        heads in proptest::collection::vec(("[A-Za-z-]{1,8}", "[ -~]{0,10}"), 0..4),
        bodies in proptest::collection::vec(message(), 0..6),
        crlf in any::<bool>(),
    ) {
        let eol = if crlf { Eol::CrLf } else { Eol::Lf };
        let e = std::str::from_utf8(eol.bytes()).unwrap();
        let msgs: Vec<Vec<u8>> = bodies.iter().map(|b| {
            let mut m = Vec::new();
            for (k, v) in &heads {
                if !k.eq_ignore_ascii_case("content-length") {
                    m.extend(format!("{k}: {v}{e}").as_bytes());
                }
            }
            m.extend(format!("Content-Length: {}{e}{e}", b.len()).as_bytes());
            m.extend(b);
            m
        }).collect();
        let data = encode_all(&msgs, MboxVariant::Mboxcl2, eol);
        prop_assert_eq!(split_all(&data, MboxVariant::Mboxcl2, eol), msgs);
    }

    #[test]
    fn reader_never_panics(data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'F'), Just(b'>'), any::<u8>()], 0..300)) {
        let mut d = b"From a\n".to_vec();
        d.extend(data);
        let (v, eol) = detect_variant(&d, 0);
        let mut pos = 0;
        while pos < d.len() {
            let s = frame(&d, pos, eol, v.uses_content_length(), &mut |_| {});
            prop_assert!(s.next > pos);
            pos = s.next;
        }
    }
}

#[test]
fn public_types_are_send() {
    fn send<T: Send>() {}
    send::<Item>();
    send::<Box<dyn crate::Source>>();
    send::<Box<dyn crate::Sink>>();
    send::<Error>();
}

/// The full path (sink writes a file, reader maps and splits it) for both reversible variants.
fn file_round_trip(msgs: &[Vec<u8>], variant: MboxVariant, eol: Eol) -> Vec<Vec<u8>> {
    let d = tempfile::tempdir().unwrap();
    let fin = d.path().join("box");
    let mut s = Box::new(MboxSink::create(&fin).unwrap());
    let from = if eol == Eol::CrLf {
        &b"From a@b Mon Jun  3 12:50:27 1996\r\n"[..]
    } else {
        &b"From a@b Mon Jun  3 12:50:27 1996\n"[..]
    };
    for (i, m) in msgs.iter().enumerate() {
        let meta = Meta {
            location: Location::Mbox(MboxMeta {
                index: i as u64,
                offset: 0,
                from_line: from.to_vec(),
                variant,
                eol,
                trailing_eol: true,
            }),
            mtime: None,
        };
        s.write(&meta, m).unwrap();
    }
    let out = s.finish().unwrap();
    let r = MboxReader::open(&out, Some(variant)).unwrap();
    assert_eq!(r.eol(), if msgs.is_empty() { Eol::Lf } else { eol });
    r.map(|r| r.unwrap().into_vec()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn files_round_trip_through_sink_and_reader(msgs in proptest::collection::vec(message(), 0..5), crlf in any::<bool>()) {
        let eol = if crlf { Eol::CrLf } else { Eol::Lf };
        prop_assert_eq!(file_round_trip(&msgs, MboxVariant::Mboxrd, eol), msgs.clone());
        let with_len: Vec<Vec<u8>> = msgs.iter().map(|b| {
            let mut m = format!("Subject: t{}Content-Length: {}{}{}", std::str::from_utf8(eol.bytes()).unwrap(), b.len(), std::str::from_utf8(eol.bytes()).unwrap(), std::str::from_utf8(eol.bytes()).unwrap()).into_bytes();
            m.extend(b);
            m
        }).collect();
        prop_assert_eq!(file_round_trip(&with_len, MboxVariant::Mboxcl2, eol), with_len);
    }
}

fn mbox_meta(i: u64, variant: MboxVariant, eol: Eol) -> Meta {
    Meta {
        location: Location::Mbox(MboxMeta {
            index: i,
            offset: 0,
            from_line: if eol == Eol::CrLf {
                b"From a@b Mon Jun  3 12:50:27 1996\r\n".to_vec()
            } else {
                b"From a@b Mon Jun  3 12:50:27 1996\n".to_vec()
            },
            variant,
            eol,
            trailing_eol: true,
        }),
        mtime: None,
    }
}

/// Writes `body` through `write_streamed` in pieces cut at `cuts`.
fn write_in_pieces(s: &mut dyn Sink, meta: &Meta, body: &[u8], cuts: &[usize]) -> Filled {
    s.write_streamed(meta, &mut |w| {
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&body.len())) {
            let c = c.clamp(at, body.len());
            w.write_all(&body[at..c])?;
            at = c;
        }
        Ok(())
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Streaming a message in any pieces quotes it exactly as `quote_into` does at once.
    #[test]
    fn quoting_in_pieces_matches_quoting_at_once(
        lines in proptest::collection::vec(prop_oneof![
            Just("From a@b Mon Jun  3 12:50:27 1996"), Just(">From x"), Just(">>From "),
            Just("From"), Just("Fro"), Just("F"), Just(">"), Just(">>"), Just(""),
            Just("text From inside"), Just("From: header"), Just(">>>From the deep"),
        ], 0..24),
        crlf in any::<bool>(),
        last_eol in any::<bool>(),
        cuts in proptest::collection::vec(0usize..400, 0..12),
        rd in any::<bool>(),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut body = lines.join(eol);
        if last_eol {
            body.push_str(eol);
        }
        let body = body.as_bytes();
        let variant = if rd { MboxVariant::Mboxrd } else { MboxVariant::Mboxo };
        let mut want = Vec::new();
        quote_into(body, variant, &mut want);
        let mut cuts = cuts;
        cuts.sort();
        let mut q = QuotingWriter::new(Vec::new(), variant);
        let mut at = 0;
        for c in cuts.iter().copied().chain(std::iter::once(body.len())) {
            let c = c.clamp(at, body.len());
            q.write_all(&body[at..c]).unwrap();
            at = c;
        }
        prop_assert_eq!(q.finish().unwrap(), want);
    }
}

#[test]
fn a_streamed_item_is_framed_like_a_written_one_and_a_failed_one_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let body = b"Subject: big\n\nFrom the start\n>From quoted\nline\nFrom a@b Mon Jun  3 12:50:27 1996\nend";
    for (variant, eol) in [
        (MboxVariant::Mboxrd, Eol::Lf),
        (MboxVariant::Mboxo, Eol::CrLf),
    ] {
        let written = d.path().join("written");
        let streamed = d.path().join("streamed");
        let mut a: Box<dyn Sink> = Box::new(MboxSink::create(&written).unwrap());
        a.write(&mbox_meta(0, variant, eol), b"A: 1\n\none\n")
            .unwrap();
        a.write(&mbox_meta(1, variant, eol), body).unwrap();
        a.finish().unwrap();

        let mut b: Box<dyn Sink> = Box::new(MboxSink::create(&streamed).unwrap());
        assert!(b.can_stream(&mbox_meta(1, variant, eol)));
        b.write(&mbox_meta(0, variant, eol), b"A: 1\n\none\n")
            .unwrap();
        let before = b.position();
        // A producer that fails midway: its bytes are gone, the position is as before.
        let failed = b
            .write_streamed(&mbox_meta(1, variant, eol), &mut |w| {
                w.write_all(b"Subject: half\n\nFrom here")?;
                Err("bad padding".into())
            })
            .unwrap();
        assert_eq!(failed.unwrap_err().to_string(), "bad padding");
        assert_eq!(b.position(), before);
        write_in_pieces(
            b.as_mut(),
            &mbox_meta(1, variant, eol),
            body,
            &[3, 20, 21, 40],
        )
        .unwrap();
        assert!(b.position() > before);
        b.finish().unwrap();
        assert_eq!(
            fs::read(&streamed).unwrap(),
            fs::read(&written).unwrap(),
            "{variant:?}"
        );
        fs::remove_file(&written).unwrap();
        fs::remove_file(&streamed).unwrap();
    }
    // Content-Length variants need the length first: not streamed.
    let s = MboxSink::create(&d.path().join("cl")).unwrap();
    assert!(!s.can_stream(&mbox_meta(0, MboxVariant::Mboxcl2, Eol::Lf)));
    assert!(!s.can_stream(&mbox_meta(0, MboxVariant::Mboxcl, Eol::Lf)));
}

#[test]
fn a_message_larger_than_the_resident_window_is_framed_and_unquoted_the_same() {
    // 70 MB: framing and the quoted-line check go window by window, releasing pages behind.
    let d = tempfile::tempdir().unwrap();
    let line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\n";
    let mut big = b"Subject: big\n\n".to_vec();
    let mut quoted = false;
    while big.len() < 70_000_000 {
        big.extend_from_slice(line);
        if big.len() > 50_000_000 && !quoted {
            big.extend_from_slice(b">From the middle\n");
            quoted = true;
        }
    }
    let mut expected = big.clone();
    let at = memmem::find(&expected, b">From the middle").unwrap();
    expected.remove(at);
    let mut file = b"From a@b Mon Jun  3 12:50:27 1996\n".to_vec();
    file.extend_from_slice(&big);
    file.extend_from_slice(b"\nFrom c@d Mon Jun  3 12:50:28 1996\nSubject: small\n\nx\n");
    let p = d.path().join("big.mbox");
    fs::write(&p, &file).unwrap();
    let items = read_all(&p);
    assert_eq!(items.len(), 2);
    assert!(
        items[0].bytes() == expected.as_slice(),
        "big message differs"
    );
    assert_eq!(items[1].bytes(), b"Subject: small\n\nx");
    // Releasing pages leaves the bytes readable.
    items[0].release_pages(0..items[0].bytes().len());
    assert!(items[0].bytes().ends_with(line));
}

#[test]
fn a_length_delimited_body_running_past_a_from_line_is_still_unquoted() {
    // The Content-Length covers a From_-shaped line and a quoted `>From ` after it: framing
    // stops its scan at the first, so the quoted line must not be missed.
    let d = tempfile::tempdir().unwrap();
    let body = "From x@y Mon Jan  1 00:00:00 2024\n>From quoted\nend\n";
    let file = format!(
        "From a@b Mon Jan  1 00:00:00 2024\nContent-Length: {}\n\n{body}From c@d Mon Jan  1 00:00:01 2024\nContent-Length: 2\n\nx\n",
        body.len()
    );
    let p = d.path().join("cl.mbox");
    fs::write(&p, &file).unwrap();
    let items: Vec<Item> = MboxReader::open(&p, Some(MboxVariant::Mboxcl))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0].bytes(),
        format!(
            "Content-Length: {}\n\nFrom x@y Mon Jan  1 00:00:00 2024\nFrom quoted\nend\n",
            body.len()
        )
        .as_bytes()
    );
}

#[test]
fn a_long_run_of_quotes_is_quoted_like_any_other() {
    for variant in [MboxVariant::Mboxrd, MboxVariant::Mboxo] {
        let mut body = b"Subject: q\n\n".to_vec();
        body.extend(std::iter::repeat_n(b'>', 5000));
        body.extend_from_slice(b"From x\n");
        body.extend(std::iter::repeat_n(b'>', 70));
        body.extend_from_slice(b"\nend\n");
        let mut want = Vec::new();
        quote_into(&body, variant, &mut want);
        for piece in [1usize, 7, 4096, body.len()] {
            let mut q = QuotingWriter::new(Vec::new(), variant);
            for c in body.chunks(piece) {
                q.write_all(c).unwrap();
            }
            assert!(
                q.finish().unwrap() == want,
                "{variant:?} in pieces of {piece}"
            );
        }
    }
}

#[test]
fn bare_cr_line_ends_are_refused_not_read_as_one_empty_message() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("mac.mbox");
    fs::write(
        &p,
        b"From a@b Mon Jun  3 12:50:27 1996\rSubject: x\r\rbody\r\rFrom a@b Mon Jun  3 12:50:28 1996\rSubject: y\r\rz\r",
    )
    .unwrap();
    let e = MboxReader::open(&p, None).err().expect("refused");
    assert!(e.to_string().contains("bare CR"), "{e}");
    // CRLF is fine, and so is a CR inside a message of an LF file.
    fs::write(
        &p,
        b"From a@b Mon Jun  3 12:50:27 1996\r\nSubject: x\r\n\r\nbo\rdy\r\n",
    )
    .unwrap();
    assert_eq!(read_all(&p).len(), 1);
    fs::write(
        &p,
        b"From a@b Mon Jun  3 12:50:27 1996\nSubject: x\n\nbo\rdy\n",
    )
    .unwrap();
    assert_eq!(read_all(&p).len(), 1);
}

/// What `stored_form` promises is what the reader gives back from a file of such messages, for
/// a header that is added, one that is rewritten, and a body with `From ` lines.
#[test]
fn stored_form_is_what_the_reader_yields_for_content_length_variants() {
    let msgs: [&[u8]; 3] = [
        b"Subject: no length\n\nFrom here\nbody\n",
        b"Subject: old length\nContent-Length: 3\n\n>From quoted\nbody two\n",
        b"Subject: no body",
    ];
    let d = tempfile::tempdir().unwrap();
    for variant in [MboxVariant::Mboxcl, MboxVariant::Mboxcl2] {
        for eol in [Eol::Lf, Eol::CrLf] {
            let mut data = Vec::new();
            let msgs: Vec<Vec<u8>> = msgs
                .iter()
                .map(|m| match eol {
                    Eol::Lf => m.to_vec(),
                    Eol::CrLf => String::from_utf8_lossy(m)
                        .replace('\n', "\r\n")
                        .into_bytes(),
                })
                .collect();
            for m in &msgs {
                encode_message(
                    b"From a@b Mon Jun  3 12:50:27 1996",
                    eol,
                    variant,
                    m,
                    &mut data,
                );
            }
            let p = d.path().join("cl.mbox");
            fs::write(&p, &data).unwrap();
            let items = MboxReader::open(&p, Some(variant))
                .unwrap()
                .map(|r| r.unwrap())
                .collect::<Vec<_>>();
            assert_eq!(items.len(), msgs.len(), "{variant:?} {eol:?}");
            for (m, it) in msgs.iter().zip(&items) {
                let stored = stored_form(eol, variant, m).expect("a Content-Length variant");
                assert_ne!(&stored, m, "{variant:?} {eol:?}: the header is rewritten");
                assert_eq!(stored, it.bytes(), "{variant:?} {eol:?}");
            }
        }
    }
    for variant in [MboxVariant::Mboxo, MboxVariant::Mboxrd] {
        assert!(stored_form(Eol::Lf, variant, msgs[0]).is_none());
    }
}
