//! `linux.seccomp`: the OCI syscall filter compiled with libseccomp to a
//! classic BPF program ([`compile`], or [`Cache::compile`] which keeps the
//! program by digest), loaded by the container's init with `seccomp(2)`
//! alone ([`Filter::load`]), and what this build and host can do with it
//! ([`features`]).
//!
//! The program is made in the runtime, before the init is cloned (and
//! before `exec` forks): the init runs no libseccomp code, and a cached
//! program costs a file read instead of a compilation (the `cache` module draws
//! the key and the file format).
//!
//! The semantics are runc 1.1's:
//!
//! - `defaultAction` (with `defaultErrnoRet`, `EPERM` when absent) for
//!   every syscall no rule matches; `SCMP_ACT_KILL` is `KILL_THREAD`.
//! - `architectures` are added to the native one, which is always there.
//! - Each rule gives every name in `names` the rule's action (`errnoRet`,
//!   `EPERM` when absent, for `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE`) when
//!   all its `args` hold. When two or more `args` compare the same
//!   argument, libseccomp cannot put them in one rule, so each becomes a
//!   rule of its own (runc's fallback: the rule then matches when *any*
//!   of them holds).
//! - A name libseccomp does not know is skipped (a profile written for a
//!   newer kernel still loads); [`Filter::unknown_syscalls`] lists them for
//!   the caller to log. A rule whose action is the default action is
//!   skipped (libseccomp refuses it, and it changes nothing).
//! - `flags` become libseccomp attributes: `TSYNC`, `LOG`, `SPEC_ALLOW`
//!   (`SCMP_FLTATR_CTL_SSB`), `WAIT_KILLABLE_RECV` where the library has it.
//! - `SCMP_ACT_NOTIFY` and `listenerPath` are refused (no seccomp agent is
//!   supported), as is any action, flag or architecture the running
//!   libseccomp cannot do, each by its JSON path.
//!
//! Unlike runc, no `ENOSYS` stub is patched into the program for syscalls
//! newer than the profile: those get the default action.
//!
//! The filter leaves `no_new_privs` alone; loading it without
//! `no_new_privs` needs `CAP_SYS_ADMIN`, so the init loads it either after
//! `prctl(PR_SET_NO_NEW_PRIVS)` or while it still has the capability.

use crate::runtime::spec::{self, SeccompAction, SeccompFlag, SeccompOp};
use crate::sys::seccomp as sc;
use std::io;

/// Why a `linux.seccomp` could not be compiled or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// Something in the spec this build or this host's libseccomp cannot
    /// do; `field` is its JSON path.
    #[error("{field}: {what}")]
    Unsupported { field: String, what: String },
    /// libseccomp refused a step of building the filter.
    #[error("{field}: {step}: {source}")]
    Libseccomp {
        field: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    /// `seccomp_load` failed.
    #[error("load seccomp filter: {0}")]
    Load(#[source] io::Error),
}

fn unsupported(field: impl Into<String>, what: impl Into<String>) -> SeccompError {
    SeccompError::Unsupported { field: field.into(), what: what.into() }
}

mod cache;
pub use cache::Cache;
#[cfg(test)]
use cache::MAGIC_LEN;

/// Where a [`Filter`]'s program came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// libseccomp compiled it just now.
    Compiled,
    /// Read from a [`Cache`] entry; libseccomp was not asked.
    Cached,
}

/// A compiled filter: a BPF program and the `seccomp(2)` flags to load it
/// with. Plain data, so it crosses `clone` and `fork` as it is.
#[derive(Debug, Clone)]
pub struct Filter {
    program: Vec<sc::SockFilter>,
    flags: sc::FilterFlags,
    unknown: Vec<String>,
    origin: Origin,
}

impl Filter {
    /// Installs the filter in the calling process
    /// (`seccomp(SECCOMP_SET_MODE_FILTER)` with the spec's flags). The
    /// container's init calls this last before `execve`, single-threaded,
    /// after `no_new_privs` when the spec asks for it.
    pub fn load(&self) -> Result<(), SeccompError> {
        sc::seccomp_set_mode_filter(self.flags, &self.program).map_err(SeccompError::Load)
    }

    /// The syscall names of the spec that libseccomp does not know, each
    /// once, in the order they appear; their rules were skipped.
    pub fn unknown_syscalls(&self) -> &[String] {
        &self.unknown
    }

    /// The number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Never true for a compiled filter (libseccomp always emits the
    /// architecture check and the default action).
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    pub fn origin(&self) -> Origin {
        self.origin
    }
}

/// Compiles `linux.seccomp` into a filter (see the module doc for the
/// rules), without a cache. Nothing is installed until [`Filter::load`].
pub fn compile(spec: &spec::Seccomp) -> Result<Filter, SeccompError> {
    let (ctx, unknown) = build(spec)?;
    let program = ctx.export_bpf().map_err(|source| SeccompError::Libseccomp {
        field: "linux.seccomp".into(),
        step: "seccomp_export_bpf",
        source,
    })?;
    Ok(Filter { program, flags: filter_flags(spec), unknown, origin: Origin::Compiled })
}

