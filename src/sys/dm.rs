//! Device-mapper through `/dev/mapper/control`: the ioctls of
//! `<linux/dm-ioctl.h>`, without dmsetup or libdevmapper.
//!
//! Every call passes one buffer: a `struct dm_ioctl` header followed by a
//! data area (target specs and parameter strings in, status or message
//! output out). When the kernel's answer does not fit it sets
//! `DM_BUFFER_FULL_FLAG`; we retry with a buffer four times larger. See
//! the kernel's Documentation/admin-guide/device-mapper/ and
//! drivers/md/dm-ioctl.c for the layout rules (8-byte aligned specs;
//! `next` is relative to the spec on input, to the data area on output).

#![allow(unsafe_code)]

use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use std::io;

/// `#define DM_IOCTL 0xfd`
const DM_IOCTL: u32 = 0xfd;

/// `_IOWR(DM_IOCTL, nr, struct dm_ioctl)` as the kernel's `_IOC` builds it.
const fn iowr(nr: u32) -> libc::Ioctl {
    const IOC_READ_WRITE: u32 = 3;
    ((IOC_READ_WRITE << 30) | (HEADER_SIZE_U32 << 16) | (DM_IOCTL << 8) | nr) as libc::Ioctl
}

/// `#define DM_VERSION _IOWR(DM_IOCTL, DM_VERSION_CMD, struct dm_ioctl)` (cmd 0)
pub const DM_VERSION: libc::Ioctl = iowr(0);
/// `#define DM_LIST_DEVICES _IOWR(DM_IOCTL, DM_LIST_DEVICES_CMD, struct dm_ioctl)` (cmd 2)
pub const DM_LIST_DEVICES: libc::Ioctl = iowr(2);
/// `#define DM_DEV_CREATE _IOWR(DM_IOCTL, DM_DEV_CREATE_CMD, struct dm_ioctl)` (cmd 3)
pub const DM_DEV_CREATE: libc::Ioctl = iowr(3);
/// `#define DM_DEV_REMOVE _IOWR(DM_IOCTL, DM_DEV_REMOVE_CMD, struct dm_ioctl)` (cmd 4)
pub const DM_DEV_REMOVE: libc::Ioctl = iowr(4);
/// `#define DM_DEV_RENAME _IOWR(DM_IOCTL, DM_DEV_RENAME_CMD, struct dm_ioctl)` (cmd 5)
pub const DM_DEV_RENAME: libc::Ioctl = iowr(5);
/// `#define DM_DEV_SUSPEND _IOWR(DM_IOCTL, DM_DEV_SUSPEND_CMD, struct dm_ioctl)` (cmd 6)
pub const DM_DEV_SUSPEND: libc::Ioctl = iowr(6);
/// `#define DM_DEV_STATUS _IOWR(DM_IOCTL, DM_DEV_STATUS_CMD, struct dm_ioctl)` (cmd 7)
pub const DM_DEV_STATUS: libc::Ioctl = iowr(7);
/// `#define DM_TABLE_LOAD _IOWR(DM_IOCTL, DM_TABLE_LOAD_CMD, struct dm_ioctl)` (cmd 9)
pub const DM_TABLE_LOAD: libc::Ioctl = iowr(9);
/// `#define DM_TABLE_STATUS _IOWR(DM_IOCTL, DM_TABLE_STATUS_CMD, struct dm_ioctl)` (cmd 12)
pub const DM_TABLE_STATUS: libc::Ioctl = iowr(12);
/// `#define DM_TARGET_MSG _IOWR(DM_IOCTL, DM_TARGET_MSG_CMD, struct dm_ioctl)` (cmd 14)
pub const DM_TARGET_MSG: libc::Ioctl = iowr(14);

/// `#define DM_READONLY_FLAG (1 << 0)`
pub const DM_READONLY_FLAG: u32 = 1 << 0;
/// `#define DM_SUSPEND_FLAG (1 << 1)`
pub const DM_SUSPEND_FLAG: u32 = 1 << 1;
/// `#define DM_ACTIVE_PRESENT_FLAG (1 << 5)`
pub const DM_ACTIVE_PRESENT_FLAG: u32 = 1 << 5;
/// `#define DM_STATUS_TABLE_FLAG (1 << 4)`: return the table, not the status
pub const DM_STATUS_TABLE_FLAG: u32 = 1 << 4;
/// `#define DM_BUFFER_FULL_FLAG (1 << 8)`
pub const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;
/// `#define DM_DATA_OUT_FLAG (1 << 16)`
pub const DM_DATA_OUT_FLAG: u32 = 1 << 16;
/// `#define DM_DEFERRED_REMOVE (1 << 17)`: on `DM_DEV_REMOVE`, remove when
/// the last opener closes; on output, a removal is pending
pub const DM_DEFERRED_REMOVE: u32 = 1 << 17;

