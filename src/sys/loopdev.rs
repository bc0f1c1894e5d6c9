//! Loop devices: a regular file presented as a block device, for scratch
//! filesystems in tests and benchmarks.
//!
//! Attaching asks `/dev/loop-control` for a free device number
//! (`LOOP_CTL_GET_FREE`), opens `/dev/loopN` and binds the file with one
//! `LOOP_CONFIGURE` (Linux 5.8+), falling back to `LOOP_SET_FD` followed by
//! `LOOP_SET_STATUS64` on older kernels. Another process can claim the same
//! free device between the two steps; the kernel then answers `EBUSY` and
//! we ask for a new number. See loop(4).
//!
//! Devices are attached with `LO_FLAGS_AUTOCLEAR`: the kernel detaches the
//! device once its last opener closes it, so even a process killed
//! mid-test leaves no device behind once its mounts are gone.

#![allow(unsafe_code)]

use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use std::io;
use std::path::{Path, PathBuf};

// ioctl request numbers from <linux/loop.h>.

/// `#define LOOP_SET_FD 0x4C00`
const LOOP_SET_FD: libc::Ioctl = 0x4C00;
/// `#define LOOP_CLR_FD 0x4C01`
const LOOP_CLR_FD: libc::Ioctl = 0x4C01;
/// `#define LOOP_SET_STATUS64 0x4C04`
const LOOP_SET_STATUS64: libc::Ioctl = 0x4C04;
/// `#define LOOP_CONFIGURE 0x4C0A`
const LOOP_CONFIGURE: libc::Ioctl = 0x4C0A;
/// `#define LOOP_SET_DIRECT_IO 0x4C08`
const LOOP_SET_DIRECT_IO: libc::Ioctl = 0x4C08;
/// `#define BLKFLSBUF _IO(0x12,97)` from <linux/fs.h>: write back and
/// invalidate a block device's own page cache (`blockdev --flushbufs`).
const BLKFLSBUF: libc::Ioctl = 0x1261;
/// `#define LOOP_CTL_GET_FREE 0x4C82`
const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4C82;

/// `LO_FLAGS_AUTOCLEAR = 4` (enum in <linux/loop.h>).
const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// `#define LO_NAME_SIZE 64`
const LO_NAME_SIZE: usize = 64;
/// `#define LO_KEY_SIZE 32`
const LO_KEY_SIZE: usize = 32;

/// `struct loop_info64` from <linux/loop.h>.
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

/// `struct loop_config` from <linux/loop.h> (the `LOOP_CONFIGURE` argument).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

// The kernel's sizes: a mismatch would make the ioctls read garbage.
const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

impl LoopInfo64 {
    fn new(backing: &Path, flags: u32) -> LoopInfo64 {
        let mut name = [0u8; LO_NAME_SIZE];
        let bytes = backing.as_os_str().as_encoded_bytes();
        let n = bytes.len().min(LO_NAME_SIZE - 1);
        name[..n].copy_from_slice(&bytes[..n]);
        LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: flags,
            lo_file_name: name,
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
        }
    }
}

/// How many times a device number that another process claimed first is
/// replaced by a new one before giving up.
const ATTACH_ATTEMPTS: usize = 16;

/// An attached loop device; dropping it detaches (see [`LoopDevice::detach`]).
#[derive(Debug)]
pub struct LoopDevice {
    dev: Option<OwnedFd>,
    number: u32,
    path: PathBuf,
}

impl LoopDevice {
    /// Attaches `backing` (opened read-write) to a free loop device with
    /// `LO_FLAGS_AUTOCLEAR`.
    pub fn attach(backing: &Path) -> io::Result<LoopDevice> {
        LoopDevice::attach_with(backing, AttachApi::Configure)
    }

