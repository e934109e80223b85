//! Errors are values that name the item (a path, or a path plus message index) and the reason,
//! so the CLI can report them and carry on with the next item.

use std::fmt;
use std::io;
use std::path::Path;

/// Everything that can go wrong while reading or writing a mailbox.
#[derive(Debug)]
pub enum Error {
    /// An operating-system call failed on `item` while doing `op` (e.g. "open", "rename").
    Io {
        item: String,
        op: &'static str,
        source: io::Error,
    },
    /// The data in `item` is not what its format requires.
    Format { item: String, reason: String },
    /// The request itself cannot be carried out (e.g. output inside the input).
    Unsupported { item: String, reason: String },
}

impl Error {
    pub fn io(item: impl fmt::Display, op: &'static str, source: io::Error) -> Self {
        Error::Io {
            item: item.to_string(),
            op,
            source,
        }
    }

    pub fn io_path(path: &Path, op: &'static str, source: io::Error) -> Self {
        Self::io(path.display(), op, source)
    }

    pub fn format(item: impl fmt::Display, reason: impl Into<String>) -> Self {
        Error::Format {
            item: item.to_string(),
            reason: reason.into(),
        }
    }

    pub fn unsupported(item: impl fmt::Display, reason: impl Into<String>) -> Self {
        Error::Unsupported {
            item: item.to_string(),
            reason: reason.into(),
        }
    }

    /// The item this error is about.
    pub fn item(&self) -> &str {
        match self {
            Error::Io { item, .. }
            | Error::Format { item, .. }
            | Error::Unsupported { item, .. } => item,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { item, op, source } => write!(f, "{item}: {op}: {source}"),
            Error::Format { item, reason } => write!(f, "{item}: {reason}"),
            Error::Unsupported { item, reason } => write!(f, "{item}: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
