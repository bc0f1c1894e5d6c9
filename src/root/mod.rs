//! The data root: where everything strata keeps lives, and the two rules
//! every write into it follows.
//!
//! ```text
//! <root>/                            0710  default /var/lib/strata, --root, STRATA_ROOT
//! ├── locks/                         0700  flock(2) files, one per resource ([`LockName`])
//! │   ├── images-<driver>.lock
//! │   ├── chain-<hex>.lock                 serialises registering one layer
//! │   ├── use-<hex>.lock                   claims on a layer about to be used
//! │   └── lease-<kind>-<name>.lock         work in progress ([`LeaseName`])
//! ├── content/blobs/sha256/<hex>     0700  content-addressed blobs: layer blobs as
//! │                                        received (tar, tar+gzip, tar+zstd),
//! │                                        manifests, configs
//! ├── image/<driver>/                0700  Docker's layout: images are per driver
//! │   ├── repositories.json                name:tag -> image ID
//! │   ├── imagedb/content/sha256/<hex>     image config JSON (hex = image ID)
//! │   ├── imagedb/metadata/sha256/<hex>    {manifest digest, layer blobs, loaded-at}
//! │   └── layerdb/sha256/<chain-hex>/      one committed layer, keyed by chain ID
//! │       ├── diff                         diff ID
//! │       ├── parent                       parent chain ID (absent for a base layer)
//! │       ├── size                         bytes the layer adds on disk
//! │       └── cache-id                     the driver's snapshot key for it
//! ├── <driver>/                      0710  owned by the snapshot driver
//! │   ├── metadata.json                    snapshot metadata (parents, kinds, sizes)
//! │   └── snapshots/<id>/                  the bytes: fs/, work/, ...
//! ├── containers/                    0710
//! │   └── <id>/                      0710  per-container files:
//! │       ├── config.json            0600  the container's config (`-e` values)
//! │       ├── state.json             0600  status, pid, exit code
//! │       ├── <id>-json.log          0640  json-file log (and rotated .1, .2, ...)
//! │       └── hostname, hosts, ...   0644  bind-mounted into the container
//! ├── volumes/                       0701  named volumes, outside any driver
//! │   └── <name>/_data
//! ├── runtime/                       0700  the OCI executor's state per running container
//! │   └── <id>/                      0711  (as runc's: the init, already its spec's
//! │                                        user, opens exec.fifo in it by descriptor)
//! ├── seccomp/<sha256>.bpf           0700  compiled seccomp programs, by profile digest
//! └── staging/                       0700  work in progress; never read as final
//! ```
//!
//! **Permissions are Docker's** (`/var/lib/docker` 0710, `overlay2` 0710,
//! `containers` 0710, `image` 0700, `volumes` 0701, `tmp` 0700): no user
//! but root (and group root, for 0710) can reach anything below the root,
//! so no local user reads a container's `-e` secrets or runs a setuid
//! binary container root planted in its writable layer. A root made by
//! an older strata with looser modes is tightened when it is opened.
//!
//! **Invariant: nothing half-written is visible under its final name.**
//! Files are written to a temporary name in the same directory, fsynced and
//! renamed over the final name ([`atomic_write`]); directories are built in
//! `staging/` and renamed into place. Work in progress holds a lease (an
//! `flock` that dies with its process), so a crash leaves at worst debris
//! in `staging/`, which [`Root::open`] sweeps, or a `.tmp-*` name. Debris
//! may still have a snapshot mounted on it (a `cp` killed mid-copy): the
//! sweep detaches such mounts first and never removes across a mount
//! ([`remove_tree`]).
//!
//! **Invariant: several strata processes may share a root.** Every
//! read-modify-write of shared metadata happens under an `flock` from
//! `locks/`, taken in a fixed order: images before chain locks before
//! driver metadata (the order is [`LockName`]'s).

mod atomic;
mod locks;
mod perms;
mod remove;

pub use atomic::{
    atomic_write, atomic_write_json, atomic_write_json_private_volatile, atomic_write_json_volatile,
    atomic_write_volatile, fsync_dir, read_json,
};
pub use locks::{LeaseName, LockName};
pub use perms::{ensure_dir, tighten_file, DRIVER_HOME_MODE};
pub use remove::{mount_points, remove_tree, unmount_under};

