//! Where the suite's filesystems live, and what that storage is.
//!
//! Three targets ([`Target`]):
//!
//! - **loop** (the default): a fresh filesystem per setup on a loop device
//!   over a sparse file in the scratch directory, with direct I/O where the
//!   host allows it (see [`crate::scratch`]);
//! - **`--on DIR`**: an existing mounted filesystem, type taken from the
//!   mount table, nothing formatted; every setup that fits it runs in one
//!   fresh subdirectory that is removed afterwards ([`super::place`]);
//! - **`--device DEV --destroy-data`**: a block device formatted per setup
//!   with the same mkfs lines as the loop setups, mounted under the scratch
//!   directory. Refused when the device, a partition of it or a device
//!   built on it is mounted or used as swap (even with `--destroy-data`),
//!   and refused without `--destroy-data` whatever is on it; the error says
//!   what is (`blkid -p`, else our own superblock probe).
//!
//! [`StorageFacts`] names the storage in the report: the device, its model
//! (`/sys/block/X/device/model`, or `loop over FILE`), rotational flag, I/O
//! scheduler and size, all read from sysfs (no ioctl).
//!
//! **Architecture invariant**: this module decides and describes; it mounts
//! and formats nothing ([`super::place`] does).

use super::Setup;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Why a target cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} is not a block device")]
    NotBlockDevice(PathBuf),
    #[error("{0} is not a directory")]
    NotDirectory(PathBuf),
    #[error("no mount found for {0} in /proc/self/mountinfo")]
    NoMount(PathBuf),
    #[error("refusing to format {device}: it is in use ({uses})")]
    InUse { device: PathBuf, uses: String },
    #[error("refusing to format {device} without --destroy-data (every byte on it is lost); it holds: {found}")]
    NeedsDestroyData { device: PathBuf, found: String },
}

/// An existing mounted filesystem (`--on DIR`).
#[derive(Debug, Clone, PartialEq)]
pub struct OnDir {
    pub dir: PathBuf,
    /// The filesystem type, from the mount table (`ext4`, `xfs`, `tmpfs`).
    pub fstype: String,
    /// The mount's source (`/dev/sda2`, `tmpfs`).
    pub source: String,
    /// Its mount point.
    pub mount_point: String,
}

/// A block device to format (`--device DEV --destroy-data`), checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub path: PathBuf,
    /// What was on it before (the signature probe's answer).
    pub found: String,
}

/// Where the setups' filesystems are made.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Target {
    #[default]
    Loop,
    On(OnDir),
    Device(Device),
}

impl Target {
    /// `--on DIR`: a directory on a mounted filesystem.
    pub fn on(dir: &Path) -> Result<Target, StorageError> {
        let meta = std::fs::metadata(dir).map_err(|source| StorageError::Io { path: dir.to_owned(), source })?;
        if !meta.is_dir() {
            return Err(StorageError::NotDirectory(dir.to_owned()));
        }
        let dir = dir.canonicalize().map_err(|source| StorageError::Io { path: dir.to_owned(), source })?;
        let m = crate::bench::env::mount_of(&dir).ok_or_else(|| StorageError::NoMount(dir.clone()))?;
        Ok(Target::On(OnDir { dir, fstype: m.fstype, source: m.source, mount_point: m.mount_point }))
    }

    /// `--device DEV [--destroy-data]`: refused when in use, and without
    /// `destroy_data` whatever it holds.
    pub fn device(dev: &Path, destroy_data: bool) -> Result<Target, StorageError> {
        let io = |source| StorageError::Io { path: dev.to_owned(), source };
        let path = dev.canonicalize().map_err(io)?;
        let meta = std::fs::metadata(&path).map_err(io)?;
        if !meta.file_type().is_block_device() {
            return Err(StorageError::NotBlockDevice(dev.to_owned()));
        }
        let uses = uses_of(&path);
        if !uses.is_empty() {
            return Err(StorageError::InUse { device: path, uses: uses.join("; ") });
        }
        let found = signatures(&path).unwrap_or_else(|| "no filesystem or partition-table signature found".into());
        if !destroy_data {
            return Err(StorageError::NeedsDestroyData { device: path, found });
        }
        Ok(Target::Device(Device { path, found }))
    }

