//! Image-tier integration tests: the `strata` binary and library against a
//! data root on a real scratch filesystem (loop device), as root.
//!
//! One test binary (ripgrep's habit); each module is one area: the seed
//! walkthrough, deep stacks, hostile layers, archives and interop.

mod archives;
mod commit;
mod common;
mod crash;
mod deep;
mod hostile;
mod parallel;
mod walkthrough;
