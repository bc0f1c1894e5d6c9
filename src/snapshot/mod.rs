//! The snapshot contract, after containerd's `core/snapshots`.
//!
//! Vocabulary (fixed, used everywhere in strata):
//!
//! * **key** — the name of an *active* or *view* snapshot, chosen by the
//!   caller (`extract-…` while a layer is applied, the container ID for a
//!   container's writable layer).
//! * **name** — the key of a *committed* snapshot. Image layers are
//!   committed under their chain ID, so a layer shared by two images is one
//!   snapshot.
//! * **parent** — the committed snapshot a new one starts from.
//!
//! Lifecycle: `prepare(key, parent)` makes a writable (active) snapshot,
//! `view(key, parent)` a read-only one; `commit(name, key)` freezes an
//! active snapshot under a new name; `remove(key)` deletes a snapshot that
//! has no children. `mounts(key)` returns how to assemble it — *data*, never
//! a mount performed.
//!
//! Worked example — import a layer: `prepare("extract-1", Some(parent))`,
//! apply the tar into it ([`WriteTarget`]), then
//! `commit(<chain id>, "extract-1")`. Run a container: `prepare(<id>,
//! Some(<top chain id>))`, mount the returned mounts, run; `remove(<id>)`
//! when the container is removed.
//!
//! **Architecture invariant:** drivers ([`Driver`]) hold only the bytes on
//! disk, addressed by a numeric [`SnapshotId`]. Keys, parents, kinds and
//! sizes live in one metadata store ([`Snapshotter`]) shared by all drivers,
//! so every driver gets the same semantics and the same crash recovery.

mod meta;
mod snapshotter;
pub mod testsuite;

pub use snapshotter::Snapshotter;

use crate::mount::Mount;
use crate::root::IoError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// The caller's name for a snapshot: an active/view key or a committed name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotKey(String);

impl SnapshotKey {
    /// Validates a key: non-empty, at most 255 bytes, no `/` or NUL (keys
    /// appear in file names and lock names).
    pub fn new(key: impl Into<String>) -> Result<SnapshotKey, SnapshotError> {
        let key = key.into();
        if key.is_empty() || key.len() > 255 || key.contains(['/', '\0']) {
            return Err(SnapshotError::InvalidKey(key));
        }
        Ok(SnapshotKey(key))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for SnapshotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A driver's internal handle for a snapshot's bytes (directory name,
/// subvolume name, thin device ID source). Allocated by the metadata store,
/// never reused while the snapshot exists.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Debug)]
#[serde(transparent)]
pub struct SnapshotId(pub u64);

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a snapshot is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Read-only view of a committed snapshot.
    View,
    /// Writable; may be committed.
    Active,
    /// Frozen; may be a parent.
    Committed,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::View => "view",
            Kind::Active => "active",
            Kind::Committed => "committed",
        })
    }
}

/// Space a snapshot uses on its own (not counting its parents); defined
/// beside the tree walks that measure it.
pub use crate::uring::Usage;

/// Metadata of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub key: SnapshotKey,
    pub parent: Option<SnapshotKey>,
    pub kind: Kind,
    pub id: SnapshotId,
    /// RFC 3339 creation time.
    pub created: String,
}

/// How layer apply writes into an active snapshot.
#[derive(Debug, Clone)]
pub enum WriteTarget {
    /// Write straight into this directory. With [`Whiteouts::Overlay`] the
    /// directory is an overlay upper layer and deletions become overlay
    /// whiteouts; with [`Whiteouts::Delete`] it is a full tree and deletions
    /// delete.
    Directory { dir: PathBuf, whiteouts: Whiteouts },
    /// Mount these (at a temporary point) and write through the mount,
    /// deleting for whiteouts.
    Mounted(Vec<Mount>),
}

/// The representation of a deletion a driver's on-disk format uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// overlayfs: a 0/0 character device for a deleted entry and the
    /// `trusted.overlay.opaque="y"` xattr for an opaque directory.
    Overlay,
    /// A full tree: deleted entries are simply absent.
    Delete,
}

