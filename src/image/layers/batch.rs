//! Registering every layer of an image at once.
//!
//! An image's chain IDs are known before any blob is read (its config
//! lists the diff IDs), so on a driver whose snapshots hold a layer's
//! changes alone ([`Snapshotter::extracts_alone`]: overlay's upper dir,
//! deletions recorded as whiteouts, never applied to the parent's files)
//! each missing layer is prepared without a parent and extracted on its
//! own thread, all at the same time. containerd unpacks one layer after
//! another; here five layers take about as long as the largest.
//!
//! ```text
//! lock chains 0..n (image order) ─ prepare extract-i (no parent) for each missing i
//!   ├─ thread: apply blob 0 ─ verify ┐
//!   ├─ thread: apply blob 1 ─ verify ├─ all done and verified?
//!   └─ thread: apply blob k ─ verify ┘    no → remove every extract-i, return the first error
//!                                         yes → one syncfs, commit 0, 1, …, k in order
//! ```
//!
//! **Nothing half-committed.** No layer is committed until every layer of
//! the image has been extracted and verified, and commits go bottom-up
//! (`commit_onto` the parent committed just before), so a failure leaves
//! either nothing of this call or a complete prefix of the chain, never a
//! layer without its parent; extract snapshots are leased, and those a
//! crash leaves are removed by recovery like any other.
//!
//! A pull uses the two halves on their own: [`LayerStore::extract_alone`]
//! as a layer's blob arrives, whether or not its parent is in yet, then
//! [`LayerStore::commit_extracted`] once the parent is committed.
//!
//! Drivers that need the parent's content (copy, btrfs, dm-thin) take the
//! ordered path: [`LayerStore::register`] layer by layer, the simple twin
//! the differential test compares this with.

use super::{key_of, Applied, ChainLock, Layer, LayerError, LayerStore, Verify, EXTRACT_PREFIX};
use crate::digest::{ChainId, DiffId, Digest};
use crate::root::{Lease, LeaseName, RootError};
use crate::snapshot::{SnapshotKey, Snapshotter};
use std::io::Read;

/// How the layers of one image are extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerOrder {
    /// One after another, each on its committed parent.
    InOrder,
    /// All at once where the driver allows it ([`crate::snapshot::Driver::extracts_alone`]),
    /// else in order.
    AtOnce,
}

impl Default for LayerOrder {
    /// [`LayerOrder::AtOnce`], unless `STRATA_LAYER_ORDER=ordered`.
    fn default() -> LayerOrder {
        match std::env::var("STRATA_LAYER_ORDER").as_deref() {
            Ok("ordered") => LayerOrder::InOrder,
            _ => LayerOrder::AtOnce,
        }
    }
}

/// A layer extracted into a snapshot of its own, without its parent, and
/// verified; not yet a layer. Dropped uncommitted, its snapshot is
/// removed.
pub struct Extracted<'s> {
    snapshots: &'s Snapshotter,
    key: SnapshotKey,
    _lease: Lease,
    applied: Option<Applied>,
}

impl Extracted<'_> {
    /// The layer's diff ID, as its tar hashed.
    pub fn diff_id(&self) -> &DiffId {
        &self.applied.as_ref().expect("set until committed").diff_id
    }
}

impl Drop for Extracted<'_> {
    fn drop(&mut self) {
        if self.applied.is_some() {
            let _ = self.snapshots.remove(&self.key);
        }
    }
}

impl<'a> LayerStore<'a> {
    /// Whether layers can be extracted before their parents are committed
    /// ([`Snapshotter::extracts_alone`]).
    pub fn extracts_alone(&self) -> bool {
        self.snapshots.extracts_alone()
    }

