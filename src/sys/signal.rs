//! Signals: sending them, masking them, waiting for them, and putting
//! dispositions back to their defaults.
//!
//! The signal type is nix's ([`Signal`], [`SigSet`]): rustix has no signal
//! names to parse (`docker kill -s TERM`) nor a way to list every signal,
//! and its `sigprocmask`/`sigwait` live in its unstable runtime module. So
//! this is the one place strata uses nix for signals.
#![allow(unsafe_code)]

pub use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use std::io;

/// `kill(pid, sig)`.
///
/// See kill(2).
pub fn kill(pid: i32, sig: Signal) -> io::Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(Into::into)
}

/// `sigprocmask(how, set, &old)`: changes this thread's signal mask and
/// returns the previous one.
///
/// See sigprocmask(2).
pub fn sigprocmask(how: SigmaskHow, set: Option<&SigSet>) -> io::Result<SigSet> {
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(how, set, Some(&mut old))?;
    Ok(old)
}

/// `sigwait(set, &sig)`: waits for one of the (blocked) signals in `set`
/// and returns it.
///
/// See sigwait(3).
pub fn sigwait(set: &SigSet) -> io::Result<Signal> {
    set.wait().map_err(Into::into)
}

/// `sigaction(sig, {SIG_DFL})`: the default disposition for `sig`.
///
/// See sigaction(2). `SIGKILL` and `SIGSTOP` cannot be changed (`EINVAL`).
pub fn sigaction_default(sig: Signal) -> io::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler};
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_DFL runs no handler code, so none of
    // sigaction's async-signal-safety requirements on handlers apply.
    unsafe { nix::sys::signal::sigaction(sig, &dfl) }?;
    Ok(())
}
