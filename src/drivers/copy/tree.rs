//! The tree copy engine: a faithful copy of a directory tree, sharing data
//! blocks with the source where the filesystem allows.
//!
//! For each regular file the engine tries, in order:
//!
//! 1. `FICLONE` — the copy shares the source's extents (XFS with
//!    `reflink=1`, btrfs); holes come along for free.
//! 2. `copy_file_range(2)` over the source's data segments — the kernel
//!    moves the bytes (and on XFS/btrfs may remap extents itself).
//! 3. `pread`/`pwrite` over the data segments — the simple twin.
//!
//! Paths 2 and 3 walk `SEEK_DATA`/`SEEK_HOLE` and size the file with
//! `ftruncate`, so holes stay holes. The first time a fast path fails with
//! an errno that means "this filesystem cannot" (`EOPNOTSUPP`, `EXDEV`,
//! `EINVAL`, `ENOSYS`, `ENOTTY`), the engine remembers it and goes
//! straight to the next path for every later file of the tree.
//! [`Strategy`] picks the first path to try; the differential test copies
//! one randomized tree with each and compares the results.
//!
//! What is preserved: file type, content, holes, permission bits including
//! setuid/setgid/sticky, numeric owner, every extended attribute the caller
//! can read (`user.*`, `trusted.*`, `security.*`, ACLs), access and
//! modification times with nanoseconds, symlink targets byte for byte,
//! hardlinks within the tree, device numbers of device nodes, fifos and
//! sockets. Source files are opened with `O_NOATIME` where permitted, so a
//! copy does not touch the source's access times.
//!
//! Ordering matters, per inode: data, then `chown` (which clears setuid,
//! setgid and `security.capability`), then xattrs, then `chmod`, then
//! times; a directory's times are set after its contents are written,
//! since every entry created in it bumps its mtime.
//!
//! **Architecture invariant:** the engine knows trees, not snapshots. It
//! never follows a symlink, never crosses into a path outside `dst`, and
//! creates `dst` itself so it can never merge into existing content.

use crate::sys;
use crate::sys::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, CWD};
use crate::sys::Errno;
use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Which data path the engine tries first for regular files; the later
/// ones remain fallbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `FICLONE`, then `copy_file_range`, then read/write (the default).
    Reflink,
    /// `copy_file_range`, then read/write.
    CopyRange,
    /// Only read/write: the slow twin every fast path is checked against.
    ReadWrite,
}

/// What a tree copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub dirs: u64,
    /// Regular files copied (not counting extra hardlinks).
    pub files: u64,
    pub symlinks: u64,
    /// Device nodes, fifos and sockets.
    pub specials: u64,
    /// Entries made with `link(2)` to an inode already copied.
    pub hardlinks: u64,
    /// Bytes of regular-file content: data segments for copied files (holes
    /// excluded), the full size for cloned ones.
    pub bytes: u64,
    /// Files whose data was cloned with `FICLONE`.
    pub reflinked: u64,
    /// Files whose data went through `copy_file_range`.
    pub range_copied: u64,
    /// Files whose data went through read/write.
    pub read_written: u64,
    /// Why `FICLONE` was given up for this tree, if it was.
    pub reflink_unsupported: Option<Errno>,
    /// Why `copy_file_range` was given up for this tree, if it was.
    pub range_unsupported: Option<Errno>,
}

/// Failures of a tree copy.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("copy {path}: {op}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("copy {0}: destination already exists")]
    DestinationExists(PathBuf),
}

impl CopyError {
    /// The path involved.
    pub fn path(&self) -> &Path {
        match self {
            CopyError::Io { path, .. } | CopyError::DestinationExists(path) => path,
        }
    }
}

/// Copies the tree at `src` (a directory or any single entry) to `dst`,
/// which must not exist.
///
/// Regular files, symlinks and special files are spread over the cores
/// ([`super::parallel`]); [`copy_tree_sequential`] is the one-thread twin
/// it is checked against.
pub fn copy_tree(src: &Path, dst: &Path, strategy: Strategy) -> Result<CopyStats, CopyError> {
    super::parallel::copy_tree_parallel(src, dst, strategy, super::parallel::default_threads())
}

