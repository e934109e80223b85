//! One error type for the whole crate. Every variant says *what* failed (an OID, an offset,
//! a recipient, a key file) so that a report line can be read without a debugger.

use std::fmt;

/// Where in the input a problem was found: the byte offset into the CMS blob being parsed.
pub type Offset = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The BER/DER structure is malformed at `offset` (`what` names the field being read).
    Asn1 {
        what: &'static str,
        offset: Offset,
        detail: String,
    },
    /// The input ended before the structure did.
    Truncated { what: &'static str, offset: Offset },
    /// A limit that protects memory and stack was exceeded (nesting depth, header size, ...).
    Limit { what: &'static str, limit: u64 },
    /// The ContentInfo is not something this crate decrypts (e.g. signed-data at top level where an
    /// envelope was expected).
    NotEnveloped { content_type: String },
    /// An algorithm we do not implement, named by its OID.
    UnsupportedAlgorithm { what: &'static str, oid: String },
    /// Algorithm parameters were present but unusable (wrong IV length, bad RC2 version, ...).
    BadParameters {
        what: &'static str,
        oid: String,
        detail: String,
    },
    /// None of the message's recipients matches a loaded key.
    NoMatchingKey { recipients: Vec<String> },
    /// A key matched the recipient but decryption proved it wrong (bad CEK length, bad CBC padding,
    /// GCM tag mismatch, the plaintext is no MIME entity). RSA implicit rejection makes a wrong key
    /// look like success until one of these checks fails.
    WrongKey { recipient: String, reason: String },
    /// Authenticated decryption failed: the GCM tag or the authenticated attributes do not verify.
    AuthenticationFailed { detail: String },
    /// The MIME structure could not be processed.
    Mime { detail: String },
    /// Loading a key or certificate failed.
    Key {
        file: String,
        reason: KeyProblem,
        detail: String,
    },
    /// A primitive of the crypto provider failed (should not happen with valid inputs).
    Crypto {
        operation: &'static str,
        detail: String,
    },
    /// Reading or writing the content stream failed.
    Io { detail: String },
    /// An error inside a MIME part below the top level: `path` is the part ("2", "2.1",
    /// "2/rfc822/1"), `source` what went wrong there.
    InPart { path: String, source: Box<Error> },
}

/// Why a key file could not be used; the CLI prints these so an admin knows whether to look for
/// a password or a different file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProblem {
    WrongPassword,
    NeedsPassword,
    Corrupt,
    NoPrivateKey,
    Unsupported,
    Unreadable,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyProblem::WrongPassword => "wrong password",
            KeyProblem::NeedsPassword => "password needed",
            KeyProblem::Corrupt => "corrupt or not a key file",
            KeyProblem::NoPrivateKey => "no private key in file",
            KeyProblem::Unsupported => "unsupported key type",
            KeyProblem::Unreadable => "cannot read file",
        })
    }
}

/// How many recipients the display of [`Error::NoMatchingKey`] names before "and N more".
const MAX_RECIPIENTS_SHOWN: usize = 20;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Asn1 {
                what,
                offset,
                detail,
            } => {
                write!(f, "malformed {what} at offset {offset}: {detail}")
            }
            Error::Truncated { what, offset } => write!(f, "truncated {what} at offset {offset}"),
            Error::Limit { what, limit } => write!(f, "{what} exceeds the limit of {limit}"),
            Error::NotEnveloped { content_type } => {
                write!(f, "not an enveloped message (content type {content_type})")
            }
            Error::UnsupportedAlgorithm { what, oid } => write!(f, "unsupported {what} {oid}"),
            Error::BadParameters { what, oid, detail } => {
                write!(f, "bad parameters for {what} {oid}: {detail}")
            }
            Error::NoMatchingKey { recipients } => {
                // A hostile envelope may name 100,000 recipients: the line stays readable.
                let shown = recipients.len().min(MAX_RECIPIENTS_SHOWN);
                write!(
                    f,
                    "no key for any recipient: {}",
                    recipients[..shown].join("; ")
                )?;
                if recipients.len() > shown {
                    write!(f, "; and {} more", recipients.len() - shown)?;
                }
                Ok(())
            }
            Error::WrongKey { recipient, reason } => {
                write!(f, "wrong key for recipient {recipient}: {reason}")
            }
            Error::AuthenticationFailed { detail } => write!(f, "authentication failed: {detail}"),
            Error::Mime { detail } => write!(f, "MIME: {detail}"),
            Error::Key {
                file,
                reason,
                detail,
            } => {
                if detail.is_empty() {
                    write!(f, "{file}: {reason}")
                } else {
                    write!(f, "{file}: {reason} ({detail})")
                }
            }
            Error::Crypto { operation, detail } => write!(f, "{operation} failed: {detail}"),
            Error::Io { detail } => write!(f, "I/O: {detail}"),
            Error::InPart { path, source } => write!(f, "MIME part {path}: {source}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io {
            detail: e.to_string(),
        }
    }
}

impl Error {
    /// A short machine-friendly category for reports (`status`/`reason` columns).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Asn1 { .. } | Error::Truncated { .. } => "malformed",
            Error::Limit { .. } => "limit",
            Error::NotEnveloped { .. } => "not_enveloped",
            Error::UnsupportedAlgorithm { .. } | Error::BadParameters { .. } => "unsupported",
            Error::NoMatchingKey { .. } => "no_key",
            Error::WrongKey { .. } => "wrong_key",
            Error::AuthenticationFailed { .. } => "auth_failed",
            Error::Mime { .. } => "mime",
            Error::Key { .. } => "key",
            Error::Crypto { .. } => "crypto",
            Error::Io { .. } => "io",
            Error::InPart { source, .. } => source.kind(),
        }
    }

    /// The error itself, without the MIME part context around it.
    pub fn root(&self) -> &Error {
        match self {
            Error::InPart { source, .. } => source.root(),
            other => other,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
