//! ECDH ephemeral-static key agreement against messages made by `openssl cms -encrypt` for EC
//! recipient certificates (P-256, P-384, P-521; SHA-1..SHA-512 KDFs; standard and cofactor DH;
//! AES and Triple-DES key wrap; CBC EnvelopedData and GCM AuthEnvelopedData). The tests skip
//! with a message when `openssl` is not on PATH.

use cms::authenveloped_data::AuthEnvelopedData;
use cms::content_info::ContentInfo;
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyAgreeRecipientInfo, OriginatorIdentifierOrKey,
    RecipientInfo,
};
use der::{Decode, Encode};
use std::path::Path;
use std::process::Command;
use unseal_core::Error;
use unseal_core::content::gcm::{GcmDecryptor, parse_gcm_parameters};
use unseal_core::oid;
use unseal_core::provider::aws_lc::AwsLc;
use unseal_core::provider::{BlockCipher, CryptoProvider, EcCurve, EcPrivateKey, all_providers};
use unseal_core::unwrap::ecdh::unwrap_kari;

const PLAINTEXT: &[u8] = b"Content-Type: text/plain\r\n\r\nThe keys are going away on Friday.\r\n\
                           Seventy-one bytes and then some more to cross several blocks.\r\n";

fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: `openssl` is not on PATH");
    }
    ok
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct EcKey {
    curve: EcCurve,
    pkcs8: Vec<u8>,
}

impl EcKey {
    fn load(&self) -> Box<dyn EcPrivateKey> {
        AwsLc.ec_private_key(self.curve, &self.pkcs8).unwrap()
    }
}

/// Makes `<name>.pem` (key), `<name>.crt` (self-signed cert) and returns the PKCS#8 DER key.
fn make_key(dir: &Path, name: &str, curve: EcCurve) -> EcKey {
    let pem = format!("{name}.pem");
    let crt = format!("{name}.crt");
    let p8 = format!("{name}.p8");
    let param = format!("ec_paramgen_curve:{}", curve.name());
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &param,
            "-out",
            &pem,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            &pem,
            "-subj",
            "/CN=unseal test",
            "-days",
            "2",
            "-out",
            &crt,
        ],
    );
    openssl(
        dir,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", &pem, "-outform", "DER", "-out", &p8,
        ],
    );
    EcKey {
        curve,
        pkcs8: std::fs::read(dir.join(p8)).unwrap(),
    }
}

/// `openssl cms -encrypt` of PLAINTEXT to the named certificate; returns the DER ContentInfo.
fn encrypt(dir: &Path, cert: &str, cipher: &str, keyopts: &[&str]) -> Vec<u8> {
    std::fs::write(dir.join("msg.txt"), PLAINTEXT).unwrap();
    let crt = format!("{cert}.crt");
    let mut args = vec![
        "cms", "-encrypt", "-binary", cipher, "-in", "msg.txt", "-outform", "DER",
    ];
    args.extend(["-out", "msg.der", "-recip", &crt]);
    for k in keyopts {
        args.extend(["-keyopt", k]);
    }
    openssl(dir, &args);
    std::fs::read(dir.join("msg.der")).unwrap()
}

enum Parsed {
    Enveloped(EnvelopedData),
    AuthEnveloped(AuthEnvelopedData),
}

impl Parsed {
    fn from_der(der: &[u8]) -> Parsed {
        let ci = ContentInfo::from_der(der).unwrap();
        if ci.content_type == oid::ENVELOPED_DATA {
            Parsed::Enveloped(ci.content.decode_as().unwrap())
        } else {
            assert_eq!(ci.content_type, oid::AUTH_ENVELOPED_DATA);
            Parsed::AuthEnveloped(ci.content.decode_as().unwrap())
        }
    }

    fn kari(&self) -> (KeyAgreeRecipientInfo, Vec<u8>) {
        let infos = match self {
            Parsed::Enveloped(e) => &e.recip_infos,
            Parsed::AuthEnveloped(a) => &a.recip_infos,
        };
        let ri = infos.0.iter().next().unwrap();
        let RecipientInfo::Kari(kari) = ri else {
            panic!("not a KeyAgreeRecipientInfo: {ri:?}")
        };
        let rek = kari.recipient_enc_keys.first().unwrap();
        (kari.clone(), rek.enc_key.as_bytes().to_vec())
    }

