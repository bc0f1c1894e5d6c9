//! Batched file I/O for tree walks and tree writes, with two engines behind
//! one interface: io_uring ([`IoEngineKind::Uring`]) and its sync twin of
//! plain syscalls ([`IoEngineKind::Sync`]).
//!
//! Callers hand over a whole batch — every file of a directory level to
//! stat, every regular file of a layer to read, every file to create — and
//! get one result per item, in item order. The uring engine keeps many of
//! them in flight (open → statx → read… → close chains, 128 files at a
//! time); the sync twin does the same work one syscall at a time. Both
//! produce the same results; `differential.rs` checks that they do.
//!
//! ```text
//!  hash_tree / tree_usage / apply        (tree.rs: walks and plans)
//!        │ batches of (Dir, name)
//!  IoEngine ──► Backend::Uring(RingIo)     (ring.rs: per-file state machines)
//!        │            │ Op + typed Tag
//!        │        sys::uring::Ring       (slab, parking, retries; the unsafe)
//!        └──► Backend::Sync(SyncIo)      (sync.rs: sys::fs, one call at a time)
//! ```
//!
//! **Why an enum, not a trait.** The set of engines is closed (two), chosen
//! at run time, and the batch calls take generic callbacks (`impl FnMut`),
//! which a trait object could not. An enum-dispatched [`IoEngine`] keeps one
//! concrete type for callers to store, no generics leaking into the walkers,
//! and a `match` per *batch* (not per file) costs nothing.
//!
//! **Selection.** [`IoEngine::new`] reads `STRATA_IO` (`sync` or `uring`;
//! unset means uring when available). If the ring cannot be set up — io_uring
//! disabled by `kernel.io_uring_disabled`, `EPERM`/`ENOSYS` from setup, or
//! an opcode missing from the kernel's probe — it falls back to the sync twin
//! and keeps the reason ([`IoEngine::sync_reason`]) for `strata info` and
//! logs; nothing is printed.
//!
//! **One owner.** An [`IoEngine`] owns its ring and is driven through
//! `&mut self`; it is `Send` but not shared. Parallel walkers make one
//! engine per thread.
//!
//! **What the ring does not do.** io_uring has no `fchown`, `fchmod`,
//! `utimensat`, `mknodat`, `symlinkat`, `linkat`, `setxattr` or `FICLONE`
//! opcodes worth using (the ones that exist run in io-wq workers anyway).
//! Tree writes ([`IoEngine::apply`]) run those synchronously on the owner
//! thread, in conflict-free groups around the ring's batched writes. A
//! worker pool beside the ring is the planned alternative; it has not been
//! measured against the owner-thread path yet.
//!
//! **Creation is not faster.** On tmpfs and XFS, `OPENAT` with `O_CREAT`
//! goes to io-wq workers and is 20–40% slower than plain syscalls; the batched
//! write path exists so the two engines stay comparable, and callers that
//! mostly create files may prefer [`IoEngine::sync`].

pub mod blob;
pub mod du;
mod ring;
mod sync;
mod tree;
pub mod treehash;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;

pub use crate::sys::uring::RingError;
pub use du::Usage;
pub use tree::{hash_tree, tree_usage, TreeOp};

use crate::sys::uring::SharedFd;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which engine runs the batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoEngineKind {
    /// Plain syscalls, one at a time.
    Sync,
    /// io_uring, many ops in flight.
    Uring,
}

/// Why an engine runs the sync twin.
#[derive(Debug)]
pub enum SyncReason {
    /// Asked for by [`IoEngine::sync`] or [`IoEngine::with_kind`].
    Requested,
    /// `STRATA_IO=sync` in the environment.
    Environment,
    /// io_uring is unavailable on this kernel or disabled.
    Unavailable(RingError),
}

impl std::fmt::Display for SyncReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncReason::Requested => f.write_str("requested"),
            SyncReason::Environment => f.write_str("STRATA_IO=sync"),
            SyncReason::Unavailable(e) => write!(f, "{e}"),
        }
    }
}

