//! The entry point for one CMS envelope: parse the header, find a key, unwrap the CEK,
//! check it, then stream-decrypt the content into a writer.

use crate::cms::envelope::{self, EnvelopeHeader};
use crate::cms::recipient::normalize_serial;
use crate::cms::{EnvelopeKind, RecipientId};
use crate::content::algorithm::{self, ContentCipher};
use crate::content::cbc::CbcStream;
use crate::content::gcm::GcmDecryptor;
use crate::error::{Error, Result};
use crate::keyring::{KeyMaterial, KeyRing};
use crate::provider::{CryptoProvider, EcPrivateKey, RsaPrivateKey};
use crate::stream::StreamCipher;
use crate::unwrap::rsa::{self as rsa_unwrap, RsaPadding};
use cms::enveloped_data::{
    KeyAgreeRecipientIdentifier, KeyAgreeRecipientInfo, RecipientIdentifier, RecipientInfo,
};
use der::{Decode, Encode};
use zeroize::Zeroizing;

/// Options that change how keys are tried.
#[derive(Debug, Clone)]
pub struct DecryptOptions {
    /// When no recipient matches a loaded key, try every key of a fitting type (slow: one private
    /// key operation per key; for messages whose recipient identifiers are wrong or missing).
    pub try_all_keys: bool,
    /// Require the plaintext to start like a MIME entity (a header line, or an empty header
    /// section). With RSA implicit rejection a wrong key yields a random CEK; this check, the CEK
    /// length and the CBC padding together make a wrong key very unlikely to pass unnoticed.
    pub check_mime: bool,
    /// Where AuthEnvelopedData plaintext waits while its tag is unchecked, when the content is at
    /// least `spool_threshold` bytes: an unnamed temporary file (0600, gone when closed, even
    /// after a crash) in this folder, normally the output folder. `None`: in memory.
    pub spool_dir: Option<std::path::PathBuf>,
    pub spool_threshold: u64,
}

impl Default for DecryptOptions {
    fn default() -> Self {
        DecryptOptions {
            try_all_keys: false,
            check_mime: true,
            spool_dir: None,
            spool_threshold: 8 * 1024 * 1024,
        }
    }
}

/// What was done to open one envelope, for the trace header and the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub kind: EnvelopeKind,
    /// e.g. "AES-256-CBC", "DES-EDE3-CBC", "RC2-CBC/40", "AES-128-GCM".
    pub content_cipher: String,
    /// e.g. "RSA PKCS#1 v1.5", "RSAES-OAEP SHA-256/MGF1-SHA-1", "ECDH P-384 ...".
    pub key_transport: String,
    /// Every recipient named in the envelope.
    pub recipients: Vec<RecipientId>,
    /// The recipient whose key opened it.
    pub used_recipient: RecipientId,
    /// Which key file held that key.
    pub key_source: String,
    pub ciphertext_len: u64,
    pub plaintext_len: u64,
}

/// What `inspect` learns without any key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSummary {
    pub kind: EnvelopeKind,
    pub content_cipher: String,
    pub recipients: Vec<RecipientId>,
    /// Recipients of kinds no private key can open here (KEK, password, other), described.
    pub other_recipients: Vec<String>,
}

enum Prepared {
    Rsa(Box<dyn RsaPrivateKey>),
    Ec(Box<dyn EcPrivateKey>),
    Unusable(String),
}

/// Holds the prepared keys (parsed once per run) and the provider. `Sync`: share one across
/// worker threads.
pub struct Decryptor<'k> {
    keys: &'k KeyRing,
    provider: &'static dyn CryptoProvider,
    options: DecryptOptions,
    prepared: Vec<Prepared>,
}

/// One way a recipient info can be opened.
enum Route {
    Ktri {
        padding: std::result::Result<RsaPadding, Error>,
        encrypted_key: Vec<u8>,
    },
    Kari {
        kari: Box<KeyAgreeRecipientInfo>,
        encrypted_key: Vec<u8>,
    },
}

struct Recipient {
    id: RecipientId,
    route: Route,
}

struct Parsed {
    recipients: Vec<Recipient>,
    other: Vec<String>,
}

