//! unseal-core: decrypts CMS / S/MIME envelopes (EnvelopedData, AuthEnvelopedData) found
//! anywhere in a MIME message, given a ring of private keys. It knows nothing of mailboxes,
//! terminals or files: bytes (or a reader) in, bytes (or a writer) and an [`Outcome`] out.
//!
//! The flow for one message: `mime::detect` finds envelopes, `cms::envelope` parses one header
//! while streaming, `cms::recipient` matches a recipient against the [`KeyRing`], `unwrap`
//! recovers the content-encryption key, `content` stream-decrypts, `mime::rewrite` splices the
//! plaintext back into the message.

pub mod cms;
pub mod content;
pub mod error;
pub mod keyring;
pub mod mime;
pub mod oid;
pub mod provider;
pub mod stream;
pub mod unwrap;

pub use error::{Error, KeyProblem, Result};
pub mod decrypt;
pub use decrypt::{DecryptOptions, Decryptor, EnvelopeSummary, LayerInfo};
pub use mime::{
    FoundEnvelope, LayerReport, MessageOptions, MessageOutcome, decrypt_message, find_envelopes,
};
