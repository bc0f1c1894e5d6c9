//! A setup's filesystem on its [`Target`]: a scratch loop filesystem, a
//! fresh subdirectory of an existing filesystem, or a block device
//! formatted for it. Each owns what it made and releases it on drop,
//! including while a panic unwinds.
//!
//! ```text
//! --on DIR:     DIR/strata-copyup-<unique>/     removed afterwards (mounts
//!                                               under it detached first)
//! --device DEV: <scratch dir>/strata-copyup-dev-<unique>.mnt/
//!                                               DEV mounted here, unmounted
//!                                               and the directory removed
//! ```

use super::storage::{StorageFacts, Target};
use super::Setup;
use crate::scratch::{FsKind, ScratchFs};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A setup's filesystem.
pub enum Place {
    Scratch(ScratchFs),
    Dir(DirPlace),
    Device(DeviceFs),
}

impl Place {
    /// Makes the place for `setup` on `target`.
    pub fn make(opts: &crate::bench::Options, target: &Target, setup: &Setup, fs_bytes: u64) -> io::Result<Place> {
        match target {
            Target::Loop => crate::bench::scratch_direct(opts, setup.fs, fs_bytes)
                .map(Place::Scratch)
                .map_err(|e| io::Error::other(e.to_string())),
            Target::On(on) => DirPlace::new(&on.dir).map(Place::Dir),
            Target::Device(d) => DeviceFs::new(&d.path, setup.fs, &opts.scratch_dir).map(Place::Device),
        }
    }

    /// Where the setup's data goes.
    pub fn path(&self) -> &Path {
        match self {
            Place::Scratch(fs) => fs.path(),
            Place::Dir(d) => &d.dir,
            Place::Device(d) => &d.mountpoint,
        }
    }

    /// Whether a loop device under it does direct I/O (false elsewhere:
    /// no loop device, nothing to bypass).
    pub fn direct_io(&self) -> bool {
        matches!(self, Place::Scratch(fs) if fs.direct_io())
    }

    /// The loop's backing file, if there is one.
    pub fn scratch(&self) -> Option<&ScratchFs> {
        match self {
            Place::Scratch(fs) => Some(fs),
            _ => None,
        }
    }

    /// What the report says about the storage.
    pub fn facts(&self) -> StorageFacts {
        let mount = crate::bench::env::mount_of(self.path());
        let mut f = match self {
            Place::Scratch(fs) => match fs.device() {
                Some(d) => StorageFacts::of_block_device(d.path()),
                None => StorageFacts { kind: "loop device".into(), ..Default::default() },
            },
            Place::Device(d) => StorageFacts::of_block_device(&d.device),
            Place::Dir(d) => {
                let source = mount.as_ref().map(|m| m.source.clone()).unwrap_or_default();
                let is_block = std::fs::metadata(&source).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_block_device()
                });
                let mut f =
                    if is_block { StorageFacts::of_block_device(Path::new(&source)) } else { StorageFacts::default() };
                f.kind = "mounted directory".into();
                f.mount_source = Some(source);
                f.reflink = Some(d.reflink());
                f
            }
        };
        f.fstype = mount.map(|m| m.fstype);
        f
    }
}

/// A fresh subdirectory of an existing filesystem; on drop every mount
/// below it is detached (deepest first) and it is removed.
pub struct DirPlace {
    dir: PathBuf,
}

impl DirPlace {
    pub fn new(parent: &Path) -> io::Result<DirPlace> {
        let dir = parent.join(format!("strata-copyup-{}", crate::root::unique_suffix()));
        std::fs::create_dir(&dir).map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", dir.display())))?;
        Ok(DirPlace { dir })
    }

    /// Whether the filesystem clones files (`FICLONE` of a 4 KiB file).
    fn reflink(&self) -> bool {
        let a = self.dir.join(".reflink-probe-a");
        let b = self.dir.join(".reflink-probe-b");
        let ok = (|| -> io::Result<bool> {
            std::fs::write(&a, [7u8; 4096])?;
            let src = std::fs::File::open(&a)?;
            let dst = std::fs::File::create(&b)?;
            Ok(crate::sys::clone::ficlone(&dst, &src).is_ok())
        })()
        .unwrap_or(false);
        let _ = std::fs::remove_file(&a);
        let _ = std::fs::remove_file(&b);
        ok
    }
}

/// Detaches every mount at or below `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<String> = crate::bench::env::parse_mountinfo(&info)
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|m| m.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if crate::sys::mount::unmount_path(Path::new(&p), false).is_err() {
            let _ = crate::sys::mount::unmount_path(Path::new(&p), true);
        }
    }
}

impl Drop for DirPlace {
    fn drop(&mut self) {
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A block device formatted with `kind` and mounted at a new directory;
/// unmounted (and the directory removed) on drop. The device itself is
/// left as it is: formatted.
pub struct DeviceFs {
    device: PathBuf,
    mountpoint: PathBuf,
    mounted: bool,
}

impl DeviceFs {
    pub fn new(device: &Path, kind: FsKind, scratch_dir: &Path) -> io::Result<DeviceFs> {
        let mountpoint = scratch_dir.join(format!("strata-copyup-dev-{}.mnt", crate::root::unique_suffix()));
        // The device may have been mounted since it was checked.
        let uses = super::storage::uses_of(device);
        if !uses.is_empty() {
            return Err(io::Error::other(format!("{} is in use: {}", device.display(), uses.join("; "))));
        }
        let (tool, args) = kind.mkfs(true);
        let out = Command::new(tool).args(args).arg(device).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{tool} {}: {}",
                device.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        std::fs::create_dir(&mountpoint)?;
        let mut fs = DeviceFs { device: device.to_owned(), mountpoint, mounted: false };
        crate::sys::mount::mount_fs(kind.fstype(), &device.display().to_string(), &[], &fs.mountpoint)?;
        fs.mounted = true;
        Ok(fs)
    }
}

impl Drop for DeviceFs {
    fn drop(&mut self) {
        unmount_under(&self.mountpoint);
        if self.mounted && crate::mount::unmount_all(&self.mountpoint).is_err() {
            let _ = crate::sys::mount::unmount_path(&self.mountpoint, true);
        }
        let _ = std::fs::remove_dir(&self.mountpoint);
    }
}