fn rid_from_ias(ias: &cms::cert::IssuerAndSerialNumber) -> Result<RecipientId> {
    let issuer_der = ias.issuer.to_der().map_err(|e| Error::Asn1 {
        what: "issuerAndSerialNumber.issuer",
        offset: 0,
        detail: e.to_string(),
    })?;
    Ok(RecipientId::IssuerSerial {
        issuer_der,
        serial: normalize_serial(ias.serial_number.as_bytes()),
    })
}

fn parse_recipients(header: &EnvelopeHeader<'_>) -> Result<Parsed> {
    let mut recipients = Vec::new();
    let mut other = Vec::new();
    let mut first_error = None;
    for (der_bytes, offset) in &header.recipient_infos {
        let ri = match RecipientInfo::from_der(der_bytes) {
            Ok(ri) => ri,
            Err(e) => {
                // One undecodable recipient must not hide the others.
                other.push(format!("undecodable RecipientInfo at offset {offset}: {e}"));
                first_error.get_or_insert(Error::Asn1 {
                    what: "RecipientInfo",
                    offset: *offset,
                    detail: e.to_string(),
                });
                continue;
            }
        };
        match ri {
            RecipientInfo::Ktri(k) => {
                let id = match &k.rid {
                    RecipientIdentifier::IssuerAndSerialNumber(ias) => match rid_from_ias(ias) {
                        Ok(id) => id,
                        // One unusable recipient must not hide the others.
                        Err(e) => {
                            other.push(format!(
                                "recipient with an unusable issuer at offset {offset}: {e}"
                            ));
                            continue;
                        }
                    },
                    RecipientIdentifier::SubjectKeyIdentifier(ski) => {
                        RecipientId::SubjectKeyId(ski.0.as_bytes().to_vec())
                    }
                };
                recipients.push(Recipient {
                    id,
                    route: Route::Ktri {
                        padding: rsa_unwrap::padding(&k.key_enc_alg),
                        encrypted_key: k.enc_key.as_bytes().to_vec(),
                    },
                });
            }
            RecipientInfo::Kari(kari) => {
                for rek in &kari.recipient_enc_keys {
                    let id = match &rek.rid {
                        KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(ias) => {
                            match rid_from_ias(ias) {
                                Ok(id) => id,
                                Err(e) => {
                                    other.push(format!(
                                        "recipient with an unusable issuer at offset {offset}: {e}"
                                    ));
                                    continue;
                                }
                            }
                        }
                        KeyAgreeRecipientIdentifier::RKeyId(rk) => RecipientId::SubjectKeyId(
                            rk.subject_key_identifier.0.as_bytes().to_vec(),
                        ),
                    };
                    recipients.push(Recipient {
                        id,
                        route: Route::Kari {
                            kari: Box::new(kari.clone()),
                            encrypted_key: rek.enc_key.as_bytes().to_vec(),
                        },
                    });
                }
            }
            RecipientInfo::Kekri(k) => other.push(format!(
                "KEK recipient \"{}\" (needs a shared symmetric key)",
                String::from_utf8_lossy(k.kek_id.kek_identifier.as_bytes())
            )),
            RecipientInfo::Pwri(_) => other.push("password recipient (not supported)".into()),
            RecipientInfo::Ori(_) => other.push("other recipient type (not supported)".into()),
        }
    }
    if recipients.is_empty()
        && let Some(e) = first_error
    {
        return Err(e);
    }
    Ok(Parsed { recipients, other })
}

/// Does the start of a plaintext look like a MIME entity? A header field name (token
/// characters up to a colon), or an empty header section. Only the first block is available
/// when this is checked, so a name that runs past it is accepted.
pub fn looks_like_mime_start(p: &[u8]) -> bool {
    if p.starts_with(b"\r\n") || p.starts_with(b"\n") {
        return true;
    }
    for (i, &b) in p.iter().enumerate() {
        if b == b':' {
            return i > 0;
        }
        if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return false;
        }
    }
    !p.is_empty()
}

