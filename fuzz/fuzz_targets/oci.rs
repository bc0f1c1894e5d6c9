//! Manifests, indexes and image configs on arbitrary bytes: every input
//! must meet `strata::image::fuzz::oci::check`'s contract.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = strata::image::fuzz::oci::check(data) {
        panic!("{why}\ninput: {:?}", String::from_utf8_lossy(data));
    }
});
