//! The console socket (runc's `--console-socket`): with
//! `process.terminal`, the container's init makes a pty pair in the
//! container's own devpts and sends the master, by `SCM_RIGHTS`, to a UNIX
//! socket the caller listens on; the slave becomes the init's stdio and
//! controlling terminal.
//!
//! ```text
//! caller (containerd's shim, podman's conmon, strata run -t)
//!     ConsoleListener::bind(path) ──► strata-runc create --console-socket path
//!                                       init, after pivot_root:
//!                                         connect(path)
//!                                         new_pty_in_container(size) ─► (master, slave)
//!                                         send_master(sock, master)   "/dev/ptmx" + fd
//!     accept_master() ◄─────────────────┘  slave → stdio, TIOCSCTTY
//! ```
//!
//! The message is what containerd's go-runc `ReceivePty` reads: one
//! message whose data is the name (runc sends `/dev/ptmx`) and whose
//! control part carries exactly one descriptor.

use crate::runtime::spec::ConsoleSize;
use crate::sys::event::{poll, PollFd, PollFlags};
use crate::sys::socket;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The name the master is sent with, as runc sends it.
pub const MASTER_NAME: &[u8] = b"/dev/ptmx";

/// Connects to the console socket at `path` (a UNIX stream socket).
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    socket::connect_unix(path)
        .map_err(|e| io::Error::new(e.kind(), format!("connect to console socket {}: {e}", path.display())))
}

