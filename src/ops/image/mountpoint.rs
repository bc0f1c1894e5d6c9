//! `strata image mount` / `unmount`: a read-only view of an image's merged
//! filesystem at `<root>/image/<driver>/mounts/<id-hex>/merged`, as
//! `podman image mount` offers, so an image can be inspected before any
//! container exists. The view is a snapshot (`mount-<id-hex>`) on the
//! image's top layer, which also keeps the layers from being removed while
//! mounted.

use crate::digest::ImageId;
use crate::engine::Engine;
use crate::image::images::ImageError;
use crate::mount::{mount_all, unmount_all};
use crate::root::RootError;
use crate::snapshot::{SnapshotError, SnapshotKey};
use std::path::PathBuf;

/// Errors of image mounts.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("image {0} has no layers to mount")]
    Empty(String),
    #[error("mount {path}: {source}")]
    Mount { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Root(#[from] RootError),
}

fn view_key(id: &ImageId) -> SnapshotKey {
    SnapshotKey::new(format!("mount-{}", id.digest().hex())).expect("valid key")
}

/// Where an image is (or would be) mounted.
pub fn mount_path(engine: &Engine, id: &ImageId) -> PathBuf {
    engine.root.image_dir(engine.snapshots.driver_name()).join("mounts").join(id.digest().hex()).join("merged")
}

/// Whether the image currently has a mounted view.
pub fn is_mounted(engine: &Engine, id: &ImageId) -> bool {
    engine.snapshots.exists(&view_key(id)).unwrap_or(false)
}

/// Mounts the image read-only and returns the path; mounting a mounted
/// image returns the same path.
pub fn mount_image(engine: &Engine, id: &ImageId) -> Result<PathBuf, MountError> {
    let img = engine.images.get(id)?;
    let top = img.top_chain().ok_or_else(|| MountError::Empty(id.to_string()))?;
    let path = mount_path(engine, id);
    let _lock = engine.root.lock(crate::root::LockName::ImageMount(id))?;
    if crate::sys::mount::is_mount_point(&path).unwrap_or(false) {
        return Ok(path);
    }
    let key = view_key(id);
    let layer = engine.layers().require(&top).map_err(|e| MountError::Empty(e.to_string()))?;
    let mounts = if engine.snapshots.exists(&key)? {
        engine.snapshots.mounts(&key)?
    } else {
        engine.snapshots.view(&key, Some(&layer.snapshot))?
    };
    std::fs::create_dir_all(&path).map_err(|e| RootError::io(&path, e))?;
    if let Err(source) = mount_all(&mounts, &path) {
        let _ = engine.snapshots.remove(&key);
        return Err(MountError::Mount { path, source });
    }
    Ok(path)
}

/// Unmounts the image's view and removes it.
pub fn unmount_image(engine: &Engine, id: &ImageId) -> Result<PathBuf, MountError> {
    let path = mount_path(engine, id);
    let _lock = engine.root.lock(crate::root::LockName::ImageMount(id))?;
    unmount_all(&path).map_err(|source| MountError::Mount { path: path.clone(), source })?;
    let key = view_key(id);
    if engine.snapshots.exists(&key)? {
        engine.snapshots.remove(&key)?;
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(path)
}
