//! The overlay driver: each snapshot is an overlayfs upper directory; a
//! container's root is its upper dir over every parent as a lower dir.
//!
//! ```text
//! <root>/overlay/
//! ├── metadata.json, metadata.lock     (shared snapshot metadata)
//! └── snapshots/<id>/
//!     ├── fs/                          the upper dir: this snapshot's changes,
//!     │                                deletions as overlay whiteouts
//!     └── work/                        overlayfs workdir (active only)
//! ```
//!
//! Mounts are returned as data: a bind of `fs` for a snapshot without
//! parents, otherwise `overlay` with `lowerdir=` listing parents nearest
//! first. The mount executor passes each lower dir with its own
//! `fsconfig("lowerdir+")`, so stacks up to the kernel's 500 work.
//! overlayfs counts lower dirs only: a container (upper) or view on a
//! 500-layer image mounts, but committing that container would make a
//! 501st layer, so that commit is refused (as Docker fails it) while the
//! container itself runs.
//! Committed snapshots are only ever lower dirs, so overlayfs never writes
//! to them: that is what keeps committed layers immutable.

use crate::mount::Mount;
use crate::snapshot::{DiffSource, Driver, DriverError, Kind, SnapshotId, Usage, Whiteouts, WriteTarget};
use crate::uring::du::tree_usage;
use std::path::{Path, PathBuf};

/// overlayfs' own stack limit (`OVL_MAX_STACK` in fs/overlayfs/params.h):
/// the most lower dirs one mount takes, so the deepest committed stack.
pub const MAX_LAYERS: usize = 500;

pub struct Overlay {
    snapshots: PathBuf,
    home: PathBuf,
    /// Mount with `metacopy=on` (see [`Overlay::with_metacopy`]).
    metacopy: bool,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay").field("snapshots", &self.snapshots).finish()
    }
}

impl Overlay {
    /// Opens the driver at `home`, checking that the kernel has overlayfs
    /// and the backing filesystem can hold upper dirs.
    pub fn new(home: &Path) -> Result<Overlay, DriverError> {
        let snapshots = home.join("snapshots");
        std::fs::create_dir_all(&snapshots).map_err(|e| DriverError::io(&snapshots, e))?;
        let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        if !fs.lines().any(|l| l.split_whitespace().last() == Some("overlay")) {
            return Err(DriverError::Unsupported("the kernel has no overlay filesystem (modprobe overlay)".into()));
        }
        Ok(Overlay { snapshots, home: home.to_owned(), metacopy: false })
    }

    /// Mounts with `metacopy=on`: a metadata-only change (chmod, chown) of
    /// a lower file copies up its inode but not its data, which stays in
    /// the lower layer (kernel `Documentation/filesystems/overlayfs.rst`,
    /// "Metadata only copy up"; the kernel turns `redirect_dir` on with
    /// it). For measuring that cost: an upper dir holding metacopy files is
    /// not a complete layer (its data lives below), so such snapshots
    /// cannot be diffed into a layer tar, and [`Driver::diff_source`]
    /// refuses them. Docker never enables it for the same reason.
    pub fn with_metacopy(mut self, on: bool) -> Overlay {
        self.metacopy = on;
        self
    }

    fn dir(&self, id: SnapshotId) -> PathBuf {
        self.snapshots.join(id.to_string())
    }
    fn fs(&self, id: SnapshotId) -> PathBuf {
        self.dir(id).join("fs")
    }
}

