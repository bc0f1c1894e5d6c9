//! The tree copy spread over the cores. A copy's cost is metadata (create,
//! `FICLONE`, owner, mode, times: a handful of syscalls per file, most of
//! them waiting on the filesystem's locks and journal), so one thread
//! leaves the other cores idle; this engine keeps them busy.
//!
//! ```text
//! 1. walk (caller's thread)   mkdir every directory, depth first in readdir
//!                             order, exactly as the sequential twin does;
//!                             list every other entry (type from d_type)
//! 2. entries (N workers)      regular files, symlinks, devices, fifos:
//!                             data and attributes, one entry per claim
//! 3. hardlinks (caller)       link(2) to the copy of each inode's first
//!                             claimed name, once every copy is complete
//! 4. directories (caller)     owner, xattrs, mode, times, deepest first,
//!                             after every entry is in
//! ```
//!
//! Per regular file, the metadata comes from `fstat` on the opened source
//! (no `lstat` by path beforehand), and the destination's attributes are
//! set on its descriptor with only the calls that change something: the
//! new file's owner and mode are known without a `fstat` — the creator's
//! ids (read once from the destination's top directory) and the requested
//! mode less the umask (read once from `/proc/self/status`) — so `fchown`
//! and `fchmod` run only when the source differs. When either is not
//! known for sure (a top directory that inherited setgid or extended
//! attributes such as a default ACL, or no `/proc`), each file falls back
//! to the sequential twin's checks.
//!
//! **Read/write through the I/O engine.** When a worker's data path is
//! read/write ([`Strategy::ReadWrite`], or `FICLONE` and
//! `copy_file_range` both found unsupported), it opens, sizes and maps up
//! to [`BATCH`] files, hands their data segments to one
//! [`IoEngine::copy_ranges`] batch — io_uring keeps them all in flight;
//! the sync twin copies them one `pread`/`pwrite` at a time — and then
//! sets each file's attributes. [`Parallel::io`] picks the engine; the
//! default is the sync twin: io_uring showed no margin the noise supports
//! on loop XFS or ext4 (`benches/results/2026-12-07-copy-parallel-quick.json`),
//! and on ext4 its buffered writes are partly punted to io-wq workers.
//!
//! **Same result as [`super::tree::copy_tree_sequential`]**, checked by
//! `differential.rs`: which name of a hardlinked inode is copied first
//! depends on scheduling, but every name ends up on one inode with the
//! same content and attributes, and directories' times are set last.

use super::tree::{io_err, Copier, CopyError, CopyStats, Strategy};
use crate::sys;
use crate::sys::Errno;
use crate::uring::{IoEngine, IoEngineKind, RangeCopy, UringError};
use std::collections::HashMap;
use std::fs::{File, FileType, Metadata};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Workers for [`super::tree::copy_tree`]: the cores available, at least
/// two (a worker waiting on the journal leaves its core to the other), at
/// most eight.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8)
}

/// What a worker hands back: its stats and the links it deferred.
type Done = (CopyStats, Vec<(PathBuf, PathBuf)>);

/// Files per read/write batch handed to the I/O engine.
pub const BATCH: usize = 32;

/// How a parallel copy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallel {
    pub strategy: Strategy,
    /// Worker threads (at least one).
    pub threads: usize,
    /// The engine for read/write data; io_uring falls back to the sync
    /// twin where the ring cannot be set up.
    pub io: IoEngineKind,
}

impl Parallel {
    /// [`default_threads`] workers, the sync engine.
    pub fn new(strategy: Strategy) -> Parallel {
        Parallel { strategy, threads: default_threads(), io: IoEngineKind::Sync }
    }
}

/// One non-directory entry to copy.
struct Job {
    src: PathBuf,
    dst: PathBuf,
    kind: FileType,
}

/// What a freshly created file looks like before any attribute is set,
/// when that is known for sure.
#[derive(Clone, Copy)]
struct Created {
    uid: u32,
    gid: u32,
    umask: u32,
}

