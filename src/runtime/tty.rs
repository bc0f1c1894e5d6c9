//! The caller's side of a container's pty: our terminal in raw mode while
//! a relay lasts, our window size passed on and followed on `SIGWINCH`,
//! and the bytes copied between our stdio and the pty master.
//!
//! Two callers: `strata-runc run` in the foreground with
//! `process.terminal` and no `--console-socket` (runc takes the master
//! itself then), and `strata exec -t`. In both, the pty lives in the
//! container's devpts ([`super::console`]); the process never sees our
//! terminal, so it can neither read it nor inject input into it
//! (`TIOCSTI`) — it only ever gets the bytes we copy.

use crate::sys::signal::{sigprocmask, sigwait, SigSet, SigmaskHow, Signal};
use crate::sys::term::{tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize, OptionalActions, Termios, Winsize};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::thread::JoinHandle;

/// Our stdin's terminal in raw mode until dropped; dropping restores the
/// settings it had, on every way out (an error returned early, a panic
/// unwinding).
#[must_use = "raw mode ends when this is dropped"]
pub struct Raw(Option<Termios>);

impl Raw {
    /// Puts stdin's terminal in raw mode (no echo, no line editing, no
    /// signals from ^C: those bytes go to the container's pty, whose own
    /// line discipline acts on them). Does nothing when stdin is not a
    /// terminal.
    pub fn enter() -> Raw {
        let stdin = io::stdin();
        let Ok(orig) = tcgetattr(&stdin) else { return Raw(None) };
        let mut raw = orig.clone();
        raw.make_raw();
        match tcsetattr(&stdin, OptionalActions::Now, &raw) {
            Ok(()) => Raw(Some(orig)),
            Err(_) => Raw(None),
        }
    }

    /// Whether the terminal was switched (and so will be restored).
    pub fn is_raw(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            // TCSAFLUSH would drop what the user typed ahead; TCSANOW
            // keeps it for the shell that reads next.
            let _ = tcsetattr(io::stdin(), OptionalActions::Now, t);
        }
    }
}

/// Our window size: stdout's terminal's (what the user sees), else
/// stdin's; `None` when neither is a terminal.
pub fn window_size() -> Option<Winsize> {
    tcgetwinsize(io::stdout()).or_else(|_| tcgetwinsize(io::stdin())).ok()
}

/// Gives `master`'s pty our window size, if we have one.
pub fn copy_size(master: impl AsFd) {
    if let Some(ws) = window_size() {
        let _ = tcsetwinsize(master, ws);
    }
}

/// Follows our window size: each `SIGWINCH` we get copies it to
/// `master` again (the kernel then signals the pty's foreground process
/// group in the container).
///
/// Blocks `SIGWINCH` in the calling thread and starts a thread that waits
/// for it (`sigwait`). Call it before any other thread starts, so every
/// thread has the signal blocked and none takes it away from the waiter.
/// The thread lives as long as the process.
pub fn follow_size(master: &OwnedFd) -> io::Result<()> {
    let master = master.try_clone()?;
    let mut set = SigSet::empty();
    set.add(Signal::SIGWINCH);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set))?;
    std::thread::spawn(move || {
        while let Ok(Signal::SIGWINCH) = sigwait(&set) {
            copy_size(&master);
        }
    });
    Ok(())
}

/// Copies `from` to `to` until end of file (or `EIO`, what a pty master
/// reads once every slave is closed), flushing each chunk so a prompt
/// without a newline shows at once; returns the bytes copied. Interrupted
/// reads and writes are retried.
pub fn pump(mut from: impl Read, mut to: impl Write) -> io::Result<u64> {
    let mut buf = [0u8; 32 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(crate::sys::Errno::IO.raw_os_error()) => return Ok(total),
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
        total += n as u64;
    }
}

/// Relays a pty master to our stdio: its output to our stdout on one
/// thread, returned, which ends when the container's side of the pty is
/// closed; with `input`, our stdin to the master on another thread, which
/// ends at our end of file (and is not waited for: it may sit in a read of
/// our terminal until we exit). Gives the pty our window size first.
pub fn relay(master: OwnedFd, input: bool) -> io::Result<JoinHandle<()>> {
    copy_size(&master);
    if input {
        let to = std::fs::File::from(master.try_clone()?);
        std::thread::spawn(move || {
            let _ = pump(io::stdin(), to);
        });
    }
    let from = std::fs::File::from(master);
    Ok(std::thread::spawn(move || {
        let _ = pump(from, io::stdout());
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pump_copies_to_end_of_file_and_treats_a_closed_pty_as_the_end() {
        let mut out = Vec::new();
        assert_eq!(pump(&b"hello"[..], &mut out).unwrap(), 5);
        assert_eq!(out, b"hello");
        // A pty master whose slave is closed reads EIO: the end, not an error.
        let (master, slave) = crate::sys::term::openpty().unwrap();
        let mut s = std::fs::File::from(slave);
        s.write_all(b"bye\n").unwrap();
        drop(s);
        let mut out = Vec::new();
        pump(std::fs::File::from(master), &mut out).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "bye\r\n");
    }
}
