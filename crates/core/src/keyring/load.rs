//! Format detection (by content, never by file name) and PEM parsing.

use super::ber::{BIT_STRING, INTEGER, OCTET_STRING, SEQUENCE, Tlv};
use super::cert::{ParsedCert, parse_cert};
use super::key::{self, KeyError, ParsedKey};
use super::p12::{self, P12Error};
use super::pbe::{self, Password, PbeError};
use crate::error::KeyProblem;
use base64::Engine;
use zeroize::Zeroizing;

const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];

/// Everything found in one file, before it is merged into the ring.
#[derive(Default)]
pub struct Batch {
    pub keys: Vec<ParsedKey>,
    pub certs: Vec<ParsedCert>,
    pub warnings: Vec<String>,
    /// Keys skipped because of their type (DSA, Ed25519, other curves ...).
    pub unsupported: Vec<String>,
    /// The first password problem met.
    pub password_problem: Option<(KeyProblem, String)>,
    pub corrupt: Vec<String>,
}

impl Batch {
    fn password(&mut self, p: KeyProblem, what: &str) {
        let detail = match p {
            KeyProblem::NeedsPassword => format!("{what} is encrypted and no password was given"),
            _ => format!("{what}: the password does not decrypt it"),
        };
        if self.password_problem.is_none() {
            self.password_problem = Some((p, detail));
        } else {
            self.warnings.push(detail);
        }
    }

    fn key(&mut self, r: Result<ParsedKey, KeyError>, what: &str) {
        match r {
            Ok(k) => self.keys.push(k),
            Err(KeyError::Unsupported(s)) => {
                self.warnings
                    .push(format!("skipped {what}: {s} (not usable for decryption)"));
                self.unsupported.push(s);
            }
            Err(KeyError::Corrupt(s)) => self.corrupt.push(format!("{what}: {s}")),
        }
    }

    fn cert(&mut self, der: &[u8], what: &str) {
        match parse_cert(der) {
            Ok(c) => self.certs.push(c),
            Err(e) => self
                .warnings
                .push(format!("skipped an unreadable certificate in {what}: {e}")),
        }
    }

    /// The problem to report when the file gave no usable key.
    pub fn failure(&self) -> (KeyProblem, String) {
        if let Some((p, d)) = &self.password_problem {
            return (*p, d.clone());
        }
        if !self.unsupported.is_empty() {
            return (KeyProblem::Unsupported, self.unsupported.join("; "));
        }
        if !self.certs.is_empty() {
            return (
                KeyProblem::NoPrivateKey,
                format!("only {} certificate(s), no private key", self.certs.len()),
            );
        }
        if !self.corrupt.is_empty() {
            return (KeyProblem::Corrupt, self.corrupt.join("; "));
        }
        (KeyProblem::Corrupt, "no key or certificate found".into())
    }
}

/// Parses any supported file content into `batch`.
pub fn parse_any(data: &[u8], password: Option<&str>, batch: &mut Batch) {
    if memchr::memmem::find(data, b"-----BEGIN ").is_some() {
        parse_pem(data, password, batch);
        return;
    }
    if Tlv::parse_exact(data).is_err() {
        // Maybe bare base64 of a DER file (e.g. a .p12 pasted into a text file).
        if let Some(der) = bare_base64(data) {
            parse_der(&der, password, batch, "file");
            return;
        }
    }
    parse_der(data, password, batch, "file");
}

fn bare_base64(data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if data.len() < 16
        || !data.iter().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'+' | b'/' | b'=' | b'\r' | b'\n' | b' ' | b'\t')
        })
    {
        return None;
    }
    let clean: Zeroizing<Vec<u8>> = Zeroizing::new(
        data.iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    let der = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(&clean[..])
            .ok()?,
    );
    (der.first() == Some(&SEQUENCE) && Tlv::parse_exact(&der).is_ok()).then_some(der)
}

