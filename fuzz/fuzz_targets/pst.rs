//! Opening and walking a PST from a temporary file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::ops::ControlFlow;
use unseal_mailbox::pst::read_pst;

fuzz_target!(|data: &[u8]| {
    unseal_fuzz::contained_panics_are_not_crashes();
    let mut f = tempfile::Builder::new()
        .suffix(".pst")
        .tempfile()
        .expect("temp file");
    f.write_all(data).expect("write");
    f.flush().expect("flush");
    let mut n = 0usize;
    let _ = read_pst(f.path(), &mut |_item| {
        n += 1;
        if n > 10_000 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
});
