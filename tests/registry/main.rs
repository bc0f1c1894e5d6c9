//! Registry tier: `strata push`/`pull`/`login` against the real CNCF
//! distribution registry (`docker-registry`, started per test on a free
//! loopback port, killed on drop), with and without basic auth and TLS;
//! skopeo interop both ways; faults injected by a small proxy in front of
//! the registry; concurrent pulls sharing layers. Needs root (data roots
//! on loop-mounted scratch filesystems) and `docker-registry`.

mod bench;
#[path = "../images/common.rs"]
#[allow(dead_code)]
mod common;
mod concurrent;
mod creds;
mod faults;
mod proxy;
mod registry;
mod roundtrip;
mod secure;
mod skopeo;
mod token;

use common::{busybox_rootfs, file, require_root, require_tool, seed_app_tar, Env};
use std::process::{Command, Output};
use strata::scratch::FsKind;

/// Runs strata on `env`'s root with extra environment variables.
pub fn strata(env: &Env, args: &[&str], vars: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(&env.root)
        .arg("--storage-driver")
        .arg(env.driver)
        .args(args)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run strata")
}

/// Asserts success; returns stdout.
pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts failure; returns stderr.
pub fn fails(out: Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} unexpectedly succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

/// Whether the registry tier can run here (root, docker-registry).
pub fn can_run(what: &str) -> bool {
    require_root(what).is_some() && require_tool("docker-registry", what).is_some()
}

/// A fresh data root on its own scratch filesystem.
pub fn env() -> Env {
    Env::new(FsKind::Ext4, "overlay")
}

/// The seed's images on `env`, named under `prefix` (a registry):
/// `<prefix>/busybox:latest`, `<prefix>/acme/my-base-image:1.0` (+ /app)
/// and `<prefix>/acme/my-final-image:1.0` (+ CMD). Returns their names.
pub fn seed_images(env: &Env, prefix: &str) -> [String; 3] {
    let rootfs = env.scratch("busybox.tar");
    busybox_rootfs(&rootfs);
    let app = env.scratch("app.tar");
    seed_app_tar(&app);
    let names = [
        format!("{prefix}/busybox:latest"),
        format!("{prefix}/acme/my-base-image:1.0"),
        format!("{prefix}/acme/my-final-image:1.0"),
    ];
    env.ok(&["import", rootfs.to_str().unwrap(), &names[0]]);
    env.ok(&["import", "--base", &names[0], app.to_str().unwrap(), &names[1]]);
    env.ok(&["import", "--base", &names[1], "--change", "CMD /app/hello.sh", &names[2]]);
    names
}

/// `(manifest digest, config digest)` of a local image, from its inspect
/// output and its manifest in the content store.
pub fn digests(env: &Env, name: &str) -> (String, String) {
    let engine = env.engine();
    let id = engine.images.resolve(name).unwrap();
    let img = engine.images.get(&id).unwrap();
    (img.meta.manifest.to_string(), id.to_string())
}

/// The `Digest:` line of pull output.
pub fn pulled_digest(out: &str) -> String {
    out.lines().find_map(|l| l.strip_prefix("Digest: ")).unwrap_or_else(|| panic!("no Digest line: {out}")).to_owned()
}

/// The digest `push` printed (`<tag>: digest: sha256:… size: N`).
pub fn pushed_digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split_once(": digest: ").map(|(_, r)| r.split(' ').next().unwrap().to_owned()))
        .unwrap_or_else(|| panic!("no digest line: {out}"))
}
