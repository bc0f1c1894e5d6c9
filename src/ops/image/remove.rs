//! Removing images (`rmi`) and releasing what only they used: layers no
//! other image references, and blobs no remaining image's manifest names.

use crate::digest::{ChainId, Digest, ImageId};
use crate::engine::Engine;
use crate::image::images::ImageError;
use crate::image::layers::LayerError;
use crate::image::reference::Reference;
use std::collections::HashSet;

/// Errors of `rmi`.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories")]
    MultipleTags { short: String },
    #[error("conflict: unable to delete {short} - image is in use by {user}")]
    InUse { short: String, user: String },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Layer(#[from] LayerError),
}

/// One line of `rmi` output, as Docker prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Untagged(String),
    Deleted(String),
}

/// What uses an image besides its tags: containers whose config names it
/// (`<root>/containers/<id>/config.json`, field `Image`), and `image mount`
/// views. Returns a description of the first user found.
pub fn image_user(engine: &Engine, id: &ImageId) -> Option<String> {
    let want = id.to_string();
    if let Ok(rd) = std::fs::read_dir(engine.root.containers()) {
        for e in rd.flatten() {
            let cfg = e.path().join("config.json");
            let Ok(bytes) = std::fs::read(&cfg) else { continue };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { continue };
            if v.get("Image").and_then(|i| i.as_str()) == Some(want.as_str()) {
                let cid = e.file_name().to_string_lossy().chars().take(12).collect::<String>();
                return Some(format!("container {cid}"));
            }
        }
    }
    if crate::ops::image::mountpoint::is_mounted(engine, id) {
        return Some("an image mount (strata image unmount it first)".into());
    }
    None
}

/// `strata rmi [-f] <name>`.
pub fn remove_image(engine: &Engine, name: &str, force: bool) -> Result<Vec<Removed>, RemoveError> {
    let id = engine.images.resolve(name)?;
    let short = id.digest().short().to_owned();
    let tags = engine.images.tags_of(&id)?;
    let by_tag = name.parse::<Reference>().ok().filter(|r| tags.contains(r));
    let mut out = Vec::new();
    if let Some(r) = &by_tag {
        if tags.len() > 1 {
            engine.images.untag(r)?;
            return Ok(vec![Removed::Untagged(r.to_string())]);
        }
    } else if tags.len() > 1 && !force {
        return Err(RemoveError::MultipleTags { short });
    }
    if let Some(user) = image_user(engine, &id) {
        return Err(RemoveError::InUse { short, user });
    }
    for t in &tags {
        engine.images.untag(t)?;
        out.push(Removed::Untagged(t.to_string()));
    }
    let mut parent = delete_one(engine, &id, &mut out)?;
    // Untagged parents that nothing else builds on (a build's
    // intermediate images) go with their last child, as in Docker.
    while let Some(p) = parent {
        if engine.images.get(&p).is_err() {
            break;
        }
        let has_child = engine
            .images
            .list()?
            .iter()
            .any(|other| engine.images.get(other).is_ok_and(|i| i.meta.parent.as_ref() == Some(&p)));
        if has_child || !engine.images.tags_of(&p)?.is_empty() || image_user(engine, &p).is_some() {
            break;
        }
        parent = delete_one(engine, &p, &mut out)?;
    }
    Ok(out)
}

/// Deletes one image and what only it used; returns its parent.
fn delete_one(engine: &Engine, id: &ImageId, out: &mut Vec<Removed>) -> Result<Option<ImageId>, RemoveError> {
    let image = engine.images.get(id)?;
    let (_, manifest) = engine.images.manifest(&image)?;
    engine.images.delete(id)?;
    out.push(Removed::Deleted(id.to_string()));
    for chain in release_layers(engine, &image.chain_ids())? {
        out.push(Removed::Deleted(chain.to_string()));
    }
    let mut blobs: Vec<Digest> = manifest.layers.iter().map(|d| d.digest.clone()).collect();
    blobs.push(image.meta.manifest.clone());
    blobs.push(id.digest().clone());
    release_blobs(engine, &blobs)?;
    Ok(image.meta.parent.clone())
}

/// Removes the given layers (top first) that no image references; returns
/// the chains removed. A layer still holding children (a container, a
/// mounted view) or claimed by an operation in progress stays.
pub fn release_layers(engine: &Engine, chains: &[ChainId]) -> Result<Vec<ChainId>, RemoveError> {
    let mut used: HashSet<ChainId> = HashSet::new();
    for id in engine.images.list()? {
        if let Ok(img) = engine.images.get(&id) {
            used.extend(img.chain_ids());
        }
    }
    let layers = engine.layers();
    let mut removed = Vec::new();
    for chain in chains.iter().rev() {
        if used.contains(chain) || layers.get(chain)?.is_none() {
            continue;
        }
        match layers.remove(chain) {
            Ok(()) => removed.push(chain.clone()),
            // A pull or import in progress is about to use it (and its
            // parents, which it claims too).
            Err(LayerError::Claimed(_)) => break,
            Err(LayerError::Snapshot(crate::snapshot::SnapshotError::HasChildren { .. })) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(removed)
}

/// Deletes the given blobs unless a remaining image's manifest or config,
/// or a remaining layer, still names them.
pub fn release_blobs(engine: &Engine, candidates: &[Digest]) -> Result<(), RemoveError> {
    let mut used: HashSet<Digest> = HashSet::new();
    for id in engine.images.list()? {
        let Ok(img) = engine.images.get(&id) else { continue };
        used.insert(id.digest().clone());
        used.insert(img.meta.manifest.clone());
        if let Ok((_, m)) = engine.images.manifest(&img) {
            used.extend(m.layers.iter().map(|d| d.digest.clone()));
        }
    }
    for l in engine.layers().list()? {
        used.insert(l.blob.digest.clone());
    }
    for d in candidates.iter().filter(|d| !used.contains(d)) {
        engine.content.delete(d).map_err(ImageError::from)?;
    }
    Ok(())
}
