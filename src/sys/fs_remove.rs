//! The calls a mount-aware tree removal needs beyond [`super::fs`]:
//! `unlinkat(AT_REMOVEDIR)` and the mount ID of an entry or an open
//! descriptor (`statx(STATX_MNT_ID)`).
//!
//! A bind mount keeps the `st_dev` of the filesystem it shows, so `st_dev`
//! cannot tell a directory from a bind mount of another directory on the
//! same filesystem; the mount ID can (statx(2), `stx_mnt_id`, Linux 5.8).

use rustix::fd::BorrowedFd;
use rustix::fs::{AtFlags, StatxFlags};
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

/// `unlinkat(dir, name, AT_REMOVEDIR)`: removes an empty directory.
///
/// See unlinkat(2). `EBUSY` when `name` is a mount point.
pub fn rmdir_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    retry(|| rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR))
}

/// What [`statx_mnt_id`] reports: the entry's mount ID and file type bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountOf {
    /// `stx_mnt_id`: the mount the entry is on (the mounted one, for a
    /// mount point).
    pub mnt_id: u64,
    /// `stx_mode` (type and permission bits).
    pub mode: u32,
}

/// `statx(dir, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE |
/// STATX_MNT_ID)`; an empty `name` stats `dir` itself (`AT_EMPTY_PATH`).
///
/// See statx(2). `Unsupported` when the kernel does not fill in the mount
/// ID (before Linux 5.8): a caller that relies on it must not guess.
pub fn statx_mnt_id(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<MountOf> {
    let mut flags = AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT;
    if name.is_empty() {
        flags |= AtFlags::EMPTY_PATH;
    }
    let st = retry(|| rustix::fs::statx(dir, name, flags, StatxFlags::TYPE | StatxFlags::MNT_ID))?;
    if st.stx_mask & StatxFlags::MNT_ID.bits() == 0 {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "statx: this kernel reports no mount ID (Linux 5.8+)"));
    }
    Ok(MountOf { mnt_id: st.stx_mnt_id, mode: u32::from(st.stx_mode) })
}
