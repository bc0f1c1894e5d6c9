//! Snapshot drivers: the bytes-on-disk half of the snapshot contract.
//!
//! | driver  | a child snapshot is               | copy-up granularity  |
//! |---------|-----------------------------------|----------------------|
//! | overlay | an empty upper dir over parents   | whole file (kernel)  |
//! | copy    | a full copy (reflink if possible) | none: copied upfront |
//! | btrfs   | snapshot of parent's subvolume    | extent (filesystem)  |
//! | dmthin  | a thin snapshot of the parent     | one pool block       |
//!
//! Each driver owns `<root>/<driver>/` and nothing else (dmthin also owns
//! its device-mapper devices, named after that directory).

pub mod btrfs;
pub mod copy;
pub mod dmthin;
pub mod exclusive;
pub mod overlay;

use crate::root::Root;
use crate::snapshot::{Driver, DriverError, SnapshotError, Snapshotter};
use crate::sys::statfs::FsMagic;
use std::io;
use std::path::Path;

/// Drivers strata knows by name.
pub const NAMES: &[&str] = &["overlay", "copy", "btrfs", "dmthin"];

/// Errors choosing a driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverSelectError {
    #[error("unknown storage driver {0:?} (known: overlay, copy, btrfs, dmthin)")]
    Unknown(String),
    #[error("storage driver {driver}: {source}")]
    Unusable {
        driver: String,
        #[source]
        source: DriverError,
    },
    #[error("storage driver {driver}: takes no driver options (given: {})", options.join(","))]
    NoOptions { driver: String, options: Vec<String> },
    #[error("storage driver {driver}: unknown option {option:?} (known: metacopy=on|off)")]
    UnknownOption { driver: String, option: String },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// Wraps a driver's failure to open as [`DriverSelectError::Unusable`].
fn unusable(driver: &str) -> impl FnOnce(DriverError) -> DriverSelectError + '_ {
    move |source| DriverSelectError::Unusable { driver: driver.into(), source }
}

/// A known driver's home, made (or tightened to) 0710 as Docker's
/// `overlay2`; an unknown name makes nothing.
fn home(root: &Root, name: &str) -> Result<std::path::PathBuf, DriverSelectError> {
    if !NAMES.contains(&name) {
        return Err(DriverSelectError::Unknown(name.into()));
    }
    Ok(root.driver_home(name).map_err(SnapshotError::from)?)
}

/// Opens the named driver under `root` and wraps it in a [`Snapshotter`].
pub fn open(root: &Root, name: &str) -> Result<Snapshotter, DriverSelectError> {
    open_at(&home(root, name)?, name)
}

/// Opens the named driver with its home at `home` instead of the data
/// root's `<root>/<driver>` (the containerd proxy keeps its snapshots
/// apart from strata's images, in `<root>/containerd/<driver>`).
pub fn open_at(home: &Path, name: &str) -> Result<Snapshotter, DriverSelectError> {
    let home = home.to_owned();
    let driver: Box<dyn Driver> = match name {
        "overlay" => Box::new(overlay::Overlay::new(&home).map_err(unusable(name))?),
        "copy" => Box::new(copy::Copy::new(&home).map_err(unusable(name))?),
        "btrfs" => Box::new(btrfs::Btrfs::new(&home).map_err(unusable(name))?),
        "dmthin" => Box::new(dmthin::Dmthin::new(&home).map_err(unusable(name))?),
        other => return Err(DriverSelectError::Unknown(other.into())),
    };
    Ok(Snapshotter::new(&home, driver)?)
}

/// Opens the named driver with driver options. No options is [`open`];
/// the only option so far is overlay's `metacopy=on`
/// ([`overlay::Overlay::with_metacopy`]), used by the copy_up benchmark.
pub fn open_with_options(root: &Root, name: &str, options: &[String]) -> Result<Snapshotter, DriverSelectError> {
    if options.is_empty() {
        return open(root, name);
    }
    if name != "overlay" {
        return Err(DriverSelectError::NoOptions { driver: name.into(), options: options.to_vec() });
    }
    let mut metacopy = false;
    for o in options {
        match o.as_str() {
            "metacopy=on" => metacopy = true,
            "metacopy=off" => metacopy = false,
            other => return Err(DriverSelectError::UnknownOption { driver: name.into(), option: other.into() }),
        }
    }
    let home = home(root, name)?;
    let driver = overlay::Overlay::new(&home).map_err(unusable(name))?.with_metacopy(metacopy);
    Ok(Snapshotter::new(&home, Box::new(driver))?)
}

/// Whether `FICLONE` works between two files in `dir` (the filesystem
/// supports reflinks), or why not.
pub fn probe_reflink(dir: &Path) -> io::Result<()> {
    let probe = |a: &Path, b: &Path| -> io::Result<()> {
        std::fs::write(a, b"strata reflink probe\n")?;
        let src = std::fs::File::open(a)?;
        let dst = std::fs::File::create(b)?;
        crate::sys::clone::ficlone(&dst, &src)?;
        Ok(())
    };
    let suffix = crate::root::unique_suffix();
    let (a, b) = (dir.join(format!(".reflink-probe-{suffix}-a")), dir.join(format!(".reflink-probe-{suffix}-b")));
    let result = probe(&a, &b);
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    result
}

/// `strata info` lines about the filesystem under a driver's home.
pub(crate) fn backing_status(backing: &io::Result<FsMagic>, reflink: &io::Result<()>) -> Vec<(String, String)> {
    let backing = match backing {
        Ok(magic) => magic.name(),
        Err(e) => format!("unknown ({e})"),
    };
    let reflink = match reflink {
        Ok(()) => "true".to_owned(),
        Err(e) => format!("false ({e})"),
    };
    vec![("Backing Filesystem".into(), backing), ("Reflink".into(), reflink)]
}
