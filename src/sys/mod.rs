//! Thin wrappers over the kernel interfaces strata uses: mounts, file locks,
//! path resolution, cloning and copying, loop devices, btrfs subvolumes,
//! extent maps, device-mapper.
//!
//! **Architecture invariant:** this is the only module that talks to the
//! kernel directly. Wrappers take primitive arguments (paths, file
//! descriptors, option strings) and know nothing of snapshots, layers or
//! images. Where rustix already wraps a call safely we use it; the few
//! `unsafe` blocks that remain live here, each with a `// SAFETY:` comment.

pub mod btrfs;
pub mod clone;
pub mod dm;
pub mod fiemap;
pub mod fs;
pub mod lock;
pub mod loopdev;
pub mod mincore;
pub mod mount;
pub mod process;
pub mod random;
pub mod statfs;
pub mod uring;
pub mod xattr;

/// An OS error number, typed (`Errno::NOENT`): what callers compare a
/// failed call's error with, here or through `Errno::from_io_error`.
pub use rustix::io::Errno;
