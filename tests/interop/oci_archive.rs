//! OCI archives written by strata, read by skopeo, umoci and podman; and
//! layouts written by skopeo, read by strata.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::Command;
use strata::digest::{DiffId, Digest};
use strata::image::archive::{read_archive, write_oci_archive, ArchiveImage, BlobSource, OutImage};
use strata::image::compression::Compression;
use strata::image::oci::{
    ContainerConfig, Descriptor, ImageConfig, Manifest, Platform, OCI_CONFIG, OCI_LAYER_TAR, OCI_LAYER_TAR_GZIP,
};
use strata::image::reference::Reference;

/// Whether `tool` can run; if not, says which test is skipped and why.
fn have(tool: &str, test: &str) -> bool {
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            strata::scratch::skip_test(&format!("{test}: {tool} is not installed (tools/deps installs it)"));
            false
        }
    }
}

/// Whether the test runs as root; umoci unpack and podman need it for the
/// ownership of unpacked files.
fn root(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        strata::scratch::skip_test(&format!("{test}: needs root to unpack files with their owners"));
    }
    root
}

/// Runs a command, failing the test with its output if it fails; returns
/// stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A test image and the blobs its layers need.
struct Fixture {
    image: OutImage,
    layer_digests: Vec<Digest>,
}

/// Builds an image of two layers: a gzip one shared by every fixture and
/// an uncompressed one saying `greeting`.
fn fixture(name: &str, greeting: &str, blobs: &mut BTreeMap<Digest, Vec<u8>>) -> Fixture {
    let base = layer_tar(&[("hello.txt", b"hello from strata\n")]);
    let top = layer_tar(&[("etc/greeting", greeting.as_bytes())]);
    let mut config = ImageConfig::new(&Platform::new("linux", "amd64"));
    config.config = Some(ContainerConfig {
        cmd: Some(vec!["/bin/sh".into()]),
        env: Some(vec!["PATH=/usr/bin:/bin".into()]),
        ..ContainerConfig::default()
    });
    let mut layers = Vec::new();
    for (tar, blob, media_type) in [(&base, gzip(&base), OCI_LAYER_TAR_GZIP), (&top, top.clone(), OCI_LAYER_TAR)] {
        config.rootfs.diff_ids.push(DiffId(Digest::of(tar)));
        layers.push(Descriptor::of_bytes(media_type, &blob));
        blobs.insert(Digest::of(&blob), blob);
    }
    let config = config.to_bytes();
    let layer_digests = layers.iter().map(|d| d.digest.clone()).collect();
    let manifest = Manifest::new(Descriptor::of_bytes(OCI_CONFIG, &config), layers).to_bytes();
    Fixture { image: OutImage { name: Some(Reference::parse(name).unwrap()), manifest, config }, layer_digests }
}

/// Writes the fixtures as an oci-archive at `path`.
fn write_archive(path: &Path, fixtures: &[&Fixture], blobs: BTreeMap<Digest, Vec<u8>>) {
    let open = move |d: &Digest| -> io::Result<Box<dyn Read>> {
        let b = blobs.get(d).cloned().ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(io::Cursor::new(b)))
    };
    let images: Vec<OutImage> = fixtures.iter().map(|f| f.image.clone()).collect();
    let file = std::fs::File::create(path).unwrap();
    write_oci_archive(file, &images, &open).unwrap().sync_all().unwrap();
}

fn blob_digest(src: &BlobSource) -> Digest {
    let mut bytes = Vec::new();
    src.open().unwrap().read_to_end(&mut bytes).unwrap();
    Digest::of(&bytes)
}

fn assert_same_image(got: &ArchiveImage, want: &Fixture) {
    assert_eq!(got.config, want.image.config, "config bytes differ");
    let got_layers: Vec<Digest> = got.layers.iter().map(|l| blob_digest(&l.source)).collect();
    assert_eq!(got_layers, want.layer_digests);
}

/// Each layer, decompressed as its media type says, hashes to its diff ID.
fn assert_layers_match_diff_ids(image: &ArchiveImage) {
    let config = ImageConfig::from_json(&image.config).unwrap();
    assert_eq!(image.layers.len(), config.rootfs.diff_ids.len());
    for (layer, diff_id) in image.layers.iter().zip(&config.rootfs.diff_ids) {
        let blob = layer.source.open().unwrap();
        let mut tar: Box<dyn Read> = match Compression::from_media_type(&layer.media_type) {
            Some(Compression::None) => Box::new(blob),
            Some(Compression::Gzip) => Box::new(flate2::read::GzDecoder::new(blob)),
            Some(Compression::Zstd) => Box::new(zstd::Decoder::new(blob).unwrap()),
            None => panic!("unexpected layer media type {}", layer.media_type),
        };
        let mut bytes = Vec::new();
        tar.read_to_end(&mut bytes).unwrap();
        assert_eq!(&Digest::of(&bytes), diff_id.digest(), "{}", layer.media_type);
    }
}

