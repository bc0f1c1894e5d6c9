//! `bench load`: a local 5-layer image (the pull suite's, as an OCI
//! archive) loaded into an empty store until its files are on disk —
//! `strata load` on overlay with every layer extracted at once, the same
//! with the layers in order (`STRATA_LAYER_ORDER=ordered`, the baseline
//! that always runs), `podman load`, `skopeo copy` + `umoci unpack`, and
//! `docker load` and `ctr images import` against daemons of the suite's
//! own: a private `dockerd` (overlay2) and a private containerd (its
//! overlayfs snapshotter, in a mount namespace of its own), both with
//! their state on the scratch filesystem and their sockets under a
//! temporary directory, stopped when the suite ends. A daemon that cannot
//! start leaves its row out with the reason.
//!
//! Every store lives on one scratch ext4 (journaled) filesystem; each
//! round starts from empty stores and ends with `syncfs(2)` for every
//! tool alike.

use super::containerd::daemon::{Containerd, RunDir};
use super::dataset::io_err;
use super::harness::{time, Case, Measurement, Skip, Suite, Unit};
use super::pull::{build_layout, layer_bytes, LAYERS};
use super::run::{pipeline, syncfs};
use super::start::{os, PrivateDockerd};
use super::{rotation, BenchError, Options};
use std::ffi::OsString;
use std::path::Path;

/// podman's run state during a round.
const PODMAN_RUNROOT: &str = "/run/strata-bench-podman";

/// One way of loading the archive: its label, command line for the table
/// and the stages to run.
struct Tool {
    name: &'static str,
    command: String,
    stages: Vec<Vec<Vec<OsString>>>,
}

fn arg(p: &Path) -> OsString {
    p.as_os_str().to_owned()
}

/// A dockerd of the suite's own with its data root on `scratch`, or why
/// there is none.
fn private_dockerd(scratch: &Path) -> Result<PrivateDockerd, String> {
    for tool in ["docker", "dockerd"] {
        if !super::env::have_tool(tool) {
            return Err(format!("{tool} is not installed (apt-get install docker.io)"));
        }
    }
    PrivateDockerd::start(scratch).map_err(|e| format!("a private dockerd did not start: {e}"))
}

/// A containerd of the suite's own (root and state on `scratch`, sockets
/// under a short temporary directory, which is removed after it stops),
/// or why there is none.
fn private_containerd(scratch: &Path) -> Result<(Containerd, RunDir), String> {
    for tool in ["containerd", "ctr", "unshare"] {
        if !super::env::have_tool(tool) {
            return Err(format!("{tool} is not installed (apt-get install containerd)"));
        }
    }
    let run = RunDir::new().map_err(|e| e.to_string())?;
    let cd = Containerd::start(run.path(), &scratch.join("containerd"), &[])
        .map_err(|e| format!("a private containerd did not start: {e}"))?;
    Ok((cd, run))
}

/// The same archive with a `manifest.json` beside the OCI layout (what
/// `docker save` writes): dockerd's image store (overlay2) reads only
/// that, not `index.json`. The blobs are the same files.
fn docker_archive_of(layout: &Path, extra: &Path, out: &Path) -> Result<(), BenchError> {
    let read = |p: &Path| -> Result<serde_json::Value, BenchError> {
        let bytes = std::fs::read(p).map_err(io_err("read", p))?;
        serde_json::from_slice(&bytes).map_err(|e| BenchError::Unavailable {
            what: "docker load".into(),
            reason: format!("{}: {e}", p.display()),
        })
    };
    let blob = |digest: &serde_json::Value| format!("blobs/{}", digest.as_str().unwrap_or("").replacen(':', "/", 1));
    let index = read(&layout.join("index.json"))?;
    let manifest = read(&layout.join(blob(&index["manifests"][0]["digest"])))?;
    let layers: Vec<String> =
        manifest["layers"].as_array().map(|a| a.iter().map(|l| blob(&l["digest"])).collect()).unwrap_or_default();
    let docker = serde_json::json!([{
        "Config": blob(&manifest["config"]["digest"]),
        "RepoTags": ["strata-bench/load:latest"],
        "Layers": layers,
    }]);
    std::fs::create_dir_all(extra).map_err(io_err("create", extra))?;
    let path = extra.join("manifest.json");
    std::fs::write(&path, docker.to_string()).map_err(io_err("write", &path))?;
    let mut tar = os(&["tar", "-cf"]);
    tar.extend([arg(out), "-C".into(), arg(layout), ".".into(), "-C".into(), arg(extra), "manifest.json".into()]);
    pipeline(&[tar]).map(|_| ())
}

