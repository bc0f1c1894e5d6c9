//! Scratch filesystems on loop devices, for tests and benchmarks that need
//! a specific filesystem (ext4, XFS with reflinks, btrfs) regardless of
//! what the host's root is.
//!
//! ```text
//! <dir>/                                 /var/tmp unless given
//! ├── strata-scratch-<unique>.img        sparse backing file
//! └── strata-scratch-<unique>.mnt/       mount point of /dev/loopN
//! ```
//!
//! **Cold caches without touching the host's.** [`ScratchFs::drop_cache`]
//! empties the page cache of one scratch filesystem only — unmount (which
//! frees its inodes, dentries and data pages), `BLKFLSBUF` on its loop
//! device (ext4 keeps metadata in the device's own cache), then
//! `POSIX_FADV_DONTNEED` on the backing file, and mount again — where
//! `echo 3 > /proc/sys/vm/drop_caches` would empty every cache on the
//! machine. A filesystem made with [`ScratchFs::new_direct_in`] has its
//! loop device read and write the backing file with `O_DIRECT`
//! (`LO_FLAGS_DIRECT_IO`), so no byte of it is cached by the host at all:
//! a read that misses the scratch filesystem's cache goes to the disk.
//! [`ScratchFs::backing_residency`] proves either with `mincore(2)`.
//!
//! [`ScratchFs`] owns all three resources (backing file, loop device,
//! mount) and releases them in reverse order on drop, including while a
//! test unwinds from a panic. Needs root (`CAP_SYS_ADMIN`) and the mkfs
//! tool of the chosen filesystem.

use crate::sys::loopdev::LoopDevice;
use crate::sys::mincore::{file_residency, Residency};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The filesystems a scratch fixture can be formatted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// ext4 with a journal (`mkfs.ext4`): no reflinks.
    Ext4,
    /// XFS with reflinks (`mkfs.xfs -m reflink=1`).
    Xfs,
    /// btrfs (`mkfs.btrfs`): reflinks and subvolumes.
    Btrfs,
}

impl FsKind {
    /// The filesystem type as `mount -t` spells it.
    pub fn fstype(self) -> &'static str {
        match self {
            FsKind::Ext4 => "ext4",
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
        }
    }

    /// The mkfs command line (without the device). Discards are turned off
    /// because they only punch holes in a backing file that is new anyway.
    /// `eager` initialises ext4's inode tables and journal in mkfs rather
    /// than leaving them to the `ext4lazyinit` kernel thread, which would
    /// otherwise write to the device for a while after the mount (see
    /// `mke2fs(8)`, `lazy_itable_init`); XFS and btrfs have no such work.
    pub fn mkfs(self, eager: bool) -> (&'static str, &'static [&'static str]) {
        match self {
            FsKind::Ext4 if eager => {
                ("mkfs.ext4", &["-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0"])
            }
            FsKind::Ext4 => ("mkfs.ext4", &["-q", "-F", "-E", "nodiscard"]),
            FsKind::Xfs => ("mkfs.xfs", &["-q", "-f", "-K", "-m", "reflink=1"]),
            FsKind::Btrfs => ("mkfs.btrfs", &["-q", "-f", "-K"]),
        }
    }

    /// Whether the mkfs tool is on `PATH` (or in /sbin, /usr/sbin).
    pub fn mkfs_available(self) -> bool {
        let tool = self.mkfs(false).0;
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .any(|dir| dir.join(tool).is_file())
    }
}

/// A freshly made filesystem mounted at a temporary directory.
#[derive(Debug)]
pub struct ScratchFs {
    kind: FsKind,
    backing: PathBuf,
    mountpoint: PathBuf,
    mounted: bool,
    device: Option<LoopDevice>,
}

impl ScratchFs {
    /// Makes a `kind` filesystem of `size_bytes` backed by a file in
    /// /var/tmp.
    pub fn new(kind: FsKind, size_bytes: u64) -> io::Result<ScratchFs> {
        ScratchFs::new_in(Path::new("/var/tmp"), kind, size_bytes)
    }

    /// Makes a `kind` filesystem of `size_bytes` backed by a sparse file in
    /// `dir`, mounted at a new directory beside it.
    pub fn new_in(dir: &Path, kind: FsKind, size_bytes: u64) -> io::Result<ScratchFs> {
        ScratchFs::make(dir, kind, size_bytes, false, false)
    }

