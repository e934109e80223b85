//! The streaming path: never a panic, never output the in-memory path would not give, and
//! never a byte of AES-GCM plaintext written before its tag verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use unseal_core::cms::envelope::EnvelopeKind;
use unseal_core::{MessageOptions, decrypt_message, stream};

/// The spool folder, made once (spooled files are unnamed and gone when closed).
fn spool() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("spool folder"))
        .path()
}

fuzz_target!(|data: &[u8]| {
    let dec = unseal_fuzz::spooling_decryptor(spool());
    let Some(job) = stream::prepare(&dec, data) else {
        return;
    };
    let authenticated = job.layer().kind == EnvelopeKind::AuthEnveloped;
    let opts = MessageOptions::default();
    let mut out = Vec::new();
    match job.run(&opts, &mut out, &mut |_| {}) {
        Ok(_) => {
            let mem = decrypt_message(&dec, data, &opts).expect("streamed, but memory refused");
            assert_eq!(
                mem.output.as_deref(),
                Some(&out[..]),
                "streamed output differs"
            );
        }
        Err(_) if authenticated => {
            assert!(out.is_empty(), "GCM plaintext written before its tag verified");
        }
        Err(_) => {}
    }
});
