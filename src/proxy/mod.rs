//! strata's drivers as a containerd proxy snapshotter: the
//! `containerd.services.snapshots.v1.Snapshots` gRPC service on a unix
//! socket (`strata snapshotter serve`), over the snapshot contract.
//!
//! Through a proxy, containerd extracts layers with its own applier and
//! performs the returned mounts itself with `mount(2)`; what strata brings
//! is its drivers, their crash ordering and their sizes.
//!
//! ```text
//! <root>/containerd/<driver>/      the service's driver home (see [`home`])
//!     metadata.json, metadata.lock the snapshot contract's records
//!     containerd.json              containerd names, labels, times ([`Store`])
//!     containerd.lock              held by the one server of this home
//!     …                            the driver's bytes
//! ```
//!
//! **Architecture invariant:** the service's snapshots live in their own
//! driver home, apart from `<root>/<driver>/` where strata's images keep
//! theirs: strata's recovery and `rmi` never see containerd's snapshots,
//! and containerd's garbage collection (which drives Remove) never sees
//! strata's. Garbage collection stays containerd's: the service removes
//! only what it is asked to, and on Cleanup what no record names.

mod filter;
mod service;
mod store;

pub use filter::{FilterError, Filters};
pub use service::serve;
pub use store::{strata_key, Info, Store, SNAPSHOT_REF_LABEL};

use crate::root::{IoError, RootError};
use crate::snapshot::SnapshotError;
use std::path::{Path, PathBuf};

/// The driver home the service uses under data root `root`.
pub fn home(root: &Path, driver: &str) -> PathBuf {
    root.join("containerd").join(driver)
}

/// Opens the service's store for `driver` under data root `root`.
pub fn open(root: &Path, driver: &str) -> Result<Store, ProxyError> {
    if !crate::drivers::NAMES.contains(&driver) {
        return Err(crate::drivers::DriverSelectError::Unknown(driver.into()).into());
    }
    // Private as strata's own driver homes: snapshots may hold setuid
    // files a container's root planted.
    std::fs::create_dir_all(root).map_err(|e| IoError::new(root, e))?;
    crate::root::ensure_dir(&root.join("containerd"), 0o700)?;
    crate::root::ensure_dir(&home(root, driver), crate::root::DRIVER_HOME_MODE)?;
    let snapshots = crate::drivers::open_at(&home(root, driver), driver)?;
    Store::open(snapshots)
}

/// Failures of the service, each mapped to the gRPC code containerd
/// checks ([`ProxyError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("snapshot {0:?} already exists")]
    AlreadyExists(String),
    #[error("snapshot {0:?} does not exist")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("snapshot {name:?}: {source}")]
    Snapshot { name: String, source: SnapshotError },
    #[error(transparent)]
    Driver(#[from] crate::drivers::DriverSelectError),
    #[error(transparent)]
    Root(#[from] RootError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{} is served by another strata snapshotter (its containerd.lock is held)", .0.display())]
    Busy(PathBuf),
    #[error("serving {}: {source}", path.display())]
    Serve { path: PathBuf, source: Box<dyn std::error::Error + Send + Sync> },
}

/// The gRPC status codes the service answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    AlreadyExists,
    NotFound,
    FailedPrecondition,
    InvalidArgument,
    Internal,
}

impl ProxyError {
    /// A snapshot contract error on containerd's `name`: the contract's
    /// own refusals keep their meaning under the containerd name.
    fn from_snapshot(name: &str, e: SnapshotError) -> ProxyError {
        match e {
            SnapshotError::NotFound(_) => ProxyError::NotFound(name.into()),
            SnapshotError::AlreadyExists(_) => ProxyError::AlreadyExists(name.into()),
            SnapshotError::WrongKind { kind, expected, .. } => {
                ProxyError::FailedPrecondition(format!("snapshot {name:?} is {kind}, expected {expected}"))
            }
            SnapshotError::HasChildren { children, .. } => ProxyError::FailedPrecondition(format!(
                "cannot remove snapshot {name:?}: it has {children} child snapshot(s)"
            )),
            SnapshotError::InvalidKey(k) => ProxyError::InvalidArgument(format!("invalid snapshot key {k:?}")),
            source => ProxyError::Snapshot { name: name.into(), source },
        }
    }

    pub fn code(&self) -> Code {
        match self {
            ProxyError::AlreadyExists(_) => Code::AlreadyExists,
            ProxyError::NotFound(_) => Code::NotFound,
            ProxyError::FailedPrecondition(_) => Code::FailedPrecondition,
            ProxyError::InvalidArgument(_) | ProxyError::Filter(_) => Code::InvalidArgument,
            _ => Code::Internal,
        }
    }
}
