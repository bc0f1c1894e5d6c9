//! Waiting on descriptors: `poll(2)`, and `pidfd_open(2)`, which turns a
//! child's exit into a descriptor `poll` can wait for, so a process can
//! wait for a child, its output and a deadline at once without threads or
//! signal handlers.

pub use rustix::event::{PollFd, PollFlags};
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// `poll(fds, nfds, timeout)`: waits until one of `fds` is ready or
/// `timeout` passed (`None`: no limit); returns how many are ready (0 on
/// timeout), their [`PollFd::revents`] set.
///
/// See poll(2).
pub fn poll(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    let timeout = match timeout {
        Some(d) => {
            Some(rustix::event::Timespec::try_from(d).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?)
        }
        None => None,
    };
    Ok(rustix::event::poll(fds, timeout.as_ref())?)
}

/// `pidfd_open(pid, 0)`: a descriptor for the process `pid` that polls
/// readable once the process has ended (before it is reaped), and is
/// close-on-exec.
///
/// The caller must be the process's parent and not have reaped it yet,
/// or `pid` may name another process by then.
///
/// See pidfd_open(2) (Linux 5.3).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?)
}
