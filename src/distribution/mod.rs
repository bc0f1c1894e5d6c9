//! Distribution: `pull` and `push` over the OCI Distribution API (what
//! Docker Hub, Harbor, GHCR and CNCF `distribution` speak), and the
//! credentials `login` stores.
//!
//! ```text
//! pull:  GET manifests/<tag> ─▶ (index? pick linux/amd64, GET by digest)
//!        GET blobs/<config> ─▶ chain IDs ─▶ "Already exists" for present layers
//!        missing layers, N workers (default 3), each holding its chain's lock:
//!          parent registered? ─▶ GET blob ─▶ sha256 ─▶ apply ─▶ commit layer
//!          else              ─▶ GET blob ─▶ content store (verified) ─▶
//!                              wait for parent ─▶ apply from the store
//!        config + manifest ─▶ content store ─▶ image store ─▶ tag
//! push:  HEAD blobs/<d> ─▶ (mount from a sibling repo) ─▶ POST uploads
//!        ─▶ PUT (monolithic) or PATCH… + PUT (chunked) ─▶ PUT manifest
//! ```
//!
//! The transport (`client`) is blocking `ureq` over rustls: the system's
//! roots plus `certs.d/<host[:port]>/*.crt` (Docker's convention; the
//! directory is `/etc/strata/certs.d`, or `$STRATA_CERTS_D`). Plain HTTP
//! is used only for loopback registries (`localhost`, 127.0.0.0/8, `::1`,
//! as Docker does) or with `--insecure-registry`, and only after HTTPS
//! failed. Requests are retried with exponential back-off on 5xx, 429 and
//! dropped connections; a blob download that breaks off resumes with a
//! `Range` request. Auth (`auth`): anonymous, basic, and the bearer-token
//! challenge flow. Redirects are followed by the client itself (at most
//! 10), so it decides at every hop what travels with the request.
//!
//! **Credentials stay with their registry** (`origin` has the rules and
//! why): the stored credentials and the tokens bought with them are sent
//! only to the registry's origin (`scheme://host:port`) and to the token
//! realm that origin's own challenge names, over HTTPS (plain HTTP only
//! when registry and realm are both loopback, or with
//! `--insecure-registry`). A redirect or upload `Location` on another
//! origin is followed without `Authorization`, and a `401` from it is an
//! error, not a reason to authenticate.
//!
//! **Architecture invariant:** nothing half-pulled is visible. Every blob
//! is verified against its descriptor's digest before it is committed to
//! the content store or a layer is committed, and a failed pull removes
//! the layers and blobs it added, so the store is as before.

pub mod auth;
pub mod challenge_fuzz;
mod client;
pub mod credentials;
mod fetch;
pub mod origin;
pub mod progress;
mod pull;
mod push;
mod tls;

pub use client::{Client, RegistryOptions};
pub use pull::{pull, PullOptions, Pulled};
pub use push::{push, PushOptions, Pushed};

use crate::digest::Digest;
use crate::root::IoError;
use std::path::{Path, PathBuf};

/// Where Docker Hub's registry API lives (`docker.io` is its name only).
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Largest manifest or index accepted (distribution's own limit is 4 MiB).
pub const MANIFEST_MAX: u64 = 4 << 20;

/// Errors of pull, push and login.
#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("credentials file {path}: {detail}")]
    Credentials { path: PathBuf, detail: String },
    #[error("certificates {path}: {detail}")]
    Certificates { path: PathBuf, detail: String },
    #[error("{method} {url}: {status} {detail}")]
    Status { method: String, url: String, status: u16, detail: String },
    #[error("{method} {url}: {detail}")]
    Transport { method: String, url: String, detail: String },
    #[error("{registry}: https failed ({detail}) and plain http is allowed only for loopback registries or with --insecure-registry")]
    HttpsRequired { registry: String, detail: String },
    #[error("{registry}: https failed ({https}), and so did plain http ({http})")]
    Fallback { registry: String, https: String, http: String },
    #[error("{registry}: unauthorized: {detail}")]
    Unauthorized { registry: String, detail: String },
    /// A bearer challenge named a realm credentials may not go to.
    #[error("token realm {realm} {reason}; refusing to {refused} for registry {registry}")]
    RealmRefused { realm: String, reason: String, refused: &'static str, registry: String },
    /// A `401` from a host that is not the registry (a redirect target,
    /// an upload location elsewhere).
    #[error("{method} {url}: 401 unauthorized from {origin}, which is not registry {registry} ({registry_origin}); refusing to send its credentials there")]
    ForeignChallenge { method: String, url: String, origin: String, registry: String, registry_origin: String },
    #[error("{method} {url}: {detail}")]
    Redirect { method: String, url: String, detail: String },
    #[error("manifest for {reference} not found: manifest unknown")]
    ManifestUnknown { reference: String },
    #[error("{reference}: no manifest for platform {platform} in the index (it has: {available})")]
    NoPlatform { reference: String, platform: String, available: String },
    #[error("{what} {digest}: unsupported media type {media_type:?}")]
    MediaType { what: &'static str, digest: Digest, media_type: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { what: String, expected: Digest, actual: Digest },
    #[error("{what} {digest}: larger than {limit} bytes")]
    TooLarge { what: &'static str, digest: String, limit: u64 },
    #[error("{what}: {source}")]
    Oci { what: String, source: crate::image::oci::OciError },
    #[error("layer {digest}: {source}")]
    Layer { digest: Digest, source: crate::image::layers::LayerError },
    #[error("image {0} not found locally: tag it with the registry's name first")]
    NoSuchImage(String),
    #[error(transparent)]
    Image(#[from] crate::image::images::ImageError),
    #[error(transparent)]
    Content(#[from] crate::content::ContentError),
    #[error(transparent)]
    Store(#[from] crate::root::RootError),
    /// Another worker failed; its error is the one reported.
    #[error("aborted")]
    Aborted,
}

impl DistributionError {
    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> DistributionError {
        DistributionError::Io(IoError::new(path.as_ref(), source))
    }
}

/// Whether `registry` (`host[:port]`) is a loopback address, for which
/// plain HTTP needs no flag.
pub fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// The host part of `host[:port]` (brackets of an IPv6 literal removed).
fn host_of(registry: &str) -> &str {
    if let Some(v6) = registry.strip_prefix('[') {
        return v6.split_once(']').map_or(v6, |(h, _)| h);
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    }
}

/// The host the API is reached at for a registry name (Docker Hub's name
/// and its API host differ).
pub fn api_host(registry: &str) -> &str {
    match registry {
        crate::image::reference::DOCKER_HUB | "index.docker.io" => DOCKER_HUB_API,
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_like_docker() {
        for r in ["localhost", "localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000", "::1", "LOCALHOST:1"] {
            assert!(is_loopback(r), "{r}");
        }
        for r in ["example.com", "10.0.0.1:5000", "[fe80::1]:5000", "localhost.example.com", "128.0.0.1"] {
            assert!(!is_loopback(r), "{r}");
        }
        assert_eq!(api_host("docker.io"), DOCKER_HUB_API);
        assert_eq!(api_host("quay.io"), "quay.io");
    }
}