/// Classifies a DER/BER blob by its structure.
pub fn parse_der(data: &[u8], password: Option<&str>, batch: &mut Batch, what: &str) {
    let t = match Tlv::parse_exact(data) {
        Ok(t) if t.tag == SEQUENCE => t,
        Ok(_) => {
            return batch.corrupt.push(format!(
                "{what}: not a key, certificate or PKCS#12 structure"
            ));
        }
        Err(e) => {
            return batch
                .corrupt
                .push(format!("{what}: not PEM, and not DER ({})", e.0));
        }
    };
    let f = match t.children() {
        Ok(f) => f,
        Err(e) => return batch.corrupt.push(format!("{what}: {}", e.0)),
    };
    let ints = f.iter().take_while(|x| x.tag == INTEGER).count();
    if p12::looks_like_pfx(&f) {
        load_p12(data, password, batch);
    } else if key::looks_like_pkcs8(&f) {
        batch.key(key::from_pkcs8(data), "PKCS#8 key");
    } else if f.len() == 2 && f[0].tag == SEQUENCE && f[1].tag & !0x20 == OCTET_STRING {
        encrypted_pkcs8(&f, password, batch);
    } else if f.len() == 3 && f[0].tag == SEQUENCE && f[1].tag == SEQUENCE && f[2].tag == BIT_STRING
    {
        batch.cert(data, what);
    } else if ints >= 9 && f[0].small_uint().ok() == Some(0) {
        batch.key(key::from_pkcs1(data), "PKCS#1 RSA key");
    } else if ints == 6 && f.len() == 6 && f[0].small_uint().ok() == Some(0) {
        batch.key(
            Err(KeyError::Unsupported("DSA key".into())),
            "traditional DSA key",
        );
    } else if f.len() >= 2 && f[0].small_uint().ok() == Some(1) && f[1].tag == OCTET_STRING {
        batch.key(key::from_sec1(data, None), "SEC1 EC key");
    } else if f.first().and_then(|o| o.oid().ok()) == Some(SIGNED_DATA) {
        pkcs7_certs(&f, batch, what);
    } else {
        batch
            .corrupt
            .push(format!("{what}: unrecognised ASN.1 structure"));
    }
}

fn load_p12(data: &[u8], password: Option<&str>, batch: &mut Batch) {
    match p12::parse(data, password) {
        Ok(c) => {
            batch.warnings.extend(c.warnings);
            for k in &c.keys {
                batch.key(key::from_pkcs8(k), "PKCS#12 key");
            }
            for cert in &c.certs {
                batch.cert(cert, "PKCS#12 file");
            }
        }
        Err(P12Error::NeedsPassword) => batch.password(KeyProblem::NeedsPassword, "PKCS#12 file"),
        Err(P12Error::WrongPassword) => batch.password(KeyProblem::WrongPassword, "PKCS#12 file"),
        Err(P12Error::Unsupported(s)) => {
            batch.unsupported.push(format!("PKCS#12: {s}"));
        }
        Err(P12Error::Corrupt(s)) => batch.corrupt.push(format!("PKCS#12: {s}")),
    }
}

fn encrypted_pkcs8(f: &[Tlv<'_>], password: Option<&str>, batch: &mut Batch) {
    let what = "encrypted PKCS#8 key";
    let ct = match f[1].octets() {
        Ok(c) => c,
        Err(e) => return batch.corrupt.push(format!("{what}: {}", e.0)),
    };
    // Without a password, the empty one is worth a try (it costs one KDF run).
    let pw = Password::new(password.unwrap_or(""));
    match pbe::decrypt(&f[0], &ct, &pw) {
        Ok(plain) => match key::from_pkcs8(&plain) {
            Err(KeyError::Corrupt(_)) => batch.password(wrong_or_needed(password), what),
            r => batch.key(r, what),
        },
        Err(PbeError::WrongPassword) => batch.password(wrong_or_needed(password), what),
        Err(PbeError::Unsupported(s)) => batch.unsupported.push(format!("{what}: {s}")),
        Err(PbeError::Corrupt(s)) => batch.corrupt.push(format!("{what}: {s}")),
    }
}

fn wrong_or_needed(password: Option<&str>) -> KeyProblem {
    if password.is_some() {
        KeyProblem::WrongPassword
    } else {
        KeyProblem::NeedsPassword
    }
}

/// Certificates of a PKCS#7 / CMS SignedData ("certs-only" .p7b/.p7c).
fn pkcs7_certs(ci: &[Tlv<'_>], batch: &mut Batch, what: &str) {
    let sd = ci
        .get(1)
        .filter(|x| x.tag == 0xa0)
        .and_then(|x| x.children().ok())
        .and_then(|c| c.into_iter().next())
        .and_then(|sd| sd.seq().ok());
    let Some(sd) = sd else {
        return batch
            .corrupt
            .push(format!("{what}: malformed PKCS#7 SignedData"));
    };
    for part in sd.iter().filter(|x| x.tag == 0xa0) {
        for c in part.children().unwrap_or_default() {
            match c.to_der() {
                Ok(der) => batch.cert(&der, what),
                Err(e) => batch
                    .warnings
                    .push(format!("skipped a certificate in {what}: {}", e.0)),
            }
        }
    }
}

struct PemBlock {
    label: String,
    proc_type_encrypted: bool,
    dek_info: Option<String>,
    der: Zeroizing<Vec<u8>>,
}

fn pem_blocks(data: &[u8], batch: &mut Batch) -> Vec<PemBlock> {
    // Unencrypted key bodies are secret: keep the text copy in a wiped buffer.
    let text = Zeroizing::new(String::from_utf8_lossy(data).into_owned());
    let mut out = Vec::new();
    // (label, Proc-Type ENCRYPTED, DEK-Info, base64 text, still in the header lines)
    type Open = (String, bool, Option<String>, Zeroizing<String>, bool);
    let mut cur: Option<Open> = None;
    for line in text.lines() {
        let line = line.trim();
        match &mut cur {
            None => {
                if let Some(label) = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|l| l.strip_suffix("-----"))
                {
                    cur = Some((
                        label.to_string(),
                        false,
                        None,
                        Zeroizing::new(String::new()),
                        true,
                    ));
                }
            }
            Some((label, enc, dek, b64, in_headers)) => {
                if line.starts_with("-----END ") {
                    let clean: Zeroizing<Vec<u8>> =
                        Zeroizing::new(b64.bytes().filter(|b| !b.is_ascii_whitespace()).collect());
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(&clean[..])
                        .or_else(|_| {
                            base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean[..])
                        });
                    match decoded {
                        Ok(der) => out.push(PemBlock {
                            label: std::mem::take(label),
                            proc_type_encrypted: *enc,
                            dek_info: dek.take(),
                            der: Zeroizing::new(der),
                        }),
                        Err(_) => batch
                            .corrupt
                            .push(format!("bad base64 in a {label} PEM block")),
                    }
                    cur = None;
                } else if *in_headers && line.contains(':') {
                    if let Some((k, v)) = line.split_once(':') {
                        let (k, v) = (k.trim(), v.trim());
                        if k.eq_ignore_ascii_case("Proc-Type")
                            && v.to_ascii_uppercase().contains("ENCRYPTED")
                        {
                            *enc = true;
                        } else if k.eq_ignore_ascii_case("DEK-Info") {
                            *dek = Some(v.to_string());
                        }
                    }
                } else if !line.is_empty() {
                    *in_headers = false;
                    b64.push_str(line);
                }
            }
        }
    }
    if let Some((label, ..)) = cur {
        batch
            .corrupt
            .push(format!("unterminated {label} PEM block"));
    }
    out
}