    /// Extracts `blob` into a fresh snapshot with no parent and checks it
    /// against `diff_id` (and `blob_digest`, when known), storing the blob
    /// in the content store; nothing becomes a layer until
    /// [`commit_extracted`](Self::commit_extracted). Only on a driver that
    /// [`extracts_alone`](Self::extracts_alone); `sync` makes the files
    /// durable before returning (else the commit's syncfs does).
    pub fn extract_alone<R: Read>(
        &self,
        diff_id: &DiffId,
        blob_digest: Option<&Digest>,
        blob: R,
        sync: bool,
    ) -> Result<Extracted<'a>, LayerError> {
        assert!(self.extracts_alone(), "extract_alone on a driver whose layers need their parent");
        let key = SnapshotKey::new(format!("{EXTRACT_PREFIX}{}", crate::root::unique_suffix()))?;
        // The lease marks the extract snapshot as in use; after a crash,
        // `Engine::recover` removes extract snapshots nobody leases.
        let lease = self.root.lease(LeaseName::Snapshot(key.as_str()))?;
        self.snapshots.prepare(&key, None)?;
        let mut e = Extracted { snapshots: self.snapshots, key, _lease: lease, applied: None };
        let verify = Verify { diff_id: Some(diff_id), blob: blob_digest, locked: true };
        match self.apply_verified(verify, blob, &e.key, sync) {
            Ok(a) => e.applied = Some(a),
            Err(err) => {
                let _ = self.snapshots.remove(&e.key);
                return Err(err);
            }
        }
        Ok(e)
    }

    /// Commits an extracted layer on top of `parent` (committed) under its
    /// chain ID, `lock` being that chain's lock. A chain registered
    /// meanwhile wins: the extract is removed and the stored layer
    /// returned. Returns the layer and whether it was newly stored.
    pub fn commit_extracted(
        &self,
        lock: &ChainLock,
        parent: Option<&ChainId>,
        mut e: Extracted<'_>,
    ) -> Result<(Layer, bool), LayerError> {
        let chain = ChainId::new(parent, e.diff_id());
        assert_eq!(lock.chain, chain, "commit_extracted needs the lock of the chain it commits");
        if let Some(l) = self.get(&chain)? {
            return Ok((l, false));
        }
        let chain_key = key_of(&chain);
        if self.snapshots.exists(&chain_key)? {
            // Debris of a crash between commit and the layerdb write below.
            self.snapshots.remove(&chain_key)?;
        }
        if let Some(dir) = self.durable_dir(&e.key)? {
            crate::sys::fs::syncfs_path(&dir).map_err(|err| RootError::io(&dir, err))?;
        }
        match parent {
            Some(p) => self.snapshots.commit_onto(&chain_key, &e.key, &key_of(p))?,
            None => self.snapshots.commit(&chain_key, &e.key)?,
        }
        let a = e.applied.take().expect("set until committed");
        let layer = Layer {
            chain_id: chain,
            diff_id: a.diff_id,
            parent: parent.cloned(),
            size: a.size,
            snapshot: chain_key,
            blob: a.blob,
        };
        if let Err(err) = self.write_entry(&layer) {
            let _ = self.snapshots.remove(&layer.snapshot);
            return Err(err);
        }
        Ok((layer, true))
    }

    /// Registers the layers of an image whose config lists `diff_ids`,
    /// bottom first; `open(i)` opens layer `i`'s blob and is called only
    /// for layers not yet stored. Returns each layer and whether it was
    /// newly stored. With [`LayerOrder::AtOnce`] on a driver that allows
    /// it, the missing layers are extracted at the same time (see the
    /// module doc); otherwise this is [`register`](Self::register) of each
    /// layer in turn.
    pub fn register_image<R, F>(
        &self,
        diff_ids: &[DiffId],
        open: F,
        order: LayerOrder,
    ) -> Result<Vec<(Layer, bool)>, LayerError>
    where
        R: Read + Send,
        F: Fn(usize) -> Result<R, LayerError> + Sync,
    {
        let chains = ChainId::chain(diff_ids);
        if order == LayerOrder::InOrder || !self.extracts_alone() || diff_ids.len() < 2 {
            let mut out = Vec::with_capacity(diff_ids.len());
            for (i, diff) in diff_ids.iter().enumerate() {
                let parent = i.checked_sub(1).map(|p| &chains[p]);
                if let Some(l) = self.get(&chains[i])? {
                    out.push((l, false));
                    continue;
                }
                out.push(self.register(parent, Some(diff), open(i)?)?);
            }
            return Ok(out);
        }
        // Every chain's lock, in image order: any two images order shared
        // chains alike (a chain ID covers all layers below it), so two
        // such calls cannot wait on each other.
        let locks = chains.iter().map(|c| self.lock_chain(c)).collect::<Result<Vec<_>, _>>()?;
        let present = chains.iter().map(|c| self.get(c)).collect::<Result<Vec<_>, _>>()?;
        let missing: Vec<usize> = (0..chains.len()).filter(|i| present[*i].is_none()).collect();
        let extracted = std::thread::scope(|s| {
            let threads: Vec<_> = missing
                .iter()
                .map(|&i| {
                    let open = &open;
                    // No sync per layer: the first commit's syncfs covers
                    // them all (one filesystem).
                    s.spawn(move || self.extract_alone(&diff_ids[i], None, open(i)?, false))
                })
                .collect();
            // Every thread is joined; the first error in image order wins
            // and every extract is dropped, so removed.
            let all: Vec<_> =
                threads.into_iter().map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect();
            all.into_iter().collect::<Result<Vec<_>, _>>()
        })?;
        let mut extracted = extracted.into_iter();
        let mut out = Vec::with_capacity(chains.len());
        for (i, layer) in present.into_iter().enumerate() {
            match layer {
                Some(l) => out.push((l, false)),
                None => {
                    let e = extracted.next().expect("one extract per missing layer");
                    let parent = i.checked_sub(1).map(|p| &chains[p]);
                    // On failure the layers below stay: a complete chain.
                    out.push(self.commit_extracted(&locks[i], parent, e)?);
                }
            }
        }
        Ok(out)
    }
}
