//! A container's cgroups, from the OCI spec's `linux.cgroupsPath` and
//! `linux.resources`, on pure v2, hybrid and pure v1 hosts.
//!
//! A [`Manager`] owns one container's groups: one directory per v1
//! hierarchy and one in the cgroup2 tree when it is mounted. On a hybrid
//! host (cgroup2 at `/sys/fs/cgroup/unified` beside the v1 hierarchies)
//! each resource goes where its controller is bound: to the v1
//! hierarchy that holds it, else to the v2 group if the v2 tree offers
//! it; v2-only settings (`unified`, swappiness's absence on v2, …) for a
//! controller that lives on v1 are refused with an error that names the
//! spec field, never dropped. What is written where:
//!
//! ```text
//! resource          cgroup v1 (hierarchy: files)              cgroup v2 (files)
//! memory            memory: limit_in_bytes, memsw.…,          memory.max, memory.swap.max
//!                   soft_limit_in_bytes, swappiness,          (= swap - limit), memory.low
//!                   oom_control
//! cpu               cpu: shares, cfs_{quota,period,burst}_us, cpu.weight (from shares),
//!                   rt_{runtime,period}_us, idle              cpu.max, cpu.max.burst, cpu.idle
//! cpus, mems        cpuset: cpuset.cpus, cpuset.mems          same names
//! pids              pids: pids.max                            pids.max
//! blockIO           blkio: weight, throttle.*                 io.weight, io.max
//! hugepageLimits    hugetlb: hugetlb.<size>.limit_in_bytes    hugetlb.<size>.max
//! network           net_cls.classid, net_prio.ifpriomap       (refused)
//! rdma              rdma: rdma.max                            rdma.max
//! devices           devices: deny `a`, then allow/deny lines  an eBPF program attached to the group
//! unified           (refused)                                 the files, verbatim
//! ```
//!
//! Paths follow runc's cgroupfs rules: an absolute `cgroupsPath` is
//! taken from each hierarchy's root, a relative one from this process's
//! own group (on v2 from its parent, which has no processes of its own),
//! and an empty one means the container ID, relative. `..` never climbs
//! above a root. **Architecture invariant:** the manager never kills;
//! `destroy` removes empty groups and the caller kills first.

mod apply;
pub mod devices;
mod freezer;
pub mod layout;
mod stats;
#[cfg(test)]
mod tests;

pub use layout::{Hierarchy, Layout, Membership};
pub use stats::Stats;

use crate::sys::Errno;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

/// What went wrong with a container's cgroups.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{field}: no cgroup hierarchy on this host offers the {controller} controller")]
    NoController { field: String, controller: String },
    #[error("{field}: {reason}")]
    Unsupported { field: String, reason: String },
    #[error("{field}: invalid value {value:?}: {reason}")]
    Invalid { field: String, value: String, reason: String },
    #[error("cgroup {path}: cannot set the memory limit to {limit} bytes, below the current usage of {usage}")]
    BelowUsage { path: PathBuf, limit: i64, usage: u64 },
    #[error("cgroup {path}: still not {want} after {waited_ms} ms")]
    FreezeTimeout { path: PathBuf, want: &'static str, waited_ms: u64 },
    #[error("cgroup {path}: device program: {source}")]
    DeviceProgram { path: PathBuf, source: io::Error },
    #[error("cgroup {path}: unexpected content {content:?}")]
    Parse { path: PathBuf, content: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io { path: path.to_owned(), source }
}

/// Writes `value` to the control file `dir/file`.
fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let p = dir.join(file);
    std::fs::write(&p, value).map_err(io_err(&p))
}

/// A control file open for writing, for several writes through one
/// descriptor (v1's `devices.allow` takes one rule per write).
struct Control {
    path: PathBuf,
    file: std::fs::File,
}

impl Control {
    fn open(dir: &Path, file: &str) -> Result<Control, CgroupError> {
        let path = dir.join(file);
        let file = std::fs::OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
        Ok(Control { path, file })
    }

    /// One write(2) of `value`.
    fn write(&mut self, value: &str) -> Result<(), CgroupError> {
        use std::io::Write;
        match self.file.write(value.as_bytes()) {
            Ok(n) if n == value.len() => Ok(()),
            Ok(_) => {
                Err(CgroupError::Io { path: self.path.clone(), source: io::Error::from(io::ErrorKind::WriteZero) })
            }
            Err(e) => Err(CgroupError::Io { path: self.path.clone(), source: e }),
        }
    }
}

/// Reads the control file `dir/file`, trimmed.
fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let p = dir.join(file);
    std::fs::read_to_string(&p).map(|s| s.trim().to_owned()).map_err(io_err(&p))
}

/// Reads a control file holding one number (`max` reads as `u64::MAX`).
fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    let s = read(dir, file)?;
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse().map_err(|_| CgroupError::Parse { path: dir.join(file), content: s })
}

