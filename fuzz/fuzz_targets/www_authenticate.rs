//! `WWW-Authenticate` headers on arbitrary UTF-8: every input must meet
//! `strata::distribution::challenge_fuzz::check`'s contract.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(why) = strata::distribution::challenge_fuzz::check(text) {
            panic!("{why}\ninput: {text:?}");
        }
    }
});
