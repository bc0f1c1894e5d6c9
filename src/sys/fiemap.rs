//! `FS_IOC_FIEMAP`: the extent map of a file (`<linux/fiemap.h>`), with
//! each extent's flags — in particular whether its blocks are shared with
//! another file or snapshot (`FIEMAP_EXTENT_SHARED`, set by btrfs and XFS).
//!
//! See the kernel's Documentation/filesystems/fiemap.rst.

#![allow(unsafe_code)]

use rustix::fd::{AsFd, AsRawFd};
use rustix::io::Errno;

/// `#define FS_IOC_FIEMAP _IOWR('f', 11, struct fiemap)` (`<linux/fs.h>`),
/// with the 32-byte header as the size.
pub const FS_IOC_FIEMAP: libc::Ioctl = 0xC020_660B;

/// Request flags (`FIEMAP_FLAG_*` in `<linux/fiemap.h>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FiemapFlags(pub u32);

impl FiemapFlags {
    /// `#define FIEMAP_FLAG_SYNC 0x00000001`: write the file's dirty pages
    /// back before mapping. Without it btrfs reports a range rewritten in
    /// the page cache as the old (shared) extent until writeback.
    pub const SYNC: FiemapFlags = FiemapFlags(0x1);
}

/// Extent flags (`FIEMAP_EXTENT_*` in `<linux/fiemap.h>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtentFlags(pub u32);

impl ExtentFlags {
    /// `#define FIEMAP_EXTENT_LAST 0x00000001`: the file's last extent.
    pub const LAST: ExtentFlags = ExtentFlags(0x1);
    /// `#define FIEMAP_EXTENT_DELALLOC 0x00000004`: written, not yet
    /// allocated on disk (delayed allocation).
    pub const DELALLOC: ExtentFlags = ExtentFlags(0x4);
    /// `#define FIEMAP_EXTENT_DATA_INLINE 0x00000200`: stored inside the
    /// metadata (small files on btrfs).
    pub const DATA_INLINE: ExtentFlags = ExtentFlags(0x200);
    /// `#define FIEMAP_EXTENT_SHARED 0x00002000`: the blocks are also
    /// referenced by another file, reflink or snapshot.
    pub const SHARED: ExtentFlags = ExtentFlags(0x2000);

    pub fn contains(self, other: ExtentFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// One mapped extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Offset in the file.
    pub logical: u64,
    /// Offset on the device (0 when unknown, e.g. delayed allocation).
    pub physical: u64,
    pub length: u64,
    pub flags: ExtentFlags,
}

/// `struct fiemap_extent`.
#[repr(C)]
#[derive(Clone, Copy)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

/// Extents asked for per call.
const BATCH: usize = 64;
#[allow(clippy::cast_possible_truncation)]
const BATCH_U32: u32 = BATCH as u32;

/// `struct fiemap` followed by room for [`BATCH`] extents (the C struct
/// ends in a flexible array member).
#[repr(C)]
struct Fiemap {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
    fm_extents: [FiemapExtent; BATCH],
}

const _: () = assert!(size_of::<FiemapExtent>() == 56);
const _: () = assert!(std::mem::offset_of!(Fiemap, fm_extents) == 32);

/// `ioctl(fd, FS_IOC_FIEMAP, …)` repeated until the whole file is mapped:
/// every extent of the regular file `fd`, in file order. Holes are absent.
/// `flags` apply to the first call ([`FiemapFlags::SYNC`] flushes once).
pub fn fiemap(fd: impl AsFd, flags: FiemapFlags) -> Result<Vec<Extent>, Errno> {
    const ZERO: FiemapExtent = FiemapExtent {
        fe_logical: 0,
        fe_physical: 0,
        fe_length: 0,
        fe_reserved64: [0; 2],
        fe_flags: 0,
        fe_reserved: [0; 3],
    };
    let mut out = Vec::new();
    let mut start = 0u64;
    let mut fm_flags = flags.0;
    loop {
        let mut map = Box::new(Fiemap {
            fm_start: start,
            fm_length: u64::MAX - start,
            fm_flags,
            fm_mapped_extents: 0,
            fm_extent_count: BATCH_U32,
            fm_reserved: 0,
            fm_extents: [ZERO; BATCH],
        });
        // SAFETY: FS_IOC_FIEMAP reads the header and writes at most
        // `fm_extent_count` (= BATCH) extents after it, all inside the
        // boxed `Fiemap`, which lives across the call; `fd` is open.
        let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), FS_IOC_FIEMAP, &mut *map as *mut Fiemap) };
        if r < 0 {
            match Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO) {
                Errno::INTR => continue,
                e => return Err(e),
            }
        }
        fm_flags = 0;
        let mapped = (map.fm_mapped_extents as usize).min(BATCH);
        let extents = &map.fm_extents[..mapped];
        out.extend(extents.iter().map(|e| Extent {
            logical: e.fe_logical,
            physical: e.fe_physical,
            length: e.fe_length,
            flags: ExtentFlags(e.fe_flags),
        }));
        match extents.last() {
            Some(last) if !ExtentFlags(last.fe_flags).contains(ExtentFlags::LAST) && mapped == BATCH => {
                start = last.fe_logical.saturating_add(last.fe_length);
            }
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_written_data_and_skips_holes() {
        let file = tempfile::tempfile_in("/var/tmp").unwrap();
        use std::os::unix::fs::FileExt;
        file.write_all_at(&[7u8; 8192], 0).unwrap();
        file.write_all_at(&[9u8; 4096], 1 << 20).unwrap();
        file.sync_all().unwrap();
        let extents = match fiemap(&file, FiemapFlags::default()) {
            Err(Errno::OPNOTSUPP) => return eprintln!("skipped: /var/tmp has no FIEMAP"),
            other => other.unwrap(),
        };
        let mapped: u64 = extents.iter().map(|e| e.length).sum();
        assert_eq!(mapped, 8192 + 4096, "{extents:?}");
        assert!(extents.last().unwrap().flags.contains(ExtentFlags::LAST));
        assert!(extents.iter().all(|e| !e.flags.contains(ExtentFlags::SHARED)), "{extents:?}");
    }
}
