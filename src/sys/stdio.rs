//! Replacing this process's standard input, output and error.

use std::io;
use std::os::fd::AsFd;

/// `dup2(fd, STDIN_FILENO)`.
///
/// See dup2(2).
pub fn dup2_stdin(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::stdio::dup2_stdin(fd)?)
}

/// `dup2(fd, STDOUT_FILENO)`.
///
/// See dup2(2).
pub fn dup2_stdout(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::stdio::dup2_stdout(fd)?)
}

/// `dup2(fd, STDERR_FILENO)`.
///
/// See dup2(2).
pub fn dup2_stderr(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::stdio::dup2_stderr(fd)?)
}
