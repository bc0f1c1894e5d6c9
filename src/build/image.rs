//! The image a build step is working on: its full config, typed (fields
//! strata does not model ride along in the config's `extra` maps, so they
//! survive), its manifest's layer descriptors, and committing a step as a
//! new image whose parent is the previous step's.

use super::BuildError;
use crate::digest::{ChainId, DiffId, ImageId};
use crate::engine::Engine;
use crate::image::images::ImageError;
use crate::image::layers::Layer;
use crate::image::oci::{ContainerConfig, Descriptor, History, ImageConfig, Manifest, OCI_CONFIG};
use chrono::Utc;

/// The state a stage carries from step to step.
#[derive(Debug, Clone)]
pub struct Working {
    /// The current image (`None`: `FROM scratch` before any step).
    pub image: Option<ImageId>,
    /// The full image config.
    pub config: ImageConfig,
    /// The manifest's layer descriptors, bottom first.
    pub layers: Vec<Descriptor>,
}

impl Working {
    /// An empty image (`FROM scratch`).
    pub fn scratch() -> Working {
        Working { image: None, config: ImageConfig::scratch(), layers: Vec::new() }
    }

    /// A stored image.
    pub fn load(engine: &Engine, id: &ImageId) -> Result<Working, BuildError> {
        let img = engine.images.get(id)?;
        let (_, manifest) = engine.images.manifest(&img)?;
        let layers =
            manifest.layers.iter().map(|d| Descriptor::new(d.media_type.clone(), d.digest.clone(), d.size)).collect();
        Ok(Working { image: Some(id.clone()), config: img.config, layers })
    }

    /// The execution defaults (`config`, Docker's capitalised keys),
    /// created empty when the image has none.
    pub fn inner(&mut self) -> &mut ContainerConfig {
        self.config.config_mut()
    }

    /// The execution defaults, if the image has them.
    pub fn defaults(&self) -> Option<&ContainerConfig> {
        self.config.config.as_ref()
    }

    /// `Env` as `(key, value)` pairs.
    pub fn env(&self) -> Vec<(String, String)> {
        self.defaults()
            .and_then(|c| c.env.as_ref())
            .map(|a| {
                a.iter()
                    .map(|e| {
                        e.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).unwrap_or((e.into(), "".into()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `WorkingDir`, unless unset or empty.
    pub fn working_dir(&self) -> Option<String> {
        self.defaults().and_then(|c| c.working_dir.clone()).filter(|s| !s.is_empty())
    }

    pub fn diff_ids(&self) -> &[DiffId] {
        &self.config.rootfs.diff_ids
    }

    /// The chain ID of the top layer.
    pub fn top_chain(&self) -> Option<ChainId> {
        ChainId::chain(&self.config.rootfs.diff_ids).pop()
    }

    /// Commits a step: appends its history entry (and layer), stores the
    /// config and manifest, and records the image with the current one as
    /// parent. The working state moves to the new image.
    pub fn commit(&mut self, engine: &Engine, created_by: &str, layer: Option<&Layer>) -> Result<ImageId, BuildError> {
        let entry = History {
            created: Some(Utc::now()),
            created_by: Some(created_by.to_owned()),
            empty_layer: layer.is_none(),
            ..History::default()
        };
        self.config.push_step(entry, layer.map(|l| l.diff_id.clone()));
        self.layers.extend(layer.map(|l| l.blob.descriptor()));
        let config_bytes = self.config.to_bytes();
        let config_digest = engine.content.put(&config_bytes).map_err(ImageError::from)?;
        let manifest =
            Manifest::new(Descriptor::new(OCI_CONFIG, config_digest, config_bytes.len() as u64), self.layers.clone());
        let manifest_digest = engine.content.put(&manifest.to_bytes()).map_err(ImageError::from)?;
        let id = engine.images.put(&config_bytes, &manifest_digest, self.image.clone())?;
        self.image = Some(id.clone());
        Ok(id)
    }
}
