//! The BER reader: `to_der` normalisation and a full `Reader` walk of arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unseal_core::cms::ber;

fuzz_target!(|data: &[u8]| {
    if let Ok(der) = ber::to_der(data, 0) {
        // Normalised output is DER-shaped: normalising again is the identity.
        let again = ber::to_der(&der, 0).expect("to_der output re-reads");
        assert_eq!(again, der, "to_der is not idempotent");
    }
    unseal_fuzz::walk_ber(data);
});
