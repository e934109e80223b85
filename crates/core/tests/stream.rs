//! The streaming path (`unseal_core::stream`) against the in-memory one: for every fixture
//! message made by OpenSSL, gpgsm and pyca, streaming either declines before writing anything,
//! or writes exactly the bytes `mime::decrypt_message` produces, with the right hashes. Broken
//! input fails instead of producing output.

mod common;

use common::{all_keys, fixtures};
use std::path::{Path, PathBuf};
use unseal_core::mime::{MessageOptions, decrypt_message};
use unseal_core::provider::{HashAlg, all_providers};
use unseal_core::stream::{self, StreamError};
use unseal_core::{DecryptOptions, Decryptor, LayerInfo};

use cms::authenveloped_data::AuthEnvelopedData;
use cms::content_info::ContentInfo;
use der::asn1::{ObjectIdentifier, SetOfVec};
use der::{Any, Decode, Encode};
use x509_cert::attr::Attribute;

fn opts() -> MessageOptions {
    MessageOptions {
        timestamp: "Wed, 25 Nov 2026 12:00:00 +0000".into(),
        ..MessageOptions::default()
    }
}

fn messages() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join("messages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    v.sort();
    v
}

/// What was written, the summary, and the input ranges handed back.
type Run = (Vec<u8>, stream::Streamed, Vec<std::ops::Range<usize>>);

/// Streams `msg`: `Ok(None)` when `prepare` declines.
fn streamed(dec: &Decryptor<'_>, msg: &[u8]) -> Result<Option<Run>, StreamError> {
    let Some(s) = stream::prepare(dec, msg) else {
        return Ok(None);
    };
    let before = s.layer().clone();
    let mut out = Vec::new();
    let mut seen = Vec::new();
    let done = s.run(&opts(), &mut out, &mut |r| seen.push(r))?;
    // What `prepare` reports is the envelope `run` opened; only the lengths come later.
    let expected = LayerInfo {
        ciphertext_len: done.layer.ciphertext_len,
        plaintext_len: done.layer.plaintext_len,
        ..before
    };
    assert_eq!(done.layer, expected);
    Ok(Some((out, done, seen)))
}

#[test]
fn streaming_writes_what_the_in_memory_path_writes_or_declines() {
    let ring = all_keys();
    let spool = tempfile::tempdir().unwrap();
    for provider in all_providers() {
        let dec = Decryptor::new(&ring, provider, spooled(spool.path())).unwrap();
        let (mut same, mut multipart, mut declined_late, mut watched) = (0, 0, 0, 0);
        let mut gcm = 0;
        for path in messages() {
            let msg = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let expected = decrypt_message(&dec, &msg, &opts());
            match streamed(&dec, &msg) {
                Ok(None) => {}
                Ok(Some((out, done, seen))) => {
                    let expected =
                        expected.unwrap_or_else(|e| panic!("{name}: streamed, but in memory: {e}"));
                    assert_eq!(
                        Some(&out),
                        expected.output.as_ref(),
                        "{name} ({})",
                        provider.name()
                    );
                    assert_eq!(done.layer, expected.layers[0].info, "{name}");
                    assert_eq!(done.bytes_out, out.len() as u64);
                    assert_eq!(done.sha256_in, provider.digest(HashAlg::Sha256, &[&msg]));
                    assert_eq!(done.sha256_out, provider.digest(HashAlg::Sha256, &[&out]));
                    // The ranges handed back cover the body, in order, without gaps.
                    let mut at = seen.first().map_or(0, |r| r.start);
                    for r in &seen {
                        assert_eq!(r.start, at, "{name}");
                        at = r.end;
                    }
                    assert_eq!(at, msg.len(), "{name}");
                    same += 1;
                    if done.layer.content_cipher.contains("GCM") {
                        gcm += 1;
                    }
                    let lower = String::from_utf8_lossy(&out).to_ascii_lowercase();
                    if lower.contains("content-type: multipart/") {
                        multipart += 1;
                    }
                }
                Err(StreamError::NotStreamable(_)) => declined_late += 1,
                Err(StreamError::Failed(e))
                    if e.to_string().contains("the message walk would open") =>
                {
                    // A multipart plaintext with a part the walk acts on (a nested envelope):
                    // handed to the in-memory path, whatever it makes of it.
                    watched += 1;
                }
                Err(StreamError::Failed(e)) => {
                    // Only where the in-memory path fails too.
                    assert!(
                        expected.is_err(),
                        "{name}: stream failed ({e}), memory did not"
                    );
                }
            }
        }
        eprintln!(
            "{}: {same} streamed ({multipart} multipart), {declined_late} declined late, {watched} handed back",
            provider.name()
        );
        // Fixtures under a CBC cipher stream (DES, 3DES, RC2, CAST5, AES; RSA and ECDH),
        // single-part and multipart plaintexts alike (sign-then-encrypt among them).
        assert!(same >= 30, "only {same} fixture messages streamed");
        // AuthEnvelopedData too (OpenSSL's AES-128/256-GCM, DER and BER, RSA and ECDH).
        assert!(gcm >= 5, "only {gcm} AES-GCM fixture messages streamed");
        assert_eq!(
            std::fs::read_dir(spool.path()).unwrap().count(),
            0,
            "nothing left in the spool folder"
        );
        assert!(
            multipart >= 5,
            "only {multipart} multipart plaintexts streamed"
        );
    }
}

/// Options with a spool folder, which streaming AES-GCM needs (its plaintext waits there for
/// the tag).
fn spooled(dir: &Path) -> DecryptOptions {
    DecryptOptions {
        spool_dir: Some(dir.to_path_buf()),
        ..DecryptOptions::default()
    }
}

