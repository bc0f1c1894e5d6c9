//! The io_uring engine: per-item state machines driven by the completions
//! of one [`Ring`].
//!
//! Each batch call pushes the first op of up to [`DEPTH`] items, then loops
//! on [`Ring::wait_next`]: a completion's [`Tag`] names the item and the step it
//! finished, and the handler pushes that item's next step. The ring is
//! empty again when a batch call returns. Per item:
//!
//! ```text
//! read:   OPENAT ─► READ(FIRST_READ) ─► READ(CHUNK)… until short ─► CLOSE
//! stat:   STATX(dir, name, AT_SYMLINK_NOFOLLOW)
//! write:  OPENAT(O_CREAT|O_EXCL or existing) ─► WRITE ─► CLOSE
//! copy:   (READ src ─► WRITE dst) per COPY_CHUNK of every segment
//! ```
//!
//! A file's fd travels inside its ops (`Arc<OwnedFd>`) and only one op per
//! file is in flight, so when a step completes its fd is unshared again
//! and can be handed to `CLOSE`.

use super::{stat_from_statx, At, Chunk, FdRead, RangeCopy, UringError, WriteJob, CHUNK, DEPTH, FIRST_READ};
use crate::sys::fs::{AtFlags, Mode, OFlags};
use crate::sys::uring::{Op, Outcome, Ring, RingError, SharedFd};
use crate::sys::Errno;
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::Arc;

/// Buffer size of the read/write copy path (as in the copy engine).
const COPY_CHUNK: usize = 256 << 10;

/// Which item a completion belongs to and which step it finished.
#[derive(Debug, Clone, Copy)]
enum Tag {
    Open(usize),
    Stat(usize),
    Read(usize),
    Write(usize),
    Close(usize),
}

pub(super) struct RingIo {
    ring: Ring<Tag>,
    /// Cleared after the first `EPERM` from `O_NOATIME` (files the caller
    /// does not own, without `CAP_FOWNER`).
    noatime: bool,
}

/// A ring failure reported against one item.
fn ring_failed(path: PathBuf, e: &RingError) -> UringError {
    UringError::io("io_uring_enter", path, std::io::Error::other(e.to_string()))
}

fn name_c(at: &At<'_>) -> Result<CString, UringError> {
    CString::new(at.name).map_err(|_| UringError::NulInName(at.dir.child_path(at.name)))
}