/// Copies the tree at `src` to `dst` (which must not exist) with
/// `threads` workers; see the module doc. A source that is not a directory
/// is copied by the sequential twin.
pub fn copy_tree_parallel(src: &Path, dst: &Path, strategy: Strategy, threads: usize) -> Result<CopyStats, CopyError> {
    copy_tree_with(src, dst, Parallel { threads, ..Parallel::new(strategy) })
}

/// [`copy_tree_parallel`] with every knob.
pub fn copy_tree_with(src: &Path, dst: &Path, opts: Parallel) -> Result<CopyStats, CopyError> {
    let Parallel { strategy, threads, io } = opts;
    if dst.symlink_metadata().is_ok() {
        return Err(CopyError::DestinationExists(dst.to_owned()));
    }
    let md = src.symlink_metadata().map_err(io_err("lstat", src))?;
    if !md.is_dir() {
        return super::tree::copy_tree_sequential(src, dst, strategy);
    }
    std::fs::DirBuilder::new().mode(0o700).create(dst).map_err(io_err("mkdir", dst))?;
    let created = created_files(dst)?;
    let mut dirs = vec![(src.to_owned(), dst.to_owned(), md)];
    let mut jobs = Vec::new();
    walk(src, dst, &mut dirs, &mut jobs)?;

    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let claimed: Mutex<HashMap<(u64, u64), PathBuf>> = Mutex::new(HashMap::new());
    let results: Vec<Result<Done, CopyError>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut w = Worker {
                        copier: Copier::new(strategy),
                        strategy,
                        created,
                        claimed: &claimed,
                        links: Vec::new(),
                        io,
                        engine: None,
                        pending: Vec::new(),
                    };
                    let mut run = || -> Result<(), CopyError> {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= jobs.len() || failed.load(Ordering::Relaxed) {
                                return w.flush();
                            }
                            w.job(&jobs[i])?;
                        }
                    };
                    match run() {
                        Ok(()) => Ok((w.copier.stats, w.links)),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            Err(e)
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().map(|h| h.join().expect("a copy worker panicked")).collect()
    });
    let mut stats = CopyStats { dirs: dirs.len() as u64, ..CopyStats::default() };
    let mut links = Vec::new();
    for r in results {
        let (s, l) = r?;
        merge(&mut stats, s);
        links.extend(l);
    }
    for (first, link) in links {
        std::fs::hard_link(&first, &link).map_err(io_err("link", &link))?;
        stats.hardlinks += 1;
    }
    let mut copier = Copier::new(strategy);
    for (src, dst, md) in dirs.iter().rev() {
        copier.attributes(src, dst, md, true)?;
    }
    Ok(stats)
}

/// Creates the directories below `src` in `dst`, depth first in readdir
/// order (the sequential twin's order), and lists every other entry.
fn walk(
    src: &Path,
    dst: &Path,
    dirs: &mut Vec<(PathBuf, PathBuf, Metadata)>,
    jobs: &mut Vec<Job>,
) -> Result<(), CopyError> {
    for entry in std::fs::read_dir(src).map_err(io_err("readdir", src))? {
        let entry = entry.map_err(io_err("readdir", src))?;
        let (child_src, child_dst) = (entry.path(), dst.join(entry.file_name()));
        // d_type: no stat unless the filesystem does not fill it in.
        let kind = entry.file_type().map_err(io_err("lstat", &child_src))?;
        if kind.is_dir() {
            // Before its contents are read, as the twin does: reading it
            // may move its access time.
            let md = child_src.symlink_metadata().map_err(io_err("lstat", &child_src))?;
            std::fs::DirBuilder::new().mode(0o700).create(&child_dst).map_err(io_err("mkdir", &child_dst))?;
            dirs.push((child_src.clone(), child_dst.clone(), md));
            walk(&child_src, &child_dst, dirs, jobs)?;
        } else {
            jobs.push(Job { src: child_src, dst: child_dst, kind });
        }
    }
    Ok(())
}

