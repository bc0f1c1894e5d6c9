//! Build sources: the build context (a directory on disk, read in place,
//! filtered by `.dockerignore`) or another stage's/image's root for
//! `COPY --from`. Resolves `COPY`/`ADD` source patterns, hashes what they
//! select (content, not times, for the cache), and writes it as a tar
//! stream that layer apply lays into the build snapshot.
//!
//! **Confinement.** A tree is opened once, as a directory descriptor, and
//! every source path is resolved under it by the kernel
//! (`openat2(RESOLVE_IN_ROOT)`): a symlink, absolute or full of `..`, means
//! the same inside the tree as it would if the tree were `/`, as in
//! BuildKit — a context's `d -> /` is the context itself, an image's
//! `/v -> /etc` is the image's `/etc`. Paths that climb out lexically are
//! refused (`forbidden path outside the build context`). What a source
//! resolves to is held as an `O_PATH` descriptor; a directory is walked on
//! descriptors (`getdents`, `fstatat(AT_SYMLINK_NOFOLLOW)` and
//! `openat(O_NOFOLLOW)` relative to the parent's descriptor), so no path
//! string is walked again after it was checked. Symlinks inside the
//! selection are copied as symlinks. Files are opened `O_NONBLOCK` and
//! their type is checked on the descriptor: a FIFO or device is never read
//! (and a FIFO never blocks the build); sockets, FIFOs and devices are not
//! copied, as Docker refuses devices and cannot copy a socket.

use super::ignore::{clean, glob_match, has_glob, Ignore};
use super::BuildError;
use crate::digest::Digest;
use crate::root::{IoError, IoResultExt};
use crate::sys::fs::{self as sysfs, Kind, Meta, Mode, OFlags};
use crate::sys::Errno;
use crate::uring::treehash::{FeedError, TreeHasher};
use crate::uring::{IoEngine, IoEngineKind};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// The engine [`Tree::hash`] reads files with. Plain, because io_uring
/// did not win everywhere: on a 20k-file tree (idle `strata bench all
/// --quick --runs 5`, benches/results/2026-12-08-all-quick.json) it was
/// 3.8x (XFS) and 4.2x (ext4) faster cold but 1.55x slower warm on both,
/// and a build context was usually just written, so it is warm.
pub const HASH_IO: IoEngineKind = IoEngineKind::Sync;

/// A tree sources are taken from.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The tree's root directory, opened once.
    root: Arc<OwnedFd>,
    ignore: Ignore,
    /// How errors name the tree ("build context", "stage builder").
    label: String,
}

/// One selected source: a cleaned path in the tree and what it resolved
/// to (a top-level symlink followed within the tree).
#[derive(Debug, Clone)]
pub struct Source {
    /// Path relative to the tree root, `/`-separated, no `.`/`..`.
    pub rel: String,
    pub meta: Meta,
    /// `O_PATH` descriptor of the object `rel` resolved to.
    fd: Arc<OwnedFd>,
}

/// Where an entry of a walk can be opened: a name in an open directory,
/// or the resolved source itself.
#[derive(Clone, Copy)]
enum At<'a> {
    Child(BorrowedFd<'a>, &'a [u8]),
    Source(&'a Source),
}

/// One entry of what a source copies: its name under the destination.
struct Entry<'a> {
    name: String,
    /// Context-relative path (for `.dockerignore` and hashing).
    rel: String,
    meta: Meta,
    at: At<'a>,
}

/// How copied entries are owned and moded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attrs {
    /// `--chown`: uid, gid (else root).
    pub owner: Option<(u32, u32)>,
    /// `--chmod`: permission bits for every entry.
    pub mode: Option<u32>,
}

/// `openat(flags)` relative to `dir` for a regular file: `O_NOFOLLOW`,
/// `O_NONBLOCK` (a FIFO swapped in does not block) and `O_NOCTTY`.
const READ_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::NONBLOCK).union(OFlags::NOCTTY).union(OFlags::CLOEXEC);

/// Checks that `fd` is a regular file (on the descriptor) and returns it
/// with its metadata; `None` for anything else.
fn regular(fd: OwnedFd) -> io::Result<Option<(File, Meta)>> {
    let meta = sysfs::fstat(fd.as_fd())?;
    Ok((meta.kind == Kind::File).then(|| (File::from(fd), meta)))
}

