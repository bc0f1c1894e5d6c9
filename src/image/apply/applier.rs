//! The semantics of each entry kind (Docker's `UnpackLayer` rules, OCI
//! whiteouts), shared by the sequential and the parallel path. Regular
//! files are handed to a [`Files`] implementation, which writes them
//! inline or on worker threads; every other operation runs here, in entry
//! order, after asking [`Files::order`] to finish any write it could
//! conflict with.
//!
//! **Parent directories.** Each entry is created with one `*at` call in
//! its parent's fd. The fds are cached by path ([`DirCache`]). In the
//! parallel path only paths that resolve with `RESOLVE_NO_SYMLINKS` are
//! cached, so a cached path names exactly one directory until an entry at
//! that path (or above it) removes or replaces it, which invalidates it;
//! paths through a symlink are resolved with `RESOLVE_IN_ROOT` each time,
//! confined as before. The sequential path keeps one entry: the parent of
//! the previous entry.

use super::entry::{at, attrs, check_header, clean, is_errno, join, lossy, replacing, Attrs, Entry};
use super::ApplyError;
use crate::image::{OVERLAY_OPAQUE_XATTR, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::snapshot::Whiteouts;
use crate::sys::fs::{self as sysfs, Kind, Node};
use crate::sys::Errno;
use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use tar::EntryType;

/// A write ordering question [`Applier`] asks before an operation; the
/// answer is to return once no pending file write conflicts with it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Op<'a> {
    /// A directory is made (or kept) at this path: conflicts with a file
    /// pending at the path itself.
    Dir(&'a [u8]),
    /// Whatever is at this path is removed or replaced: conflicts with a
    /// file pending at it or below it.
    Replace(&'a [u8]),
    /// The parent directory at this path is about to be resolved: conflicts
    /// with a file pending at it or any of its ancestors.
    Resolve(&'a [u8]),
    /// Conflicts with everything (hard links, opaque directories, paths
    /// through symlinks).
    All,
}

/// A regular file to create: `name` in `parent`, then `attrs`.
pub(super) struct NewFile {
    pub parent: Arc<OwnedFd>,
    pub name: Vec<u8>,
    /// The cleaned path under the root, for ordering.
    pub path: Vec<u8>,
    /// The path as the tar spells it, for errors.
    pub raw: Vec<u8>,
    pub attrs: Attrs,
    /// `parent` was reached through a symlink, so `path` is not where the
    /// file really is: it cannot be ordered by path and must be written
    /// before the next entry.
    pub aliased: bool,
}

/// Where regular files go and how other operations are ordered with them.
pub(super) trait Files<E> {
    /// Returns once no pending file write conflicts with `op`.
    fn order(&mut self, op: Op<'_>) -> Result<(), ApplyError>;
    /// Creates `file` with the data of `entry`.
    fn file(&mut self, entry: &mut E, file: NewFile) -> Result<(), ApplyError>;
}

/// Directory fds by path under the root, most recently used first.
pub(super) struct DirCache {
    entries: Vec<(Vec<u8>, Arc<OwnedFd>)>,
    capacity: usize,
}

impl DirCache {
    pub fn new(capacity: usize) -> DirCache {
        DirCache { entries: Vec::with_capacity(capacity), capacity }
    }

    fn get(&mut self, path: &[u8]) -> Option<Arc<OwnedFd>> {
        let i = self.entries.iter().position(|(k, _)| k == path)?;
        if i != 0 {
            let e = self.entries.remove(i);
            self.entries.insert(0, e);
        }
        Some(self.entries[0].1.clone())
    }

    fn insert(&mut self, path: Vec<u8>, fd: Arc<OwnedFd>) {
        self.entries.retain(|(k, _)| *k != path);
        self.entries.truncate(self.capacity.saturating_sub(1));
        self.entries.insert(0, (path, fd));
    }

    /// Forgets `path` and everything below it.
    fn invalidate(&mut self, path: &[u8]) {
        self.entries.retain(|(k, _)| !is_at_or_below(k, path));
    }

    /// Forgets everything strictly below `path`.
    fn invalidate_below(&mut self, path: &[u8]) {
        self.entries.retain(|(k, _)| k == path || !is_at_or_below(k, path));
    }

    fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Whether `path` is `dir` or lies below it (`""` is the root).
pub(super) fn is_at_or_below(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || (path.starts_with(dir) && (path.len() == dir.len() || path[dir.len()] == b'/'))
}

/// A directory entry's times, applied after every entry is in place.
struct DirTimes {
    path: Vec<u8>,
    atime: (i64, u32),
    mtime: (i64, u32),
}

/// The state of one apply.
pub(super) struct Applier {
    root: OwnedFd,
    whiteouts: Whiteouts,
    /// Paths this layer put in place, entries and the parents created for
    /// them: whiteouts never delete these, opaque directories keep them.
    created: HashSet<Vec<u8>>,
    /// Directories whose times are set once every entry is in place.
    dirs: Vec<DirTimes>,
    cache: DirCache,
    /// Resolve parents with `RESOLVE_NO_SYMLINKS` first and cache only
    /// those (the parallel path); otherwise cache the last parent whatever
    /// it resolved through (the sequential twin).
    strict_cache: bool,
    /// The last parent resolved went through a symlink (strict mode only):
    /// what is removed under it may be cached under another path.
    aliased: bool,
}

impl Applier {
    /// `strict_cache` with a capacity > 1 for the parallel path; the
    /// sequential twin passes `false, 1`.
    pub fn new(root: OwnedFd, whiteouts: Whiteouts, strict_cache: bool, capacity: usize) -> Applier {
        Applier {
            root,
            whiteouts,
            created: HashSet::new(),
            dirs: Vec::new(),
            cache: DirCache::new(capacity.max(1)),
            strict_cache,
            aliased: false,
        }
    }

    /// Forgets cached directories an operation at `path` may remove.
    fn invalidate(&mut self, path: &[u8]) {
        if self.aliased {
            self.cache.clear();
        } else {
            self.cache.invalidate(path);
        }
    }

    pub fn entry<E: Entry, F: Files<E>>(&mut self, entry: &mut E, files: &mut F) -> Result<(), ApplyError> {
        let mut kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        // Old (v7) tars mark directories only by a trailing slash.
        if kind == EntryType::Regular && raw.ends_with(b"/") {
            kind = EntryType::Directory;
        }
        check_header(entry, kind, &raw)?;
        let comps = clean(&raw).ok_or_else(|| ApplyError::PathEscapes { path: lossy(&raw) })?;
        let Some((name, parent)) = comps.split_last() else {
            return Ok(()); // the root itself
        };
        if comps[0].starts_with(WHITEOUT_META_PREFIX) && comps[0] != WHITEOUT_OPAQUE {
            return Ok(());
        }
        if *name == WHITEOUT_OPAQUE {
            return self.opaque(parent, &raw, files);
        }
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(parent, target, &raw, files);
        }

        let attrs = attrs(entry, &raw)?;
        let parent_fd = self.parent(parent, true, &raw, files)?.ok_or_else(|| at(&raw, "open parent")(enoent()))?;
        let pfd = parent_fd.as_fd();
        let path = join(&comps);
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                // A file replacing a directory takes its subtree with it.
                self.invalidate(&path);
                let file = NewFile {
                    parent: parent_fd.clone(),
                    name: name.to_vec(),
                    path: path.clone(),
                    raw,
                    attrs,
                    aliased: self.aliased,
                };
                files.file(entry, file)?;
            }
            EntryType::Directory => {
                files.order(Op::Dir(&path))?;
                self.dir(pfd, name, &attrs, &raw)?;
                self.dirs.push(DirTimes { path: path.clone(), atime: attrs.atime, mtime: attrs.mtime });
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| ApplyError::InvalidHeader {
                    path: lossy(&raw),
                    field: "link name",
                    detail: "missing".into(),
                })?;
                files.order(Op::Replace(&path))?;
                self.invalidate(&path);
                replacing(pfd, name, || sysfs::symlink_at(&target, pfd, name)).map_err(at(&raw, "create symlink"))?;
                special_attrs(pfd, name, &attrs, false, &raw)?;
            }
            EntryType::Link => {
                files.order(Op::All)?;
                self.invalidate(&path);
                self.hardlink(entry, pfd, name, &path, &raw)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let node = match kind {
                    EntryType::Char => Node::Char,
                    EntryType::Block => Node::Block,
                    _ => Node::Fifo,
                };
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                files.order(Op::Replace(&path))?;
                self.invalidate(&path);
                replacing(pfd, name, || sysfs::mknod_at(pfd, name, node, 0o600, major, minor))
                    .map_err(at(&raw, "mknod"))?;
                special_attrs(pfd, name, &attrs, true, &raw)?;
            }
            other => return Err(ApplyError::UnsupportedType { path: lossy(&raw), kind: char::from(other.as_byte()) }),
        }
        self.created.insert(path);
        Ok(())
    }

    /// The directory `parent` (components under the root), from the cache
    /// or resolved in the root; missing directories are created when
    /// `create`, otherwise `None` is returned for them.
    fn parent<E, F: Files<E>>(
        &mut self,
        parent: &[&[u8]],
        create: bool,
        raw: &[u8],
        files: &mut F,
    ) -> Result<Option<Arc<OwnedFd>>, ApplyError> {
        let key = join(parent);
        self.aliased = false;
        if let Some(fd) = self.cache.get(&key) {
            return Ok(Some(fd));
        }
        if self.strict_cache {
            files.order(Op::Resolve(&key))?;
            match sysfs::open_dir_beneath_no_symlinks(self.root.as_fd(), &key) {
                Ok(fd) => {
                    let fd = Arc::new(fd);
                    self.cache.insert(key, fd.clone());
                    return Ok(Some(fd));
                }
                // Missing components are created below, never through a
                // symlink; anything else (a symlink on the way, a
                // non-directory) takes the confined slow path, ordered
                // after every pending write since a symlink may lead
                // anywhere in the root.
                Err(e) if is_errno(&e, Errno::NOENT) => {}
                Err(_) => {
                    files.order(Op::All)?;
                    self.aliased = true;
                }
            }
        }
        let fd = match sysfs::open_dir_in_root(self.root.as_fd(), &key) {
            Ok(fd) => fd,
            Err(e) if is_errno(&e, Errno::NOENT) && create => self.create_parents(parent, raw)?,
            Err(e) if is_errno(&e, Errno::NOENT) => return Ok(None),
            Err(e) => return Err(at(raw, "open parent")(e)),
        };
        let fd = Arc::new(fd);
        if !self.strict_cache {
            self.cache.insert(key, fd.clone());
        }
        Ok(Some(fd))
    }

    /// Slow path: creates the missing directories of `parent` one by one,
    /// each with mkdirat in its resolved parent (so never through a
    /// symlink).
    fn create_parents(&mut self, parent: &[&[u8]], raw: &[u8]) -> Result<OwnedFd, ApplyError> {
        let mut cur = sysfs::open_dir_in_root(self.root.as_fd(), b"").map_err(at(raw, "open root"))?;
        for i in 0..parent.len() {
            let prefix = join(&parent[..=i]);
            cur = match sysfs::open_dir_in_root(self.root.as_fd(), &prefix) {
                Ok(fd) => fd,
                Err(e) if is_errno(&e, Errno::NOENT) => {
                    match sysfs::mkdir_at(cur.as_fd(), parent[i], 0o755) {
                        Ok(()) => {}
                        // Something is there but did not resolve: a
                        // symlink to a missing directory.
                        Err(e) if is_errno(&e, Errno::EXIST) => {
                            return Err(at(raw, "create parent")(io::Error::new(
                                io::ErrorKind::NotFound,
                                format!("{} is a dangling symlink", lossy(&prefix)),
                            )))
                        }
                        Err(e) => return Err(at(raw, "create parent")(e)),
                    }
                    let fd = sysfs::open_dir_at(cur.as_fd(), parent[i]).map_err(at(raw, "open parent"))?;
                    // mkdirat's mode is masked by the umask.
                    sysfs::fchmod(fd.as_fd(), 0o755).map_err(at(raw, "chmod parent"))?;
                    self.created.insert(prefix);
                    fd
                }
                Err(e) => return Err(at(raw, "open parent")(e)),
            };
        }
        Ok(cur)
    }

    fn dir(&mut self, parent: BorrowedFd<'_>, name: &[u8], attrs: &Attrs, raw: &[u8]) -> Result<(), ApplyError> {
        match sysfs::mkdir_at(parent, name, 0o700) {
            Ok(()) => {}
            Err(e) if is_errno(&e, Errno::EXIST) => {
                let meta = sysfs::lstat_at(parent, name).map_err(at(raw, "stat"))?;
                if meta.kind != Kind::Dir {
                    sysfs::remove_all_at(parent, name).map_err(at(raw, "remove existing"))?;
                    sysfs::mkdir_at(parent, name, 0o700).map_err(at(raw, "mkdir"))?;
                }
            }
            Err(e) => return Err(at(raw, "mkdir")(e)),
        }
        let fd = sysfs::open_dir_at(parent, name).map_err(at(raw, "open directory"))?;
        super::entry::fd_attrs(fd.as_fd(), attrs, raw)
    }

    /// A hard link to an entry already extracted. The target is resolved
    /// in the root like any path; it may not be absolute or climb out.
    /// The link shares the target's inode, so it takes no metadata of its
    /// own.
    fn hardlink(
        &mut self,
        entry: &impl Entry,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        raw: &[u8],
    ) -> Result<(), ApplyError> {
        let target = entry.link_name_bytes().ok_or_else(|| ApplyError::InvalidHeader {
            path: lossy(raw),
            field: "link name",
            detail: "missing".into(),
        })?;
        if target.starts_with(b"/") {
            return Err(ApplyError::AbsoluteLinkTarget { path: lossy(raw), target: lossy(&target) });
        }
        let escapes = || ApplyError::LinkTargetEscapes { path: lossy(raw), target: lossy(&target) };
        let tcomps = clean(&target).ok_or_else(escapes)?;
        let Some((tname, tparent)) = tcomps.split_last() else {
            return Err(escapes());
        };
        if join(&tcomps) == path {
            return Ok(());
        }
        let tdir = sysfs::open_dir_in_root(self.root.as_fd(), &join(tparent)).map_err(at(raw, "open link target"))?;
        replacing(parent, name, || sysfs::link_at(tdir.as_fd(), tname, parent, name)).map_err(at(raw, "link"))
    }

    /// `.wh.<target>` in `parent`.
    fn whiteout<E, F: Files<E>>(
        &mut self,
        parent: &[&[u8]],
        target: &[u8],
        raw: &[u8],
        files: &mut F,
    ) -> Result<(), ApplyError> {
        if target.is_empty() || target == b"." || target == b".." {
            return Err(ApplyError::InvalidHeader {
                path: lossy(raw),
                field: "whiteout name",
                detail: "names no entry".into(),
            });
        }
        let mut path = join(parent);
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(target);
        if self.created.contains(&path) {
            return Ok(());
        }
        let create = self.whiteouts == Whiteouts::Overlay;
        let Some(fd) = self.parent(parent, create, raw, files)? else {
            return Ok(()); // nothing below to delete
        };
        files.order(Op::Replace(&path))?;
        self.invalidate(&path);
        match self.whiteouts {
            // overlayfs: a 0/0 character device hides the lower entry.
            Whiteouts::Overlay => {
                replacing(fd.as_fd(), target, || sysfs::mknod_at(fd.as_fd(), target, Node::Char, 0, 0, 0))
                    .map_err(at(raw, "create whiteout"))
            }
            Whiteouts::Delete => sysfs::remove_all_at(fd.as_fd(), target).map_err(at(raw, "delete")),
        }
    }

    /// `.wh..wh..opq` in `parent`.
    fn opaque<E, F: Files<E>>(&mut self, parent: &[&[u8]], raw: &[u8], files: &mut F) -> Result<(), ApplyError> {
        let create = self.whiteouts == Whiteouts::Overlay;
        let Some(fd) = self.parent(parent, create, raw, files)? else {
            return Ok(());
        };
        let key = join(parent);
        match self.whiteouts {
            Whiteouts::Overlay => {
                sysfs::fsetxattr(fd.as_fd(), OVERLAY_OPAQUE_XATTR, b"y").map_err(at(raw, "set opaque xattr"))
            }
            Whiteouts::Delete => {
                files.order(Op::All)?;
                if self.aliased {
                    self.cache.clear();
                } else {
                    self.cache.invalidate_below(&key);
                }
                self.clear_lower(fd.as_fd(), &key).map_err(at(raw, "clear opaque directory"))
            }
        }
    }

    /// Deletes everything under `dir` (at `path`) this layer did not put
    /// there, descending into the directories it did (Docker's
    /// `unpackedPaths` walk).
    fn clear_lower(&self, dir: BorrowedFd<'_>, path: &[u8]) -> io::Result<()> {
        for name in sysfs::read_dir_names(dir)? {
            let mut child = path.to_vec();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(&name);
            if !self.created.contains(&child) {
                sysfs::remove_all_at(dir, &name)?;
            } else if sysfs::lstat_at(dir, &name)?.kind == Kind::Dir {
                let sub = sysfs::open_dir_at(dir, &name)?;
                self.clear_lower(sub.as_fd(), &child)?;
            }
        }
        Ok(())
    }

    /// Sets directory times, now that nothing will be created in them (the
    /// caller has finished every file write). A directory a later entry
    /// removed or replaced is skipped.
    pub fn finish(&mut self) -> Result<(), ApplyError> {
        self.cache.clear();
        for DirTimes { path, atime, mtime } in &self.dirs {
            match sysfs::open_dir_in_root_nofollow(self.root.as_fd(), path) {
                Ok(fd) => sysfs::futimens(fd.as_fd(), *atime, *mtime).map_err(at(path, "set directory times"))?,
                Err(e) if [Errno::NOENT, Errno::LOOP, Errno::NOTDIR].iter().any(|n| is_errno(&e, *n)) => {}
                Err(e) => return Err(at(path, "open directory")(e)),
            }
        }
        Ok(())
    }
}

/// Metadata for symlinks and device nodes, which cannot be opened safely
/// (opening a FIFO blocks, a device may act), by name instead.
fn special_attrs(
    parent: BorrowedFd<'_>,
    name: &[u8],
    attrs: &Attrs,
    chmod: bool,
    raw: &[u8],
) -> Result<(), ApplyError> {
    sysfs::lchown_at(parent, name, attrs.uid, attrs.gid).map_err(at(raw, "chown"))?;
    if chmod {
        // Safe to follow: the node was just created by mknodat.
        sysfs::chmod_at(parent, name, attrs.mode).map_err(at(raw, "chmod"))?;
    }
    for (k, v) in &attrs.xattrs {
        match sysfs::lsetxattr_at(parent, name, k, v) {
            Err(e) if !super::entry::ignorable_xattr_error(&e, true) => return Err(at(raw, "set xattr")(e)),
            _ => {}
        }
    }
    sysfs::lutimens_at(parent, name, attrs.atime, attrs.mtime).map_err(at(raw, "set times"))
}

fn enoent() -> io::Error {
    io::Error::from(Errno::NOENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_means_whole_components() {
        assert!(is_at_or_below(b"a/b", b"a"));
        assert!(is_at_or_below(b"a", b"a"));
        assert!(is_at_or_below(b"a", b""));
        assert!(!is_at_or_below(b"ab", b"a"));
        assert!(!is_at_or_below(b"a", b"a/b"));
    }
}
