//! Executing mounts: the new mount API (`fsopen`/`fsconfig`/`fsmount`/
//! `move_mount`, Linux 5.2+; overlay's `lowerdir+` needs 6.8+) with a
//! classic `mount(2)` fallback, plus bind mounts and unmounts.
//!
//! Callers pass containerd-style option lists (`["ro", "lowerdir=a:b",
//! "upperdir=u", "workdir=w"]`). With the new API every `lowerdir` entry is
//! passed as its own `fsconfig(FSCONFIG_SET_STRING, "lowerdir+", dir)`, so the
//! one-page limit on `mount(2)`'s data string no longer caps the layer count
//! (the kernel's own limit is 500 lower layers, `OVL_MAX_STACK`).

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount, unmount, FsMountFlags,
    FsOpenFlags, MoveMountFlags, UnmountFlags,
};
use std::io;
use std::path::Path;

/// Page size bound on `mount(2)` data (see `copy_mount_options` in
/// fs/namespace.c: the kernel copies at most one page).
const MOUNT_DATA_MAX: usize = 4095;

/// Mount flags that are options in containerd's vocabulary but flags to the
/// kernel.
fn flag_option(opt: &str) -> Option<(MountFlags, MountAttrFlags)> {
    Some(match opt {
        "ro" => (MountFlags::RDONLY, MountAttrFlags::MOUNT_ATTR_RDONLY),
        "nosuid" => (MountFlags::NOSUID, MountAttrFlags::MOUNT_ATTR_NOSUID),
        "nodev" => (MountFlags::NODEV, MountAttrFlags::MOUNT_ATTR_NODEV),
        "noexec" => (MountFlags::NOEXEC, MountAttrFlags::MOUNT_ATTR_NOEXEC),
        "noatime" => (MountFlags::NOATIME, MountAttrFlags::MOUNT_ATTR_NOATIME),
        "strictatime" => (MountFlags::STRICTATIME, MountAttrFlags::MOUNT_ATTR_STRICTATIME),
        "relatime" => (MountFlags::RELATIME, MountAttrFlags::MOUNT_ATTR_RELATIME),
        "nodiratime" => (MountFlags::NODIRATIME, MountAttrFlags::MOUNT_ATTR_NODIRATIME),
        "rw" => (MountFlags::empty(), MountAttrFlags::empty()),
        _ => return None,
    })
}

/// Which kernel interface performed a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `fsopen`/`fsconfig`/`fsmount`/`move_mount`.
    New,
    /// `mount(2)` with a data string.
    Classic,
}

/// Mounts a filesystem of type `fstype` at `target`.
///
/// Tries the new mount API first and falls back to `mount(2)` when the
/// kernel lacks it (`ENOSYS`) or rejects an fsconfig key it does not know
/// (`EINVAL` on `lowerdir+` before 6.8).
pub fn mount_fs(fstype: &str, source: &str, options: &[String], target: &Path) -> io::Result<Api> {
    if fstype == "bind" || options.iter().any(|o| o == "bind" || o == "rbind") {
        // A classic bind takes its flags only in a second remount call, so
        // for a moment the mount is visible without `nosuid`/`ro`; the
        // new API sets them on the detached copy before it is attached.
        match bind_detached(source, options) {
            Ok(tree) => {
                attach(tree.as_fd(), target)?;
                return Ok(Api::New);
            }
            Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::NOSYS)) => {
                bind(source, options, target)?;
                return Ok(Api::Classic);
            }
            Err(e) => return Err(e),
        }
    }
    match mount_new_api(fstype, source, options, target) {
        Ok(()) => Ok(Api::New),
        Err(Errno::NOSYS) | Err(Errno::INVAL) | Err(Errno::OPNOTSUPP) => {
            mount_classic(fstype, source, options, target)?;
            Ok(Api::Classic)
        }
        Err(e) => Err(e.into()),
    }
}

/// `fsopen(2)` + `fsconfig(2)` + `fsmount(2)` + `move_mount(2)`.
pub fn mount_new_api(fstype: &str, source: &str, options: &[String], target: &Path) -> Result<(), Errno> {
    let mnt = fsmount_detached(fstype, source, options)?;
    attach(mnt.as_fd(), target)
}

