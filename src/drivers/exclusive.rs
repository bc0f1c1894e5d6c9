//! How much a snapshot holds on its own on a filesystem with shared
//! extents (btrfs, XFS with reflink): the data extents no other file
//! references, found by asking `FIEMAP` which extents are shared — for a
//! btrfs snapshot against its parent, for the copy driver's reflinked
//! trees over the whole tree (its parent's files are other inodes).
//!
//! A child snapshot starts out sharing every extent with its parent. A
//! write copies only the blocks written: after one byte is written into a
//! 1 GiB inherited file, the file is one new 4 KiB extent plus references
//! to the rest of the old one, which the parent still holds
//! (`FIEMAP_EXTENT_SHARED`). The snapshot's size is therefore the sum of
//! its *unshared* extents — 4 KiB — not the file's apparent size as
//! overlay reports it after a whole-file copy-up.
//!
//! The walk (btrfs; the same on XFS with no parent to compare, where every
//! file is asked):
//! * An entry whose parent-side twin (same relative path) has the same
//!   inode number, type and ctime is unchanged: btrfs snapshots keep inode
//!   numbers, any change to an inode moves its ctime, and btrfs never
//!   reuses an inode number within a subvolume. It costs two `lstat`s and
//!   holds nothing of its own.
//! * Any other entry is new or changed and counts as an inode. A regular
//!   file adds its unshared extents (`FIEMAP`), with inline extents (data
//!   kept in the metadata for small files, which FIEMAP never marks
//!   shared) counted only here, where the file is known to be new or
//!   changed. The file's dirty pages are written back first
//!   (`FIEMAP_FLAG_SYNC`): until then btrfs maps a rewritten range to the
//!   old, shared extent, and a fresh write would not show. A symlink adds its target's length; directories
//!   and special files add no bytes, as in Docker's sizes.
//! * Hardlinked inodes count once.
//!
//! Limits (documented, not hidden): an extent the container shares with
//! *itself* (a reflink copy inside the container) is reported shared and
//! not counted; metadata (tree blocks) is never counted, so a fresh
//! container is `0B` as on overlay.

use crate::snapshot::Usage;
use crate::sys::fiemap::{fiemap, ExtentFlags, FiemapFlags};
use crate::sys::fs::{Mode, OFlags};
use std::collections::HashSet;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Whether `own` is the same, unchanged inode as `lower` (see the module doc).
fn unchanged(own: &Metadata, lower: Option<&Metadata>) -> bool {
    let Some(lower) = lower else { return false };
    own.ino() == lower.ino()
        && own.file_type() == lower.file_type()
        && own.ctime() == lower.ctime()
        && own.ctime_nsec() == lower.ctime_nsec()
}

/// Bytes of `file` no other file or snapshot references.
pub(crate) fn unshared_bytes(file: &Path, size: u64) -> io::Result<u64> {
    let f = std::fs::File::from(crate::sys::fs::open(file, OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty())?);
    let extents = fiemap(&f, FiemapFlags::SYNC).map_err(io::Error::from)?;
    Ok(extents
        .iter()
        .filter(|e| !e.flags.contains(ExtentFlags::SHARED))
        .map(|e| if e.flags.contains(ExtentFlags::DATA_INLINE) { e.length.min(size) } else { e.length })
        .sum())
}
/// The usage of snapshot tree `own` against its parent's tree `lower`
/// (`None` for a base snapshot: everything is its own).
pub fn exclusive_usage(own: &Path, lower: Option<&Path>) -> io::Result<Usage> {
    let mut usage = Usage::default();
    // Nested subvolumes (a container may make them) reuse inode numbers.
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = own.join(&rel);
        let md = std::fs::symlink_metadata(&path)?;
        if md.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(rel.join(entry?.file_name()));
            }
        }
        let lower_md = match lower {
            Some(l) => match std::fs::symlink_metadata(l.join(&rel)) {
                Ok(m) => Some(m),
                Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        if unchanged(&md, lower_md.as_ref()) {
            continue;
        }
        if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        usage.inodes += 1;
        // Directories and special files hold no bytes, as in Docker's sizes.
        if md.is_file() {
            usage.size += unshared_bytes(&path, md.len())?;
        } else if md.is_symlink() {
            usage.size += md.len();
        }
    }
    Ok(usage)
}
