//! The container's filesystem view for an OCI spec, built by the
//! container's init inside its new mount namespace:
//!
//! ```text
//! prepare   "/" made rslave (or linux.rootfsPropagation)
//!           the storage driver's mounts at the root (strata's own containers)
//!           the root bound onto itself (pivot_root needs a mount point)
//!           every `mounts` entry in order              mounts.rs, options.rs
//!           /dev nodes and symlinks, the console        devices.rs
//!           before_pivot()  (createContainer hooks)
//!           pivot_root, old root detached; or MS_MOVE + chroot   pivot.rs
//! (caller)  apply_sysctl, bind_console if the pty is made after the pivot
//! finalize  read-only tmpfs and /dev, read-only root,
//!           linux.readonlyPaths, linux.maskedPaths      paths.rs
//! ```
//!
//! `apply_sysctl` goes between the two: runc writes `linux.sysctl` before
//! `/proc/sys` is made read-only.
//!
//! Every target inside the root is resolved with `openat2(…,
//! RESOLVE_IN_ROOT)` and mounted through its `/proc/self/fd/N` path, so an
//! image's symlinks (`/etc/hosts -> /tmp/x`, `/proc -> /`) can never
//! redirect a mount onto the host — the class of bug behind runc's
//! CVE-2019-19921 and CVE-2021-30465. The order and the rules (which
//! options mean what, what may cover `/proc`, when `/dev` is populated)
//! are runc 1.1's, so a bundle behaves as it does under runc.
//! strata's own containers come here too, as a spec plus the storage
//! driver's mounts ([`RootfsPlan::driver_mounts`]).

mod devices;
pub mod mountinfo;
mod mounts;
pub mod options;
mod paths;
mod pivot;
#[cfg(test)]
mod tests;

pub use devices::{bind_console, device_nodes, DeviceNode};
pub use paths::apply_sysctl;

use crate::runtime::spec::{NamespaceType, Spec};
use crate::sys::fs::open_dir;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// A step of the setup that failed, with what it was working on.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A step on one path (the root, `/dev`, a masked path).
    #[error("{step} {path}: {source}")]
    Path { step: &'static str, path: String, source: io::Error },
    /// One `mounts` entry.
    #[error("mounts[{index}] ({destination}): {step}: {source}")]
    Mount { index: usize, destination: String, step: String, source: io::Error },
    /// A `mounts` entry refused, as runc refuses it.
    #[error("mounts[{index}] ({destination}): {reason}")]
    Refused { index: usize, destination: String, reason: String },
    /// One `linux.devices` entry.
    #[error("linux.devices[{index}] ({path}): {step}: {source}")]
    Device { index: usize, path: String, step: &'static str, source: io::Error },
    /// One `linux.sysctl` entry.
    #[error("sysctl {key}: {reason}")]
    Sysctl { key: String, reason: String },
    /// The caller's `before_pivot` step.
    #[error("before pivot_root: {0}")]
    BeforePivot(Box<dyn std::error::Error + Send + Sync>),
}

/// What [`prepare`] builds.
pub struct RootfsPlan<'a> {
    pub spec: &'a Spec,
    /// `root.path` resolved against the bundle: the host directory that
    /// becomes `/`.
    pub rootfs: PathBuf,
    /// The bundle directory: a bind mount's relative source is relative to
    /// it (runc resolves it against its working directory, the bundle).
    pub bundle: PathBuf,
    /// strata's own containers: the storage driver's mounts to mount at
    /// `rootfs` first, inside the new mount namespace; empty for OCI
    /// bundles (already mounted by the caller).
    pub driver_mounts: &'a [crate::mount::Mount],
    /// The same mounts made by the caller, detached: attached at `rootfs`
    /// instead of mounting `driver_mounts` when not empty.
    pub detached: &'a [crate::mount::Detached],
    /// `MS_MOVE` + `chroot` instead of `pivot_root` (runc's `--no-pivot`).
    pub no_pivot: bool,
    /// The container's pty slave to bind at `/dev/console` before the
    /// pivot; `None` to skip (or bind later with [`bind_console`]).
    pub console: Option<PathBuf>,
}

