//! A container the executor made, as its state directory records it:
//! `<root>/<id>/state.json` (the [`Record`]) and, until `start`,
//! `<root>/<id>/exec.fifo`, on which the container's init waits.
//!
//! The status is never stored; it is read off the kernel each time:
//! no live process with the recorded start time → `stopped`; the exec
//! fifo still there → `created`; the freezer says frozen → `paused`;
//! else `running`. So a container whose init died while nobody watched
//! reads `stopped`, and a recycled pid is not mistaken for the init.
//!
//! Every signal, wait and namespace join goes through a pidfd, never the
//! bare pid ([`Container::init_pidfd`]): the one `create` got from
//! `clone(CLONE_PIDFD)` when this process made the container, or else
//! `pidfd_open(pid)` *verified* after the open — the recorded start time
//! is read from `/proc/<pid>` and the descriptor is checked to still name
//! a live process. A live process keeps its pid, so the descriptor names
//! the process that `/proc` showed, the init; and whatever happens later,
//! a signal through it reaches the init or nobody. (A `pidfd_open` of a
//! pid read back from `state.json` alone would name whichever process has
//! that pid now.)

use super::spec::{self, Spec, Status};
use super::ExecError;
use crate::sys::event::{poll, PollFd, PollFlags};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where runc keeps its state when run as root; ours, by the same rule.
pub const DEFAULT_STATE_ROOT: &str = "/run/strata-runc";

/// What the state directory records of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Host pid of the container's init.
    pub pid: i32,
    /// The init's start time in clock ticks since boot (`/proc/<pid>/stat`
    /// field 22): tells the init from a later process given the same pid.
    pub start_time: u64,
    /// Absolute path of the bundle.
    pub bundle: PathBuf,
    /// Absolute path of the root filesystem on the host.
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    /// The container's cgroups, one per hierarchy.
    pub cgroups: super::cgroups::Paths,
    /// The spec the container was created from (the bundle may change
    /// afterwards; hooks, exec and delete use this copy).
    pub config: Spec,
}

/// A container in a state root.
#[derive(Debug, Clone)]
pub struct Container {
    pub dir: PathBuf,
    pub record: Record,
    /// The init's pidfd from `clone(CLONE_PIDFD)`, held by the process
    /// that created the container (its parent: the supervisor, `runc
    /// run`); `None` when loaded from the state directory.
    pub pidfd: Option<Arc<OwnedFd>>,
}

/// runc's rule for container IDs: letters, digits, `_`, `+`, `-`, `.`,
/// and not `.` or `..`.
pub fn check_id(id: &str) -> Result<(), ExecError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ExecError::InvalidId(id.to_owned()))
    }
}

/// Makes the state root (`--root`) if missing: 0700, as runc's, since
/// a container's record names its pid, bundle and cgroup. One made looser
/// before is tightened.
pub fn make_state_root(root: &Path) -> Result<(), ExecError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(root) {
        Ok(()) => {}
        Err(e) => return Err(ExecError::io("create", root, e)),
    }
    let md = std::fs::metadata(root).map_err(|e| ExecError::io("stat", root, e))?;
    let mode = md.permissions().mode() & 0o7777;
    if mode & !0o700 != 0 {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(|e| ExecError::io("chmod", root, e))?;
    }
    Ok(())
}

/// Makes one container's state directory, 0711 whatever the umask (as
/// runc's): private listing, but the init, already its spec's user, can
/// still open `exec.fifo` in it through a descriptor of the directory.
pub fn make_state_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(0o711).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
}

/// The state directory of `id` under `root`.
pub fn dir_of(root: &Path, id: &str) -> Result<PathBuf, ExecError> {
    check_id(id)?;
    Ok(root.join(id))
}

