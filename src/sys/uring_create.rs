//! File creation on io_uring: each file is one linked chain
//! `OPENAT(O_CREAT|O_EXCL|O_NOFOLLOW) → WRITE… → CLOSE → STATX` on a
//! fixed-file slot (a registered, sparse file table; io_uring_register(2)
//! `IORING_REGISTER_FILES2` with `IORING_RSRC_REGISTER_SPARSE`), so no
//! file descriptor ever enters the process's fd table and one
//! `io_uring_enter` submits many files.
//!
//! Why explicit slots and not `IORING_FILE_INDEX_ALLOC`: with auto
//! allocation the slot is only known from the open's completion, so the
//! linked `WRITE` could not name it. [`CreateRing`] keeps its own free list
//! of slots instead.
//!
//! Ownership follows [`super::uring`]: [`CreateRing::push`] takes the
//! [`CreateOp`] (directory fd, name, data buffers) by value and boxes it;
//! the box stays in the slab, unmoved, until every CQE of its chain is
//! reaped, then comes back in a [`Created`] on success *and* on failure,
//! so the caller can redo a failed file another way.

#![allow(unsafe_code)]

use super::uring::{RingError, SharedFd};
use io_uring::{opcode, squeue, types, IoUring, Probe};
use rustix::fd::AsRawFd;
use rustix::io::Errno;
use std::collections::VecDeque;
use std::ffi::CString;
use std::ops::Deref;

/// How the ring is set up and how creates are flagged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateFlags {
    /// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN`: the ring
    /// must then be used only by the thread that created it.
    pub defer_taskrun: bool,
    /// `IOSQE_ASYNC` on each `OPENAT`: straight to an io-wq worker instead
    /// of a non-blocking attempt first.
    pub async_open: bool,
}

/// One file to create: `name` in `dir` with permission bits `mode` (less
/// the umask), then `data` written in order from offset 0.
pub struct CreateOp<D> {
    pub dir: SharedFd,
    pub name: CString,
    pub mode: u32,
    pub data: Vec<D>,
}

/// The new file's owner and mode, from the chain's `STATX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedStat {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
}

/// The first step of a chain that failed and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateFailure {
    pub op: &'static str,
    /// `None` for a short write (no errno: the kernel wrote less).
    pub errno: Option<Errno>,
}

/// A finished chain: the caller's tag, its op with every buffer, and the
/// result. On failure the file may exist, partly written.
pub struct Created<D, T> {
    pub tag: T,
    pub op: CreateOp<D>,
    pub result: Result<CreatedStat, CreateFailure>,
}

struct Chain<D, T> {
    tag: T,
    op: CreateOp<D>,
    slot: u32,
    /// CQEs still to come.
    outstanding: u32,
    /// SQEs of the chain (open, writes, close, statx).
    len: u32,
    failure: Option<CreateFailure>,
    opened: bool,
    closed: bool,
    statx: Box<libc::statx>,
}

/// Step numbers in `user_data`'s low 32 bits.
const STEP_OPEN: u32 = 0;
const STEP_CLEANUP: u32 = u32::MAX;

/// A ring that creates files as linked chains on fixed-file slots. One
/// owner, driven through `&mut self`; with [`CreateFlags::defer_taskrun`]
/// it must stay on the thread that made it (it is not `Send` then in
/// spirit; the type does not enforce it, the kernel refuses with `EEXIST`).
pub struct CreateRing<D, T> {
    ring: IoUring,
    flags: CreateFlags,
    slab: Vec<Option<Box<Chain<D, T>>>>,
    free_ids: Vec<u32>,
    free_slots: Vec<u32>,
    /// SQEs in the kernel whose CQE is not yet reaped.
    in_kernel: usize,
    limit: usize,
    queued: VecDeque<(CreateOp<D>, T)>,
    done: VecDeque<Created<D, T>>,
}

/// The opcodes a chain uses.
const OPCODES: [(u8, &str); 4] = [
    (opcode::OpenAt::CODE, "OPENAT"),
    (opcode::Write::CODE, "WRITE"),
    (opcode::Close::CODE, "CLOSE"),
    (opcode::Statx::CODE, "STATX"),
];

