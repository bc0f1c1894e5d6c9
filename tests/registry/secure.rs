//! Basic auth with `login`/`logout`, and TLS with a self-signed
//! certificate trusted through `certs.d`.

use crate::registry::{Options, Registry};
use crate::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn basic_auth_needs_login_and_logout_forgets() {
    if !can_run("basic auth") || require_tool("htpasswd", "basic auth").is_none() {
        return;
    }
    let src = env();
    let opts = Options { basic_auth: Some(("alice".into(), "s3cret".into())), ..Options::default() };
    let reg = Registry::start(&src.scratch("registry"), opts);
    let rootfs = src.scratch("busybox.tar");
    busybox_rootfs(&rootfs);
    let name = format!("{}/private/busybox:1", reg.host());
    src.ok(&["import", rootfs.to_str().unwrap(), &name]);
    let err = fails(strata(&src, &["push", &name], &[]), "push without login");
    assert!(err.contains("unauthorized"), "{err}");
    let err = fails(strata(&src, &["login", "-u", "alice", "-p", "wrong", &reg.host()], &[]), "bad login");
    assert!(err.contains("unauthorized"), "{err}");
    let auth_file = src.root.join("distribution/auth.json");
    assert!(!auth_file.exists(), "a failed login stores nothing");
    let out = ok(strata(&src, &["login", "-u", "alice", "-p", "s3cret", &reg.host()], &[]), "login");
    assert!(out.contains("Login Succeeded"), "{out}");
    assert_eq!(std::fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777, 0o600);
    let pushed = pushed_digest(&ok(strata(&src, &["push", &name], &[]), "push after login"));

    let dst = env();
    let err = fails(strata(&dst, &["pull", &name], &[]), "pull without login");
    assert!(err.contains("unauthorized"), "{err}");
    ok(strata(&dst, &["login", "-u", "alice", "-p", "s3cret", &reg.host()], &[]), "login on dst");
    assert_eq!(pulled_digest(&ok(strata(&dst, &["pull", &name], &[]), "pull")), pushed);
    assert_eq!(digests(&dst, &name), digests(&src, &name));
    let out = ok(strata(&dst, &["logout", &reg.host()], &[]), "logout");
    assert!(out.contains(&format!("Removing login credentials for {}", reg.host())), "{out}");
    let err = fails(strata(&dst, &["pull", &name], &[]), "pull after logout");
    assert!(err.contains("unauthorized"), "{err}");
}

#[test]
fn tls_registry_with_a_trusted_self_signed_certificate() {
    if !can_run("tls registry") || require_tool("openssl", "tls registry").is_none() {
        return;
    }
    let src = env();
    let reg = Registry::start(&src.scratch("registry"), Options { tls: true, ..Options::default() });
    let names = seed_images(&src, &reg.host());
    let err = fails(strata(&src, &["push", &names[0]], &[]), "push to an untrusted certificate");
    assert!(err.contains("certificate"), "the https failure is reported: {err}");
    let vars = reg.vars();
    let pushed = pushed_digest(&ok(strata(&src, &["push", &names[2]], &vars), "push over tls"));
    let dst = env();
    let out = ok(strata(&dst, &["pull", &names[2]], &vars), "pull over tls");
    assert_eq!(pulled_digest(&out), pushed);
    assert_eq!(digests(&dst, &names[2]), digests(&src, &names[2]));
    assert_eq!(ok(strata(&dst, &["run", "--rm", &names[2]], &[]), "run"), "hello world\n");
}

#[test]
fn bearer_token_auth_through_a_token_server() {
    if !can_run("bearer token auth") || require_tool("openssl", "bearer token auth").is_none() {
        return;
    }
    let src = env();
    let tokens = crate::token::TokenServer::start(&src.scratch("token"), "s3cret");
    let opts = Options { token: Some((tokens.realm(), tokens.cert.clone())), ..Options::default() };
    let reg = Registry::start(&src.scratch("registry"), opts);
    let names = seed_images(&src, &reg.host());
    let err = fails(strata(&src, &["push", &names[2]], &[]), "push without login");
    assert!(err.contains("unauthorized"), "{err}");
    let out = ok(strata(&src, &["login", "-u", "alice", "-p", "s3cret", &reg.host()], &[]), "login");
    assert!(out.contains("Login Succeeded"), "{out}");
    let pushed = pushed_digest(&ok(strata(&src, &["push", &names[2]], &[]), "push with a token"));
    let dst = env();
    ok(strata(&dst, &["login", "-u", "alice", "-p", "s3cret", &reg.host()], &[]), "login on dst");
    let out = ok(strata(&dst, &["pull", &names[2]], &[]), "pull with a token");
    assert_eq!(pulled_digest(&out), pushed);
    assert_eq!(digests(&dst, &names[2]), digests(&src, &names[2]));
    assert!(tokens.issued.load(std::sync::atomic::Ordering::SeqCst) >= 3, "tokens were asked for");
}

/// A non-loopback IPv4 address of this host, if it has one.
fn host_address() -> Option<String> {
    let out = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let cidr = text.lines().find_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))?.to_owned();
    cidr.split('/').next().map(str::to_owned)
}

#[test]
fn plain_http_beyond_loopback_needs_insecure_registry() {
    if !can_run("insecure registry") {
        return;
    }
    let Some(address) = host_address() else {
        // A host property, not a missing tool: said, not failed.
        eprintln!(
            "skipped: plain_http_beyond_loopback_needs_insecure_registry: this host has no non-loopback IPv4 address"
        );
        return;
    };
    let src = env();
    let reg = Registry::start(&src.scratch("registry"), Options { address: Some(address), ..Options::default() });
    let rootfs = src.scratch("busybox.tar");
    busybox_rootfs(&rootfs);
    let name = format!("{}/plain/busybox:1", reg.host());
    src.ok(&["import", rootfs.to_str().unwrap(), &name]);
    let err = fails(strata(&src, &["push", &name], &[]), "plain http push without the flag");
    assert!(err.contains("--insecure-registry"), "{err}");
    assert_eq!(reg.requests("PUT") + reg.requests("POST"), 0, "nothing sent in the clear");
    let pushed = pushed_digest(&ok(strata(&src, &["push", "--insecure-registry", &name], &[]), "push with the flag"));
    let dst = env();
    fails(strata(&dst, &["pull", &name], &[]), "plain http pull without the flag");
    let out = ok(strata(&dst, &["pull", "--insecure-registry", &name], &[]), "pull with the flag");
    assert_eq!(pulled_digest(&out), pushed);
}
