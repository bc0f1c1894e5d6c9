//! The sync twin: every batch done one plain syscall at a time (`sys::fs`),
//! with the same per-item semantics as the io_uring engine — the same
//! open flags, the same `statx` mask, the same chunking and end-of-file
//! rules — so the two can be compared item by item.

use super::{stat_from_statx, At, Chunk, FdRead, RangeCopy, Stat, UringError, WriteJob, CHUNK, FIRST_READ};
use crate::sys::fs::{openat, pread, pwrite, statx, AtFlags, Mode, OFlags, StatxFlags};
use crate::sys::Errno;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Buffer size of the read/write copy path (as in the io_uring engine).
const COPY_CHUNK: usize = 256 << 10;

pub(super) struct SyncIo {
    /// Cleared after the first `EPERM` from `O_NOATIME`.
    noatime: bool,
    buf: Vec<u8>,
}

/// Retries `EINTR`/`EAGAIN`, as the ring does.
fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
            r => return r,
        }
    }
}

/// As the ring: one `pread` per piece of item `i`, the first up to
/// [`FIRST_READ`], then [`CHUNK`]; a short one ends the file.
fn read_whole(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    i: usize,
    path: impl Fn() -> std::path::PathBuf,
    f: &mut impl FnMut(usize, Result<Chunk<'_>, UringError>),
) {
    let (mut offset, mut len) = (0, FIRST_READ);
    loop {
        // Grown once and never cleared: zeroing 64 KiB per small file
        // would cost more than reading it.
        if buf.len() < len {
            buf.resize(len, 0);
        }
        match retry(|| pread(fd, &mut buf[..len], offset)) {
            Err(Errno::ISDIR) => f(i, Err(UringError::NotAFile(path()))),
            Err(e) => f(i, Err(UringError::io("read", path(), e))),
            Ok(n) => {
                let eof = n < len;
                f(i, Ok(Chunk { offset, data: &buf[..n], eof }));
                if !eof {
                    (offset, len) = (offset + n as u64, CHUNK);
                    continue;
                }
            }
        }
        break;
    }
}

/// `pread` until `buf` holds `len` bytes or the file ends.
fn pread_full(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, offset: u64, len: usize) -> Result<(), Errno> {
    buf.clear();
    buf.resize(len, 0);
    let mut got = 0;
    while got < len {
        match retry(|| pread(fd, &mut buf[got..], offset + got as u64))? {
            0 => break,
            n => got += n,
        }
    }
    buf.truncate(got);
    Ok(())
}

/// `pwrite` until all of `data` is written; the count written on a
/// zero-length write.
fn pwrite_full(fd: BorrowedFd<'_>, data: &[u8], offset: u64) -> Result<usize, Errno> {
    let mut done = 0;
    while done < data.len() {
        match retry(|| pwrite(fd, &data[done..], offset + done as u64))? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

fn statx_fd(dir: BorrowedFd<'_>, name: &[u8], flags: AtFlags) -> Result<Stat, Errno> {
    let s = retry(|| statx(dir, name, flags, StatxFlags::BASIC_STATS))?;
    Ok(stat_from_statx!(&s))
}

impl SyncIo {
    pub(super) fn new() -> SyncIo {
        SyncIo { noatime: true, buf: Vec::new() }
    }

    fn open_read(&mut self, at: &At<'_>) -> Result<OwnedFd, Errno> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if self.noatime {
            match retry(|| openat(at.dir.as_fd(), at.name, flags | OFlags::NOATIME, Mode::empty())) {
                Err(Errno::PERM) => self.noatime = false,
                r => return r,
            }
        }
        retry(|| openat(at.dir.as_fd(), at.name, flags, Mode::empty()))
    }

    pub(super) fn statx(&mut self, items: &[At<'_>]) -> Vec<Result<Stat, UringError>> {
        items
            .iter()
            .map(|at| {
                if at.name.contains(&0) {
                    return Err(UringError::NulInName(at.dir.child_path(at.name)));
                }
                statx_fd(at.dir.as_fd(), at.name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| UringError::io("statx", at.dir.child_path(at.name), e))
            })
            .collect()
    }

    /// The twin of the ring's `read_fds_with`: one `pread` per piece.
    pub(super) fn read_fds_with(&mut self, items: &[FdRead], mut f: impl FnMut(usize, Result<Chunk<'_>, UringError>)) {
        let mut buf = std::mem::take(&mut self.buf);
        for (i, item) in items.iter().enumerate() {
            read_whole(item.fd.as_fd(), &mut buf, i, || item.path.clone(), &mut f);
        }
        self.buf = buf;
    }

    pub(super) fn read_files_with(
        &mut self,
        items: &[At<'_>],
        mut f: impl FnMut(usize, Result<Chunk<'_>, UringError>),
    ) {
        let mut buf = std::mem::take(&mut self.buf);
        for (i, at) in items.iter().enumerate() {
            let path = || at.dir.child_path(at.name);
            if at.name.contains(&0) {
                f(i, Err(UringError::NulInName(path())));
                continue;
            }
            let fd = match self.open_read(at) {
                Ok(fd) => fd,
                Err(e) => {
                    f(i, Err(UringError::io("openat", path(), e)));
                    continue;
                }
            };
            read_whole(fd.as_fd(), &mut buf, i, path, &mut f);
        }
        self.buf = buf;
    }

    pub(super) fn write(&mut self, jobs: Vec<WriteJob>) -> Vec<(Vec<u8>, Result<(), UringError>)> {
        jobs.into_iter()
            .map(|job| {
                let path = || job.dir.child_path(&job.name);
                if job.name.contains(&0) {
                    return (job.data, Err(UringError::NulInName(path())));
                }
                let base = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let (flags, mode, op) = match job.create {
                    Some(mode) => (base | OFlags::CREATE | OFlags::EXCL, mode, "create"),
                    None => (base, 0, "open"),
                };
                let opened = retry(|| openat(job.dir.as_fd(), job.name.as_slice(), flags, Mode::from_raw_mode(mode)));
                let fd = match opened {
                    Ok(fd) => fd,
                    Err(e) => return (job.data, Err(UringError::io(op, path(), e))),
                };
                let result = match pwrite_full(fd.as_fd(), &job.data, job.offset) {
                    Err(e) => Err(UringError::io("write", path(), e)),
                    Ok(n) if n < job.data.len() => Err(UringError::WriteZero(path())),
                    Ok(_) => Ok(()),
                };
                drop(fd);
                (job.data, result)
            })
            .collect()
    }

    pub(super) fn copy_ranges(&mut self, jobs: &[RangeCopy]) -> Vec<Result<u64, UringError>> {
        let mut buf = std::mem::take(&mut self.buf);
        let out = jobs
            .iter()
            .map(|job| {
                let mut copied = 0;
                for &(start, end) in &job.segments {
                    let mut pos = start;
                    while pos < end {
                        let len = usize::try_from(end - pos).unwrap_or(usize::MAX).min(COPY_CHUNK);
                        pread_full(job.src.as_fd(), &mut buf, pos, len)
                            .map_err(|e| UringError::io("read", &job.path, e))?;
                        if buf.len() < len {
                            return Err(UringError::Shrank(job.path.clone()));
                        }
                        let n = pwrite_full(job.dst.as_fd(), &buf, pos)
                            .map_err(|e| UringError::io("write", &job.path, e))?;
                        if n < len {
                            return Err(UringError::WriteZero(job.path.clone()));
                        }
                        pos += len as u64;
                        copied += len as u64;
                    }
                }
                Ok(copied)
            })
            .collect();
        self.buf = buf;
        out
    }
}
