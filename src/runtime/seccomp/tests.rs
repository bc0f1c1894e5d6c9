//! Filters compiled and loaded in a re-executed test process.

use super::*;
use crate::runtime::spec::{Arch, Seccomp, SeccompArg, Syscall};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus};

/// Set in the re-executed test binary: the name of the test whose
/// child side should run, and the directory it may write to.
const CHILD: &str = "STRATA_SECCOMP_TEST_CHILD";
const CHILD_DIR: &str = "STRATA_SECCOMP_TEST_DIR";

/// Runs `child` in a process of its own, with a fresh directory, and
/// returns how that process ended and the directory. A filter is for
/// life, and the test harness is multi-threaded (so it cannot fork and
/// go on running Rust), hence the test binary is run again filtered to
/// the one test `name`, which then calls `child` and exits with its
/// return value (`_exit`: nothing else runs under the filter).
fn in_child(name: &str, child: impl FnOnce(&Path) -> i32) -> (ExitStatus, tempfile::TempDir) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        let dir = std::env::var_os(CHILD_DIR).unwrap();
        crate::sys::process::set_no_new_privs().unwrap();
        let code = child(Path::new(&dir));
        crate::sys::process::exit_immediately(code);
    }
    let dir = tempfile::tempdir().unwrap();
    let module = module_path!().split_once("::").map_or(module_path!(), |(_, rest)| rest);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([&format!("{module}::{name}"), "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, name)
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap();
    eprintln!("child {name}: {}", String::from_utf8_lossy(&out.stderr));
    (out.status, dir)
}

fn seccomp(default_action: SeccompAction, syscalls: Vec<Syscall>) -> Seccomp {
    Seccomp {
        default_action,
        default_errno_ret: None,
        architectures: Vec::new(),
        flags: Vec::new(),
        listener_path: String::new(),
        listener_metadata: String::new(),
        syscalls,
    }
}

fn rule(names: &[&str], action: SeccompAction, errno_ret: Option<u32>, args: Vec<SeccompArg>) -> Syscall {
    Syscall { names: names.iter().map(|n| n.to_string()).collect(), action, errno_ret, args }
}

fn arg(index: u32, op: SeccompOp, value: u64, value_two: u64) -> SeccompArg {
    SeccompArg { index, value, value_two, op }
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

const ENOSYS: u32 = 38;
const EXDEV: u32 = 18;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const F_DUPFD_CLOEXEC: u64 = 1030;

#[test]
fn errno_rule_returns_its_errno_and_leaves_other_syscalls_alone() {
    let (status, dir) = in_child("errno_rule_returns_its_errno_and_leaves_other_syscalls_alone", |dir| {
        let spec = seccomp(
            SeccompAction::Allow,
            vec![rule(&["mkdirat", "mkdir", "getppid"], SeccompAction::Errno, Some(ENOSYS), vec![])],
        );
        let dirfd = crate::sys::fs::open_dir(dir).unwrap();
        compile(&spec).unwrap().load().unwrap();
        let mkdir = crate::sys::fs::mkdir_at(std::os::fd::AsFd::as_fd(&dirfd), b"x", 0o755);
        // glibc's getppid cannot fail: the raw return value is -errno.
        let ppid = std::os::unix::process::parent_id() as i32;
        let other = std::fs::metadata("/").is_ok() && std::fs::read("/proc/self/status").is_ok();
        match (mkdir.as_ref().map_err(errno_of), ppid, other) {
            (Err(38), -38, true) => 0,
            (Err(38), _, _) => 2,
            (Ok(()), _, _) => 3,
            _ => 4,
        }
    });
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!dir.path().join("x").exists());
}

#[test]
fn argument_conditions_select_the_calls_denied() {
    let (status, dir) = in_child("argument_conditions_select_the_calls_denied", |dir| {
        let existing = dir.join("existing");
        std::fs::write(&existing, b"x").unwrap();
        let spec = seccomp(
            SeccompAction::Allow,
            vec![
                // One argument compared once: fcntl(fd, F_DUPFD_CLOEXEC, …) only.
                rule(
                    &["fcntl"],
                    SeccompAction::Errno,
                    Some(EXDEV),
                    vec![arg(1, SeccompOp::EqualTo, F_DUPFD_CLOEXEC, 0)],
                ),
                // The same argument compared twice: a rule each (runc), so
                // O_CREAT or O_TRUNC is enough.
                rule(
                    &["openat", "open"],
                    SeccompAction::Errno,
                    Some(EXDEV),
                    vec![
                        arg(2, SeccompOp::MaskedEqual, O_CREAT, O_CREAT),
                        arg(2, SeccompOp::MaskedEqual, O_TRUNC, O_TRUNC),
                    ],
                ),
            ],
        );
        compile(&spec).unwrap().load().unwrap();
        let read = std::fs::File::open(&existing);
        let dup = read.as_ref().map(|f| f.try_clone());
        let create = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(dir.join("new"));
        let truncate = std::fs::OpenOptions::new().write(true).truncate(true).open(&existing);
        let append = std::fs::OpenOptions::new().append(true).open(&existing);
        let mut code = 0;
        if read.is_err() {
            code |= 1;
        }
        if !matches!(dup, Ok(Err(ref e)) if errno_of(e) == 18) {
            code |= 2;
        }
        if !matches!(create, Err(ref e) if errno_of(e) == 18) {
            code |= 4;
        }
        if !matches!(truncate, Err(ref e) if errno_of(e) == 18) {
            code |= 8;
        }
        if append.is_err() {
            code |= 16;
        }
        code
    });
    assert_eq!(status.code(), Some(0), "{status:?}: bits say which observation was wrong");
    assert!(!dir.path().join("new").exists());
    assert_eq!(std::fs::read(dir.path().join("existing")).unwrap(), b"x");
}

#[test]
fn default_errno_with_an_allow_list() {
    let (status, _dir) = in_child("default_errno_with_an_allow_list", |_| {
        let mut spec = seccomp(
            SeccompAction::Errno,
            vec![rule(&["getpid", "exit_group", "exit"], SeccompAction::Allow, None, vec![])],
        );
        spec.default_errno_ret = Some(ENOSYS);
        let pid = std::process::id();
        compile(&spec).unwrap().load().unwrap();
        let allowed = std::process::id() == pid;
        let denied = std::os::unix::process::parent_id() as i32 == -38;
        i32::from(!allowed) | (i32::from(!denied) << 1)
    });
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn kill_process_ends_the_process_with_sigsys() {
    let (status, _dir) = in_child("kill_process_ends_the_process_with_sigsys", |_| {
        let spec = seccomp(SeccompAction::Allow, vec![rule(&["getppid"], SeccompAction::KillProcess, None, vec![])]);
        compile(&spec).unwrap().load().unwrap();
        let _ = std::os::unix::process::parent_id();
        0
    });
    assert_eq!(status.signal(), Some(31), "{status:?} (SIGSYS is 31)");
}

#[test]
fn unknown_syscall_names_are_skipped_and_listed() {
    let spec = seccomp(
        SeccompAction::Allow,
        vec![
            rule(&["getppid", "no_such_syscall", "mkdirat"], SeccompAction::Errno, None, vec![]),
            rule(&["no_such_syscall", "another_one"], SeccompAction::KillProcess, None, vec![]),
        ],
    );
    let filter = compile(&spec).unwrap();
    assert_eq!(filter.unknown_syscalls(), ["no_such_syscall", "another_one"]);
    let pfc = pseudo_code(&spec).unwrap();
    assert!(pfc.contains("getppid") && pfc.contains("mkdirat"), "{pfc}");
}

#[test]
fn notify_and_listener_path_are_refused_by_name() {
    let spec = seccomp(SeccompAction::Allow, vec![rule(&["getppid"], SeccompAction::Notify, None, vec![])]);
    assert_eq!(
        compile(&spec).unwrap_err().to_string(),
        "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY not supported"
    );
    let mut spec = seccomp(SeccompAction::Notify, vec![]);
    assert_eq!(compile(&spec).unwrap_err().to_string(), "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY not supported");
    spec.default_action = SeccompAction::Allow;
    spec.listener_path = "/run/agent.sock".into();
    assert_eq!(compile(&spec).unwrap_err().to_string(), "linux.seccomp.listenerPath: not supported");
}

#[test]
fn errno_ret_out_of_range_is_refused_by_name() {
    let spec = seccomp(SeccompAction::Allow, vec![rule(&["getppid"], SeccompAction::Errno, Some(70000), vec![])]);
    assert_eq!(
        compile(&spec).unwrap_err().to_string(),
        "linux.seccomp.syscalls[0].errnoRet: 70000 is out of range (0 to 65535)"
    );
}

#[test]
fn a_rule_with_the_default_action_is_skipped() {
    // libseccomp refuses such a rule (EACCES); runc drops it.
    let spec = seccomp(SeccompAction::Errno, vec![rule(&["getppid"], SeccompAction::Errno, Some(1), vec![])]);
    let pfc = pseudo_code(&spec).unwrap();
    assert!(!pfc.contains("getppid"), "{pfc}");
    // A different errno is a different action.
    let spec = seccomp(SeccompAction::Errno, vec![rule(&["getppid"], SeccompAction::Errno, Some(2), vec![])]);
    let pfc = pseudo_code(&spec).unwrap();
    assert!(pfc.contains("getppid"), "{pfc}");
}

#[test]
fn architectures_and_flags() {
    let mut spec = seccomp(SeccompAction::Allow, vec![rule(&["getppid"], SeccompAction::Errno, None, vec![])]);
    spec.architectures = vec![Arch::X86_64, Arch::X86, Arch::X32];
    spec.flags = vec![SeccompFlag::Tsync, SeccompFlag::Log, SeccompFlag::SpecAllow];
    let pfc = pseudo_code(&spec).unwrap();
    assert!(pfc.contains("x86_64") && pfc.contains("x32") && pfc.contains("arch x86"), "{pfc}");
    // An architecture this libseccomp lacks (2.5 has no LoongArch) is
    // refused by its path; with a newer library it is accepted.
    spec.architectures = vec![Arch::X86, Arch::Loongarch64];
    let known = features().archs.unwrap().contains(&"SCMP_ARCH_LOONGARCH64".to_owned());
    match compile(&spec) {
        Ok(_) => assert!(known),
        Err(e) => {
            assert!(!known);
            assert!(
                e.to_string().starts_with("linux.seccomp.architectures[1]: SCMP_ARCH_LOONGARCH64 not supported"),
                "{e}"
            );
        }
    }
}

#[test]
fn features_name_what_this_host_can_do() {
    let f = features();
    assert_eq!(f.enabled, Some(true));
    let actions = f.actions.unwrap();
    for a in ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_LOG"] {
        assert!(actions.contains(&a.to_owned()), "{a} missing from {actions:?}");
    }
    assert!(!actions.contains(&"SCMP_ACT_NOTIFY".to_owned()));
    assert_eq!(f.operators.unwrap().len(), 7);
    let archs = f.archs.unwrap();
    assert!(archs.contains(&"SCMP_ARCH_X86_64".to_owned()) && archs.contains(&"SCMP_ARCH_AARCH64".to_owned()));
    assert!(!archs.contains(&"SCMP_ARCH_NATIVE".to_owned()));
    assert_eq!(f.known_flags.unwrap().len(), 4);
    let supported = f.supported_flags.unwrap();
    assert!(supported.contains(&"SECCOMP_FILTER_FLAG_TSYNC".to_owned()), "{supported:?}");
}

fn cache_spec() -> Seccomp {
    seccomp(
        SeccompAction::Allow,
        vec![
            rule(&["getppid", "no_such_syscall"], SeccompAction::Errno, Some(ENOSYS), vec![]),
            rule(&["mkdirat"], SeccompAction::Errno, Some(EXDEV), vec![arg(2, SeccompOp::EqualTo, 0o700, 0)]),
        ],
    )
}

#[test]
fn a_second_compile_of_the_same_spec_is_a_cache_hit() {
    use std::os::unix::fs::MetadataExt;
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::new(root.path());
    let spec = cache_spec();
    let first = cache.compile(&spec).unwrap();
    assert_eq!(first.origin(), Origin::Compiled);
    let path = cache.path_of(&spec);
    assert_eq!(path.parent(), Some(root.path()));
    let before = std::fs::metadata(&path).unwrap();
    let second = cache.compile(&spec).unwrap();
    assert_eq!(second.origin(), Origin::Cached);
    assert_eq!(second.program, first.program);
    assert_eq!(second.program, compile(&spec).unwrap().program, "the cache holds what libseccomp makes");
    assert_eq!(second.unknown_syscalls(), ["no_such_syscall"]);
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!((after.ino(), after.mtime_nsec(), after.mtime()), (before.ino(), before.mtime_nsec(), before.mtime()));
    // Another spec is another entry.
    let mut other = spec.clone();
    other.syscalls[0].errno_ret = Some(EXDEV);
    assert_ne!(cache.path_of(&other), path);
    assert_eq!(cache.compile(&other).unwrap().origin(), Origin::Compiled);
    let entries = std::fs::read_dir(root.path()).unwrap().count();
    assert_eq!(entries, 2, "two entries and no temporary files");
}

#[test]
fn a_corrupt_or_short_cache_file_is_rebuilt() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::new(root.path());
    let spec = cache_spec();
    let good = cache.compile(&spec).unwrap();
    let path = cache.path_of(&spec);
    let bytes = std::fs::read(&path).unwrap();
    let mut flipped = bytes.clone();
    // An instruction's constant: still whole, but not what was stored.
    flipped[MAGIC_LEN + 8 + 4] ^= 0x40;
    let damaged: [(&str, Vec<u8>); 5] = [
        ("one bit flipped", flipped),
        ("short", bytes[..bytes.len() - 9].to_vec()),
        ("empty", Vec::new()),
        ("longer", [bytes.as_slice(), b"x"].concat()),
        ("not ours", b"#!/bin/sh\n".to_vec()),
    ];
    for (what, content) in damaged {
        std::fs::write(&path, &content).unwrap();
        let f = cache.compile(&spec).unwrap();
        assert_eq!(f.origin(), Origin::Compiled, "{what}: not trusted");
        assert_eq!(f.program, good.program, "{what}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what}: the entry is rewritten");
        assert_eq!(cache.compile(&spec).unwrap().origin(), Origin::Cached, "{what}: and used afterwards");
    }
}

