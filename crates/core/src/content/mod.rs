//! Content decryption: which cipher an AlgorithmIdentifier names, streaming CBC with padding
//! checked at the end, and GCM whose plaintext is only released once the tag verifies.

pub mod algorithm;
pub mod cbc;
pub mod gcm;

pub use algorithm::ContentCipher;
