//! Bringing images in: `import` (a root filesystem tar as a one-layer
//! image, optionally on top of a local base image, with config changes)
//! and `load` (OCI layouts and `docker save` archives).
//!
//! Both register layers through the layer store — one streaming pass per
//! blob that stores, hashes and applies it — so layers shared between
//! images are stored once: their chain IDs are equal, and a registered
//! chain is never applied again.

use crate::digest::{ChainId, ImageId};
use crate::engine::Engine;
use crate::image::archive::{read_archive, ArchiveError};
use crate::image::changes::Change;
use crate::image::images::ImageError;
use crate::image::layers::{LayerError, LayerOrder};
use crate::image::oci::{Descriptor, History, ImageConfig, Manifest, OCI_CONFIG};
use crate::image::reference::Reference;
use chrono::Utc;
use std::io::Read;

/// Errors bringing an image in.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Image(#[from] ImageError),
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
    /// Config changes (`--change`, parsed by `build::change`), each
    /// recorded as an empty layer.
    pub changes: Vec<Change>,
    /// History comment (`docker import -m`).
    pub message: Option<String>,
    /// Where the tar came from, for the history comment.
    pub source: String,
    /// The history `created_by` for the new layer (`commit` records the
    /// container's command); default: Docker's `ADD file:… in /` line.
    pub created_by: Option<String>,
}

/// Imports `tar` (or nothing, for a changes-only image on a base) as a new
/// image; returns its ID. On error nothing new is left in the store.
pub fn import(engine: &Engine, tar: Option<&mut dyn Read>, opts: &ImportOptions) -> Result<ImageId, ImportError> {
    let changes = &opts.changes;
    let (mut config, mut layers, parent) = match &opts.base {
        Some(base) => {
            let img = engine.images.get(base)?;
            let (_, manifest) = engine.images.manifest(&img)?;
            // The parsed config keeps the fields strata does not model in
            // its `extra` maps, so they survive into the new image.
            let layers: Vec<Descriptor> = manifest
                .layers
                .iter()
                .map(|d| Descriptor::new(d.media_type.clone(), d.digest.clone(), d.size))
                .collect();
            (img.config.clone(), layers, Some(img))
        }
        None => (ImageConfig::scratch(), Vec::new(), None),
    };
    // The base's layers must stay until the new image names them.
    let _claim = parent.as_ref().map(|img| engine.layers().claim_present(&img.chain_ids())).transpose()?;
    if tar.is_none() && parent.is_none() {
        return Err(ImportError::Invalid("import needs a tar archive (or --base with --change)".into()));
    }
    if tar.is_none() && changes.is_empty() {
        return Err(ImportError::Invalid("import --base without a tar needs at least one --change".into()));
    }
    let created = Some(Utc::now());
    if let Some(tar) = tar {
        let parent_chain = ChainId::chain(&config.rootfs.diff_ids).pop();
        let (layer, _) = engine.layers().register(parent_chain.as_ref(), None, tar)?;
        layers.push(layer.blob.descriptor());
        // `commit` names the container's command; otherwise a layer on a
        // base is recorded as Docker's builder records a tar added at the root.
        let created_by = parent.is_some().then(|| {
            opts.created_by
                .clone()
                .unwrap_or_else(|| format!("/bin/sh -c #(nop) ADD file:{} in / ", layer.diff_id.digest().hex()))
        });
        let comment = match (&opts.message, &opts.created_by) {
            (Some(m), _) => Some(m.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(format!("Imported from {}", opts.source)),
        };
        let entry = History { created, created_by, comment: comment.filter(|c| !c.is_empty()), ..History::default() };
        config.push_step(entry, Some(layer.diff_id.clone()));
    }
    for c in changes {
        c.apply(config.config_mut());
        let entry = History { created, created_by: Some(c.created_by()), empty_layer: true, ..History::default() };
        config.push_step(entry, None);
    }
    let config_bytes = config.to_bytes();
    let config_digest = engine.content.put(&config_bytes).map_err(ImageError::from)?;
    let manifest = Manifest::new(Descriptor::new(OCI_CONFIG, config_digest, config_bytes.len() as u64), layers);
    let manifest_digest = engine.content.put(&manifest.to_bytes()).map_err(ImageError::from)?;
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
        let config = crate::image::images::ImageStore::parse_config(&img.config)?;
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
        // Every layer at once where the driver allows it (overlay).
        let open = |i: usize| {
            img.layers[i]
                .source
                .open()
                .map_err(|source| LayerError::OpenBlob { what: format!("{}: layer {i}", path.display()), source })
        };
        let registered = engine.layers().register_image(diff_ids, open, LayerOrder::default())?;
        for (i, (l, (layer, fresh))) in img.layers.iter().zip(registered).enumerate() {
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
            descriptors.push(layer.blob.descriptor());
        }
        let config_digest = engine.content.put(&img.config).map_err(ImageError::from)?;
        // The archive's manifest is kept byte for byte (its digest is the
        // image's); only a `docker save` archive, which has none, gets one.
        let manifest_bytes = match &img.manifest {
            Some(m) => m.clone(),
            None => Manifest::new(Descriptor::new(OCI_CONFIG, config_digest, img.config.len() as u64), descriptors)
                .to_bytes(),
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
