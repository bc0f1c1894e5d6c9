//! Process and namespace primitives for the run path: fork, unshare,
//! setns, a network interface ioctl, and the single-thread check that
//! makes forking without exec safe.
//!
//! A child that does not `execve` never sees close-on-exec take effect, so
//! it would keep every descriptor its parent had open: `flock` locks
//! (which belong to the open file description the child then shares),
//! pipe ends whose reader waits for end-of-file, files it never uses.
//! [`fork_child`] closes all of them in the child first, keeping stdio and
//! the descriptors the caller names.
#![allow(unsafe_code)]

use rustix::io::Errno;
use rustix::process::Pid;
pub use rustix::process::{Resource, Rlimit, Uid, WaitOptions, WaitStatus};
pub use rustix::thread::UnshareFlags;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// What `fork` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent, with the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// Number of threads in this process, from `/proc/self/status`.
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// `geteuid()`: the effective user ID (`.is_root()` for "running as root").
///
/// See geteuid(2).
pub fn geteuid() -> rustix::process::Uid {
    rustix::process::geteuid()
}

/// `fork(2)`, refused unless the process is single-threaded.
///
/// The run path forks and then does real work in the child (mounts,
/// allocation, file I/O) before `execve`; that is only sound when no other
/// thread could hold a lock (the allocator's, stdio's) at the moment of
/// the fork. Checking the thread count makes that an enforced invariant
/// rather than a hope.
pub fn fork() -> io::Result<Forked> {
    fork_checked(&single_threaded()?)
}

/// Proof that the process had one thread when it was made (see
/// [`single_threaded`]); lets a fork happen where `/proc/self` is no
/// longer this process's (after joining another mount namespace).
#[derive(Debug)]
pub struct SingleThreaded(());

/// Checks that the process has exactly one thread.
pub fn single_threaded() -> io::Result<SingleThreaded> {
    match thread_count()? {
        1 => Ok(SingleThreaded(())),
        n => Err(io::Error::other(format!("refusing to fork a process with {n} threads"))),
    }
}

