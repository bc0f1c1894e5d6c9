//! Kubernetes' interface: containerd's CRI plugin with `snapshotter =
//! "strata"`, driven over the kubelet's own gRPC API (`runtime.v1`, the
//! `k8s-cri` bindings) through the kubelet's sequence for a pod, beside the
//! same sequence on containerd's own overlayfs snapshotter in the same
//! run, and again with strata's runtime as the runc shim's `BinaryName`.
//!
//! Each run has its own containerd (the fixture in `containerd.rs`), a
//! loopback registry serving the workload image (busybox) and the pause
//! image this file builds (the same busybox layer, its entrypoint a shell
//! that sleeps until signalled), and a CNI network of its own: a
//! bridge + host-local conflist in the sandbox, the bridge named after the
//! run and removed with it, host-local's state in the sandbox. containerd
//! adds the loopback network itself (the `loopback` plugin from the same
//! `bin_dir`). Pods go in cgroups under the sandbox's name, so the
//! sandbox's drop removes what a failed run leaves; CRI binds its network
//! namespaces under `/run/netns` in containerd's private `/run`, so they
//! go with containerd's mount namespace.

use crate::containerd::{Containerd, Options, Service, PLUGIN};
use crate::cri_client::{push_images, Cri, Images, Network};
use crate::daemon::{poll, toml_str, Sandbox};
use crate::registry::Registry;
use k8s_cri::v1 as cri;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file a container writes, and so the least its writable layer holds.
const BLOB_BYTES: u64 = 1 << 20;

/// One containerd with the CRI plugin on `snapshotter`. Fields drop in
/// order: containerd (and its namespace: shims, pods, netns mounts), the
/// network, the service, the sandbox (pod cgroups), the scratch
/// filesystem under the service's root.
struct Rig {
    cd: Containerd,
    net: Network,
    service: Option<Service>,
    sandbox: Sandbox,
    _scratch: Option<crate::Scratch>,
    snapshotter: &'static str,
}

impl Rig {
    /// `snapshotter` is `strata` (served by `strata snapshotter serve`,
    /// overlay on XFS) or one of containerd's own. With `strata_runtime`,
    /// the runc runtime's `BinaryName` is the sandbox's logging wrapper
    /// around strata's runtime.
    fn start(test: &str, reg: &Registry, images: &Images, snapshotter: &'static str, strata_runtime: bool) -> Rig {
        let sandbox = Sandbox::new(test);
        let net = Network::new(&sandbox);
        let (socket, log) = (sandbox.dir().join("strata.sock"), sandbox.dir().join("strata.log"));
        let (scratch, service) = if snapshotter == PLUGIN {
            let fs = strata::scratch::ScratchFs::new(strata::scratch::FsKind::Xfs, 1 << 30).expect("scratch");
            let scratch = crate::Scratch { fs: Some(fs) };
            let service = Service::start(&scratch.path().join("root"), "overlay", &socket, &log);
            (Some(scratch), Some(service))
        } else {
            (None, None)
        };
        // `stats_collect_period`: how often CRI samples snapshot usage
        // (ContainerStats, ImageFsInfo), 10 s by default.
        // `restrict_oom_score_adj`: CRI asks -998 for the pause process,
        // which needs CAP_SYS_RESOURCE, which these machines do not give;
        // this clamps it to containerd's own, as for a containerd in a
        // container.
        let cri = r#"[plugins."io.containerd.grpc.v1.cri""#;
        let mut extra = format!(
            r#"
{cri}]
  sandbox_image = "{pause}"
  stats_collect_period = 1
  restrict_oom_score_adj = true
{cri}.containerd]
  snapshotter = "{snapshotter}"
{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = {conf_dir}
  max_conf_num = 1
{cri}.registry.mirrors."{host}"]
  endpoint = ["http://{host}"]
"#,
            pause = images.pause,
            conf_dir = toml_str(&net.conf_dir),
            host = reg.host(),
        );
        if strata_runtime {
            extra.push_str(&format!(
                "{cri}.containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\
                 {cri}.containerd.runtimes.runc.options]\n  BinaryName = {}\n",
                toml_str(sandbox.runtime())
            ));
        }
        let cd = Containerd::start(&sandbox, &socket, Options { cri: true, extra_config: extra });
        Rig { cd, net, service, sandbox, _scratch: scratch, snapshotter }
    }

    /// The pod's configuration: its cgroups under the sandbox's name.
    fn pod_config(&self) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "pod".into(),
                uid: self.sandbox.name.clone(),
                namespace: "strata-test".into(),
                attempt: 0,
            }),
            hostname: "strata-pod".into(),
            log_directory: self.sandbox.mkdir("pod-logs").display().to_string(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("/{}/pod", self.sandbox.name),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The network namespaces CRI has bound in containerd's `/run/netns`.
    fn netns(&self) -> Vec<String> {
        let out = crate::daemon::run(self.cd.enter("sh").args(["-c", "ls /run/netns 2>/dev/null || true"]));
        out.ok().split_whitespace().map(str::to_owned).collect()
    }
}

