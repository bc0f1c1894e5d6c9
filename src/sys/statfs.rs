//! Which filesystem a path lives on (`statfs(2)`'s `f_type`).

use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;

/// A filesystem's magic number, as `statfs(2)` reports it in `f_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsMagic(pub u64);

impl FsMagic {
    /// `EXT4_SUPER_MAGIC` (also ext2/ext3) in `<linux/magic.h>`.
    pub const EXT4: FsMagic = FsMagic(0xEF53);
    /// `XFS_SUPER_MAGIC`.
    pub const XFS: FsMagic = FsMagic(0x5846_5342);
    /// `BTRFS_SUPER_MAGIC`.
    pub const BTRFS: FsMagic = FsMagic(0x9123_683E);
    /// `TMPFS_MAGIC`.
    pub const TMPFS: FsMagic = FsMagic(0x0102_1994);
    /// `OVERLAYFS_SUPER_MAGIC`.
    pub const OVERLAYFS: FsMagic = FsMagic(0x794C_7630);
    /// `F2FS_SUPER_MAGIC`.
    pub const F2FS: FsMagic = FsMagic(0xF2F5_2010);
    /// ZFS (not in `<linux/magic.h>`; from OpenZFS' `ZFS_SUPER_MAGIC`).
    pub const ZFS: FsMagic = FsMagic(0x2FC1_2FC1);
    /// `PROC_SUPER_MAGIC`.
    pub const PROC: FsMagic = FsMagic(0x9fa0);
    /// `CGROUP2_SUPER_MAGIC`.
    pub const CGROUP2: FsMagic = FsMagic(0x6367_7270);

    /// The conventional name (`xfs`), or the magic in hex when unknown.
    pub fn name(self) -> String {
        let known = [
            (FsMagic::EXT4, "extfs"),
            (FsMagic::XFS, "xfs"),
            (FsMagic::BTRFS, "btrfs"),
            (FsMagic::TMPFS, "tmpfs"),
            (FsMagic::OVERLAYFS, "overlayfs"),
            (FsMagic::F2FS, "f2fs"),
            (FsMagic::ZFS, "zfs"),
            (FsMagic::PROC, "proc"),
            (FsMagic::CGROUP2, "cgroup2"),
        ];
        match known.iter().find(|(m, _)| *m == self) {
            Some((_, name)) => (*name).to_owned(),
            None => format!("{:#x}", self.0),
        }
    }
}

/// `statfs(path)`'s `f_type`.
pub fn fs_magic(path: &Path) -> io::Result<FsMagic> {
    Ok(magic_of(&rustix::fs::statfs(path)?))
}

/// `fstatfs(fd)`'s `f_type` (works on `O_PATH` descriptors).
pub fn fs_magic_of(fd: BorrowedFd<'_>) -> io::Result<FsMagic> {
    Ok(magic_of(&rustix::fs::fstatfs(fd)?))
}

fn magic_of(st: &rustix::fs::StatFs) -> FsMagic {
    // f_type is a signed long in the C struct but magics are 32-bit
    // unsigned values; reinterpret the low 32 bits.
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    let magic = st.f_type as u32;
    FsMagic(u64::from(magic))
}
