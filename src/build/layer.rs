//! Making a step's layer.
//!
//! * [`in_snapshot`]: a fresh active snapshot on the parent layer, mounted
//!   in staging; the step writes through the mount (paths resolved with
//!   `openat2(RESOLVE_IN_ROOT)`, tars laid down by layer apply) and the
//!   snapshot's diff is committed as the layer — no re-apply. Used by
//!   `COPY`, `ADD` and `WORKDIR`.
//! * [`run`]: `RUN` in an intermediate container on the step's parent
//!   image, through the ordinary run path; its writable layer's changes
//!   (without the runtime's `/etc/hosts`-style mount points) become the
//!   layer, and the container is removed whatever happens.

use super::BuildError;
use crate::digest::{ChainId, ImageId};
use crate::engine::Engine;
use crate::image::layers::{key_of, Layer, EXTRACT_PREFIX};
use crate::mount::TempMount;
use crate::ops::container::lifecycle::{self, CreateOptions};
use crate::ops::container::supervise::{self, Mode};
use crate::root::{IoError, IoResultExt};
use crate::snapshot::{SnapshotKey, Whiteouts};
use crate::sys::fs as sysfs;
use crate::sys::pipe::{pipe_with, PipeFlags};
use crate::sys::process::fork_child;
use crate::sys::stdio::{dup2_stderr, dup2_stdout};
use crate::sys::Errno;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Runs `work` on a new snapshot over `parent`, mounted; `work` returns
/// whether it changed anything. Returns the committed layer, or `None`
/// (snapshot discarded) when nothing changed.
pub fn in_snapshot(
    engine: &Engine,
    parent: Option<&ChainId>,
    work: impl FnOnce(&Path, BorrowedFd<'_>) -> Result<bool, BuildError>,
) -> Result<Option<Layer>, BuildError> {
    let key = SnapshotKey::new(format!("{EXTRACT_PREFIX}build-{}", crate::root::unique_suffix()))?;
    // The lease marks the snapshot as live; a crash leaves it to recovery.
    let _lease = engine.root.lease(crate::root::LeaseName::Snapshot(key.as_str()))?;
    let mounts = engine.snapshots.prepare(&key, parent.map(key_of).as_ref())?;
    let result = (|| {
        let staging = engine.root.staging_dir("build")?;
        let m = TempMount::new(&mounts, staging.path()).at(staging.path())?;
        let root = sysfs::open_dir(m.path()).at(m.path())?;
        let changed = work(m.path(), root.as_fd())?;
        drop(root);
        m.unmount().at(staging.path())?;
        if !changed {
            return Ok(None);
        }
        let (layer, _) = engine.layers().commit_active(&key, parent)?;
        Ok(Some(layer))
    })();
    match &result {
        Ok(Some(_)) => {}
        _ => {
            let _ = engine.snapshots.remove(&key);
        }
    }
    result
}

fn rel(path: &str) -> &[u8] {
    let r = path.trim_start_matches('/');
    if r.is_empty() {
        b"."
    } else {
        r.as_bytes()
    }
}

/// Whether `path` (absolute in the image) is a directory, resolved inside
/// `root`.
pub fn is_dir(root: BorrowedFd<'_>, path: &str) -> bool {
    sysfs::open_dir_in_root(root, rel(path)).is_ok()
}

/// `mkdir -p` inside `root`: missing components are created `0755`, owned
/// by `owner` (root when `None`); existing ones are left as they are.
/// Returns the directory, opened.
pub fn mkdir_p(root: BorrowedFd<'_>, path: &str, owner: Option<(u32, u32)>) -> Result<OwnedFd, BuildError> {
    let mut cur = String::new();
    let mut fd = sysfs::open_dir_in_root(root, b".").at("/")?;
    for seg in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        let next = format!("{cur}/{seg}");
        fd = match sysfs::open_dir_in_root(root, rel(&next)) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = sysfs::open_dir_in_root(root, rel(&cur)).at(cur.clone())?;
                match sysfs::mkdir_at(parent.as_fd(), seg.as_bytes(), 0o755) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(IoError::new(next, e).into()),
                }
                let created = sysfs::open_dir_at(parent.as_fd(), seg.as_bytes()).at(next.clone())?;
                // mkdir's mode is filtered by the umask; set it exactly.
                sysfs::fchmod(created.as_fd(), 0o755).at(next.clone())?;
                if let Some((uid, gid)) = owner {
                    sysfs::fchown(created.as_fd(), uid, gid).at(next.clone())?;
                }
                created
            }
            Err(e) if Errno::from_io_error(&e) == Some(Errno::NOTDIR) => {
                return Err(BuildError::Context(format!("{next}: not a directory in the image")));
            }
            Err(e) => return Err(IoError::new(next, e).into()),
        };
        cur = next;
    }
    Ok(fd)
}

/// Lays the tar `write` produces (on another thread) into directory `dir`.
pub fn apply_tar(
    dir: BorrowedFd<'_>,
    write: impl FnOnce(std::fs::File) -> Result<(), BuildError> + Send + 'static,
) -> Result<(), BuildError> {
    let (r, w) = pipe_with(PipeFlags::CLOEXEC).at("pipe")?;
    let writer = std::thread::spawn(move || write(std::fs::File::from(w)));
    let target = sysfs::fd_path(dir);
    let applied = crate::image::apply::apply_layer(std::fs::File::from(r), &target, Whiteouts::Delete);
    let written = writer.join().map_err(|_| BuildError::Invalid("copy stream writer panicked".into()))?;
    written?;
    applied.map_err(|e| BuildError::Context(e.to_string()))?;
    Ok(())
}

