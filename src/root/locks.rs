//! The names of the `flock(2)` files under `<root>/locks/` and the order
//! they are taken in.
//!
//! Writers and recovery get a lock's file name from the one function
//! [`LockName::file_name`], so they cannot disagree. The names are on-disk
//! format: an older strata and this one sharing a root must compute the
//! same file for the same resource (the unit tests pin every variant).

use crate::digest::{ChainId, ImageId};

/// A lock under `<root>/locks/`, named by what it guards.
///
/// **Lock order.** Variants are declared in the order locks are taken: a
/// process holding one may wait only for a lock declared after it, and
/// after all of these come the driver's metadata locks, which live in the
/// driver's home because a driver knows nothing of the data root
/// (`<home>/metadata.lock` in `snapshot::meta`, then dmthin's
/// `dmthin.lock`). So: claims → images → image mount → chain → driver
/// metadata, as ARCHITECTURE.md's "Concurrency" says (images → chain →
/// driver metadata).
///
/// Two kinds of lock stand outside the order because nobody waits for
/// their contended side: a claim's exclusive side is only tried
/// (`LayerStore::remove`), and a [`LeaseName`] names one process's own
/// work, which other processes only probe ([`super::Root::lease_held`]).
/// [`LockName::Containers`] and [`LockName::Volumes`] are held with no
/// other lock but leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockName<'a> {
    /// `use-<chain hex>`: taken shared by an operation about to reference
    /// the layer from an image it has not stored yet (`LayerStore::claim`),
    /// tried exclusively by the layer's removal.
    Claim(&'a ChainId),
    /// `images-<driver>`: every write to one driver's image store.
    Images { driver: &'a str },
    /// `image-mount-<image hex>`: mounting or unmounting an image's view.
    ImageMount(&'a ImageId),
    /// `chain-<chain hex>`: registering or removing one layer; a pull
    /// holds it from download to commit.
    Chain(&'a ChainId),
    /// `containers`: creating a container (its name must be unique).
    Containers,
    /// `volumes`: creating and removing volumes.
    Volumes,
    /// `lease-<lease>`: see [`LeaseName`].
    Lease(LeaseName<'a>),
}

/// Work in progress that recovery must leave alone while its process
/// lives: the lease is an exclusive `flock` that dies with its holder (see
/// [`super::Root::lease`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseName<'a> {
    /// `snapshot-<key>`: a snapshot being filled (a layer's `extract-`
    /// snapshot, a build step's); `Engine::recover` removes extract
    /// snapshots whose lease is free.
    Snapshot(&'a str),
    /// `staging-<entry>`: an entry of `<root>/staging/` being written;
    /// `Root::open` sweeps entries whose lease is free.
    Staging(&'a str),
}

impl LockName<'_> {
    /// The lock file's name in `<root>/locks/`.
    pub fn file_name(&self) -> String {
        match self {
            LockName::Claim(chain) => format!("use-{}.lock", chain.digest().hex()),
            LockName::Images { driver } => format!("images-{driver}.lock"),
            LockName::ImageMount(id) => format!("image-mount-{}.lock", id.digest().hex()),
            LockName::Chain(chain) => format!("chain-{}.lock", chain.digest().hex()),
            LockName::Containers => "containers.lock".to_owned(),
            LockName::Volumes => "volumes.lock".to_owned(),
            LockName::Lease(LeaseName::Snapshot(key)) => format!("lease-snapshot-{key}.lock"),
            LockName::Lease(LeaseName::Staging(entry)) => format!("lease-staging-{entry}.lock"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    /// The file names older strata versions use; changing one makes two
    /// versions sharing a root stop excluding each other.
    #[test]
    fn file_names_are_the_on_disk_ones() {
        let hex = "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";
        let digest: Digest = format!("sha256:{hex}").parse().unwrap();
        let chain = ChainId(digest.clone());
        let image = ImageId(digest);
        let cases = [
            (LockName::Claim(&chain), format!("use-{hex}.lock")),
            (LockName::Images { driver: "overlay" }, "images-overlay.lock".to_owned()),
            (LockName::ImageMount(&image), format!("image-mount-{hex}.lock")),
            (LockName::Chain(&chain), format!("chain-{hex}.lock")),
            (LockName::Containers, "containers.lock".to_owned()),
            (LockName::Volumes, "volumes.lock".to_owned()),
            (LockName::Lease(LeaseName::Snapshot("extract-12-3f-0")), "lease-snapshot-extract-12-3f-0.lock".to_owned()),
            (LockName::Lease(LeaseName::Staging("blob-12-3f-0")), "lease-staging-blob-12-3f-0.lock".to_owned()),
        ];
        for (name, want) in cases {
            assert_eq!(name.file_name(), want, "{name:?}");
        }
    }
}
