//! The layer store: committed image layers keyed by chain ID, in Docker's
//! `layerdb` layout (`<root>/image/<driver>/layerdb/sha256/<chain-hex>/`
//! holding `diff`, `parent`, `size`, `cache-id` and `blob`).
//!
//! Registering a layer streams its blob once: the bytes are teed into the
//! content store (so `save`/`push` can hand out the exact blob later) while
//! they are decompressed, hashed and applied into a fresh snapshot. The
//! snapshot is committed under the chain ID, and only then does the layerdb
//! entry appear (built in `staging/`, renamed into place). Registering the
//! same chain twice — concurrently or not — stores it once: a per-chain
//! lock serialises the check-and-commit.
//!
//! On any error the extract snapshot and the partial blob are removed, so a
//! refused layer leaves nothing behind.

use crate::content::{ContentError, ContentStore};
use crate::digest::{ChainId, DiffId, Digest};
use crate::image::apply::{apply_layer_with, ApplyError, ApplyOptions};
use crate::image::compression::Compression;
use crate::image::oci::Descriptor;
use crate::mount::TempMount;
use crate::root::{LeaseName, LockName, Root, RootError};
use crate::snapshot::{SnapshotError, SnapshotKey, Snapshotter, Whiteouts, WriteTarget};
use std::io::{self, Read, Write};
use std::path::PathBuf;

mod batch;
pub use batch::LayerOrder;

/// Key prefix of the temporary snapshots layers are applied into.
pub const EXTRACT_PREFIX: &str = "extract-";

/// The blob a layer was registered from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlobRef {
    pub digest: Digest,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
}

impl BlobRef {
    /// The manifest descriptor of the blob.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }
}

/// One committed layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub chain_id: ChainId,
    pub diff_id: DiffId,
    pub parent: Option<ChainId>,
    /// Bytes of file content the layer adds (Docker's layer size).
    pub size: u64,
    /// The committed snapshot holding the layer's files.
    pub snapshot: SnapshotKey,
    pub blob: BlobRef,
}

/// Errors of the layer store.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {layer}: {source}")]
    Apply { layer: String, source: ApplyError },
    #[error("diff of snapshot {key}: {source}")]
    Diff { key: String, source: crate::image::diff::DiffError },
    #[error("layer diff ID mismatch: the image says {expected}, the blob's tar is {actual}")]
    DiffIdMismatch { expected: DiffId, actual: DiffId },
    #[error("open blob of {what}: {source}")]
    OpenBlob { what: String, source: io::Error },
    #[error("layer {0} is not in the layer store")]
    NotFound(ChainId),
    #[error("layer {0} is claimed by an operation in progress (a pull or import about to use it)")]
    Claimed(ChainId),
    #[error("layer store entry {path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Root(#[from] RootError),
}

/// The layer store of one driver.
pub struct LayerStore<'a> {
    root: &'a Root,
    dir: PathBuf,
    snapshots: &'a Snapshotter,
    content: ContentStore,
}

/// Copies everything read into a second writer (the content store), if
/// there is one.
struct Tee<R, W> {
    inner: R,
    copy: Option<W>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(c) = self.copy.as_mut() {
            c.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// A layer applied into its extract snapshot and verified, not committed.
struct Applied {
    diff_id: DiffId,
    /// Bytes of file content.
    size: u64,
    blob: BlobRef,
}

/// What a registration checks, and whether the chain lock is already held.
struct Verify<'v> {
    diff_id: Option<&'v DiffId>,
    blob: Option<&'v Digest>,
    locked: bool,
}

/// The per-chain lock held across a whole fetch-and-register
/// ([`LayerStore::lock_chain`]).
#[derive(Debug)]
pub struct ChainLock {
    chain: ChainId,
    _lock: crate::sys::lock::FileLock,
}

/// Layers an operation in progress is about to reference from an image it
/// has not stored yet (see [`LayerStore::claim`]); dropping it ends the
/// claim. A crash ends it too (the claims are `flock`s).
#[derive(Debug)]
pub struct LayerClaim {
    _locks: Vec<crate::sys::lock::FileLock>,
}

/// The snapshot key a committed layer lives under: its chain ID.
pub fn key_of(chain: &ChainId) -> SnapshotKey {
    SnapshotKey::new(chain.to_string()).expect("a digest is a valid key")
}

impl<'a> LayerStore<'a> {
    pub fn new(root: &'a Root, snapshots: &'a Snapshotter) -> LayerStore<'a> {
        let dir = root.image_dir(snapshots.driver_name()).join("layerdb/sha256");
        LayerStore { root, dir, snapshots, content: ContentStore::new(root) }
    }

