//! `linux.seccomp`: the OCI syscall filter compiled with libseccomp
//! ([`compile`]) and loaded by the container's init ([`Filter::load`]), and
//! what this build and host can do with it ([`features`]).
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

/// A compiled filter, ready to be loaded.
#[derive(Debug)]
pub struct Filter {
    inner: sc::Filter,
    unknown: Vec<String>,
}

impl Filter {
    /// Installs the filter in the calling process (`seccomp_load`). The
    /// container's init calls this last before `execve`, single-threaded,
    /// after `no_new_privs` when the spec asks for it.
    pub fn load(&self) -> Result<(), SeccompError> {
        self.inner.load().map_err(SeccompError::Load)
    }

    /// The syscall names of the spec that libseccomp does not know, each
    /// once, in the order they appear; their rules were skipped.
    pub fn unknown_syscalls(&self) -> &[String] {
        &self.unknown
    }

    /// The filter in libseccomp's pseudo filter code, for debug logs.
    pub fn pseudo_code(&self) -> io::Result<String> {
        self.inner.export_pfc()
    }
}

/// Compiles `linux.seccomp` into a filter (see the module doc for the
/// rules). Nothing is installed until [`Filter::load`].
pub fn compile(spec: &spec::Seccomp) -> Result<Filter, SeccompError> {
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
    Ok(Filter { inner: filter, unknown })
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
mod tests {
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
            let spec =
                seccomp(SeccompAction::Allow, vec![rule(&["getppid"], SeccompAction::KillProcess, None, vec![])]);
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
        let pfc = filter.pseudo_code().unwrap();
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
        assert_eq!(
            compile(&spec).unwrap_err().to_string(),
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY not supported"
        );
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
        let pfc = compile(&spec).unwrap().pseudo_code().unwrap();
        assert!(!pfc.contains("getppid"), "{pfc}");
        // A different errno is a different action.
        let spec = seccomp(SeccompAction::Errno, vec![rule(&["getppid"], SeccompAction::Errno, Some(2), vec![])]);
        let pfc = compile(&spec).unwrap().pseudo_code().unwrap();
        assert!(pfc.contains("getppid"), "{pfc}");
    }

    #[test]
    fn architectures_and_flags() {
        let mut spec = seccomp(SeccompAction::Allow, vec![rule(&["getppid"], SeccompAction::Errno, None, vec![])]);
        spec.architectures = vec![Arch::X86_64, Arch::X86, Arch::X32];
        spec.flags = vec![SeccompFlag::Tsync, SeccompFlag::Log, SeccompFlag::SpecAllow];
        let pfc = compile(&spec).unwrap().pseudo_code().unwrap();
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
}
