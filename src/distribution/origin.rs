//! Where a registry's credentials may go. Pure: URLs in, decisions out.
//!
//! **"Same registry"** is the RFC 6454 origin of the URL the client
//! chose for it: scheme, host (lower-cased, IP literals normalised, so
//! `127.1` is `127.0.0.1`) and port (the scheme's default filled in, so
//! `https://r` is `https://r:443`). It is what distribution's client keys
//! its challenges by (`challenge.simpleManager`: lower-cased host plus
//! `canonicalAddr`'s default port, with the scheme) and what containerd's
//! pusher compares before it drops its authorizer for an upload location
//! on another `scheme://host:port`.
//!
//! The rules, each enforced in `client.rs`:
//!
//! - **`Authorization` goes only to the registry's origin.** A request to
//!   any other origin — a redirect to blob storage, an absolute upload
//!   `Location` naming another host, the same host on the other scheme or
//!   port — is sent without it. Same-origin redirects keep it (Go's
//!   client and so Docker and containerd do too).
//! - **Only the registry's own challenges are answered.** A `401` from
//!   another origin is an error, never a reason to fetch a token or send
//!   the stored credentials. containerd gets the same effect by looking
//!   credentials up by the challenging host; strata's client carries one
//!   registry's credentials, so it refuses instead.
//! - **The token realm must be HTTPS** (any host: Docker Hub's realm is
//!   `auth.docker.io`, not the registry's host). Plain `http://` is
//!   allowed only when the registry and the realm are *both* loopback
//!   (`localhost`, 127.0.0.0/8, `::1`, by name or literal, never by DNS:
//!   a remote registry naming `http://127.0.0.1:5001` would have root's
//!   credentials sent to whatever local user listens there), or with
//!   `--insecure-registry`, where the challenge itself travelled in the
//!   clear anyway. containerd and Docker accept any realm; this is
//!   stricter on purpose.
//! - **Bearer tokens follow the first rule**: a token the realm gave for
//!   registry A is attached only to requests to A's origin.

use super::{is_loopback, DistributionError};
use url::Url;

/// Redirects followed for one request (Go's `http.Client` and
/// containerd's resolver stop after 10).
pub const MAX_REDIRECTS: u32 = 10;

/// A URL's origin: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: url::Host<String>,
    port: u16,
}

impl Origin {
    /// The origin of an `http`/`https` URL with a host; `None` otherwise.
    pub fn of(url: &Url) -> Option<Origin> {
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host()?.to_owned(),
            port: url.port_or_known_default()?,
        })
    }

    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// A loopback host, named (`localhost`) or literal; never resolved.
    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.host.to_string())
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Checks the realm of `registry`'s bearer challenge; returns its
/// origin. `registry` is the name the user gave (for messages),
/// `registry_origin` where the challenge came from.
pub fn check_realm(
    registry: &str,
    registry_origin: &Origin,
    realm: &str,
    insecure: bool,
    with_credentials: bool,
) -> Result<Origin, DistributionError> {
    let refuse = |reason: String| DistributionError::RealmRefused {
        realm: realm.to_owned(),
        reason,
        refused: if with_credentials { "send credentials" } else { "ask it for a token" },
        registry: registry.to_owned(),
    };
    let url = Url::parse(realm).map_err(|e| refuse(format!("is not a URL ({e})")))?;
    let origin = Origin::of(&url).ok_or_else(|| refuse("is not an http(s) URL with a host".into()))?;
    if origin.is_https() || insecure || (origin.is_loopback() && registry_origin.is_loopback()) {
        return Ok(origin);
    }
    Err(refuse(
        "is not HTTPS (plain HTTP is allowed only when the registry and the realm are both on loopback, \
         or with --insecure-registry)"
            .into(),
    ))
}

/// Whether `status` is a redirect strata follows for `method`: 307 and
/// 308 for every method (the body is sent again, as RFC 9110 says), 301,
/// 302 and 303 only for `GET`/`HEAD` (for anything else they would turn
/// it into a `GET`, which no registry API asks for).
pub fn follows(status: u16, method: &str) -> bool {
    match status {
        307 | 308 => true,
        301..=303 => method == "GET" || method == "HEAD",
        _ => false,
    }
}

