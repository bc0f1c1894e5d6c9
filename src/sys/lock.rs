//! Advisory whole-file locks (`flock(2)`), released when the guard drops.
//!
//! `flock` locks belong to the open file description, so two `strata`
//! processes (or two threads with separate opens) exclude each other, and a
//! crashed process's locks vanish with it — no stale lock files to clean up.
//!
//! The same rule means a child forked while a lock is held shares it: until
//! the child execs (the descriptor is close-on-exec) or exits, closing the
//! parent's descriptor would not release the lock. So the guard unlocks
//! explicitly (`LOCK_UN` acts on the description, for every holder of it)
//! before it closes, and forked children that do not exec close what they
//! inherit (`sys::process::fork_child`). A lock a child should hold is taken
//! by the child itself, never handed down.

use rustix::fs::{flock, FlockOperation, Mode, OFlags};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// A held lock on a file; dropping it releases the lock.
#[derive(Debug)]
pub struct FileLock {
    fd: OwnedFd,
    path: PathBuf,
}

impl Drop for FileLock {
    /// `flock(fd, LOCK_UN)`, then `close(fd)`: released at once, even while
    /// a forked child still shares the open file description.
    fn drop(&mut self) {
        let _ = flock(&self.fd, FlockOperation::Unlock);
    }
}

impl FileLock {
    /// `flock(fd, LOCK_EX)`: waits for exclusive ownership of `path`
    /// (created if missing).
    pub fn exclusive(path: &Path) -> io::Result<FileLock> {
        Self::take(path, FlockOperation::LockExclusive)
    }

    /// `flock(fd, LOCK_SH)`: waits for shared ownership of `path`.
    pub fn shared(path: &Path) -> io::Result<FileLock> {
        Self::take(path, FlockOperation::LockShared)
    }

    /// `flock(fd, LOCK_EX | LOCK_NB)`: `Ok(None)` when another holder exists.
    pub fn try_exclusive(path: &Path) -> io::Result<Option<FileLock>> {
        match Self::take(path, FlockOperation::NonBlockingLockExclusive) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn take(path: &Path, op: FlockOperation) -> io::Result<FileLock> {
        let fd = rustix::fs::open(path, OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC, Mode::from_raw_mode(0o600))?;
        loop {
            match flock(&fd, op) {
                Ok(()) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(FileLock { fd, path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_second_open() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let a = FileLock::exclusive(&p).unwrap();
        assert!(FileLock::try_exclusive(&p).unwrap().is_none());
        drop(a);
        assert!(FileLock::try_exclusive(&p).unwrap().is_some());
    }

    /// Regression test for issue 12 (9a): `rmi` found a layer still
    /// claimed after the claim was dropped, because a child forked by
    /// another thread (and not yet exec'd) shared the claim's open file
    /// description and with it the lock.
    #[test]
    #[allow(unsafe_code)]
    fn claim_is_released_while_a_forked_child_lives() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("use.lock");
        let claim = FileLock::shared(&p).unwrap();
        let fd = u32::try_from(claim.fd.as_raw_fd()).unwrap();
        let child = std::thread::spawn(move || {
            // SAFETY: the process has other threads (that is the bug), so
            // the child calls only async-signal-safe functions: close_range
            // (all but the lock's descriptor, so the child pins nothing of
            // the other tests), sleep and _exit.
            unsafe {
                match libc::fork() {
                    0 => {
                        libc::close_range(3, fd - 1, 0);
                        libc::close_range(fd + 1, u32::MAX, 0);
                        libc::sleep(2);
                        libc::_exit(0)
                    }
                    pid => pid,
                }
            }
        })
        .join()
        .unwrap();
        assert!(child > 0, "fork: {}", io::Error::last_os_error());
        drop(claim);
        let taken = FileLock::try_exclusive(&p).unwrap();
        let pid = rustix::process::Pid::from_raw(child).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        assert!(taken.is_some(), "the lock outlived its guard while a forked child shared it");
    }
}
