//! Making the root: propagation of the namespace's mounts, the root bound
//! onto itself (`pivot_root` needs a mount point whose parent is not
//! shared), and the switch — `pivot_root(".", ".")` with the old root
//! detached, or with `no_pivot` a move onto `/` and `chroot`, as runc.

use super::mountinfo;
use super::RootfsError;
use crate::runtime::spec::RootfsPropagation;
use crate::sys::fs::{fchdir, open_dir};
use crate::sys::mount::{
    chroot, mount, mount_change, mount_move, pivot_root, unmount_path, MountFlags, MountPropagationFlags as P,
};
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

fn err(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RootfsError {
    let path = path.display().to_string();
    move |source| RootfsError::Path { step, path, source }
}

/// `linux.rootfsPropagation` as flags; runc's default is `rslave`.
pub fn root_propagation(p: Option<RootfsPropagation>) -> P {
    match p {
        None => P::DOWNSTREAM | P::REC,
        Some(RootfsPropagation::Shared) => P::SHARED,
        Some(RootfsPropagation::RShared) => P::SHARED | P::REC,
        Some(RootfsPropagation::Slave) => P::DOWNSTREAM,
        Some(RootfsPropagation::RSlave) => P::DOWNSTREAM | P::REC,
        Some(RootfsPropagation::Private) => P::PRIVATE,
        Some(RootfsPropagation::RPrivate) => P::PRIVATE | P::REC,
        Some(RootfsPropagation::Unbindable) => P::UNBINDABLE,
        Some(RootfsPropagation::RUnbindable) => P::UNBINDABLE | P::REC,
    }
}

/// Sets the propagation of `/` (so nothing mounted below reaches the
/// host unless the spec asks for it).
pub fn propagate_root(p: Option<RootfsPropagation>) -> Result<(), RootfsError> {
    mount_change("/", root_propagation(p)).map_err(err("set propagation of", Path::new("/")))
}

/// Makes the mount holding `rootfs` private if it is shared, so the bind
/// below does not propagate and `pivot_root` accepts it (runc's
/// `rootfsParentMountPrivate`); then binds `rootfs` onto itself.
pub fn bind_root(rootfs: &Path) -> Result<(), RootfsError> {
    let mounts = mountinfo::read().map_err(err("read mountinfo for", rootfs))?;
    let parent = mounts.iter().filter(|m| rootfs.starts_with(&m.mount_point)).max_by_key(|m| m.mount_point.len());
    if let Some(m) = parent.filter(|m| m.is_shared()) {
        mount_change(&m.mount_point, P::PRIVATE).map_err(err("make private", Path::new(&m.mount_point)))?;
    }
    let s = rootfs.display().to_string();
    mount(&s, rootfs, "", MountFlags::BIND | MountFlags::REC, "").map_err(err("bind root onto itself", rootfs))
}

/// `pivot_root(".", ".")` in `rootfs`, then the old root (stacked on top)
/// made a recursive slave, so the detach cannot propagate to the host,
/// and detached. As runc does, the working directory is moved onto the
/// old root by descriptor first: the kernel promises nothing about where
/// `.` points after `pivot_root`, and a slave change through the new root
/// would take the spec's shared mounts private.
pub fn pivot(rootfs: &Path) -> Result<(), RootfsError> {
    let old_root = open_dir(Path::new("/")).map_err(err("open", Path::new("/")))?;
    std::env::set_current_dir(rootfs).map_err(err("chdir", rootfs))?;
    pivot_root(".", ".").map_err(err("pivot_root", rootfs))?;
    fchdir(old_root.as_fd()).map_err(err("fchdir to the old root", Path::new("/")))?;
    let here = Path::new(".");
    mount_change(here, P::DOWNSTREAM | P::REC).map_err(err("make old root a slave", Path::new("/")))?;
    unmount_path(here, true).map_err(err("detach old root", Path::new("/")))?;
    std::env::set_current_dir("/").map_err(err("chdir", Path::new("/")))
}

/// With `no_pivot`: detach (or cover) the host's full proc and sysfs
/// mounts outside `rootfs` (the kernel refuses a new proc mount while a
/// masked one is visible), move `rootfs` onto `/` and `chroot` into it.
pub fn move_root(rootfs: &Path) -> Result<(), RootfsError> {
    let mounts = mountinfo::read().map_err(err("read mountinfo for", rootfs))?;
    for m in mounts.iter().filter(|m| {
        m.root == "/" && (m.fs_type == "proc" || m.fs_type == "sysfs") && !Path::new(&m.mount_point).starts_with(rootfs)
    }) {
        let p = Path::new(&m.mount_point);
        match mount_change(p, P::DOWNSTREAM | P::REC) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            r => r.map_err(err("make slave", p))?,
        }
        if let Err(e) = unmount_path(p, true) {
            if !matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::PermissionDenied) {
                return Err(err("detach", p)(e));
            }
            mount("tmpfs", p, "tmpfs", MountFlags::empty(), "").map_err(err("cover", p))?;
        }
    }
    std::env::set_current_dir(rootfs).map_err(err("chdir", rootfs))?;
    mount_move(rootfs, "/").map_err(err("move onto /", rootfs))?;
    chroot(".").map_err(err("chroot", rootfs))?;
    std::env::set_current_dir("/").map_err(err("chdir", Path::new("/")))
}
