//! strata's default profile: the semantics of Docker's default (moby 25
//! and later), written as data grouped by what the calls do.
//!
//! - Anything not listed fails with `EPERM`.
//! - Always allowed: file, memory, process, signal, time, scheduling,
//!   socket and SysV/POSIX IPC calls an unprivileged program uses, and the
//!   architecture's own calls. `io_uring_setup`/`_enter`/`_register` are
//!   not among them (the ring bypasses this filter for every operation it
//!   submits), nor `keyctl`, `add_key`, `request_key`, `userfaultfd`,
//!   `kexec_*`, `swapon`, `pivot_root`, `open_by_handle_at`, `bpf`,
//!   `perf_event_open`, …
//! - `socket` for every family but `AF_ALG` and `AF_VSOCK`.
//! - `personality` only for the personas a program may ask for.
//! - The calls a capability exists to guard are allowed with that
//!   capability in the bounding set: `CAP_SYS_ADMIN` brings mount,
//!   namespaces (`unshare`, `setns`, `clone` with `CLONE_NEW*`, `clone3`),
//!   `bpf`, `perf_event_open`, …; `CAP_SYS_PTRACE`, `CAP_SYS_BOOT`,
//!   `CAP_SYS_MODULE`, `CAP_SYS_TIME`, … likewise.
//! - Without `CAP_SYS_ADMIN`, `clone` is allowed only when its flags ask
//!   for no new namespace, and `clone3` (whose flags live in memory a
//!   filter cannot read) fails with `ENOSYS`, so C libraries fall back to
//!   `clone`.
//! - Since 4.8 a seccomp filter is re-checked after a ptrace tracer
//!   changes a syscall, so `ptrace` and `process_vm_*` are allowed
//!   without `CAP_SYS_PTRACE` on those kernels.

use super::{ArchMap, Condition, KernelVersion, Profile, Rule};
use crate::runtime::spec::{Arch, SeccompAction, SeccompArg, SeccompOp};

/// Files, directories, descriptors, xattrs and file I/O.
#[rustfmt::skip]
const FILES: &[&str] = &[
    "access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd", "chmod", "fchmod", "fchmodat",
    "fchmodat2", "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32", "umask",
    // opening, closing, duplicating
    "open", "openat", "openat2", "creat", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "fcntl64",
    "ioctl", "flock", "name_to_handle_at",
    // reading and writing
    "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev", "pwritev2",
    "lseek", "_llseek", "sendfile", "sendfile64", "splice", "tee", "vmsplice", "copy_file_range", "readahead",
    "fadvise64", "fadvise64_64", "fallocate", "truncate", "truncate64", "ftruncate", "ftruncate64",
    // syncing
    "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
    // metadata
    "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat", "statx", "statfs",
    "statfs64", "fstatfs", "fstatfs64", "utime", "utimes", "utimensat", "utimensat_time64", "futimesat",
    // the namespace of names
    "mkdir", "mkdirat", "mknod", "mknodat", "rmdir", "link", "linkat", "symlink", "symlinkat", "unlink",
    "unlinkat", "rename", "renameat", "renameat2", "readlink", "readlinkat", "getdents", "getdents64",
    // extended attributes
    "getxattr", "lgetxattr", "fgetxattr", "getxattrat", "setxattr", "lsetxattr", "fsetxattr", "setxattrat",
    "listxattr", "llistxattr", "flistxattr", "listxattrat", "removexattr", "lremovexattr", "fremovexattr",
    "removexattrat",
    // watching, mounts as read-only information
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "fanotify_mark", "listmount",
    "statmount",
    // asynchronous I/O (the old interface; io_uring is not here)
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
    // sandboxing oneself
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "seccomp",
];

/// Waiting on descriptors and the descriptors made for waiting.
#[rustfmt::skip]
const POLLING: &[&str] = &[
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old", "epoll_pwait",
    "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4", "timerfd_create", "timerfd_settime",
    "timerfd_settime64", "timerfd_gettime", "timerfd_gettime64", "pipe", "pipe2",
];

/// Address space: mappings, locks, protection keys, memfds.
#[rustfmt::skip]
const MEMORY: &[&str] = &[
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "msync", "madvise", "mincore", "remap_file_pages",
    "mlock", "mlock2", "mlockall", "munlock", "munlockall", "mseal", "map_shadow_stack", "membarrier",
    "memfd_create", "memfd_secret", "pkey_alloc", "pkey_free", "pkey_mprotect", "cachestat",
];

