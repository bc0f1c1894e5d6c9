//! Whole-tree operations built on the batches: disk usage, per-file
//! hashes, and applying a list of tree operations.
//!
//! Walks go breadth-first in groups of [`DIR_GROUP`] directories: the
//! group's entries are listed with `getdents64` (no io_uring opcode for
//! it), then stat'ed or read as *one* batch, so a batch spans many small
//! directories. Directories are reopened by relative path with
//! `openat2(RESOLVE_IN_ROOT)` when their group comes up, which bounds the
//! open fds to one group and keeps the walk under the root.

use super::du::Usage;
use super::{At, Dir, IoEngine, Kind, UringError, WriteJob};
use crate::digest::{Digest, Hasher};
use crate::sys;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Directories listed per batch.
const DIR_GROUP: usize = 64;

/// One directory entry: its name, its inode number and, when `getdents64`
/// knows it, its kind.
struct DirEntry {
    name: Vec<u8>,
    kind: Option<Kind>,
    ino: u64,
}

/// `getdents64` of `dir`, without `.` and `..`.
fn list(dir: &Dir) -> Result<Vec<DirEntry>, UringError> {
    use crate::sys::fs::FileType;
    let entries = crate::sys::fs::getdents_ino(dir.as_fd()).map_err(|e| UringError::io("getdents64", dir.path(), e))?;
    let entry = |(name, file_type, ino)| {
        let kind = match file_type {
            FileType::RegularFile => Some(Kind::File),
            FileType::Directory => Some(Kind::Dir),
            FileType::Symlink => Some(Kind::Symlink),
            FileType::Unknown => None,
            _ => Some(Kind::Socket),
        };
        DirEntry { name, kind, ino }
    };
    Ok(entries.into_iter().map(entry).collect())
}

/// A breadth-first walk under `root`, a group of directories at a time.
struct Walk {
    root: Dir,
    queue: VecDeque<PathBuf>,
}

/// The directories of one group with their entries: `(relative path, dir,
/// entries)`.
type Listing = Vec<(PathBuf, Dir, Vec<DirEntry>)>;

impl Walk {
    fn new(root: &Path) -> Result<Walk, UringError> {
        Ok(Walk { root: Dir::open(root)?, queue: VecDeque::from([PathBuf::new()]) })
    }

    fn next_group(&mut self) -> Result<Option<Listing>, UringError> {
        if self.queue.is_empty() {
            return Ok(None);
        }
        let mut group = Vec::new();
        while group.len() < DIR_GROUP {
            let Some(rel) = self.queue.pop_front() else { break };
            let dir = if rel.as_os_str().is_empty() {
                self.root.clone()
            } else {
                let path = self.root.path().join(&rel);
                let fd = sys::fs::open_dir_in_root_nofollow(self.root.as_fd(), rel.as_os_str().as_bytes())
                    .map_err(|e| UringError::io("openat2", &path, e))?;
                Dir::from_fd(fd, path)
            };
            let entries = list(&dir)?;
            group.push((rel, dir, entries));
        }
        Ok(Some(group))
    }
}

/// Apparent bytes of every non-directory and the inode count under `path`
/// (including it), each hardlinked inode once — Docker's layer and
/// container size; the batched twin of [`super::du::tree_usage_simple`].
pub fn tree_usage(engine: &mut IoEngine, path: &Path) -> Result<Usage, UringError> {
    let mut walk = Walk::new(path)?;
    let top = engine.statx(&[At { dir: &walk.root, name: b"." }]).pop().expect("one result")?;
    let mut usage = Usage { size: if top.kind == Kind::Dir { 0 } else { top.size }, inodes: 1 };
    let mut seen: HashSet<(u32, u32, u64)> = HashSet::new();
    while let Some(group) = walk.next_group()? {
        // In inode order, as fts (du) does: on XFS and ext4 that is close
        // to the order of the inodes on disk, which a cold walk feels.
        let mut order: Vec<(u64, &PathBuf, &Dir, &[u8])> = group
            .iter()
            .flat_map(|(rel, dir, entries)| entries.iter().map(move |e| (e.ino, rel, dir, e.name.as_slice())))
            .collect();
        order.sort_unstable_by_key(|(ino, ..)| *ino);
        let items: Vec<At<'_>> = order.iter().map(|&(_, _, dir, name)| At { dir, name }).collect();
        let stats = engine.statx(&items);
        for ((_, rel, _, name), st) in order.iter().zip(stats) {
            let st = st?;
            if st.nlink > 1 && st.kind != Kind::Dir && !seen.insert((st.dev.0, st.dev.1, st.ino)) {
                continue;
            }
            usage.inodes += 1;
            if st.kind != Kind::Dir {
                usage.size += st.size;
            }
            if st.kind == Kind::Dir {
                walk.queue.push_back(rel.join(OsStr::from_bytes(name)));
            }
        }
    }
    Ok(usage)
}

