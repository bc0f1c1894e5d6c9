//! `bench pull`: pulling a 5-layer gzip image (500 MiB of layer tars at
//! full scale) from a CNCF distribution registry on loopback — `strata
//! pull` into an empty data root (download, verify and apply streamed,
//! three layers at a time) against `skopeo copy docker://… oci:DIR`
//! followed by `umoci unpack` (what a non-Docker host does to get the same
//! tree on disk). Both sides start from nothing local in every round.
//!
//! The image is built here as an OCI layout (files of random sizes, half
//! random and half repetitive bytes, so gzip has work on both ends) and
//! pushed once with `skopeo copy`. Needs `docker-registry` and `skopeo`;
//! without them the suite says so instead of running.

use super::dataset::io_err;
use super::harness::{time, Case, Measurement, Skip, Suite, Unit};
use super::run::{pipeline, syncfs};
use super::start::os;
use super::{rotation, scratch, BenchError, Options, Scale};
use crate::digest::{DiffId, HashingWriter};
use crate::image::oci::{
    Descriptor, ImageConfig, Index, Manifest, Platform, OCI_CONFIG, OCI_LAYER_TAR_GZIP, OCI_MANIFEST,
};
use crate::scratch::FsKind;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub(super) const LAYERS: usize = 5;

/// Bytes of file content per layer.
pub(super) fn layer_bytes(scale: Scale) -> u64 {
    match scale {
        Scale::Full => 100 << 20,
        Scale::Quick => 10 << 20,
        Scale::Tiny => 1 << 20,
    }
}

/// Writes one gzip layer blob into `blobs`; returns its descriptor, diff
/// ID and number of files.
fn write_layer(blobs: &Path, n: usize, bytes: u64) -> Result<(Descriptor, DiffId, usize), BenchError> {
    let tmp = blobs.join(format!("layer-{n}.tmp"));
    let f = std::fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    let blob = HashingWriter::new(std::io::BufWriter::new(f));
    let gz = flate2::write::GzEncoder::new(blob, flate2::Compression::fast());
    let mut tar = tar::Builder::new(HashingWriter::new(gz));
    let mut rng = crate::rng::Rng::new(0x5eed_0000 + n as u64);
    let (mut written, mut files) = (0u64, 0usize);
    while written < bytes {
        let size = (64 << 10) + rng.below(960 << 10);
        let size = size.min(bytes - written);
        let mut data = rng.bytes(usize::try_from(size / 2).unwrap_or(0));
        data.resize(usize::try_from(size).unwrap_or(0), b"abcdefghijklmnopqrstuvwxyz"[files % 26]);
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        tar.append_data(&mut h, format!("layer{n}/d{}/f{files}", files % 16), &data[..])
            .map_err(io_err("write layer", &tmp))?;
        written += size;
        files += 1;
    }
    let e = io_err("finish layer", &tmp);
    let (gz, diff, _) = tar.into_inner().map_err(io_err("finish layer", &tmp))?.finish();
    let (blob, digest, size) = gz.finish().map_err(e)?.finish();
    blob.into_inner().map_err(|e| BenchError::Io { what: "flush layer", path: tmp.clone(), source: e.into_error() })?;
    let dest = blobs.join(digest.hex());
    std::fs::rename(&tmp, &dest).map_err(io_err("rename", &dest))?;
    Ok((Descriptor::new(OCI_LAYER_TAR_GZIP, digest, size), DiffId(diff), files))
}

/// Builds the benchmark image as an OCI layout at `dir`; returns the
/// compressed size and the file count.
pub(super) fn build_layout(dir: &Path, scale: Scale) -> Result<(u64, usize), BenchError> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(io_err("create", &blobs))?;
    let mut config = ImageConfig::new(&Platform::new("linux", "amd64"));
    let (mut layers, mut total, mut files) = (Vec::new(), 0, 0);
    for n in 0..LAYERS {
        let (desc, diff, f) = write_layer(&blobs, n, layer_bytes(scale))?;
        total += desc.size;
        files += f;
        layers.push(desc);
        config.rootfs.diff_ids.push(diff);
    }
    let put = |bytes: &[u8]| -> Result<crate::digest::Digest, BenchError> {
        let d = crate::digest::Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).map_err(io_err("write", &blobs))?;
        Ok(d)
    };
    let config_bytes = config.to_bytes();
    put(&config_bytes)?;
    let manifest = Manifest::new(Descriptor::of_bytes(OCI_CONFIG, &config_bytes), layers).to_bytes();
    put(&manifest)?;
    let index = Index::new(vec![Descriptor::of_bytes(OCI_MANIFEST, &manifest)]).to_bytes();
    std::fs::write(dir.join("index.json"), index).map_err(io_err("write", dir))?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io_err("write", dir))?;
    Ok((total, files))
}

/// A `docker-registry` process, killed on drop.
pub(super) struct RegistryProcess(Child);

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `docker-registry` on a free loopback port with its storage and
/// log under `dir`; the process guard and `host:port`.
pub(super) fn start_registry(dir: &Path) -> Result<(RegistryProcess, String), BenchError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io_err("pick a port", dir))?
        .port();
    let config = dir.join("registry.yml");
    let text = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
         rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.join("registry").display()
    );
    std::fs::write(&config, text).map_err(io_err("write", &config))?;
    let log = std::fs::File::create(dir.join("registry.log")).map_err(io_err("create", dir))?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err("log", dir))?)
        .stderr(log)
        .spawn()
        .map_err(|source| BenchError::Spawn { command: "docker-registry serve".into(), source })?;
    let guard = RegistryProcess(child);
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((guard, format!("127.0.0.1:{port}")));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(BenchError::Unavailable { what: "docker-registry".into(), reason: "did not start listening".into() })
}