/// A container's group directories: what the state directory records so
/// a later command (`kill`, `pause`, `delete`) finds them again.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Paths {
    /// The group in the cgroup2 tree, when cgroup2 is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified: Option<PathBuf>,
    /// v1 controller name (`memory`, `name=systemd`) to its group;
    /// co-mounted controllers share a directory.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub v1: BTreeMap<String, PathBuf>,
}

impl Paths {
    /// Every distinct directory, v1 ones first.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for d in self.v1.values().chain(&self.unified) {
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
        dirs
    }

    /// The groups for `cgroups_path` (see the module doc) on `layout`,
    /// for a process that sits in `own`.
    pub fn resolve(layout: &Layout, own: &Membership, cgroups_path: &str, id: &str) -> Result<Paths, CgroupError> {
        let bad = |reason: &str| CgroupError::Invalid {
            field: "linux.cgroupsPath".into(),
            value: cgroups_path.into(),
            reason: reason.into(),
        };
        let (inner, absolute) = match clean(cgroups_path) {
            Some(p) => p,
            None => clean(id).filter(|(p, _)| !p.as_os_str().is_empty()).ok_or_else(|| bad("empty, and no id"))?,
        };
        if inner.as_os_str().is_empty() {
            return Err(bad("names a hierarchy's root"));
        }
        let below = |mount: &Path, own_path: Option<&str>, mount_root: &str| -> PathBuf {
            if absolute {
                return mount.join(&inner);
            }
            let own_path = own_path.unwrap_or("/");
            let rel = own_path.strip_prefix(mount_root).unwrap_or(own_path).trim_start_matches('/');
            mount.join(rel).join(&inner)
        };
        let mut paths = Paths::default();
        if let Some(v2) = &layout.v2 {
            // The parent of our own v2 group: a group with processes in
            // it cannot enable controllers for its children.
            let parent = own.v2.as_deref().map(|p| Path::new(p).parent().unwrap_or(Path::new("/")));
            let parent = parent.map(|p| p.to_string_lossy().into_owned());
            paths.unified = Some(below(v2, parent.as_deref(), "/"));
        }
        for h in &layout.v1 {
            for c in &h.controllers {
                let dir = below(&h.mountpoint, own.v1.get(c).map(String::as_str), &h.root);
                paths.v1.insert(c.clone(), dir);
            }
        }
        Ok(paths)
    }
}

/// runc's `CleanPath`: `path` lexically cleaned, `..` stopping at the
/// root; `None` when empty. Returns the relative form and whether it was
/// absolute.
fn clean(path: &str) -> Option<(PathBuf, bool)> {
    if path.is_empty() {
        return None;
    }
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    Some((parts.iter().collect(), path.starts_with('/')))
}

/// One container's cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    paths: Paths,
}

impl Manager {
    /// The groups for `cgroups_path` (`linux.cgroupsPath`, may be empty)
    /// and container `id` on this host; nothing is created yet.
    pub fn new(cgroups_path: &str, id: &str) -> Result<Manager, CgroupError> {
        Ok(Manager { paths: Paths::resolve(&Layout::detect(), &Membership::own(), cgroups_path, id)? })
    }

    /// A manager for groups recorded earlier ([`Manager::paths`]).
    pub fn from_paths(paths: Paths) -> Manager {
        Manager { paths }
    }

    /// The group directories, to record in the state directory.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Whether the groups exist (the first one is looked at).
    pub fn exists(&self) -> bool {
        self.paths.dirs().first().is_some_and(|d| d.is_dir())
    }

    /// Creates every group (and missing parents); on v2 it enables the
    /// parents' controllers for their children, on v1 it fills an empty
    /// `cpuset.cpus`/`cpuset.mems` from the parent's, as a new cpuset
    /// group starts without CPUs and refuses processes.
    pub fn create(&self) -> Result<(), CgroupError> {
        for d in self.paths.v1.values() {
            std::fs::create_dir_all(d).map_err(io_err(d))?;
        }
        if let Some(d) = self.paths.v1.get("cpuset") {
            cpuset_inherit(d)?;
        }
        if let Some(u) = &self.paths.unified {
            std::fs::create_dir_all(u).map_err(io_err(u))?;
            enable_controllers(u)?;
        }
        Ok(())
    }

    /// Applies `r`: at create, and again for `update` (only the fields
    /// set are written).
    pub fn apply(&self, r: &crate::runtime::spec::Resources) -> Result<(), CgroupError> {
        apply::apply(self, r)
    }

