//! The run path: from a root filesystem (as mounts) and a command to a
//! process running in its own namespaces.
//!
//! ```text
//! supervisor ── clone(NEWPID) ──► child = PID 1 of the new PID ns
//!                                            setsid, stdio (pty or pipes)
//!                                            join cgroups
//!                                            unshare(NEWNS|NEWUTS|NEWIPC|NEWCGROUP[|NEWNET])
//!                                            loopback up (own network ns)
//!                                            rootfs::enter: driver mounts, /proc, /sys,
//!                                              /dev, /etc files, volumes, masks, pivot_root
//!                                            hostname, user lookup, workdir, rlimits
//!                                            capabilities, no_new_privs, setuid
//!                                            execve(command)   (or strata's init, --init)
//! ```
//!
//! The child reports a failure before `execve` through a close-on-exec
//! pipe as `<exit code>\t<message>` (125 for strata's own failures, 126
//! for a command that cannot be executed, 127 for one that does not
//! exist); end-of-file on the pipe means `execve` succeeded.
//!
//! **Architecture invariant:** the runtime consumes mounts as data and
//! never knows which storage driver produced them.

pub mod cgroups;
pub mod console;
pub mod exec;
pub mod hooks;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod spec;
mod tini;

use crate::sys::pipe::{pipe_with, PipeFlags};
use crate::sys::process::{exit_immediately, unshare_namespaces, waitpid, UnshareFlags, WaitOptions, WaitStatus};
use crate::sys::signal::{sigaction_default, sigprocmask, SigSet, SigmaskHow, Signal};
use crate::sys::Errno;
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

/// Default PATH when the image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything needed to start a container process.
#[derive(Debug)]
pub struct RunSpec {
    pub rootfs: rootfs::RootfsSpec,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub hostname: String,
    /// Own network namespace with only loopback (`--network none`); else
    /// the host's.
    pub own_network: bool,
    /// strata's init as PID 1 (reaps zombies, forwards signals).
    pub init: bool,
    pub cgroups: cgroups::Cgroups,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// stdin/stdout/stderr are a pty slave that becomes the controlling
    /// terminal.
    pub tty: bool,
}

/// A failure to start, with the exit code Docker would use. `message` is
/// what the user reads, and all that crosses the start pipe from the
/// child; `source` keeps the error it came from when that happened in
/// this process.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    pub code: i32,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StartError {
    /// A failure with no error value behind it (or one reported as text
    /// by another process).
    pub fn new(code: i32, message: impl Into<String>) -> StartError {
        StartError { code, message: message.into(), source: None }
    }

    /// strata's own failure (exit code 125) caused by `source`, with
    /// `message` as the text.
    pub fn caused(message: String, source: impl std::error::Error + Send + Sync + 'static) -> StartError {
        StartError { code: 125, message, source: Some(Box::new(source)) }
    }

    /// strata's own failure (exit code 125) that is `source`: its message
    /// is the source's.
    pub fn from_error(source: impl std::error::Error + Send + Sync + 'static) -> StartError {
        StartError::caused(source.to_string(), source)
    }
}

fn io_start(what: &str) -> impl FnOnce(io::Error) -> StartError + '_ {
    move |e| StartError::caused(format!("{what}: {e}"), e)
}

/// Starts the container; returns the host PID of its PID 1. The caller
/// must be single-threaded at this point (the child runs Rust code before
/// `execve`); it may start threads afterwards.
pub fn spawn(spec: RunSpec) -> Result<i32, StartError> {
    let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC).map_err(io_start("pipe"))?;
    let mut err_w = Some(err_w);
    let pid = crate::sys::process::spawn_in_new_pid_namespace(&mut || {
        let e = child(&spec);
        if let Some(w) = err_w.take() {
            let mut w = std::fs::File::from(w);
            let _ = write!(w, "{}\t{}", e.code, e.message);
        }
        exit_immediately(e.code);
    })
    .map_err(io_start("clone into a new pid namespace"))?;
    drop(err_w);
    drop(spec);
    let mut msg = String::new();
    std::fs::File::from(err_r).read_to_string(&mut msg).map_err(io_start("read start status"))?;
    if msg.is_empty() {
        return Ok(pid);
    }
    let _ = waitpid(Some(pid), WaitOptions::empty());
    let (code, message) = msg.split_once('\t').unwrap_or(("125", &msg));
    Err(StartError::new(code.parse().unwrap_or(125), message.to_owned()))
}

