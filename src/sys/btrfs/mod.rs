//! btrfs subvolume ioctls (`<linux/btrfs.h>`): create, snapshot, destroy,
//! the read-only flag, and the filesystem's identity.
//!
//! A subvolume is an independent file tree inside one btrfs filesystem;
//! its root directory always has inode number 256
//! (`BTRFS_FIRST_FREE_OBJECTID`). A snapshot is a new subvolume that shares
//! every tree block and data extent with its source until one side writes:
//! copy-on-write per extent, not per file. Creating one is O(1) in the size
//! of the tree.
//!
//! Each ioctl is issued on a directory fd: create, snapshot and destroy on
//! the directory that holds (or will hold) the subvolume, naming it by a
//! single path component; the flag ioctls on the subvolume's own root.
//! See btrfs-subvolume(8) for the user-facing semantics and
//! `fs/btrfs/ioctl.c` for the kernel side.

#![allow(unsafe_code)]

pub mod search;

use rustix::fd::{AsFd, AsRawFd, BorrowedFd};
use rustix::io::Errno;

/// `_IOC(dir, type, nr, size)` from `<asm-generic/ioctl.h>`: the request
/// number layout every ioctl below is built with.
const fn ioc(dir: u32, nr: u32, size: usize) -> libc::Ioctl {
    // The size field is 14 bits; every struct here is at most 4096 bytes.
    assert!(size < (1 << 14));
    #[allow(clippy::cast_possible_truncation)]
    let request = (dir << 30) | ((size as u32) << 16) | (BTRFS_IOCTL_MAGIC << 8) | nr;
    #[allow(clippy::cast_possible_wrap)]
    let request = request as libc::Ioctl;
    request
}
/// `_IOC_WRITE` / `_IOC_READ` from `<asm-generic/ioctl.h>`.
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// `#define BTRFS_IOCTL_MAGIC 0x94`
const BTRFS_IOCTL_MAGIC: u32 = 0x94;
/// `#define BTRFS_PATH_NAME_MAX 4087`
const BTRFS_PATH_NAME_MAX: usize = 4087;
/// `#define BTRFS_SUBVOL_NAME_MAX 4039`
const BTRFS_SUBVOL_NAME_MAX: usize = 4039;
/// `#define BTRFS_VOL_NAME_MAX 255`: the longest subvolume name.
pub const BTRFS_VOL_NAME_MAX: usize = 255;
/// `#define BTRFS_FIRST_FREE_OBJECTID 256ULL` (`<linux/btrfs_tree.h>`): the
/// inode number of every subvolume's root directory.
pub const BTRFS_FIRST_FREE_OBJECTID: u64 = 256;