use crate::sys::lock::FileLock;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Default data root, as Docker's `/var/lib/docker`.
pub const DEFAULT_ROOT: &str = "/var/lib/strata";

/// An I/O failure on a path: the one shape of every subsystem's `Io`
/// variant (`#[error(transparent)] Io(#[from] IoError)`), built from an
/// `io::Result` with [`IoResultExt::at`]. It lives here, in the lowest
/// module that every subsystem with files already imports.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct IoError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl IoError {
    pub fn new(path: impl Into<PathBuf>, source: io::Error) -> IoError {
        IoError { path: path.into(), source }
    }
}

/// `.at(path)` on an `io::Result`: the failure as an [`IoError`] naming
/// `path`.
pub trait IoResultExt<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, IoError>;
}

impl<T> IoResultExt<T> for io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, IoError> {
        self.map_err(|source| IoError { path: path.as_ref().to_owned(), source })
    }
}

/// Errors from the data root itself.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("data root {0}")]
    Io(#[from] IoError),
    #[error("{path}: malformed metadata: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// A removal reached a mount point below the tree it was removing
    /// (see [`remove_tree`]) and left it alone.
    #[error("{path}: another filesystem is mounted here (mount {found}, not {expected}); not removing through it")]
    OtherMount { path: PathBuf, found: u64, expected: u64 },
}

impl RootError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> RootError {
        RootError::Io(IoError::new(path, source))
    }
}

/// An opened data root.
#[derive(Debug, Clone)]
pub struct Root {
    path: PathBuf,
}

