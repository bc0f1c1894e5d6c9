//! Docker: a `dockerd` of the test's own (it starts its own containerd under
//! its exec root) with the runtime under test added as `strata`
//! (`--add-runtime`), driven by the Debian docker client of the same
//! version.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{require, run, Daemon, Sandbox, IMAGE_TAG};

struct Docker {
    daemon: Daemon,
    sandbox: Sandbox,
    socket: PathBuf,
    client: PathBuf,
    client_config: PathBuf,
}

impl Docker {
    fn start(test: &str) -> Option<Docker> {
        if !require(test, &["dockerd", "containerd", "containerd-shim-runc-v2", "unshare"]) {
            return None;
        }
        // The Debian client matches the daemon's API; a newer one on PATH
        // (/usr/local/bin) may not.
        let client = ["/usr/bin/docker"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .or_else(|| crate::daemon::which("docker"));
        let Some(client) = client else {
            require(test, &["docker"]);
            return None;
        };
        let sandbox = Sandbox::new(test);
        let d = sandbox.mkdir("docker");
        let socket = d.join("docker.sock");
        let daemon_json = d.join("daemon.json");
        // dockerd 20.10 writes a trust key to /etc/docker/key.json unless
        // told otherwise, and only daemon.json can tell it.
        let key = serde_json::json!({"deprecated-key-path": d.join("key.json")});
        std::fs::write(&daemon_json, key.to_string()).unwrap();
        // Nothing of the host's: not /etc/docker/daemon.json, not
        // /var/lib/docker, not /run/docker, not /etc/docker/key.json; no
        // bridge, no iptables rules, no proxy.
        let args: Vec<OsString> = vec![
            format!("--config-file={}", daemon_json.display()).into(),
            format!("--data-root={}", d.join("data").display()).into(),
            format!("--exec-root={}", d.join("exec").display()).into(),
            format!("--pidfile={}", d.join("docker.pid").display()).into(),
            format!("--host=unix://{}", socket.display()).into(),
            "--bridge=none".into(),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--ip-masq=false".into(),
            "--userland-proxy=false".into(),
            "--storage-driver=overlay2".into(),
            "--exec-opt=native.cgroupdriver=cgroupfs".into(),
            format!("--cgroup-parent=/{}", sandbox.name).into(),
            format!("--add-runtime=strata={}", sandbox.runtime().display()).into(),
        ];
        let program = crate::daemon::which("dockerd").unwrap();
        let argv: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let daemon = Daemon::spawn("dockerd", &program, &argv, &[], d.join("dockerd.log"));
        let mut docker = Docker { daemon, client_config: sandbox.mkdir("docker/client"), sandbox, socket, client };
        let mut probe = docker.docker(&["version", "--format", "{{.Server.Version}}"]);
        docker.daemon.wait_ready(Duration::from_secs(60), || run(&mut probe).code == Some(0));
        let started = Instant::now();
        let archive = docker.sandbox.image_archive();
        let out = run(docker.docker(&["load", "--input"]).arg(&archive)).ok().to_owned();
        assert!(out.contains(IMAGE_TAG), "docker load did not name {IMAGE_TAG}:\n{out}");
        eprintln!("{test}: docker load in {:.1?}", started.elapsed());
        Some(docker)
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.client);
        c.env("DOCKER_CONFIG", &self.client_config)
            .arg("--host")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        c
    }
}

/// `docker run --runtime strata` (output and exit code), `docker exec`,
/// `docker stop` (SIGTERM reaches the container's trap).
#[test]
fn docker_run_exec_stop_through_the_added_runtime() {
    let Some(dk) = Docker::start("docker") else { return };

    let out = run(&mut dk.docker(&[
        "run",
        "--rm",
        "--runtime",
        "strata",
        "--network",
        "none",
        "--hostname",
        "box",
        IMAGE_TAG,
        "sh",
        "-c",
        "echo hello from $(hostname); exit 3",
    ]));
    assert_eq!(out.code, Some(3), "exit code of the container's command:\n{}", out.both());
    assert_eq!(out.stdout, "hello from box\n", "{}", out.both());

    let script = "trap 'exit 7' TERM; while :; do sleep 0.1; done";
    let id = run(&mut dk.docker(&[
        "run",
        "-d",
        "--runtime",
        "strata",
        "--network",
        "none",
        "--name",
        "life",
        IMAGE_TAG,
        "sh",
        "-c",
        script,
    ]))
    .ok()
    .trim()
    .to_owned();
    let inspect = |format: &str| run(&mut dk.docker(&["inspect", "--format", format, &id])).ok().trim().to_owned();
    assert_eq!(inspect("{{.HostConfig.Runtime}} {{.State.Status}}"), "strata running");

    let out = run(&mut dk.docker(&["exec", "life", "sh", "-c", "echo $((6*7)) $$; exit 4"]));
    assert_eq!(out.code, Some(4), "exit code of the exec'd process:\n{}", out.both());
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"42"), "{}", out.both());
    assert_ne!(words.get(1), Some(&"1"), "exec ran as the container's pid 1:\n{}", out.both());

    let started = Instant::now();
    run(&mut dk.docker(&["stop", "--time", "20", "life"])).ok();
    let took = started.elapsed();
    assert_eq!(inspect("{{.State.Status}} {{.State.ExitCode}}"), "exited 7", "the container did not exit by its trap");
    assert!(took < Duration::from_secs(20), "stop waited for its timeout ({took:.1?}): SIGTERM never arrived");
    run(&mut dk.docker(&["rm", "life"])).ok();

    dk.sandbox.assert_runtime_ran(&["create", "start", "exec", "kill", "delete"]);
}