    /// Moves process `pid` into every group.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        self.paths.dirs().iter().try_for_each(|d| write(d, "cgroup.procs", &pid.to_string()))
    }

    /// Moves process `pid` into every group but the cgroup2 one: for a
    /// process born there ([`Manager::open_unified`] and `clone3`'s
    /// `CLONE_INTO_CGROUP`).
    pub fn add_pid_v1(&self, pid: i32) -> Result<(), CgroupError> {
        let v2 = self.paths.unified.as_ref();
        self.paths.dirs().iter().filter(|d| Some(*d) != v2).try_for_each(|d| write(d, "cgroup.procs", &pid.to_string()))
    }

    /// The cgroup2 group's directory, opened for `CLONE_INTO_CGROUP`;
    /// `None` without a cgroup2 hierarchy.
    pub fn open_unified(&self) -> Result<Option<std::fs::File>, CgroupError> {
        let Some(d) = &self.paths.unified else { return Ok(None) };
        std::fs::File::open(d).map(Some).map_err(io_err(d))
    }

    /// Moves the calling process into every group (`0` names the writer).
    pub fn join_self(&self) -> Result<(), CgroupError> {
        self.paths.dirs().iter().try_for_each(|d| write(d, "cgroup.procs", "0"))
    }

    /// Every process in the groups, sub-groups included (for `kill --all`
    /// and `ps`), read from one hierarchy: the freezer's if there is one
    /// (what `pause` acts on), else the first.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let Some(dir) = self.main_dir() else { return Ok(Vec::new()) };
        let mut pids = Vec::new();
        collect_pids(dir, &mut pids)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    fn main_dir(&self) -> Option<&Path> {
        let v1 = &self.paths.v1;
        v1.get("freezer")
            .or_else(|| v1.get("devices"))
            .or_else(|| v1.values().next())
            .or(self.paths.unified.as_ref())
            .map(PathBuf::as_path)
    }

    /// Freezes every process in the groups and waits until the kernel
    /// reports them frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        freezer::set(self, true)
    }

    /// Thaws the groups and waits until they are.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        freezer::set(self, false)
    }

    /// Whether the groups are frozen (`pause`d).
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        freezer::is_frozen(self)
    }

    /// Usage counters, shaped as runc's `events --stats` data.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        stats::read_stats(self)
    }

    /// Removes the groups and any sub-groups the container made, deepest
    /// first, retrying `EBUSY` for about a second (a process that has just
    /// exited leaves its group a moment later). Missing groups are fine.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for d in self.paths.dirs() {
            if let Err(e) = remove_tree(&d) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Where `controller`'s files are: its v1 group, or the v2 group when
    /// the v2 tree offers it. `None` when neither does.
    fn home(&self, controller: &str) -> Result<Option<(&Path, bool)>, CgroupError> {
        if let Some(d) = self.paths.v1.get(controller) {
            return Ok(Some((d, false)));
        }
        let Some(u) = &self.paths.unified else { return Ok(None) };
        let offered = read(u, "cgroup.controllers")?;
        Ok(offered.split_whitespace().any(|c| c == controller).then_some((u.as_path(), true)))
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let procs = match read(dir, "cgroup.procs") {
        Err(CgroupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(()),
        r => r?,
    };
    for l in procs.lines() {
        out.push(
            l.trim().parse().map_err(|_| CgroupError::Parse { path: dir.join("cgroup.procs"), content: l.into() })?,
        );
    }
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        r => r.map_err(io_err(dir))?,
    };
    for e in entries {
        let e = e.map_err(io_err(dir))?;
        if e.file_type().map_err(io_err(&e.path()))?.is_dir() {
            collect_pids(&e.path(), out)?;
        }
    }
    Ok(())
}

fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CgroupError::Io { path: dir.to_owned(), source: e }),
        Ok(entries) => {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&e.path())?;
                }
            }
        }
    }
    for attempt in 0.. {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Errno::from_io_error(&e) == Some(Errno::BUSY) && attempt < 100 => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(CgroupError::Io { path: dir.to_owned(), source: e }),
        }
    }
    unreachable!("the loop returns")
}

/// Copies `cpuset.cpus`/`cpuset.mems` down from the nearest ancestor that
/// has them into every empty group on the way to `dir`.
fn cpuset_inherit(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else { return Ok(()) };
    if !parent.join("cpuset.cpus").exists() {
        return Ok(());
    }
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if read(dir, file)?.is_empty() {
            if read(parent, file)?.is_empty() {
                cpuset_inherit(parent)?;
            }
            write(dir, file, &read(parent, file)?)?;
        }
    }
    Ok(())
}

/// Enables, in every ancestor of the v2 group `dir` (from the mount's
/// root down), each controller that ancestor is offered, so `dir` gets
/// them all. Per-controller failures are left to the write that needs
/// it (runc does the same): a parent with processes of its own can
/// enable none, and that is only an error if a limit is asked for.
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let mut chain: Vec<&Path> = dir.ancestors().skip(1).take_while(|p| p.join("cgroup.controllers").exists()).collect();
    chain.reverse();
    for p in chain {
        for c in read(p, "cgroup.controllers")?.split_whitespace() {
            let _ = write(p, "cgroup.subtree_control", &format!("+{c}"));
        }
    }
    Ok(())
}