    fn entry(&self, chain: &ChainId) -> PathBuf {
        self.dir.join(chain.digest().hex())
    }

    /// The layer with this chain ID, if registered.
    pub fn get(&self, chain: &ChainId) -> Result<Option<Layer>, LayerError> {
        let dir = self.entry(chain);
        if !dir.is_dir() {
            return Ok(None);
        }
        let read = |name: &str| -> Result<Option<String>, LayerError> {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(s) => Ok(Some(s.trim().to_owned())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(RootError::io(dir.join(name), e).into()),
            }
        };
        let corrupt = |detail: String| LayerError::Corrupt { path: dir.clone(), detail };
        let need = |name: &str| read(name)?.ok_or_else(|| corrupt(format!("missing {name}")));
        let diff_id: DiffId = need("diff")?.parse().map_err(|e| corrupt(format!("diff: {e}")))?;
        let parent = match read("parent")? {
            Some(p) => Some(p.parse::<ChainId>().map_err(|e| corrupt(format!("parent: {e}")))?),
            None => None,
        };
        let size = need("size")?.parse().map_err(|e| corrupt(format!("size: {e}")))?;
        let snapshot = SnapshotKey::new(need("cache-id")?).map_err(|e| corrupt(e.to_string()))?;
        let blob = serde_json::from_str(&need("blob")?).map_err(|e| corrupt(format!("blob: {e}")))?;
        Ok(Some(Layer { chain_id: chain.clone(), diff_id, parent, size, snapshot, blob }))
    }

    /// The layer, or [`LayerError::NotFound`].
    pub fn require(&self, chain: &ChainId) -> Result<Layer, LayerError> {
        self.get(chain)?.ok_or_else(|| LayerError::NotFound(chain.clone()))
    }

