//! `pull`: a reference to a stored, tagged image.
//!
//! The config comes first (it is small, and its diff IDs give the chain
//! IDs that tell which layers are already here). The missing layers are
//! then fetched by `concurrency` workers, bottom first. A worker holds the
//! layer's chain lock for the whole job, so a concurrent pull (thread or
//! process) of an image sharing the layer waits and then finds it
//! registered: each shared layer is downloaded and applied once. A layer
//! whose parent is registered when its job starts streams from the socket
//! straight into apply (hash, decompress, extract in one pass); one whose
//! parent is still in flight is downloaded into the content store
//! (verified) meanwhile, and applied from there once the parent is in —
//! except on a driver that extracts a layer without its parent (overlay,
//! `LayerStore::extract_alone`), where it streams into a snapshot of its
//! own at once and is committed onto the parent when that is in.

use super::client::Client;
use super::fetch::{self, BlobReader};
use super::progress::Progress;
use super::{auth, DistributionError, RegistryOptions};
use crate::digest::{ChainId, Digest, ImageId};
use crate::engine::Engine;
use crate::image::compression::Compression;
use crate::image::images::ImageStore;
use crate::image::oci::{Descriptor, Platform};
use crate::image::reference::Reference;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// Largest image config accepted.
const CONFIG_MAX: u64 = 8 << 20;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub registry: RegistryOptions,
    /// Layers fetched at once (Docker's `max-concurrent-downloads`, 3).
    pub concurrency: usize,
    pub platform: Platform,
}

impl Default for PullOptions {
    fn default() -> PullOptions {
        PullOptions { registry: RegistryOptions::default(), concurrency: 3, platform: Platform::host() }
    }
}

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    pub id: ImageId,
    /// Digest of what the reference resolved to (index or manifest).
    pub digest: Digest,
    /// Digest of the platform manifest stored with the image.
    pub manifest: Digest,
    /// Whether the image (or its tag) is new here.
    pub updated: bool,
    /// Layers downloaded and applied.
    pub new_layers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Registered,
    Failed,
}

struct Shared {
    slots: Mutex<Vec<Slot>>,
    changed: Condvar,
    next: AtomicUsize,
    error: Mutex<Option<DistributionError>>,
    /// Layers and blobs this pull added: what a failure removes again.
    added_layers: Mutex<Vec<ChainId>>,
    added_blobs: Mutex<Vec<Digest>>,
}

impl Shared {
    fn set(&self, i: usize, s: Slot) {
        self.slots.lock().expect("no panics while held")[i] = s;
        self.changed.notify_all();
    }
    fn failed(&self) -> bool {
        self.slots.lock().expect("no panics while held").contains(&Slot::Failed)
    }
    /// Waits until layer `i` is registered; `Aborted` if any job failed.
    fn wait_registered(&self, i: usize) -> Result<(), DistributionError> {
        let mut slots = self.slots.lock().expect("no panics while held");
        loop {
            if slots.contains(&Slot::Failed) {
                return Err(DistributionError::Aborted);
            }
            if slots[i] == Slot::Registered {
                return Ok(());
            }
            slots = self.changed.wait(slots).expect("no panics while held");
        }
    }
}

struct Job<'a> {
    engine: &'a Engine,
    client: &'a Client,
    progress: &'a Progress,
    layers: &'a [Descriptor],
    chains: &'a [ChainId],
    diff_ids: &'a [crate::digest::DiffId],
    shared: &'a Shared,
}

