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
/// Longest name distribution accepts, counted on the fully qualified
/// form (`docker.io/library/busybox`).
const NAME_MAX: usize = 255;
/// Longest tag distribution accepts.
const TAG_MAX: usize = 128;

/// Errors from parsing a reference; each carries the input and, where
/// one part of it is at fault, that part ([`ReferenceError::part`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: empty reference")]
    Empty,
    #[error("invalid reference {reference:?}: repository name component {component:?} must be lowercase")]
    Uppercase { reference: String, component: String },
    #[error("invalid reference {reference:?}: path component {component:?} must be lowercase letters and digits separated by '.', '_', '__' or '-'")]
    PathComponent { reference: String, component: String },
    #[error("invalid reference {reference:?}: registry {domain:?}: {reason}")]
    Domain { reference: String, domain: String, reason: &'static str },
    #[error("invalid reference {reference:?}: tag {tag:?}: {reason}")]
    Tag { reference: String, tag: String, reason: &'static str },
    #[error("invalid reference {reference:?}: {source}")]
    Digest { reference: String, digest: String, source: DigestError },
    #[error(
        "invalid reference {reference:?}: repository name {name:?} is {length} characters, longer than {NAME_MAX}"
    )]
    NameTooLong { reference: String, name: String, length: usize },
    #[error("invalid reference {reference:?}: a repository cannot be 64 hex characters (it reads as an image ID)")]
    HexRepository { reference: String },
}

impl ReferenceError {
    /// The part of the input the error is about (a component, the
    /// registry, the tag, the digest); `None` for an empty reference or one
    /// whose whole name is at fault.
    pub fn part(&self) -> Option<&str> {
        match self {
            ReferenceError::Uppercase { component, .. } | ReferenceError::PathComponent { component, .. } => {
                Some(component)
            }
            ReferenceError::Domain { domain, .. } => Some(domain),
            ReferenceError::Tag { tag, .. } => Some(tag),
            ReferenceError::Digest { digest, .. } => Some(digest),
            ReferenceError::Empty | ReferenceError::NameTooLong { .. } | ReferenceError::HexRepository { .. } => None,
        }
    }
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
                let digest = d.parse().map_err(|source| ReferenceError::Digest {
                    reference: err_ref(),
                    digest: d.to_owned(),
                    source,
                })?;
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
            if let Err(reason) = check_tag(tag) {
                return Err(ReferenceError::Tag { reference: err_ref(), tag: tag.to_owned(), reason });
            }
        }
        let (domain, path) = split_domain(name);
        if let Some(domain) = domain {
            if let Err(reason) = check_domain(domain) {
                return Err(ReferenceError::Domain { reference: err_ref(), domain: domain.to_owned(), reason });
            }
        }
        if path.is_empty() {
            return Err(ReferenceError::PathComponent { reference: err_ref(), component: String::new() });
        }
        if let Some(upper) = path.split('/').find(|c| c.bytes().any(|b| b.is_ascii_uppercase())) {
            return Err(ReferenceError::Uppercase { reference: err_ref(), component: upper.to_owned() });
        }
        if let Some(bad) = path.split('/').find(|c| !valid_path_component(c)) {
            return Err(ReferenceError::PathComponent { reference: err_ref(), component: bad.to_owned() });
        }
        let hub = matches!(domain, None | Some("index.docker.io") | Some(DOCKER_HUB));
        // Hub's official images drop `library/` in the familiar form, but
        // only when one component remains (`library/a/b` keeps it).
        let repository = match hub {
            true => path.strip_prefix(OFFICIAL_NAMESPACE).filter(|rest| !rest.contains('/')).unwrap_or(path),
            false => path,
        };
        // A Hub repository whose first component reads as a registry
        // (`docker.io/a.b/c`) keeps `docker.io`: familiar `a.b/c` would
        // name the registry `a.b` (Docker's familiar form has this flaw).
        let registry = match hub {
            true => split_domain(repository).0.map(|_| DOCKER_HUB.to_owned()),
            false => domain.map(str::to_owned),
        };
        if registry.is_none() && Digest::from_hex(repository).is_ok() {
            return Err(ReferenceError::HexRepository { reference: err_ref() });
        }
        let r = Reference { registry, repository: repository.to_owned(), tag: tag.map(str::to_owned), digest };
        // Distribution's limit is on the fully qualified name
        // (`docker.io/library/…` for Hub), what the registry sees.
        let full = format!("{}/{}", r.domain(), r.remote_path());
        if full.len() > NAME_MAX {
            return Err(ReferenceError::NameTooLong { reference: err_ref(), length: full.len(), name: full });
        }
        Ok(r)
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

