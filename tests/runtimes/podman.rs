//! podman `--runtime <runtime>`, through conmon, on its own storage (vfs),
//! run root, tmp dir, configuration files and cgroup parent.
//!
//! podman has no daemon, but it and the processes it leaves (conmon, the
//! `podman container cleanup` conmon runs at exit) still write to host
//! paths no flag moves: the runtime's state under `/run/<runtime>` (the
//! cleanup's `delete` gets no `--root`, so none can be given),
//! containers/image's blob-info cache under `/var/lib/containers/cache`,
//! and its temporary files under `/var/tmp`. So every podman command
//! enters one mount namespace kept by a holder process, with tmpfs on
//! `/run`, `/var/lib/containers` and `/var/tmp`; podman's shm mounts live
//! there too, and go with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{memory_limit, require, run, toml_str, Daemon, Out, Sandbox};

const IMAGE: &str = "localhost/strata-test/busybox:latest";

/// podman's configuration for a test: every path under the sandbox, and
/// what the host's `/etc/containers` would otherwise decide.
struct Podman {
    holder: Daemon,
    sandbox: Sandbox,
    root: PathBuf,
    runroot: PathBuf,
    tmpdir: PathBuf,
    conf: PathBuf,
    storage_conf: PathBuf,
    registries_conf: PathBuf,
}

impl Podman {
    fn start(test: &str) -> Option<Podman> {
        if !require(test, &["podman", "conmon", "unshare", "nsenter"]) {
            return None;
        }
        let sandbox = Sandbox::new(test);
        let root = sandbox.mkdir("podman/root");
        let runroot = sandbox.mkdir("podman/runroot");
        let tmpdir = sandbox.mkdir("podman/tmp");
        let netdir = sandbox.mkdir("podman/net");
        // podman 4.3 gives a rootful container RLIMIT_NOFILE and
        // RLIMIT_NPROC of 1048576 unless configured; without
        // CAP_SYS_RESOURCE (this host's root lacks it) the runtime may not
        // raise its limits that far and create fails with EPERM. podman
        // itself runs with RLIMIT_NPROC lowered to 32768 and its conmon and
        // the runtime inherit that, so the defaults here stay at or below
        // both what this process has and that.
        let nofile = hard_limit("Max open files");
        let nproc = hard_limit("Max processes").min(32768);
        let conf = sandbox.dir().join("podman/containers.conf");
        std::fs::write(
            &conf,
            format!(
                r#"[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[network]
network_config_dir = {netdir}

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
image_copy_tmp_dir = {tmpdir}
"#,
                netdir = toml_str(&netdir),
                tmpdir = toml_str(&tmpdir),
            ),
        )
        .unwrap();
        let storage_conf = sandbox.dir().join("podman/storage.conf");
        std::fs::write(
            &storage_conf,
            format!("[storage]\ndriver = \"vfs\"\nrunroot = {}\ngraphroot = {}\n", toml_str(&runroot), toml_str(&root)),
        )
        .unwrap();
        let registries_conf = sandbox.dir().join("podman/registries.conf");
        std::fs::write(&registries_conf, "unqualified-search-registries = []\n").unwrap();
        let hide = ["/var/lib/containers", "/var/lib"].into_iter().map(Path::new).find(|p| p.is_dir()).unwrap();
        let holder = Daemon::spawn(
            "podman-namespace",
            Path::new("/bin/sleep"),
            &[std::ffi::OsStr::new("infinity")],
            &[hide, Path::new("/var/tmp")],
            sandbox.dir().join("podman/holder.log"),
        );
        let p = Podman { holder, sandbox, root, runroot, tmpdir, conf, storage_conf, registries_conf };
        let started = Instant::now();
        let archive = p.sandbox.image_archive();
        let out = run(p.podman(&["load", "-i"]).arg(&archive));
        assert!(out.ok().contains(IMAGE), "podman load did not name {IMAGE}:\n{}", out.both());
        eprintln!("{test}: podman load in {:.1?}", started.elapsed());
        Some(p)
    }