/// Failures of batched I/O. Each names the entry involved; one item's
/// failure never stops the rest of its batch.
#[derive(Debug, thiserror::Error)]
pub enum UringError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("{0}: file name contains a NUL byte")]
    NulInName(PathBuf),
    #[error("{0}: not a regular file")]
    NotAFile(PathBuf),
    #[error("{0}: file shrank while being read")]
    Shrank(PathBuf),
    #[error("write {0}: no progress (zero-length write)")]
    WriteZero(PathBuf),
    /// The ring itself failed (`io_uring_enter`); the batch is abandoned.
    #[error(transparent)]
    Ring(#[from] RingError),
}

impl UringError {
    fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> UringError {
        UringError::Io { op, path: path.into(), source: source.into() }
    }

    /// The OS error number, if the failure was a syscall's.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            UringError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// A directory opened for `*at` calls; cheap to clone, shared by every op
/// of a batch that names an entry in it.
#[derive(Debug, Clone)]
pub struct Dir {
    fd: SharedFd,
    /// For error messages only; never resolved again.
    path: Arc<PathBuf>,
}

impl Dir {
    /// `open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)`.
    pub fn open(path: &Path) -> Result<Dir, UringError> {
        let fd = crate::sys::fs::open_dir(path).map_err(|e| UringError::io("open", path, e))?;
        Ok(Dir { fd: Arc::new(fd), path: Arc::new(path.to_owned()) })
    }

    /// The child directory `name`, never through a symlink.
    pub fn open_at(&self, name: &[u8]) -> Result<Dir, UringError> {
        let path = self.child_path(name);
        let fd = crate::sys::fs::open_dir_at(self.fd.as_fd(), name).map_err(|e| UringError::io("openat", &path, e))?;
        Ok(Dir { fd: Arc::new(fd), path: Arc::new(path) })
    }

    /// Wraps an already open directory fd; `path` is used in errors only.
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir { fd: Arc::new(fd), path: Arc::new(path) }
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The path the directory was opened as.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`, for error messages.
    pub fn child_path(&self, name: &[u8]) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        self.path.join(std::ffi::OsStr::from_bytes(name))
    }
}

/// One entry of a batch: a name (no `/`) in a directory.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub dir: &'a Dir,
    pub name: &'a [u8],
}

/// What kind of object an entry is.
pub use crate::sys::fs::Kind;

/// The `statx(2)` fields strata uses (`STATX_BASIC_STATS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    pub nlink: u32,
    pub ino: u64,
    /// Device (major, minor) of the filesystem.
    pub dev: (u32, u32),
    pub mtime: (i64, u32),
}

/// Builds a [`Stat`] from a `struct statx` (libc's or rustix's: the field
/// names are the kernel's).
macro_rules! stat_from_statx {
    ($s:expr) => {{
        let s = $s;
        let mode = u32::from(s.stx_mode);
        $crate::uring::Stat {
            kind: $crate::uring::kind_of(mode),
            mode: mode & 0o7777,
            uid: s.stx_uid,
            gid: s.stx_gid,
            size: s.stx_size,
            blocks: s.stx_blocks,
            nlink: s.stx_nlink,
            ino: s.stx_ino,
            dev: (s.stx_dev_major, s.stx_dev_minor),
            mtime: (s.stx_mtime.tv_sec, s.stx_mtime.tv_nsec),
        }
    }};
}
pub(crate) use stat_from_statx;

fn kind_of(mode: u32) -> Kind {
    Kind::from_mode(mode)
}

/// A piece of a file delivered by [`IoEngine::read_files_with`]: `data` is
/// the file's bytes at `offset`; `eof` marks the file's last piece (an
/// empty file has exactly one, empty).
#[derive(Debug)]
pub struct Chunk<'a> {
    pub offset: u64,
    pub data: &'a [u8],
    pub eof: bool,
}

/// A file for [`IoEngine::write_files`]: created with `O_EXCL` and `mode`
/// (minus the umask, as `open(2)` does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub name: Vec<u8>,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// The outcome of one [`NewFile`]: the file comes back (with its data
/// buffer) whether or not the write succeeded.
#[derive(Debug)]
pub struct Written {
    pub file: NewFile,
    pub result: Result<(), UringError>,
}