/// A pty pair from `/dev/ptmx` of the current mount namespace (after
/// `pivot_root`: the container's devpts), the slave opened through the
/// master (`TIOCGPTPEER`, no lookup under `/dev/pts`), with the window
/// size set when `size` is given. Returns `(master, slave)`, both
/// close-on-exec.
pub fn new_pty_in_container(size: Option<&ConsoleSize>) -> io::Result<(OwnedFd, OwnedFd)> {
    let (master, slave) = crate::sys::term::openpty_peer()
        .map_err(|e| io::Error::new(e.kind(), format!("open pty from /dev/ptmx: {e}")))?;
    if let Some(size) = size {
        let clamp = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
        let winsize = crate::sys::term::Winsize {
            ws_row: clamp(size.height),
            ws_col: clamp(size.width),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        crate::sys::term::tcsetwinsize(&master, winsize)
            .map_err(|e| io::Error::new(e.kind(), format!("set console size: {e}")))?;
    }
    Ok((master, slave))
}

/// Sends the pty master to the console socket and closes this process's
/// copy of it (the container's init must not keep it).
pub fn send_master(sock: BorrowedFd<'_>, master: OwnedFd) -> io::Result<()> {
    socket::send_fd(sock, master.as_fd(), MASTER_NAME)
        .map_err(|e| io::Error::new(e.kind(), format!("send pty master to console socket: {e}")))
}

/// The receiving end: a UNIX socket listening at a path, removed again
/// when the listener is dropped.
#[derive(Debug)]
pub struct ConsoleListener {
    fd: OwnedFd,
    path: PathBuf,
}

impl ConsoleListener {
    /// Creates the socket at `path` (which must not exist) and listens.
    pub fn bind(path: &Path) -> io::Result<ConsoleListener> {
        let fd = socket::bind_unix(path)
            .map_err(|e| io::Error::new(e.kind(), format!("bind console socket {}: {e}", path.display())))?;
        let listener = ConsoleListener { fd, path: path.to_owned() };
        socket::listen(listener.fd.as_fd(), 1)?;
        Ok(listener)
    }

    /// Where the socket is: what `--console-socket` is given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for a runtime to connect and send a pty master; returns it.
    pub fn accept_master(&self) -> io::Result<OwnedFd> {
        self.accept(None)
    }

    /// [`accept_master`](Self::accept_master), failing with `TimedOut`
    /// when no connection came within `timeout` (a runtime that died
    /// before sending would otherwise be waited for forever).
    pub fn accept_master_timeout(&self, timeout: Duration) -> io::Result<OwnedFd> {
        self.accept(Some(timeout))
    }

    fn accept(&self, timeout: Option<Duration>) -> io::Result<OwnedFd> {
        if let Some(timeout) = timeout {
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            if poll(&mut fds, Some(timeout))? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no pty master on console socket {} within {timeout:?}", self.path.display()),
                ));
            }
        }
        let conn = socket::accept(self.fd.as_fd())?;
        if let Some(timeout) = timeout {
            let mut fds = [PollFd::new(&conn, PollFlags::IN)];
            if poll(&mut fds, Some(timeout))? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connection on console socket {} sent nothing within {timeout:?}", self.path.display()),
                ));
            }
        }
        let (master, _name) = socket::recv_fd(conn.as_fd())
            .map_err(|e| io::Error::new(e.kind(), format!("receive pty master on {}: {e}", self.path.display())))?;
        Ok(master)
    }
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_pty_master_sent_over_the_socket_talks_to_the_slave() {
        let dir = tempfile::tempdir().unwrap();
        let listener = ConsoleListener::bind(&dir.path().join("console.sock")).unwrap();
        let path = listener.path().to_owned();
        // The container's side. A thread rather than a process: the test
        // harness is multi-threaded and cannot fork safely, and the
        // descriptor crosses the socket the same way.
        let container = std::thread::spawn(move || -> io::Result<String> {
            let sock = connect(&path)?;
            let (master, slave) = new_pty_in_container(Some(&ConsoleSize { height: 42, width: 137 }))?;
            send_master(sock.as_fd(), master)?;
            let size = crate::sys::term::tcgetwinsize(&slave)?;
            let mut slave = std::fs::File::from(slave);
            let mut line = Vec::new();
            let mut byte = [0u8];
            while byte[0] != b'\n' {
                slave.read_exact(&mut byte)?;
                line.push(byte[0]);
            }
            slave.write_all(
                format!("echo {}x{} {}", size.ws_row, size.ws_col, String::from_utf8_lossy(&line)).as_bytes(),
            )?;
            Ok(String::from_utf8_lossy(&line).into_owned())
        });
        let master = listener.accept_master_timeout(Duration::from_secs(10)).unwrap();
        assert!(crate::sys::term::isatty(&master));
        let mut master = std::fs::File::from(master);
        master.write_all(b"hello\n").unwrap();
        let mut buf = vec![0u8; 256];
        let mut seen = String::new();
        while !seen.contains("echo 42x137 hello") {
            let n = master.read(&mut buf).unwrap();
            assert!(n > 0, "pty closed; saw {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        // Canonical mode: the slave read the line as typed.
        assert_eq!(container.join().unwrap().unwrap(), "hello\n");
        drop(listener);
        assert!(!dir.path().join("console.sock").exists());
    }

    #[test]
    fn accept_master_times_out_when_nobody_connects() {
        let dir = tempfile::tempdir().unwrap();
        let listener = ConsoleListener::bind(&dir.path().join("c.sock")).unwrap();
        let err = listener.accept_master_timeout(Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(ConsoleListener::bind(&dir.path().join("c.sock")).is_err(), "a second bind on the same path");
    }
}

/// The receiving side against runc's sending side: the reference runtime
/// hands its pty master to a [`ConsoleListener`].
#[cfg(test)]
mod runc_interop {
    use super::*;
    use std::io::Read;
    use std::process::Command;

    /// `runc delete --force` of the container, whatever happened.
    struct Container<'a> {
        root: &'a Path,
        id: &'a str,
    }

    impl Drop for Container<'_> {
        fn drop(&mut self) {
            let _ = Command::new("runc").arg("--root").arg(self.root).args(["delete", "--force", self.id]).output();
        }
    }

    fn runc(root: &Path, args: &[&str]) -> std::process::Output {
        Command::new("runc").arg("--root").arg(root).args(args).output().unwrap()
    }

    #[test]
    fn runc_sends_its_master_to_a_console_listener() {
        let (Ok(_), Ok(busybox)) = (which("runc"), which("busybox")) else {
            crate::scratch::skip_test(
                "runc or a static busybox is not installed, so the reference runtime cannot be run",
            );
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        std::fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
        std::fs::copy(&busybox, bundle.join("rootfs/bin/busybox")).unwrap();
        let spec = Command::new("runc").args(["spec", "--bundle"]).arg(&bundle).output().unwrap();
        assert!(spec.status.success(), "runc spec: {}", String::from_utf8_lossy(&spec.stderr));
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        config["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", "stty size; echo hello-from-runc"]);
        config["process"]["consoleSize"] = serde_json::json!({"height": 33, "width": 77});
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();

        let listener = ConsoleListener::bind(&dir.path().join("console.sock")).unwrap();
        let root = dir.path().join("state");
        let id = "strata-console-interop";
        let _container = Container { root: &root, id };
        let bundle_arg = bundle.to_str().unwrap();
        let socket_arg = listener.path().to_str().unwrap().to_owned();
        let create = runc(&root, &["create", "--bundle", bundle_arg, "--console-socket", &socket_arg, id]);
        assert!(create.status.success(), "runc create: {}", String::from_utf8_lossy(&create.stderr));
        let master = listener.accept_master_timeout(Duration::from_secs(10)).unwrap();
        assert!(crate::sys::term::isatty(&master));
        let start = runc(&root, &["start", id]);
        assert!(start.status.success(), "runc start: {}", String::from_utf8_lossy(&start.stderr));
        let mut master = std::fs::File::from(master);
        let mut seen = String::new();
        let mut buf = [0u8; 256];
        while !seen.contains("hello-from-runc") {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        assert!(seen.contains("33 77") && seen.contains("hello-from-runc"), "{seen:?}");
    }

    fn which(name: &str) -> io::Result<PathBuf> {
        std::env::var_os("PATH")
            .unwrap_or_default()
            .to_str()
            .unwrap_or("")
            .split(':')
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

/// A connected pair of sockets for a console inside one process tree:
/// the container's init gets one end (as it would a `--console-socket`
/// connection), strata keeps the other and receives the master on it.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    crate::sys::socket::socketpair_stream()
}

/// Receives the pty master the init sends on `sock`.
pub fn recv_master(sock: &OwnedFd) -> io::Result<OwnedFd> {
    let (fd, _name) = crate::sys::socket::recv_fd(sock.as_fd())?;
    Ok(fd)
}