/// A streamable fixture in DER (the ciphertext is the last thing in its ContentInfo), split
/// into its header block and decoded body, and the cipher's block length.
fn a_streamable_der(dec: &Decryptor<'_>) -> (Vec<u8>, Vec<u8>, usize) {
    a_streamable(dec, ".der.")
}

/// As [`a_streamable_der`], for a fixture whose name contains `encoding` (".der." or ".ber.").
fn a_streamable(dec: &Decryptor<'_>, encoding: &str) -> (Vec<u8>, Vec<u8>, usize) {
    use base64::Engine as _;
    for p in messages() {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.contains(encoding) {
            continue;
        }
        let msg = std::fs::read(&p).unwrap();
        let Ok(Some((_, done, _))) = streamed(dec, &msg) else {
            continue;
        };
        let text = String::from_utf8(msg).unwrap();
        let Some(split) = text.find("\n\n") else {
            continue;
        };
        let (head, body) = text.split_at(split + 2);
        let b64: String = body.split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let bs = if done.layer.content_cipher.starts_with("AES") {
            16
        } else {
            8
        };
        return (head.as_bytes().to_vec(), der, bs);
    }
    panic!("no streamable {encoding} fixture");
}

fn message(head: &[u8], der: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut m = head.to_vec();
    for line in b64.as_bytes().chunks(76) {
        m.extend_from_slice(line);
        m.push(b'\n');
    }
    m
}

#[test]
fn a_damaged_message_fails_instead_of_writing_output() {
    let ring = all_keys();
    let dec = Decryptor::new(&ring, all_providers()[0], DecryptOptions::default()).unwrap();
    let (head, der, bs) = a_streamable_der(&dec);
    assert!(matches!(streamed(&dec, &message(&head, &der)), Ok(Some(_))));

    // Cut short: the content never ends.
    let cut = message(&head, &der[..der.len() - 3 * bs]);
    assert!(
        matches!(streamed(&dec, &cut), Err(StreamError::Failed(_))),
        "truncated"
    );

    // The top bit of the last byte of the block before the last flips the same bit of the
    // padding length, which makes it larger than any block: the check at the very end fails.
    let mut bad = der.clone();
    let at = bad.len() - bs - 1;
    bad[at] ^= 0x80;
    match streamed(&dec, &message(&head, &bad)) {
        Err(StreamError::Failed(e)) => assert!(e.to_string().contains("padding"), "{e}"),
        other => panic!("tampered padding: {:?}", other.map(|o| o.map(|x| x.1))),
    }

    // Not base64 in the middle of the body: declined up front (the header prefix does not
    // parse) or failed while streaming, never output.
    let mut junk = message(&head, &der);
    let mid = head.len() + (junk.len() - head.len()) / 2;
    junk[mid] = b'*';
    let r = streamed(&dec, &junk);
    assert!(
        matches!(r, Ok(None) | Err(StreamError::Failed(_))),
        "{:?}",
        r.map(|o| o.map(|x| x.1))
    );
}

#[test]
fn a_second_envelope_after_the_first_is_refused_either_way() {
    let ring = all_keys();
    let dec = Decryptor::new(&ring, all_providers()[0], DecryptOptions::default()).unwrap();
    for encoding in [".der.", ".ber."] {
        let (head, der, _) = a_streamable(&dec, encoding);
        let msg = message(&head, &[der.clone(), der].concat());
        let e = decrypt_message(&dec, &msg, &opts()).expect_err("in memory");
        assert!(
            e.to_string().contains("second encrypted CMS envelope"),
            "{e}"
        );
        match streamed(&dec, &msg) {
            Err(StreamError::Failed(e)) => {
                assert!(
                    e.to_string().contains("second encrypted CMS envelope"),
                    "{e}"
                )
            }
            other => panic!("{encoding}: {:?}", other.map(|o| o.map(|x| x.1))),
        }
    }
}

#[test]
fn a_ber_envelope_cut_in_its_closing_end_of_contents_is_truncated_either_way() {
    let ring = all_keys();
    let dec = Decryptor::new(&ring, all_providers()[0], DecryptOptions::default()).unwrap();
    let (head, der, _) = a_streamable(&dec, ".ber.");
    assert!(
        der.ends_with(&[0; 8]),
        "a BER fixture closes with end-of-contents"
    );
    assert!(decrypt_message(&dec, &message(&head, &der), &opts()).is_ok());
    // The ContentInfo's and its [0]'s end-of-contents, or part of them, missing.
    for cut in 1..=4 {
        let msg = message(&head, &der[..der.len() - cut]);
        let e = decrypt_message(&dec, &msg, &opts()).expect_err("in memory");
        assert!(e.to_string().contains("truncated"), "cut {cut}: {e}");
        match streamed(&dec, &msg) {
            Err(StreamError::Failed(e)) => {
                assert!(e.to_string().contains("ContentInfo"), "cut {cut}: {e}")
            }
            other => panic!("cut {cut}: {:?}", other.map(|o| o.map(|x| x.1))),
        }
    }
}

/// A 5 MB message made by `openssl cms -encrypt`, DER and BER (`-stream`: indefinite lengths,
/// the ciphertext in chunks that straddle the 2 MB input blocks).
fn openssl_large(dir: &Path, ber: bool) -> Option<Vec<u8>> {
    let mut plain = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n".to_vec();
    let mut i = 0u64;
    while plain.len() < 5_000_000 {
        plain.extend_from_slice(format!("line {i} of a large plaintext\r\n").as_bytes());
        i += 1;
    }
    let name = if ber { "big-ber" } else { "big" };
    openssl_encrypt(dir, name, &plain, if ber { &["-stream"] } else { &[] })
}

