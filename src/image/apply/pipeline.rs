//! The parallel path: a pipeline of threads over one layer.
//!
//! ```text
//! caller thread          driver thread              worker threads (N)
//! read blob ──────────▶  tar headers, dirs, links,  open+write+fchown+
//! (compressed)           whiteouts, in order   ──▶  fchmod+futimens+close
//! decompress into        (Applier)           jobs   of regular files
//! pooled chunks ──────▶  file data as pieces        (any order, see below)
//!        └──────▶ hasher thread: sha256 of the uncompressed stream
//! read blob chunks ─▶ blob hasher thread: sha256 of the blob (`blobhash`)
//! ```
//!
//! Chunks (`CHUNK` bytes, a fixed pool of them) flow by reference: the
//! tar reader hands file data to workers as ranges of the chunks it
//! arrived in, and a chunk returns to the pool when the last file in it is
//! written, so the pool bounds memory and throttles the reader. Files up
//! to `SMALL_FILE` travel as one job; larger ones are streamed to the
//! worker that opened them.
//!
//! **Ordering.** Workers only ever create regular files, each in a parent
//! directory the driver has already made and opened. The driver keeps the
//! paths of files handed out since it last waited for the workers and
//! the directories above them; before an operation that could observe or
//! undo one of those writes ([`Op`]) — a second entry at the same path, a
//! whiteout or symlink replacing it or a directory above it, a hard link,
//! an opaque directory, resolving a path through a symlink — it waits for
//! every pending write ("flush"). Directory times are set after the last
//! flush. So the tree is the one the sequential path builds.

use super::applier::{Applier, Files, NewFile, Op};
use super::blobhash::HashedBlob;
use super::entry::{create_file_mode, fd_attrs_created, Entry};
use super::tarstream::{Chunk, Chunks, Parsed, Piece, TarStream};
use super::{ApplyError, ApplyIo, ApplyOptions, ApplyOutcome};
use crate::digest::{DiffId, Hasher};
use crate::image::compression::{self, Compression, Decompressor};
use crate::snapshot::Whiteouts;
use std::collections::HashSet;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;

/// Bytes of uncompressed stream per chunk.
const CHUNK: usize = 1 << 20;
/// Chunks in the pool: at most this much of the stream is in flight.
const CHUNKS: usize = 32;
/// Files up to this size are one job; larger ones are streamed.
const SMALL_FILE: u64 = 1 << 20;
/// Jobs queued for the workers before the driver waits.
const QUEUE: usize = 1024;
/// Parent directory fds kept open by path.
const DIR_CACHE: usize = 64;
/// With `sync`, file data handed out between two background `syncfs`
/// calls: writeback then runs alongside apply instead of all at the end.
const WRITEBACK_EVERY: u64 = 64 << 20;

