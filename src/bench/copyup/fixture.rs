//! A setup's test bed: its scratch filesystem, a data root on it, the
//! driver opened by name, images built layer by layer through the
//! snapshot contract, and fresh containers on them.
//!
//! ```text
//! <scratch fs>/
//! ├── root/<driver>/...     the driver's snapshots and metadata
//! ├── mnt/<key>/            where containers (and build layers) are mounted
//! └── copies/               destinations of the full-copy baseline
//! ```
//!
//! Images are built with `prepare` → write through the mounted snapshot →
//! `commit`, the way layer apply uses any driver; empty layers (the depth
//! stacks) skip the mount, so a 500-layer image costs 500
//! prepare/commit pairs. Everything is removed when the bed drops (the
//! scratch filesystem with it).

use super::Setup;
use crate::bench::BenchError;
use crate::mount::TempMount;
use crate::snapshot::{SnapshotKey, Snapshotter};
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a setup cannot run: its driver is unknown to this build, or it
/// cannot work here.
pub enum Unavailable {
    NotInBuild,
    Here(String),
}

/// Writes a layer's content into its mounted directory.
pub type Fill<'a> = &'a dyn Fn(&Path) -> std::io::Result<()>;

pub struct Bed {
    snap: Snapshotter,
    mnt: PathBuf,
    next: Cell<u64>,
    /// Containers mount with overlay's `volatile` ([`super::VOLATILE`]).
    volatile: bool,
    // Last: dropped after the snapshotter is done with it.
    fs: super::place::Place,
}

fn key(s: &str) -> SnapshotKey {
    SnapshotKey::new(s).expect("bench keys are valid")
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BenchError {
    let path = path.to_owned();
    move |source| BenchError::Io { what, path, source }
}

/// What [`BenchError::Unavailable`] says when the driver refuses a case
/// (a stack deeper than it supports): a limit to report, not a failure.
pub const REFUSED: &str = "case refused by the driver";

fn snap_err(e: crate::snapshot::SnapshotError) -> BenchError {
    use crate::snapshot::{DriverError, SnapshotError};
    match e {
        SnapshotError::Driver { source: DriverError::Unsupported(reason), .. } => {
            BenchError::Unavailable { what: REFUSED.into(), reason }
        }
        e => BenchError::Unavailable { what: "snapshot".into(), reason: e.to_string() },
    }
}

impl Bed {
    /// Makes the setup's filesystem on `target` and opens its driver there.
    pub fn open(
        opts: &crate::bench::Options,
        target: &super::storage::Target,
        setup: &Setup,
        fs_bytes: u64,
    ) -> Result<Bed, Unavailable> {
        let fs =
            super::place::Place::make(opts, target, setup, fs_bytes).map_err(|e| Unavailable::Here(e.to_string()))?;
        let root = crate::root::Root::open(fs.path().join("root")).map_err(|e| Unavailable::Here(e.to_string()))?;
        let volatile = setup.options.contains(&super::VOLATILE);
        let options: Vec<String> =
            setup.options.iter().filter(|o| **o != super::VOLATILE).map(|s| (*s).to_owned()).collect();
        let snap = match crate::drivers::open_with_options(&root, setup.driver, &options) {
            Ok(s) => s,
            Err(crate::drivers::DriverSelectError::Unknown(_)) => return Err(Unavailable::NotInBuild),
            Err(e) => return Err(Unavailable::Here(e.to_string())),
        };
        let mnt = fs.path().join("mnt");
        std::fs::create_dir_all(&mnt).map_err(|e| Unavailable::Here(e.to_string()))?;
        Ok(Bed { snap, mnt, next: Cell::new(0), fs, volatile })
    }

    pub fn fs_path(&self) -> &Path {
        self.fs.path()
    }

    fn fresh(&self, prefix: &str) -> String {
        let n = self.next.get();
        self.next.set(n + 1);
        format!("{prefix}-{n}")
    }

    /// Commits a layer `name` on `parent`, written by `fill` through its
    /// mount (or empty when `fill` is `None`).
    pub fn layer(&self, name: &str, parent: Option<&str>, fill: Option<Fill<'_>>) -> Result<(), BenchError> {
        let k = key(&self.fresh("build"));
        let parent = parent.map(key);
        let mounts = self.snap.prepare(&k, parent.as_ref()).map_err(snap_err)?;
        if let Some(fill) = fill {
            let dir = self.mnt.join(k.as_str());
            std::fs::create_dir(&dir).map_err(io("mkdir", &dir))?;
            let m = TempMount::new(&mounts, &dir).map_err(io("mount layer", &dir))?;
            fill(&dir).map_err(io("write layer", &dir))?;
            m.unmount().map_err(io("unmount layer", &dir))?;
            let _ = std::fs::remove_dir(&dir);
        }
        self.snap.commit(&key(name), &k).map_err(snap_err)?;
        Ok(())
    }

    /// Whether the scratch filesystem's loop device does direct I/O.
    pub fn direct_io(&self) -> bool {
        self.fs.direct_io()
    }

    /// Makes sure the host's page cache holds none of the scratch
    /// filesystem's backing file, and returns how many of its pages are
    /// resident (the proof: 0). With direct I/O there is nothing to drop;
    /// without it the (synced, so clean) pages are dropped with
    /// `POSIX_FADV_DONTNEED` first. `None` where there is no backing file
    /// (`--on`, `--device`).
    pub fn evict_backing(&self) -> Result<Option<u64>, BenchError> {
        let Some(fs) = self.fs.scratch() else { return Ok(None) };
        let backing = fs.backing_file();
        if !fs.direct_io() {
            crate::bench::cache::evict_file(backing).map_err(io("fadvise(DONTNEED)", backing))?;
        }
        Ok(Some(fs.backing_residency().map_err(io("mincore", backing))?.resident))
    }

    /// What the report says about the storage under this bed.
    pub fn storage(&self) -> super::storage::StorageFacts {
        self.fs.facts()
    }

    /// Writes every dirty page and all metadata of the filesystem.
    pub fn sync(&self) -> Result<(), BenchError> {
        crate::bench::run::syncfs(self.fs.path())
    }

    /// A new container (active snapshot, mounted) on image `top`.
    pub fn container(&self, top: &str) -> Result<Container<'_>, BenchError> {
        let k = key(&self.fresh("c"));
        let mut mounts = self.snap.prepare(&k, Some(&key(top))).map_err(snap_err)?;
        if self.volatile {
            mounts = crate::mount::with_volatile(mounts);
        }
        let mut c = Container { bed: self, key: Some(k.clone()), mount: None, dir: self.mnt.join(k.as_str()) };
        std::fs::create_dir(&c.dir).map_err(io("mkdir", &c.dir))?;
        c.mount = Some(TempMount::new(&mounts, &c.dir).map_err(io("mount container", &c.dir))?);
        Ok(c)
    }

    /// A read-only view of image `top`, mounted.
    pub fn view(&self, top: &str) -> Result<Container<'_>, BenchError> {
        let k = key(&self.fresh("v"));
        let mounts = self.snap.view(&k, Some(&key(top))).map_err(snap_err)?;
        let mut c = Container { bed: self, key: Some(k.clone()), mount: None, dir: self.mnt.join(k.as_str()) };
        std::fs::create_dir(&c.dir).map_err(io("mkdir", &c.dir))?;
        c.mount = Some(TempMount::new(&mounts, &c.dir).map_err(io("mount view", &c.dir))?);
        Ok(c)
    }

    /// The backing filesystem as mountinfo describes it.
    pub fn describe_fs(&self) -> Option<String> {
        crate::bench::env::mount_of(self.fs.path()).map(|m| m.describe())
    }
}