#[test]
fn a_large_message_streams_across_blocks_like_the_in_memory_path() {
    let ring = all_keys();
    let dir = tempfile::tempdir().unwrap();
    for ber in [false, true] {
        let Some(msg) = openssl_large(dir.path(), ber) else {
            return;
        };
        for provider in all_providers() {
            let dec = Decryptor::new(&ring, provider, DecryptOptions::default()).unwrap();
            let expected = decrypt_message(&dec, &msg, &opts())
                .unwrap()
                .output
                .unwrap();
            let (out, done, seen) = streamed(&dec, &msg).unwrap().expect("streams");
            assert!(out == expected, "ber={ber}: output differs");
            assert!(seen.len() >= 3, "read in {} blocks", seen.len());
            // The same body as one 6.7 MB line: cut into blocks mid-line, same answer.
            let text = String::from_utf8(msg.clone()).unwrap();
            let split = text.find("\n\n").map(|i| i + 2).unwrap();
            let one_line: String = text[split..].split_whitespace().collect();
            let long = format!("{}{one_line}\n", &text[..split]);
            let (out2, _, seen2) = streamed(&dec, long.as_bytes()).unwrap().expect("streams");
            let expected2 = decrypt_message(&dec, long.as_bytes(), &opts()).unwrap();
            assert!(Some(&out2) == expected2.output.as_ref(), "one long line");
            assert!(
                seen2.len() >= 3,
                "one long line read in {} blocks",
                seen2.len()
            );
            assert_eq!(done.sha256_in, provider.digest(HashAlg::Sha256, &[&msg]));
            assert!(done.layer.plaintext_len >= 5_000_000);
        }
        // Damage near the end (the last ciphertext blocks, the closing framing) and anywhere:
        // streaming gives the in-memory answer or none.
        let dec = Decryptor::new(&ring, all_providers()[0], DecryptOptions::default()).unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1du64 ^ u64::from(ber);
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        };
        let (mut same, mut refused) = (0, 0);
        for round in 0..60 {
            let mut m = msg.clone();
            let i = if round % 2 == 0 {
                m.len() - 1 - next() % 120
            } else {
                next() % m.len()
            };
            m[i] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n-"
                [next() % 66];
            match streamed(&dec, &m) {
                Ok(Some((out, _, _))) => {
                    let mem = decrypt_message(&dec, &m, &opts());
                    let mem = mem.unwrap_or_else(|e| panic!("ber={ber} at {i}: memory: {e}"));
                    assert!(mem.output.as_ref() == Some(&out), "ber={ber} at {i}");
                    same += 1;
                }
                _ => refused += 1,
            }
        }
        assert!(same > 0 && refused > 0, "{same} same, {refused} refused");
        // Junk in the middle of the body, past the part read up front: fails, no output kept.
        let mut junk = msg.clone();
        let at = msg.len() / 2;
        junk[at] = b'*';
        assert!(matches!(streamed(&dec, &junk), Err(StreamError::Failed(_))));
    }
}

/// Hostile input: thousands of mutated messages (bytes flipped in the header, the base64 body
/// and near the end; cut short; lines doubled). Streaming never panics, and whenever it
/// produces output, the in-memory path produces the same bytes.
#[test]
fn mutated_messages_stream_to_the_same_answer_or_not_at_all() {
    let ring = all_keys();
    let dec = Decryptor::new(&ring, all_providers()[0], DecryptOptions::default()).unwrap();
    let originals: Vec<Vec<u8>> = messages()
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .filter(|m| matches!(streamed(&dec, m), Ok(Some(_))))
        .take(6)
        .collect();
    assert!(originals.len() >= 4);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut same, mut refused) = (0, 0);
    for round in 0..3000 {
        let mut m = originals[round % originals.len()].clone();
        let n = m.len();
        match next() % 6 {
            5 => {
                // Whitespace inside a line: a space, a tab, a bare CR.
                let i = (next() as usize) % n;
                m.insert(i, b" \t\r"[(next() % 3) as usize]);
            }
            0 => {
                // A few bytes anywhere.
                for _ in 0..1 + next() % 4 {
                    let i = (next() as usize) % n;
                    m[i] ^= 1 << (next() % 8);
                }
            }
            1 => m.truncate((next() as usize) % n),
            2 => {
                // Near the end, where the padding and the closing framing are.
                let i = n - 1 - (next() as usize) % 80.min(n - 1);
                m[i] = next() as u8;
            }
            3 => {
                // A stretch of the body repeated.
                let a = (next() as usize) % n;
                let b = (a + 1 + (next() as usize) % 200).min(n);
                let piece = m[a..b].to_vec();
                m.splice(b..b, piece);
            }
            _ => {
                // A base64 character replaced by another valid one.
                let i = (next() as usize) % n;
                if m[i].is_ascii_alphanumeric() {
                    m[i] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                        [(next() % 62) as usize];
                }
            }
        }
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| streamed(&dec, &m)))
            .unwrap_or_else(|_| panic!("streaming panicked on mutation {round}"));
        match got {
            Ok(Some((out, _, _))) => {
                let mem = decrypt_message(&dec, &m, &opts())
                    .unwrap_or_else(|e| panic!("round {round}: streamed, memory failed: {e}"));
                assert!(
                    mem.output.as_ref() == Some(&out),
                    "round {round}: outputs differ"
                );
                same += 1;
            }
            Ok(None) | Err(_) => refused += 1,
        }
    }
    // Most mutations break something; many (in headers that do not matter, in the plaintext's
    // body) do not.
    assert!(
        same > 100 && refused > 100,
        "{same} same, {refused} refused"
    );
}