/// One file's data segments to copy from `src` to the same offsets in
/// `dst` (the copy engine's read/write path). `path` names it in errors.
#[derive(Debug, Clone)]
pub struct RangeCopy {
    pub path: PathBuf,
    pub src: SharedFd,
    pub dst: SharedFd,
    /// `[start, end)` byte ranges.
    pub segments: Vec<(u64, u64)>,
}

/// A file the caller opened (and checked) itself, for
/// [`IoEngine::read_fds_with`]; `path` names it in errors.
#[derive(Debug, Clone)]
pub struct FdRead {
    pub fd: SharedFd,
    pub path: PathBuf,
}

/// A write of `data` at `offset` into the file `name` in `dir`, created
/// first if `create` holds its mode. The unit both engines' write paths
/// share.
#[derive(Debug)]
pub(crate) struct WriteJob {
    pub dir: Dir,
    pub name: Vec<u8>,
    pub create: Option<u32>,
    pub offset: u64,
    pub data: Vec<u8>,
}

/// The first read of a file asks for this much: most files of a layer fit,
/// and a short read ends the file without a stat.
pub const FIRST_READ: usize = 64 << 10;

/// Later reads of a bigger file ask for this much each.
pub const CHUNK: usize = 1 << 20;

/// Files (or copies) in flight at once in the uring engine.
const DEPTH: usize = 128;

/// Submission queue size. Batches of 64 and 256 performed alike on the
/// development machine.
const RING_ENTRIES: u32 = 256;

enum Backend {
    Sync(sync::SyncIo),
    // Boxed: the ring state is large and lives as long as the engine.
    Uring(Box<ring::RingIo>),
}

/// The batched I/O engine: one of the two backends, chosen at
/// construction.
pub struct IoEngine {
    backend: Backend,
    reason: Option<SyncReason>,
}

impl std::fmt::Debug for IoEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoEngine").field("kind", &self.kind()).field("sync_reason", &self.reason).finish()
    }
}

impl IoEngine {
    /// The engine `STRATA_IO` asks for (`sync` or `uring`), io_uring when
    /// unset; falls back to the sync twin, keeping the reason, when the
    /// ring cannot be set up.
    pub fn new() -> IoEngine {
        match std::env::var("STRATA_IO").as_deref() {
            Ok("sync") => {
                IoEngine { backend: Backend::Sync(sync::SyncIo::new()), reason: Some(SyncReason::Environment) }
            }
            _ => match ring::RingIo::new(RING_ENTRIES) {
                Ok(r) => IoEngine { backend: Backend::Uring(Box::new(r)), reason: None },
                Err(e) => {
                    IoEngine { backend: Backend::Sync(sync::SyncIo::new()), reason: Some(SyncReason::Unavailable(e)) }
                }
            },
        }
    }

    /// The sync twin.
    pub fn sync() -> IoEngine {
        IoEngine { backend: Backend::Sync(sync::SyncIo::new()), reason: Some(SyncReason::Requested) }
    }

    /// Exactly the engine asked for: no fallback.
    pub fn with_kind(kind: IoEngineKind) -> Result<IoEngine, RingError> {
        match kind {
            IoEngineKind::Sync => Ok(IoEngine::sync()),
            IoEngineKind::Uring => IoEngine::uring_with_entries(RING_ENTRIES),
        }
    }

    /// An io_uring engine with a submission queue of `entries` (tests use
    /// tiny rings to exercise parking).
    pub fn uring_with_entries(entries: u32) -> Result<IoEngine, RingError> {
        Ok(IoEngine { backend: Backend::Uring(Box::new(ring::RingIo::new(entries)?)), reason: None })
    }

    pub fn kind(&self) -> IoEngineKind {
        match self.backend {
            Backend::Sync(_) => IoEngineKind::Sync,
            Backend::Uring(_) => IoEngineKind::Uring,
        }
    }

    /// Why this engine is the sync twin (`None` for io_uring).
    pub fn sync_reason(&self) -> Option<&SyncReason> {
        self.reason.as_ref()
    }

