//! Liveness: what strata believes about a container after its supervisor
//! is killed, and that no command acts on a belief the kernel contradicts
//! — no orphan left running, no layer removed under a live process, no
//! signal sent to a process that merely got a dead init's pid.

use crate::Host;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strata::runtime::container::process_start_time;
use strata::scratch::FsKind;

/// `containers/<id>/state.json` as the store wrote it.
fn state(host: &Host, id: &str) -> serde_json::Value {
    let p = host.env.root.join("containers").join(id).join("state.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

/// (init pid, its start time, supervisor pid) of a running container.
fn pids(host: &Host, id: &str) -> (i32, u64, i32) {
    let st = state(host, id);
    assert_eq!(st["Status"], "running", "{st}");
    let pid = i32::try_from(st["Pid"].as_i64().unwrap()).unwrap();
    let sup = i32::try_from(st["SupervisorPid"].as_i64().unwrap()).unwrap();
    (pid, process_start_time(pid).expect("the init lives"), sup)
}

/// Every live process on the host in the container's cgroups, from
/// `/proc/*/cgroup` (whatever the hierarchy).
fn processes_of(id: &str) -> Vec<i32> {
    let needle = format!("/strata/{id}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| process_start_time(*pid).is_some())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c.contains(&needle)))
        .collect()
}

/// The container's cgroup directories that still exist.
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else { return Vec::new() };
    let mut bases: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    bases.push("/sys/fs/cgroup".into());
    bases.into_iter().map(|b| b.join("strata").join(id)).filter(|d| d.is_dir()).collect()
}

/// Polls `done` for up to 10 s.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

fn sigkill(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Kills the process started at `start` with pid `pid` if it still lives
/// (a test that failed half-way must not leave it running).
struct KillOnDrop(i32, u64);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if process_start_time(self.0) == Some(self.1) {
            sigkill(self.0);
        }
    }
}

/// SIGKILL to a `run -d` container's supervisor: no process of the
/// container survives, `ps -a` and `inspect` say exited (137), the
/// runtime state and cgroups are gone, and `rm` leaves no mount. With a
/// non-root user too: the uid change clears the parent-death signal, which
/// the init must set again.
#[test]
fn killing_the_supervisor_kills_its_container() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    let env = &host.env;
    for user in [None, Some("65534:65534")] {
        let mut args = vec!["run", "-d"];
        args.extend(user.iter().flat_map(|u| ["--user", *u]));
        args.extend(["busybox", "sleep", "1000"]);
        let id = env.ok(&args).trim().to_owned();
        let (pid, start, sup) = pids(&host, &id);
        let _init = KillOnDrop(pid, start);
        assert!(processes_of(&id).contains(&pid), "the init is in the container's cgroup");
        sigkill(sup);
        assert!(
            eventually(|| process_start_time(pid) != Some(start) && processes_of(&id).is_empty()),
            "user {user:?}: the container outlived its supervisor: {:?} still run",
            processes_of(&id)
        );
        let ps = env.ok(&["ps", "-a", "--no-trunc"]);
        let line = ps.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{id} not in\n{ps}"));
        assert!(line.contains("Exited (137)"), "{line}");
        assert!(!env.ok(&["ps", "-q", "--no-trunc"]).contains(&id), "not listed as running");
        let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &id])).unwrap();
        assert_eq!(v[0]["State"]["Status"], "exited");
        assert_eq!(v[0]["State"]["ExitCode"], 137);
        assert!(!env.root.join("runtime").join(&id).exists(), "the runtime state is removed");
        assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new(), "the cgroups are removed");
        env.ok(&["rm", &id]);
        assert!(!env.ok(&["ps", "-aq", "--no-trunc"]).contains(&id));
        assert_eq!(common_mounts(&host), Vec::<String>::new(), "rm leaves no mount");
    }
}

fn common_mounts(host: &Host) -> Vec<String> {
    crate::common::mounts_under(&host.env.root)
}

/// Thaws a frozen v1 freezer cgroup when dropped.
struct Thaw(PathBuf);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("freezer.state"), "THAWED");
    }
}