/// [`copy_tree`] on one thread, one entry after the other in directory
/// order: the simple twin of the parallel copy.
pub fn copy_tree_sequential(src: &Path, dst: &Path, strategy: Strategy) -> Result<CopyStats, CopyError> {
    if dst.symlink_metadata().is_ok() {
        return Err(CopyError::DestinationExists(dst.to_owned()));
    }
    let mut copier = Copier::new(strategy);
    let md = src.symlink_metadata().map_err(io_err("lstat", src))?;
    copier.entry(src, dst, &md)?;
    Ok(copier.stats)
}

pub(super) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CopyError + 'a {
    move |source| CopyError::Io { op, path: path.to_owned(), source }
}

fn errno_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> CopyError + 'a {
    move |e| CopyError::Io { op, path: path.to_owned(), source: e.into() }
}

/// Errnos that mean "this filesystem (pair) cannot do that" rather than
/// "this file failed": worth a fallback, and worth remembering.
pub(super) fn is_unsupported(e: Errno) -> bool {
    matches!(e, Errno::OPNOTSUPP | Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::NOTTY)
}

/// Read/write buffer size: large enough to amortise syscalls, small enough
/// to stay in cache.
const BUF_SIZE: usize = 256 << 10;

pub(super) struct Copier {
    strategy: Strategy,
    /// Source (dev, ino) of multiply-linked inodes → their first copy.
    links: HashMap<(u64, u64), PathBuf>,
    pub(super) stats: CopyStats,
    buf: Vec<u8>,
    /// Cleared after the first `EPERM` from `O_NOATIME` (source files the
    /// caller does not own, without CAP_FOWNER).
    noatime: bool,
}

impl Copier {
    pub(super) fn new(strategy: Strategy) -> Copier {
        Copier { strategy, links: HashMap::new(), stats: CopyStats::default(), buf: Vec::new(), noatime: true }
    }