    /// `statx(dir, name, AT_SYMLINK_NOFOLLOW)` of every item.
    pub fn statx(&mut self, items: &[At<'_>]) -> Vec<Result<Stat, UringError>> {
        match &mut self.backend {
            Backend::Sync(s) => s.statx(items),
            Backend::Uring(r) => r.statx(items),
        }
    }

    /// Reads every item (a regular file, not followed if a symlink) and
    /// passes its contents to `f(index, piece)` in pieces — the first up to
    /// [`FIRST_READ`] bytes, the rest up to [`CHUNK`] — in file order; each
    /// item ends with one `eof` piece (possibly empty) or one error. Pieces
    /// of different files interleave. The end of a file is the first short
    /// read, so no stat is needed. A fifo would block the open: callers
    /// pass names they know to be regular files.
    pub fn read_files_with(&mut self, items: &[At<'_>], f: impl FnMut(usize, Result<Chunk<'_>, UringError>)) {
        match &mut self.backend {
            Backend::Sync(s) => s.read_files_with(items, f),
            Backend::Uring(r) => r.read_files_with(items, f),
        }
    }

    /// [`read_files_with`](Self::read_files_with) on descriptors the
    /// caller has already opened and checked (say, `O_PATH`, an inode
    /// check and a reopen, where a hostile tree could swap a FIFO or a
    /// device in under a name): the same pieces and end-of-file rule,
    /// from offset 0; nothing is closed.
    pub fn read_fds_with(&mut self, items: &[FdRead], f: impl FnMut(usize, Result<Chunk<'_>, UringError>)) {
        match &mut self.backend {
            Backend::Sync(s) => s.read_fds_with(items, f),
            Backend::Uring(r) => r.read_fds_with(items, f),
        }
    }

    /// The whole contents of each named file in `dir`.
    pub fn read_files(&mut self, dir: &Dir, names: &[&[u8]]) -> Vec<Result<Vec<u8>, UringError>> {
        let items: Vec<At<'_>> = names.iter().map(|name| At { dir, name }).collect();
        let mut out: Vec<Result<Vec<u8>, UringError>> = names.iter().map(|_| Ok(Vec::new())).collect();
        self.read_files_with(&items, |i, piece| match piece {
            Ok(chunk) => {
                if let Ok(v) = &mut out[i] {
                    v.extend_from_slice(chunk.data);
                }
            }
            Err(e) => out[i] = Err(e),
        });
        out
    }

    /// Creates each file in `dir` (`O_CREAT | O_EXCL`, never through a
    /// symlink) and writes its data.
    pub fn write_files(&mut self, dir: &Dir, files: Vec<NewFile>) -> Vec<Written> {
        let mut kept = Vec::with_capacity(files.len());
        let jobs = files
            .into_iter()
            .map(|f| {
                kept.push((f.name.clone(), f.mode));
                WriteJob { dir: dir.clone(), name: f.name, create: Some(f.mode), offset: 0, data: f.data }
            })
            .collect();
        self.write(jobs)
            .into_iter()
            .zip(kept)
            .map(|((data, result), (name, mode))| Written { file: NewFile { name, mode, data }, result })
            .collect()
    }

    /// Runs write jobs; each job's buffer comes back with its result.
    pub(crate) fn write(&mut self, jobs: Vec<WriteJob>) -> Vec<(Vec<u8>, Result<(), UringError>)> {
        match &mut self.backend {
            Backend::Sync(s) => s.write(jobs),
            Backend::Uring(r) => r.write(jobs),
        }
    }

    /// Copies each job's segments from `src` to `dst` by reading and
    /// writing (many files in flight with io_uring); returns bytes copied.
    pub fn copy_ranges(&mut self, jobs: &[RangeCopy]) -> Vec<Result<u64, UringError>> {
        match &mut self.backend {
            Backend::Sync(s) => s.copy_ranges(jobs),
            Backend::Uring(r) => r.copy_ranges(jobs),
        }
    }

    /// Applies tree operations under `root` in order (see [`TreeOp`]).
    pub fn apply(&mut self, root: &Dir, ops: Vec<TreeOp>) -> Result<(), UringError> {
        tree::apply(self, root, ops)
    }
}

impl Default for IoEngine {
    fn default() -> IoEngine {
        IoEngine::new()
    }
}
