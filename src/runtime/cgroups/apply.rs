//! Writing `linux.resources` into a container's groups, controller by
//! controller, v1 or v2 wherever each controller lives (table in the
//! parent module's doc). Only fields that are set are written, so the
//! same code serves `create` and `update`.

use super::{devices, read_u64, write, CgroupError, Control, Manager};
use crate::runtime::spec::{BlockIo, Cpu, Memory, Resources, ThrottleDevice};
use crate::sys::bpf;
use crate::sys::Errno;
use std::os::fd::AsFd;
use std::path::Path;

const R: &str = "linux.resources";

/// The v2 files `unified` may name outside a controller's own prefix.
const UNIFIED_CGROUP_FILES: &[&str] = &["cgroup.max.depth", "cgroup.max.descendants"];

fn unsupported(field: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::Unsupported { field: format!("{R}.{field}"), reason: reason.into() }
}

fn on_v1(field: &str, controller: &str) -> CgroupError {
    unsupported(field, format!("needs cgroup v2, but the {controller} controller is on cgroup v1 on this host"))
}

fn on_v2(field: &str) -> CgroupError {
    unsupported(field, "not supported on cgroup v2")
}

impl Manager {
    /// `controller`'s home, or an error naming `field`.
    fn need(&self, controller: &str, field: &str) -> Result<(&Path, bool), CgroupError> {
        self.home(controller)?
            .ok_or_else(|| CgroupError::NoController { field: format!("{R}.{field}"), controller: controller.into() })
    }
}

pub(super) fn apply(m: &Manager, r: &Resources) -> Result<(), CgroupError> {
    if let Some(c) = &r.cpu {
        if !c.cpus.is_empty() || !c.mems.is_empty() {
            let (dir, _) = m.need("cpuset", "cpu.cpus")?;
            if !c.cpus.is_empty() {
                write(dir, "cpuset.cpus", &c.cpus)?;
            }
            if !c.mems.is_empty() {
                write(dir, "cpuset.mems", &c.mems)?;
            }
        }
    }
    apply_devices(m, r)?;
    if let Some(mem) = &r.memory {
        let (dir, v2) = m.need("memory", "memory")?;
        if v2 {
            memory_v2(dir, mem)?;
        } else {
            memory_v1(dir, mem)?;
        }
    }
    if let Some(c) = &r.cpu {
        let any = c.shares.is_some()
            || c.quota.is_some()
            || c.period.is_some()
            || c.burst.is_some()
            || c.realtime_period.is_some()
            || c.realtime_runtime.is_some()
            || c.idle.is_some();
        if any {
            let (dir, v2) = m.need("cpu", "cpu")?;
            if v2 {
                cpu_v2(dir, c)?;
            } else {
                cpu_v1(dir, c)?;
            }
        }
    }
    if let Some(p) = &r.pids {
        let (dir, _) = m.need("pids", "pids.limit")?;
        write(dir, "pids.max", &if p.limit <= 0 { "max".to_owned() } else { p.limit.to_string() })?;
    }
    if let Some(b) = &r.block_io {
        if let Some((dir, true)) = m.home("io")? {
            io_v2(dir, b)?;
        } else {
            blkio_v1(m.need("blkio", "blockIO")?.0, b)?;
        }
    }
    for (i, h) in r.hugepage_limits.iter().enumerate() {
        let field = format!("hugepageLimits[{i}].pageSize");
        if !valid_page_size(&h.page_size) {
            return Err(CgroupError::Invalid {
                field: format!("{R}.{field}"),
                value: h.page_size.clone(),
                reason: "expected a size such as 2MB or 1GB".into(),
            });
        }
        let (dir, v2) = m.need("hugetlb", &field)?;
        let file =
            if v2 { format!("hugetlb.{}.max", h.page_size) } else { format!("hugetlb.{}.limit_in_bytes", h.page_size) };
        write(dir, &file, &h.limit.to_string())?;
    }
    if let Some(n) = &r.network {
        if let Some(id) = n.class_id {
            let dir = v1_only(m, "net_cls", "network.classID")?;
            write(dir, "net_cls.classid", &id.to_string())?;
        }
        for p in &n.priorities {
            let dir = v1_only(m, "net_prio", "network.priorities")?;
            write(dir, "net_prio.ifpriomap", &format!("{} {}", p.name, p.priority))?;
        }
    }
    for (dev, l) in &r.rdma {
        let (dir, _) = m.need("rdma", &format!("rdma[{dev:?}]"))?;
        let v = |x: Option<u32>| x.map_or_else(|| "max".to_owned(), |n| n.to_string());
        write(dir, "rdma.max", &format!("{dev} hca_handle={} hca_object={}", v(l.hca_handles), v(l.hca_objects)))?;
    }
    apply_unified(m, r)
}