    fn podman(&self, args: &[&str]) -> Command {
        let mut c = self.holder.enter("podman");
        c.env("CONTAINERS_CONF", &self.conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .env("CONTAINERS_REGISTRIES_CONF", &self.registries_conf)
            .env("TMPDIR", &self.tmpdir)
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .arg("--tmpdir")
            .arg(&self.tmpdir)
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .arg("--runtime")
            .arg(self.sandbox.runtime())
            .args(args);
        c
    }

    /// `podman run` with the options every test container gets, then `args`.
    fn podman_run(&self, args: &[&str]) -> Command {
        let mut c = self.podman(&["run", "--network", "none", "--cgroup-parent"]);
        c.arg(format!("/{}", self.sandbox.name)).args(args);
        c
    }

    fn inspect(&self, id: &str, format: &str) -> String {
        run(&mut self.podman(&["inspect", "--format", format, id])).ok().trim().to_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Before the holder's namespace goes (its members killed) and the
        // sandbox kills what is left in its cgroups: podman removing its
        // containers itself runs the runtime's delete, as on a real host.
        let out = run(&mut self.podman(&["rm", "--all", "--force", "--time", "0"]));
        if out.code != Some(0) {
            eprintln!("podman rm --all: {}", out.both());
        }
    }
}

fn hard_limit(name: &str) -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in /proc/self/limits"));
    let hard = line[name.len()..].split_whitespace().nth(1).unwrap();
    hard.parse().unwrap_or(1 << 20)
}

/// run (output and exit code), exec, logs, stop (SIGTERM reaches the
/// container, which exits by its trap) and rm.
#[test]
fn podman_run_exec_logs_stop_rm() {
    let Some(p) = Podman::start("podman-life") else { return };

    let out = run(&mut p.podman_run(&[
        "--rm",
        "--hostname",
        "box",
        IMAGE,
        "sh",
        "-c",
        "echo hello from $(hostname); exit 3",
    ]));
    assert_eq!(out.code, Some(3), "exit code of the container's command:\n{}", out.both());
    assert_eq!(out.stdout, "hello from box\n", "{}", out.both());

    let script = "echo to-stdout; echo to-stderr >&2; trap 'exit 7' TERM; while :; do sleep 0.1; done";
    let id = run(&mut p.podman_run(&["-d", "--name", "life", IMAGE, "sh", "-c", script])).ok().trim().to_owned();
    assert_eq!(p.inspect(&id, "{{.State.Status}}"), "running");

    let out: Out = run(&mut p.podman(&["exec", "life", "sh", "-c", "echo $((6*7)) $$; exit 4"]));
    assert_eq!(out.code, Some(4), "exit code of the exec'd process:\n{}", out.both());
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"42"), "{}", out.both());
    assert_ne!(words.get(1), Some(&"1"), "exec ran as the container's pid 1:\n{}", out.both());

    let logged = poll_logs(&p, "life");
    assert!(logged.contains("to-stdout") && logged.contains("to-stderr"), "podman logs: {logged}");

    let started = Instant::now();
    run(&mut p.podman(&["stop", "--time", "20", "life"])).ok();
    let took = started.elapsed();
    assert_eq!(p.inspect("life", "{{.State.ExitCode}}"), "7", "the container did not exit by its SIGTERM trap");
    assert!(took < Duration::from_secs(20), "stop waited for its timeout ({took:.1?}): SIGTERM never arrived");

    run(&mut p.podman(&["rm", "life"])).ok();
    let all = run(&mut p.podman(&["ps", "--all", "--quiet", "--no-trunc"])).ok().to_owned();
    assert!(!all.contains(&id), "container {id} still listed after rm:\n{all}");

    p.sandbox.assert_runtime_ran(&["create", "start", "exec", "kill", "delete"]);
}

fn poll_logs(p: &Podman, name: &str) -> String {
    crate::daemon::poll(Duration::from_secs(10), || {
        let out = run(&mut p.podman(&["logs", name]));
        let both = format!("{}{}", out.stdout, out.stderr);
        (out.code == Some(0) && both.contains("to-stdout") && both.contains("to-stderr")).then_some(both)
    })
    .unwrap_or_else(|| run(&mut p.podman(&["logs", name])).both())
}

/// `--memory 64m` is written by the runtime into the container's memory
/// cgroup, read back from the cgroup of the container's process.
#[test]
fn podman_memory_limit_reaches_the_cgroup() {
    let Some(p) = Podman::start("podman-memory") else { return };
    run(&mut p.podman_run(&["-d", "--name", "capped", "--memory", "64m", IMAGE, "sleep", "600"])).ok();
    let pid: u32 = p.inspect("capped", "{{.State.Pid}}").parse().expect("container pid");
    assert!(pid > 0, "container not running");
    assert_eq!(memory_limit(pid), 64 << 20, "memory limit in the cgroup of pid {pid}");
    let cgroup = crate::daemon::cgroup_dir(pid, "memory");
    assert!(
        cgroup.starts_with(Path::new("/sys/fs/cgroup/memory").join(&p.sandbox.name))
            || cgroup.to_string_lossy().contains(&p.sandbox.name),
        "container cgroup {} is not under its --cgroup-parent",
        cgroup.display()
    );
    run(&mut p.podman(&["rm", "--force", "--time", "0", "capped"])).ok();
    assert!(!cgroup.exists(), "cgroup {} left after rm", cgroup.display());
}