fn path_err(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RootfsError {
    let path = path.display().to_string();
    move |source| RootfsError::Path { step, path, source }
}

/// Builds the root in this (new) mount namespace and makes it the
/// process's root. `before_pivot` runs just before the switch, with the
/// working directory at the root (runc runs the createContainer hooks
/// there).
pub fn prepare(
    plan: &RootfsPlan<'_>,
    before_pivot: &mut dyn FnMut() -> Result<(), RootfsError>,
) -> Result<(), RootfsError> {
    let spec = plan.spec;
    let linux = spec.linux.as_ref();
    pivot::propagate_root(linux.and_then(|l| l.rootfs_propagation))?;
    if !plan.detached.is_empty() {
        for m in plan.detached {
            m.attach(&plan.rootfs).map_err(path_err("mount rootfs", &plan.rootfs))?;
        }
    } else if !plan.driver_mounts.is_empty() {
        crate::mount::mount_all(plan.driver_mounts, &plan.rootfs).map_err(path_err("mount rootfs", &plan.rootfs))?;
    }
    let rootfs = std::fs::canonicalize(&plan.rootfs).map_err(path_err("resolve", &plan.rootfs))?;
    pivot::bind_root(&rootfs)?;
    // Opened after the bind, so it names the new mount.
    let root = open_dir(&rootfs).map_err(path_err("open", &rootfs))?;
    let ctx = mounts::Ctx {
        root: root.as_fd(),
        root_path: &rootfs,
        bundle: &plan.bundle,
        cgroupns: linux.is_some_and(|l| l.namespace(NamespaceType::Cgroup).is_some()),
    };
    for (index, m) in spec.mounts.iter().enumerate() {
        mounts::mount_entry(&ctx, m).map_err(|f| {
            let destination = m.destination.clone();
            match f {
                mounts::Failure::Io { step, source } => RootfsError::Mount { index, destination, step, source },
                mounts::Failure::Refused(reason) => RootfsError::Refused { index, destination, reason },
            }
        })?;
    }
    devices::setup_dev(root.as_fd(), spec)?;
    if let Some(slave) = &plan.console {
        devices::bind_console_at(root.as_fd(), slave)?;
    }
    drop(root);
    std::env::set_current_dir(&rootfs).map_err(path_err("chdir", &rootfs))?;
    before_pivot()?;
    if plan.no_pivot {
        pivot::move_root(&rootfs)
    } else {
        pivot::pivot(&rootfs)
    }
}

/// After the pivot: tmpfs mounts (and `/dev`) the spec wants read-only are
/// remounted so, then the root (`root.readonly`), then
/// `linux.readonlyPaths` and `linux.maskedPaths` — in runc's order. A
/// read-only or masked path that does not exist is skipped; any other
/// failure is an error naming the path.
pub fn finalize(spec: &Spec) -> Result<(), RootfsError> {
    let root = open_dir(Path::new("/")).map_err(path_err("open", Path::new("/")))?;
    for m in &spec.mounts {
        let o = options::parse(&m.options);
        let dest = paths::clean(&m.destination_path());
        if o.readonly() && ((m.kind == "tmpfs" && !o.is_bind()) || dest == "/dev") {
            paths::remount_readonly(root.as_fd(), &dest).map_err(|source| RootfsError::Path {
                step: "remount read-only",
                path: dest.clone(),
                source,
            })?;
        }
    }
    if spec.root.as_ref().is_some_and(|r| r.readonly) {
        paths::remount_readonly(root.as_fd(), "/").map_err(path_err("remount read-only", Path::new("/")))?;
    }
    if let Some(linux) = &spec.linux {
        paths::readonly_paths(&linux.readonly_paths)?;
        paths::mask_paths(&linux.masked_paths)?;
    }
    Ok(())
}
