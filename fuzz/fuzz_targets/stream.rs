//! The streaming path: never a panic, and never output the in-memory path would not give.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unseal_core::{MessageOptions, decrypt_message, stream};

fuzz_target!(|data: &[u8]| {
    let dec = unseal_fuzz::decryptor();
    let Some(job) = stream::prepare(&dec, data) else {
        return;
    };
    let opts = MessageOptions::default();
    let mut out = Vec::new();
    if job.run(&opts, &mut out, &mut |_| {}).is_ok() {
        let mem = decrypt_message(&dec, data, &opts).expect("streamed, but memory refused");
        assert_eq!(
            mem.output.as_deref(),
            Some(&out[..]),
            "streamed output differs"
        );
    }
});
