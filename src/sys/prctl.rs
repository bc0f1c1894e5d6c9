//! Process attributes an OCI runtime sets before `execve`: keeping
//! capabilities across `setuid`, dumpability, the child subreaper, the
//! execution domain, the session keyring, the umask and the OOM score.

#![allow(unsafe_code)]

use std::io;

/// `prctl(PR_SET_KEEPCAPS, keep)`: whether the permitted capabilities
/// survive a change of all uids away from 0.
///
/// See PR_SET_KEEPCAPS(2const).
pub fn set_keep_capabilities(keep: bool) -> io::Result<()> {
    Ok(rustix::thread::set_keep_capabilities(keep)?)
}

/// `prctl(PR_SET_DUMPABLE, dumpable)`: a non-dumpable process's
/// `/proc/<pid>` files (its `exe`, `fd`, `mem`, …) are owned by root and
/// reachable only with `CAP_SYS_PTRACE` over its user namespace.
///
/// See PR_SET_DUMPABLE(2const).
pub fn set_dumpable(dumpable: bool) -> io::Result<()> {
    let behaviour = if dumpable {
        rustix::process::DumpableBehavior::Dumpable
    } else {
        rustix::process::DumpableBehavior::NotDumpable
    };
    Ok(rustix::process::set_dumpable_behavior(behaviour)?)
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphaned descendants re-parent to
/// this process instead of to init.
///
/// See PR_SET_CHILD_SUBREAPER(2const).
pub fn set_child_subreaper() -> io::Result<()> {
    Ok(rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?)
}

/// `prctl(PR_SET_PDEATHSIG, SIGKILL)`: this process is killed when its
/// parent thread exits.
///
/// See PR_SET_PDEATHSIG(2const).
pub fn set_parent_death_kill() -> io::Result<()> {
    Ok(rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?)
}

/// `personality(persona)`: the execution domain (`PER_LINUX`,
/// `PER_LINUX32`, …) with its flags.
///
/// See personality(2).
pub fn personality(persona: u32) -> io::Result<()> {
    // SAFETY: personality(2) takes an integer and touches no memory of
    // ours; a negative return is the error.
    let r = unsafe { libc::personality(libc::c_ulong::from(persona)) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `PER_LINUX` from `<sys/personality.h>`.
pub const PER_LINUX: u32 = 0;
/// `PER_LINUX32` from `<sys/personality.h>`.
pub const PER_LINUX32: u32 = 0x0008;

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)`: a new session keyring
/// named `name` for this process, so a container neither sees nor joins
/// the keyring of the process that started it.
///
/// See KEYCTL_JOIN_SESSION_KEYRING(2const).
pub fn join_session_keyring(name: &std::ffi::CStr) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the
    // call; the kernel only reads it.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `umask(mask)`: the file mode creation mask; returns the previous one.
///
/// See umask(2).
pub fn umask(mask: u32) -> u32 {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask)).as_raw_mode()
}

/// `setresuid(uid, uid, uid)` for the whole process (through libc, which
/// applies it to every thread).
///
/// See setresuid(2).
pub fn setresuid(uid: u32) -> io::Result<()> {
    let u = nix::unistd::Uid::from_raw(uid);
    Ok(nix::unistd::setresuid(u, u, u)?)
}

/// `setresgid(gid, gid, gid)` for the whole process.
///
/// See setresgid(2).
pub fn setresgid(gid: u32) -> io::Result<()> {
    let g = nix::unistd::Gid::from_raw(gid);
    Ok(nix::unistd::setresgid(g, g, g)?)
}