/// A GCM tag that does not match means one of two things, and the report must not claim to
/// know which.
pub(crate) fn tag_failure(e: &Error) -> String {
    format!("{e} (either the message was altered or this key is not the one it was encrypted to)")
}

/// The MAC must be as long as the GCM parameters' aes-ICVlen says (RFC 5084 §3.2).
pub(crate) fn check_mac_len(mac: &[u8], tag_len: usize) -> Result<()> {
    if mac.len() == tag_len {
        return Ok(());
    }
    Err(Error::BadParameters {
        what: "AES-GCM",
        oid: "aes-ICVlen".into(),
        detail: format!("MAC of {} bytes, parameters say {tag_len}", mac.len()),
    })
}

/// The content cipher must suit the envelope: AuthEnvelopedData promises authenticity, which
/// only an authenticated cipher gives (RFC 5083 §2.1: a CBC content under it would be read
/// with nothing checked), and EnvelopedData has no field for AES-GCM's tag (RFC 5084 §3 puts
/// GCM in AuthEnvelopedData only).
pub(crate) fn check_cipher_fits(kind: EnvelopeKind, cipher: &ContentCipher) -> Result<()> {
    let detail = match (kind, cipher) {
        (EnvelopeKind::AuthEnveloped, ContentCipher::Cbc { .. }) => {
            "authEnveloped-data with a cipher that authenticates nothing (RFC 5083 needs an AEAD cipher)"
        }
        (EnvelopeKind::Enveloped, ContentCipher::Gcm { .. }) => {
            "enveloped-data has no mac field for the GCM tag (RFC 5084 needs authEnveloped-data)"
        }
        _ => return Ok(()),
    };
    Err(Error::BadParameters {
        what: "content cipher",
        oid: oid_name(cipher),
        detail: detail.into(),
    })
}

/// A spool file (GCM plaintext waiting for its tag) that could not be made or used.
pub(crate) fn spool_error(dir: &std::path::Path, e: std::io::Error) -> Error {
    Error::Io {
        detail: format!("spool file in {}: {e}", dir.display()),
    }
}

impl<'k> Decryptor<'k> {
    /// Prepares every key in the ring with the provider. A key the provider rejects is kept as
    /// unusable (and named if a message needs it) rather than failing the whole run.
    pub fn new(
        keys: &'k KeyRing,
        provider: &'static dyn CryptoProvider,
        options: DecryptOptions,
    ) -> Result<Self> {
        let prepared = keys
            .keys()
            .iter()
            .map(|entry| {
                let r = match &entry.material {
                    KeyMaterial::Rsa { pkcs8_der, .. } => {
                        provider.rsa_private_key(pkcs8_der).map(Prepared::Rsa)
                    }
                    KeyMaterial::Ec { curve, pkcs8_der } => {
                        provider.ec_private_key(*curve, pkcs8_der).map(Prepared::Ec)
                    }
                };
                r.unwrap_or_else(|e| Prepared::Unusable(e.to_string()))
            })
            .collect();
        Ok(Decryptor {
            keys,
            provider,
            options,
            prepared,
        })
    }

    pub fn keys(&self) -> &KeyRing {
        self.keys
    }

