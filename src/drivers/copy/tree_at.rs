//! The tree copy engine on descriptors, for trees strata does not trust
//! (an image directory copied into a volume): the source is an open
//! directory, and everything below it is reached with `*at` calls on the
//! parent's descriptor — `getdents`, `statx(AT_SYMLINK_NOFOLLOW)`,
//! `openat(O_NOFOLLOW)` — so nothing in the tree can redirect the copy
//! through a symlink or a rename, inside or out of it.
//!
//! Same results as [`super::tree::copy_tree`] (type, content with holes,
//! permission bits including setuid/setgid/sticky, numeric owner, extended
//! attributes, access and modification times, symlinks as symlinks,
//! hardlinks within the tree, device numbers), with the same data paths
//! (`FICLONE`, `copy_file_range`, read/write by [`Strategy`]). Regular
//! files are opened `O_NONBLOCK | O_NOCTTY` and their type is checked on
//! the descriptor, so a FIFO swapped in for a file never blocks the copy;
//! a directory is checked to be the inode `statx` saw before it is
//! entered. Devices, FIFOs and sockets are recreated with `mknodat`, as
//! Docker's volume copy does.

use super::tree::{copy_data, io_err, CopyError, CopyStats, Strategy};
use crate::sys;
use crate::sys::fs::{AtFlags, FileType, Kind, Mode, OFlags, Statx, StatxFlags};
use crate::sys::Errno;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Copies the directory `src` (its contents and its own owner, mode,
/// xattrs and times) to a new directory `name` in `dst_dir`, which must
/// not exist.
pub fn copy_tree_at(
    src: BorrowedFd<'_>,
    dst_dir: BorrowedFd<'_>,
    name: &[u8],
    strategy: Strategy,
) -> Result<CopyStats, CopyError> {
    let top = PathBuf::from(std::ffi::OsStr::from_bytes(name));
    let st = statx_at(src, b"", AtFlags::EMPTY_PATH, &top)?;
    if Kind::from_mode(u32::from(st.stx_mode)) != Kind::Dir {
        return Err(io_err("copy", &top)(Errno::NOTDIR.into()));
    }
    match sys::fs::mkdir_at(dst_dir, name, 0o700) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(CopyError::DestinationExists(top)),
        r => r.map_err(io_err("mkdir", &top))?,
    }
    let dst = sys::fs::open_dir_at(dst_dir, name).map_err(io_err("open", &top))?;
    let mut copier = AtCopier { strategy, stats: CopyStats::default(), links: HashMap::new(), buf: Vec::new() };
    copier.stats.dirs += 1;
    copier.contents(src, dst.as_fd(), dst.as_fd(), &top, &PathBuf::new())?;
    copier.attributes(Node::Fd(dst.as_fd()), src, b"", &st, &top)?;
    Ok(copier.stats)
}

/// What attributes are set on: an open descriptor (a directory, a
/// regular file), or a name in a directory (a symlink, a special file).
#[derive(Clone, Copy)]
enum Node<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a [u8], bool),
}

struct AtCopier {
    strategy: Strategy,
    stats: CopyStats,
    /// Source (dev, ino) of multiply-linked inodes → their first copy,
    /// relative to the destination's top.
    links: HashMap<(u64, u64), PathBuf>,
    buf: Vec<u8>,
}

fn statx_at(dir: BorrowedFd<'_>, name: &[u8], flags: AtFlags, path: &Path) -> Result<Statx, CopyError> {
    sys::fs::statx(dir, name, flags | AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BASIC_STATS)
        .map_err(|e| io_err("statx", path)(e.into()))
}

