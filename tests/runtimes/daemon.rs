//! Fixtures the daemon tests share: the runtime under test and its logging
//! wrapper, a sandbox directory that cleans up after itself, a daemon
//! process in its own mount namespace, commands with a deadline, cgroup
//! readings, and the busybox image every daemon loads.
//!
//! Teardown order matters and is fixed by ownership: a daemon guard is
//! declared before the sandbox it lives in, so the daemon and every process
//! of its mount namespace (shims, its own containerd) die first; then the
//! sandbox kills what is left in its cgroups (thawing frozen ones first),
//! removes those cgroups, unmounts whatever is mounted under its directory
//! and removes the directory.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use sha2::{Digest as _, Sha256};

/// How long one client command may take before the test fails: far above
/// what any takes here (well under a second), low enough that a runtime
/// that hangs fails the test instead of the whole run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The runtime binary under test: `STRATA_TEST_RUNTIME`, else strata-runc.
pub fn runtime() -> PathBuf {
    match std::env::var_os("STRATA_TEST_RUNTIME") {
        Some(r) if !r.is_empty() => PathBuf::from(r),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_strata-runc")),
    }
}

/// Whether every binary in `tools` is installed. When one is not, the test
/// prints why and is skipped, unless `STRATA_TEST_STRICT` is set (tools/test
/// sets it), where a test that cannot run is a failure.
pub fn require(test: &str, tools: &[&str]) -> bool {
    if !rustix::process::geteuid().is_root() {
        return skip(test, "root (daemons, mounts, cgroups)");
    }
    for tool in tools {
        if which(tool).is_none() {
            return skip(test, &format!("{tool} (tools/deps installs it)"));
        }
    }
    true
}

fn skip(test: &str, what: &str) -> bool {
    if std::env::var_os("STRATA_TEST_STRICT").is_some() {
        panic!("{test}: needs {what}, and STRATA_TEST_STRICT forbids skipping");
    }
    eprintln!("skipped: {test} needs {what}");
    false
}

