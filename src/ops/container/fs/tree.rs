//! The tree copier behind `cp`: one source tree copied below one
//! destination directory, descriptor by descriptor.
//!
//! Each source entry is opened `O_PATH | O_NOFOLLOW` relative to its
//! parent's descriptor and its type read with `fstat` on that descriptor;
//! only a regular file is then opened to read (through the same inode,
//! `O_NONBLOCK`, and no further than the size `fstat` gave), a directory
//! to list, a symlink's text read, and nothing else is opened at all: a
//! FIFO, device or socket swapped in for a file is copied as what it is
//! (or skipped), never read. Each destination entry is created with an
//! `*at` call relative to its parent's descriptor, exclusively
//! (`O_EXCL`, `mkdirat`, `symlinkat`, `mknodat`), and its owner, mode and
//! times are set on the descriptor of what was created (`fchown`,
//! `fchmod`, `futimens`; a FIFO or device node through an `O_PATH`
//! descriptor checked to be that node; a symlink with
//! `AT_SYMLINK_NOFOLLOW`). No path string is walked twice, so neither side
//! can redirect the copy with a symlink swapped in after a check.
//!
//! There are no whiteouts here: `cp` is a copy, not a layer, and a file
//! named `.wh.x` is a file named `.wh.x`.

use super::cp::CpError;
use crate::sys::fs::{self as sysfs, Kind, Meta, Node, OFlags};
use crate::sys::fs_fd;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Extended attributes as `(name, value)` pairs.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Whose owner copied entries get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The source entry's uid and gid (`-a`).
    Source,
    /// These ids (container root on copy-in).
    Set(u32, u32),
    /// Whoever runs strata: the entries are not chowned (copy-out).
    Invoker,
}

/// What a copy keeps of its source, per direction (see `cp`'s docs).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub owner: Owner,
    /// Keep setuid and setgid bits (else they are cleared).
    pub setid: bool,
    /// Create character and block device nodes (else skip them).
    pub devices: bool,
    /// Copy extended attributes (`security.capability` among them).
    pub xattrs: bool,
}

/// An entry of the source side that was not copied, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The path as the user names it (in the container for copy-out).
    pub path: String,
    pub reason: &'static str,
}

/// A source entry: an `O_PATH | O_NOFOLLOW` descriptor and its `fstat`.
pub struct Source {
    pub fd: OwnedFd,
    pub meta: Meta,
}

impl Source {
    /// The entry `name` in `dir`, not followed if it is a symlink.
    pub fn at(dir: BorrowedFd<'_>, name: &[u8], shown: &str) -> Result<Source, CpError> {
        let fd = fs_fd::open_path_at(dir, name).map_err(entry(shown, "open"))?;
        Source::of(fd, shown)
    }

    /// A source from a descriptor opened elsewhere (`O_PATH` or not).
    pub fn of(fd: OwnedFd, shown: &str) -> Result<Source, CpError> {
        let meta = sysfs::fstat(fd.as_fd()).map_err(entry(shown, "stat"))?;
        Ok(Source { fd, meta })
    }
}

pub fn entry(path: &str, op: &'static str) -> impl FnOnce(io::Error) -> CpError {
    let path = path.to_owned();
    move |source| CpError::Entry { path, op, source }
}

/// Copies source trees under destination directories with one [`Policy`].
pub struct Copier {
    policy: Policy,
    /// `st_dev` of the top of the source: directories on another
    /// filesystem (`/proc` of a running container) are created but not
    /// entered, as `tar --one-file-system`.
    top_dev: u64,
    pub skipped: Vec<Skipped>,
}

impl Copier {
    pub fn new(policy: Policy, top: &Source) -> Copier {
        Copier { policy, top_dev: top.meta.dev, skipped: Vec::new() }
    }