    /// The filesystem type a setup's filesystem will have.
    pub fn fstype(&self, setup: &Setup) -> String {
        match self {
            Target::On(on) => on.fstype.clone(),
            Target::Loop | Target::Device(_) => setup.fs.fstype().to_owned(),
        }
    }

    /// The setup's label on this target (`overlay on tmpfs` for `--on`).
    pub fn label(&self, setup: &Setup) -> String {
        setup.label_on(&self.fstype(setup))
    }

    /// The setups to run, each with why it is skipped (if it is). On an
    /// existing filesystem the backing-filesystem variants of one driver
    /// collapse into one setup, and a driver that needs another filesystem
    /// is skipped.
    pub fn plan(&self, setups: &[Setup]) -> Vec<(Setup, Option<String>)> {
        let Target::On(on) = self else {
            return setups.iter().map(|s| (*s, None)).collect();
        };
        let mut out: Vec<(Setup, Option<String>)> = Vec::new();
        for s in setups {
            let dup = out.iter().any(|(o, _)| o.driver == s.driver && o.options == s.options && o.only == s.only);
            if dup {
                continue;
            }
            let skip = match s.driver {
                "btrfs" if on.fstype != "btrfs" => {
                    Some(format!("the btrfs driver needs a btrfs filesystem; {} is {}", on.dir.display(), on.fstype))
                }
                "overlay" if on.fstype == "overlay" => Some(format!(
                    "{} is itself an overlay, which cannot hold an overlay's upper layer",
                    on.dir.display()
                )),
                _ => None,
            };
            out.push((*s, skip));
        }
        out
    }

    /// One line for the report: where this run's filesystems were.
    pub fn describe(&self, scratch_dir: &Path) -> String {
        match self {
            Target::Loop => {
                format!("a fresh filesystem per setup on a loop device over a file in {}", scratch_dir.display())
            }
            Target::On(on) => format!(
                "--on {}: the existing {} mounted at {} from {} (nothing formatted)",
                on.dir.display(),
                on.fstype,
                on.mount_point,
                on.source
            ),
            Target::Device(d) => {
                format!("--device {}: formatted per setup (before: {})", d.path.display(), d.found)
            }
        }
    }

    /// How cold samples are made cold on this target, for the method.
    pub fn cold_method(&self) -> &'static str {
        match self {
            Target::Loop => {
                "cold (loop): syncfs + posix_fadvise(DONTNEED) on the file, mincore proves none of its pages \
                 resident; the loop device does direct I/O (or the backing file's pages are dropped) and \
                 mincore proves none of the backing file is in the host's cache."
            }
            Target::On(_) => {
                "cold (--on): the filesystem is not ours to remount, so syncfs + posix_fadvise(DONTNEED) on the \
                 file alone, and mincore proves none of its pages resident; metadata (inode, dentry, the \
                 device's buffer cache) may stay cached."
            }
            Target::Device(_) => {
                "cold (--device): syncfs + posix_fadvise(DONTNEED) on the file, mincore proves none of its pages \
                 resident; the device is a real block device, so a miss goes to it."
            }
        }
    }
}

/// What the report says about the storage under one setup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageFacts {
    /// `loop device`, `block device` or `mounted directory`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// `/sys/block/X/device/model`, or `loop over FILE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotational: Option<bool>,
    /// The active I/O scheduler (the bracketed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// The filesystem the setup ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fstype: Option<String>,
    /// `--on`: the mount's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_source: Option<String>,
    /// Loop devices: the backing file and the filesystem it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing_fs: Option<String>,
    /// Loop devices: whether they do direct I/O on the backing file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_io: Option<bool>,
    /// `--on`: whether the filesystem clones files (`FICLONE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflink: Option<bool>,
}

