//! Docker-style image references: `busybox`, `busybox:1.36`,
//! `localhost:5000/team/app:v2`, `alpine@sha256:…`.
//!
//! The grammar is distribution's (`reference/reference.go`):
//!
//! ```text
//! reference      := name [ ":" tag ] [ "@" digest ]
//! name           := [ domain "/" ] path-component ( "/" path-component )*
//! domain         := domain-component ( "." domain-component )* [ ":" port ]
//!                 | "[" ipv6 "]" [ ":" port ]
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component := [a-z0-9]+ ( separator [a-z0-9]+ )*
//! separator      := "_" | "__" | "." | "-"+
//! tag            := [\w][\w.-]{0,127}
//! ```
//!
//! As in Docker, the first `/`-separated part is a registry only if it
//! contains `.` or `:` or is `localhost`; otherwise the name is on Docker
//! Hub. Hub names are kept in their familiar form — `docker.io/library/busybox`
//! parses to repository `busybox` with no registry — so what strata displays
//! matches `docker images`; [`Reference::full_name`] gives the fully
//! qualified form for registries and annotations.

use crate::digest::{Digest, DigestError};
use std::fmt;
use std::str::FromStr;

/// Docker Hub's canonical domain.
pub const DOCKER_HUB: &str = "docker.io";
/// Hub's namespace for official images (`busybox` is `library/busybox`).
const OFFICIAL_NAMESPACE: &str = "library/";
/// The tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest name (domain and path) distribution accepts.
const NAME_MAX: usize = 255;
/// Longest tag distribution accepts.
const TAG_MAX: usize = 128;

/// Errors from parsing a reference; each carries the input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: empty reference")]
    Empty,
    #[error("invalid reference {reference:?}: repository name must be lowercase")]
    Uppercase { reference: String },
    #[error("invalid reference {reference:?}: path component {component:?} must be lowercase letters and digits separated by '.', '_', '__' or '-'")]
    PathComponent { reference: String, component: String },
    #[error("invalid reference {reference:?}: bad registry {domain:?}")]
    Domain { reference: String, domain: String },
    #[error("invalid reference {reference:?}: tag {tag:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")]
    Tag { reference: String, tag: String },
    #[error("invalid reference {reference:?}: {source}")]
    Digest { reference: String, source: DigestError },
    #[error("invalid reference {reference:?}: name longer than {NAME_MAX} characters")]
    NameTooLong { reference: String },
    #[error("invalid reference {reference:?}: a repository cannot be 64 hex characters (it reads as an image ID)")]
    HexRepository { reference: String },
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// The registry (`localhost:5000`, `quay.io`); `None` is Docker Hub.
    pub registry: Option<String>,
    /// The repository path; for Docker Hub in familiar form, without the
    /// `library/` namespace.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference the way `docker pull`/`docker run` do: a bare
    /// name gets the tag `latest` (unless it carries a digest).
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse_as_written(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(r)
    }

    /// Parses a reference without adding a default tag (for filters such as
    /// `images busybox`, which match every tag of a repository).
    pub fn parse_as_written(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let err_ref = || s.to_owned();
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = d.parse().map_err(|source| ReferenceError::Digest { reference: err_ref(), source })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a port.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].find(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(ReferenceError::Tag { reference: err_ref(), tag: tag.to_owned() });
            }
        }
        if name.len() > NAME_MAX {
            return Err(ReferenceError::NameTooLong { reference: err_ref() });
        }
        let (domain, path) = split_domain(name);
        if let Some(domain) = domain {
            if !valid_domain(domain) {
                return Err(ReferenceError::Domain { reference: err_ref(), domain: domain.to_owned() });
            }
        }
        if path.is_empty() {
            return Err(ReferenceError::PathComponent { reference: err_ref(), component: String::new() });
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase { reference: err_ref() });
        }
        if let Some(bad) = path.split('/').find(|c| !valid_path_component(c)) {
            return Err(ReferenceError::PathComponent { reference: err_ref(), component: bad.to_owned() });
        }
        let registry = match domain {
            Some("index.docker.io") | Some(DOCKER_HUB) => None,
            d => d.map(str::to_owned),
        };
        let repository = match registry {
            None => path.strip_prefix(OFFICIAL_NAMESPACE).unwrap_or(path),
            Some(_) => path,
        };
        if registry.is_none() && Digest::from_hex(repository).is_ok() {
            return Err(ReferenceError::HexRepository { reference: err_ref() });
        }
        Ok(Reference { registry, repository: repository.to_owned(), tag: tag.map(str::to_owned), digest })
    }

    /// The registry's domain, `docker.io` for Docker Hub.
    pub fn domain(&self) -> &str {
        self.registry.as_deref().unwrap_or(DOCKER_HUB)
    }

    /// The repository's path on its registry (`library/busybox` on Hub).
    pub fn remote_path(&self) -> String {
        if self.registry.is_none() && !self.repository.contains('/') {
            format!("{OFFICIAL_NAMESPACE}{}", self.repository)
        } else {
            self.repository.clone()
        }
    }

    /// The familiar name without tag or digest: `busybox`,
    /// `localhost:5000/a/b`.
    pub fn name(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// The fully qualified reference: `docker.io/library/busybox:latest`.
    pub fn full_name(&self) -> String {
        let mut s = format!("{}/{}", self.domain(), self.remote_path());
        self.push_tag_and_digest(&mut s);
        s
    }

    fn push_tag_and_digest(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

/// The familiar form: `busybox:latest`, `localhost:5000/a/b:t`,
/// `repo@sha256:…`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_tag_and_digest(&mut s);
        f.write_str(&s)
    }
}