/// A cache entry is bound to its key: a whole, sound entry of another
/// spec — here an allow-everything filter — put under the name of a
/// stricter spec's entry (a stale file, or one planted by whoever could
/// write the directory) is refused and the stricter filter compiled.
#[test]
fn a_tampered_cache_entry_of_another_spec_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::new(root.path());
    let strict = cache_spec();
    let permissive = seccomp(SeccompAction::Allow, vec![rule(&["getppid"], SeccompAction::Allow, None, vec![])]);
    let permissive_filter = cache.compile(&permissive).unwrap();
    let strict_fresh = compile(&strict).unwrap();
    assert_ne!(permissive_filter.program, strict_fresh.program, "the two specs make different programs");
    std::fs::copy(cache.path_of(&permissive), cache.path_of(&strict)).unwrap();
    let f = cache.compile(&strict).unwrap();
    assert_eq!(f.origin(), Origin::Compiled, "another spec's entry is not trusted");
    assert_eq!(f.program, strict_fresh.program, "the filter loaded is the strict spec's own");
    assert_eq!(cache.compile(&strict).unwrap().origin(), Origin::Cached, "the rewritten entry is used afterwards");
}

/// `keep_from` (create's copy for exec in the state directory) links the
/// shared entry, and what it leaves is read back as the same program.
#[test]
fn keep_from_leaves_an_entry_that_reads_back() {
    let root = tempfile::tempdir().unwrap();
    let (shared, state) = (Cache::new(&root.path().join("shared")), Cache::new(&root.path().join("state")));
    std::fs::create_dir(root.path().join("state")).unwrap();
    let spec = cache_spec();
    shared.compile(&spec).unwrap();
    let cached = shared.compile(&spec).unwrap();
    assert_eq!(cached.origin(), Origin::Cached);
    state.keep_from(&shared, &spec, &cached).unwrap();
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (std::fs::metadata(shared.path_of(&spec)).unwrap(), std::fs::metadata(state.path_of(&spec)).unwrap());
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()), "a hard link, not a second copy");
    let again = state.compile(&spec).unwrap();
    assert_eq!(again.origin(), Origin::Cached);
    assert_eq!(again.program, cached.program);
}

#[test]
fn a_cached_program_filters_like_a_fresh_one() {
    let (status, dir) = in_child("a_cached_program_filters_like_a_fresh_one", |dir| {
        let cache = Cache::new(&dir.join("cache"));
        let spec = cache_spec();
        if cache.compile(&spec).map(|f| f.origin()).ok() != Some(Origin::Compiled) {
            return 1;
        }
        let filter = cache.compile(&spec).unwrap();
        if filter.origin() != Origin::Cached {
            return 2;
        }
        let dirfd = crate::sys::fs::open_dir(dir).unwrap();
        filter.load().unwrap();
        let denied = crate::sys::fs::mkdir_at(std::os::fd::AsFd::as_fd(&dirfd), b"x", 0o700);
        let allowed = crate::sys::fs::mkdir_at(std::os::fd::AsFd::as_fd(&dirfd), b"y", 0o755);
        let ppid = std::os::unix::process::parent_id() as i32;
        match (denied.map_err(|e| errno_of(&e)), allowed.is_ok(), ppid) {
            (Err(18), true, -38) => 0,
            _ => 3,
        }
    });
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!dir.path().join("x").exists() && dir.path().join("y").is_dir());
}
