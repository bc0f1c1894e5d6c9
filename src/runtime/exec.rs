//! `exec`: a new process inside a created or running container — its
//! cgroups, its namespaces, and the container's seccomp filter — with an
//! OCI `process` of its own (runc's `exec --process` or flags).
//!
//! The caller joins the container's PID namespace for its children only
//! (`setns` of a PID namespace), then forks the process, which joins the
//! cgroups and the other namespaces, applies the process and `execve`s.
//! Both joins go through the init's pidfd, verified against the recorded
//! start time, never through `/proc/<pid>/ns` of a pid that may have been
//! recycled. Failures before `execve` come back through a
//! close-on-exec pipe; end of file means it ran.

use super::container::Container;
use super::spec::{NamespaceType, Process, Status};
use super::{process, seccomp, ExecError, StartError};
use crate::sys::pipe::{pipe_with, PipeFlags};
use crate::sys::process::{fork_child_keeping_below, setns_pidfd, single_threaded, ThreadNameSpaceType};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// How to run the process.
#[derive(Debug, Default)]
pub struct ExecOptions {
    pub process: Process,
    /// Return once it runs (its pid in `pid_file`) instead of waiting.
    pub detach: bool,
    pub pid_file: Option<std::path::PathBuf>,
    pub console: super::create::Console,
    pub preserve_fds: u32,
    /// The process's stdin, stdout and stderr; `None` keeps the caller's.
    /// Ignored with a console (the pty is its stdio).
    pub stdio: Option<[OwnedFd; 3]>,
    /// strata's own: a user name resolved in the container, Docker's way.
    pub user_name: Option<String>,
}

/// What `exec` ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executed {
    /// Detached: the process's host pid.
    Running(i32),
    /// Waited for: its exit code.
    Exited(i32),
}

/// The namespace types `exec` joins when the container has them, with
/// their `setns` flag. They are joined in one `setns(pidfd, flags)`: the
/// kernel orders them itself (user first), and no `/proc/<pid>/ns` path is
/// walked that a recycled pid could point elsewhere.
const JOINED: &[(NamespaceType, ThreadNameSpaceType)] = &[
    (NamespaceType::User, ThreadNameSpaceType::USER),
    (NamespaceType::Ipc, ThreadNameSpaceType::INTER_PROCESS_COMMUNICATION),
    (NamespaceType::Uts, ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME),
    (NamespaceType::Network, ThreadNameSpaceType::NETWORK),
    (NamespaceType::Cgroup, ThreadNameSpaceType::CONTROL_GROUP),
    (NamespaceType::Mount, ThreadNameSpaceType::MOUNT),
];

