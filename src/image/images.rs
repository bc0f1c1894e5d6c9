//! The image store of one driver: image configs (the image ID is the
//! digest of the config bytes, kept exactly as received), per-image
//! metadata, and the tag table `repositories.json`.
//!
//! ```text
//! <root>/image/<driver>/
//! ├── repositories.json                     {"Repositories": {repo: {"repo:tag": id}}}
//! ├── imagedb/content/sha256/<hex>          config bytes; <hex> is the image ID
//! └── imagedb/metadata/sha256/<hex>.json    {manifest, parent, created_at}
//! ```
//!
//! Images reference layers by chain ID (computed from the config's diff
//! IDs) and blobs by the manifest kept in the content store. Writes happen
//! under `locks/images-<driver>.lock`.

use crate::content::{ContentError, ContentStore};
use crate::digest::{ChainId, Digest, ImageId};
use crate::image::oci::{ImageConfig, Manifest};
use crate::image::reference::Reference;
use crate::root::{atomic_write, atomic_write_json, read_json, LockName, Root, RootError};
use crate::sys::lock::FileLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("image reference {reference:?} is ambiguous: matches {matches} images")]
    Ambiguous { reference: String, matches: usize },
    #[error("image config {id}: {detail}")]
    BadConfig { id: String, detail: String },
    #[error("invalid reference format: {0}")]
    BadReference(String),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Root(#[from] RootError),
}

/// Per-image metadata beside the config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageMeta {
    /// The image's manifest in the content store.
    pub manifest: Digest,
    /// The local image this one was made from (import --base, build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ImageId>,
    /// When the image entered this store.
    pub created_at: String,
}

/// A stored image.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: ImageId,
    pub config_bytes: Vec<u8>,
    pub config: ImageConfig,
    pub meta: ImageMeta,
}

impl Image {
    /// Chain IDs of the image's layers, bottom first.
    pub fn chain_ids(&self) -> Vec<ChainId> {
        ChainId::chain(&self.config.rootfs.diff_ids)
    }
    /// The chain ID of the top layer (`None` for an image with no layers).
    pub fn top_chain(&self) -> Option<ChainId> {
        self.chain_ids().pop()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Repositories {
    #[serde(rename = "Repositories")]
    repositories: BTreeMap<String, BTreeMap<String, ImageId>>,
}

/// Handle on one driver's image store.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: Root,
    dir: PathBuf,
    driver: String,
    content: ContentStore,
}

impl ImageStore {
    pub fn new(root: &Root, driver: &str) -> ImageStore {
        ImageStore {
            root: root.clone(),
            dir: root.image_dir(driver),
            driver: driver.to_owned(),
            content: ContentStore::new(root),
        }
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// Takes the store's write lock.
    pub fn lock(&self) -> Result<FileLock, RootError> {
        self.root.lock(LockName::Images { driver: &self.driver })
    }

    fn config_path(&self, id: &ImageId) -> PathBuf {
        self.dir.join("imagedb/content/sha256").join(id.digest().hex())
    }
    fn meta_path(&self, id: &ImageId) -> PathBuf {
        self.dir.join("imagedb/metadata/sha256").join(format!("{}.json", id.digest().hex()))
    }
    fn repos_path(&self) -> PathBuf {
        self.dir.join("repositories.json")
    }

    /// Parses and validates config bytes.
    pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig, ImageError> {
        let id = Digest::of(bytes);
        let cfg: ImageConfig = serde_json::from_slice(bytes)
            .map_err(|e| ImageError::BadConfig { id: id.to_string(), detail: e.to_string() })?;
        cfg.validate().map_err(|e| ImageError::BadConfig { id: id.to_string(), detail: e.to_string() })?;
        Ok(cfg)
    }

    /// Stores an image whose layers are already registered and whose
    /// manifest and blobs are in the content store. The config is written
    /// last, so an image is visible only when complete.
    pub fn put(&self, config_bytes: &[u8], manifest: &Digest, parent: Option<ImageId>) -> Result<ImageId, ImageError> {
        Self::parse_config(config_bytes)?;
        let id = ImageId(Digest::of(config_bytes));
        self.content.put(config_bytes)?;
        let meta = ImageMeta { manifest: manifest.clone(), parent, created_at: crate::time::now() };
        atomic_write_json(&self.meta_path(&id), &meta)?;
        atomic_write(&self.config_path(&id), config_bytes)?;
        Ok(id)
    }

    /// Loads an image by ID.
    pub fn get(&self, id: &ImageId) -> Result<Image, ImageError> {
        let p = self.config_path(id);
        let config_bytes = std::fs::read(&p).map_err(|_| ImageError::NotFound(id.to_string()))?;
        let config = Self::parse_config(&config_bytes)?;
        let meta = read_json(&self.meta_path(id))?
            .ok_or_else(|| RootError::Corrupt { path: self.meta_path(id), detail: "image metadata missing".into() })?;
        Ok(Image { id: id.clone(), config_bytes, config, meta })
    }

    /// The image's manifest.
    pub fn manifest(&self, image: &Image) -> Result<(Vec<u8>, Manifest), ImageError> {
        let bytes = self.content.read(&image.meta.manifest)?;
        let m = serde_json::from_slice(&bytes).map_err(|e| ImageError::BadConfig {
            id: image.id.to_string(),
            detail: format!("manifest {}: {e}", image.meta.manifest),
        })?;
        Ok((bytes, m))
    }

    /// IDs of every image.
    pub fn list(&self) -> Result<Vec<ImageId>, ImageError> {
        let dir = self.dir.join("imagedb/content/sha256");
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RootError::io(&dir, e).into()),
        };
        Ok(rd.filter_map(|e| Digest::from_hex(e.ok()?.file_name().to_str()?).ok()).map(ImageId).collect())
    }