/// `fsopen(2)` + `fsconfig(2)` + `fsmount(2)`: a new filesystem as a
/// detached mount, attached nowhere until [`attach`]; dropping the
/// descriptor unmounts it. The filesystem is opened with the caller's
/// credentials, cgroup and namespaces, whoever attaches it later.
pub fn fsmount_detached(fstype: &str, source: &str, options: &[String]) -> Result<OwnedFd, Errno> {
    let fs = fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)?;
    if !source.is_empty() && source != "none" {
        fsconfig_set_string(fs.as_fd(), "source", source)?;
    }
    let mut attrs = MountAttrFlags::empty();
    for opt in options {
        if let Some((_, attr)) = flag_option(opt) {
            attrs |= attr;
            // As mount(2)'s MS_RDONLY does for a new superblock: a block
            // device must be opened read-only, or a read-only device (a
            // committed dm-thin layer) fails with EACCES.
            if opt == "ro" {
                fsconfig_set_flag(fs.as_fd(), "ro")?;
            }
            continue;
        }
        match opt.split_once('=') {
            Some(("lowerdir", dirs)) => {
                for dir in dirs.split(':').filter(|d| !d.is_empty()) {
                    fsconfig_set_string(fs.as_fd(), "lowerdir+", dir)?;
                }
            }
            Some((key, value)) => fsconfig_set_string(fs.as_fd(), key, value)?,
            None => fsconfig_set_flag(fs.as_fd(), opt.as_str())?,
        }
    }
    fsconfig_create(fs.as_fd())?;
    fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)
}

/// `open_tree(source, OPEN_TREE_CLONE [| AT_RECURSIVE])` and, for `ro`,
/// `nosuid`, … in `options`, `mount_setattr` on the copy: a bind mount
/// of `source`, detached until [`attach`].
pub fn bind_detached(source: &str, options: &[String]) -> io::Result<OwnedFd> {
    use rustix::mount::{open_tree, OpenTreeFlags};
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    let recursive = options.iter().any(|o| o == "rbind");
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = open_tree(CWD, source, flags)?;
    let set = options.iter().filter_map(|o| flag_option(o)).fold(MountAttrFlags::empty(), |a, (_, f)| a | f);
    if !set.is_empty() {
        let attr =
            MountAttr { attr_set: set, attr_clr: MountAttrFlags::empty(), propagation: MountPropagationFlags::empty() };
        mount_setattr(tree.as_fd(), recursive, &attr)?;
    }
    Ok(tree)
}

/// `move_mount(mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`:
/// attaches a detached mount (from [`fsmount_detached`] or
/// [`bind_detached`]) at `target`, in the caller's mount namespace.
pub fn attach(mnt: BorrowedFd<'_>, target: &Path) -> Result<(), Errno> {
    move_mount(mnt, "", CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
}

/// `mount(2)` with the non-flag options joined into the data string.
///
/// When the data exceeds a page (deep overlay stacks), the layer directories
/// are rewritten relative to their common parent and the mount is made from
/// there, the trick containerd uses on old kernels. That changes the
/// process-wide working directory for the duration of the call, so it is
/// only used on this fallback path.
pub fn mount_classic(fstype: &str, source: &str, options: &[String], target: &Path) -> io::Result<()> {
    let mut flags = MountFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        match flag_option(opt) {
            Some((f, _)) => flags |= f,
            None => data.push(opt),
        }
    }
    let joined = data.join(",");
    if joined.len() <= MOUNT_DATA_MAX {
        let data = std::ffi::CString::new(joined).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        rustix::mount::mount(source, target, fstype, flags, Some(data.as_c_str()))?;
        return Ok(());
    }
    let target_abs = std::path::absolute(target)?;
    let (base, relative) = relativize(&data).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "mount options exceed one page and share no parent directory")
    })?;
    if relative.len() > MOUNT_DATA_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "mount options are {} bytes even relative to {}; this kernel needs lowerdir+ (6.8+)",
                relative.len(),
                base
            ),
        ));
    }
    let old = std::env::current_dir()?;
    std::env::set_current_dir(&base)?;
    let data = std::ffi::CString::new(relative).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let r = rustix::mount::mount(source, &target_abs, fstype, flags, Some(data.as_c_str()));
    std::env::set_current_dir(old)?;
    r.map_err(Into::into)
}

/// Rewrites `key=/a/b/x:/a/b/y` style options relative to their longest
/// common directory.
fn relativize(data: &[&str]) -> Option<(String, String)> {
    let dirs: Vec<&str> = data
        .iter()
        .filter_map(|o| o.split_once('=').map(|(_, v)| v))
        .flat_map(|v| v.split(':'))
        .filter(|p| p.starts_with('/'))
        .collect();
    let first = dirs.first()?;
    let mut base: &str = first.rsplit_once('/').map(|(b, _)| b)?;
    while !dirs.iter().all(|d| d.starts_with(&format!("{base}/"))) {
        base = base.rsplit_once('/').map(|(b, _)| b)?;
        if base.is_empty() {
            return None;
        }
    }
    let prefix = format!("{base}/");
    let opts: Vec<String> = data
        .iter()
        .map(|o| match o.split_once('=') {
            Some((k, v)) => {
                let parts: Vec<&str> = v.split(':').map(|p| p.strip_prefix(prefix.as_str()).unwrap_or(p)).collect();
                format!("{k}={}", parts.join(":"))
            }
            None => o.to_string(),
        })
        .collect();
    Some((base.to_owned(), opts.join(",")))
}

