//! Layer tar streams on arbitrary bytes: every input must meet
//! `strata::image::fuzz::tar::check`'s contract (the stream reader against
//! the `tar` crate, the header checks of layer apply).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = strata::image::fuzz::tar::check(data) {
        panic!("{why}\ninput: {} bytes", data.len());
    }
});
