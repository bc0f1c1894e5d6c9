//! Pipes.

pub use rustix::pipe::PipeFlags;
use std::io;
use std::os::fd::OwnedFd;

/// `pipe2(fds, flags)`: a pipe's read and write ends.
///
/// See pipe2(2).
pub fn pipe_with(flags: PipeFlags) -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(flags)?)
}
