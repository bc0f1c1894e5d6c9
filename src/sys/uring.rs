//! An io_uring submission/completion loop that owns every buffer, path and
//! file descriptor an in-flight operation refers to (io_uring(7),
//! io_uring_enter(2)).
//!
//! [`Ring`] is the only place strata hands memory to the kernel
//! asynchronously, so it is the only place that needs `unsafe` for it. Its
//! contract, which makes every other user of it safe code:
//!
//! * **Ownership.** [`Ring::push`] takes an [`Op`] by value. The op's heap
//!   data (the `Vec<u8>` of a read or write, the `CString` path of an open
//!   or statx, the boxed `statx` buffer) and its file descriptors (shared
//!   `Arc<OwnedFd>`s or an owned fd being closed) stay in the ring's slab
//!   until the kernel posts the op's completion; only then is the op handed
//!   back in a [`Completion`] — on success *and* on error (firecracker's
//!   rule: the caller always gets its buffers back). Moving a `Vec`,
//!   `CString` or `Box` into the slab does not move the heap block the
//!   kernel was given, and the slab never touches an op's data while it is
//!   in flight.
//! * **Dropping.** [`Ring`]'s `Drop` waits for every op the kernel holds
//!   before freeing the slab; if waiting itself fails, the slab is leaked
//!   rather than freed under the kernel's feet.
//! * **Typed user data.** An SQE's `user_data` is the index of its slab
//!   slot ([`SlotId`]), never a pointer; the caller's own typed tag `T`
//!   lives in the slot and comes back in the completion.
//! * **Back-pressure.** A full submission queue (or as many ops in flight
//!   as the completion queue holds, so completions can never overflow)
//!   *parks* the op in a FIFO instead of failing; parked ops are placed as
//!   completions free room.
//! * **Retries in one place.** `EINTR`/`EAGAIN` completions are resubmitted
//!   unchanged; a short read or write is resubmitted for the remainder. A
//!   read completes when its buffer is full or at end of file; a write when
//!   every byte is written.
//!
//! Only the opcodes strata uses are supported, and [`Ring::new`] probes
//! them (`IORING_REGISTER_PROBE`) so a kernel lacking one is refused at
//! start-up rather than failing an op later.

#![allow(unsafe_code)]

use io_uring::{opcode, types, IoUring, Probe};
use rustix::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::collections::VecDeque;
use std::ffi::CString;
use std::sync::Arc;

/// A file descriptor several in-flight ops may share; the ring keeps a
/// clone until each op completes, so the fd cannot be closed (and its
/// number reused) under the kernel.
pub type SharedFd = Arc<OwnedFd>;

/// The largest length one SQE asks for; longer buffers are done in several
/// rounds by the short-read/short-write path.
const MAX_RW: usize = 1 << 30;

/// `/proc/sys/kernel/io_uring_disabled` (Linux 6.6+): 0 enabled, 1 only for
/// members of `kernel.io_uring_group`, 2 disabled for everyone.
const DISABLED_SYSCTL: &str = "/proc/sys/kernel/io_uring_disabled";

