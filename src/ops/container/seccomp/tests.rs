//! The profile format, its resolution, and the default profile both as
//! rules and as a filter loaded into a process of its own.

use super::*;
use crate::runtime::spec::{SeccompOp, Syscall};
use std::process::Command;

fn caps(extra: &[&str]) -> Vec<String> {
    crate::ops::container::spec::DEFAULT_CAPS.iter().chain(extra).map(|c| c.to_string()).collect()
}

const AMD64: Option<(&str, Arch)> = Some(("amd64", Arch::X86_64));
const K6: KernelVersion = KernelVersion { kernel: 6, major: 18 };

fn resolved(extra_caps: &[&str]) -> spec::Seccomp {
    docker_default().resolve(&caps(extra_caps), AMD64, K6).unwrap()
}

/// The rules of `s` that name `name`.
fn rules_for<'a>(s: &'a spec::Seccomp, name: &str) -> Vec<&'a Syscall> {
    s.syscalls.iter().filter(|r| r.names.iter().any(|n| n == name)).collect()
}

/// Whether `name` is allowed whatever its arguments.
fn always_allowed(s: &spec::Seccomp, name: &str) -> bool {
    rules_for(s, name).iter().any(|r| r.action == SeccompAction::Allow && r.args.is_empty())
}

#[test]
fn default_profile_for_docker_caps_denies_what_docker_denies() {
    let s = resolved(&[]);
    assert_eq!((s.default_action, s.default_errno_ret), (SeccompAction::Errno, Some(1)));
    assert_eq!(s.architectures, [Arch::X86_64, Arch::X86, Arch::X32]);
    for name in [
        "keyctl",
        "add_key",
        "request_key",
        "unshare",
        "setns",
        "mount",
        "umount2",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "kexec_load",
        "open_by_handle_at",
        "reboot",
        "init_module",
        "settimeofday",
        "swapon",
        "pivot_root",
        "fsopen",
        "move_mount",
    ] {
        assert!(rules_for(&s, name).is_empty(), "{name} has a rule: {:?}", rules_for(&s, name));
    }
    // clone3: ENOSYS, so libcs fall back to clone.
    let clone3 = rules_for(&s, "clone3");
    assert_eq!(clone3.len(), 1);
    assert_eq!((clone3[0].action, clone3[0].errno_ret), (SeccompAction::Errno, Some(38)));
    // clone: only without namespace flags.
    let clone = rules_for(&s, "clone");
    assert_eq!(clone.len(), 1, "{clone:?}");
    let a = clone[0].args[0];
    assert_eq!((a.index, a.op, a.value, a.value_two), (0, SeccompOp::MaskedEqual, 0x7E02_0000, 0));
    // personality: the five values only.
    let personas: Vec<u64> = rules_for(&s, "personality").iter().map(|r| r.args[0].value).collect();
    assert_eq!(personas, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
    for name in ["read", "write", "openat", "execve", "wait4", "chroot", "arch_prctl", "modify_ldt", "ptrace"] {
        assert!(always_allowed(&s, name), "{name} is not allowed");
    }
    assert!(!always_allowed(&s, "socket") && rules_for(&s, "socket").len() == 3);
    // Other architectures' calls are not in an amd64 filter.
    assert!(rules_for(&s, "s390_runtime_instr").is_empty() && rules_for(&s, "set_tls").is_empty());
}

#[test]
fn cap_sys_admin_brings_mount_unshare_and_clone3() {
    let s = resolved(&["CAP_SYS_ADMIN"]);
    for name in ["mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf", "sethostname"] {
        assert!(always_allowed(&s, name), "{name} with CAP_SYS_ADMIN");
    }
    assert!(rules_for(&s, "clone3").iter().all(|r| r.action == SeccompAction::Allow));
    assert!(rules_for(&s, "clone").iter().all(|r| r.args.is_empty()), "no masked clone rule");
    assert!(rules_for(&s, "keyctl").is_empty() && rules_for(&s, "io_uring_setup").is_empty());
    let s = resolved(&["CAP_SYS_PTRACE", "CAP_SYS_TIME", "CAP_BPF"]);
    for name in ["kcmp", "pidfd_getfd", "clock_settime", "bpf"] {
        assert!(always_allowed(&s, name), "{name}");
    }
    assert!(!always_allowed(&s, "mount") && !always_allowed(&s, "perf_event_open"));
}

#[test]
fn conditions_on_arch_and_kernel_follow_moby() {
    let p = docker_default();
    let s390 = p.resolve(&caps(&[]), Some(("s390x", Arch::S390X)), K6).unwrap();
    assert_eq!(s390.architectures, [Arch::S390X, Arch::S390]);
    let clone = rules_for(&s390, "clone");
    assert_eq!(clone.len(), 1);
    assert_eq!(clone[0].args[0].index, 1, "s390 passes clone's flags second");
    assert!(always_allowed(&s390, "s390_runtime_instr") && rules_for(&s390, "arch_prctl").is_empty());
    // Before 4.8, ptrace needs CAP_SYS_PTRACE.
    let old = p.resolve(&caps(&[]), AMD64, KernelVersion { kernel: 4, major: 4 }).unwrap();
    assert!(!always_allowed(&old, "ptrace"));
    // An architecture missing from archMap adds none.
    let other = p.resolve(&caps(&[]), Some(("ppc64le", Arch::Ppc64Le)), K6).unwrap();
    assert!(other.architectures.is_empty());
    assert!(always_allowed(&other, "swapcontext"));
}

#[test]
fn the_default_profile_round_trips_through_json() {
    let p = docker_default();
    let json = serde_json::to_vec(&p).unwrap();
    assert_eq!(Profile::from_json(&json).unwrap(), p);
}

#[test]
fn a_malformed_profile_names_the_bad_field() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["x"],"action":"SCMP_ACT_NOPE"}]}"#,
            "syscalls[1].action: unknown seccomp action \"SCMP_ACT_NOPE\"",
        ),
        (r#"{"defaultActoin":"SCMP_ACT_ERRNO"}"#, "defaultActoin: unknown field `defaultActoin`"),
        (
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["x"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4"}}]}"#,
            "syscalls[0].includes.minKernel: invalid kernel version \"4\"",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["i386"]}]}"#,
            "archMap[0].subArchitectures[0]: unknown seccomp architecture \"i386\"",
        ),
        (r#"{"syscalls":[]}"#, "missing field `defaultAction`"),
        (r#"{"defaultAction":"SCMP_ACT_ERRNO","#, "line 1, column 34"),
    ];
    for (json, want) in cases {
        let e = Profile::from_json(json.as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("seccomp profile: ") && e.contains(want), "{json}\n  gave {e}\n  want {want}");
    }
    // Nulls are empty lists, as Go reads them.
    let p = Profile::from_json(br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ERRNO","args":null,"includes":null}],"archMap":null}"#).unwrap();
    assert!(p.syscalls[0].args.is_empty() && p.arch_map.is_empty());
}

#[test]
fn contradictions_are_refused_by_field() {
    let both: Profile = Profile {
        architectures: vec![Arch::X86],
        arch_map: vec![ArchMap { architecture: Arch::X86_64, sub_architectures: vec![] }],
        ..Profile::default()
    };
    assert_eq!(
        both.to_oci(&[], (6, 1)).unwrap_err().to_string(),
        "seccomp profile: archMap: give either architectures or archMap, not both"
    );
    let p = Profile::from_json(
        br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    assert_eq!(
        p.to_oci(&[], (6, 1)).unwrap_err().to_string(),
        "seccomp profile: syscalls[0]: give either name or names, not both"
    );
    let p = Profile::from_json(
        br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"getpid","action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    assert_eq!(p.to_oci(&[], (6, 1)).unwrap().syscalls[0].names, ["getpid"]);
}

#[test]
fn kernel_versions_parse_as_moby_reads_them() {
    assert_eq!(KernelVersion::from_release("6.18.0-1-amd64\n"), Some(KernelVersion { kernel: 6, major: 18 }));
    assert_eq!(KernelVersion::from_release("3.12-rc5"), Some(KernelVersion { kernel: 3, major: 12 }));
    assert_eq!(KernelVersion::from_release("linux"), None);
    assert!(KernelVersion::parse("0.0").is_err() && KernelVersion::parse("4.256").is_err());
    assert!(KernelVersion { kernel: 5, major: 0 } > KernelVersion { kernel: 4, major: 19 });
    let (k, _) = host_kernel().unwrap();
    assert!(k >= 3);
}

/// io_uring_setup's letter, or `x` where the host disables io_uring (then
/// EPERM says nothing of the filter).
fn io_uring_letter() -> char {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").unwrap_or_default();
    if sysctl.trim() != "0" {
        return 'x';
    }
    // With the sysctl at 0, the ring's "disabled" is io_uring_setup's EPERM.
    match crate::sys::uring::Ring::<u32>::new(4) {
        Ok(_) => 'a',
        Err(crate::sys::uring::RingError::Disabled(1)) => 'd',
        Err(_) => '?',
    }
}

/// Set in the re-executed test binary: which case its child side runs.
const CHILD: &str = "STRATA_PROFILE_TEST_CHILD";

/// What a filtered process could do, one letter per observation: `d`
/// denied with EPERM, `a` allowed, `n` ENOSYS, `?` something else.
fn probe_in_child(extra_caps: &str) -> String {
    if let Ok(which) = std::env::var(CHILD) {
        let extra: Vec<&str> = which.split(',').filter(|c| !c.is_empty()).collect();
        let s = docker_default().to_oci(&caps(&extra), host_kernel().unwrap()).unwrap();
        let filter = crate::runtime::seccomp::compile(&s).unwrap();
        crate::sys::process::set_no_new_privs().unwrap();
        filter.load().unwrap();
        let letter = |r: std::io::Result<()>| match r {
            Ok(()) => 'a',
            Err(e) if e.raw_os_error() == Some(1) => 'd',
            Err(e) if e.raw_os_error() == Some(38) => 'n',
            Err(_) => '?',
        };
        let report: String = [
            letter(crate::sys::process::unshare_namespaces(crate::sys::process::UnshareFlags::NEWUTS)),
            letter(crate::sys::prctl::join_session_keyring(c"strata-test")),
            io_uring_letter(),
            letter(std::fs::write(std::env::temp_dir().join(format!("strata-probe-{}", std::process::id())), b"x")),
            letter(Command::new("/bin/true").status().map(|_| ())),
        ]
        .iter()
        .collect();
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("strata-probe-{}", std::process::id())));
        eprintln!("REPORT={report}");
        crate::sys::process::exit_immediately(0);
    }
    let name = if extra_caps.is_empty() { "docker_caps" } else { "sys_admin" };
    let test = format!("ops::container::seccomp::tests::the_default_filter_in_a_process_{name}");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([&test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, extra_caps)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    let report =
        stderr.lines().find_map(|l| l.strip_prefix("REPORT=")).unwrap_or_else(|| panic!("no report: {stderr}"));
    if report.chars().nth(2) == Some('x') {
        eprintln!("io_uring is disabled on this host (kernel.io_uring_disabled): its denial is not observed");
        return report.replacen('x', "d", 1);
    }
    report.to_owned()
}

/// unshare(NEWUTS), keyctl(JOIN_SESSION_KEYRING), io_uring_setup, a
/// file write, and spawning /bin/true (glibc tries clone3, falls back to
/// clone on ENOSYS).
#[test]
fn the_default_filter_in_a_process_docker_caps() {
    assert_eq!(probe_in_child(""), "dddaa");
}

#[test]
fn the_default_filter_in_a_process_sys_admin() {
    // io_uring stays denied: no capability brings it.
    assert_eq!(probe_in_child("CAP_SYS_ADMIN"), "addaa");
}

#[test]
fn the_default_profile_compiles_once_then_comes_from_the_cache() {
    use crate::runtime::seccomp::{Cache, Origin};
    let s = docker_default().to_oci(&caps(&[]), host_kernel().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let t = std::time::Instant::now();
    let cold = cache.compile(&s).unwrap();
    let cold_time = t.elapsed();
    let t = std::time::Instant::now();
    let warm = cache.compile(&s).unwrap();
    let warm_time = t.elapsed();
    assert_eq!((cold.origin(), warm.origin()), (Origin::Compiled, Origin::Cached));
    assert_eq!(cold.len(), warm.len());
    assert!(cold.len() > 100, "{} instructions", cold.len());
    eprintln!(
        "docker default, {} instructions: compiled in {cold_time:?}, from the cache in {warm_time:?}; \
         names this libseccomp does not know: {:?}",
        cold.len(),
        cold.unknown_syscalls()
    );
}
