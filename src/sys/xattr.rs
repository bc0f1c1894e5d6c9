//! Extended attributes of a path itself, never of a symlink's target
//! (`llistxattr(2)`, `lgetxattr(2)`, `lsetxattr(2)`).
//!
//! Sizes are queried first and the read retried on `ERANGE`, because an
//! attribute can grow between the size query and the read.

use rustix::fs::XattrFlags;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

/// `llistxattr(path, ...)`: the names of every extended attribute of
/// `path` that the caller may see (`trusted.*` needs CAP_SYS_ADMIN).
pub fn llist(path: &Path) -> io::Result<Vec<OsString>> {
    loop {
        let size = rustix::fs::llistxattr_query(path)?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf
                    .split(|b| *b == 0)
                    .filter(|name| !name.is_empty())
                    .map(|name| OsString::from_vec(name.to_vec()))
                    .collect());
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `flistxattr(fd, NULL, 0)`: whether the open file has any extended
/// attribute visible to the caller (one syscall, no allocation).
pub fn fhas_any(fd: impl std::os::fd::AsFd) -> io::Result<bool> {
    Ok(rustix::fs::flistxattr_query(fd)? > 0)
}

/// `lgetxattr(path, name, ...)`: the value of one attribute.
pub fn lget(path: &Path, name: &OsString) -> io::Result<Vec<u8>> {
    loop {
        let size = rustix::fs::lgetxattr_query(path, name.as_os_str())?;
        let mut buf = vec![0u8; size];
        match rustix::fs::lgetxattr(path, name.as_os_str(), &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `lsetxattr(path, name, value, 0)`: creates or replaces one attribute.
pub fn lset(path: &Path, name: &OsString, value: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::lsetxattr(path, name.as_os_str(), value, XattrFlags::empty())?)
}
