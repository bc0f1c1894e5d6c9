//! The image reference parser's contract. For any text,
//! [`Reference::parse_as_written`] and [`Reference::parse`] return (no
//! panic) and:
//! * parsing is deterministic, and `parse` is `parse_as_written` plus the
//!   default tag when neither tag nor digest is given;
//! * an error names the input, and the part it blames
//!   ([`ReferenceError::part`]) is a piece of the input;
//! * a reference that parses round-trips: its `Display` form and its
//!   fully qualified form parse back to the same value;
//! * what is accepted is Docker's grammar: a lowercase repository, a tag of
//!   at most 128 characters, a fully qualified name of at most 255.

use crate::image::reference::{Reference, ReferenceError, DEFAULT_TAG};

/// Checks the contract on `text`; `Err` says which part broke.
pub fn check(text: &str) -> Result<(), String> {
    let written = Reference::parse_as_written(text);
    if written != Reference::parse_as_written(text) {
        return Err("two parses of the same text differ".into());
    }
    let defaulted = Reference::parse_as_written(text).map(|mut r| {
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        r
    });
    if Reference::parse(text) != defaulted {
        return Err(format!("parse gives {:?}, not parse_as_written plus the default tag", Reference::parse(text)));
    }
    match written {
        Err(e) => check_error(text, &e),
        Ok(r) => check_accepted(text, &r),
    }
}

fn check_error(text: &str, e: &ReferenceError) -> Result<(), String> {
    let msg = e.to_string();
    if !text.is_empty() && !msg.contains(&format!("{text:?}")) {
        return Err(format!("error does not name the input: {msg}"));
    }
    match e.part() {
        Some(part) if !text.contains(part) => Err(format!("error blames {part:?}, not in the input: {msg}")),
        _ => Ok(()),
    }
}

fn check_accepted(text: &str, r: &Reference) -> Result<(), String> {
    let shown = r.to_string();
    match Reference::parse_as_written(&shown) {
        Ok(back) if back == *r => {}
        other => return Err(format!("{text:?} displays as {shown:?}, which parses to {other:?}")),
    }
    let mut full = format!("{}/{}", r.domain(), r.remote_path());
    if full.len() > 255 {
        return Err(format!("accepted a {}-character name", full.len()));
    }
    if let Some(t) = &r.tag {
        if t.is_empty() || t.len() > 128 {
            return Err(format!("accepted tag {t:?}"));
        }
        full = format!("{full}:{t}");
    }
    if let Some(d) = &r.digest {
        full = format!("{full}@{d}");
    }
    match Reference::parse_as_written(&full) {
        Ok(back) if back == *r => {}
        other => return Err(format!("{text:?} fully qualified is {full:?}, which parses to {other:?}")),
    }
    if r.repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("accepted an uppercase repository {:?}", r.repository));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::image::fuzz::driver::{self, Target};

    const SEEDS: &[&[u8]] = &[
        b"busybox",
        b"busybox:1.36",
        b"acme/my-base-image:1.0",
        b"localhost:5000/team/app:v2",
        b"docker.io/library/busybox:latest",
        b"index.docker.io/acme/x",
        b"library/a/b",
        b"quay.io/a_b/c__d/e-f--g.h:Tag_1.x-y",
        b"[::1]:5000/x:y",
        b"alpine@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        b"reg.example.com:443/r:t@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ];

    const TOKENS: &[&[u8]] = &[
        b"/",
        b":",
        b"@",
        b".",
        b"_",
        b"__",
        b"-",
        b"--",
        b"[",
        b"]",
        b"::",
        b"localhost",
        b"library/",
        b"docker.io/",
        b"sha256:",
        b"A",
        b"\xc3\xa9",
        b" ",
        b"\0",
        b"5000",
        b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];

    fn target() -> Target<'static> {
        Target { name: "reference", seeds: SEEDS, tokens: TOKENS, max_len: 600 }
    }

    /// Regressions the fuzzer found, each a broken round trip before its
    /// fix: Hub's `library/` was dropped from nested paths (so
    /// `library/a/b` pulled `a/b`); the 255-character limit was counted on
    /// the familiar name, not on the `docker.io/library/…` form a registry
    /// sees; a Hub path whose first component reads as a registry
    /// displayed as a reference to that registry.
    #[test]
    fn regressions_meet_the_contract() {
        let long = "a".repeat(240);
        for text in ["library/a/b", "docker.io/library/library/x", &long, "index.docker.io/a.cme/x"] {
            check(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
    }

    /// 5,000 mutated references per run.
    #[test]
    fn mutated_references_meet_the_contract() {
        let (seed, n) = driver::settings("reference", 0x00de_f00d, 5_000);
        driver::run(
            &target(),
            seed,
            n,
            |rng, input| driver::mutate(rng, &target(), input),
            |bytes| check(&String::from_utf8_lossy(bytes)),
        );
    }
}