/// Reads `/etc/passwd`-style `file` inside `root` for `name`'s numeric
/// fields (`field` 2 = uid, 3 = gid).
fn lookup(root: BorrowedFd<'_>, file: &str, name: &str) -> Option<(u32, Option<u32>)> {
    let fd = sysfs::open_file_in_root(root, file).ok()?;
    let mut text = String::new();
    std::fs::File::from(fd).read_to_string(&mut text).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name) && f.len() > 3)
            .then(|| (f[2].parse().ok(), f[3].parse().ok()))
            .and_then(|(a, b)| Some((a?, b)))
    })
}

/// Resolves `--chown=user[:group]` against the image's passwd and group
/// files; numbers are taken as they are. A user without a group gets the
/// user's primary group (or the same number).
pub fn owner(root: BorrowedFd<'_>, spec: &str) -> Result<(u32, u32), BuildError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => match lookup(root, "etc/passwd", user) {
            Some((uid, gid)) => (uid, gid.unwrap_or(uid)),
            None => {
                return Err(BuildError::Context(format!("--chown={spec}: no user {user:?} in the image's /etc/passwd")))
            }
        },
    };
    let gid = match group {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(root, "etc/group", g).map(|(gid, _)| gid).ok_or_else(|| {
                BuildError::Context(format!("--chown={spec}: no group {g:?} in the image's /etc/group"))
            })?,
        },
    };
    Ok((uid, gid))
}

/// How a `RUN` step runs.
pub struct RunSpec<'a> {
    pub image: &'a ImageId,
    pub parent: Option<ChainId>,
    pub args: Vec<String>,
    /// Build args as `K=V` (the image's `Env` applies on its own).
    pub env: Vec<String>,
    pub network: String,
    pub quiet: bool,
}

/// Runs a `RUN` step; returns its layer.
pub fn run(engine: &Engine, spec: RunSpec<'_>, out: &mut dyn Write) -> Result<Layer, BuildError> {
    let opts = CreateOptions {
        image: spec.image.to_string(),
        cmd: spec.args.clone(),
        entrypoint: Some(String::new()),
        env: spec.env.clone(),
        network: Some(spec.network.clone()),
        skip_image_volumes: true,
        // Read back from the page cache and removed right after: its
        // writes never need the disk (see ops::container::volatile).
        volatile: Some(engine.snapshots.driver_name() == "overlay"),
        ..CreateOptions::default()
    };
    let id = lifecycle::create(engine, &opts).map_err(|e| BuildError::Invalid(e.to_string()))?;
    let result = (|| {
        if !spec.quiet {
            writeln!(out, " ---> Running in {}", id.short()).at("stdout")?;
        }
        out.flush().at("stdout")?;
        let code = supervised(engine, &id, spec.quiet)?;
        if code != 0 {
            return Err(BuildError::RunFailed { command: spec.args.join(" "), code });
        }
        let key = SnapshotKey::new(id.as_str())?;
        // The same diff `commit` stores; registered from the stored blob
        // without writing it again.
        let (diff_id, digest) = crate::ops::container::fs::diff_to_blob(engine, &key)
            .map_err(|e| BuildError::Invalid(format!("diff of the RUN container: {e}")))?;
        let blob = engine.content.open(&digest).map_err(crate::image::images::ImageError::from)?;
        let layers = engine.layers();
        let lock = layers.lock_chain(&crate::digest::ChainId::new(spec.parent.as_ref(), &diff_id))?;
        let (layer, _) = layers.register_locked(&lock, spec.parent.as_ref(), &diff_id, &digest, blob)?;
        Ok(layer)
    })();
    let removed = lifecycle::remove(engine, &id, true, true);
    if !spec.quiet && result.is_ok() {
        writeln!(out, "Removing intermediate container {}", id.short()).at("stdout")?;
    }
    let layer = result?;
    removed.map_err(|e| BuildError::Invalid(format!("removing intermediate container {}: {e}", id.short())))?;
    Ok(layer)
}

/// Supervises the container in a child process, as `run` would in the
/// foreground: the supervisor blocks signals and keeps a forwarding
/// thread for its whole life, which must not outlive the step in the
/// builder (later steps fork again and need a single-threaded process).
/// Returns the container's exit code. `quiet` sends its output to
/// /dev/null (`build -q`).
fn supervised(engine: &Engine, id: &crate::container::ContainerId, quiet: bool) -> Result<i32, BuildError> {
    // The supervisor keeps stdio and what the engine keeps open: not the
    // builder's leases, locks or context files.
    let pid = fork_child(&engine.snapshots.descriptors(), None, |_| {
        if quiet {
            if let Ok(null) = crate::runtime::dev_null() {
                let _ = dup2_stdout(&null);
                let _ = dup2_stderr(&null);
            }
        }
        supervise::supervise(engine, id, Mode::Attached, None)
    })
    .map_err(|e| BuildError::Invalid(format!("fork the RUN supervisor: {e}")))?;
    crate::runtime::wait(pid).map_err(|e| BuildError::Invalid(format!("wait for the RUN supervisor: {e}")))
}