fn clear(paths: &[&Path]) {
    for p in paths {
        let _ = std::fs::remove_dir_all(p);
    }
}

/// The first tool the pull suite needs that is not installed.
pub(super) fn missing_tool() -> Option<&'static str> {
    ["docker-registry", "skopeo"].into_iter().find(|t| !super::env::have_tool(t))
}

/// Runs the pull suite.
pub fn run(opts: &Options) -> Result<Suite, BenchError> {
    super::start::require_tools("pull", missing_tool())?;
    let strata = super::start::require_strata()?;
    let mut suite = Suite::new(
        "pull",
        format!(
            "wall time from an empty local store to the image's files on disk, from a loopback registry; {}; \
             lower is better",
            opts.sync_policy()
        ),
    );
    let fs = image_scratch(opts)?;
    let work = fs.path().to_owned();
    opts.progress("pull: building the image");
    let (compressed, files) = build_layout(&work.join("layout"), opts.scale)?;
    let (_registry, host) = start_registry(&work)?;
    let image = format!("{host}/bench/pull:1");
    let mut push = os(&["skopeo", "copy", "--dest-tls-verify=false"]);
    push.push(format!("oci:{}", work.join("layout").display()).into());
    push.push(format!("docker://{image}").into());
    pipeline(&[push])?;

    let mut case = Case::new(format!("{LAYERS} layers, {} MiB", (layer_bytes(opts.scale) * LAYERS as u64) >> 20));
    case.fact("layers", format!("{LAYERS} x gzip (fast), {files} files"));
    case.fact("compressed", format!("{compressed} bytes"));
    case.fact("filesystem", "ext4 (scratch loop device), registry storage on the same fs");
    let (root, oci, bundle) = (work.join("strata-root"), work.join("oci"), work.join("bundle"));
    let strata_argv = {
        let mut v = vec![strata.into_os_string(), "--root".into(), root.clone().into_os_string()];
        v.extend(os(&["pull", "-q", &image]));
        v
    };
    let skopeo_argv = {
        let mut v = os(&["skopeo", "copy", "--src-tls-verify=false"]);
        v.push(format!("docker://{image}").into());
        v.push(format!("oci:{}:img", oci.display()).into());
        v
    };
    let umoci = super::env::have_tool("umoci");
    let peer = if umoci { "skopeo+umoci" } else { "skopeo+tar" };
    let peer_command = if umoci {
        "skopeo copy docker://… oci:DIR && umoci unpack --image DIR:img BUNDLE"
    } else {
        "skopeo copy docker://… oci:DIR && tar -xzf of each layer"
    };
    if !umoci {
        case.skipped.push(Skip { what: "umoci".into(), reason: "umoci is not installed; unpacking with tar".into() });
    }
    case.measurements = vec![
        Measurement::new("strata", "strata pull (3 layers at a time)", Unit::Seconds),
        Measurement::new(peer, peer_command, Unit::Seconds),
    ];
    for round in 0..=opts.runs {
        for i in rotation(2, round) {
            clear(&[&root, &oci, &bundle]);
            let (res, secs) = time(|| -> Result<(), BenchError> {
                if i == 0 {
                    pipeline(std::slice::from_ref(&strata_argv))?;
                } else {
                    pipeline(std::slice::from_ref(&skopeo_argv))?;
                    unpack_peer(umoci, &oci, &bundle)?;
                }
                if opts.sync {
                    syncfs(&work)?;
                }
                Ok(())
            });
            res?;
            if round > 0 {
                case.measurements[i].push(secs);
            }
        }
        opts.progress(&format!("pull: round {round}/{}", opts.runs));
    }
    clear(&[&root, &oci, &bundle]);
    case.add_ratio("strata", peer);
    suite.cases.push(case);
    Ok(suite)
}

/// Unpacks the OCI layout the peer downloaded: `umoci unpack`, or, without
/// umoci, each layer with `tar -xzf` in manifest order.
fn unpack_peer(umoci: bool, oci: &Path, bundle: &Path) -> Result<(), BenchError> {
    if umoci {
        let mut v = os(&["umoci", "unpack", "--image"]);
        v.push(format!("{}:img", oci.display()).into());
        v.push(bundle.into());
        pipeline(&[v])?;
        return Ok(());
    }
    let index_path = oci.join("index.json");
    let index = std::fs::read(&index_path).map_err(io_err("read", &index_path))?;
    let index = Index::from_json(&index)
        .map_err(|e| BenchError::Unavailable { what: "index".into(), reason: e.to_string() })?;
    let blob = |d: &crate::digest::Digest| oci.join("blobs/sha256").join(d.hex());
    let m = std::fs::read(blob(&index.manifests[0].digest)).map_err(io_err("read", oci))?;
    let m = Manifest::from_json(&m)
        .map_err(|e| BenchError::Unavailable { what: "manifest".into(), reason: e.to_string() })?;
    let rootfs: PathBuf = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(io_err("create", &rootfs))?;
    for l in &m.layers {
        let mut v = os(&["tar", "-xzf"]);
        v.push(blob(&l.digest).into());
        v.push("-C".into());
        v.push(rootfs.clone().into());
        pipeline(&[v])?;
    }
    Ok(())
}

/// The journaled ext4 scratch filesystem an image suite (pull, load)
/// builds its 5-layer image on and unpacks it into, sized for the scale.
pub(super) fn image_scratch(opts: &Options) -> Result<crate::scratch::ScratchFs, BenchError> {
    let size = match opts.scale {
        Scale::Full => 8 << 30,
        Scale::Quick => 2 << 30,
        Scale::Tiny => 1 << 30,
    };
    scratch(opts, FsKind::Ext4, size)
}
