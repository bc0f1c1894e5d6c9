//! Unit tests of archive reading and writing: round trips through the
//! writer, hand-built `docker save` tars, and malformed inputs.
use super::*;
use crate::digest::DiffId;
use crate::image::oci::{OCI_CONFIG, OCI_INDEX, OCI_LAYER_TAR, OCI_LAYER_TAR_GZIP, OCI_MANIFEST};
use std::collections::BTreeMap;

/// An uncompressed layer tar holding `files`.
fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An image built from layer tars, with its blobs.
struct Built {
    image: OutImage,
    blobs: BTreeMap<Digest, Vec<u8>>,
}

/// Builds an image; `gz` compresses every layer.
fn build(name: Option<&str>, layers: &[Vec<u8>], gz: bool) -> Built {
    let mut config = ImageConfig::new(&Platform::new("linux", "amd64"));
    let mut descs = Vec::new();
    let mut blobs = BTreeMap::new();
    for tar in layers {
        config.rootfs.diff_ids.push(DiffId(Digest::of(tar)));
        let (blob, mt) = if gz { (gzip(tar), OCI_LAYER_TAR_GZIP) } else { (tar.clone(), OCI_LAYER_TAR) };
        descs.push(Descriptor::of_bytes(mt, &blob));
        blobs.insert(Digest::of(&blob), blob);
    }
    let config = config.to_bytes();
    let manifest = Manifest::new(Descriptor::of_bytes(OCI_CONFIG, &config), descs).to_bytes();
    Built { image: OutImage { name: name.map(|n| Reference::parse(n).unwrap()), manifest, config }, blobs }
}

fn opener(blobs: BTreeMap<Digest, Vec<u8>>) -> impl Fn(&Digest) -> io::Result<Box<dyn Read>> {
    move |d: &Digest| match blobs.get(d) {
        Some(b) => Ok(Box::new(io::Cursor::new(b.clone())) as Box<dyn Read>),
        None => Err(io::Error::new(io::ErrorKind::NotFound, d.to_string())),
    }
}

fn write(images: &[&Built]) -> Vec<u8> {
    let blobs = images.iter().flat_map(|b| b.blobs.clone()).collect();
    let out: Vec<OutImage> = images.iter().map(|b| b.image.clone()).collect();
    write_oci_archive(Vec::new(), &out, &opener(blobs)).unwrap()
}

fn read_blob(src: &BlobSource) -> Vec<u8> {
    let mut v = Vec::new();
    src.open().unwrap().read_to_end(&mut v).unwrap();
    v
}

fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar);
    a.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect()
}

fn two_images() -> (Built, Built) {
    let base = layer_tar(&[("etc/os-release", b"ID=test\n")]);
    let app = layer_tar(&[("app/run", b"#!/bin/sh\necho hi\n")]);
    let a = build(Some("acme/base:1.0"), std::slice::from_ref(&base), true);
    let b = build(Some("localhost:5000/app:v2"), &[base, app], true);
    (a, b)
}

fn check_images(images: &[ArchiveImage], a: &Built, b: &Built) {
    assert_eq!(images.len(), 2);
    for (got, want) in images.iter().zip([a, b]) {
        assert_eq!(got.config, want.image.config);
        assert_eq!(got.manifest.as_deref(), Some(&want.image.manifest[..]));
        let manifest = Manifest::from_json(&want.image.manifest).unwrap();
        assert_eq!(got.layers.len(), manifest.layers.len());
        for (l, d) in got.layers.iter().zip(&manifest.layers) {
            assert_eq!(l.media_type, d.media_type);
            assert_eq!(l.digest.as_ref(), Some(&d.digest));
            assert_eq!(l.size, d.size);
            assert_eq!(Digest::of(&read_blob(&l.source)), d.digest);
        }
    }
    assert_eq!(images[0].repo_tags, ["docker.io/acme/base:1.0"]);
    assert_eq!(images[1].repo_tags, ["localhost:5000/app:v2"]);
}

#[test]
fn written_archive_reads_back_from_tar_and_dir() {
    let (a, b) = two_images();
    let tar = write(&[&a, &b]);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("img.tar");
    std::fs::write(&file, &tar).unwrap();
    let from_tar = read_archive_for(&file, &Platform::new("linux", "amd64")).unwrap();
    check_images(&from_tar, &a, &b);
    assert!(matches!(from_tar[0].layers[0].source, BlobSource::TarMember { .. }));

    let dir = tmp.path().join("layout");
    tar::Archive::new(&tar[..]).unpack(&dir).unwrap();
    let from_dir = read_archive_for(&dir, &Platform::new("linux", "amd64")).unwrap();
    check_images(&from_dir, &a, &b);
    assert!(matches!(from_dir[0].layers[0].source, BlobSource::File(_)));
}

