//! Directory-relative file operations: path resolution confined to a root
//! (`openat2(2)` with `RESOLVE_IN_ROOT`), the `*at` calls that create,
//! replace and inspect one directory entry without following a symlink in
//! its last component, extended attributes and timestamps.
//!
//! Everything here takes a directory fd and a single *name* (no `/`) or a
//! path resolved by the kernel under a root fd; nothing resolves a path by
//! string manipulation. That is what lets layer apply write a hostile tar
//! without escaping its target directory: `RESOLVE_IN_ROOT` makes `..` and
//! absolute symlinks resolve as if the root fd were `/` (see openat2(2)).
//! The exception is one group of rustix-shaped calls that take paths
//! (`open`, `chmod`, `mknodat`/`utimensat` on `CWD`), for the copy engine
//! and the drivers: they pass paths built from names read under their own
//! home, and ask for `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW` where a last
//! component could be a symlink.
//!
//! Every call is a thin safe wrapper over rustix; there is no `unsafe` here.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Dir, ResolveFlags, XattrFlags};
use rustix::io::Errno;
use std::io;
use std::path::Path;

/// What kind of object a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl Kind {
    /// The kind a `st_mode`/`stx_mode` value's `S_IFMT` bits name.
    pub fn from_mode(mode: u32) -> Kind {
        Kind::from_file_type(FileType::from_raw_mode(mode))
    }

    fn from_file_type(t: FileType) -> Kind {
        match t {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::CharacterDevice => Kind::CharDevice,
            FileType::BlockDevice => Kind::BlockDevice,
            FileType::Fifo => Kind::Fifo,
            _ => Kind::Socket,
        }
    }
}

/// The parts of `struct stat` strata looks at, in architecture-neutral
/// types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 07777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// `st_mtime` seconds and nanoseconds.
    pub mtime: (i64, u32),
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// Device major/minor for character and block devices.
    pub rdev: (u32, u32),
}

fn meta_of(st: &rustix::fs::Stat) -> Meta {
    Meta {
        kind: Kind::from_file_type(FileType::from_raw_mode(st.st_mode)),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: u64::try_from(st.st_size).unwrap_or(0),
        mtime: (st.st_mtime, u32::try_from(st.st_mtime_nsec).unwrap_or(0)),
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink,
        rdev: (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)),
    }
}

/// Retries a call interrupted by a signal (`EINTR`) or a concurrent rename
/// that `openat2` refuses to race with (`EAGAIN`, see openat2(2) on
/// `RESOLVE_IN_ROOT`).
fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
            r => return r.map_err(Into::into),
        }
    }
}

/// `open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)`: a directory fd to use
/// as the root or parent of `*at` calls.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    retry(|| rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()))
}

/// `openat2(root, path, O_RDONLY | O_DIRECTORY, RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS)`: opens a directory as if `root` were `/`.
///
/// Symlinks along the way are followed, but an absolute target or `..`
/// never leaves `root`. An empty `path` opens `root` itself.
pub fn open_dir_in_root(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    openat2_in_root(root, path, OFlags::RDONLY | OFlags::DIRECTORY)
}

/// `openat2(root, path, flags | O_CLOEXEC, RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS)`, with `EINTR`/`EAGAIN` retried: the one
/// in-root open the wrappers below specialise.
fn openat2_in_root(root: BorrowedFd<'_>, path: impl rustix::path::Arg + Copy, flags: OFlags) -> io::Result<OwnedFd> {
    retry(|| {
        rustix::fs::openat2(
            root,
            path,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    })
}

/// `openat2(root, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, RESOLVE_IN_ROOT
/// | RESOLVE_NO_MAGICLINKS)`: like [`open_dir_in_root`] but fails with
/// `ELOOP`/`ENOTDIR` when the last component is a symlink.
pub fn open_dir_in_root_nofollow(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    openat2_in_root(root, path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW)
}

/// `openat2(root, path, O_RDONLY | O_DIRECTORY, RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS)`: opens a directory below `root` only if no
/// component of `path` is a symlink (`ELOOP` otherwise).
///
/// A path that resolves this way names one directory for as long as none of
/// its components is removed or replaced, which is what lets layer apply
/// cache the fd by path. An empty `path` opens `root` itself.
pub fn open_dir_beneath_no_symlinks(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    retry(|| {
        rustix::fs::openat2(
            root,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        )
    })
}

/// `openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)`: a child
/// directory, never through a symlink.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    retry(|| {
        rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    })
}

