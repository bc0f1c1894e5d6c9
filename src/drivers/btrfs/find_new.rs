//! The fast twin of [`super::exclusive`]: a snapshot's own bytes from the
//! b-tree items written since the snapshot was created, as
//! `btrfs subvolume find-new` finds them, in time proportional to the
//! changes instead of the tree.
//!
//! A snapshot records the transaction it was created in (`otransid`).
//! Everything it shares with its parent lives in tree blocks and extents
//! of that transaction or older; every change after it rewrites the
//! blocks on its path (copy-on-write), so a `BTRFS_IOC_TREE_SEARCH` with
//! `min_transid = otransid + 1` visits only rewritten leaves. Among their
//! items:
//! * a file extent item written after `otransid` is data the snapshot
//!   holds on its own: its `num_bytes` (regular, preallocated) or inline
//!   length count, holes count nothing;
//! * an inode item changed after `otransid` is a new or changed inode.
//!
//! Dirty pages are not in the tree yet, so the subvolume's filesystem is
//! synced first. Only snapshots (which have a parent) use this: a new
//! empty subvolume may share its creation transaction with its first
//! writes. Inode counts can exceed the walk's: an atime update changes an
//! inode item but not its ctime. Differentially tested against the walk
//! (`tests/btrfs.rs`).

use crate::snapshot::Usage;
use crate::sys::btrfs::search::{
    inode_transid, subvol_info, tree_search, FileExtent, BTRFS_EXTENT_DATA_KEY, BTRFS_INODE_ITEM_KEY,
};
use std::io;
use std::path::Path;

/// The usage of the snapshot whose subvolume root is `own`.
pub fn find_new_usage(own: &Path) -> io::Result<Usage> {
    let fd = crate::sys::fs::open_dir(own)?;
    let since = subvol_info(&fd)?.otransid;
    crate::sys::fs::syncfs(std::os::fd::AsFd::as_fd(&fd))?;
    let mut usage = Usage::default();
    let mut unparsable = None;
    tree_search(&fd, since + 1, |key, data| match key.item_type {
        BTRFS_INODE_ITEM_KEY => match inode_transid(data) {
            Some(t) if t > since => usage.inodes += 1,
            Some(_) => {}
            None => unparsable = Some(key),
        },
        BTRFS_EXTENT_DATA_KEY => match FileExtent::parse(data) {
            Some(e) if e.generation > since => usage.size += e.bytes,
            Some(_) => {}
            None => unparsable = Some(key),
        },
        _ => {}
    })?;
    match unparsable {
        Some(key) => Err(io::Error::other(format!("{}: unparsable tree item {key:?}", own.display()))),
        None => Ok(usage),
    }
}
