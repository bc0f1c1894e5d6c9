//! Mounts as data.
//!
//! Snapshot drivers describe how to assemble a filesystem as a list of
//! [`Mount`] values — the same shape as containerd's `mount.Mount` — and
//! never call `mount(2)` themselves. Whoever needs the filesystem (the
//! runtime, layer apply, `image mount`) hands the list to [`mount_all`].

use crate::sys::{self, Errno};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// One mount: `mount -t <kind> <source> <target> -o <options>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Filesystem type (`overlay`, `bind`, `btrfs`, `ext4`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Device, directory or `none`.
    pub source: String,
    /// containerd-style options: flags (`ro`, `rbind`) and `key=value`.
    pub options: Vec<String>,
}

impl Mount {
    /// A read-only or read-write bind of a directory.
    pub fn bind(source: &Path, readonly: bool) -> Mount {
        let mut options = vec!["rbind".to_owned()];
        options.push(if readonly { "ro" } else { "rw" }.to_owned());
        Mount { kind: "bind".into(), source: source.display().to_string(), options }
    }

    /// The value of `key=value` option `key`.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
    }

    /// Whether the mount is read-only.
    pub fn is_readonly(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }

    /// Mounts this at `target`, returning which kernel API did it.
    pub fn mount(&self, target: &Path) -> io::Result<sys::mount::Api> {
        sys::mount::mount_fs(&self.kind, &self.source, &self.options, target).map_err(|e| {
            io::Error::new(e.kind(), format!("mount {} ({}) at {}: {e}", self.kind, self.source, target.display()))
        })
    }
}

/// A mount made but attached nowhere (the new mount API's detached
/// mount): made by one process, attached by another in its own mount
/// namespace. Dropping it unmounts it, so a caller that dies before
/// attaching leaves nothing mounted.
#[derive(Debug)]
pub struct Detached {
    fd: std::os::fd::OwnedFd,
}

impl Detached {
    /// Attaches the mount at `target` in the caller's mount namespace.
    pub fn attach(&self, target: &Path) -> io::Result<()> {
        use std::os::fd::AsFd;
        sys::mount::attach(self.fd.as_fd(), target).map_err(|e| {
            io::Error::new(io::Error::from(e).kind(), format!("attach a detached mount at {}: {e}", target.display()))
        })
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }
}

impl Mount {
    /// Makes this mount detached: the filesystem is opened now, with the
    /// caller's privileges and cgroup (a block device a container's device
    /// cgroup denies still mounts), and attached later with
    /// [`Detached::attach`]. `Unsupported` when the kernel lacks the new
    /// mount API or a key it needs (`lowerdir+` before 6.8): the caller
    /// then mounts in place with [`mount_all`].
    pub fn detached(&self) -> io::Result<Detached> {
        let describe = |e: io::Error| {
            let kind = match Errno::from_io_error(&e) {
                Some(Errno::NOSYS) | Some(Errno::INVAL) | Some(Errno::OPNOTSUPP) => io::ErrorKind::Unsupported,
                _ => e.kind(),
            };
            io::Error::new(kind, format!("mount {} ({}) detached: {e}", self.kind, self.source))
        };
        let fd = if self.kind == "bind" || self.options.iter().any(|o| o == "bind" || o == "rbind") {
            sys::mount::bind_detached(&self.source, &self.options)
        } else {
            sys::mount::fsmount_detached(&self.kind, &self.source, &self.options).map_err(io::Error::from)
        }
        .map_err(describe)?;
        Ok(Detached { fd })
    }
}

/// [`Mount::detached`] for every entry, in order.
pub fn detach_all(mounts: &[Mount]) -> io::Result<Vec<Detached>> {
    mounts.iter().map(Mount::detached).collect()
}

/// Mounts every entry of `mounts` at `target`, in order (later mounts stack
/// on earlier ones, as containerd's `mount.All`).
pub fn mount_all(mounts: &[Mount], target: &Path) -> io::Result<()> {
    for m in mounts {
        m.mount(target)?;
    }
    Ok(())
}