    pub fn provider(&self) -> &'static dyn CryptoProvider {
        self.provider
    }

    pub fn options(&self) -> &DecryptOptions {
        &self.options
    }

    /// Reads the envelope header only: kind, cipher and recipients. Needs no key.
    pub fn inspect_cms(cms: &[u8]) -> Result<EnvelopeSummary> {
        let header = envelope::parse(cms)?;
        let cipher = algorithm::parse(
            &header.content_algorithm_der,
            header.content_algorithm_offset,
        )?;
        check_cipher_fits(header.kind, &cipher)?;
        let parsed = parse_recipients(&header)?;
        let nominal = match &cipher {
            ContentCipher::Cbc {
                nominal_key_len, ..
            } => nominal_key_len.unwrap_or(0),
            ContentCipher::Gcm {
                nominal_key_len, ..
            } => *nominal_key_len,
        };
        Ok(EnvelopeSummary {
            kind: header.kind,
            content_cipher: cipher.describe(nominal),
            recipients: parsed.recipients.into_iter().map(|r| r.id).collect(),
            other_recipients: parsed.other,
        })
    }

    /// Decrypts one CMS ContentInfo (DER or BER) holding EnvelopedData or AuthEnvelopedData and
    /// writes the plaintext to `out`, using the `check_mime` option.
    pub fn decrypt_cms(&self, cms: &[u8], out: &mut dyn std::io::Write) -> Result<LayerInfo> {
        self.decrypt_cms_with(cms, out, self.options.check_mime)
    }

    /// As [`Decryptor::decrypt_cms`], choosing whether the plaintext must look like MIME (false
    /// for a `.p7m` file whose content may be anything). Nothing is written unless the key has
    /// passed every check that can be made before streaming (CEK length, CBC padding of the last
    /// block, the MIME start; for GCM the tag over the whole content). If writing fails midway,
    /// the caller must discard what was written.
    pub fn decrypt_cms_with(
        &self,
        cms: &[u8],
        out: &mut dyn std::io::Write,
        check_mime: bool,
    ) -> Result<LayerInfo> {
        let header = envelope::parse(cms)?;
        let cipher = algorithm::parse(
            &header.content_algorithm_der,
            header.content_algorithm_offset,
        )?;
        check_cipher_fits(header.kind, &cipher)?;
        if !header.has_content() {
            return Err(Error::Asn1 {
                what: "encryptedContent",
                offset: header.content_algorithm_offset,
                detail: "absent (detached content is not supported)".into(),
            });
        }
        let parsed = parse_recipients(&header)?;
        // (recipient index, key index) pairs: matched ones first, then, if asked, every key.
        let mut attempts = self.matched(&parsed);
        // Keys tried only because of --try-all-keys must pass the MIME check outright.
        let matched = attempts.len();
        if attempts.is_empty() && self.options.try_all_keys {
            for (ri, r) in parsed.recipients.iter().enumerate() {
                for (ki, p) in self.prepared.iter().enumerate() {
                    let fits = matches!(
                        (&r.route, p),
                        (Route::Ktri { .. }, Prepared::Rsa(_))
                            | (Route::Kari { .. }, Prepared::Ec(_))
                    );
                    if fits {
                        attempts.push((ri, ki));
                    }
                }
            }
        }
        if attempts.is_empty() {
            let mut names: Vec<String> = parsed
                .recipients
                .iter()
                .map(|r| match self.keys.describe(&r.id) {
                    Some(subject) => format!("{} ({subject})", r.id),
                    None => r.id.to_string(),
                })
                .collect();
            names.extend(parsed.other.iter().cloned());
            return Err(Error::NoMatchingKey { recipients: names });
        }

        let layer = |ri, ki, opened| self.layer_info(header.kind, &parsed, ri, ki, opened);
        let mut last_error = None;
        // A key whose plaintext passed every check but the MIME shape: kept in reserve. If no
        // other key does better, its plaintext is the answer (real messages such as RFC 4134 5.3
        // carry content without MIME headers); the shape only breaks ties between keys.
        let mut not_mime: Option<(usize, usize)> = None;
        for (n, &(ri, ki)) in attempts.iter().enumerate() {
            match self.try_key(
                &header,
                &cipher,
                &parsed.recipients[ri],
                ki,
                check_mime,
                out,
            ) {
                Ok(opened) => return Ok(layer(ri, ki, opened)),
                // Output already started: another key can't help, and the caller must discard.
                Err(TryError::Fatal(e)) => return Err(e),
                Err(TryError::NotMime(e)) => {
                    if n < matched {
                        not_mime.get_or_insert((ri, ki));
                    }
                    last_error = Some(e);
                }
                Err(TryError::Next(e)) => last_error = Some(e),
            }
        }
        if let Some((ri, ki)) = not_mime {
            return match self.try_key(&header, &cipher, &parsed.recipients[ri], ki, false, out) {
                Ok(opened) => Ok(layer(ri, ki, opened)),
                Err(TryError::Fatal(e) | TryError::Next(e) | TryError::NotMime(e)) => Err(e),
            };
        }
        Err(last_error.unwrap_or(Error::NoMatchingKey { recipients: vec![] }))
    }

    fn try_key(
        &self,
        header: &EnvelopeHeader<'_>,
        cipher: &ContentCipher,
        recipient: &Recipient,
        ki: usize,
        check_mime: bool,
        out: &mut dyn std::io::Write,
    ) -> std::result::Result<(String, String, u64, u64), TryError> {
        let wrong = |reason: String| {
            TryError::Next(Error::WrongKey {
                recipient: recipient.id.to_string(),
                reason,
            })
        };
        let (cek, transport) = self.unwrap_cek(recipient, ki, &wrong)?;
        if !cipher.accepts_key_len(cek.len()) {
            return Err(wrong(format!(
                "the unwrapped key has {} bytes, which {} cannot take",
                cek.len(),
                oid_name(cipher)
            )));
        }
        let mut cipher = cipher.clone();
        algorithm::resolve_rc2(&mut cipher, cek.len());
        let name = cipher.describe(cek.len());
        match &cipher {
            ContentCipher::Cbc { cipher: bc, iv, .. } => self
                .cbc(header, *bc, iv, &cek, check_mime, out, &wrong)
                .map(|(c, p)| (name, transport, c, p)),
            ContentCipher::Gcm { nonce, tag_len, .. } => self
                .gcm(header, nonce, *tag_len, &cek, check_mime, out, &wrong)
                .map(|(c, p)| (name, transport, c, p)),
        }
    }

    /// For a message too large to hold ([`crate::stream`]): the one key that opens this
    /// envelope, unwrapped into a CBC stream or a GCM decryptor ready for the ciphertext, and
    /// the layer record (lengths left 0 for the caller). `None` whenever streaming could answer
    /// differently from [`Decryptor::decrypt_cms`]: no matching key, or several candidate keys
    /// (choosing between keys needs the padding or the tag at the very end), a key that does
    /// not unwrap; and for GCM, no spool folder to hold the plaintext until the tag verifies.
    /// The cipher is taken to suit the envelope: `stream::locate` has checked it.
    pub(crate) fn open_stream(
        &self,
        header: &EnvelopeHeader<'_>,
    ) -> Option<(StreamCipher, LayerInfo)> {
        let mut cipher = algorithm::parse(
            &header.content_algorithm_der,
            header.content_algorithm_offset,
        )
        .ok()?;
        if matches!(cipher, ContentCipher::Gcm { .. }) && self.options.spool_dir.is_none() {
            return None;
        }
        let parsed = parse_recipients(header).ok()?;
        let [(ri, ki)] = self.matched(&parsed)[..] else {
            return None;
        };
        let recipient = parsed.recipients.get(ri)?;
        let wrong = |reason: String| {
            TryError::Next(Error::WrongKey {
                recipient: recipient.id.to_string(),
                reason,
            })
        };
        let (cek, transport) = self.unwrap_cek(recipient, ki, &wrong).ok()?;
        if !cipher.accepts_key_len(cek.len()) {
            return None;
        }
        algorithm::resolve_rc2(&mut cipher, cek.len());
        let content_cipher = cipher.describe(cek.len());
        let layer = self.layer_info(
            header.kind,
            &parsed,
            ri,
            ki,
            (content_cipher, transport, 0, 0),
        );
        let stream = match &cipher {
            ContentCipher::Cbc { cipher: bc, iv, .. } => {
                let dec = self.provider.cbc_decryptor(*bc, &cek).ok()?;
                // A streamed message is large: CBC decryption splits across every core (what
                // 3DES needs; AES hardly notices).
                let threads = rayon::current_num_threads();
                StreamCipher::Cbc(CbcStream::new(dec, iv).with_threads(threads))
            }
            ContentCipher::Gcm { nonce, tag_len, .. } => StreamCipher::Gcm {
                // The authAttrs (the AAD) follow the content: they join the tag at the end.
                gcm: Box::new(GcmDecryptor::new(self.provider, &cek, nonce, &[]).ok()?),
                tag_len: *tag_len,
                spool_dir: self.options.spool_dir.clone()?,
            },
        };
        Some((stream, layer))
    }

    /// The (recipient, key) pairs whose recipient identifier names a loaded key.
    fn matched(&self, parsed: &Parsed) -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for (ri, r) in parsed.recipients.iter().enumerate() {
            for ki in self.keys.lookup(&r.id) {
                pairs.push((ri, ki));
            }
        }
        pairs
    }

    /// The record of an envelope opened for recipient `ri` with key `ki`; `opened` is (content
    /// cipher, key transport, ciphertext length, plaintext length).
    fn layer_info(
        &self,
        kind: EnvelopeKind,
        parsed: &Parsed,
        ri: usize,
        ki: usize,
        opened: (String, String, u64, u64),
    ) -> LayerInfo {
        let (content_cipher, key_transport, ciphertext_len, plaintext_len) = opened;
        LayerInfo {
            kind,
            content_cipher,
            key_transport,
            recipients: parsed.recipients.iter().map(|r| r.id.clone()).collect(),
            used_recipient: parsed.recipients[ri].id.clone(),
            key_source: self
                .keys
                .keys()
                .get(ki)
                .map(|k| k.source.clone())
                .unwrap_or_default(),
            ciphertext_len,
            plaintext_len,
        }
    }

    /// Recovers the content-encryption key with key `ki` for `recipient`, and describes how.
    fn unwrap_cek(
        &self,
        recipient: &Recipient,
        ki: usize,
        wrong: &dyn Fn(String) -> TryError,
    ) -> std::result::Result<(Zeroizing<Vec<u8>>, String), TryError> {
        let prepared = self
            .prepared
            .get(ki)
            .ok_or_else(|| wrong("key index out of range".into()))?;
        let (cek, transport) = match (&recipient.route, prepared) {
            (_, Prepared::Unusable(why)) => {
                return Err(wrong(format!("key could not be prepared: {why}")));
            }
            (
                Route::Ktri {
                    padding,
                    encrypted_key,
                },
                Prepared::Rsa(key),
            ) => {
                let padding = padding.as_ref().map_err(|e| TryError::Next(e.clone()))?;
                let (cek, used) = rsa_unwrap::unwrap(key.as_ref(), padding, encrypted_key)
                    .map_err(|e| wrong(format!("RSA decryption failed: {e}")))?;
                (cek, used.describe())
            }
            (
                Route::Kari {
                    kari,
                    encrypted_key,
                },
                Prepared::Ec(key),
            ) => {
                let u = crate::unwrap::ecdh::unwrap_kari(
                    self.provider,
                    key.as_ref(),
                    kari,
                    encrypted_key,
                )
                .map_err(|e| match e {
                    Error::UnsupportedAlgorithm { .. } | Error::BadParameters { .. } => {
                        TryError::Next(e)
                    }
                    other => wrong(other.to_string()),
                })?;
                (u.cek, u.description)
            }
            (Route::Ktri { .. }, Prepared::Ec(_)) => {
                return Err(wrong("an EC key cannot open RSA key transport".into()));
            }
            (Route::Kari { .. }, Prepared::Rsa(_)) => {
                return Err(wrong("an RSA key cannot open key agreement".into()));
            }
        };
        Ok((cek, transport))
    }

    #[allow(clippy::too_many_arguments)]
    fn cbc(
        &self,
        header: &EnvelopeHeader<'_>,
        bc: crate::provider::BlockCipher,
        iv: &[u8],
        cek: &Zeroizing<Vec<u8>>,
        check_mime: bool,
        out: &mut dyn std::io::Write,
        wrong: &dyn Fn(String) -> TryError,
    ) -> std::result::Result<(u64, u64), TryError> {
        let bs = bc.block_len();
        // Gather the first block and the last two blocks without decrypting anything, to check
        // padding and the MIME start before a byte is written.
        let mut first: Vec<u8> = Vec::with_capacity(bs);
        let mut tail: Vec<u8> = Vec::with_capacity(4 * bs);
        let mut total: u64 = 0;
        header
            .content_segments(&mut |seg, _| {
                total += seg.len() as u64;
                if first.len() < bs {
                    let take = (bs - first.len()).min(seg.len());
                    first.extend_from_slice(&seg[..take]);
                }
                // Only the last two blocks matter: never copy a whole (possibly huge) segment.
                let keep = seg.len().min(2 * bs);
                tail.extend_from_slice(&seg[seg.len() - keep..]);
                if tail.len() > 2 * bs {
                    tail.drain(..tail.len() - 2 * bs);
                }
                Ok(())
            })
            .map_err(TryError::Next)?;
        if total == 0 || !total.is_multiple_of(bs as u64) {
            return Err(TryError::Next(Error::Asn1 {
                what: "encryptedContent",
                offset: header.content_algorithm_offset,
                detail: format!("{total} bytes is not a whole number of {bs}-byte blocks"),
            }));
        }
        let dec = self
            .provider
            .cbc_decryptor(bc, cek)
            .map_err(|e| wrong(e.to_string()))?;
        // Last block: its "IV" is the block before it (or the real IV for a one-block message).
        let mut last = tail[tail.len() - bs..].to_vec();
        let prev = if tail.len() >= 2 * bs {
            tail[tail.len() - 2 * bs..tail.len() - bs].to_vec()
        } else {
            iv.to_vec()
        };
        dec.decrypt(&prev, &mut last)
            .map_err(|e| wrong(e.to_string()))?;
        let pad = usize::from(last[bs - 1]);
        if pad == 0 || pad > bs || !last[bs - pad..].iter().all(|&b| usize::from(b) == pad) {
            return Err(wrong("bad CBC padding".into()));
        }
        if check_mime {
            let mut f = first.clone();
            dec.decrypt(iv, &mut f).map_err(|e| wrong(e.to_string()))?;
            let visible = if total as usize == bs {
                &f[..bs - pad]
            } else {
                &f[..]
            };
            if !looks_like_mime_start(visible) {
                return Err(not_mime(wrong("the plaintext is not a MIME entity".into())));
            }
        }
        // The key is right as far as can be told: stream.
        // A big message uses every core (CBC decryption splits across blocks); small ones don't pay
        // for threads, the caller already runs many messages at once.
        let threads = if total >= 4 * 1024 * 1024 {
            rayon::current_num_threads()
        } else {
            1
        };
        let mut stream = CbcStream::new(dec, iv).with_threads(threads);
        header
            .content_segments(&mut |seg, _| stream.update(seg, out))
            .map_err(TryError::Fatal)?;
        let plain = stream.finish(out).map_err(|e| match e {
            Ok(p) => TryError::Fatal(Error::WrongKey {
                recipient: String::new(),
                reason: p.0,
            }),
            Err(e) => TryError::Fatal(e),
        })?;
        Ok((total, plain))
    }

    #[allow(clippy::too_many_arguments)]
    fn gcm(
        &self,
        header: &EnvelopeHeader<'_>,
        nonce: &[u8],
        tag_len: usize,
        cek: &Zeroizing<Vec<u8>>,
        check_mime: bool,
        out: &mut dyn std::io::Write,
        wrong: &dyn Fn(String) -> TryError,
    ) -> std::result::Result<(u64, u64), TryError> {
        let mac = header.mac.as_deref().ok_or_else(|| {
            TryError::Next(Error::Asn1 {
                what: "mac",
                offset: 0,
                detail: "missing".into(),
            })
        })?;
        check_mac_len(mac, tag_len).map_err(TryError::Next)?;
        let aad = header.auth_attrs_der.as_deref().unwrap_or(&[]);
        if let Some(dir) = &self.options.spool_dir
            && header.content_len_hint() >= self.options.spool_threshold
        {
            return self.gcm_spooled(header, dir, nonce, aad, mac, cek, check_mime, out, wrong);
        }
        // Plaintext is held back until the tag verifies, in memory (bounded by the input size).
        let mut plain = Zeroizing::new(Vec::with_capacity(
            usize::try_from(header.content_len_hint()).unwrap_or(0),
        ));
        header
            .content_segments(&mut |seg, _| {
                plain.extend_from_slice(seg);
                Ok(())
            })
            .map_err(TryError::Next)?;
        let total = plain.len() as u64;
        let fast = self
            .provider
            .aes_gcm_open(cek, nonce, aad, &mut plain, mac)
            .map_err(|e| wrong(e.to_string()))?;
        if !fast {
            let mut gcm = GcmDecryptor::new(self.provider, cek, nonce, aad)
                .map_err(|e| wrong(e.to_string()))?;
            gcm.update(&mut plain).map_err(TryError::Next)?;
            gcm.finish(mac).map_err(|e| wrong(tag_failure(&e)))?;
        }
        if check_mime && !looks_like_mime_start(&plain[..plain.len().min(64)]) {
            return Err(not_mime(wrong("the plaintext is not a MIME entity".into())));
        }
        out.write_all(&plain)
            .map_err(|e| TryError::Fatal(e.into()))?;
        Ok((total, plain.len() as u64))
    }
}

