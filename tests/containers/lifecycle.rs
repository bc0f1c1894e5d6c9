//! Lifecycle: exit codes, stop and kill, logs, exec, wait, volumes,
//! resource limits, --init.

use crate::Host;
use strata::scratch::FsKind;

#[test]
fn exit_codes_follow_docker() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    let env = &host.env;
    assert_eq!(host.sh(&[], "exit 42").0, 42, "run returns the container's exit code");
    assert_eq!(env.run(&["run", "--rm", "no-such-image"]).status.code(), Some(125));
    let out = env.run(&["run", "--rm", "busybox", "/no/such/binary"]);
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env.run(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.run(&["run", "--rm", "--network", "bridge", "busybox", "true"]).status.code(), Some(125));
    assert_eq!(env.ok(&["ps", "-aq"]), "", "--rm removed every container, failed ones included");
}

#[test]
fn stop_kill_wait_logs_and_exec() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    let env = &host.env;
    // A shell that handles SIGTERM exits with its own status on stop.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "t",
        "busybox",
        "sh",
        "-c",
        "trap 'echo bye; exit 7' TERM; echo started; while true; do sleep 0.1; done",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(env.ok(&["exec", "t", "echo", "from exec"]), "from exec\n");
    env.ok(&["stop", "t"]);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "t"])).unwrap();
    assert_eq!(v[0]["State"]["Status"], "exited");
    assert_eq!(v[0]["State"]["ExitCode"], 7);
    assert_eq!(env.ok(&["logs", "t"]), "started\nbye\n");
    // The json-file log is Docker's format.
    let log = std::fs::read_to_string(v[0]["LogPath"].as_str().unwrap()).unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(first["log"], "started\n");
    assert_eq!(first["stream"], "stdout");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    // start again, kill -s, wait.
    env.ok(&["start", "t"]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    env.ok(&["kill", "-s", "KILL", "t"]);
    assert_eq!(env.ok(&["wait", "t"]).trim(), "137");
    assert!(env.fails(&["exec", "t", "true"]).contains("not running"));
    // rm refuses a running container without -f.
    env.ok(&["run", "-d", "--name", "r", "busybox", "sleep", "60"]);
    assert!(env.fails(&["rm", "r"]).contains("Stop the container"));
    env.ok(&["rm", "-f", "r"]);
    // Log rotation.
    env.ok(&[
        "run",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done",
    ]);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "chatty"])).unwrap();
    let log = std::path::PathBuf::from(v[0]["LogPath"].as_str().unwrap());
    assert!(std::fs::metadata(&log).unwrap().len() <= 2048);
    assert!(log.with_extension("log.1").exists(), "rotated once");
    assert!(!log.with_extension("log.2").exists(), "max-file=2 keeps two files");
    assert!(env.ok(&["logs", "chatty"]).ends_with("line 299\n"));
}