impl<D: Deref<Target = [u8]>, T> CreateRing<D, T> {
    /// `io_uring_setup(entries)` with `flags`, a probe of the opcodes and a
    /// sparse table of `slots` fixed files: at most `slots` files in flight.
    pub fn new(entries: u32, slots: u32, flags: CreateFlags) -> Result<CreateRing<D, T>, RingError> {
        let mut builder = IoUring::builder();
        if flags.defer_taskrun {
            builder.setup_single_issuer().setup_defer_taskrun();
        }
        let ring = builder.build(entries).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) => RingError::Disabled(1),
            _ => RingError::Setup(e),
        })?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe).map_err(RingError::Probe)?;
        if let Some(&(_, name)) = OPCODES.iter().find(|(code, _)| !probe.is_supported(*code)) {
            return Err(RingError::Unsupported(name));
        }
        ring.submitter().register_files_sparse(slots).map_err(RingError::Setup)?;
        let limit = ring.params().cq_entries() as usize;
        Ok(CreateRing {
            ring,
            flags,
            slab: Vec::new(),
            free_ids: Vec::new(),
            free_slots: (0..slots).rev().collect(),
            in_kernel: 0,
            limit,
            queued: VecDeque::new(),
            done: VecDeque::new(),
        })
    }

    /// Chains pushed (queued or in the kernel) whose result has not been
    /// returned.
    pub fn pending(&self) -> usize {
        self.slab.len() - self.free_ids.len() + self.queued.len() + self.done.len()
    }

    /// True when another push would only be queued in user space.
    pub fn is_full(&self) -> bool {
        !self.queued.is_empty() || self.free_slots.is_empty()
    }

    /// Queues the creation of one file; it goes to the submission queue now
    /// if a slot and room are free (submitted by the next wait).
    pub fn push(&mut self, op: CreateOp<D>, tag: T) {
        self.queued.push_back((op, tag));
        self.place_queued();
    }

    fn place_queued(&mut self) {
        while let Some((op, _)) = self.queued.front() {
            let len = chain_len(op);
            if self.free_slots.is_empty() || self.in_kernel + len as usize > self.limit {
                return;
            }
            let sq = self.ring.submission();
            if sq.capacity() - sq.len() < len as usize {
                drop(sq);
                // Flush what is there; whole chains only ever go in together.
                if self.submit(0).is_err() {
                    return;
                }
                if self.ring.submission().capacity() < len as usize {
                    return;
                }
                continue;
            }
            drop(sq);
            let (op, tag) = self.queued.pop_front().expect("front exists");
            let slot = self.free_slots.pop().expect("checked non-empty");
            let chain = Box::new(Chain {
                tag,
                op,
                slot,
                outstanding: len,
                len,
                failure: None,
                opened: false,
                closed: false,
                statx: Box::new(
                    // SAFETY: `libc::statx` is plain integers; all-zero is valid.
                    unsafe { std::mem::zeroed() },
                ),
            });
            let id = match self.free_ids.pop() {
                Some(id) => {
                    self.slab[id as usize] = Some(chain);
                    id
                }
                None => {
                    self.slab.push(Some(chain));
                    u32::try_from(self.slab.len() - 1).expect("fewer than 2^32 chains")
                }
            };
            self.place_chain(id);
        }
    }

    /// Writes the SQEs of chain `id`; the caller checked there is room.
    fn place_chain(&mut self, id: u32) {
        let chain = self.slab[id as usize].as_mut().expect("placed chain exists");
        let fixed = types::Fixed(chain.slot);
        let dest = types::DestinationSlot::try_from_slot_target(chain.slot).expect("slot below the table size");
        let oflags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let mut open_flags = squeue::Flags::IO_LINK;
        if self.flags.async_open {
            open_flags |= squeue::Flags::ASYNC;
        }
        let ud = |step: u32| (u64::from(id) << 32) | u64::from(step);
        let mut entries = Vec::with_capacity(chain.len as usize);
        entries.push(
            opcode::OpenAt::new(types::Fd(chain.op.dir.as_raw_fd()), chain.op.name.as_ptr())
                .file_index(Some(dest))
                .flags(oflags)
                .mode(chain.op.mode & 0o777)
                .build()
                .flags(open_flags)
                .user_data(ud(STEP_OPEN)),
        );
        let mut offset = 0u64;
        let mut step = 1;
        for piece in chain.op.data.iter().filter(|p| !p.is_empty()) {
            let len = u32::try_from(piece.len()).expect("pieces are at most a chunk");
            entries.push(
                opcode::Write::new(fixed, piece.as_ptr(), len)
                    .offset(offset)
                    .build()
                    .flags(squeue::Flags::IO_LINK)
                    .user_data(ud(step)),
            );
            offset += u64::from(len);
            step += 1;
        }
        entries.push(opcode::Close::new(fixed).build().flags(squeue::Flags::IO_LINK).user_data(ud(step)));
        let statx: *mut libc::statx = &mut *chain.statx;
        entries.push(
            opcode::Statx::new(types::Fd(chain.op.dir.as_raw_fd()), chain.op.name.as_ptr(), statx.cast())
                .flags(libc::AT_SYMLINK_NOFOLLOW)
                .mask(libc::STATX_UID | libc::STATX_GID | libc::STATX_MODE)
                .build()
                .user_data(ud(step + 1)),
        );
        // SAFETY: every pointer in `entries` points into data owned by the
        // boxed chain `id` — the `CString` name, the boxed statx buffer,
        // and the bytes of `op.data`'s pieces, each behind a `Deref` whose
        // target lives as long as the piece, and the pieces are never
        // moved out or mutated while in the box — or is the directory fd
        // the chain keeps open through its `Arc<OwnedFd>`. The chain leaves
        // the slab only when its last CQE is reaped (`reap`), and `Drop`
        // waits for every CQE (or leaks the slab). The caller checked the
        // submission queue has room for the whole chain.
        unsafe {
            self.ring.submission().push_multiple(&entries).expect("room checked by the caller");
        }
        self.in_kernel += entries.len();
    }

    fn submit(&mut self, want: usize) -> Result<(), RingError> {
        loop {
            match self.ring.submit_and_wait(want) {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(()),
                Err(e) => return Err(RingError::Enter(e)),
            }
        }
    }

    /// The next finished file, waiting for one if `wait`; `None` when
    /// nothing is pending (or nothing finished yet and not `wait`).
    pub fn next(&mut self, wait: bool) -> Result<Option<Created<D, T>>, RingError> {
        loop {
            if let Some(c) = self.done.pop_front() {
                return Ok(Some(c));
            }
            self.place_queued();
            if self.in_kernel == 0 && self.queued.is_empty() {
                return Ok(None);
            }
            self.submit(usize::from(wait && self.in_kernel > 0))?;
            self.reap();
            if !wait && self.done.is_empty() {
                return Ok(None);
            }
        }
    }

    fn reap(&mut self) {
        let cqes: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
        for (data, res) in cqes {
            self.in_kernel -= 1;
            let id = u32::try_from(data >> 32).expect("high half");
            let step = u32::try_from(data & u64::from(u32::MAX)).expect("low half");
            let chain = self.slab[id as usize].as_mut().expect("completed chain exists");
            chain.outstanding -= 1;
            let close_step = chain.len - 2;
            let statx_step = chain.len - 1;
            let name = match step {
                STEP_OPEN => "openat",
                STEP_CLEANUP => "close",
                s if s == close_step => "close",
                s if s == statx_step => "statx",
                _ => "write",
            };
            if step == STEP_OPEN && res >= 0 {
                chain.opened = true;
            }
            if (step == close_step || step == STEP_CLEANUP) && res >= 0 {
                chain.closed = true;
            }
            // `Some(None)`: a short write, which breaks the link too.
            let failed: Option<Option<Errno>> = if res < 0 {
                // Canceled links are the consequence of an earlier failure.
                (res != -libc::ECANCELED).then(|| Some(Errno::from_raw_os_error(-res)))
            } else if step != STEP_OPEN && step < close_step {
                let want = chain.op.data.iter().filter(|p| !p.is_empty()).nth(step as usize - 1).map_or(0, |p| p.len());
                (usize::try_from(res).ok() != Some(want)).then_some(None)
            } else {
                None
            };
            if let Some(errno) = failed {
                chain.failure.get_or_insert(CreateFailure { op: name, errno });
            } else if res == -libc::ECANCELED && chain.failure.is_none() {
                chain.failure = Some(CreateFailure { op: name, errno: Some(Errno::CANCELED) });
            }
            if chain.outstanding > 0 {
                continue;
            }
            if chain.opened && !chain.closed {
                // The link broke before the close: close the slot alone.
                chain.outstanding = 1;
                let sqe = opcode::Close::new(types::Fixed(chain.slot))
                    .build()
                    .user_data((u64::from(id) << 32) | u64::from(STEP_CLEANUP));
                // SAFETY: a close of a fixed slot points at no memory.
                let pushed = unsafe { self.ring.submission().push(&sqe) };
                if pushed.is_ok() {
                    self.in_kernel += 1;
                    continue;
                }
                // No room now (cannot happen: this chain's own SQEs just
                // left); drop the slot rather than reuse an open one.
                let chain = self.slab[id as usize].take().expect("chain exists");
                self.free_ids.push(id);
                self.finish(*chain);
                continue;
            }
            let chain = self.slab[id as usize].take().expect("chain exists");
            self.free_ids.push(id);
            self.free_slots.push(chain.slot);
            self.finish(*chain);
        }
    }

    fn finish(&mut self, chain: Chain<D, T>) {
        let Chain { tag, op, failure, statx, .. } = chain;
        let result = match failure {
            Some(f) => Err(f),
            None => {
                Ok(CreatedStat { uid: statx.stx_uid, gid: statx.stx_gid, mode: u32::from(statx.stx_mode) & 0o7777 })
            }
        };
        self.done.push_back(Created { tag, op, result });
    }
}

fn chain_len<D: Deref<Target = [u8]>>(op: &CreateOp<D>) -> u32 {
    u32::try_from(op.data.iter().filter(|p| !p.is_empty()).count()).expect("few pieces") + 3
}

impl<D, T> Drop for CreateRing<D, T> {
    fn drop(&mut self) {
        while self.in_kernel > 0 {
            if !super::uring::wait_to_drain(&self.ring) {
                // The kernel may still read the slab: leak it.
                std::mem::forget(std::mem::take(&mut self.slab));
                return;
            }
            let n = self.ring.completion().count();
            self.in_kernel -= n;
        }
    }
}
