//! `run` in the foreground with `process.terminal` and no
//! `--console-socket`: as runc does, strata-runc takes the container's pty
//! master itself and relays it to its own terminal (raw mode while it
//! lasts).

use crate::sys::term::{tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize, OptionalActions, Termios};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

/// Our terminal in raw mode until dropped.
pub struct Raw(Option<Termios>);

impl Raw {
    pub fn enter() -> Raw {
        let stdin = std::io::stdin();
        match tcgetattr(&stdin) {
            Ok(orig) => {
                let mut raw = orig.clone();
                raw.make_raw();
                let _ = tcsetattr(&stdin, OptionalActions::Now, &raw);
                Raw(Some(orig))
            }
            Err(_) => Raw(None),
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, t);
        }
    }
}

/// Copies the master's output to our stdout and our stdin to the master,
/// each on a thread; returns the output thread, which ends when the
/// container's side of the pty is closed.
pub fn relay(master: OwnedFd) -> std::io::Result<std::thread::JoinHandle<()>> {
    if let Ok(ws) = tcgetwinsize(std::io::stdin()) {
        let _ = tcsetwinsize(&master, ws);
    }
    let mut input = std::fs::File::from(master.try_clone()?);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || input.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut output = std::fs::File::from(master);
    Ok(std::thread::spawn(move || {
        let mut buf = [0u8; 32 * 1024];
        let mut stdout = std::io::stdout();
        // A pty master reads EIO once every slave is closed.
        while let Ok(n) = output.read(&mut buf) {
            if n == 0 || stdout.write_all(&buf[..n]).and_then(|_| stdout.flush()).is_err() {
                break;
            }
        }
    }))
}