#[test]
fn named_volume_outlives_its_container() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    let env = &host.env;
    env.ok(&["run", "--name", "writer", "-v", "data:/data", "busybox", "sh", "-c", "echo persisted > /data/file"]);
    env.ok(&["rm", "writer"]);
    assert_eq!(env.ok(&["run", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/file"]), "persisted\n");
    assert_eq!(host.sh(&["-v", "data:/data:ro"], "echo x > /data/other").0, 1, "read-only volume");
    // Volume I/O bypasses the storage driver: the file is in _data.
    assert_eq!(std::fs::read_to_string(env.root.join("volumes/data/_data/file")).unwrap(), "persisted\n");
    assert!(env.ok(&["volume", "ls"]).contains("data"));
    // A volume on a path the image has is populated from the image.
    assert_eq!(
        env.ok(&["run", "--rm", "-v", "etcvol:/etc", "busybox", "cat", "/etc/group"]),
        "root:x:0:\nnogroup:x:65534:\n"
    );
    assert!(env.root.join("volumes/etcvol/_data/passwd").exists());
    // In use → refused; unused → removed.
    env.ok(&["run", "-d", "--name", "user", "-v", "data:/data", "busybox", "sleep", "60"]);
    assert!(env.fails(&["volume", "rm", "data"]).contains("in use"));
    env.ok(&["rm", "-f", "user"]);
    env.ok(&["volume", "rm", "data", "etcvol"]);
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
    // Anonymous volumes go with rm -v.
    env.ok(&["run", "--name", "anon", "-v", "/scratch", "busybox", "true"]);
    assert_eq!(env.ok(&["volume", "ls", "-q"]).lines().count(), 1);
    env.ok(&["rm", "-v", "anon"]);
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn resource_limits_and_init() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    let env = &host.env;
    let id = env.ok(&["run", "-d", "--memory", "64m", "--pids-limit", "20", "--cpus", "0.5", "busybox", "sleep", "60"]);
    let id = id.trim();
    let layout = strata::runtime::cgroups::Layout::detect();
    let find = |file: &str| find_in(id, file);
    let mem = find("memory.max").or_else(|| find("memory.limit_in_bytes")).expect("a memory limit file");
    assert_eq!(mem.trim(), (64u64 << 20).to_string(), "layout {layout:?}");
    assert_eq!(find("pids.max").expect("pids.max").trim(), "20");
    let cpu = find("cpu.max").or_else(|| find("cpu.cfs_quota_us")).expect("a cpu limit");
    assert!(cpu.starts_with("50000"), "{cpu}");
    env.ok(&["rm", "-f", id]);
    assert!(find("pids.max").is_none(), "cgroups are removed with the container");
    // The pids limit holds: a container trying to start 30 processes under
    // a limit of 10 gets no more than 10, and the cgroup records the refusals.
    let id = env.ok(&[
        "run",
        "-d",
        "--pids-limit",
        "10",
        "busybox",
        "sh",
        "-c",
        "sh -c 'for i in $(seq 1 30); do sleep 30 & done'; exec sleep 30",
    ]);
    let id = id.trim().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let cur: usize = find_in(&id, "pids.current").expect("pids.current").trim().parse().unwrap();
    assert!((2..=10).contains(&cur), "pids limit of 10 holds, saw {cur} tasks");
    let events = find_in(&id, "pids.events").unwrap_or_default();
    assert!(events.contains("max") && !events.contains("max 0"), "forks were refused: {events}");
    env.ok(&["rm", "-f", &id]);
    // --init: PID 1 reaps orphaned zombies and passes on the exit code.
    let (code, out, _) =
        host.sh(&["--init"], "sh -c 'sleep 0.1 &' ; sleep 0.5; ps -o stat,comm | grep -c '^Z' ; exit 5");
    assert_eq!(code, 5);
    assert_eq!(out.trim(), "0", "no zombies under --init");
    // PID 1 is strata's init, never execve'd: the container can neither
    // read nor write the binary behind it (CVE-2019-5736).
    let (_, out, _) =
        host.sh(&["--init"], "cat /proc/1/exe >/dev/null 2>&1; echo r=$?; (: >> /proc/1/exe) 2>/dev/null; echo w=$?");
    assert_eq!(out, "r=1\nw=1\n", "strata's binary reachable through /proc/1/exe");
    // And from the host, a running container's PID 1 is a sealed memfd
    // copy of strata, not the host's file (not even read-only).
    let id = env.ok(&["run", "-d", "--init", "busybox", "sleep", "30"]).trim().to_owned();
    let inspect: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &id])).unwrap();
    let pid = inspect[0]["State"]["Pid"].as_i64().expect("a running container has a pid");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.to_string_lossy().starts_with("/memfd:"), "PID 1's exe is {}", exe.display());
    use std::os::unix::fs::MetadataExt;
    let (theirs, ours) = (
        std::fs::metadata(format!("/proc/{pid}/exe")).unwrap(),
        std::fs::metadata(env!("CARGO_BIN_EXE_strata")).unwrap(),
    );
    assert!((theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()), "PID 1 runs the host's strata file");
    let w = std::fs::OpenOptions::new().append(true).open(format!("/proc/{pid}/exe"));
    assert!(w.is_err(), "the sealed copy opened for writing");
    env.ok(&["rm", "-f", &id]);
}

/// Reads a file of the container's cgroup, wherever the host keeps it.
fn find_in(id: &str, file: &str) -> Option<String> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/unified"]
        .iter()
        .map(|b| std::path::Path::new(b).join("strata").join(id).join(file))
        .find_map(|p| std::fs::read_to_string(p).ok())
}