#[test]
fn skopeo_reads_our_archive_and_we_read_its_layouts() {
    if !have("skopeo", "skopeo_reads_our_archive_and_we_read_its_layouts") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut blobs = BTreeMap::new();
    let base = fixture("acme/my-base-image:1.0", "one\n", &mut blobs);
    let app = fixture("localhost:5000/team/app:2.0", "two\n", &mut blobs);
    let archive = tmp.path().join("a.tar");
    write_archive(&archive, &[&base, &app], blobs);

    // skopeo inspects each image of our archive by its ref.name tag.
    for (tag, fixture) in [("1.0", &base), ("2.0", &app)] {
        let out = run(Command::new("skopeo").arg("inspect").arg(format!("oci-archive:{}:{tag}", archive.display())));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let layers: Vec<String> = fixture.layer_digests.iter().map(Digest::to_string).collect();
        assert_eq!(v["Layers"], serde_json::json!(layers), "{out}");
        assert_eq!(v["Architecture"], "amd64", "{out}");
        assert_eq!(v["Os"], "linux", "{out}");
        assert_eq!(v["Digest"], Digest::of(&fixture.image.manifest).to_string(), "{out}");
        // The raw config is ours, byte for byte.
        let raw = run(Command::new("skopeo")
            .args(["inspect", "--config", "--raw"])
            .arg(format!("oci-archive:{}:{tag}", archive.display())));
        assert_eq!(raw.as_bytes(), &fixture.image.config[..]);
    }

    // skopeo copies one image to a layout directory, keeping it byte for
    // byte when told to keep uncompressed layers; strata reads it back.
    let same = tmp.path().join("same");
    run(Command::new("skopeo")
        .args(["copy", "--dest-oci-accept-uncompressed-layers"])
        .arg(format!("oci-archive:{}:2.0", archive.display()))
        .arg(format!("oci:{}:2.0", same.display())));
    let images = read_archive(&same).unwrap();
    assert_eq!(images.len(), 1);
    assert_same_image(&images[0], &app);
    assert_eq!(images[0].manifest.as_deref(), Some(&app.image.manifest[..]));
    assert_eq!(images[0].repo_tags, ["2.0"]);

    // By default skopeo gzips the uncompressed layer: a new manifest, the
    // same config, and layers whose contents are still the diff IDs.
    let dir = tmp.path().join("b");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci-archive:{}:2.0", archive.display()))
        .arg(format!("oci:{}:2.0", dir.display())));
    let images = read_archive(&dir).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].config, app.image.config);
    assert_ne!(images[0].manifest.as_deref(), Some(&app.image.manifest[..]));
    assert_layers_match_diff_ids(&images[0]);
    assert_eq!(images[0].layers[1].media_type, OCI_LAYER_TAR_GZIP);

    let tar = tmp.path().join("c.tar");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:2.0", dir.display()))
        .arg(format!("oci-archive:{}:copied", tar.display())));
    let images = read_archive(&tar).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].config, app.image.config);
    assert_layers_match_diff_ids(&images[0]);
    assert_eq!(images[0].repo_tags, ["copied"]);
    assert!(matches!(images[0].layers[0].source, BlobSource::TarMember { .. }));

    // And a docker-archive (docker save format) written by skopeo.
    let save = tmp.path().join("save.tar");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:2.0", dir.display()))
        .arg(format!("docker-archive:{}:acme/app:2.0", save.display())));
    let images = read_archive(&save).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].config, app.image.config);
    assert_eq!(images[0].manifest, None);
    assert_eq!(images[0].repo_tags, ["docker.io/acme/app:2.0"]);
    // docker-archive layers are uncompressed: each blob is its diff ID.
    assert!(images[0].layers.iter().all(|l| l.media_type == OCI_LAYER_TAR));
    assert_layers_match_diff_ids(&images[0]);
}

#[test]
fn umoci_unpacks_our_layout() {
    if !have("umoci", "umoci_unpacks_our_layout") || !root("umoci_unpacks_our_layout") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut blobs = BTreeMap::new();
    let base = fixture("acme/my-base-image:1.0", "from umoci\n", &mut blobs);
    let archive = tmp.path().join("a.tar");
    write_archive(&archive, &[&base], blobs);
    let layout = tmp.path().join("layout");
    tar::Archive::new(std::fs::File::open(&archive).unwrap()).unpack(&layout).unwrap();

    let tags = run(Command::new("umoci").arg("ls").arg("--layout").arg(&layout));
    assert_eq!(tags.trim(), "1.0");
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci").arg("unpack").arg("--image").arg(format!("{}:1.0", layout.display())).arg(&bundle));
    let rootfs = bundle.join("rootfs");
    assert_eq!(std::fs::read(rootfs.join("hello.txt")).unwrap(), b"hello from strata\n");
    assert_eq!(std::fs::read(rootfs.join("etc/greeting")).unwrap(), b"from umoci\n");
    // umoci turned the config into a runtime spec.
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], serde_json::json!(["/bin/sh"]));
}

#[test]
fn podman_loads_our_archive() {
    if !have("podman", "podman_loads_our_archive") || !root("podman_loads_our_archive") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut blobs = BTreeMap::new();
    let base = fixture("acme/my-base-image:1.0", "from podman\n", &mut blobs);
    let archive = tmp.path().join("a.tar");
    write_archive(&archive, &[&base], blobs);

    // A private store on vfs, so the test needs no overlay support and
    // leaves nothing in the host's podman storage.
    let root = tmp.path().join("root");
    let runroot = tmp.path().join("runroot");
    let podman = || {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .args(["--storage-driver", "vfs", "--events-backend", "none"])
            .env("TMPDIR", tmp.path());
        c
    };
    let out = run(podman().arg("load").arg("-i").arg(&archive));
    assert!(out.contains("docker.io/acme/my-base-image:1.0"), "{out}");
    let id = run(podman().args(["image", "inspect", "--format", "{{.Id}}"]).arg("docker.io/acme/my-base-image:1.0"));
    assert_eq!(id.trim(), Digest::of(&base.image.config).hex());
    // Drop the vfs layers before the temp dir goes.
    run(podman().args(["rmi", "--all", "--force"]));
}
