//! Key ring: every corpus key format loads, errors are classified, keys from different
//! encodings come out as the same canonical PKCS#8, and recipient lookup finds the right key.
//! OpenSSL (when installed) is the oracle for serials/subjects and converts keys between formats.

use std::path::{Path, PathBuf};
use std::process::Command;
use unseal_core::cms::RecipientId;
use unseal_core::cms::recipient::hex;
use unseal_core::keyring::{KeyMaterial, KeyRing};
use unseal_core::provider::default_provider;
use unseal_core::{Error, KeyProblem};

fn corpora() -> Option<PathBuf> {
    let p = match std::env::var_os("UNSEAL_CORPORA") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"),
    };
    if p.is_dir() {
        Some(p)
    } else {
        println!("skipping: corpora not found at {}", p.display());
        None
    }
}

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn openssl(args: &[&str]) -> Option<String> {
    let o = Command::new("openssl").args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn problem(r: Result<impl std::fmt::Debug, Error>) -> KeyProblem {
    match r {
        Err(Error::Key { reason, .. }) => reason,
        other => panic!("expected a key error, got {other:?}"),
    }
}

fn load(path: &Path, pw: Option<&str>) -> KeyRing {
    let mut r = KeyRing::new();
    let rep = r
        .load_file(path, pw)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(rep.keys_added >= 1, "{}: {rep:?}", path.display());
    r
}

/// The providers must accept every key the ring hands out.
fn assert_usable(r: &KeyRing) {
    for k in r.keys() {
        match &k.material {
            // aws-lc refuses RSA keys under 2048 bits ("TooSmall"); that is the provider's business.
            KeyMaterial::Rsa { bits, .. } if *bits < 2048 => {}
            KeyMaterial::Rsa { pkcs8_der, bits } => {
                let key = default_provider()
                    .rsa_private_key(pkcs8_der)
                    .expect("provider parses RSA PKCS#8");
                assert_eq!(key.size_bytes() * 8, bits.div_ceil(8) * 8, "{}", k.source);
            }
            KeyMaterial::Ec { curve, pkcs8_der } => {
                let key = default_provider()
                    .ec_private_key(*curve, pkcs8_der)
                    .expect("provider parses EC PKCS#8");
                assert_eq!(key.curve(), *curve);
            }
        }
        assert_eq!(k.key_id_sha1.len(), 20);
    }
}

struct P12Case {
    path: &'static str,
    password: Option<&'static str>,
    algorithm: &'static str,
    subject_has: &'static str,
    /// openssl-extracted certificate of the key (serial/subject oracle) and key (same PKCS#8).
    derived: Option<(&'static str, &'static str)>,
}

const P12: &[P12Case] = &[
    P12Case {
        path: "thunderbird-smime/mailnews-test-data-smime/Bob.p12",
        password: Some("nss"),
        algorithm: "RSA-2048",
        subject_has: "CN=Bob",
        derived: Some((
            "thunderbird-smime/_derived/keys/Bob.cert.pem",
            "thunderbird-smime/_derived/keys/Bob.key.pem",
        )),
    },
    P12Case {
        path: "thunderbird-smime/mailnews-test-data-smime/Alice.p12",
        password: Some("nss"),
        algorithm: "RSA-2048",
        subject_has: "CN=Alice",
        derived: Some((
            "thunderbird-smime/_derived/keys/Alice.cert.pem",
            "thunderbird-smime/_derived/keys/Alice.key.pem",
        )),
    },
    P12Case {
        path: "thunderbird-smime/mailnews-test-data-smime/Alice-ec.p12",
        password: Some("nss"),
        algorithm: "EC P-384",
        subject_has: "CN=Alice",
        derived: Some((
            "thunderbird-smime/_derived/keys/Alice-ec.cert.pem",
            "thunderbird-smime/_derived/keys/Alice-ec.key.pem",
        )),
    },
    P12Case {
        path: "thunderbird-smime/mailnews-test-data-smime/Fran.p12",
        password: Some("nss"),
        algorithm: "RSA-2048",
        subject_has: "CN=Fran",
        derived: Some((
            "thunderbird-smime/_derived/keys/Fran.cert.pem",
            "thunderbird-smime/_derived/keys/Fran.key.pem",
        )),
    },
    P12Case {
        path: "thunderbird-smime/mailnews-test-data-smime/Fran-ec.p12",
        password: Some("nss"),
        algorithm: "EC P-384",
        subject_has: "CN=Fran",
        derived: Some((
            "thunderbird-smime/_derived/keys/Fran-ec.cert.pem",
            "thunderbird-smime/_derived/keys/Fran-ec.key.pem",
        )),
    },
    P12Case {
        path: "thunderbird-smime/legacy-2019-keys/Bob.p12",
        password: None,
        algorithm: "RSA-2048",
        subject_has: "CN=Bob",
        derived: Some((
            "thunderbird-smime/_derived/legacy-keys/Bob.cert.pem",
            "thunderbird-smime/_derived/legacy-keys/Bob.key.pem",
        )),
    },
    P12Case {
        path: "thunderbird-smime/legacy-2019-keys/Alice.p12",
        password: Some(""),
        algorithm: "RSA-2048",
        subject_has: "CN=Alice",
        derived: None,
    },
    P12Case {
        path: "thunderbird-smime/legacy-2023-keys/Bob.p12",
        password: Some("nss"),
        algorithm: "RSA-2048",
        subject_has: "CN=Bob",
        derived: Some((
            "thunderbird-smime/_derived/legacy2023-keys/Bob.cert.pem",
            "thunderbird-smime/_derived/legacy2023-keys/Bob.key.pem",
        )),
    },
    P12Case {
        path: "simple-java-mail/pkcs12/smime_test_user.p12",
        password: Some("letmein"),
        algorithm: "RSA-4096",
        subject_has: "CN=Benny Bottema",
        derived: Some((
            "simple-java-mail/_derived/keys/smime_test_user.cert.pem",
            "simple-java-mail/_derived/keys/smime_test_user.key.pem",
        )),
    },
    P12Case {
        path: "simple-java-mail/spring-module-pkcs12/smime_keystore.pkcs12",
        password: Some("letmein"),
        algorithm: "RSA-4096",
        subject_has: "CN=Benny Bottema",
        derived: None,
    },
    P12Case {
        path: "mimekit-testdata/smime/rsa/smime.pfx",
        password: Some("no.secret"),
        algorithm: "RSA-4096",
        subject_has: "CN=MimeKit UnitTests",
        derived: None,
    },
    P12Case {
        path: "mimekit-testdata/smime/ec/smime.pfx",
        password: Some("no.secret"),
        algorithm: "EC P-384",
        subject_has: "CN=MimeKit UnitTests",
        derived: None,
    },
];

#[test]
fn corpus_pkcs12_files_load_with_their_passwords() {
    let Some(root) = corpora() else { return };
    let oracle = have_openssl();
    for case in P12 {
        let path = root.join(case.path);
        let r = load(&path, case.password);
        assert_eq!(r.len(), 1, "{}", case.path);
        let k = &r.keys()[0];
        assert_eq!(k.material.algorithm(), case.algorithm, "{}", case.path);
        // Only the certificate whose public key is the key's attaches (not the CA chain).
        assert_eq!(k.certs.len(), 1, "{}: {:?}", case.path, k.certs);
        let c = &k.certs[0];
        assert!(
            c.subject.contains(case.subject_has),
            "{}: {}",
            case.path,
            c.subject
        );
        assert_eq!(c.key_algorithm, case.algorithm);
        assert!(k.description().contains(case.subject_has));
        assert_usable(&r);

        let Some((cert_pem, key_pem)) = case.derived else {
            continue;
        };
        // Same key as OpenSSL extracted: identical canonical PKCS#8.
        let plain = load(&root.join(key_pem), None);
        assert_eq!(
            plain.keys()[0].material.pkcs8_der(),
            k.material.pkcs8_der(),
            "{}",
            case.path
        );
        assert_eq!(plain.keys()[0].spki_der, k.spki_der);
        if oracle {
            let out = openssl(&[
                "x509",
                "-in",
                root.join(cert_pem).to_str().unwrap(),
                "-noout",
                "-serial",
            ])
            .expect("openssl x509 -serial");
            let serial = out
                .trim()
                .trim_start_matches("serial=")
                .trim_start_matches('0');
            assert_eq!(
                hex(&c.serial).trim_start_matches('0'),
                serial,
                "{}",
                case.path
            );
            // The certificate bytes are the ones OpenSSL extracted (compared by fingerprint).
            let fp = openssl(&[
                "x509",
                "-in",
                root.join(cert_pem).to_str().unwrap(),
                "-noout",
                "-fingerprint",
                "-sha1",
            ])
            .unwrap();
            let fp: String = fp.split('=').nth(1).unwrap().trim().replace(':', "");
            use sha1::Digest;
            assert_eq!(hex(&sha1::Sha1::digest(&c.der)), fp, "{}", case.path);
        }
    }
}

#[test]
fn expired_legacy_certificate_is_a_warning() {
    let Some(root) = corpora() else { return };
    let mut r = KeyRing::new();
    let rep = r
        .load_file(
            &root.join("thunderbird-smime/legacy-2019-keys/Bob.p12"),
            None,
        )
        .unwrap();
    assert_eq!(rep.keys_added, 1);
    assert!(
        rep.warnings
            .iter()
            .any(|w| w.contains("expired 2024-07-03") && w.contains("CN=Bob")),
        "{rep:?}"
    );
    assert!(r.keys()[0].description().contains("expired 2024-07-03"));
}

#[test]
fn corpus_pem_and_der_keys_load() {
    let Some(root) = corpora() else { return };
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "simple-java-mail/pkcs12/smime_test_user.key",
            Some("letmein"),
            "RSA-4096",
        ),
        ("rfc4134/extracted/BobPrivRSAEncrypt.pri", None, "RSA-1024"),
        (
            "pyca-cryptography-pkcs7/x509-custom-ca/rsa_key.pem",
            None,
            "RSA-4096",
        ),
        (
            "gnupg-gpgsm-tests/_derived/keys/gpgsm-test-cert-1.key.pem",
            None,
            "RSA-1024",
        ),
        ("mimekit-testdata/smime/smec1.pem", None, "EC P-256"),
        ("mimekit-testdata/smime/smrsa1.pem", None, "RSA-2048"),
        ("mimekit-testdata/smime/ec/smime.key", None, "EC P-384"),
    ];
    for (f, pw, alg) in cases {
        let r = load(&root.join(f), *pw);
        assert_eq!(r.len(), 1, "{f}");
        assert_eq!(r.keys()[0].material.algorithm(), *alg, "{f}");
        assert_usable(&r);
    }
    // Legacy-encrypted PKCS#1 PEM is the same key as the p12 and OpenSSL's extraction.
    let a = load(
        &root.join("simple-java-mail/pkcs12/smime_test_user.key"),
        Some("letmein"),
    );
    let b = load(
        &root.join("simple-java-mail/_derived/keys/smime_test_user.key.pem"),
        None,
    );
    assert_eq!(
        a.keys()[0].material.pkcs8_der(),
        b.keys()[0].material.pkcs8_der()
    );
    // Key + certificate in one PEM file attach to each other.
    let r = load(&root.join("mimekit-testdata/smime/smrsa1.pem"), None);
    assert_eq!(r.keys()[0].certs.len(), 1);
    // rfc4134: PKCS#8 DER key + separate DER certificate.
    let mut r = load(&root.join("rfc4134/extracted/BobPrivRSAEncrypt.pri"), None);
    assert_eq!(
        r.add_certificates_file(&root.join("rfc4134/extracted/BobRSASignByCarl.cer"))
            .unwrap(),
        1
    );
    let c = &r.keys()[0].certs[0];
    assert_eq!(hex(&c.serial), "46346BC7800056BC11D36E2ECD5D71D0");
    assert!(c.issuer.contains("CN=CarlRSA"), "{}", c.issuer);
}

