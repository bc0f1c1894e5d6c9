//! Resource limits through cgroups, on pure v2, hybrid and v1 hosts.
//!
//! A hybrid host mounts cgroup2 at `/sys/fs/cgroup/unified` with few
//! controllers enabled (on strata's CI machines only `hugetlb`) and the v1
//! hierarchies (`memory`, `pids`, `cpu`, …) beside it. Each limit goes to
//! v2 when the v2 mount offers its controller and to the matching v1
//! hierarchy otherwise. A container always gets a v2 group too (when v2 is
//! mounted), so its cgroup namespace has a root of its own.
//!
//! Groups are `strata/<container id>` under each hierarchy's root, created
//! by the supervisor before the container starts and removed after it
//! exits; the container's PID 1 joins them itself before `execve`.

use crate::sys::Errno;
use std::io;
use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// `CGROUP2_SUPER_MAGIC` in `<linux/magic.h>`.
const CGROUP2_MAGIC: u64 = 0x6367_7270;
/// CFS period used for `--cpus` (Docker's default, 100 ms).
const CPU_PERIOD_US: u64 = 100_000;

/// The limits a container's cgroups enforce; `None` leaves a controller's
/// default (unlimited). The runtime's own type, so it knows nothing of
/// how a container records them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `memory.max` / `memory.limit_in_bytes`, bytes.
    pub memory: Option<u64>,
    /// `pids.max`; zero or less means unlimited (`max`).
    pub pids: Option<i64>,
    /// CPU time in billionths of a CPU (`--cpus 1.5` = 1_500_000_000).
    pub nano_cpus: Option<u64>,
}

/// Failure to set up a limit.
#[derive(Debug, thiserror::Error)]
#[error("cgroup {path}: {source}")]
pub struct CgroupError {
    pub path: PathBuf,
    pub source: io::Error,
}

fn cg_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError { path: path.to_owned(), source }
}

/// How the host lays out cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The cgroup2 mount, if any.
    pub v2: Option<PathBuf>,
    /// Controllers the v2 root offers (`cgroup.controllers`).
    pub v2_controllers: Vec<String>,
    /// Whether v1 hierarchies are mounted under `/sys/fs/cgroup/<name>`.
    pub v1: bool,
}

impl Layout {
    /// Reads the host's layout.
    pub fn detect() -> Layout {
        let root = Path::new(CGROUP_ROOT);
        let unified = crate::sys::statfs::fs_magic(root).map(|m| m.0 == CGROUP2_MAGIC).unwrap_or(false);
        let v2 = if unified {
            Some(root.to_owned())
        } else {
            let u = root.join("unified");
            crate::sys::statfs::fs_magic(&u).ok().filter(|m| m.0 == CGROUP2_MAGIC).map(|_| u)
        };
        let v2_controllers = v2
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p.join("cgroup.controllers")).ok())
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        Layout { v2, v2_controllers, v1: !unified && root.join("memory").is_dir() }
    }

    fn v2_has(&self, controller: &str) -> bool {
        self.v2.is_some() && self.v2_controllers.iter().any(|c| c == controller)
    }

    /// Where the limit of `controller` goes: `(hierarchy root, is_v2)`.
    fn home(&self, controller: &str) -> Option<(PathBuf, bool)> {
        if self.v2_has(controller) {
            return self.v2.clone().map(|p| (p, true));
        }
        let v1 = Path::new(CGROUP_ROOT).join(if controller == "cpu" { "cpu" } else { controller });
        (self.v1 && v1.is_dir()).then_some((v1, false))
    }
}

/// The groups of one container.
#[derive(Debug, Clone, Default)]
pub struct Cgroups {
    /// Group directories, one per hierarchy used.
    pub dirs: Vec<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(cg_err(path))
}