/// The first `name` on `PATH` (plus the sbin directories a non-login root
/// shell may lack).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// What a finished command left: its exit code (`None` when a signal killed
/// it) and its output.
pub struct Out {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts the command succeeded; its standard output.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "{} failed:\n{}", self.what, self.both());
        &self.stdout
    }

    /// Asserts the command failed; its standard error and output together.
    #[track_caller]
    pub fn fails(&self) -> String {
        assert!(self.code.is_some_and(|c| c != 0), "{} should have failed:\n{}", self.what, self.both());
        self.both()
    }

    pub fn both(&self) -> String {
        format!("status {:?}\nstdout: {}\nstderr: {}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `cmd` with no input, collecting its output; fails the test if it
/// runs past `COMMAND_TIMEOUT` (after killing it).
#[track_caller]
pub fn run(cmd: &mut Command) -> Out {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(COMMAND_TIMEOUT) {
        Ok(Ok(out)) => Out {
            what,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Ok(Err(e)) => panic!("waiting for {what}: {e}"),
        Err(_) => {
            // Still running, so the pid is still the child's (unreaped).
            signal(pid, Signal::KILL);
            panic!("{what} did not finish within {COMMAND_TIMEOUT:?}")
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
pub fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, sig: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, sig);
    }
}

/// Quotes `s` for `sh -c`.
pub fn sh_quote(s: impl AsRef<OsStr>) -> String {
    let s = s.as_ref().to_string_lossy();
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A test's own directory and cgroup name, and the logging wrapper around
/// the runtime under test. Dropping it kills and removes what is left in
/// its cgroups, unmounts what is mounted under its directory and removes
/// the directory.
pub struct Sandbox {
    pub name: String,
    dir: Option<tempfile::TempDir>,
    wrapper: PathBuf,
    calls: PathBuf,
    started: Instant,
}

impl Sandbox {
    /// `test` names the cgroup prefix (with this process's pid and a
    /// counter, so concurrent tests and runs never share one).
    pub fn new(test: &str) -> Sandbox {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!("strata-test-{}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed), test);
        let dir = tempfile::Builder::new().prefix("strata-rt-").tempdir().expect("tempdir");
        let runtime = runtime();
        assert!(runtime.is_file(), "runtime under test {} does not exist", runtime.display());
        // The wrapper keeps the runtime's file name: podman decides from it
        // whether the runtime takes `--log-format json`.
        let base = runtime.file_name().expect("runtime has a file name");
        let wrapper = dir.path().join("runtime").join(base);
        let calls = dir.path().join("runtime-calls.log");
        std::fs::create_dir_all(wrapper.parent().unwrap()).unwrap();
        let script =
            format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}\nexec {} \"$@\"\n", sh_quote(&calls), sh_quote(&runtime));
        std::fs::write(&wrapper, script).unwrap();
        std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        eprintln!("{test}: runtime under test {}", runtime.display());
        Sandbox { name, dir: Some(dir), wrapper, calls, started: Instant::now() }
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// `dir()/rel`, created as a directory.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.dir().join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// The path the daemons are given as their runtime.
    pub fn runtime(&self) -> &Path {
        &self.wrapper
    }

    /// Every command line the daemons ran the runtime with, in order.
    pub fn runtime_calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// Asserts the runtime was run with each subcommand in `subcommands`.
    #[track_caller]
    pub fn assert_runtime_ran(&self, subcommands: &[&str]) {
        let calls = self.runtime_calls();
        for sub in subcommands {
            assert!(
                calls.iter().any(|c| c.split_whitespace().any(|w| w == *sub)),
                "the runtime under test was never run with `{sub}`; it was run as:\n{}",
                calls.join("\n")
            );
        }
    }

    /// Writes the busybox image archive into the sandbox; its path.
    pub fn image_archive(&self) -> PathBuf {
        let path = self.dir().join("image.tar");
        std::fs::write(&path, image_archive()).unwrap();
        path
    }

    /// Every cgroup directory named after this sandbox, one per hierarchy.
    fn cgroups(&self) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else { return Vec::new() };
        let mut out: Vec<PathBuf> = rd.flatten().map(|e| e.path().join(&self.name)).filter(|p| p.is_dir()).collect();
        if Path::new("/sys/fs/cgroup").join(&self.name).is_dir() {
            out.push(Path::new("/sys/fs/cgroup").join(&self.name));
        }
        out
    }

    fn kill_cgroups(&self) {
        let roots = self.cgroups();
        if roots.is_empty() {
            return;
        }
        let mut dirs = Vec::new();
        for r in &roots {
            walk_dirs(r, &mut dirs);
        }
        // A frozen task takes SIGKILL only once thawed.
        for d in &dirs {
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
            if d.join("cgroup.freeze").exists() {
                let _ = std::fs::write(d.join("cgroup.freeze"), "0");
            }
        }
        let emptied = poll(Duration::from_secs(10), || {
            let mut any = false;
            for d in &dirs {
                for pid in std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default().lines() {
                    if let Ok(pid) = pid.trim().parse::<u32>() {
                        any = true;
                        signal(pid, Signal::KILL);
                    }
                }
            }
            (!any).then_some(())
        });
        if emptied.is_none() {
            eprintln!("{}: processes survived SIGKILL in its cgroups", self.name);
        }
        // Deepest first.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in &dirs {
            if let Err(e) = std::fs::remove_dir(d) {
                eprintln!("cannot remove cgroup {}: {e}", d.display());
            }
        }
    }

    fn unmount_all(&self) {
        let dir = self.dir().to_string_lossy().into_owned();
        let mut targets: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(unescape_mountinfo))
            .filter(|t| t == &dir || t.starts_with(&format!("{dir}/")))
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for t in targets {
            let out = run(Command::new("umount").arg("--lazy").arg(&t));
            if out.code != Some(0) {
                eprintln!("cannot unmount {t}: {}", out.stderr.trim());
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill_cgroups();
        self.unmount_all();
        if let Some(dir) = self.dir.take() {
            if std::thread::panicking() || std::env::var_os("STRATA_TEST_KEEP").is_some() {
                let calls = self.runtime_calls();
                eprintln!("{}: runtime calls:\n{}", self.name, calls.join("\n"));
            }
            if let Err(e) = dir.close() {
                eprintln!("{}: cannot remove its directory: {e}", self.name);
            }
        }
        eprintln!("{}: {:.1?} including teardown", self.name, self.started.elapsed());
    }
}

fn walk_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk_dirs(&e.path(), out);
            }
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let oct: String = chars.clone().take(3).collect();
            if let Ok(b) = u8::from_str_radix(&oct, 8) {
                out.push(char::from(b));
                chars.nth(2);
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// A daemon in its own mount namespace, with a private tmpfs on `/run`:
/// the containerd shim puts its sockets under the hard-coded
/// `/run/containerd/s/`, dockerd its plugin sockets under `/run/docker/`,
/// a runtime given no `--root` (podman's cleanup passes none) its state
/// under `/run/<runtime>`; there they land on the tmpfs instead of the
/// host's `/run`. The mounts the daemon makes (snapshots, container root
/// filesystems, shm) stay in the namespace too and go with it. Dropping the
/// guard stops the daemon (SIGTERM, then SIGKILL), kills every process left
/// in its namespace (shims, conmons, their children), and prints the
/// daemon's log if the test failed.
pub struct Daemon {
    name: String,
    child: Child,
    mnt_ns: Option<PathBuf>,
    /// Holds the namespace open, so that its inode number, which
    /// `mnt_ns` names, is not recycled for another test's daemon while
    /// this one's teardown still kills by it.
    _mnt_ns_pin: Option<std::fs::File>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `program args…` in a new mount namespace with a tmpfs on
    /// `/run` and on each directory of `hide`, its output going to `log`.
    pub fn spawn(name: &str, program: &Path, args: &[&OsStr], hide: &[&Path], log: PathBuf) -> Daemon {
        let logfile = std::fs::File::create(&log).unwrap();
        let mut script = String::from("mount -t tmpfs -o mode=0755 strata-test-run /run");
        for dir in hide {
            let _ = write!(script, " && mount -t tmpfs -o mode=0700 strata-test-hide {}", sh_quote(dir));
        }
        // crun refuses a hybrid cgroup layout whose cgroup2 mount has
        // controllers (this host's has hugetlb); checking the tests against
        // crun needs the cgroup2 mount out of the daemon's view.
        if std::env::var_os("STRATA_TEST_UNMOUNT_CGROUP2").is_some() {
            script.push_str(" && { ! mountpoint -q /sys/fs/cgroup/unified || umount /sys/fs/cgroup/unified; }");
        }
        script.push_str(" && exec \"$0\" \"$@\"");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(script)
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(logfile.try_clone().unwrap())
            .stderr(logfile);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let own = std::fs::read_link("/proc/self/ns/mnt").ok();
        // unshare(1) enters the namespace before it execs sh; it is ours
        // until then.
        let ns_link = format!("/proc/{}/ns/mnt", child.id());
        let pinned = poll(Duration::from_secs(5), || {
            let pin = std::fs::File::open(&ns_link).ok()?;
            let ns = std::fs::read_link(format!("/proc/self/fd/{}", pin.as_raw_fd())).ok()?;
            (Some(&ns) != own.as_ref()).then_some((ns, pin))
        });
        let (mnt_ns, pin) = pinned.unzip();
        // Nothing may use the namespace before its tmpfs mounts are in:
        // until then its /run is the host's.
        let mountinfo = format!("/proc/{}/mountinfo", child.id());
        let mounted = poll(Duration::from_secs(5), || {
            let text = std::fs::read_to_string(&mountinfo).ok()?;
            let ours =
                text.lines().filter(|l| l.contains(" strata-test-run ") || l.contains(" strata-test-hide ")).count();
            (ours == 1 + hide.len()).then_some(())
        });
        let daemon = Daemon { name: name.to_owned(), child, mnt_ns, _mnt_ns_pin: pin, log };
        assert!(mounted.is_some(), "{name}: its namespace's tmpfs mounts did not appear:\n{}", daemon.log_tail());
        daemon
    }

    /// Waits until `ready` holds, failing (with the daemon's log) if the
    /// daemon exits or `limit` passes first.
    #[track_caller]
    pub fn wait_ready(&mut self, limit: Duration, mut ready: impl FnMut() -> bool) {
        let started = Instant::now();
        let up = poll(limit, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited during start-up ({status}):\n{}", self.name, self.log_tail());
            }
            ready().then_some(())
        });
        assert!(up.is_some(), "{} not ready within {limit:?}:\n{}", self.name, self.log_tail());
        eprintln!("{}: ready in {:.1?}", self.name, started.elapsed());
    }

    /// `program` run in the daemon's mount namespace.
    pub fn enter(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount=/proc/{}/ns/mnt", self.child.id())).arg("--").arg(program);
        c
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn namespace_members(&self) -> Vec<u32> {
        let Some(ns) = &self.mnt_ns else { return Vec::new() };
        let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok().as_ref() == Some(ns))
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        signal(self.child.id(), Signal::TERM);
        let stopped = poll(Duration::from_secs(10), || self.child.try_wait().ok().flatten());
        if stopped.is_none() {
            eprintln!("{}: did not stop on SIGTERM within 10 s, killing it", self.name);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let gone = poll(Duration::from_secs(10), || {
            let left = self.namespace_members();
            left.iter().for_each(|&pid| signal(pid, Signal::KILL));
            left.is_empty().then_some(())
        });
        if gone.is_none() {
            eprintln!("{}: processes of its mount namespace survived SIGKILL", self.name);
        }
        if std::thread::panicking() {
            eprintln!("{} log (last lines):\n{}", self.name, self.log_tail());
        }
    }
}

/// The cgroup directory of `pid` in the hierarchy holding `controller`
/// (cgroup v1), or its cgroup2 directory when no v1 hierarchy has it.
pub fn cgroup_dir(pid: u32, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/cgroup: {e}"));
    let mut unified = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if controllers.split(',').any(|c| c == controller) {
            return Path::new("/sys/fs/cgroup").join(controller).join(path.trim_start_matches('/'));
        }
        if controllers.is_empty() {
            unified = Some(path.trim_start_matches('/').to_owned());
        }
    }
    let path = unified.unwrap_or_else(|| panic!("pid {pid} has no {controller} cgroup:\n{text}"));
    let v2root = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        PathBuf::from("/sys/fs/cgroup/unified")
    };
    v2root.join(path)
}