/// A bind mount of `source` at `target`, made read-only with a remount when
/// the options ask for it (a bind ignores `MS_RDONLY` on first mount).
pub fn bind(source: &str, options: &[String], target: &Path) -> io::Result<()> {
    let recursive = options.iter().any(|o| o == "rbind");
    let mut flags = MountFlags::BIND;
    if recursive {
        flags |= MountFlags::REC;
    }
    rustix::mount::mount(source, target, "", flags, None)?;
    let mut re = MountFlags::empty();
    for opt in options {
        if let Some((f, _)) = flag_option(opt) {
            re |= f;
        }
    }
    if !re.is_empty() {
        rustix::mount::mount_remount(target, MountFlags::BIND | re, "")?;
    }
    Ok(())
}

/// `umount2(target, 0)`, or with `MNT_DETACH` when `lazy`.
/// Fails at once on `EBUSY` (callers choose: retry with
/// [`crate::mount::unmount_all`], or detach lazily).
pub fn unmount_path(target: &Path, lazy: bool) -> io::Result<()> {
    let flags = if lazy { UnmountFlags::DETACH } else { UnmountFlags::empty() };
    loop {
        match unmount(target, flags) {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether `path` is a mount point (its mount ID differs from its parent's,
/// or it is the root of a mount per `statx`'s `STATX_ATTR_MOUNT_ROOT`).
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags};
    let st = statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BASIC_STATS)?;
    Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
        && st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT))
}

pub use rustix::mount::{MountAttrFlags, MountFlags, MountPropagationFlags};

/// `mount(NULL, target, NULL, flags, NULL)`: changes the propagation type
/// of the mount at `target` (`MS_PRIVATE | MS_REC`, …).
///
/// See mount(2), "Changing the propagation type of an existing mount".
pub fn mount_change(target: impl AsRef<Path>, flags: MountPropagationFlags) -> io::Result<()> {
    Ok(rustix::mount::mount_change(target.as_ref(), flags)?)
}

/// `mount(NULL, target, NULL, MS_REMOUNT | flags, data)`: changes the
/// flags of the mount at `target` (`MS_BIND | MS_RDONLY` for a read-only
/// bind).
///
/// See mount(2), "Remounting an existing mount".
pub fn mount_remount(target: impl AsRef<Path>, flags: MountFlags, data: &str) -> io::Result<()> {
    Ok(rustix::mount::mount_remount(target.as_ref(), flags, data)?)
}

/// `pivot_root(new_root, put_old)`: makes `new_root` the root mount of
/// this mount namespace and moves the old root to `put_old`.
///
/// See pivot_root(2).
pub fn pivot_root(new_root: impl AsRef<Path>, put_old: impl AsRef<Path>) -> io::Result<()> {
    Ok(rustix::process::pivot_root(new_root.as_ref(), put_old.as_ref())?)
}

/// `mount(2)` flags rustix keeps out of [`MountFlags`] because it gives
/// them calls of their own, for callers that pass a flag word through as
/// runc does (an OCI `remount` option, `MS_POSIXACL`, `MS_I_VERSION`).
pub mod ms {
    use super::MountFlags;

    /// `MS_REMOUNT` (`<linux/mount.h>`: 32).
    pub const REMOUNT: MountFlags = MountFlags::from_bits_retain(32);
    /// `MS_POSIXACL` (`1 << 16`).
    pub const POSIXACL: MountFlags = MountFlags::from_bits_retain(1 << 16);
    /// `MS_I_VERSION` (`1 << 23`).
    pub const I_VERSION: MountFlags = MountFlags::from_bits_retain(1 << 23);

    #[test]
    fn match_libc() {
        assert_eq!(u64::from(REMOUNT.bits()), libc::MS_REMOUNT);
        assert_eq!(u64::from(POSIXACL.bits()), libc::MS_POSIXACL);
        assert_eq!(u64::from(I_VERSION.bits()), libc::MS_I_VERSION);
    }
}

