//! A token server for distribution's bearer-token auth ("token
//! authentication specification"): a std `TcpListener` thread answering
//! `GET /token?service=…&scope=…` with a JWT signed RS256 by a throwaway
//! key (signature made by `openssl dgst`), its certificate in the `x5c`
//! header and in the registry's `rootcertbundle`. It grants every scope
//! asked, to one user with one password (HTTP basic on the token request).

use base64::Engine as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

pub const SERVICE: &str = crate::registry::TOKEN_SERVICE;
pub const ISSUER: &str = crate::registry::TOKEN_ISSUER;

pub struct TokenServer {
    pub port: u16,
    /// The certificate the registry trusts (`rootcertbundle`).
    pub cert: PathBuf,
    /// Tokens handed out.
    pub issued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A signed JWT granting `scopes` (`repository:name:actions`).
fn token(key: &Path, cert_der: &[u8], scopes: &[String]) -> String {
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(cert_der)]});
    let claims = serde_json::json!({"iss": ISSUER, "sub": "alice", "aud": SERVICE, "exp": now + 600,
        "nbf": now - 60, "iat": now - 60, "jti": format!("{now}-{}", scopes.len()), "access": access});
    let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    format!("{input}.{}", b64url(&out.stdout))
}

impl TokenServer {
    /// Starts a token server keeping its key under `dir`, for user
    /// `alice` with `password`.
    pub fn start(dir: &Path, password: &str) -> TokenServer {
        std::fs::create_dir_all(dir).unwrap();
        let (key, cert) = (dir.join("token.key"), dir.join("token.crt"));
        let st = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=strata token"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
        let der = Command::new("openssl").args(["x509", "-outform", "DER", "-in"]).arg(&cert).output().unwrap().stdout;
        let expected =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("alice:{password}")));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let (stop2, issued2) = (stop.clone(), issued.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).map(|n| n == 1).unwrap_or(false) {
                    head.push(b[0]);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let target = text.split(' ').nth(1).unwrap_or("").to_owned();
                let authorized = text.lines().any(|l| {
                    l.split_once(':')
                        .is_some_and(|(k, v)| k.eq_ignore_ascii_case("authorization") && v.trim() == expected)
                });
                let response = if !authorized {
                    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
                    format!("HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                } else {
                    let query = target.split_once('?').map_or("", |(_, q)| q);
                    let scopes: Vec<String> =
                        query.split('&').filter_map(|kv| kv.strip_prefix("scope=")).map(unescape).collect();
                    issued2.fetch_add(1, Ordering::SeqCst);
                    let body = serde_json::json!({"token": token(&key, &der, &scopes), "expires_in": 600}).to_string();
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                };
                let _ = c.write_all(response.as_bytes());
            }
        });
        TokenServer { port, cert, issued, stop, thread: Some(thread) }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
