//! Advisory whole-file locks (`flock(2)`), released when the guard drops.
//!
//! `flock` locks belong to the open file description, so two `strata`
//! processes (or two threads with separate opens) exclude each other, and a
//! crashed process's locks vanish with it — no stale lock files to clean up.

use rustix::fs::{flock, FlockOperation, Mode, OFlags};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// A held lock on a file; dropping it releases the lock.
#[derive(Debug)]
pub struct FileLock {
    _fd: OwnedFd,
    path: PathBuf,
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
        Ok(FileLock { _fd: fd, path: path.to_owned() })
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
}