/// Reopens the object an `O_PATH` descriptor holds for reading, if it is
/// a regular file, through its `/proc/self/fd` magic link (which names
/// that inode, whatever happened to the path since): runc's model for
/// reopening a resolved path.
fn reopen_file(opath: BorrowedFd<'_>) -> io::Result<Option<(File, Meta)>> {
    if sysfs::fstat(opath)?.kind != Kind::File {
        return Ok(None);
    }
    regular(sysfs::open(&sysfs::fd_path(opath), READ_FLAGS, Mode::empty())?)
}

impl At<'_> {
    /// The entry opened for reading if it is (still) a regular file.
    fn open_file(&self) -> io::Result<Option<(File, Meta)>> {
        match *self {
            At::Child(dir, name) => regular(sysfs::openat(dir, name, READ_FLAGS | OFlags::NOFOLLOW, Mode::empty())?),
            At::Source(src) => reopen_file(src.fd.as_fd()),
        }
    }

    fn readlink(&self) -> io::Result<Vec<u8>> {
        match *self {
            At::Child(dir, name) => sysfs::readlink_at(dir, name),
            // A source is resolved through its symlinks: never one itself.
            At::Source(_) => Err(Errno::INVAL.into()),
        }
    }
}

impl Source {
    pub fn is_dir(&self) -> bool {
        self.meta.kind == Kind::Dir
    }

    /// The source opened for reading if it is a regular file (the type
    /// checked on the descriptor, never blocking on a FIFO); `None` for
    /// anything else.
    pub fn open_file(&self) -> Result<Option<File>, BuildError> {
        Ok(reopen_file(self.fd.as_fd()).at(&self.rel)?.map(|(f, _)| f))
    }
}