impl AtCopier {
    /// Copies the entries of `src` into `dst` (`rel`: `dst` below the
    /// destination's top `top_fd`, for hardlinks; `path` for errors).
    fn contents(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        top_fd: BorrowedFd<'_>,
        path: &Path,
        rel: &Path,
    ) -> Result<(), CopyError> {
        let names = sys::fs::getdents(src).map_err(|e| io_err("getdents", path)(e.into()))?;
        for (name, _) in names {
            let child_path = path.join(std::ffi::OsStr::from_bytes(&name));
            let child_rel = rel.join(std::ffi::OsStr::from_bytes(&name));
            let st = statx_at(src, &name, AtFlags::empty(), &child_path)?;
            self.entry(src, dst, top_fd, &name, &st, &child_path, &child_rel)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        top_fd: BorrowedFd<'_>,
        name: &[u8],
        st: &Statx,
        path: &Path,
        rel: &Path,
    ) -> Result<(), CopyError> {
        let kind = Kind::from_mode(u32::from(st.stx_mode));
        let id = (u64::from(st.stx_dev_major) << 32 | u64::from(st.stx_dev_minor), st.stx_ino);
        if kind != Kind::Dir && st.stx_nlink > 1 {
            if let Some(first) = self.links.get(&id) {
                // The first copy's directory, reached without symlinks in
                // the tree this engine made.
                let parent = first.parent().unwrap_or(Path::new(""));
                let leaf = first.file_name().map(|n| n.as_bytes()).unwrap_or_default();
                let dir = sys::fs::open_dir_beneath_no_symlinks(top_fd, parent.as_os_str().as_bytes())
                    .map_err(io_err("open", path))?;
                sys::fs::link_at(dir.as_fd(), leaf, dst, name).map_err(io_err("link", path))?;
                self.stats.hardlinks += 1;
                return Ok(());
            }
            self.links.insert(id, rel.to_owned());
        }
        match kind {
            Kind::Dir => {
                let s = sys::fs::open_dir_at(src, name).map_err(io_err("open", path))?;
                same_inode(s.as_fd(), st, path)?;
                sys::fs::mkdir_at(dst, name, 0o700).map_err(io_err("mkdir", path))?;
                let d = sys::fs::open_dir_at(dst, name).map_err(io_err("open", path))?;
                self.stats.dirs += 1;
                self.contents(s.as_fd(), d.as_fd(), top_fd, path, rel)?;
                self.attributes(Node::Fd(d.as_fd()), src, name, st, path)
            }
            Kind::File => {
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
                let input =
                    sys::fs::openat(src, name, flags, Mode::empty()).map_err(|e| io_err("open", path)(e.into()))?;
                same_inode(input.as_fd(), st, path)?;
                let create = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let output = sys::fs::openat(dst, name, create, Mode::from_raw_mode(0o600))
                    .map_err(|e| io_err("create", path)(e.into()))?;
                let (input, output) = (File::from(input), File::from(output));
                self.data(&input, &output, st.stx_size, path)?;
                self.stats.files += 1;
                self.attributes(Node::Fd(output.as_fd()), src, name, st, path)
            }
            Kind::Symlink => {
                let target = sys::fs::readlink_at(src, name).map_err(io_err("readlink", path))?;
                sys::fs::symlink_at(&target, dst, name).map_err(io_err("symlink", path))?;
                self.stats.symlinks += 1;
                self.attributes(Node::At(dst, name, false), src, name, st, path)
            }
            _ => {
                let ft = FileType::from_raw_mode(u32::from(st.stx_mode));
                let dev = sys::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor);
                sys::fs::mknodat(
                    dst,
                    Path::new(std::ffi::OsStr::from_bytes(name)),
                    ft,
                    Mode::from_raw_mode(0o600),
                    dev,
                )
                .map_err(|e| io_err("mknod", path)(e.into()))?;
                self.stats.specials += 1;
                self.attributes(Node::At(dst, name, true), src, name, st, path)
            }
        }
    }

    /// Owner, xattrs, mode (not for symlinks) and times, in that order:
    /// `chown` clears setuid/setgid and `security.capability`.
    fn attributes(
        &mut self,
        node: Node<'_>,
        src_dir: BorrowedFd<'_>,
        src_name: &[u8],
        st: &Statx,
        path: &Path,
    ) -> Result<(), CopyError> {
        let mode = u32::from(st.stx_mode) & 0o7777;
        let atime = (st.stx_atime.tv_sec, st.stx_atime.tv_nsec);
        let mtime = (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec);
        let xattrs = match sys::fs::lxattrs_at(src_dir, src_name) {
            Ok(x) => x,
            Err(e) if Errno::from_io_error(&e) == Some(Errno::OPNOTSUPP) => Vec::new(),
            Err(e) => return Err(io_err("listxattr", path)(e)),
        };
        match node {
            Node::Fd(fd) => {
                sys::fs::fchown(fd, st.stx_uid, st.stx_gid).map_err(io_err("fchown", path))?;
                for (k, v) in &xattrs {
                    set_xattr(sys::fs::fsetxattr(fd, k, v), path)?;
                }
                sys::fs::fchmod(fd, mode).map_err(io_err("fchmod", path))?;
                sys::fs::futimens(fd, atime, mtime).map_err(io_err("futimens", path))
            }
            Node::At(dir, name, chmod) => {
                sys::fs::lchown_at(dir, name, st.stx_uid, st.stx_gid).map_err(io_err("lchown", path))?;
                for (k, v) in &xattrs {
                    set_xattr(sys::fs::lsetxattr_at(dir, name, k, v), path)?;
                }
                if chmod {
                    // A node this engine just made with mknodat, never a
                    // symlink.
                    sys::fs::chmod_at(dir, name, mode).map_err(io_err("chmod", path))?;
                }
                sys::fs::lutimens_at(dir, name, atime, mtime).map_err(io_err("utimensat", path))
            }
        }
    }

    /// Copies `size` bytes of content from `input` to the empty `output`.
    fn data(&mut self, input: &File, output: &File, size: u64, path: &Path) -> Result<(), CopyError> {
        copy_data(self.strategy, &mut self.stats, &mut self.buf, input, output, size, path)
    }
}

/// Whether the descriptor opened for an entry is the inode `statx` saw
/// (not something swapped in since).
fn same_inode(fd: BorrowedFd<'_>, st: &Statx, path: &Path) -> Result<(), CopyError> {
    let now = sys::fs::fstat(fd).map_err(io_err("fstat", path))?;
    if now.ino != st.stx_ino || now.kind != Kind::from_mode(u32::from(st.stx_mode)) {
        let e = io::Error::other("changed while it was being copied");
        return Err(io_err("open", path)(e));
    }
    Ok(())
}

/// An xattr the destination filesystem or the entry type cannot hold
/// (`user.*` on a symlink) is dropped, as Docker's copy does.
fn set_xattr(r: io::Result<()>, path: &Path) -> Result<(), CopyError> {
    match r {
        Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::OPNOTSUPP | Errno::PERM)) => Ok(()),
        r => r.map_err(io_err("setxattr", path)),
    }
}
