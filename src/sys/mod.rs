//! Thin wrappers over the kernel interfaces strata uses: mounts, file locks,
//! path resolution, cloning and copying, loop devices, btrfs subvolumes,
//! extent maps, device-mapper; and for the run path processes, signals,
//! capabilities, terminals, pipes, the UTS names and the random source.
//!
//! Wrappers are named after the call they make, rustix-style (the first
//! doc line is the C call, then the man page), with typed flags and
//! `OwnedFd`/`BorrowedFd`; where a caller needs only a type or flag
//! (`Signal`, `OFlags`, `WaitStatus`, …) this module re-exports it, so
//! code outside `sys` names no rustix, nix or libc path. rustix is the
//! default; nix is used here only where rustix lacks the call or the type
//! (process-wide credentials, `execve`, path `truncate`, signal names and
//! masks), and `caps` for capability sets.
//!
//! **Architecture invariant:** this is the only module that talks to the
//! kernel directly. Wrappers take primitive arguments (paths, file
//! descriptors, option strings) and know nothing of snapshots, layers or
//! images. Where rustix already wraps a call safely we use it; the few
//! `unsafe` blocks that remain live here, each with a `// SAFETY:` comment.

pub mod bpf;
pub mod btrfs;
pub mod capability;
pub mod clone;
pub mod clone3;
pub mod dm;
pub mod event;
pub mod fiemap;
pub mod fs;
pub mod fs_fd;
pub mod fs_remove;
pub mod lock;
pub mod loopdev;
pub mod mincore;
pub mod mount;
pub mod pipe;
pub mod prctl;
pub mod process;
pub mod random;
pub mod seccomp;
pub mod selfexe;
pub mod signal;
pub mod socket;
pub mod statfs;
pub mod stdio;
pub mod term;
pub mod uring;
pub mod uring_create;
pub mod uts;
pub mod xattr;

/// An OS error number, typed (`Errno::NOENT`): what callers compare a
/// failed call's error with, here or through `Errno::from_io_error`.
pub use rustix::io::Errno;
