//! Disk usage of a directory tree, as `du` counts it: allocated blocks
//! (sparse holes and reflinked extents excepted only as the filesystem
//! reports them), each hardlinked inode once.

use crate::snapshot::Usage;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Sums allocated bytes and inodes under `dir` (including `dir`).
pub fn tree_usage(dir: &Path) -> std::io::Result<Usage> {
    let mut usage = Usage::default();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p)?;
        if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        usage.inodes += 1;
        usage.size += md.blocks() * 512;
        if md.is_dir() {
            for entry in std::fs::read_dir(&p)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(usage)
}