/// The owner and umask every file created below `top` gets, when they are
/// certain: `top` (just made by this process) neither inherited setgid —
/// group inheritance then follows rules (group membership, `CAP_FSETID`)
/// this engine does not model — nor any extended attribute, such as a
/// default ACL, which would replace the umask.
fn created_files(top: &Path) -> Result<Option<Created>, CopyError> {
    let dir = File::open(top).map_err(io_err("open", top))?;
    let md = dir.metadata().map_err(io_err("fstat", top))?;
    let has_xattrs = match sys::xattr::fhas_any(&dir) {
        Ok(any) => any,
        Err(e) if Errno::from_io_error(&e) == Some(Errno::OPNOTSUPP) => false,
        Err(e) => return Err(io_err("flistxattr", top)(e)),
    };
    if md.mode() & 0o2000 != 0 || has_xattrs {
        return Ok(None);
    }
    Ok(umask().map(|umask| Created { uid: md.uid(), gid: md.gid(), umask }))
}

/// The process's umask from `/proc/self/status` (`umask(2)` cannot read it
/// without setting it, which would race with other threads).
fn umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

fn merge(into: &mut CopyStats, s: CopyStats) {
    into.files += s.files;
    into.symlinks += s.symlinks;
    into.specials += s.specials;
    into.hardlinks += s.hardlinks;
    into.bytes += s.bytes;
    into.reflinked += s.reflinked;
    into.range_copied += s.range_copied;
    into.read_written += s.read_written;
    into.reflink_unsupported = into.reflink_unsupported.or(s.reflink_unsupported);
    into.range_unsupported = into.range_unsupported.or(s.range_unsupported);
}

/// A file opened, sized and mapped, waiting for its batch's data.
struct Pending {
    src: PathBuf,
    dst: PathBuf,
    input: OwnedFd,
    output: OwnedFd,
    md: Metadata,
    segments: Vec<(u64, u64)>,
}

struct Worker<'a> {
    copier: Copier,
    strategy: Strategy,
    io: IoEngineKind,
    /// Made on the first read/write batch.
    engine: Option<IoEngine>,
    pending: Vec<Pending>,
    created: Option<Created>,
    /// Source (dev, ino) of multiply-linked inodes → the first name
    /// claimed for them, shared by the workers.
    claimed: &'a Mutex<HashMap<(u64, u64), PathBuf>>,
    /// (first copy, new name): links to make once every copy is complete.
    links: Vec<(PathBuf, PathBuf)>,
}