#[test]
fn wrong_and_missing_passwords_are_classified() {
    let Some(root) = corpora() else { return };
    let bob = root.join("thunderbird-smime/mailnews-test-data-smime/Bob.p12");
    let mut r = KeyRing::new();
    assert_eq!(
        problem(r.load_file(&bob, Some("wrong"))),
        KeyProblem::WrongPassword
    );
    assert_eq!(problem(r.load_file(&bob, None)), KeyProblem::NeedsPassword);
    assert_eq!(
        problem(r.load_file(&bob, Some(""))),
        KeyProblem::NeedsPassword
    );
    let legacy_pem = root.join("simple-java-mail/pkcs12/smime_test_user.key");
    assert_eq!(
        problem(r.load_file(&legacy_pem, Some("wrong"))),
        KeyProblem::WrongPassword
    );
    assert_eq!(
        problem(r.load_file(&legacy_pem, None)),
        KeyProblem::NeedsPassword
    );
    let legacy_p12 = root.join("simple-java-mail/pkcs12/smime_test_user.p12");
    assert_eq!(
        problem(r.load_file(&legacy_p12, Some("letmeout"))),
        KeyProblem::WrongPassword
    );
    assert!(r.is_empty(), "failed loads must not add anything");
    // Errors never carry the password.
    let e = r
        .load_file(&bob, Some("hunter2-secret"))
        .unwrap_err()
        .to_string();
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn truncated_and_garbage_files_are_corrupt_not_panics() {
    let Some(root) = corpora() else { return };
    for f in [
        "thunderbird-smime/mailnews-test-data-smime/Bob.p12",
        "simple-java-mail/pkcs12/smime_keystore.pkcs12",
        "rfc4134/extracted/BobPrivRSAEncrypt.pri",
    ] {
        let data = std::fs::read(root.join(f)).unwrap();
        for cut in (1..data.len())
            .step_by(7)
            .chain([data.len() - 1, data.len() / 2])
        {
            let mut r = KeyRing::new();
            let res = r.load_bytes(f, &data[..cut], Some("nss"));
            assert!(res.is_err(), "{f} cut at {cut} loaded");
            assert_eq!(problem(res), KeyProblem::Corrupt, "{f} cut at {cut}");
        }
        // Flipped bytes: any classification, never a panic.
        for i in (0..data.len()).step_by(13) {
            let mut d = data.clone();
            d[i] ^= 0x5a;
            let _ = KeyRing::new().load_bytes(f, &d, Some("letmein"));
        }
    }
    let mut r = KeyRing::new();
    for junk in [
        &b""[..],
        b"hello world",
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        &[0xff; 64],
    ] {
        assert_eq!(
            problem(r.load_bytes("junk", junk, None)),
            KeyProblem::Corrupt
        );
    }
    assert_eq!(
        problem(r.load_bytes(
            "x.pem",
            b"-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
            None
        )),
        KeyProblem::Corrupt
    );
}

#[test]
fn dsa_is_skipped_or_unsupported() {
    let Some(root) = corpora() else { return };
    let mut r = KeyRing::new();
    // A keystore with an RSA and a DSA key: the RSA key loads, the DSA key is a warning.
    let rep = r
        .load_file(
            &root.join("simple-java-mail/pkcs12/smime_keystore.pkcs12"),
            Some("letmein"),
        )
        .unwrap();
    assert_eq!(rep.keys_added, 1);
    assert!(rep.warnings.iter().any(|w| w.contains("DSA")), "{rep:?}");
    for (f, pw) in [
        ("mimekit-testdata/smime/dsa/smime.pfx", Some("no.secret")),
        ("rfc4134/extracted/AlicePrivDSSSign.pri", None),
        ("mimekit-testdata/smime/smdsa1.pem", None),
    ] {
        assert_eq!(
            problem(r.load_file(&root.join(f), pw)),
            KeyProblem::Unsupported,
            "{f}"
        );
    }
}

#[test]
fn lookup_by_issuer_serial_ski_and_key_id() {
    let Some(root) = corpora() else { return };
    let mut r = KeyRing::new();
    r.load_file(
        &root.join("thunderbird-smime/mailnews-test-data-smime/Alice.p12"),
        Some("nss"),
    )
    .unwrap();
    r.load_file(
        &root.join("thunderbird-smime/mailnews-test-data-smime/Bob.p12"),
        Some("nss"),
    )
    .unwrap();
    r.load_file(&root.join("rfc4134/extracted/BobPrivRSAEncrypt.pri"), None)
        .unwrap();
    assert_eq!(r.len(), 3);
    let bob = r
        .keys()
        .iter()
        .position(|k| k.certs.iter().any(|c| c.subject.contains("CN=Bob")))
        .unwrap();
    let c = r.keys()[bob].certs[0].clone();
    let id = RecipientId::IssuerSerial {
        issuer_der: c.issuer_der.clone(),
        serial: c.serial.clone(),
    };
    assert_eq!(r.lookup(&id), vec![bob]);
    // A serial written with a sign byte still matches.
    let mut padded = vec![0];
    padded.extend_from_slice(&c.serial);
    let id0 = RecipientId::IssuerSerial {
        issuer_der: c.issuer_der.clone(),
        serial: padded,
    };
    assert_eq!(r.lookup(&id0), vec![bob]);
    // Same issuer, other serial: no match.
    let other = RecipientId::IssuerSerial {
        issuer_der: c.issuer_der.clone(),
        serial: vec![0x7f, 0x7f],
    };
    assert!(r.lookup(&other).is_empty());
    if let Some(ski) = &c.ski {
        assert_eq!(r.lookup(&RecipientId::SubjectKeyId(ski.clone())), vec![bob]);
    }
    // The key without certificate is found by its SHA-1 key identifier.
    let lone = r.keys().iter().position(|k| k.certs.is_empty()).unwrap();
    let kid = r.keys()[lone].key_id_sha1.clone();
    assert_eq!(r.lookup(&RecipientId::SubjectKeyId(kid)), vec![lone]);
    assert_eq!(r.describe(&id).as_deref(), Some(c.subject.as_str()));
}

#[test]
fn certificates_attach_in_any_order_and_duplicates_merge() {
    let Some(root) = corpora() else { return };
    let cert = root.join("thunderbird-smime/_derived/keys/Bob.cert.pem");
    let key = root.join("thunderbird-smime/_derived/keys/Bob.key.pem");
    let p12 = root.join("thunderbird-smime/mailnews-test-data-smime/Bob.p12");

    // Certificate first: kept without key, describes the recipient, attaches when the key comes.
    let mut r = KeyRing::new();
    assert_eq!(r.add_certificates_file(&cert).unwrap(), 1);
    assert!(r.is_empty());
    let r2 = {
        let mut r2 = KeyRing::new();
        r2.add_certificates_file(&cert).unwrap();
        r2
    };
    let c = {
        let mut tmp = KeyRing::new();
        tmp.load_file(&p12, Some("nss")).unwrap();
        tmp.keys()[0].certs[0].clone()
    };
    let id = RecipientId::IssuerSerial {
        issuer_der: c.issuer_der.clone(),
        serial: c.serial.clone(),
    };
    assert!(r2.lookup(&id).is_empty(), "no key yet");
    assert!(r2.describe(&id).unwrap().contains("CN=Bob"));
    let rep = r.load_file(&key, None).unwrap();
    assert_eq!(rep.keys_added, 1);
    assert_eq!(r.keys()[0].certs.len(), 1);
    assert_eq!(r.lookup(&id), vec![0]);

    // Key first, certificate later.
    let mut r = KeyRing::new();
    r.load_file(&key, None).unwrap();
    assert!(r.lookup(&id).is_empty());
    r.add_certificates_file(&cert).unwrap();
    assert_eq!(r.lookup(&id), vec![0]);

    // The same key from .pem and .p12: one entry, certificates unioned, no duplicates.
    let mut r = KeyRing::new();
    r.load_file(&key, None).unwrap();
    let rep = r.load_file(&p12, Some("nss")).unwrap();
    assert_eq!(rep.keys_added, 0);
    assert!(
        rep.warnings.iter().any(|w| w.contains("duplicate")),
        "{rep:?}"
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r.keys()[0].certs.len(), 1);
    r.add_certificates_file(&cert).unwrap();
    assert_eq!(r.keys()[0].certs.len(), 1);
}

/// OpenSSL converts one corpus key into every format; all must give the same PKCS#8.
#[test]
fn all_encodings_of_a_key_give_the_same_pkcs8() {
    let Some(root) = corpora() else { return };
    if !have_openssl() {
        println!("skipping: openssl not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let rsa = root.join("thunderbird-smime/_derived/keys/Bob.key.pem");
    let rsa_s = rsa.to_str().unwrap();
    let ec = root.join("mimekit-testdata/smime/smec1.pem");
    let ec_s = ec.to_str().unwrap();
    let pw = "pass:unseal-test";
    let runs: &[&[&str]] = &[
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            rsa_s,
            "-outform",
            "DER",
            "-out",
            &d("rsa.der"),
        ],
        &[
            "rsa",
            "-in",
            rsa_s,
            "-traditional",
            "-out",
            &d("rsa.pkcs1.pem"),
        ],
        &[
            "rsa",
            "-in",
            rsa_s,
            "-traditional",
            "-outform",
            "DER",
            "-out",
            &d("rsa.pkcs1.der"),
        ],
        &[
            "rsa",
            "-in",
            rsa_s,
            "-traditional",
            "-des3",
            "-passout",
            pw,
            "-out",
            &d("rsa.pkcs1-des3.pem"),
        ],
        &[
            "rsa",
            "-in",
            rsa_s,
            "-traditional",
            "-aes256",
            "-passout",
            pw,
            "-out",
            &d("rsa.pkcs1-aes.pem"),
        ],
        &[
            "pkcs8",
            "-topk8",
            "-in",
            rsa_s,
            "-passout",
            pw,
            "-out",
            &d("rsa.enc.pem"),
        ],
        &[
            "pkcs8",
            "-topk8",
            "-in",
            rsa_s,
            "-passout",
            pw,
            "-outform",
            "DER",
            "-out",
            &d("rsa.enc.der"),
        ],
        &[
            "pkcs8",
            "-topk8",
            "-in",
            rsa_s,
            "-v1",
            "PBE-SHA1-3DES",
            "-passout",
            pw,
            "-out",
            &d("rsa.pbes1.pem"),
        ],
        &[
            "pkcs12",
            "-export",
            "-nocerts",
            "-inkey",
            rsa_s,
            "-passout",
            pw,
            "-out",
            &d("rsa.p12"),
        ],
        &["pkey", "-in", ec_s, "-out", &d("ec.pk8.pem")],
        &["ec", "-in", ec_s, "-out", &d("ec.sec1.pem")],
        &[
            "ec",
            "-in",
            ec_s,
            "-outform",
            "DER",
            "-out",
            &d("ec.sec1.der"),
        ],
        &[
            "ec",
            "-in",
            ec_s,
            "-aes128",
            "-passout",
            pw,
            "-out",
            &d("ec.sec1-aes.pem"),
        ],
        &[
            "pkcs8",
            "-topk8",
            "-in",
            ec_s,
            "-passout",
            pw,
            "-out",
            &d("ec.enc.pem"),
        ],
    ];
    for args in runs {
        openssl(args).unwrap_or_else(|| panic!("openssl {args:?} failed"));
    }
    let reference = load(&rsa, None).keys()[0].material.pkcs8_der().to_vec();
    // OpenSSL's own unencrypted PKCS#8 DER is byte-identical to the canonical form.
    assert_eq!(std::fs::read(d("rsa.der")).unwrap(), reference);
    for f in [
        "rsa.der",
        "rsa.pkcs1.pem",
        "rsa.pkcs1.der",
        "rsa.pkcs1-des3.pem",
        "rsa.pkcs1-aes.pem",
        "rsa.enc.pem",
        "rsa.enc.der",
        "rsa.pbes1.pem",
        "rsa.p12",
    ] {
        let r = load(Path::new(&d(f)), Some("unseal-test"));
        assert_eq!(r.keys()[0].material.pkcs8_der(), &reference[..], "{f}");
        if f.contains("enc")
            || f.contains("des3")
            || f.contains("-aes")
            || f.contains("pbes1")
            || f.ends_with("p12")
        {
            assert_eq!(
                problem(KeyRing::new().load_file(Path::new(&d(f)), Some("nope"))),
                KeyProblem::WrongPassword,
                "{f}"
            );
        }
    }
    let ec_ref = load(Path::new(&d("ec.pk8.pem")), None);
    let ec_ref = ec_ref.keys()[0].material.pkcs8_der().to_vec();
    let openssl_der = openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        ec_s,
        "-outform",
        "DER",
        "-out",
        &d("ec.der"),
    ]);
    assert!(openssl_der.is_some());
    assert_eq!(
        std::fs::read(d("ec.der")).unwrap(),
        ec_ref,
        "canonical EC PKCS#8 = OpenSSL's"
    );
    for f in [
        "ec.sec1.pem",
        "ec.sec1.der",
        "ec.sec1-aes.pem",
        "ec.enc.pem",
    ] {
        let r = load(Path::new(&d(f)), Some("unseal-test"));
        assert_eq!(r.keys()[0].material.pkcs8_der(), &ec_ref[..], "{f}");
        assert_usable(&r);
    }
}