/// The child's side: everything up to `execve`. Returns only on failure.
fn child(spec: &RunSpec) -> StartError {
    match setup_and_exec(spec) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

fn setup_and_exec(spec: &RunSpec) -> Result<Never, StartError> {
    reset_signals();
    crate::sys::process::setsid().map_err(io_start("setsid"))?;
    crate::sys::stdio::dup2_stdin(&spec.stdin).map_err(io_start("dup2 stdio"))?;
    crate::sys::stdio::dup2_stdout(&spec.stdout).map_err(io_start("dup2 stdio"))?;
    crate::sys::stdio::dup2_stderr(&spec.stderr).map_err(io_start("dup2 stdio"))?;
    if spec.tty {
        crate::sys::term::ioctl_tiocsctty(std::io::stdin()).map_err(io_start("set controlling terminal"))?;
    }
    spec.cgroups.join().map_err(StartError::from_error)?;
    let mut flags = UnshareFlags::NEWNS | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC | UnshareFlags::NEWCGROUP;
    if spec.own_network {
        flags |= UnshareFlags::NEWNET;
    }
    unshare_namespaces(flags).map_err(io_start("unshare namespaces"))?;
    if spec.own_network {
        crate::sys::process::interface_up("lo").map_err(io_start("bring up loopback"))?;
    }
    rootfs::enter(&spec.rootfs).map_err(StartError::from_error)?;
    crate::sys::uts::sethostname(spec.hostname.as_bytes()).map_err(io_start("sethostname"))?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = security::resolve_user(&spec.user, &passwd, &group).map_err(|m| StartError::new(125, m))?;
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    if spec.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    std::fs::create_dir_all(cwd).map_err(io_start("create working directory"))?;
    security::restrict_capabilities().map_err(io_start("capabilities"))?;
    crate::sys::process::set_no_new_privs().map_err(io_start("no_new_privs"))?;
    security::become_user(&user).map_err(io_start("set user"))?;
    std::env::set_current_dir(cwd).map_err(io_start("chdir to working directory"))?;
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH).to_owned();
    let exe = find_executable(spec.args.first().map(String::as_str).unwrap_or(""), &path)?;
    let argv = cstrings(&spec.args)?;
    let envp = cstrings(&env)?;
    if spec.init {
        tini::run_as_init(&exe, &argv, &envp)
    } else {
        Err(exec_error(&spec.args[0], crate::sys::process::execve(&exe, &argv, &envp)))
    }
}

/// Gives the container clean signal state: the supervisor blocks the
/// signals it forwards, and Rust ignores SIGPIPE; both would otherwise be
/// inherited across `execve`.
fn reset_signals() {
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            let _ = sigaction_default(sig);
        }
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()));
}

fn cstrings(v: &[String]) -> Result<Vec<CString>, StartError> {
    v.iter()
        .map(|s| CString::new(s.as_str()).map_err(|_| StartError::new(125, format!("argument {s:?} contains NUL"))))
        .collect()
}

/// Maps an `execve` failure to Docker's exit codes.
fn exec_error(cmd: &str, e: Errno) -> StartError {
    match e {
        Errno::NOENT => StartError::new(127, format!("exec: {cmd:?}: no such file or directory")),
        Errno::ACCESS | Errno::NOEXEC | Errno::PERM => {
            StartError::new(126, format!("exec: {cmd:?}: permission denied"))
        }
        other => StartError::new(126, format!("exec {cmd:?}: {other}")),
    }
}

/// `PATH` lookup as the shell does it, inside the container's root.
fn find_executable(cmd: &str, path: &str) -> Result<CString, StartError> {
    if cmd.is_empty() {
        return Err(StartError::new(125, "no command specified"));
    }
    let to_c = |s: &str| CString::new(s).map_err(|_| StartError::new(125, "command contains NUL"));
    if cmd.contains('/') {
        return to_c(cmd);
    }
    let mut denied = false;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = format!("{dir}/{cmd}");
        let c = to_c(&candidate)?;
        match crate::sys::fs::access(c.as_c_str(), crate::sys::fs::Access::EXEC_OK) {
            Ok(()) if !std::path::Path::new(&candidate).is_dir() => return Ok(c),
            Ok(()) => {}
            Err(Errno::ACCESS) => denied = true,
            Err(_) => {}
        }
    }
    if denied {
        Err(StartError::new(126, format!("exec: {cmd:?}: permission denied")))
    } else {
        Err(StartError::new(127, format!("exec: {cmd:?}: executable file not found in $PATH")))
    }
}

/// Exit status as a shell reports it: the code, or 128 + signal.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    status.exit_status().or_else(|| status.terminating_signal().map(|sig| 128 + sig))
}

/// Waits for `pid` to end; returns its exit code.
pub fn wait(pid: i32) -> io::Result<i32> {
    loop {
        match waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = exit_code(status) {
                    return Ok(code);
                }
            }
            Ok(None) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A file descriptor of `/dev/null` (for stdin when not interactive).
pub fn dev_null() -> io::Result<OwnedFd> {
    Ok(std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?.into())
}
