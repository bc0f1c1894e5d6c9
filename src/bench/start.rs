//! `bench start`: container start-up latency — the whole `strata run --rm
//! busybox true` command (mounting the image's layers, writing the
//! container's state, namespaces, exec, exit, cleanup) against `crun run`
//! and `runc run` of a bare OCI bundle on the same root filesystem,
//! `podman run --rm` and `docker run --rm` where they work — and `ps -s`
//! over 100 containers against a plain `du` walk of their filesystems.
//!
//! Facts of this host that the peers need (measured, not guessed):
//! crun 1.8 refuses the hybrid cgroup layout (`cgroups in hybrid mode not
//! supported`), so it runs inside `unshare -m` with
//! `/sys/fs/cgroup/unified` unmounted in that namespace only (that wrapper
//! is timed alone as the row `wrapper`, and `strata / crun − wrapper` is
//! the ratio against crun as if it ran bare); podman needs
//! `--ulimit nofile=… --ulimit nproc=…` and `--cgroup-manager cgroupfs`
//! because root here lacks CAP_SYS_RESOURCE. strata needs neither: it only
//! ever lowers rlimits.

use super::harness::{time, Case, Measurement, Skip, Suite, Unit};
use super::run::pipeline;
use super::{rotation, scratch, BenchError, Options, Scale};
use crate::scratch::FsKind;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The `strata` executable to time: this one when running as `strata
/// bench`, else `strata` beside the `cargo bench` binary's directory.
pub(super) fn strata_binary() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    if me.file_name().is_some_and(|n| n == "strata") {
        return Some(me);
    }
    let sibling = me.parent()?.parent()?.join("strata");
    sibling.is_file().then_some(sibling)
}

/// [`strata_binary`], or why a suite that runs it cannot run.
pub(super) fn require_strata() -> Result<PathBuf, BenchError> {
    strata_binary().ok_or_else(|| BenchError::Unavailable {
        what: "strata".into(),
        reason: "no strata binary beside the benchmark (cargo build --release first)".into(),
    })
}

/// `Ok` when every tool a suite needs is installed (`missing` is the first
/// that is not), else why suite `what` cannot run.
pub(super) fn require_tools(what: &str, missing: Option<&str>) -> Result<(), BenchError> {
    match missing {
        None => Ok(()),
        Some(tool) => Err(BenchError::Unavailable {
            what: what.into(),
            reason: format!("{tool} is not installed (tools/deps installs it)"),
        }),
    }
}

/// The `strata-runc` executable beside the `strata` one.
fn strata_runc_binary() -> Option<PathBuf> {
    let p = strata_binary()?.with_file_name("strata-runc");
    p.is_file().then_some(p)
}

/// A busybox-static root filesystem at `dir/rootfs` and as `dir/rootfs.tar`.
pub(super) fn rootfs(dir: &Path) -> Result<PathBuf, BenchError> {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BenchError {
        let path = path.to_owned();
        move |source| BenchError::Io { what, path, source }
    }
    let bb =
        ["/bin/busybox", "/usr/bin/busybox"].into_iter().map(Path::new).find(|p| p.is_file()).ok_or_else(|| {
            BenchError::Unavailable { what: "busybox rootfs".into(), reason: "busybox-static is not installed".into() }
        })?;
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).map_err(io("create", &root))?;
    }
    std::fs::copy(bb, root.join("bin/busybox")).map_err(io("copy busybox", bb))?;
    for applet in ["sh", "true", "ls", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).map_err(io("symlink", &root))?;
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").map_err(io("write", &root))?;
    let tar = dir.join("rootfs.tar");
    pipeline(&[vec!["tar".into(), "-C".into(), root.clone().into(), "-cf".into(), tar.clone().into(), ".".into()]])?;
    Ok(tar)
}