impl Root {
    /// Opens (creating if needed) the data root at `path`, gives its
    /// directories their modes (tightening looser ones, see the module
    /// doc) and sweeps leftovers of interrupted writes from `staging/`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Root, RootError> {
        let path = std::path::absolute(path.into()).map_err(|e| RootError::io(".", e))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| RootError::io(parent, e))?;
        }
        ensure_dir(&path, perms::ROOT_MODE)?;
        for (sub, mode) in perms::LAYOUT {
            ensure_dir(&path.join(sub), *mode)?;
        }
        let root = Root { path };
        root.sweep_staging()?;
        Ok(root)
    }

    /// Removes staging entries no live process holds: every staging entry
    /// `<name>` is covered by the lease `staging-<name>` while its writer
    /// lives, so an entry whose lease is free belongs to a process that
    /// died. A dead writer may have left a snapshot mounted on its entry:
    /// mounts are detached first, and the removal never crosses a mount
    /// (a refusal is an error naming the path; the entry stays).
    fn sweep_staging(&self) -> Result<(), RootError> {
        let dir = self.staging();
        let entries = std::fs::read_dir(&dir).map_err(|e| RootError::io(&dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !self.lease_held(LeaseName::Staging(&name))? {
                let p = entry.path();
                unmount_under(&p)?;
                match remove_tree(&p) {
                    Ok(()) => {}
                    Err(e @ RootError::OtherMount { .. }) => return Err(e),
                    // As before: other debris that will not go now is
                    // retried by the next open.
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }

    /// A driver's home, `<root>/<driver>`, created (or tightened) to
    /// [`DRIVER_HOME_MODE`].
    pub fn driver_home(&self, driver: &str) -> Result<PathBuf, RootError> {
        let home = self.driver_dir(driver);
        ensure_dir(&home, DRIVER_HOME_MODE)?;
        Ok(home)
    }

    /// Takes the lease `name`: a claim that lives exactly as long as this
    /// process holds the returned guard (an `flock`, so a crash releases
    /// it). Used to tell work in progress from debris of a dead process.
    pub fn lease(&self, name: LeaseName<'_>) -> Result<Lease, RootError> {
        let path = self.lock_path(LockName::Lease(name));
        let lock = FileLock::exclusive(&path).map_err(|e| RootError::io(&path, e))?;
        Ok(Lease { _lock: lock, path })
    }

    /// Whether a live process holds the lease `name`.
    pub fn lease_held(&self, name: LeaseName<'_>) -> Result<bool, RootError> {
        let path = self.lock_path(LockName::Lease(name));
        if !path.exists() {
            return Ok(false);
        }
        match FileLock::try_exclusive(&path).map_err(|e| RootError::io(&path, e))? {
            Some(_free) => {
                let _ = std::fs::remove_file(&path);
                Ok(false)
            }
            None => Ok(true),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn blobs(&self) -> PathBuf {
        self.path.join("content/blobs/sha256")
    }
    pub fn image_dir(&self, driver: &str) -> PathBuf {
        self.path.join("image").join(driver)
    }
    pub fn driver_dir(&self, driver: &str) -> PathBuf {
        self.path.join(driver)
    }
    pub fn containers(&self) -> PathBuf {
        self.path.join("containers")
    }
    pub fn volumes(&self) -> PathBuf {
        self.path.join("volumes")
    }
    /// The OCI executor's state root for strata's own containers (what
    /// `strata-runc --root` is for a caller of the runtime).
    pub fn runtime_state(&self) -> PathBuf {
        self.path.join("runtime")
    }
    /// Compiled seccomp programs by digest (`runtime::seccomp::Cache`).
    pub fn seccomp_cache(&self) -> PathBuf {
        self.path.join("seccomp")
    }
    pub fn staging(&self) -> PathBuf {
        self.path.join("staging")
    }
    fn lock_path(&self, name: LockName<'_>) -> PathBuf {
        self.path.join("locks").join(name.file_name())
    }

    /// Takes the named exclusive lock, waiting for other holders (in
    /// [`LockName`]'s order).
    pub fn lock(&self, name: LockName<'_>) -> Result<FileLock, RootError> {
        let p = self.lock_path(name);
        FileLock::exclusive(&p).map_err(|e| RootError::io(p, e))
    }

    /// Takes the named lock shared, waiting while someone holds it
    /// exclusively.
    pub fn lock_shared(&self, name: LockName<'_>) -> Result<FileLock, RootError> {
        let p = self.lock_path(name);
        FileLock::shared(&p).map_err(|e| RootError::io(p, e))
    }

    /// Takes the named exclusive lock if nobody holds it, without waiting.
    pub fn try_lock(&self, name: LockName<'_>) -> Result<Option<FileLock>, RootError> {
        let p = self.lock_path(name);
        FileLock::try_exclusive(&p).map_err(|e| RootError::io(p, e))
    }

    /// A fresh, uniquely named staging directory (mode 0700), removed on
    /// drop unless [`Staging::persist`] moved it into place.
    pub fn staging_dir(&self, purpose: &str) -> Result<Staging, RootError> {
        let name = format!("{purpose}-{}", unique_suffix());
        let lease = self.lease(LeaseName::Staging(&name))?;
        let path = self.staging().join(&name);
        // Private until its owner says otherwise: what is built here may
        // be renamed into place as it is.
        std::fs::DirBuilder::new().mode(0o700).create(&path).map_err(|e| RootError::io(&path, e))?;
        Ok(Staging { path: Some(path), _lease: lease })
    }
}

/// A process-unique suffix: pid, time and a counter.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{:x}-{n}", std::process::id(), t)
}

/// A directory under `staging/` owned by this process.
#[derive(Debug)]
pub struct Staging {
    path: Option<PathBuf>,
    _lease: Lease,
}

/// A held lease (see [`Root::lease`]); dropping it releases the claim.
#[derive(Debug)]
pub struct Lease {
    _lock: FileLock,
    path: PathBuf,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Staging {
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("staging path present until drop")
    }

    /// Renames the staging directory to `dest` (same filesystem) and fsyncs
    /// the destination's parent, making it visible atomically and durably.
    pub fn persist(self, dest: &Path) -> io::Result<()> {
        self.persist_with(dest, true)
    }

    /// [`Staging::persist`] without the fsync (see
    /// [`atomic_write_volatile`]).
    pub fn persist_volatile(self, dest: &Path) -> io::Result<()> {
        self.persist_with(dest, false)
    }

    fn persist_with(mut self, dest: &Path, durable: bool) -> io::Result<()> {
        let src = self.path.take().expect("staging path present");
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(&src, dest)?;
        if let (true, Some(parent)) = (durable, dest.parent()) {
            fsync_dir(parent)?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    /// Removes the directory, never through a mount left on it (a
    /// whoever mounted on it unmounts before this runs; if that failed,
    /// the entry stays for [`Root::open`]'s sweep).
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = remove_tree(&p);
        }
    }
}