/// The v1 group of a controller cgroup v2 does not have.
fn v1_only<'m>(m: &'m Manager, controller: &str, field: &str) -> Result<&'m Path, CgroupError> {
    match m.paths.v1.get(controller) {
        Some(d) => Ok(d),
        None if m.paths.v1.is_empty() => Err(on_v2(field)),
        None => Err(CgroupError::NoController { field: format!("{R}.{field}"), controller: controller.into() }),
    }
}

fn valid_page_size(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && ["KB", "MB", "GB"].contains(&unit)
}

fn apply_devices(m: &Manager, r: &Resources) -> Result<(), CgroupError> {
    if r.devices.is_empty() {
        return Ok(());
    }
    if let Some(dir) = m.paths.v1.get("devices") {
        // Deny everything, then replay the list, as the kernel evaluates
        // v1 exceptions itself. (On update this briefly denies all
        // devices to running processes, as runc did before 1.0.)
        // The kernel takes one rule per write(2); each file is opened
        // once and every rule written through that descriptor.
        let lines = devices::v1_lines(&r.devices)?;
        let mut deny = Control::open(dir, "devices.deny")?;
        deny.write("a")?;
        let mut allow_file = None;
        for (allow, line) in &lines {
            if *allow {
                let f = match &mut allow_file {
                    Some(f) => f,
                    None => allow_file.insert(Control::open(dir, "devices.allow")?),
                };
                f.write(line)?;
            } else {
                deny.write(line)?;
            }
        }
        return Ok(());
    }
    let Some(dir) = &m.paths.unified else {
        return Err(CgroupError::NoController { field: format!("{R}.devices"), controller: "devices".into() });
    };
    attach_device_program(dir, &devices::program(&r.devices)?)
}

/// Attaches `insns` to the v2 group `dir`, then detaches the programs
/// attached before (an update replaces the filter; in between both
/// apply, and both must allow, so nothing is briefly opened up).
pub fn attach_device_program(dir: &Path, insns: &[bpf::Insn]) -> Result<(), CgroupError> {
    let err = |source| CgroupError::DeviceProgram { path: dir.to_owned(), source };
    let group = crate::sys::fs::open_dir(dir).map_err(err)?;
    let old = bpf::prog_query_cgroup_device(group.as_fd()).map_err(err)?;
    let prog = bpf::prog_load_cgroup_device(insns, devices::LICENSE).map_err(err)?;
    bpf::prog_attach_cgroup_device(group.as_fd(), prog.as_fd(), bpf::BPF_F_ALLOW_MULTI).map_err(err)?;
    for id in old {
        let Ok(p) = bpf::prog_get_fd_by_id(id) else { continue };
        match bpf::prog_detach_cgroup_device(group.as_fd(), p.as_fd()) {
            Err(e) if Errno::from_io_error(&e) == Some(Errno::NOENT) => {}
            r => r.map_err(err)?,
        }
    }
    Ok(())
}