/// An OCI bundle for strata-runc, crun and runc: `runc spec`'s defaults
/// (devices, masks, capabilities) plus Docker's default seccomp profile
/// resolved for those capabilities (what a default `strata run` gets),
/// running `true` without a terminal, on the same rootfs.
fn bundle(dir: &Path) -> Result<(), BenchError> {
    let spec = dir.join("config.json");
    pipeline(&[vec!["runc".into(), "spec".into(), "--bundle".into(), dir.into()]])?;
    let text =
        std::fs::read_to_string(&spec).map_err(|source| BenchError::Io { what: "read", path: spec.clone(), source })?;
    let mut v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| BenchError::Unavailable { what: "runc spec".into(), reason: e.to_string() })?;
    v["process"]["terminal"] = serde_json::json!(false);
    v["process"]["args"] = serde_json::json!(["/bin/true"]);
    let caps: Vec<String> = serde_json::from_value(v["process"]["capabilities"]["bounding"].clone())
        .map_err(|e| BenchError::Unavailable { what: "runc spec".into(), reason: e.to_string() })?;
    let unavailable = |e: crate::ops::container::seccomp::ProfileError| BenchError::Unavailable {
        what: "Docker's default seccomp profile".into(),
        reason: e.to_string(),
    };
    let kernel = crate::ops::container::seccomp::host_kernel().map_err(unavailable)?;
    let seccomp = crate::ops::container::seccomp::docker_default().to_oci(&caps, kernel).map_err(unavailable)?;
    v["linux"]["seccomp"] = serde_json::to_value(&seccomp)
        .map_err(|e| BenchError::Unavailable { what: "seccomp profile".into(), reason: e.to_string() })?;
    std::fs::write(&spec, v.to_string()).map_err(|source| BenchError::Io { what: "write", path: spec, source })
}

struct Tool {
    name: &'static str,
    command: String,
    argv: Box<dyn Fn(usize) -> Vec<OsString>>,
}

/// Arguments as `OsString`s, for the run helpers.
pub(crate) fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