/// `fork(2)` given a [`SingleThreaded`] proof. The caller must not have
/// started a thread since taking it.
pub fn fork_checked(_proof: &SingleThreaded) -> io::Result<Forked> {
    // SAFETY: the process has exactly one thread (the proof was taken on
    // this single-threaded path and no thread was started since), so the child
    // inherits no lock held by another thread and may run arbitrary Rust
    // code; fork(2) itself has no memory-safety preconditions.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// `fork(2)` for a child that does not `execve`: the child first closes
/// every descriptor above stderr except those in `keep` and `pass`
/// ([`close_inherited`]), then runs `child` and leaves with
/// `_exit(child(pass))`. `pass` is the child's own (the write end of a
/// pipe it reports through): closed in the parent once the child exists.
/// Returns the child's pid in the parent. Refused unless the process is
/// single-threaded (see [`fork`]).
///
/// The child never returns into its caller's frames, so no destructor of
/// a value the parent owns (a lock guard, a temporary mount, a descriptor
/// just closed) runs in the child; a panic in `child` exits with 101.
pub fn fork_child(
    keep: &[BorrowedFd<'_>],
    pass: Option<OwnedFd>,
    child: impl FnOnce(Option<OwnedFd>) -> i32,
) -> io::Result<i32> {
    fork_child_checked(&single_threaded()?, keep, pass, child)
}

/// [`fork_child`] given a [`SingleThreaded`] proof (see [`fork_checked`]).
pub fn fork_child_checked(
    proof: &SingleThreaded,
    keep: &[BorrowedFd<'_>],
    pass: Option<OwnedFd>,
    child: impl FnOnce(Option<OwnedFd>) -> i32,
) -> io::Result<i32> {
    fork_child_keeping_below(proof, 3, keep, pass, child)
}

/// [`fork_child_checked`] whose child also keeps every descriptor below
/// `first` (stdio and runc's `--preserve-fds`).
pub fn fork_child_keeping_below(
    proof: &SingleThreaded,
    first: u32,
    keep: &[BorrowedFd<'_>],
    pass: Option<OwnedFd>,
    child: impl FnOnce(Option<OwnedFd>) -> i32,
) -> io::Result<i32> {
    match fork_checked(proof)? {
        Forked::Parent(pid) => Ok(pid),
        Forked::Child => {
            let mut kept = keep.to_vec();
            kept.extend(pass.as_ref().map(|fd| fd.as_fd()));
            if close_inherited_from(first, &kept).is_err() {
                exit_immediately(125);
            }
            drop(kept);
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(pass))).unwrap_or(101);
            exit_immediately(code)
        }
    }
}

/// Closes every descriptor from 3 up except those in `keep`, with as few
/// [`close_range`] calls as there are gaps between them.
///
/// Only for a freshly forked child: descriptors still owned by values in
/// memory are closed under them, so the caller must not use or drop those
/// values afterwards ([`fork_child`] ensures that).
pub fn close_inherited(keep: &[BorrowedFd<'_>]) -> io::Result<()> {
    close_inherited_from(3, keep)
}

/// [`close_inherited`] that also keeps every descriptor below `first`
/// (stdio and runc's `--preserve-fds`).
pub fn close_inherited_from(first: u32, keep: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut kept: Vec<u32> =
        keep.iter().filter_map(|fd| u32::try_from(fd.as_raw_fd()).ok()).filter(|fd| *fd >= first).collect();
    kept.sort_unstable();
    kept.dedup();
    let mut first = first;
    for fd in kept {
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd + 1;
    }
    close_range(first, u32::MAX)
}

/// `close_range(first, last, 0)`: closes every open descriptor numbered
/// `first..=last`.
///
/// See close_range(2) (Linux 5.9).
pub fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range only closes descriptors; memory safety does not
    // depend on them. Whoever owns one of them in this process must not use
    // it afterwards: callers ([`close_inherited`]) are forked children that
    // never touch the values their parent's descriptors belong to.
    if unsafe { libc::close_range(first, last, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `clone(CLONE_NEWPID | SIGCHLD)`: runs `child` as PID 1 of a new PID
/// namespace and returns its host PID. The child's return value is its exit
/// status.
///
/// Unlike `unshare(CLONE_NEWPID)` + `fork`, this leaves the caller able to
/// start threads afterwards (a process that unshared a PID namespace can
/// no longer create threads: clone(2), EINVAL).
pub fn spawn_in_new_pid_namespace(child: &mut dyn FnMut() -> i32) -> io::Result<i32> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!("refusing to clone a process with {threads} threads")));
    }
    // The child runs on this stack in its own copy of the address space
    // (no CLONE_VM): untouched pages cost nothing.
    let mut stack = vec![0u8; 8 << 20];
    let flags = nix::sched::CloneFlags::CLONE_NEWPID;
    let cb: nix::sched::CloneCb<'_> = Box::new(|| isize::try_from(child()).unwrap_or(125));
    // SAFETY: without CLONE_VM the child gets a copy-on-write copy of the
    // whole address space, so it cannot race the parent on memory; the
    // process is single-threaded (checked above), so no lock is held by a
    // thread that does not exist in the child; `stack` outlives the call in
    // the parent and is the child's private copy afterwards.
    let pid = unsafe { nix::sched::clone(cb, &mut stack, flags, Some(libc::SIGCHLD)) }.map_err(io::Error::from)?;
    Ok(pid.as_raw())
}

/// `unshare(flags)` for namespace flags (never `CLONE_FILES`/`CLONE_FS`
/// sharing changes that could invalidate other threads' descriptors).
pub fn unshare_namespaces(flags: UnshareFlags) -> io::Result<()> {
    let forbidden = UnshareFlags::FILES | UnshareFlags::FS | UnshareFlags::SYSVSEM;
    if flags.intersects(forbidden) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "only namespace flags may be unshared"));
    }
    // SAFETY: rustix marks unshare unsafe because CLONE_FILES can make one
    // thread's descriptors invalid in another; the flags are checked above
    // to be namespace flags only, which have no such effect.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(Into::into)
}