/// Runs `opts.process` in `c`. The caller must be single-threaded.
pub fn exec(c: &Container, mut opts: ExecOptions) -> Result<Executed, ExecError> {
    match c.status() {
        Status::Created | Status::Running => {}
        Status::Paused => {
            return Err(ExecError::State { id: c.id().into(), message: "cannot exec in a paused container".into() })
        }
        _ => return Err(ExecError::NotRunning(c.id().to_owned())),
    }
    let spec = &c.record.config;
    let linux = spec.linux.clone().unwrap_or_default();
    // The init by a verified pidfd (see `Container::init_pidfd`).
    let init = c
        .init_pidfd()
        .map_err(|e| ExecError::io("open the init's pidfd", &c.dir, e))?
        .ok_or_else(|| ExecError::NotRunning(c.id().to_owned()))?;
    // Only the namespaces the container has of its own (a shared host
    // namespace is ours already).
    let namespaces = JOINED
        .iter()
        .filter(|(kind, _)| linux.namespace(*kind).is_some())
        .fold(ThreadNameSpaceType::empty(), |all, (_, flag)| all | *flag);
    // Joining a pid namespace applies to our next child only, and until we
    // leave it again the kernel refuses us new threads: keep our own to go
    // back to once the child exists.
    let own_pid_ns = if linux.namespace(NamespaceType::Pid).is_some() {
        let ours = std::path::Path::new("/proc/self/ns/pid");
        Some(ReturnTo(std::fs::File::open(ours).map_err(|e| ExecError::io("open", ours, e))?))
    } else {
        None
    };
    if linux.namespace(NamespaceType::Pid).is_some() {
        setns_pidfd(init.as_fd(), ThreadNameSpaceType::PROCESS_ID).map_err(|e| match e.raw_os_error() {
            Some(3) => ExecError::NotRunning(c.id().to_owned()),
            _ => ExecError::io("join the pid namespace", &c.dir, e),
        })?;
    }
    let filter = match &linux.seccomp {
        // The program create left in the state directory.
        Some(s) => Some(seccomp::Cache::new(&c.dir).compile(s).map_err(StartError::from_error)?),
        None => None,
    };
    let console = match std::mem::take(&mut opts.console) {
        super::create::Console::None => None,
        super::create::Console::Path(p) => {
            Some(super::console::connect(&p).map_err(|e| ExecError::io("connect to the console socket", &p, e))?)
        }
        super::create::Console::Socket(fd) => Some(fd),
    };
    if opts.process.terminal && console.is_none() {
        return Err(ExecError::Usage("process.terminal needs --console-socket".into()));
    }
    // Above 2 (`F_DUPFD_CLOEXEC` from 3), so the child's `dup2`s onto
    // 0..=2 never meet a source that is itself a target.
    let up = |f: OwnedFd| f.try_clone().map_err(|e| ExecError::io("duplicate a stdio descriptor", &c.dir, e));
    let stdio = match opts.stdio.take() {
        Some([i, o, e]) => Some([up(i)?, up(o)?, up(e)?]),
        None => None,
    };
    let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| ExecError::io("pipe", &c.dir, e))?;
    let cgroups = c.cgroups();
    let mut keep: Vec<BorrowedFd<'_>> = vec![init.as_fd()];
    keep.extend(console.iter().map(|f| f.as_fd()));
    keep.extend(stdio.iter().flatten().map(|f| f.as_fd()));
    // Keep 3 .. 3+N: fork_child's keep list takes descriptors; the
    // preserved numbers are kept by closing only above them.
    let preserve = opts.preserve_fds;
    let proof = single_threaded().map_err(|e| ExecError::io("exec", &c.dir, e))?;
    let child = fork_child_keeping_below(&proof, 3 + preserve, &keep, Some(err_w), |w| {
        let _ = crate::sys::prctl::set_dumpable(false);
        let e = match enter(
            &cgroups,
            (init.as_fd(), namespaces),
            stdio.as_ref(),
            console.as_ref(),
            filter.as_ref(),
            &opts,
            preserve,
        ) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        if let Some(w) = w {
            let mut w = std::fs::File::from(w);
            let _ = write!(w, "{}\t{}", e.code, e.message);
        }
        e.code
    });
    drop(own_pid_ns);
    let child = child.map_err(|e| ExecError::io("fork", &c.dir, e))?;
    drop((console, stdio));
    let mut msg = String::new();
    std::fs::File::from(err_r).read_to_string(&mut msg).map_err(|e| ExecError::io("read exec status", &c.dir, e))?;
    if !msg.is_empty() {
        let _ = super::wait(child);
        let (code, message) = msg.split_once('\t').unwrap_or(("125", &msg));
        return Err(StartError::new(code.parse().unwrap_or(125), message.to_owned()).into());
    }
    if let Some(p) = &opts.pid_file {
        super::create::write_pid_file(p, child)?;
    }
    if opts.detach {
        return Ok(Executed::Running(child));
    }
    let code = super::wait(child).map_err(|e| ExecError::io("wait", &c.dir, e))?;
    Ok(Executed::Exited(code))
}

/// Our own pid namespace, rejoined when dropped (on every path out of
/// `exec`, errors included); entering one's active namespace is always
/// allowed (setns(2)).
struct ReturnTo(std::fs::File);

