//! The copy driver: every snapshot is a complete tree, copied from its
//! parent when the snapshot is created. It needs nothing from the kernel
//! beyond bind mounts, so it works on any filesystem; on one with reflinks
//! (XFS `reflink=1`, btrfs) the copies share data blocks and cost little
//! more than the metadata.
//!
//! ```text
//! <root>/copy/
//! ├── metadata.json, metadata.lock     (shared snapshot metadata)
//! └── snapshots/<id>/
//!     └── fs/                          the snapshot's whole tree; absent for
//!                                      a view of a parent (the view binds
//!                                      the parent's fs read-only instead)
//! ```
//!
//! Mounts are binds of a snapshot's tree: read-write for an active
//! snapshot, read-only for views and committed snapshots. Nothing writes
//! to a committed snapshot's tree after commit — children copy it, views
//! bind it read-only — which is what keeps committed layers immutable.
//!
//! Usage: on a filesystem with reflinks, a snapshot's *exclusive* bytes —
//! the extents `FIEMAP` does not mark shared ([`super::exclusive`]), so
//! a container that appended one byte to a 64 MiB image file costs the
//! block it wrote, not 64 MiB; elsewhere (every byte copied) `du`'s
//! answer ([`tree_usage`]), which is then the real cost.

#[cfg(test)]
mod differential;
pub mod parallel;
pub mod tree;
pub mod tree_at;

use super::{backing_status, probe_reflink};
use crate::mount::Mount;
use crate::snapshot::{DiffSource, Driver, DriverError, Kind, SnapshotId, Usage, Whiteouts, WriteTarget};
use crate::sys::statfs::fs_magic;
use crate::uring::du::tree_usage;
use std::io;
use std::path::{Path, PathBuf};
use tree::{copy_tree, CopyError, Strategy};

pub struct Copy {
    /// `<home>/snapshots`: one directory per snapshot ID.
    snapshots: PathBuf,
    /// The driver's home; [`Copy::reflinks`] probes `FICLONE` here when
    /// asked (nothing is probed at open).
    home: PathBuf,
    /// See [`Copy::shares_extents`].
    shares: std::sync::OnceLock<bool>,
}

impl std::fmt::Debug for Copy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Copy").field("snapshots", &self.snapshots).finish()
    }
}

impl Copy {
    /// Opens the driver at `home`. Copies try reflinks on every tree and
    /// remember a failure per tree, so nothing is probed here.
    pub fn new(home: &Path) -> Result<Copy, DriverError> {
        let snapshots = home.join("snapshots");
        std::fs::create_dir_all(&snapshots).map_err(|e| DriverError::io(&snapshots, e))?;
        Ok(Copy { snapshots, home: home.to_owned(), shares: std::sync::OnceLock::new() })
    }

    /// Whether `FICLONE` worked between two files in the driver's home.
    pub fn reflinks(&self) -> bool {
        probe_reflink(&self.home).is_ok()
    }

    /// [`Copy::reflinks`], probed once per driver value: whether usage
    /// asks `FIEMAP` for exclusive bytes.
    fn shares_extents(&self) -> bool {
        *self.shares.get_or_init(|| self.reflinks())
    }

    fn dir(&self, id: SnapshotId) -> PathBuf {
        self.snapshots.join(id.to_string())
    }
    fn fs(&self, id: SnapshotId) -> PathBuf {
        self.dir(id).join("fs")
    }

    /// The tree a snapshot shows: its own, or for a view of a parent (which
    /// has none), the parent's.
    fn tree(&self, id: SnapshotId, parents: &[SnapshotId]) -> PathBuf {
        let own = self.fs(id);
        match parents.first() {
            Some(parent) if !own.exists() => self.fs(*parent),
            _ => own,
        }
    }
}

fn copy_err(e: CopyError) -> DriverError {
    match e {
        CopyError::Io { op, path, source } => {
            DriverError::io(path, io::Error::new(source.kind(), format!("{op}: {source}")))
        }
        e @ CopyError::DestinationExists(_) => {
            DriverError::io(e.path().to_owned(), io::Error::new(io::ErrorKind::AlreadyExists, e.to_string()))
        }
    }
}

impl Driver for Copy {
    fn name(&self) -> &'static str {
        "copy"
    }

    fn create(&self, id: SnapshotId, parents: &[SnapshotId], kind: Kind) -> Result<(), DriverError> {
        let dir = self.dir(id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| DriverError::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| DriverError::io(&dir, e))?;
        let fs = self.fs(id);
        match (kind, parents.first()) {
            // A view of a parent binds the parent's tree: no copy needed.
            (Kind::View, Some(_)) => Ok(()),
            (_, Some(parent)) => copy_tree(&self.fs(*parent), &fs, Strategy::Reflink).map(drop).map_err(copy_err),
            (_, None) => {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new().mode(0o755).create(&fs).map_err(|e| DriverError::io(&fs, e))
            }
        }
    }

    fn mounts(&self, id: SnapshotId, parents: &[SnapshotId], kind: Kind) -> Result<Vec<Mount>, DriverError> {
        Ok(vec![Mount::bind(&self.tree(id, parents), kind != Kind::Active)])
    }

    fn commit(&self, id: SnapshotId, _parents: &[SnapshotId]) -> Result<Usage, DriverError> {
        let fs = self.fs(id);
        tree_usage(&fs).map_err(|e| DriverError::io(fs, e))
    }

    fn remove(&self, id: SnapshotId) -> Result<(), DriverError> {
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DriverError::io(dir, e)),
        }
    }

    fn usage(&self, id: SnapshotId, _parents: &[SnapshotId]) -> Result<Usage, DriverError> {
        let fs = self.fs(id);
        let measured =
            if self.shares_extents() { super::exclusive::exclusive_usage(&fs, None) } else { tree_usage(&fs) };
        match measured {
            // A view of a parent holds nothing of its own.
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.dir(id).exists() => Ok(Usage::default()),
            other => other.map_err(|e| DriverError::io(fs, e)),
        }
    }

    fn write_target(&self, id: SnapshotId, _parents: &[SnapshotId]) -> Result<WriteTarget, DriverError> {
        Ok(WriteTarget::Directory { dir: self.fs(id), whiteouts: Whiteouts::Delete })
    }

    fn diff_source(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<DiffSource, DriverError> {
        Ok(DiffSource::Trees { lower: parents.first().map(|p| self.fs(*p)), upper: self.tree(id, parents) })
    }

    fn list(&self) -> Result<Vec<SnapshotId>, DriverError> {
        let rd = std::fs::read_dir(&self.snapshots).map_err(|e| DriverError::io(&self.snapshots, e))?;
        Ok(rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).map(SnapshotId).collect())
    }

    fn status(&self) -> Vec<(String, String)> {
        backing_status(&fs_magic(&self.home), &probe_reflink(&self.home))
    }
}