/// `setns(fd, 0)`: joins the namespace `fd` (from `/proc/<pid>/ns/<kind>`)
/// refers to, whatever its type.
pub fn setns(fd: impl AsFd) -> io::Result<()> {
    rustix::thread::move_into_link_name_space(fd.as_fd(), None).map_err(Into::into)
}

/// `ioctl(SIOCSIFFLAGS)`: brings the interface `name` up (`IFF_UP`) in the
/// current network namespace — what `ip link set lo up` does.
pub fn interface_up(name: &str) -> io::Result<()> {
    let sock = rustix::net::socket(rustix::net::AddressFamily::INET, rustix::net::SocketType::DGRAM, None)?;
    let mut req: libc::ifreq = zeroed_ifreq();
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `sock` is a valid open socket; `req` is a properly sized,
    // initialised `struct ifreq` that lives across the call; SIOCGIFFLAGS
    // writes only `ifr_flags` inside it.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS above initialised the `ifru_flags` member of the
    // union, so reading and updating it is reading initialised memory.
    unsafe {
        req.ifr_ifru.ifru_flags |= IFF_UP;
    }
    // SAFETY: as for SIOCGIFFLAGS; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `IFF_UP` from `<net/if.h>` (1), in the width of `ifr_flags`.
const IFF_UP: libc::c_short = 1;

fn zeroed_ifreq() -> libc::ifreq {
    // SAFETY: `ifreq` is a plain C struct of integers, arrays and a union of
    // plain data; all-zero bytes are a valid value for every field.
    unsafe { std::mem::zeroed() }
}

/// `_exit(2)`: leaves a forked child without running the parent's atexit
/// handlers or flushing its copies of stdio buffers.
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit(2) has no preconditions; it never returns, and skipping
    // destructors is the point (the parent owns what they would release).
    unsafe { libc::_exit(code) }
}

/// `setsid()`: a new session and process group led by this process.
///
/// See setsid(2).
pub fn setsid() -> io::Result<()> {
    rustix::process::setsid()?;
    Ok(())
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: `execve` can no longer grant
/// privileges (setuid bits, file capabilities) to this process or its
/// children.
///
/// See PR_SET_NO_NEW_PRIVS(2const).
pub fn set_no_new_privs() -> io::Result<()> {
    Ok(rustix::thread::set_no_new_privs(true)?)
}

/// `execve(path, argv, envp)`: replaces this process's program. Returns
/// only on failure, with the reason.
///
/// See execve(2). Through nix: rustix's `execve` is in its unstable
/// runtime module.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> Errno {
    match nix::unistd::execve(path, argv, envp) {
        Err(e) => Errno::from_raw_os_error(e as i32),
        Ok(never) => match never {},
    }
}

/// `waitpid(pid, &status, options)`: `pid`'s change of state (any child's
/// when `None`); `Ok(None)` under `WNOHANG` when none changed.
///
/// See waitpid(2).
pub fn waitpid(pid: Option<i32>, options: WaitOptions) -> Result<Option<(i32, WaitStatus)>, Errno> {
    let pid = pid.map(|p| Pid::from_raw(p).ok_or(Errno::INVAL)).transpose()?;
    Ok(rustix::process::waitpid(pid, options)?.map(|(p, status)| (p.as_raw_nonzero().get(), status)))
}

/// `getrlimit(resource, &limit)`.
///
/// See getrlimit(2).
pub fn getrlimit(resource: Resource) -> Rlimit {
    rustix::process::getrlimit(resource)
}

/// `setrlimit(resource, &limit)`.
///
/// See setrlimit(2).
pub fn setrlimit(resource: Resource, limit: Rlimit) -> io::Result<()> {
    Ok(rustix::process::setrlimit(resource, limit)?)
}

// The credential calls go through libc (via nix) on purpose: the C
// library applies them to every thread of the process, where rustix's
// `set_thread_*` change only the calling thread.

