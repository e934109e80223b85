//! The Outlook .msg reader (compound file + MAPI properties) and its MIME builder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unseal_mailbox::msg::msg_to_mime;

fuzz_target!(|data: &[u8]| {
    unseal_fuzz::contained_panics_are_not_crashes();
    let _ = msg_to_mime(data);
});
