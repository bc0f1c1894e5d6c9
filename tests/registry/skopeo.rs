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
