//! Content cipher selection.
pub struct ContentCipher;