/// `#define BTRFS_IOC_SUBVOL_CREATE _IOW(BTRFS_IOCTL_MAGIC, 14, struct btrfs_ioctl_vol_args)`
pub const BTRFS_IOC_SUBVOL_CREATE: libc::Ioctl = ioc(IOC_WRITE, 14, size_of::<VolArgs>());
/// `#define BTRFS_IOC_SNAP_DESTROY _IOW(BTRFS_IOCTL_MAGIC, 15, struct btrfs_ioctl_vol_args)`
pub const BTRFS_IOC_SNAP_DESTROY: libc::Ioctl = ioc(IOC_WRITE, 15, size_of::<VolArgs>());
/// `#define BTRFS_IOC_SNAP_CREATE_V2 _IOW(BTRFS_IOCTL_MAGIC, 23, struct btrfs_ioctl_vol_args_v2)`
pub const BTRFS_IOC_SNAP_CREATE_V2: libc::Ioctl = ioc(IOC_WRITE, 23, size_of::<VolArgsV2>());
/// `#define BTRFS_IOC_SUBVOL_CREATE_V2 _IOW(BTRFS_IOCTL_MAGIC, 24, struct btrfs_ioctl_vol_args_v2)`
pub const BTRFS_IOC_SUBVOL_CREATE_V2: libc::Ioctl = ioc(IOC_WRITE, 24, size_of::<VolArgsV2>());
/// `#define BTRFS_IOC_SUBVOL_GETFLAGS _IOR(BTRFS_IOCTL_MAGIC, 25, __u64)`
pub const BTRFS_IOC_SUBVOL_GETFLAGS: libc::Ioctl = ioc(IOC_READ, 25, size_of::<u64>());
/// `#define BTRFS_IOC_SUBVOL_SETFLAGS _IOW(BTRFS_IOCTL_MAGIC, 26, __u64)`
pub const BTRFS_IOC_SUBVOL_SETFLAGS: libc::Ioctl = ioc(IOC_WRITE, 26, size_of::<u64>());
/// `#define BTRFS_IOC_FS_INFO _IOR(BTRFS_IOCTL_MAGIC, 31, struct btrfs_ioctl_fs_info_args)`
pub const BTRFS_IOC_FS_INFO: libc::Ioctl = ioc(IOC_READ, 31, size_of::<FsInfoArgs>());
/// `#define BTRFS_IOC_INO_LOOKUP _IOWR(BTRFS_IOCTL_MAGIC, 18, struct btrfs_ioctl_ino_lookup_args)`
pub const BTRFS_IOC_INO_LOOKUP: libc::Ioctl = ioc(IOC_READ | IOC_WRITE, 18, size_of::<InoLookupArgs>());
/// `#define BTRFS_IOC_QUOTA_CTL _IOWR(BTRFS_IOCTL_MAGIC, 40, struct btrfs_ioctl_quota_ctl_args)`
pub const BTRFS_IOC_QUOTA_CTL: libc::Ioctl = ioc(IOC_READ | IOC_WRITE, 40, size_of::<QuotaCtlArgs>());
/// `#define BTRFS_IOC_QUOTA_RESCAN_WAIT _IO(BTRFS_IOCTL_MAGIC, 46)`
pub const BTRFS_IOC_QUOTA_RESCAN_WAIT: libc::Ioctl = ioc(0, 46, 0);
/// `#define BTRFS_IOC_SNAP_DESTROY_V2 _IOW(BTRFS_IOCTL_MAGIC, 63, struct btrfs_ioctl_vol_args_v2)` (Linux 5.7+)
pub const BTRFS_IOC_SNAP_DESTROY_V2: libc::Ioctl = ioc(IOC_WRITE, 63, size_of::<VolArgsV2>());

/// Subvolume flags (`BTRFS_SUBVOL_*` in `<linux/btrfs.h>`), as taken by
/// the v2 create ioctls and `BTRFS_IOC_SUBVOL_{GET,SET}FLAGS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubvolFlags(pub u64);

impl SubvolFlags {
    /// `#define BTRFS_SUBVOL_RDONLY (1ULL << 1)`: the subvolume's tree
    /// cannot be changed (every write fails with `EROFS`).
    pub const RDONLY: SubvolFlags = SubvolFlags(1 << 1);

    pub fn contains(self, other: SubvolFlags) -> bool {
        self.0 & other.0 == other.0
    }
    #[must_use]
    pub fn with(self, other: SubvolFlags, on: bool) -> SubvolFlags {
        if on {
            SubvolFlags(self.0 | other.0)
        } else {
            SubvolFlags(self.0 & !other.0)
        }
    }
}

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; BTRFS_PATH_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_vol_args_v2`, with the `size`/`qgroup_inherit`
/// union as its `unused[4]` arm (strata passes no qgroup inheritance) and
/// the `name`/`devid`/`subvolid` union as `name`.
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; BTRFS_SUBVOL_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_fs_info_args`.
#[repr(C)]
struct FsInfoArgs {
    max_id: u64,
    num_devices: u64,
    fsid: [u8; 16],
    nodesize: u32,
    sectorsize: u32,
    clone_alignment: u32,
    csum_type: u16,
    csum_size: u16,
    flags: u64,
    generation: u64,
    metadata_uuid: [u8; 16],
    reserved: [u8; 944],
}

/// `struct btrfs_ioctl_ino_lookup_args` (`BTRFS_INO_LOOKUP_PATH_MAX` 4080).
#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

/// `struct btrfs_ioctl_quota_ctl_args`.
#[repr(C)]
struct QuotaCtlArgs {
    cmd: u64,
    status: u64,
}

// The kernel's sizes (checked against gcc on <linux/btrfs.h>): a mismatch
// would change the request numbers and make the kernel read garbage.
const _: () = assert!(size_of::<VolArgs>() == 4096);
const _: () = assert!(size_of::<VolArgsV2>() == 4096);
const _: () = assert!(size_of::<FsInfoArgs>() == 1024);
const _: () = assert!(size_of::<InoLookupArgs>() == 4096);