    /// Copies `src` to the entry `name` of the directory `dst`: merged into
    /// an existing directory, replacing an existing non-directory.
    pub fn copy(&mut self, src: &Source, dst: BorrowedFd<'_>, name: &[u8], shown: &str) -> Result<(), CpError> {
        let m = &src.meta;
        match m.kind {
            Kind::Dir => {
                let dir = self.dest_dir(dst, name, shown)?;
                let listed = fs_fd::open_dir_of(src.fd.as_fd()).map_err(entry(shown, "open directory"))?;
                self.contents(src, listed.as_fd(), dir.as_fd(), shown)?;
                let xattrs = self.source_xattrs(listed.as_fd(), shown)?;
                self.finish_fd(dir.as_fd(), m, &xattrs, shown)
            }
            Kind::File => self.file(src, dst, name, shown),
            Kind::Symlink => {
                let target = fs_fd::readlink_fd(src.fd.as_fd()).map_err(entry(shown, "readlink"))?;
                self.clear(dst, name, false, shown)?;
                sysfs::symlink_at(&target, dst, name).map_err(entry(shown, "symlink"))?;
                if let Some((uid, gid)) = self.owner(m) {
                    sysfs::lchown_at(dst, name, uid, gid).map_err(entry(shown, "chown"))?;
                }
                sysfs::lutimens_at(dst, name, m.mtime, m.mtime).map_err(entry(shown, "set times"))
            }
            Kind::Fifo => self.node(src, dst, name, Node::Fifo, shown),
            Kind::CharDevice | Kind::BlockDevice if !self.policy.devices => {
                self.skip(shown, "device nodes are not created on the host");
                Ok(())
            }
            Kind::CharDevice => self.node(src, dst, name, Node::Char, shown),
            Kind::BlockDevice => self.node(src, dst, name, Node::Block, shown),
            Kind::Socket => {
                self.skip(shown, "sockets cannot be copied");
                Ok(())
            }
        }
    }