    fn entry(&mut self, src: &Path, dst: &Path, md: &Metadata) -> Result<(), CopyError> {
        let ft = md.file_type();
        if !ft.is_dir() && md.nlink() > 1 {
            if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                std::fs::hard_link(first, dst).map_err(io_err("link", dst))?;
                self.stats.hardlinks += 1;
                return Ok(());
            }
            self.links.insert((md.dev(), md.ino()), dst.to_owned());
        }
        if ft.is_dir() {
            self.dir(src, dst, md)
        } else if ft.is_file() {
            self.file(src, dst, md)
        } else {
            self.node(src, dst, md)
        }
    }

    /// A symlink, device node, fifo or socket, with its attributes.
    pub(super) fn node(&mut self, src: &Path, dst: &Path, md: &Metadata) -> Result<(), CopyError> {
        if md.file_type().is_symlink() {
            let target = std::fs::read_link(src).map_err(io_err("readlink", src))?;
            std::os::unix::fs::symlink(&target, dst).map_err(io_err("symlink", dst))?;
            self.stats.symlinks += 1;
            self.attributes(src, dst, md, false)
        } else {
            // Device nodes, fifos, sockets: mknod(2) makes them all.
            let kind = FileType::from_raw_mode(md.mode());
            sys::fs::mknodat(CWD, dst, kind, Mode::from_raw_mode(0o600), md.rdev()).map_err(errno_err("mknod", dst))?;
            self.stats.specials += 1;
            self.attributes(src, dst, md, true)
        }
    }

    fn dir(&mut self, src: &Path, dst: &Path, md: &Metadata) -> Result<(), CopyError> {
        // Owner-writable until its contents are in; the real mode comes last.
        std::fs::DirBuilder::new().mode(0o700).create(dst).map_err(io_err("mkdir", dst))?;
        self.stats.dirs += 1;
        let entries = std::fs::read_dir(src).map_err(io_err("readdir", src))?;
        for entry in entries {
            let entry = entry.map_err(io_err("readdir", src))?;
            let child_src = entry.path();
            let child_md = child_src.symlink_metadata().map_err(io_err("lstat", &child_src))?;
            self.entry(&child_src, &dst.join(entry.file_name()), &child_md)?;
        }
        self.attributes(src, dst, md, true)
    }

    fn file(&mut self, src: &Path, dst: &Path, md: &Metadata) -> Result<(), CopyError> {
        let input = self.open_source(src)?;
        // Created with its final permission bits (less the umask), so the
        // chmod below is usually skipped; the snapshot dir is private.
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let output = File::from(
            sys::fs::open(dst, flags, Mode::from_raw_mode(md.mode() & 0o777)).map_err(io_err("create", dst))?,
        );
        self.data(&input, &output, md.len(), dst)?;
        self.stats.files += 1;
        self.file_attributes(&input, &output, src, dst, md)
    }

    /// [`Self::attributes`] for a regular file, on its descriptors: no path
    /// lookups, and chown/chmod only when the new file differs (most files
    /// in a root-owned image already match what `open` created). Same
    /// order: owner, xattrs, mode, times.
    pub(super) fn file_attributes(
        &mut self,
        input: &File,
        output: &File,
        src: &Path,
        dst: &Path,
        md: &Metadata,
    ) -> Result<(), CopyError> {
        let st = output.metadata().map_err(io_err("fstat", dst))?;
        if (st.uid(), st.gid()) != (md.uid(), md.gid()) {
            std::os::unix::fs::fchown(output, Some(md.uid()), Some(md.gid())).map_err(io_err("fchown", dst))?;
        }
        let has_xattrs = self.xattrs_if_any(input, src, dst)?;
        // chown may have cleared setuid/setgid, and the umask may have
        // dropped bits: compare with what is there now.
        let now_mode = if has_xattrs || (st.uid(), st.gid()) != (md.uid(), md.gid()) {
            output.metadata().map_err(io_err("fstat", dst))?.mode()
        } else {
            st.mode()
        };
        if now_mode & 0o7777 != md.mode() & 0o7777 {
            output
                .set_permissions(std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(io_err("fchmod", dst))?;
        }
        set_times(output, dst, md)
    }

    /// Copies the xattrs of `src` if its open descriptor `input` has any
    /// (one `flistxattr` for the common case of none); says whether it had.
    pub(super) fn xattrs_if_any(&mut self, input: &File, src: &Path, dst: &Path) -> Result<bool, CopyError> {
        let has_xattrs = match sys::xattr::fhas_any(input) {
            Ok(any) => any,
            Err(e) if Errno::from_io_error(&e) == Some(Errno::OPNOTSUPP) => false,
            Err(e) => return Err(io_err("flistxattr", src)(e)),
        };
        if has_xattrs {
            self.copy_xattrs(src, dst)?;
        }
        Ok(has_xattrs)
    }

    pub(super) fn copy_xattrs(&mut self, src: &Path, dst: &Path) -> Result<(), CopyError> {
        let names = match sys::xattr::llist(src) {
            Ok(names) => names,
            Err(e) if Errno::from_io_error(&e) == Some(Errno::OPNOTSUPP) => Vec::new(),
            Err(e) => return Err(io_err("llistxattr", src)(e)),
        };
        for name in names {
            let value = match sys::xattr::lget(src, &name) {
                Ok(v) => v,
                // Removed since listed.
                Err(e) if Errno::from_io_error(&e) == Some(Errno::NODATA) => continue,
                Err(e) => return Err(io_err("lgetxattr", src)(e)),
            };
            sys::xattr::lset(dst, &name, &value).map_err(|e| CopyError::Io {
                op: "lsetxattr",
                path: dst.to_owned(),
                source: io::Error::new(e.kind(), format!("{}: {e}", name.to_string_lossy())),
            })?;
        }
        Ok(())
    }

    pub(super) fn open_source(&mut self, src: &Path) -> Result<File, CopyError> {
        let open = |extra: OFlags| {
            // O_NONBLOCK: a fifo swapped in for the file must not block the
            // copy (callers check the type on the descriptor).
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | extra;
            let fd = sys::fs::open(src, flags, Mode::empty());
            fd.map(File::from).map_err(io_err("open", src))
        };
        if self.noatime {
            match open(OFlags::NOATIME) {
                Err(CopyError::Io { source, .. }) if Errno::from_io_error(&source) == Some(Errno::PERM) => {
                    self.noatime = false
                }
                other => return other,
            }
        }
        open(OFlags::empty())
    }

    /// Copies `size` bytes of content from `input` to the empty `output`.
    pub(super) fn data(&mut self, input: &File, output: &File, size: u64, dst: &Path) -> Result<(), CopyError> {
        copy_data(self.strategy, &mut self.stats, &mut self.buf, input, output, size, dst)
    }

    /// Owner, xattrs, mode (unless a symlink) and times, in that order.
    pub(super) fn attributes(&mut self, src: &Path, dst: &Path, md: &Metadata, chmod: bool) -> Result<(), CopyError> {
        std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid())).map_err(io_err("lchown", dst))?;
        self.copy_xattrs(src, dst)?;
        if chmod {
            std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(io_err("chmod", dst))?;
        }
        let times = Timestamps {
            last_access: Timespec { tv_sec: md.atime(), tv_nsec: md.atime_nsec() },
            last_modification: Timespec { tv_sec: md.mtime(), tv_nsec: md.mtime_nsec() },
        };
        sys::fs::utimensat(CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(errno_err("utimensat", dst))
    }
}