/// Applies `blob` into `root` on `opts.workers` worker threads.
pub(super) fn apply<R: Read>(
    blob: R,
    root: OwnedFd,
    whiteouts: Whiteouts,
    opts: &ApplyOptions,
) -> Result<ApplyOutcome, ApplyError> {
    // The blob's own digest is computed on a thread of its own, fed the
    // same chunks the decompressor reads (see `blobhash`).
    let mut compressed = HashedBlob::new(blob, opts.blob_hash_thread).map_err(ApplyError::Read)?;
    let head = compressed.fill_buf().map_err(ApplyError::Read)?;
    let compression = compression::detect(&head[..head.len().min(compression::MAGIC_LEN)]);
    let mut decoder = Decompressor::new(&mut compressed, compression).map_err(ApplyError::Read)?;
    let (pool_tx, pool_rx) = mpsc::sync_channel::<Vec<u8>>(CHUNKS);
    for _ in 0..CHUNKS {
        pool_tx.send(vec![0; CHUNK]).expect("pool has room");
    }
    let shared = Arc::new(Shared::default());
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(QUEUE);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (chunk_tx, chunk_rx) = mpsc::channel::<io::Result<Arc<Chunk>>>();

    let flush_fd = match opts.sync {
        true => Some(root.try_clone().map_err(ApplyError::Read)?),
        false => None,
    };
    let (extracted, plain) = thread::scope(|s| {
        let ring_flags = super::ringwriter::flags_from_env();
        for _ in 0..opts.workers.max(1) {
            let (rx, shared) = (job_rx.clone(), shared.clone());
            match opts.io {
                ApplyIo::Sync => s.spawn(move || work(&rx, &shared)),
                ApplyIo::Uring => s.spawn(move || super::ringwriter::work(&rx, &shared, ring_flags)),
            };
        }
        drop(job_rx);
        // An uncompressed blob *is* the tar: its digest is the diff ID.
        let (mut hash, hasher) = match compression {
            Compression::None => (Hash::None, None),
            _ if opts.hash_thread => {
                let (tx, rx) = mpsc::channel::<Arc<Chunk>>();
                let h = s.spawn(move || {
                    let mut h = Hasher::new();
                    let mut n = 0u64;
                    for c in rx {
                        h.update(&c);
                        n += c.len() as u64;
                    }
                    (h.finish(), n)
                });
                (Hash::Thread(tx), Some(h))
            }
            _ => (Hash::Inline(Hasher::new(), 0), None),
        };
        // With sync, a flusher thread runs syncfs whenever enough data has
        // been handed out, so the final syncfs finds little left to do.
        let flusher = if let Some(fd) = flush_fd {
            let (tx, rx) = mpsc::channel::<()>();
            s.spawn(move || {
                while rx.recv().is_ok() {
                    while rx.try_recv().is_ok() {}
                    // Errors surface in the final syncfs (see syncfs(2)).
                    let _ = crate::sys::fs::syncfs(fd.as_fd());
                }
            });
            Some(tx)
        } else {
            None
        };
        let driver = {
            let mut dispatch = Dispatch::new(job_tx, shared);
            dispatch.flusher = flusher;
            let applier = Applier::new(root, whiteouts, true, DIR_CACHE);
            s.spawn(move || drive(TarStream::new(Channel(chunk_rx)), applier, dispatch))
        };
        pump(&mut decoder, &pool_rx, &pool_tx, &chunk_tx, &mut hash);
        drop(chunk_tx);
        let extracted = driver.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let plain = match hash {
            Hash::None => None,
            Hash::Inline(h, n) => Some((h.finish(), n)),
            Hash::Thread(tx) => {
                drop(tx);
                hasher.map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            }
        };
        (extracted, plain)
    });
    let (content_size, _) = extracted?;
    drop(decoder);
    let (compressed, compressed_size) = compressed.finish().map_err(ApplyError::Read)?;
    let (diff_id, size) = plain.unwrap_or_else(|| (compressed.clone(), compressed_size));
    Ok(ApplyOutcome { diff_id: DiffId(diff_id), compressed, compressed_size, size, content_size, compression })
}

/// Where the uncompressed stream is hashed.
enum Hash {
    /// Not at all: it is the blob, hashed as read.
    None,
    Inline(Hasher, u64),
    Thread(Sender<Arc<Chunk>>),
}

