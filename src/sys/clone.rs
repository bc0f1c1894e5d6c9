//! Copying file data without reading it into user space: `FICLONE`
//! reflinks, `copy_file_range(2)`, and the `SEEK_DATA`/`SEEK_HOLE` map of a
//! sparse file.
//!
//! Errors are returned as raw [`Errno`] so callers can tell "this
//! filesystem cannot do that" (`EOPNOTSUPP`, `EXDEV`, `EINVAL`, `ENOSYS`)
//! from real failures and fall back to a slower path.

use rustix::fd::AsFd;
use rustix::fs::SeekFrom;
use rustix::io::Errno;

/// `ioctl(dst, FICLONE, src)`: makes `dst` share all of `src`'s extents.
///
/// See ioctl_ficlone(2). Fails with `EOPNOTSUPP` where the filesystem has
/// no reflinks (ext4, tmpfs, XFS without `reflink=1`), `EXDEV` across
/// filesystems, `EINVAL` for unaligned ranges or special files.
pub fn ficlone(dst: impl AsFd, src: impl AsFd) -> Result<(), Errno> {
    loop {
        match rustix::fs::ioctl_ficlone(dst.as_fd(), src.as_fd()) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// `copy_file_range(src, &off, dst, &off, len)` repeated until `len` bytes
/// of `[start, start + len)` are copied to the same offsets in `dst`.
///
/// See copy_file_range(2). A return of 0 before `len` bytes means `src`
/// `src` shrank under us; that is reported as `ENODATA` so the caller sees
/// a short copy instead of looping forever.
pub fn copy_file_range_all(src: impl AsFd, dst: impl AsFd, start: u64, len: u64) -> Result<(), Errno> {
    let (mut off_in, mut off_out) = (start, start);
    let end = start + len;
    while off_in < end {
        let chunk = usize::try_from(end - off_in).unwrap_or(usize::MAX).min(1 << 30);
        match rustix::fs::copy_file_range(src.as_fd(), Some(&mut off_in), dst.as_fd(), Some(&mut off_out), chunk) {
            Ok(0) => return Err(Errno::NODATA),
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The data segments `[start, end)` of a file of `size` bytes, found with
/// `lseek(SEEK_DATA)` / `lseek(SEEK_HOLE)` (lseek(2)); everything between
/// them is a hole.
///
/// Filesystems without hole tracking report the whole file as one segment,
/// which is the documented fallback behaviour of `SEEK_DATA`.
pub fn data_segments(fd: impl AsFd, size: u64) -> Result<Vec<(u64, u64)>, Errno> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < size {
        let start = match rustix::fs::seek(fd.as_fd(), SeekFrom::Data(pos)) {
            Ok(s) => s,
            // ENXIO: no data at or after `pos` (the rest is a hole).
            Err(Errno::NXIO) => break,
            Err(e) => return Err(e),
        };
        if start >= size {
            break;
        }
        let end = match rustix::fs::seek(fd.as_fd(), SeekFrom::Hole(start)) {
            Ok(e) => e.min(size),
            Err(Errno::NXIO) => size,
            Err(e) => return Err(e),
        };
        out.push((start, end));
        pos = end;
    }
    rustix::fs::seek(fd.as_fd(), SeekFrom::Start(0))?;
    Ok(out)
}