/// Copies `size` bytes of content from `input` to the empty `output`:
/// FICLONE, else `copy_file_range` per data segment, else read/write from
/// the first segment not yet copied (`strategy` caps how far up it starts;
/// a kind found unsupported is recorded in `stats` and not tried again).
/// Shared by the path copier and the descriptor copier (`tree_at`).
pub(super) fn copy_data(
    strategy: Strategy,
    stats: &mut CopyStats,
    buf: &mut Vec<u8>,
    input: &File,
    output: &File,
    size: u64,
    dst: &Path,
) -> Result<(), CopyError> {
    if size == 0 {
        return Ok(());
    }
    if strategy == Strategy::Reflink && stats.reflink_unsupported.is_none() {
        match sys::clone::ficlone(output, input) {
            Ok(()) => {
                stats.reflinked += 1;
                stats.bytes += size;
                return Ok(());
            }
            Err(e) if is_unsupported(e) => stats.reflink_unsupported = Some(e),
            Err(e) => return Err(errno_err("FICLONE", dst)(e)),
        }
    }
    let segments = sys::clone::data_segments(input, size).map_err(errno_err("lseek SEEK_DATA", dst))?;
    // Size first: a trailing hole is then already in place.
    output.set_len(size).map_err(io_err("ftruncate", dst))?;
    let mut from = 0;
    if strategy != Strategy::ReadWrite && stats.range_unsupported.is_none() {
        for &(start, end) in &segments {
            match sys::clone::copy_file_range_all(input, output, start, end - start) {
                Ok(()) => from += 1,
                Err(e) if is_unsupported(e) => {
                    stats.range_unsupported = Some(e);
                    break;
                }
                Err(e) => return Err(errno_err("copy_file_range", dst)(e)),
            }
        }
        if from == segments.len() {
            stats.range_copied += 1;
            stats.bytes += segments.iter().map(|(s, e)| e - s).sum::<u64>();
            return Ok(());
        }
    }
    // The simple twin, resuming at the first segment not yet copied.
    if buf.is_empty() {
        *buf = vec![0; BUF_SIZE];
    }
    for &(start, end) in &segments[from..] {
        let mut off = start;
        while off < end {
            let want = usize::try_from(end - off).unwrap_or(usize::MAX).min(buf.len());
            let n = match input.read_at(&mut buf[..want], off) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::UnexpectedEof, "source shrank while copying");
                    return Err(io_err("read", dst)(e));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read", dst)(e)),
            };
            output.write_all_at(&buf[..n], off).map_err(io_err("write", dst))?;
            off += n as u64;
        }
        stats.bytes += end - start;
    }
    stats.read_written += 1;
    Ok(())
}

/// `md`'s access and modification times on the descriptor `output`.
pub(super) fn set_times(output: &File, dst: &Path, md: &Metadata) -> Result<(), CopyError> {
    // Nanoseconds from stat are always below 10^9.
    let nsec = |n: i64| u32::try_from(n).unwrap_or(0);
    let (atime, mtime) = ((md.atime(), nsec(md.atime_nsec())), (md.mtime(), nsec(md.mtime_nsec())));
    sys::fs::futimens(output.as_fd(), atime, mtime).map_err(io_err("futimens", dst))
}
