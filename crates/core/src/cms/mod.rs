//! CMS structures: a streaming BER reader for the outer layers, the EnvelopedData /
//! AuthEnvelopedData header, and recipient matching. RecipientInfos and certificates are decoded
//! with the RustCrypto `cms` / `x509-cert` types; only the framing around the (possibly huge)
//! encryptedContent is read by hand so that it can be streamed.

pub mod ber;
pub mod content_stream;
pub mod envelope;
pub mod recipient;

pub use envelope::{EnvelopeHeader, EnvelopeKind};
pub use recipient::RecipientId;