    /// Copies the entries of the directory `src` (`dir`: it opened for
    /// reading) into `dst`, which keeps its own owner, mode and times.
    pub fn contents(
        &mut self,
        src: &Source,
        dir: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        shown: &str,
    ) -> Result<(), CpError> {
        if src.meta.dev != self.top_dev {
            return Ok(());
        }
        let mut names = sysfs::read_dir_names(dir).map_err(entry(shown, "read directory"))?;
        names.sort_unstable();
        for name in names {
            let child = format!("{}/{}", shown.trim_end_matches('/'), String::from_utf8_lossy(&name));
            let src = match Source::at(dir, &name, &child) {
                Ok(s) => s,
                // Removed since the listing: nothing to copy.
                Err(CpError::Entry { source, .. }) if source.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            self.copy(&src, dst, &name, &child)?;
        }
        Ok(())
    }

    fn skip(&mut self, shown: &str, reason: &'static str) {
        self.skipped.push(Skipped { path: shown.to_owned(), reason });
    }

    fn owner(&self, m: &Meta) -> Option<(u32, u32)> {
        match self.policy.owner {
            Owner::Source => Some((m.uid, m.gid)),
            Owner::Set(u, g) => Some((u, g)),
            Owner::Invoker => None,
        }
    }

    fn mode(&self, m: &Meta) -> u32 {
        if self.policy.setid {
            m.mode
        } else {
            m.mode & !0o6000
        }
    }

    /// Makes room for a new entry `name` in `dst`: Docker's rules (a
    /// directory is never replaced by a non-directory nor the reverse;
    /// another non-directory is removed, never followed). Returns whether a
    /// directory is already there.
    fn clear(&self, dst: BorrowedFd<'_>, name: &[u8], dir: bool, shown: &str) -> Result<bool, CpError> {
        match sysfs::lstat_at(dst, name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(entry(shown, "stat destination")(e)),
            Ok(m) if m.kind == Kind::Dir && dir => Ok(true),
            Ok(m) if m.kind == Kind::Dir => Err(CpError::NonDirOverDir { path: shown.to_owned() }),
            Ok(_) if dir => Err(CpError::DirOverNonDir { path: shown.to_owned() }),
            Ok(_) => {
                sysfs::unlink_at(dst, name).map_err(entry(shown, "remove destination"))?;
                Ok(false)
            }
        }
    }

    /// The destination directory `name` in `dst`, created (0700 until its
    /// own mode is set, after its contents) or an existing one, opened
    /// without following a symlink.
    fn dest_dir(&self, dst: BorrowedFd<'_>, name: &[u8], shown: &str) -> Result<OwnedFd, CpError> {
        if !self.clear(dst, name, true, shown)? {
            sysfs::mkdir_at(dst, name, 0o700).map_err(entry(shown, "mkdir"))?;
        }
        sysfs::open_dir_at(dst, name).map_err(entry(shown, "open destination directory"))
    }

    fn file(&mut self, src: &Source, dst: BorrowedFd<'_>, name: &[u8], shown: &str) -> Result<(), CpError> {
        let input = fs_fd::reopen(src.fd.as_fd(), OFlags::RDONLY | OFlags::NONBLOCK).map_err(entry(shown, "open"))?;
        let now = sysfs::fstat(input.as_fd()).map_err(entry(shown, "stat"))?;
        if now.kind != Kind::File || (now.dev, now.ino) != (src.meta.dev, src.meta.ino) {
            return Err(CpError::Changed { path: shown.to_owned() });
        }
        let xattrs = self.source_xattrs(input.as_fd(), shown)?;
        self.clear(dst, name, false, shown)?;
        let out = sysfs::create_file_at(dst, name).map_err(entry(shown, "create"))?;
        let mut out = std::fs::File::from(out);
        // No further than the size seen: a file the container keeps
        // growing cannot keep cp busy.
        let mut input = std::fs::File::from(input).take(src.meta.size);
        io::copy(&mut input, &mut out).map_err(entry(shown, "copy"))?;
        self.finish_fd(out.as_fd(), &src.meta, &xattrs, shown)
    }

    /// A FIFO or device node: created, then owner, mode and times set on
    /// the node itself, checked to be one (a symlink swapped in for it is
    /// never followed).
    fn node(&mut self, src: &Source, dst: BorrowedFd<'_>, name: &[u8], node: Node, shown: &str) -> Result<(), CpError> {
        let m = &src.meta;
        self.clear(dst, name, false, shown)?;
        sysfs::mknod_at(dst, name, node, 0o600, m.rdev.0, m.rdev.1).map_err(entry(shown, "mknod"))?;
        let made = fs_fd::open_path_at(dst, name).map_err(entry(shown, "open created node"))?;
        let now = sysfs::fstat(made.as_fd()).map_err(entry(shown, "stat created node"))?;
        if now.kind != m.kind {
            return Err(CpError::Changed { path: shown.to_owned() });
        }
        if let Some((uid, gid)) = self.owner(m) {
            fs_fd::chown_fd(made.as_fd(), uid, gid).map_err(entry(shown, "chown"))?;
        }
        fs_fd::chmod_fd(made.as_fd(), self.mode(m)).map_err(entry(shown, "chmod"))?;
        sysfs::lutimens_at(dst, name, m.mtime, m.mtime).map_err(entry(shown, "set times"))
    }

    /// The source's xattrs to copy (none without `-a`); `fd` is open for
    /// reading (not `O_PATH`).
    fn source_xattrs(&self, fd: BorrowedFd<'_>, shown: &str) -> Result<Xattrs, CpError> {
        if !self.policy.xattrs {
            return Ok(Vec::new());
        }
        let mut x = fs_fd::fxattrs(fd).map_err(entry(shown, "list xattrs"))?;
        x.retain(|(k, _)| !k.starts_with(b"trusted.overlay.") && k != b"security.selinux");
        Ok(x)
    }

    /// Owner, then mode (a chown clears setuid), xattrs, then times, all on
    /// the open descriptor of what was created.
    fn finish_fd(&self, fd: BorrowedFd<'_>, m: &Meta, xattrs: &Xattrs, shown: &str) -> Result<(), CpError> {
        if let Some((uid, gid)) = self.owner(m) {
            sysfs::fchown(fd, uid, gid).map_err(entry(shown, "chown"))?;
        }
        sysfs::fchmod(fd, self.mode(m)).map_err(entry(shown, "chmod"))?;
        for (k, v) in xattrs {
            sysfs::fsetxattr(fd, k, v).map_err(entry(shown, "set xattr"))?;
        }
        sysfs::futimens(fd, m.mtime, m.mtime).map_err(entry(shown, "set times"))
    }
}