impl Tree {
    /// The build context at `root`, with its `.dockerignore`.
    pub fn context(root: &Path) -> Result<Tree, BuildError> {
        let fd = match sysfs::open_dir(root) {
            Ok(fd) => fd,
            Err(e) if Errno::from_io_error(&e) == Some(Errno::NOTDIR) => {
                return Err(BuildError::Context(format!("{}: the build context must be a directory", root.display())))
            }
            Err(e) => return Err(IoError::new(root, e).into()),
        };
        let ignore = match sysfs::open_path_in_root(fd.as_fd(), ".dockerignore") {
            Ok(f) => {
                let name = root.join(".dockerignore");
                let (mut f, _) = reopen_file(f.as_fd()).at(&name)?.ok_or_else(|| {
                    BuildError::Context(format!("{}: .dockerignore is not a regular file", name.display()))
                })?;
                let mut text = String::new();
                f.read_to_string(&mut text).at(&name)?;
                Ignore::parse(&text)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ignore::default(),
            Err(e) => return Err(IoError::new(root.join(".dockerignore"), e).into()),
        };
        Ok(Tree { root: Arc::new(fd), ignore, label: "build context".into() })
    }

    /// Another root filesystem (a stage's or an image's), no ignore file.
    pub fn rootfs(root: &Path, label: String) -> Result<Tree, BuildError> {
        let fd = sysfs::open_dir(root).at(root)?;
        Ok(Tree { root: Arc::new(fd), ignore: Ignore::default(), label })
    }

    fn not_found(&self, pattern: &str) -> BuildError {
        let why = if self.ignore.is_empty() { "" } else { " or excluded by .dockerignore" };
        BuildError::Context(format!("{pattern}: file not found in {}{why}", self.label))
    }

    /// Resolves one source pattern (a path or a glob) to the sources it
    /// names, in lexical order.
    pub fn sources(&self, pattern: &str) -> Result<Vec<Source>, BuildError> {
        let segs = clean(pattern)
            .ok_or_else(|| BuildError::Context(format!("{pattern}: forbidden path outside the {}", self.label)))?;
        let root = self.root.as_fd();
        let mut found: Vec<String> = vec![String::new()];
        for seg in &segs {
            let mut next = Vec::new();
            for base in &found {
                if has_glob(seg) {
                    let Ok(dir) = sysfs::open_dir_in_root(root, base.as_bytes()) else { continue };
                    let Ok(listed) = sysfs::getdents(dir.as_fd()) else { continue };
                    let mut names: Vec<String> =
                        listed.into_iter().map(|(n, _)| String::from_utf8_lossy(&n).into_owned()).collect();
                    names.sort();
                    for n in names.into_iter().filter(|n| glob_match(seg, n)) {
                        next.push(join(base, &n));
                    }
                } else {
                    next.push(join(base, seg));
                }
            }
            found = next;
        }
        let mut out = Vec::new();
        for rel in found {
            if !rel.is_empty() && self.ignore.excluded(&rel) {
                continue;
            }
            let fd = match sysfs::open_path_in_root(root, if rel.is_empty() { "." } else { &rel }) {
                Ok(fd) => fd,
                Err(e) if Errno::from_io_error(&e) == Some(Errno::LOOP) => {
                    return Err(BuildError::Context(format!("{rel}: too many levels of symbolic links")))
                }
                Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::NOENT | Errno::NOTDIR)) => continue,
                Err(e) => return Err(IoError::new(&rel, e).into()),
            };
            let meta = sysfs::fstat(fd.as_fd()).at(&rel)?;
            out.push(Source { rel, meta, fd: Arc::new(fd) });
        }
        if out.is_empty() {
            return Err(self.not_found(pattern));
        }
        Ok(out)
    }

    /// Calls `f` on every entry a source copies, named as it will be under
    /// the destination: a directory's contents (not the directory itself),
    /// or the file under `leaf`. Entries come in the order of their names
    /// (as one sorted list of whole paths), walked on descriptors; at most
    /// one descriptor per level is open.
    fn walk(
        &self,
        src: &Source,
        leaf: &str,
        f: &mut dyn FnMut(Entry<'_>) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        if !src.is_dir() {
            return f(Entry { name: leaf.to_owned(), rel: src.rel.clone(), meta: src.meta, at: At::Source(src) });
        }
        let dir = sysfs::open_dir_at(src.fd.as_fd(), b".").at(&src.rel)?;
        self.walk_dir(dir.as_fd(), "", &src.rel, f)
    }

    fn walk_dir(
        &self,
        dir: BorrowedFd<'_>,
        name: &str,
        rel: &str,
        f: &mut dyn FnMut(Entry<'_>) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        let listed = sysfs::getdents(dir).map_err(io::Error::from).at(rel)?;
        // A directory's own entry sorts under its name and its contents
        // under `name/`: visiting both keys in byte order gives exactly
        // the order of the sorted list of whole paths ("a", "a.txt", "a/b").
        let mut keys: Vec<(String, bool, usize, Meta)> = Vec::new();
        for (i, (child, _)) in listed.iter().enumerate() {
            let lossy = String::from_utf8_lossy(child).into_owned();
            let child_rel = join(rel, &lossy);
            let meta = sysfs::lstat_at(dir, child).at(&child_rel)?;
            let excluded = self.ignore.excluded(&child_rel);
            // An excluded directory is still walked when an exception
            // could re-include something below it.
            if meta.kind == Kind::Dir && (!excluded || self.ignore.may_reinclude_under(&child_rel)) {
                keys.push((format!("{lossy}/"), true, i, meta));
            }
            if !excluded {
                keys.push((lossy, false, i, meta));
            }
        }
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, contents, i, meta) in keys {
            let child = listed[i].0.as_slice();
            let lossy = key.trim_end_matches('/');
            let (child_name, child_rel) = (join(name, lossy), join(rel, lossy));
            if contents {
                let sub = sysfs::open_dir_at(dir, child).at(&child_rel)?;
                self.walk_dir(sub.as_fd(), &child_name, &child_rel, f)?;
            } else {
                f(Entry { name: child_name, rel: child_rel, meta, at: At::Child(dir, child) })?;
            }
        }
        Ok(())
    }

    /// A digest of what `sources` select: names, types, permission bits,
    /// sizes, file contents and link targets — never times or owners, so
    /// a checkout that only touches mtimes keeps the cache.
    pub fn hash(&self, sources: &[Source]) -> Result<Digest, BuildError> {
        match HASH_IO {
            IoEngineKind::Sync => self.hash_using(sources, None),
            IoEngineKind::Uring => self.hash_using(sources, Some(&mut IoEngine::new())),
        }
    }

    /// [`hash`](Self::hash) reading files one at a time (`None`, the
    /// twin) or in batches on `engine` ([`TreeHasher`]); the same digest.
    pub fn hash_using(&self, sources: &[Source], engine: Option<&mut IoEngine>) -> Result<Digest, BuildError> {
        let mut h = TreeHasher::new(engine);
        let fed = |e: FeedError| BuildError::from(IoError::new(&e.path, e.source));
        for src in sources {
            h.update(format!("source {} {}\n", src.rel, kind(&src.meta)).as_bytes());
            self.walk(src, "", &mut |e| {
                let mut entry = || -> Result<(), BuildError> {
                    h.update(format!("{}\0{}\0{:o}\0{}\0", e.rel, kind(&e.meta), e.meta.mode, e.meta.size).as_bytes());
                    match e.meta.kind {
                        Kind::Symlink => {
                            let t = e.at.readlink().at(&e.rel)?;
                            h.update(String::from_utf8_lossy(&t).as_bytes());
                        }
                        Kind::File => {
                            let (f, _) = e.at.open_file().at(&e.rel)?.ok_or_else(|| changed(&e.rel))?;
                            h.file(f, e.meta.size, &e.rel).map_err(fed)?;
                        }
                        _ => {}
                    }
                    h.update(b"\n");
                    Ok(())
                };
                // An earlier file's read error (still queued) comes first.
                entry().or_else(|err| h.flush().map_err(fed).and(Err(err)))
            })?;
        }
        h.finish().map_err(fed)
    }

    /// Writes the selected entries as a tar: each source's entries under
    /// `names[i]` (`""` = straight into the destination directory).
    pub fn write_tar<W: Write>(&self, sources: &[(Source, String)], attrs: Attrs, out: W) -> Result<(), BuildError> {
        let mut b = tar::Builder::new(out);
        b.mode(tar::HeaderMode::Complete);
        for (src, leaf) in sources {
            self.walk(src, leaf, &mut |e| append(&mut b, &e, attrs))?;
        }
        b.into_inner().map_err(|e| BuildError::Context(format!("writing copy stream: {e}")))?;
        Ok(())
    }
}

