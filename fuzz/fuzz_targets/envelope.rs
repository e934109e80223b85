//! The envelope parser, key-less inspection, and decryption with the fixture keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unseal_core::Decryptor;
use unseal_core::cms::envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = envelope::parse(data) {
        let _ = h.content_len_hint();
        let _ = h.content_segments(&mut |_, _| Ok(()));
    }
    let _ = envelope::content_type(data);
    let _ = Decryptor::inspect_cms(data);
    let dec = unseal_fuzz::decryptor();
    let mut out = Vec::new();
    let _ = dec.decrypt_cms(data, &mut out);
    out.clear();
    let _ = dec.decrypt_cms_with(data, &mut out, false);
});
