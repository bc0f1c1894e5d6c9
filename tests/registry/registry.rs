//! The registry fixture: CNCF distribution on a free loopback port with a
//! temporary config, storage directory and log; killed when dropped.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `service` and `issuer` of the registry's bearer tokens.
pub const TOKEN_SERVICE: &str = "strata-test-registry";
pub const TOKEN_ISSUER: &str = "strata-test-issuer";

/// How the registry is configured.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `(user, password)` for an htpasswd (bcrypt) file.
    pub basic_auth: Option<(String, String)>,
    /// Serve HTTPS with a fresh self-signed certificate for 127.0.0.1.
    pub tls: bool,
    /// Bearer-token auth: `(realm, certificate the tokens are signed with)`.
    pub token: Option<(String, PathBuf)>,
    /// Listen on this address instead of 127.0.0.1.
    pub address: Option<String>,
}

pub struct Registry {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    /// With TLS: a certs.d directory trusting the registry's certificate.
    pub certs_d: Option<PathBuf>,
    address: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Registry {
    /// Starts a registry keeping its files under `dir`.
    pub fn start(dir: &Path, opts: Options) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    \
             rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {}:{port}\n",
            dir.join("data").display(),
            opts.address.as_deref().unwrap_or("127.0.0.1")
        );
        let mut certs_d = None;
        if opts.tls {
            // A throwaway CA (what certs.d trusts) and the registry's
            // certificate for 127.0.0.1, signed by it.
            let p = |name: &str| dir.join(name).display().to_string();
            let (ca, ca_key, crt, key, csr, ext) =
                (p("ca.crt"), p("ca.key"), p("registry.crt"), p("registry.key"), p("registry.csr"), p("ext.cnf"));
            run(Command::new("openssl").args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]).args([
                "-subj",
                "/CN=strata test CA",
                "-keyout",
                &ca_key,
                "-out",
                &ca,
            ]));
            run(Command::new("openssl")
                .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1"])
                .args(["-keyout", &key, "-out", &csr]));
            std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                .args(["-in", &csr, "-CA", &ca, "-CAkey", &ca_key, "-extfile", &ext, "-out", &crt]));
            config.push_str(&format!("  tls:\n    certificate: {crt}\n    key: {key}\n"));
            let d = dir.join("certs.d");
            std::fs::create_dir_all(d.join(format!("127.0.0.1:{port}"))).unwrap();
            std::fs::copy(&ca, d.join(format!("127.0.0.1:{port}/ca.crt"))).unwrap();
            certs_d = Some(d);
        }
        if let Some((user, password)) = &opts.basic_auth {
            let htpasswd = dir.join("htpasswd");
            let out = Command::new("htpasswd").args(["-Bbn", user, password]).output().expect("htpasswd");
            assert!(out.status.success());
            std::fs::write(&htpasswd, &out.stdout).unwrap();
            config.push_str(&format!("auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n", htpasswd.display()));
        }
        if let Some((realm, cert)) = &opts.token {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                TOKEN_SERVICE,
                TOKEN_ISSUER,
                cert.display()
            ));
        }
        let config_path = dir.join("config.yml");
        std::fs::File::create(&config_path).unwrap().write_all(config.as_bytes()).unwrap();
        let log = dir.join("registry.log");
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("start docker-registry");
        let address = opts.address.clone().unwrap_or_else(|| "127.0.0.1".into());
        let reg = Registry { child, port, log, certs_d, address };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect((reg.address.as_str(), port)).is_err() {
            assert!(Instant::now() < deadline, "registry did not listen:\n{}", reg.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// `<address>:<port>` (`127.0.0.1:<port>` unless told otherwise).
    pub fn host(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Successful `GET`s of blob `digest` in the access log.
    pub fn blob_gets(&self, digest: &str) -> usize {
        let needle = format!("/blobs/{digest} HTTP/1.1\" 20");
        self.log_text().lines().filter(|l| l.contains("\"GET /v2/") && l.contains(&needle)).count()
    }

    /// Access-log lines of `method` requests.
    pub fn requests(&self, method: &str) -> usize {
        let needle = format!("\"{method} /v2/");
        self.log_text().lines().filter(|l| l.contains(&needle)).count()
    }

    /// Environment for strata to trust this registry's certificate.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        match &self.certs_d {
            Some(d) => vec![("STRATA_CERTS_D", d.display().to_string())],
            None => Vec::new(),
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