    /// Like [`ScratchFs::new_in`], but with all of the filesystem's
    /// metadata initialised before it is mounted, so that no background
    /// kernel work competes with what is measured on it. For benchmarks;
    /// slower to make.
    pub fn new_settled_in(dir: &Path, kind: FsKind, size_bytes: u64) -> io::Result<ScratchFs> {
        ScratchFs::make(dir, kind, size_bytes, true, false)
    }

    /// Like [`ScratchFs::new_settled_in`], with the loop device doing
    /// direct I/O on its backing file (`LOOP_SET_DIRECT_IO`), so the host's
    /// page cache never holds the filesystem's blocks: for cold-cache
    /// measurements that must reach the disk. Fails where the directory's
    /// filesystem cannot do direct I/O.
    pub fn new_direct_in(dir: &Path, kind: FsKind, size_bytes: u64) -> io::Result<ScratchFs> {
        ScratchFs::make(dir, kind, size_bytes, true, true)
    }

    fn make(dir: &Path, kind: FsKind, size_bytes: u64, eager: bool, direct: bool) -> io::Result<ScratchFs> {
        let name = format!("strata-scratch-{}-{}", kind.fstype(), crate::root::unique_suffix());
        // Build the guard first, so every resource acquired below is released
        // by its Drop if a later step fails.
        let mut fs = ScratchFs {
            kind,
            backing: dir.join(format!("{name}.img")),
            mountpoint: dir.join(format!("{name}.mnt")),
            mounted: false,
            device: None,
        };
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&fs.backing)?;
        file.set_len(size_bytes)?;
        drop(file);
        let device = fs.device.insert(LoopDevice::attach(&fs.backing)?);
        if direct {
            device.set_direct_io(true).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("direct I/O on {} over {}: {e}", device.path().display(), dir.display()),
                )
            })?;
        }
        let device_path = device.path().to_owned();
        let (tool, args) = kind.mkfs(eager);
        let out = Command::new(tool).args(args).arg(&device_path).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{tool} {}: {}",
                device_path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        std::fs::create_dir(&fs.mountpoint)?;
        crate::sys::mount::mount_fs(kind.fstype(), &device_path.display().to_string(), &[], &fs.mountpoint)?;
        fs.mounted = true;
        Ok(fs)
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    pub fn kind(&self) -> FsKind {
        self.kind
    }

    /// The loop device (`/dev/loopN`) the filesystem lives on.
    pub fn device(&self) -> Option<&LoopDevice> {
        self.device.as_ref()
    }

    /// The backing file.
    pub fn backing_file(&self) -> &Path {
        &self.backing
    }

    /// Whether the loop device does direct I/O on the backing file.
    pub fn direct_io(&self) -> bool {
        self.device.as_ref().is_some_and(LoopDevice::direct_io)
    }

    /// How many pages of the backing file the host's page cache holds
    /// (`mincore(2)`): 0 after [`ScratchFs::drop_cache`], and always 0 with
    /// direct I/O once the filesystem is made.
    pub fn backing_residency(&self) -> io::Result<Residency> {
        let f = std::fs::File::open(&self.backing)?;
        let len = f.metadata()?.len();
        file_residency(&f, len)
    }

    /// Empties this filesystem's caches, and only its: `syncfs(2)`, unmount
    /// (the filesystem's inodes, dentries and data pages go with its
    /// superblock), `BLKFLSBUF` on the loop device, `POSIX_FADV_DONTNEED`
    /// on the (now clean) backing file, mount again at the same place, and
    /// drop the backing file's pages the mount read.
    /// Nothing may be open or mounted on it (`EBUSY` after a second's
    /// retries otherwise, and it stays mounted).
    pub fn drop_cache(&mut self) -> io::Result<()> {
        let at =
            |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what} {}: {e}", self.mountpoint.display()));
        crate::sys::fs::syncfs_path(&self.mountpoint).map_err(|e| at("syncfs", e))?;
        // With EBUSY retried for about a second: a process forked by
        // another thread (tests run side by side) briefly holds copies of
        // this thread's descriptors until it execs.
        crate::mount::unmount_all(&self.mountpoint).map_err(|e| at("unmount", e))?;
        self.mounted = false;
        let device = self.device.as_ref().ok_or_else(|| at("no loop device under", io::ErrorKind::NotFound.into()))?;
        device.flush_buffers().map_err(|e| at("flush buffers of the device of", e))?;
        let backing = std::fs::File::open(&self.backing)?;
        crate::sys::fs::fadvise(backing.as_fd(), 0, None, crate::sys::fs::Advice::DontNeed)
            .map_err(|e| at("fadvise(DONTNEED) the backing file of", e.into()))?;
        let source = device.path().display().to_string();
        crate::sys::mount::mount_fs(self.kind.fstype(), &source, &[], &self.mountpoint).map_err(|e| at("mount", e))?;
        self.mounted = true;
        // The mount itself read the superblock, group descriptors and
        // journal through the loop device, and so into the host's cache of
        // the backing file: drop those (clean) pages too. The filesystem
        // keeps its own copy of what it needs.
        crate::sys::fs::fadvise(backing.as_fd(), 0, None, crate::sys::fs::Advice::DontNeed)
            .map_err(|e| at("fadvise(DONTNEED) the backing file of", e.into()))?;
        Ok(())
    }
}