/// Unmounts `target` (all stacked mounts on it). `EBUSY` is retried for
/// about a second before it is reported: a process forked by another
/// thread holds copies of that thread's open files until it execs (they
/// are close-on-exec), which briefly pins a mount nobody really uses.
/// containerd's `UnmountAll` retries the same way.
pub fn unmount_all(target: &Path) -> io::Result<()> {
    let mut busy = 0;
    loop {
        match sys::mount::unmount_path(target, false) {
            Ok(()) => continue,
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Ok(()),
            Err(e) if Errno::from_io_error(&e) == Some(Errno::BUSY) && busy < 100 => {
                busy += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The options every temporary host-side view gets on top of its
/// driver's: the tree may be a container's writable layer, where container
/// root can plant setuid binaries and device nodes, and the host only
/// reads and writes files through it — nothing runs from it.
pub const HOST_VIEW_OPTIONS: [&str; 3] = ["nosuid", "nodev", "noexec"];

impl Mount {
    /// This mount with [`HOST_VIEW_OPTIONS`] added (each once).
    pub fn host_view(&self) -> Mount {
        let mut m = self.clone();
        for o in HOST_VIEW_OPTIONS {
            if !m.options.iter().any(|x| x == o) {
                m.options.push(o.to_owned());
            }
        }
        m
    }
}

/// `mounts` with overlay's `volatile` added to each overlay that has an
/// upper dir (other mounts unchanged): no `fsync`/`syncfs` reaches the
/// upper filesystem while mounted, and the kernel refuses to mount that
/// upper again until its `work/incompat/volatile` marker is removed
/// (`ops::container::volatile` says when that is safe).
pub fn with_volatile(mut mounts: Vec<Mount>) -> Vec<Mount> {
    for m in &mut mounts {
        if m.kind == "overlay" && m.option("upperdir").is_some() && !m.options.iter().any(|o| o == "volatile") {
            m.options.push("volatile".into());
        }
    }
    mounts
}

/// A mount that is undone when dropped: for temporary host-side views
/// (cp, volume populate, build steps, layer apply on mounted drivers,
/// diffs, tests). Always `nosuid,nodev,noexec` ([`HOST_VIEW_OPTIONS`]):
/// never use it for a tree a container runs from (the runtime mounts
/// those with [`mount_all`]).
#[derive(Debug)]
pub struct TempMount {
    target: PathBuf,
    active: bool,
}

impl TempMount {
    /// Mounts `mounts` at `target` (which must exist), each with
    /// [`HOST_VIEW_OPTIONS`].
    pub fn new(mounts: &[Mount], target: &Path) -> io::Result<TempMount> {
        let hardened: Vec<Mount> = mounts.iter().map(Mount::host_view).collect();
        let mut guard = TempMount { target: target.to_owned(), active: false };
        for m in &hardened {
            m.mount(target)?;
            // From the first mount on, a failure unmounts what was made.
            guard.active = true;
        }
        Ok(guard)
    }

    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts now, reporting errors that drop would swallow.
    pub fn unmount(mut self) -> io::Result<()> {
        self.active = false;
        unmount_all(&self.target)
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        if self.active && unmount_all(&self.target).is_err() {
            let _ = sys::mount::unmount_path(&self.target, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unmounts whatever is on `0` when the test ends, passed or not.
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = unmount_all(&self.0);
        }
    }

    #[test]
    fn a_detached_mount_is_nowhere_until_attached() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        std::fs::create_dir(&target).unwrap();
        let _cleanup = Cleanup(target.clone());
        let tmpfs = Mount { kind: "tmpfs".into(), source: "none".into(), options: vec!["size=1m".into()] };
        let m = tmpfs.detached().unwrap();
        assert!(!sys::mount::is_mount_point(&target).unwrap(), "detached, yet mounted at the target");
        m.attach(&target).unwrap();
        drop(m);
        assert!(sys::mount::is_mount_point(&target).unwrap(), "attached, yet not a mount point");
        std::fs::write(target.join("f"), b"x").unwrap();
        unmount_all(&target).unwrap();
        assert!(!target.join("f").exists(), "the file was written below the mount, not on it");
    }

    #[test]
    fn a_detached_read_only_bind_is_read_only_once_attached() {
        let dir = tempfile::tempdir().unwrap();
        let (src, target) = (dir.path().join("src"), dir.path().join("t"));
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&target).unwrap();
        std::fs::write(src.join("f"), b"data").unwrap();
        let _cleanup = Cleanup(target.clone());
        let m = Mount::bind(&src, true).detached().unwrap();
        m.attach(&target).unwrap();
        assert_eq!(std::fs::read(target.join("f")).unwrap(), b"data");
        let err = std::fs::write(target.join("g"), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ReadOnlyFilesystem, "{err}");
    }

    /// The mount options of the top mount at `target`, from mountinfo.
    fn options_at(target: &Path) -> Vec<String> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info
            .lines()
            .rfind(|l| l.split(' ').nth(4) == Some(target.to_str().unwrap()))
            .unwrap_or_else(|| panic!("{} not in mountinfo", target.display()));
        line.split(' ').nth(5).unwrap().split(',').map(str::to_owned).collect()
    }

    #[test]
    fn a_temp_mount_is_nosuid_nodev_noexec_for_binds_and_new_filesystems() {
        let dir = tempfile::tempdir().unwrap();
        let (src, target) = (dir.path().join("src"), dir.path().join("t"));
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&target).unwrap();
        let _cleanup = Cleanup(target.clone());
        let tmpfs = Mount { kind: "tmpfs".into(), source: "none".into(), options: vec!["size=1m".into()] };
        for m in [Mount::bind(&src, false), Mount::bind(&src, true), tmpfs] {
            let t = TempMount::new(std::slice::from_ref(&m), &target).unwrap();
            let opts = options_at(&target);
            for o in HOST_VIEW_OPTIONS {
                assert!(opts.iter().any(|x| x == o), "{m:?}: {o} missing from {opts:?}");
            }
            assert_eq!(opts.iter().any(|x| x == "ro"), m.is_readonly(), "{m:?}: {opts:?}");
            t.unmount().unwrap();
        }
    }

    /// A classic bind takes `nosuid`/`ro` only in a second remount, so for
    /// a moment it is visible without them (a CI run caught a `cp` view
    /// in that window); binds go through the new API, flags set before
    /// the mount is attached anywhere.
    #[test]
    fn a_bind_is_attached_with_its_flags_already_set() {
        let dir = tempfile::tempdir().unwrap();
        let (src, target) = (dir.path().join("src"), dir.path().join("t"));
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&target).unwrap();
        let _cleanup = Cleanup(target.clone());
        let api = Mount::bind(&src, true).host_view().mount(&target).unwrap();
        assert_eq!(api, sys::mount::Api::New, "a bind on this kernel must not take the two-step classic path");
        let opts = options_at(&target);
        assert!(opts.iter().any(|x| x == "nosuid") && opts.iter().any(|x| x == "ro"), "{opts:?}");
        unmount_all(&target).unwrap();
    }

    #[test]
    fn a_bad_detached_mount_names_the_source() {
        let m = Mount { kind: "ext4".into(), source: "/nonexistent/dev".into(), options: vec![] };
        let err = m.detached().unwrap_err().to_string();
        assert!(err.contains("ext4 (/nonexistent/dev)"), "{err}");
    }
}