/// `openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600)`:
/// creates a new regular file; fails with `EEXIST` if anything (including a
/// dangling symlink) is already there.
pub fn create_file_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    create_file_mode_at(dir, name, 0o600)
}

/// [`create_file_at`] with permission bits `mode` (less the umask).
pub fn create_file_mode_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<OwnedFd> {
    retry(|| {
        rustix::fs::openat(
            dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        )
    })
}

/// `openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NOATIME)`: opens a regular
/// file for reading without touching its atime (`O_NOATIME` needs
/// ownership or `CAP_FOWNER`; without them it is dropped).
pub fn open_file_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match retry(|| rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty())) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            retry(|| rustix::fs::openat(dir, name, flags, Mode::empty()))
        }
        r => r,
    }
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    retry(|| rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode)))
}

/// `symlinkat(target, dir, name)`.
pub fn symlink_at(target: &[u8], dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    retry(|| rustix::fs::symlinkat(target, dir, name))
}

/// `linkat(old_dir, old_name, new_dir, new_name, 0)`: a hard link to the
/// entry itself (a symlink is linked, not followed).
pub fn link_at(old_dir: BorrowedFd<'_>, old_name: &[u8], new_dir: BorrowedFd<'_>, new_name: &[u8]) -> io::Result<()> {
    retry(|| rustix::fs::linkat(old_dir, old_name, new_dir, new_name, AtFlags::empty()))
}

/// The node types `mknodat(2)` creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Char,
    Block,
    Fifo,
}

/// `mknodat(dir, name, type | mode, makedev(major, minor))`.
pub fn mknod_at(dir: BorrowedFd<'_>, name: &[u8], node: Node, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let ty = match node {
        Node::Char => FileType::CharacterDevice,
        Node::Block => FileType::BlockDevice,
        Node::Fifo => FileType::Fifo,
    };
    let dev = rustix::fs::makedev(major, minor);
    retry(|| rustix::fs::mknodat(dir, name, ty, Mode::from_raw_mode(mode), dev))
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Meta> {
    retry(|| rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)).map(|st| meta_of(&st))
}

/// `fstat(fd)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Meta> {
    retry(|| rustix::fs::fstat(fd)).map(|st| meta_of(&st))
}

/// `readlinkat(dir, name)`: a symlink's target bytes.
pub fn readlink_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<u8>> {
    retry(|| rustix::fs::readlinkat(dir, name, Vec::new())).map(|c| c.into_bytes())
}

/// `unlinkat(dir, name, 0)`: removes a non-directory (`EISDIR` for a
/// directory).
pub fn unlink_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    retry(|| rustix::fs::unlinkat(dir, name, AtFlags::empty()))
}

/// Removes `name` in `dir` and, if it is a directory, everything below it,
/// never following symlinks. Succeeds if `name` does not exist.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match retry(|| rustix::fs::unlinkat(dir, name, AtFlags::empty())) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        // unlink(2) of a directory is EISDIR on Linux (EPERM per POSIX).
        Err(e) if matches!(e.raw_os_error(), Some(libc::EISDIR) | Some(libc::EPERM)) => {}
        Err(e) => return Err(e),
    }
    let child = match open_dir_at(dir, name) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    // Collect first: deleting while reading a directory may skip entries.
    for entry in read_dir_names(child.as_fd())? {
        remove_all_at(child.as_fd(), &entry)?;
    }
    drop(child);
    match retry(|| rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r,
    }
}

/// The names in a directory (without `.` and `..`), in the order the
/// filesystem returns them.
pub fn read_dir_names(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    let mut d = Dir::read_from(dir)?;
    while let Some(entry) = d.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}