impl Drop for ScratchFs {
    fn drop(&mut self) {
        if self.mounted {
            // A busy mount (a test left a file open or a mount on top)
            // is detached lazily; the loop device then autoclears when the
            // last user lets go.
            if crate::sys::mount::unmount_path(&self.mountpoint, false).is_err() {
                let _ = crate::mount::unmount_all(&self.mountpoint);
                let _ = crate::sys::mount::unmount_path(&self.mountpoint, true);
            }
        }
        if let Some(device) = self.device.take() {
            let _ = device.detach();
        }
        let _ = std::fs::remove_dir(&self.mountpoint);
        let _ = std::fs::remove_file(&self.backing);
    }
}

/// A tmpfs mounted at a new directory, unmounted and removed on drop:
/// the place for tests and benchmarks that create many files (the host's
/// root filesystem may not cope with mass creation).
#[derive(Debug)]
pub struct Tmpfs {
    mountpoint: PathBuf,
    mounted: bool,
}

impl Tmpfs {
    /// Mounts a tmpfs of at most `size_bytes` at a new directory in `dir`.
    pub fn new_in(dir: &Path, size_bytes: u64) -> io::Result<Tmpfs> {
        let mountpoint = dir.join(format!("strata-tmpfs-{}.mnt", crate::root::unique_suffix()));
        std::fs::create_dir(&mountpoint)?;
        let mut fs = Tmpfs { mountpoint, mounted: false };
        let options = [format!("size={size_bytes}"), "mode=0755".to_owned()];
        crate::sys::mount::mount_fs("tmpfs", "tmpfs", &options, &fs.mountpoint)?;
        fs.mounted = true;
        Ok(fs)
    }

    /// Mounts a tmpfs of at most `size_bytes` under /var/tmp.
    pub fn new(size_bytes: u64) -> io::Result<Tmpfs> {
        Tmpfs::new_in(Path::new("/var/tmp"), size_bytes)
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted && crate::sys::mount::unmount_path(&self.mountpoint, false).is_err() {
            let _ = crate::sys::mount::unmount_path(&self.mountpoint, true);
        }
        let _ = std::fs::remove_dir(&self.mountpoint);
    }
}

/// Says why a test is skipped. Under `STRATA_TEST_STRICT` (tools/test sets
/// it) a skip is a failure instead: a test that cannot run never passes
/// silently where everything it needs should be installed.
///
/// # Panics
/// Under `STRATA_TEST_STRICT`.
pub fn skip_test(why: &str) {
    assert!(std::env::var_os("STRATA_TEST_STRICT").is_none(), "{why}, and STRATA_TEST_STRICT forbids skipping");
    eprintln!("skipped: {why}");
}