/// Makes `ctrl` available to children of the v2 group `dir`'s parents
/// (`+ctrl` in each ancestor's `cgroup.subtree_control`).
fn enable_v2(root: &Path, group: &Path, ctrl: &str) -> Result<(), CgroupError> {
    let mut cur = root.to_owned();
    for comp in group.strip_prefix(root).unwrap_or(group).parent().into_iter().flat_map(|p| p.components()) {
        write(&cur.join("cgroup.subtree_control"), &format!("+{ctrl}"))?;
        cur.push(comp);
    }
    write(&cur.join("cgroup.subtree_control"), &format!("+{ctrl}"))
}

impl Cgroups {
    /// Creates the container's groups and writes its limits.
    pub fn create(layout: &Layout, id: &str, limits: &Limits) -> Result<Cgroups, CgroupError> {
        let mut cg = Cgroups::default();
        let mut dir_for = |base: &Path| -> Result<PathBuf, CgroupError> {
            let d = base.join("strata").join(id);
            if !cg.dirs.contains(&d) {
                std::fs::create_dir_all(&d).map_err(cg_err(&d))?;
                cg.dirs.push(d.clone());
            }
            Ok(d)
        };
        if let Some(v2) = &layout.v2 {
            dir_for(v2)?;
        }
        let mut limit =
            |ctrl: &str, v2_file: &str, v2_val: String, v1: Vec<(&str, String)>| -> Result<(), CgroupError> {
                let (base, is_v2) = layout.home(ctrl).ok_or_else(|| CgroupError {
                    path: PathBuf::from(CGROUP_ROOT),
                    source: io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("no cgroup hierarchy offers the {ctrl} controller"),
                    ),
                })?;
                let d = dir_for(&base)?;
                if is_v2 {
                    enable_v2(&base, &d, ctrl)?;
                    write(&d.join(v2_file), &v2_val)
                } else {
                    v1.into_iter().try_for_each(|(f, v)| write(&d.join(f), &v))
                }
            };
        if let Some(m) = limits.memory {
            limit("memory", "memory.max", m.to_string(), vec![("memory.limit_in_bytes", m.to_string())])?;
        }
        if let Some(p) = limits.pids {
            let v = if p <= 0 { "max".to_owned() } else { p.to_string() };
            limit("pids", "pids.max", v.clone(), vec![("pids.max", v)])?;
        }
        if let Some(n) = limits.nano_cpus {
            let quota = n.saturating_mul(CPU_PERIOD_US) / 1_000_000_000;
            limit(
                "cpu",
                "cpu.max",
                format!("{quota} {CPU_PERIOD_US}"),
                vec![("cpu.cfs_period_us", CPU_PERIOD_US.to_string()), ("cpu.cfs_quota_us", quota.to_string())],
            )?;
        }
        Ok(cg)
    }

    /// Moves the calling process into every group (`0` names the writer).
    pub fn join(&self) -> Result<(), CgroupError> {
        self.dirs.iter().try_for_each(|d| write(&d.join("cgroup.procs"), "0"))
    }

    /// Moves process `pid` into every group (for `exec`).
    pub fn join_pid(&self, pid: i32) -> Result<(), CgroupError> {
        self.dirs.iter().try_for_each(|d| write(&d.join("cgroup.procs"), &pid.to_string()))
    }

    /// Finds the groups a container has (for `exec`).
    pub fn existing(layout: &Layout, id: &str) -> Cgroups {
        let mut dirs = Vec::new();
        let mut bases: Vec<PathBuf> = layout.v2.iter().cloned().collect();
        if layout.v1 {
            bases.extend(["memory", "pids", "cpu"].iter().map(|c| Path::new(CGROUP_ROOT).join(c)));
        }
        for b in bases {
            let d = b.join("strata").join(id);
            if d.is_dir() {
                dirs.push(d);
            }
        }
        Cgroups { dirs }
    }

    /// Removes the groups (after the container's processes are gone).
    pub fn remove(&self) {
        for d in &self.dirs {
            for _ in 0..50 {
                match std::fs::remove_dir(d) {
                    Err(e) if Errno::from_io_error(&e) == Some(Errno::BUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    _ => break,
                }
            }
        }
    }
}