/// Copies a subvolume name (one path component) into a NUL-terminated
/// buffer, refusing what the kernel would: empty, too long, `/`, NUL.
fn copy_name<const N: usize>(name: &str, buf: &mut [u8; N]) -> Result<(), Errno> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > BTRFS_VOL_NAME_MAX || bytes.contains(&b'/') || bytes.contains(&0) {
        return Err(Errno::INVAL);
    }
    buf[..bytes.len()].copy_from_slice(bytes);
    Ok(())
}

fn vol_args_v2(name: &str, fd: i64, flags: SubvolFlags) -> Result<Box<VolArgsV2>, Errno> {
    let mut args =
        Box::new(VolArgsV2 { fd, transid: 0, flags: flags.0, unused: [0; 4], name: [0; BTRFS_SUBVOL_NAME_MAX + 1] });
    copy_name(name, &mut args.name)?;
    Ok(args)
}

/// Issues `ioctl(fd, request, arg)`, retrying on `EINTR`.
fn ioctl_ptr<T>(fd: BorrowedFd<'_>, request: libc::Ioctl, arg: *mut T) -> Result<libc::c_int, Errno> {
    loop {
        // SAFETY: every caller passes a request whose argument type is `T`
        // (the `repr(C)` mirror of the kernel struct, sizes asserted
        // above) and a pointer to a live, exclusively borrowed `T` that
        // outlives the call; `fd` is open for the call's duration.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) };
        if r >= 0 {
            return Ok(r);
        }
        match Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO) {
            Errno::INTR => continue,
            e => return Err(e),
        }
    }
}

/// `ioctl(dir, BTRFS_IOC_SUBVOL_CREATE_V2, {name})`: a new, empty subvolume
/// `name` in directory `dir`. Falls back to `BTRFS_IOC_SUBVOL_CREATE`
/// where the v2 call is unknown (`ENOTTY`).
pub fn subvol_create(dir: impl AsFd, name: &str) -> Result<(), Errno> {
    let mut args = vol_args_v2(name, 0, SubvolFlags::default())?;
    match ioctl_ptr(dir.as_fd(), BTRFS_IOC_SUBVOL_CREATE_V2, &mut *args) {
        Err(Errno::NOTTY) => {
            let mut v1 = Box::new(VolArgs { fd: 0, name: [0; BTRFS_PATH_NAME_MAX + 1] });
            copy_name(name, &mut v1.name)?;
            ioctl_ptr(dir.as_fd(), BTRFS_IOC_SUBVOL_CREATE, &mut *v1).map(drop)
        }
        other => other.map(drop),
    }
}

/// `ioctl(dir, BTRFS_IOC_SNAP_CREATE_V2, {fd: source, flags, name})`: a
/// snapshot of subvolume `source` (an fd of its root directory) as `name`
/// in `dir`; read-only with [`SubvolFlags::RDONLY`].
pub fn snap_create_v2(dir: impl AsFd, source: impl AsFd, name: &str, flags: SubvolFlags) -> Result<(), Errno> {
    let mut args = vol_args_v2(name, i64::from(source.as_fd().as_raw_fd()), flags)?;
    ioctl_ptr(dir.as_fd(), BTRFS_IOC_SNAP_CREATE_V2, &mut *args).map(drop)
}

/// `ioctl(dir, BTRFS_IOC_SNAP_DESTROY_V2, {name})`, falling back to
/// `BTRFS_IOC_SNAP_DESTROY` before Linux 5.7 (`ENOTTY`): deletes subvolume
/// `name` in `dir`. The kernel unlinks it at once and frees its extents in
/// the background (the cleaner thread).
///
/// Fails with `ENOTEMPTY` if the subvolume holds other subvolumes,
/// `EBUSY` while it is mounted somewhere, `EPERM` without `CAP_SYS_ADMIN`.
pub fn snap_destroy(dir: impl AsFd, name: &str) -> Result<(), Errno> {
    let mut args = vol_args_v2(name, 0, SubvolFlags::default())?;
    match ioctl_ptr(dir.as_fd(), BTRFS_IOC_SNAP_DESTROY_V2, &mut *args) {
        Err(Errno::NOTTY) => {
            let mut v1 = Box::new(VolArgs { fd: 0, name: [0; BTRFS_PATH_NAME_MAX + 1] });
            copy_name(name, &mut v1.name)?;
            ioctl_ptr(dir.as_fd(), BTRFS_IOC_SNAP_DESTROY, &mut *v1).map(drop)
        }
        other => other.map(drop),
    }
}

