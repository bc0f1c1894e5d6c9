//! A container the executor made, as its state directory records it:
//! `<root>/<id>/state.json` (the [`Record`]) and, until `start`,
//! `<root>/<id>/exec.fifo`, on which the container's init waits.
//!
//! The status is never stored; it is read off the kernel each time:
//! no live process with the recorded start time → `stopped`; the exec
//! fifo still there → `created`; the freezer says frozen → `paused`;
//! else `running`. So a container whose init died while nobody watched
//! reads `stopped`, and a recycled pid is not mistaken for the init.

use super::spec::{self, Spec, Status};
use super::ExecError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
        Ok(Container { dir, record })
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

    /// Writes the record (atomically: temporary file, then rename).
    pub fn save(&self) -> Result<(), ExecError> {
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        let bytes = serde_json::to_vec(&self.record).expect("records serialize");
        std::fs::write(&tmp, bytes).map_err(|e| ExecError::io("write", &tmp, e))?;
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
        self.record.pid > 0 && process_start_time(self.record.pid) == Some(self.record.start_time)
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

    #[test]
    fn start_time_of_self_and_of_nothing() {
        let me = std::process::id() as i32;
        let t = process_start_time(me).expect("own start time");
        assert_eq!(process_start_time(me), Some(t));
        assert_eq!(process_start_time(i32::MAX), None);
    }
}