/// Runs `openssl cms -encrypt -aes256 -binary [extra]` on `plain` to the rsa2048 test
/// certificate; `None` (and a printed reason) without openssl.
fn openssl_encrypt(dir: &Path, name: &str, plain: &[u8], extra: &[&str]) -> Option<Vec<u8>> {
    let p = dir.join(format!("{name}.txt"));
    let out = dir.join(format!("{name}.eml"));
    std::fs::write(&p, plain).unwrap();
    let ok = std::process::Command::new("openssl")
        .args(["cms", "-encrypt", "-aes256", "-binary", "-in"])
        .arg(&p)
        .arg("-out")
        .arg(&out)
        .args(extra)
        .arg(fixtures().join("keys/rsa2048.cert.pem"))
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: openssl cms -encrypt is not available");
        return None;
    }
    Some(std::fs::read(&out).unwrap())
}

/// An S/MIME message of one short text, for plaintexts that hold one.
fn inner_message(dir: &Path) -> Option<Vec<u8>> {
    openssl_encrypt(
        dir,
        "inner",
        b"Content-Type: text/plain\r\n\r\nthe inner secret\r\n",
        &[],
    )
}

#[test]
fn a_multipart_plaintext_streams_unless_a_part_is_itself_encrypted() {
    let ring = all_keys();
    let dec = Decryptor::new(&ring, all_providers()[0], DecryptOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let Some(inner) = inner_message(dir.path()) else {
        return;
    };
    let attachment = "A".repeat(300_000);
    let multipart = |second: &[u8]| -> Vec<u8> {
        let mut m = b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain\r\n\r\nhello\r\n--b1\r\n"
            .to_vec();
        m.extend_from_slice(second);
        m.extend_from_slice(b"\r\n--b1--\r\n");
        m
    };
    // A text part and a large attachment: streamed, same bytes as in memory.
    let plain_attachment = format!(
        "Content-Type: application/octet-stream; name=\"data.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{attachment}"
    );
    let Some(msg) = openssl_encrypt(
        dir.path(),
        "plain",
        &multipart(plain_attachment.as_bytes()),
        &[],
    ) else {
        return;
    };
    let (out, _, _) = streamed(&dec, &msg).unwrap().expect("streams");
    let mem = decrypt_message(&dec, &msg, &opts()).unwrap();
    assert!(mem.output.as_ref() == Some(&out));

    // The second part is itself an envelope: the walk opens it too, so streaming hands the
    // message back (before anything of it is kept) and the in-memory path decrypts both.
    let Some(msg) = openssl_encrypt(dir.path(), "nested", &multipart(&inner), &[]) else {
        return;
    };
    match streamed(&dec, &msg) {
        Err(StreamError::Failed(e)) => {
            assert!(e.to_string().contains("the message walk would open"), "{e}");
        }
        other => panic!(
            "nested envelope streamed: {:?}",
            other.map(|o| o.map(|x| x.1))
        ),
    }
    let mem = decrypt_message(&dec, &msg, &opts()).unwrap();
    assert_eq!(mem.layers.len(), 2);
    let text = String::from_utf8_lossy(mem.output.as_ref().unwrap()).into_owned();
    assert!(text.contains("the inner secret"));
}

/// Streams `msg` into `out`, which the caller inspects even after a failure.
fn streamed_into(
    dec: &Decryptor<'_>,
    msg: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<stream::Streamed>, StreamError> {
    let Some(s) = stream::prepare(dec, msg) else {
        return Ok(None);
    };
    s.run(&opts(), out, &mut |_| {}).map(Some)
}

/// Streams `msg`, which must stream, to exactly the bytes the in-memory path writes.
fn streams_as_in_memory(dec: &Decryptor<'_>, msg: &[u8], what: &str) -> Run {
    let expected = decrypt_message(dec, msg, &opts()).unwrap().output.unwrap();
    let run = streamed(dec, msg).unwrap().expect("streams");
    assert!(run.0 == expected, "{what}: output differs");
    run
}

/// Streaming `msg` fails at the GCM tag and writes nothing; in memory it fails the same way.
fn fails_its_tag_with_nothing_written(dec: &Decryptor<'_>, msg: &[u8], what: &str) {
    let mut out = Vec::new();
    match streamed_into(dec, msg, &mut out) {
        Err(StreamError::Failed(e)) => {
            assert!(e.to_string().contains("tag mismatch"), "{what}: {e}")
        }
        other => panic!("{what}: {:?}", other.map(|o| o.map(|d| d.layer))),
    }
    assert!(out.is_empty(), "{what}: {} bytes written", out.len());
    let e = decrypt_message(dec, msg, &opts()).expect_err("in memory");
    assert!(e.to_string().contains("tag mismatch"), "{what}: {e}");
}

/// The base64 body of `msg` (after its header block), decoded.
fn body_der(msg: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use base64::Engine as _;
    let text = String::from_utf8(msg.to_vec()).unwrap();
    let split = text.find("\n\n").map(|i| i + 2).unwrap();
    let b64: String = text[split..].split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    (text.as_bytes()[..split].to_vec(), der)
}

/// A 5 MB AuthEnvelopedData from `openssl cms -encrypt -aes-256-gcm` (DER, and BER with
/// `-stream`) streams in bounded memory to exactly what the in-memory path writes; its
/// plaintext waits in the spool until the tag verifies, so a message altered anywhere in its
/// ciphertext or tag fails with nothing written, and the spool is left empty.
#[test]
fn a_large_gcm_message_streams_and_writes_nothing_until_its_tag_verifies() {
    let ring = all_keys();
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mut plain = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n".to_vec();
    let mut i = 0u64;
    while plain.len() < 5_000_000 {
        plain.extend_from_slice(format!("line {i} of a large GCM plaintext\r\n").as_bytes());
        i += 1;
    }
    for ber in [false, true] {
        let extra: &[&str] = if ber {
            &["-aes-256-gcm", "-stream"]
        } else {
            &["-aes-256-gcm"]
        };
        let Some(msg) = openssl_encrypt(dir.path(), &format!("gcm-{ber}"), &plain, extra) else {
            return;
        };
        for provider in all_providers() {
            let dec = Decryptor::new(&ring, provider, spooled(spool.path())).unwrap();
            let (out, done, seen) = streams_as_in_memory(&dec, &msg, &format!("ber={ber}"));
            assert_eq!(done.layer.content_cipher, "AES-256-GCM");
            assert!(seen.len() >= 3, "read in {} blocks", seen.len());
            assert_eq!(done.layer.plaintext_len, plain.len() as u64);
            assert_eq!(done.sha256_out, provider.digest(HashAlg::Sha256, &[&out]));
        }
        // Without a spool folder the plaintext would have nowhere to wait: not streamed.
        let plain_dec =
            Decryptor::new(&ring, all_providers()[0], DecryptOptions::default()).unwrap();
        assert!(stream::prepare(&plain_dec, &msg).is_none());

        let dec = Decryptor::new(&ring, all_providers()[0], spooled(spool.path())).unwrap();
        let (head, der) = body_der(&msg);
        // One bit of the ciphertext in the middle, of its last byte, of the tag (DER: the tag
        // is the envelope's last 16 bytes; BER: before the four end-of-contents).
        let tag_end = if ber { der.len() - 8 } else { der.len() };
        for at in [der.len() / 2, tag_end - 16 - 40, tag_end - 1] {
            let mut bad = der.clone();
            bad[at] ^= 0x01;
            let m = message(&head, &bad);
            fails_its_tag_with_nothing_written(&dec, &m, &format!("ber={ber} at {at}"));
        }
    }
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
}

/// `plain` sealed anew in OpenSSL's AES-256-GCM envelope to the test certificate: a new
/// content-encryption key (RSA-encrypted to the certificate by `openssl pkeyutl`), the content
/// sealed by aws-lc over `attrs` (the additional data, RFC 5083 §2.1) when given. Returns the
/// message's header block, the ContentInfo's type and the AuthEnvelopedData; `None` without
/// OpenSSL.
fn resealed(
    dir: &Path,
    plain: &[u8],
    attrs: Option<SetOfVec<Attribute>>,
) -> Option<(Vec<u8>, ObjectIdentifier, AuthEnvelopedData)> {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use cms::enveloped_data::RecipientInfo;
    use der::asn1::OctetString;

    let msg = openssl_encrypt(dir, "gcm-resealed", b"x", &["-aes-256-gcm"])?;
    let (head, der) = body_der(&msg);
    let ci = ContentInfo::from_der(&der).unwrap();
    let mut aed: AuthEnvelopedData = ci.content.decode_as().unwrap();

    let cek = [0x3cu8; 32];
    let cek_path = dir.join("cek");
    std::fs::write(&cek_path, cek).unwrap();
    let wrapped = std::process::Command::new("openssl")
        .args(["pkeyutl", "-encrypt", "-certin", "-inkey"])
        .arg(fixtures().join("keys/rsa2048.cert.pem"))
        .arg("-in")
        .arg(&cek_path)
        .output()
        .unwrap();
    assert!(wrapped.status.success(), "openssl pkeyutl -encrypt");
    let mut infos: Vec<RecipientInfo> = aed.recip_infos.0.into_vec();
    let RecipientInfo::Ktri(ktri) = &mut infos[0] else {
        panic!("OpenSSL wrote a key-transport recipient")
    };
    ktri.enc_key = OctetString::new(wrapped.stdout).unwrap();
    aed.recip_infos = cms::enveloped_data::RecipientInfos(SetOfVec::try_from(infos).unwrap());

    let params = aed
        .auth_encrypted_content_info
        .content_enc_alg
        .parameters
        .as_ref()
        .unwrap()
        .to_der()
        .unwrap();
    let (nonce, tag_len) = unseal_core::content::gcm::parse_gcm_parameters(&params).unwrap();
    assert_eq!((nonce.len(), tag_len), (12, 16));
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).unwrap());
    let mut ct = plain.to_vec();
    let aad = attrs
        .as_ref()
        .map(|a| a.to_der().unwrap())
        .unwrap_or_default();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::try_assume_unique_for_key(&nonce).unwrap(),
            Aad::from(aad),
            &mut ct,
        )
        .unwrap();
    aed.auth_encrypted_content_info.encrypted_content = Some(OctetString::new(ct).unwrap());
    aed.mac = OctetString::new(tag.as_ref()).unwrap();
    aed.auth_attrs = attrs;
    Some((head, ci.content_type, aed))
}

