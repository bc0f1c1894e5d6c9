//! Volume operations that need the containers: which container uses which
//! volume (so `volume rm` refuses a volume in use), `volume prune`, and
//! Docker's `volume inspect` document.

use crate::container::records::{ContainerError, ContainerStore};
use crate::container::MountKind;
use crate::engine::Engine;
use crate::volume::{VolumeError, VolumeStore, VolumeUser};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

/// Errors of volume operations.
#[derive(Debug, thiserror::Error)]
pub enum VolumeOpError {
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    Container(#[from] ContainerError),
}

/// Per container, the volumes it mounts.
pub fn users(engine: &Engine) -> Result<Vec<VolumeUser>, ContainerError> {
    Ok(ContainerStore::new(&engine.root)
        .list()?
        .into_iter()
        .map(|(c, _)| VolumeUser {
            container: c.id.short().to_owned(),
            volumes: c.mounts.iter().filter(|m| m.kind == MountKind::Volume).map(|m| m.source.clone()).collect(),
        })
        .collect())
}

/// Removes each named volume that no container uses; one result per
/// name, in order (a volume in use is refused, the others still go).
pub fn remove(engine: &Engine, names: &[String]) -> Result<Vec<Result<(), VolumeError>>, ContainerError> {
    let store = VolumeStore::new(&engine.root);
    let users = users(engine)?;
    Ok(names.iter().map(|n| store.remove(n, &users)).collect())
}

/// What `volume prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub volumes: Vec<String>,
    /// Bytes their data held.
    pub reclaimed: u64,
}

/// Removes the volumes no container uses: anonymous ones, or all unused
/// with `all` (Docker 23's default and `-a`).
pub fn prune(engine: &Engine, all: bool) -> Result<Pruned, VolumeOpError> {
    let store = VolumeStore::new(&engine.root);
    let users = users(engine)?;
    let used: HashSet<&String> = users.iter().flat_map(|u| &u.volumes).collect();
    let mut pruned = Pruned::default();
    for v in store.list()? {
        if used.contains(&v.name) || !(all || v.anonymous) {
            continue;
        }
        pruned.reclaimed += store.usage(&v.name);
        store.remove(&v.name, &users)?;
        pruned.volumes.push(v.name);
    }
    Ok(pruned)
}

/// `docker volume inspect`'s document for one volume.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInspect {
    pub created_at: String,
    pub driver: &'static str,
    pub labels: BTreeMap<String, String>,
    pub mountpoint: PathBuf,
    pub name: String,
    pub options: BTreeMap<String, String>,
    pub scope: &'static str,
}

/// The inspect document of the volume `name`.
pub fn inspect(engine: &Engine, name: &str) -> Result<VolumeInspect, VolumeError> {
    let store = VolumeStore::new(&engine.root);
    let v = store.get(name)?;
    Ok(VolumeInspect {
        created_at: v.created_at,
        driver: "local",
        labels: v.labels,
        mountpoint: store.data(&v.name),
        name: v.name,
        options: BTreeMap::new(),
        scope: "local",
    })
}
