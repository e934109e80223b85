//! The mbox splitter over a temporary file (the reader memory-maps its input), every variant.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use unseal_mailbox::mbox::{MboxReader, MboxVariant, detect_variant, unquote};

fuzz_target!(|data: &[u8]| {
    let _ = detect_variant(data, 0);
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(data).expect("write");
    f.flush().expect("flush");
    for variant in [
        None,
        Some(MboxVariant::Mboxo),
        Some(MboxVariant::Mboxrd),
        Some(MboxVariant::Mboxcl),
        Some(MboxVariant::Mboxcl2),
    ] {
        let Ok(reader) = MboxReader::open(f.path(), variant) else {
            continue;
        };
        let mut total = 0usize;
        for item in reader.take(data.len() + 2).flatten() {
            total += item.bytes().len();
            let _ = unquote(item.bytes(), variant.unwrap_or(MboxVariant::Mboxrd));
        }
        // Messages are slices of the input (un-quoting only removes bytes).
        assert!(total <= data.len(), "items hold more bytes than the file");
    }
});
