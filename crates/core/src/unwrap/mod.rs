//! Recovering the content-encryption key (CEK) from a RecipientInfo with a private key:
//! RSA key transport (PKCS#1 v1.5, OAEP) and ECDH ephemeral-static key agreement with key wrap.

pub mod ecdh;
pub mod keywrap;
pub mod rsa;
