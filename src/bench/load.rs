//! `bench load`: a local 5-layer image (the pull suite's, as an OCI
//! archive) loaded into an empty store until its files are on disk —
//! `strata load` on overlay with every layer extracted at once, the same
//! with the layers in order (`STRATA_LAYER_ORDER=ordered`, the baseline
//! that always runs), `podman load`, `skopeo copy` + `umoci unpack`,
//! `docker load` and `ctr images import` where they are installed and
//! their daemons already run (the suite starts none: it records why a
//! peer is left out instead).
//!
//! Every store lives on one scratch ext4 (journaled) filesystem; each
//! round starts from empty stores and ends with `syncfs(2)` for every
//! tool alike.

use super::dataset::io_err;
use super::harness::{time, Case, Measurement, Skip, Suite, Unit};
use super::pull::{build_layout, layer_bytes, LAYERS};
use super::run::{pipeline, syncfs};
use super::start::os;
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

/// Whether a daemon answers (`docker info`, `ctr version`).
fn answers(argv: &[&str]) -> bool {
    std::process::Command::new(argv[0])
        .args(&argv[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
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
    for (name, probe, why) in [
        ("docker load", ["docker", "info"], "dockerd is not running (the suite starts no daemon)"),
        ("ctr images import", ["ctr", "version"], "containerd is not running (the suite starts no daemon)"),
    ] {
        let reason = if !super::env::have_tool(probe[0]) {
            format!("{} is not installed", probe[0])
        } else if !answers(&probe) {
            why.to_owned()
        } else {
            // Their stores live on the host's root, not the scratch
            // filesystem: not comparable here.
            "its daemon keeps its store on the host's root filesystem, not the scratch one".to_owned()
        };
        case.skipped.push(Skip { what: name.into(), reason });
    }
    case.measurements = tools.iter().map(|t| Measurement::new(t.name, &t.command, Unit::Seconds)).collect();
    let clear = || {
        // containers/storage makes its overlay home a private bind mount.
        let _ = crate::mount::unmount_all(&podman.join("root/overlay"));
        for p in [root.as_path(), podman.as_path(), oci.as_path(), bundle.as_path(), Path::new(PODMAN_RUNROOT)] {
            let _ = std::fs::remove_dir_all(p);
        }
    };
    for round in 0..=opts.runs {
        for i in rotation(tools.len(), round) {
            clear();
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
    clear();
    std::fs::remove_file(&archive).map_err(io_err("remove", &archive))?;
    for t in &tools[1..] {
        case.add_ratio("strata", t.name);
    }
    suite.cases.push(case);
    Ok(suite)
}
