//! The processes `bench containerd` starts and must stop: `strata
//! snapshotter serve` (one per driver) and a containerd of its own.
//!
//! containerd runs in a private mount namespace (`unshare --mount
//! --propagation private`) with a tmpfs on `/run`: its shims put their
//! sockets under the hard-coded `/run/containerd/s/` and runc its state
//! under `/run/containerd/runc/`, which then land on that tmpfs instead of
//! the host's `/run`; and every mount containerd makes (snapshot mounts
//! while unpacking, container root filesystems) stays in that namespace
//! and goes with it. Dropping a [`Containerd`] stops it (SIGTERM, then
//! SIGKILL), kills whatever is left in its namespace (shims) and removes
//! the cgroups `ctr run` made for its namespace. Scratch filesystems must
//! be mounted before containerd starts (the namespace copies the host's
//! mounts at that moment) and outlive it: declare them first.

use super::super::dataset::io_err;
use super::super::run::pipeline;
use super::super::start::os;
use super::super::BenchError;
use crate::sys::signal::{kill, Signal};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it returns `Some` or `limit` passes.
fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last lines of a log file, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// SIGTERM, up to 10 s to exit, then SIGKILL; always reaped.
fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(pid, Signal::SIGTERM);
    }
    if poll(Duration::from_secs(10), || child.try_wait().ok().flatten()).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A short directory of the bench's own for sockets, logs and config
/// (unix socket paths must fit 108 bytes, so not under a scratch mount
/// point). Removed on drop.
pub(in crate::bench) struct RunDir(PathBuf);