impl Container {
    /// Loads `id` from `root`; `ExecError::NotFound` when there is none.
    pub fn load(root: &Path, id: &str) -> Result<Container, ExecError> {
        let dir = dir_of(root, id)?;
        let path = dir.join("state.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ExecError::NotFound(id.to_owned())),
            Err(e) => return Err(ExecError::io("read", &path, e)),
        };
        let record: Record = serde_json::from_slice(&bytes)
            .map_err(|e| ExecError::Corrupt { path: path.clone(), message: e.to_string() })?;
        Ok(Container { dir, record, pidfd: None })
    }

    /// Every container under `root`, by ID (unreadable entries skipped).
    pub fn list(root: &Path) -> Result<Vec<Container>, ExecError> {
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ExecError::io("read", root, e)),
        };
        let mut out: Vec<Container> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter_map(|id| Container::load(root, &id).ok())
            .collect();
        out.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        Ok(out)
    }

    /// Writes the record (atomically: temporary file, then rename), mode
    /// 0600 as runc's `state.json`.
    pub fn save(&self) -> Result<(), ExecError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        let bytes = serde_json::to_vec(&self.record).expect("records serialize");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(|e| ExecError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| ExecError::io("rename", &path, e))
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    /// Whether the recorded init still lives (a zombie does not count).
    pub fn init_alive(&self) -> bool {
        matches!(self.init_pidfd(), Ok(Some(_)))
    }

    /// A pidfd for the init while it lives (`None` once it has exited or
    /// its pid names another process): the clone-time one when this
    /// process created the container, else `pidfd_open` verified against
    /// the recorded start time (see the module doc).
    pub fn init_pidfd(&self) -> std::io::Result<Option<Arc<OwnedFd>>> {
        if let Some(fd) = &self.pidfd {
            return Ok((!has_exited(fd.as_fd())?).then(|| Arc::clone(fd)));
        }
        Ok(open_verified(self.record.pid, self.record.start_time)?.map(Arc::new))
    }

    /// Waits for the init, our child, to exit and reaps it; returns its
    /// exit code (128 + signal when killed). Only for the process that
    /// created the container (it holds the clone-time pidfd).
    pub fn wait_init(&self) -> Result<i32, ExecError> {
        let fd = self.pidfd.as_ref().ok_or_else(|| ExecError::State {
            id: self.id().to_owned(),
            message: "only the process that created the container can wait for its init".into(),
        })?;
        let options = crate::sys::process::WaitIdOptions::EXITED;
        loop {
            match crate::sys::process::waitid_pidfd(fd.as_fd(), options) {
                Ok(Some(status)) => {
                    let code = status.exit_status().or_else(|| status.terminating_signal().map(|s| 128 + s));
                    if let Some(code) = code {
                        return Ok(code);
                    }
                }
                Ok(None) | Err(crate::sys::Errno::INTR) => {}
                Err(e) => return Err(ExecError::io("wait for the init", &self.dir, e.into())),
            }
        }
    }

    /// The status as the kernel shows it now.
    pub fn status(&self) -> Status {
        if !self.init_alive() {
            Status::Stopped
        } else if self.fifo().exists() {
            Status::Created
        } else if self.cgroups().is_frozen().unwrap_or(false) {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// The container's cgroups, from the recorded paths.
    pub fn cgroups(&self) -> super::cgroups::Manager {
        super::cgroups::Manager::from_paths(self.record.cgroups.clone())
    }

    /// The OCI state document (with runc's extra `rootfs`, `created` and
    /// `owner`).
    pub fn state(&self) -> spec::State {
        let status = self.status();
        self.state_as(status)
    }

    /// The state document with a given status (hooks see `creating`).
    pub fn state_as(&self, status: Status) -> spec::State {
        let mut extra = BTreeMap::new();
        extra.insert("rootfs".to_owned(), self.record.rootfs.display().to_string().into());
        extra.insert("created".to_owned(), self.record.created.clone().into());
        extra.insert("owner".to_owned(), "".into());
        spec::State {
            oci_version: spec::VERSION.to_owned(),
            id: self.record.id.clone(),
            status,
            pid: (status != Status::Stopped).then_some(self.record.pid),
            bundle: self.record.bundle.display().to_string(),
            annotations: self.record.config.annotations.clone(),
            extra,
        }
    }
}

/// `pidfd_open(pid)`, kept only if the process it names is the one
/// started at `start_time`: that start time is read from `/proc/<pid>`
/// *after* the open, and the descriptor must still name a live process
/// then — a live process keeps its pid, so `/proc/<pid>` was it.
pub fn open_verified(pid: i32, start_time: u64) -> std::io::Result<Option<OwnedFd>> {
    if pid <= 0 {
        return Ok(None);
    }
    let fd = match crate::sys::event::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(crate::sys::Errno::SRCH.raw_os_error()) => return Ok(None),
        Err(e) => return Err(e),
    };
    if process_start_time(pid) != Some(start_time) || has_exited(fd.as_fd())? {
        return Ok(None);
    }
    Ok(Some(fd))
}

