//! Prints docs/compatibility.md: what decrypts, by producer and algorithm, from the fixtures
//! (OpenSSL, gpgsm, pyca/cryptography) and the third-party corpora in ../shared/corpora.
//!
//!     cargo run -p unseal-core --all-features --example compatibility > docs/compatibility.md

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use unseal_core::keyring::KeyRing;
use unseal_core::mime::{MessageOptions, decrypt_message};
use unseal_core::provider::all_providers;
use unseal_core::{DecryptOptions, Decryptor};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn unarmour(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine;
    if !bytes.starts_with(b"-----") {
        return bytes.to_vec();
    }
    let text = String::from_utf8_lossy(bytes);
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':'))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap_or_default()
}

/// Decrypts one file: a message through the MIME layer, anything else as a raw CMS blob.
/// Returns the number of envelopes opened and the plaintext/output.
fn open(dec: &Decryptor, bytes: &[u8], is_message: bool) -> Result<(usize, Vec<u8>), String> {
    if is_message {
        let o =
            decrypt_message(dec, bytes, &MessageOptions::default()).map_err(|e| e.to_string())?;
        Ok((o.layers.len(), o.output.unwrap_or_default()))
    } else {
        let mut out = Vec::new();
        dec.decrypt_cms_with(&unarmour(bytes), &mut out, false)
            .map_err(|e| e.to_string())?;
        Ok((1, out))
    }
}

fn fixtures_table() {
    let fx = root().join("fixtures");
    let pw = std::fs::read_to_string(fx.join("keys/password.txt")).unwrap_or_default();
    let pw = pw.lines().next().unwrap_or("").to_string();
    let mut ring = KeyRing::new();
    for name in [
        "rsa1024", "rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384", "ec-p521",
    ] {
        let _ = ring.load_file(&fx.join(format!("keys/{name}.key.pem")), Some(&pw));
        let _ = ring.add_certificates_file(&fx.join(format!("keys/{name}.cert.pem")));
    }
    let index = std::fs::read_to_string(fx.join("index.tsv")).unwrap_or_default();
    // (producer, cipher, transport) -> per provider (ok, total), plus notes of failures
    let mut table: BTreeMap<(String, String, String), Vec<(usize, usize)>> = BTreeMap::new();
    let mut failures = Vec::new();
    let providers = all_providers();
    for line in index.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 9 || f[2] == "-" {
            continue;
        }
        let (message, format, expected) = (f[0], f[1], f[4]);
        let key = (f[7].to_string(), f[5].to_string(), f[6].to_string());
        let bytes = std::fs::read(fx.join(message)).unwrap_or_default();
        // For an envelope inside an envelope the output holds the innermost plaintext.
        let expected = if f[8] == "env(env)" {
            expected.replace(".out", ".inner")
        } else {
            expected.to_string()
        };
        let exp = std::fs::read(fx.join(&expected)).ok();
        let cells = table
            .entry(key)
            .or_insert_with(|| vec![(0, 0); providers.len()]);
        for (i, p) in providers.iter().enumerate() {
            let dec = Decryptor::new(&ring, *p, DecryptOptions::default()).expect("decryptor");
            cells[i].1 += 1;
            match open(&dec, &bytes, format == "eml") {
                Ok((_, out)) if exp.as_ref().is_none_or(|e| contains(&out, e)) => cells[i].0 += 1,
                Ok(_) => failures.push(format!("{message} [{}]: output differs", p.name())),
                Err(e) => failures.push(format!("{message} [{}]: {e}", p.name())),
            }
        }
    }
    println!("## Fixtures (made by third-party tools, `fixtures/index.tsv`)\n");
    print!("| producer | content cipher | key transport |");
    for p in &providers {
        print!(" {} |", p.name());
    }
    println!();
    print!("|---|---|---|");
    for _ in &providers {
        print!("---|");
    }
    println!();
    for ((producer, cipher, transport), cells) in &table {
        print!(
            "| {producer} | {cipher} | {} |",
            transport.replace('|', "/")
        );
        for (ok, total) in cells {
            print!(" {ok}/{total} |");
        }
        println!();
    }
    if failures.is_empty() {
        println!("\nEvery fixture above decrypts with every provider.");
    } else {
        println!("\nNot decrypted:\n");
        for f in &failures {
            println!("- {f}");
        }
    }
}

