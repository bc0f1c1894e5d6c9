//! `linux.seccomp`: a syscall filter in libseccomp's vocabulary.

use super::{is_zero, string_enum};
use serde::{Deserialize, Serialize};

/// `linux.seccomp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    /// For every syscall no rule matches.
    pub default_action: SeccompAction,
    /// Only with an action that returns an errno; `EPERM` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Architectures besides the native one the filter covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<Arch>,
    /// `seccomp(2)` filter flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<SeccompFlag>,
    /// A UNIX socket that gets the notify descriptor (`SCMP_ACT_NOTIFY`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listener_path: String,
    /// Opaque data for the agent behind `listener_path`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listener_metadata: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<Syscall>,
}

/// One rule of `linux.seccomp.syscalls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscall {
    /// At least one.
    pub names: Vec<String>,
    pub action: SeccompAction,
    /// Only with an action that returns an errno; `EPERM` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// All must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<SeccompArg>,
}

/// A comparison of one syscall argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompArg {
    /// Argument number, 0 to 5.
    pub index: u32,
    pub value: u64,
    /// The second operand of `SCMP_CMP_MASKED_EQ` (the value compared
    /// with after masking by `value`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value_two: u64,
    pub op: SeccompOp,
}

string_enum! {
    /// What the filter does with a matching syscall.
    SeccompAction, "seccomp action" {
        Kill = "SCMP_ACT_KILL",
        KillProcess = "SCMP_ACT_KILL_PROCESS",
        KillThread = "SCMP_ACT_KILL_THREAD",
        Trap = "SCMP_ACT_TRAP",
        Errno = "SCMP_ACT_ERRNO",
        Trace = "SCMP_ACT_TRACE",
        Allow = "SCMP_ACT_ALLOW",
        Log = "SCMP_ACT_LOG",
        Notify = "SCMP_ACT_NOTIFY",
    }
}

impl SeccompAction {
    /// Whether the action carries an errno (`errnoRet`): the spec names
    /// `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE`.
    pub fn takes_errno(self) -> bool {
        matches!(self, SeccompAction::Errno | SeccompAction::Trace)
    }
}

string_enum! {
    /// How an argument is compared.
    SeccompOp, "seccomp operator" {
        NotEqual = "SCMP_CMP_NE",
        LessThan = "SCMP_CMP_LT",
        LessEqual = "SCMP_CMP_LE",
        EqualTo = "SCMP_CMP_EQ",
        GreaterEqual = "SCMP_CMP_GE",
        GreaterThan = "SCMP_CMP_GT",
        MaskedEqual = "SCMP_CMP_MASKED_EQ",
    }
}

string_enum! {
    /// A syscall ABI, as libseccomp names it.
    Arch, "seccomp architecture" {
        X86 = "SCMP_ARCH_X86",
        X86_64 = "SCMP_ARCH_X86_64",
        X32 = "SCMP_ARCH_X32",
        Arm = "SCMP_ARCH_ARM",
        Aarch64 = "SCMP_ARCH_AARCH64",
        Mips = "SCMP_ARCH_MIPS",
        Mips64 = "SCMP_ARCH_MIPS64",
        Mips64N32 = "SCMP_ARCH_MIPS64N32",
        Mipsel = "SCMP_ARCH_MIPSEL",
        Mipsel64 = "SCMP_ARCH_MIPSEL64",
        Mipsel64N32 = "SCMP_ARCH_MIPSEL64N32",
        Ppc = "SCMP_ARCH_PPC",
        Ppc64 = "SCMP_ARCH_PPC64",
        Ppc64Le = "SCMP_ARCH_PPC64LE",
        S390 = "SCMP_ARCH_S390",
        S390X = "SCMP_ARCH_S390X",
        Parisc = "SCMP_ARCH_PARISC",
        Parisc64 = "SCMP_ARCH_PARISC64",
        Riscv64 = "SCMP_ARCH_RISCV64",
        Loongarch64 = "SCMP_ARCH_LOONGARCH64",
        M68k = "SCMP_ARCH_M68K",
        Sh = "SCMP_ARCH_SH",
        Sheb = "SCMP_ARCH_SHEB",
    }
}

string_enum! {
    /// A `seccomp(2)` filter flag.
    SeccompFlag, "seccomp flag" {
        Tsync = "SECCOMP_FILTER_FLAG_TSYNC",
        Log = "SECCOMP_FILTER_FLAG_LOG",
        SpecAllow = "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        WaitKillableRecv = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    }
}
