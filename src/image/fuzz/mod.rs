//! Contracts of the parsers that read untrusted image bytes, for fuzzing,
//! the way [`crate::build::parser::fuzz`] states the Dockerfile parser's.
//! Each `check` takes arbitrary input and returns `Err` saying which part
//! of the contract broke; it is what the seeded mutation fuzzers below (run
//! by every `cargo test`) and the coverage-guided `cargo fuzz` targets in
//! `fuzz/fuzz_targets/` assert on every input.
//!
//! * [`reference`] — image references (`busybox:1.36`, `host:5000/a@sha256:…`).
//! * [`oci`] — manifests, indexes and image configs (`image::oci`).
//! * [`tar`] — layer tar headers as layer apply reads them
//!   (`image::apply`'s stream reader and header checks).
//!
//! The `WWW-Authenticate` parser's contract is
//! `crate::distribution::challenge_fuzz`, beside its parser.
//!
//! Every mutation fuzzer prints its seed; `STRATA_SEED=<n>` replays it and
//! `STRATA_FUZZ_ITERATIONS=<n>` runs longer.

pub mod oci;
pub mod reference;
pub use super::apply::fuzz as tar;

#[cfg(test)]
pub(crate) mod driver;
