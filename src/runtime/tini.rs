//! strata's init (`--init`): PID 1 that starts the command as its child,
//! forwards every catchable signal to it, reaps every zombie (orphans
//! re-parent to PID 1 inside a PID namespace), and exits with the
//! command's status — the job tini does for Docker.

use super::StartError;
use crate::sys::process::{execve, exit_immediately, fork, waitpid, Forked, WaitOptions};
use crate::sys::signal::{kill, sigprocmask, sigwait, SigSet, SigmaskHow, Signal};
use std::ffi::CString;

pub(super) fn run_as_init(exe: &CString, argv: &[CString], envp: &[CString]) -> Result<super::Never, StartError> {
    let all = SigSet::all();
    let old = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all))
        .map_err(|e| StartError::caused(format!("init: block signals: {e}"), e))?;
    let child = match fork().map_err(|e| StartError::caused(format!("init: fork: {e}"), e))? {
        Forked::Child => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old));
            let e = execve(exe, argv, envp);
            let cmd = argv.first().map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
            let err = super::exec_error(&cmd, e);
            eprintln!("strata init: {}", err.message);
            exit_immediately(err.code);
        }
        Forked::Parent(pid) => pid,
    };
    // From here on this process is only the init: errors end it with the
    // child's status or 125.
    loop {
        let sig = sigwait(&all).unwrap_or(Signal::SIGCHLD);
        if sig == Signal::SIGCHLD {
            loop {
                match waitpid(None, WaitOptions::NOHANG) {
                    Ok(None) | Err(_) => break,
                    Ok(Some((pid, status))) => {
                        if pid == child {
                            let code = super::exit_code(status).unwrap_or(125);
                            exit_immediately(code);
                        }
                    }
                }
            }
        } else {
            let _ = kill(child, sig);
        }
    }
}