    /// Every registered layer.
    pub fn list(&self) -> Result<Vec<Layer>, LayerError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RootError::io(&self.dir, e).into()),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            if let Some(d) = e.file_name().to_str().and_then(|h| Digest::from_hex(h).ok()) {
                if let Some(l) = self.get(&ChainId(d))? {
                    out.push(l);
                }
            }
        }
        Ok(out)
    }

    /// Applies `blob` (a layer tar, plain or compressed) on top of `parent`
    /// and registers it. When the caller knows the layer's diff ID (from an
    /// image config), an already-present layer is returned without reading
    /// the blob, and a blob whose tar hashes differently is refused.
    /// Returns the layer and whether it was newly stored.
    pub fn register<R: Read>(
        &self,
        parent: Option<&ChainId>,
        expected: Option<&DiffId>,
        blob: R,
    ) -> Result<(Layer, bool), LayerError> {
        if let Some(diff) = expected {
            let chain = ChainId::new(parent, diff);
            if let Some(l) = self.get(&chain)? {
                return Ok((l, false));
            }
        }
        let parent_key = parent.map(key_of);
        let extract = SnapshotKey::new(format!("{EXTRACT_PREFIX}{}", crate::root::unique_suffix()))?;
        // The lease marks the extract snapshot as in use; after a crash,
        // `Engine::recover` removes extract snapshots nobody leases.
        let _lease = self.root.lease(LeaseName::Snapshot(extract.as_str()))?;
        self.snapshots.prepare(&extract, parent_key.as_ref())?;
        let verify = Verify { diff_id: expected, blob: None, locked: false };
        let result = self.apply_and_commit(parent, verify, blob, &extract);
        if result.is_err() {
            let _ = self.snapshots.remove(&extract);
        }
        result
    }

    /// Takes the lock of `chain` for a whole fetch-and-register, so that
    /// concurrent pulls (threads or processes) of images sharing a layer
    /// download and apply it once: the second holder finds it registered.
    pub fn lock_chain(&self, chain: &ChainId) -> Result<ChainLock, LayerError> {
        let lock = self.root.lock(LockName::Chain(chain))?;
        Ok(ChainLock { chain: chain.clone(), _lock: lock })
    }

    /// [`register`](Self::register) for a caller holding `lock` (from
    /// [`lock_chain`](Self::lock_chain)) on the chain `parent` + `diff_id`,
    /// with the blob's digest known in advance (a registry descriptor): a
    /// blob that hashes differently is refused before anything is
    /// committed, leaving no blob, snapshot or layer behind.
    pub fn register_locked<R: Read>(
        &self,
        lock: &ChainLock,
        parent: Option<&ChainId>,
        diff_id: &DiffId,
        blob_digest: &Digest,
        blob: R,
    ) -> Result<(Layer, bool), LayerError> {
        let chain = ChainId::new(parent, diff_id);
        assert_eq!(lock.chain, chain, "register_locked needs the lock of the chain it registers");
        if let Some(l) = self.get(&chain)? {
            return Ok((l, false));
        }
        let extract = SnapshotKey::new(format!("{EXTRACT_PREFIX}{}", crate::root::unique_suffix()))?;
        let _lease = self.root.lease(LeaseName::Snapshot(extract.as_str()))?;
        self.snapshots.prepare(&extract, parent.map(key_of).as_ref())?;
        let verify = Verify { diff_id: Some(diff_id), blob: Some(blob_digest), locked: true };
        let result = self.apply_and_commit(parent, verify, blob, &extract);
        if result.is_err() {
            let _ = self.snapshots.remove(&extract);
        }
        result
    }

    fn apply_and_commit<R: Read>(
        &self,
        parent: Option<&ChainId>,
        verify: Verify<'_>,
        blob: R,
        extract: &SnapshotKey,
    ) -> Result<(Layer, bool), LayerError> {
        let locked = verify.locked;
        // Apply writes back as it goes and ends with one syncfs, so the
        // layer is durable before it is committed.
        let a = self.apply_verified(verify, blob, extract, true)?;
        if locked {
            self.commit_locked(extract, parent, a.diff_id, a.size, a.blob)
        } else {
            self.commit_as_layer(extract, parent, a.diff_id, a.size, a.blob)
        }
    }

    /// Applies `blob` into active snapshot `extract`, checks its digests
    /// against `verify` and stores the blob in the content store.
    fn apply_verified<R: Read>(
        &self,
        verify: Verify<'_>,
        blob: R,
        extract: &SnapshotKey,
        sync: bool,
    ) -> Result<Applied, LayerError> {
        let expected = verify.diff_id;
        // A blob already in the content store (a pull downloads a layer
        // there while its parent is still being applied) is not written
        // again; its digest is still checked below.
        let stored = verify.blob.filter(|d| self.content.contains(d));
        let writer = if stored.is_some() { None } else { Some(self.content.writer()?) };
        let mut tee = Tee { inner: blob, copy: writer };
        let layer_name = expected.map(|d| d.to_string()).unwrap_or_else(|| "(new)".into());
        let apply_err = |source| LayerError::Apply { layer: layer_name.clone(), source };
        let synced = ApplyOptions { sync, ..ApplyOptions::default() };
        let outcome = match self.snapshots.write_target(extract)? {
            WriteTarget::Directory { dir, whiteouts } => {
                apply_layer_with(&mut tee, &dir, whiteouts, &synced).map_err(apply_err)?
            }
            WriteTarget::Mounted(mounts) => {
                let staging = self.root.staging_dir("apply")?;
                let m = TempMount::new(&mounts, staging.path()).map_err(|e| RootError::io(staging.path(), e))?;
                let out = apply_layer_with(&mut tee, m.path(), Whiteouts::Delete, &synced).map_err(apply_err)?;
                m.unmount().map_err(|e| RootError::io(staging.path(), e))?;
                out
            }
        };
        if let Some(exp) = verify.blob {
            if *exp != outcome.compressed {
                return Err(ContentError::DigestMismatch { expected: exp.clone(), actual: outcome.compressed }.into());
            }
        }
        if let Some(exp) = expected {
            if *exp != outcome.diff_id {
                return Err(LayerError::DiffIdMismatch { expected: exp.clone(), actual: outcome.diff_id });
            }
        }
        let digest = match tee.copy.take() {
            Some(w) => w.commit(Some(&outcome.compressed))?,
            None => outcome.compressed.clone(),
        };
        let blob =
            BlobRef { digest, media_type: outcome.compression.media_type().to_owned(), size: outcome.compressed_size };
        Ok(Applied { diff_id: outcome.diff_id, size: outcome.content_size, blob })
    }

    /// Commits active snapshot `key`, whose diff against `parent` is
    /// `diff_id` (stored as `blob`), under its chain ID and records the
    /// layer. A chain registered meanwhile wins: `key` is removed and the
    /// existing layer returned.
    fn commit_as_layer(
        &self,
        key: &SnapshotKey,
        parent: Option<&ChainId>,
        diff_id: DiffId,
        size: u64,
        blob: BlobRef,
    ) -> Result<(Layer, bool), LayerError> {
        let chain = ChainId::new(parent, &diff_id);
        let _lock = self.root.lock(LockName::Chain(&chain))?;
        self.commit_locked(key, parent, diff_id, size, blob)
    }

    /// [`commit_as_layer`](Self::commit_as_layer) with the chain's lock held.
    fn commit_locked(
        &self,
        key: &SnapshotKey,
        parent: Option<&ChainId>,
        diff_id: DiffId,
        size: u64,
        blob: BlobRef,
    ) -> Result<(Layer, bool), LayerError> {
        let chain = ChainId::new(parent, &diff_id);
        if let Some(l) = self.get(&chain)? {
            self.snapshots.remove(key)?;
            return Ok((l, false));
        }
        let chain_key = key_of(&chain);
        if self.snapshots.exists(&chain_key)? {
            // Debris of a crash between commit and the layerdb write below.
            self.snapshots.remove(&chain_key)?;
        }
        // One syncfs makes every file of the layer durable before the layer
        // becomes visible (per-file fsync would cost one flush per file).
        if let Some(dir) = self.durable_dir(key)? {
            crate::sys::fs::syncfs_path(&dir).map_err(|e| RootError::io(&dir, e))?;
        }
        self.snapshots.commit(&chain_key, key)?;
        let layer = Layer { chain_id: chain, diff_id, parent: parent.cloned(), size, snapshot: chain_key, blob };
        if let Err(e) = self.write_entry(&layer) {
            let _ = self.snapshots.remove(&layer.snapshot);
            return Err(e);
        }
        Ok((layer, true))
    }

    /// A directory on the filesystem holding `key`'s bytes (for syncfs).
    fn durable_dir(&self, key: &SnapshotKey) -> Result<Option<PathBuf>, LayerError> {
        Ok(match self.snapshots.write_target(key)? {
            WriteTarget::Directory { dir, .. } => Some(dir),
            // A mounted target is synced through its mount before unmounting.
            WriteTarget::Mounted(_) => None,
        })
    }

    fn write_entry(&self, layer: &Layer) -> Result<(), LayerError> {
        let staging = self.root.staging_dir("layer")?;
        let p = staging.path();
        let w = |name: &str, s: String| std::fs::write(p.join(name), s).map_err(|e| RootError::io(p.join(name), e));
        w("diff", layer.diff_id.to_string())?;
        if let Some(parent) = &layer.parent {
            w("parent", parent.to_string())?;
        }
        w("size", layer.size.to_string())?;
        w("cache-id", layer.snapshot.to_string())?;
        w("blob", serde_json::to_string(&layer.blob).expect("plain struct"))?;
        for name in ["diff", "size", "cache-id", "blob"] {
            std::fs::File::open(p.join(name)).and_then(|f| f.sync_all()).map_err(|e| RootError::io(p.join(name), e))?;
        }
        let dest = self.entry(&layer.chain_id);
        staging.persist(&dest).map_err(|e| RootError::io(&dest, e))?;
        Ok(())
    }

    /// Turns active snapshot `key` (prepared on `parent`) into a layer: its
    /// diff against the parent is written once as an uncompressed layer tar
    /// into the content store (diff ID computed in the same pass), and the
    /// snapshot itself is committed under the chain ID — no re-apply. This
    /// is `docker commit` and a build step's commit. If the same chain is
    /// already registered, the existing layer is returned and `key` removed.
    pub fn commit_active(&self, key: &SnapshotKey, parent: Option<&ChainId>) -> Result<(Layer, bool), LayerError> {
        let mut writer = self.content.writer()?;
        let source = self.snapshots.diff_source(key)?;
        let outcome = crate::image::diff::write_layer(&source, &mut writer)
            .map_err(|e| LayerError::Diff { key: key.to_string(), source: e });
        let released = self.snapshots.release(key);
        let outcome = outcome?;
        released?;
        let blob = BlobRef {
            digest: writer.commit(Some(&outcome.diff_id.0))?,
            media_type: Compression::None.media_type().to_owned(),
            size: outcome.size,
        };
        self.commit_as_layer(key, parent, outcome.diff_id, outcome.content_size, blob)
    }

    /// Claims `chains` for an operation that will reference them from an
    /// image it has not stored yet (a pull that finds some of its layers
    /// present): until the claim drops, [`remove`](Self::remove) refuses
    /// them, so a concurrent `rmi` or a failed pull's rollback cannot take
    /// a layer out from under it. Claims are shared: any number of
    /// operations may hold one on the same layer. Take the claim before
    /// looking the layers up.
    pub fn claim(&self, chains: &[ChainId]) -> Result<LayerClaim, LayerError> {
        let locks = chains.iter().map(|c| self.root.lock_shared(LockName::Claim(c))).collect::<Result<Vec<_>, _>>()?;
        Ok(LayerClaim { _locks: locks })
    }

    /// [`claim`](Self::claim) of layers that must exist already (an image
    /// being built or imported on top of them): checked once claimed, since
    /// an `rmi` may have removed them since they were looked up.
    pub fn claim_present(&self, chains: &[ChainId]) -> Result<LayerClaim, LayerError> {
        let claim = self.claim(chains)?;
        for chain in chains {
            self.require(chain)?;
        }
        Ok(claim)
    }

    /// Removes a layer that nothing references any more: its layerdb entry
    /// first (so it stops being found), then its snapshot. Fails, changing
    /// nothing, when the snapshot still has children (a layer above it, a
    /// container, a mounted view) or an operation in progress claims it
    /// ([`LayerError::Claimed`]).
    pub fn remove(&self, chain: &ChainId) -> Result<(), LayerError> {
        let layer = self.require(chain)?;
        // Held through the removal: a claim taken meanwhile waits, then
        // finds the layer gone.
        let Some(_unclaimed) = self.root.try_lock(LockName::Claim(chain))? else {
            return Err(LayerError::Claimed(chain.clone()));
        };
        let _lock = self.root.lock(LockName::Chain(chain))?;
        let info_children = {
            let mut n = 0;
            self.snapshots.walk(|i| {
                if i.parent.as_ref() == Some(&layer.snapshot) {
                    n += 1;
                }
            })?;
            n
        };
        if info_children > 0 {
            return Err(SnapshotError::HasChildren { key: layer.snapshot.clone(), children: info_children }.into());
        }
        let dir = self.entry(chain);
        let trash = self.root.staging_dir("layer-rm")?;
        std::fs::rename(&dir, trash.path().join("entry")).map_err(|e| RootError::io(&dir, e))?;
        self.snapshots.remove(&layer.snapshot)?;
        Ok(())
    }
}
