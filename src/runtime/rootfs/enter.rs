//! The container's filesystem view, built inside its new mount namespace:
//! the driver's mounts, the pseudo filesystems, the `/etc` files and
//! volumes, Docker's masked and read-only paths, then `pivot_root`.
//!
//! Every mount target inside the root is resolved with `openat2(…,
//! RESOLVE_IN_ROOT)` and mounted through its `/proc/self/fd/N` path, so an
//! image's symlinks (`/etc/hosts -> /tmp/x`, `/proc -> /`) can never
//! redirect a mount onto the host — the class of bug behind runc's
//! CVE-2019-19921 and CVE-2021-30465.

use crate::mount::{mount_all, Mount};
use crate::sys::fs::{
    chmod_at, create_file_at, fd_path, fstat, mkdir_at, mknod_at, open_dir_at, open_dir_in_root, open_path_in_root,
    symlink_at, Kind, Node,
};
use crate::sys::mount::{bind, mount_change, mount_fs, mount_remount, pivot_root, MountFlags, MountPropagationFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A bind mount into the container (volume, host path, /etc file).
#[derive(Debug, Clone)]
pub struct Bind {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub readonly: bool,
}

/// Files masked with `/dev/null` or an empty read-only tmpfs, as Docker's
/// default `MaskedPaths`.
pub const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only, as Docker's default `ReadonlyPaths`.
pub const READONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// A step of the setup that failed, with the path involved.
#[derive(Debug, thiserror::Error)]
#[error("{step} {path}: {source}")]
pub struct RootfsError {
    pub step: &'static str,
    pub path: String,
    pub source: io::Error,
}

fn err(step: &'static str, path: impl Into<String>) -> impl FnOnce(io::Error) -> RootfsError {
    let path = path.into();
    move |source| RootfsError { step, path, source }
}

/// What a mount target must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Dir,
    File,
}

/// Opens (creating as needed) `dest` inside `root`, never leaving it.
fn target(root: BorrowedFd<'_>, dest: &str, kind: Target) -> io::Result<OwnedFd> {
    let rel = dest.trim_start_matches('/');
    let (parent, leaf) = match rel.rsplit_once('/') {
        Some((p, l)) => (p, l),
        None => ("", rel),
    };
    // Resolve each prefix of the parent path against the container root
    // (so the image's own symlinks work as inside the container), creating
    // what is missing one component at a time.
    let mut dir = open_dir_in_root(root, b"")?;
    let mut prefix = String::new();
    for comp in parent.split('/').filter(|c| !c.is_empty()) {
        prefix.push_str(comp);
        dir = match open_dir_in_root(root, prefix.as_bytes()) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                mkdir_at(dir.as_fd(), comp.as_bytes(), 0o755)?;
                open_dir_at(dir.as_fd(), comp.as_bytes())?
            }
            Err(e) => return Err(e),
        };
        prefix.push('/');
    }
    if leaf.is_empty() {
        return Ok(dir);
    }
    let open_leaf = |d: BorrowedFd<'_>| open_path_in_root(d, leaf);
    match open_leaf(dir.as_fd()) {
        Ok(fd) => Ok(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match kind {
                Target::Dir => mkdir_at(dir.as_fd(), leaf.as_bytes(), 0o755)?,
                Target::File => drop(create_file_at(dir.as_fd(), leaf.as_bytes())?),
            }
            open_leaf(dir.as_fd())
        }
        Err(e) => Err(e),
    }
}

fn fs_mount(root: BorrowedFd<'_>, fstype: &str, source: &str, dest: &str, options: &[&str]) -> Result<(), RootfsError> {
    let t = target(root, dest, Target::Dir).map_err(err("create mount point", dest))?;
    let opts: Vec<String> = options.iter().map(|s| s.to_string()).collect();
    mount_fs(fstype, source, &opts, &fd_path(t.as_fd())).map_err(err("mount", format!("{fstype} on {dest}")))?;
    Ok(())
}

fn bind_into(root: BorrowedFd<'_>, b: &Bind) -> Result<(), RootfsError> {
    let kind = if b.source.is_dir() { Target::Dir } else { Target::File };
    let t = target(root, &b.destination, kind).map_err(err("create mount point", &b.destination))?;
    bind(&b.source.display().to_string(), &["rbind".to_owned()], &fd_path(t.as_fd()))
        .map_err(err("bind", &b.destination))?;
    if b.readonly {
        remount_readonly(root, &b.destination)?;
    }
    Ok(())
}

/// Makes the mount now at `dest` read-only. The path is resolved afresh:
/// a descriptor opened before the bind still names the covered mount.
fn remount_readonly(root: BorrowedFd<'_>, dest: &str) -> Result<(), RootfsError> {
    let fd = open_path(root, dest).map_err(err("reopen", dest))?;
    mount_remount(fd_path(fd.as_fd()), MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID, "")
        .map_err(err("remount read-only", dest))
}

