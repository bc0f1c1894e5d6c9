//! `bench containerd`: strata's drivers serving containerd as a proxy
//! snapshotter (`strata snapshotter serve`), against containerd's own
//! snapshotters, with the same containerd, registry and filesystems in one
//! run:
//!
//! | case | strata | peers |
//! |---|---|---|
//! | pull | `ctr images pull --snapshotter strata` (overlay driver on XFS) | `--snapshotter overlayfs`, `--snapshotter native` (root on the same XFS); `strata pull` of the same image |
//! | start | `ctr run --rm --snapshotter strata busybox /bin/true` | `--snapshotter overlayfs` |
//! | usage | `ctr snapshots usage` of N containers' writable snapshots, strata's btrfs (extent search) and copy (FIEMAP, XFS) drivers | containerd's overlayfs (walks each upper dir); strata's overlay driver (a walk too) |
//!
//! containerd's applier writes the layers in every pull case (through the
//! proxy, strata only provides the snapshots and their mounts), so the
//! target there is that strata's service costs nothing measurable; for
//! `Usage` the target is 10x faster than overlayfs's walk.
//!
//! Everything runs on scratch loop filesystems and a containerd of the
//! bench's own ([`daemon`]), torn down in reverse order of creation even
//! when a case fails: containerd (and its mount namespace), the services,
//! the registry, then the filesystems.

pub(super) mod daemon;
mod pull;
mod usage;

use super::harness::Suite;
use super::run::pipeline;
use super::start::os;
use super::{scratch, BenchError, Options, Scale};
use crate::scratch::FsKind;
use daemon::{Containerd, RunDir, Service};
use std::path::{Path, PathBuf};

/// The first tool the suite needs that is not installed.
pub(super) fn missing_tool() -> Option<&'static str> {
    ["containerd", "ctr", "containerd-shim-runc-v2", "runc", "unshare", "docker-registry", "skopeo"]
        .into_iter()
        .find(|t| !super::env::have_tool(t))
}

/// What every case works with.
struct Setup<'a> {
    opts: &'a Options,
    cd: &'a Containerd,
    /// The XFS scratch filesystem: containerd's root, strata's overlay and
    /// copy roots, the registry and `strata pull`'s root.
    work: &'a Path,
    /// The btrfs scratch filesystem, if this host can make one.
    btrfs: Option<&'a Path>,
    strata: &'a Path,
    /// Where `ctr run` makes its stdio FIFOs: a directory both ctr (in the
    /// host's mount namespace) and the shim (in containerd's, whose `/run`
    /// is its own) see.
    fifo_dir: PathBuf,
    /// The 5-layer image and the busybox image, in the loopback registry.
    image: String,
    busybox: String,
}

/// Runs the containerd suite.
pub fn run(opts: &Options) -> Result<Suite, BenchError> {
    super::start::require_tools("containerd", missing_tool())?;
    let strata = super::start::require_strata()?;
    let mut suite = Suite::new(
        "containerd",
        format!(
            "containerd 1.6 (Debian's, its own root on the scratch fs, CRI off) with strata as \
             [proxy_plugins.strata]; wall time of whole ctr/strata commands; {}; lower is better. \
             Targets: pull through strata's service within noise of overlayfs (ratio ~1.00); \
             Usage 10x faster than overlayfs's walk (ratio <= 0.10)",
            opts.sync_policy()
        ),
    );
    let (xfs_size, btrfs_size) = match opts.scale {
        Scale::Full => (10 << 30, 2 << 30),
        Scale::Quick => (3 << 30, 1 << 30),
        Scale::Tiny => (1 << 30, 1 << 30),
    };
    // Declared in teardown order, last first: the filesystems outlive
    // everything that uses them.
    let xfs = scratch(opts, FsKind::Xfs, xfs_size)?;
    let btrfs = match scratch(opts, FsKind::Btrfs, btrfs_size) {
        Ok(fs) => Some(fs),
        Err(e) => {
            suite.skip("strata-btrfs", e.to_string());
            None
        }
    };
    let work = xfs.path().to_owned();
    opts.progress("containerd: building the images");
    super::pull::build_layout(&work.join("layout"), opts.scale)?;
    let (_registry, host) = super::pull::start_registry(&work)?;
    let image = format!("{host}/bench/containerd:1");
    let mut push = os(&["skopeo", "copy", "--dest-tls-verify=false"]);
    push.push(format!("oci:{}", work.join("layout").display()).into());
    push.push(format!("docker://{image}").into());
    pipeline(&[push])?;
    let busybox = format!("{host}/bench/busybox:1");
    push_busybox(&strata, &work, &busybox)?;

    let run_dir = RunDir::new()?;
    let services_root = work.join("services");
    let overlay = Service::start(&strata, &services_root.join("overlay"), "overlay", run_dir.path())?;
    let copy = Service::start(&strata, &services_root.join("copy"), "copy", run_dir.path())?;
    let btrfs_service = match &btrfs {
        Some(fs) => Some(Service::start(&strata, &fs.path().join("strata"), "btrfs", run_dir.path())?),
        None => None,
    };
    let mut proxies = vec![("strata", overlay.socket.as_path()), ("strata-copy", copy.socket.as_path())];
    if let Some(s) = &btrfs_service {
        proxies.push(("strata-btrfs", s.socket.as_path()));
    }
    let cd = Containerd::start(run_dir.path(), &work.join("containerd"), &proxies)?;
    let setup = Setup {
        opts,
        cd: &cd,
        work: &work,
        btrfs: btrfs.as_ref().map(|fs| fs.path()),
        strata: &strata,
        fifo_dir: run_dir.path().join("fifo"),
        image,
        busybox,
    };
    suite.cases.push(pull::pull_case(&setup)?);
    suite.cases.push(pull::start_case(&setup)?);
    suite.cases.push(usage::usage_case(&setup)?);
    Ok(suite)
}

/// A busybox-static image (one layer), imported into a throw-away strata
/// root and pushed to the registry as `reference`.
fn push_busybox(strata: &Path, work: &Path, reference: &str) -> Result<(), BenchError> {
    let dir = work.join("busybox");
    std::fs::create_dir_all(&dir).map_err(super::dataset::io_err("create", &dir))?;
    let tar = super::start::rootfs(&dir)?;
    let root = dir.join("strata-root");
    let strata_cmd = |args: &[&str]| {
        let mut v = vec![strata.as_os_str().to_owned(), "--root".into(), root.clone().into_os_string()];
        v.extend(os(args));
        v
    };
    let mut import = strata_cmd(&["import"]);
    import.push(tar.into());
    import.push(reference.into());
    pipeline(&[import])?;
    pipeline(&[strata_cmd(&["push", "-q", reference])])?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `fs` fact of a case: the filesystem `path` is on, with its options.
fn fs_fact(path: &Path) -> String {
    super::env::mount_of(path).map(|m| m.describe()).unwrap_or_else(|| "unknown".into())
}
