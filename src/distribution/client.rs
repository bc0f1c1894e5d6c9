//! The registry client: one repository on one registry, over blocking
//! `ureq` with rustls. It picks the scheme (HTTPS, or plain HTTP where
//! allowed), answers auth challenges, follows redirects, and retries with
//! back-off. What it sends where follows `origin`'s rules: `Authorization`
//! only to the registry's origin, challenges answered only from it, token
//! realms over HTTPS.

use super::auth::{self, Challenge, Credentials};
use super::origin::{self, Origin};
use super::{api_host, is_loopback, tls, DistributionError};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Default directory of per-registry CA certificates (Docker's
/// `/etc/docker/certs.d` convention).
pub const CERTS_D: &str = "/etc/strata/certs.d";

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Allow plain HTTP for a registry that is not on loopback.
    pub insecure: bool,
    /// `certs.d` directory: `<dir>/<host[:port]>/*.crt` are trusted CAs.
    pub certs_dir: PathBuf,
    pub credentials: Option<Credentials>,
    /// Retries after the first attempt, on 5xx, 429 and dropped connections.
    pub retries: u32,
    /// First back-off; doubled per retry.
    pub backoff: Duration,
}

impl Default for RegistryOptions {
    fn default() -> RegistryOptions {
        RegistryOptions {
            insecure: false,
            certs_dir: std::env::var_os("STRATA_CERTS_D").map_or_else(|| PathBuf::from(CERTS_D), PathBuf::from),
            credentials: None,
            retries: 4,
            backoff: Duration::from_millis(250),
        }
    }
}

/// A request body that can be sent again on a retry.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

/// A connection to one repository of one registry.
pub struct Client {
    /// The registry as named in references (`localhost:5000`).
    pub registry: String,
    pub repository: String,
    base: String,
    /// `base`'s origin: the only one `Authorization` is sent to.
    origin: Origin,
    agent: ureq::Agent,
    opts: RegistryOptions,
    scopes: Vec<String>,
    authorization: Mutex<Option<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).field("repository", &self.repository).finish()
    }
}

