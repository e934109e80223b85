//! Object identifiers this crate recognises, named as in the RFCs that define them.

use der::asn1::ObjectIdentifier as Oid;

// Content types (RFC 5652, RFC 5083)
pub const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
pub const ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
pub const DIGESTED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.5");
pub const ENCRYPTED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.6");
pub const AUTH_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.23");
/// id-ct-compressedData (RFC 3274).
pub const COMPRESSED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.9");

// Key transport
pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub const RSAES_OAEP: Oid = Oid::new_unwrap("1.2.840.113549.1.1.7");
pub const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
pub const P_SPECIFIED: Oid = Oid::new_unwrap("1.2.840.113549.1.1.9");
/// Some very old encoders (seen in 1990s Netscape traffic) use the X.509 `rsa` OID.
pub const RSA_X509: Oid = Oid::new_unwrap("2.5.8.1.1");

// Hashes
pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
pub const SHA224: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.4");
pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");

// Key agreement (RFC 5753, SEC 1)
pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
pub const SECP521R1: Oid = Oid::new_unwrap("1.3.132.0.35");
pub const DH_SINGLE_PASS_STD_SHA1_KDF: Oid = Oid::new_unwrap("1.3.133.16.840.63.0.2");
pub const DH_SINGLE_PASS_STD_SHA224_KDF: Oid = Oid::new_unwrap("1.3.132.1.11.0");
pub const DH_SINGLE_PASS_STD_SHA256_KDF: Oid = Oid::new_unwrap("1.3.132.1.11.1");
pub const DH_SINGLE_PASS_STD_SHA384_KDF: Oid = Oid::new_unwrap("1.3.132.1.11.2");
pub const DH_SINGLE_PASS_STD_SHA512_KDF: Oid = Oid::new_unwrap("1.3.132.1.11.3");
pub const DH_SINGLE_PASS_COFACTOR_SHA1_KDF: Oid = Oid::new_unwrap("1.3.133.16.840.63.0.3");
pub const DH_SINGLE_PASS_COFACTOR_SHA224_KDF: Oid = Oid::new_unwrap("1.3.132.1.14.0");
pub const DH_SINGLE_PASS_COFACTOR_SHA256_KDF: Oid = Oid::new_unwrap("1.3.132.1.14.1");
pub const DH_SINGLE_PASS_COFACTOR_SHA384_KDF: Oid = Oid::new_unwrap("1.3.132.1.14.2");
pub const DH_SINGLE_PASS_COFACTOR_SHA512_KDF: Oid = Oid::new_unwrap("1.3.132.1.14.3");

// Key wrap
pub const AES128_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.5");
pub const AES192_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.25");
pub const AES256_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.45");
pub const DES_EDE3_WRAP: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.3.6");

// Content ciphers
pub const DES_CBC: Oid = Oid::new_unwrap("1.3.14.3.2.7");
pub const DES_EDE3_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.7");
pub const RC2_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.2");
pub const CAST5_CBC: Oid = Oid::new_unwrap("1.2.840.113533.7.66.10");
pub const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
pub const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
pub const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
pub const AES128_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.6");
pub const AES192_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.26");
pub const AES256_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.46");
/// Camellia in CBC mode (RFC 3657).
pub const CAMELLIA128_CBC: Oid = Oid::new_unwrap("1.2.392.200011.61.1.1.1.2");
pub const CAMELLIA192_CBC: Oid = Oid::new_unwrap("1.2.392.200011.61.1.1.1.3");
pub const CAMELLIA256_CBC: Oid = Oid::new_unwrap("1.2.392.200011.61.1.1.1.4");
/// id-seedCBC (RFC 4010).
pub const SEED_CBC: Oid = Oid::new_unwrap("1.2.410.200004.1.4");

// Certificate extensions
pub const SUBJECT_KEY_IDENTIFIER: Oid = Oid::new_unwrap("2.5.29.14");

/// A human name for an OID we know, else its dotted form.
pub fn name(oid: &Oid) -> String {
    let known: &[(Oid, &str)] = &[
        (DATA, "data"),
        (SIGNED_DATA, "signed-data"),
        (ENVELOPED_DATA, "enveloped-data"),
        (DIGESTED_DATA, "digested-data"),
        (ENCRYPTED_DATA, "encrypted-data"),
        (AUTH_ENVELOPED_DATA, "auth-enveloped-data"),
        (RSA_ENCRYPTION, "rsaEncryption"),
        (RSAES_OAEP, "RSAES-OAEP"),
        (DES_CBC, "DES-CBC"),
        (DES_EDE3_CBC, "DES-EDE3-CBC"),
        (RC2_CBC, "RC2-CBC"),
        (CAST5_CBC, "CAST5-CBC"),
        (AES128_CBC, "AES-128-CBC"),
        (AES192_CBC, "AES-192-CBC"),
        (AES256_CBC, "AES-256-CBC"),
        (AES128_GCM, "AES-128-GCM"),
        (AES192_GCM, "AES-192-GCM"),
        (AES256_GCM, "AES-256-GCM"),
        (CAMELLIA128_CBC, "CAMELLIA-128-CBC"),
        (CAMELLIA192_CBC, "CAMELLIA-192-CBC"),
        (CAMELLIA256_CBC, "CAMELLIA-256-CBC"),
        (SEED_CBC, "SEED-CBC"),
        (AES128_WRAP, "AES-128-WRAP"),
        (AES192_WRAP, "AES-192-WRAP"),
        (AES256_WRAP, "AES-256-WRAP"),
        (DES_EDE3_WRAP, "DES-EDE3-WRAP"),
    ];
    known
        .iter()
        .find(|(o, _)| o == oid)
        .map(|(_, n)| format!("{n} ({oid})"))
        .unwrap_or_else(|| oid.to_string())
}
