//! Volumes: directories outside any storage driver that outlive
//! containers (`<root>/volumes/<name>/_data`, as Docker's `local` driver).
//! Named volumes are created on first use or with `volume create`;
//! anonymous ones get a random 64-hex name and go with `rm -v`.
//!
//! ```text
//! <root>/volumes/<name>/ 0700: only root reaches what containers wrote
//! ├── volume.json        {Name, CreatedAt, Anonymous, Labels}
//! └── _data/             bind-mounted into containers; I/O never passes
//!                        through the storage driver. 0755 when created;
//!                        populating gives it the image directory's owner
//!                        and mode, as Docker does
//! ```
//!
//! **Population copies an untrusted tree.** The image directory arrives
//! as a descriptor its caller resolved inside the container's root
//! (`openat2(RESOLVE_IN_ROOT)`), and is copied on descriptors
//! ([`crate::drivers::copy::tree_at`]): no path of the image is ever
//! resolved on the host.

use crate::drivers::copy::tree::Strategy;
use crate::drivers::copy::tree_at::copy_tree_at;
use crate::root::{atomic_write_json, read_json, LockName, Root, RootError};
use crate::sys::fs as sysfs;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// `<root>/volumes/<name>`: root only, so no other user reaches `_data`
/// (whatever its own mode, which is the image's).
const VOLUME_DIR_MODE: u32 = 0o700;
/// A new, unpopulated `_data` (Docker's local driver).
const DATA_MODE: u32 = 0o755;

/// Errors of the volume store.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("remove {name}: volume is in use - [{container}]")]
    InUse { name: String, container: String },
    #[error("invalid volume name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    #[error("copy image content into volume {name}: {detail}")]
    Populate { name: String, detail: String },
    #[error(transparent)]
    Root(#[from] RootError),
}

fn set_mode(path: &std::path::Path, mode: u32) -> Result<(), RootError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| RootError::io(path, e))
}

/// A volume's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub created_at: String,
    #[serde(default)]
    pub anonymous: bool,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A container and the volumes it mounts, as removal checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeUser {
    /// The container's short ID, as Docker names it in "volume is in use".
    pub container: String,
    pub volumes: Vec<String>,
}

/// `<root>/volumes`.
#[derive(Debug, Clone)]
pub struct VolumeStore {
    root: Root,
    dir: PathBuf,
}

fn valid_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl VolumeStore {
    pub fn new(root: &Root) -> VolumeStore {
        VolumeStore { root: root.clone(), dir: root.volumes() }
    }

    /// The directory containers see.
    pub fn data(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Creates a volume (or returns the existing one of that name). `None`
    /// makes an anonymous volume.
    pub fn create(&self, name: Option<&str>) -> Result<Volume, VolumeError> {
        let (name, anonymous) = match name {
            Some(n) if valid_name(n) => (n.to_owned(), false),
            Some(n) => return Err(VolumeError::BadName(n.to_owned())),
            None => (crate::id::random_hex(), true),
        };
        let _l = self.root.lock(LockName::Volumes)?;
        if let Ok(v) = self.get(&name) {
            // Volumes made before the directory was private become so.
            let dir = self.dir.join(&name);
            let mode = std::fs::symlink_metadata(&dir).map_err(|e| RootError::io(&dir, e))?.permissions().mode();
            if mode & 0o7777 != VOLUME_DIR_MODE {
                set_mode(&dir, VOLUME_DIR_MODE)?;
            }
            return Ok(v);
        }
        let v = Volume { name: name.clone(), created_at: crate::time::now(), anonymous, labels: Default::default() };
        let staging = self.root.staging_dir("volume")?;
        set_mode(staging.path(), VOLUME_DIR_MODE)?;
        let data = staging.path().join("_data");
        std::fs::create_dir(&data).map_err(|e| RootError::io(&data, e))?;
        set_mode(&data, DATA_MODE)?;
        atomic_write_json(&staging.path().join("volume.json"), &v)?;
        let dest = self.dir.join(&name);
        staging.persist(&dest).map_err(|e| RootError::io(&dest, e))?;
        Ok(v)
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        if !valid_name(name) {
            return Err(VolumeError::NotFound(name.to_owned()));
        }
        read_json(&self.dir.join(name).join("volume.json"))?.ok_or_else(|| VolumeError::NotFound(name.to_owned()))
    }

    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let rd = std::fs::read_dir(&self.dir).map_err(|e| RootError::io(&self.dir, e))?;
        let mut out: Vec<Volume> = rd.flatten().filter_map(|e| self.get(e.file_name().to_str()?).ok()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes a volume no container in `users` names.
    pub fn remove(&self, name: &str, users: &[VolumeUser]) -> Result<(), VolumeError> {
        self.get(name)?;
        if let Some(u) = users.iter().find(|u| u.volumes.iter().any(|v| v == name)) {
            return Err(VolumeError::InUse { name: name.to_owned(), container: u.container.clone() });
        }
        let _l = self.root.lock(LockName::Volumes)?;
        let trash = self.root.staging_dir("volume-rm")?;
        let dir = self.dir.join(name);
        std::fs::rename(&dir, trash.path().join("v")).map_err(|e| RootError::io(&dir, e))?;
        Ok(())
    }

    /// Copies the directory `source` (an image directory, opened inside
    /// the container's root) into the volume if the volume is still empty
    /// — Docker's copy-on-first-use. `_data` takes `source`'s owner, mode,
    /// xattrs and times; the copy never follows a symlink of the tree and
    /// never blocks on a FIFO.
    pub fn populate(&self, name: &str, source: BorrowedFd<'_>) -> Result<(), VolumeError> {
        let err = |detail: String| VolumeError::Populate { name: name.to_owned(), detail };
        let path = self.dir.join(name);
        let dir = sysfs::open_dir(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let data = sysfs::open_dir_at(dir.as_fd(), b"_data").map_err(|e| err(format!("_data: {e}")))?;
        let empty = sysfs::getdents(data.as_fd()).map(|d| d.is_empty()).unwrap_or(false);
        drop(data);
        if !empty {
            return Ok(());
        }
        let tmp = b"_data.populate";
        sysfs::remove_all_at(dir.as_fd(), tmp).map_err(|e| err(format!("_data.populate: {e}")))?;
        copy_tree_at(source, dir.as_fd(), tmp, Strategy::Reflink).map_err(|e| err(e.to_string()))?;
        std::fs::remove_dir(path.join("_data")).map_err(|e| err(format!("_data: {e}")))?;
        std::fs::rename(path.join("_data.populate"), path.join("_data")).map_err(|e| err(format!("_data: {e}")))?;
        Ok(())
    }

    /// Bytes a volume uses.
    pub fn usage(&self, name: &str) -> u64 {
        crate::uring::du::tree_usage(&self.data(name)).map(|u| u.size).unwrap_or(0)
    }
}
