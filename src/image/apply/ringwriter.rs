//! The io_uring file writer of the parallel path ([`ApplyIo::Uring`]):
//! the same jobs as the plain workers, each small file one linked chain
//! `OPENAT → WRITE… → CLOSE → STATX` on a fixed-file slot
//! ([`crate::sys::uring_create`]), many in flight per `io_uring_enter`.
//!
//! The security invariant is unchanged: a chain names the parent's fd and
//! a single name, `O_CREAT|O_EXCL|O_NOFOLLOW`. Metadata follows
//! [`fd_attrs_created`](super::entry::fd_attrs_created) exactly: the
//! chain's `STATX` (no-follow) plays its `fstat`; when owner and mode
//! already match, only `utimensat(parent, name, AT_SYMLINK_NOFOLLOW)` is
//! left, otherwise the file is reopened (`O_NOFOLLOW`) and given the plain
//! path's calls. Files with xattrs, streamed large files, names with a NUL
//! and any chain that fails (a name already taken, which the plain path
//! replaces; a short write) are done by the plain writer, so errors and
//! results are the plain path's by construction.
//!
//! [`ApplyIo::Uring`]: super::ApplyIo::Uring

use super::applier::NewFile;
use super::entry::{at, fd_attrs_created};
use super::pipeline::{finish_job, write, Data, Job, Shared};
use super::tarstream::Piece;
use super::ApplyError;
use crate::sys::fs as sysfs;
use crate::sys::uring_create::{CreateFlags, CreateOp, CreateRing, Created};
use std::ffi::CString;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Mutex, TryLockError};

/// Submission queue entries of a writer's ring.
const ENTRIES: u32 = 512;
/// Fixed-file slots: files in flight per writer.
const SLOTS: u32 = 128;

/// Ring setup and create flags from the environment:
/// `STRATA_APPLY_URING_DEFER=1` (`SINGLE_ISSUER|DEFER_TASKRUN`) and
/// `STRATA_APPLY_URING_ASYNC=1` (`IOSQE_ASYNC` on creates); both off by
/// default (neither won in the `unpack` bench: see [`super::DEFAULT_IO`]).
pub(super) fn flags_from_env() -> CreateFlags {
    let on = |k: &str| std::env::var(k).is_ok_and(|v| v == "1");
    CreateFlags { defer_taskrun: on("STRATA_APPLY_URING_DEFER"), async_open: on("STRATA_APPLY_URING_ASYNC") }
}

/// A worker thread: takes jobs until the channel closes, as
/// [`super::pipeline`]'s plain workers do. Without io_uring it is one.
pub(super) fn work(rx: &Mutex<Receiver<Job>>, shared: &Shared, flags: CreateFlags) {
    let Ok(mut ring) = CreateRing::<Piece, NewFile>::new(ENTRIES, SLOTS, flags) else {
        return super::pipeline::work(rx, shared);
    };
    let mut open = true;
    loop {
        // Take what is queued; block only when nothing is in flight.
        while open && !ring.is_full() {
            // With files in flight, never wait for the queue's lock: the
            // worker holding it may be blocked in `recv` until the driver
            // sends more, and the driver may be waiting for our files.
            let job = if ring.pending() == 0 {
                super::pipeline::lock(rx).recv().map_err(|_| TryRecvError::Disconnected)
            } else {
                match rx.try_lock() {
                    Ok(rx) => rx.try_recv(),
                    Err(TryLockError::WouldBlock) => Err(TryRecvError::Empty),
                    Err(TryLockError::Poisoned(rx)) => rx.into_inner().try_recv(),
                }
            };
            match job {
                Ok(job) => take(&mut ring, job, shared),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        if !open && ring.pending() == 0 {
            return;
        }
        // Reap everything done; wait for one if there is nothing new to take.
        let mut waited = false;
        loop {
            let wait = !waited && (ring.is_full() || !open);
            match ring.next(wait) {
                Ok(Some(c)) => {
                    waited = true;
                    complete(c, shared);
                }
                Ok(None) => break,
                Err(e) => return abandon(ring, e, rx, shared),
            }
            if ring.pending() == 0 {
                break;
            }
        }
        if open && ring.pending() > 0 && !ring.is_full() && !waited {
            // Nothing finished and room left: give the kernel time by
            // waiting for one completion before polling the queue again.
            match ring.next(true) {
                Ok(Some(c)) => complete(c, shared),
                Ok(None) => {}
                Err(e) => return abandon(ring, e, rx, shared),
            }
        }
    }
}

/// The ring itself failed (`io_uring_enter`): the apply fails, the files
/// it held count as done, and the queue is drained by the plain worker
/// (which drops jobs once the apply has failed).
fn abandon(
    ring: CreateRing<Piece, NewFile>,
    e: crate::sys::uring::RingError,
    rx: &Mutex<Receiver<Job>>,
    shared: &Shared,
) {
    fail(shared, ApplyError::Read(std::io::Error::other(e)));
    let lost = ring.pending();
    drop(ring);
    for _ in 0..lost {
        finish_job(shared);
    }
    super::pipeline::work(rx, shared)
}

fn fail(shared: &Shared, e: ApplyError) {
    super::pipeline::lock(&shared.error).get_or_insert(e);
    shared.failed.store(true, Ordering::Relaxed);
}

/// Puts `job` on the ring, or writes it with the plain writer.
fn take(ring: &mut CreateRing<Piece, NewFile>, job: Job, shared: &Shared) {
    if shared.failed.load(Ordering::Relaxed) {
        return finish_job(shared);
    }
    let Job { file, data } = job;
    let pieces = match data {
        Data::Pieces(p) if file.attrs.xattrs.is_empty() => p,
        data => return plain(Job { file, data }, shared),
    };
    let Ok(name) = CString::new(file.name.clone()) else {
        return plain(Job { file, data: Data::Pieces(pieces) }, shared);
    };
    let op = CreateOp { dir: file.parent.clone(), name, mode: file.attrs.mode, data: pieces };
    ring.push(op, file);
}

fn plain(job: Job, shared: &Shared) {
    if let Err(e) = write(job) {
        fail(shared, e);
    }
    finish_job(shared);
}

/// Finishes a file whose chain is done.
fn complete(c: Created<Piece, NewFile>, shared: &Shared) {
    let Created { tag: file, op, result } = c;
    if shared.failed.load(Ordering::Relaxed) {
        return finish_job(shared);
    }
    let Ok(st) = result else {
        // Redo it the plain way: it replaces a taken name and reports
        // the plain path's error.
        return plain(Job { file, data: Data::Pieces(op.data) }, shared);
    };
    drop(op);
    let a = &file.attrs;
    let r = if (st.uid, st.gid, st.mode) == (a.uid, a.gid, a.mode) {
        sysfs::lutimens_at(file.parent.as_fd(), &file.name, a.atime, a.mtime).map_err(at(&file.raw, "set times"))
    } else {
        sysfs::open_file_at(file.parent.as_fd(), &file.name)
            .map_err(at(&file.raw, "reopen"))
            .and_then(|fd| fd_attrs_created(fd.as_fd(), a, &file.raw))
    };
    if let Err(e) = r {
        fail(shared, e);
    }
    finish_job(shared);
}
