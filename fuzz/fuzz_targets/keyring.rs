//! Key files: PKCS#12 (legacy PBE and PBES2, MAC or none), PEM and DER PKCS#8 (encrypted too),
//! PKCS#1 (legacy `Proc-Type` encryption too), SEC1 and certificates, all read by the key
//! ring's own BER reader. A damaged escrow file must be an error naming it, never a panic or an
//! allocation sized by a length field. Loaded with the fixtures' password (so the encrypted
//! seeds decrypt and mutations reach the key parsers behind the PBE) and with none.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unseal_core::keyring::KeyRing;

static PASSWORD: &str = include_str!("../../fixtures/keys/password.txt");

fuzz_target!(|data: &[u8]| {
    let mut ring = KeyRing::new();
    for password in [Some(PASSWORD.trim_end()), None] {
        if ring.load_bytes("fuzz", data, password).is_ok() {
            for key in ring.keys() {
                let _ = key.description();
            }
        }
    }
});
