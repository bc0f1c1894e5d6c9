//! Real cgroups, each test in its own group under `/strata-cgtest`,
//! removed by a guard even when the test fails.
//!
//! Tiers: `v1_*` tests need the memory, cpu, pids, cpuset, devices and
//! freezer controllers on cgroup v1 (a v1 or hybrid host, such as
//! strata's CI machines); `v2_*` tests need a pure cgroup2 hierarchy with
//! its controllers (tools/vmtest's VM, where a skip is a failure);
//! `bpf_*` tests need any cgroup2 mount. A test that cannot run says so.

use super::*;
use crate::runtime::spec::{Cpu, DeviceRule, DeviceRuleType, Memory, Pids, Resources};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A group for one test, and the children put in it: killed, thawed and
/// removed on drop.
struct Group {
    m: Manager,
    children: Vec<Child>,
}

impl Group {
    fn new(name: &str) -> Group {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = format!("/strata-cgtest/{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let m = Manager::new(&path, "unused").unwrap();
        let g = Group { m, children: Vec::new() };
        g.m.create().unwrap();
        g
    }

    /// A shell child in the group that runs `script` after one line on
    /// its stdin (sent by `go`), so it runs inside the group.
    fn child(&mut self, script: &str) -> i32 {
        let c = Command::new("sh")
            .args(["-c", &format!("read x; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = i32::try_from(c.id()).unwrap();
        self.children.push(c);
        self.m.add_pid(pid).unwrap();
        pid
    }

    /// Lets the last child run and returns its first line of output.
    fn go(&mut self) -> String {
        let c = self.children.last_mut().unwrap();
        c.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        let mut line = String::new();
        BufReader::new(c.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        line.trim().to_owned()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = self.m.thaw();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let dirs = self.m.paths().dirs();
        let r = self.m.destroy();
        for d in dirs {
            if let Some(parent) = d.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        if !std::thread::panicking() {
            r.unwrap();
        }
    }
}

fn has_v1(controllers: &[&str]) -> bool {
    let l = Layout::detect();
    let missing: Vec<_> = controllers.iter().filter(|c| l.v1_hierarchy(c).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    eprintln!("skipped: needs cgroup v1 {missing:?} (this host: {l:?})");
    false
}

fn pure_v2() -> bool {
    let l = Layout::detect();
    if l.v1.iter().all(|h| h.controllers.iter().all(|c| c.starts_with("name="))) && l.v2.is_some() {
        return true;
    }
    assert!(std::env::var_os("STRATA_VMTEST").is_none(), "no pure cgroup v2 inside tools/vmtest's VM: {l:?}");
    eprintln!("skipped: needs a pure cgroup v2 host (run tools/vmtest)");
    false
}

fn file(dir: &Path, name: &str) -> String {
    read(dir, name).unwrap()
}

fn deny_all_allow(major: i64, minor: i64) -> Vec<DeviceRule> {
    vec![
        DeviceRule { allow: false, kind: None, major: None, minor: None, access: "rwm".into() },
        DeviceRule {
            allow: true,
            kind: Some(DeviceRuleType::Char),
            major: Some(major),
            minor: Some(minor),
            access: "rwm".into(),
        },
    ]
}

#[test]
fn paths_follow_runc_rules() {
    let l = Layout::parse(
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
         35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
         41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
    );
    let own = Membership::parse("4:memory:/outer/me\n2:cpu,cpuacct:/\n0::/user/me.scope\n");
    let p = Paths::resolve(&l, &own, "/a/../../b", "id").unwrap();
    assert_eq!(p.v1["memory"], Path::new("/sys/fs/cgroup/memory/b"));
    assert_eq!(p.v1["cpuacct"], Path::new("/sys/fs/cgroup/cpu,cpuacct/b"));
    assert_eq!(p.unified.as_deref(), Some(Path::new("/sys/fs/cgroup/unified/b")));
    let p = Paths::resolve(&l, &own, "", "c1").unwrap();
    assert_eq!(p.v1["memory"], Path::new("/sys/fs/cgroup/memory/outer/me/c1"));
    assert_eq!(p.v1["cpu"], Path::new("/sys/fs/cgroup/cpu,cpuacct/c1"));
    assert_eq!(p.unified.as_deref(), Some(Path::new("/sys/fs/cgroup/unified/user/c1")));
    let p = Paths::resolve(&l, &own, "../../x", "c1").unwrap();
    assert_eq!(p.v1["memory"], Path::new("/sys/fs/cgroup/memory/outer/me/x"));
    assert!(Paths::resolve(&l, &own, "/..", "c1").unwrap_err().to_string().contains("linux.cgroupsPath"));
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<Paths>(&json).unwrap(), p);
    assert_eq!(Manager::from_paths(p.clone()).paths(), &p);
}

#[test]
fn v1_memory_swap_pids_cpu_cpuset() {
    if !has_v1(&["memory", "pids", "cpu", "cpuset"]) {
        return;
    }
    let g = Group::new("limits");
    let cpus = file(&g.m.paths().v1["cpuset"], "cpuset.cpus");
    let first_cpu = cpus.split([',', '-']).next().unwrap().to_owned();
    let r = Resources {
        memory: Some(Memory {
            limit: Some(64 << 20),
            swap: Some(128 << 20),
            reservation: Some(32 << 20),
            ..Memory::default()
        }),
        pids: Some(Pids { limit: 10 }),
        cpu: Some(Cpu {
            shares: Some(512),
            quota: Some(50_000),
            period: Some(100_000),
            cpus: first_cpu.clone(),
            ..Cpu::default()
        }),
        ..Resources::default()
    };
    g.m.apply(&r).unwrap();
    let v1 = &g.m.paths().v1;
    assert_eq!(file(&v1["memory"], "memory.limit_in_bytes"), (64u64 << 20).to_string());
    assert_eq!(file(&v1["memory"], "memory.memsw.limit_in_bytes"), (128u64 << 20).to_string());
    assert_eq!(file(&v1["memory"], "memory.soft_limit_in_bytes"), (32u64 << 20).to_string());
    assert_eq!(file(&v1["pids"], "pids.max"), "10");
    assert_eq!(file(&v1["cpu"], "cpu.shares"), "512");
    assert_eq!(file(&v1["cpu"], "cpu.cfs_quota_us"), "50000");
    assert_eq!(file(&v1["cpu"], "cpu.cfs_period_us"), "100000");
    assert_eq!(file(&v1["cpuset"], "cpuset.cpus"), first_cpu);

    // An update that lowers swap below the old limit, and unlimited pids.
    let r = Resources {
        memory: Some(Memory { limit: Some(16 << 20), swap: Some(32 << 20), ..Memory::default() }),
        pids: Some(Pids { limit: 0 }),
        ..Resources::default()
    };
    g.m.apply(&r).unwrap();
    assert_eq!(file(&v1["memory"], "memory.memsw.limit_in_bytes"), (32u64 << 20).to_string());
    assert_eq!(file(&v1["pids"], "pids.max"), "max");
    // v2-only fields are refused by name on v1 controllers.
    let r = Resources { unified: [("memory.high".to_owned(), "1M".to_owned())].into(), ..Resources::default() };
    let e = g.m.apply(&r).unwrap_err().to_string();
    assert!(e.contains(r#"linux.resources.unified["memory.high"]"#) && e.contains("cgroup v1"), "{e}");
    let r = Resources { unified: [("cgroup.procs".to_owned(), "1".to_owned())].into(), ..Resources::default() };
    assert!(g.m.apply(&r).unwrap_err().to_string().contains("cgroup.max.depth"));
    let r = Resources { unified: [("../memory.max".to_owned(), "1".to_owned())].into(), ..Resources::default() };
    assert!(g.m.apply(&r).unwrap_err().to_string().contains("without '/'"));
}

#[test]
fn v1_devices_list_shows_exactly_the_rules() {
    if !has_v1(&["devices"]) {
        return;
    }
    let g = Group::new("devices");
    g.m.apply(&Resources { devices: deny_all_allow(1, 3), ..Resources::default() }).unwrap();
    assert_eq!(file(&g.m.paths().v1["devices"], "devices.list"), "c 1:3 rwm");
}

#[test]
fn v1_freezer_pids_and_stats_on_a_real_child() {
    if !has_v1(&["freezer", "memory", "pids", "cpuacct"]) {
        return;
    }
    let mut g = Group::new("freezer");
    let pid = g.child("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo busy; exec sleep 100");
    assert_eq!(g.go(), "busy");
    assert_eq!(g.m.pids().unwrap(), vec![pid]);
    g.m.freeze().unwrap();
    assert!(g.m.is_frozen().unwrap());
    assert_eq!(file(&g.m.paths().v1["freezer"], "freezer.state"), "FROZEN");
    g.m.thaw().unwrap();
    assert!(!g.m.is_frozen().unwrap());
    assert_eq!(file(&g.m.paths().v1["freezer"], "freezer.state"), "THAWED");
    let s = g.m.stats().unwrap();
    assert!(s.cpu.usage.total > 0, "{s:?}");
    assert!(s.memory.usage.usage > 0 && s.memory.usage.max >= s.memory.usage.usage, "{s:?}");
    assert_eq!(s.pids.current, 1, "{s:?}");
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["memory"]["usage"]["limit"].is_u64(), "{json}");
}

/// Makes a tmpfs-free node directory: character nodes 1:3 (null) and 1:5
/// (zero) in a fresh directory under the system temp dir.
struct Nodes(PathBuf);

impl Nodes {
    fn new() -> Nodes {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "strata-cgnodes-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&d).unwrap();
        let nodes = Nodes(d);
        for (name, minor) in [("null", 3), ("zero", 5)] {
            let st =
                Command::new("mknod").arg(nodes.0.join(name)).args(["c", "1", &minor.to_string()]).status().unwrap();
            assert!(st.success(), "mknod {name}");
        }
        nodes
    }

    /// A script printing which nodes the shell could open.
    fn probe(&self) -> String {
        let d = self.0.display();
        format!(
            "(: < {d}/null) 2>&-  && n=null-ok || n=null-denied; (: < {d}/zero) 2>&- && z=zero-ok || z=zero-denied; \
             echo $n $z; exec sleep 100"
        )
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The device program on any cgroup2 group (on a hybrid host it is
/// checked on top of the v1 device controller, which allows all here).
#[test]
fn bpf_device_program_allows_and_denies_opens() {
    let l = Layout::detect();
    let Some(v2) = l.v2 else {
        eprintln!("skipped: no cgroup2 mount");
        return;
    };
    let nodes = Nodes::new();
    let name = format!("strata-cgtest-bpf-{}", std::process::id());
    let g = Group {
        m: Manager::from_paths(Paths { unified: Some(v2.join(&name)), ..Paths::default() }),
        children: Vec::new(),
    };
    g.m.create().unwrap();
    let mut g = g;
    let dir = g.m.paths().unified.clone().unwrap();
    apply::attach_device_program(&dir, &devices::program(&deny_all_allow(1, 3)).unwrap()).unwrap();
    g.child(&nodes.probe());
    assert_eq!(g.go(), "null-ok zero-denied");
    // A second program replaces the first.
    apply::attach_device_program(&dir, &devices::program(&deny_all_allow(1, 5)).unwrap()).unwrap();
    g.child(&nodes.probe());
    assert_eq!(g.go(), "null-denied zero-ok");
    let fd = crate::sys::fs::open_dir(&dir).unwrap();
    assert_eq!(crate::sys::bpf::prog_query_cgroup_device(std::os::fd::AsFd::as_fd(&fd)).unwrap().len(), 1);
}

#[test]
fn v2_limits_freeze_stats_and_devices() {
    if !pure_v2() {
        return;
    }
    let nodes = Nodes::new();
    let mut g = Group::new("v2");
    let dir = g.m.paths().unified.clone().unwrap();
    let r = Resources {
        memory: Some(Memory {
            limit: Some(64 << 20),
            swap: Some(96 << 20),
            reservation: Some(16 << 20),
            ..Memory::default()
        }),
        pids: Some(Pids { limit: 20 }),
        cpu: Some(Cpu { shares: Some(1024), quota: Some(50_000), period: Some(100_000), ..Cpu::default() }),
        unified: [("memory.high".to_owned(), "50331648".to_owned())].into(),
        devices: deny_all_allow(1, 3),
        ..Resources::default()
    };
    g.m.apply(&r).unwrap();
    assert_eq!(file(&dir, "memory.max"), (64u64 << 20).to_string());
    assert_eq!(file(&dir, "memory.swap.max"), (32u64 << 20).to_string());
    assert_eq!(file(&dir, "memory.low"), (16u64 << 20).to_string());
    assert_eq!(file(&dir, "memory.high"), "50331648");
    assert_eq!(file(&dir, "pids.max"), "20");
    assert_eq!(file(&dir, "cpu.max"), "50000 100000");
    assert_eq!(file(&dir, "cpu.weight"), "39");
    let e = g.m.apply(&Resources {
        memory: Some(Memory { swappiness: Some(10), ..Memory::default() }),
        ..Resources::default()
    });
    assert!(e.unwrap_err().to_string().contains("memory.swappiness: not supported on cgroup v2"));

    let pid = g.child(&nodes.probe());
    assert_eq!(g.go(), "null-ok zero-denied");
    assert!(g.m.pids().unwrap().contains(&pid));
    g.m.freeze().unwrap();
    assert!(g.m.is_frozen().unwrap());
    assert!(file(&dir, "cgroup.events").lines().any(|l| l == "frozen 1"));
    g.m.thaw().unwrap();
    assert!(!g.m.is_frozen().unwrap());
    assert!(file(&dir, "cgroup.events").lines().any(|l| l == "frozen 0"));
    let s = g.m.stats().unwrap();
    assert!(s.cpu.usage.total > 0 && s.memory.usage.usage > 0, "{s:?}");
    assert_eq!((s.pids.current, s.pids.limit), (1, 20), "{s:?}");
    assert_eq!(s.memory.usage.limit, 64 << 20);
}

/// `strata-runc` beside this test binary (`target/<profile>/`), or `None`
/// with the reason printed; inside tools/vmtest's VM it must be there.
fn strata_runc() -> Option<PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("strata-runc")).filter(|p| p.is_file());
    if bin.is_none() {
        assert!(std::env::var_os("STRATA_VMTEST").is_none(), "tools/vmtest builds strata-runc; not found near {exe:?}");
        eprintln!("skipped: needs strata-runc beside {exe:?} (cargo build --bin strata-runc)");
    }
    bin
}

/// The container's init is created in its cgroup2 group by `clone3`
/// (`CLONE_INTO_CGROUP`), never in the runtime's own group: `create` runs
/// in a group whose `pids.max` is 1 (the runtime itself), where a clone
/// followed by a `cgroup.procs` write would fail with EAGAIN; born in the
/// container's group, the init is charged there.
#[test]
fn v2_init_is_born_in_its_group() {
    if !pure_v2() {
        return;
    }
    let Some(runc) = strata_runc() else { return };
    let busybox = ["/bin/busybox", "/usr/bin/busybox"].into_iter().map(Path::new).find(|p| p.is_file());
    let busybox = busybox.expect("busybox-static (tools/deps installs it)");
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
    std::fs::copy(busybox, bundle.join("rootfs/bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bundle.join("rootfs/bin/sh")).unwrap();
    let ctr = format!("/strata-cgtest/clone3-ctr-{}", std::process::id());
    let mut spec = crate::runtime::spec::Spec::default_for_run();
    let process = spec.process.as_mut().unwrap();
    process.terminal = false;
    process.args = vec!["sh".into(), "-c".into(), "exit 7".into()];
    spec.linux.as_mut().unwrap().cgroups_path = ctr.clone();
    std::fs::write(bundle.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    let state = tmp.path().join("state");
    let log = tmp.path().join("create.log");
    let runc_cmd = |args: &[&str]| {
        let out = Command::new(&runc).arg("--root").arg(&state).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    type Runc<'a> = &'a dyn Fn(&[&str]) -> (Option<i32>, String);
    struct Delete<'a>(Runc<'a>, PathBuf);
    impl Drop for Delete<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["delete", "--force", "clone3-test"]);
            let _ = std::fs::remove_dir(&self.1);
        }
    }
    let v2_root = Layout::detect().v2.unwrap();
    let _delete = Delete(&runc_cmd, v2_root.join(ctr.trim_start_matches('/')));
    let mut runtime = Group::new("clone3-runtime");
    let script = format!(
        "exec {} --root {} create --bundle {} clone3-test >{} 2>&1",
        runc.display(),
        state.display(),
        bundle.display(),
        log.display()
    );
    let pid = runtime.child(&script);
    let dir = runtime.m.paths().unified.clone().unwrap();
    write(&dir, "pids.max", "1").unwrap();
    assert_eq!(file(&dir, "cgroup.procs"), pid.to_string(), "only the runtime's shell in its group");
    let c = runtime.children.last_mut().unwrap();
    c.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let status = c.wait().unwrap();
    let created = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "create in a group with pids.max 1: {created}");
    assert_eq!(file(&dir, "pids.events"), "max 0", "nothing was refused in the runtime's group: {created}");
    let (code, st) = runc_cmd(&["state", "clone3-test"]);
    assert_eq!(code, Some(0), "{st}");
    let init: serde_json::Value = serde_json::from_str(&st).unwrap();
    let init = init["pid"].as_i64().unwrap().to_string();
    assert_eq!(file(&v2_root.join(ctr.trim_start_matches('/')), "cgroup.procs"), init, "the init is in its group");
    let (code, out) = runc_cmd(&["start", "clone3-test"]);
    assert_eq!(code, Some(0), "{out}");
}