/// Hands a finished `READ` of item `i` to `f` (a piece, or the error);
/// returns whether the file goes on (the read was not short) and where,
/// with `buf` emptied for reuse.
fn deliver(
    i: usize,
    buf: &mut Vec<u8>,
    offset: u64,
    len: usize,
    result: Result<Outcome, Errno>,
    path: impl FnOnce() -> PathBuf,
    f: &mut impl FnMut(usize, Result<Chunk<'_>, UringError>),
) -> (bool, u64) {
    let more = match result {
        Err(Errno::ISDIR) => {
            f(i, Err(UringError::NotAFile(path())));
            false
        }
        Err(e) => {
            f(i, Err(UringError::io("read", path(), e)));
            false
        }
        Ok(_) => {
            // Short (see `Op::Read`): the end of the file.
            let eof = buf.len() < len;
            f(i, Ok(Chunk { offset, data: buf, eof }));
            !eof
        }
    };
    let pos = offset + buf.len() as u64;
    buf.clear();
    (more, pos)
}

impl RingIo {
    pub(super) fn new(entries: u32) -> Result<RingIo, RingError> {
        Ok(RingIo { ring: Ring::new(entries)?, noatime: true })
    }

    fn read_flags(&self) -> OFlags {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if self.noatime {
            flags | OFlags::NOATIME
        } else {
            flags
        }
    }

    /// Hands `fd` to `CLOSE`; false if it is still shared (then it closes
    /// when its last clone drops, and no completion will come).
    fn close(&mut self, fd: SharedFd, i: usize) -> bool {
        match Arc::try_unwrap(fd) {
            Ok(fd) => {
                self.ring.push(Op::Close { fd: Some(fd) }, Tag::Close(i));
                true
            }
            Err(_) => false,
        }
    }

    pub(super) fn statx(&mut self, items: &[At<'_>]) -> Vec<Result<super::Stat, UringError>> {
        let mut out: Vec<Option<Result<super::Stat, UringError>>> = items.iter().map(|_| None).collect();
        for (i, at) in items.iter().enumerate() {
            match name_c(at) {
                Ok(path) => {
                    let op = Op::Statx {
                        dir: at.dir.fd.clone(),
                        path,
                        flags: AtFlags::SYMLINK_NOFOLLOW,
                        buf: Op::statx_buf(),
                    };
                    self.ring.push(op, Tag::Stat(i));
                }
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        loop {
            let c = match self.ring.wait_next() {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    for (i, o) in out.iter_mut().enumerate().filter(|(_, o)| o.is_none()) {
                        *o = Some(Err(ring_failed(items[i].dir.child_path(items[i].name), &e)));
                    }
                    break;
                }
            };
            let Tag::Stat(i) = c.tag else { continue };
            let at = &items[i];
            out[i] = Some(match (c.op, c.result) {
                (Op::Statx { buf, .. }, Ok(_)) => Ok(stat_from_statx!(&*buf)),
                (_, Err(e)) => Err(UringError::io("statx", at.dir.child_path(at.name), e)),
                (_, Ok(_)) => unreachable!("a statx tag always carries a statx op"),
            });
        }
        out.into_iter().map(|o| o.expect("every item completed")).collect()
    }

    pub(super) fn read_files_with(
        &mut self,
        items: &[At<'_>],
        mut f: impl FnMut(usize, Result<Chunk<'_>, UringError>),
    ) {
        // Per item: `done` once `f` had its end.
        let mut done = vec![false; items.len()];
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let (mut next, mut active) = (0, 0);
        loop {
            while active < DEPTH && next < items.len() {
                let i = next;
                next += 1;
                match name_c(&items[i]) {
                    Ok(path) => {
                        let op = Op::OpenAt {
                            dir: items[i].dir.fd.clone(),
                            path,
                            flags: self.read_flags(),
                            mode: Mode::empty(),
                        };
                        self.ring.push(op, Tag::Open(i));
                        active += 1;
                    }
                    Err(e) => {
                        done[i] = true;
                        f(i, Err(e));
                    }
                }
            }
            let c = match self.ring.wait_next() {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    for i in (0..items.len()).filter(|&i| !done[i]) {
                        f(i, Err(ring_failed(items[i].dir.child_path(items[i].name), &e)));
                    }
                    break;
                }
            };
            let path = |i: usize| items[i].dir.child_path(items[i].name);
            match (c.tag, c.op, c.result) {
                (Tag::Open(i), Op::OpenAt { dir, path: p, flags, mode }, Err(Errno::PERM))
                    if flags.contains(OFlags::NOATIME) =>
                {
                    self.noatime = false;
                    self.ring.push(Op::OpenAt { dir, path: p, flags: flags - OFlags::NOATIME, mode }, Tag::Open(i));
                }
                (Tag::Open(i), _, Err(e)) => {
                    done[i] = true;
                    active -= 1;
                    f(i, Err(UringError::io("openat", path(i), e)));
                }
                (Tag::Open(i), _, Ok(Outcome::Opened(fd))) => {
                    let buf = spare.pop().unwrap_or_default();
                    let op = Op::Read { fd: Arc::new(fd), buf, offset: 0, len: FIRST_READ, fill: false };
                    self.ring.push(op, Tag::Read(i));
                }
                (Tag::Read(i), Op::Read { fd, mut buf, offset, len, .. }, result) => {
                    let (more, pos) = deliver(i, &mut buf, offset, len, result, || path(i), &mut f);
                    if more {
                        self.ring.push(Op::Read { fd, buf, offset: pos, len: CHUNK, fill: false }, Tag::Read(i));
                    } else {
                        done[i] = true;
                        spare.push(buf);
                        if !self.close(fd, i) {
                            active -= 1;
                        }
                    }
                }
                // A read-only fd's close reports nothing worth acting on.
                (Tag::Close(_), _, _) => active -= 1,
                (tag, op, _) => unreachable!("read batch got {tag:?} for {}", Ring::<Tag>::op_name(&op)),
            }
        }
    }

    /// [`super::IoEngine::read_fds_with`]: `READ(FIRST_READ)` ─►
    /// `READ(CHUNK)`… until short, on descriptors the caller opened (and
    /// keeps: nothing is closed here).
    pub(super) fn read_fds_with(&mut self, items: &[FdRead], mut f: impl FnMut(usize, Result<Chunk<'_>, UringError>)) {
        let mut done = vec![false; items.len()];
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let (mut next, mut active) = (0, 0);
        loop {
            while active < DEPTH && next < items.len() {
                let buf = spare.pop().unwrap_or_default();
                let op = Op::Read { fd: items[next].fd.clone(), buf, offset: 0, len: FIRST_READ, fill: false };
                self.ring.push(op, Tag::Read(next));
                next += 1;
                active += 1;
            }
            let c = match self.ring.wait_next() {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    for i in (0..items.len()).filter(|&i| !done[i]) {
                        f(i, Err(ring_failed(items[i].path.clone(), &e)));
                    }
                    break;
                }
            };
            match (c.tag, c.op, c.result) {
                (Tag::Read(i), Op::Read { fd, mut buf, offset, len, .. }, result) => {
                    let (more, pos) = deliver(i, &mut buf, offset, len, result, || items[i].path.clone(), &mut f);
                    if more {
                        self.ring.push(Op::Read { fd, buf, offset: pos, len: CHUNK, fill: false }, Tag::Read(i));
                    } else {
                        done[i] = true;
                        active -= 1;
                        spare.push(buf);
                    }
                }
                (tag, op, _) => unreachable!("read batch got {tag:?} for {}", Ring::<Tag>::op_name(&op)),
            }
        }
    }

    pub(super) fn write(&mut self, jobs: Vec<WriteJob>) -> Vec<(Vec<u8>, Result<(), UringError>)> {
        let n = jobs.len();
        let mut data: Vec<Vec<u8>> = Vec::with_capacity(n);
        let mut result: Vec<Option<Result<(), UringError>>> = (0..n).map(|_| None).collect();
        let mut error: Vec<Option<UringError>> = (0..n).map(|_| None).collect();
        let mut targets = Vec::with_capacity(n);
        for job in jobs {
            data.push(job.data);
            targets.push((job.dir, job.name, job.create, job.offset));
        }
        let path = |i: usize| targets[i].0.child_path(&targets[i].1);
        let (mut next, mut active) = (0, 0);
        loop {
            while active < DEPTH && next < n {
                let i = next;
                next += 1;
                let (dir, name, create, _) = &targets[i];
                let Ok(p) = CString::new(name.as_slice()) else {
                    result[i] = Some(Err(UringError::NulInName(path(i))));
                    continue;
                };
                let base = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let (flags, mode) = match create {
                    Some(mode) => (base | OFlags::CREATE | OFlags::EXCL, Mode::from_raw_mode(*mode)),
                    None => (base, Mode::empty()),
                };
                self.ring.push(Op::OpenAt { dir: dir.fd.clone(), path: p, flags, mode }, Tag::Open(i));
                active += 1;
            }
            let c = match self.ring.wait_next() {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    for (i, r) in result.iter_mut().enumerate().filter(|(_, r)| r.is_none()) {
                        *r = Some(Err(ring_failed(path(i), &e)));
                    }
                    break;
                }
            };
            let fd = match (c.tag, c.op, c.result) {
                (Tag::Open(i), _, Err(e)) => {
                    let op = if targets[i].2.is_some() { "create" } else { "open" };
                    result[i] = Some(Err(UringError::io(op, path(i), e)));
                    active -= 1;
                    continue;
                }
                (Tag::Open(i), _, Ok(Outcome::Opened(fd))) if !data[i].is_empty() => {
                    let buf = std::mem::take(&mut data[i]);
                    let op = Op::Write { fd: Arc::new(fd), buf, done: 0, offset: targets[i].3 };
                    self.ring.push(op, Tag::Write(i));
                    continue;
                }
                (Tag::Open(i), _, Ok(Outcome::Opened(fd))) => (i, Arc::new(fd)),
                (Tag::Write(i), Op::Write { fd, buf, done, .. }, r) => {
                    match r {
                        Err(e) => error[i] = Some(UringError::io("write", path(i), e)),
                        Ok(_) if done < buf.len() => error[i] = Some(UringError::WriteZero(path(i))),
                        Ok(_) => {}
                    }
                    data[i] = buf;
                    (i, fd)
                }
                (Tag::Close(i), _, r) => {
                    let err = error[i].take().or_else(|| r.err().map(|e| UringError::io("close", path(i), e)));
                    result[i] = Some(err.map_or(Ok(()), Err));
                    active -= 1;
                    continue;
                }
                (tag, op, _) => unreachable!("write batch got {tag:?} for {}", Ring::<Tag>::op_name(&op)),
            };
            let (i, fd) = fd;
            if !self.close(fd, i) {
                result[i] = Some(error[i].take().map_or(Ok(()), Err));
                active -= 1;
            }
        }
        data.into_iter().zip(result).map(|(d, r)| (d, r.expect("every write job completed"))).collect()
    }

    pub(super) fn copy_ranges(&mut self, jobs: &[RangeCopy]) -> Vec<Result<u64, UringError>> {
        let n = jobs.len();
        let mut result: Vec<Option<Result<u64, UringError>>> = (0..n).map(|_| None).collect();
        // Per job: (segment index, bytes copied).
        let mut state = vec![(0usize, 0u64); n];
        let mut spare: Vec<Vec<u8>> = Vec::new();
        // The read of `jobs[i]` at `pos` (or the end of the job).
        let read_at = |i: usize, seg: usize, pos: u64, buf: Vec<u8>| -> Option<Op> {
            let &(_, end) = jobs[i].segments.get(seg)?;
            let len = usize::try_from(end - pos).unwrap_or(usize::MAX).min(COPY_CHUNK);
            Some(Op::Read { fd: jobs[i].src.clone(), buf, offset: pos, len, fill: true })
        };
        let (mut next, mut active) = (0, 0);
        loop {
            while active < DEPTH && next < n {
                let i = next;
                next += 1;
                let seg = jobs[i].segments.iter().position(|(s, e)| e > s);
                match seg.and_then(|seg| read_at(i, seg, jobs[i].segments[seg].0, spare.pop().unwrap_or_default())) {
                    Some(op) => {
                        state[i].0 = seg.unwrap_or(0);
                        self.ring.push(op, Tag::Read(i));
                        active += 1;
                    }
                    None => result[i] = Some(Ok(0)),
                }
            }
            let c = match self.ring.wait_next() {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    for (i, r) in result.iter_mut().enumerate().filter(|(_, r)| r.is_none()) {
                        *r = Some(Err(ring_failed(jobs[i].path.clone(), &e)));
                    }
                    break;
                }
            };
            let failed = match (c.tag, c.op, c.result) {
                (Tag::Read(i), Op::Read { buf, offset, len, .. }, r) => match r {
                    Err(e) => Some((i, UringError::io("read", &jobs[i].path, e), buf)),
                    Ok(_) if buf.len() < len => Some((i, UringError::Shrank(jobs[i].path.clone()), buf)),
                    Ok(_) => {
                        let op = Op::Write { fd: jobs[i].dst.clone(), buf, done: 0, offset };
                        self.ring.push(op, Tag::Write(i));
                        None
                    }
                },
                (Tag::Write(i), Op::Write { mut buf, done, offset, .. }, r) => match r {
                    Err(e) => Some((i, UringError::io("write", &jobs[i].path, e), buf)),
                    Ok(_) if done < buf.len() => Some((i, UringError::WriteZero(jobs[i].path.clone()), buf)),
                    Ok(_) => {
                        let pos = offset + buf.len() as u64;
                        state[i].1 += buf.len() as u64;
                        let (mut seg, _) = state[i];
                        let mut at = pos;
                        if pos >= jobs[i].segments[seg].1 {
                            seg += 1;
                            while jobs[i].segments.get(seg).is_some_and(|(s, e)| e <= s) {
                                seg += 1;
                            }
                            at = jobs[i].segments.get(seg).map_or(0, |s| s.0);
                        }
                        state[i].0 = seg;
                        buf.clear();
                        match read_at(i, seg, at, buf) {
                            Some(op) => self.ring.push(op, Tag::Read(i)),
                            None => {
                                result[i] = Some(Ok(state[i].1));
                                active -= 1;
                            }
                        }
                        None
                    }
                },
                (tag, op, _) => unreachable!("copy batch got {tag:?} for {}", Ring::<Tag>::op_name(&op)),
            };
            if let Some((i, e, mut buf)) = failed {
                buf.clear();
                spare.push(buf);
                result[i] = Some(Err(e));
                active -= 1;
            }
        }
        result.into_iter().map(|r| r.expect("every copy job completed")).collect()
    }
}
