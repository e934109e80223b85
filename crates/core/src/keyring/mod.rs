//! The key ring: private keys with their certificates, indexed by how CMS names recipients.
//!
//! Keys are loaded from PKCS#12 (DER or BER, PEM-armoured too), PEM (PKCS#8, encrypted PKCS#8,
//! PKCS#1 incl. OpenSSL's legacy `Proc-Type: 4,ENCRYPTED`, SEC1, certificates) and DER. The
//! format is detected from the content. Every key is stored as one canonical unencrypted PKCS#8
//! (see [`key`]) so that the same key loaded twice is recognised and merged, and so that the
//! crypto providers only ever parse PKCS#8.
//!
//! Certificates attach to the key with the same public key, whichever is loaded first;
//! certificates without a key are kept so that [`KeyRing::describe`] can name the owner of a
//! missing key.

mod ber;
mod cert;
mod key;
mod load;
mod p12;
mod pbe;

use crate::cms::RecipientId;
use crate::cms::recipient::hex;
use crate::error::{Error, KeyProblem};
use crate::provider::EcCurve;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use zeroize::Zeroizing;

/// Key files larger than this are refused (real ones are a few KiB).
pub const MAX_KEY_FILE: u64 = 16 * 1024 * 1024;

/// What one `load_*` call added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub keys_added: usize,
    pub certs_added: usize,
    /// E.g. "certificate CN=x expired 2024-07-03 (still usable for decryption)",
    /// "key without certificate: matched by key id only".
    pub warnings: Vec<String>,
}

/// A private key, in canonical unencrypted PKCS#8.
#[derive(Clone)]
pub enum KeyMaterial {
    Rsa {
        pkcs8_der: Zeroizing<Vec<u8>>,
        bits: usize,
    },
    Ec {
        curve: EcCurve,
        pkcs8_der: Zeroizing<Vec<u8>>,
    },
}

impl KeyMaterial {
    /// The unencrypted PKCS#8 PrivateKeyInfo (EC keys carry the namedCurve parameter).
    pub fn pkcs8_der(&self) -> &[u8] {
        match self {
            KeyMaterial::Rsa { pkcs8_der, .. } | KeyMaterial::Ec { pkcs8_der, .. } => pkcs8_der,
        }
    }

    /// "RSA-2048", "EC P-384".
    pub fn algorithm(&self) -> String {
        match self {
            KeyMaterial::Rsa { bits, .. } => format!("RSA-{bits}"),
            KeyMaterial::Ec { curve, .. } => format!("EC {}", curve.name()),
        }
    }
}

/// Never prints key bytes.
impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial({}, <secret>)", self.algorithm())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub der: Vec<u8>,
    /// RFC 4514 text, e.g. "CN=Bob,O=Example".
    pub subject: String,
    pub issuer: String,
    /// The issuer Name exactly as encoded in the certificate.
    pub issuer_der: Vec<u8>,
    /// Normalized with `normalize_serial` (leading zero bytes stripped).
    pub serial: Vec<u8>,
    /// The subjectKeyIdentifier extension, if present.
    pub ski: Option<Vec<u8>>,
    /// RFC 3339 UTC, e.g. "2031-01-26T12:00:00Z".
    pub not_before: String,
    pub not_after: String,
    pub not_after_unix: i64,
    /// "RSA-2048", "EC P-384", "DSA".
    pub key_algorithm: String,
}

