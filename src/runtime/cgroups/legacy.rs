//! strata's own containers (`strata run`) before they go through an OCI
//! spec: the three limits they record, applied by a [`Manager`] to the
//! groups `/strata/<container id>`. To be removed once `strata run`
//! builds a spec with `cgroupsPath: /strata/<id>`.

use super::{CgroupError, Layout, Manager, Paths};
use crate::runtime::spec::{Cpu, Memory, Pids, Resources};
use std::path::PathBuf;

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

impl Limits {
    /// The same limits as OCI `linux.resources`.
    pub fn resources(&self) -> Resources {
        Resources {
            memory: self
                .memory
                .map(|m| Memory { limit: Some(i64::try_from(m).unwrap_or(i64::MAX)), ..Memory::default() }),
            pids: self.pids.map(|limit| Pids { limit }),
            cpu: self.nano_cpus.map(|n| Cpu {
                quota: Some(i64::try_from(n.saturating_mul(CPU_PERIOD_US) / 1_000_000_000).unwrap_or(i64::MAX)),
                period: Some(CPU_PERIOD_US),
                ..Cpu::default()
            }),
            ..Resources::default()
        }
    }
}

/// The groups of one container.
#[derive(Debug, Clone, Default)]
pub struct Cgroups {
    /// Group directories, one per hierarchy used.
    pub dirs: Vec<PathBuf>,
}

fn manager(layout: &Layout, id: &str) -> Result<Manager, CgroupError> {
    let own = super::Membership::default();
    Ok(Manager::from_paths(Paths::resolve(layout, &own, &format!("/strata/{id}"), id)?))
}

impl Cgroups {
    /// Creates the container's groups and writes its limits.
    pub fn create(layout: &Layout, id: &str, limits: &Limits) -> Result<Cgroups, CgroupError> {
        let m = manager(layout, id)?;
        m.create()?;
        if let Err(e) = m.apply(&limits.resources()) {
            let _ = m.destroy();
            return Err(e);
        }
        Ok(Cgroups { dirs: m.paths().dirs() })
    }

    /// Moves the calling process into every group (`0` names the writer).
    pub fn join(&self) -> Result<(), CgroupError> {
        self.dirs.iter().try_for_each(|d| super::write(d, "cgroup.procs", "0"))
    }

    /// Moves process `pid` into every group (for `exec`).
    pub fn join_pid(&self, pid: i32) -> Result<(), CgroupError> {
        self.dirs.iter().try_for_each(|d| super::write(d, "cgroup.procs", &pid.to_string()))
    }

    /// Finds the groups a container has (for `exec`).
    pub fn existing(layout: &Layout, id: &str) -> Cgroups {
        let dirs = manager(layout, id).map(|m| m.paths().dirs()).unwrap_or_default();
        Cgroups { dirs: dirs.into_iter().filter(|d| d.is_dir()).collect() }
    }

    /// Removes the groups (after the container's processes are gone).
    pub fn remove(&self) {
        for d in &self.dirs {
            let _ = Manager::from_paths(Paths { unified: Some(d.clone()), ..Paths::default() }).destroy();
        }
    }
}