/// The sha256 of every regular file under `path`, by path relative to it.
/// Hardlinks are hashed under each of their names; symlinks are not
/// followed.
pub fn hash_tree(engine: &mut IoEngine, path: &Path) -> Result<BTreeMap<PathBuf, Digest>, UringError> {
    let mut walk = Walk::new(path)?;
    let mut out = BTreeMap::new();
    while let Some(group) = walk.next_group()? {
        // Entries `getdents64` could not type are stat'ed first.
        let unknown: Vec<At<'_>> = group
            .iter()
            .flat_map(|(_, dir, entries)| {
                entries.iter().filter(|e| e.kind.is_none()).map(move |e| At { dir, name: &e.name })
            })
            .collect();
        let mut kinds = engine.statx(&unknown).into_iter();
        let mut files: Vec<(PathBuf, At<'_>)> = Vec::new();
        for (rel, dir, entries) in &group {
            for e in entries {
                let kind = match e.kind {
                    Some(k) => k,
                    None => kinds.next().expect("one stat per unknown entry")?.kind,
                };
                let child = rel.join(OsStr::from_bytes(&e.name));
                match kind {
                    Kind::Dir => walk.queue.push_back(child),
                    Kind::File => files.push((child, At { dir, name: &e.name })),
                    _ => {}
                }
            }
        }
        let items: Vec<At<'_>> = files.iter().map(|(_, at)| *at).collect();
        let mut hashers: HashMap<usize, Hasher> = HashMap::new();
        let mut first_error = None;
        engine.read_files_with(&items, |i, piece| match piece {
            Ok(chunk) => {
                let h = hashers.entry(i).or_default();
                h.update(chunk.data);
                if chunk.eof {
                    let h = hashers.remove(&i).expect("inserted above");
                    out.insert(files[i].0.clone(), h.finish());
                }
            }
            Err(e) => {
                hashers.remove(&i);
                first_error.get_or_insert(e);
            }
        });
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    Ok(out)
}

/// One change to a tree, by path relative to the root given to
/// [`IoEngine::apply`]. Paths must be relative and free of `..`; every
/// parent must exist (or be made by an earlier op). Nothing follows a
/// symlink in the last component except [`TreeOp::Chmod`], as chmod(2)
/// does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeOp {
    Mkdir {
        path: PathBuf,
        mode: u32,
    },
    /// Creates a new regular file (`O_EXCL`) with `mode` minus the umask.
    WriteFile {
        path: PathBuf,
        mode: u32,
        data: Vec<u8>,
    },
    /// Writes into an existing regular file at `offset`.
    WriteAt {
        path: PathBuf,
        offset: u64,
        data: Vec<u8>,
    },
    Symlink {
        path: PathBuf,
        target: Vec<u8>,
    },
    /// A hard link at `path` to the entry at `existing`.
    Hardlink {
        path: PathBuf,
        existing: PathBuf,
    },
    Chmod {
        path: PathBuf,
        mode: u32,
    },
    /// `lchown`.
    Chown {
        path: PathBuf,
        uid: u32,
        gid: u32,
    },
    /// `lsetxattr`.
    SetXattr {
        path: PathBuf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// `utimensat(AT_SYMLINK_NOFOLLOW)`, `(seconds, nanoseconds)`.
    SetTimes {
        path: PathBuf,
        atime: (i64, u32),
        mtime: (i64, u32),
    },
}

impl TreeOp {
    /// The entries the op changes (a hard link changes its source's link
    /// count too).
    fn paths(&self) -> Vec<&Path> {
        match self {
            TreeOp::Hardlink { path, existing } => vec![path, existing],
            TreeOp::Mkdir { path, .. }
            | TreeOp::WriteFile { path, .. }
            | TreeOp::WriteAt { path, .. }
            | TreeOp::Symlink { path, .. }
            | TreeOp::Chmod { path, .. }
            | TreeOp::Chown { path, .. }
            | TreeOp::SetXattr { path, .. }
            | TreeOp::SetTimes { path, .. } => vec![path],
        }
    }
}

/// Ops that may run together: none touches an entry, or an ancestor or
/// descendant of an entry, another one touches. Creating `a/b` changes
/// `a` (its mtime), so it cannot share a group with an op on `a`.
#[derive(Default)]
struct Batch {
    ops: Vec<TreeOp>,
    touched: HashSet<PathBuf>,
    /// Every proper ancestor of a touched path.
    above: HashSet<PathBuf>,
}

impl Batch {
    fn conflicts(&self, op: &TreeOp) -> bool {
        op.paths().iter().any(|p| {
            self.touched.contains(*p)
                || self.above.contains(*p)
                || p.ancestors().skip(1).any(|a| self.touched.contains(a))
        })
    }

    fn add(&mut self, op: TreeOp) {
        for p in op.paths() {
            self.touched.insert(p.to_owned());
            for a in p.ancestors().skip(1) {
                self.above.insert(a.to_owned());
            }
        }
        self.ops.push(op);
    }
}

/// Parent directories of op paths, opened once under the root.
struct Parents<'r> {
    root: &'r Dir,
    open: HashMap<PathBuf, Dir>,
}

impl Parents<'_> {
    /// The directory holding `path` and `path`'s last component.
    fn of<'p>(&mut self, path: &'p Path) -> Result<(Dir, &'p [u8]), UringError> {
        let name = path.file_name().map(OsStr::as_bytes).ok_or_else(|| {
            UringError::io("apply", self.root.path().join(path), std::io::Error::from(std::io::ErrorKind::InvalidInput))
        })?;
        let parent = path.parent().unwrap_or(Path::new(""));
        if parent.as_os_str().is_empty() {
            return Ok((self.root.clone(), name));
        }
        if let Some(d) = self.open.get(parent) {
            return Ok((d.clone(), name));
        }
        let full = self.root.path().join(parent);
        let fd = sys::fs::open_dir_in_root_nofollow(self.root.as_fd(), parent.as_os_str().as_bytes())
            .map_err(|e| UringError::io("openat2", &full, e))?;
        let d = Dir::from_fd(fd, full);
        self.open.insert(parent.to_owned(), d.clone());
        Ok((d, name))
    }
}

