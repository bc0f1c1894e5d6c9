//! Paths inside the container: every mount target resolved under the
//! root with `openat2(RESOLVE_IN_ROOT)` (created as needed, a dangling
//! symlink followed to where it points inside the root), runc's rule for
//! what may be mounted under `/proc`, and the after-pivot steps that work
//! on paths: `maskedPaths`, `readonlyPaths` and sysctls.

use super::RootfsError;
use crate::sys::fs::{create_file_at, fd_path, fstat, mkdir_at, open_dir, open_path_in_root, readlink_at, Kind};
use crate::sys::mount::{mount, mount_flags_of, ms, MountFlags};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// What a missing mount target is created as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Dir,
    File,
}

/// Symlinks followed while creating one target before giving up, as the
/// kernel's own `MAXSYMLINKS`.
const MAX_LINKS: u32 = 40;

/// An `O_PATH` descriptor of `dest` (a path in the container) resolved
/// under `root`, creating what is missing: parents as directories, the
/// last component as `kind`. Symlinks resolve as inside the container
/// (`/etc -> /` and `../../x` stay under `root`); a dangling one is
/// followed and its target created, as runc's `securejoin` does.
pub fn open_target(root: BorrowedFd<'_>, dest: &str, kind: Target) -> io::Result<OwnedFd> {
    let mut links = 0;
    open_target_counted(root, dest, kind, &mut links)
}

fn open_target_counted(root: BorrowedFd<'_>, dest: &str, kind: Target, links: &mut u32) -> io::Result<OwnedFd> {
    let rel = dest.trim_matches('/');
    match open_path_in_root(root, if rel.is_empty() { "." } else { rel }) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        r => return r,
    }
    let (parent_path, leaf) = rel.rsplit_once('/').unwrap_or(("", rel));
    let parent = open_target_counted(root, parent_path, Target::Dir, links)?;
    if leaf.is_empty() || leaf == "." || leaf == ".." {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    match readlink_at(parent.as_fd(), leaf.as_bytes()) {
        Ok(link) => {
            *links += 1;
            if *links > MAX_LINKS {
                return Err(io::Error::other(format!("more than {MAX_LINKS} symlinks resolving {dest}")));
            }
            let link = String::from_utf8(link)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "symlink target is not UTF-8"))?;
            let next = if link.starts_with('/') { link } else { format!("{parent_path}/{link}") };
            return open_target_counted(root, &next, kind, links);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        // EINVAL: not a symlink, so it appeared meanwhile; reopen below.
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
        Err(e) => return Err(e),
    }
    let made = match kind {
        Target::Dir => mkdir_at(parent.as_fd(), leaf.as_bytes(), 0o755),
        Target::File => create_file_at(parent.as_fd(), leaf.as_bytes()).map(drop),
    };
    match made {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    open_path_in_root(root, rel)
}

/// Where `fd` is, as a path inside the container whose root is the host
/// directory `root` (both as the kernel names them in this namespace).
pub fn container_path(root: &Path, fd: BorrowedFd<'_>) -> io::Result<String> {
    let host = std::fs::read_link(fd_path(fd))?;
    let rel = host
        .strip_prefix(root)
        .map_err(|_| io::Error::other(format!("{} resolved outside the root {}", host.display(), root.display())))?;
    Ok(format!("/{}", rel.display()))
}

/// `/proc` entries a mount may cover: the ones lxcfs emulates (runc's
/// `checkProcMount` list).
const PROC_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// runc's `checkProcMount` on a container path: nothing may be mounted
/// under `/proc` but the [`PROC_ALLOWED`] entries, and `/proc` itself only
/// from a proc filesystem (`source_is_proc`). `None` means allowed, else
/// the reason. runc restricts `/proc` only; `/sys` is left to the spec
/// (`/sys/fs/cgroup` is a normal mount point).
pub fn check_proc_mount(path: &str, source_is_proc: bool) -> Option<String> {
    let clean = clean(path);
    if clean == "/proc" {
        return (!source_is_proc).then(|| format!("{clean} cannot be mounted because it is not of type proc"));
    }
    if clean.starts_with("/proc/") && !PROC_ALLOWED.contains(&clean.as_str()) {
        return Some(format!("{clean} cannot be mounted because it is inside /proc"));
    }
    None
}

/// `path` without empty and `.` components; `..` is kept (only the kernel
/// knows what it means once symlinks are involved).
pub fn clean(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    format!("/{}", parts.join("/"))
}

fn path_err(step: &'static str, path: &str) -> impl FnOnce(io::Error) -> RootfsError {
    let path = path.to_owned();
    move |source| RootfsError::Path { step, path, source }
}

/// Opens `path` in the current root, or `None` when it does not exist
/// (the only error a masked or read-only path may be skipped for).
fn open_existing(root: BorrowedFd<'_>, path: &str, step: &'static str) -> Result<Option<OwnedFd>, RootfsError> {
    match open_path_in_root(root, path.trim_start_matches('/')) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(path_err(step, path)(e)),
    }
}