/// `openat2(root, dest, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
fn open_path(root: BorrowedFd<'_>, dest: &str) -> io::Result<OwnedFd> {
    open_path_in_root(root, dest.trim_start_matches('/'))
}

/// The standard device nodes of a container's `/dev` (major, minor).
const DEVICES: &[(&str, u32, u32)] =
    &[("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

fn populate_dev(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    fs_mount(root, "tmpfs", "tmpfs", "/dev", &["nosuid", "strictatime", "mode=755", "size=65536k"])?;
    let dev = open_dir_in_root(root, b"dev").map_err(err("open", "/dev"))?;
    for (name, major, minor) in DEVICES {
        mknod_at(dev.as_fd(), name.as_bytes(), Node::Char, 0o666, *major, *minor)
            .map_err(err("mknod", format!("/dev/{name}")))?;
        // mknod applies the umask; the nodes must be 0666.
        chmod_at(dev.as_fd(), name.as_bytes(), 0o666).map_err(err("chmod", format!("/dev/{name}")))?;
    }
    fs_mount(
        root,
        "devpts",
        "devpts",
        "/dev/pts",
        &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    )?;
    fs_mount(root, "tmpfs", "shm", "/dev/shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"])?;
    fs_mount(root, "mqueue", "mqueue", "/dev/mqueue", &["nosuid", "noexec", "nodev"])?;
    for (name, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        symlink_at(to.as_bytes(), dev.as_fd(), name.as_bytes()).map_err(err("symlink", format!("/dev/{name}")))?;
    }
    Ok(())
}

fn mask(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    for path in MASKED {
        let Ok(fd) = open_path(root, path) else {
            continue; // absent on this kernel: nothing to mask
        };
        let is_dir = fstat(fd.as_fd()).map(|m| m.kind == Kind::Dir).unwrap_or(false);
        let target = fd_path(fd.as_fd());
        if is_dir {
            mount_fs("tmpfs", "tmpfs", &["ro".into(), "size=0".into()], &target).map_err(err("mask", *path))?;
        } else {
            bind("/dev/null", &["bind".into()], &target).map_err(err("mask", *path))?;
        }
    }
    for path in READONLY {
        let Ok(fd) = open_path(root, path) else {
            continue;
        };
        let target = fd_path(fd.as_fd());
        bind(&target.display().to_string(), &["rbind".into()], &target).map_err(err("read-only", *path))?;
        remount_readonly(root, path)?;
    }
    Ok(())
}

/// Everything the child needs to build the view.
#[derive(Debug, Clone)]
pub struct RootfsSpec {
    /// The driver's mounts for the writable layer.
    pub mounts: Vec<Mount>,
    /// Where to mount them (an empty directory).
    pub dir: PathBuf,
    /// /etc files and volumes.
    pub binds: Vec<Bind>,
    pub readonly: bool,
}

/// Builds the container's filesystem and makes it the process's root.
/// Must run in a fresh mount namespace (and PID namespace, for `/proc`).
pub fn enter(spec: &RootfsSpec) -> Result<(), RootfsError> {
    // Nothing we mount may propagate back to the host.
    mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC).map_err(err("make private", "/"))?;
    mount_all(&spec.mounts, &spec.dir).map_err(err("mount rootfs", spec.dir.display().to_string()))?;
    let root = crate::sys::fs::open_dir(&spec.dir).map_err(err("open", spec.dir.display().to_string()))?;
    let r = root.as_fd();
    fs_mount(r, "proc", "proc", "/proc", &["nosuid", "noexec", "nodev"])?;
    fs_mount(r, "sysfs", "sysfs", "/sys", &["nosuid", "noexec", "nodev", "ro"])?;
    populate_dev(r)?;
    for b in &spec.binds {
        bind_into(r, b)?;
    }
    mask(r)?;
    pivot(&spec.dir)?;
    if spec.readonly {
        mount_remount("/", MountFlags::BIND | MountFlags::RDONLY, "").map_err(err("remount read-only", "/"))?;
    }
    Ok(())
}

/// `pivot_root(".", ".")` then a detached unmount of the old root stacked
/// underneath: no `put_old` directory needed inside the image (the idiom
/// runc and crun use).
fn pivot(dir: &Path) -> Result<(), RootfsError> {
    std::env::set_current_dir(dir).map_err(err("chdir", dir.display().to_string()))?;
    pivot_root(".", ".").map_err(err("pivot_root", dir.display().to_string()))?;
    // The old root is now mounted on top of the new one at "/"; make it
    // private so the detach below cannot propagate, then drop it.
    mount_change(".", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(err("make old root private", "/"))?;
    crate::sys::mount::unmount_path(Path::new("."), true).map_err(err("detach old root", "/"))?;
    std::env::set_current_dir("/").map_err(err("chdir", "/"))?;
    Ok(())
}