/// The memory limit of `pid`'s cgroup: `memory.limit_in_bytes` (v1) or
/// `memory.max` (v2).
pub fn memory_limit(pid: u32) -> u64 {
    let dir = cgroup_dir(pid, "memory");
    let file = if dir.join("memory.limit_in_bytes").exists() {
        dir.join("memory.limit_in_bytes")
    } else {
        dir.join("memory.max")
    };
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    text.trim().parse().unwrap_or_else(|_| panic!("{}: not a number: {text:?}", file.display()))
}

/// Whether `pid`'s cgroup is frozen, from `freezer.state` (v1) or
/// `cgroup.freeze` (v2).
pub fn frozen(pid: u32) -> bool {
    let dir = cgroup_dir(pid, "freezer");
    match std::fs::read_to_string(dir.join("freezer.state")) {
        Ok(state) => state.trim() == "FROZEN",
        Err(_) => std::fs::read_to_string(dir.join("cgroup.freeze")).unwrap_or_default().trim() == "1",
    }
}

/// The tag every daemon loads the test image under.
pub const IMAGE_TAG: &str = "strata-test/busybox:latest";

/// A docker-save archive (`manifest.json`, the config, one uncompressed
/// layer) of `tools/mkrootfs`'s busybox root filesystem, tagged
/// `IMAGE_TAG`: a format `ctr images import`, `podman load` and
/// `docker load` all accept. Built once per test process.
pub fn image_archive() -> &'static [u8] {
    static ARCHIVE: OnceLock<Vec<u8>> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs.tar");
        let mkrootfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/mkrootfs");
        run(Command::new(&mkrootfs).arg(&rootfs)).ok();
        let layer = std::fs::read(&rootfs).unwrap();
        let layer_hex = hex::encode(Sha256::digest(&layer));
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sh"],
            },
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_hex}")]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "tools/mkrootfs"}],
        });
        let config = serde_json::to_vec(&config).unwrap();
        let config_hex = hex::encode(Sha256::digest(&config));
        let manifest = serde_json::json!([{
            "Config": format!("{config_hex}.json"),
            "RepoTags": [IMAGE_TAG],
            "Layers": [format!("{layer_hex}/layer.tar")],
        }]);
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8], mode: u32| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_mtime(0);
            b.append_data(&mut h, name, data).unwrap();
        };
        add(&format!("{layer_hex}/layer.tar"), &layer, 0o644);
        add(&format!("{config_hex}.json"), &config, 0o644);
        add("manifest.json", &serde_json::to_vec(&manifest).unwrap(), 0o644);
        let mut out = b.into_inner().unwrap();
        out.flush().unwrap();
        out
    })
}

/// A TOML basic string.
pub fn toml_str(p: &Path) -> String {
    let mut s = String::from("\"");
    for c in p.to_string_lossy().chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c => {
                let _ = write!(s, "{c}");
            }
        }
    }
    s.push('"');
    s
}