impl Drop for ReturnTo {
    fn drop(&mut self) {
        let _ = crate::sys::process::setns(&self.0);
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> StartError {
    move |e| StartError::caused(format!("{what}: {e}"), e)
}

fn enter(
    cgroups: &super::cgroups::Manager,
    (init, namespaces): (BorrowedFd<'_>, ThreadNameSpaceType),
    stdio: Option<&[OwnedFd; 3]>,
    console: Option<&OwnedFd>,
    filter: Option<&seccomp::Filter>,
    opts: &ExecOptions,
    preserve: u32,
) -> Result<super::Never, StartError> {
    let p = &opts.process;
    // First, so the caller's stdio is gone before anything of the
    // container is joined.
    if let Some([i, o, e]) = stdio {
        crate::sys::stdio::dup2_stdin(i).map_err(io("dup2 stdin"))?;
        crate::sys::stdio::dup2_stdout(o).map_err(io("dup2 stdout"))?;
        crate::sys::stdio::dup2_stderr(e).map_err(io("dup2 stderr"))?;
    }
    super::reset_signals();
    // The cgroups by their host paths, before the mount namespace changes.
    cgroups.join_self().map_err(StartError::from_error)?;
    if !namespaces.is_empty() {
        setns_pidfd(init, namespaces).map_err(|e| StartError::caused(format!("join the namespaces: {e}"), e))?;
    }
    if namespaces.contains(ThreadNameSpaceType::USER) {
        crate::sys::prctl::setresuid(0).map_err(io("setresuid(0) in the user namespace"))?;
        crate::sys::prctl::setresgid(0).map_err(io("setresgid(0) in the user namespace"))?;
    }
    crate::sys::process::setsid().map_err(io("setsid"))?;
    if let Some(sock) = console {
        let (master, slave) =
            super::console::new_pty_in_container(p.console_size.as_ref()).map_err(io("open a pty in the container"))?;
        crate::sys::stdio::dup2_stdin(&slave).map_err(io("dup2 the pty"))?;
        crate::sys::stdio::dup2_stdout(&slave).map_err(io("dup2 the pty"))?;
        crate::sys::stdio::dup2_stderr(&slave).map_err(io("dup2 the pty"))?;
        crate::sys::term::ioctl_tiocsctty(&slave).map_err(io("set the controlling terminal"))?;
        super::console::send_master(sock.as_fd(), master).map_err(io("send the pty to the console socket"))?;
    }
    let (user, env) = match &opts.user_name {
        None => {
            let mut env = p.env.clone();
            if !env.iter().any(|e| e.starts_with("HOME=")) {
                let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
                env.push(format!("HOME={}", super::init::home_of(&passwd, p.user.uid)));
            }
            (p.user.clone(), env)
        }
        Some(name) => {
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
            let u = super::security::resolve_user(name, &passwd, &group).map_err(|m| StartError::new(125, m))?;
            let mut env = p.env.clone();
            if !env.iter().any(|e| e.starts_with("HOME=")) {
                env.push(format!("HOME={}", u.home));
            }
            let user = super::spec::User {
                uid: u.uid,
                gid: u.gid,
                umask: p.user.umask,
                additional_gids: u.groups,
                username: String::new(),
            };
            (user, env)
        }
    };
    let caps = process::CapSets::from_spec(p.capabilities.as_ref())?;
    process::apply_rlimits(&p.rlimits)?;
    if let Some(adj) = p.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(io("process.oomScoreAdj"))?;
    }
    if !p.no_new_privileges {
        if let Some(f) = filter {
            f.load().map_err(StartError::from_error)?;
        }
    }
    caps.apply_bounding()?;
    process::become_user(&user)?;
    caps.apply_rest()?;
    let cwd = if p.cwd.is_empty() { "/" } else { p.cwd.as_str() };
    std::env::set_current_dir(cwd).map_err(|e| StartError::new(126, format!("chdir {cwd}: {e}")))?;
    if p.no_new_privileges {
        crate::sys::process::set_no_new_privs().map_err(io("no_new_privs"))?;
        if let Some(f) = filter {
            f.load().map_err(StartError::from_error)?;
        }
    }
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(super::DEFAULT_PATH).to_owned();
    let exe = super::find_executable(p.args.first().map(String::as_str).unwrap_or(""), &path)?;
    let argv = process::cstrings("process.args", &p.args)?;
    let envp = process::cstrings("process.env", &env)?;
    crate::sys::process::close_range_cloexec(3 + preserve).map_err(io("close descriptors"))?;
    Err(super::exec_error(&p.args[0], crate::sys::process::execve(&exe, &argv, &envp)))
}
