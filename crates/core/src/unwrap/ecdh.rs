//! ECDH key agreement.