/// What the kubelet's sequence observed, compared across snapshotters.
#[derive(Debug, PartialEq)]
struct Outcome {
    runtime_name: String,
    pod_ip_in_subnet: bool,
    bridge_made: bool,
    exec: (String, i32),
    failing_exec: (String, i32),
    running: bool,
    writable_at_least_blob: bool,
    image_fs_is_the_snapshotters: bool,
    exited: (bool, i32),
    cgroups_removed: bool,
    network_torn_down: bool,
    image_gone: bool,
}

/// The cgroup directories (one per v1 hierarchy) of `leaf` below `parent`.
fn cgroup_dirs(parent: &str, leaf: &str) -> Vec<PathBuf> {
    let rd = std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten();
    rd.map(|h| h.path().join(parent.trim_start_matches('/')).join(leaf)).filter(|p| p.is_dir()).collect()
}

/// Version, PullImage, RunPodSandbox, CreateContainer, StartContainer,
/// ExecSync, ContainerStatus, ContainerStats, ImageFsInfo, StopContainer,
/// RemoveContainer, StopPodSandbox, RemovePodSandbox, RemoveImage; the
/// pod's and container's IDs are returned beside what was seen.
fn kubelet_sequence(rig: &Rig, images: &Images) -> (Outcome, String, String) {
    let c = Cri::connect(&rig.cd.address);
    let what = rig.snapshotter;
    let version = c.call(|mut c| async move { c.runtime.version(cri::VersionRequest::default()).await }).unwrap();
    assert!(!version.runtime_api_version.is_empty(), "{version:?}");
    let spec = |image: &str| Some(cri::ImageSpec { image: image.to_owned(), ..Default::default() });
    let pull = cri::PullImageRequest { image: spec(&images.busybox), ..Default::default() };
    let pulled = c.call(|mut c| async move { c.images.pull_image(pull).await });
    let pulled = pulled.unwrap_or_else(|e| panic!("{what}: PullImage: {e}\n{}", rig.cd.log_text()));
    assert!(pulled.image_ref.starts_with("sha256:"), "{pulled:?}");

    let config = rig.pod_config();
    let run = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
    let pod = c.call(|mut c| async move { c.runtime.run_pod_sandbox(run).await });
    let pod = pod.unwrap_or_else(|e| panic!("{what}: RunPodSandbox: {e}\n{}", rig.cd.log_text())).pod_sandbox_id;
    rig.net.track(&pod);
    let req = cri::PodSandboxStatusRequest { pod_sandbox_id: pod.clone(), verbose: false };
    let status = c.call(|mut c| async move { c.runtime.pod_sandbox_status(req).await }).unwrap();
    let status = status.status.expect("pod status");
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32, "{status:?}");
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    let bridge_made = Path::new("/sys/class/net").join(&rig.net.bridge).exists();
    let netns_while_up = rig.netns();
    assert_eq!(netns_while_up.len(), 1, "{what}: one network namespace for the pod: {netns_while_up:?}");

    let container = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: "work".into(), attempt: 0 }),
        image: spec(&images.busybox),
        command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"].map(String::from).to_vec(),
        log_path: "work.log".into(),
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    };
    let create = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(container),
        sandbox_config: Some(config.clone()),
    };
    let id = c.call(|mut c| async move { c.runtime.create_container(create).await });
    let id = id.unwrap_or_else(|e| panic!("{what}: CreateContainer: {e}\n{}", rig.cd.log_text())).container_id;
    let start = cri::StartContainerRequest { container_id: id.clone() };
    c.call(|mut c| async move { c.runtime.start_container(start).await })
        .unwrap_or_else(|e| panic!("{what}: StartContainer: {e}\n{}", rig.cd.log_text()));
    let parent = format!("{}/pod", rig.sandbox.name);
    assert!(!cgroup_dirs(&parent, &id).is_empty(), "{what}: the container's cgroup is under the pod's parent");

    let exec = |cmd: &str| {
        let req = cri::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["sh".into(), "-c".into(), cmd.into()],
            timeout: 30,
        };
        let r = c.call(|mut c| async move { c.runtime.exec_sync(req).await }).expect("ExecSync");
        let text =
            format!("{}{}", String::from_utf8_lossy(&r.stdout).trim(), String::from_utf8_lossy(&r.stderr).trim());
        (text, r.exit_code)
    };
    let wrote = exec(&format!("head -c {BLOB_BYTES} /dev/zero > /blob && sync && wc -c < /blob"));
    let failing = exec("echo refused >&2; exit 3");
    let req = cri::ContainerStatusRequest { container_id: id.clone(), verbose: false };
    let running = c.call(|mut c| async move { c.runtime.container_status(req).await }).unwrap();
    let running = running.status.expect("status").state == cri::ContainerState::ContainerRunning as i32;

    // containerd samples snapshot usage every `stats_collect_period`.
    let fs_path = format!("io.containerd.snapshotter.v1.{what}");
    let writable = poll(Duration::from_secs(10), || {
        let req = cri::ContainerStatsRequest { container_id: id.clone() };
        let s = c.call(|mut c| async move { c.runtime.container_stats(req).await }).ok()?;
        let layer = s.stats?.writable_layer?;
        let used = layer.used_bytes?.value;
        let fs = layer.fs_id.map(|f| f.mountpoint).unwrap_or_default();
        assert!(fs.ends_with(&fs_path), "{what}: the writable layer is on {fs:?}");
        (used >= BLOB_BYTES).then_some(used)
    });
    let image_fs = c.call(|mut c| async move { c.images.image_fs_info(cri::ImageFsInfoRequest {}).await }).unwrap();
    let fs = image_fs.image_filesystems.first().expect("one image filesystem");
    let used = fs.used_bytes.as_ref().map_or(0, |u| u.value);
    eprintln!("{what}: writable layer {writable:?} bytes, image fs {used} bytes, layer {}", images.layer_bytes);
    // The layer (busybox, most of it one binary) and the container's blob
    // are in it; not much more.
    let plausible = used >= images.layer_bytes / 2 && used <= 2 * (images.layer_bytes + BLOB_BYTES) + (1 << 20);
    let mountpoint = fs.fs_id.as_ref().map(|f| f.mountpoint.clone()).unwrap_or_default();
    let image_fs_is_the_snapshotters = mountpoint.ends_with(&fs_path) && plausible;
    assert!(image_fs_is_the_snapshotters, "{what}: ImageFsInfo {used} bytes at {mountpoint:?}");

    let stop = cri::StopContainerRequest { container_id: id.clone(), timeout: 10 };
    c.call(|mut c| async move { c.runtime.stop_container(stop).await }).unwrap();
    let req = cri::ContainerStatusRequest { container_id: id.clone(), verbose: false };
    let stopped = c.call(|mut c| async move { c.runtime.container_status(req).await }).unwrap().status.unwrap();
    let exited = (stopped.state == cri::ContainerState::ContainerExited as i32, stopped.exit_code);
    let remove = cri::RemoveContainerRequest { container_id: id.clone() };
    c.call(|mut c| async move { c.runtime.remove_container(remove).await }).unwrap();
    let stop = cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() };
    c.call(|mut c| async move { c.runtime.stop_pod_sandbox(stop).await }).unwrap();
    let remove = cri::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() };
    c.call(|mut c| async move { c.runtime.remove_pod_sandbox(remove).await }).unwrap();
    let cgroups_removed = cgroup_dirs(&parent, &id).is_empty() && cgroup_dirs(&parent, &pod).is_empty();
    let network_torn_down = rig.netns().is_empty() && rig.net.cached_results().is_empty();
    let remove = cri::RemoveImageRequest { image: spec(&images.busybox) };
    c.call(|mut c| async move { c.images.remove_image(remove).await }).unwrap();
    let req = cri::ImageStatusRequest { image: spec(&images.busybox), verbose: false };
    let image_gone = c.call(|mut c| async move { c.images.image_status(req).await }).unwrap().image.is_none();

    let outcome = Outcome {
        runtime_name: version.runtime_name,
        pod_ip_in_subnet: ip.starts_with(&format!("{}.", rig.net.subnet)),
        exec: wrote,
        failing_exec: failing,
        running,
        writable_at_least_blob: writable.is_some(),
        image_fs_is_the_snapshotters,
        exited,
        cgroups_removed,
        bridge_made,
        network_torn_down,
        image_gone,
    };
    (outcome, pod, id)
}

