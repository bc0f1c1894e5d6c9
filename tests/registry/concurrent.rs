//! Two pulls of images sharing layers, started together: both succeed and
//! the shared layer is downloaded and applied once (the chain lock).

use crate::registry::{Options, Registry};
use crate::roundtrip::layer_digests;
use crate::*;
use std::process::{Command, Stdio};

#[test]
fn concurrent_pulls_share_each_layer_once() {
    if !can_run("concurrent pulls") {
        return;
    }
    let src = env();
    let reg = Registry::start(&src.scratch("registry"), Options::default());
    let names = seed_images(&src, &reg.host());
    let other = format!("{}/acme/other:1", reg.host());
    let extra = src.scratch("other.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&extra).unwrap());
        file(&mut b, "other.txt", b"other\n", 0o644);
        b.finish().unwrap();
    }
    src.ok(&["import", "--base", &names[0], extra.to_str().unwrap(), &other]);
    for n in [&names[2], &other] {
        ok(strata(&src, &["push", n], &[]), "push");
    }
    let shared = layer_digests(&src, &names[0])[0].clone();
    let before = reg.blob_gets(&shared);

    let dst = env();
    dst.ok(&["images"]);
    let spawn = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(&dst.root)
            .args(["pull", name])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(&names[2]), spawn(&other));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (a, b) = (ok(a, "first concurrent pull"), ok(b, "second concurrent pull"));
    assert_eq!(reg.blob_gets(&shared) - before, 1, "shared layer fetched once:\n{a}\n{b}");
    let engine = dst.engine();
    assert_eq!(engine.layers().list().unwrap().len(), 3, "busybox + /app + other.txt, each once");
    assert_eq!(ok(strata(&dst, &["run", "--rm", &names[2]], &[]), "run"), "hello world\n");
    assert_eq!(ok(strata(&dst, &["run", "--rm", &other, "cat", "/other.txt"], &[]), "run"), "other\n");
}
