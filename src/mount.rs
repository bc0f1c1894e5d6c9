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

/// A mount that is undone when dropped: for temporary views (layer apply
/// on mounted drivers, diffs, tests).
#[derive(Debug)]
pub struct TempMount {
    target: PathBuf,
    active: bool,
}

impl TempMount {
    /// Mounts `mounts` at `target` (which must exist).
    pub fn new(mounts: &[Mount], target: &Path) -> io::Result<TempMount> {
        mount_all(mounts, target)?;
        Ok(TempMount { target: target.to_owned(), active: true })
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
