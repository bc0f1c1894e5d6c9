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

/// `open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)`, `unlockpt`, then
/// `ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)`: a new
/// pseudoterminal pair from the devpts instance behind `/dev/ptmx` in
/// this mount namespace, the slave opened through the master rather than
/// by a path under `/dev/pts` (which, inside a container, the container
/// controls).
///
/// See pts(4), ioctl_tty(2) (`TIOCGPTPEER`, Linux 4.13).
pub fn openpty_peer() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::{ioctl_tiocgptpeer, openpt, unlockpt, OpenptFlags};
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = openpt(flags)?;
    unlockpt(&master)?;
    let slave = ioctl_tiocgptpeer(&master, flags)?;
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
