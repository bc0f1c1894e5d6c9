//! strata: a container storage engine and minimal container runtime.
//!
//! Modules from the kernel up; a module imports only modules below it
//! (ARCHITECTURE.md's layer table, enforced by `tests/layering.rs`):
//!
//! * [`sys`] — syscall and ioctl wrappers; the only home of `unsafe` and
//!   of rustix, nix and libc calls.
//! * [`id`], [`time`], [`digest`], [`rng`], [`units`] — leaves: random IDs,
//!   timestamps, content addresses, the seeded test generator, byte sizes.
//! * [`root`] — the data root: layout, atomic writes, typed locks, staging.
//! * [`mount`] — mounts as data and the one function that performs them.
//! * [`scratch`], [`content`] — throwaway loop filesystems for tests and
//!   benchmarks; content-addressed blobs.
//! * [`uring`] — batched file I/O: io_uring and its plain-syscall twin,
//!   tree walks and usage.
//! * [`runtime`] — the run path: namespaces, rootfs, cgroups, exec; it
//!   consumes mounts and knows nothing of images or drivers.
//! * [`snapshot`] — the driver contract, shared metadata, conformance suite.
//! * [`drivers`] — overlay, copy, btrfs and dm-thin.
//! * [`image`], [`container`], [`volume`] — the OCI model, layer apply and
//!   diff, layer and image stores; container records and logs; volumes.
//! * [`engine`] — one data root opened with one driver.
//! * [`ops`], [`distribution`] — operations over the whole engine (import,
//!   save, rmi, image mount, the container lifecycle and supervisor, cp,
//!   commit, volumes, `system df`); registry pull and push.
//! * [`build`] — the Dockerfile parser and the classic builder.
//! * [`bench`] — the benchmark suite: strata against its peers, ratios,
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
pub mod proxy;
pub mod rng;
pub mod root;
pub mod runc;
pub mod runtime;
pub mod scratch;
pub mod snapshot;
pub mod sys;
pub mod time;
pub mod units;
pub mod uring;
pub mod volume;
