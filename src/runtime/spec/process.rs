//! `process`: what runs in the container, as whom, with which limits.

use super::{is_false, is_zero, string_enum};
use serde::{Deserialize, Serialize};

/// `process`: REQUIRED when `start` is called.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// A pty for the process (its master goes to `--console-socket`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub terminal: bool,
    /// Ignored unless `terminal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<ConsoleSize>,
    /// Always written (Go has no `omitempty` on it); uid 0 when absent.
    #[serde(default)]
    pub user: User,
    /// `execvp` semantics for `args[0]`; at least one entry off Windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Windows only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command_line: String,
    /// `KEY=value` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Absolute path in the container (REQUIRED).
    pub cwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_new_privileges: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub apparmor_profile: String,
    /// Written to `/proc/<pid>/oom_score_adj` when set, left alone when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// `sched_setattr(2)` for the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<Scheduler>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selinux_label: String,
    /// `ioprio_set(2)` for the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_priority: Option<IoPriority>,
    /// CPU affinity of processes joining the container (`exec`).
    #[serde(default, rename = "execCPUAffinity", skip_serializing_if = "Option::is_none")]
    pub exec_cpu_affinity: Option<CpuAffinity>,
}

/// `process.consoleSize`, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsoleSize {
    pub height: u64,
    pub width: u64,
}

/// `process.user`. On Linux only the numeric IDs count: names are the
/// caller's business (resolved before the spec is written).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
    /// Windows only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
}

/// `process.capabilities`: the five sets, as `CAP_*` names. Names stay
/// strings: the spec asks runtimes to warn about, not reject, a
/// capability this kernel does not have.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounding: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effective: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inheritable: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permitted: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ambient: Vec<String>,
}

/// One entry of `process.rlimits` (`setrlimit(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: RlimitType,
    pub hard: u64,
    pub soft: u64,
}

string_enum! {
    /// A resource of `getrlimit(2)`, by its C name.
    RlimitType, "rlimit type" {
        As = "RLIMIT_AS",
        Core = "RLIMIT_CORE",
        Cpu = "RLIMIT_CPU",
        Data = "RLIMIT_DATA",
        Fsize = "RLIMIT_FSIZE",
        Locks = "RLIMIT_LOCKS",
        Memlock = "RLIMIT_MEMLOCK",
        Msgqueue = "RLIMIT_MSGQUEUE",
        Nice = "RLIMIT_NICE",
        Nofile = "RLIMIT_NOFILE",
        Nproc = "RLIMIT_NPROC",
        Rss = "RLIMIT_RSS",
        Rtprio = "RLIMIT_RTPRIO",
        Rttime = "RLIMIT_RTTIME",
        Sigpending = "RLIMIT_SIGPENDING",
        Stack = "RLIMIT_STACK",
    }
}

/// `process.scheduler`: the arguments of `sched_setattr(2)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheduler {
    pub policy: SchedulerPolicy,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nice: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<SchedulerFlag>,
    /// `SCHED_DEADLINE` only, nanoseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub runtime: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deadline: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub period: u64,
}

string_enum! {
    /// `process.scheduler.policy`.
    SchedulerPolicy, "scheduler policy" {
        Other = "SCHED_OTHER",
        Fifo = "SCHED_FIFO",
        Rr = "SCHED_RR",
        Batch = "SCHED_BATCH",
        Iso = "SCHED_ISO",
        Idle = "SCHED_IDLE",
        Deadline = "SCHED_DEADLINE",
    }
}

string_enum! {
    /// `process.scheduler.flags[]`.
    SchedulerFlag, "scheduler flag" {
        ResetOnFork = "SCHED_FLAG_RESET_ON_FORK",
        Reclaim = "SCHED_FLAG_RECLAIM",
        DlOverrun = "SCHED_FLAG_DL_OVERRUN",
        KeepPolicy = "SCHED_FLAG_KEEP_POLICY",
        KeepParams = "SCHED_FLAG_KEEP_PARAMS",
        UtilClampMin = "SCHED_FLAG_UTIL_CLAMP_MIN",
        UtilClampMax = "SCHED_FLAG_UTIL_CLAMP_MAX",
    }
}

/// `process.ioPriority`: `ioprio_set(2)` class and level (0 highest to
/// 7 lowest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoPriority {
    pub class: IoPriorityClass,
    #[serde(default)]
    pub priority: i32,
}

string_enum! {
    /// `process.ioPriority.class`.
    IoPriorityClass, "I/O priority class" {
        Rt = "IOPRIO_CLASS_RT",
        Be = "IOPRIO_CLASS_BE",
        Idle = "IOPRIO_CLASS_IDLE",
    }
}

/// `process.execCPUAffinity`: CPU lists (`0-3,7`) for a process joining
/// the container, before and after it joins the cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuAffinity {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub initial: String,
    #[serde(default, rename = "final", skip_serializing_if = "String::is_empty")]
    pub final_: String,
}
