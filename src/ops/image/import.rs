//! Bringing images in: `import` (a root filesystem tar as a one-layer
//! image, optionally on top of a local base image, with config changes)
//! and `load` (OCI layouts and `docker save` archives).
//!
//! Both register layers through the layer store — one streaming pass per
//! blob that stores, hashes and applies it — so layers shared between
//! images are stored once: their chain IDs are equal, and a registered
//! chain is never applied again.

use crate::digest::{ChainId, DiffId, Digest, ImageId};
use crate::engine::Engine;
use crate::image::archive::{read_archive, ArchiveError};
use crate::image::changes::{Change, ChangeError};
use crate::image::layers::LayerError;
use crate::image::oci::{OCI_CONFIG, OCI_MANIFEST};
use crate::image::reference::Reference;
use crate::image::store::ImageError;
use serde_json::{json, Map, Value};
use std::io::Read;

/// Errors bringing an image in.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{0}")]
    Invalid(String),
}

/// What `import` should build.
#[derive(Debug, Default)]
pub struct ImportOptions {
    /// A local image to put the new layer on (strata's stand-in for a
    /// one-step build until `build` exists).
    pub base: Option<ImageId>,
    /// Dockerfile-syntax config changes, each recorded as an empty layer.
    pub changes: Vec<String>,
    /// History comment (`docker import -m`).
    pub message: Option<String>,
    /// Where the tar came from, for the history comment.
    pub source: String,
    /// The history `created_by` for the new layer (`commit` records the
    /// container's command); default: Docker's `ADD file:… in /` line.
    pub created_by: Option<String>,
}

use crate::time::now;

/// A descriptor as JSON.
pub(crate) fn descriptor(media: &str, digest: &Digest, size: u64) -> Value {
    json!({"mediaType": media, "digest": digest.to_string(), "size": size})
}

/// The config of an image with no layers (`FROM scratch`, `import` of a
/// first layer).
pub(crate) fn empty_config() -> Map<String, Value> {
    let cfg = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    });
    cfg.as_object().expect("object").clone()
}

/// Imports `tar` (or nothing, for a changes-only image on a base) as a new
/// image; returns its ID. On error nothing new is left in the store.
pub fn import(engine: &Engine, tar: Option<&mut dyn Read>, opts: &ImportOptions) -> Result<ImageId, ImportError> {
    let changes: Vec<Change> = opts.changes.iter().map(|c| c.parse()).collect::<Result<_, _>>()?;
    let (mut config, mut layers, parent) = match &opts.base {
        Some(base) => {
            let img = engine.images.get(base)?;
            let (_, manifest) = engine.images.manifest(&img)?;
            let cfg: Map<String, Value> = serde_json::from_slice(&img.config_bytes)
                .map_err(|e| ImportError::Invalid(format!("base image config: {e}")))?;
            let layers: Vec<Value> =
                manifest.layers.iter().map(|d| descriptor(&d.media_type, &d.digest, d.size)).collect();
            (cfg, layers, Some(img))
        }
        None => (empty_config(), Vec::new(), None),
    };
    // The base's layers must stay until the new image names them.
    let _claim = parent.as_ref().map(|img| engine.layers().claim_present(&img.chain_ids())).transpose()?;
    if tar.is_none() && parent.is_none() {
        return Err(ImportError::Invalid("import needs a tar archive (or --base with --change)".into()));
    }
    if tar.is_none() && changes.is_empty() {
        return Err(ImportError::Invalid("import --base without a tar needs at least one --change".into()));
    }
    let created = now();
    let mut history: Vec<Value> = config.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut diff_ids: Vec<DiffId> = parent.as_ref().map(|p| p.config.rootfs.diff_ids.clone()).unwrap_or_default();
    if let Some(tar) = tar {
        let parent_chain = ChainId::chain(&diff_ids).pop();
        let (layer, _) = engine.layers().register(parent_chain.as_ref(), None, tar)?;
        layers.push(descriptor(&layer.blob.media_type, &layer.blob.digest, layer.blob.size));
        diff_ids.push(layer.diff_id.clone());
        let mut h = Map::new();
        h.insert("created".into(), json!(created));
        if parent.is_some() {
            // `commit` names the container's command; otherwise record it
            // as Docker's builder records a tar added at the root.
            let by = opts
                .created_by
                .clone()
                .unwrap_or_else(|| format!("/bin/sh -c #(nop) ADD file:{} in / ", layer.diff_id.digest().hex()));
            h.insert("created_by".into(), json!(by));
        }
        let comment = match (&opts.message, &opts.created_by) {
            (Some(m), _) => m.clone(),
            (None, Some(_)) => String::new(),
            (None, None) => format!("Imported from {}", opts.source),
        };
        if !comment.is_empty() {
            h.insert("comment".into(), json!(comment));
        }
        history.push(Value::Object(h));
    }
    let inner = config.entry("config").or_insert_with(|| json!({}));
    if !inner.is_object() {
        *inner = json!({});
    }
    for c in &changes {
        c.apply(inner.as_object_mut().expect("object"));
        history.push(json!({"created": created, "created_by": c.created_by(), "empty_layer": true}));
    }
    config.insert("created".into(), json!(created));
    config.insert("history".into(), Value::Array(history));
    config.insert("rootfs".into(), json!({"type": "layers", "diff_ids": diff_ids}));
    let config_bytes = serde_json::to_vec(&config).expect("json");
    let config_digest = engine.content.put(&config_bytes).map_err(ImageError::from)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config_digest, config_bytes.len() as u64),
        "layers": layers,
    });
    let manifest_digest =
        engine.content.put(&serde_json::to_vec(&manifest).expect("json")).map_err(ImageError::from)?;
    Ok(engine.images.put(&config_bytes, &manifest_digest, parent.map(|p| p.id))?)
}