/// The operations a [`Ring`] runs. Each owns what the kernel reads or
/// writes while it is in flight.
#[derive(Debug)]
pub enum Op {
    /// `openat(dir, path, flags, mode)`; completes with
    /// [`Outcome::Opened`].
    OpenAt { dir: SharedFd, path: CString, flags: OFlags, mode: Mode },
    /// `statx(dir, path, flags, STATX_BASIC_STATS, buf)`; the result is in
    /// `buf` when the op comes back. An empty `path` with `AT_EMPTY_PATH`
    /// stats `dir` itself.
    Statx { dir: SharedFd, path: CString, flags: AtFlags, buf: Box<libc::statx> },
    /// `pread(fd, buf's spare capacity, offset + buf.len())` for up to
    /// `len - buf.len()` bytes; `buf.len()` grows by what was read (the ring
    /// reserves the room). With `fill`, a short read is resubmitted until
    /// `buf.len() == len` or a read returns 0 (end of file). Without it the
    /// first completion ends the op: for a regular file a short read means
    /// end of file, since the kernel itself retries short buffered reads of
    /// regular files before completing (io_uring's `REQ_F_ISREG` retry), so
    /// whole-file readers save the extra zero-length read.
    Read { fd: SharedFd, buf: Vec<u8>, offset: u64, len: usize, fill: bool },
    /// `pwrite(fd, buf[done..], offset + done)`, repeated until `done ==
    /// buf.len()`.
    Write { fd: SharedFd, buf: Vec<u8>, done: usize, offset: u64 },
    /// `fsync(fd)`.
    Fsync { fd: SharedFd },
    /// `close(fd)`. The ring owns the fd from push on; it is `None` once
    /// handed to the kernel, which closes it even if the op fails.
    Close { fd: Option<OwnedFd> },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::OpenAt { .. } => "openat",
            Op::Statx { .. } => "statx",
            Op::Read { .. } => "read",
            Op::Write { .. } => "write",
            Op::Fsync { .. } => "fsync",
            Op::Close { .. } => "close",
        }
    }

    /// A zeroed statx buffer for [`Op::Statx`].
    pub fn statx_buf() -> Box<libc::statx> {
        // SAFETY: `libc::statx` is a plain C struct of integers (and
        // reserved integer arrays); all-zero bytes are a valid value.
        Box::new(unsafe { std::mem::zeroed() })
    }
}

/// What a successful op produced besides its (returned) buffers.
#[derive(Debug)]
pub enum Outcome {
    /// The new fd of an [`Op::OpenAt`].
    Opened(OwnedFd),
    /// Any other op finished; a read's bytes are in its buffer.
    Done,
}

/// One finished op: the caller's tag, the op with all its buffers, and how
/// it ended.
#[derive(Debug)]
pub struct Completion<T> {
    pub tag: T,
    pub op: Op,
    pub result: Result<Outcome, Errno>,
}

/// Why a ring could not be set up; the caller falls back to plain
/// syscalls and records this.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("io_uring disabled by kernel.io_uring_disabled={0}")]
    Disabled(u8),
    #[error("io_uring_setup: {0}")]
    Setup(std::io::Error),
    #[error("io_uring probe: {0}")]
    Probe(std::io::Error),
    #[error("io_uring lacks opcode {0}")]
    Unsupported(&'static str),
    #[error("io_uring_enter: {0}")]
    Enter(std::io::Error),
}

/// The slab index of an in-flight op, carried in the SQE's `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SlotId(u32);

impl SlotId {
    fn user_data(self) -> u64 {
        u64::from(self.0)
    }
    fn from_user_data(data: u64) -> SlotId {
        SlotId(u32::try_from(data).expect("user_data is a slot index we set"))
    }
    fn index(self) -> usize {
        self.0 as usize
    }
}

struct Slot<T> {
    tag: T,
    op: Op,
}

/// An io_uring instance with its slab of in-flight ops. One owner: it is
/// driven through `&mut self` and is not shared between threads.
pub struct Ring<T> {
    ring: IoUring,
    slots: Vec<Option<Slot<T>>>,
    free: Vec<SlotId>,
    /// Ops waiting for room in the submission queue, oldest first.
    parked: VecDeque<SlotId>,
    /// Ops pushed to the submission queue whose completion is not yet
    /// reaped (submitted or not).
    in_kernel: usize,
    /// Most ops allowed in the kernel at once: the completion queue's size.
    limit: usize,
    done: VecDeque<Completion<T>>,
}

/// The opcodes [`Op`] uses, with names for [`RingError::Unsupported`].
const OPCODES: [(u8, &str); 6] = [
    (opcode::OpenAt::CODE, "OPENAT"),
    (opcode::Statx::CODE, "STATX"),
    (opcode::Read::CODE, "READ"),
    (opcode::Write::CODE, "WRITE"),
    (opcode::Fsync::CODE, "FSYNC"),
    (opcode::Close::CODE, "CLOSE"),
];

