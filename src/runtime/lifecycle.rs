//! What happens to a created container: `start`, `kill`, `pause`,
//! `resume` and `delete`, with the OCI lifecycle's rules on which status
//! allows what, and runc's words for the refusals (containerd matches
//! "container not running", "does not exist" and "no such process").

use super::container::Container;
use super::hooks;
use super::spec::Status;
use super::{ExecError, StartError};
use crate::sys::process::{pidfd_send_signal, waitid_pidfd, WaitIdOptions};
use crate::sys::signal::Signal;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// Lets the init run the process: reads its exec fifo, then runs the
/// poststart hooks.
pub fn start(c: &Container) -> Result<(), ExecError> {
    match c.status() {
        Status::Created => {}
        Status::Stopped => return Err(c.refuse("cannot start a container that has stopped")),
        other => return Err(c.refuse(&format!("cannot start an already {other} container"))),
    }
    let fifo = c.fifo();
    // Opening the read side does not block; the init's blocked open for
    // writing returns and it writes one byte. Poll so that an init that
    // died meanwhile is an error, not a hang.
    let fd = crate::sys::fs::open(
        &fifo,
        crate::sys::fs::OFlags::RDONLY | crate::sys::fs::OFlags::NONBLOCK | crate::sys::fs::OFlags::CLOEXEC,
        crate::sys::fs::Mode::empty(),
    )
    .map_err(|e| ExecError::io("open", &fifo, e))?;
    let mut buf = [0u8; 1];
    loop {
        match crate::sys::fs::read(&fd, &mut buf) {
            Ok(1) => break,
            Ok(_) | Err(crate::sys::Errno::AGAIN) | Err(crate::sys::Errno::INTR) => {
                if !c.init_alive() {
                    let _ = std::fs::remove_file(&fifo);
                    return Err(c.refuse("cannot start a container that has stopped"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(ExecError::io("read", &fifo, e.into())),
        }
    }
    std::fs::remove_file(&fifo).map_err(|e| ExecError::io("remove", &fifo, e))?;
    let hooks_spec = c.record.config.hooks.clone().unwrap_or_default();
    hooks::run(hooks::Stage::Poststart, &hooks_spec.poststart, &c.state_as(Status::Running))
        .map_err(StartError::from_error)?;
    Ok(())
}

/// Sends `signal` to the init, or with `all` to every process of the
/// container's cgroups — through pidfds, so a pid that was recycled since
/// the state was written is never signalled.
pub fn kill(c: &Container, signal: Signal, all: bool) -> Result<(), ExecError> {
    let init = c.init_pidfd().map_err(|e| ExecError::io("open the init's pidfd", &c.dir, e))?;
    let Some(init) = init else {
        return Err(ExecError::NotRunning(c.id().to_owned()));
    };
    if all {
        kill_cgroup(c, signal);
        // A frozen cgroup holds SIGKILL until thawed.
        if signal == Signal::SIGKILL {
            let _ = c.cgroups().thaw();
        }
        return Ok(());
    }
    pidfd_send_signal(init.as_fd(), signal).map_err(|e| match e.raw_os_error() {
        Some(3) => ExecError::NotRunning(c.id().to_owned()),
        _ => ExecError::io("kill", &c.dir, e),
    })
}

/// Sends `signal` to every process in the container's cgroups. Each pid
/// is opened as a pidfd and kept only if the cgroup still lists it after
/// the open: a live process keeps its pid, so the descriptor names a
/// member of the cgroup (or a process that exited, which no signal
/// reaches), never a stranger that reused a member's pid.
fn kill_cgroup(c: &Container, signal: Signal) {
    let cg = c.cgroups();
    let opened: Vec<(i32, OwnedFd)> = cg
        .pids()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| crate::sys::event::pidfd_open(pid).ok().map(|fd| (pid, fd)))
        .collect();
    let members = cg.pids().unwrap_or_default();
    for (pid, fd) in &opened {
        if members.contains(pid) {
            let _ = pidfd_send_signal(fd.as_fd(), signal);
        }
    }
}

/// Freezes every process of the container.
pub fn pause(c: &Container) -> Result<(), ExecError> {
    match c.status() {
        Status::Running | Status::Created => {}
        Status::Paused => return Err(c.refuse("container already paused")),
        _ => return Err(ExecError::NotRunning(c.id().to_owned())),
    }
    c.cgroups().freeze().map_err(StartError::from_error)?;
    Ok(())
}

/// Thaws a paused container.
pub fn resume(c: &Container) -> Result<(), ExecError> {
    if c.status() != Status::Paused {
        return Err(c.refuse("container not paused"));
    }
    c.cgroups().thaw().map_err(StartError::from_error)?;
    Ok(())
}

/// Removes a stopped (or created) container: its cgroups, its state
/// directory, then the poststop hooks. `force` kills a running one
/// first.
pub fn delete(c: &Container, force: bool) -> Result<(), ExecError> {
    match c.status() {
        Status::Stopped => {}
        Status::Created => kill_and_wait(c)?,
        other if force => {
            let _ = other;
            kill_and_wait(c)?;
        }
        other => {
            return Err(c.refuse(&format!("cannot delete container {} that is not stopped: {other}", c.id())));
        }
    }
    // Any process left in the cgroups (runc kills them too).
    kill_cgroup(c, Signal::SIGKILL);
    let cg = c.cgroups();
    let _ = cg.thaw();
    let _ = cg.destroy();
    let state = c.state_as(Status::Stopped);
    std::fs::remove_dir_all(&c.dir).map_err(|e| ExecError::io("remove", &c.dir, e))?;
    let hooks_spec = c.record.config.hooks.clone().unwrap_or_default();
    // Poststop failures are logged by the caller but do not undo the
    // delete (the spec: "the runtime MUST log a warning").
    hooks::run(hooks::Stage::Poststop, &hooks_spec.poststop, &state).map_err(StartError::from_error)?;
    Ok(())
}

/// SIGKILL to every process of the container, then waits (up to 10 s)
/// for the init to be gone, reaping it when it is our child.
fn kill_and_wait(c: &Container) -> Result<(), ExecError> {
    let init = c.init_pidfd().map_err(|e| ExecError::io("open the init's pidfd", &c.dir, e))?;
    kill_cgroup(c, Signal::SIGKILL);
    let _ = c.cgroups().thaw();
    let Some(init) = init else { return Ok(()) };
    let _ = pidfd_send_signal(init.as_fd(), Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = deadline.saturating_duration_since(Instant::now());
    if !super::container::wait_exit(init.as_fd(), Some(left)).map_err(|e| ExecError::io("wait", &c.dir, e))? {
        return Err(c.refuse("the init did not die within 10 s of SIGKILL"));
    }
    // Our own child (after `run`, in a supervisor) is reaped here, or
    // it would linger as a zombie; anyone else's is not ours to reap.
    let _ = waitid_pidfd(init.as_fd(), WaitIdOptions::EXITED | WaitIdOptions::NOHANG);
    Ok(())
}

impl Container {
    fn refuse(&self, message: &str) -> ExecError {
        ExecError::State { id: self.id().to_owned(), message: message.to_owned() }
    }
}
