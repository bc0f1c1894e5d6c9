//! `/dev` as runc fills it: unless `/dev` is a bind mount, the default
//! devices (`null`, `zero`, `full`, `random`, `urandom`, `tty`, each 0666
//! root:root) and every `linux.devices` entry (which replaces a default of
//! the same path) are created with `mknod` — or, in a user namespace or
//! where `mknod` is refused, bind-mounted from the host's node of the same
//! path; a node already there is left alone. Then `/dev/ptmx ->
//! pts/ptmx` and the `fd`, `stdin`, `stdout`, `stderr` (and `core`)
//! symlinks. The console is a bind of the pty's slave at `/dev/console`.

use super::paths::{clean, open_target, Target};
use super::RootfsError;
use crate::runtime::spec::{DeviceType, NamespaceType, Spec};
use crate::sys::fs::{chmod_at, fd_path, lchown_at, mknod_at, open_dir, symlink_at, unlink_at, Node};
use crate::sys::mount::{mount, MountFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// One node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    pub path: String,
    pub node: Node,
    pub major: u32,
    pub minor: u32,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// runc's default devices (path, major, minor).
const DEFAULTS: &[(&str, u32, u32)] = &[
    ("/dev/null", 1, 3),
    ("/dev/random", 1, 8),
    ("/dev/full", 1, 7),
    ("/dev/tty", 5, 0),
    ("/dev/zero", 1, 5),
    ("/dev/urandom", 1, 9),
];

/// The nodes to create for `spec`: the defaults it does not override,
/// then its own `linux.devices`. Fails on a major/minor out of range.
pub fn device_nodes(spec: &Spec) -> Result<Vec<DeviceNode>, RootfsError> {
    let own = spec.linux.as_ref().map(|l| l.devices.as_slice()).unwrap_or_default();
    let mut out: Vec<DeviceNode> = DEFAULTS
        .iter()
        .filter(|(p, _, _)| !own.iter().any(|d| clean(&d.path) == *p))
        .map(|&(p, major, minor)| DeviceNode {
            path: p.to_owned(),
            node: Node::Char,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    for (index, d) in own.iter().enumerate() {
        let number = |n: Option<i64>, what: &str| {
            u32::try_from(n.unwrap_or(0)).map_err(|_| RootfsError::Device {
                index,
                path: d.path.clone(),
                step: "check",
                source: io::Error::new(io::ErrorKind::InvalidInput, format!("{what} out of range")),
            })
        };
        out.push(DeviceNode {
            path: clean(&d.path),
            node: match d.kind {
                DeviceType::Char | DeviceType::Unbuffered => Node::Char,
                DeviceType::Block => Node::Block,
                DeviceType::Fifo => Node::Fifo,
            },
            major: number(d.major, "major")?,
            minor: number(d.minor, "minor")?,
            mode: d.file_mode.map_or(0o666, |m| m & 0o7777),
            uid: d.uid.unwrap_or(0),
            gid: d.gid.unwrap_or(0),
        });
    }
    Ok(out)
}

/// Whether this process runs in a user namespace other than the initial
/// one (its uid map is not the identity over all IDs).
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

fn dev_err(path: &str, step: &'static str) -> impl FnOnce(io::Error) -> RootfsError {
    let path = path.to_owned();
    move |source| RootfsError::Path { step, path, source }
}

/// Fills `/dev` under `root` for `spec` (before `pivot_root`).
pub fn setup_dev(root: BorrowedFd<'_>, spec: &Spec) -> Result<(), RootfsError> {
    if spec.mounts.iter().any(|m| m.is_bind() && clean(&m.destination_path()) == "/dev") {
        return Ok(());
    }
    let userns = in_user_namespace() || spec.linux.as_ref().is_some_and(|l| l.namespace(NamespaceType::User).is_some());
    for node in device_nodes(spec)? {
        if node.path == "/dev/ptmx" {
            continue;
        }
        create_node(root, &node, userns)?;
    }
    let dev = open_target(root, "/dev", Target::Dir).map_err(dev_err("/dev", "open"))?;
    match unlink_at(dev.as_fd(), b"ptmx") {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(dev_err("/dev/ptmx", "remove")(e)),
        _ => {}
    }
    symlink_at(b"pts/ptmx", dev.as_fd(), b"ptmx").map_err(dev_err("/dev/ptmx", "symlink"))?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (to, name) in links {
        match symlink_at(to.as_bytes(), dev.as_fd(), name.as_bytes()) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(RootfsError::Path { step: "symlink", path: format!("/dev/{name}"), source: e })
            }
            _ => {}
        }
    }
    Ok(())
}

fn create_node(root: BorrowedFd<'_>, node: &DeviceNode, bind: bool) -> Result<(), RootfsError> {
    let path = node.path.as_str();
    let (parent, leaf) = path.rsplit_once('/').unwrap_or(("", path));
    let dir = open_target(root, parent, Target::Dir).map_err(dev_err(path, "create parent of"))?;
    if bind {
        return bind_node(root, path);
    }
    match mknod_at(dir.as_fd(), leaf.as_bytes(), node.node, node.mode, node.major, node.minor) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return bind_node(root, path),
        Err(e) => return Err(dev_err(path, "mknod")(e)),
    }
    // mknod applies the umask: set the mode the spec asked for.
    chmod_at(dir.as_fd(), leaf.as_bytes(), node.mode).map_err(dev_err(path, "chmod"))?;
    lchown_at(dir.as_fd(), leaf.as_bytes(), node.uid, node.gid).map_err(dev_err(path, "chown"))
}

/// Binds the host's node of the same path over an empty file.
fn bind_node(root: BorrowedFd<'_>, path: &str) -> Result<(), RootfsError> {
    let t = open_target(root, path, Target::File).map_err(dev_err(path, "create"))?;
    mount(path, &fd_path(t.as_fd()), "", MountFlags::BIND, "").map_err(dev_err(path, "bind host device"))
}

/// Binds the pty slave `slave` at `/dev/console` of the root `root`
/// (creating an empty file there first).
pub fn bind_console_at(root: BorrowedFd<'_>, slave: &Path) -> Result<(), RootfsError> {
    let t = open_target(root, "/dev/console", Target::File).map_err(dev_err("/dev/console", "create"))?;
    mount(&slave.display().to_string(), &fd_path(t.as_fd()), "", MountFlags::BIND, "")
        .map_err(dev_err("/dev/console", "bind console"))
}

/// [`bind_console_at`] in the current root (after `pivot_root`).
pub fn bind_console(slave: &Path) -> Result<(), RootfsError> {
    let root = open_dir(Path::new("/")).map_err(dev_err("/", "open"))?;
    bind_console_at(root.as_fd(), slave)
}
