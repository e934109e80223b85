//! The entry point for one CMS envelope: parse the header, find a key, unwrap the CEK,
//! stream-decrypt the content into a writer.

use crate::cms::{EnvelopeKind, RecipientId};
use crate::error::{Error, Result};
use crate::keyring::KeyRing;
use crate::provider::CryptoProvider;

/// Options that change how keys are tried.
#[derive(Debug, Clone, Default)]
pub struct DecryptOptions {
    /// When no recipient matches a loaded key, try every key of a fitting type (slow: one private
    /// key operation per key; for messages whose recipient identifiers are wrong or missing).
    pub try_all_keys: bool,
}

/// What was done to open one envelope, for the trace header and the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub kind: EnvelopeKind,
    /// e.g. "AES-256-CBC", "DES-EDE3-CBC", "RC2-CBC/40", "AES-128-GCM".
    pub content_cipher: String,
    /// e.g. "RSA PKCS#1 v1.5", "RSAES-OAEP SHA-256/MGF1-SHA-1", "ECDH P-384 X9.63-SHA-384 AES-256-WRAP".
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
}

/// Holds the prepared keys (parsed once per run) and the provider.
pub struct Decryptor<'k> {
    keys: &'k KeyRing,
    provider: &'static dyn CryptoProvider,
    options: DecryptOptions,
}

impl<'k> Decryptor<'k> {
    pub fn new(
        keys: &'k KeyRing,
        provider: &'static dyn CryptoProvider,
        options: DecryptOptions,
    ) -> Result<Self> {
        Ok(Decryptor { keys, provider, options })
    }

    pub fn keys(&self) -> &KeyRing {
        self.keys
    }

    pub fn provider(&self) -> &'static dyn CryptoProvider {
        self.provider
    }

    /// Decrypts one CMS ContentInfo (DER or BER) holding EnvelopedData or AuthEnvelopedData and
    /// writes the plaintext to `out`. For AuthEnvelopedData nothing is written unless the tag
    /// verifies. On error, whatever was written to `out` must be discarded by the caller.
    pub fn decrypt_cms(&self, cms: &[u8], out: &mut dyn std::io::Write) -> Result<LayerInfo> {
        let _ = (cms, out, &self.options);
        Err(Error::Crypto { operation: "decrypt_cms", detail: "not yet implemented".into() })
    }

    /// Reads the envelope header only: kind, cipher and recipients. Needs no key.
    pub fn inspect_cms(cms: &[u8]) -> Result<EnvelopeSummary> {
        let _ = cms;
        Err(Error::Crypto { operation: "inspect_cms", detail: "not yet implemented".into() })
    }
}