/// `ioctl(subvol, BTRFS_IOC_SUBVOL_GETFLAGS, &flags)`: the flags of the
/// subvolume whose root directory `subvol` is.
pub fn subvol_getflags(subvol: impl AsFd) -> Result<SubvolFlags, Errno> {
    let mut flags = 0u64;
    ioctl_ptr(subvol.as_fd(), BTRFS_IOC_SUBVOL_GETFLAGS, &mut flags)?;
    Ok(SubvolFlags(flags))
}

/// `ioctl(subvol, BTRFS_IOC_SUBVOL_SETFLAGS, &flags)`: sets the flags of
/// the subvolume whose root directory `subvol` is (only `RDONLY` may
/// change). Making a subvolume read-only takes effect at once for every
/// open file and mount of it.
pub fn subvol_setflags(subvol: impl AsFd, flags: SubvolFlags) -> Result<(), Errno> {
    let mut flags = flags.0;
    ioctl_ptr(subvol.as_fd(), BTRFS_IOC_SUBVOL_SETFLAGS, &mut flags).map(drop)
}

/// What `BTRFS_IOC_FS_INFO` reports about the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsInfo {
    /// The filesystem UUID (`/sys/fs/btrfs/<fsid>/`).
    pub fsid: [u8; 16],
    pub num_devices: u64,
    /// Size of a metadata tree block.
    pub nodesize: u32,
    /// Size of a data block: the smallest extent a write can create.
    pub sectorsize: u32,
}

impl FsInfo {
    /// The fsid as `uuid` text, as sysfs names the filesystem's directory.
    pub fn fsid_string(&self) -> String {
        let h = hex::encode(self.fsid);
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }
}

/// `ioctl(fd, BTRFS_IOC_FS_INFO, &args)` on any file of the filesystem.
pub fn fs_info(fd: impl AsFd) -> Result<FsInfo, Errno> {
    // SAFETY: FsInfoArgs is plain integers and byte arrays; all-zero is a
    // valid value (and the input the kernel expects: no flags requested).
    let mut args: Box<FsInfoArgs> = Box::new(unsafe { std::mem::zeroed() });
    ioctl_ptr(fd.as_fd(), BTRFS_IOC_FS_INFO, &mut *args)?;
    Ok(FsInfo { fsid: args.fsid, num_devices: args.num_devices, nodesize: args.nodesize, sectorsize: args.sectorsize })
}

/// `ioctl(fd, BTRFS_IOC_INO_LOOKUP, {treeid: 0, objectid: 256})`: the ID of
/// the subvolume (tree) that `fd` belongs to. Needs `CAP_SYS_ADMIN`.
pub fn subvol_id(fd: impl AsFd) -> Result<u64, Errno> {
    let mut args = Box::new(InoLookupArgs { treeid: 0, objectid: BTRFS_FIRST_FREE_OBJECTID, name: [0; 4080] });
    ioctl_ptr(fd.as_fd(), BTRFS_IOC_INO_LOOKUP, &mut *args)?;
    Ok(args.treeid)
}

/// Commands of `BTRFS_IOC_QUOTA_CTL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaCtl {
    /// `#define BTRFS_QUOTA_CTL_ENABLE 1`: full qgroup accounting, with a
    /// rescan of existing data.
    Enable = 1,
    /// `#define BTRFS_QUOTA_CTL_DISABLE 2`
    Disable = 2,
}

/// `ioctl(fd, BTRFS_IOC_QUOTA_CTL, {cmd})`: turns quota groups on or off
/// for the whole filesystem `fd` is on. Needs `CAP_SYS_ADMIN`.
pub fn quota_ctl(fd: impl AsFd, cmd: QuotaCtl) -> Result<(), Errno> {
    let mut args = QuotaCtlArgs { cmd: cmd as u64, status: 0 };
    ioctl_ptr(fd.as_fd(), BTRFS_IOC_QUOTA_CTL, &mut args).map(drop)
}

