//! A registry that misbehaves (through the fault proxy): a corrupted blob,
//! a truncated response, 500s. Either a clear error with the store exactly
//! as before, or a successful retry.

use crate::proxy::{Fault, Proxy};
use crate::registry::{Options, Registry};
use crate::roundtrip::layer_digests;
use crate::*;
use std::sync::atomic::Ordering;

/// A registry holding the seed images, and a destination root.
fn setup() -> (Env, Registry, [String; 3], Env, Vec<String>) {
    let src = env();
    let reg = Registry::start(&src.scratch("registry"), Options::default());
    let names = seed_images(&src, &reg.host());
    ok(strata(&src, &["push", &names[2]], &[]), "push");
    let layers = layer_digests(&src, &names[2]);
    // The destination holds an unrelated image, so its stores exist and
    // "unchanged" compares real content.
    let dst = env();
    let tar = dst.scratch("unrelated.tar");
    crate::common::one_file_tar(&tar, "unrelated.txt", b"x\n");
    dst.ok(&["import", tar.to_str().unwrap(), "unrelated:1"]);
    (src, reg, names, dst, layers)
}

/// `name` with the proxy as its registry.
fn via(proxy: &Proxy, name: &str) -> String {
    format!("{}/{}", proxy.host(), name.split_once('/').unwrap().1)
}

#[test]
fn corrupted_blob_is_refused_and_leaves_nothing() {
    if !can_run("corrupted blob") {
        return;
    }
    let (_src, reg, names, dst, layers) = setup();
    let proxy = Proxy::start(reg.port, &format!("/blobs/{}", layers[0]), Fault::Corrupt, usize::MAX);
    let before = dst.inventory();
    let err = fails(strata(&dst, &["pull", &via(&proxy, &names[2])], &[]), "pull of a corrupted blob");
    assert!(err.contains("digest mismatch") && err.contains(&layers[0]), "{err}");
    assert!(proxy.injected.load(Ordering::SeqCst) >= 1);
    assert_eq!(dst.inventory(), before, "no blob, layer or image left behind");
}

#[test]
fn truncated_response_resumes_with_a_range_request() {
    if !can_run("truncated blob") {
        return;
    }
    let (src, reg, names, dst, layers) = setup();
    let proxy = Proxy::start(reg.port, &format!("/blobs/{}", layers[0]), Fault::Truncate, 1);
    let out = ok(strata(&dst, &["pull", &via(&proxy, &names[2])], &[]), "pull through one truncation");
    assert_eq!(proxy.injected.load(Ordering::SeqCst), 1);
    assert_eq!(pulled_digest(&out), digests(&src, &names[2]).0);
    assert!(reg.blob_gets(&layers[0]) >= 2, "the rest was fetched again:\n{}", reg.log_text());
    assert!(reg.log_text().contains("\" 206 "), "with a range request:\n{}", reg.log_text());
}

#[test]
fn always_truncated_fails_cleanly() {
    if !can_run("always truncated") {
        return;
    }
    let (_src, reg, names, dst, layers) = setup();
    let proxy = Proxy::start(reg.port, &format!("/blobs/{}", layers[0]), Fault::Truncate, usize::MAX);
    let before = dst.inventory();
    let err = fails(strata(&dst, &["pull", &via(&proxy, &names[2])], &[]), "pull that never completes");
    assert!(err.contains("broke off"), "{err}");
    assert_eq!(dst.inventory(), before, "store unchanged");
}

#[test]
fn three_500s_in_a_row_are_retried() {
    if !can_run("500 retries") {
        return;
    }
    let (src, reg, names, dst, layers) = setup();
    for pattern in ["/manifests/", &format!("/blobs/{}", layers[1])] {
        let proxy = Proxy::start(reg.port, pattern, Fault::Error500, 3);
        let name = via(&proxy, &names[2]);
        let out = ok(strata(&dst, &["pull", &name], &[]), "pull through three 500s");
        assert_eq!(proxy.injected.load(Ordering::SeqCst), 3, "{pattern}");
        assert_eq!(pulled_digest(&out), digests(&src, &names[2]).0);
        dst.ok(&["rmi", &name]);
    }
}

#[test]
fn chunked_upload_restarts_its_session_after_failures() {
    if !can_run("upload restart") {
        return;
    }
    let src = env();
    let reg = Registry::start(&src.scratch("registry"), Options::default());
    let proxy = Proxy::start(reg.port, "PATCH ", Fault::Error500, 5);
    let rootfs = src.scratch("busybox.tar");
    busybox_rootfs(&rootfs);
    let name = format!("{}/restart/busybox:1", proxy.host());
    src.ok(&["import", rootfs.to_str().unwrap(), &name]);
    // Every attempt at the first chunk fails (1 + 4 retries): the upload
    // starts over in a new session and completes.
    let out = ok(strata(&src, &["push", "--chunk-size", "524288", &name], &[]), "push through failing PATCHes");
    assert_eq!(proxy.injected.load(Ordering::SeqCst), 5);
    let pushed = pushed_digest(&out);
    let dst = env();
    let direct = format!("{}/restart/busybox:1", reg.host());
    assert_eq!(pulled_digest(&ok(strata(&dst, &["pull", &direct], &[]), "pull back")), pushed);
}

/// A pull that fails after registering a layer removes it again, unless
/// another operation in progress claims it (a concurrent pull that found
/// it present and is about to store an image on it): that layer stays.
#[test]
fn a_failed_pull_keeps_a_layer_another_operation_claims() {
    if !can_run("rollback vs claims") {
        return;
    }
    let (src, reg, names, dst, layers) = setup();
    assert_eq!(layers.len(), 2, "busybox + /app");
    let proxy = Proxy::start(reg.port, &format!("/blobs/{}", layers[1]), Fault::Corrupt, usize::MAX);
    let bottom = {
        let e = src.engine();
        e.images.get(&e.images.resolve(&names[2]).unwrap()).unwrap().chain_ids()[0].clone()
    };
    let engine = dst.engine();
    let claim = engine.layers().claim(std::slice::from_ref(&bottom)).unwrap();
    let pull = ["pull", "--max-concurrent-downloads", "1", &via(&proxy, &names[2])];
    let err = fails(strata(&dst, &pull, &[]), "pull whose top layer is corrupted");
    assert!(err.contains("digest mismatch") && err.contains(&layers[1]), "{err}");
    assert!(engine.layers().get(&bottom).unwrap().is_some(), "the claimed bottom layer was kept");
    // While claimed, removal says why; unclaimed, the layer goes.
    let e = engine.layers().remove(&bottom).expect_err("claimed").to_string();
    assert!(e.contains("claimed by an operation in progress"), "{e}");
    drop(claim);
    engine.layers().remove(&bottom).unwrap();
    assert!(engine.layers().get(&bottom).unwrap().is_none());
}