/// Decompresses into pooled chunks and sends them to the driver until the
/// stream ends, reading fails (the error is sent on) or the driver is gone.
fn pump(
    decoder: &mut impl Read,
    pool_rx: &Receiver<Vec<u8>>,
    pool_tx: &SyncSender<Vec<u8>>,
    out: &Sender<io::Result<Arc<Chunk>>>,
    hash: &mut Hash,
) {
    loop {
        let Ok(mut buf) = pool_rx.recv() else { return };
        let (mut n, mut end, mut error) = (0, false, None);
        while n < buf.len() {
            match decoder.read(&mut buf[n..]) {
                Ok(0) => {
                    end = true;
                    break;
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if n > 0 {
            let chunk = Arc::new(Chunk::new(buf, n, Some(pool_tx.clone())));
            match hash {
                Hash::None => {}
                Hash::Inline(h, count) => {
                    h.update(&chunk);
                    *count += n as u64;
                }
                Hash::Thread(tx) => {
                    let _ = tx.send(chunk.clone());
                }
            }
            if out.send(Ok(chunk)).is_err() {
                return;
            }
        } else {
            let _ = pool_tx.try_send(buf);
        }
        if let Some(e) = error {
            let _ = out.send(Err(e));
            return;
        }
        if end {
            return;
        }
    }
}

/// The driver's end of the chunk channel; a closed channel is the end of
/// the stream.
struct Channel(Receiver<io::Result<Arc<Chunk>>>);

impl Chunks for Channel {
    fn next_chunk(&mut self) -> io::Result<Option<Arc<Chunk>>> {
        self.0.recv().ok().transpose()
    }
}

/// Runs every entry through `applier`, waits for the workers, sets
/// directory times and reads the stream to its end. Returns the bytes of
/// regular-file content and of the stream.
fn drive<C: Chunks>(
    mut stream: TarStream<C>,
    mut applier: Applier,
    mut dispatch: Dispatch,
) -> Result<(u64, u64), ApplyError> {
    let result = (|| {
        let mut content = 0u64;
        while let Some(mut entry) = stream.next_entry().map_err(ApplyError::Read)? {
            dispatch.check()?;
            if entry.header().entry_type().is_file() {
                content += entry.size;
            }
            applier.entry(&mut entry, &mut Parallel { stream: &mut stream, dispatch: &mut dispatch })?;
        }
        dispatch.flush()?;
        applier.finish()?;
        let total = stream.drain().map_err(ApplyError::Read)?;
        Ok((content, total))
    })();
    if result.is_err() {
        // Queued jobs are dropped, not run.
        dispatch.shared.failed.store(true, Ordering::Relaxed);
    }
    result
}

/// One regular file for a worker.
pub(super) struct Job {
    pub file: NewFile,
    pub data: Data,
}

pub(super) enum Data {
    Pieces(Vec<Piece>),
    /// A large file, its pieces sent as the driver reads them.
    Stream(Receiver<Piece>),
}

/// What the driver and the workers share.
#[derive(Default)]
pub(super) struct Shared {
    /// Jobs handed out and not yet finished.
    pending: Mutex<usize>,
    idle: Condvar,
    pub failed: AtomicBool,
    /// The first worker error.
    pub error: Mutex<Option<ApplyError>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn work(rx: &Mutex<Receiver<Job>>, shared: &Shared) {
    loop {
        let job = lock(rx).recv();
        let Ok(job) = job else { return };
        if !shared.failed.load(Ordering::Relaxed) {
            if let Err(e) = write(job) {
                lock(&shared.error).get_or_insert(e);
                shared.failed.store(true, Ordering::Relaxed);
            }
        }
        finish_job(shared);
    }
}

/// Counts one job handed out as done, waking the driver when none is left.
pub(super) fn finish_job(shared: &Shared) {
    let mut pending = lock(&shared.pending);
    *pending -= 1;
    if *pending == 0 {
        shared.idle.notify_all();
    }
}

pub(super) fn write(job: Job) -> Result<(), ApplyError> {
    let f = &job.file;
    let mut file = std::fs::File::from(create_file_mode(f.parent.as_fd(), &f.name, f.attrs.mode, &f.raw)?);
    let err = |e| super::entry::at(&f.raw, "write data")(e);
    match job.data {
        Data::Pieces(pieces) => {
            for p in pieces {
                file.write_all(&p).map_err(err)?;
            }
        }
        Data::Stream(rx) => {
            for p in rx {
                file.write_all(&p).map_err(err)?;
            }
        }
    }
    fd_attrs_created(file.as_fd(), &f.attrs, &f.raw)
}

/// Writes `f` on the driver thread as its data streams in.
fn write_inline<C: Chunks>(stream: &mut TarStream<C>, f: &NewFile) -> Result<(), ApplyError> {
    let mut file = std::fs::File::from(create_file_mode(f.parent.as_fd(), &f.name, f.attrs.mode, &f.raw)?);
    let mut failed = None;
    stream
        .data(|p| {
            if failed.is_none() {
                failed = file.write_all(&p).err();
            }
        })
        .map_err(ApplyError::Read)?;
    if let Some(e) = failed {
        return Err(super::entry::at(&f.raw, "write data")(e));
    }
    fd_attrs_created(file.as_fd(), &f.attrs, &f.raw)
}

/// The driver's side of the workers: hands out jobs and keeps what is
/// needed to order other operations after them.
struct Dispatch {
    tx: SyncSender<Job>,
    shared: Arc<Shared>,
    /// Paths of files handed out since the last flush.
    files: HashSet<Vec<u8>>,
    /// Every directory above those files (the root is `""`).
    dirs: HashSet<Vec<u8>>,
    /// Where to ask for background writeback, and bytes handed out since.
    flusher: Option<Sender<()>>,
    unflushed: u64,
}

impl Dispatch {
    fn new(tx: SyncSender<Job>, shared: Arc<Shared>) -> Dispatch {
        Dispatch { tx, shared, files: HashSet::new(), dirs: HashSet::new(), flusher: None, unflushed: 0 }
    }

    /// The first worker error, if any.
    fn check(&self) -> Result<(), ApplyError> {
        if self.shared.failed.load(Ordering::Relaxed) {
            if let Some(e) = lock(&self.shared.error).take() {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Waits until every job handed out is done.
    fn flush(&mut self) -> Result<(), ApplyError> {
        let mut pending = lock(&self.shared.pending);
        while *pending > 0 {
            pending = self.shared.idle.wait(pending).unwrap_or_else(PoisonError::into_inner);
        }
        drop(pending);
        self.files.clear();
        self.dirs.clear();
        self.check()
    }

    fn conflicts(&self, op: Op<'_>) -> bool {
        if self.files.is_empty() {
            return false;
        }
        match op {
            Op::Dir(p) => self.files.contains(p),
            Op::Replace(p) => self.files.contains(p) || self.dirs.contains(p),
            Op::Resolve(d) => {
                d.iter().enumerate().any(|(i, b)| *b == b'/' && self.files.contains(&d[..i])) || self.files.contains(d)
            }
            Op::All => true,
        }
    }

    /// Notes a file handed out at `path`, and the directories above it.
    fn record(&mut self, path: &[u8]) {
        let mut end = path.len();
        loop {
            let parent = &path[..path[..end].iter().rposition(|b| *b == b'/').unwrap_or(0)];
            // Its ancestors are recorded along with it.
            if self.dirs.contains(parent) {
                break;
            }
            self.dirs.insert(parent.to_vec());
            if parent.is_empty() {
                break;
            }
            end = parent.len();
        }
        self.files.insert(path.to_vec());
    }
}

/// [`Files`] for the parallel path: the stream to take data from and the
/// workers to give it to.
struct Parallel<'a, C> {
    stream: &'a mut TarStream<C>,
    dispatch: &'a mut Dispatch,
}

impl<C: Chunks> Files<Parsed> for Parallel<'_, C> {
    fn order(&mut self, op: Op<'_>) -> Result<(), ApplyError> {
        if self.dispatch.conflicts(op) {
            self.dispatch.flush()?;
        }
        Ok(())
    }

    fn file(&mut self, entry: &mut Parsed, file: NewFile) -> Result<(), ApplyError> {
        if entry.header().entry_type() == tar::EntryType::GNUSparse {
            // The sparse map is not read: refuse rather than write the
            // packed data as the file (the sequential twin expands it).
            return Err(ApplyError::UnsupportedType { path: super::entry::lossy(&file.raw), kind: 'S' });
        }
        let d = &mut *self.dispatch;
        if file.aliased {
            // Written here, in order: its real path is unknown.
            d.flush()?;
            return write_inline(self.stream, &file);
        }
        if d.files.contains(&file.path) || d.dirs.contains(&file.path) {
            d.flush()?;
        }
        d.record(&file.path);
        *lock(&d.shared.pending) += 1;
        d.unflushed += entry.size;
        if d.unflushed >= WRITEBACK_EVERY {
            d.unflushed = 0;
            if let Some(f) = &d.flusher {
                let _ = f.send(());
            }
        }
        let gone = || ApplyError::Read(io::Error::other("layer apply workers exited"));
        if entry.size <= SMALL_FILE {
            let mut pieces = Vec::with_capacity(2);
            let read = self.stream.data(|p| pieces.push(p));
            d.tx.send(Job { file, data: Data::Pieces(pieces) }).map_err(|_| gone())?;
            read.map_err(ApplyError::Read)
        } else {
            let (tx, rx) = mpsc::channel();
            d.tx.send(Job { file, data: Data::Stream(rx) }).map_err(|_| gone())?;
            // A worker that failed drops its receiver; its error is
            // reported by the next check.
            self.stream
                .data(|p| {
                    let _ = tx.send(p);
                })
                .map_err(ApplyError::Read)
        }
    }
}