/// The message of [`resealed`]'s parts.
fn reassembled(head: &[u8], content_type: ObjectIdentifier, aed: &AuthEnvelopedData) -> Vec<u8> {
    let ci = ContentInfo {
        content_type,
        content: Any::encode_from(aed).unwrap(),
    };
    message(head, &ci.to_der().unwrap())
}

/// An attribute with one value.
fn attr(oid: &str, value: Any) -> Attribute {
    Attribute {
        oid: ObjectIdentifier::new_unwrap(oid),
        values: SetOfVec::try_from(vec![value]).unwrap(),
    }
}

/// contentType (id-data) and signingTime: authAttrs as RFC 5083 has them.
fn two_attributes() -> SetOfVec<Attribute> {
    let data_oid = Any::encode_from(&ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1")).unwrap();
    let signing_time = Any::encode_from(
        &der::asn1::UtcTime::from_unix_duration(std::time::Duration::from_secs(1_800_000_000))
            .unwrap(),
    )
    .unwrap();
    SetOfVec::try_from(vec![
        attr("1.2.840.113549.1.9.3", data_oid),
        attr("1.2.840.113549.1.9.5", signing_time),
    ])
    .unwrap()
}

/// An AuthEnvelopedData whose authAttrs (the GCM additional data, RFC 5083 §2.1) follow the
/// content. OpenSSL writes none, so this one is assembled by [`resealed`]. It streams to the
/// in-memory answer, and attributes changed or dropped after sealing fail the tag either way,
/// with nothing written.
#[test]
fn gcm_authenticated_attributes_after_the_content_are_checked_when_streaming() {
    let ring = all_keys();
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mut plain = b"Content-Type: text/plain\r\n\r\n".to_vec();
    while plain.len() < 3_000_000 {
        plain.extend_from_slice(b"authenticated attributes follow this content\r\n");
    }
    let Some((head, content_type, aed)) = resealed(dir.path(), &plain, Some(two_attributes()))
    else {
        return;
    };
    let good = reassembled(&head, content_type, &aed);
    for provider in all_providers() {
        let dec = Decryptor::new(&ring, provider, spooled(spool.path())).unwrap();
        let (out, done, _) = streams_as_in_memory(&dec, &good, provider.name());
        assert!(out.ends_with(&plain[plain.len() - 100..]));
        assert_eq!(done.layer.plaintext_len, plain.len() as u64);
    }

    let dec = Decryptor::new(&ring, all_providers()[0], spooled(spool.path())).unwrap();
    let data_oid = Any::encode_from(&ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1")).unwrap();
    let mut changed = aed.clone();
    changed.auth_attrs =
        Some(SetOfVec::try_from(vec![attr("1.2.840.113549.1.9.3", data_oid)]).unwrap());
    let mut dropped = aed.clone();
    dropped.auth_attrs = None;
    for (what, aed) in [("changed", &changed), ("dropped", &dropped)] {
        let m = reassembled(&head, content_type, aed);
        fails_its_tag_with_nothing_written(&dec, &m, what);
    }
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
}

/// A DER TLV: the tag byte `tag` around `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let tag = der::Tag::from_der(&[tag]).unwrap();
    Any::new(tag, content.to_vec()).unwrap().to_der().unwrap()
}

/// The mac (and authAttrs) belong inside the AuthEnvelopedData SEQUENCE. Moved past its end,
/// into the ContentInfo's `[0]` or after the ContentInfo, the tag still matches, but the
/// envelope is malformed: the in-memory parser refuses it, and streaming must too, with
/// nothing written (else a message's fate would depend on its size).
#[test]
fn gcm_fields_outside_the_auth_enveloped_data_are_refused_either_way() {
    let ring = all_keys();
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let plain = b"Content-Type: text/plain\r\n\r\nthe mac moves\r\n";
    let Some((head, content_type, aed)) = resealed(dir.path(), plain, Some(two_attributes()))
    else {
        return;
    };
    let oid = content_type.to_der().unwrap();
    let mut fields = aed.version.to_der().unwrap();
    fields.extend(aed.recip_infos.to_der().unwrap());
    fields.extend(aed.auth_encrypted_content_info.to_der().unwrap());
    // authAttrs [1] IMPLICIT SET OF, and the mac.
    let mut attrs = aed.auth_attrs.as_ref().unwrap().to_der().unwrap();
    attrs[0] = 0xa1;
    let mac = aed.mac.to_der().unwrap();
    let content_info = |inside_seq: &[&[u8]], inside_explicit: &[&[u8]], after: &[&[u8]]| {
        let mut seq = fields.clone();
        seq.extend(inside_seq.concat());
        let mut explicit = tlv(0x30, &seq);
        explicit.extend(inside_explicit.concat());
        let mut ci = oid.clone();
        ci.extend(tlv(0xa0, &explicit));
        let mut der = tlv(0x30, &ci);
        der.extend(after.concat());
        message(&head, &der)
    };

    let dec = Decryptor::new(&ring, all_providers()[0], spooled(spool.path())).unwrap();
    // Assembled here the right way round, it opens (so what fails below is the placement).
    let good = content_info(&[&attrs, &mac], &[], &[]);
    let (out, _, _) = streams_as_in_memory(&dec, &good, "in place");
    assert!(out.ends_with(b"the mac moves\r\n"));

    for (what, m) in [
        ("mac in the [0]", content_info(&[&attrs], &[&mac], &[])),
        (
            "mac after the ContentInfo",
            content_info(&[&attrs], &[], &[&mac]),
        ),
        (
            "authAttrs and mac in the [0]",
            content_info(&[], &[&attrs, &mac], &[]),
        ),
    ] {
        let mut out = Vec::new();
        let streamed = streamed_into(&dec, &m, &mut out);
        assert!(
            !matches!(streamed, Ok(Some(_))),
            "{what}: streamed, but the mac is outside the AuthEnvelopedData"
        );
        assert!(out.is_empty(), "{what}: {} bytes written", out.len());
        let e = decrypt_message(&dec, &m, &opts()).expect_err(what);
        assert!(e.to_string().contains("mac"), "{what}: {e}");
    }
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
}

/// GCM may seal an empty plaintext (the tag alone authenticates the attributes): the content
/// is then done before a byte of it is read. It streams to the in-memory answer, with and
/// without authAttrs.
#[test]
fn an_empty_gcm_plaintext_streams_like_the_in_memory_path() {
    let ring = all_keys();
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let dec = Decryptor::new(&ring, all_providers()[0], spooled(spool.path())).unwrap();
    for attrs in [None, Some(two_attributes())] {
        let what = format!("authAttrs: {}", attrs.is_some());
        let Some((head, content_type, aed)) = resealed(dir.path(), b"", attrs) else {
            return;
        };
        let m = reassembled(&head, content_type, &aed);
        let (_, done, _) = streams_as_in_memory(&dec, &m, &what);
        assert_eq!(done.layer.plaintext_len, 0, "{what}");
    }
}

/// The content cipher must suit the envelope: AuthEnvelopedData under AES-CBC would be read
/// with nothing authenticated while claiming authenticity, and EnvelopedData has nowhere to
/// keep an AES-GCM tag. Both are refused by name, when scanned, in memory and streamed.
#[test]
fn a_cipher_that_does_not_suit_its_envelope_is_refused_either_way() {
    use cms::enveloped_data::EnvelopedData;
    use der::asn1::OctetString;
    use x509_cert::spki::AlgorithmIdentifierOwned;

    let read =
        |name: &str| body_der(&std::fs::read(fixtures().join("messages").join(name)).unwrap());
    let (head, der) = read("aes256-gcm.der.eml");
    let ci = ContentInfo::from_der(&der).unwrap();
    let mut aed: AuthEnvelopedData = ci.content.decode_as().unwrap();
    aed.auth_encrypted_content_info.content_enc_alg = AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42"),
        parameters: Some(Any::encode_from(&OctetString::new([7u8; 16]).unwrap()).unwrap()),
    };
    let auth_cbc = reassembled(&head, ci.content_type, &aed);

    let (head, der) = read("aes256-cbc.der.eml");
    let ci = ContentInfo::from_der(&der).unwrap();
    let mut ed: EnvelopedData = ci.content.decode_as().unwrap();
    // GCMParameters: a 12-byte nonce, the default 12-byte tag.
    let gcm_params = [&[0x30u8, 0x0e, 0x04, 0x0c][..], &[9u8; 12]].concat();
    ed.encrypted_content.content_enc_alg = AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.46"),
        parameters: Some(Any::from_der(&gcm_params).unwrap()),
    };
    let enveloped_gcm = message(
        &head,
        &ContentInfo {
            content_type: ci.content_type,
            content: Any::encode_from(&ed).unwrap(),
        }
        .to_der()
        .unwrap(),
    );

    let ring = all_keys();
    let spool = tempfile::tempdir().unwrap();
    let dec = Decryptor::new(&ring, all_providers()[0], spooled(spool.path())).unwrap();
    for (what, m, why) in [
        (
            "AES-256-CBC in authEnveloped-data",
            auth_cbc,
            "authenticates nothing",
        ),
        (
            "AES-256-GCM in enveloped-data",
            enveloped_gcm,
            "no mac field",
        ),
    ] {
        assert!(stream::prepare(&dec, &m).is_none(), "{what}: streamed");
        let e = decrypt_message(&dec, &m, &opts()).expect_err(what);
        assert!(e.to_string().contains(why), "{what}: {e}");
        let e = Decryptor::inspect_cms(&body_der(&m).1).expect_err(what);
        assert!(e.to_string().contains(why), "{what}: {e}");
    }
}