/// Processes and threads: creation (clone is conditional), exec, exit,
/// identity, limits, sessions.
#[rustfmt::skip]
const PROCESSES: &[&str] = &[
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid",
    "restart_syscall", "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "set_thread_area",
    "get_thread_area", "prctl", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid",
    "setsid", "pidfd_open", "pidfd_send_signal", "process_mrelease", "capget", "capset",
    // credentials (what they may become is the capabilities' business)
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32", "getresuid",
    "getresuid32", "getresgid", "getresgid32", "getgroups", "getgroups32", "setuid", "setuid32", "setgid",
    "setgid32", "setreuid", "setreuid32", "setregid", "setregid32", "setresuid", "setresuid32", "setresgid",
    "setresgid32", "setfsuid", "setfsuid32", "setfsgid", "setfsgid32", "setgroups", "setgroups32",
    // resources
    "getrlimit", "ugetrlimit", "setrlimit", "prlimit64", "getrusage", "getpriority", "setpriority",
    "ioprio_get", "ioprio_set", "times", "sysinfo", "uname", "getcpu", "getrandom",
];

/// Signals and futexes.
#[rustfmt::skip]
const SIGNALS: &[&str] = &[
    "kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigpending", "rt_sigqueueinfo",
    "rt_tgsigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "sigaltstack", "sigprocmask", "sigreturn", "pause", "futex", "futex_time64", "futex_waitv", "futex_wait",
    "futex_wake", "futex_requeue",
];

/// Clocks and timers (setting the clock is `CAP_SYS_TIME`'s).
#[rustfmt::skip]
const TIME: &[&str] = &[
    "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
    "clock_nanosleep", "clock_nanosleep_time64", "nanosleep", "alarm", "getitimer", "setitimer", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    // adjtimex and clock_adjtime only read unless the caller has CAP_SYS_TIME
    "adjtimex", "clock_adjtime", "clock_adjtime64",
];

/// CPU scheduling of one's own threads.
#[rustfmt::skip]
const SCHEDULING: &[&str] = &[
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr", "sched_getparam",
    "sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "sched_rr_get_interval", "sched_rr_get_interval_time64",
];

/// Sockets (`socket` itself is conditional on the family).
#[rustfmt::skip]
const NETWORK: &[&str] = &[
    "socketpair", "socketcall", "bind", "listen", "accept", "accept4", "connect", "shutdown", "getsockname",
    "getpeername", "getsockopt", "setsockopt", "send", "sendto", "sendmsg", "sendmmsg", "recv", "recvfrom",
    "recvmsg", "recvmmsg", "recvmmsg_time64",
];

/// System V and POSIX IPC (in the container's IPC namespace).
#[rustfmt::skip]
const IPC: &[&str] = &[
    "ipc", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop", "semtimedop_time64",
    "semctl", "shmget", "shmat", "shmdt", "shmctl", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
];

/// Calls that exist on some architectures only and are harmless there.
const HARMLESS_ELSEWHERE: &[&str] = &["riscv_hwprobe", "uretprobe"];

