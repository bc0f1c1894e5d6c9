//! The Dockerfile parser and word expander on arbitrary UTF-8: every input
//! must meet `strata::build::parser::fuzz::check`'s contract.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(why) = strata::build::parser::fuzz::check(text) {
            panic!("{why}\ninput: {text:?}");
        }
    }
});
