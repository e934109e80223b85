//! RSA key transport.