fn apply_unified(m: &Manager, r: &Resources) -> Result<(), CgroupError> {
    for (key, value) in &r.unified {
        let field = format!("unified[{key:?}]");
        let bad = |reason: &str| CgroupError::Invalid {
            field: format!("{R}.{field}"),
            value: key.clone(),
            reason: reason.into(),
        };
        if key.contains('/') || key.contains('\0') {
            return Err(bad("must be a file name, without '/'"));
        }
        let Some((controller, rest)) = key.split_once('.') else {
            return Err(bad("must be CONTROLLER.PARAMETER"));
        };
        if controller.is_empty() || rest.is_empty() {
            return Err(bad("must be CONTROLLER.PARAMETER"));
        }
        let Some(dir) = &m.paths.unified else {
            return Err(unsupported(&field, "unified resources need cgroup v2, which this host does not mount"));
        };
        if controller == "cgroup" {
            if !UNIFIED_CGROUP_FILES.contains(&key.as_str()) {
                return Err(bad("only cgroup.max.depth and cgroup.max.descendants may be set"));
            }
        } else if m.paths.v1.contains_key(controller) {
            return Err(on_v1(&field, controller));
        } else if m.home(controller)?.is_none() {
            return Err(CgroupError::NoController { field: format!("{R}.{field}"), controller: controller.into() });
        }
        write(dir, key, value)?;
    }
    Ok(())
}

/// `-1` is "max" in v2 files; `None` for 0 (unset).
fn v2_num(v: i64) -> Option<String> {
    match v {
        0 => None,
        -1 => Some("max".into()),
        n => Some(n.to_string()),
    }
}

fn check_usage(dir: &Path, file: &str, m: &Memory) -> Result<(), CgroupError> {
    if let (Some(true), Some(limit)) = (m.check_before_update, m.limit) {
        let usage = read_u64(dir, file)?;
        if limit > 0 && u64::try_from(limit).is_ok_and(|l| l < usage) {
            return Err(CgroupError::BelowUsage { path: dir.to_owned(), limit, usage });
        }
    }
    Ok(())
}