    fn repos(&self) -> Result<Repositories, ImageError> {
        Ok(read_json(&self.repos_path())?.unwrap_or_default())
    }

    /// Every `(repo:tag, id)` pair.
    pub fn tags(&self) -> Result<Vec<(Reference, ImageId)>, ImageError> {
        let mut out = Vec::new();
        for tags in self.repos()?.repositories.values() {
            for (name, id) in tags {
                if let Ok(r) = name.parse::<Reference>() {
                    out.push((r, id.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Tags pointing at `id`.
    pub fn tags_of(&self, id: &ImageId) -> Result<Vec<Reference>, ImageError> {
        Ok(self.tags()?.into_iter().filter(|(_, i)| i == id).map(|(r, _)| r).collect())
    }

    /// Points `reference` at `id` (moving it off any previous image).
    pub fn tag(&self, id: &ImageId, reference: &Reference) -> Result<(), ImageError> {
        let _l = self.lock()?;
        let mut repos = self.repos()?;
        repos.repositories.entry(reference.name()).or_default().insert(reference.to_string(), id.clone());
        atomic_write_json(&self.repos_path(), &repos)?;
        Ok(())
    }

    /// Removes a tag; returns the image it pointed at.
    pub fn untag(&self, reference: &Reference) -> Result<ImageId, ImageError> {
        let _l = self.lock()?;
        let mut repos = self.repos()?;
        let repo = reference.name();
        let id = repos
            .repositories
            .get_mut(&repo)
            .and_then(|t| t.remove(&reference.to_string()))
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        if repos.repositories.get(&repo).is_some_and(BTreeMap::is_empty) {
            repos.repositories.remove(&repo);
        }
        atomic_write_json(&self.repos_path(), &repos)?;
        Ok(id)
    }

    /// Resolves a name the way Docker does: `repo:tag` (tag defaults to
    /// `latest`), a full `sha256:` ID, or a unique ID prefix.
    pub fn resolve(&self, name: &str) -> Result<ImageId, ImageError> {
        if let Ok(r) = name.parse::<Reference>() {
            if let Some((_, id)) = self.tags()?.into_iter().find(|(t, _)| *t == r) {
                return Ok(id);
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<ImageId> =
                self.list()?.into_iter().filter(|id| id.digest().hex().starts_with(hex)).collect();
            match matches.len() {
                1 => return Ok(matches.into_iter().next().expect("one")),
                0 => {}
                n => return Err(ImageError::Ambiguous { reference: name.to_owned(), matches: n }),
            }
        }
        Err(ImageError::NotFound(name.to_owned()))
    }

    /// Deletes an image's config and metadata (not its layers or blobs:
    /// the caller releases those once no other image uses them).
    pub fn delete(&self, id: &ImageId) -> Result<(), ImageError> {
        let _l = self.lock()?;
        for p in [self.config_path(id), self.meta_path(id)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RootError::io(p, e).into()),
            }
        }
        Ok(())
    }
}