impl Decryptor<'_> {
    /// GCM for large content: plaintext goes to an unnamed temporary file in `dir` until the tag
    /// verifies, then is copied to `out`. Nothing reaches `out` for a bad tag, and nothing
    /// remains on disk either way.
    #[allow(clippy::too_many_arguments)]
    fn gcm_spooled(
        &self,
        header: &EnvelopeHeader<'_>,
        dir: &std::path::Path,
        nonce: &[u8],
        aad: &[u8],
        mac: &[u8],
        cek: &Zeroizing<Vec<u8>>,
        check_mime: bool,
        out: &mut dyn std::io::Write,
        wrong: &dyn Fn(String) -> TryError,
    ) -> std::result::Result<(u64, u64), TryError> {
        use std::io::{Seek, Write};
        let io = |e: std::io::Error| TryError::Next(spool_error(dir, e));
        let mut file = tempfile::tempfile_in(dir).map_err(io)?;
        let mut gcm =
            GcmDecryptor::new(self.provider, cek, nonce, aad).map_err(|e| wrong(e.to_string()))?;
        let mut buf = Zeroizing::new(Vec::with_capacity(64 * 1024));
        let mut head: Vec<u8> = Vec::with_capacity(64);
        let mut total = 0u64;
        header
            .content_segments(&mut |seg, _| {
                for chunk in seg.chunks(64 * 1024) {
                    buf.clear();
                    buf.extend_from_slice(chunk);
                    gcm.update(&mut buf)?;
                    let room = 64 - head.len();
                    head.extend_from_slice(&buf[..room.min(buf.len())]);
                    file.write_all(&buf)?;
                    total += chunk.len() as u64;
                }
                Ok(())
            })
            .map_err(TryError::Next)?;
        gcm.finish(mac).map_err(|e| wrong(tag_failure(&e)))?;
        if check_mime && !looks_like_mime_start(&head) {
            return Err(not_mime(wrong("the plaintext is not a MIME entity".into())));
        }
        file.rewind().map_err(io)?;
        let copied = std::io::copy(&mut file, out).map_err(|e| TryError::Fatal(e.into()))?;
        Ok((total, copied))
    }
}

fn not_mime(t: TryError) -> TryError {
    match t {
        TryError::Next(e) => TryError::NotMime(e),
        other => other,
    }
}

fn oid_name(c: &ContentCipher) -> String {
    crate::oid::name(c.oid())
}

enum TryError {
    /// This key didn't work; another might.
    Next(Error),
    /// Every check passed but the plaintext does not start like MIME: another key may do
    /// better, else this one is used.
    NotMime(Error),
    /// Output was already written; stop.
    Fatal(Error),
}

#[cfg(test)]
mod tests {
    use super::looks_like_mime_start;

    #[test]
    fn mime_start() {
        assert!(looks_like_mime_start(b"Content-"));
        assert!(looks_like_mime_start(b"Content-Type: te"));
        assert!(looks_like_mime_start(b"\r\nbody"));
        assert!(!looks_like_mime_start(b": x"));
        assert!(!looks_like_mime_start(&[
            0x8f, 0x12, 0x00, 0x41, 0x41, 0x41, 0x41, 0x41
        ]));
        assert!(!looks_like_mime_start(b"Hello world!"));
    }
}