/// Flags of `DM_DEV_REMOVE` ([`Control::dev_remove_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemoveFlags(u32);

impl RemoveFlags {
    /// Remove now; `EBUSY` while the device is open.
    pub const NOW: RemoveFlags = RemoveFlags(0);
    /// `DM_DEFERRED_REMOVE`: an open device is removed when its last
    /// opener closes it (the call succeeds at once; the device keeps its
    /// name until then); a closed one is removed now.
    pub const DEFERRED: RemoveFlags = RemoveFlags(DM_DEFERRED_REMOVE);

    pub fn bits(self) -> u32 {
        self.0
    }
}

/// `#define DM_NAME_LEN 128`
pub const DM_NAME_LEN: usize = 128;
/// `#define DM_UUID_LEN 129`
const DM_UUID_LEN: usize = 129;
/// `#define DM_MAX_TYPE_NAME 16`
const DM_MAX_TYPE_NAME: usize = 16;

/// The interface version strata speaks (`DM_VERSION_MAJOR` 4; minor 0
/// asks for nothing newer than the first 4.x).
const VERSION: [u32; 3] = [4, 0, 0];

/// `struct dm_ioctl` from `<linux/dm-ioctl.h>`.
#[repr(C)]
#[derive(Clone, Copy)]
struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; DM_NAME_LEN],
    uuid: [u8; DM_UUID_LEN],
    data: [u8; 7],
}

/// `struct dm_target_spec`; the parameter string follows it.
#[repr(C)]
#[derive(Clone, Copy)]
struct DmTargetSpec {
    sector_start: u64,
    length: u64,
    status: i32,
    next: u32,
    target_type: [u8; DM_MAX_TYPE_NAME],
}

const HEADER_SIZE: usize = std::mem::size_of::<DmIoctl>();
const SPEC_SIZE: usize = std::mem::size_of::<DmTargetSpec>();
// The kernel's sizes: a mismatch would make every ioctl read garbage.
const _: () = assert!(HEADER_SIZE == 312);
const _: () = assert!(SPEC_SIZE == 40);
/// `sizeof(struct dm_ioctl)` as the header's `data_start` field holds it.
const HEADER_SIZE_U32: u32 = 312;

/// A device size or offset in 512-byte sectors, as device-mapper tables
/// count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sectors(pub u64);

impl Sectors {
    pub const SIZE: u64 = 512;
    /// The sectors covering `bytes` (rounded down).
    pub fn from_bytes(bytes: u64) -> Sectors {
        Sectors(bytes / Self::SIZE)
    }
    pub fn bytes(self) -> u64 {
        self.0 * Self::SIZE
    }
}

/// One line of a table: `<start> <length> <target type> <params>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub start: Sectors,
    pub length: Sectors,
    pub kind: String,
    pub params: String,
}

/// What `DM_DEV_STATUS` reports about a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevInfo {
    /// Kernel device number (major, minor).
    pub major: u32,
    pub minor: u32,
    pub open_count: i32,
    pub suspended: bool,
    pub readonly: bool,
    pub has_table: bool,
    /// A deferred removal is pending (`DM_DEFERRED_REMOVE` in the answer).
    pub deferred_remove: bool,
}

/// An open `/dev/mapper/control`.
#[derive(Debug)]
pub struct Control {
    fd: OwnedFd,
}

/// Bytes of a header + data buffer, 8-byte aligned as the kernel expects.
struct Buffer {
    words: Vec<u64>,
}