/// An init that outlives its supervisor (here: frozen, so the SIGKILL its
/// supervisor's death sends waits for a thaw) is still running: `ps` says
/// so, `rm` refuses and keeps its layer, `rm -f` kills it through its
/// verified pidfd (thawing it) and only then removes the layer.
#[test]
fn a_live_unsupervised_init_keeps_its_layer() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    let env = &host.env;
    let id = env.ok(&["run", "-d", "busybox", "sleep", "1000"]).trim().to_owned();
    let (pid, start, sup) = pids(&host, &id);
    let _init = KillOnDrop(pid, start);
    let freezer = PathBuf::from("/sys/fs/cgroup/freezer/strata").join(&id);
    if !freezer.is_dir() {
        strata::scratch::skip_test("needs the cgroup v1 freezer to keep an init alive without its supervisor");
        return;
    }
    let _thaw = Thaw(freezer.clone());
    std::fs::write(freezer.join("freezer.state"), "FROZEN").unwrap();
    assert!(eventually(|| std::fs::read_to_string(freezer.join("freezer.state")).unwrap().trim() == "FROZEN"));
    sigkill(sup);
    assert!(eventually(|| process_start_time(sup).is_none()), "the supervisor is gone");
    assert_eq!(process_start_time(pid), Some(start), "the frozen init outlives its supervisor");
    assert!(env.ok(&["ps", "-q", "--no-trunc"]).contains(&id), "a live init is listed as running");
    let refused = env.fails(&["rm", &id]);
    assert!(refused.contains("Stop the container"), "{refused}");
    assert_eq!(process_start_time(pid), Some(start));
    let engine = env.engine();
    let key = strata::snapshot::SnapshotKey::new(&id).unwrap();
    assert!(engine.snapshots.exists(&key).unwrap(), "the layer of a live init is kept");
    drop(engine);
    env.ok(&["rm", "-f", &id]);
    assert!(process_start_time(pid) != Some(start), "rm -f killed the init before removing its layer");
    assert!(processes_of(&id).is_empty());
    assert!(!env.ok(&["ps", "-aq", "--no-trunc"]).contains(&id));
    assert!(!env.engine().snapshots.exists(&key).unwrap());
    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new());
    assert_eq!(common_mounts(&host), Vec::<String>::new());
}

/// A process given a pid of our choosing: `ns_last_pid` set to one below,
/// then a fork, retried until the host's other forks stop winning.
fn spawn_with_pid(pid: i32) -> Option<Child> {
    for _ in 0..500 {
        if std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_err() {
            return None;
        }
        let mut child = Command::new("sleep").arg("1000").stdin(Stdio::null()).spawn().unwrap();
        if child.id() as i32 == pid {
            return Some(child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

/// Kills and reaps a child when dropped.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The container's init is gone but its state still says running with
/// its pid (its supervisor is alive but has not recorded the exit yet —
/// here: the test holds the supervisor lock), and a new process has that
/// pid. `kill`, `stop` and `rm -f` must not signal it.
#[test]
fn a_recycled_pid_is_never_signalled() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    let env = &host.env;
    let id = env.ok(&["run", "-d", "busybox", "sleep", "1000"]).trim().to_owned();
    let (pid, start, sup) = pids(&host, &id);
    let dir = env.root.join("containers").join(&id);
    let running = std::fs::read(dir.join("state.json")).unwrap();
    sigkill(sup);
    assert!(eventually(|| process_start_time(sup).is_none()), "the supervisor is gone");
    if process_start_time(pid) == Some(start) {
        sigkill(pid); // without the parent-death signal, the test's own doing
    }
    assert!(eventually(|| !PathBuf::from(format!("/proc/{pid}")).exists()), "the init is reaped");
    // A supervisor that has not yet noticed: its lock held, its state running.
    let lock = strata::sys::lock::FileLock::try_exclusive(&dir.join("supervisor.lock")).unwrap().unwrap();
    std::fs::write(dir.join("state.json"), &running).unwrap();
    let Some(decoy) = spawn_with_pid(pid) else {
        eprintln!("skipped: could not get pid {pid} again through ns_last_pid");
        return;
    };
    let mut decoy = Reap(decoy);
    let alive = |decoy: &mut Reap, what: &str| {
        std::thread::sleep(Duration::from_millis(300));
        assert!(decoy.0.try_wait().unwrap().is_none(), "{what} signalled pid {pid}, now another process");
    };
    let out = env.run(&["kill", &id]);
    alive(&mut decoy, "kill");
    assert!(!out.status.success(), "kill of a dead init succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"), "{out:?}");
    let strata = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(&env.root)
            .args(["--storage-driver", "overlay"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let stop = Reap(strata(&["stop", "-t", "1", &id]));
    std::thread::sleep(Duration::from_millis(1500));
    alive(&mut decoy, "stop");
    let rm = Reap(strata(&["rm", "-f", &id]));
    alive(&mut decoy, "rm -f");
    // The supervisor "records" nothing and lets go: both finish.
    drop(lock);
    for mut cmd in [stop, rm] {
        assert!(eventually(|| cmd.0.try_wait().unwrap().is_some()), "stop/rm -f finish once the lock is free");
    }
    alive(&mut decoy, "stop/rm -f after the supervisor let go");
    assert!(!env.ok(&["ps", "-aq", "--no-trunc"]).contains(&id), "rm -f removed the container");
    assert!(!env.root.join("runtime").join(&id).exists());
}
