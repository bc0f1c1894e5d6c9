//! Layer apply: one pass over an OCI layer blob that hashes the compressed
//! stream, decompresses it, hashes the tar and extracts it into a
//! directory.
//!
//! ```text
//! blob ─▶ sha256 (compressed) ─▶ gzip/zstd/none ─▶ sha256 (diff ID) ─▶ tar ─▶ dir
//! ```
//!
//! **Security invariant:** nothing outside the target directory is ever
//! written, whatever the tar says. Every path is resolved by the kernel
//! with `openat2(RESOLVE_IN_ROOT)` relative to an fd of the directory, so
//! symlinks created by earlier entries (absolute or `../..`) resolve inside
//! it; the last component is then created with an `*at` call that never
//! follows a symlink (`O_EXCL|O_NOFOLLOW`, `mknodat`, `symlinkat`,
//! `linkat` without `AT_SYMLINK_FOLLOW`), replacing whatever was there.
//! Entry paths and hardlink targets whose `..` would climb above the root
//! are refused outright rather than clamped, as Docker does.
//!
//! Entry semantics follow Docker's `pkg/archive` `UnpackLayer`: missing
//! parents are created `0755`, a non-directory replaces whatever exists, an
//! existing directory stays when the entry is a directory (and takes the
//! entry's metadata), the root entry (`./`) is skipped, AUFS bookkeeping
//! (`.wh..wh.*` at the root) is skipped. Directory times are set last,
//! since creating children changes them. Whiteouts follow the OCI
//! image-spec: they apply only to lower layers, so an entry this same
//! layer created is never whited out, in either [`Whiteouts`] mode.

use super::compression::{self, Compression, Decompressor};
use super::{OVERLAY_OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::digest::{DiffId, Digest, HashingReader};
use crate::snapshot::Whiteouts;
use crate::sys::fs::{self as sysfs, Kind, Node};
use std::collections::HashSet;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use tar::EntryType;

/// Read-side buffer sizes: the compressed input, the decompressed tar and
/// file data are all moved in 1 MiB chunks.
const BUF_SIZE: usize = 1 << 20;

/// PAX record prefix for extended attributes (as written by GNU tar,
/// libarchive and Go's `archive/tar`).
const PAX_XATTR: &[u8] = b"SCHILY.xattr.";

/// What applying a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// sha256 of the uncompressed tar stream, trailing padding included.
    pub diff_id: DiffId,
    /// sha256 of the blob as read.
    pub compressed: Digest,
    /// Bytes of the blob.
    pub compressed_size: u64,
    /// Bytes of the uncompressed tar stream.
    pub size: u64,
    /// Bytes of regular-file content in the layer (Docker's layer size).
    pub content_size: u64,
    pub compression: Compression,
}