impl CertInfo {
    fn matches(&self, id: &RecipientId) -> bool {
        match id {
            RecipientId::IssuerSerial { issuer_der, serial } => {
                self.issuer_der == *issuer_der
                    && self.serial == crate::cms::recipient::normalize_serial(serial)
            }
            RecipientId::SubjectKeyId(ski) => self.ski.as_deref() == Some(ski.as_slice()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// The file name as given to `load_file` / `load_bytes`.
    pub source: String,
    pub material: KeyMaterial,
    /// DER SubjectPublicKeyInfo of the key.
    pub spki_der: Vec<u8>,
    /// SHA-1 of the subjectPublicKey bits (RFC 5280 key identifier, method 1).
    pub key_id_sha1: Vec<u8>,
    pub certs: Vec<CertInfo>,
}

impl KeyEntry {
    /// E.g. "RSA-2048 CN=Bob, serial 0x1F (expires 2031-01-26)".
    pub fn description(&self) -> String {
        let alg = self.material.algorithm();
        match self.certs.first() {
            Some(c) => {
                let verb = if c.not_after_unix < now_unix() {
                    "expired"
                } else {
                    "expires"
                };
                let date = c.not_after.get(..10).unwrap_or(&c.not_after);
                format!(
                    "{alg} {}, serial 0x{} ({verb} {date})",
                    c.subject,
                    hex(&c.serial)
                )
            }
            None => format!(
                "{alg} key from {} (no certificate, key id {})",
                self.source,
                hex(&self.key_id_sha1)
            ),
        }
    }
}

/// A certificate whose key is not (yet) loaded.
#[derive(Debug, Clone)]
struct LooseCert {
    info: CertInfo,
    key_id: Vec<u8>,
}

#[derive(Default)]
pub struct KeyRing {
    keys: Vec<KeyEntry>,
    loose: Vec<LooseCert>,
    by_key_id: HashMap<Vec<u8>, usize>,
    by_issuer_serial: HashMap<(Vec<u8>, Vec<u8>), Vec<usize>>,
    by_ski: HashMap<Vec<u8>, Vec<usize>>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.keys)
            .field("loose_certs", &self.loose.len())
            .finish()
    }
}

pub(crate) fn sha1(data: &[u8]) -> Vec<u8> {
    use sha1::Digest;
    sha1::Sha1::digest(data).to_vec()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn key_error(file: &str, reason: KeyProblem, detail: impl Into<String>) -> Error {
    Error::Key {
        file: file.to_string(),
        reason,
        detail: detail.into(),
    }
}

fn read_limited(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|e| key_error(&name, KeyProblem::Unreadable, e.to_string()))?;
    if meta.len() > MAX_KEY_FILE {
        return Err(key_error(
            &name,
            KeyProblem::Unreadable,
            format!(
                "{} bytes is too large for a key file (limit {MAX_KEY_FILE})",
                meta.len()
            ),
        ));
    }
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| key_error(&name, KeyProblem::Unreadable, e.to_string()))
}

