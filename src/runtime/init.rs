//! strata's init (`--init`): PID 1 that starts the command as its child,
//! forwards every catchable signal to it, reaps every zombie (orphans
//! re-parent to PID 1 inside a PID namespace), and exits with the
//! command's status — the job tini does for Docker.

use super::StartError;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::CString;

pub(super) fn run_as_init(exe: &CString, argv: &[CString], envp: &[CString]) -> Result<super::Never, StartError> {
    let all = SigSet::all();
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), Some(&mut old))
        .map_err(|e| StartError::caused(format!("init: block signals: {e}"), e))?;
    let child = match crate::sys::process::fork().map_err(|e| StartError::caused(format!("init: fork: {e}"), e))? {
        crate::sys::process::Forked::Child => {
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            let e = nix::unistd::execve(exe, argv, envp).unwrap_err();
            let cmd = argv.first().map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
            let err = super::exec_error(&cmd, e);
            eprintln!("strata init: {}", err.message);
            crate::sys::process::exit_immediately(err.code);
        }
        crate::sys::process::Forked::Parent(pid) => Pid::from_raw(pid),
    };
    // From here on this process is only the init: errors end it with the
    // child's status or 125.
    loop {
        let sig = all.wait().unwrap_or(Signal::SIGCHLD);
        if sig == Signal::SIGCHLD {
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(status) => {
                        if status.pid() == Some(child) {
                            let code = super::exit_code(status).unwrap_or(125);
                            crate::sys::process::exit_immediately(code);
                        }
                    }
                }
            }
        } else {
            let _ = kill(child, sig);
        }
    }
}