#[test]
fn cert_only_pkcs12_is_no_private_key() {
    let Some(root) = corpora() else { return };
    if !have_openssl() {
        println!("skipping: openssl not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certonly.p12");
    let cert = root.join("thunderbird-smime/_derived/keys/Bob.cert.pem");
    openssl(&[
        "pkcs12",
        "-export",
        "-nokeys",
        "-in",
        cert.to_str().unwrap(),
        "-passout",
        "pass:unseal-test",
        "-out",
        out.to_str().unwrap(),
    ])
    .expect("openssl pkcs12 -nokeys");
    let mut r = KeyRing::new();
    assert_eq!(
        problem(r.load_file(&out, Some("unseal-test"))),
        KeyProblem::NoPrivateKey
    );
    // A PEM certificate given as a key file is NoPrivateKey as well.
    assert_eq!(problem(r.load_file(&cert, None)), KeyProblem::NoPrivateKey);
}

/// Fixtures from the fixture generator, when present.
#[test]
fn generated_fixture_keys_load() {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/keys");
    let Ok(dir) = std::fs::read_dir(&keys) else {
        println!("skipping: no fixtures/keys");
        return;
    };
    let mut n = 0;
    for e in dir.flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if e.metadata().is_ok_and(|m| m.len() == 0) {
            println!("skipping {name}: empty (generator still writing?)");
            continue;
        }
        if !name.contains(".key") || name.contains("signer-ca") {
            continue;
        }
        let mut r = KeyRing::new();
        let rep = r
            .load_file(&p, Some("unseal-test"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(rep.keys_added, 1, "{name}");
        assert_usable(&r);
        if let Ok(cert) = std::fs::exists(keys.join(name.replace(".key.pem", ".cert.pem")))
            && cert
            && name.ends_with(".key.pem")
        {
            r.add_certificates_file(&keys.join(name.replace(".key.pem", ".cert.pem")))
                .unwrap();
            assert_eq!(
                r.keys()[0].certs.len(),
                1,
                "{name}: certificate matches key"
            );
        }
        n += 1;
    }
    println!("{n} fixture keys loaded");
}
