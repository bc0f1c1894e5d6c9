//! Fixtures the end-to-end tests share: `strata snapshotter serve` as a
//! child process whose log counts containerd's calls, and a containerd of
//! the test's own (Debian's package, its own config, root, state and
//! sockets under the sandbox, in a private mount namespace) with strata
//! wired in as `[proxy_plugins.strata]`.
//!
//! Teardown order is fixed by ownership: a [`Containerd`] is declared
//! after the [`Service`] and the scratch filesystem it uses, so it drops
//! first: containerd, its shims and every mount it made die with its mount
//! namespace, then the service stops, then the sandbox and the scratch
//! filesystem go.

use crate::daemon::{poll, run, toml_str, Daemon, Out, Sandbox};
use std::ffi::OsStr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The proxy plugin's name in containerd's config, so `--snapshotter strata`.
pub const PLUGIN: &str = "strata";

/// `strata --root ROOT snapshotter serve --address SOCKET -s DRIVER`, its
/// output appended to `log`. Killed (SIGKILL) and reaped on drop.
pub struct Service {
    child: Option<Child>,
    pub root: PathBuf,
    pub driver: String,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Service {
    /// Starts the service and waits until its socket accepts connections.
    pub fn start(root: &Path, driver: &str, socket: &Path, log: &Path) -> Service {
        let mut s = Service {
            child: None,
            root: root.to_owned(),
            driver: driver.to_owned(),
            socket: socket.to_owned(),
            log: log.to_owned(),
        };
        s.restart();
        s
    }

    /// Starts the service again (after [`Service::kill`] or a stop),
    /// appending to the same log.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the service is already running");
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::File::options().create(true).append(true).open(&self.log).expect("service log");
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(&self.root)
            .args(["snapshotter", "serve", "--address"])
            .arg(&self.socket)
            .args(["-s", &self.driver])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting strata snapshotter serve");
        self.child = Some(child);
        let up = poll(Duration::from_secs(20), || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("strata snapshotter serve exited ({status}):\n{}", self.log_text());
            }
            UnixStream::connect(&self.socket).ok().map(|_| ())
        });
        assert!(up.is_some(), "strata snapshotter serve did not listen within 20 s:\n{}", self.log_text());
    }

    /// SIGKILL, as a crash would; the socket file stays behind.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: the service's own shutdown.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let stopped = poll(Duration::from_secs(20), || c.try_wait().ok().flatten());
            if stopped.is_none() {
                let _ = c.kill();
                let _ = c.wait();
                panic!("strata snapshotter serve ignored SIGTERM for 20 s:\n{}", self.log_text());
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The service's log lines for `call` (`prepare`, `view`, `commit`,
    /// `remove`, `update`, `cleanup`): one per mutating call containerd
    /// made, each `strata-snapshotter: <call> "<key>" …`.
    pub fn calls(&self, call: &str) -> Vec<String> {
        let prefix = format!("strata-snapshotter: {call} ");
        self.log_text().lines().filter(|l| l.starts_with(&prefix)).map(str::to_owned).collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("snapshotter log (last lines):\n{}", lines[lines.len().saturating_sub(40)..].join("\n"));
        }
    }
}

/// How the test's containerd is configured beyond its own directories and
/// the strata proxy plugin.
#[derive(Default)]
pub struct Options {
    /// Keep containerd's CRI plugin (disabled otherwise: it waits for CNI).
    pub cri: bool,
    /// TOML appended to the config (plugin sections of the test's own).
    pub extra_config: String,
}

/// A running containerd of the test's own with strata as a proxy
/// snapshotter. Dropping it stops containerd and everything in its mount
/// namespace (shims, containers, the mounts containerd made).
pub struct Containerd {
    /// Held for its drop: stops containerd and empties its namespace.
    _daemon: Daemon,
    pub dir: PathBuf,
    pub address: PathBuf,
    /// The containerd namespace every `ctr` call uses.
    pub namespace: String,
}