    /// Decrypts the content with the CEK (CBC with PKCS#7 padding removed, or GCM with the tag
    /// checked).
    fn decrypt_content(&self, p: &dyn CryptoProvider, cek: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            Parsed::Enveloped(e) => cbc_content(p, &e.encrypted_content, cek),
            Parsed::AuthEnveloped(a) => {
                let eci = &a.auth_encrypted_content_info;
                let params = eci
                    .content_enc_alg
                    .parameters
                    .as_ref()
                    .unwrap()
                    .to_der()
                    .unwrap();
                let (nonce, tag_len) = parse_gcm_parameters(&params)?;
                let aad = match &a.auth_attrs {
                    Some(attrs) => attrs.to_der().unwrap(),
                    None => Vec::new(),
                };
                let mut data = eci.encrypted_content.as_ref().unwrap().as_bytes().to_vec();
                let mut d = GcmDecryptor::new(p, cek, &nonce, &aad)?;
                d.update(&mut data)?;
                assert_eq!(a.mac.as_bytes().len(), tag_len);
                d.finish(a.mac.as_bytes())?;
                Ok(data)
            }
        }
    }
}

fn cbc_content(
    p: &dyn CryptoProvider,
    eci: &EncryptedContentInfo,
    cek: &[u8],
) -> Result<Vec<u8>, Error> {
    let alg = &eci.content_enc_alg;
    let cipher = match alg.oid {
        oid::AES128_CBC | oid::AES192_CBC | oid::AES256_CBC => BlockCipher::Aes,
        oid::DES_EDE3_CBC => BlockCipher::DesEde3,
        other => panic!("unexpected content cipher {other}"),
    };
    let iv = alg
        .parameters
        .as_ref()
        .unwrap()
        .decode_as::<der::asn1::OctetString>()
        .unwrap();
    let mut data = eci.encrypted_content.as_ref().unwrap().as_bytes().to_vec();
    p.cbc_decryptor(cipher, cek)?
        .decrypt(iv.as_bytes(), &mut data)?;
    let pad = usize::from(*data.last().unwrap());
    assert!((1..=cipher.block_len()).contains(&pad), "bad padding");
    data.truncate(data.len() - pad);
    Ok(data)
}

/// (curve, content cipher option, keyopts, expected description)
const MATRIX: &[(EcCurve, &str, &[&str], &str)] = &[
    (
        EcCurve::P256,
        "-aes-128-cbc",
        &[],
        "ECDH P-256 X9.63-KDF SHA-1, AES-128-WRAP",
    ),
    (
        EcCurve::P256,
        "-aes-192-cbc",
        &["ecdh_kdf_md:sha224"],
        "ECDH P-256 X9.63-KDF SHA-224, AES-192-WRAP",
    ),
    (
        EcCurve::P256,
        "-des3",
        &["ecdh_kdf_md:sha256"],
        "ECDH P-256 X9.63-KDF SHA-256, DES-EDE3-WRAP",
    ),
    (
        EcCurve::P384,
        "-aes-256-cbc",
        &["ecdh_kdf_md:sha384"],
        "ECDH P-384 X9.63-KDF SHA-384, AES-256-WRAP",
    ),
    (
        EcCurve::P384,
        "-aes-128-cbc",
        &["ecdh_kdf_md:sha256", "ecdh_cofactor_mode:1"],
        "ECDH (cofactor) P-384 X9.63-KDF SHA-256, AES-128-WRAP",
    ),
    (
        EcCurve::P521,
        "-des3",
        &["ecdh_kdf_md:sha512"],
        "ECDH P-521 X9.63-KDF SHA-512, DES-EDE3-WRAP",
    ),
    (
        EcCurve::P521,
        "-aes-256-cbc",
        &["ecdh_kdf_md:sha512", "ecdh_cofactor_mode:1"],
        "ECDH (cofactor) P-521 X9.63-KDF SHA-512, AES-256-WRAP",
    ),
    (
        EcCurve::P384,
        "-aes-256-gcm",
        &["ecdh_kdf_md:sha384"],
        "ECDH P-384 X9.63-KDF SHA-384, AES-256-WRAP",
    ),
    (
        EcCurve::P256,
        "-aes-128-gcm",
        &["ecdh_kdf_md:sha1"],
        "ECDH P-256 X9.63-KDF SHA-1, AES-128-WRAP",
    ),
];

#[test]
fn openssl_cms_ecdh_messages_decrypt() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let keys: Vec<(EcCurve, EcKey)> = [EcCurve::P256, EcCurve::P384, EcCurve::P521]
        .into_iter()
        .map(|c| (c, make_key(dir, c.name(), c)))
        .collect();
    for (curve, cipher, keyopts, description) in MATRIX {
        let key = &keys.iter().find(|(c, _)| c == curve).unwrap().1;
        let der = encrypt(dir, curve.name(), cipher, keyopts);
        let msg = Parsed::from_der(&der);
        let (kari, enc_key) = msg.kari();
        let ec = key.load();
        // The KDF and the unwrap run on each provider (the EC key itself is aws-lc's).
        for p in all_providers() {
            let got = unwrap_kari(p, ec.as_ref(), &kari, &enc_key)
                .unwrap_or_else(|e| panic!("{} {curve:?} {cipher} {keyopts:?}: {e}", p.name()));
            assert_eq!(got.description, *description);
            let plain = msg.decrypt_content(p, &got.cek).unwrap();
            assert_eq!(
                plain,
                PLAINTEXT,
                "{} {curve:?} {cipher} {keyopts:?}",
                p.name()
            );
        }
    }
}