#[test]
fn writer_is_deterministic_and_stores_shared_layers_once() {
    let (a, b) = two_images();
    let tar = write(&[&a, &b]);
    assert_eq!(tar, write(&[&a, &b]));
    let names = tar_names(&tar);
    // base layer, config a, manifest a, app layer, config b, manifest b
    assert_eq!(names.len(), 3 + 6 + 1, "{names:?}");
    assert_eq!(names[..3], ["oci-layout", "blobs/", "blobs/sha256/"]);
    assert_eq!(names.last().unwrap(), "index.json");
    let unique: HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len());
}

#[test]
fn index_names_images_with_tag_and_full_name() {
    let (a, _) = two_images();
    let unnamed = build(None, &[layer_tar(&[("x", b"x")])], false);
    let tar = write(&[&a, &unnamed]);
    let mut archive = tar::Archive::new(&tar[..]);
    let mut index = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("index.json") {
            e.read_to_end(&mut index).unwrap();
        }
    }
    let index = Index::from_json(&index).unwrap();
    assert_eq!(index.media_type.as_deref(), Some(OCI_INDEX));
    let d = &index.manifests[0];
    assert_eq!(d.media_type, OCI_MANIFEST);
    assert_eq!(d.digest, Digest::of(&a.image.manifest));
    assert_eq!(d.annotation(ANNOTATION_REF_NAME), Some("1.0"));
    assert_eq!(d.annotation(ANNOTATION_CONTAINERD_NAME), Some("docker.io/acme/base:1.0"));
    assert_eq!(index.manifests[1].annotations, None);
}

#[test]
fn same_manifest_under_two_names_is_one_image() {
    let (a, _) = two_images();
    let mut again = Built { image: a.image.clone(), blobs: a.blobs.clone() };
    again.image.name = Some(Reference::parse("acme/base:latest").unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("img.tar");
    std::fs::write(&file, write(&[&a, &again])).unwrap();
    let images = read_archive(&file).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].repo_tags, ["docker.io/acme/base:1.0", "docker.io/acme/base:latest"]);
}

#[test]
fn writer_rejects_blobs_that_do_not_match() {
    let (a, _) = two_images();
    let layer = Manifest::from_json(&a.image.manifest).unwrap().layers[0].clone();
    let mut wrong = a.blobs.clone();
    let blob = wrong.get_mut(&layer.digest).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 1;
    let err = write_oci_archive(Vec::new(), std::slice::from_ref(&a.image), &opener(wrong)).unwrap_err();
    assert!(matches!(err, ArchiveError::BlobMismatch { .. }), "{err}");

    let mut short = a.blobs.clone();
    short.get_mut(&layer.digest).unwrap().pop();
    let err = write_oci_archive(Vec::new(), std::slice::from_ref(&a.image), &opener(short)).unwrap_err();
    assert!(matches!(err, ArchiveError::BlobRead { .. }), "{err}");
    assert!(err.to_string().contains("1 bytes early"), "{err}");

    let mut long = a.blobs.clone();
    long.get_mut(&layer.digest).unwrap().push(0);
    let err = write_oci_archive(Vec::new(), std::slice::from_ref(&a.image), &opener(long)).unwrap_err();
    assert!(matches!(err, ArchiveError::BlobMismatch { .. }), "{err}");

    let err = write_oci_archive(Vec::new(), std::slice::from_ref(&a.image), &opener(BTreeMap::new())).unwrap_err();
    assert!(matches!(err, ArchiveError::BlobRead { .. }), "{err}");

    let mut bad_config = a.image.clone();
    bad_config.config.push(b' ');
    let err = write_oci_archive(Vec::new(), &[bad_config], &opener(a.blobs)).unwrap_err();
    assert!(matches!(err, ArchiveError::OutConfigMismatch { .. }), "{err}");
}