/// `setgroups(len, groups)`: the supplementary group list.
///
/// See setgroups(2).
pub fn setgroups(groups: &[u32]) -> io::Result<()> {
    let groups: Vec<nix::unistd::Gid> = groups.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
    Ok(nix::unistd::setgroups(&groups)?)
}

/// `setgid(gid)`.
///
/// See setgid(2).
pub fn setgid(gid: u32) -> io::Result<()> {
    Ok(nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))?)
}

/// `setuid(uid)`.
///
/// See setuid(2).
pub fn setuid(uid: u32) -> io::Result<()> {
    Ok(nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))?)
}

/// `close_range(first, ~0U, CLOSE_RANGE_CLOEXEC)`: marks every descriptor
/// from `first` up close-on-exec, so none of them crosses the next
/// `execve` (the CVE-2024-21626 class), while this process keeps using
/// them until then.
///
/// See close_range(2) (Linux 5.11 for the flag).
pub fn close_range_cloexec(first: u32) -> io::Result<()> {
    // SAFETY: with CLOSE_RANGE_CLOEXEC the call closes nothing; it only
    // sets a flag on descriptors, which touches no memory of ours.
    if unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Namespace flags for [`clone_into`].
pub use nix::sched::CloneFlags;
pub use rustix::process::{WaitIdOptions, WaitIdStatus};
pub use rustix::thread::ThreadNameSpaceType;

/// What [`clone_into`] made: the child's pid and a pidfd for it.
#[derive(Debug)]
pub struct Cloned {
    /// The child's pid in the caller's PID namespace.
    pub pid: i32,
    /// A descriptor naming the child (close-on-exec). Unlike the pid, it
    /// can never come to name another process: a signal or wait through
    /// it reaches this child or fails with `ESRCH`.
    pub pidfd: OwnedFd,
}

/// `clone(flags | CLONE_PIDFD | SIGCHLD)` without `CLONE_VM`: runs
/// `child` in a new process created in the namespaces `flags` asks for
/// (`CLONE_NEWPID`, `CLONE_NEWUSER`, …), and returns its pid and the pidfd
/// the kernel made for it at the same instant. The child's return value is
/// its exit status. Refused unless this process is single-threaded.
///
/// See clone(2) (`CLONE_PIDFD`: Linux 5.2). Through libc: nix's `clone`
/// passes no `parent_tid` pointer, which is where the kernel stores the
/// pidfd.
pub fn clone_into(flags: CloneFlags, child: &mut dyn FnMut() -> i32) -> io::Result<Cloned> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!("refusing to clone a process with {threads} threads")));
    }
    extern "C" fn trampoline(data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `data` is the `&mut &mut dyn FnMut` passed to clone below;
        // the child runs on its own copy of the parent's memory, where that
        // reference is still valid for the whole call.
        let child = unsafe { &mut *data.cast::<&mut dyn FnMut() -> i32>() };
        child()
    }
    let mut stack = vec![0u8; 8 << 20];
    let mut child = child;
    let mut pidfd: libc::c_int = -1;
    let all = flags.bits() | libc::CLONE_PIDFD | libc::SIGCHLD;
    // SAFETY: without CLONE_VM the child gets a copy-on-write copy of the
    // whole address space, so it cannot race the parent on memory; the
    // process is single-threaded (checked above), so no lock is held by a
    // thread that does not exist in the child. The stack pointer is the
    // 16-byte-aligned top of `stack`, which outlives the call in the parent
    // and is the child's private copy afterwards; `pidfd` is a live c_int
    // the kernel writes the descriptor into (CLONE_PIDFD's parent_tid
    // argument).
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(stack.len());
        let top = top.sub(top as usize % 16);
        libc::clone(
            trampoline,
            top.cast(),
            all,
            (&mut child as *mut &mut dyn FnMut() -> i32).cast(),
            &mut pidfd as *mut libc::c_int,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: with CLONE_PIDFD a successful clone stored a new descriptor
    // in `pidfd` that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(Cloned { pid, pidfd })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`: sends `sig` to the process
/// `pidfd` names — never to a later process that reused its pid.
/// `ESRCH` once it has exited.
///
/// See pidfd_send_signal(2) (Linux 5.1).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: crate::sys::signal::Signal) -> io::Result<()> {
    let sig = rustix::process::Signal::from_named_raw(sig as i32)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_send_signal(pidfd, sig)?)
}