impl<T> Ring<T> {
    /// `io_uring_setup(entries)` plus a probe of every opcode [`Op`] uses.
    pub fn new(entries: u32) -> Result<Ring<T>, RingError> {
        if let Ok(s) = std::fs::read_to_string(DISABLED_SYSCTL) {
            if s.trim() == "2" {
                return Err(RingError::Disabled(2));
            }
        }
        let ring = IoUring::new(entries).map_err(|e| match e.raw_os_error() {
            // EPERM: kernel.io_uring_disabled=1 and not in io_uring_group.
            Some(libc::EPERM) => RingError::Disabled(1),
            _ => RingError::Setup(e),
        })?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe).map_err(RingError::Probe)?;
        if let Some(&(_, name)) = OPCODES.iter().find(|(code, _)| !probe.is_supported(*code)) {
            return Err(RingError::Unsupported(name));
        }
        let limit = ring.params().cq_entries() as usize;
        Ok(Ring {
            ring,
            slots: Vec::new(),
            free: Vec::new(),
            parked: VecDeque::new(),
            in_kernel: 0,
            limit,
            done: VecDeque::new(),
        })
    }

    /// The submission queue's size.
    pub fn entries(&self) -> u32 {
        self.ring.params().sq_entries()
    }

    /// Ops pushed whose completion has not been returned by [`Ring::wait_next`].
    pub fn pending(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Queues `op`; it goes to the kernel now if there is room, otherwise
    /// it is parked until there is. Never fails: errors come back in the
    /// op's [`Completion`].
    pub fn push(&mut self, mut op: Op, tag: T) {
        if let Op::Read { buf, len, .. } = &mut op {
            buf.reserve(len.saturating_sub(buf.len()));
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id.index()] = Some(Slot { tag, op });
                id
            }
            None => {
                let id = SlotId(u32::try_from(self.slots.len()).expect("fewer than 2^32 ops in flight"));
                self.slots.push(Some(Slot { tag, op }));
                id
            }
        };
        if !self.parked.is_empty() || !self.place(id) {
            self.parked.push_back(id);
        }
    }

    /// Builds the SQE for slot `id` and puts it in the submission queue;
    /// false (and nothing changed) if there is no room.
    fn place(&mut self, id: SlotId) -> bool {
        if self.in_kernel >= self.limit || self.ring.submission().is_full() {
            return false;
        }
        let slot = self.slots[id.index()].as_mut().expect("placed slot is occupied");
        let entry = match &mut slot.op {
            Op::OpenAt { dir, path, flags, mode } => {
                // The kernel's flag words are ints; the bits are the same.
                let flags = flags.bits() as i32;
                opcode::OpenAt::new(types::Fd(dir.as_raw_fd()), path.as_ptr()).flags(flags).mode(mode.bits()).build()
            }
            Op::Statx { dir, path, flags, buf } => {
                let buf: *mut libc::statx = &mut **buf;
                let flags = flags.bits() as i32; // as for OpenAt
                opcode::Statx::new(types::Fd(dir.as_raw_fd()), path.as_ptr(), buf.cast::<types::statx>())
                    .flags(flags)
                    .mask(libc::STATX_BASIC_STATS)
                    .build()
            }
            Op::Read { fd, buf, offset, len, .. } => {
                let want = len.saturating_sub(buf.len()).min(MAX_RW);
                let at = *offset + buf.len() as u64;
                let spare = buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
                opcode::Read::new(types::Fd(fd.as_raw_fd()), spare, u32::try_from(want).expect("at most MAX_RW"))
                    .offset(at)
                    .build()
            }
            Op::Write { fd, buf, done, offset } => {
                let rest = &buf[*done..];
                let len = u32::try_from(rest.len().min(MAX_RW)).expect("at most MAX_RW");
                opcode::Write::new(types::Fd(fd.as_raw_fd()), rest.as_ptr(), len).offset(*offset + *done as u64).build()
            }
            Op::Fsync { fd } => opcode::Fsync::new(types::Fd(fd.as_raw_fd())).build(),
            Op::Close { fd } => {
                let raw = fd.take().map(IntoRawFd::into_raw_fd).unwrap_or(-1);
                opcode::Close::new(types::Fd(raw)).build()
            }
        }
        .user_data(id.user_data());
        // SAFETY: every pointer in `entry` points into heap data owned by
        // slot `id` (a `CString`, a `Box<statx>`, a `Vec`'s buffer — for a
        // read only its spare capacity, of exactly the length given) or is
        // an fd the slot keeps open through an `Arc<OwnedFd>` (a close's fd
        // was given up to the kernel above). The slot is neither dropped
        // nor mutated until this SQE's completion is reaped in `reap`, and
        // `Drop` waits for all completions (or leaks the slab), so the
        // memory outlives the kernel's use of it.
        let pushed = unsafe { self.ring.submission().push(&entry) };
        if pushed.is_err() {
            // Checked `is_full` above with `&mut self`, so this cannot
            // happen; if it did, the close's fd would already be gone.
            return false;
        }
        self.in_kernel += 1;
        true
    }

    /// Places parked ops while there is room.
    fn unpark(&mut self) {
        while let Some(&id) = self.parked.front() {
            if !self.place(id) {
                break;
            }
            self.parked.pop_front();
        }
    }

    /// The next finished op, waiting for one if needed; `None` when nothing
    /// is pending.
    pub fn wait_next(&mut self) -> Result<Option<Completion<T>>, RingError> {
        loop {
            if let Some(c) = self.done.pop_front() {
                return Ok(Some(c));
            }
            if self.in_kernel == 0 && self.parked.is_empty() {
                return Ok(None);
            }
            self.unpark();
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // EBUSY: completions must be reaped before more submits.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(RingError::Enter(e)),
            }
            self.reap();
        }
    }

    /// Moves every posted completion into `done`, resubmitting what must be
    /// retried. The one place EINTR, EAGAIN and short transfers are handled.
    fn reap(&mut self) {
        let cqes: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
        for (data, res) in cqes {
            self.in_kernel -= 1;
            let id = SlotId::from_user_data(data);
            if self.finish(id, res) {
                let slot = self.slots[id.index()].take().expect("completed slot is occupied");
                self.free.push(id);
                let result = if res < 0 {
                    Err(Errno::from_raw_os_error(-res))
                } else if let Op::OpenAt { .. } = slot.op {
                    // SAFETY: a non-negative OPENAT result is a new file
                    // descriptor the kernel just installed for us; nothing
                    // else owns it.
                    Ok(Outcome::Opened(unsafe { OwnedFd::from_raw_fd(res) }))
                } else {
                    Ok(Outcome::Done)
                };
                self.done.push_back(Completion { tag: slot.tag, op: slot.op, result });
            } else if !self.place(id) {
                self.parked.push_front(id);
            }
        }
        self.unpark();
    }

    /// Applies result `res` to slot `id`'s op; true if the op is finished,
    /// false if it must be submitted again.
    fn finish(&mut self, id: SlotId, res: i32) -> bool {
        let op = &mut self.slots[id.index()].as_mut().expect("completed slot is occupied").op;
        if res == -libc::EINTR || res == -libc::EAGAIN {
            // A close's fd is already consumed; retrying would close -1.
            return matches!(op, Op::Close { .. });
        }
        let Ok(n) = usize::try_from(res) else { return true };
        match op {
            Op::Read { buf, len, fill, .. } => {
                // SAFETY: the kernel reports it initialised `n` bytes of the
                // spare capacity we gave it, which started at `buf.len()` and
                // was no longer than `len - buf.len() <= capacity - buf.len()`
                // (`push` reserved it); the `min` guards a kernel bug.
                unsafe { buf.set_len(buf.len() + n.min(buf.capacity() - buf.len())) };
                !*fill || n == 0 || buf.len() >= *len
            }
            Op::Write { buf, done, .. } => {
                *done += n;
                // A zero-length write of a non-empty remainder would loop
                // forever; report it as done with `done < len`.
                n == 0 || *done >= buf.len()
            }
            _ => true,
        }
    }

    /// Name of a finished op's syscall, for error messages.
    pub fn op_name(op: &Op) -> &'static str {
        op.name()
    }
}