impl Job<'_> {
    fn run(&self, i: usize) -> Result<(), DistributionError> {
        let desc = &self.layers[i];
        let id = desc.digest.short();
        let layers = self.engine.layers();
        let layer_err = |source| DistributionError::Layer { digest: desc.digest.clone(), source };
        let lock = layers.lock_chain(&self.chains[i]).map_err(layer_err)?;
        if layers.get(&self.chains[i]).map_err(layer_err)?.is_some() {
            // Registered meanwhile by a concurrent pull.
            self.ensure_blob(desc)?;
            self.progress.status(id, "Already exists");
            return Ok(());
        }
        let parent = i.checked_sub(1).map(|p| &self.chains[p]);
        let had_blob = self.engine.content.contains(&desc.digest);
        let parent_ready = i == 0 || self.shared.slots.lock().expect("no panics while held")[i - 1] == Slot::Registered;
        let (_, fresh) = if !parent_ready && layers.extracts_alone() {
            // The driver extracts a layer without its parent (overlay):
            // stream it into a snapshot of its own now, commit it onto the
            // parent once that is in. A failure anywhere drops the extract.
            let reader = Counting::new(BlobReader::new(self.client, desc), self.progress, id, desc.size);
            let extracted =
                layers.extract_alone(&self.diff_ids[i], Some(&desc.digest), reader, true).map_err(layer_err)?;
            if !had_blob {
                self.shared.added_blobs.lock().expect("no panics while held").push(desc.digest.clone());
            }
            self.progress.status(id, "Extracted, waiting for the layer below");
            self.shared.wait_registered(i - 1)?;
            layers.commit_extracted(&lock, parent, extracted).map_err(layer_err)?
        } else if parent_ready {
            let reader = Counting::new(BlobReader::new(self.client, desc), self.progress, id, desc.size);
            layers.register_locked(&lock, parent, &self.diff_ids[i], &desc.digest, reader).map_err(layer_err)?
        } else {
            self.download(desc)?;
            self.progress.status(id, "Download complete");
            self.shared.wait_registered(i - 1)?;
            self.progress.status(id, "Extracting");
            let blob = self.engine.content.open(&desc.digest)?;
            layers.register_locked(&lock, parent, &self.diff_ids[i], &desc.digest, blob).map_err(layer_err)?
        };
        if fresh {
            self.shared.added_layers.lock().expect("no panics while held").push(self.chains[i].clone());
            if !had_blob && parent_ready {
                self.shared.added_blobs.lock().expect("no panics while held").push(desc.digest.clone());
            }
        }
        self.progress.status(id, "Pull complete");
        Ok(())
    }

    /// Downloads a blob into the content store, verified.
    fn download(&self, desc: &Descriptor) -> Result<(), DistributionError> {
        if self.engine.content.contains(&desc.digest) {
            return Ok(());
        }
        let mut w = self.engine.content.writer()?;
        let id = desc.digest.short();
        let mut r = Counting::new(BlobReader::new(self.client, desc), self.progress, id, desc.size);
        std::io::copy(&mut r, &mut w).map_err(|e| DistributionError::Transport {
            method: "GET".into(),
            url: self.client.url(&self.client.path(&format!("blobs/{}", desc.digest))),
            detail: e.to_string(),
        })?;
        w.commit(Some(&desc.digest)).map_err(|e| match e {
            crate::content::ContentError::DigestMismatch { expected, actual } => {
                DistributionError::DigestMismatch { what: format!("blob {}", desc.digest), expected, actual }
            }
            e => e.into(),
        })?;
        self.shared.added_blobs.lock().expect("no panics while held").push(desc.digest.clone());
        Ok(())
    }

    /// A present layer whose manifest blob is not stored (it came with
    /// other compression): fetch the blob, so save and push work.
    fn ensure_blob(&self, desc: &Descriptor) -> Result<(), DistributionError> {
        self.download(desc)
    }
}

/// Reports download progress of the reader it wraps.
struct Counting<'p, R> {
    inner: R,
    progress: &'p Progress,
    id: &'p str,
    done: u64,
    total: u64,
}

impl<'p, R> Counting<'p, R> {
    fn new(inner: R, progress: &'p Progress, id: &'p str, total: u64) -> Self {
        Counting { inner, progress, id, done: 0, total }
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.progress.bytes(self.id, "Downloading", self.done, self.total);
        Ok(n)
    }
}

fn check_layer_types(layers: &[Descriptor]) -> Result<(), DistributionError> {
    for l in layers {
        if Compression::from_media_type(&l.media_type).is_none() {
            return Err(DistributionError::MediaType {
                what: "layer",
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
            });
        }
    }
    Ok(())
}

