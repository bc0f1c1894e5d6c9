//! The executor: the OCI runtime spec carried out on the kernel, for
//! `strata-runc` (runc's command line, for containerd, Docker and
//! podman) and for strata's own `run`, `create`, `start`, `exec` and
//! build `RUN` steps alike — one run path.
//!
//! ```text
//! spec::Spec ──► create ──► clone(NEWPID[|NEWUSER]) = the container's init (init.rs)
//!                  │          cgroups (cgroups/), id maps, hooks ◄─► sync pipes
//!                  │          rootfs/: mounts, devices, pivot_root, masks
//!                  │          console, hostname, sysctl, keyring, rlimits,
//!                  │          capabilities, user, seccomp, then waits on exec.fifo
//!                  ▼
//!   <state root>/<id>/state.json  (container.rs: the status is read off the kernel)
//! start ── reads exec.fifo ──► the init runs startContainer hooks, execve
//! kill / pause / resume / delete (lifecycle.rs), exec (exec.rs)
//! ```
//!
//! A failure before `execve` carries the exit code Docker uses: 125 for
//! the runtime's own failures, 126 for a command that cannot be executed,
//! 127 for one that does not exist ([`StartError`]); everything else is an
//! [`ExecError`] naming what and where, in runc's words where callers
//! match them.
//!
//! Beside the spec, strata's own containers hand the executor what the
//! spec cannot say ([`CreateOptions`]): the storage driver's mounts,
//! mounted inside the container's mount namespace only; a user name
//! resolved inside the image; `--init`.
//!
//! **Architecture invariant:** the runtime consumes mounts as data and
//! never knows which storage driver produced them. No descriptor of the
//! caller's crosses into the container but stdio and `--preserve-fds`,
//! and the runtime's own binary is never writable from inside one.

pub mod cgroups;
pub mod console;
pub mod container;
pub mod create;
pub mod exec;
mod features;
pub mod hooks;
mod init;
pub mod lifecycle;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod spec;
mod tini;
pub mod tty;

pub use container::{Container, DEFAULT_STATE_ROOT};
pub use create::{create, Console, CreateOptions};
pub use exec::{exec, ExecOptions, Executed};
pub use features::{features, MOUNT_OPTIONS};
pub use lifecycle::{delete, kill, pause, resume, start};

/// A failure of the executor, in words runc uses where its callers match
/// them: containerd treats "does not exist" and "container not running"
/// (and "no such process") as not-found.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.'")]
    InvalidId(String),
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container with id exists: {0}")]
    Exists(String),
    #[error("container \"{0}\": container not running")]
    NotRunning(String),
    #[error("container \"{id}\": {message}")]
    State { id: String, message: String },
    #[error("{}: {message}", path.display())]
    Corrupt { path: std::path::PathBuf, message: String },
    #[error("{what} {}: {source}", path.display())]
    Io { what: String, path: std::path::PathBuf, source: io::Error },
    #[error(transparent)]
    Load(#[from] spec::LoadError),
    #[error("config.json: {0}")]
    Invalid(#[from] spec::Invalid),
    #[error("{0}: not supported by strata-runc")]
    Unsupported(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Start(#[from] StartError),
}

impl ExecError {
    pub fn io(what: &str, path: &std::path::Path, source: io::Error) -> ExecError {
        ExecError::Io { what: what.to_owned(), path: path.to_owned(), source }
    }

    /// The exit status a command line gives this error: the process's
    /// own code for a start failure (125/126/127), else 1 (runc's).
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::Start(e) => e.code,
            _ => 1,
        }
    }
}

use crate::sys::process::{waitpid, WaitOptions, WaitStatus};
use crate::sys::signal::{sigaction_default, sigprocmask, SigSet, SigmaskHow, Signal};
use crate::sys::Errno;
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;

/// Default PATH when the image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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

pub(crate) enum Never {}

/// Gives the container clean signal state: the supervisor blocks the
/// signals it forwards, and Rust ignores SIGPIPE; both would otherwise be
/// inherited across `execve`.
pub(crate) fn reset_signals() {
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            let _ = sigaction_default(sig);
        }
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()));
}

/// Maps an `execve` failure to Docker's exit codes.
pub(crate) fn exec_error(cmd: &str, e: Errno) -> StartError {
    match e {
        Errno::NOENT => StartError::new(127, format!("exec: {cmd:?}: no such file or directory")),
        Errno::ACCESS | Errno::NOEXEC | Errno::PERM => {
            StartError::new(126, format!("exec: {cmd:?}: permission denied"))
        }
        other => StartError::new(126, format!("exec {cmd:?}: {other}")),
    }
}

/// `PATH` lookup as the shell does it, inside the container's root.
pub(crate) fn find_executable(cmd: &str, path: &str) -> Result<CString, StartError> {
    if cmd.is_empty() {
        return Err(StartError::new(125, "no command specified"));
    }
    let to_c = |s: &str| CString::new(s).map_err(|_| StartError::new(125, "command contains NUL"));
    if cmd.contains('/') {
        // Checked now, so that `create` fails (runc's behaviour) rather
        // than the process after `start`.
        let c = to_c(cmd)?;
        return match crate::sys::fs::access(c.as_c_str(), crate::sys::fs::Access::EXEC_OK) {
            Ok(()) => Ok(c),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => {
                Err(StartError::new(127, format!("exec: {cmd:?}: no such file or directory")))
            }
            Err(_) => Err(StartError::new(126, format!("exec: {cmd:?}: permission denied"))),
        };
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

/// Waits for our child `pid` while forwarding the signals a foreground
/// runtime passes on (runc `run`'s signal proxy); returns its exit code.
/// Starts one thread: call it last.
pub fn wait_forwarding_signals(pid: i32) -> io::Result<i32> {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(sig);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set))?;
    std::thread::spawn(move || loop {
        match crate::sys::signal::sigwait(&set) {
            Ok(sig) => {
                let _ = crate::sys::signal::kill(pid, sig);
            }
            Err(_) => return,
        }
    });
    wait(pid)
}
