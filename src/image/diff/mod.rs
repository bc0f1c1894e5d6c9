//! Layer diff: writes the changes of a snapshot as an OCI layer tar,
//! hashing it on the way out.
//!
//! Two sources ([`DiffSource`]):
//!
//! * **Overlay upper dir** — the upper dir *is* the change set: walk it,
//!   turning overlay whiteouts (0/0 character devices) into `.wh.<name>`
//!   entries and opaque directories (`trusted.overlay.opaque=y`) into a
//!   `.wh..wh..opq` entry right after the directory's own entry.
//! * **Two trees** — walk `upper` and `lower` side by side, the way
//!   Docker's `pkg/archive/changes.go` does: an entry is unchanged when its
//!   type, permission bits, owner, device number, xattrs and (for
//!   non-directories) size and mtime to the nanosecond are equal, and for a
//!   symlink its target; a name only in `lower` becomes one `.wh.<name>`
//!   (a deleted directory is one whiteout, not one per child). A directory
//!   whose descendants changed is written too, before them, even if it is
//!   itself unchanged, so its owner and mode survive in the layer (an
//!   applier would otherwise create it `0755 root`).
//!
//! **Reproducibility invariant:** the same tree state gives the same bytes.
//! Entries come in path order, component by component (a directory, then
//! its subtree, then its next sibling; siblings bytewise by the name they
//! have in the tar), so parents precede children. Headers are ustar with
//! numeric owners only, mtime in whole seconds, no atime or ctime; PAX
//! records (`path`, `linkpath`, `size`, `uid`, `gid`, `mtime`,
//! `SCHILY.xattr.*`) only where ustar cannot hold a value; whiteouts have
//! mode 0, owner 0 and mtime 0. Hard links within the layer become link
//! entries to the first path written. The archive ends with two zero
//! blocks and no record padding, as Go's `archive/tar` (and so Docker)
//! writes it.
//!
//! **Hostile trees.** A running container changes its tree while `commit`
//! or `export` reads it. Nothing here follows a symlink (`*at` calls with
//! `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`, directories opened `O_DIRECTORY |
//! O_NOFOLLOW`), and a file's bytes are read only after its name was
//! opened `O_PATH` and the descriptor shown to be the regular file the
//! walk listed: a FIFO, device or symlink swapped in is an error naming
//! the path ([`DiffError::Changed`]), never a blocked open or a read.
//!
//! xattrs in the `trusted.overlay.` namespace are overlayfs' own state and
//! `security.selinux` is the host's label, not image content; neither is
//! written.

mod prefetch;

use super::{OVERLAY_OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::digest::{DiffId, HashingWriter};
use crate::snapshot::DiffSource;
use crate::sys::fs::{self as sysfs, Kind, Meta};
use crate::sys::fs_fd;
use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use tar::EntryType;

const BLOCK: usize = 512;
const BUF_SIZE: usize = 1 << 20;
/// Largest value of an 11-digit octal ustar field (size, mtime).
const USTAR_MAX_11: u64 = 0o777_7777_7777;
/// Largest value of a 7-digit octal ustar field (uid, gid, device numbers).
const USTAR_MAX_7: u64 = 0o777_7777;
/// Name given to PAX extended headers; readers ignore it.
const PAX_HEADER_NAME: &[u8] = b"././@PaxHeader";
const SELINUX_XATTR: &[u8] = b"security.selinux";
const OVERLAY_REDIRECT_XATTR: &[u8] = b"trusted.overlay.redirect";
const OVERLAY_METACOPY_XATTR: &[u8] = b"trusted.overlay.metacopy";

/// What writing a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffOutcome {
    /// sha256 of the bytes written.
    pub diff_id: DiffId,
    /// Bytes written.
    pub size: u64,
    /// Bytes of regular-file content in the layer (Docker's layer size).
    pub content_size: u64,
}

