//! `strata exec`: a new process inside a running container's namespaces
//! and cgroups, with the container's capability restrictions.

use super::{cgroups::Cgroups, security, StartError};
use crate::sys::process::{fork_child, fork_child_checked, setns, single_threaded};
use std::ffi::CString;
use std::os::fd::AsFd;

/// What to run in the container.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// Host PID of the container's PID 1.
    pub pid: i32,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub cgroups: Cgroups,
}

/// Namespaces joined, in order; the mount namespace last, since joining it
/// changes the root that `/proc` paths resolve against.
const NAMESPACES: &[&str] = &["cgroup", "ipc", "uts", "net", "pid", "mnt"];

/// Runs the command and returns its exit code.
pub fn exec(spec: &ExecSpec) -> Result<i32, StartError> {
    let mut fds = Vec::new();
    for ns in NAMESPACES {
        let path = format!("/proc/{}/ns/{ns}", spec.pid);
        let f = std::fs::File::open(&path)
            .map_err(|e| StartError::caused(format!("container is not running ({path}: {e})"), e))?;
        fds.push((ns, f));
    }
    // The child keeps only stdio and the namespaces it joins.
    let keep: Vec<_> = fds.iter().map(|(_, f)| f.as_fd()).collect();
    let pid = fork_child(&keep, None, |_| match enter(spec, &fds) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strata exec: {}", e.message);
            e.code
        }
    })
    .map_err(|e| StartError::caused(format!("fork: {e}"), e))?;
    super::wait(pid).map_err(|e| StartError::caused(format!("wait: {e}"), e))
}

fn enter(spec: &ExecSpec, fds: &[(&&str, std::fs::File)]) -> Result<i32, StartError> {
    // Checked before joining the mount namespace: /proc/self there is not us.
    let proof = single_threaded().map_err(StartError::from_error)?;
    spec.cgroups.join().map_err(StartError::from_error)?;
    for (ns, f) in fds {
        setns(f).map_err(|e| StartError::caused(format!("join {ns} namespace: {e}"), e))?;
    }
    // A PID namespace applies to children only: fork once more.
    let pid = fork_child_checked(&proof, &[], None, |_| {
        let e = match run(spec) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        eprintln!("strata exec: {}", e.message);
        e.code
    })
    .map_err(|e| StartError::caused(format!("fork: {e}"), e))?;
    super::wait(pid).map_err(|e| StartError::caused(format!("wait: {e}"), e))
}

fn run(spec: &ExecSpec) -> Result<super::Never, StartError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = security::resolve_user(&spec.user, &passwd, &group).map_err(|m| StartError::new(125, m))?;
    security::restrict_capabilities().map_err(|e| StartError::caused(format!("capabilities: {e}"), e))?;
    crate::sys::process::set_no_new_privs().map_err(|e| StartError::caused(format!("no_new_privs: {e}"), e))?;
    security::become_user(&user).map_err(|e| StartError::caused(format!("set user: {e}"), e))?;
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    std::env::set_current_dir(cwd).map_err(|e| StartError::new(126, format!("chdir {cwd}: {e}")))?;
    let path = spec.env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(super::DEFAULT_PATH).to_owned();
    let exe = super::find_executable(spec.args.first().map(String::as_str).unwrap_or(""), &path)?;
    let argv: Vec<CString> = super::cstrings(&spec.args)?;
    let envp: Vec<CString> = super::cstrings(&spec.env)?;
    Err(super::exec_error(&spec.args[0], crate::sys::process::execve(&exe, &argv, &envp)))
}