/// Runs the start suite.
pub fn run(opts: &Options) -> Result<Suite, BenchError> {
    let mut suite = Suite::new(
        "start",
        "wall time of one whole command that starts a container running `true` and waits for it; lower is better",
    );
    let fs = scratch(opts, FsKind::Ext4, 2 << 30)?;
    let work = fs.path().to_owned();
    let tar = rootfs(&work)?;
    let strata = require_strata()?;
    let data_root = work.join("strata-root");
    pipeline(&[vec![
        strata.clone().into(),
        "--root".into(),
        data_root.clone().into(),
        "import".into(),
        tar.clone().into(),
        "busybox:bench".into(),
    ]])?;

    let mut case = Case::new("run --rm true");
    case.fact("rootfs", "busybox-static, 4 applets");
    case.fact(
        "bundle",
        "runc spec defaults + Docker's default seccomp profile (as OCI JSON), for strata-runc, crun and runc alike; strata run uses the same profile from its digest cache",
    );
    let mut tools: Vec<Tool> = Vec::new();
    {
        let (s, r) = (strata.clone(), data_root.clone());
        tools.push(Tool {
            name: "strata",
            command: "strata run --rm busybox true".into(),
            argv: Box::new(move |_| {
                let mut v = vec![s.clone().into_os_string(), "--root".into(), r.clone().into_os_string()];
                v.extend(os(&["run", "--rm", "busybox:bench", "true"]));
                v
            }),
        });
    }
    let bundle_ok = super::env::have_tool("runc") && bundle(&work).is_ok();
    if bundle_ok && super::env::have_tool("crun") {
        let b = work.display().to_string();
        tools.push(Tool {
            name: "crun",
            command: "crun run --bundle B (in unshare -m, cgroup2 hybrid mount hidden)".into(),
            argv: Box::new(move |i| {
                os(&["unshare", "-m", "sh", "-c", &format!("umount /sys/fs/cgroup/unified 2>/dev/null; exec crun run --bundle {b} strata-bench-crun-{}-{i}", std::process::id())])
            }),
        });
        // What the workaround alone costs (a mount namespace, a shell,
        // one umount, an exec of `true`): crun's and podman's rows pay it,
        // strata's and runc's do not. Measured interleaved with the rest.
        tools.push(Tool {
            name: "wrapper",
            command: "unshare -m sh -c 'umount /sys/fs/cgroup/unified; exec true' (crun's and podman's wrapper alone)"
                .into(),
            argv: Box::new(|_| {
                os(&["unshare", "-m", "sh", "-c", "umount /sys/fs/cgroup/unified 2>/dev/null; exec true"])
            }),
        });
    } else {
        case.skipped
            .push(Skip { what: "crun".into(), reason: "crun or runc (for the bundle's spec) is not installed".into() });
    }
    match (bundle_ok, strata_runc_binary()) {
        (true, Some(sr)) => {
            let b = work.display().to_string();
            tools.push(Tool {
                name: "strata-runc",
                command: "strata-runc run --bundle B".into(),
                argv: Box::new(move |i| {
                    let mut v = vec![sr.clone().into_os_string()];
                    v.extend(os(&["run", "--bundle", &b, &format!("strata-bench-sr-{}-{i}", std::process::id())]));
                    v
                }),
            });
        }
        (false, _) => case
            .skipped
            .push(Skip { what: "strata-runc".into(), reason: "runc (for the bundle's spec) is not installed".into() }),
        (true, None) => {
            case.skipped.push(Skip { what: "strata-runc".into(), reason: "no strata-runc binary beside strata".into() })
        }
    }
    if bundle_ok {
        let b = work.display().to_string();
        tools.push(Tool {
            name: "runc",
            command: "runc run --bundle B".into(),
            argv: Box::new(move |i| {
                os(&["runc", "run", "--bundle", &b, &format!("strata-bench-runc-{}-{i}", std::process::id())])
            }),
        });
    } else {
        case.skipped.push(Skip { what: "runc".into(), reason: "runc is not installed".into() });
    }
    // podman keeps its store on the scratch fs; its runroot must be short.
    let podman_run = PathBuf::from(format!("/tmp/spb-{}", std::process::id()));
    // Whatever happens below (a peer failing mid-run included), nothing the
    // peers or strata mounted under the scratch fs outlives the suite.
    let _cleanup = MountsUnder { dir: work.clone(), also: podman_run.clone() };
    let podman_root = work.join("podman");
    let podman_base = |extra: &[&str]| -> Vec<OsString> {
        let mut v = os(&["podman", "--root"]);
        v.push(podman_root.clone().into());
        v.push("--runroot".into());
        v.push(podman_run.clone().into());
        v.extend(os(&["--storage-driver", "overlay", "--cgroup-manager", "cgroupfs"]));
        v.extend(os(extra));
        v
    };
    let podman_ok = super::env::have_tool("podman") && {
        let mut v = podman_base(&["import"]);
        v.push(tar.clone().into());
        v.push("strata-bench-busybox".into());
        pipeline(&[v]).is_ok()
    };
    if podman_ok {
        // podman's crun refuses the hybrid layout too: same workaround.
        let inner: Vec<String> = podman_base(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=32768:32768",
            "strata-bench-busybox",
            "true",
        ])
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
        let script = format!("umount /sys/fs/cgroup/unified 2>/dev/null; exec {}", inner.join(" "));
        tools.push(Tool {
            name: "podman",
            command: "podman run --rm (crun; in unshare -m, cgroup2 hybrid mount hidden)".into(),
            argv: Box::new(move |_| os(&["unshare", "-m", "sh", "-c", &script])),
        });
    } else {
        case.skipped.push(Skip {
            what: "podman".into(),
            reason: "podman is not installed or could not import the rootfs".into(),
        });
    }
    // Docker: the host's engine if one runs, else a private dockerd of
    // our own (data on the scratch fs) when the binary is installed.
    let dockerd = match super::env::have_tool("docker") && pipeline(&[os(&["docker", "info"])]).is_err() {
        true if super::env::have_tool("dockerd") => PrivateDockerd::start(&work).ok(),
        _ => None,
    };
    let docker = |args: &[&str]| -> Vec<OsString> {
        let mut v = os(&["docker"]);
        if let Some(d) = &dockerd {
            v.extend(os(&["-H", &d.host]));
        }
        v.extend(os(args));
        v
    };
    let docker_ok = super::env::have_tool("docker") && pipeline(&[docker(&["info"])]).is_ok();
    if docker_ok && pipeline(&[docker(&["import", &tar.display().to_string(), "strata-bench-busybox"])]).is_ok() {
        let argv = docker(&["run", "--rm", "--network", "none", "strata-bench-busybox", "true"]);
        let how = if dockerd.is_some() { "docker run --rm (private dockerd, overlay2)" } else { "docker run --rm" };
        tools.push(Tool { name: "docker", command: how.into(), argv: Box::new(move |_| argv.clone()) });
    } else {
        case.skipped.push(Skip {
            what: "docker".into(),
            reason: "no Docker engine runs here and dockerd is not installed (apt-get install docker.io)".into(),
        });
    }
    case.measurements = tools.iter().map(|t| Measurement::new(t.name, &t.command, Unit::Seconds)).collect();
    let runs = match opts.scale {
        Scale::Full => opts.runs.max(20),
        Scale::Quick => opts.runs.max(10),
        Scale::Tiny => opts.runs,
    };
    let mut n = 0;
    for round in 0..=runs {
        for i in rotation(tools.len(), round) {
            n += 1;
            let argv = (tools[i].argv)(n);
            let (res, secs) = time(|| pipeline(&[argv]));
            res?;
            if round > 0 {
                case.measurements[i].push(secs);
            }
        }
        opts.progress(&format!("start: round {round}/{runs}"));
    }
    for peer in ["crun", "runc", "podman", "docker"] {
        case.add_ratio("strata", peer);
    }
    wrapper_free_ratio(&mut case, "strata", "crun");
    wrapper_free_ratio(&mut case, "strata-runc", "crun");
    // The runtimes alone, on the same bundle (seccomp, devices and all).
    for peer in ["runc", "crun"] {
        case.add_ratio("strata-runc", peer);
    }
    suite.cases.push(case);
    drop(dockerd);
    if podman_ok {
        let _ = pipeline(&[podman_base(&["system", "reset", "-f"])]);
    }
    let _ = std::fs::remove_dir_all(&podman_run);
    suite.cases.push(size_case(opts, &strata, &data_root)?);
    Ok(suite)
}