impl Driver for Overlay {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn create(&self, id: SnapshotId, parents: &[SnapshotId], kind: Kind) -> Result<(), DriverError> {
        // An active or view snapshot mounts its parents as lower dirs
        // (its own dir is the upper, or unused).
        if parents.len() > MAX_LAYERS {
            return Err(DriverError::Unsupported(format!(
                "an image of {} layers exceeds overlayfs' limit of {MAX_LAYERS} lower layers",
                parents.len()
            )));
        }
        let dir = self.dir(id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| DriverError::io(&dir, e))?;
        }
        let fs = dir.join("fs");
        std::fs::create_dir_all(&fs).map_err(|e| DriverError::io(&fs, e))?;
        if kind == Kind::Active {
            let work = dir.join("work");
            std::fs::create_dir(&work).map_err(|e| DriverError::io(&work, e))?;
        }
        Ok(())
    }

    fn mounts(&self, id: SnapshotId, parents: &[SnapshotId], kind: Kind) -> Result<Vec<Mount>, DriverError> {
        let own = self.fs(id);
        // A view or committed snapshot shows its parents (a view's own dir
        // stays empty; a committed one's content is its fs).
        let (upper, lowers): (Option<PathBuf>, Vec<PathBuf>) = match kind {
            Kind::Active => (Some(own.clone()), parents.iter().map(|p| self.fs(*p)).collect()),
            Kind::View => (None, parents.iter().map(|p| self.fs(*p)).collect()),
            Kind::Committed => (None, std::iter::once(id).chain(parents.iter().copied()).map(|p| self.fs(p)).collect()),
        };
        let mount = match (upper, lowers.len()) {
            (Some(upper), 0) => Mount::bind(&upper, false),
            (None, 0) => Mount::bind(&own, true),
            (None, 1) => Mount::bind(&lowers[0], true),
            (upper, _) => {
                let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
                let mut options = vec![format!("lowerdir={}", lowerdir.join(":"))];
                match upper {
                    Some(upper) => {
                        options.push(format!("upperdir={}", upper.display()));
                        options.push(format!("workdir={}", self.dir(id).join("work").display()));
                    }
                    None => options.push("ro".into()),
                }
                options.push("index=off".into());
                if self.metacopy {
                    options.push("metacopy=on".into());
                }
                Mount { kind: "overlay".into(), source: "overlay".into(), options }
            }
        };
        Ok(vec![mount])
    }

    fn commit(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Usage, DriverError> {
        // Committed, this snapshot becomes a lower dir of its own mounts
        // and its children's: one more than overlayfs can stack.
        if parents.len() + 1 > MAX_LAYERS {
            return Err(DriverError::Unsupported(format!(
                "committing would make a layer {} deep; overlayfs stacks at most {MAX_LAYERS} layers \
                 (the container itself keeps running; squash the image to commit)",
                parents.len() + 1
            )));
        }
        let work = self.dir(id).join("work");
        if work.exists() {
            std::fs::remove_dir_all(&work).map_err(|e| DriverError::io(&work, e))?;
        }
        let fs = self.fs(id);
        tree_usage(&fs).map_err(|e| DriverError::io(fs, e))
    }

    fn remove(&self, id: SnapshotId) -> Result<(), DriverError> {
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DriverError::io(dir, e)),
        }
    }

    fn usage(&self, id: SnapshotId, _parents: &[SnapshotId]) -> Result<Usage, DriverError> {
        let fs = self.fs(id);
        tree_usage(&fs).map_err(|e| DriverError::io(fs, e))
    }

    /// The upper dir holds the layer's changes alone, deletions as
    /// whiteouts: nothing of the lower dirs is read or touched.
    fn extracts_alone(&self) -> bool {
        true
    }

    fn write_target(&self, id: SnapshotId, _parents: &[SnapshotId]) -> Result<WriteTarget, DriverError> {
        Ok(WriteTarget::Directory { dir: self.fs(id), whiteouts: Whiteouts::Overlay })
    }

    fn diff_source(&self, id: SnapshotId, _parents: &[SnapshotId]) -> Result<DiffSource, DriverError> {
        if self.metacopy {
            return Err(DriverError::Unsupported(
                "an overlay upper dir mounted with metacopy=on is not a complete layer; it cannot be diffed".into(),
            ));
        }
        Ok(DiffSource::OverlayUpper(self.fs(id)))
    }

    fn list(&self) -> Result<Vec<SnapshotId>, DriverError> {
        let rd = std::fs::read_dir(&self.snapshots).map_err(|e| DriverError::io(&self.snapshots, e))?;
        Ok(rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).map(SnapshotId).collect())
    }

    fn status(&self) -> Vec<(String, String)> {
        let mut lines =
            super::backing_status(&crate::sys::statfs::fs_magic(&self.home), &super::probe_reflink(&self.home));
        lines.push(("Native Overlay Diff".into(), "true".into()));
        lines.push(("Mount API".into(), "fsopen/fsconfig(lowerdir+)/fsmount, mount(2) fallback".into()));
        lines.push(("Max Layers".into(), MAX_LAYERS.to_string()));
        lines
    }
}