/// Whether tests that need device-mapper can run here. Hosts without it
/// skip them with a message naming `what` (tools/vmtest runs them in a
/// VM), even under `STRATA_TEST_STRICT`; inside that VM (`STRATA_VMTEST`
/// set) a missing device-mapper is a failure, so a skip cannot pass there.
///
/// # Panics
/// Under `STRATA_VMTEST` when device-mapper or root is missing.
pub fn device_mapper_for_tests(what: &str) -> bool {
    if crate::sys::dm::available() && crate::sys::process::geteuid().is_root() {
        return true;
    }
    assert!(std::env::var_os("STRATA_VMTEST").is_none(), "{what}: no usable device-mapper inside tools/vmtest's VM");
    eprintln!("skipped: no device-mapper on this host; tools/vmtest runs {what}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        crate::sys::process::geteuid().is_root()
    }

    fn mounted(path: &Path) -> bool {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let p = path.display().to_string();
        mountinfo.lines().any(|l| l.split(' ').nth(4) == Some(p.as_str()))
    }

    /// The loop device's sysfs entry can linger for a moment after the
    /// last close while the kernel finishes tearing it down.
    fn wait_detached(number: u32) -> bool {
        for _ in 0..100 {
            if !crate::sys::loopdev::is_attached(number) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn scratch_fs_leaves_nothing_behind() {
        if !is_root() {
            skip_test("needs root (loop devices and mounts)");
            return;
        }
        for kind in [FsKind::Ext4, FsKind::Xfs] {
            if !kind.mkfs_available() {
                skip_test(&format!("{kind:?}: mkfs tool not installed"));
                continue;
            }
            let fs = ScratchFs::new(kind, 300 << 20).unwrap();
            let (mnt, backing) = (fs.path().to_owned(), fs.backing_file().to_owned());
            let number = fs.device().unwrap().number();
            assert!(mounted(&mnt));
            assert!(crate::sys::loopdev::is_attached(number));
            assert_eq!(
                crate::sys::statfs::fs_magic(&mnt).unwrap().name(),
                if kind == FsKind::Xfs { "xfs" } else { "extfs" }
            );
            std::fs::write(mnt.join("f"), b"x").unwrap();
            drop(fs);
            assert!(!mounted(&mnt));
            assert!(wait_detached(number), "/dev/loop{number} still attached");
            assert!(!mnt.exists());
            assert!(!backing.exists());
        }
    }

    #[test]
    fn scratch_fs_cleans_up_when_the_test_panics() {
        if !is_root() {
            skip_test("needs root (loop devices and mounts)");
            return;
        }
        let seen = std::sync::Mutex::new(None);
        let r = std::panic::catch_unwind(|| {
            let fs = ScratchFs::new(FsKind::Ext4, 64 << 20).unwrap();
            // A file held open keeps the mount busy: drop must fall back to
            // a lazy unmount.
            let open = std::fs::File::create(fs.path().join("held")).unwrap();
            *seen.lock().unwrap() = Some((fs.path().to_owned(), fs.device().unwrap().number(), open));
            panic!("test body failed");
        });
        assert!(r.is_err());
        let (mnt, number, open) = seen.into_inner().unwrap().unwrap();
        assert!(!mounted(&mnt));
        drop(open);
        assert!(wait_detached(number), "/dev/loop{number} still attached");
    }

    fn residency(path: &Path) -> Residency {
        let f = std::fs::File::open(path).unwrap();
        let len = f.metadata().unwrap().len();
        file_residency(&f, len).unwrap()
    }

    #[test]
    fn drop_cache_empties_the_filesystem_and_its_backing_file() {
        if !is_root() {
            skip_test("needs root (loop devices and mounts)");
            return;
        }
        let mut fs = ScratchFs::new(FsKind::Ext4, 64 << 20).unwrap();
        let f = fs.path().join("d/f");
        std::fs::create_dir(fs.path().join("d")).unwrap();
        let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(&f, &data).unwrap();
        crate::sys::fs::syncfs_path(fs.path()).unwrap();
        let warm = residency(&f);
        assert_eq!(warm.resident, warm.pages);
        // Without direct I/O the loop device writes through the host's
        // page cache of the backing file.
        assert!(!fs.direct_io());
        assert!(fs.backing_residency().unwrap().resident > 0);
        fs.drop_cache().unwrap();
        // The backing file first: looking the file up reads its directory
        // and inode through the loop device (metadata, not its data).
        assert_eq!(fs.backing_residency().unwrap().resident, 0, "backing file still cached");
        assert_eq!(residency(&f).resident, 0, "file still cached after drop_cache");
        assert_eq!(std::fs::read(&f).unwrap(), data);
        // Busy: refused, and still mounted.
        let open = std::fs::File::open(&f).unwrap();
        assert!(fs.drop_cache().is_err());
        drop(open);
        assert!(mounted(fs.path()));
    }

    #[test]
    fn direct_io_keeps_the_backing_file_out_of_the_host_cache() {
        if !is_root() {
            skip_test("needs root (loop devices and mounts)");
            return;
        }
        let fs = match ScratchFs::new_direct_in(Path::new("/var/tmp"), FsKind::Ext4, 64 << 20) {
            Ok(fs) => fs,
            Err(e) if e.raw_os_error() == Some(22) => {
                skip_test(&format!("/var/tmp cannot back a loop device with direct I/O: {e}"));
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert!(fs.direct_io(), "/sys/block/loopN/loop/dio is not 1");
        std::fs::write(fs.path().join("f"), vec![5u8; 4 << 20]).unwrap();
        crate::sys::fs::syncfs_path(fs.path()).unwrap();
        assert_eq!(fs.backing_residency().unwrap().resident, 0, "the host cached the backing file");
    }
}
