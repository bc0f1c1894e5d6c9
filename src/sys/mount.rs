//! Executing mounts: the new mount API (`fsopen`/`fsconfig`/`fsmount`/
//! `move_mount`, Linux 5.2+; overlay's `lowerdir+` needs 6.8+) with a
//! classic `mount(2)` fallback, plus bind mounts and unmounts.
//!
//! Callers pass containerd-style option lists (`["ro", "lowerdir=a:b",
//! "upperdir=u", "workdir=w"]`). With the new API every `lowerdir` entry is
//! passed as its own `fsconfig(FSCONFIG_SET_STRING, "lowerdir+", dir)`, so the
//! one-page limit on `mount(2)`'s data string no longer caps the layer count
//! (the kernel's own limit is 500 lower layers, `OVL_MAX_STACK`).

use rustix::fd::AsFd;
use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, mount, move_mount, unmount, FsMountFlags,
    FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags,
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
        bind(source, options, target)?;
        return Ok(Api::Classic);
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
    let mnt = fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(mnt.as_fd(), "", CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)?;
    Ok(())
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
        mount(source, target, fstype, flags, Some(data.as_c_str()))?;
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
    let r = mount(source, &target_abs, fstype, flags, Some(data.as_c_str()));
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
    mount(source, target, "", flags, None)?;
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

pub use rustix::mount::{MountFlags, MountPropagationFlags};

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