impl RunDir {
    pub(in crate::bench) fn new() -> Result<RunDir, BenchError> {
        let dir = PathBuf::from(format!("/tmp/strata-bcd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(io_err("create", &dir))?;
        Ok(RunDir(dir))
    }

    pub(in crate::bench) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `strata --root ROOT snapshotter serve --address SOCKET -s DRIVER`,
/// stopped on drop.
pub(super) struct Service {
    child: Child,
    pub(super) socket: PathBuf,
}

impl Service {
    /// Starts the service and waits until its socket accepts connections.
    pub(super) fn start(strata: &Path, root: &Path, driver: &str, run: &Path) -> Result<Service, BenchError> {
        let socket = run.join(format!("strata-{driver}.sock"));
        let log_path = run.join(format!("strata-{driver}.log"));
        let log = std::fs::File::create(&log_path).map_err(io_err("create", &log_path))?;
        let child = Command::new(strata)
            .arg("--root")
            .arg(root)
            .args(["snapshotter", "serve", "--address"])
            .arg(&socket)
            .args(["-s", driver])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_err("log", &log_path))?)
            .stderr(log)
            .spawn()
            .map_err(|source| BenchError::Spawn { command: format!("strata snapshotter serve -s {driver}"), source })?;
        let mut s = Service { child, socket };
        let up = poll(Duration::from_secs(20), || {
            if let Ok(Some(status)) = s.child.try_wait() {
                return Some(Err(status.to_string()));
            }
            std::os::unix::net::UnixStream::connect(&s.socket).ok().map(|_| Ok(()))
        });
        match up {
            Some(Ok(())) => Ok(s),
            Some(Err(status)) => Err(BenchError::Unavailable {
                what: format!("strata snapshotter serve -s {driver}"),
                reason: format!("exited ({status}): {}", tail(&log_path)),
            }),
            None => {
                stop(&mut s.child);
                Err(BenchError::Unavailable {
                    what: format!("strata snapshotter serve -s {driver}"),
                    reason: format!("did not listen within 20 s: {}", tail(&log_path)),
                })
            }
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A containerd of the bench's own (see the module doc).
pub(in crate::bench) struct Containerd {
    child: Child,
    /// `mnt:[inode]` of its namespace, and a descriptor holding the
    /// namespace so its inode number cannot be reused before teardown has
    /// killed by it.
    ns: Option<(PathBuf, std::fs::File)>,
    address: PathBuf,
    namespace: String,
    log: PathBuf,
}

impl Containerd {
    /// Starts containerd with config, sockets and log under `run`, its
    /// root and state under `data`, and one `[proxy_plugins.NAME]` of type
    /// `snapshot` per `(NAME, socket)`.
    pub(in crate::bench) fn start(
        run: &Path,
        data: &Path,
        proxies: &[(&str, &Path)],
    ) -> Result<Containerd, BenchError> {
        let address = run.join("containerd.sock");
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let mut config = format!(
            "version = 2\nroot = {}\nstate = {}\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\", \
             \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", \
             \"io.containerd.snapshotter.v1.aufs\"]\n\n\
             [grpc]\n  address = {}\n\n[ttrpc]\n  address = {}\n\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {}\n",
            q(&data.join("root")),
            q(&data.join("state")),
            q(&address),
            q(&run.join("containerd.sock.ttrpc")),
            q(&data.join("opt")),
        );
        for (name, socket) in proxies {
            config.push_str(&format!("\n[proxy_plugins.{name:?}]\n  type = \"snapshot\"\n  address = {}\n", q(socket)));
        }
        let config_path = run.join("containerd.toml");
        std::fs::write(&config_path, config).map_err(io_err("write", &config_path))?;
        let log = run.join("containerd.log");
        let logfile = std::fs::File::create(&log).map_err(io_err("create", &log))?;
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg("mount -t tmpfs -o mode=0755 strata-bench-run /run && exec \"$0\" \"$@\"")
            .arg("containerd")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(logfile.try_clone().map_err(io_err("log", &log))?)
            .stderr(logfile)
            .spawn()
            .map_err(|source| BenchError::Spawn { command: "unshare --mount … containerd".into(), source })?;
        let own = std::fs::read_link("/proc/self/ns/mnt").ok();
        let ns_link = PathBuf::from(format!("/proc/{}/ns/mnt", child.id()));
        let mut cd =
            Containerd { child, ns: None, address, namespace: format!("strata-bench-{}", std::process::id()), log };
        // unshare(1) enters the new namespace before it execs sh.
        cd.ns = poll(Duration::from_secs(5), || {
            let pin = std::fs::File::open(&ns_link).ok()?;
            let ns = std::fs::read_link(&ns_link).ok()?;
            (Some(&ns) != own.as_ref()).then_some((ns, pin))
        });
        let ready = poll(Duration::from_secs(30), || {
            if let Ok(Some(status)) = cd.child.try_wait() {
                return Some(Err(status.to_string()));
            }
            let up = cd.address.exists() && pipeline(&[cd.ctr(&["version"])]).is_ok();
            up.then_some(Ok(()))
        });
        match ready {
            Some(Ok(())) if cd.ns.is_some() => Ok(cd),
            Some(Err(status)) => Err(BenchError::Unavailable {
                what: "containerd".into(),
                reason: format!("exited during start-up ({status}): {}", tail(&cd.log)),
            }),
            _ => Err(BenchError::Unavailable {
                what: "containerd".into(),
                reason: format!("not ready within 30 s (or no namespace of its own): {}", tail(&cd.log)),
            }),
        }
    }

    /// `ctr --address … --namespace … ARGS…` as an argument vector.
    pub(in crate::bench) fn ctr(&self, args: &[&str]) -> Vec<OsString> {
        let mut v = os(&["ctr", "--address"]);
        v.push(self.address.clone().into());
        v.extend(os(&["--namespace", &self.namespace]));
        v.extend(os(args));
        v
    }

    /// Runs `ctr ARGS…`; its stdout.
    pub(in crate::bench) fn run(&self, args: &[&str]) -> Result<String, BenchError> {
        pipeline(&[self.ctr(args)]).map(|out| String::from_utf8_lossy(&out).into_owned())
    }

    fn namespace_members(&self) -> Vec<i32> {
        let Some((ns, _)) = &self.ns else { return Vec::new() };
        let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok().as_ref() == Some(ns))
            .collect()
    }

    /// Removes the cgroups `ctr run` made (`/<namespace>/<id>` in every
    /// hierarchy), deepest first; the tasks in them are gone by now.
    fn remove_cgroups(&self) {
        let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else { return };
        let mut roots: Vec<PathBuf> = rd.flatten().map(|e| e.path().join(&self.namespace)).collect();
        roots.push(Path::new("/sys/fs/cgroup").join(&self.namespace));
        for root in roots.into_iter().filter(|r| r.is_dir()) {
            let mut dirs = vec![root.clone()];
            if let Ok(rd) = std::fs::read_dir(&root) {
                dirs.extend(rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
            }
            for d in dirs.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        stop(&mut self.child);
        // Shims and anything else left in the namespace; the namespace and
        // its mounts go when its last process does.
        let gone = poll(Duration::from_secs(10), || {
            let left = self.namespace_members();
            left.iter().for_each(|&pid| {
                let _ = kill(pid, Signal::SIGKILL);
            });
            left.is_empty().then_some(())
        });
        if gone.is_none() {
            eprintln!("[bench] containerd: processes of its mount namespace survived SIGKILL");
        }
        self.ns = None;
        self.remove_cgroups();
    }
}
