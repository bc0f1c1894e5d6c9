//! UNIX stream sockets: connecting to and listening on a path, socket
//! pairs, and passing a descriptor with `SCM_RIGHTS` (how runc hands a
//! container's pty master to `--console-socket`).
//!
//! Every socket and every received descriptor is close-on-exec; sends
//! use `MSG_NOSIGNAL`, so a peer that went away is `EPIPE`, never a
//! `SIGPIPE` (which would kill a container's init, whose signal
//! dispositions are the defaults).

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

/// The longest name [`recv_fd`] takes with a descriptor (runc's and
/// go-runc's `MaxNameLen`).
pub const MAX_NAME_LEN: usize = 4096;

fn stream_socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?)
}

/// `socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)` then
/// `connect(fd, {AF_UNIX, path})`.
///
/// See socket(2), connect(2), unix(7).
pub fn connect_unix(path: &Path) -> io::Result<OwnedFd> {
    let fd = stream_socket()?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)?;
    Ok(fd)
}

/// `socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)` then
/// `bind(fd, {AF_UNIX, path})`: creates the socket file at `path`
/// (`EADDRINUSE` if something is there).
///
/// See socket(2), bind(2), unix(7).
pub fn bind_unix(path: &Path) -> io::Result<OwnedFd> {
    let fd = stream_socket()?;
    rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)?;
    Ok(fd)
}

/// `listen(fd, backlog)`.
///
/// See listen(2).
pub fn listen(sock: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    Ok(rustix::net::listen(sock, backlog)?)
}

/// `accept4(fd, NULL, NULL, SOCK_CLOEXEC)`: the next connection.
///
/// See accept(2).
pub fn accept(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(rustix::net::accept_with(sock, SocketFlags::CLOEXEC)?)
}

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds)`: two
/// connected ends.
///
/// See socketpair(2).
pub fn socketpair_stream() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?)
}

/// `send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT)`: writes what fits
/// without blocking; `EAGAIN` when nothing does.
///
/// See send(2).
pub fn send_nonblocking(sock: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::net::send(sock, buf, SendFlags::NOSIGNAL | SendFlags::DONTWAIT)?)
}

/// `sendmsg(sock, {iov = name, SCM_RIGHTS = [fd]}, MSG_NOSIGNAL)`: passes
/// a duplicate of `fd` with `name` as the message (a stream socket
/// carries a descriptor only along with data, so an empty name is sent
/// as one zero byte). At most [`MAX_NAME_LEN`]` - 1` bytes of name.
///
/// See sendmsg(2), unix(7) (`SCM_RIGHTS`).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    if name.len() >= MAX_NAME_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "descriptor name too long"));
    }
    let data: &[u8] = if name.is_empty() { &[0] } else { name };
    let fds = [fd];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("control buffer too small for one descriptor"));
    }
    let sent = rustix::net::sendmsg(sock, &[IoSlice::new(data)], &mut control, SendFlags::NOSIGNAL)?;
    if sent != data.len() {
        // The descriptor went with the first byte; a short name is the
        // receiver's problem to notice, but say so here too.
        return Err(io::Error::new(io::ErrorKind::WriteZero, "descriptor name sent in part"));
    }
    Ok(())
}

/// `recvmsg(sock, …, MSG_CMSG_CLOEXEC)`: one message that carries exactly
/// one descriptor (`SCM_RIGHTS`), as [`send_fd`] sends it; returns the
/// descriptor (close-on-exec) and the message's bytes (its name).
/// Fails when the peer closed without sending, or sent no descriptor or
/// more than one (any received are closed).
///
/// See recvmsg(2), unix(7) (`SCM_RIGHTS`).
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<(OwnedFd, Vec<u8>)> {
    let mut name = vec![0u8; MAX_NAME_LEN];
    // Room for a few, so a sender of several is told apart from one.
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(sock, &mut [IoSliceMut::new(&mut name)], &mut control, RecvFlags::CMSG_CLOEXEC)?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed without sending a descriptor"));
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) || fds.len() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "expected one descriptor, got {}{}",
                fds.len(),
                if msg.flags.contains(ReturnFlags::CTRUNC) { " and more (truncated)" } else { "" }
            ),
        ));
    }
    name.truncate(msg.bytes.min(MAX_NAME_LEN));
    let fd = fds.pop().ok_or_else(|| io::Error::other("descriptor vanished"))?;
    Ok((fd, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_descriptor_and_its_name_cross_a_socket() {
        let (a, b) = socketpair_stream().unwrap();
        let (r, w) = crate::sys::pipe::pipe_with(crate::sys::pipe::PipeFlags::CLOEXEC).unwrap();
        send_fd(a.as_fd(), w.as_fd(), b"/dev/ptmx").unwrap();
        drop(w);
        let (got, name) = recv_fd(b.as_fd()).unwrap();
        assert_eq!(name, b"/dev/ptmx");
        // The received descriptor is the same pipe: what goes in comes out.
        std::fs::File::from(got).write_all(b"through").unwrap();
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        assert_eq!(out, "through");
    }

    #[test]
    fn recv_fd_refuses_a_message_without_a_descriptor_and_a_closed_peer() {
        let (a, b) = socketpair_stream().unwrap();
        send_nonblocking(a.as_fd(), b"no fd").unwrap();
        assert_eq!(recv_fd(b.as_fd()).unwrap_err().kind(), io::ErrorKind::InvalidData);
        drop(a);
        assert_eq!(recv_fd(b.as_fd()).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