impl Containerd {
    /// Starts containerd with its files under `sandbox.dir()/containerd`,
    /// the proxy plugin `strata` at `service_socket`.
    pub fn start(sandbox: &Sandbox, service_socket: &Path, opts: Options) -> Containerd {
        let dir = sandbox.mkdir("containerd");
        let address = dir.join("containerd.sock");
        let mut disabled = vec![
            "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.zfs",
            "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.snapshotter.v1.aufs",
        ];
        if !opts.cri {
            disabled.push("io.containerd.grpc.v1.cri");
        }
        let disabled = disabled.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", ");
        let config = format!(
            r#"version = 2
root = {root}
state = {state}
disabled_plugins = [{disabled}]

[grpc]
  address = {grpc}

[ttrpc]
  address = {ttrpc}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[proxy_plugins.{PLUGIN}]
  type = "snapshot"
  address = {proxy}
{extra}
"#,
            root = toml_str(&dir.join("root")),
            state = toml_str(&dir.join("state")),
            grpc = toml_str(&address),
            ttrpc = toml_str(&dir.join("containerd.sock.ttrpc")),
            opt = toml_str(&dir.join("opt")),
            proxy = toml_str(service_socket),
            extra = opts.extra_config,
        );
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).expect("containerd config");
        let program = crate::daemon::which("containerd").expect("containerd installed");
        let mut daemon = Daemon::spawn(
            "containerd",
            &program,
            &[OsStr::new("--config"), config_path.as_os_str()],
            &[],
            dir.join("containerd.log"),
        );
        let ready = address.clone();
        daemon.wait_ready(Duration::from_secs(30), || {
            ready.exists() && run(Command::new("ctr").arg("--address").arg(&ready).arg("version")).code == Some(0)
        });
        Containerd { _daemon: daemon, dir, address, namespace: sandbox.name.clone() }
    }

    /// `ctr --address … --namespace … ARGS…`.
    pub fn ctr(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(&self.address).arg("--namespace").arg(&self.namespace).args(args);
        c
    }

    /// Runs `ctr ARGS…` to completion.
    #[track_caller]
    pub fn ctr_out(&self, args: &[&str]) -> Out {
        run(&mut self.ctr(args))
    }

    /// `program` run in containerd's mount namespace (its private `/run`,
    /// where CRI binds network namespaces).
    pub fn enter(&self, program: impl AsRef<OsStr>) -> Command {
        self._daemon.enter(program)
    }

    /// containerd's own log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }
}

/// The fixture itself: containerd's calls reach the service through the
/// proxy plugin (a `prepare` lands in the service's log), and with the
/// service stopped the same call fails. (`ctr snapshots ls` would prove
/// nothing: containerd lists from its own metadata database.)
#[test]
fn containerd_reaches_the_service_through_the_proxy_plugin() {
    let what = "containerd with strata as a proxy snapshotter";
    if !crate::daemon::require(what, &["containerd", "ctr", "unshare", "nsenter"]) {
        return;
    }
    let fs = strata::scratch::ScratchFs::new(strata::scratch::FsKind::Xfs, 1 << 30).expect("scratch");
    let scratch = crate::Scratch { fs: Some(fs) };
    let sandbox = Sandbox::new("snap-fixture");
    let (socket, log) = (sandbox.dir().join("strata.sock"), sandbox.dir().join("strata.log"));
    let mut service = Service::start(&scratch.path().join("root"), "overlay", &socket, &log);
    let cd = Containerd::start(&sandbox, &service.socket, Options::default());
    let out = cd.ctr_out(&["snapshots", "--snapshotter", PLUGIN, "prepare", "fixture-a", ""]);
    assert_eq!(out.code, Some(0), "{}\ncontainerd's log:\n{}", out.both(), cd.log_text());
    let calls = service.calls("prepare");
    assert_eq!(calls.len(), 1, "one prepare in the service's log:\n{}", service.log_text());
    assert!(calls[0].contains("fixture-a"), "{calls:?}");
    service.stop();
    let errors = crate::failures_until_one_names("strata.sock", |_| {
        cd.ctr_out(&["snapshots", "--snapshotter", PLUGIN, "prepare", "fixture-b", ""]).fails()
    });
    assert!(errors.last().is_some_and(|e| e.contains("strata.sock")), "no error names the proxy's socket: {errors:?}");
}