/// The `personality(2)` values allowed: `PER_LINUX`, `PER_LINUX32`,
/// `UNAME26`, `PER_LINUX32 | UNAME26`, and `0xffffffff` (query only).
const PERSONAS: &[u64] = &[0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
/// CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET` (`<linux/sched.h>`).
const CLONE_NAMESPACE_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

/// The socket families `socket(2)` refuses (`<linux/socket.h>`):
/// `AF_ALG` (the kernel's crypto API) and `AF_VSOCK`; `AF_NFC` between
/// them is allowed.
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

/// Calls `CAP_SYS_ADMIN` brings: mounts, namespaces, names of the host,
/// kernel instrumentation.
#[rustfmt::skip]
const SYS_ADMIN: &[&str] = &[
    "mount", "umount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
    "mount_setattr", "unshare", "setns", "clone", "clone3", "sethostname", "setdomainname", "quotactl",
    "quotactl_fd", "fanotify_init", "lookup_dcookie", "syslog", "bpf", "perf_event_open", "lsm_get_self_attr",
    "lsm_set_self_attr", "lsm_list_modules",
];

/// Other capabilities and the calls each brings.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["init_module", "finit_module", "delete_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_PTRACE", &["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise"]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["mbind", "get_mempolicy", "set_mempolicy", "set_mempolicy_home_node"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Calls of one architecture family, by Docker's architecture names.
const BY_ARCH: &[(&[&str], &[&str])] = &[
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (
        &["arm", "arm64"],
        &["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
    ),
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (&["s390", "s390x"], &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"]),
    (&["riscv64"], &["riscv_flush_icache"]),
];

fn names(lists: &[&[&str]]) -> Vec<String> {
    lists.iter().flat_map(|l| l.iter()).map(|n| n.to_string()).collect()
}

fn allow(names: Vec<String>) -> Rule {
    Rule { names, action: SeccompAction::Allow, ..Rule::default() }
}

fn cmp(index: u32, op: SeccompOp, value: u64) -> SeccompArg {
    SeccompArg { index, value, value_two: 0, op }
}

fn caps(caps: &[&str]) -> Condition {
    Condition { caps: caps.iter().map(|c| c.to_string()).collect(), ..Condition::default() }
}

fn arches(arches: &[&str]) -> Condition {
    Condition { arches: arches.iter().map(|a| a.to_string()).collect(), ..Condition::default() }
}

/// The default profile (see the module doc for what it does).
pub fn docker_default() -> Profile {
    let mut rules = vec![allow(names(&[
        FILES,
        POLLING,
        MEMORY,
        PROCESSES,
        SIGNALS,
        TIME,
        SCHEDULING,
        NETWORK,
        IPC,
        HARMLESS_ELSEWHERE,
    ]))];
    rules.push(Rule {
        includes: Condition { min_kernel: Some(KernelVersion { kernel: 4, major: 8 }), ..Condition::default() },
        ..allow(names(&[&["ptrace", "process_vm_readv", "process_vm_writev"]]))
    });
    for arg in [
        cmp(0, SeccompOp::LessThan, AF_ALG),
        cmp(0, SeccompOp::EqualTo, AF_ALG + 1),
        cmp(0, SeccompOp::GreaterThan, AF_VSOCK),
    ] {
        rules.push(Rule { args: vec![arg], ..allow(names(&[&["socket"]])) });
    }
    for persona in PERSONAS {
        rules.push(Rule { args: vec![cmp(0, SeccompOp::EqualTo, *persona)], ..allow(names(&[&["personality"]])) });
    }
    for (on, calls) in BY_ARCH {
        rules.push(Rule { includes: arches(on), ..allow(names(&[calls])) });
    }
    rules.push(Rule { includes: caps(&["CAP_SYS_ADMIN"]), ..allow(names(&[SYS_ADMIN])) });
    // clone without CAP_SYS_ADMIN: no namespace flag. The flags are the
    // first argument, but the second on s390 (its argument order differs).
    let masked = |index| SeccompArg { index, value: CLONE_NAMESPACE_FLAGS, value_two: 0, op: SeccompOp::MaskedEqual };
    rules.push(Rule {
        args: vec![masked(0)],
        excludes: Condition {
            caps: vec!["CAP_SYS_ADMIN".into()],
            arches: vec!["s390".into(), "s390x".into()],
            ..Condition::default()
        },
        ..allow(names(&[&["clone"]]))
    });
    rules.push(Rule {
        args: vec![masked(1)],
        includes: arches(&["s390", "s390x"]),
        excludes: caps(&["CAP_SYS_ADMIN"]),
        ..allow(names(&[&["clone"]]))
    });
    rules.push(Rule {
        action: SeccompAction::Errno,
        errno_ret: Some(ENOSYS),
        excludes: caps(&["CAP_SYS_ADMIN"]),
        ..allow(names(&[&["clone3"]]))
    });
    for (cap, calls) in BY_CAPABILITY {
        rules.push(Rule { includes: caps(&[cap]), ..allow(names(&[calls])) });
    }
    Profile {
        default_action: SeccompAction::Errno,
        default_errno_ret: Some(EPERM),
        arch_map: vec![
            arch_map(Arch::X86_64, &[Arch::X86, Arch::X32]),
            arch_map(Arch::Aarch64, &[Arch::Arm]),
            arch_map(Arch::Mips64, &[Arch::Mips, Arch::Mips64N32]),
            arch_map(Arch::Mips64N32, &[Arch::Mips, Arch::Mips64]),
            arch_map(Arch::Mipsel64, &[Arch::Mipsel, Arch::Mipsel64N32]),
            arch_map(Arch::Mipsel64N32, &[Arch::Mipsel, Arch::Mipsel64]),
            arch_map(Arch::S390X, &[Arch::S390]),
            arch_map(Arch::Riscv64, &[]),
            arch_map(Arch::Loongarch64, &[]),
        ],
        syscalls: rules,
        ..Profile::default()
    }
}

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

fn arch_map(architecture: Arch, sub: &[Arch]) -> ArchMap {
    ArchMap { architecture, sub_architectures: sub.to_vec() }
}
