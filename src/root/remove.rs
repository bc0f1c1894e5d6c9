//! Crash debris removed without reaching through a mount.
//!
//! A `cp`, volume populate or build step mounts a snapshot on a directory
//! in `staging/`; killed with the mount up, it leaves that mount there.
//! Removing the staging entry as a plain tree would delete the files of
//! the mounted snapshot (a container's writable layer). So recovery first
//! detaches every mount at or below the entry ([`unmount_under`], read
//! from `/proc/self/mountinfo`, deepest first), then removes the tree with
//! [`remove_tree`], which never leaves the mount the tree started on.
//!
//! **Why mount IDs:** the copy driver's snapshots are bind mounts of
//! directories on the data root's own filesystem, so a mounted snapshot
//! has the same `st_dev` as the staging directory it sits on; only the
//! mount ID (`statx(STATX_MNT_ID)`) tells them apart. The walk works on
//! descriptors: each directory is opened `O_NOFOLLOW | O_DIRECTORY` from
//! its parent's descriptor and checked on the descriptor it was opened
//! as, entries are removed with `unlinkat` on that descriptor, and no path
//! string is walked twice.

use super::{IoError, RootError};
use crate::sys::fs as sysfs;
use crate::sys::fs_remove::{rmdir_at, statx_mnt_id};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Removes `path` (a directory tree or a single entry) without crossing
/// onto another mount: an entry below it on a different mount than `path`'s
/// parent is left in place and reported as [`RootError::OtherMount`] (its
/// siblings are still removed). A missing `path` is not an error.
pub fn remove_tree(path: &Path) -> Result<(), RootError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(RootError::io(path, io::Error::from(io::ErrorKind::InvalidInput)));
    };
    let parent_fd = sysfs::open_dir(parent).map_err(|e| RootError::io(parent, e))?;
    let mnt = statx_mnt_id(parent_fd.as_fd(), b"").map_err(|e| RootError::io(parent, e))?.mnt_id;
    remove_entry(parent_fd.as_fd(), name.as_bytes(), mnt, path)
}

fn remove_entry(dir: BorrowedFd<'_>, name: &[u8], mnt: u64, path: &Path) -> Result<(), RootError> {
    let st = match statx_mnt_id(dir, name) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(RootError::io(path, e)),
    };
    if st.mnt_id != mnt {
        return Err(RootError::OtherMount { path: path.to_owned(), found: st.mnt_id, expected: mnt });
    }
    if sysfs::Kind::from_mode(st.mode) != sysfs::Kind::Dir {
        return match sysfs::unlink_at(dir, name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(RootError::io(path, e)),
            _ => Ok(()),
        };
    }
    let child = sysfs::open_dir_at(dir, name).map_err(|e| RootError::io(path, e))?;
    // Checked again on the descriptor: the entry may have been swapped
    // for a mount point since the statx above.
    let opened = statx_mnt_id(child.as_fd(), b"").map_err(|e| RootError::io(path, e))?.mnt_id;
    if opened != mnt {
        return Err(RootError::OtherMount { path: path.to_owned(), found: opened, expected: mnt });
    }
    let mut first_err = None;
    for entry in sysfs::read_dir_names(child.as_fd()).map_err(|e| RootError::io(path, e))? {
        let sub = path.join(std::ffi::OsStr::from_bytes(&entry));
        if let Err(e) = remove_entry(child.as_fd(), &entry, mnt, &sub) {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    drop(child);
    match rmdir_at(dir, name) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(RootError::io(path, e)),
        _ => Ok(()),
    }
}

/// Detaches (`umount2(MNT_DETACH)`) every mount at or below `dir`, deepest
/// first, as `/proc/self/mountinfo` lists them. Returns how many.
pub fn unmount_under(dir: &Path) -> Result<usize, RootError> {
    let dir = dir.canonicalize().map_err(|e| RootError::io(dir, e))?;
    let info = "/proc/self/mountinfo";
    let text = std::fs::read_to_string(info).map_err(|e| RootError::io(info, e))?;
    let mut points: Vec<PathBuf> = mount_points(&text).into_iter().filter(|p| p.starts_with(&dir)).collect();
    // Stable: stacked mounts on one point keep their order, and each
    // listing of the point detaches one of them.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let mut n = 0;
    for p in &points {
        match crate::sys::mount::unmount_path(p, true) {
            Ok(()) => n += 1,
            // Already gone with a parent detached before it.
            Err(e) if matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::NotFound) => {}
            Err(e) => return Err(IoError::new(p, e).into()),
        }
    }
    Ok(n)
}

/// The mount points of a `/proc/<pid>/mountinfo` text, in its order, one
/// per line (stacked mounts repeat their point), with the kernel's octal
/// escapes (`\040` for a space) undone. See proc_pid_mountinfo(5): the
/// mount point is the fifth field.
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|f| PathBuf::from(std::ffi::OsStr::from_bytes(&unescape(f.as_bytes()))))
        .collect()
}

fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let oct = s.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (s[i], oct) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |a, c| a.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::mount::{bind, unmount_path};

    #[test]
    fn mount_points_undo_the_kernels_escapes() {
        let text = "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 36 0:5 / /mnt/a\\040b/c\\134d rw - tmpfs none rw\n";
        assert_eq!(mount_points(text), vec![PathBuf::from("/mnt/a b"), PathBuf::from("/mnt/a b/c\\d")]);
    }

    /// Unmounts what a test mounted, passed or not.
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            while unmount_path(&self.0, true).is_ok() {}
        }
    }

    /// A bind mount of a directory on the same filesystem: same `st_dev`,
    /// different mount. The removal keeps out of it and says where.
    #[test]
    fn remove_tree_stops_at_a_bind_mount_of_the_same_filesystem() {
        let d = tempfile::tempdir().unwrap();
        let (layer, debris) = (d.path().join("layer"), d.path().join("debris"));
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        std::fs::write(layer.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::create_dir_all(debris.join("view")).unwrap();
        std::fs::write(debris.join("junk"), b"x").unwrap();
        let _guard = Unmount(debris.join("view"));
        bind(layer.to_str().unwrap(), &["rbind".into()], &debris.join("view")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&layer).unwrap().dev(), std::fs::metadata(debris.join("view")).unwrap().dev());
        let err = remove_tree(&debris).unwrap_err();
        assert!(
            matches!(&err, RootError::OtherMount { path, .. } if path == &debris.join("view")),
            "expected a refusal naming the mount point, got {err}"
        );
        assert!(!debris.join("junk").exists(), "siblings of the mount are removed");
        assert_eq!(std::fs::read(layer.join("etc/passwd")).unwrap(), b"root:x:0:0::/root:/bin/sh\n");
        // Detached first, the same debris goes entirely.
        assert_eq!(unmount_under(&debris).unwrap(), 1);
        remove_tree(&debris).unwrap();
        assert!(!debris.exists());
        assert!(layer.join("etc/passwd").exists(), "the layer survived");
    }

    #[test]
    fn remove_tree_removes_symlinks_not_their_targets() {
        let d = tempfile::tempdir().unwrap();
        let (keep, tree) = (d.path().join("keep"), d.path().join("tree"));
        std::fs::create_dir_all(keep.join("sub")).unwrap();
        std::fs::write(keep.join("sub/f"), b"x").unwrap();
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::os::unix::fs::symlink(&keep, tree.join("a/b/link")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert!(keep.join("sub/f").exists());
        remove_tree(&tree).unwrap();
    }
}
