//! Credentials stay with their registry. A second server plays the
//! attacker and records every request it gets, with any `Authorization`
//! header (basic credentials or a bearer token); a small forwarder in
//! front of the real registry makes the registry redirect blob GETs or
//! hand out upload locations on the attacker. Each attack must leave the
//! attacker with no `Authorization` at all.

use crate::registry::{Options, Registry};
use crate::*;
use base64::Engine as _;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata::distribution::auth::Credentials;
use strata::distribution::credentials::CredentialStore;

/// One request as a server read it.
pub struct Request {
    pub method: String,
    pub target: String,
    pub head: String,
    pub body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// `(request line, Authorization header)` of each request a server got.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

type Respond = dyn Fn(&Request, &str) -> Vec<u8> + Send + 'static;

/// A one-thread HTTP server answering each request (on its own
/// connection) with `respond(request, own host:port)`; stopped on drop.
pub struct Server {
    pub host: String,
    seen: Seen,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(address: &str, respond: Box<Respond>) -> Server {
        let listener = TcpListener::bind((address, 0)).unwrap();
        let host = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (stop2, seen2, me) = (stop.clone(), seen.clone(), host.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                // strata tries HTTPS first: read_head drops a ClientHello.
                let Some(head) = crate::proxy::read_head(&mut c) else { continue };
                let head = String::from_utf8_lossy(&head).into_owned();
                let line = head.lines().next().unwrap_or("").to_owned();
                let mut words = line.split(' ');
                let (method, target) = (words.next().unwrap_or("").to_owned(), words.next().unwrap_or("").to_owned());
                let mut req = Request { method, target, head, body: Vec::new() };
                let len = req.header("content-length").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                if (&mut c).take(len).read_to_end(&mut req.body).is_err() {
                    continue;
                }
                seen2.lock().unwrap().push((line, req.header("authorization")));
                let _ = c.write_all(&respond(&req, &me));
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        });
        Server { host, seen, stop, thread: Some(thread) }
    }

    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|(l, _)| l.clone()).collect()
    }

    /// Every `Authorization` header received, with its request line.
    pub fn authorizations(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().filter_map(|(l, a)| a.as_ref().map(|a| format!("{l}: {a}"))).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A whole HTTP/1.1 response that closes its connection.
fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The attacker answering as a registry would ask for auth: 401 with a
/// bearer challenge naming itself as the realm, and a token for anyone
/// who asks there.
fn challenger() -> Box<Respond> {
    Box::new(|r: &Request, me: &str| {
        if r.target.starts_with("/token") {
            return response("200 OK", &[("Content-Type", "application/json")], br#"{"token":"attacker-token"}"#);
        }
        let challenge = format!(r#"Bearer realm="http://{me}/token",service="attacker",scope="repository:x:pull""#);
        response("401 Unauthorized", &[("WWW-Authenticate", &challenge)], b"{}")
    })
}

/// `req` sent on to the registry on `upstream` (a fresh connection), and
/// its whole response.
fn forward(upstream: u16, req: &Request) -> Vec<u8> {
    let mut head = String::new();
    for line in req.head.split("\r\n").filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:")) {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    up.write_all(head.as_bytes()).and_then(|()| up.write_all(&req.body)).unwrap();
    let mut resp = Vec::new();
    let _ = up.read_to_end(&mut resp);
    resp
}

/// `resp` with its `Location` moved to `host` (same path and query).
fn relocate(resp: Vec<u8>, host: &str) -> Vec<u8> {
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").map_or(resp.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&resp[..at]).into_owned();
    let mut out = String::new();
    for line in head.split_inclusive("\r\n") {
        match line.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("location")) {
            Some((_, v)) => {
                let v = v.trim();
                let path = v.split_once("://").map_or(v, |(_, rest)| &rest[rest.find('/').unwrap_or(rest.len())..]);
                out.push_str(&format!("Location: http://{host}{path}\r\n"));
            }
            None => out.push_str(line),
        }
    }
    let mut out = out.into_bytes();
    out.extend_from_slice(&resp[at..]);
    out
}

/// The registry, reached through a forwarder that answers every blob GET
/// with a 307 to `/storage/<digest>` on `attacker`.
fn redirecting_blobs(reg: &Registry, attacker: &str) -> Server {
    let (upstream, attacker) = (reg.port, attacker.to_owned());
    Server::start(
        "127.0.0.1",
        Box::new(move |r: &Request, _: &str| match r.target.split_once("/blobs/sha256:") {
            Some((_, hex)) if r.method == "GET" => {
                let location = format!("http://{attacker}/storage/sha256:{hex}");
                response("307 Temporary Redirect", &[("Location", &location)], b"")
            }
            _ => forward(upstream, r),
        }),
    )
}

fn via(server: &Server, name: &str) -> String {
    format!("{}/{}", server.host, name.split_once('/').unwrap().1)
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// A registry with bearer tokens (from a loopback token server, which
/// the loopback rule allows over plain HTTP) and the seed images pushed.
fn token_registry(src: &Env) -> (crate::token::TokenServer, Registry, [String; 3]) {
    let tokens = crate::token::TokenServer::start(&src.scratch("token"), "s3cret");
    let opts = Options { token: Some((tokens.realm(), tokens.cert.clone())), ..Options::default() };
    let reg = Registry::start(&src.scratch("registry"), opts);
    let names = seed_images(src, &reg.host());
    ok(strata(src, &["login", "-u", "alice", "-p", "s3cret", &reg.host()], &[]), "login");
    ok(strata(src, &["push", &names[2]], &[]), "push");
    (tokens, reg, names)
}

#[test]
fn blob_redirect_to_another_host_is_followed_without_the_registry_token() {
    if !can_run("blob redirect") || require_tool("openssl", "blob redirect").is_none() {
        return;
    }
    let src = env();
    let (_tokens, reg, names) = token_registry(&src);
    // The attacker is the blob storage: it serves the right bytes.
    let engine = src.engine();
    let mut wanted = crate::roundtrip::layer_digests(&src, &names[2]);
    wanted.push(digests(&src, &names[2]).1);
    let blobs: BTreeMap<String, Vec<u8>> =
        wanted.iter().map(|d| (d.clone(), engine.content.read(&d.parse().unwrap()).unwrap())).collect();
    let count = blobs.len();
    let storage = Server::start(
        "127.0.0.1",
        Box::new(move |r: &Request, _: &str| match r.target.strip_prefix("/storage/").and_then(|d| blobs.get(d)) {
            Some(b) => response("200 OK", &[("Content-Type", "application/octet-stream")], b),
            None => response("404 Not Found", &[], b""),
        }),
    );
    let front = redirecting_blobs(&reg, &storage.host);
    let dst = env();
    ok(strata(&dst, &["login", "-u", "alice", "-p", "s3cret", &front.host], &[]), "login through the forwarder");
    let out = ok(strata(&dst, &["pull", &via(&front, &names[2])], &[]), "pull with blobs redirected");
    assert_eq!(pulled_digest(&out), digests(&src, &names[2]).0);
    assert!(storage.requests().len() >= count, "config and layers came from storage: {:?}", storage.requests());
    assert_eq!(storage.authorizations(), Vec::<String>::new(), "the registry's token went to another host");
}

#[test]
fn redirect_target_answering_401_gets_no_credentials() {
    if !can_run("redirect 401") || require_tool("htpasswd", "redirect 401").is_none() {
        return;
    }
    let src = env();
    let reg = Registry::start(
        &src.scratch("registry"),
        Options { basic_auth: Some(("alice".into(), "s3cret".into())), ..Options::default() },
    );
    let names = seed_images(&src, &reg.host());
    ok(strata(&src, &["login", "-u", "alice", "-p", "s3cret", &reg.host()], &[]), "login");
    ok(strata(&src, &["push", &names[0]], &[]), "push");
    let attacker = Server::start("127.0.0.1", challenger());
    let front = redirecting_blobs(&reg, &attacker.host);
    let dst = env();
    ok(strata(&dst, &["login", "-u", "alice", "-p", "s3cret", &front.host], &[]), "login through the forwarder");
    let before = dst.inventory();
    let err = fails(strata(&dst, &["pull", &via(&front, &names[0])], &[]), "pull redirected to the attacker");
    assert!(!attacker.requests().is_empty(), "the redirect was followed");
    assert_eq!(attacker.authorizations(), Vec::<String>::new(), "credentials reached the attacker");
    assert!(
        err.contains(&format!("401 unauthorized from http://{}", attacker.host))
            && err.contains(&format!("which is not registry {}", front.host))
            && err.contains("refusing to send its credentials there"),
        "{err}"
    );
    assert_eq!(dst.inventory(), before, "nothing pulled");
}

#[test]
fn upload_location_on_another_host_gets_no_token() {
    if !can_run("upload location") || require_tool("openssl", "upload location").is_none() {
        return;
    }
    let src = env();
    let (_tokens, reg, _) = token_registry(&src);
    let attacker = Server::start("127.0.0.1", challenger());
    // Registry A hands out upload sessions on B, the attacker.
    let (upstream, b) = (reg.port, attacker.host.clone());
    let front = Server::start(
        "127.0.0.1",
        Box::new(move |r: &Request, _: &str| {
            let resp = forward(upstream, r);
            if r.method == "POST" && r.target.contains("/blobs/uploads/") {
                relocate(resp, &b)
            } else {
                resp
            }
        }),
    );
    let names = seed_images(&src, &front.host);
    ok(strata(&src, &["login", "-u", "alice", "-p", "s3cret", &front.host], &[]), "login through the forwarder");
    let err = fails(strata(&src, &["push", &names[0]], &[]), "push into an upload session on the attacker");
    assert!(
        attacker.requests().iter().any(|l| l.starts_with("PUT /v2/")),
        "the upload went to B: {:?}",
        attacker.requests()
    );
    assert_eq!(attacker.authorizations(), Vec::<String>::new(), "registry A's token reached B");
    assert!(
        err.contains(&format!("401 unauthorized from http://{}", attacker.host))
            && err.contains("refusing to send its credentials there"),
        "{err}"
    );
}

/// A non-loopback IPv4 address of this host, if it has one.
fn host_address() -> Option<String> {
    let out = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let cidr = text.lines().find_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))?.to_owned();
    cidr.split('/').next().map(str::to_owned)
}

#[test]
fn plain_http_token_realm_off_loopback_gets_no_credentials() {
    if !can_run("plain http realm") {
        return;
    }
    let Some(address) = host_address() else {
        eprintln!("skipped: plain_http_token_realm_off_loopback_gets_no_credentials: no non-loopback IPv4 address");
        return;
    };
    // The attacker is the realm, on a non-loopback address; the registry
    // (on loopback) names it in every challenge.
    let attacker = Server::start(&address, challenger());
    let realm = format!("http://{}/token", attacker.host);
    let challenge = format!(r#"Bearer realm="{realm}",service="registry""#);
    let registry = Server::start(
        "127.0.0.1",
        Box::new(move |_: &Request, _: &str| response("401 Unauthorized", &[("WWW-Authenticate", &challenge)], b"{}")),
    );
    let dst = env();
    dst.ok(&["images"]); // the root's layout, so "unchanged" compares a real store
    let creds = Credentials { username: "alice".into(), password: "s3cret".into() };
    CredentialStore::new(&dst.root).store(&registry.host, &creds).unwrap();
    let before = dst.inventory();
    let name = format!("{}/team/app:1", registry.host);
    let err = fails(strata(&dst, &["pull", &name], &[]), "pull with a plain-http realm");
    assert_eq!(attacker.authorizations(), Vec::<String>::new(), "credentials reached the attacker");
    assert_eq!(attacker.requests(), Vec::<String>::new(), "the realm was asked anyway");
    assert!(
        err.contains(&format!("token realm {realm} is not HTTPS"))
            && err.contains(&format!("refusing to send credentials for registry {}", registry.host))
            && err.contains("--insecure-registry"),
        "{err}"
    );
    assert_eq!(dst.inventory(), before);
    // --insecure-registry is the one way to allow it, and it does.
    let err = fails(strata(&dst, &["pull", "--insecure-registry", &name], &[]), "pull with the flag");
    assert!(err.contains("unauthorized"), "{err}");
    assert_eq!(attacker.authorizations().len(), 1, "{:?}", attacker.requests());
    assert!(attacker.authorizations()[0].ends_with(&basic("alice", "s3cret")), "{:?}", attacker.authorizations());
}