/// What every run must observe, on any snapshotter and runtime.
fn expected() -> Outcome {
    Outcome {
        runtime_name: "containerd".into(),
        pod_ip_in_subnet: true,
        bridge_made: true,
        exec: (BLOB_BYTES.to_string(), 0),
        failing_exec: ("refused".into(), 3),
        running: true,
        writable_at_least_blob: true,
        image_fs_is_the_snapshotters: true,
        exited: (true, 0),
        cgroups_removed: true,
        network_torn_down: true,
        image_gone: true,
    }
}

fn can_run(what: &str) -> bool {
    crate::daemon::require(what, &["containerd", "ctr", "unshare", "nsenter", "skopeo", "docker-registry", "ip"])
        && crate::require(Path::new("/usr/lib/cni/bridge").is_file(), what, "containernetworking-plugins")
}

/// The kubelet's sequence on strata and on containerd's overlayfs, with
/// the same observations; strata's log shows it served the pod; with the
/// service stopped a pod no longer starts on strata.
#[test]
fn kubelet_pod_sequence_on_strata_beside_overlayfs() {
    if !can_run("CRI on strata and overlayfs") {
        return;
    }
    let regdir = tempfile::tempdir().unwrap();
    let reg = Registry::start(regdir.path(), crate::registry::Options::default());
    let images = push_images(&reg, regdir.path());

    let mut rig = Rig::start("cri-strata", &reg, &images, PLUGIN, false);
    let (outcome, pod, id) = kubelet_sequence(&rig, &images);
    assert_eq!(outcome, expected(), "strata");
    let service = rig.service.as_mut().expect("strata's service");
    let log = service.log_text();
    let commits = service.calls("commit");
    assert!(commits.iter().any(|l| l.contains(&images.chain)), "the layer committed on strata:\n{log}");
    let prepares = service.calls("prepare");
    for key in [&pod, &id] {
        assert!(prepares.iter().any(|l| l.contains(key.as_str())), "{key} prepared on strata:\n{log}");
    }
    service.stop();
    let c = Cri::connect(&rig.cd.address);
    let run = cri::RunPodSandboxRequest { config: Some(rig.pod_config()), runtime_handler: String::new() };
    let err = c.call(|mut c| async move { c.runtime.run_pod_sandbox(run).await }).expect_err("no pod without strata");
    assert!(err.message().contains("strata.sock"), "the error names strata's socket: {err}");
    drop(rig);

    let rig = Rig::start("cri-overlayfs", &reg, &images, "overlayfs", false);
    let (peer, _, _) = kubelet_sequence(&rig, &images);
    assert_eq!(peer, expected(), "containerd's overlayfs");
}

/// The same sequence with strata's runtime as the runc shim's
/// `BinaryName` (through the sandbox's logging wrapper), on strata's
/// snapshotter.
#[test]
fn kubelet_pod_sequence_with_strata_as_the_runtime() {
    if !can_run("CRI with strata's runtime") {
        return;
    }
    let regdir = tempfile::tempdir().unwrap();
    let reg = Registry::start(regdir.path(), crate::registry::Options::default());
    let images = push_images(&reg, regdir.path());
    let rig = Rig::start("cri-runtime", &reg, &images, PLUGIN, true);
    let (outcome, _, _) = kubelet_sequence(&rig, &images);
    assert_eq!(outcome, expected(), "strata's runtime");
    rig.sandbox.assert_runtime_ran(&["create", "start", "exec", "kill", "delete"]);
}