/// Docker's `splitDockerDomain`: the first component is a domain if it
/// looks like one.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    !b.is_empty() && b.len() <= TAG_MAX && word(b[0]) && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

fn valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    // Between alphanumeric runs: exactly one '.', one or two '_', or any
    // number of '-'.
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|s| s == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => return valid_port(port),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    let component = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
    };
    host.split('.').all(component) && port.map_or(true, valid_port)
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn parses_valid_references() {
        let d = format!("sha256:{}", hex('a'));
        // input, registry ("-": Docker Hub), repository, tag, Display, full_name
        let table = "
            busybox              -  busybox  latest  busybox:latest  docker.io/library/busybox:latest
            busybox:1.36         -  busybox  1.36    busybox:1.36    docker.io/library/busybox:1.36
            acme/my-base-image:1.0  -  acme/my-base-image  1.0  acme/my-base-image:1.0  docker.io/acme/my-base-image:1.0
            localhost:5000/a/b:t  localhost:5000  a/b  t  localhost:5000/a/b:t  localhost:5000/a/b:t
            localhost/x          localhost  x  latest  localhost/x:latest  localhost/x:latest
            docker.io/library/busybox:1  -  busybox  1  busybox:1  docker.io/library/busybox:1
            index.docker.io/acme/x  -  acme/x  latest  acme/x:latest  docker.io/acme/x:latest
            library/busybox      -  busybox  latest  busybox:latest  docker.io/library/busybox:latest
            quay.io/a_b/c__d/e-f--g.h:Tag_1.x-y  quay.io  a_b/c__d/e-f--g.h  Tag_1.x-y  quay.io/a_b/c__d/e-f--g.h:Tag_1.x-y  quay.io/a_b/c__d/e-f--g.h:Tag_1.x-y
            [::1]:5000/x:y       [::1]:5000  x  y  [::1]:5000/x:y  [::1]:5000/x:y
        ";
        for line in table.lines().filter(|l| !l.trim().is_empty()) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let [input, registry, repository, tag, display, full] = cols[..] else {
                panic!("bad table line {line:?}");
            };
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            let registry = Some(registry).filter(|r| *r != "-");
            assert_eq!(r.registry.as_deref(), registry, "{input}");
            assert_eq!(r.repository, repository, "{input}");
            assert_eq!(r.tag.as_deref(), Some(tag), "{input}");
            assert_eq!(r.digest, None, "{input}");
            assert_eq!(r.to_string(), display, "{input}");
            assert_eq!(r.full_name(), full, "{input}");
            // Both forms parse back to the same reference.
            assert_eq!(Reference::parse(display).unwrap(), r, "{input}");
            assert_eq!(Reference::parse(full).unwrap(), r, "{input}");
        }

        let r = Reference::parse(&format!("repo@{d}")).unwrap();
        assert_eq!((r.repository.as_str(), r.tag.as_deref()), ("repo", None));
        assert_eq!(r.digest.as_ref().map(Digest::to_string), Some(d.clone()));
        assert_eq!(r.to_string(), format!("repo@{d}"));
        assert_eq!(r.full_name(), format!("docker.io/library/repo@{d}"));

        let r = Reference::parse(&format!("localhost:5000/r:t@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert!(r.digest.is_some());
        assert_eq!(r.to_string(), format!("localhost:5000/r:t@{d}"));
    }

    #[test]
    fn parse_as_written_adds_no_tag() {
        let r = Reference::parse_as_written("busybox").unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.to_string(), "busybox");
        assert_eq!(r.remote_path(), "library/busybox");
        assert_eq!(r.domain(), "docker.io");
    }

    #[test]
    fn rejects_invalid_references() {
        use ReferenceError as E;
        let long_tag = format!("a:{}", "t".repeat(129));
        let long_name = "a".repeat(256);
        let hex_repo = hex('b');
        type Check = fn(&ReferenceError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            ("", |e| matches!(e, E::Empty)),
            ("Busybox", |e| matches!(e, E::Uppercase { .. })),
            ("acme/Base", |e| matches!(e, E::Uppercase { .. })),
            ("busybox:", |e| matches!(e, E::Tag { .. })),
            ("busybox:.x", |e| matches!(e, E::Tag { .. })),
            ("busybox:a/b", |e| matches!(e, E::Domain { .. })),
            ("busybox:a:b", |e| matches!(e, E::Tag { .. })),
            (&long_tag, |e| matches!(e, E::Tag { .. })),
            (&long_name, |e| matches!(e, E::NameTooLong { .. })),
            ("a//b", |e| matches!(e, E::PathComponent { .. })),
            ("a/b/", |e| matches!(e, E::PathComponent { .. })),
            ("-a", |e| matches!(e, E::PathComponent { .. })),
            ("a..b", |e| matches!(e, E::PathComponent { .. })),
            ("a___b", |e| matches!(e, E::PathComponent { .. })),
            ("a._b", |e| matches!(e, E::PathComponent { .. })),
            ("a b", |e| matches!(e, E::PathComponent { .. })),
            ("-bad.io/x", |e| matches!(e, E::Domain { .. })),
            ("host:port/x", |e| matches!(e, E::Domain { .. })),
            ("localhost:5000/", |e| matches!(e, E::PathComponent { .. })),
            ("repo@sha256:abc", |e| matches!(e, E::Digest { .. })),
            ("repo@md5:abc", |e| matches!(e, E::Digest { .. })),
            (&hex_repo, |e| matches!(e, E::HexRepository { .. })),
        ];
        for (input, check) in cases {
            let err = Reference::parse(input).expect_err(input);
            assert!(check(&err), "{input:?}: unexpected {err:?}");
            // Every message names the reference (except the empty one).
            if !input.is_empty() && !matches!(err, E::NameTooLong { .. }) {
                assert!(err.to_string().contains(&format!("{input:?}")), "{err}");
            }
        }
    }

    #[test]
    fn never_panics_on_prefixes_or_unicode() {
        let inputs = [
            format!("localhost:5000/a_b/c-d:t.1@sha256:{}", hex('c')),
            "café/é:ü@sha256:é".to_owned(),
            "[::1/x".to_owned(),
        ];
        for input in &inputs {
            for (i, _) in input.char_indices() {
                let _ = Reference::parse(&input[..i]);
                let _ = Reference::parse(&input[i..]);
            }
        }
        assert!(matches!(Reference::parse("café"), Err(ReferenceError::PathComponent { .. })));
    }
}
