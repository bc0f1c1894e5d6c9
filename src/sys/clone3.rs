//! `clone3(2)` with `CLONE_INTO_CGROUP`: a child born in its cgroup.
//!
//! The run path used to clone the container's init into the runtime's own
//! cgroup and move it afterwards with a write to `cgroup.procs`: one more
//! write per start, and a moment in which the init ran (and was charged)
//! outside its limits. With `CLONE_INTO_CGROUP` (Linux 5.7) the kernel
//! places the child in the cgroup2 group named by a directory descriptor
//! as part of the clone, so it never runs anywhere else. It only reaches
//! the cgroup2 hierarchy: groups in v1 hierarchies are still joined by a
//! write.
#![allow(unsafe_code)]

use super::process::{thread_count, CloneFlags, Cloned};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `struct clone_args` of `<linux/sched.h>`, `CLONE_ARGS_SIZE_VER2`.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like [`super::process::clone_into`], but with `clone3(2)`, and when
/// `cgroup` is given (a descriptor of a cgroup2 directory) the child is
/// created in that group (`CLONE_INTO_CGROUP`). Runs `child` in the new
/// process and exits with its return value there; returns the child's pid
/// and pidfd in the parent. Refused unless this process is single-threaded.
///
/// An error means no child was made: `ENOSYS` (before 5.3), `E2BIG` or
/// `EINVAL` (a kernel without `CLONE_INTO_CGROUP`), or the group refusing
/// the process (`EBUSY` for a group that delegates its controllers,
/// `EOPNOTSUPP`, `EACCES`), so a caller may fall back to `clone_into` and
/// a write to `cgroup.procs`, which reports the group's refusal in its
/// own words.
pub fn clone3_into(
    flags: CloneFlags,
    cgroup: Option<BorrowedFd<'_>>,
    child: &mut dyn FnMut() -> i32,
) -> io::Result<Cloned> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!("refusing to clone a process with {threads} threads")));
    }
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: u64::from(flags.bits() as u32) | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = u64::try_from(fd.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    }
    // SAFETY: without CLONE_VM and with no stack given, clone3 behaves as
    // fork(2): the child continues here on a copy-on-write copy of the
    // parent's memory and stack, so it cannot race the parent on memory.
    // The process is single-threaded (checked above), so no other thread
    // holds a lock the child could need. `args` and `pidfd` are live for
    // the call; the kernel reads `args` (its size is passed) and writes the
    // new descriptor into `pidfd` (CLONE_PIDFD).
    let pid = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = child();
        // SAFETY: _exit ends the child without running the parent's atexit
        // handlers or destructors of values the parent owns.
        unsafe { libc::_exit(code) }
    }
    // SAFETY: with CLONE_PIDFD a successful clone3 stored a new descriptor
    // in `pidfd` that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let pid = i32::try_from(pid).map_err(|_| io::Error::other("clone3 returned a pid out of range"))?;
    Ok(Cloned { pid, pidfd })
}