/// Where a diff (snapshot versus its parent) is read from.
#[derive(Debug, Clone)]
pub enum DiffSource {
    /// An overlay upper directory: the changes themselves, with overlay
    /// whiteouts. Diffing is a walk of this directory only.
    OverlayUpper(PathBuf),
    /// Two full trees to compare; `lower` is `None` for a base snapshot.
    Trees { lower: Option<PathBuf>, upper: PathBuf },
}

/// Failures of a driver's on-disk operations.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{0}")]
    Unsupported(String),
    /// A driver's own typed error (device-mapper, btrfs ioctls, …).
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl DriverError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> DriverError {
        DriverError::Io(IoError::new(path, source))
    }
}

/// Failures of the snapshot contract.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("invalid snapshot key {0:?}")]
    InvalidKey(String),
    #[error("snapshot {0} does not exist")]
    NotFound(SnapshotKey),
    #[error("snapshot {0} already exists")]
    AlreadyExists(SnapshotKey),
    #[error("snapshot {key} is {kind}, expected {expected}")]
    WrongKind { key: SnapshotKey, kind: Kind, expected: Kind },
    #[error("snapshot {key} has {children} child snapshot(s); remove them first")]
    HasChildren { key: SnapshotKey, children: usize },
    #[error(
        "snapshot {key} was prepared on {parent}; only a snapshot prepared without a parent can be committed onto one"
    )]
    HasParent { key: SnapshotKey, parent: SnapshotKey },
    #[error("snapshot {key}: {source}")]
    Driver { key: SnapshotKey, source: DriverError },
    #[error(transparent)]
    Store(#[from] crate::root::RootError),
}

/// The bytes-on-disk half of a snapshotter. Parents are passed nearest
/// first; `parents[0]` is the direct parent.
pub trait Driver: Send + Sync {
    /// The driver's name (`overlay`, `copy`, `btrfs`, `dmthin`).
    fn name(&self) -> &'static str;

    /// Creates storage for a new snapshot. Must replace any debris left
    /// under the same ID by a crash before its metadata was written.
    fn create(&self, id: SnapshotId, parents: &[SnapshotId], kind: Kind) -> Result<(), DriverError>;

    /// How to mount the snapshot.
    fn mounts(&self, id: SnapshotId, parents: &[SnapshotId], kind: Kind) -> Result<Vec<Mount>, DriverError>;

    /// Freezes an active snapshot and returns its usage.
    fn commit(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Usage, DriverError>;

    /// Deletes a snapshot's storage; succeeds if it is already gone.
    fn remove(&self, id: SnapshotId) -> Result<(), DriverError>;

    /// Space the snapshot uses exclusively.
    fn usage(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Usage, DriverError>;

    /// Where layer apply writes into an active snapshot.
    fn write_target(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<WriteTarget, DriverError>;

    /// Whether a layer can be applied into an active snapshot without its
    /// parents' content: the write target is the snapshot's own bytes and
    /// deletions are recorded there (overlay's whiteouts), never applied
    /// to a parent's files. Such a snapshot may be prepared without a
    /// parent and committed onto one later
    /// ([`Snapshotter::commit_onto`](super::Snapshotter::commit_onto)), so
    /// every layer of an image can be extracted at once. Drivers whose
    /// snapshot starts as a copy of its parent (copy, btrfs, dm-thin) say
    /// no, the default.
    fn extracts_alone(&self) -> bool {
        false
    }

    /// Where a diff of the snapshot against its parent is read.
    fn diff_source(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<DiffSource, DriverError>;

    /// Undoes what [`Driver::diff_source`] set up once the diff is read:
    /// drivers whose trees exist only while mounted (dmthin) unmount and
    /// deactivate them here. Directory drivers have nothing to release.
    fn release(&self, _id: SnapshotId, _parents: &[SnapshotId]) -> Result<(), DriverError> {
        Ok(())
    }

    /// The descriptors the driver keeps open for its whole life (dmthin's
    /// device-mapper control): a forked child that goes on using the
    /// driver keeps them when it closes what it inherited
    /// (`sys::process::fork_child`). Directory drivers keep none.
    fn descriptors(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        Vec::new()
    }

    /// IDs present on disk, for finding debris after a crash.
    fn list(&self) -> Result<Vec<SnapshotId>, DriverError>;

    /// `(label, value)` lines for `strata info`.
    fn status(&self) -> Vec<(String, String)>;
}