/// A mounted snapshot; unmounted and removed on drop.
pub struct Container<'a> {
    bed: &'a Bed,
    key: Option<SnapshotKey>,
    mount: Option<TempMount>,
    dir: PathBuf,
}

impl Container<'_> {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        drop(self.mount.take());
        let _ = std::fs::remove_dir(&self.dir);
        if let Some(k) = self.key.take() {
            let _ = self.bed.snap.remove(&k);
        }
    }
}

/// Writes a file of `size` bytes of incompressible-enough data (real
/// extents: a sparse or fallocated file would let copy_up skip holes).
pub fn write_file(path: &Path, size: u64) -> std::io::Result<()> {
    let mut chunk = vec![0u8; 1 << 20];
    crate::bench::dataset::fill(size ^ 0xc0b7, &mut chunk);
    let mut f = std::fs::File::create(path)?;
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        // Vary each MiB so no filesystem could share identical blocks.
        chunk[..8].copy_from_slice(&left.to_le_bytes());
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// The directory chain for directory depth `depth` (`t<depth>/d/d/…`,
/// `depth` directories) — the file is `f` inside it.
pub fn deep_dir(depth: usize) -> PathBuf {
    let mut p = PathBuf::from(format!("t{depth}"));
    for _ in 1..depth {
        p.push("d");
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_dirs_have_the_asked_depth() {
        assert_eq!(deep_dir(1), PathBuf::from("t1"));
        assert_eq!(deep_dir(3), PathBuf::from("t3/d/d"));
        assert_eq!(deep_dir(256).components().count(), 256);
    }
}
