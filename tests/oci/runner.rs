//! Driving a runtime binary through runc's command line: one state
//! directory (`--root`) per runtime per test, containers deleted on drop.
//!
//! The runtime under test is `strata-runc` unless `STRATA_TEST_RUNTIME`
//! names another: a path to a runc-compatible binary, `runc`, or `crun`.
//! crun refuses this host's hybrid cgroup layout (a cgroup2 mount at
//! `/sys/fs/cgroup/unified` beside the v1 controllers), so `crun` runs it
//! in a mount namespace of its own with that mount unmounted.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The reference implementation.
pub const RUNC: &str = "/usr/sbin/runc";

/// How long one runtime command may take before it is killed.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A runc-compatible command: a program and the arguments before runc's.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Short name used in container IDs and messages.
    pub name: String,
    program: PathBuf,
    prefix: Vec<String>,
}

impl Runtime {
    /// runc, the reference, if installed.
    pub fn reference() -> Option<Runtime> {
        Path::new(RUNC).exists().then(|| Runtime { name: "runc".into(), program: RUNC.into(), prefix: Vec::new() })
    }

    /// The runtime under test: `STRATA_TEST_RUNTIME`, else `strata-runc`.
    /// The runtime as a shell command line (program and prefix, quoted).
    pub fn command_line(&self) -> String {
        let mut words = vec![format!("'{}'", self.program.display())];
        words.extend(self.prefix.iter().map(|w| format!("'{}'", w.replace('\'', "'\\''"))));
        words.join(" ")
    }

    pub fn under_test() -> Runtime {
        match std::env::var("STRATA_TEST_RUNTIME").ok().as_deref() {
            None | Some("") => {
                Runtime { name: "strata".into(), program: env!("CARGO_BIN_EXE_strata-runc").into(), prefix: Vec::new() }
            }
            Some("runc") => Runtime { name: "runc2".into(), program: RUNC.into(), prefix: Vec::new() },
            Some("crun") => Runtime {
                name: "crun".into(),
                program: "unshare".into(),
                prefix: ["-m", "sh", "-c", "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun \"$@\"", "crun"]
                    .map(String::from)
                    .to_vec(),
            },
            Some(path) => Runtime {
                name: Path::new(path).file_name().map_or("other".into(), |n| n.to_string_lossy().into_owned()),
                program: path.into(),
                prefix: Vec::new(),
            },
        }
    }
}

/// What one runtime command did.
#[derive(Debug, Clone)]
pub struct Out {
    /// The exit code, or 128 + the signal that killed the runtime.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Panics with the command's output unless it exited 0.
    pub fn ok(self, what: &str) -> Out {
        assert_eq!(self.code, 0, "{what} failed: {self:?}");
        self
    }
}

/// A runtime with its own `--root` state directory and a scratch
/// directory for the output of its commands. Dropping it force-deletes
/// every container its state directory still names.
pub struct StateRoot {
    pub rt: Runtime,
    state: TempDir,
    io: TempDir,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl StateRoot {
    pub fn new(rt: &Runtime) -> StateRoot {
        let state = tempfile::Builder::new().prefix("strata-oci-root.").tempdir().expect("state tempdir");
        let io = tempfile::Builder::new().prefix("strata-oci-io.").tempdir().expect("io tempdir");
        StateRoot { rt: rt.clone(), state, io }
    }

    /// A container ID unique to this test process: case, runtime, pid,
    /// sequence number.
    pub fn new_id(&self, case: &str) -> String {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        format!("oci-{case}-{}-{}-{n}", self.rt.name, std::process::id())
    }

    /// Runs `<runtime> --root <state> args…` in `cwd` (the bundle for
    /// `run`/`create`), stdio redirected to files so that a container
    /// holding them open cannot block the read.
    pub fn cmd_in(&self, cwd: Option<&Path>, args: &[&str]) -> Out {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let out_path = self.io.path().join(format!("{n}.out"));
        let err_path = self.io.path().join(format!("{n}.err"));
        let mut cmd = Command::new(&self.rt.program);
        cmd.args(&self.rt.prefix).arg("--root").arg(self.state.path()).args(args);
        cmd.stdin(Stdio::null())
            .stdout(File::create(&out_path).expect("stdout file"))
            .stderr(File::create(&err_path).expect("stderr file"));
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {:?}: {e}", self.rt.program));
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait runtime") {
                break status;
            }
            if start.elapsed() > TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} {args:?} took more than {TIMEOUT:?}", self.rt.name);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        use std::os::unix::process::ExitStatusExt;
        let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        Out { code, stdout: read(&out_path), stderr: read(&err_path) }
    }

    /// The state directory (`--root`).
    pub fn path(&self) -> &Path {
        self.state.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Out {
        self.cmd_in(None, args)
    }

    /// Entries left in the state directory.
    pub fn leftovers(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.state.path())
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// `create --bundle B ID`, guarded: the container is force-deleted on
    /// drop.
    pub fn create<'a>(&'a self, bundle: &Path, id: &str) -> (Container<'a>, Out) {
        let out = self.cmd_in(Some(bundle), &["create", "--bundle", bundle.to_str().unwrap(), id]);
        (Container { root: self, id: id.to_string() }, out)
    }

    /// The `state` document of `id`, parsed (panics when `state` fails).
    pub fn state(&self, id: &str) -> serde_json::Value {
        let out = self.cmd(&["state", id]).ok("state");
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{} state: {e}: {}", self.rt.name, out.stdout))
    }

    /// Polls `state` until `status` is `want` (or 10 s pass); returns the
    /// last document.
    pub fn wait_status(&self, id: &str, want: &str) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let state = self.state(id);
            if state["status"] == want || start.elapsed() > Duration::from_secs(10) {
                return state;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for StateRoot {
    fn drop(&mut self) {
        for id in self.leftovers() {
            let _ = self.cmd(&["delete", "--force", &id]);
        }
    }
}

/// A container that is force-deleted when dropped.
pub struct Container<'a> {
    pub root: &'a StateRoot,
    pub id: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.root.cmd(&["delete", "--force", &self.id]);
    }
}

/// Host mounts whose line names `needle` (a bundle path, a container ID).
pub fn host_mounts_naming(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("read mountinfo")
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// cgroup directories named `id` in any hierarchy under
/// `/sys/fs/cgroup`, searched a few levels deep (runc puts a container
/// without `cgroupsPath` at `/<id>` under the caller's cgroup).
pub fn host_cgroups_named(id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, id: &str, depth: u32, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if entry.file_name().to_string_lossy() == id {
                found.push(path.clone());
            }
            if depth > 0 {
                walk(&path, id, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), id, 4, &mut found);
    found
}

/// A network namespace made with `ip netns add`, deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(tag: &str) -> NetNs {
        let name = format!("strata-oci-{tag}-{}", std::process::id());
        let st = Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns add");
        assert!(st.success(), "ip netns add {name}");
        NetNs { name }
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

/// A tmpfs mounted on the host at `path`, unmounted on drop.
pub struct HostTmpfs {
    path: PathBuf,
}

impl HostTmpfs {
    pub fn new(path: &Path) -> HostTmpfs {
        std::fs::create_dir_all(path).expect("mkdir host tmpfs");
        let st =
            Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(path).status().expect("mount");
        assert!(st.success(), "mount tmpfs on {}", path.display());
        HostTmpfs { path: path.to_path_buf() }
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
