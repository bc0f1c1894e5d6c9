//! The `WWW-Authenticate` parser's contract, for fuzzing:
//! [`parse_challenges`] on any header text returns (no panic, no loop) and:
//! * parsing is deterministic;
//! * there are no more challenges than bytes, each scheme is a non-empty
//!   lower-case token, each parameter name a non-empty lower-case token;
//! * the challenges re-serialized (`scheme k="v", …`, values quoted with
//!   `\` escapes) parse back to the same challenges;
//! * [`token_url`] of any of them, with any scopes, starts with the realm
//!   and adds only percent-encoded query values.
//!
//! Checked on every `cargo test` by the seeded mutation fuzzer below and by
//! the `www_authenticate` target in `fuzz/`.

use super::auth::{parse_challenges, token_url, Challenge};

fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b)
}

/// The challenges as a header a registry could send.
fn serialize(challenges: &[Challenge]) -> String {
    let quote = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let one = |c: &Challenge| {
        let params: Vec<String> = c.params.iter().map(|(k, v)| format!("{k}=\"{}\"", quote(v))).collect();
        if params.is_empty() {
            c.scheme.clone()
        } else {
            format!("{} {}", c.scheme, params.join(", "))
        }
    };
    challenges.iter().map(one).collect::<Vec<_>>().join(", ")
}

/// Checks the contract on `header`; `Err` says which part broke.
pub fn check(header: &str) -> Result<(), String> {
    let first = parse_challenges(header);
    if first != parse_challenges(header) {
        return Err("two parses of the same header differ".into());
    }
    if first.len() > header.len() {
        return Err(format!("{} challenges from {} bytes", first.len(), header.len()));
    }
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| token_char(b) && !b.is_ascii_uppercase());
    for c in &first {
        if !token(&c.scheme) || !c.params.keys().all(|k| token(k)) {
            return Err(format!("scheme or parameter name is not a lower-case token: {c:?}"));
        }
    }
    let text = serialize(&first);
    let again = parse_challenges(&text);
    if again != first {
        return Err(format!("re-serialized as {text:?}, which parses to {again:?}, not {first:?}"));
    }
    let scopes = ["repository:a/b:pull".to_owned(), "x y&z".to_owned()];
    for c in &first {
        let Some(url) = token_url(c, &scopes) else { continue };
        let realm = c.param("realm").unwrap_or_default();
        let Some(query) = url.strip_prefix(realm) else {
            return Err(format!("token URL {url:?} does not start with the realm {realm:?}"));
        };
        let unescaped = |b: u8| b.is_ascii_alphanumeric() || b"-._~%=&?".contains(&b);
        if !query.bytes().all(unescaped) {
            return Err(format!("token URL {url:?} adds an unescaped query"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::image::fuzz::driver::{self, Target};

    const SEEDS: &[&[u8]] = &[
        br#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        br#"Basic realm="Registry Realm""#,
        br#"Negotiate, Basic realm="a\"b", Bearer realm=x,service=y"#,
        br#"Bearer realm="https://t.example/token?x=1",error="insufficient_scope",scope="repository:a:pull repository:b:push""#,
    ];

    const TOKENS: &[&[u8]] = &[
        b"\"",
        b"\\",
        b",",
        b"=",
        b" ",
        b"\t",
        b"realm=",
        b"service=",
        b"scope=",
        b"Bearer ",
        b"Basic ",
        b"\xc3\xa9",
        b"\0",
        b"?",
        b"&",
        b"%",
        b"\"\\\"",
        b"A",
    ];

    /// 5,000 mutated headers per run.
    #[test]
    fn mutated_challenges_meet_the_contract() {
        let t = Target { name: "www-authenticate", seeds: SEEDS, tokens: TOKENS, max_len: 1024 };
        let (seed, n) = driver::settings("www-authenticate", 0x0a07_4e11, 5_000);
        driver::run(
            &t,
            seed,
            n,
            |rng, input| driver::mutate(rng, &t, input),
            |bytes| check(&String::from_utf8_lossy(bytes)),
        );
    }
}