impl Worker<'_> {
    fn job(&mut self, job: &Job) -> Result<(), CopyError> {
        if !job.kind.is_file() {
            let md = job.src.symlink_metadata().map_err(io_err("lstat", &job.src))?;
            if self.linked(&md, &job.dst) {
                return Ok(());
            }
            return self.copier.node(&job.src, &job.dst, &md);
        }
        let input = self.copier.open_source(&job.src)?;
        let md = input.metadata().map_err(io_err("fstat", &job.src))?;
        if !md.is_file() {
            let e = std::io::Error::other("changed while it was being copied");
            return Err(io_err("open", &job.src)(e));
        }
        if self.linked(&md, &job.dst) {
            return Ok(());
        }
        let flags =
            sys::fs::OFlags::WRONLY | sys::fs::OFlags::CREATE | sys::fs::OFlags::EXCL | sys::fs::OFlags::NOFOLLOW;
        let mode = sys::fs::Mode::from_raw_mode(md.mode() & 0o777);
        let output = File::from(sys::fs::open(&job.dst, flags, mode).map_err(io_err("create", &job.dst))?);
        if md.len() > 0 && self.read_write() {
            return self.queue(job, input, output, md);
        }
        self.copier.data(&input, &output, md.len(), &job.dst)?;
        self.copier.stats.files += 1;
        self.attributes(&input, &output, &job.src, &job.dst, &md)
    }

    fn attributes(
        &mut self,
        input: &File,
        output: &File,
        src: &Path,
        dst: &Path,
        md: &Metadata,
    ) -> Result<(), CopyError> {
        match self.created {
            Some(c) => self.file_attributes(c, input, output, src, dst, md),
            None => self.copier.file_attributes(input, output, src, dst, md),
        }
    }

    /// Whether file data goes by read/write: asked for, or both fast paths
    /// found unsupported (`copy_file_range` is tried only after `FICLONE`).
    fn read_write(&self) -> bool {
        self.strategy == Strategy::ReadWrite || self.copier.stats.range_unsupported.is_some()
    }

    /// Sizes `output`, maps the source's data, and queues the file for the
    /// next batch.
    fn queue(&mut self, job: &Job, input: File, output: File, md: Metadata) -> Result<(), CopyError> {
        let segments =
            sys::clone::data_segments(&input, md.len()).map_err(|e| io_err("lseek SEEK_DATA", &job.dst)(e.into()))?;
        output.set_len(md.len()).map_err(io_err("ftruncate", &job.dst))?;
        self.pending.push(Pending {
            src: job.src.clone(),
            dst: job.dst.clone(),
            input: input.into(),
            output: output.into(),
            md,
            segments,
        });
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Copies the queued files' data in one engine batch, then sets each
    /// one's attributes (data first, as for every file).
    fn flush(&mut self) -> Result<(), CopyError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let io = self.io;
        let engine = self.engine.get_or_insert_with(|| IoEngine::with_kind(io).unwrap_or_else(|_| IoEngine::sync()));
        let pending = std::mem::take(&mut self.pending);
        let mut ranges = Vec::with_capacity(pending.len());
        let mut rest = Vec::with_capacity(pending.len());
        for p in pending {
            let job = RangeCopy {
                path: p.dst.clone(),
                src: Arc::new(p.input),
                dst: Arc::new(p.output),
                segments: p.segments,
            };
            ranges.push(job);
            rest.push((p.src, p.dst, p.md));
        }
        let results = engine.copy_ranges(&ranges);
        for ((r, range), (src, dst, md)) in results.into_iter().zip(ranges).zip(rest) {
            r.map_err(uring_err)?;
            let (input, output) = (unshare(range.src, &src)?, unshare(range.dst, &dst)?);
            self.copier.stats.bytes += range.segments.iter().map(|(s, e)| e - s).sum::<u64>();
            self.copier.stats.read_written += 1;
            self.copier.stats.files += 1;
            self.attributes(&input, &output, &src, &dst, &md)?;
        }
        Ok(())
    }

    /// Whether `dst` is a further name of an inode another name of which
    /// is (or will be) copied: then it is linked after the copies.
    fn linked(&mut self, md: &Metadata, dst: &Path) -> bool {
        if md.nlink() <= 1 {
            return false;
        }
        let mut claimed = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
        match claimed.get(&(md.dev(), md.ino())) {
            Some(first) => {
                self.links.push((first.clone(), dst.to_owned()));
                true
            }
            None => {
                claimed.insert((md.dev(), md.ino()), dst.to_owned());
                false
            }
        }
    }

    /// Owner, xattrs, mode, times on the new file's descriptor, each only
    /// where it differs from what `open` created (`c`).
    fn file_attributes(
        &mut self,
        c: Created,
        input: &File,
        output: &File,
        src: &Path,
        dst: &Path,
        md: &Metadata,
    ) -> Result<(), CopyError> {
        if (md.uid(), md.gid()) != (c.uid, c.gid) {
            sys::fs::fchown(output.as_fd(), md.uid(), md.gid()).map_err(io_err("fchown", dst))?;
        }
        let has_xattrs = self.copier.xattrs_if_any(input, src, dst)?;
        // An ACL among the xattrs rewrites the group bits: then always.
        if has_xattrs || md.mode() & 0o7777 != md.mode() & 0o777 & !c.umask {
            sys::fs::fchmod(output.as_fd(), md.mode() & 0o7777).map_err(io_err("fchmod", dst))?;
        }
        super::tree::set_times(output, dst, md)
    }
}

/// The descriptor back from a finished batch (nothing else holds it).
fn unshare(fd: Arc<OwnedFd>, path: &Path) -> Result<File, CopyError> {
    match Arc::try_unwrap(fd) {
        Ok(fd) => Ok(File::from(fd)),
        Err(shared) => shared.try_clone().map(File::from).map_err(io_err("dup", path)),
    }
}

fn uring_err(e: UringError) -> CopyError {
    match e {
        UringError::Io { op, path, source } => CopyError::Io { op, path, source },
        e => {
            let path = PathBuf::new();
            CopyError::Io { op: "read/write", path, source: std::io::Error::other(e.to_string()) }
        }
    }
}