impl Buffer {
    fn new(size: usize) -> Buffer {
        Buffer { words: vec![0; size.div_ceil(8)] }
    }
    fn len(&self) -> usize {
        self.words.len() * 8
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: u64 has no padding and any byte pattern is a valid u8;
        // the slice covers exactly the Vec's initialised elements.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len()) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        // SAFETY: as in `bytes`; the exclusive borrow of `self` guarantees
        // no other reference to the Vec exists.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), len) }
    }
    fn header(&self) -> DmIoctl {
        // SAFETY: the buffer is at least HEADER_SIZE bytes and 8-aligned;
        // DmIoctl is plain data for which every bit pattern is valid.
        unsafe { std::ptr::read(self.words.as_ptr().cast::<DmIoctl>()) }
    }
    fn set_header(&mut self, h: &DmIoctl) {
        // SAFETY: the buffer is at least HEADER_SIZE bytes and 8-aligned.
        unsafe { std::ptr::write(self.words.as_mut_ptr().cast::<DmIoctl>(), *h) }
    }
    fn spec_at(&self, off: usize) -> Option<DmTargetSpec> {
        if off % 8 != 0 || off + SPEC_SIZE > self.len() {
            return None;
        }
        // SAFETY: bounds and alignment checked just above; DmTargetSpec is
        // plain data for which every bit pattern is valid.
        Some(unsafe { std::ptr::read(self.words.as_ptr().cast::<u8>().add(off).cast::<DmTargetSpec>()) })
    }
}

fn copy_name(dst: &mut [u8], name: &str) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= dst.len() || b.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid device-mapper name {name:?}")));
    }
    dst[..b.len()].copy_from_slice(b);
    Ok(())
}

