//! Which pages of a file are in the page cache: `mmap(2)` the file
//! read-only and ask `mincore(2)`. Used by the copy_up benchmark to prove
//! that a "cold" sample really starts with none of the file's pages
//! resident (and a "warm" one with all of them). Mapping a file and asking
//! `mincore` reads nothing from the device.

#![allow(unsafe_code)]

use rustix::fd::{AsFd, AsRawFd};
use std::io;

/// Resident pages of a file and its size in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residency {
    pub resident: u64,
    pub pages: u64,
}

/// `sysconf(_SC_PAGESIZE)`: the size of a page in bytes.
pub fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the running system; no pointers.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// `mincore(2)` over a read-only shared `mmap(2)` of the whole of `fd`
/// (`len` bytes): how many of its pages are in the page cache.
///
/// See mincore(2). An empty file has no pages (and cannot be mapped).
pub fn file_residency(fd: impl AsFd, len: u64) -> io::Result<Residency> {
    if len == 0 {
        return Ok(Residency { resident: 0, pages: 0 });
    }
    let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let page = page_size();
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: a fresh mapping chosen by the kernel (addr NULL), read-only
    // and shared, of an fd that stays open for the call; nothing else
    // aliases it, and it is unmapped below on every path.
    let addr =
        unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, fd.as_fd().as_raw_fd(), 0) };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `addr` is the page-aligned start of a live mapping of `len`
    // bytes; `vec` has one byte per page of that range, as mincore(2)
    // requires.
    let rc = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    let err = (rc != 0).then(io::Error::last_os_error);
    // SAFETY: unmaps exactly the mapping made above; no reference into it
    // exists (it was only passed to mincore).
    unsafe { libc::munmap(addr, len) };
    if let Some(e) = err {
        return Err(e);
    }
    let resident = vec.iter().filter(|b| *b & 1 == 1).count();
    Ok(Residency { resident: resident as u64, pages: pages as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn counts_pages_of_a_file_just_written() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![7u8; 3 * 4096 + 1]).unwrap();
        let r = file_residency(&f, 3 * 4096 + 1).unwrap();
        let page = page_size() as u64;
        assert_eq!(r.pages, (3 * 4096 + 1u64).div_ceil(page));
        // Just written: every page is still in the page cache.
        assert_eq!(r.resident, r.pages);
        assert_eq!(file_residency(&f, 0).unwrap(), Residency { resident: 0, pages: 0 });
    }
}