/// Pulls `reference` into `engine`'s stores and tags it (when the
/// reference names a tag). On error, everything the pull added is removed.
pub fn pull(
    engine: &Engine,
    reference: &Reference,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<Pulled, DistributionError> {
    let repo = reference.remote_path();
    let client =
        Client::connect(reference.domain(), &repo, vec![auth::repository_scope(&repo, false)], &opts.registry)?;
    let (name, expected) = match (&reference.digest, &reference.tag) {
        (Some(d), _) => (d.to_string(), Some(d)),
        (None, Some(t)) => (t.clone(), None),
        (None, None) => (crate::image::reference::DEFAULT_TAG.to_owned(), None),
    };
    let resolved = fetch::resolve(&client, &name, expected, &opts.platform)?;
    let manifest = &resolved.manifest;
    check_layer_types(&manifest.layers)?;
    let config_bytes = fetch::small_blob(&client, &manifest.config, CONFIG_MAX)?;
    let config = ImageStore::parse_config(&config_bytes)?;
    manifest
        .validate_config(&config)
        .map_err(|source| DistributionError::Oci { what: format!("manifest {}", resolved.manifest_digest), source })?;
    let diff_ids = &config.rootfs.diff_ids;
    let chains = ChainId::chain(diff_ids);
    // Before looking for present layers: a concurrent rmi or failed pull
    // must not remove one this pull counts on.
    let claim = engine
        .layers()
        .claim(&chains)
        .map_err(|source| DistributionError::Layer { digest: resolved.manifest_digest.clone(), source })?;
    let shared = Shared {
        slots: Mutex::new(vec![Slot::Pending; chains.len()]),
        changed: Condvar::new(),
        next: AtomicUsize::new(0),
        error: Mutex::new(None),
        added_layers: Mutex::new(Vec::new()),
        added_blobs: Mutex::new(Vec::new()),
    };
    let job =
        Job { engine, client: &client, progress, layers: &manifest.layers, chains: &chains, diff_ids, shared: &shared };
    let mut todo = Vec::new();
    for (i, (desc, chain)) in manifest.layers.iter().zip(&chains).enumerate() {
        let present = engine
            .layers()
            .get(chain)
            .map_err(|source| DistributionError::Layer { digest: desc.digest.clone(), source })?;
        if present.is_some() && engine.content.contains(&desc.digest) {
            progress.status(desc.digest.short(), "Already exists");
            shared.set(i, Slot::Registered);
        } else {
            progress.status(desc.digest.short(), "Pulling fs layer");
            todo.push(i);
        }
    }
    std::thread::scope(|s| {
        for _ in 0..opts.concurrency.max(1).min(todo.len()) {
            s.spawn(|| loop {
                let k = shared.next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = todo.get(k) else { break };
                if shared.failed() {
                    break;
                }
                match job.run(i) {
                    Ok(()) => shared.set(i, Slot::Registered),
                    Err(e) => {
                        let mut first = shared.error.lock().expect("no panics while held");
                        if first.is_none() && !matches!(e, DistributionError::Aborted) {
                            *first = Some(e);
                        }
                        drop(first);
                        shared.set(i, Slot::Failed);
                    }
                }
            });
        }
    });
    let added_layers = std::mem::take(&mut *shared.added_layers.lock().expect("no panics while held"));
    let mut added_blobs = std::mem::take(&mut *shared.added_blobs.lock().expect("no panics while held"));
    let finish = match shared.error.into_inner().expect("no panics while held") {
        Some(e) => Err(e),
        None => store_image(engine, reference, &resolved, &config_bytes, &mut added_blobs),
    };
    match finish {
        Ok(mut pulled) => {
            pulled.new_layers = added_layers.len();
            Ok(pulled)
        }
        Err(e) => {
            // Our own claim would keep our own layers; other pulls' claims
            // keep the ones they count on.
            drop(claim);
            roll_back(engine, &added_layers, &added_blobs);
            Err(e)
        }
    }
}

fn store_image(
    engine: &Engine,
    reference: &Reference,
    resolved: &fetch::Resolved,
    config_bytes: &[u8],
    added_blobs: &mut Vec<Digest>,
) -> Result<Pulled, DistributionError> {
    // The config's digest was verified when it was fetched; images.put
    // below stores it.
    let config_digest = &resolved.manifest.config.digest;
    if !engine.content.contains(config_digest) {
        added_blobs.push(config_digest.clone());
    }
    if !engine.content.contains(&resolved.manifest_digest) {
        engine.content.put(&resolved.manifest_bytes)?;
        added_blobs.push(resolved.manifest_digest.clone());
    }
    let id = ImageId(config_digest.clone());
    let existed = engine.images.get(&id).is_ok();
    let tagged = reference.tag.is_some() && reference.digest.is_none();
    let up_to_date = existed && (!tagged || engine.images.tags_of(&id)?.contains(reference));
    let id = engine.images.put(config_bytes, &resolved.manifest_digest, None)?;
    if tagged {
        engine.images.tag(&id, reference)?;
    }
    Ok(Pulled {
        id,
        digest: resolved.digest.clone(),
        manifest: resolved.manifest_digest.clone(),
        updated: !up_to_date,
        new_layers: 0,
    })
}

/// Removes what a failed pull added: its new layers (top first) unless an
/// image uses them by now or another operation claims them
/// ([`LayerStore::claim`](crate::image::layers::LayerStore::claim)), and
/// its new blobs unless a layer or image refers to them.
fn roll_back(engine: &Engine, layers: &[ChainId], blobs: &[Digest]) {
    let layer_store = engine.layers();
    let mut used_chains = Vec::new();
    let mut used_blobs = Vec::new();
    if let Ok(ids) = engine.images.list() {
        for img in ids.iter().filter_map(|id| engine.images.get(id).ok()) {
            used_chains.extend(img.chain_ids());
            used_blobs.push(img.meta.manifest.clone());
            used_blobs.push(img.id.digest().clone());
        }
    }
    let mut sorted: Vec<&ChainId> = layers.iter().collect();
    // Children before parents: a layer's chain is registered after its parent's.
    sorted.reverse();
    for chain in sorted {
        if !used_chains.contains(chain) {
            let _ = layer_store.remove(chain);
        }
    }
    if let Ok(all) = layer_store.list() {
        used_blobs.extend(all.into_iter().map(|l| l.blob.digest));
    }
    for b in blobs.iter().filter(|b| !used_blobs.contains(b)) {
        let _ = engine.content.delete(b);
    }
}
