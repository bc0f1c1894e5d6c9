//! Interop with skopeo through the registry, both ways.

use crate::registry::{Options, Registry};
use crate::*;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn skopeo_pushed_layout_is_pulled_and_run_by_strata() {
    if !can_run("skopeo push, strata pull") || require_tool("skopeo", "skopeo push").is_none() {
        return;
    }
    let src = env();
    let reg = Registry::start(&src.scratch("registry"), Options::default());
    let names = seed_images(&src, "local");
    let archive = src.scratch("final.tar");
    src.ok(&["save", "-o", archive.to_str().unwrap(), &names[2]]);
    let layout = src.scratch("layout");
    std::fs::create_dir_all(&layout).unwrap();
    run(Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&layout));
    let remote = format!("{}/skopeo/final:1", reg.host());
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{remote}")));
    let raw =
        run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false"]).arg(format!("docker://{remote}")));
    let skopeo_digest = strata::digest::Digest::of(raw.as_bytes()).to_string();

    let dst = env();
    let out = ok(strata(&dst, &["pull", &remote], &[]), "strata pull of a skopeo push");
    assert_eq!(pulled_digest(&out), skopeo_digest);
    assert_eq!(digests(&dst, &remote).1, digests(&src, &names[2]).1, "same config");
    assert_eq!(ok(strata(&dst, &["run", "--rm", &remote], &[]), "run"), "hello world\n");
}

#[test]
fn strata_pushed_image_is_inspected_and_copied_by_skopeo() {
    if !can_run("strata push, skopeo read") || require_tool("skopeo", "skopeo read").is_none() {
        return;
    }
    let src = env();
    let reg = Registry::start(&src.scratch("registry"), Options::default());
    let names = seed_images(&src, &reg.host());
    let pushed = pushed_digest(&ok(strata(&src, &["push", &names[2]], &[]), "push"));
    let inspect =
        run(Command::new("skopeo").args(["inspect", "--tls-verify=false"]).arg(format!("docker://{}", names[2])));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"], pushed.as_str(), "{inspect}");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{inspect}");
    let out = src.scratch("copied");
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--preserve-digests", "--dest-oci-accept-uncompressed-layers"])
        .arg(format!("docker://{}", names[2]))
        .arg(format!("oci:{}:final", out.display())));
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], pushed.as_str(), "skopeo kept the manifest byte for byte");
    for l in crate::roundtrip::layer_digests(&src, &names[2]) {
        assert!(out.join("blobs/sha256").join(&l[7..]).is_file(), "layer {l} copied");
    }
}

/// A layout whose `index.json` points at an image index listing an
/// arm64 and an amd64 manifest (same layers, configs differing in
/// architecture), pushed with `skopeo copy --all`; and the same image
/// converted by skopeo to Docker v2 schema 2. strata follows the index to
/// linux/amd64 and reads the Docker media types.
#[test]
fn multi_platform_index_and_docker_schema2_are_pulled() {
    if !can_run("index and schema 2 pulls") || require_tool("skopeo", "index pulls").is_none() {
        return;
    }
    use strata::digest::Digest;
    use strata::image::oci::{Descriptor, Index, Manifest, Platform, OCI_INDEX, OCI_MANIFEST};
    let src = env();
    let reg = Registry::start(&src.scratch("registry"), Options::default());
    let names = seed_images(&src, "local");
    let archive = src.scratch("final.tar");
    src.ok(&["save", "-o", archive.to_str().unwrap(), &names[2]]);
    let layout = src.scratch("layout");
    std::fs::create_dir_all(&layout).unwrap();
    run(Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&layout));
    let blobs = layout.join("blobs/sha256");
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        d
    };
    let top = Index::from_json(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let amd64_desc = top.manifests[0].clone();
    let amd64: Manifest = serde_json::from_slice(&std::fs::read(blobs.join(amd64_desc.digest.hex())).unwrap()).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blobs.join(amd64.config.digest.hex())).unwrap()).unwrap();
    config["architecture"] = "arm64".into();
    let arm_config = serde_json::to_vec(&config).unwrap();
    put(&arm_config);
    let mut arm = amd64.clone();
    arm.config = Descriptor::of_bytes(&amd64.config.media_type, &arm_config);
    let arm_bytes = arm.to_bytes();
    put(&arm_bytes);
    let mut arm_desc = Descriptor::of_bytes(OCI_MANIFEST, &arm_bytes);
    arm_desc.platform = Some(Platform::new("linux", "arm64"));
    let mut amd_desc = Descriptor::new(OCI_MANIFEST, amd64_desc.digest.clone(), amd64_desc.size);
    amd_desc.platform = Some(Platform::new("linux", "amd64"));
    let nested = Index::new(vec![arm_desc, amd_desc]).to_bytes();
    let nested_digest = put(&nested);
    let outer = Index::new(vec![Descriptor::of_bytes(OCI_INDEX, &nested)]).to_bytes();
    std::fs::write(layout.join("index.json"), outer).unwrap();

    let multi = format!("{}/multi/final:1", reg.host());
    run(Command::new("skopeo")
        .args(["copy", "--all", "--preserve-digests", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{multi}")));
    let schema2 = format!("{}/schema2/final:1", reg.host());
    run(Command::new("skopeo")
        .args(["copy", "--format", "v2s2", "--dest-tls-verify=false"])
        .arg(format!("docker://{multi}"))
        .arg(format!("docker://{schema2}"))
        .arg("--src-tls-verify=false"));

    let dst = env();
    let out = ok(strata(&dst, &["pull", &multi], &[]), "pull through an index");
    assert_eq!(pulled_digest(&out), nested_digest.to_string(), "Digest is the index's");
    assert_eq!(digests(&dst, &multi), digests(&src, &names[2]), "the amd64 manifest and config");
    let out = ok(strata(&dst, &["pull", &schema2], &[]), "pull of Docker schema 2");
    let raw =
        run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false"]).arg(format!("docker://{schema2}")));
    assert!(raw.contains("application/vnd.docker.distribution.manifest.v2+json"), "{raw}");
    assert_eq!(pulled_digest(&out), Digest::of(raw.as_bytes()).to_string());
    assert_eq!(ok(strata(&dst, &["run", "--rm", &schema2], &[]), "run schema 2 image"), "hello world\n");
}
