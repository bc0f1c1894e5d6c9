//! Registry authentication, the pure part: parsing `WWW-Authenticate`
//! challenges (RFC 7235 §4.1 with distribution's token extensions), the
//! token endpoint's URL and answer, and the `Basic` header.
//!
//! A registry answers an unauthenticated request with `401` and a
//! challenge. `Basic realm="…"` asks for the user's credentials on every
//! request; `Bearer realm="https://auth/token",service="reg",scope="…"`
//! sends the client to a token server (distribution's "token
//! authentication specification"), which hands out a short-lived token for
//! the scopes asked (`repository:team/app:pull,push`). Nothing here does
//! I/O; `client.rs` drives the flow.

use base64::Engine as _;
use std::collections::BTreeMap;

/// User name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

impl Credentials {
    /// `base64(user:password)`, the form Docker's config.json stores.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.username, self.password))
    }

    /// The inverse of [`encode`](Self::encode).
    pub fn decode(s: &str) -> Option<Credentials> {
        let raw = base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        Some(Credentials { username: u.to_owned(), password: p.to_owned() })
    }

    /// The `Authorization` header value for HTTP basic auth.
    pub fn basic_header(&self) -> String {
        format!("Basic {}", self.encode())
    }
}

/// One parsed authentication challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lower-cased (`basic`, `bearer`).
    pub scheme: String,
    /// Auth parameters, names lower-cased.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses a `WWW-Authenticate` header value into its challenges.
/// Tolerant as Docker is: unknown schemes are kept, a malformed parameter
/// ends its challenge. Quoted strings take `\` escapes.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut p = Parser { s: header.as_bytes(), i: 0 };
    loop {
        p.skip(|b| b == b' ' || b == b'\t' || b == b',');
        let scheme = p.token();
        if scheme.is_empty() {
            break;
        }
        let mut params = BTreeMap::new();
        loop {
            p.skip(|b| b == b' ' || b == b'\t');
            let save = p.i;
            let name = p.token();
            p.skip(|b| b == b' ' || b == b'\t');
            if name.is_empty() || !p.eat(b'=') {
                // Not `name=value`: the start of the next challenge.
                p.i = save;
                break;
            }
            p.skip(|b| b == b' ' || b == b'\t');
            let value = if p.peek() == Some(b'"') { p.quoted() } else { p.token() };
            params.insert(name.to_ascii_lowercase(), value);
            p.skip(|b| b == b' ' || b == b'\t');
            if !p.eat(b',') {
                break;
            }
        }
        out.push(Challenge { scheme: scheme.to_ascii_lowercase(), params });
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }
    /// An RFC 7230 token (plus `/` for token68-ish values).
    fn token(&mut self) -> String {
        let start = self.i;
        self.skip(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b));
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    fn quoted(&mut self) -> String {
        self.i += 1;
        let mut v = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        v.push(n);
                        self.i += 1;
                    }
                }
                _ => v.push(b),
            }
        }
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// The token endpoint URL for a bearer challenge and the scopes needed:
/// `realm?service=…&scope=…` (scopes from the challenge come first).
pub fn token_url(challenge: &Challenge, scopes: &[String]) -> Option<String> {
    let realm = challenge.param("realm")?;
    let mut query = Vec::new();
    if let Some(service) = challenge.param("service") {
        query.push(format!("service={}", url_escape(service)));
    }
    let mut all: Vec<&str> = challenge.param("scope").into_iter().flat_map(|s| s.split(' ')).collect();
    for s in scopes {
        if !all.contains(&s.as_str()) {
            all.push(s);
        }
    }
    for s in all.iter().filter(|s| !s.is_empty()) {
        query.push(format!("scope={}", url_escape(s)));
    }
    let sep = if realm.contains('?') { '&' } else { '?' };
    Some(if query.is_empty() { realm.to_owned() } else { format!("{realm}{sep}{}", query.join("&")) })
}

/// The scope a repository operation needs (`repository:a/b:pull,push`).
pub fn repository_scope(repository: &str, push: bool) -> String {
    format!("repository:{repository}:{}", if push { "pull,push" } else { "pull" })
}

/// The token server's answer: `token` (distribution) or `access_token`
/// (OAuth2 style); either may be absent in the other's responses.
pub fn parse_token_response(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
    }
    let a: Answer = serde_json::from_slice(body).ok()?;
    a.token.filter(|t| !t.is_empty()).or(a.access_token.filter(|t| !t.is_empty()))
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge_like_docker_hub() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn parses_basic_and_several_challenges() {
        let c = parse_challenges(r#"Basic realm="Registry Realm""#);
        assert_eq!(
            c,
            vec![Challenge { scheme: "basic".into(), params: [("realm".into(), "Registry Realm".into())].into() }]
        );
        let c = parse_challenges(r#"Negotiate, Basic realm="a\"b", Bearer realm=x,service=y"#);
        let schemes: Vec<_> = c.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["negotiate", "basic", "bearer"]);
        assert_eq!(c[1].param("realm"), Some("a\"b"));
        assert_eq!(c[2].param("service"), Some("y"));
    }

    #[test]
    fn malformed_headers_do_not_panic() {
        for h in ["", ",,,", "Bearer realm=", "Bearer realm=\"unterminated", "=x", "Basic ,=,", "\u{e9}"] {
            let _ = parse_challenges(h);
        }
    }

    #[test]
    fn token_url_merges_scopes_and_escapes() {
        let c = parse_challenges(r#"Bearer realm="https://t.example/token",service="reg 1",scope="repository:a:pull""#);
        let url = token_url(&c[0], &[repository_scope("a", false), repository_scope("b/c", true)]).unwrap();
        assert_eq!(
            url,
            "https://t.example/token?service=reg%201&scope=repository%3Aa%3Apull&scope=repository%3Ab%2Fc%3Apull%2Cpush"
        );
        assert!(token_url(&parse_challenges("Bearer service=x")[0], &[]).is_none());
    }

    #[test]
    fn token_answers_and_credentials_round_trip() {
        assert_eq!(parse_token_response(br#"{"token":"abc","expires_in":60}"#).as_deref(), Some("abc"));
        assert_eq!(parse_token_response(br#"{"token":"","access_token":"x"}"#).as_deref(), Some("x"));
        assert_eq!(parse_token_response(b"{}"), None);
        let c = Credentials { username: "u".into(), password: "p:ss".into() };
        assert_eq!(Credentials::decode(&c.encode()), Some(c.clone()));
        assert_eq!(c.basic_header(), "Basic dTpwOnNz");
        assert!(!format!("{c:?}").contains("p:ss"), "debug output hides the password");
    }
}