/// `numerator / (peer − wrapper)` of the medians, named
/// `"<peer> − wrapper"`: the peer's time with its `unshare -m sh` wrapper's
/// median taken off, as if it ran bare (a derived figure; both medians
/// are in the case's rows).
fn wrapper_free_ratio(case: &mut Case, numerator: &str, peer: &str) {
    let median = |tool: &str| case.measurement(tool).and_then(|m| m.summary).map(|s| s.median);
    let (Some(n), Some(p), Some(w)) = (median(numerator), median(peer), median("wrapper")) else {
        return;
    };
    if p > w {
        case.ratios.push(super::harness::Ratio {
            numerator: numerator.to_owned(),
            denominator: format!("{peer} − wrapper"),
            value: n / (p - w),
            unit: Unit::Seconds,
            noise: None,
        });
    }
}

/// `ps -a -s` over 100 containers (their writable layers walked, the
/// image's layers taken from the layer store) against what a naive tool
/// does: `du` of each container's whole filesystem — one `du` process
/// walking the image's merged tree once per container (`-l`, so no tree
/// is skipped as already seen), not one process per container, so the
/// comparison is of the walks and not of 100 process start-ups.
fn size_case(opts: &Options, strata: &Path, root: &Path) -> Result<Case, BenchError> {
    let count = if opts.scale == Scale::Tiny { 5 } else { 100 };
    let base = |args: &[&str]| -> Vec<OsString> {
        let mut v = vec![strata.into(), "--root".into(), root.into()];
        v.extend(os(args));
        v
    };
    opts.progress(&format!("sizes: creating {count} containers"));
    for _ in 0..count {
        pipeline(&[base(&["create", "busybox:bench", "true"])])?;
    }
    let mnt = String::from_utf8_lossy(&pipeline(&[base(&["image", "mount", "busybox:bench"])])?).trim().to_owned();
    let mut case = Case::new(format!("sizes of {count} containers"));
    case.fact(
        "what",
        "strata ps -a -s (one process) vs one du -s -l process walking each container's filesystem (the image's merged tree, once per container)",
    );
    case.measurements = vec![
        Measurement::new("strata", "strata ps -a -s", Unit::Seconds),
        Measurement::new("du", &format!("du -s -l <merged fs> × {count} (one process)"), Unit::Seconds),
    ];
    let mut du_loop = os(&["du", "-s", "-l"]);
    du_loop.extend(std::iter::repeat(OsString::from(&mnt)).take(count));
    for round in 0..=opts.runs {
        for i in rotation(2, round) {
            let argv = if i == 0 { base(&["ps", "-a", "-s"]) } else { du_loop.clone() };
            let (res, secs) = time(|| pipeline(&[argv]));
            res?;
            if round > 0 {
                case.measurements[i].push(secs);
            }
        }
    }
    case.add_ratio("strata", "du");
    let _ = pipeline(&[base(&["image", "unmount", "busybox:bench"])]);
    let ids = String::from_utf8_lossy(&pipeline(&[base(&["ps", "-aq", "--no-trunc"])])?).into_owned();
    for id in ids.lines() {
        let _ = pipeline(&[base(&["rm", "-f", id])]);
    }
    Ok(case)
}