/// One image brought in by [`load`].
#[derive(Debug)]
pub struct Loaded {
    pub id: ImageId,
    pub tags: Vec<Reference>,
    /// Layers that were applied (the rest already existed).
    pub new_layers: usize,
}

/// Loads every image in an OCI layout (directory or tar) or `docker save`
/// archive.
pub fn load(engine: &Engine, path: &std::path::Path) -> Result<Vec<Loaded>, ImportError> {
    let mut out = Vec::new();
    for img in read_archive(path)? {
        let config = crate::image::store::ImageStore::parse_config(&img.config)?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != img.layers.len() {
            return Err(ImportError::Invalid(format!(
                "{}: the config lists {} layers, the manifest {}",
                path.display(),
                diff_ids.len(),
                img.layers.len()
            )));
        }
        let chains = ChainId::chain(diff_ids);
        // Layers found present are relied on until the image is stored.
        let _claim = engine.layers().claim(&chains)?;
        let mut descriptors = Vec::new();
        let mut new_layers = 0;
        for (i, l) in img.layers.iter().enumerate() {
            let parent = i.checked_sub(1).map(|p| &chains[p]);
            let blob =
                l.source.open().map_err(|e| ImportError::Invalid(format!("{}: layer {i}: {e}", path.display())))?;
            let (layer, fresh) = engine.layers().register(parent, Some(&diff_ids[i]), blob)?;
            new_layers += usize::from(fresh);
            // Keep the archive's exact blob when the manifest names it, so a
            // later save reproduces the same manifest digest.
            if let Some(d) = &l.digest {
                if !engine.content.contains(d) {
                    let mut w = engine.content.writer().map_err(ImageError::from)?;
                    let mut r = l.source.open().map_err(|e| ImportError::Invalid(format!("layer {i}: {e}")))?;
                    std::io::copy(&mut r, &mut w).map_err(|e| ImportError::Invalid(format!("layer {i}: {e}")))?;
                    w.commit(Some(d)).map_err(ImageError::from)?;
                }
            }
            descriptors.push(descriptor(&layer.blob.media_type, &layer.blob.digest, layer.blob.size));
        }
        let config_digest = engine.content.put(&img.config).map_err(ImageError::from)?;
        let manifest_bytes = match &img.manifest {
            Some(m) => m.clone(),
            None => serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, &config_digest, img.config.len() as u64),
                "layers": descriptors,
            }))
            .expect("json"),
        };
        let manifest_digest = engine.content.put(&manifest_bytes).map_err(ImageError::from)?;
        let id = engine.images.put(&img.config, &manifest_digest, None)?;
        let mut tags = Vec::new();
        for t in &img.repo_tags {
            // skopeo and umoci record a bare tag (`1.0`) in an OCI layout's
            // `ref.name`; that names no repository, so the image is loaded
            // untagged rather than as a repository called `1.0`.
            if !t.contains(['/', ':']) {
                continue;
            }
            let r: Reference = t.parse().map_err(|_| ImageError::BadReference(t.clone()))?;
            engine.images.tag(&id, &r)?;
            tags.push(r);
        }
        out.push(Loaded { id, tags, new_layers });
    }
    Ok(out)
}
