//! Terminals: pseudoterminal pairs, the controlling terminal, window sizes
//! and raw mode.

pub use rustix::termios::{OptionalActions, Termios, Winsize};
use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// `openpty(&master, &slave, NULL, NULL, NULL)`: a new pseudoterminal
/// pair, both ends close-on-exec and neither becoming our controlling
/// terminal.
///
/// See openpty(3): `posix_openpt(O_RDWR | O_NOCTTY)`, `grantpt`,
/// `unlockpt`, then the slave opened by its `ptsname`.
pub fn openpty() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())?;
    Ok((master, slave))
}

/// `ioctl(fd, TIOCSCTTY, 0)`: makes the terminal `fd` the controlling
/// terminal of this session.
///
/// See ioctl_tty(2).
pub fn ioctl_tiocsctty(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::process::ioctl_tiocsctty(fd)?)
}

/// `isatty(fd)`.
///
/// See isatty(3).
pub fn isatty(fd: impl AsFd) -> bool {
    rustix::termios::isatty(fd)
}

/// `ioctl(fd, TIOCGWINSZ)`: the terminal's window size.
///
/// See ioctl_tty(2).
pub fn tcgetwinsize(fd: impl AsFd) -> io::Result<Winsize> {
    Ok(rustix::termios::tcgetwinsize(fd)?)
}

/// `ioctl(fd, TIOCSWINSZ, size)`.
///
/// See ioctl_tty(2).
pub fn tcsetwinsize(fd: impl AsFd, size: Winsize) -> io::Result<()> {
    Ok(rustix::termios::tcsetwinsize(fd, size)?)
}

/// `tcgetattr(fd, &termios)`.
///
/// See tcgetattr(3).
pub fn tcgetattr(fd: impl AsFd) -> io::Result<Termios> {
    Ok(rustix::termios::tcgetattr(fd)?)
}

/// `tcsetattr(fd, actions, &termios)`.
///
/// See tcsetattr(3).
pub fn tcsetattr(fd: impl AsFd, actions: OptionalActions, termios: &Termios) -> io::Result<()> {
    Ok(rustix::termios::tcsetattr(fd, actions, termios)?)
}