/// The NUL-terminated string at the start of `b`.
fn c_str(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn header(name: Option<&str>, flags: u32, data_size: usize) -> io::Result<DmIoctl> {
    let mut h = DmIoctl {
        version: VERSION,
        data_size: u32::try_from(data_size).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        data_start: HEADER_SIZE_U32,
        target_count: 0,
        open_count: 0,
        flags,
        event_nr: 0,
        padding: 0,
        dev: 0,
        name: [0; DM_NAME_LEN],
        uuid: [0; DM_UUID_LEN],
        data: [0; 7],
    };
    if let Some(n) = name {
        copy_name(&mut h.name, n)?;
    }
    Ok(h)
}

/// First answer buffer for calls that return data; grown on BUFFER_FULL.
const INITIAL_BUFFER: usize = 16 << 10;
/// The kernel refuses buffers beyond this anyway; stop growing here.
const MAX_BUFFER: usize = 16 << 20;

impl AsFd for Control {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Control {
    /// Opens `/dev/mapper/control`.
    pub fn open() -> io::Result<Control> {
        let fd = rustix::fs::open("/dev/mapper/control", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Control { fd })
    }

    /// `ioctl(control, cmd, buf)`; retries with a larger buffer while the
    /// kernel sets `DM_BUFFER_FULL_FLAG`. `payload` is copied after the
    /// header on every attempt.
    fn call(&self, cmd: libc::Ioctl, mut h: DmIoctl, payload: &[u8]) -> io::Result<Buffer> {
        let mut size = (HEADER_SIZE + payload.len()).max(INITIAL_BUFFER);
        loop {
            let mut buf = Buffer::new(size);
            h.data_size = u32::try_from(buf.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
            buf.set_header(&h);
            buf.bytes_mut()[HEADER_SIZE..HEADER_SIZE + payload.len()].copy_from_slice(payload);
            // SAFETY: every DM ioctl reads and writes at most `data_size`
            // bytes of the buffer, which is exactly `buf`'s length; the
            // header at its start is a valid `struct dm_ioctl`; `buf`
            // outlives the call and the fd is open.
            let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), cmd, buf.words.as_mut_ptr()) };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            if buf.header().flags & DM_BUFFER_FULL_FLAG == 0 || size >= MAX_BUFFER {
                return Ok(buf);
            }
            size *= 4;
        }
    }

    /// `DM_VERSION`: the kernel's device-mapper interface version.
    pub fn version(&self) -> io::Result<[u32; 3]> {
        Ok(self.call(DM_VERSION, header(None, 0, HEADER_SIZE)?, &[])?.header().version)
    }

    /// `DM_DEV_CREATE`: a new device `name` with no table (suspended until a
    /// table is loaded and resumed).
    pub fn dev_create(&self, name: &str) -> io::Result<DevInfo> {
        Ok(info(&self.call(DM_DEV_CREATE, header(Some(name), 0, HEADER_SIZE)?, &[])?.header()))
    }

    /// `DM_DEV_REMOVE`: removes device `name` (`EBUSY` while it is open).
    pub fn dev_remove(&self, name: &str) -> io::Result<()> {
        self.dev_remove_with(name, RemoveFlags::NOW)
    }

    /// `DM_DEV_REMOVE` with `flags`: with [`RemoveFlags::DEFERRED`], an open
    /// device goes away when its last opener closes it.
    pub fn dev_remove_with(&self, name: &str, flags: RemoveFlags) -> io::Result<()> {
        self.call(DM_DEV_REMOVE, header(Some(name), flags.bits(), HEADER_SIZE)?, &[]).map(|_| ())
    }

    /// `DM_DEV_RENAME`: device `name` is called `new_name` from now on
    /// (open or not; its device number and mounts stay). `EBUSY` when
    /// `new_name` is taken.
    pub fn dev_rename(&self, name: &str, new_name: &str) -> io::Result<()> {
        let mut payload = [0u8; DM_NAME_LEN];
        copy_name(&mut payload, new_name)?;
        let len = new_name.len() + 1;
        self.call(DM_DEV_RENAME, header(Some(name), 0, HEADER_SIZE)?, &payload[..len]).map(|_| ())
    }

    /// `DM_DEV_SUSPEND` with `DM_SUSPEND_FLAG`: suspends `name` (I/O is
    /// queued, the filesystem on it frozen).
    pub fn suspend(&self, name: &str) -> io::Result<()> {
        self.call(DM_DEV_SUSPEND, header(Some(name), DM_SUSPEND_FLAG, HEADER_SIZE)?, &[]).map(|_| ())
    }

    /// `DM_DEV_SUSPEND` without `DM_SUSPEND_FLAG`: resumes `name`, making a
    /// loaded inactive table live.
    pub fn resume(&self, name: &str) -> io::Result<DevInfo> {
        Ok(info(&self.call(DM_DEV_SUSPEND, header(Some(name), 0, HEADER_SIZE)?, &[])?.header()))
    }

    /// `DM_DEV_STATUS`: `Ok(None)` when no device `name` exists.
    pub fn dev_status(&self, name: &str) -> io::Result<Option<DevInfo>> {
        match self.call(DM_DEV_STATUS, header(Some(name), 0, HEADER_SIZE)?, &[]) {
            Ok(buf) => Ok(Some(info(&buf.header()))),
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DM_TABLE_LOAD`: loads `targets` as `name`'s inactive table
    /// (`readonly` sets `DM_READONLY_FLAG`).
    pub fn table_load(&self, name: &str, targets: &[Target], readonly: bool) -> io::Result<()> {
        let mut payload = Vec::new();
        for t in targets {
            let params_len = (t.params.len() + 1).next_multiple_of(8);
            let next = SPEC_SIZE + params_len;
            let mut kind = [0u8; DM_MAX_TYPE_NAME];
            copy_name(&mut kind, &t.kind)?;
            let spec = DmTargetSpec {
                sector_start: t.start.0,
                length: t.length.0,
                status: 0,
                next: u32::try_from(next).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
                target_type: kind,
            };
            payload.extend_from_slice(&spec.sector_start.to_ne_bytes());
            payload.extend_from_slice(&spec.length.to_ne_bytes());
            payload.extend_from_slice(&spec.status.to_ne_bytes());
            payload.extend_from_slice(&spec.next.to_ne_bytes());
            payload.extend_from_slice(&spec.target_type);
            let mut params = t.params.as_bytes().to_vec();
            params.resize(params_len, 0);
            payload.extend_from_slice(&params);
        }
        let mut h = header(Some(name), if readonly { DM_READONLY_FLAG } else { 0 }, HEADER_SIZE)?;
        h.target_count = u32::try_from(targets.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
        self.call(DM_TABLE_LOAD, h, &payload).map(|_| ())
    }

    /// `DM_TABLE_STATUS`: each live target with its status line (the
    /// target's STATUSTYPE_INFO output).
    pub fn table_status(&self, name: &str) -> io::Result<Vec<Target>> {
        self.targets(name, 0)
    }

    /// `DM_TABLE_STATUS` with `DM_STATUS_TABLE_FLAG`: each live target with
    /// the parameters it was loaded with (STATUSTYPE_TABLE).
    pub fn table(&self, name: &str) -> io::Result<Vec<Target>> {
        self.targets(name, DM_STATUS_TABLE_FLAG)
    }

    fn targets(&self, name: &str, flags: u32) -> io::Result<Vec<Target>> {
        let buf = self.call(DM_TABLE_STATUS, header(Some(name), flags, HEADER_SIZE)?, &[])?;
        let h = buf.header();
        let start = h.data_start as usize;
        let mut out = Vec::new();
        let mut off = 0usize;
        for _ in 0..h.target_count {
            let spec = buf.spec_at(start + off).ok_or_else(|| io::Error::from_raw_os_error(libc::EPROTO))?;
            let params_at = start + off + SPEC_SIZE;
            out.push(Target {
                start: Sectors(spec.sector_start),
                length: Sectors(spec.length),
                kind: c_str(&spec.target_type),
                params: c_str(buf.bytes().get(params_at..).unwrap_or_default()),
            });
            // On output `next` counts from the start of the data area.
            off = spec.next as usize;
        }
        Ok(out)
    }

    /// `DM_TARGET_MSG`: sends `message` to the target at `sector` of `name`;
    /// returns the target's answer (often empty).
    pub fn target_msg(&self, name: &str, sector: Sectors, message: &str) -> io::Result<String> {
        let mut payload = sector.0.to_ne_bytes().to_vec();
        payload.extend_from_slice(message.as_bytes());
        payload.push(0);
        let buf = self.call(DM_TARGET_MSG, header(Some(name), 0, HEADER_SIZE)?, &payload)?;
        let h = buf.header();
        if h.flags & DM_DATA_OUT_FLAG == 0 {
            return Ok(String::new());
        }
        Ok(c_str(buf.bytes().get(h.data_start as usize..).unwrap_or_default()))
    }

    /// `DM_LIST_DEVICES`: the names of all device-mapper devices.
    pub fn list_devices(&self) -> io::Result<Vec<String>> {
        let buf = self.call(DM_LIST_DEVICES, header(None, 0, HEADER_SIZE)?, &[])?;
        let start = buf.header().data_start as usize;
        let bytes = buf.bytes();
        let mut out = Vec::new();
        let mut off = start;
        // struct dm_name_list { __u64 dev; __u32 next; char name[]; }
        while off + 12 <= bytes.len() {
            let dev = u64::from_ne_bytes(bytes[off..off + 8].try_into().expect("8 bytes"));
            let next = u32::from_ne_bytes(bytes[off + 8..off + 12].try_into().expect("4 bytes")) as usize;
            if dev == 0 {
                break; // an empty list is one zeroed entry
            }
            out.push(c_str(&bytes[off + 12..]));
            if next == 0 {
                break;
            }
            off += next;
        }
        Ok(out)
    }
}

fn info(h: &DmIoctl) -> DevInfo {
    // `dev` is the kernel's huge_encode_dev(), which glibc's major()/minor()
    // decode.
    DevInfo {
        major: libc::major(h.dev),
        minor: libc::minor(h.dev),
        open_count: h.open_count,
        suspended: h.flags & DM_SUSPEND_FLAG != 0,
        readonly: h.flags & DM_READONLY_FLAG != 0,
        has_table: h.flags & DM_ACTIVE_PRESENT_FLAG != 0,
        deferred_remove: h.flags & DM_DEFERRED_REMOVE != 0,
    }
}

/// Whether this kernel has device-mapper (`/dev/mapper/control` opens).
pub fn available() -> bool {
    Control::open().and_then(|c| c.version()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_match_the_kernel_header() {
        // Values from a C program printing the <linux/dm-ioctl.h> macros.
        assert_eq!(DM_VERSION, 0xc138_fd00);
        assert_eq!(DM_TARGET_MSG, 0xc138_fd0e);
        assert_eq!(DM_TABLE_STATUS, 0xc138_fd0c);
        assert_eq!(DM_DEV_RENAME, 0xc138_fd05);
    }

    #[test]
    fn sectors_round_down() {
        assert_eq!(Sectors::from_bytes(1 << 20).0, 2048);
        assert_eq!(Sectors::from_bytes(1023).bytes(), 512);
    }
}
