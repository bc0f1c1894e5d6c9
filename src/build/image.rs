//! The image a build step is working on: its full config as JSON (so
//! fields strata does not model survive), its manifest's layer
//! descriptors, and committing a step as a new image whose parent is the
//! previous step's.

use super::BuildError;
use crate::digest::{ChainId, DiffId, ImageId};
use crate::engine::Engine;
use crate::image::layers::Layer;
use crate::image::oci::{OCI_CONFIG, OCI_MANIFEST};
use crate::image::store::ImageError;
use crate::ops::image::import::{descriptor, empty_config};
use crate::time::now;
use serde_json::{json, Map, Value};

/// The state a stage carries from step to step.
#[derive(Debug, Clone)]
pub struct Working {
    /// The current image (`None`: `FROM scratch` before any step).
    pub image: Option<ImageId>,
    /// The full image config.
    pub config: Map<String, Value>,
    /// The manifest's layer descriptors, bottom first.
    pub layers: Vec<Value>,
}

impl Working {
    /// An empty image (`FROM scratch`).
    pub fn scratch() -> Working {
        Working { image: None, config: empty_config(), layers: Vec::new() }
    }

    /// A stored image.
    pub fn load(engine: &Engine, id: &ImageId) -> Result<Working, BuildError> {
        let img = engine.images.get(id)?;
        let (_, manifest) = engine.images.manifest(&img)?;
        let config: Map<String, Value> = serde_json::from_slice(&img.config_bytes)
            .map_err(|e| BuildError::Invalid(format!("image {}: config: {e}", id.digest().short())))?;
        let layers = manifest.layers.iter().map(|d| descriptor(&d.media_type, &d.digest, d.size)).collect();
        Ok(Working { image: Some(id.clone()), config, layers })
    }

    /// The `config` object (Docker's capitalised keys).
    pub fn inner(&mut self) -> &mut Map<String, Value> {
        let v = self.config.entry("config").or_insert_with(|| json!({}));
        if !v.is_object() {
            *v = json!({});
        }
        v.as_object_mut().expect("object")
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.config.get("config").and_then(|c| c.get(key))
    }

    /// `Env` as `(key, value)` pairs.
    pub fn env(&self) -> Vec<(String, String)> {
        self.get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|e| {
                        e.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).unwrap_or((e.into(), "".into()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn str_field(&self, key: &str) -> Option<String> {
        self.get(key).and_then(Value::as_str).map(str::to_owned).filter(|s| !s.is_empty())
    }

    pub fn diff_ids(&self) -> Vec<DiffId> {
        self.config
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .and_then(|d| serde_json::from_value(d.clone()).ok())
            .unwrap_or_default()
    }

    /// The chain ID of the top layer.
    pub fn top_chain(&self) -> Option<ChainId> {
        ChainId::chain(&self.diff_ids()).pop()
    }

    /// Commits a step: appends its history entry (and layer), stores the
    /// config and manifest, and records the image with the current one as
    /// parent. The working state moves to the new image.
    pub fn commit(&mut self, engine: &Engine, created_by: &str, layer: Option<&Layer>) -> Result<ImageId, BuildError> {
        let created = now();
        let mut h = Map::new();
        h.insert("created".into(), json!(created));
        h.insert("created_by".into(), json!(created_by));
        match layer {
            Some(l) => {
                let mut diff_ids = self.diff_ids();
                diff_ids.push(l.diff_id.clone());
                self.config.insert("rootfs".into(), json!({"type": "layers", "diff_ids": diff_ids}));
                self.layers.push(descriptor(&l.blob.media_type, &l.blob.digest, l.blob.size));
            }
            None => {
                h.insert("empty_layer".into(), json!(true));
            }
        }
        let history = self.config.entry("history").or_insert_with(|| json!([]));
        if !history.is_array() {
            *history = json!([]);
        }
        history.as_array_mut().expect("array").push(Value::Object(h));
        self.config.insert("created".into(), json!(created));
        let config_bytes = serde_json::to_vec(&self.config).expect("json");
        let config_digest = engine.content.put(&config_bytes).map_err(ImageError::from)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, &config_digest, config_bytes.len() as u64),
            "layers": self.layers,
        });
        let manifest_digest =
            engine.content.put(&serde_json::to_vec(&manifest).expect("json")).map_err(ImageError::from)?;
        let id = engine.images.put(&config_bytes, &manifest_digest, self.image.clone())?;
        self.image = Some(id.clone());
        Ok(id)
    }
}