fn corpora_table() {
    let c = std::env::var_os("UNSEAL_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/corpora"));
    println!("\n## Third-party corpora (`../shared/corpora`)\n");
    if !c.is_dir() {
        println!("(corpora folder absent when this was generated)");
        return;
    }
    let mut ring = KeyRing::new();
    let keys: &[(&str, Option<&str>)] = &[
        (
            "thunderbird-smime/mailnews-test-data-smime/Bob.p12",
            Some("nss"),
        ),
        ("thunderbird-smime/legacy-2019-keys/Bob.p12", Some("")),
        ("thunderbird-smime/legacy-2023-keys/Bob.p12", Some("nss")),
        (
            "simple-java-mail/pkcs12/smime_test_user.p12",
            Some("letmein"),
        ),
        ("pyca-cryptography-pkcs7/x509-custom-ca/rsa_key.pem", None),
        (
            "pyca-cryptography-pkcs7/_derived/keys/lamps-draft-bob.key.pem",
            None,
        ),
        ("rfc4134/extracted/BobPrivRSAEncrypt.pri", None),
        (
            "gnupg-gpgsm-tests/_derived/keys/gpgsm-test-cert-1.key.pem",
            None,
        ),
    ];
    for (k, pw) in keys {
        let _ = ring.load_file(&c.join(k), *pw);
    }
    for cert in [
        "pyca-cryptography-pkcs7/x509-custom-ca/rsa_ca.pem",
        "pyca-cryptography-pkcs7/_derived/keys/lamps-draft-bob.cert.pem",
        "rfc4134/extracted/BobRSASignByCarl.cer",
    ] {
        let _ = ring.add_certificates_file(&c.join(cert));
    }
    // gpgsm's test key comes without its certificate: only --try-all-keys can use it.
    let opts = DecryptOptions {
        try_all_keys: true,
        ..DecryptOptions::default()
    };
    let dec = Decryptor::new(&ring, all_providers()[0], opts).expect("decryptor");
    let sets: &[(&str, &str, &[&str])] = &[
        (
            "Thunderbird / NSS",
            "thunderbird-smime",
            &[
                "mailnews-test-data-smime",
                "mailnews-test-data-smime-manual",
                "mail-test-browser-smime-data",
            ],
        ),
        (
            "simple-java-mail (Thunderbird 52)",
            "simple-java-mail",
            &["pkcs12/test messages"],
        ),
        (
            "pyca/cryptography",
            "pyca-cryptography-pkcs7",
            &["vectors-pkcs7"],
        ),
        ("RFC 4134", "rfc4134", &["extracted"]),
        ("GnuPG gpgsm", "gnupg-gpgsm-tests", &["tests-gpgsm"]),
    ];
    println!(
        "| corpus | files holding an envelope | files decrypted | envelopes opened | not opened |"
    );
    println!("|---|---|---|---|---|");
    for (label, dir, subdirs) in sets {
        let (mut files, mut ok, mut envs) = (0, 0, 0);
        let mut bad = Vec::new();
        for sub in *subdirs {
            let Ok(rd) = std::fs::read_dir(c.join(dir).join(sub)) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths {
                let name = p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                let Ok(bytes) = std::fs::read(&p) else {
                    continue;
                };
                let is_message = name.ends_with(".eml") || name.ends_with(".txt");
                let raw = unarmour(&bytes);
                let is_env = if is_message {
                    unseal_core::mime::find_envelopes(&bytes, &MessageOptions::default())
                        .is_ok_and(|v| !v.is_empty())
                } else {
                    Decryptor::inspect_cms(&raw).is_ok()
                };
                if !is_env {
                    continue;
                }
                files += 1;
                let check_mime = !matches!(
                    *dir,
                    "pyca-cryptography-pkcs7" | "rfc4134" | "gnupg-gpgsm-tests"
                );
                let r = if is_message {
                    open(&dec, &bytes, true)
                } else {
                    let mut out = Vec::new();
                    dec.decrypt_cms_with(&raw, &mut out, check_mime)
                        .map(|_| (1, out))
                        .map_err(|e| e.to_string())
                };
                match r {
                    Ok((n, _)) => {
                        ok += 1;
                        envs += n;
                    }
                    Err(e) => bad.push(format!("{name}: {e}")),
                }
            }
        }
        println!(
            "| {label} | {files} | {ok} | {envs} | {} |",
            if bad.is_empty() {
                "—".into()
            } else {
                bad.join("; ")
            }
        );
    }
}

fn main() {
    println!("# Compatibility\n");
    println!("What unseal decrypts, by producer and algorithm. Generated by");
    println!(
        "`cargo run -p unseal-core --all-features --example compatibility > docs/compatibility.md`;"
    );
    println!(
        "every cell is a real decryption compared with the producer's plaintext (fixtures) or a"
    );
    println!(
        "successful decryption of every envelope in the file (corpora; their expected plaintexts are"
    );
    println!("compared byte for byte in `crates/core/tests/{{corpora,mime_corpus}}.rs`).\n");
    fixtures_table();
    corpora_table();
    // Envelopes nobody has the key to: what a test checks of them instead.
    println!("\n## Also read (no key exists)\n");
    println!(
        "MimeKit's 1996–97 Netscape mbox (`mimekit-testdata/mbox/content-length.mbox.txt`): six messages hold\n\
         envelopes (3DES and RC2, `application/x-pkcs7-mime` without `smime-type`, one with the odd RC2 version\n\
         byte 0xC4); `scan` lists their recipients, and without keys they are reported `no_key`\n\
         (`crates/core/tests/mime_corpus.rs::netscape_1996_mbox_envelopes_without_smime_type`)."
    );
}