/// Base64 of `data` in 76-character lines, as MIME bodies carry it.
fn base64_lines(data: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::new();
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push_str("\r\n");
    }
    out
}

/// `data` in quoted-printable: printable ASCII but `=` as it is, the rest as `=XX`, with soft
/// line breaks every 72 characters.
fn qp(data: &[u8]) -> String {
    let mut out = String::new();
    let mut col = 0;
    for &b in data {
        let piece = if (33..=126).contains(&b) && b != b'=' {
            char::from(b).to_string()
        } else {
            format!("={b:02X}")
        };
        if col + piece.len() > 72 {
            out.push_str("=\r\n");
            col = 0;
        }
        col += piece.len();
        out.push_str(&piece);
    }
    out.push_str("\r\n");
    out
}

/// `data` uuencoded (`begin 644 name` ... `end`).
fn uuencode(name: &str, data: &[u8]) -> String {
    let enc = |v: u8| if v == 0 { '`' } else { char::from(v + 32) };
    let mut out = format!("begin 644 {name}\r\n");
    for line in data.chunks(45) {
        out.push(enc(line.len() as u8));
        for q in line.chunks(3) {
            let b = [q[0], *q.get(1).unwrap_or(&0), *q.get(2).unwrap_or(&0)];
            for v in [
                b[0] >> 2,
                (b[0] << 4 | b[1] >> 4) & 63,
                (b[1] << 2 | b[2] >> 6) & 63,
                b[2] & 63,
            ] {
                out.push(enc(v));
            }
        }
        out.push_str("\r\n");
    }
    out.push_str("`\r\nend\r\n");
    out
}

