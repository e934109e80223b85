//! The MIME walker and rewriter: envelope discovery and whole-message decryption.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unseal_core::{MessageOptions, decrypt_message, find_envelopes};

fuzz_target!(|data: &[u8]| {
    let opts = MessageOptions::default();
    let _ = find_envelopes(data, &opts);
    let dec = unseal_fuzz::decryptor();
    let _ = decrypt_message(&dec, data, &opts);
});
