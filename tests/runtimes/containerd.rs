//! containerd (Debian's, with `ctr` and `containerd-shim-runc-v2`): the
//! image imported with `ctr images import`, containers run with
//! `ctr run --runc-binary <runtime>`, which the shim passes on as the
//! `BinaryName` runtime option.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::daemon::{frozen, poll, require, run, sh_quote, toml_str, Daemon, Out, Sandbox};

const IMAGE: &str = "docker.io/strata-test/busybox:latest";

/// A running containerd of the test's own, with the image imported. Fields
/// drop in order: the daemon, then the sandbox it lives in.
struct Containerd {
    daemon: Daemon,
    sandbox: Sandbox,
    address: PathBuf,
    runtime_root: PathBuf,
    fifos: PathBuf,
}

impl Containerd {
    /// `None` (after saying why) when containerd is not installed.
    fn start(test: &str) -> Option<Containerd> {
        if !require(test, &["containerd", "ctr", "containerd-shim-runc-v2", "unshare"]) {
            return None;
        }
        let sandbox = Sandbox::new(test);
        let d = sandbox.mkdir("containerd");
        let address = d.join("containerd.sock");
        // Its own root, state and sockets; no CRI (which would want CNI),
        // no snapshotters this host cannot have. `opt` is the one plugin
        // whose default path is on the host.
        let config = format!(
            r#"version = 2
root = {root}
state = {state}
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = {grpc}

[ttrpc]
  address = {ttrpc}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}
"#,
            root = toml_str(&d.join("root")),
            state = toml_str(&d.join("state")),
            grpc = toml_str(&address),
            ttrpc = toml_str(&d.join("containerd.sock.ttrpc")),
            opt = toml_str(&d.join("opt")),
        );
        let config_path = d.join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let program = crate::daemon::which("containerd").unwrap();
        let daemon = Daemon::spawn(
            "containerd",
            &program,
            &[OsStr::new("--config"), config_path.as_os_str()],
            &[],
            d.join("containerd.log"),
        );
        let mut c = Containerd {
            daemon,
            runtime_root: sandbox.mkdir("runtime-root"),
            fifos: sandbox.mkdir("fifo"),
            sandbox,
            address,
        };
        let address = c.address.clone();
        c.daemon.wait_ready(Duration::from_secs(30), || {
            address.exists() && run(Command::new("ctr").arg("--address").arg(&address).arg("version")).code == Some(0)
        });
        let archive = c.sandbox.image_archive();
        let out = c.ctr(&["images", "import", "--snapshotter", "overlayfs"]).arg(&archive).output_checked();
        assert!(out.contains(IMAGE), "import did not name the image:\n{out}");
        Some(c)
    }

    /// `ctr` on this containerd, in a containerd namespace named after the
    /// sandbox.
    fn ctr(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(&self.address).arg("--namespace").arg(&self.sandbox.name).args(args);
        c
    }

    /// `ctr run`'s options that give a container the runtime under test,
    /// this test's runtime state root, FIFO directory and cgroup.
    fn run_options(&self, id: &str) -> Vec<OsString> {
        let mut v: Vec<OsString> = Vec::new();
        v.push("--snapshotter".into());
        v.push("overlayfs".into());
        v.push("--runc-binary".into());
        v.push(self.sandbox.runtime().into());
        v.push("--runc-root".into());
        v.push(self.runtime_root.clone().into());
        v.push("--fifo-dir".into());
        v.push(self.fifos.clone().into());
        v.push("--cgroup".into());
        v.push(format!("/{}/{id}", self.sandbox.name).into());
        v
    }

    /// `ctr run [options] IMAGE ID ARGS…`, the options before the image.
    fn ctr_run(&self, flags: &[&str], id: &str, args: &[&str]) -> Command {
        let mut c = self.ctr(&["run"]);
        c.args(flags).args(self.run_options(id)).arg(IMAGE).arg(id).args(args);
        c
    }

    /// The task's status column in `ctr task ls` (None when not listed).
    fn task_status(&self, id: &str) -> Option<(u32, String)> {
        let out = run(&mut self.ctr(&["task", "ls"]));
        out.ok().lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| (f[1].parse().unwrap(), f[2].to_owned()))
        })
    }

    /// The runtime's state directory for container `id`.
    fn runtime_state(&self, id: &str) -> PathBuf {
        self.runtime_root.join(&self.sandbox.name).join(id)
    }

    fn cgroup(&self, controller: &str, id: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup").join(controller).join(&self.sandbox.name).join(id)
    }
}