/// What the in-memory walk finds below a plaintext's surface (an envelope inside a base64
/// attachment that is not labelled S/MIME: a forwarded message, a quoted one, an archive; or
/// one uuencoded in a text part) must not pass through the stream unseen: the stream hands
/// the message back, and only the in-memory result counts. A plain base64 attachment of the
/// same shape still streams to the in-memory bytes.
#[test]
fn an_envelope_below_the_plaintexts_surface_hands_the_message_back() {
    let ring = all_keys();
    let dec = Decryptor::new(&ring, all_providers()[0], DecryptOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let Some(inner) = inner_message(dir.path()) else {
        return;
    };
    let (_, inner_der) = body_der(&inner);
    let gz = {
        let mut c = std::process::Command::new("gzip")
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip is installed with the system");
        use std::io::Write as _;
        c.stdin.take().unwrap().write_all(&inner_der).unwrap();
        c.wait_with_output().unwrap().stdout
    };
    let bom_pem = {
        let mut t = "\u{feff}Grüße, the key follows:\r\n-----BEGIN PKCS7-----\r\n"
            .as_bytes()
            .to_vec();
        t.extend_from_slice(base64_lines(&inner_der).as_bytes());
        t.extend_from_slice(b"-----END PKCS7-----\r\n");
        t
    };
    let zlib = {
        use std::io::Write as _;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&inner_der).unwrap();
        z.finish().unwrap()
    };
    let one_line = |d: &[u8]| {
        use base64::Engine as _;
        // Padded so that the line is longer than a mail line may be.
        let mut data = vec![0u8; 3000];
        data.extend_from_slice(d);
        format!(
            "{}\r\n",
            base64::engine::general_purpose::STANDARD.encode(data)
        )
    };
    let narrow = |d: &[u8]| {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(d);
        b64.as_bytes()
            .chunks(8)
            .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
            .collect::<String>()
    };
    let quoted: String = String::from_utf8_lossy(&inner)
        .lines()
        .map(|l| format!("> {l}\r\n"))
        .collect();
    let part = |ct: &str, cte: &str, body: &str| {
        format!(
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain\r\n\r\nsee below\r\n--b1\r\nContent-Type: {ct}\r\n\
Content-Transfer-Encoding: {cte}\r\n\r\n{body}\r\n--b1--\r\n"
        )
    };
    let hidden = [
        (
            "a forwarded S/MIME message",
            part(
                "application/octet-stream; name=\"fwd.eml\"",
                "base64",
                &base64_lines(&inner),
            ),
        ),
        (
            "an envelope attached under another label",
            part(
                "application/octet-stream; name=\"data.bin\"",
                "base64",
                &base64_lines(&inner_der),
            ),
        ),
        (
            "an archive holding an envelope",
            part(
                "application/octet-stream; name=\"x.gz\"",
                "base64",
                &base64_lines(&gz),
            ),
        ),
        (
            "a quoted S/MIME message in a base64 text",
            part("text/plain", "base64", &base64_lines(quoted.as_bytes())),
        ),
        (
            "a uuencoded envelope",
            part("text/plain", "7bit", &uuencode("x.p7m", &inner_der)),
        ),
        (
            "a PEM envelope in a text that starts with a byte-order mark",
            part("text/plain", "base64", &base64_lines(&bom_pem)),
        ),
        (
            "an envelope in base64 with a stray character after it",
            part(
                "application/octet-stream",
                "base64",
                &format!("{}A\r\n", base64_lines(&inner_der)),
            ),
        ),
        (
            "a zlib stream holding an envelope",
            part("application/octet-stream", "base64", &base64_lines(&zlib)),
        ),
        (
            "an envelope in base64 on one line",
            part("application/octet-stream", "base64", &one_line(&inner_der)),
        ),
        (
            "an envelope in quoted-printable",
            part(
                "application/octet-stream",
                "quoted-printable",
                &qp(&inner_der),
            ),
        ),
        (
            "an envelope in base64 of eight columns",
            part("application/octet-stream", "base64", &narrow(&inner_der)),
        ),
    ];
    for (what, plain) in &hidden {
        let Some(msg) = openssl_encrypt(dir.path(), "hidden", plain.as_bytes(), &[]) else {
            return;
        };
        match streamed(&dec, &msg) {
            Err(StreamError::Failed(e)) => {
                assert!(
                    e.to_string().contains("decrypt it in memory"),
                    "{what}: {e}"
                )
            }
            Ok(None) => {}
            Ok(Some(_)) => panic!("{what}: streamed past what the walk would look into"),
            Err(e) => panic!("{what}: {e}"),
        }
        // In memory the walk either opens the inner envelope too or fails the message.
        match decrypt_message(&dec, &msg, &opts()) {
            Ok(m) => assert_eq!(m.layers.len(), 2, "{what}"),
            Err(e) => assert!(e.to_string().contains("envelope"), "{what}: {e}"),
        }
    }
    // The same shape with nothing inside: streamed, and the bytes the walk writes.
    let benign: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let plain = part(
        "application/octet-stream; name=\"data.bin\"",
        "base64",
        &base64_lines(&benign),
    );
    let Some(msg) = openssl_encrypt(dir.path(), "benign", plain.as_bytes(), &[]) else {
        return;
    };
    streams_as_in_memory(&dec, &msg, "a plain base64 attachment");
    // An archive with nothing encrypted inside streams too (docx and xlsx are zip files): the
    // watch inflates it as the walk does.
    let gz_benign = {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&benign).unwrap();
        e.finish().unwrap()
    };
    let plain = part(
        "application/gzip; name=\"data.gz\"",
        "base64",
        &base64_lines(&gz_benign),
    );
    let Some(msg) = openssl_encrypt(dir.path(), "benign-gz", plain.as_bytes(), &[]) else {
        return;
    };
    streams_as_in_memory(&dec, &msg, "a gzip attachment");
}