fn parse_pem(data: &[u8], password: Option<&str>, batch: &mut Batch) {
    for b in pem_blocks(data, batch) {
        let label = b.label.as_str();
        match label {
            "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" | "PKCS12" => {
                parse_der(&b.der, password, batch, label)
            }
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                let plain = if b.proc_type_encrypted {
                    let Some(dek) = b.dek_info.as_deref() else {
                        batch
                            .corrupt
                            .push(format!("{label}: Proc-Type ENCRYPTED without DEK-Info"));
                        continue;
                    };
                    let Some(pw) = password else {
                        batch.password(KeyProblem::NeedsPassword, label);
                        continue;
                    };
                    match pbe::decrypt_legacy_pem(dek, &b.der, &Password::new(pw)) {
                        Ok(p) => p,
                        Err(PbeError::WrongPassword) => {
                            batch.password(KeyProblem::WrongPassword, label);
                            continue;
                        }
                        Err(PbeError::Unsupported(s)) => {
                            batch.unsupported.push(format!("{label}: {s}"));
                            continue;
                        }
                        Err(PbeError::Corrupt(s)) => {
                            batch.corrupt.push(format!("{label}: {s}"));
                            continue;
                        }
                    }
                } else {
                    b.der.clone()
                };
                let r = if label == "RSA PRIVATE KEY" {
                    key::from_pkcs1(&plain)
                } else {
                    key::from_sec1(&plain, None)
                };
                match r {
                    Err(KeyError::Corrupt(_)) if b.proc_type_encrypted => {
                        batch.password(KeyProblem::WrongPassword, label)
                    }
                    r => batch.key(r, label),
                }
            }
            "DSA PRIVATE KEY" => batch.key(Err(KeyError::Unsupported("DSA key".into())), label),
            "CERTIFICATE" | "X509 CERTIFICATE" => batch.cert(&b.der, label),
            "TRUSTED CERTIFICATE" => match Tlv::parse_prefix(&b.der) {
                // OpenSSL appends its trust settings after the certificate.
                Ok((t, _)) => batch.cert(t.raw, label),
                Err(e) => batch
                    .warnings
                    .push(format!("skipped an unreadable {label}: {}", e.0)),
            },
            "PKCS7" | "CMS" => parse_der(&b.der, password, batch, label),
            "EC PARAMETERS" | "DH PARAMETERS" | "PUBLIC KEY" | "RSA PUBLIC KEY" | "X509 CRL" => {}
            other => {
                let mut scratch = Batch::default();
                parse_der(&b.der, password, &mut scratch, other);
                if (scratch.keys.len(), scratch.certs.len()) == (0, 0)
                    && scratch.password_problem.is_none()
                {
                    batch
                        .warnings
                        .push(format!("ignored a PEM block labelled {other}"));
                } else {
                    batch.keys.append(&mut scratch.keys);
                    batch.certs.append(&mut scratch.certs);
                    batch.warnings.append(&mut scratch.warnings);
                    batch.unsupported.append(&mut scratch.unsupported);
                    if batch.password_problem.is_none() {
                        batch.password_problem = scratch.password_problem.take();
                    }
                }
            }
        }
    }
}
