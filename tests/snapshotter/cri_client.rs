//! What the CRI tests (`cri.rs`) stand on: the kubelet's side of the CRI,
//! the `runtime.v1` RuntimeService and ImageService clients (the `k8s-cri`
//! bindings over tonic) on containerd's unix socket, driven from a
//! synchronous test through a current-thread tokio runtime, each call with
//! a deadline so that a hung containerd fails the test instead of the run;
//! the images a pod pulls, pushed to the test's loopback registry; and the
//! pod network's CNI config with the guard that removes what it leaves on
//! the host.

use crate::daemon::Sandbox;
use crate::registry::Registry;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

/// Far above what any CRI call takes here (a pull of a small image from
/// loopback included), low enough to fail a hung call.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Cri {
    rt: tokio::runtime::Runtime,
    clients: Clients,
}

/// Both services on one channel; cloning is cheap (the channel is shared).
#[derive(Clone)]
pub struct Clients {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to the gRPC socket at `socket` (containerd serves the CRI
    /// on its main socket).
    pub fn connect(socket: &Path) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let path: PathBuf = socket.to_owned();
        // The URI is required by the builder and ignored by the connector.
        let endpoint = Endpoint::from_static("http://[::]:50051").timeout(CALL_TIMEOUT);
        let channel =
            rt.block_on(endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
                tokio::net::UnixStream::connect(path.clone())
            })))
            .unwrap_or_else(|e| panic!("connecting to the CRI on {}: {e}", socket.display()));
        let clients =
            Clients { runtime: RuntimeServiceClient::new(channel.clone()), images: ImageServiceClient::new(channel) };
        Cri { rt, clients }
    }

    /// Runs one call to completion (`|mut c| async move { c.runtime.x(req).await }`):
    /// its response, or the status containerd answered with (boxed: a
    /// `Status` is large).
    pub fn call<T, F>(&self, f: impl FnOnce(Clients) -> F) -> Result<T, Box<tonic::Status>>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rt.block_on(f(self.clients.clone())).map(tonic::Response::into_inner).map_err(Box::new)
    }
}

/// The images a run pulls, pushed to its loopback registry.
pub struct Images {
    pub busybox: String,
    pub pause: String,
    /// The layer both images share: its chain ID (one layer: its diff ID)
    /// and its uncompressed size.
    pub chain: String,
    pub layer_bytes: u64,
}

/// `daemon::image_archive()` (busybox) and a pause image on the same
/// layer, pushed with skopeo to `reg`.
pub fn push_images(reg: &Registry, dir: &Path) -> Images {
    let mut layer = Vec::new();
    let mut archive = tar::Archive::new(crate::daemon::image_archive());
    for e in archive.entries().expect("image archive") {
        let mut e = e.expect("archive entry");
        if e.path().expect("entry path").ends_with("layer.tar") {
            std::io::Read::read_to_end(&mut e, &mut layer).expect("layer");
        }
    }
    let layer_hex = hex::encode(Sha256::digest(&layer));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": ["sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 1; done"],
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_hex}")]},
    }))
    .unwrap();
    let config_hex = hex::encode(Sha256::digest(&config));
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": ["strata-test/pause:1"],
        "Layers": [format!("{layer_hex}/layer.tar")],
    }]);
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        (format!("{layer_hex}/layer.tar"), layer.clone()),
        (format!("{config_hex}.json"), config),
        ("manifest.json".to_owned(), serde_json::to_vec(&manifest).unwrap()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    let pause_tar = dir.join("pause.tar");
    std::fs::write(&pause_tar, b.into_inner().unwrap()).unwrap();
    let busybox_tar = dir.join("busybox.tar");
    std::fs::write(&busybox_tar, crate::daemon::image_archive()).unwrap();
    let images = Images {
        busybox: format!("{}/strata-test/busybox:1", reg.host()),
        pause: format!("{}/strata-test/pause:1", reg.host()),
        chain: format!("sha256:{layer_hex}"),
        layer_bytes: layer.len() as u64,
    };
    for (tar, name) in [(&busybox_tar, &images.busybox), (&pause_tar, &images.pause)] {
        let mut skopeo = Command::new("skopeo");
        skopeo.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        skopeo.arg(format!("docker-archive:{}", tar.display())).arg(format!("docker://{name}"));
        crate::daemon::run(&mut skopeo).ok();
    }
    images
}

/// The run's CNI network: its conflist in the sandbox, and on drop the
/// bridge it made in the host's network namespace and libcni's cached
/// results under `/var/lib/cni` (which containerd 1.6 does not let a
/// config move: this network's and containerd's own `cni-loopback` one
/// for each pod the run started), should a failed run not have torn its
/// pods down.
pub struct Network {
    pub name: String,
    pub bridge: String,
    pub subnet: String,
    pub conf_dir: PathBuf,
    pods: RefCell<Vec<String>>,
}

impl Network {
    pub fn new(sandbox: &Sandbox) -> Network {
        let hash = hex::encode(Sha256::digest(sandbox.name.as_bytes()));
        // IFNAMSIZ: 15 bytes.
        let bridge = format!("scri{}", &hash[..10]);
        let subnet = format!("10.233.{}", u8::from_str_radix(&hash[..2], 16).unwrap());
        let conf_dir = sandbox.mkdir("cni");
        let conflist = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": sandbox.name,
            "plugins": [{
                // No gateway address on the host side and no masquerade:
                // the host gets a bridge and veths, not a route.
                "type": "bridge",
                "bridge": bridge,
                "isGateway": false,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "subnet": format!("{subnet}.0/24"),
                    "dataDir": sandbox.mkdir("cni-ipam"),
                },
            }],
        });
        std::fs::write(conf_dir.join("10-strata-test.conflist"), conflist.to_string()).unwrap();
        Network { name: sandbox.name.clone(), bridge, subnet, conf_dir, pods: RefCell::default() }
    }

    /// Records a pod the run started, whose cached results the drop
    /// removes.
    pub fn track(&self, pod: &str) {
        self.pods.borrow_mut().push(pod.to_owned());
    }

    /// libcni's cached results for this network's attachments and for
    /// every tracked pod's (`<network>-<pod>-<ifname>`).
    pub fn cached_results(&self) -> Vec<PathBuf> {
        let prefix = format!("{}-", self.name);
        let pods = self.pods.borrow();
        let ours = |name: &str| name.starts_with(&prefix) || pods.iter().any(|p| name.contains(&format!("-{p}-")));
        let rd = std::fs::read_dir("/var/lib/cni/results").into_iter().flatten().flatten();
        rd.filter(|e| ours(&e.file_name().to_string_lossy())).map(|e| e.path()).collect()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if Path::new("/sys/class/net").join(&self.bridge).exists() {
            let out = crate::daemon::run(Command::new("ip").args(["link", "del", &self.bridge]));
            if out.code != Some(0) {
                eprintln!("cannot delete bridge {}: {}", self.bridge, out.both());
            }
        }
        for p in self.cached_results() {
            let _ = std::fs::remove_file(p);
        }
    }
}
