//! A container's filesystem from the outside: `diff` (A/C/D), `commit`,
//! `export`, `cp` both ways.
//!
//! A running container's root is reached through `/proc/<pid>/root` (its
//! own mount namespace); a stopped one's by mounting its snapshot in
//! staging. Paths inside are always resolved with `openat2(…,
//! RESOLVE_IN_ROOT)`, so a container's symlinks cannot point `cp` at the
//! host, and every file is opened `O_PATH | O_NOFOLLOW` and its type
//! checked on the descriptor before it is read, so a FIFO or device
//! swapped in cannot hang or reach the host (`image::diff` for `diff`,
//! `commit` and `export`; [`tree`] for `cp`).
//!
//! `cp` ([`cp`]) is a copy, not a layer: no whiteouts on either side, and
//! Docker's rules for owners and special files, stricter on the host (no
//! device nodes, no setuid bits without `-a`).

mod cp;
mod tree;

pub use cp::{copy_in, copy_out, copy_out_tar, CopyOptions, CopyReport, CpError};
pub use tree::Skipped;

use crate::container::records::{ContainerError, ContainerStore};
use crate::container::{ContainerId, Status};
use crate::content::ContentError;
use crate::digest::DigestError;
use crate::engine::Engine;
use crate::image::apply::ApplyError;
use crate::image::diff::{write_layer, write_layer_without, write_tree_without, DiffError};
use crate::mount::TempMount;
use crate::ops::container::volatile::{self, Use};
use crate::ops::image::import::ImportError;
use crate::root::RootError;
use crate::snapshot::{SnapshotError, SnapshotKey};
use crate::sys::pipe::{pipe_with, PipeFlags};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Errors of the filesystem tools.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Root(#[from] RootError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Diff(#[from] DiffError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The container's image ID does not parse.
    #[error(transparent)]
    ImageId(#[from] DigestError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Copy(#[from] CpError),
}

fn io_err(path: impl Into<String>) -> impl FnOnce(io::Error) -> FsError {
    let path = path.into();
    move |source| FsError::Io { path, source }
}

/// The container's root filesystem, for as long as this value lives.
pub struct RootView {
    path: PathBuf,
    _mount: Option<(TempMount, crate::root::Staging)>,
}

impl RootView {
    /// Opens the container's root: live through `/proc/<pid>/root` when it
    /// runs, else by mounting its writable layer.
    pub fn open(engine: &Engine, id: &ContainerId) -> Result<RootView, FsError> {
        let (config, state) = ContainerStore::new(&engine.root).get(id)?;
        if let (Status::Running, Some(pid)) = (state.status, state.pid) {
            return Ok(RootView { path: PathBuf::from(format!("/proc/{pid}/root")), _mount: None });
        }
        settle(engine, &config, Use::Mount)?;
        let key = SnapshotKey::new(id.as_str()).expect("valid key");
        let mounts = engine.snapshots.mounts(&key)?;
        let staging = engine.root.staging_dir("rootview")?;
        let m = TempMount::new(&mounts, staging.path()).map_err(io_err("mount container root"))?;
        Ok(RootView { path: staging.path().to_owned(), _mount: Some((m, staging)) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container's root directory, for resolving paths inside it with
    /// `RESOLVE_IN_ROOT`.
    pub fn open_root(&self) -> Result<OwnedFd, FsError> {
        crate::sys::fs::open_dir(&self.path).map_err(io_err("open container root"))
    }
}

/// One line of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: String,
    /// `A` added, `C` changed, `D` deleted.
    pub kind: char,
}

/// A volatile layer made safe to use (see [`crate::ops::container::volatile`]);
/// a layer reset after a host restart is said on stderr, as Docker's
/// warnings are.
fn settle(engine: &Engine, config: &crate::container::Config, use_: Use) -> Result<(), FsError> {
    if config.volatile {
        let warning = volatile::settle(engine, config, use_).map_err(|e| FsError::Invalid(e.to_string()))?;
        if let Some(w) = warning {
            eprintln!("WARNING: {w}");
        }
    }
    Ok(())
}

/// [`settle`] for reading a stopped container's upper dir in place (a
/// running one is read live).
fn settle_stopped(
    engine: &Engine,
    config: &crate::container::Config,
    state: &crate::container::State,
) -> Result<(), FsError> {
    if state.status == Status::Running {
        return Ok(());
    }
    settle(engine, config, Use::Read)
}

/// Streams a tar written by `write` on another thread into `read`.
fn piped<T: Send + 'static>(
    write: impl FnOnce(std::fs::File) -> Result<T, FsError> + Send + 'static,
    read: impl FnOnce(std::fs::File) -> Result<(), FsError>,
) -> Result<T, FsError> {
    let (r, w) = pipe_with(PipeFlags::CLOEXEC).map_err(io_err("pipe"))?;
    let writer = std::thread::spawn(move || write(std::fs::File::from(w)));
    let read_result = read(std::fs::File::from(r));
    let write_result = writer.join().map_err(|_| FsError::Invalid("tar writer panicked".into()))?;
    read_result?;
    write_result
}

/// The container's changes against its image, as `docker diff` lists them.
pub fn diff(engine: &Engine, id: &ContainerId) -> Result<Vec<Change>, FsError> {
    let (config, state) = ContainerStore::new(&engine.root).get(id)?;
    settle_stopped(engine, &config, &state)?;
    let key = SnapshotKey::new(id.as_str()).expect("valid key");
    let info = engine.snapshots.stat(&key)?;
    // The image's tree, to tell added from changed.
    let view_key = SnapshotKey::new(format!("diff-{}", crate::root::unique_suffix())).expect("valid");
    let staging = engine.root.staging_dir("diffview")?;
    let view = match &info.parent {
        Some(p) => {
            let mounts = engine.snapshots.view(&view_key, Some(p))?;
            Some(TempMount::new(&mounts, staging.path()).map_err(io_err("mount image view"))?)
        }
        None => None,
    };
    let lower = match &view {
        Some(m) => Some(crate::sys::fs::open_dir(m.path()).map_err(io_err("open image view"))?),
        None => None,
    };
    let mut out = Vec::new();
    // Taken last, so nothing between it and the release below returns
    // early.
    let source = engine.snapshots.diff_source(&key).map_err(FsError::from);
    let result = source.and_then(|source| {
        piped(
            move |w| write_layer(&source, w).map(|_| ()).map_err(FsError::from),
            |r| {
                let mut a = tar::Archive::new(r);
                for e in a.entries().map_err(io_err("diff stream"))? {
                    let e = e.map_err(io_err("diff stream"))?;
                    let p = e.path().map_err(io_err("diff stream"))?.to_string_lossy().trim_end_matches('/').to_owned();
                    let (dir, name) = p
                        .rsplit_once('/')
                        .map(|(d, n)| (format!("{d}/"), n.to_owned()))
                        .unwrap_or((String::new(), p.clone()));
                    if name == ".wh..wh..opq" {
                        continue;
                    }
                    if let Some(deleted) = name.strip_prefix(".wh.") {
                        out.push(Change { path: format!("/{dir}{deleted}"), kind: 'D' });
                        continue;
                    }
                    let existed = lower.as_ref().is_some_and(|l| exists_in(l.as_fd(), &p));
                    out.push(Change { path: format!("/{p}"), kind: if existed { 'C' } else { 'A' } });
                }
                Ok(())
            },
        )
    });
    drop(view);
    if info.parent.is_some() {
        let _ = engine.snapshots.remove(&view_key);
    }
    let released = engine.snapshots.release(&key).map_err(FsError::from);
    result?;
    released?;
    Ok(without_runtime_files(out))
}

/// Whether the image has an entry at `path` (relative): its parent resolved
/// inside the image's root, the entry itself not followed.
fn exists_in(root: std::os::fd::BorrowedFd<'_>, path: &str) -> bool {
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    crate::sys::fs::open_dir_in_root(root, parent.as_bytes())
        .and_then(|dir| crate::sys::fs::lstat_at(dir.as_fd(), name.as_bytes()))
        .is_ok()
}

/// Mount points the runtime creates for its bind mounts; Docker keeps
/// them in a hidden init layer, so `diff` never shows them.
pub const RUNTIME_FILES: &[&str] = &["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];

/// [`RUNTIME_FILES`] as layer paths (no leading `/`).
pub(crate) fn placeholders() -> Vec<&'static str> {
    RUNTIME_FILES.iter().map(|p| p.trim_start_matches('/')).collect()
}

/// The writable layer of snapshot `key` as an uncompressed layer tar in the
/// content store (runtime placeholders left out): its diff ID, which is
/// also the blob's digest. The driver's diff view is released afterwards,
/// whatever happened.
pub(crate) fn diff_to_blob(
    engine: &Engine,
    key: &SnapshotKey,
) -> Result<(crate::digest::DiffId, crate::digest::Digest), FsError> {
    let source = engine.snapshots.diff_source(key)?;
    let written = (|| -> Result<_, FsError> {
        let mut w = engine.content.writer()?;
        let outcome = write_layer_without(&source, &placeholders(), &mut w)?;
        Ok((w, outcome))
    })();
    let released = engine.snapshots.release(key).map_err(FsError::from);
    let (w, outcome) = written?;
    released?;
    let digest = w.commit(Some(&outcome.diff_id.0))?;
    Ok((outcome.diff_id, digest))
}

/// Drops the runtime's own mount points (when the image lacks them) and
/// the directory changes that only they caused.
fn without_runtime_files(mut changes: Vec<Change>) -> Vec<Change> {
    changes.retain(|c| !(c.kind == 'A' && RUNTIME_FILES.contains(&c.path.as_str())));
    let kept: Vec<String> = changes.iter().map(|c| c.path.clone()).collect();
    let removed_parent = |p: &str| RUNTIME_FILES.iter().any(|f| Path::new(f).parent() == Some(Path::new(p)));
    changes.retain(|c| {
        c.kind != 'C' || !removed_parent(&c.path) || kept.iter().any(|k| k.starts_with(&format!("{}/", c.path)))
    });
    changes.sort();
    changes
}

/// `docker export`: the merged filesystem as a tar on `out`.
pub fn export(engine: &Engine, id: &ContainerId, out: impl Write) -> Result<(), FsError> {
    let root = RootView::open(engine, id)?;
    write_tree_without(root.path(), &placeholders(), out)?;
    Ok(())
}

/// `docker commit`: a new image whose top layer is the container's
/// changes, with a history entry naming the container's command.
pub fn commit(
    engine: &Engine,
    id: &ContainerId,
    message: Option<String>,
    changes: Vec<crate::image::changes::Change>,
) -> Result<crate::digest::ImageId, FsError> {
    let (config, state) = ContainerStore::new(&engine.root).get(id)?;
    settle_stopped(engine, &config, &state)?;
    let base: crate::digest::ImageId = config.image.parse()?;
    let key = SnapshotKey::new(id.as_str()).expect("valid key");
    // The diff goes to the content store once; the layer is registered
    // from that blob (apply reads it back), so a running container keeps
    // its writable layer untouched.
    let (_, digest) = diff_to_blob(engine, &key)?;
    let mut blob = engine.content.open(&digest)?;
    let opts = crate::ops::image::import::ImportOptions {
        base: Some(base),
        changes,
        message,
        source: format!("container {}", id.short()),
        created_by: Some(config.args.join(" ")),
    };
    crate::ops::image::import::import(engine, Some(&mut blob), &opts).map_err(FsError::from)
}