trait Checked {
    fn output_checked(&mut self) -> String;
}

impl Checked for Command {
    #[track_caller]
    fn output_checked(&mut self) -> String {
        run(self).ok().to_owned()
    }
}

/// A command's output and its exit code come back through `ctr run`, and
/// `ctr run -t` gives the container a pty of its own (`tty` names it, and
/// standard input is a terminal).
#[test]
fn containerd_run_reports_output_exit_code_and_a_pty() {
    let Some(cd) = Containerd::start("containerd-run") else { return };

    let out =
        run(&mut cd.ctr_run(&["--rm", "--env", "WHO=ctr"], "plain", &["sh", "-c", "echo hello from $WHO; exit 3"]));
    assert_eq!(out.code, Some(3), "exit code of the container's command:\n{}", out.both());
    assert_eq!(out.stdout, "hello from ctr\n", "{}", out.both());

    // ctr -t wants its own standard input to be a terminal: script(1) runs
    // it on a pty. The runtime makes the container's pty and hands the
    // master to the shim over the console socket.
    // The pause before the exit works around a race of ctr 1.6 and its
    // shim (containerd issues 770, 856): a pty's last output can be lost
    // when the process exits right after writing it.
    let probe = "tty; test -t 0 && echo stdin-is-a-tty; sleep 0.5; exit 5";
    let cmd = cd.ctr_run(&["--rm", "-t"], "tty", &["sh", "-c", probe]);
    let line = std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(sh_quote).collect::<Vec<_>>().join(" ");
    let out = run(Command::new("script").args(["--quiet", "--return", "--command", &line, "/dev/null"]));
    assert_eq!(out.code, Some(5), "exit code through the pty:\n{}", out.both());
    let text = out.stdout.replace('\r', "");
    assert!(text.contains("/dev/pts/0\n"), "tty inside the container:\n{}", out.both());
    assert!(text.contains("stdin-is-a-tty\n"), "{}", out.both());

    cd.sandbox.assert_runtime_ran(&["create", "start", "delete"]);
    assert!(cd.sandbox.runtime_calls().iter().any(|c| c.contains("--console-socket")), "-t without a console socket");
}