/// `location` resolved against the URL it answered (RFC 3986 §5), for an
/// `http`/`https` target with a host.
pub fn resolve(base: &Url, location: &str) -> Result<Url, String> {
    let url = base.join(location).map_err(|e| format!("bad location {location:?}: {e}"))?;
    match Origin::of(&url) {
        Some(_) => Ok(url),
        None => Err(format!("location {location:?} is not an http(s) URL with a host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(u: &str) -> Origin {
        Origin::of(&Url::parse(u).unwrap()).unwrap()
    }

    #[test]
    fn same_registry_is_scheme_host_and_port() {
        let reg = origin("https://Registry.Example:443/v2/");
        for same in
            ["https://registry.example/v2/x", "https://REGISTRY.example:443/other?q#f", "https://u:p@registry.example/"]
        {
            assert_eq!(origin(same), reg, "{same}");
        }
        for other in [
            "http://registry.example/v2/",
            "https://registry.example:5000/v2/",
            "https://registry.example.evil/v2/",
            "https://evil/registry.example",
            "https://sub.registry.example/",
        ] {
            assert_ne!(origin(other), reg, "{other}");
        }
        assert_eq!(origin("http://127.1:80/"), origin("http://127.0.0.1/"));
        assert_eq!(origin("http://[::1]:5000/").to_string(), "http://[::1]:5000");
        assert_eq!(reg.to_string(), "https://registry.example:443");
        assert!(Origin::of(&Url::parse("file:///etc/passwd").unwrap()).is_none());
    }

    #[test]
    fn loopback_is_by_name_or_literal() {
        for u in ["http://localhost:1/", "http://127.0.0.2/", "http://[::1]/", "http://LOCALHOST/"] {
            assert!(origin(u).is_loopback(), "{u}");
        }
        for u in ["http://vm/", "http://localhost.evil/", "http://192.0.2.1/", "http://[fd00::1]/"] {
            assert!(!origin(u).is_loopback(), "{u}");
        }
    }

    #[test]
    fn realm_must_be_https_unless_both_loopback_or_insecure() {
        let remote = origin("https://registry.example");
        let local = origin("http://127.0.0.1:5000");
        let ok = |reg: &Origin, realm: &str, insecure: bool| check_realm("r", reg, realm, insecure, true).is_ok();
        assert!(ok(&remote, "https://auth.example/token", false), "https on another host");
        assert!(ok(&remote, "https://127.0.0.1:5001/token", false), "https on loopback");
        assert!(ok(&local, "http://127.0.0.2:5001/token", false), "both on loopback");
        assert!(ok(&local, "http://localhost:5001/token", false));
        assert!(!ok(&remote, "http://auth.example/token", false), "plain http off loopback");
        assert!(!ok(&remote, "http://127.0.0.1:5001/token", false), "loopback realm, remote registry");
        assert!(!ok(&local, "http://192.0.2.1:5001/token", false), "remote realm, loopback registry");
        assert!(!ok(&local, "http://vm:5001/token", false), "a name is not loopback unless it is localhost");
        assert!(ok(&remote, "http://auth.example/token", true), "--insecure-registry");
        for bad in ["", "/token", "ftp://auth.example/token", "file:///token", "https://"] {
            assert!(!ok(&local, bad, true), "{bad:?}");
        }
        let e = check_realm("127.0.0.1:5000", &local, "http://evil:5000/token", false, true).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("token realm http://evil:5000/token is not HTTPS")
                && msg.contains("refusing to send credentials for registry 127.0.0.1:5000"),
            "{msg}"
        );
        let e = check_realm("r", &local, "http://evil/t", false, false).unwrap_err();
        assert!(e.to_string().contains("refusing to ask it for a token for registry r"), "{e}");
    }

    #[test]
    fn redirects_followed_and_resolved() {
        assert!(follows(307, "PUT") && follows(308, "PATCH") && follows(302, "GET") && follows(301, "HEAD"));
        assert!(!follows(302, "PUT") && !follows(303, "POST") && !follows(304, "GET") && !follows(200, "GET"));
        let base = Url::parse("https://r.example:5000/v2/a/blobs/sha256:1").unwrap();
        assert_eq!(resolve(&base, "/s/1").unwrap().as_str(), "https://r.example:5000/s/1");
        assert_eq!(resolve(&base, "//cdn.example/b").unwrap().as_str(), "https://cdn.example/b");
        assert_eq!(resolve(&base, "http://cdn.example/b?sig=x").unwrap().as_str(), "http://cdn.example/b?sig=x");
        assert_eq!(resolve(&base, "x/y").unwrap().as_str(), "https://r.example:5000/v2/a/blobs/x/y");
        assert!(resolve(&base, "sha256:2").is_err(), "an absolute URI of another scheme");
        assert!(resolve(&base, "file:///etc/passwd").is_err());
        assert!(resolve(&base, "http://[::1").is_err());
    }
}
