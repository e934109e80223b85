//! EnvelopedData (RFC 5652 §6) and AuthEnvelopedData (RFC 5083) headers.

/// Which of the two envelope types a ContentInfo holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    Enveloped,
    AuthEnveloped,
}

impl EnvelopeKind {
    pub fn name(self) -> &'static str {
        match self {
            EnvelopeKind::Enveloped => "enveloped-data",
            EnvelopeKind::AuthEnveloped => "authEnveloped-data",
        }
    }
}

/// The parsed header (placeholder until the streaming parser lands).
#[derive(Debug)]
pub struct EnvelopeHeader {
    pub kind: EnvelopeKind,
}
