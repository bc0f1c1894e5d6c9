//! Calls on one object held by an `O_PATH` descriptor: open it without
//! following a symlink or opening a device, check its type with `fstat`,
//! then reach exactly that inode again (`/proc/self/fd/<fd>`, runc's
//! reopen) to read it or change its mode.
//!
//! This is how `cp`, `export` and `commit` read trees a container can
//! change under them: an `O_PATH` open has no side effects (a FIFO does not
//! block, a device driver's `open` is not called, see open(2) on
//! `O_PATH`), so a FIFO or device swapped in for a listed file is seen by
//! its type before anything reads it, and a mode change lands on the node
//! that was checked, never on what a symlink swapped in later points to.
//!
//! Every call is a thin safe wrapper over rustix; there is no `unsafe` here.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::io;

fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
            r => return r.map_err(Into::into),
        }
    }
}

/// `/proc/self/fd/<fd>`: the magic link naming exactly the object `fd`
/// refers to.
fn magic(fd: BorrowedFd<'_>) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// `openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)`: a handle on the
/// entry itself (a symlink is not followed, a FIFO or device not opened).
///
/// See open(2), `O_PATH`.
pub fn open_path_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    retry(|| rustix::fs::openat(dir, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()))
}

/// `open("/proc/self/fd/<fd>", flags | O_CLOEXEC)`: a new open file
/// description for the very inode `fd` (often `O_PATH`) refers to,
/// whatever has since been renamed or swapped in under its old name.
///
/// See proc_pid_fd(5). The caller checks the type with `fstat` on `fd`
/// first; add `O_NONBLOCK` so that even a FIFO could not block.
pub fn reopen(fd: BorrowedFd<'_>, flags: OFlags) -> io::Result<OwnedFd> {
    let path = magic(fd);
    retry(|| rustix::fs::open(path.as_str(), flags | OFlags::CLOEXEC, Mode::empty()))
}

/// `openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)`: a readable
/// descriptor for the directory an `O_PATH` descriptor holds.
///
/// See openat(2); an `O_PATH` directory fd may be the `dirfd`.
pub fn open_dir_of(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    retry(|| rustix::fs::openat(fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()))
}

/// `readlinkat(fd, "")`: the target of the symlink an `O_PATH |
/// O_NOFOLLOW` descriptor holds.
///
/// See readlinkat(2) (an empty path names `fd` itself since Linux 2.6.39).
pub fn readlink_fd(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    retry(|| rustix::fs::readlinkat(fd, "", Vec::new())).map(|c| c.into_bytes())
}

/// `chmod("/proc/self/fd/<fd>", mode)`: changes the mode of the inode an
/// `O_PATH` descriptor holds (`fchmod` refuses `O_PATH` descriptors).
///
/// See chmod(2). The magic link resolves to that inode only; the caller has
/// checked with `fstat` that it is not a symlink.
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let path = magic(fd);
    retry(|| rustix::fs::chmod(path.as_str(), Mode::from_raw_mode(mode)))
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`:
/// changes the owner of the object any descriptor (`O_PATH` too, a symlink
/// itself included) refers to.
///
/// See chown(2).
pub fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    let (u, g) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
    retry(|| rustix::fs::chownat(fd, "", Some(u), Some(g), AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW))
}

/// `flistxattr` + `fgetxattr`: every extended attribute of an open file or
/// directory, as `(name, value)` pairs sorted by name.
///
/// See listxattr(2), getxattr(2). Not for `O_PATH` descriptors.
pub fn fxattrs(fd: impl AsFd) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let fd = fd.as_fd();
    let mut list = Vec::new();
    loop {
        let len = retry(|| rustix::fs::flistxattr_query(fd))?;
        list.resize(len, 0);
        if len == 0 {
            break;
        }
        match retry(|| rustix::fs::flistxattr(fd, list.as_mut_slice())) {
            Ok(n) => {
                list.truncate(n);
                break;
            }
            Err(e) if e.raw_os_error() == Some(Errno::RANGE.raw_os_error()) => continue,
            Err(e) => return Err(e),
        }
    }
    let mut out = Vec::new();
    for key in list.split(|b| *b == 0).filter(|k| !k.is_empty()) {
        loop {
            let len = match retry(|| rustix::fs::fgetxattr_query(fd, key)) {
                Ok(len) => len,
                Err(e) if e.raw_os_error() == Some(Errno::NODATA.raw_os_error()) => break,
                Err(e) => return Err(e),
            };
            let mut value = vec![0; len];
            match retry(|| rustix::fs::fgetxattr(fd, key, value.as_mut_slice())) {
                Ok(n) => {
                    value.truncate(n);
                    out.push((key.to_vec(), value));
                    break;
                }
                Err(e) if e.raw_os_error() == Some(Errno::RANGE.raw_os_error()) => continue,
                Err(e) if e.raw_os_error() == Some(Errno::NODATA.raw_os_error()) => break,
                Err(e) => return Err(e),
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_opened_by_path_does_not_block_and_shows_its_type() {
        let dir = tempfile::tempdir().unwrap();
        rustix::fs::mkfifoat(rustix::fs::CWD, dir.path().join("f"), Mode::from_raw_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("l")).unwrap();
        let d = rustix::fs::open(dir.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let f = open_path_at(d.as_fd(), b"f").unwrap();
        assert!(rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&f).unwrap().st_mode).is_fifo());
        chmod_fd(f.as_fd(), 0o640).unwrap();
        assert_eq!(rustix::fs::fstat(&f).unwrap().st_mode & 0o7777, 0o640);
        let l = open_path_at(d.as_fd(), b"l").unwrap();
        assert_eq!(readlink_fd(l.as_fd()).unwrap(), b"/etc/hostname");
    }
}