#[test]
fn wrong_key_tampering_and_unsupported_originators() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let right = make_key(dir, "right", EcCurve::P256);
    let other = make_key(dir, "other", EcCurve::P256);
    let p384 = make_key(dir, "p384", EcCurve::P384);
    let p = &AwsLc;
    for cipher in ["-aes-128-cbc", "-des3"] {
        let msg = Parsed::from_der(&encrypt(dir, "right", cipher, &[]));
        let (kari, enc_key) = msg.kari();
        assert!(unwrap_kari(p, right.load().as_ref(), &kari, &enc_key).is_ok());

        // Another key on the same curve: a different Z, so the unwrap integrity check fails.
        let err = unwrap_kari(p, other.load().as_ref(), &kari, &enc_key).unwrap_err();
        assert!(matches!(err, Error::WrongKey { .. }), "{cipher}: {err:?}");

        // A key on another curve: the point does not fit.
        let err = unwrap_kari(p, p384.load().as_ref(), &kari, &enc_key).unwrap_err();
        assert!(
            matches!(err, Error::BadParameters { .. }),
            "{cipher}: {err:?}"
        );

        // An altered wrapped key.
        let mut bad = enc_key.clone();
        bad[3] ^= 4;
        let err = unwrap_kari(p, right.load().as_ref(), &kari, &bad).unwrap_err();
        assert!(matches!(err, Error::WrongKey { .. }), "{cipher}: {err:?}");
        for len in [0, 8, 23, 25] {
            assert!(
                unwrap_kari(p, right.load().as_ref(), &kari, &bad[..len.min(bad.len())]).is_err()
            );
        }

        // A point that is not on the curve (last byte of y changed), or compressed.
        let OriginatorIdentifierOrKey::OriginatorKey(opk) = &kari.originator else {
            panic!()
        };
        let mut point = opk.public_key.raw_bytes().to_vec();
        let last = point.len() - 1;
        point[last] ^= 1;
        let mut off = kari.clone();
        let mut opk2 = opk.clone();
        opk2.public_key = der::asn1::BitString::from_bytes(&point).unwrap();
        off.originator = OriginatorIdentifierOrKey::OriginatorKey(opk2.clone());
        let err = unwrap_kari(p, right.load().as_ref(), &off, &enc_key).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Crypto {
                    operation: "ECDH",
                    ..
                }
            ),
            "{cipher}: {err:?}"
        );
        point[0] = 0x02;
        point.truncate(33);
        opk2.public_key = der::asn1::BitString::from_bytes(&point).unwrap();
        off.originator = OriginatorIdentifierOrKey::OriginatorKey(opk2);
        let err = unwrap_kari(p, right.load().as_ref(), &off, &enc_key).unwrap_err();
        assert!(
            matches!(err, Error::BadParameters { .. }),
            "{cipher}: {err:?}"
        );

        // Originator given by certificate reference (static-static ECDH): named in the error.
        let mut ski = kari.clone();
        ski.originator = OriginatorIdentifierOrKey::SubjectKeyIdentifier(
            x509_cert::ext::pkix::SubjectKeyIdentifier(
                der::asn1::OctetString::new(vec![1, 2, 3]).unwrap(),
            ),
        );
        let err = unwrap_kari(p, right.load().as_ref(), &ski, &enc_key).unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedAlgorithm { oid, .. } if oid == "subjectKeyIdentifier"),
            "{err:?}"
        );

        // Unknown key agreement algorithm, and a missing key wrap algorithm.
        let mut unk = kari.clone();
        unk.key_enc_alg.oid = oid::AES128_CBC;
        let err = unwrap_kari(p, right.load().as_ref(), &unk, &enc_key).unwrap_err();
        assert!(matches!(err, Error::UnsupportedAlgorithm { .. }), "{err:?}");
        let mut nowrap = kari.clone();
        nowrap.key_enc_alg.parameters = None;
        let err = unwrap_kari(p, right.load().as_ref(), &nowrap, &enc_key).unwrap_err();
        assert!(matches!(err, Error::BadParameters { .. }), "{err:?}");
    }
}

#[test]
fn every_provider_refuses_a_malformed_ec_key_with_a_reason() {
    for p in all_providers() {
        let err = p
            .ec_private_key(EcCurve::P256, &[0x30, 0x00])
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                Error::Crypto {
                    operation: "EC key setup",
                    ..
                }
            ),
            "{}: {err:?}",
            p.name()
        );
    }
}