/// One wait while a ring's owner drains it on drop: `false` when the
/// kernel refused the wait (anything but `EINTR`/`EBUSY`), in which case
/// ops may still be in flight and the owner must leak, never free, the
/// buffers they use. Shared by [`Ring`] and `uring_create::CreateRing`.
pub(super) fn wait_to_drain(ring: &IoUring) -> bool {
    match ring.submit_and_wait(1) {
        Ok(_) => true,
        Err(e) => matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EBUSY)),
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        self.parked.clear();
        while self.in_kernel > 0 {
            if !wait_to_drain(&self.ring) {
                // The kernel may still write into the slab: leak it.
                std::mem::forget(std::mem::take(&mut self.slots));
                return;
            }
            let cqes: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
            for (data, res) in cqes {
                self.in_kernel -= 1;
                let slot = self.slots[SlotId::from_user_data(data).index()].take();
                if let Some(Slot { op: Op::OpenAt { .. }, .. }) = slot {
                    if res >= 0 {
                        // SAFETY: a non-negative OPENAT result is a new fd
                        // nobody else owns; wrapping it closes it on drop.
                        drop(unsafe { OwnedFd::from_raw_fd(res) });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_fd(path: &std::path::Path) -> SharedFd {
        Arc::new(crate::sys::fs::open_dir(path).unwrap())
    }

    #[test]
    fn more_ops_than_the_ring_holds_all_complete_with_their_tags() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), b"0123456789").unwrap();
        let dir = dir_fd(tmp.path());
        let mut ring: Ring<usize> = Ring::new(8).unwrap();
        assert_eq!(ring.entries(), 8);
        for i in 0..1000 {
            let op = Op::Statx {
                dir: dir.clone(),
                path: CString::new("f").unwrap(),
                flags: AtFlags::empty(),
                buf: Op::statx_buf(),
            };
            ring.push(op, i);
        }
        let mut seen = vec![false; 1000];
        while let Some(c) = ring.wait_next().unwrap() {
            assert!(matches!(c.result, Ok(Outcome::Done)));
            let Op::Statx { buf, .. } = c.op else { panic!("not a statx") };
            assert_eq!(buf.stx_size, 10);
            assert!(!std::mem::replace(&mut seen[c.tag], true));
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(ring.pending(), 0);
    }

    #[test]
    fn a_read_past_the_end_is_short_and_a_failed_op_returns_its_buffer() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), b"hello").unwrap();
        let file: SharedFd = Arc::new(std::fs::File::open(tmp.path().join("f")).unwrap().into());
        let mut ring: Ring<()> = Ring::new(4).unwrap();
        ring.push(Op::Read { fd: file.clone(), buf: b"xx".to_vec(), offset: 1, len: 100, fill: true }, ());
        let c = ring.wait_next().unwrap().unwrap();
        let Op::Read { buf, .. } = c.op else { panic!("not a read") };
        // Read at offset 1 + the 2 bytes already in the buffer.
        assert_eq!(buf, b"xxlo");
        // A write to a read-only fd fails with EBADF and hands the data back.
        ring.push(Op::Write { fd: file.clone(), buf: b"data".to_vec(), done: 0, offset: 0 }, ());
        let c = ring.wait_next().unwrap().unwrap();
        assert_eq!(c.result.unwrap_err(), Errno::BADF);
        let Op::Write { buf, done, .. } = c.op else { panic!("not a write") };
        assert_eq!((buf.as_slice(), done), (&b"data"[..], 0));
    }
}