/// Failures of layer diff. Paths are relative to the snapshot root.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path:?}: {op}: {source}")]
    Entry { path: String, op: &'static str, source: io::Error },
    #[error("{path:?}: file changed while the layer was written")]
    Changed { path: String },
    #[error("{path:?}: overlay {feature} is not supported (mount without redirect_dir/metacopy)")]
    Unsupported { path: String, feature: &'static str },
    #[error("write layer: {0}")]
    Write(#[source] io::Error),
}

fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn at<'a>(path: &'a [u8], op: &'static str) -> impl FnOnce(io::Error) -> DiffError + 'a {
    move |source| DiffError::Entry { path: lossy(path), op, source }
}

/// Writes the changes `source` describes to `out` as an uncompressed layer
/// tar and returns its digest and size.
pub fn write_layer<W: Write>(source: &DiffSource, out: W) -> Result<DiffOutcome, DiffError> {
    write_with(source, false, &[], out)
}

/// [`write_layer`] leaving out the given paths (relative, no leading `/`)
/// where they are *empty regular files*: the mount points the container
/// runtime creates for `/etc/hosts` and friends, which Docker keeps in a
/// hidden init layer so that `commit` never records them.
pub fn write_layer_without<W: Write>(
    source: &DiffSource,
    placeholders: &[&str],
    out: W,
) -> Result<DiffOutcome, DiffError> {
    write_with(source, false, placeholders, out)
}

/// Writes a whole tree (`docker export`, `cp`) as a tar, staying on the
/// filesystem of `root` (`tar --one-file-system`): a directory that is a
/// mount point of another filesystem (`/proc` of a running container) is
/// written as an entry, its contents are not.
pub fn write_tree<W: Write>(root: &Path, out: W) -> Result<DiffOutcome, DiffError> {
    write_with(&DiffSource::Trees { lower: None, upper: root.to_owned() }, true, &[], out)
}

/// [`write_tree`] without the given empty placeholder files (see
/// [`write_layer_without`]).
pub fn write_tree_without<W: Write>(root: &Path, placeholders: &[&str], out: W) -> Result<DiffOutcome, DiffError> {
    write_with(&DiffSource::Trees { lower: None, upper: root.to_owned() }, true, placeholders, out)
}

fn write_with<W: Write>(
    source: &DiffSource,
    one_file_system: bool,
    placeholders: &[&str],
    out: W,
) -> Result<DiffOutcome, DiffError> {
    write_with_reader(source, one_file_system, placeholders, out, Some(crate::uring::IoEngine::new()))
}

fn write_with_reader<W: Write>(
    source: &DiffSource,
    one_file_system: bool,
    placeholders: &[&str],
    out: W,
    engine: Option<crate::uring::IoEngine>,
) -> Result<DiffOutcome, DiffError> {
    let open = |p: &Path| sysfs::open_dir(p).map_err(|source| DiffError::Open { path: p.to_owned(), source });
    let (upper, lower, overlay) = match source {
        DiffSource::OverlayUpper(upper) => (open(upper)?, None, true),
        DiffSource::Trees { lower, upper } => (open(upper)?, lower.as_deref().map(open).transpose()?, false),
    };
    let mut w = Writer::new(out, overlay, placeholders, engine);
    if one_file_system {
        w.root_dev = Some(sysfs::fstat(upper.as_fd()).map_err(at(b"", "stat"))?.dev);
    }
    if overlay {
        let xattrs = sysfs::lxattrs_at(upper.as_fd(), b"").map_err(at(b"", "list xattrs"))?;
        if is_opaque(&xattrs) {
            w.whiteout(WHITEOUT_OPAQUE)?;
        }
    }
    w.walk(upper.as_fd(), lower.as_ref().map(|l| l.as_fd()), &[])?;
    w.finish()
}

/// [`write_tree`] with the given read-ahead engine, or none (every file
/// read when its entry is written): for the differential test and the
/// benchmark.
pub fn write_tree_using<W: Write>(
    root: &Path,
    out: W,
    engine: Option<crate::uring::IoEngine>,
) -> Result<DiffOutcome, DiffError> {
    write_with_reader(&DiffSource::Trees { lower: None, upper: root.to_owned() }, true, &[], out, engine)
}

/// [`write_layer`] with the given read-ahead engine, or none.
pub fn write_layer_using<W: Write>(
    source: &DiffSource,
    out: W,
    engine: Option<crate::uring::IoEngine>,
) -> Result<DiffOutcome, DiffError> {
    write_with_reader(source, false, &[], out, engine)
}

/// A tar of entry `name` of directory `parent` under its own name — a
/// directory with everything below it, on the same filesystem — as
/// `docker cp CONTAINER:SRC -` streams it. Nothing is followed: the entry
/// and everything below are opened relative to `parent`'s descriptor
/// without following symlinks, so a tree a container controls cannot
/// point the walk elsewhere. Sockets are left out, as in layers.
pub fn write_entry<W: Write>(parent: BorrowedFd<'_>, name: &[u8], out: W) -> Result<DiffOutcome, DiffError> {
    let mut w = Writer::new(out, false, &[], Some(crate::uring::IoEngine::new()));
    w.root_dev = Some(sysfs::fstat(parent).map_err(at(b"", "stat"))?.dev);
    let meta = sysfs::lstat_at(parent, name).map_err(at(name, "stat"))?;
    let xattrs = content_xattrs(sysfs::lxattrs_at(parent, name).map_err(at(name, "list xattrs"))?);
    if meta.kind == Kind::Dir {
        let sub = sysfs::open_dir_at(parent, name).map_err(at(name, "open directory"))?;
        let path = [name, b"/"].concat();
        w.pending.push(Ancestor { path: path.clone(), meta, xattrs });
        w.flush_pending()?;
        w.walk(sub.as_fd(), None, &path)?;
    } else if meta.kind != Kind::Socket {
        w.non_dir(parent, name, name, &meta, &xattrs, None)?;
    }
    w.finish()
}

/// A tar of what directory `dir` holds, named relative to it (`docker cp
/// CONTAINER:SRC/. -`), walked as [`write_entry`] walks.
pub fn write_contents<W: Write>(dir: BorrowedFd<'_>, out: W) -> Result<DiffOutcome, DiffError> {
    let mut w = Writer::new(out, false, &[], Some(crate::uring::IoEngine::new()));
    w.root_dev = Some(sysfs::fstat(dir).map_err(at(b"", "stat"))?.dev);
    w.walk(dir, None, &[])?;
    w.finish()
}

fn is_opaque(xattrs: &[(Vec<u8>, Vec<u8>)]) -> bool {
    xattrs.iter().any(|(k, v)| k == OVERLAY_OPAQUE_XATTR && v == b"y")
}

/// The xattrs that belong in a layer.
fn content_xattrs(mut xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    xattrs.retain(|(k, _)| !k.starts_with(OVERLAY_XATTR_PREFIX) && k != SELINUX_XATTR);
    xattrs
}

/// One name in a directory being written.
struct Child {
    /// The name as written to the tar (`.wh.<name>` for a deletion).
    key: Vec<u8>,
    name: Vec<u8>,
    /// `None` for a name that exists only in the lower tree.
    meta: Option<Meta>,
}

/// A directory on the path from the root to the walk's position.
struct Ancestor {
    path: Vec<u8>,
    meta: Meta,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Writer<W: Write> {
    out: HashingWriter<BufWriter<W>>,
    overlay: bool,
    /// `(dev, ino)` of multiply-linked files written so far → their path.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Directories from the root (exclusive) to the walk's position.
    pending: Vec<Ancestor>,
    /// How many of `pending`, from the root down, are in the tar already.
    written: usize,
    /// Regular-file bytes written so far.
    content: u64,
    /// With `--one-file-system`, the device of the root: directories on
    /// another device are written but not entered.
    root_dev: Option<u64>,
    /// Paths left out when they are empty regular files.
    placeholders: Vec<Vec<u8>>,
    buf: Vec<u8>,
    /// Small files read ahead in batches ([`prefetch`]); `None` reads
    /// every file when its entry is written (the simple twin).
    reader: Option<prefetch::Reader>,
}

impl<W: Write> Writer<W> {
    /// `engine` reads small files ahead ([`prefetch`]); `None` reads each
    /// file when its entry is written.
    fn new(out: W, overlay: bool, placeholders: &[&str], engine: Option<crate::uring::IoEngine>) -> Writer<W> {
        Writer {
            out: HashingWriter::new(BufWriter::with_capacity(BUF_SIZE, out)),
            overlay,
            links: HashMap::new(),
            pending: Vec::new(),
            written: 0,
            content: 0,
            buf: vec![0; BUF_SIZE],
            root_dev: None,
            placeholders: placeholders.iter().map(|p| p.as_bytes().to_vec()).collect(),
            reader: engine.map(prefetch::Reader::new),
        }
    }

    /// The end-of-archive blocks; flushes and says what was written.
    fn finish(mut self) -> Result<DiffOutcome, DiffError> {
        self.out.write_all(&[0; 2 * BLOCK]).map_err(DiffError::Write)?;
        let content_size = self.content;
        let (buffered, digest, size) = self.out.finish();
        buffered.into_inner().map_err(|e| DiffError::Write(e.into_error()))?.flush().map_err(DiffError::Write)?;
        Ok(DiffOutcome { diff_id: DiffId(digest), size, content_size })
    }

    /// Writes the changes under the directory `upper` (at `prefix`, empty
    /// or ending in `/`), compared with `lower` if given.
    fn walk(&mut self, upper: BorrowedFd<'_>, lower: Option<BorrowedFd<'_>>, prefix: &[u8]) -> Result<(), DiffError> {
        let mut children = Vec::new();
        let mut upper_names = sysfs::read_dir_names(upper).map_err(at(prefix, "read directory"))?;
        upper_names.sort_unstable();
        for name in &upper_names {
            let path = [prefix, name].concat();
            let meta = sysfs::lstat_at(upper, name).map_err(at(&path, "stat"))?;
            let key = if self.overlay && meta.kind == Kind::CharDevice && meta.rdev == (0, 0) {
                [WHITEOUT_PREFIX, name].concat()
            } else {
                name.clone()
            };
            children.push(Child { key, name: name.clone(), meta: Some(meta) });
        }
        if let Some(lower) = lower {
            for name in sysfs::read_dir_names(lower).map_err(at(prefix, "read lower directory"))? {
                if upper_names.binary_search(&name).is_err() {
                    children.push(Child { key: [WHITEOUT_PREFIX, &name].concat(), name, meta: None });
                }
            }
        }
        children.sort_by(|a, b| a.key.cmp(&b.key));
        // Read ahead only where every listed file is written: against a
        // lower tree an unchanged file is not, and is never read.
        let read_ahead = lower.is_none() && self.reader.is_some();
        let mut window = prefetch::Window::default();

        for (index, child) in children.iter().enumerate() {
            let path = [prefix, &child.name].concat();
            let ahead = match (read_ahead, &child.meta, self.reader.as_mut()) {
                (true, Some(meta), Some(reader)) if child.key == child.name && prefetch::candidate(meta) => {
                    let rest = children[index..].iter().zip(index..).filter_map(|(c, i)| {
                        let m = c.meta.filter(|m| c.key == c.name && prefetch::candidate(m))?;
                        Some((i, c.name.clone(), [prefix, &c.name].concat(), m))
                    });
                    window.get(reader, upper, index, rest)
                }
                _ => None,
            };
            let Some(meta) = child.meta else {
                self.whiteout(&[prefix, &child.key].concat())?;
                continue;
            };
            if child.key != child.name {
                self.whiteout(&[prefix, &child.key].concat())?;
                continue;
            }
            if meta.kind == Kind::Socket {
                continue; // not representable in tar; Docker skips them too
            }
            let xattrs = sysfs::lxattrs_at(upper, &child.name).map_err(at(&path, "list xattrs"))?;
            let opaque = self.overlay && meta.kind == Kind::Dir && is_opaque(&xattrs);
            if self.overlay {
                if xattrs.iter().any(|(k, _)| k == OVERLAY_REDIRECT_XATTR) {
                    return Err(DiffError::Unsupported { path: lossy(&path), feature: "redirect_dir" });
                }
                if xattrs.iter().any(|(k, _)| k == OVERLAY_METACOPY_XATTR) {
                    return Err(DiffError::Unsupported { path: lossy(&path), feature: "metacopy" });
                }
            }
            let xattrs = content_xattrs(xattrs);
            let lower_meta = match lower {
                Some(l) => match sysfs::lstat_at(l, &child.name) {
                    Ok(m) => Some(m),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(at(&path, "stat lower")(e)),
                },
                None => None,
            };
            let changed = match (lower, lower_meta) {
                (Some(l), Some(lm)) => !self.same(upper, l, &child.name, &path, &meta, &lm, &xattrs)?,
                _ => true,
            };

            if meta.kind == Kind::Dir && self.root_dev.is_some_and(|d| d != meta.dev) {
                let mut dir_path = path;
                dir_path.push(b'/');
                self.pending.push(Ancestor { path: dir_path, meta, xattrs });
                self.flush_pending()?;
                self.pending.pop();
                self.written = self.written.min(self.pending.len());
            } else if meta.kind == Kind::Dir {
                let sub = sysfs::open_dir_at(upper, &child.name).map_err(at(&path, "open directory"))?;
                let sub_lower = match (lower, lower_meta) {
                    (Some(l), Some(lm)) if lm.kind == Kind::Dir => {
                        Some(sysfs::open_dir_at(l, &child.name).map_err(at(&path, "open lower directory"))?)
                    }
                    _ => None,
                };
                let mut dir_path = path;
                dir_path.push(b'/');
                self.pending.push(Ancestor { path: dir_path.clone(), meta, xattrs });
                if changed {
                    self.flush_pending()?;
                }
                if opaque {
                    self.whiteout(&[&dir_path[..], WHITEOUT_OPAQUE].concat())?;
                }
                self.walk(sub.as_fd(), sub_lower.as_ref().map(|l| l.as_fd()), &dir_path)?;
                self.pending.pop();
                self.written = self.written.min(self.pending.len());
            } else if changed {
                if meta.kind == Kind::File && meta.size == 0 && self.placeholders.contains(&path) {
                    continue;
                }
                self.flush_pending()?;
                self.non_dir(upper, &child.name, &path, &meta, &xattrs, ahead)?;
            }
        }
        Ok(())
    }

    /// Whether `name` is unchanged between the two trees (Docker's rule,
    /// see the module docs).
    #[allow(clippy::too_many_arguments)]
    fn same(
        &self,
        upper: BorrowedFd<'_>,
        lower: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        u: &Meta,
        l: &Meta,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<bool, DiffError> {
        let meta_same = u.kind == l.kind
            && u.mode == l.mode
            && u.uid == l.uid
            && u.gid == l.gid
            && u.rdev == l.rdev
            && (u.kind == Kind::Dir || (u.size == l.size && u.mtime == l.mtime));
        if !meta_same {
            return Ok(false);
        }
        let lower_xattrs = content_xattrs(sysfs::lxattrs_at(lower, name).map_err(at(path, "list lower xattrs"))?);
        if lower_xattrs != xattrs {
            return Ok(false);
        }
        if u.kind == Kind::Symlink {
            let a = sysfs::readlink_at(upper, name).map_err(at(path, "readlink"))?;
            let b = sysfs::readlink_at(lower, name).map_err(at(path, "readlink lower"))?;
            return Ok(a == b);
        }
        Ok(true)
    }

    /// Writes the ancestors of the current position that are not in the
    /// tar yet.
    fn flush_pending(&mut self) -> Result<(), DiffError> {
        for a in &self.pending[self.written..] {
            let h = HeaderSpec {
                path: &a.path,
                kind: EntryType::Directory,
                meta: Some(&a.meta),
                size: 0,
                link: None,
                xattrs: &a.xattrs,
            };
            write_header(&mut self.out, &h).map_err(DiffError::Write)?;
        }
        self.written = self.pending.len();
        Ok(())
    }

    /// A `.wh.` entry: an empty regular file, mode 0, owner 0, mtime 0.
    fn whiteout(&mut self, path: &[u8]) -> Result<(), DiffError> {
        self.flush_pending()?;
        let h = HeaderSpec { path, kind: EntryType::Regular, meta: None, size: 0, link: None, xattrs: &[] };
        write_header(&mut self.out, &h).map_err(DiffError::Write)
    }

    fn non_dir(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        meta: &Meta,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        ahead: Option<Result<Vec<u8>, DiffError>>,
    ) -> Result<(), DiffError> {
        if meta.nlink > 1 {
            if let Some(first) = self.links.get(&(meta.dev, meta.ino)) {
                let h =
                    HeaderSpec { path, kind: EntryType::Link, meta: Some(meta), size: 0, link: Some(first), xattrs };
                return write_header(&mut self.out, &h).map_err(DiffError::Write);
            }
            self.links.insert((meta.dev, meta.ino), path.to_vec());
        }
        let (kind, target) = match meta.kind {
            Kind::File => (EntryType::Regular, None),
            Kind::Symlink => (EntryType::Symlink, Some(sysfs::readlink_at(dir, name).map_err(at(path, "readlink"))?)),
            Kind::CharDevice => (EntryType::Char, None),
            Kind::BlockDevice => (EntryType::Block, None),
            Kind::Fifo => (EntryType::Fifo, None),
            Kind::Dir | Kind::Socket => unreachable!("handled by walk"),
        };
        let size = if kind == EntryType::Regular { meta.size } else { 0 };
        let h = HeaderSpec { path, kind, meta: Some(meta), size, link: target.as_deref(), xattrs };
        write_header(&mut self.out, &h).map_err(DiffError::Write)?;
        if kind == EntryType::Regular && size > 0 {
            self.content += size;
            match ahead {
                Some(data) => {
                    self.out.write_all(&data?).map_err(DiffError::Write)?;
                    pad(&mut self.out, meta.size).map_err(DiffError::Write)?;
                }
                None => self.file_data(dir, name, path, meta)?,
            }
        }
        Ok(())
    }

    /// Copies exactly `meta.size` bytes of the file, then pads to a block.
    /// A file that is not the one stat'ed, or whose length moved, is an
    /// error rather than a corrupt entry.
    fn file_data(&mut self, dir: BorrowedFd<'_>, name: &[u8], path: &[u8], meta: &Meta) -> Result<(), DiffError> {
        let fd = open_listed_file(dir, name, path, meta)?;
        let mut file = std::fs::File::from(fd);
        let mut left = meta.size;
        while left > 0 {
            let want = usize::try_from(left.min(self.buf.len() as u64)).unwrap_or(self.buf.len());
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => return Err(DiffError::Changed { path: lossy(path) }),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(at(path, "read")(e)),
            };
            self.out.write_all(&self.buf[..n]).map_err(DiffError::Write)?;
            left -= n as u64;
        }
        if file.read(&mut self.buf[..1]).map_err(at(path, "read"))? != 0 {
            return Err(DiffError::Changed { path: lossy(path) });
        }
        pad(&mut self.out, meta.size).map_err(DiffError::Write)
    }
}

/// Opens the regular file `name` that the walk listed with `meta`, for
/// reading. A container can swap anything in under that name after the
/// `lstat`: the name is opened `O_PATH | O_NOFOLLOW` (a FIFO does not
/// block, a device is not opened, a symlink is not followed), the type and
/// inode are checked on that descriptor, and only then is that very inode
/// opened to read (`O_NONBLOCK` besides). Anything else is
/// [`DiffError::Changed`], naming the path.
fn open_listed_file(
    dir: BorrowedFd<'_>,
    name: &[u8],
    path: &[u8],
    meta: &Meta,
) -> Result<std::os::fd::OwnedFd, DiffError> {
    let handle = fs_fd::open_path_at(dir, name).map_err(at(path, "open"))?;
    let now = sysfs::fstat(handle.as_fd()).map_err(at(path, "stat"))?;
    if now.kind != Kind::File || (now.dev, now.ino) != (meta.dev, meta.ino) {
        return Err(DiffError::Changed { path: lossy(path) });
    }
    let flags = sysfs::OFlags::RDONLY | sysfs::OFlags::NONBLOCK;
    match fs_fd::reopen(handle.as_fd(), flags | sysfs::OFlags::NOATIME) {
        // O_NOATIME needs ownership or CAP_FOWNER.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => fs_fd::reopen(handle.as_fd(), flags),
        r => r,
    }
    .map_err(at(path, "open"))
}

/// Zero bytes up to the next block boundary after `size` bytes of data.
fn pad(out: &mut impl Write, size: u64) -> io::Result<()> {
    let rem = usize::try_from(size % BLOCK as u64).unwrap_or(0);
    if rem != 0 {
        out.write_all(&[0; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

/// What goes into one entry's header(s).
struct HeaderSpec<'a> {
    /// The tar path; directories end in `/`.
    path: &'a [u8],
    kind: EntryType,
    /// `None` for whiteouts: mode, owner and mtime 0.
    meta: Option<&'a Meta>,
    size: u64,
    link: Option<&'a [u8]>,
    xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where `<len>`
/// counts the whole record including its own digits (POSIX pax,
/// "extended header").
fn pax_record(buf: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    buf.extend_from_slice(len.to_string().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(key);
    buf.push(b'=');
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// Stores `path` in the ustar `name` (100 bytes) and `prefix` (155 bytes)
/// fields, split at a `/`; `false` if it cannot fit.
fn set_ustar_path(h: &mut tar::UstarHeader, path: &[u8]) -> bool {
    if path.len() <= h.name.len() {
        h.name[..path.len()].copy_from_slice(path);
        return true;
    }
    let split = path.iter().enumerate().position(|(i, b)| {
        *b == b'/' && i <= h.prefix.len() && path.len() - i - 1 <= h.name.len() && path.len() - i - 1 > 0
    });
    match split {
        Some(i) => {
            h.prefix[..i].copy_from_slice(&path[..i]);
            h.name[..path.len() - i - 1].copy_from_slice(&path[i + 1..]);
            true
        }
        None => false,
    }
}

fn write_header(out: &mut impl Write, spec: &HeaderSpec<'_>) -> io::Result<()> {
    let mut pax = Vec::new();
    let mut header = tar::Header::new_ustar();
    let (mode, uid, gid, mtime, rdev) = match spec.meta {
        Some(m) => (m.mode, u64::from(m.uid), u64::from(m.gid), m.mtime.0, m.rdev),
        None => (0, 0, 0, 0, (0, 0)),
    };
    {
        let h = header.as_ustar_mut().expect("new_ustar makes a ustar header");
        if !set_ustar_path(h, spec.path) {
            pax_record(&mut pax, b"path", spec.path);
            let n = spec.path.len().min(h.name.len());
            h.name[..n].copy_from_slice(&spec.path[..n]);
        }
        if let Some(link) = spec.link {
            if link.len() <= h.linkname.len() {
                h.linkname[..link.len()].copy_from_slice(link);
            } else {
                pax_record(&mut pax, b"linkpath", link);
            }
        }
    }
    header.set_mode(mode);
    let mut id = |key: &[u8], value: u64| {
        if value > USTAR_MAX_7 {
            pax_record(&mut pax, key, value.to_string().as_bytes());
            0
        } else {
            value
        }
    };
    header.set_uid(id(b"uid", uid));
    header.set_gid(id(b"gid", gid));
    match u64::try_from(mtime) {
        Ok(t) if t <= USTAR_MAX_11 => header.set_mtime(t),
        _ => {
            pax_record(&mut pax, b"mtime", mtime.to_string().as_bytes());
            header.set_mtime(0);
        }
    }
    if spec.size > USTAR_MAX_11 {
        pax_record(&mut pax, b"size", spec.size.to_string().as_bytes());
        header.set_size(0);
    } else {
        header.set_size(spec.size);
    }
    header.set_entry_type(spec.kind);
    if matches!(spec.kind, EntryType::Char | EntryType::Block) {
        let too_big = |n: u32| u64::from(n) > USTAR_MAX_7;
        if too_big(rdev.0) || too_big(rdev.1) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "device number exceeds ustar range"));
        }
        header.set_device_major(rdev.0)?;
        header.set_device_minor(rdev.1)?;
    }
    for (k, v) in spec.xattrs {
        pax_record(&mut pax, &[&b"SCHILY.xattr."[..], k].concat(), v);
    }
    header.set_cksum();

    if !pax.is_empty() {
        let mut ph = tar::Header::new_ustar();
        ph.as_ustar_mut().expect("ustar").name[..PAX_HEADER_NAME.len()].copy_from_slice(PAX_HEADER_NAME);
        ph.set_mode(0o644);
        ph.set_uid(0);
        ph.set_gid(0);
        ph.set_mtime(0);
        ph.set_size(pax.len() as u64);
        ph.set_entry_type(EntryType::XHeader);
        ph.set_cksum();
        out.write_all(ph.as_bytes())?;
        out.write_all(&pax)?;
        pad(out, pax.len() as u64)?;
    }
    out.write_all(header.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut b = Vec::new();
        pax_record(&mut b, b"path", b"a");
        assert_eq!(b, b"9 path=a\n");
        // " key=" + value + "\n" is 97 bytes for 91 value bytes; two digits
        // make 99. At 92 value bytes, 98 + 2 = 100 needs a third digit, so
        // the record is 101 bytes (no 100-byte record exists for this key).
        for (value_len, want) in [(90usize, 98usize), (91, 99), (92, 101)] {
            let mut b = Vec::new();
            pax_record(&mut b, b"key", &vec![b'v'; value_len]);
            assert_eq!(b.len(), want, "{}", String::from_utf8_lossy(&b));
            assert!(b.starts_with(format!("{want} key=").as_bytes()));
        }
    }

    #[test]
    fn ustar_path_splits_at_a_slash() {
        let mut h = tar::Header::new_ustar();
        let u = h.as_ustar_mut().unwrap();
        let long = format!("{}/{}/", "p".repeat(150), "n".repeat(98));
        assert!(set_ustar_path(u, long.as_bytes()));
        assert_eq!(h.path_bytes().as_ref(), long.as_bytes());
        let mut h = tar::Header::new_ustar();
        let too_long = format!("{}/{}", "p".repeat(160), "n".repeat(98));
        assert!(!set_ustar_path(h.as_ustar_mut().unwrap(), too_long.as_bytes()));
        let mut h = tar::Header::new_ustar();
        assert!(!set_ustar_path(h.as_ustar_mut().unwrap(), "x".repeat(101).as_bytes()));
    }
}