fn changed(rel: &str) -> BuildError {
    BuildError::Context(format!("{rel}: changed while the build read it"))
}

fn kind(m: &Meta) -> &'static str {
    match m.kind {
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
        Kind::File => "file",
        _ => "special",
    }
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}/{name}")
    }
}

/// A reader yielding exactly `left` bytes of `inner`, or an error if it
/// ends early: a tar entry's data must match the size in its header.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while it was copied"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn append<W: Write>(b: &mut tar::Builder<W>, e: &Entry<'_>, attrs: Attrs) -> Result<(), BuildError> {
    let mut h = tar::Header::new_gnu();
    let (uid, gid) = attrs.owner.unwrap_or((0, 0));
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_mode(attrs.mode.unwrap_or(e.meta.mode));
    h.set_mtime(u64::try_from(e.meta.mtime.0).unwrap_or(0));
    let err = |x: io::Error| BuildError::from(IoError::new(&e.rel, x));
    match e.meta.kind {
        Kind::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, format!("{}/", e.name), io::empty()).map_err(err)
        }
        Kind::Symlink => {
            let target = e.at.readlink().map_err(err)?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, &e.name, Path::new(std::ffi::OsStr::from_bytes(&target))).map_err(err)
        }
        Kind::File => {
            let (f, meta) = e.at.open_file().map_err(err)?.ok_or_else(|| changed(&e.rel))?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.size);
            b.append_data(&mut h, &e.name, Exact { inner: f, left: meta.size }).map_err(err)
        }
        // Sockets, FIFOs and devices in a context are not copied (Docker
        // refuses devices; a socket cannot be copied at all).
        _ => Ok(()),
    }
}

/// A tar holding one file (a `COPY <<EOF` heredoc body).
pub fn heredoc_tar<W: Write>(name: &str, body: &str, attrs: Attrs, out: W) -> Result<(), BuildError> {
    let mut b = tar::Builder::new(out);
    let mut h = tar::Header::new_gnu();
    let (uid, gid) = attrs.owner.unwrap_or((0, 0));
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_mode(attrs.mode.unwrap_or(0o644));
    h.set_size(body.len() as u64);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    let err = |e: io::Error| BuildError::Context(format!("heredoc {name}: {e}"));
    b.append_data(&mut h, name, body.as_bytes()).map_err(err)?;
    b.into_inner().map_err(err)?;
    Ok(())
}