/// The registry's error document (`{"errors":[{"code","message"}]}`), or
/// the start of the body.
fn error_detail(resp: ureq::Response) -> String {
    let mut body = Vec::new();
    let _ = resp.into_reader().take(8192).read_to_end(&mut body);
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(&body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|i| {
                let code = i.code.as_deref().unwrap_or("").to_ascii_lowercase().replace('_', " ");
                format!("{code}: {}", i.message.as_deref().unwrap_or(""))
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    String::from_utf8_lossy(&body).trim().chars().take(200).collect()
}

fn transport_retryable(t: &ureq::Transport) -> bool {
    matches!(t.kind(), ureq::ErrorKind::Io | ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::ProxyConnect)
}

impl Client {
    /// Connects to `repository` on `registry`: picks the scheme with a
    /// `GET /v2/` and authenticates for `scopes` if the registry asks.
    pub fn connect(
        registry: &str,
        repository: &str,
        scopes: Vec<String>,
        opts: &RegistryOptions,
    ) -> Result<Client, DistributionError> {
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls::config(registry, &opts.certs_dir)?)
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(60))
            .timeout_write(Duration::from_secs(60))
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            // `send` follows redirects itself, deciding per hop whether
            // `Authorization` goes along; token requests follow none.
            .redirects(0)
            .build();
        let host = api_host(registry);
        let https = format!("https://{host}");
        let (base, https_failure) = match agent.get(&format!("{https}/v2/")).call() {
            Ok(_) | Err(ureq::Error::Status(..)) => (https, None),
            Err(ureq::Error::Transport(t)) => {
                if !(opts.insecure || is_loopback(registry)) {
                    return Err(DistributionError::HttpsRequired {
                        registry: registry.to_owned(),
                        detail: t.to_string(),
                    });
                }
                (format!("http://{host}"), Some(t.to_string()))
            }
        };
        let origin =
            url::Url::parse(&base).ok().as_ref().and_then(Origin::of).ok_or_else(|| DistributionError::Transport {
                method: "GET".into(),
                url: base.clone(),
                detail: "not a registry URL".into(),
            })?;
        let client = Client {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            base,
            origin,
            agent,
            opts: opts.clone(),
            scopes,
            authorization: Mutex::new(None),
        };
        match (client.send("GET", "/v2/", &[], Body::Empty), https_failure) {
            (Ok(_), _) => Ok(client),
            // Plain HTTP was the fallback: the HTTPS failure (an untrusted
            // certificate, say) is the one worth reporting.
            (Err(e), Some(https)) if !matches!(e, DistributionError::Unauthorized { .. }) => {
                Err(DistributionError::Fallback { registry: registry.to_owned(), https, http: e.to_string() })
            }
            (Err(e), _) => Err(e),
        }
    }

    /// The base URL chosen (`https://host:port` or `http://…`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `/v2/<repository>/<rest>`.
    pub fn path(&self, rest: &str) -> String {
        format!("/v2/{}/{rest}", self.repository)
    }

    /// An absolute URL for a path or a `Location` header (which may be
    /// relative to the registry).
    pub fn url(&self, location: &str) -> String {
        match self.resolve(location) {
            Ok(u) => u.into(),
            Err(_) => format!("{}{location}", self.base),
        }
    }

    fn resolve(&self, location: &str) -> Result<url::Url, DistributionError> {
        let base = url::Url::parse(&self.base).expect("checked in connect");
        origin::resolve(&base, location).map_err(|detail| DistributionError::Transport {
            method: "GET".into(),
            url: location.to_owned(),
            detail,
        })
    }

    fn authenticate(&self, challenges: &str) -> Result<(), DistributionError> {
        let unauthorized = |detail: String| DistributionError::Unauthorized { registry: self.registry.clone(), detail };
        let parsed = auth::parse_challenges(challenges);
        let header = if let Some(c) = parsed.iter().find(|c| c.scheme == "bearer") {
            self.fetch_token(c)?
        } else if parsed.iter().any(|c| c.scheme == "basic") {
            match &self.opts.credentials {
                Some(creds) => creds.basic_header(),
                None => return Err(unauthorized("authentication required (strata login)".into())),
            }
        } else {
            return Err(unauthorized(format!("unsupported challenge {challenges:?}")));
        };
        *self.authorization.lock().expect("no panics while held") = Some(header);
        Ok(())
    }

    fn fetch_token(&self, challenge: &Challenge) -> Result<String, DistributionError> {
        let url = auth::token_url(challenge, &self.scopes).ok_or_else(|| DistributionError::Unauthorized {
            registry: self.registry.clone(),
            detail: "bearer challenge without a realm".into(),
        })?;
        // The realm is checked as the challenge gave it, then the URL built
        // from it (a query appended) must still be on the realm's origin.
        let realm = challenge.param("realm").unwrap_or_default();
        let with_credentials = self.opts.credentials.is_some();
        let realm_origin =
            origin::check_realm(&self.registry, &self.origin, realm, self.opts.insecure, with_credentials)?;
        let built = url::Url::parse(&url).ok().as_ref().and_then(Origin::of);
        if built.as_ref() != Some(&realm_origin) {
            return Err(DistributionError::Unauthorized {
                registry: self.registry.clone(),
                detail: format!("token url {url} is not on the realm's origin {realm_origin}"),
            });
        }
        let mut req = self.agent.get(&url);
        if let Some(c) = &self.opts.credentials {
            req = req.set("Authorization", &c.basic_header());
        }
        let resp = match req.call() {
            Ok(r) if (300..400).contains(&r.status()) => {
                return Err(DistributionError::Unauthorized {
                    registry: self.registry.clone(),
                    detail: format!(
                        "token server {url}: {} redirect to {:?} not followed (token requests carry credentials)",
                        r.status(),
                        r.header("location").unwrap_or("")
                    ),
                })
            }
            Ok(r) => r,
            Err(ureq::Error::Status(s, r)) => {
                return Err(DistributionError::Unauthorized {
                    registry: self.registry.clone(),
                    detail: format!("token server {url}: {s} {}", error_detail(r)),
                })
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(DistributionError::Transport { method: "GET".into(), url, detail: t.to_string() })
            }
        };
        let mut body = Vec::new();
        resp.into_reader().take(1 << 20).read_to_end(&mut body).map_err(|e| DistributionError::Transport {
            method: "GET".into(),
            url: url.clone(),
            detail: e.to_string(),
        })?;
        let token = auth::parse_token_response(&body).ok_or_else(|| DistributionError::Unauthorized {
            registry: self.registry.clone(),
            detail: format!("token server {url} returned no token"),
        })?;
        Ok(format!("Bearer {token}"))
    }

    /// Sends a request, answering one auth challenge of the registry,
    /// following up to [`origin::MAX_REDIRECTS`] redirects, and retrying
    /// with back-off on 5xx/429 and transport failures. `Authorization`
    /// goes only to the registry's origin; a `401` from any other is
    /// [`DistributionError::ForeignChallenge`]. Any other non-2xx status
    /// is [`DistributionError::Status`].
    pub fn send(
        &self,
        method: &str,
        location: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<ureq::Response, DistributionError> {
        let mut url = self.resolve(location)?;
        let mut authenticated = false;
        let mut attempt = 0;
        let mut redirects = 0;
        loop {
            let ours = Origin::of(&url).as_ref() == Some(&self.origin);
            let mut req = self.agent.request(method, url.as_str());
            if ours {
                if let Some(a) = self.authorization.lock().expect("no panics while held").as_ref() {
                    req = req.set("Authorization", a);
                }
            }
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let result = match body {
                Body::Empty if method == "GET" || method == "HEAD" => req.call(),
                Body::Empty => req.set("Content-Length", "0").send_bytes(&[]),
                Body::Bytes(b) => req.send_bytes(b),
                Body::File { path, offset, len } => {
                    let mut f = std::fs::File::open(path).map_err(|e| DistributionError::io(path, e))?;
                    io::Seek::seek(&mut f, io::SeekFrom::Start(offset)).map_err(|e| DistributionError::io(path, e))?;
                    req.set("Content-Length", &len.to_string()).send(f.take(len))
                }
            };
            let retry_err = match result {
                Ok(resp) if origin::follows(resp.status(), method) => {
                    let redirect = |detail: String| DistributionError::Redirect {
                        method: method.into(),
                        url: url.to_string(),
                        detail,
                    };
                    if redirects >= origin::MAX_REDIRECTS {
                        return Err(redirect(format!("more than {} redirects", origin::MAX_REDIRECTS)));
                    }
                    let Some(location) = resp.header("location") else {
                        return Err(redirect(format!("{} redirect without a Location", resp.status())));
                    };
                    url = origin::resolve(&url, location).map_err(redirect)?;
                    redirects += 1;
                    continue;
                }
                Ok(resp) if (300..400).contains(&resp.status()) => {
                    let detail = format!("{} redirect not followed for {method}", resp.status());
                    return Err(DistributionError::Redirect { method: method.into(), url: url.to_string(), detail });
                }
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, _)) if !ours => {
                    return Err(DistributionError::ForeignChallenge {
                        method: method.into(),
                        origin: Origin::of(&url).map_or_else(|| url.to_string(), |o| o.to_string()),
                        url: url.to_string(),
                        registry: self.registry.clone(),
                        registry_origin: self.origin.to_string(),
                    });
                }
                Err(ureq::Error::Status(401, resp)) if !authenticated => {
                    authenticated = true;
                    let challenge = resp.header("www-authenticate").unwrap_or("").to_owned();
                    if challenge.is_empty() {
                        let detail = error_detail(resp);
                        return Err(DistributionError::Unauthorized { registry: self.registry.clone(), detail });
                    }
                    self.authenticate(&challenge)?;
                    continue;
                }
                Err(ureq::Error::Status(401, resp)) => {
                    let detail = error_detail(resp);
                    return Err(DistributionError::Unauthorized { registry: self.registry.clone(), detail });
                }
                Err(ureq::Error::Status(status, resp)) if status >= 500 || status == 429 => DistributionError::Status {
                    method: method.into(),
                    url: url.to_string(),
                    status,
                    detail: error_detail(resp),
                },
                Err(ureq::Error::Status(status, resp)) => {
                    let detail = error_detail(resp);
                    return Err(DistributionError::Status { method: method.into(), url: url.into(), status, detail });
                }
                Err(ureq::Error::Transport(t)) if transport_retryable(&t) => {
                    DistributionError::Transport { method: method.into(), url: url.to_string(), detail: t.to_string() }
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(DistributionError::Transport {
                        method: method.into(),
                        url: url.into(),
                        detail: t.to_string(),
                    })
                }
            };
            if attempt >= self.opts.retries {
                return Err(retry_err);
            }
            std::thread::sleep(self.backoff(attempt));
            attempt += 1;
        }
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        self.opts.backoff.saturating_mul(1 << attempt.min(6))
    }

    pub(crate) fn retries(&self) -> u32 {
        self.opts.retries
    }

    /// Reads a small response body whole, refusing more than `limit` bytes.
    pub fn read_limited(
        resp: ureq::Response,
        what: &'static str,
        name: &str,
        limit: u64,
    ) -> Result<Vec<u8>, DistributionError> {
        let url = resp.get_url().to_owned();
        let mut body = Vec::new();
        resp.into_reader().take(limit + 1).read_to_end(&mut body).map_err(|e| DistributionError::Transport {
            method: "GET".into(),
            url,
            detail: e.to_string(),
        })?;
        if body.len() as u64 > limit {
            return Err(DistributionError::TooLarge { what, digest: name.to_owned(), limit });
        }
        Ok(body)
    }
}