/// Runs the load suite.
pub fn run(opts: &Options) -> Result<Suite, BenchError> {
    let strata = super::start::require_strata()?;
    let mut suite = Suite::new(
        "load",
        format!(
            "wall time from an empty store to a {LAYERS}-layer image's files on disk, from a local OCI archive; \
             scratch ext4 (journaled); {}; lower is better",
            opts.sync_policy()
        ),
    );
    let fs = super::pull::image_scratch(opts)?;
    let work = fs.path().to_owned();
    opts.progress("load: building the image");
    let layout = work.join("layout");
    let (compressed, files) = build_layout(&layout, opts.scale)?;
    let archive = work.join("image.tar");
    pipeline(&[[os(&["tar", "-cf"]), vec![arg(&archive), "-C".into(), arg(&layout), ".".into()]].concat()])?;

    let mut case = Case::new(format!("{LAYERS} layers, {} MiB", (layer_bytes(opts.scale) * LAYERS as u64) >> 20));
    case.fact("layers", format!("{LAYERS} x gzip (fast), {files} files"));
    case.fact("compressed", format!("{compressed} bytes"));
    let (root, podman, oci, bundle) = (work.join("strata"), work.join("podman"), work.join("oci"), work.join("bundle"));
    let strata_load = |ordered: bool| {
        let mut v = if ordered { os(&["env", "STRATA_LAYER_ORDER=ordered"]) } else { Vec::new() };
        v.extend([arg(&strata), "--root".into(), arg(&root), "--storage-driver".into(), "overlay".into()]);
        v.extend([OsString::from("load"), "-i".into(), arg(&archive)]);
        v
    };
    let mut tools = vec![
        Tool {
            name: "strata",
            command: "strata load (overlay, layers at once)".into(),
            stages: vec![vec![strata_load(false)]],
        },
        Tool {
            name: "strata-ordered",
            command: "STRATA_LAYER_ORDER=ordered strata load (overlay)".into(),
            stages: vec![vec![strata_load(true)]],
        },
    ];
    if super::env::have_tool("podman") {
        let mut v = os(&["podman", "--root"]);
        // podman refuses a runroot over 50 characters: its run state
        // (not its store) goes to a short path on /run.
        v.extend([arg(&podman.join("root")), "--runroot".into(), arg(Path::new(PODMAN_RUNROOT))]);
        v.extend(os(&["--storage-driver", "overlay", "load", "-q", "-i"]));
        v.push(arg(&archive));
        tools.push(Tool {
            name: "podman",
            command: "podman --storage-driver overlay load -i ARCHIVE".into(),
            stages: vec![vec![v]],
        });
    } else {
        case.skipped.push(Skip { what: "podman".into(), reason: "podman is not installed".into() });
    }
    if super::env::have_tool("skopeo") && super::env::have_tool("umoci") {
        let mut copy = os(&["skopeo", "copy", "-q"]);
        copy.push(format!("oci-archive:{}", archive.display()).into());
        copy.push(format!("oci:{}:img", oci.display()).into());
        let mut unpack = os(&["umoci", "unpack", "--image"]);
        unpack.push(format!("{}:img", oci.display()).into());
        unpack.push(arg(&bundle));
        tools.push(Tool {
            name: "skopeo+umoci",
            command: "skopeo copy oci-archive:ARCHIVE oci:DIR:img && umoci unpack --image DIR:img BUNDLE".into(),
            stages: vec![vec![copy], vec![unpack]],
        });
    } else {
        case.skipped.push(Skip { what: "skopeo+umoci".into(), reason: "skopeo or umoci is not installed".into() });
    }
    // containerd first: its mount namespace copies the host's mounts as
    // they are when it starts (the scratch filesystem, none of dockerd's).
    let containerd = match private_containerd(&work) {
        Ok(c) => Some(c),
        Err(reason) => {
            case.skipped.push(Skip { what: "ctr images import".into(), reason });
            None
        }
    };
    if let Some((cd, _)) = &containerd {
        let mut v = cd.ctr(&["images", "import", "--digests"]);
        v.push(arg(&archive));
        tools.push(Tool {
            name: "ctr",
            command: "ctr -n NS images import --digests ARCHIVE (private containerd, overlayfs snapshotter)".into(),
            stages: vec![vec![v]],
        });
    }
    let dockerd = match private_dockerd(&work) {
        Ok(d) => Some(d),
        Err(reason) => {
            case.skipped.push(Skip { what: "docker load".into(), reason });
            None
        }
    };
    let docker_archive = work.join("image-docker.tar");
    if let Some(d) = &dockerd {
        docker_archive_of(&layout, &work.join("docker-extra"), &docker_archive)?;
        let mut v = os(&["docker", "-H", &d.host, "load", "-q", "-i"]);
        v.push(arg(&docker_archive));
        tools.push(Tool {
            name: "docker",
            command: "docker load -i ARCHIVE+manifest.json (private dockerd, overlay2)".into(),
            stages: vec![vec![v]],
        });
    }
    case.measurements = tools.iter().map(|t| Measurement::new(t.name, &t.command, Unit::Seconds)).collect();
    let clear = || -> Result<(), BenchError> {
        // containers/storage makes its overlay home a private bind mount.
        let _ = crate::mount::unmount_all(&podman.join("root/overlay"));
        for p in [root.as_path(), podman.as_path(), oci.as_path(), bundle.as_path(), Path::new(PODMAN_RUNROOT)] {
            let _ = std::fs::remove_dir_all(p);
        }
        if let Some(d) = &dockerd {
            pipeline(&[os(&["docker", "-H", &d.host, "image", "prune", "-a", "-f"])])?;
        }
        if let Some((cd, _)) = &containerd {
            let names = cd.run(&["images", "ls", "-q"])?;
            for name in names.lines().filter(|l| !l.trim().is_empty()) {
                cd.run(&["images", "rm", "--sync", name.trim()])?;
            }
        }
        Ok(())
    };
    for round in 0..=opts.runs {
        for i in rotation(tools.len(), round) {
            clear()?;
            syncfs(&work)?;
            let (res, secs) = time(|| -> Result<(), BenchError> {
                for stage in &tools[i].stages {
                    pipeline(stage)?;
                }
                if opts.sync {
                    syncfs(&work)?;
                }
                Ok(())
            });
            res?;
            opts.progress(&format!("load round {round}/{}: {} {secs:.3} s", opts.runs, tools[i].name));
            if round > 0 {
                case.measurements[i].push(secs);
            }
        }
    }
    clear()?;
    drop(dockerd);
    drop(containerd);
    std::fs::remove_file(&archive).map_err(io_err("remove", &archive))?;
    let _ = std::fs::remove_file(&docker_archive);
    for t in &tools[1..] {
        case.add_ratio("strata", t.name);
    }
    suite.cases.push(case);
    Ok(suite)
}