impl KeyRing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads .p12/.pfx (DER or PEM-armoured), PEM (PKCS#8, ENCRYPTED PKCS#8, PKCS#1 "RSA PRIVATE
    /// KEY" incl. legacy "Proc-Type: 4,ENCRYPTED" DES-EDE3-CBC/AES-CBC with EVP_BytesToKey-MD5,
    /// SEC1 "EC PRIVATE KEY", CERTIFICATE, several blocks per file), DER (PKCS#8, encrypted
    /// PKCS#8, PKCS#1, SEC1, certificate). Format by content, not name.
    pub fn load_file(&mut self, path: &Path, password: Option<&str>) -> Result<LoadReport, Error> {
        let data = read_limited(path)?;
        self.load_bytes(&path.display().to_string(), &data, password)
    }

    pub fn load_bytes(
        &mut self,
        name: &str,
        data: &[u8],
        password: Option<&str>,
    ) -> Result<LoadReport, Error> {
        let mut batch = load::Batch::default();
        load::parse_any(data, password, &mut batch);
        if batch.keys.is_empty() {
            let (reason, detail) = batch.failure();
            return Err(key_error(name, reason, detail));
        }
        let mut warnings = std::mem::take(&mut batch.warnings);
        if let Some((p, d)) = batch.password_problem.take() {
            warnings.push(format!("{p}: {d}"));
        }
        for c in &batch.corrupt {
            warnings.push(format!("skipped: {c}"));
        }
        let mut report = self.commit(name, batch, true);
        warnings.append(&mut report.warnings);
        report.warnings = warnings;
        Ok(report)
    }

    /// --cert files: certificates attach to the key with the same public key (whichever order
    /// keys/certs load); certificates without a key are kept too, so `describe` can name the
    /// owner of a missing key. Returns the number of certificates new to the ring.
    pub fn add_certificates_file(&mut self, path: &Path) -> Result<usize, Error> {
        let name = path.display().to_string();
        let data = read_limited(path)?;
        let mut batch = load::Batch::default();
        load::parse_any(&data, None, &mut batch);
        if batch.certs.is_empty() {
            let (reason, detail) = match batch.failure() {
                (KeyProblem::NoPrivateKey, d) => (KeyProblem::Corrupt, d),
                (KeyProblem::Corrupt, d) => {
                    (KeyProblem::Corrupt, format!("no certificate found: {d}"))
                }
                other => other,
            };
            return Err(key_error(&name, reason, detail));
        }
        batch.keys.clear();
        Ok(self.commit(&name, batch, false).certs_added)
    }

    fn commit(&mut self, source: &str, batch: load::Batch, warn_keys: bool) -> LoadReport {
        let mut report = LoadReport::default();
        let mut touched: Vec<usize> = Vec::new();
        for k in batch.keys {
            if let Some(&i) = self.by_key_id.get(&k.key_id) {
                if warn_keys {
                    report.warnings.push(format!(
                        "duplicate of the {} key already loaded from {}; merged",
                        self.keys[i].material.algorithm(),
                        self.keys[i].source
                    ));
                }
                touched.push(i);
                continue;
            }
            let i = self.keys.len();
            self.by_key_id.insert(k.key_id.clone(), i);
            self.keys.push(KeyEntry {
                source: source.to_string(),
                material: k.material,
                spki_der: k.spki_der,
                key_id_sha1: k.key_id,
                certs: Vec::new(),
            });
            report.keys_added += 1;
            touched.push(i);
            // Certificates that arrived before their key.
            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.loose)
                .into_iter()
                .partition(|c| c.key_id == self.keys[i].key_id_sha1);
            self.loose = rest;
            for c in mine {
                self.attach(i, c.info);
            }
        }
        for c in batch.certs {
            let known = self
                .keys
                .iter()
                .any(|k| k.certs.iter().any(|x| x.der == c.info.der))
                || self.loose.iter().any(|x| x.info.der == c.info.der);
            if known {
                continue;
            }
            report.certs_added += 1;
            match self.by_key_id.get(&c.key_id) {
                Some(&i) => {
                    self.attach(i, c.info);
                    touched.push(i);
                }
                None => self.loose.push(LooseCert {
                    info: c.info,
                    key_id: c.key_id,
                }),
            }
        }
        touched.sort_unstable();
        touched.dedup();
        if warn_keys {
            let now = now_unix();
            for &i in &touched {
                let k = &self.keys[i];
                if k.certs.is_empty() {
                    report.warnings.push(format!(
                        "{} key without certificate: matched by key id only",
                        k.material.algorithm()
                    ));
                }
                for c in &k.certs {
                    if c.not_after_unix < now {
                        report.warnings.push(format!(
                            "certificate {} expired {} (still usable for decryption)",
                            c.subject,
                            c.not_after.get(..10).unwrap_or(&c.not_after)
                        ));
                    }
                }
            }
        }
        self.reindex();
        report
    }

    fn attach(&mut self, i: usize, info: CertInfo) {
        if !self.keys[i].certs.iter().any(|c| c.der == info.der) {
            self.keys[i].certs.push(info);
        }
    }

    fn reindex(&mut self) {
        self.by_issuer_serial.clear();
        self.by_ski.clear();
        for (i, k) in self.keys.iter().enumerate() {
            for c in &k.certs {
                self.by_issuer_serial
                    .entry((c.issuer_der.clone(), c.serial.clone()))
                    .or_default()
                    .push(i);
                if let Some(s) = &c.ski {
                    self.by_ski.entry(s.clone()).or_default().push(i);
                }
            }
        }
    }

    pub fn keys(&self) -> &[KeyEntry] {
        &self.keys
    }

    /// Indices into keys() whose certificate matches (issuer DER + normalized serial, or SKI),
    /// or whose public key's SHA-1 key identifier matches a SubjectKeyId.
    pub fn lookup(&self, id: &RecipientId) -> Vec<usize> {
        let mut out = match id {
            RecipientId::IssuerSerial { issuer_der, serial } => self
                .by_issuer_serial
                .get(&(
                    issuer_der.clone(),
                    crate::cms::recipient::normalize_serial(serial),
                ))
                .cloned()
                .unwrap_or_default(),
            RecipientId::SubjectKeyId(ski) => {
                let mut v = self.by_ski.get(ski).cloned().unwrap_or_default();
                v.extend(self.by_key_id.get(ski).copied());
                v
            }
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Subject of any known certificate (with or without key) for this recipient, for messages
    /// like "missing key: CN=carol".
    pub fn describe(&self, id: &RecipientId) -> Option<String> {
        self.keys
            .iter()
            .flat_map(|k| k.certs.iter())
            .chain(self.loose.iter().map(|l| &l.info))
            .find(|c| c.matches(id))
            .map(|c| c.subject.clone())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
