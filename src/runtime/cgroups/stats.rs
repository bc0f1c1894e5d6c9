//! Usage counters, in the JSON shape of runc's `events --stats` data
//! (runc's `types.Stats`): CPU, memory, pids, block I/O and hugetlb.
//! A controller the container has no group for reads as zeros.

use super::{read, read_u64, CgroupError, Manager};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    /// Page size (`2MB`) to its counters.
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// Memory plus swap, as on v1 (v2 numbers are added up to match).
    pub swap: MemoryEntry,
    /// `memory.stat`, as the kernel names its keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// Bytes; `limit` is `u64::MAX` when unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    /// `Read`, `Write`, … as runc spells them.
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// `None` for a control file that is not there (a controller without
/// the feature, or swap accounting off).
fn opt(r: Result<u64, CgroupError>) -> Result<Option<u64>, CgroupError> {
    match r {
        Err(CgroupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        r => r.map(Some),
    }
}

/// `key value` lines.
fn keyed(dir: &Path, file: &str) -> Result<BTreeMap<String, u64>, CgroupError> {
    let text = read(dir, file)?;
    let mut map = BTreeMap::new();
    for l in text.lines() {
        if let Some((k, v)) = l.split_once(' ') {
            if let Ok(v) = v.trim().parse() {
                map.insert(k.to_owned(), v);
            }
        }
    }
    Ok(map)
}

pub(super) fn read_stats(m: &Manager) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    if let Some((dir, v2)) = m.home("cpu")? {
        if v2 {
            let st = keyed(dir, "cpu.stat")?;
            s.cpu.usage.total = st.get("usage_usec").copied().unwrap_or(0) * 1000;
            s.cpu.usage.user = st.get("user_usec").copied().unwrap_or(0) * 1000;
            s.cpu.usage.kernel = st.get("system_usec").copied().unwrap_or(0) * 1000;
            s.cpu.throttling.throttled_time = st.get("throttled_usec").copied().unwrap_or(0) * 1000;
        } else {
            let st = keyed(dir, "cpu.stat")?;
            s.cpu.throttling.throttled_time = st.get("throttled_time").copied().unwrap_or(0);
        }
        s.cpu.throttling.periods = keyed(dir, "cpu.stat")?.get("nr_periods").copied().unwrap_or(0);
        s.cpu.throttling.throttled_periods = keyed(dir, "cpu.stat")?.get("nr_throttled").copied().unwrap_or(0);
    }
    if let Some(dir) = m.paths.v1.get("cpuacct") {
        s.cpu.usage.total = read_u64(dir, "cpuacct.usage")?;
        let percpu = read(dir, "cpuacct.usage_percpu")?;
        s.cpu.usage.percpu = percpu.split_whitespace().filter_map(|n| n.parse().ok()).collect();
        // cpuacct.stat is in USER_HZ ticks (100 per second on Linux).
        let st = keyed(dir, "cpuacct.stat")?;
        s.cpu.usage.user = st.get("user").copied().unwrap_or(0) * 10_000_000;
        s.cpu.usage.kernel = st.get("system").copied().unwrap_or(0) * 10_000_000;
    }
    if let Some((dir, v2)) = m.home("memory")? {
        s.memory.raw = keyed(dir, "memory.stat")?;
        if v2 {
            s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
            let events = keyed(dir, "memory.events").unwrap_or_default();
            s.memory.usage = MemoryEntry {
                limit: read_u64(dir, "memory.max")?,
                usage: read_u64(dir, "memory.current")?,
                max: opt(read_u64(dir, "memory.peak"))?.unwrap_or(0),
                failcnt: events.get("max").copied().unwrap_or(0),
            };
            if let Some(swap) = opt(read_u64(dir, "memory.swap.current"))? {
                let swap_max = read_u64(dir, "memory.swap.max")?;
                s.memory.swap = MemoryEntry {
                    limit: if swap_max == u64::MAX || s.memory.usage.limit == u64::MAX {
                        u64::MAX
                    } else {
                        swap_max + s.memory.usage.limit
                    },
                    usage: swap + s.memory.usage.usage,
                    max: 0,
                    failcnt: 0,
                };
            }
        } else {
            s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
            let entry = |prefix: &str| -> Result<MemoryEntry, CgroupError> {
                Ok(MemoryEntry {
                    limit: read_u64(dir, &format!("{prefix}limit_in_bytes"))?,
                    usage: read_u64(dir, &format!("{prefix}usage_in_bytes"))?,
                    max: read_u64(dir, &format!("{prefix}max_usage_in_bytes"))?,
                    failcnt: read_u64(dir, &format!("{prefix}failcnt"))?,
                })
            };
            s.memory.usage = entry("memory.")?;
            if dir.join("memory.memsw.usage_in_bytes").exists() {
                s.memory.swap = entry("memory.memsw.")?;
            }
        }
    }
    if let Some((dir, _)) = m.home("pids")? {
        s.pids.current = read_u64(dir, "pids.current")?;
        let limit = read_u64(dir, "pids.max")?;
        s.pids.limit = if limit == u64::MAX { 0 } else { limit };
    }
    if let Some((dir, true)) = m.home("io")? {
        for l in read(dir, "io.stat")?.lines() {
            let mut words = l.split_whitespace();
            let Some((major, minor)) = words.next().and_then(|d| d.split_once(':')) else { continue };
            let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else { continue };
            for kv in words {
                let Some((k, v)) = kv.split_once('=') else { continue };
                let Ok(value) = v.parse() else { continue };
                let e = |op: &str| BlkioEntry { major, minor, op: op.into(), value };
                match k {
                    "rbytes" => s.blkio.io_service_bytes_recursive.push(e("Read")),
                    "wbytes" => s.blkio.io_service_bytes_recursive.push(e("Write")),
                    "rios" => s.blkio.io_serviced_recursive.push(e("Read")),
                    "wios" => s.blkio.io_serviced_recursive.push(e("Write")),
                    _ => {}
                }
            }
        }
    } else if let Some(dir) = m.paths.v1.get("blkio") {
        s.blkio.io_service_bytes_recursive = blkio_v1(dir, "blkio.throttle.io_service_bytes_recursive")?;
        s.blkio.io_serviced_recursive = blkio_v1(dir, "blkio.throttle.io_serviced_recursive")?;
    }
    if let Some((dir, v2)) = m.home("hugetlb")? {
        for size in page_sizes(dir)? {
            let f = |suffix: &str| format!("hugetlb.{size}.{suffix}");
            let h = if v2 {
                Hugetlb {
                    usage: read_u64(dir, &f("current"))?,
                    max: 0,
                    failcnt: keyed(dir, &f("events")).ok().and_then(|e| e.get("max").copied()).unwrap_or(0),
                }
            } else {
                Hugetlb {
                    usage: read_u64(dir, &f("usage_in_bytes"))?,
                    max: read_u64(dir, &f("max_usage_in_bytes"))?,
                    failcnt: read_u64(dir, &f("failcnt"))?,
                }
            };
            s.hugetlb.insert(size, h);
        }
    }
    Ok(s)
}

/// `major:minor Op value` lines (the `Total` line has no device).
fn blkio_v1(dir: &Path, file: &str) -> Result<Vec<BlkioEntry>, CgroupError> {
    let mut out = Vec::new();
    for l in read(dir, file)?.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let [dev, op, value] = w[..] else { continue };
        let Some((major, minor)) = dev.split_once(':') else { continue };
        if let (Ok(major), Ok(minor), Ok(value)) = (major.parse(), minor.parse(), value.parse()) {
            out.push(BlkioEntry { major, minor, op: op.into(), value });
        }
    }
    Ok(out)
}

/// The huge page sizes the group has files for (`hugetlb.2MB.*`).
fn page_sizes(dir: &Path) -> Result<Vec<String>, CgroupError> {
    let mut sizes: Vec<String> = std::fs::read_dir(dir)
        .map_err(|source| CgroupError::Io { path: dir.to_owned(), source })?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let rest = name.strip_prefix("hugetlb.")?;
            let (size, _) = rest.split_once('.')?;
            Some(size.to_owned())
        })
        .collect();
    sizes.sort();
    sizes.dedup();
    Ok(sizes)
}