impl StorageFacts {
    /// The facts of block device `dev` (whatever sysfs answers).
    pub fn of_block_device(dev: &Path) -> StorageFacts {
        let mut f =
            StorageFacts { kind: "block device".into(), device: Some(dev.display().to_string()), ..Default::default() };
        let Some(name) = dev.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        else {
            return f;
        };
        let Ok(node) = Path::new("/sys/class/block").join(&name).canonicalize() else { return f };
        // A partition's queue and model are its disk's.
        let disk = if node.join("partition").exists() { node.parent().map(Path::to_owned) } else { Some(node.clone()) };
        let disk = disk.unwrap_or_else(|| node.clone());
        let read = |p: PathBuf| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
        f.size_bytes = read(node.join("size")).and_then(|s| s.parse::<u64>().ok()).map(|s| s * 512);
        f.rotational = read(disk.join("queue/rotational")).map(|s| s == "1");
        f.scheduler = read(disk.join("queue/scheduler")).map(|s| active_scheduler(&s));
        if let Some(backing) = read(disk.join("loop/backing_file")) {
            f.kind = "loop device".into();
            f.model = Some(format!("loop over {backing}"));
            f.backing_fs = crate::bench::env::mount_of(Path::new(&backing)).map(|m| m.fstype);
            f.backing_file = Some(backing);
            f.direct_io = read(disk.join("loop/dio")).map(|s| s == "1");
        } else {
            f.model = read(disk.join("device/model")).filter(|s| !s.is_empty());
        }
        f
    }

    /// One line: `/dev/sdb (Samsung SSD 870, non-rotational, scheduler
    /// mq-deadline, 465.8 GiB)`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(t) = &self.fstype {
            parts.push(t.clone());
        }
        if let Some(s) = &self.mount_source {
            parts.push(format!("from {s}"));
        }
        if let Some(d) = &self.device {
            parts.push(format!("on {d}"));
        }
        if let Some(m) = &self.model {
            parts.push(m.clone());
        }
        if let Some(fs) = &self.backing_fs {
            parts.push(format!("backing file on {fs}"));
        }
        if let Some(d) = self.direct_io {
            parts.push(format!("direct I/O {}", if d { "on" } else { "off" }));
        }
        if let Some(r) = self.rotational {
            parts.push(if r { "rotational".into() } else { "non-rotational".into() });
        }
        if let Some(s) = &self.scheduler {
            parts.push(format!("scheduler {s}"));
        }
        if let Some(b) = self.size_bytes {
            parts.push(super::stats::fmt_size(b));
        }
        if let Some(r) = self.reflink {
            parts.push(format!("FICLONE {}", if r { "yes" } else { "no" }));
        }
        format!("{}: {}", self.kind, parts.join(", "))
    }
}

/// The bracketed entry of `/sys/block/X/queue/scheduler`
/// (`none [mq-deadline] kyber` → `mq-deadline`); a lone `none` as is.
pub fn active_scheduler(text: &str) -> String {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or(text.trim())
        .to_owned()
}

/// Everything that uses `dev` now: mounts of it, of its partitions or of
/// devices stacked on it (device-mapper, md), and swap on any of them.
pub fn uses_of(dev: &Path) -> Vec<String> {
    let mut nodes: Vec<(String, String)> = Vec::new(); // (name, "major:minor")
    if let Some(name) = dev.file_name().map(|n| n.to_string_lossy().into_owned()) {
        collect_stack(&name, &mut nodes, 0);
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    let mut uses = Vec::new();
    for (name, devno) in &nodes {
        let node = format!("/dev/{name}");
        let mapper = std::fs::read_to_string(format!("/sys/class/block/{name}/dm/name"))
            .ok()
            .map(|n| format!("/dev/mapper/{}", n.trim()));
        for line in mountinfo.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let source = line.split_once(" - ").and_then(|(_, post)| post.split(' ').nth(1)).unwrap_or("");
            let same_source = source == node
                || Some(source) == mapper.as_deref()
                || Path::new(source).canonicalize().ok().as_deref() == Some(Path::new(&node));
            if f.get(2) == Some(&devno.as_str()) || same_source {
                uses.push(format!("{node} is mounted at {}", f.get(4).unwrap_or(&"?")));
            }
        }
        for line in swaps.lines().skip(1) {
            let src = line.split_whitespace().next().unwrap_or("");
            if src == node || Path::new(src).canonicalize().ok().as_deref() == Some(Path::new(&node)) {
                uses.push(format!("{node} is in use as swap"));
            }
        }
    }
    uses.dedup();
    uses
}