/// `fchown(fd, uid, gid)`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    let (u, g) = ids(uid, gid);
    retry(|| rustix::fs::fchown(fd, Some(u), Some(g)))
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`: `lchown`.
pub fn lchown_at(dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    let (u, g) = ids(uid, gid);
    retry(|| rustix::fs::chownat(dir, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW))
}

fn ids(uid: u32, gid: u32) -> (rustix::fs::Uid, rustix::fs::Gid) {
    (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid))
}

/// `fchmod(fd, mode)`.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    retry(|| rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)))
}

/// `fchmodat(dir, name, mode, 0)`. Follows a symlink in `name`: callers use
/// it only on nodes they just created with [`mknod_at`].
pub fn chmod_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    retry(|| rustix::fs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty()))
}

fn timestamps(atime: (i64, u32), mtime: (i64, u32)) -> Timestamps {
    let ts = |(sec, nsec): (i64, u32)| Timespec { tv_sec: sec, tv_nsec: nsec.into() };
    Timestamps { last_access: ts(atime), last_modification: ts(mtime) }
}

/// `futimens(fd, [atime, mtime])`.
pub fn futimens(fd: BorrowedFd<'_>, atime: (i64, u32), mtime: (i64, u32)) -> io::Result<()> {
    let t = timestamps(atime, mtime);
    retry(|| rustix::fs::futimens(fd, &t))
}

/// `utimensat(dir, name, [atime, mtime], AT_SYMLINK_NOFOLLOW)`.
pub fn lutimens_at(dir: BorrowedFd<'_>, name: &[u8], atime: (i64, u32), mtime: (i64, u32)) -> io::Result<()> {
    let t = timestamps(atime, mtime);
    retry(|| rustix::fs::utimensat(dir, name, &t, AtFlags::SYMLINK_NOFOLLOW))
}

/// `fsetxattr(fd, key, value, 0)`.
pub fn fsetxattr(fd: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    retry(|| rustix::fs::fsetxattr(fd, key, value, XattrFlags::empty()))
}

/// `syncfs(fd)`: writes back every dirty inode and block of the filesystem
/// holding `fd` and waits for it (see syncfs(2); since Linux 5.8 it
/// reports writeback errors seen on that filesystem since `fd` was opened).
pub fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    retry(|| rustix::fs::syncfs(fd))
}

// Path and plain-descriptor calls, shaped like rustix's: the copy engine
// (which walks trees it creates itself, by path) and the uring engine's
// sync twin (which must see exactly the errno the ring would, so these
// return `Errno` and retry nothing).

pub use rustix::fs::{
    major, makedev, minor, Advice, AtFlags, FileType, Mode, OFlags, Statx, StatxFlags, Timespec, Timestamps, CWD,
};

/// `open(path, flags | O_CLOEXEC, mode)`: a descriptor for `path`.
///
/// See open(2). `O_CLOEXEC` is always added; `EINTR` is retried.
pub fn open(path: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    retry(|| rustix::fs::open(path, flags | OFlags::CLOEXEC, mode))
}

/// `openat(dir, name, flags, mode)`.
///
/// See openat(2). Nothing is added to `flags`.
pub fn openat(dir: BorrowedFd<'_>, name: &[u8], flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(dir, name, flags, mode)
}

/// `statx(dir, name, flags, mask)`.
///
/// See statx(2).
pub fn statx(dir: BorrowedFd<'_>, name: &[u8], flags: AtFlags, mask: StatxFlags) -> Result<Statx, Errno> {
    rustix::fs::statx(dir, name, flags, mask)
}

/// `pread(fd, buf, offset)`: reads at `offset` without moving the file
/// position.
///
/// See pread(2).
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    rustix::io::pread(fd, buf, offset)
}

/// `pwrite(fd, buf, offset)`: writes at `offset` without moving the file
/// position.
///
/// See pwrite(2).
pub fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> Result<usize, Errno> {
    rustix::io::pwrite(fd, buf, offset)
}

/// `getdents64(dir)` until the end: every entry's name and `d_type`
/// (`FileType::Unknown` where the filesystem does not fill it in),
/// without `.` and `..`.
///
/// See getdents64(2). Reads through a duplicate of `dir`, from its start.
pub fn getdents(dir: BorrowedFd<'_>) -> Result<Vec<(Vec<u8>, FileType)>, Errno> {
    Ok(getdents_ino(dir)?.into_iter().map(|(name, kind, _)| (name, kind)).collect())
}

/// [`getdents`] with each entry's inode number (`d_ino`) too: walks that
/// stat every entry visit them in inode order, which on XFS and ext4 is
/// close to on-disk order (what `fts`, and so `du`, does for big
/// directories).
pub fn getdents_ino(dir: BorrowedFd<'_>) -> Result<Vec<(Vec<u8>, FileType, u64)>, Errno> {
    let mut d = Dir::read_from(dir)?;
    let mut out = Vec::new();
    while let Some(entry) = d.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push((name.to_vec(), entry.file_type(), entry.ino()));
        }
    }
    Ok(out)
}

/// `mknodat(dir, path, kind | mode, dev)`: a device node, fifo or socket.
///
/// See mknod(2).
pub fn mknodat(dir: BorrowedFd<'_>, path: &Path, kind: FileType, mode: Mode, dev: u64) -> Result<(), Errno> {
    rustix::fs::mknodat(dir, path, kind, mode, dev)
}

/// `chmod(path, mode)`. Follows a symlink in `path`.
///
/// See chmod(2).
pub fn chmod(path: &Path, mode: Mode) -> Result<(), Errno> {
    rustix::fs::chmod(path, mode)
}

/// `utimensat(dir, path, [atime, mtime], flags)`.
///
/// See utimensat(2).
pub fn utimensat(dir: BorrowedFd<'_>, path: &Path, times: &Timestamps, flags: AtFlags) -> Result<(), Errno> {
    rustix::fs::utimensat(dir, path, times, flags)
}

/// `posix_fadvise(fd, offset, len, advice)`; `len` `None` means to the end
/// of the file.
///
/// See posix_fadvise(2).
pub fn fadvise(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: Option<std::num::NonZeroU64>,
    advice: Advice,
) -> Result<(), Errno> {
    rustix::fs::fadvise(fd, offset, len, advice)
}

/// `sync()`: schedules writeback of every filesystem's dirty data and
/// waits for it.
///
/// See sync(2).
pub fn sync() {
    rustix::fs::sync();
}

/// `/proc/self/fd/<fd>`: a path that names exactly the object `fd` refers
/// to (a magic link), for calls that take only paths — mounting onto a
/// target resolved with `openat2`, reopening an `O_PATH` descriptor.
pub fn fd_path(fd: BorrowedFd<'_>) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// [`syncfs`] on the filesystem holding `path`.
pub fn syncfs_path(path: &Path) -> io::Result<()> {
    syncfs(open_dir(path)?.as_fd())
}

/// `/proc/self/fd/<dir>/<name>`: a path naming `name` in the directory
/// `dir` refers to. The magic link resolves to that directory object
/// itself, so the path cannot be redirected by renames or symlinks above
/// it; used for the `l*xattr` calls, which have no `*at` form before
/// Linux 6.13.
fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    p
}

/// `lsetxattr(<dir>/<name>, key, value, 0)`: sets an xattr on the entry
/// itself (a symlink or device), not what it points to.
pub fn lsetxattr_at(dir: BorrowedFd<'_>, name: &[u8], key: &[u8], value: &[u8]) -> io::Result<()> {
    let path = proc_path(dir, name);
    retry(|| rustix::fs::lsetxattr(path.as_slice(), key, value, XattrFlags::empty()))
}

/// `llistxattr` + `lgetxattr` on `<dir>/<name>`: every extended attribute
/// of the entry itself, as `(name, value)` pairs sorted by name. An empty
/// `name` means the directory `dir` itself.
pub fn lxattrs_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let path = proc_path(dir, name);
    let path = path.as_slice();
    let mut list = Vec::new();
    loop {
        let len = retry(|| rustix::fs::llistxattr_query(path))?;
        if len == 0 {
            return Ok(Vec::new());
        }
        list.resize(len, 0);
        match retry(|| rustix::fs::llistxattr(path, list.as_mut_slice())) {
            Ok(n) => {
                list.truncate(n);
                break;
            }
            // The list grew between the two calls.
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
    let mut out = Vec::new();
    for key in list.split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let mut value = Vec::new();
        loop {
            let len = match retry(|| rustix::fs::lgetxattr_query(path, key)) {
                Ok(len) => len,
                // Removed between list and get.
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => break,
                Err(e) => return Err(e),
            };
            value.resize(len, 0);
            if len == 0 {
                out.push((key.to_vec(), Vec::new()));
                break;
            }
            match retry(|| rustix::fs::lgetxattr(path, key, value.as_mut_slice())) {
                Ok(n) => {
                    value.truncate(n);
                    out.push((key.to_vec(), std::mem::take(&mut value)));
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => break,
                Err(e) => return Err(e),
            }
        }
    }
    out.sort();
    Ok(out)
}

// Path-based calls for the run path, container tools and the copy-up
// benchmark (which times exactly these syscalls, so they stay one call
// each, without retries).

pub use rustix::fs::{Access, Gid, Stat, Uid};

/// `openat2(root, path, O_PATH | O_CLOEXEC, RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS)`: an `O_PATH` descriptor for `path` resolved as
/// if `root` were `/` (a mount target, a file to stat).
///
/// See openat2(2).
pub fn open_path_in_root(root: BorrowedFd<'_>, path: &str) -> io::Result<OwnedFd> {
    openat2_in_root(root, path, OFlags::PATH)
}

/// `openat2(root, path, O_RDONLY | O_CLOEXEC, RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS)`: opens `path` for reading as if `root` were `/`.
///
/// See openat2(2).
pub fn open_file_in_root(root: BorrowedFd<'_>, path: &str) -> io::Result<OwnedFd> {
    openat2_in_root(root, path, OFlags::RDONLY)
}

/// `access(path, mode)`.
///
/// See access(2).
pub fn access(path: &std::ffi::CStr, mode: Access) -> Result<(), Errno> {
    rustix::fs::access(path, mode)
}

/// `write(fd, buf, len)`: bytes written.
///
/// See write(2).
#[inline]
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::io::write(fd, buf)?)
}

/// `truncate(path, length)`.
///
/// See truncate(2). Through nix: rustix has only `ftruncate`, and an
/// open + `ftruncate` is not the call the copy-up benchmark times.
#[inline]
pub fn truncate(path: &Path, length: i64) -> io::Result<()> {
    Ok(nix::unistd::truncate(path, length)?)
}

/// `chown(path, uid, gid)`; `None` leaves that id as it is.
///
/// See chown(2).
#[inline]
pub fn chown(path: &Path, uid: Option<Uid>, gid: Option<Gid>) -> io::Result<()> {
    Ok(rustix::fs::chown(path, uid, gid)?)
}

/// `rename(from, to)`.
///
/// See rename(2).
#[inline]
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    Ok(rustix::fs::rename(from, to)?)
}

/// `link(from, to)`.
///
/// See link(2).
#[inline]
pub fn link(from: &Path, to: &Path) -> io::Result<()> {
    Ok(rustix::fs::link(from, to)?)
}

/// `stat(path, &buf)`.
///
/// See stat(2).
#[inline]
pub fn stat(path: &Path) -> io::Result<Stat> {
    Ok(rustix::fs::stat(path)?)
}

/// `mkfifoat(AT_FDCWD, path, mode)`: a named pipe at `path`.
///
/// See mkfifo(3).
pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::mkfifoat(rustix::fs::CWD, path, Mode::from_raw_mode(mode))?)
}

/// `read(fd, buf, len)`: reads what is there, up to `buf.len()` bytes.
///
/// See read(2).
pub fn read(fd: impl AsFd, buf: &mut [u8]) -> Result<usize, Errno> {
    rustix::io::read(fd.as_fd(), buf)
}

/// `fchdir(fd)`: makes the directory `fd` refers to the working
/// directory.
///
/// See fchdir(2).
pub fn fchdir(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::process::fchdir(fd)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_dir_in_root_confines_absolute_symlinks() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("link")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.path().join("up")).unwrap();
        let fd = open_dir(root.path()).unwrap();
        let etc = open_dir_in_root(fd.as_fd(), b"link").unwrap();
        let want = lstat_at(fd.as_fd(), b"etc").unwrap();
        let got = fstat(etc.as_fd()).unwrap();
        assert_eq!((got.dev, got.ino), (want.dev, want.ino));
        let up = open_dir_in_root(fd.as_fd(), b"up").unwrap();
        let me = fstat(fd.as_fd()).unwrap();
        let got = fstat(up.as_fd()).unwrap();
        assert_eq!((got.dev, got.ino), (me.dev, me.ino));
    }

    #[test]
    fn remove_all_at_does_not_follow_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"x").unwrap();
        std::fs::create_dir_all(root.path().join("d/e")).unwrap();
        std::fs::write(root.path().join("d/e/f"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("d/link")).unwrap();
        let fd = open_dir(root.path()).unwrap();
        remove_all_at(fd.as_fd(), b"d").unwrap();
        assert!(!root.path().join("d").exists());
        assert!(outside.path().join("keep").exists());
        remove_all_at(fd.as_fd(), b"missing").unwrap();
    }
}