/// `mount(source, target, fstype, flags, data)`: the raw call, every flag
/// passed through (`MS_REMOUNT` and `MS_BIND` included); an empty `data`
/// passes `NULL`.
///
/// See mount(2).
pub fn mount(source: &str, target: &Path, fstype: &str, flags: MountFlags, data: &str) -> io::Result<()> {
    let data = if data.is_empty() {
        None
    } else {
        Some(std::ffi::CString::new(data).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?)
    };
    loop {
        match rustix::mount::mount(source, target, fstype, flags, data.as_deref()) {
            Err(Errno::INTR) => continue,
            r => return r.map_err(Into::into),
        }
    }
}

/// `mount(source, target, NULL, MS_MOVE, NULL)`: moves the mount at
/// `source` to `target`.
///
/// See mount(2), "Moving a mount".
pub fn mount_move(source: impl AsRef<Path>, target: impl AsRef<Path>) -> io::Result<()> {
    Ok(rustix::mount::mount_move(source.as_ref(), target.as_ref())?)
}

/// `chroot(path)`.
///
/// See chroot(2).
pub fn chroot(path: impl AsRef<Path>) -> io::Result<()> {
    Ok(rustix::process::chroot(path.as_ref())?)
}

/// `struct mount_attr` of `<linux/mount.h>`: what [`mount_setattr`] sets
/// and clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountAttr {
    pub attr_set: MountAttrFlags,
    pub attr_clr: MountAttrFlags,
    /// `MS_PRIVATE`, `MS_SHARED`, `MS_SLAVE` or `MS_UNBINDABLE`; empty
    /// leaves propagation alone.
    pub propagation: MountPropagationFlags,
}

/// The kernel's layout of `struct mount_attr` (`MOUNT_ATTR_SIZE_VER0`).
#[repr(C)]
struct RawMountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0),
/// &attr, sizeof attr)`: changes the attributes of the mount `fd` is the
/// root of (an `O_PATH` descriptor of a mount point), and with `recursive`
/// of every mount below it too (runc's `rro`, `rnosuid`, …). Linux 5.12+.
///
/// See mount_setattr(2).
#[allow(unsafe_code)]
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let raw = RawMountAttr {
        attr_set: u64::from(attr.attr_set.bits()),
        attr_clr: u64::from(attr.attr_clr.bits()),
        propagation: u64::from(attr.propagation.bits()),
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    loop {
        // SAFETY: `fd` is a live descriptor for the duration of the call
        // (borrowed), the path is a NUL-terminated empty C string literal,
        // and `raw` is a properly initialised `struct mount_attr` whose
        // size we pass, so the kernel reads exactly that many bytes from a
        // valid pointer and writes nothing.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd.as_raw_fd(),
                c"".as_ptr(),
                flags,
                std::ptr::from_ref(&raw),
                std::mem::size_of::<RawMountAttr>(),
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// The mount flags (`MS_RDONLY`, `MS_NOSUID`, …, the atime mode) of the
/// mount `fd` lives on, from `fstatvfs(fd)`'s `f_flag` (`ST_*` bits
/// translated to their `MS_*` twins). Works on `O_PATH` descriptors.
///
/// See statvfs(3), fstatfs(2).
pub fn mount_flags_of(fd: BorrowedFd<'_>) -> io::Result<MountFlags> {
    use rustix::fs::StatVfsMountFlags as St;
    let st = rustix::fs::fstatvfs(fd)?;
    let table = [
        (St::RDONLY, MountFlags::RDONLY),
        (St::NOSUID, MountFlags::NOSUID),
        (St::NODEV, MountFlags::NODEV),
        (St::NOEXEC, MountFlags::NOEXEC),
        (St::SYNCHRONOUS, MountFlags::SYNCHRONOUS),
        (St::MANDLOCK, MountFlags::PERMIT_MANDATORY_FILE_LOCKING),
        (St::NOATIME, MountFlags::NOATIME),
        (St::NODIRATIME, MountFlags::NODIRATIME),
        (St::RELATIME, MountFlags::RELATIME),
        // ST_NOSYMFOLLOW (glibc's <sys/statvfs.h>; libc lacks it).
        (St::from_bits_retain(0x2000), MountFlags::NOSYMFOLLOW),
    ];
    Ok(table
        .iter()
        .filter(|(st_flag, _)| st.f_flag.contains(*st_flag))
        .fold(MountFlags::empty(), |acc, (_, ms)| acc | *ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relativize_strips_common_parent() {
        let (base, s) =
            relativize(&["lowerdir=/r/o/1/fs:/r/o/2/fs", "upperdir=/r/o/3/fs", "workdir=/r/o/3/work"]).unwrap();
        assert_eq!(base, "/r/o");
        assert_eq!(s, "lowerdir=1/fs:2/fs,upperdir=3/fs,workdir=3/work");
    }
}
