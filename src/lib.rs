//! strata: a container storage engine and minimal container runtime.
//!
//! Layers, from the kernel up (dependencies point downward only):
//!
//! * [`sys`] — syscall and ioctl wrappers; the only home of `unsafe`.
//! * [`digest`], [`store`], [`mount`] — content addresses, the data root's
//!   atomic-write and locking rules, mounts as data.
//! * [`units`] — byte sizes as people write them (`64m`, `1.5G`).
//! * [`scratch`] — throwaway filesystems on loop devices for tests and
//!   benchmarks.
//! * [`uring`] — batched file I/O: io_uring and its plain-syscall twin.
//! * [`snapshot`] — the driver contract and the shared snapshot metadata.
//! * [`drivers`] — overlay and copy (btrfs, dm-thin later).
//! * [`image`] — OCI model, layer apply/diff, layer and image stores,
//!   import/load/save.
//! * [`build`] — the Dockerfile parser (the builder that runs it comes later).
//! * [`bench`] — the benchmark suite: strata against its peers, ratios
//!   not assertions.
//! * [`cli`] — the Docker-compatible command line; `main.rs` only calls it.

pub mod bench;
pub mod build;
pub mod cli;
pub mod container;
pub mod content;
pub mod digest;
pub mod distribution;
pub mod drivers;
pub mod engine;
pub mod id;
pub mod image;
pub mod mount;
pub mod ops;
pub mod rng;
pub mod root;
pub mod runtime;
pub mod scratch;
pub mod snapshot;
pub mod sys;
pub mod time;
pub mod units;
pub mod uring;
pub mod volume;