/// Failures of layer apply. Entry variants carry the entry's path as it
/// appears in the tar.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("open target directory {path}: {source}")]
    Target { path: PathBuf, source: io::Error },
    #[error("read layer: {0}")]
    Read(#[source] io::Error),
    #[error("tar entry {path:?}: path escapes the layer root")]
    PathEscapes { path: String },
    #[error("tar entry {path:?}: hardlink target {target:?} is absolute")]
    AbsoluteLinkTarget { path: String, target: String },
    #[error("tar entry {path:?}: hardlink target {target:?} escapes the layer root")]
    LinkTargetEscapes { path: String, target: String },
    #[error("tar entry {path:?}: unsupported entry type {kind:?}")]
    UnsupportedType { path: String, kind: char },
    #[error("tar entry {path:?}: invalid {field}: {detail}")]
    InvalidHeader { path: String, field: &'static str, detail: String },
    #[error("tar entry {path:?}: {op}: {source}")]
    Entry { path: String, op: &'static str, source: io::Error },
}

fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Extracts the layer `blob` (plain, gzip or zstd tar) into `dir`, turning
/// whiteouts into `whiteouts`' representation, and returns its digests.
///
/// The stream is read to its very end, so `diff_id` is the digest of the
/// whole uncompressed stream and `compressed` that of the whole blob. On
/// error `dir` is left half-written (the caller discards the snapshot) but
/// nothing outside it has been touched.
pub fn apply_layer<R: Read>(blob: R, dir: &Path, whiteouts: Whiteouts) -> Result<ApplyOutcome, ApplyError> {
    let root = sysfs::open_dir(dir).map_err(|source| ApplyError::Target { path: dir.to_owned(), source })?;
    let mut compressed = HashingReader::new(blob);
    let (compression, sniffed) = compression::sniff(&mut compressed).map_err(ApplyError::Read)?;
    let decoder =
        Decompressor::new(BufReader::with_capacity(BUF_SIZE, sniffed), compression).map_err(ApplyError::Read)?;
    let mut applier = Applier::new(root, whiteouts);
    // An uncompressed blob *is* the tar: hashing it twice would double the
    // CPU cost of apply for nothing.
    let (plain, content_size) = if compression == Compression::None {
        (None, extract(decoder, &mut applier)?)
    } else {
        let mut plain = HashingReader::new(decoder);
        let content_size = extract(&mut plain, &mut applier)?;
        (Some(plain.finish()), content_size)
    };
    io::copy(&mut compressed, &mut io::sink()).map_err(ApplyError::Read)?;
    let (compressed, compressed_size) = compressed.finish();
    let (diff_id, size) = plain.unwrap_or_else(|| (compressed.clone(), compressed_size));
    Ok(ApplyOutcome { diff_id: DiffId(diff_id), compressed, compressed_size, size, content_size, compression })
}

/// Extracts every entry of the tar `stream`, then reads the stream to its
/// end: the tar reader stops at the first zero block, but the rest
/// (end-of-archive blocks, record padding, the gzip trailer whose CRC is
/// checked here) is still covered by the digests. Returns the bytes of
/// regular-file content.
fn extract(mut stream: impl Read, applier: &mut Applier) -> Result<u64, ApplyError> {
    let mut content = 0u64;
    {
        let mut archive = tar::Archive::new(BufReader::with_capacity(BUF_SIZE, &mut stream));
        for entry in archive.entries().map_err(ApplyError::Read)? {
            let mut entry = entry.map_err(ApplyError::Read)?;
            if entry.header().entry_type().is_file() {
                content += entry.size();
            }
            applier.entry(&mut entry)?;
        }
    }
    applier.finish()?;
    io::copy(&mut stream, &mut io::sink()).map_err(ApplyError::Read)?;
    Ok(content)
}

/// Splits a tar path into normal components, dropping empty and `.` ones
/// and folding `..` lexically; `None` if `..` climbs above the root.
/// A leading `/` is ignored: absolute entry names are relative to the
/// layer root, as in Docker.
fn clean(path: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

fn is_errno(e: &io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

/// Runs `create`; if the name is taken, removes whatever is there
/// (recursively, without following symlinks) and runs it again.
fn replacing<T>(parent: BorrowedFd<'_>, name: &[u8], mut create: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match create() {
        Err(e) if is_errno(&e, libc::EEXIST) => {
            sysfs::remove_all_at(parent, name)?;
            create()
        }
        r => r,
    }
}

/// Metadata of one entry, from its header and PAX records.
struct Attrs {
    mode: u32,
    uid: u32,
    gid: u32,
    atime: (i64, u32),
    mtime: (i64, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A numeric header field, where a blank field (all NUL or space, as some
/// writers leave unused ones) means 0, as in Go's `archive/tar`.
fn numeric(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        r => r,
    }
}

/// Parses a PAX time (`[-]seconds[.fraction]`, POSIX pax "mtime").
fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(d - b'0') * 10u32.pow(8 - u32::try_from(i).ok()?);
    }
    Some(match (neg, nanos) {
        (false, n) => (secs, n),
        (true, 0) => (-secs, 0),
        (true, n) => (-secs - 1, 1_000_000_000 - n),
    })
}

fn attrs<R: Read>(entry: &mut tar::Entry<'_, R>, path: &[u8]) -> Result<Attrs, ApplyError> {
    let invalid = |field: &'static str, detail: String| ApplyError::InvalidHeader { path: lossy(path), field, detail };
    let h = entry.header();
    let old = h.as_old();
    let mode = numeric(h.mode().map(u64::from), &old.mode).map_err(|e| invalid("mode", e.to_string()))? & 0o7777;
    let mode = u32::try_from(mode).unwrap_or(0);
    let uid = numeric(h.uid(), &old.uid).map_err(|e| invalid("uid", e.to_string()))?;
    let uid = u32::try_from(uid).map_err(|_| invalid("uid", uid.to_string()))?;
    let gid = numeric(h.gid(), &old.gid).map_err(|e| invalid("gid", e.to_string()))?;
    let gid = u32::try_from(gid).map_err(|_| invalid("gid", gid.to_string()))?;
    let mtime = numeric(h.mtime(), &old.mtime).map_err(|e| invalid("mtime", e.to_string()))?;
    let mut mtime = (i64::try_from(mtime).map_err(|_| invalid("mtime", mtime.to_string()))?, 0);
    let mut atime =
        h.as_gnu().and_then(|g| g.atime().ok()).and_then(|a| i64::try_from(a).ok()).filter(|a| *a != 0).map(|a| (a, 0));
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|e| invalid("pax header", e.to_string()))? {
        for ext in exts {
            let ext = ext.map_err(|e| invalid("pax header", e.to_string()))?;
            match ext.key_bytes() {
                b"mtime" => {
                    mtime = parse_pax_time(ext.value_bytes())
                        .ok_or_else(|| invalid("pax mtime", lossy(ext.value_bytes())))?
                }
                b"atime" => {
                    atime = Some(
                        parse_pax_time(ext.value_bytes())
                            .ok_or_else(|| invalid("pax atime", lossy(ext.value_bytes())))?,
                    )
                }
                k => {
                    if let Some(name) = k.strip_prefix(PAX_XATTR) {
                        if !name.starts_with(OVERLAY_XATTR_PREFIX) {
                            xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
        }
    }
    // Docker's rule: an access time older than the modification time (or
    // none at all) becomes the modification time.
    let atime = atime.filter(|a| *a >= mtime).unwrap_or(mtime);
    Ok(Attrs { mode, uid, gid, atime, mtime, xattrs })
}

/// Whether an xattr failure is one to skip: the filesystem does not
/// support the namespace, or (for symlinks and device nodes) the kernel
/// refuses `user.*` on that file type.
fn ignorable_xattr_error(e: &io::Error, special: bool) -> bool {
    is_errno(e, libc::EOPNOTSUPP) || (special && is_errno(e, libc::EPERM))
}

/// A directory entry's times, applied after every entry is in place.
struct DirTimes {
    path: Vec<u8>,
    atime: (i64, u32),
    mtime: (i64, u32),
}

/// The state of one apply.
struct Applier {
    root: OwnedFd,
    whiteouts: Whiteouts,
    /// Paths this layer put in place, entries and the parents created for
    /// them: whiteouts never delete these, opaque directories keep them.
    created: HashSet<Vec<u8>>,
    /// Directories whose times are set once every entry is in place.
    dirs: Vec<DirTimes>,
    /// The parent directory of the previous entry, by path. Tars list
    /// siblings together, so this saves most `openat2` calls. It stays
    /// valid because an entry only ever replaces or removes children of its
    /// own parent, never the parent itself.
    parent: Option<(Vec<u8>, OwnedFd)>,
    buf: Vec<u8>,
}

impl Applier {
    fn new(root: OwnedFd, whiteouts: Whiteouts) -> Applier {
        Applier { root, whiteouts, created: HashSet::new(), dirs: Vec::new(), parent: None, buf: vec![0; BUF_SIZE] }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ApplyError> {
        let mut kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        // Old (v7) tars mark directories only by a trailing slash.
        if kind == EntryType::Regular && raw.ends_with(b"/") {
            kind = EntryType::Directory;
        }
        let comps = clean(&raw).ok_or_else(|| ApplyError::PathEscapes { path: lossy(&raw) })?;
        let Some((name, parent)) = comps.split_last() else {
            return Ok(()); // the root itself
        };
        if comps[0].starts_with(WHITEOUT_META_PREFIX) && comps[0] != WHITEOUT_OPAQUE {
            return Ok(());
        }
        if *name == WHITEOUT_OPAQUE {
            return self.opaque(parent, &raw);
        }
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(parent, target, &raw);
        }

        let attrs = attrs(entry, &raw)?;
        let parent_fd = self.take_parent(parent, true, &raw)?.ok_or_else(|| at(&raw, "open parent")(enoent()))?;
        let pfd = parent_fd.as_fd();
        let path = join(&comps);
        let result = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, pfd, name, &attrs, &raw)
            }
            EntryType::Directory => self.dir(pfd, name, &attrs, &raw).map(|()| {
                self.dirs.push(DirTimes { path: path.clone(), atime: attrs.atime, mtime: attrs.mtime });
            }),
            EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| ApplyError::InvalidHeader {
                    path: lossy(&raw),
                    field: "link name",
                    detail: "missing".into(),
                })?;
                replacing(pfd, name, || sysfs::symlink_at(&target, pfd, name))
                    .map_err(at(&raw, "create symlink"))
                    .and_then(|()| self.special_attrs(pfd, name, &attrs, false, &raw))
            }
            EntryType::Link => self.hardlink(entry, pfd, name, &path, &raw),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let node = match kind {
                    EntryType::Char => Node::Char,
                    EntryType::Block => Node::Block,
                    _ => Node::Fifo,
                };
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                replacing(pfd, name, || sysfs::mknod_at(pfd, name, node, 0o600, major, minor))
                    .map_err(at(&raw, "mknod"))
                    .and_then(|()| self.special_attrs(pfd, name, &attrs, true, &raw))
            }
            other => Err(ApplyError::UnsupportedType { path: lossy(&raw), kind: char::from(other.as_byte()) }),
        };
        self.parent = Some((join(parent), parent_fd));
        result?;
        self.created.insert(path);
        Ok(())
    }

    /// The directory `parent` (components under the root), from the cache
    /// or resolved in the root; missing directories are created when
    /// `create`, otherwise `None` is returned for them. The caller puts the
    /// fd back into `self.parent`.
    fn take_parent(&mut self, parent: &[&[u8]], create: bool, raw: &[u8]) -> Result<Option<OwnedFd>, ApplyError> {
        let key = join(parent);
        if let Some((k, fd)) = self.parent.take() {
            if k == key {
                return Ok(Some(fd));
            }
        }
        match sysfs::open_dir_in_root(self.root.as_fd(), &key) {
            Ok(fd) => return Ok(Some(fd)),
            Err(e) if is_errno(&e, libc::ENOENT) && create => {}
            Err(e) if is_errno(&e, libc::ENOENT) => return Ok(None),
            Err(e) => return Err(at(raw, "open parent")(e)),
        }
        // Slow path: create the missing directories one by one, each with
        // mkdirat in its resolved parent (so never through a symlink).
        let mut cur = sysfs::open_dir_in_root(self.root.as_fd(), b"").map_err(at(raw, "open root"))?;
        for i in 0..parent.len() {
            let prefix = join(&parent[..=i]);
            cur = match sysfs::open_dir_in_root(self.root.as_fd(), &prefix) {
                Ok(fd) => fd,
                Err(e) if is_errno(&e, libc::ENOENT) => {
                    match sysfs::mkdir_at(cur.as_fd(), parent[i], 0o755) {
                        Ok(()) => {}
                        // Something is there but did not resolve: a
                        // symlink to a missing directory.
                        Err(e) if is_errno(&e, libc::EEXIST) => {
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
        Ok(Some(cur))
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        name: &[u8],
        attrs: &Attrs,
        raw: &[u8],
    ) -> Result<(), ApplyError> {
        let fd = replacing(parent, name, || sysfs::create_file_at(parent, name)).map_err(at(raw, "create file"))?;
        let mut file = std::fs::File::from(fd);
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(at(raw, "read data")(e)),
            };
            file.write_all(&self.buf[..n]).map_err(at(raw, "write data"))?;
        }
        self.fd_attrs(file.as_fd(), attrs, raw)
    }

    fn dir(&mut self, parent: BorrowedFd<'_>, name: &[u8], attrs: &Attrs, raw: &[u8]) -> Result<(), ApplyError> {
        match sysfs::mkdir_at(parent, name, 0o700) {
            Ok(()) => {}
            Err(e) if is_errno(&e, libc::EEXIST) => {
                let meta = sysfs::lstat_at(parent, name).map_err(at(raw, "stat"))?;
                if meta.kind != Kind::Dir {
                    sysfs::remove_all_at(parent, name).map_err(at(raw, "remove existing"))?;
                    sysfs::mkdir_at(parent, name, 0o700).map_err(at(raw, "mkdir"))?;
                }
            }
            Err(e) => return Err(at(raw, "mkdir")(e)),
        }
        let fd = sysfs::open_dir_at(parent, name).map_err(at(raw, "open directory"))?;
        self.fd_attrs(fd.as_fd(), attrs, raw)
    }

    /// Owner, then mode (chown clears setuid/setgid), then xattrs (chown
    /// also drops `security.capability`), then times.
    fn fd_attrs(&self, fd: BorrowedFd<'_>, attrs: &Attrs, raw: &[u8]) -> Result<(), ApplyError> {
        sysfs::fchown(fd, attrs.uid, attrs.gid).map_err(at(raw, "chown"))?;
        sysfs::fchmod(fd, attrs.mode).map_err(at(raw, "chmod"))?;
        for (k, v) in &attrs.xattrs {
            match sysfs::fsetxattr(fd, k, v) {
                Err(e) if !ignorable_xattr_error(&e, false) => return Err(at(raw, "set xattr")(e)),
                _ => {}
            }
        }
        sysfs::futimens(fd, attrs.atime, attrs.mtime).map_err(at(raw, "set times"))
    }

    /// Metadata for symlinks and device nodes, which cannot be opened
    /// safely (opening a FIFO blocks, a device may act), by name instead.
    fn special_attrs(
        &self,
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
                Err(e) if !ignorable_xattr_error(&e, true) => return Err(at(raw, "set xattr")(e)),
                _ => {}
            }
        }
        sysfs::lutimens_at(parent, name, attrs.atime, attrs.mtime).map_err(at(raw, "set times"))
    }

    /// A hard link to an entry already extracted. The target is resolved
    /// in the root like any path; it may not be absolute or climb out.
    /// The link shares the target's inode, so it takes no metadata of its
    /// own.
    fn hardlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
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
    fn whiteout(&mut self, parent: &[&[u8]], target: &[u8], raw: &[u8]) -> Result<(), ApplyError> {
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
        let Some(fd) = self.take_parent(parent, create, raw)? else {
            return Ok(()); // nothing below to delete
        };
        let result = match self.whiteouts {
            // overlayfs: a 0/0 character device hides the lower entry.
            Whiteouts::Overlay => {
                replacing(fd.as_fd(), target, || sysfs::mknod_at(fd.as_fd(), target, Node::Char, 0, 0, 0))
                    .map_err(at(raw, "create whiteout"))
            }
            Whiteouts::Delete => sysfs::remove_all_at(fd.as_fd(), target).map_err(at(raw, "delete")),
        };
        self.parent = Some((join(parent), fd));
        result
    }

    /// `.wh..wh..opq` in `parent`.
    fn opaque(&mut self, parent: &[&[u8]], raw: &[u8]) -> Result<(), ApplyError> {
        let create = self.whiteouts == Whiteouts::Overlay;
        let Some(fd) = self.take_parent(parent, create, raw)? else {
            return Ok(());
        };
        let key = join(parent);
        let result = match self.whiteouts {
            Whiteouts::Overlay => {
                sysfs::fsetxattr(fd.as_fd(), OVERLAY_OPAQUE_XATTR, b"y").map_err(at(raw, "set opaque xattr"))
            }
            Whiteouts::Delete => self.clear_lower(fd.as_fd(), &key).map_err(at(raw, "clear opaque directory")),
        };
        self.parent = Some((key, fd));
        result
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

    /// Sets directory times, now that nothing will be created in them. A
    /// directory a later entry removed or replaced is skipped.
    fn finish(&mut self) -> Result<(), ApplyError> {
        self.parent = None;
        for DirTimes { path, atime, mtime } in &self.dirs {
            match sysfs::open_dir_in_root_nofollow(self.root.as_fd(), path) {
                Ok(fd) => sysfs::futimens(fd.as_fd(), *atime, *mtime).map_err(at(path, "set directory times"))?,
                Err(e) if [libc::ENOENT, libc::ELOOP, libc::ENOTDIR].iter().any(|n| is_errno(&e, *n)) => {}
                Err(e) => return Err(at(path, "open directory")(e)),
            }
        }
        Ok(())
    }
}

/// Maps an I/O error to the entry `raw` and the operation that failed.
fn at<'a>(raw: &'a [u8], op: &'static str) -> impl FnOnce(io::Error) -> ApplyError + 'a {
    move |source| ApplyError::Entry { path: lossy(raw), op, source }
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_folds_dot_dot_and_refuses_escapes() {
        let c = |p: &str| clean(p.as_bytes()).map(|v| String::from_utf8(join(&v)).unwrap());
        assert_eq!(c("./a//b/./c/").as_deref(), Some("a/b/c"));
        assert_eq!(c("/etc/passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(c("a/../b").as_deref(), Some("b"));
        assert_eq!(c("./").as_deref(), Some(""));
        assert_eq!(c("../x"), None);
        assert_eq!(c("a/../../x"), None);
        assert_eq!(c("/../x"), None);
    }

    #[test]
    fn parses_pax_times() {
        assert_eq!(parse_pax_time(b"1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(parse_pax_time(b"1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(parse_pax_time(b"1.1234567899"), Some((1, 123_456_789)));
        assert_eq!(parse_pax_time(b"-1000"), Some((-1000, 0)));
        assert_eq!(parse_pax_time(b"-1.25"), Some((-2, 750_000_000)));
        assert_eq!(parse_pax_time(b""), None);
        assert_eq!(parse_pax_time(b"1e9"), None);
        assert_eq!(parse_pax_time(b"-"), None);
    }
}