/// The filter in libseccomp's pseudo filter code, for debug logs.
pub fn pseudo_code(spec: &spec::Seccomp) -> Result<String, SeccompError> {
    let (ctx, _) = build(spec)?;
    ctx.export_pfc().map_err(|source| SeccompError::Libseccomp {
        field: "linux.seccomp".into(),
        step: "seccomp_export_pfc",
        source,
    })
}

/// The `seccomp(2)` flags of `linux.seccomp.flags` (whether this host has
/// them was checked by [`build`] when the program was compiled).
fn filter_flags(spec: &spec::Seccomp) -> sc::FilterFlags {
    let mut flags = sc::FilterFlags::empty();
    for f in &spec.flags {
        flags |= match f {
            SeccompFlag::Tsync => sc::FilterFlags::TSYNC,
            SeccompFlag::Log => sc::FilterFlags::LOG,
            SeccompFlag::SpecAllow => sc::FilterFlags::SPEC_ALLOW,
            SeccompFlag::WaitKillableRecv => sc::FilterFlags::WAIT_KILLABLE_RECV,
        };
    }
    flags
}

/// The libseccomp filter for `linux.seccomp`, and the names it skipped.
fn build(spec: &spec::Seccomp) -> Result<(sc::Filter, Vec<String>), SeccompError> {
    if !spec.listener_path.is_empty() {
        return Err(unsupported("linux.seccomp.listenerPath", "not supported"));
    }
    if !spec.listener_metadata.is_empty() {
        return Err(unsupported("linux.seccomp.listenerMetadata", "not supported"));
    }
    let api = sc::api_get();
    let default = action(spec.default_action, spec.default_errno_ret, api, "linux.seccomp.defaultAction")?;
    let mut filter = sc::Filter::init(default).map_err(|source| SeccompError::Libseccomp {
        field: "linux.seccomp.defaultAction".into(),
        step: "seccomp_init",
        source,
    })?;
    for (i, arch) in spec.architectures.iter().enumerate() {
        let field = format!("linux.seccomp.architectures[{i}]");
        match filter.arch_add(arch.as_str()) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(crate::sys::Errno::INVAL.raw_os_error()) => {
                return Err(unsupported(field, format!("{arch} not supported by libseccomp {}", library_version())));
            }
            Err(source) => return Err(SeccompError::Libseccomp { field, step: "seccomp_arch_add", source }),
        }
    }
    for (i, flag) in spec.flags.iter().enumerate() {
        let field = format!("linux.seccomp.flags[{i}]");
        let (attr, level) = flag_attr(*flag);
        if api < level {
            return Err(unsupported(field, format!("{flag} needs libseccomp API level {level}, this host has {api}")));
        }
        if let Err(e) = filter.attr_set(attr, true) {
            return Err(unsupported(field, format!("{flag} not supported by libseccomp {}: {e}", library_version())));
        }
    }
    let mut unknown: Vec<String> = Vec::new();
    for (i, rule) in spec.syscalls.iter().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(rule.action, rule.errno_ret, api, &format!("{field}.action"))?;
        if act == default {
            continue;
        }
        let conditions = rule
            .args
            .iter()
            .enumerate()
            .map(|(j, arg)| condition(arg, &format!("{field}.args[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let groups = condition_groups(&conditions);
        for name in &rule.names {
            let Some(nr) = sc::syscall_resolve_name(name) else {
                if !unknown.contains(name) {
                    unknown.push(name.clone());
                }
                continue;
            };
            for group in &groups {
                filter.rule_add(act, nr, group).map_err(|source| SeccompError::Libseccomp {
                    field: format!("{field} ({name})"),
                    step: "seccomp_rule_add",
                    source,
                })?;
            }
        }
    }
    Ok((filter, unknown))
}

/// The libseccomp action for a spec action, refusing `NOTIFY` and what the
/// running library cannot do. `field` is where the action was written.
fn action(act: SeccompAction, errno_ret: Option<u32>, api: u32, field: &str) -> Result<sc::Action, SeccompError> {
    let errno = || -> Result<u16, SeccompError> {
        match errno_ret {
            None => Ok(u16::try_from(crate::sys::Errno::PERM.raw_os_error()).unwrap_or(1)),
            Some(n) => u16::try_from(n).map_err(|_| {
                let errno_field = match field.strip_suffix(".defaultAction") {
                    Some(base) => format!("{base}.defaultErrnoRet"),
                    None => format!("{}.errnoRet", field.strip_suffix(".action").unwrap_or(field)),
                };
                unsupported(errno_field, format!("{n} is out of range (0 to 65535)"))
            }),
        }
    };
    let mapped = match act {
        SeccompAction::Kill | SeccompAction::KillThread => sc::Action::KillThread,
        SeccompAction::KillProcess => sc::Action::KillProcess,
        SeccompAction::Trap => sc::Action::Trap,
        SeccompAction::Errno => sc::Action::Errno(errno()?),
        SeccompAction::Trace => sc::Action::Trace(errno()?),
        SeccompAction::Allow => sc::Action::Allow,
        SeccompAction::Log => sc::Action::Log,
        SeccompAction::Notify => return Err(unsupported(field, format!("{act} not supported"))),
    };
    if api < mapped.api_level() {
        return Err(unsupported(
            field,
            format!("{act} needs libseccomp API level {}, this host has {api}", mapped.api_level()),
        ));
    }
    Ok(mapped)
}

fn condition(arg: &spec::SeccompArg, field: &str) -> Result<sc::ArgCmp, SeccompError> {
    if arg.index > 5 {
        return Err(unsupported(format!("{field}.index"), format!("{} is out of range (0 to 5)", arg.index)));
    }
    let (cmp, value) = match arg.op {
        SeccompOp::NotEqual => (sc::Cmp::Ne, arg.value),
        SeccompOp::LessThan => (sc::Cmp::Lt, arg.value),
        SeccompOp::LessEqual => (sc::Cmp::Le, arg.value),
        SeccompOp::EqualTo => (sc::Cmp::Eq, arg.value),
        SeccompOp::GreaterEqual => (sc::Cmp::Ge, arg.value),
        SeccompOp::GreaterThan => (sc::Cmp::Gt, arg.value),
        // `value` is the mask, `valueTwo` what the masked argument must
        // equal (runc passes them to libseccomp in that order).
        SeccompOp::MaskedEqual => (sc::Cmp::MaskedEq { mask: arg.value }, arg.value_two),
    };
    Ok(sc::ArgCmp { index: arg.index, cmp, value })
}

/// The rules one spec rule becomes: one with every condition, or, when an
/// argument is compared more than once, one per condition (runc).
fn condition_groups(conditions: &[sc::ArgCmp]) -> Vec<Vec<sc::ArgCmp>> {
    let repeated = conditions.iter().enumerate().any(|(i, c)| conditions[..i].iter().any(|d| d.index == c.index));
    if repeated {
        conditions.iter().map(|c| vec![*c]).collect()
    } else {
        vec![conditions.to_vec()]
    }
}

/// The libseccomp attribute for a filter flag, and the API level it needs.
fn flag_attr(flag: SeccompFlag) -> (sc::Attr, u32) {
    match flag {
        SeccompFlag::Tsync => (sc::Attr::CtlTsync, 2),
        SeccompFlag::Log => (sc::Attr::CtlLog, 3),
        SeccompFlag::SpecAllow => (sc::Attr::CtlSsb, 4),
        SeccompFlag::WaitKillableRecv => (sc::Attr::CtlWaitkill, 7),
    }
}

fn library_version() -> String {
    match sc::version() {
        Ok((major, minor, micro)) => format!("{major}.{minor}.{micro}"),
        Err(_) => "(unknown version)".into(),
    }
}

/// What `linux.seccomp` can hold on this host, for `features`: the
/// actions (all but `SCMP_ACT_NOTIFY`, as far as the API level allows),
/// the seven operators, the architectures the running libseccomp knows,
/// every flag as known, and as supported those the library accepts.
pub fn features() -> spec::FeaturesSeccomp {
    let api = sc::api_get();
    let mut actions: Vec<String> = SeccompAction::ALL
        .iter()
        .filter(|a| action(**a, None, api, "").is_ok())
        .map(|a| a.as_str().to_owned())
        .collect();
    actions.sort();
    let mut operators: Vec<String> = SeccompOp::ALL.iter().map(|o| o.as_str().to_owned()).collect();
    operators.sort();
    let probe = sc::Filter::init(sc::Action::Allow).ok();
    let mut archs: Vec<String> = match probe {
        Some(mut probe) => spec::Arch::ALL
            .iter()
            .filter(|a| probe.arch_add(a.as_str()).is_ok())
            .map(|a| a.as_str().to_owned())
            .collect(),
        None => Vec::new(),
    };
    archs.sort();
    let known_flags: Vec<String> = SeccompFlag::ALL.iter().map(|f| f.as_str().to_owned()).collect();
    let supported_flags: Vec<String> = match sc::Filter::init(sc::Action::Allow) {
        Ok(mut probe) => SeccompFlag::ALL
            .iter()
            .filter(|f| {
                let (attr, level) = flag_attr(**f);
                api >= level && probe.attr_set(attr, true).is_ok()
            })
            .map(|f| f.as_str().to_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    spec::FeaturesSeccomp {
        enabled: Some(api > 0),
        actions: Some(actions),
        operators: Some(operators),
        archs: Some(archs),
        known_flags: Some(known_flags),
        supported_flags: Some(supported_flags),
    }
}

#[cfg(test)]
mod tests;
