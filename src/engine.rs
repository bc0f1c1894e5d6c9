//! [`Engine`]: one data root opened with one storage driver — the handle
//! the CLI (and later the runtime, builder and registry client) works
//! through. It owns no policy of its own; it wires the stores together.

use crate::content::ContentStore;
use crate::drivers::{self, DriverSelectError};
use crate::image::images::ImageStore;
use crate::image::layers::LayerStore;
use crate::root::{Root, RootError};
use crate::snapshot::Snapshotter;
use std::path::Path;

/// Errors opening an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Root(#[from] RootError),
    #[error(transparent)]
    Driver(#[from] DriverSelectError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error(transparent)]
    Container(#[from] crate::container::records::ContainerError),
}

/// A data root with its driver's snapshotter, layer and image stores.
pub struct Engine {
    pub root: Root,
    pub snapshots: Snapshotter,
    pub images: ImageStore,
    pub content: ContentStore,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("root", &self.root).field("driver", &self.snapshots.driver_name()).finish()
    }
}

impl Engine {
    /// Opens `root` with the named storage driver.
    pub fn open(root: &Path, driver: &str) -> Result<Engine, EngineError> {
        let root = Root::open(root)?;
        // Containers an older strata made keep secrets in world-readable
        // files until they are tightened.
        crate::container::records::ContainerStore::new(&root).tighten()?;
        let snapshots = drivers::open(&root, driver)?;
        let images = ImageStore::new(&root, driver);
        let content = ContentStore::new(&root);
        let engine = Engine { root, snapshots, images, content };
        engine.recover()?;
        Ok(engine)
    }

    /// Repairs what a crashed strata process can leave behind: extract
    /// snapshots no live process leases (a layer apply killed midway), and
    /// on-disk snapshots the metadata never recorded or already forgot.
    /// Staging debris is swept by [`Root::open`]. Returns what was removed.
    pub fn recover(&self) -> Result<usize, EngineError> {
        let mut stale = Vec::new();
        self.snapshots.walk(|i| {
            if i.key.as_str().starts_with(crate::image::layers::EXTRACT_PREFIX) {
                stale.push(i.key.clone());
            }
        })?;
        let mut n = 0;
        for key in stale {
            if !self.root.lease_held(crate::root::LeaseName::Snapshot(key.as_str()))? {
                self.snapshots.remove(&key)?;
                n += 1;
            }
        }
        Ok(n + self.snapshots.cleanup()?)
    }

    /// The layer store over this engine's snapshotter.
    pub fn layers(&self) -> LayerStore<'_> {
        LayerStore::new(&self.root, &self.snapshots)
    }
}