/// [`IoEngine::apply`]: ops are cut into conflict-free groups, in order; in
/// each group the file writes go to the engine as one batch and the
/// metadata ops run as plain syscalls on this thread.
pub(super) fn apply(engine: &mut IoEngine, root: &Dir, ops: Vec<TreeOp>) -> Result<(), UringError> {
    let mut parents = Parents { root, open: HashMap::new() };
    let mut group = Batch::default();
    for op in ops {
        if group.conflicts(&op) {
            run_group(engine, &mut parents, std::mem::take(&mut group).ops)?;
        }
        group.add(op);
    }
    run_group(engine, &mut parents, group.ops)
}

fn run_group(engine: &mut IoEngine, parents: &mut Parents<'_>, ops: Vec<TreeOp>) -> Result<(), UringError> {
    let mut writes = Vec::new();
    for op in ops {
        let (dir, name) = parents.of(op.paths()[0])?;
        let fd = dir.as_fd();
        let path = || dir.child_path(name);
        match &op {
            TreeOp::WriteFile { mode, data, .. } => {
                let data = data.clone();
                writes.push(WriteJob { dir: dir.clone(), name: name.to_vec(), create: Some(*mode), offset: 0, data });
            }
            TreeOp::WriteAt { offset, data, .. } => {
                let data = data.clone();
                writes.push(WriteJob { dir: dir.clone(), name: name.to_vec(), create: None, offset: *offset, data });
            }
            TreeOp::Mkdir { mode, .. } => {
                sys::fs::mkdir_at(fd, name, *mode).map_err(|e| UringError::io("mkdir", path(), e))?
            }
            TreeOp::Symlink { target, .. } => {
                sys::fs::symlink_at(target, fd, name).map_err(|e| UringError::io("symlink", path(), e))?
            }
            TreeOp::Hardlink { existing, .. } => {
                let (old_dir, old_name) = parents.of(existing)?;
                sys::fs::link_at(old_dir.as_fd(), old_name, fd, name).map_err(|e| UringError::io("link", path(), e))?
            }
            TreeOp::Chmod { mode, .. } => {
                sys::fs::chmod_at(fd, name, *mode).map_err(|e| UringError::io("chmod", path(), e))?
            }
            TreeOp::Chown { uid, gid, .. } => {
                sys::fs::lchown_at(fd, name, *uid, *gid).map_err(|e| UringError::io("lchown", path(), e))?
            }
            TreeOp::SetXattr { key, value, .. } => {
                sys::fs::lsetxattr_at(fd, name, key, value).map_err(|e| UringError::io("lsetxattr", path(), e))?
            }
            TreeOp::SetTimes { atime, mtime, .. } => {
                sys::fs::lutimens_at(fd, name, *atime, *mtime).map_err(|e| UringError::io("utimensat", path(), e))?
            }
        }
    }
    if writes.is_empty() {
        return Ok(());
    }
    engine.write(writes).into_iter().find_map(|(_, r)| r.err()).map_or(Ok(()), Err)
}