    /// [`LoopDevice::attach`] through a chosen set of ioctls (tests force
    /// the legacy path with this; the kernel here would never take it).
    pub fn attach_with(backing: &Path, api: AttachApi) -> io::Result<LoopDevice> {
        let file = rustix::fs::open(backing, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        let ctl = rustix::fs::open("/dev/loop-control", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        let mut last = io::Error::from_raw_os_error(libc::EBUSY);
        for _ in 0..ATTACH_ATTEMPTS {
            let number = ctl_get_free(&ctl)?;
            let path = PathBuf::from(format!("/dev/loop{number}"));
            let dev = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
            let info = LoopInfo64::new(backing, LO_FLAGS_AUTOCLEAR);
            let result = match api {
                AttachApi::Configure => match configure(&dev, &file, info) {
                    // A pre-5.8 kernel does not know LOOP_CONFIGURE.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY)) => {
                        set_fd_and_status(&dev, &file, &info)
                    }
                    other => other,
                },
                AttachApi::SetFd => set_fd_and_status(&dev, &file, &info),
            };
            match result {
                Ok(()) => return Ok(LoopDevice { dev: Some(dev), number, path }),
                // Another process took this device between GET_FREE and now.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device number N of `/dev/loopN`.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// `ioctl(dev, LOOP_SET_DIRECT_IO, on)`: the device reads and writes
    /// its backing file with `O_DIRECT`, so the host's page cache holds
    /// none of the file (what is cold on the device is cold on the host).
    /// The kernel refuses (`EINVAL`) when the backing filesystem cannot do
    /// direct I/O at the device's logical block size. See loop(4).
    pub fn set_direct_io(&self, on: bool) -> io::Result<()> {
        let dev = self.dev.as_ref().ok_or_else(|| io::Error::from_raw_os_error(libc::ENXIO))?;
        // SAFETY: LOOP_SET_DIRECT_IO takes an unsigned long by value; `dev`
        // is open for the call.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_DIRECT_IO, libc::c_ulong::from(on)) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `ioctl(dev, BLKFLSBUF, 0)`: writes back and drops the device's own
    /// page cache (where ext4 keeps its metadata buffers) — for this one
    /// device, not the host's. Pages a mounted filesystem pins stay.
    pub fn flush_buffers(&self) -> io::Result<()> {
        let dev = self.dev.as_ref().ok_or_else(|| io::Error::from_raw_os_error(libc::ENXIO))?;
        // SAFETY: BLKFLSBUF takes no argument; `dev` is open for the call.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), BLKFLSBUF, 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether the device does direct I/O on its backing file, per
    /// `/sys/block/loopN/loop/dio`.
    pub fn direct_io(&self) -> bool {
        direct_io(self.number)
    }

    /// `ioctl(dev, LOOP_CLR_FD)` and close. While a filesystem on the device
    /// is still mounted the kernel only marks it for autoclear and detaches
    /// when the mount goes away.
    pub fn detach(mut self) -> io::Result<()> {
        self.detach_inner()
    }

    fn detach_inner(&mut self) -> io::Result<()> {
        match self.dev.take() {
            None => Ok(()),
            Some(dev) => match clr_fd(&dev) {
                // ENXIO: already detached (autoclear beat us to it).
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
                other => other,
            },
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = self.detach_inner();
    }
}

/// Whether `/dev/loopN` has a backing file, per
/// `/sys/block/loopN/loop/backing_file` (present only while attached).
pub fn is_attached(number: u32) -> bool {
    Path::new(&format!("/sys/block/loop{number}/loop/backing_file")).exists()
}

/// Whether `/dev/loopN` does direct I/O on its backing file
/// (`/sys/block/loopN/loop/dio` reads `1`).
pub fn direct_io(number: u32) -> bool {
    std::fs::read_to_string(format!("/sys/block/loop{number}/loop/dio")).is_ok_and(|s| s.trim() == "1")
}

/// `ioctl(ctl, LOOP_CTL_GET_FREE)`: the number of a free loop device,
/// created if needed.
fn ctl_get_free(ctl: &OwnedFd) -> io::Result<u32> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument; `ctl` is an open fd for
    // the duration of the call.
    let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(n).map_err(|_| io::Error::from_raw_os_error(libc::ERANGE))
}

/// Which ioctls bind the backing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachApi {
    /// `LOOP_CONFIGURE` (Linux 5.8+), falling back to `SetFd` when unknown.
    Configure,
    /// `LOOP_SET_FD` then `LOOP_SET_STATUS64`: two steps, so a failure of
    /// the second undoes the first.
    SetFd,
}

fn set_fd_and_status(dev: &OwnedFd, file: &OwnedFd, info: &LoopInfo64) -> io::Result<()> {
    set_fd(dev, file)?;
    set_status64(dev, info).inspect_err(|_| {
        let _ = clr_fd(dev);
    })
}

/// `ioctl(dev, LOOP_CONFIGURE, &config)`.
fn configure(dev: &OwnedFd, file: &OwnedFd, info: LoopInfo64) -> io::Result<()> {
    let fd = u32::try_from(file.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    let config = LoopConfig { fd, block_size: 0, info, reserved: [0; 8] };
    // SAFETY: LOOP_CONFIGURE reads one `struct loop_config`, whose layout
    // `LoopConfig` reproduces (sizes asserted above); `config` outlives the
    // call and both fds are open.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &config as *const LoopConfig) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioctl(dev, LOOP_SET_FD, file)`.
fn set_fd(dev: &OwnedFd, file: &OwnedFd) -> io::Result<()> {
    // SAFETY: LOOP_SET_FD takes the backing fd by value; both fds are open.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_FD, file.as_raw_fd()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioctl(dev, LOOP_SET_STATUS64, &info)`.
fn set_status64(dev: &OwnedFd, info: &LoopInfo64) -> io::Result<()> {
    // SAFETY: LOOP_SET_STATUS64 reads one `struct loop_info64`, whose layout
    // `LoopInfo64` reproduces; `info` outlives the call.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_STATUS64, info as *const LoopInfo64) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioctl(dev, LOOP_CLR_FD, 0)`.
fn clr_fd(dev: &OwnedFd) -> io::Result<()> {
    // SAFETY: LOOP_CLR_FD takes no argument; `dev` is open.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backing_file(number: u32) -> Option<String> {
        std::fs::read_to_string(format!("/sys/block/loop{number}/loop/backing_file")).ok()
    }

    /// Both ways of binding the file (the kernel here has LOOP_CONFIGURE,
    /// so the legacy path only runs when forced).
    #[test]
    fn attach_and_detach_with_each_api() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (loop devices)");
            return;
        }
        for api in [AttachApi::Configure, AttachApi::SetFd] {
            let file = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
            file.as_file().set_len(1 << 20).unwrap();
            let dev = LoopDevice::attach_with(file.path(), api).unwrap();
            let number = dev.number();
            let shown = backing_file(number).unwrap_or_default();
            assert_eq!(shown.trim(), file.path().to_str().unwrap(), "{api:?}");
            let flags = std::fs::read_to_string(format!("/sys/block/loop{number}/loop/autoclear")).unwrap();
            assert_eq!(flags.trim(), "1", "{api:?}: autoclear not set");
            dev.detach().unwrap();
            assert!(!is_attached(number), "{api:?}: /dev/loop{number} still attached");
        }
    }
}