/// `ioctl(fd, BTRFS_IOC_QUOTA_RESCAN_WAIT)`: waits for a running qgroup
/// rescan (started by enabling quotas) to finish.
pub fn quota_rescan_wait(fd: impl AsFd) -> Result<(), Errno> {
    ioctl_ptr(fd.as_fd(), BTRFS_IOC_QUOTA_RESCAN_WAIT, std::ptr::null_mut::<u8>()).map(drop)
}

/// The quota state of a mounted btrfs, as sysfs shows it
/// (Documentation/ABI/testing/sysfs-fs-btrfs, `/sys/fs/btrfs/<fsid>/qgroups/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaState {
    /// `qgroup` (full accounting) or `squota` (simple quotas, Linux 6.7+).
    pub mode: String,
    /// The numbers are not trustworthy until a rescan completes.
    pub inconsistent: bool,
}

fn sysfs_qgroups(fsid: &str) -> std::path::PathBuf {
    std::path::Path::new("/sys/fs/btrfs").join(fsid).join("qgroups")
}

fn read_sysfs(path: &std::path::Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether quotas are enabled on filesystem `fsid` ([`FsInfo::fsid_string`]),
/// and how; `None` when they are off.
pub fn quota_state(fsid: &str) -> std::io::Result<Option<QuotaState>> {
    let dir = sysfs_qgroups(fsid);
    if read_sysfs(&dir.join("enabled"))?.as_deref() != Some("1") {
        return Ok(None);
    }
    let mode = read_sysfs(&dir.join("mode"))?.unwrap_or_else(|| "qgroup".into());
    let inconsistent = read_sysfs(&dir.join("inconsistent"))?.as_deref() == Some("1");
    Ok(Some(QuotaState { mode, inconsistent }))
}

/// The bytes quota group `0/<subvol_id>` holds exclusively (data and
/// metadata no other subvolume references), from
/// `/sys/fs/btrfs/<fsid>/qgroups/0_<id>/exclusive`; `None` if there is no
/// such qgroup. Current as of the last transaction commit.
pub fn qgroup_exclusive(fsid: &str, subvol_id: u64) -> std::io::Result<Option<u64>> {
    let path = sysfs_qgroups(fsid).join(format!("0_{subvol_id}")).join("exclusive");
    match read_sysfs(&path)? {
        Some(s) => s.parse().map(Some).map_err(|_| std::io::Error::other(format!("{}: {s:?}", path.display()))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request numbers as gcc computes them from <linux/btrfs.h> on
    /// x86_64 (`printf("%lx", BTRFS_IOC_…)`).
    #[test]
    fn request_numbers_match_the_c_header() {
        let want: &[(libc::Ioctl, u32)] = &[
            (BTRFS_IOC_SNAP_CREATE_V2, 0x5000_9417),
            (BTRFS_IOC_SUBVOL_CREATE_V2, 0x5000_9418),
            (BTRFS_IOC_SUBVOL_CREATE, 0x5000_940e),
            (BTRFS_IOC_SNAP_DESTROY, 0x5000_940f),
            (BTRFS_IOC_SNAP_DESTROY_V2, 0x5000_943f),
            (BTRFS_IOC_SUBVOL_GETFLAGS, 0x8008_9419),
            (BTRFS_IOC_SUBVOL_SETFLAGS, 0x4008_941a),
            (BTRFS_IOC_FS_INFO, 0x8400_941f),
            (BTRFS_IOC_INO_LOOKUP, 0xd000_9412),
            (BTRFS_IOC_QUOTA_CTL, 0xc010_9428),
            (BTRFS_IOC_QUOTA_RESCAN_WAIT, 0x0000_942e),
        ];
        for (got, want) in want {
            #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
            let got = *got as u32;
            assert_eq!(got, *want, "{got:#x} != {want:#x}");
        }
    }

    #[test]
    fn names_are_single_components() {
        let mut buf = [0u8; 64];
        assert_eq!(copy_name("", &mut buf), Err(Errno::INVAL));
        assert_eq!(copy_name("a/b", &mut buf), Err(Errno::INVAL));
        assert_eq!(copy_name(&"x".repeat(256), &mut [0u8; 4040]), Err(Errno::INVAL));
        copy_name("42", &mut buf).unwrap();
        assert_eq!(&buf[..3], b"42\0");
    }
}