/// A detached task through its life: `ctr task exec`, `ps`, `pause` and
/// `resume` (the freezer cgroup follows), `kill` (the signal reaches the
/// container's trap), `delete` (exit code reported, the runtime's state and
/// the container's cgroup gone).
#[test]
fn containerd_task_exec_ps_pause_resume_kill_delete() {
    let Some(cd) = Containerd::start("containerd-task") else { return };
    let id = "task";
    // PID 1 ignores SIGTERM unless it has a handler: this one exits 7 on
    // it. Its one child lives as long as it does, so `ps` has a fixed
    // answer: these two processes.
    let script = "trap 'exit 7' TERM; sleep 600 & wait";
    run(&mut cd.ctr_run(&["-d"], id, &["sh", "-c", script])).ok();
    let (pid, status) = cd.task_status(id).expect("task listed after ctr run -d");
    assert_eq!(status, "RUNNING");
    assert!(cd.runtime_state(id).exists(), "no runtime state at {}", cd.runtime_state(id).display());

    let exec = |args: &[&str], exec_id: &str| -> Out {
        let mut c = cd.ctr(&["task", "exec", "--exec-id", exec_id, "--fifo-dir"]);
        c.arg(&cd.fifos).arg(id).args(args);
        run(&mut c)
    };
    let out = exec(&["sh", "-c", "echo $((6*7)) $(cat /proc/1/cmdline | tr '\\0' ' '); exit 4"], "answer");
    assert_eq!(out.code, Some(4), "exit code of the exec'd process:\n{}", out.both());
    assert_eq!(out.stdout.trim_end(), format!("42 sh -c {script}"), "{}", out.both());

    let ps = run(&mut cd.ctr(&["task", "ps", id])).ok().to_owned();
    let pids: Vec<u32> = ps.lines().skip(1).filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect();
    assert!(pids.contains(&pid), "task ps does not list the init pid {pid}:\n{ps}");
    let procs = std::fs::read_to_string(cd.cgroup("pids", id).join("cgroup.procs")).unwrap_or_default();
    let mut in_cgroup: Vec<u32> = procs.lines().filter_map(|l| l.parse().ok()).collect();
    let mut listed = pids.clone();
    in_cgroup.sort_unstable();
    listed.sort_unstable();
    assert_eq!(listed, in_cgroup, "task ps and the container's cgroup disagree:\n{ps}");
    assert_eq!(listed.len(), 2, "the container runs sh and its sleep:\n{ps}");

    run(&mut cd.ctr(&["task", "pause", id])).ok();
    assert_eq!(cd.task_status(id).unwrap().1, "PAUSED");
    assert!(frozen(pid), "paused but its freezer cgroup is not frozen");
    run(&mut cd.ctr(&["task", "resume", id])).ok();
    assert_eq!(cd.task_status(id).unwrap().1, "RUNNING");
    assert!(!frozen(pid), "resumed but its freezer cgroup is still frozen");

    run(&mut cd.ctr(&["task", "kill", "--signal", "SIGTERM", id])).ok();
    let stopped = poll(Duration::from_secs(10), || cd.task_status(id).filter(|(_, s)| s == "STOPPED"));
    assert!(stopped.is_some(), "task not STOPPED 10 s after SIGTERM: {:?}", cd.task_status(id));

    let memory_cgroup = cd.cgroup("memory", id);
    let out = run(&mut cd.ctr(&["task", "delete", id]));
    // ctr reports a non-zero exit of the deleted task as a warning.
    assert!(out.stderr.contains("exit code 7"), "task delete does not report exit code 7:\n{}", out.both());
    assert_eq!(cd.task_status(id), None, "task still listed after delete");
    assert!(!cd.runtime_state(id).exists(), "runtime state left at {}", cd.runtime_state(id).display());
    assert!(!memory_cgroup.exists(), "cgroup left at {}", memory_cgroup.display());
    run(&mut cd.ctr(&["containers", "rm", id])).ok();

    cd.sandbox.assert_runtime_ran(&["create", "start", "exec", "ps", "pause", "resume", "kill", "delete"]);
}

/// A container whose command does not exist fails to start, and the
/// runtime's own error (the shim reads it from the runtime's `--log`
/// log.json) reaches `ctr`'s output; nothing of it is left behind.
#[test]
fn containerd_failing_start_reports_the_runtime_error() {
    let Some(cd) = Containerd::start("containerd-fail") else { return };
    let id = "broken";
    let missing = "/no/such/command";
    let out = run(&mut cd.ctr_run(&["--rm"], id, &[missing, "arg"]));
    let text = out.fails();
    assert!(
        text.contains("OCI runtime create failed") || text.contains("OCI runtime start failed"),
        "ctr's error does not come from the runtime:\n{text}"
    );
    assert!(text.contains(missing), "the runtime's error does not name the missing command:\n{text}");
    assert!(
        cd.sandbox.runtime_calls().iter().any(|c| c.contains("--log") && c.contains("log.json")),
        "the shim did not give the runtime a log.json:\n{}",
        cd.sandbox.runtime_calls().join("\n")
    );

    assert_eq!(cd.task_status(id), None, "failed task still listed");
    assert!(!cd.runtime_state(id).exists(), "runtime state left at {}", cd.runtime_state(id).display());
    assert!(!cd.cgroup("memory", id).exists(), "cgroup left at {}", cd.cgroup("memory", id).display());
}
