//! The data root as a whole: `system df` (disk usage by images, a layer
//! shared between images counted once, containers' writable layers and
//! volumes, with what could be reclaimed — as Docker accounts it) and
//! `info`.

use super::container::lifecycle::sizes;
use crate::container::records::{ContainerError, ContainerStore};
use crate::container::{Config, MountKind, State, Status};
use crate::digest::{ChainId, ImageId};
use crate::engine::Engine;
use crate::image::images::{Image, ImageError};
use crate::image::layers::LayerError;
use crate::image::reference::Reference;
use crate::volume::{VolumeError, VolumeStore};
use std::collections::{HashMap, HashSet};

/// Errors gathering disk usage.
#[derive(Debug, thiserror::Error)]
pub enum DfError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
}

/// One image's share of the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    pub id: ImageId,
    /// Its first tag, if any.
    pub reference: Option<Reference>,
    /// RFC 3339, empty when the config has no time.
    pub created: String,
    /// All its layers.
    pub size: u64,
    /// The part in layers other images use too.
    pub shared: u64,
    /// Containers made from it.
    pub containers: usize,
}

/// One container's writable layer.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    pub config: Config,
    pub state: State,
    pub size: u64,
}

impl ContainerUsage {
    /// Volumes it mounts.
    pub fn volumes(&self) -> usize {
        self.config.mounts.iter().filter(|m| m.kind == MountKind::Volume).count()
    }
}

/// One volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeUsage {
    pub name: String,
    pub size: u64,
    /// Containers that mount it.
    pub links: usize,
}

/// The whole data root's usage.
#[derive(Debug, Clone)]
pub struct DiskUsage {
    pub images: Vec<ImageUsage>,
    /// Bytes of every image layer, each counted once.
    pub images_size: u64,
    /// Images some container was made from.
    pub images_active: usize,
    /// Bytes of layers no container's image uses.
    pub images_reclaimable: u64,
    pub containers: Vec<ContainerUsage>,
    pub volumes: Vec<VolumeUsage>,
}

impl DiskUsage {
    pub fn containers_size(&self) -> u64 {
        self.containers.iter().map(|c| c.size).sum()
    }
    pub fn containers_active(&self) -> usize {
        self.containers.iter().filter(|c| c.state.status == Status::Running).count()
    }
    /// Writable layers of containers that are not running.
    pub fn containers_reclaimable(&self) -> u64 {
        self.containers.iter().filter(|c| c.state.status != Status::Running).map(|c| c.size).sum()
    }
    pub fn volumes_size(&self) -> u64 {
        self.volumes.iter().map(|v| v.size).sum()
    }
    pub fn volumes_active(&self) -> usize {
        self.volumes.iter().filter(|v| v.links > 0).count()
    }
    /// Volumes no container mounts.
    pub fn volumes_reclaimable(&self) -> u64 {
        self.volumes.iter().filter(|v| v.links == 0).map(|v| v.size).sum()
    }
}

/// Gathers `system df`: sizes from the layer store and the drivers'
/// usage, never by walking image layers.
pub fn df(engine: &Engine) -> Result<DiskUsage, DfError> {
    let containers = ContainerStore::new(&engine.root).list()?;
    let mut images = Vec::new();
    for id in engine.images.list()? {
        if let Ok(img) = engine.images.get(&id) {
            images.push(img);
        }
    }
    let layer_size: HashMap<ChainId, u64> =
        engine.layers().list()?.into_iter().map(|l| (l.chain_id.clone(), l.size)).collect();
    let size_of = |c: &ChainId| layer_size.get(c).copied().unwrap_or(0);
    let used_images: HashSet<String> = containers.iter().map(|(c, _)| c.image.clone()).collect();
    // How many images use each layer.
    let mut layer_users: HashMap<ChainId, usize> = HashMap::new();
    for img in &images {
        for c in img.chain_ids() {
            *layer_users.entry(c).or_default() += 1;
        }
    }
    let images_size: u64 = layer_users.keys().map(size_of).sum();
    let active: Vec<&Image> = images.iter().filter(|i| used_images.contains(&i.id.to_string())).collect();
    let active_layers: HashSet<ChainId> = active.iter().flat_map(|i| i.chain_ids()).collect();
    let images_reclaimable: u64 = layer_users.keys().filter(|c| !active_layers.contains(*c)).map(size_of).sum();
    let images_active = active.len();
    let tags = engine.images.tags()?;
    let image_usage = images
        .iter()
        .map(|img| {
            let chains = img.chain_ids();
            ImageUsage {
                id: img.id.clone(),
                reference: tags.iter().find(|(_, i)| *i == img.id).map(|(r, _)| r.clone()),
                created: img.config.created.map(|c| c.to_rfc3339()).unwrap_or_default(),
                size: chains.iter().map(size_of).sum(),
                shared: chains.iter().filter(|c| layer_users.get(*c).copied().unwrap_or(0) > 1).map(size_of).sum(),
                containers: containers.iter().filter(|(c, _)| c.image == img.id.to_string()).count(),
            }
        })
        .collect();
    let volume_store = VolumeStore::new(&engine.root);
    let volumes = volume_store
        .list()?
        .into_iter()
        .map(|v| VolumeUsage {
            size: volume_store.usage(&v.name),
            links: containers
                .iter()
                .filter(|(c, _)| c.mounts.iter().any(|m| m.kind == MountKind::Volume && m.source == v.name))
                .count(),
            name: v.name,
        })
        .collect();
    let containers = containers
        .into_iter()
        .map(|(config, state)| ContainerUsage { size: sizes(engine, &config, None).0, config, state })
        .collect();
    Ok(DiskUsage { images: image_usage, images_size, images_active, images_reclaimable, containers, volumes })
}

/// Which I/O engine tree walks get here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoEngineInfo {
    Uring,
    /// The plain-syscall twin, with why the ring is not used (unset when
    /// chosen by `STRATA_IO=sync`).
    Sync {
        reason: Option<String>,
    },
}

/// What `info` shows.
#[derive(Debug, Clone)]
pub struct Info {
    pub driver: &'static str,
    /// The driver's own status lines (backing filesystem, pool usage, …).
    pub driver_status: Vec<(String, String)>,
    pub io_engine: IoEngineInfo,
    pub images: usize,
    pub snapshots: usize,
    pub kernel: String,
    /// `PRETTY_NAME` of /etc/os-release, or `Linux`.
    pub os: String,
    pub arch: &'static str,
    pub root: std::path::PathBuf,
}

/// Gathers `info`.
pub fn info(engine: &Engine) -> Result<Info, InfoError> {
    let images = engine.images.list()?.len();
    let mut snapshots = 0;
    engine.snapshots.walk(|_| snapshots += 1)?;
    let io = crate::uring::IoEngine::new();
    let io_engine = match io.kind() {
        crate::uring::IoEngineKind::Uring => IoEngineInfo::Uring,
        _ => IoEngineInfo::Sync { reason: io.sync_reason().map(ToString::to_string) },
    };
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned())))
        .unwrap_or_else(|| "Linux".into());
    Ok(Info {
        driver: engine.snapshots.driver_name(),
        driver_status: engine.snapshots.driver().status(),
        io_engine,
        images,
        snapshots,
        kernel: crate::sys::uts::uname().release().to_string_lossy().into_owned(),
        os,
        arch: std::env::consts::ARCH,
        root: engine.root.path().to_owned(),
    })
}

/// Errors gathering `info`.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
}