/// Writes a layout directory from `files` (path, bytes).
fn write_dir(root: &Path, files: &[(String, Vec<u8>)]) {
    for (p, data) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

fn blob_file(bytes: &[u8]) -> (String, Vec<u8>) {
    (blob_path(&Digest::of(bytes)), bytes.to_vec())
}

#[test]
fn picks_the_wanted_platform_from_a_nested_index() {
    let amd = build(None, &[layer_tar(&[("amd", b"1")])], false);
    let arm = build(None, &[layer_tar(&[("arm", b"2")])], false);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut entries = Vec::new();
    for (built, arch, variant) in [(&arm, "arm64", Some("v8")), (&amd, "amd64", None)] {
        files.extend(built.blobs.values().map(|b| blob_file(b)));
        files.push(blob_file(&built.image.config));
        files.push(blob_file(&built.image.manifest));
        let mut d = Descriptor::of_bytes(OCI_MANIFEST, &built.image.manifest);
        let mut p = Platform::new("linux", arch);
        p.variant = variant.map(str::to_owned);
        d.platform = Some(p);
        entries.push(d);
    }
    // An attestation manifest, as BuildKit adds, must not be chosen.
    let mut att = Descriptor::of_bytes(OCI_MANIFEST, &amd.image.manifest);
    att.platform = Some(Platform::new("unknown", "unknown"));
    entries.push(att);
    let nested = Index::new(entries).to_bytes();
    files.push(blob_file(&nested));
    let mut top = Descriptor::of_bytes(OCI_INDEX, &nested);
    top.annotations = Some([(ANNOTATION_REF_NAME.to_owned(), "multi".to_owned())].into());
    files.push(("index.json".into(), Index::new(vec![top]).to_bytes()));
    files.push(("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()));

    let tmp = tempfile::tempdir().unwrap();
    write_dir(tmp.path(), &files);
    let images = read_archive_for(tmp.path(), &Platform::new("linux", "amd64")).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].config, amd.image.config);
    assert_eq!(images[0].repo_tags, ["multi"]);
    let images = read_archive_for(tmp.path(), &Platform::new("linux", "arm64")).unwrap();
    assert_eq!(images[0].config, arm.image.config);

    let err = read_archive_for(tmp.path(), &Platform::new("linux", "s390x")).unwrap_err();
    assert!(matches!(err, ArchiveError::NoPlatform { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("no manifest for linux/s390x"), "{msg}");
    assert!(msg.contains("linux/arm64/v8, linux/amd64"), "{msg}");
}

/// A `docker save` archive the way Docker before 25 wrote it: a config
/// named by its digest, one directory per layer, a symlink where two
/// images share a layer, and `RepoTags`.
fn docker_save_tar(layers_field: Option<&str>) -> (Vec<u8>, Vec<Vec<u8>>, Vec<u8>) {
    let l1 = layer_tar(&[("bin/sh", b"sh")]);
    let l2 = gzip(&layer_tar(&[("etc/motd", b"hi")]));
    let mut config = ImageConfig::new(&Platform::new("linux", "amd64"));
    config.rootfs.diff_ids = vec![DiffId(Digest::of(&l1)), DiffId(Digest::of(b"x"))];
    let config = config.to_bytes();
    let config_name = format!("{}.json", Digest::of(&config).hex());
    let layers = layers_field.map_or_else(|| r#"["aaa/layer.tar", "bbb/layer.tar"]"#.to_owned(), str::to_owned);
    let manifest = format!(
        r#"[{{"Config":"{config_name}","RepoTags":["busybox:latest","acme/x:1.0"],"Layers":{layers}}},
            {{"Config":"{config_name}","RepoTags":null,"Layers":["ccc/layer.tar","bbb/layer.tar"]}}]"#
    );
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    };
    add("aaa/layer.tar", &l1);
    add("bbb/layer.tar", &l2);
    add(&config_name, &config);
    add("manifest.json", manifest.as_bytes());
    add("repositories", b"{}");
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "ccc/layer.tar", "../aaa/layer.tar").unwrap();
    (b.into_inner().unwrap(), vec![l1, l2], config)
}

#[test]
fn reads_a_docker_save_archive() {
    let (tar, layers, config) = docker_save_tar(None);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("save.tar");
    std::fs::write(&file, &tar).unwrap();
    let images = read_archive(&file).unwrap();
    assert_eq!(images.len(), 2);
    let img = &images[0];
    assert_eq!(img.config, config);
    assert_eq!(img.manifest, None);
    assert_eq!(img.repo_tags, ["busybox:latest", "acme/x:1.0"]);
    assert_eq!(img.layers[0].media_type, OCI_LAYER_TAR);
    assert_eq!(img.layers[1].media_type, OCI_LAYER_TAR_GZIP);
    assert_eq!(img.layers[0].digest, None);
    assert_eq!(read_blob(&img.layers[0].source), layers[0]);
    assert_eq!(read_blob(&img.layers[1].source), layers[1]);
    assert_eq!(img.layers[1].size, layers[1].len() as u64);
    // The second image reaches layer 1 through the symlink.
    assert!(images[1].repo_tags.is_empty());
    assert_eq!(images[1].layers[0].source, img.layers[0].source);

    // Extracted to a directory, the same archive reads the same.
    let dir = tmp.path().join("save");
    tar::Archive::new(&tar[..]).unpack(&dir).unwrap();
    let images = read_archive(&dir).unwrap();
    assert_eq!(images[1].layers[0].source, images[0].layers[0].source);
    assert_eq!(read_blob(&images[0].layers[1].source), layers[1]);
}

#[test]
fn docker_save_path_traversal_is_refused() {
    for layers in
        [r#"["../x", "bbb/layer.tar"]"#, r#"["aaa/../../x", "bbb/layer.tar"]"#, r#"["/etc/passwd", "bbb/layer.tar"]"#]
    {
        let (tar, _, _) = docker_save_tar(Some(layers));
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("save.tar");
        std::fs::write(&file, &tar).unwrap();
        let err = read_archive(&file).unwrap_err();
        assert!(matches!(err, ArchiveError::PathTraversal { .. }), "{layers}: {err}");
        assert!(err.to_string().contains("path leads outside the archive"), "{err}");
    }
}

#[test]
fn symlink_out_of_a_layout_directory_is_refused() {
    let (tar, _, _) = docker_save_tar(None);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("save");
    tar::Archive::new(&tar[..]).unpack(&dir).unwrap();
    std::fs::write(tmp.path().join("outside"), b"secret").unwrap();
    std::fs::remove_file(dir.join("aaa/layer.tar")).unwrap();
    std::os::unix::fs::symlink("../../outside", dir.join("aaa/layer.tar")).unwrap();
    let err = read_archive(&dir).unwrap_err();
    assert!(matches!(err, ArchiveError::PathTraversal { ref member, .. } if member == "aaa/layer.tar"), "{err}");
}

#[test]
fn tar_symlink_loop_is_an_error() {
    let mut b = tar::Builder::new(Vec::new());
    for (from, to) in [("a", "b"), ("b", "a")] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, from, to).unwrap();
    }
    let mut h = tar::Header::new_ustar();
    let m = br#"[{"Config":"a","Layers":[]}]"#;
    h.set_size(m.len() as u64);
    b.append_data(&mut h, "manifest.json", &m[..]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("loop.tar");
    std::fs::write(&file, b.into_inner().unwrap()).unwrap();
    let err = read_archive(&file).unwrap_err();
    assert!(matches!(err, ArchiveError::LinkLoop { .. }), "{err}");
}

/// Writes one image as a layout directory and returns it with the image.
fn layout_dir() -> (tempfile::TempDir, Built) {
    let built = build(Some("acme/base:1.0"), &[layer_tar(&[("f", b"data")])], false);
    let tar = write(&[&built]);
    let tmp = tempfile::tempdir().unwrap();
    tar::Archive::new(&tar[..]).unpack(tmp.path()).unwrap();
    (tmp, built)
}

#[test]
fn missing_index_json_is_named() {
    let (tmp, _) = layout_dir();
    std::fs::remove_file(tmp.path().join("index.json")).unwrap();
    let err = read_archive(tmp.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::Missing { ref member, .. } if member == "index.json"), "{err}");
    assert!(err.to_string().ends_with("index.json: missing"), "{err}");
}

