//! Snapshot drivers: the bytes-on-disk half of the snapshot contract.
//!
//! | driver  | a child snapshot is               | copy-up granularity  |
//! |---------|-----------------------------------|----------------------|
//! | overlay | an empty upper dir over parents   | whole file (kernel)  |
//! | copy    | a full copy (reflink if possible) | none: copied upfront |
//!
//! Each driver owns `<root>/<driver>/snapshots/<id>/` and nothing else.

pub mod copy;
mod du;
pub mod overlay;

pub use du::tree_usage;

use crate::snapshot::{Driver, SnapshotError, Snapshotter};
use crate::store::Root;

/// Drivers strata knows by name.
pub const NAMES: &[&str] = &["overlay", "copy"];

/// Errors choosing a driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverSelectError {
    #[error("unknown storage driver {0:?} (known: overlay, copy)")]
    Unknown(String),
    #[error("storage driver {driver}: {detail}")]
    Unusable { driver: String, detail: String },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// Opens the named driver under `root` and wraps it in a [`Snapshotter`].
pub fn open(root: &Root, name: &str) -> Result<Snapshotter, DriverSelectError> {
    let home = root.driver_dir(name);
    let driver: Box<dyn Driver> = match name {
        "overlay" => Box::new(
            overlay::Overlay::new(&home)
                .map_err(|e| DriverSelectError::Unusable { driver: name.into(), detail: e.to_string() })?,
        ),
        "copy" => Box::new(
            copy::Copy::new(&home)
                .map_err(|e| DriverSelectError::Unusable { driver: name.into(), detail: e.to_string() })?,
        ),
        other => return Err(DriverSelectError::Unknown(other.into())),
    };
    Ok(Snapshotter::new(&home, driver)?)
}