/// `waitid(P_PIDFD, pidfd, &info, options)`: the change of state of the
/// child `pidfd` names (`ECHILD` if it is not our child); `Ok(None)` under
/// `WNOHANG` when it has not changed.
///
/// See waitid(2) (`P_PIDFD`: Linux 5.4).
pub fn waitid_pidfd(pidfd: BorrowedFd<'_>, options: WaitIdOptions) -> Result<Option<WaitIdStatus>, Errno> {
    rustix::process::waitid(rustix::process::WaitId::PidFd(pidfd), options)
}

/// `setns(pidfd, nstypes)`: joins, in one step, the namespaces of the
/// given types that the process `pidfd` names is in (`ESRCH` once it has
/// exited: no `/proc/<pid>/ns` path that a recycled pid could redirect).
///
/// See setns(2) (pidfd targets: Linux 5.8).
pub fn setns_pidfd(pidfd: BorrowedFd<'_>, types: ThreadNameSpaceType) -> io::Result<()> {
    Ok(rustix::thread::move_into_thread_name_spaces(pidfd, types)?)
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: `sig` is sent to this process when the
/// *thread* that created it exits (not the process: clone from the main
/// thread of a process that never ends it alone).
///
/// The setting is cleared by a change of effective or filesystem uid/gid
/// and by executing a set-user-ID or file-capability binary, so a caller
/// that changes credentials sets it again; and the parent may already be
/// gone when it is set, so check [`parent_pid`] afterwards.
///
/// See PR_SET_PDEATHSIG(2const).
pub fn set_parent_death_signal(sig: crate::sys::signal::Signal) -> io::Result<()> {
    let sig = rustix::process::Signal::from_named_raw(sig as i32)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::set_parent_process_death_signal(Some(sig))?)
}

/// The `PPid:` line of `/proc/self/status`: the parent's pid as numbered
/// in the PID namespace of the mounted `/proc` — so a process just cloned
/// into a new PID namespace, whose getppid(2) says 0, still reads its
/// parent's host pid here while it sees the host's `/proc`.
///
/// See proc_pid_status(5).
pub fn parent_pid() -> io::Result<i32> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no PPid: line in /proc/self/status"))
}

/// `kill(pid, 0)`: whether a process `pid` exists (a zombie counts).
///
/// See kill(2).
pub fn process_exists(pid: i32) -> bool {
    match Pid::from_raw(pid) {
        Some(p) => rustix::process::test_kill_process(p).is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::signal::Signal;

    /// A signal through a pidfd reaches its process; the wait through it
    /// reports how it ended; afterwards the pidfd names nobody (`ESRCH`),
    /// whatever process gets the pid next.
    #[test]
    fn pidfd_signal_and_wait() {
        let child = std::process::Command::new("sleep").arg("100").spawn().unwrap();
        let pidfd = crate::sys::event::pidfd_open(i32::try_from(child.id()).unwrap()).unwrap();
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
        assert!(waitid_pidfd(pidfd.as_fd(), options).unwrap().is_none(), "still running");
        pidfd_send_signal(pidfd.as_fd(), Signal::SIGKILL).unwrap();
        let status = waitid_pidfd(pidfd.as_fd(), WaitIdOptions::EXITED).unwrap().expect("exited");
        assert_eq!(status.terminating_signal(), Some(9));
        let gone = pidfd_send_signal(pidfd.as_fd(), Signal::SIGTERM).unwrap_err();
        assert_eq!(gone.raw_os_error(), Some(libc::ESRCH));
        drop(child);
    }

    /// Outside a new PID namespace, `PPid:` agrees with getppid(2).
    #[test]
    fn parent_pid_agrees_with_getppid() {
        assert_eq!(parent_pid().unwrap(), i32::try_from(std::os::unix::process::parent_id()).unwrap());
    }
}