/// `[\w][\w.-]{0,127}`, or why not.
fn check_tag(tag: &str) -> Result<(), &'static str> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    if b.is_empty() {
        return Err("empty");
    }
    if b.len() > TAG_MAX {
        return Err("longer than 128 characters");
    }
    if !word(b[0]) {
        return Err("must start with a letter, digit or '_'");
    }
    if !b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-') {
        return Err("may contain only letters, digits, '_', '.' and '-'");
    }
    Ok(())
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

/// Distribution's `domainAndPort`: DNS-like components or a bracketed
/// IPv6 address, then an optional numeric port; or why not.
fn check_domain(domain: &str) -> Result<(), &'static str> {
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("unclosed '[' of an IPv6 address")?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err("an IPv6 address is hex digits and ':'");
        }
        match after {
            "" => return Ok(()),
            p => (None, Some(p.strip_prefix(':').ok_or("only ':port' may follow ']'")?)),
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    let component = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
    };
    if let Some(host) = host {
        if !host.split('.').all(component) {
            return Err("host name components are letters, digits and inner '-', separated by '.'");
        }
    }
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the port must be digits");
        }
    }
    Ok(())
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
    fn hub_keeps_library_for_nested_paths() {
        // Docker's FamiliarName strips `library/` only when one component
        // remains: `library/a/b` is a different repository from `a/b`.
        let r = Reference::parse("library/a/b").unwrap();
        assert_eq!(r.repository, "library/a/b");
        assert_eq!(r.remote_path(), "library/a/b");
        assert_eq!(r.full_name(), "docker.io/library/a/b:latest");
        assert_eq!(Reference::parse("docker.io/library/a/b:1").unwrap().remote_path(), "library/a/b");
        assert_eq!(Reference::parse("library/a").unwrap().repository, "a");
    }

    #[test]
    fn hub_paths_that_read_as_a_registry_keep_docker_io() {
        for input in ["docker.io/a.b/c", "index.docker.io/a.b/c", "docker.io/localhost/x:1"] {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.registry.as_deref(), Some("docker.io"), "{input}");
            assert_eq!(r.domain(), "docker.io");
            assert!(r.to_string().starts_with("docker.io/"), "{r}");
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
            assert_eq!(Reference::parse(&r.full_name()).unwrap(), r);
        }
        assert_eq!(Reference::parse("docker.io/a.b/c").unwrap().remote_path(), "a.b/c");
        assert_eq!(Reference::parse("docker.io/a.b").unwrap().registry, None);
    }

    #[test]
    fn name_limit_counts_the_fully_qualified_name() {
        // `docker.io/library/` is 18 characters: 237 more make 255.
        let ok = "a".repeat(237);
        assert_eq!(Reference::parse(&ok).unwrap().full_name().len(), 255 + ":latest".len());
        let long = "a".repeat(238);
        let err = Reference::parse(&long).unwrap_err();
        assert!(matches!(err, ReferenceError::NameTooLong { length: 256, .. }), "{err:?}");
        assert!(err.to_string().contains("256 characters"), "{err}");
        let ok = format!("quay.io/{}", "b".repeat(247));
        assert!(Reference::parse(&ok).is_ok());
        assert!(Reference::parse(&format!("{ok}b")).is_err());
    }

    #[test]
    fn errors_name_the_part_at_fault() {
        let d = format!("sha256:{}", hex('a'));
        // input, the part named, a phrase of the reason
        let cases = [
            ("acme/Base/x", "Base", "must be lowercase"),
            ("a/b__c___d", "b__c___d", "separated by"),
            ("r:-x", "-x", "must start with"),
            ("r:a+b", "a+b", "may contain only"),
            ("r:", "", "empty"),
            ("host:port/x", "host:port", "port must be digits"),
            ("[::1/x", "[::1", "unclosed"),
            ("[::g]/x", "[::g]", "IPv6"),
            ("[::1]x/y", "[::1]x", "only ':port'"),
            ("a_b.io/x", "a_b.io", "host name components"),
            ("r@sha256:zz", "sha256:zz", "64 lower-case hex"),
            ("r@md5:00", "md5:00", "unsupported algorithm"),
        ];
        for (input, part, phrase) in cases {
            let err = Reference::parse(input).expect_err(input);
            assert_eq!(err.part(), Some(part), "{input}: {err:?}");
            assert!(input.contains(part), "{input}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("{input:?}")) && msg.contains(phrase), "{input}: {msg}");
            if !input.contains('@') {
                assert!(msg.contains(&format!("{part:?}")), "{input}: {msg}");
            }
        }
        assert!(Reference::parse(&format!("r@{d}")).is_ok());
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