fn memory_v1(dir: &Path, m: &Memory) -> Result<(), CgroupError> {
    const SWAP: &str = "memory.memsw.limit_in_bytes";
    check_usage(dir, "memory.usage_in_bytes", m)?;
    let limit = m.limit.unwrap_or(0);
    let mut swap = m.swap.unwrap_or(0);
    let has_swap = dir.join(SWAP).exists();
    if limit == -1 && swap == 0 && has_swap {
        swap = -1;
    }
    if swap != 0 && !has_swap {
        return Err(unsupported("memory.swap", "swap accounting is off on this host (no memory.memsw.limit_in_bytes)"));
    }
    let set_limit = || -> Result<(), CgroupError> {
        if limit == 0 {
            return Ok(());
        }
        match write(dir, "memory.limit_in_bytes", &limit.to_string()) {
            Err(CgroupError::Io { source, .. }) if Errno::from_io_error(&source) == Some(Errno::BUSY) => {
                Err(CgroupError::BelowUsage {
                    path: dir.to_owned(),
                    limit,
                    usage: read_u64(dir, "memory.usage_in_bytes")?,
                })
            }
            r => r,
        }
    };
    let set_swap = || if swap == 0 { Ok(()) } else { write(dir, SWAP, &swap.to_string()) };
    // memsw must stay >= the memory limit at every step: raise swap
    // first when it grows past the current limit.
    let swap_first = limit != 0 && swap != 0 && {
        let cur = read_u64(dir, "memory.limit_in_bytes")?;
        swap == -1 || u64::try_from(swap).is_ok_and(|s| cur < s)
    };
    if swap_first {
        set_swap()?;
        set_limit()?;
    } else {
        set_limit()?;
        set_swap()?;
    }
    if let Some(res) = m.reservation.filter(|&v| v != 0) {
        write(dir, "memory.soft_limit_in_bytes", &res.to_string())?;
    }
    // kernel and kernelTCP: ignored, as runc 1.1 does (the kernel dropped
    // kmem limits in 5.16).
    if let Some(s) = m.swappiness.filter(|&s| s != u64::MAX) {
        if s > 100 {
            return Err(CgroupError::Invalid {
                field: format!("{R}.memory.swappiness"),
                value: s.to_string(),
                reason: "valid range is 0-100".into(),
            });
        }
        write(dir, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer == Some(true) {
        write(dir, "memory.oom_control", "1")?;
    }
    if let Some(h) = m.use_hierarchy {
        write(dir, "memory.use_hierarchy", if h { "1" } else { "0" })?;
    }
    Ok(())
}

/// The v2 `memory.swap.max` for the spec's memory+swap `swap` (runc's
/// `ConvertMemorySwapToCgroupV2Value`).
pub fn swap_v2(swap: i64, limit: i64) -> Result<i64, CgroupError> {
    let bad = |reason: &str| CgroupError::Invalid {
        field: format!("{R}.memory.swap"),
        value: swap.to_string(),
        reason: reason.into(),
    };
    if limit == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if limit == 0 || limit == -1 {
        return Err(bad("a swap limit needs a memory limit"));
    }
    if swap < limit {
        return Err(bad("memory+swap must be at least the memory limit"));
    }
    Ok(swap - limit)
}

fn memory_v2(dir: &Path, m: &Memory) -> Result<(), CgroupError> {
    if m.swappiness.is_some_and(|s| s != u64::MAX) {
        return Err(on_v2("memory.swappiness"));
    }
    if m.disable_oom_killer == Some(true) {
        return Err(on_v2("memory.disableOOMKiller"));
    }
    if m.use_hierarchy == Some(false) {
        return Err(unsupported("memory.useHierarchy", "cgroup v2 is always hierarchical"));
    }
    check_usage(dir, "memory.current", m)?;
    let limit = m.limit.unwrap_or(0);
    let spec_swap = m.swap.unwrap_or(0);
    if limit != 0 || spec_swap != 0 {
        let swap = swap_v2(spec_swap, limit)?;
        let text = if swap == 0 && spec_swap > 0 { Some("0".to_owned()) } else { v2_num(swap) };
        if let Some(t) = text {
            if !dir.join("memory.swap.max").exists() {
                return Err(unsupported("memory.swap", "swap accounting is off on this host (no memory.swap.max)"));
            }
            write(dir, "memory.swap.max", &t)?;
        }
        if let Some(t) = v2_num(limit) {
            write(dir, "memory.max", &t)?;
        }
    }
    if let Some(t) = m.reservation.and_then(v2_num) {
        write(dir, "memory.low", &t)?;
    }
    Ok(())
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), runc's formula.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn cpu_v1(dir: &Path, c: &Cpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares.filter(|&s| s != 0) {
        write(dir, "cpu.shares", &s.to_string())?;
    }
    let period = c.period.filter(|&p| p != 0);
    let quota = c.quota.filter(|&q| q != 0);
    if let Some(p) = period {
        // Lowering the period below the current quota's ratio can fail
        // with EINVAL until the quota is written: try quota first then.
        if let Err(e) = write(dir, "cpu.cfs_period_us", &p.to_string()) {
            let Some(q) = quota else { return Err(e) };
            write(dir, "cpu.cfs_quota_us", &q.to_string())?;
            write(dir, "cpu.cfs_period_us", &p.to_string())?;
        }
    }
    if let Some(q) = quota {
        write(dir, "cpu.cfs_quota_us", &q.to_string())?;
    }
    if let Some(b) = c.burst {
        write(dir, "cpu.cfs_burst_us", &b.to_string())?;
    }
    if let Some(p) = c.realtime_period.filter(|&p| p != 0) {
        write(dir, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(rt) = c.realtime_runtime.filter(|&r| r != 0) {
        write(dir, "cpu.rt_runtime_us", &rt.to_string())?;
    }
    if let Some(i) = c.idle {
        write(dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

fn cpu_v2(dir: &Path, c: &Cpu) -> Result<(), CgroupError> {
    if c.realtime_period.is_some_and(|p| p != 0) {
        return Err(on_v2("cpu.realtimePeriod"));
    }
    if c.realtime_runtime.is_some_and(|r| r != 0) {
        return Err(on_v2("cpu.realtimeRuntime"));
    }
    if let Some(s) = c.shares.filter(|&s| s != 0) {
        write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    let quota = c.quota.filter(|&q| q != 0);
    let period = c.period.filter(|&p| p != 0);
    if quota.is_some() || period.is_some() {
        let q = quota.filter(|&q| q > 0).map_or_else(|| "max".to_owned(), |q| q.to_string());
        write(dir, "cpu.max", &format!("{q} {}", period.unwrap_or(100_000)))?;
    }
    if let Some(b) = c.burst {
        write(dir, "cpu.max.burst", &b.to_string())?;
    }
    if let Some(i) = c.idle {
        write(dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

/// blkio weight (10..1000) to io.weight (1..10000), runc's formula.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w.clamp(10, 1000)) - 10) * 9999 / 990
}

fn blkio_v1(dir: &Path, b: &BlockIo) -> Result<(), CgroupError> {
    // CFQ's files, or BFQ's where only BFQ is there.
    let weight_file = if dir.join("blkio.weight").exists() { "blkio.weight" } else { "blkio.bfq.weight" };
    let device_file =
        if dir.join("blkio.weight_device").exists() { "blkio.weight_device" } else { "blkio.bfq.weight_device" };
    let need = |file: &str, field: &str| -> Result<(), CgroupError> {
        if dir.join(file).exists() {
            Ok(())
        } else {
            Err(unsupported(field, format!("this host's blkio controller has no {file} (no CFQ/BFQ scheduler)")))
        }
    };
    if let Some(w) = b.weight.filter(|&w| w != 0) {
        need(weight_file, "blockIO.weight")?;
        write(dir, weight_file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight.filter(|&w| w != 0) {
        need("blkio.leaf_weight", "blockIO.leafWeight")?;
        write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for (i, d) in b.weight_device.iter().enumerate() {
        if let Some(w) = d.weight {
            need(device_file, &format!("blockIO.weightDevice[{i}]"))?;
            write(dir, device_file, &format!("{}:{} {w}", d.major, d.minor))?;
        }
        if let Some(w) = d.leaf_weight {
            need("blkio.leaf_weight_device", &format!("blockIO.weightDevice[{i}].leafWeight"))?;
            write(dir, "blkio.leaf_weight_device", &format!("{}:{} {w}", d.major, d.minor))?;
        }
    }
    let throttles: [(&[ThrottleDevice], &str); 4] = [
        (&b.throttle_read_bps_device, "blkio.throttle.read_bps_device"),
        (&b.throttle_write_bps_device, "blkio.throttle.write_bps_device"),
        (&b.throttle_read_iops_device, "blkio.throttle.read_iops_device"),
        (&b.throttle_write_iops_device, "blkio.throttle.write_iops_device"),
    ];
    for (list, file) in throttles {
        for t in list {
            write(dir, file, &format!("{}:{} {}", t.major, t.minor, t.rate))?;
        }
    }
    Ok(())
}

fn io_v2(dir: &Path, b: &BlockIo) -> Result<(), CgroupError> {
    if b.leaf_weight.is_some_and(|w| w != 0) || b.weight_device.iter().any(|d| d.leaf_weight.is_some()) {
        return Err(on_v2("blockIO.leafWeight"));
    }
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(w) = b.weight.filter(|&w| w != 0) {
        if bfq {
            write(dir, "io.bfq.weight", &w.to_string())?;
        } else {
            write(dir, "io.weight", &blkio_to_io_weight(w).to_string())?;
        }
    }
    for d in &b.weight_device {
        if let Some(w) = d.weight {
            if bfq {
                write(dir, "io.bfq.weight", &format!("{}:{} {w}", d.major, d.minor))?;
            } else {
                write(dir, "io.weight", &format!("{}:{} {}", d.major, d.minor, blkio_to_io_weight(w)))?;
            }
        }
    }
    let throttles: [(&[ThrottleDevice], &str); 4] = [
        (&b.throttle_read_bps_device, "rbps"),
        (&b.throttle_write_bps_device, "wbps"),
        (&b.throttle_read_iops_device, "riops"),
        (&b.throttle_write_iops_device, "wiops"),
    ];
    for (list, key) in throttles {
        for t in list {
            let rate = if t.rate == 0 { "max".to_owned() } else { t.rate.to_string() };
            write(dir, "io.max", &format!("{}:{} {key}={rate}", t.major, t.minor))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(swap_v2(0, -1).unwrap(), -1);
        assert_eq!(swap_v2(300, 100).unwrap(), 200);
        assert_eq!(swap_v2(-1, 100).unwrap(), -1);
        assert!(swap_v2(50, 100).unwrap_err().to_string().contains("memory.swap"));
        assert!(swap_v2(50, 0).is_err());
        assert!(valid_page_size("2MB") && valid_page_size("1GB") && valid_page_size("64KB"));
        assert!(!valid_page_size("2M") && !valid_page_size("MB") && !valid_page_size("../x"));
    }
}