/// `name`, its partitions, and (recursively) the devices built on them
/// (`holders/`), with their `major:minor`.
fn collect_stack(name: &str, out: &mut Vec<(String, String)>, depth: usize) {
    if depth > 8 || out.iter().any(|(n, _)| n == name) {
        return;
    }
    let dir = Path::new("/sys/class/block").join(name);
    let Ok(devno) = std::fs::read_to_string(dir.join("dev")) else { return };
    out.push((name.to_owned(), devno.trim().to_owned()));
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let child = e.file_name().to_string_lossy().into_owned();
            if child.starts_with(name) && e.path().join("partition").exists() {
                collect_stack(&child, out, depth + 1);
            }
        }
    }
    if let Ok(holders) = std::fs::read_dir(dir.join("holders")) {
        for h in holders.flatten() {
            collect_stack(&h.file_name().to_string_lossy(), out, depth + 1);
        }
    }
}

/// What signatures `dev` holds: `blkid -p`'s line, else `wipefs -n`'s,
/// else our own superblock probe; `None` when all say nothing.
pub fn signatures(dev: &Path) -> Option<String> {
    let run = |tool: &str, args: &[&str]| -> Option<String> {
        let out = std::process::Command::new(tool).args(args).arg(dev).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.is_empty()).then(|| format!("{tool}: {}", text.replace('\n', "; ")))
    };
    run("blkid", &["-p"]).or_else(|| run("wipefs", &["-n"])).or_else(|| {
        let mut head = vec![0u8; 0x10048];
        let f = std::fs::File::open(dev).ok()?;
        let n = read_up_to(&f, &mut head);
        probe_superblock(&head[..n]).map(|fs| format!("a {fs} superblock (strata's probe)"))
    })
}

fn read_up_to(mut f: &std::fs::File, buf: &mut [u8]) -> usize {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

/// The filesystem whose superblock magic `head` (a device's first bytes)
/// carries: ext2/3/4 (`0xEF53` at 1080), XFS (`XFSB` at 0), btrfs
/// (`_BHRfS_M` at 65600), swap (`SWAPSPACE2` before 4096).
pub fn probe_superblock(head: &[u8]) -> Option<&'static str> {
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    if at(0, b"XFSB") {
        Some("xfs")
    } else if at(0x10040, b"_BHRfS_M") {
        Some("btrfs")
    } else if at(0x438, &[0x53, 0xEF]) {
        Some("ext2/3/4")
    } else if at(4086, b"SWAPSPACE2") {
        Some("swap")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bracketed_scheduler_is_the_active_one() {
        assert_eq!(active_scheduler("none [mq-deadline] kyber bfq\n"), "mq-deadline");
        assert_eq!(active_scheduler("[none] mq-deadline"), "none");
        assert_eq!(active_scheduler("none\n"), "none");
    }

    #[test]
    fn superblock_magics_are_recognised() {
        let mut b = vec![0u8; 0x10048];
        assert_eq!(probe_superblock(&b), None);
        b[0x438] = 0x53;
        b[0x439] = 0xEF;
        assert_eq!(probe_superblock(&b), Some("ext2/3/4"));
        b[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
        assert_eq!(probe_superblock(&b), Some("btrfs"));
        b[..4].copy_from_slice(b"XFSB");
        assert_eq!(probe_superblock(&b), Some("xfs"));
        assert_eq!(probe_superblock(&b[..10]), Some("xfs"));
        assert_eq!(probe_superblock(&[]), None);
    }

    #[test]
    fn an_existing_filesystem_runs_each_driver_once_and_skips_misfits() {
        let on = Target::On(OnDir {
            dir: "/x".into(),
            fstype: "ext4".into(),
            source: "/dev/sda1".into(),
            mount_point: "/".into(),
        });
        let plan = on.plan(super::super::SETUPS);
        let label = |s: &Setup| on.label(s);
        let overlay: Vec<_> = plan.iter().filter(|(s, _)| label(s) == "overlay on ext4").collect();
        assert_eq!(overlay.len(), 1);
        let btrfs = plan.iter().find(|(s, _)| s.driver == "btrfs").unwrap();
        assert!(btrfs.1.as_deref().unwrap().contains("needs a btrfs filesystem"));
        assert!(plan.iter().any(|(s, skip)| label(s) == "copy on ext4" && skip.is_none()));
        assert_eq!(Target::Loop.plan(super::super::SETUPS).len(), super::super::SETUPS.len());
    }
}
