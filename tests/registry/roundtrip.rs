//! Push strata-built images, pull them on an empty root: same manifest and
//! config digests, only missing layers transferred, and the seed's final
//! image runs from the pulled layers.

use crate::registry::{Options, Registry};
use crate::*;

/// Layer blob digests of a local image, bottom first.
pub fn layer_digests(env: &Env, name: &str) -> Vec<String> {
    let engine = env.engine();
    let img = engine.images.get(&engine.images.resolve(name).unwrap()).unwrap();
    engine.images.manifest(&img).unwrap().1.layers.iter().map(|l| l.digest.to_string()).collect()
}

#[test]
fn seed_images_round_trip_through_the_registry() {
    if !can_run("registry round trip") {
        return;
    }
    let src = env();
    let reg = Registry::start(&src.scratch("registry"), Options::default());
    let names = seed_images(&src, &reg.host());
    for n in &names {
        let out = ok(strata(&src, &["push", n], &[]), "push");
        assert!(out.contains("The push refers to repository ["), "{out}");
        assert_eq!(pushed_digest(&out), digests(&src, n).0, "push sends the stored manifest byte for byte");
    }
    let layers = layer_digests(&src, &names[2]);
    assert_eq!(layers.len(), 2, "busybox layer + /app layer");
    let gets_after_push: Vec<usize> = layers.iter().map(|d| reg.blob_gets(d)).collect();

    let dst = env();
    let out = ok(strata(&dst, &["pull", &names[0]], &[]), "pull busybox");
    assert!(out.contains(&format!("{}: Pull complete", &layers[0][7..19])), "{out}");
    assert!(out.contains(&format!("Status: Downloaded newer image for {}", names[0])), "{out}");
    let out = ok(strata(&dst, &["pull", &names[2]], &[]), "pull final");
    assert!(out.contains(&format!("{}: Already exists", &layers[0][7..19])), "{out}");
    assert!(out.contains(&format!("{}: Pull complete", &layers[1][7..19])), "{out}");
    assert_eq!(pulled_digest(&out), digests(&src, &names[2]).0);
    let out = ok(strata(&dst, &["pull", &names[1]], &[]), "pull base");
    assert_eq!(out.matches("Already exists").count(), 2, "{out}");
    // Each layer blob crossed the wire once: the base layer was present
    // when the final image was pulled, and both when the base image was.
    for (d, before) in layers.iter().zip(gets_after_push) {
        assert_eq!(reg.blob_gets(d) - before, 1, "GETs of {d}:\n{}", reg.log_text());
    }
    for n in &names {
        assert_eq!(digests(&dst, n), digests(&src, n), "manifest and config digests of {n}");
    }
    let out = ok(strata(&dst, &["pull", &names[2]], &[]), "pull again");
    assert!(out.contains("Status: Image is up to date for"), "{out}");
    let hello = ok(strata(&dst, &["run", "--rm", &names[2]], &[]), "run the pulled final image");
    assert_eq!(hello, "hello world\n");
    let ls = ok(strata(&dst, &["run", "--rm", &names[1], "ls", "/app"], &[]), "run the pulled base image");
    assert_eq!(ls, "hello.sh\n");
}

#[test]
fn chunked_push_then_pull_by_digest() {
    if !can_run("chunked push") {
        return;
    }
    let src = env();
    let reg = Registry::start(&src.scratch("registry"), Options::default());
    let rootfs = src.scratch("busybox.tar");
    busybox_rootfs(&rootfs);
    let name = format!("{}/chunky/busybox:1", reg.host());
    src.ok(&["import", rootfs.to_str().unwrap(), &name]);
    let out = ok(strata(&src, &["push", "--chunk-size", "262144", &name], &[]), "chunked push");
    let digest = pushed_digest(&out);
    assert!(reg.requests("PATCH") > 2, "a 1+ MB layer in 256 KiB chunks:\n{}", reg.log_text());
    let dst = env();
    let by_digest = format!("{}/chunky/busybox@{digest}", reg.host());
    let out = ok(strata(&dst, &["pull", &by_digest], &[]), "pull by digest");
    assert_eq!(pulled_digest(&out), digest);
    let engine = dst.engine();
    let ids = engine.images.list().unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].to_string(), digests(&src, &name).1, "same config digest");
    assert!(engine.images.tags().unwrap().is_empty(), "a pull by digest tags nothing");
    drop(engine);
    let before = dst.inventory();
    let missing = format!("{}/chunky/busybox:nope", reg.host());
    let err = fails(strata(&dst, &["pull", &missing], &[]), "pull of a missing tag");
    assert!(err.contains("not found: manifest unknown"), "{err}");
    assert_eq!(dst.inventory(), before);
}
