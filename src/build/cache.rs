//! The build cache: which image a step made from a given parent.
//!
//! ```text
//! <root>/image/<driver>/buildcache/<key hex>    the image ID the step produced
//! ```
//!
//! The key is the sha256 of the parent image ID (or `scratch`) and the
//! step's canonical text: the instruction after variable expansion, the
//! build args in effect, and for `COPY`/`ADD` the content hash of the
//! sources. An entry is only trusted if that image still exists and its
//! recorded parent is the current image, so a removed image quietly
//! misses instead of resurrecting; stale entries cost one small file.

use crate::digest::{Digest, ImageId};
use crate::engine::Engine;
use crate::root::{atomic_write_volatile, RootError};
use std::path::PathBuf;

/// The cache of one data root and driver.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
}

/// The cache key of a step on `parent`.
pub fn key(parent: Option<&ImageId>, step: &str) -> Digest {
    let parent = parent.map(ToString::to_string).unwrap_or_else(|| "scratch".into());
    Digest::of(format!("strata build cache v1\n{parent}\n{step}").as_bytes())
}

impl Cache {
    pub fn new(engine: &Engine) -> Cache {
        Cache { dir: engine.root.image_dir(engine.snapshots.driver_name()).join("buildcache") }
    }

    /// The image a step with this key made on `parent`, if it still exists.
    pub fn get(&self, engine: &Engine, key: &Digest, parent: Option<&ImageId>) -> Option<ImageId> {
        let text = std::fs::read_to_string(self.dir.join(key.hex())).ok()?;
        let id: ImageId = text.trim().parse().ok()?;
        let image = engine.images.get(&id).ok()?;
        (image.meta.parent.as_ref() == parent).then_some(id)
    }

    /// Records that the step with `key` made `id`. Volatile: losing an
    /// entry in a crash only costs a rebuild of that step.
    pub fn put(&self, key: &Digest, id: &ImageId) -> Result<(), RootError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| RootError::io(&self.dir, e))?;
        atomic_write_volatile(&self.dir.join(key.hex()), id.to_string().as_bytes())
    }
}