#[test]
fn missing_blob_is_named() {
    let (tmp, built) = layout_dir();
    let layer = Manifest::from_json(&built.image.manifest).unwrap().layers[0].digest.clone();
    std::fs::remove_file(tmp.path().join(blob_path(&layer))).unwrap();
    let err = read_archive(tmp.path()).unwrap_err();
    let want = blob_path(&layer);
    assert!(matches!(err, ArchiveError::Missing { ref member, .. } if *member == want), "{err}");
}

#[test]
fn config_digest_mismatch_is_detected() {
    let (tmp, built) = layout_dir();
    let path = tmp.path().join(blob_path(&Digest::of(&built.image.config)));
    // Same size, different bytes.
    let tampered = String::from_utf8(built.image.config.clone()).unwrap().replace("amd64", "arm64");
    std::fs::write(&path, tampered).unwrap();
    let err = read_archive(tmp.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("digest mismatch: expected sha256:"), "{err}");
}

#[test]
fn layer_size_mismatch_is_detected() {
    let (tmp, built) = layout_dir();
    let layer = Manifest::from_json(&built.image.manifest).unwrap().layers[0].digest.clone();
    let path = tmp.path().join(blob_path(&layer));
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(b"extra").unwrap();
    let err = read_archive(tmp.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::SizeMismatch { .. }), "{err}");
}

#[test]
fn bad_json_and_unknown_formats_are_errors() {
    let (tmp, _) = layout_dir();
    std::fs::write(tmp.path().join("index.json"), b"{not json").unwrap();
    let err = read_archive(tmp.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::Document { ref member, .. } if member == "index.json"), "{err}");
    assert!(err.to_string().contains("invalid JSON"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = read_archive(empty.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::UnknownFormat { .. }), "{err}");

    let gz = empty.path().join("x.tar.gz");
    std::fs::write(&gz, gzip(&layer_tar(&[("manifest.json", b"[]")]))).unwrap();
    let err = read_archive(&gz).unwrap_err();
    assert!(matches!(err, ArchiveError::Compressed { .. }), "{err}");

    let err = read_archive(&empty.path().join("nope.tar")).unwrap_err();
    assert!(matches!(err, ArchiveError::Io { .. }), "{err}");
}