/// `linux.maskedPaths` after `pivot_root`: a directory is covered by an
/// empty read-only tmpfs, anything else by a bind of `/dev/null`. A path
/// that does not exist is skipped; any other failure is an error.
pub fn mask_paths(paths: &[String]) -> Result<(), RootfsError> {
    let root = open_dir(Path::new("/")).map_err(path_err("open", "/"))?;
    for path in paths {
        let Some(fd) = open_existing(root.as_fd(), path, "mask")? else { continue };
        let is_dir = fstat(fd.as_fd()).map_err(path_err("mask", path))?.kind == Kind::Dir;
        let target = fd_path(fd.as_fd());
        if is_dir {
            mount("tmpfs", &target, "tmpfs", MountFlags::RDONLY, "").map_err(path_err("mask", path))?;
        } else {
            mount("/dev/null", &target, "", MountFlags::BIND, "").map_err(path_err("mask", path))?;
        }
    }
    Ok(())
}

/// `linux.readonlyPaths` after `pivot_root`: a recursive bind of the path
/// onto itself, remounted read-only keeping its nosuid/nodev/noexec. A
/// path that does not exist is skipped; any other failure is an error.
pub fn readonly_paths(paths: &[String]) -> Result<(), RootfsError> {
    let root = open_dir(Path::new("/")).map_err(path_err("open", "/"))?;
    for path in paths {
        let Some(fd) = open_existing(root.as_fd(), path, "read-only")? else { continue };
        let target = fd_path(fd.as_fd());
        mount(&target.display().to_string(), &target, "", MountFlags::BIND | MountFlags::REC, "")
            .map_err(path_err("bind read-only", path))?;
        // The descriptor above names the covered mount; reopen for the new one.
        remount_readonly(root.as_fd(), path).map_err(path_err("remount read-only", path))?;
    }
    Ok(())
}

/// Remounts the mount now at `path` (in the current root) read-only,
/// keeping the flags a user namespace may not drop.
pub fn remount_readonly(root: BorrowedFd<'_>, path: &str) -> io::Result<()> {
    let rel = path.trim_start_matches('/');
    let fd = open_path_in_root(root, if rel.is_empty() { "." } else { rel })?;
    let keep = mount_flags_of(fd.as_fd())? & (MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC);
    mount("", &fd_path(fd.as_fd()), "", keep | MountFlags::BIND | ms::REMOUNT | MountFlags::RDONLY, "")
}

/// The `/proc/sys` file of a dotted sysctl name, or why it is refused:
/// a name must not contain `/`, and no component may be empty, `.` or `..`.
pub fn sysctl_path(key: &str) -> Result<String, String> {
    if key.contains('/') {
        return Err("contains '/'".to_owned());
    }
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("has an empty component".to_owned());
    }
    Ok(format!("/proc/sys/{}", parts.join("/")))
}

/// `linux.sysctl`: writes each value to `/proc/sys/<name with dots as
/// slashes>` (after `pivot_root`, with the container's `/proc`).
pub fn apply_sysctl(sysctl: &BTreeMap<String, String>) -> Result<(), RootfsError> {
    use std::io::Write;
    for (key, value) in sysctl {
        let path = sysctl_path(key).map_err(|reason| RootfsError::Sysctl { key: key.clone(), reason })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| RootfsError::Sysctl { key: key.clone(), reason: format!("open {path}: {e}") })?;
        f.write_all(value.as_bytes())
            .map_err(|e| RootfsError::Sysctl { key: key.clone(), reason: format!("write {path}: {e}") })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_mounts_follow_runc() {
        assert_eq!(check_proc_mount("/proc", true), None);
        assert!(check_proc_mount("/proc", false).unwrap().contains("not of type proc"));
        assert_eq!(check_proc_mount("/proc/cpuinfo", false), None);
        assert_eq!(check_proc_mount("/proc//./uptime", false), None);
        assert!(check_proc_mount("/proc/sys", false).unwrap().contains("inside /proc"));
        assert!(check_proc_mount("/proc/self/fd", false).is_some());
        assert_eq!(check_proc_mount("/procfs/x", false), None);
        assert_eq!(check_proc_mount("/sys/fs/cgroup", false), None);
    }

    #[test]
    fn sysctl_names() {
        assert_eq!(sysctl_path("net.ipv4.ip_forward").unwrap(), "/proc/sys/net/ipv4/ip_forward");
        assert!(sysctl_path("net/../../etc").is_err());
        assert!(sysctl_path("kernel..x").is_err());
        assert!(sysctl_path(".kernel").is_err());
    }

    #[test]
    fn open_target_stays_in_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink("/", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../../../../real", root.join("up")).unwrap();
        std::os::unix::fs::symlink("/made/by/link", root.join("dangling")).unwrap();
        let fd = open_dir(&root).unwrap();
        let t = open_target(fd.as_fd(), "/etc/hostname", Target::File).unwrap();
        assert_eq!(container_path(&root, t.as_fd()).unwrap(), "/hostname");
        assert!(root.join("hostname").is_file());
        let t = open_target(fd.as_fd(), "/up/x/y", Target::Dir).unwrap();
        assert_eq!(container_path(&root, t.as_fd()).unwrap(), "/real/x/y");
        let t = open_target(fd.as_fd(), "/dangling", Target::Dir).unwrap();
        assert_eq!(container_path(&root, t.as_fd()).unwrap(), "/made/by/link");
        assert!(!dir.path().join("hostname").exists());
        assert!(!Path::new("/made").exists());
    }
}