/// On drop: unmounts (lazily, deepest first) every mount below `dir` —
/// podman's overlay store, an image mount — and removes `also`.
pub(super) struct MountsUnder {
    pub(super) dir: PathBuf,
    pub(super) also: PathBuf,
}

impl Drop for MountsUnder {
    fn drop(&mut self) {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = format!("{}/", self.dir.display());
        let mut points: Vec<&str> =
            info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&prefix)).collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = crate::sys::mount::unmount_path(Path::new(p), true);
        }
        let _ = std::fs::remove_dir_all(&self.also);
    }
}

/// A dockerd of the benchmark's own: state on the scratch filesystem,
/// socket and exec root under a short /var/tmp path (unix socket paths are
/// limited to 108 bytes), no iptables or bridge. Stopped, and its mounts
/// removed, on drop.
pub(super) struct PrivateDockerd {
    child: std::process::Child,
    dir: PathBuf,
    data: PathBuf,
    pub(super) host: String,
}

impl PrivateDockerd {
    pub(super) fn start(scratch: &Path) -> Result<PrivateDockerd, BenchError> {
        let dir = PathBuf::from(format!("/var/tmp/sbd-{}", std::process::id()));
        let data = scratch.join("dockerd");
        let io = |source| BenchError::Io { what: "dockerd dir", path: dir.clone(), source };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let sock = dir.join("docker.sock");
        let host = format!("unix://{}", sock.display());
        let log = std::fs::File::create(dir.join("log")).map_err(io)?;
        let child = std::process::Command::new("dockerd")
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver", "overlay2"])
            .arg("--data-root")
            .arg(&data)
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args(["-H", &host])
            .stdout(log.try_clone().map_err(io)?)
            .stderr(log)
            .spawn()
            .map_err(|source| BenchError::Spawn { command: "dockerd".into(), source })?;
        let d = PrivateDockerd { child, dir, data, host };
        for _ in 0..200 {
            if pipeline(&[os(&["docker", "-H", &d.host, "info"])]).is_ok() {
                return Ok(d);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(BenchError::Unavailable {
            what: "docker".into(),
            reason: "a private dockerd did not come up in 20 s".into(),
        })
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        let pid = i32::try_from(self.child.id()).unwrap_or(0);
        let _ = crate::sys::signal::kill(pid, crate::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // dockerd unmounts its own mounts on a clean stop; whatever a hard
        // stop left under its directories goes here, deepest first.
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let (dir, data) = (self.dir.to_string_lossy().into_owned(), self.data.to_string_lossy().into_owned());
        let mut points: Vec<&str> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir) || m.starts_with(&data))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = crate::sys::mount::unmount_path(Path::new(p), true);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