/// Whether the process `pidfd` names has exited (a zombie has): its pidfd
/// polls readable then.
pub fn has_exited(pidfd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<bool> {
    wait_exit(pidfd, Some(Duration::ZERO))
}

/// Waits up to `timeout` (`None`: no limit) for the process `pidfd` names
/// to exit; whether it has.
pub fn wait_exit(pidfd: std::os::fd::BorrowedFd<'_>, timeout: Option<Duration>) -> std::io::Result<bool> {
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    loop {
        match poll(&mut fds, timeout) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Field 22 of `/proc/<pid>/stat` (start time), or `None` when the
/// process is gone or a zombie.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // `rest` starts at field 3 (state).
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc() {
        for good in ["a", "abc-DEF_1.2+3", "x".repeat(64).as_str()] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x", "é"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    /// A recycled pid: a record naming a live process with another start
    /// time yields no pidfd, so nothing is signalled through it.
    #[test]
    fn a_pid_with_another_start_time_is_not_the_init() {
        let mut child = std::process::Command::new("sleep").arg("100").spawn().unwrap();
        let pid = child.id() as i32;
        let start = process_start_time(pid).expect("child start time");
        let real = open_verified(pid, start).unwrap();
        assert!(real.is_some(), "the recorded process itself is verified");
        assert!(open_verified(pid, start + 1).unwrap().is_none(), "another start time is refused");
        assert!(open_verified(i32::MAX, start).unwrap().is_none());
        let fd = real.unwrap();
        assert!(!has_exited(fd.as_fd()).unwrap());
        let _ = child.kill();
        let _ = child.wait();
        assert!(has_exited(fd.as_fd()).unwrap(), "a reaped process's pidfd reads exited");
        assert!(open_verified(pid, start).unwrap().is_none(), "gone");
    }

    /// A container loaded from its state directory judges its init by the
    /// verified pidfd; one holding the clone-time pidfd by that.
    #[test]
    fn init_alive_follows_the_pidfd() {
        let mut child = std::process::Command::new("sleep").arg("100").spawn().unwrap();
        let pid = child.id() as i32;
        let record = Record {
            id: "t".into(),
            pid,
            start_time: process_start_time(pid).unwrap(),
            bundle: "/".into(),
            rootfs: "/".into(),
            created: String::new(),
            cgroups: Default::default(),
            config: serde_json::from_str(r#"{"ociVersion":"1.2.0"}"#).unwrap(),
        };
        let loaded = Container { dir: "/nonexistent".into(), record: record.clone(), pidfd: None };
        assert!(loaded.init_alive());
        let stale =
            Container { record: Record { start_time: record.start_time + 7, ..record.clone() }, ..loaded.clone() };
        assert!(!stale.init_alive(), "a pid whose start time differs is not the init");
        let _ = child.kill();
        let _ = child.wait();
        assert!(!loaded.init_alive());
    }

    #[test]
    fn start_time_of_self_and_of_nothing() {
        let me = std::process::id() as i32;
        let t = process_start_time(me).expect("own start time");
        assert_eq!(process_start_time(me), Some(t));
        assert_eq!(process_start_time(i32::MAX), None);
    }
}
