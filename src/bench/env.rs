//! What a result was measured on: kernel, CPU, memory, the filesystems
//! involved with their mount options, and the versions of the peer tools.
//! Recorded in every `results.json`, since a ratio means little without
//! the machine it came from.

use serde::Serialize;
use std::path::Path;
use std::process::Command;

/// The machine and software a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub strata_version: &'static str,
    /// `release` or `debug`: a debug build's numbers are not strata's.
    pub strata_profile: &'static str,
    pub kernel: String,
    pub cpu_model: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    /// Load averages when the run started: a busy machine makes noisy
    /// numbers.
    pub loadavg: String,
    /// `(tool, first line of its --version)`, `not installed` if absent.
    pub tools: Vec<(String, String)>,
    /// `(role, mount)` of the directories the run used.
    pub filesystems: Vec<(String, Option<MountEntry>)>,
}

/// One line of `/proc/self/mountinfo` (`proc(5)`), the fields a reader of
/// results needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountEntry {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    /// Per-mount options (`rw,relatime`).
    pub options: String,
    /// Per-superblock options (`rw,attr2,inode64,...`).
    pub super_options: String,
}

impl MountEntry {
    /// `xfs (rw,relatime; attr2,inode64)` — for tables and facts.
    pub fn describe(&self) -> String {
        format!("{} ({}; {})", self.fstype, self.options, self.super_options)
    }
}

/// Decodes the octal escapes (`\040` for a space) mountinfo uses in paths.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], oct) {
            let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/mountinfo` text. Lines that do not parse are
/// skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            Some(MountEntry {
                mount_point: unescape(pre.get(4)?),
                options: (*pre.get(5)?).to_owned(),
                fstype: post.next()?.to_owned(),
                source: unescape(post.next()?),
                super_options: post.next().unwrap_or("").to_owned(),
            })
        })
        .collect()
}

/// The mount `path` lives on: the last-mounted entry whose mount point is
/// the longest prefix of the canonical path.
pub fn mount_of(path: &Path) -> Option<MountEntry> {
    let path = path.canonicalize().ok()?;
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<MountEntry> = None;
    for m in parse_mountinfo(&text) {
        if path.starts_with(&m.mount_point)
            && best.as_ref().map_or(true, |b| m.mount_point.len() >= b.mount_point.len())
        {
            best = Some(m);
        }
    }
    best
}

/// First line of `tool --version` (or `openssl version`).
pub fn tool_version(tool: &str) -> String {
    let args: &[&str] = if tool == "openssl" { &["version"] } else { &["--version"] };
    match Command::new(tool).args(args).output() {
        Ok(out) => {
            let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
            String::from_utf8_lossy(&text).lines().next().unwrap_or("").trim().to_owned()
        }
        Err(_) => "not installed".to_owned(),
    }
}

/// Whether `tool` can be run (found on `PATH`).
pub fn have_tool(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([Path::new("/usr/sbin").to_owned(), Path::new("/sbin").to_owned()])
        .any(|dir| dir.join(tool).is_file())
}

fn proc_field(file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

impl Environment {
    /// Probes the machine; `dirs` are `(role, path)` pairs whose
    /// filesystems are recorded.
    pub fn probe(dirs: &[(&str, &Path)]) -> Environment {
        let uname = crate::sys::uts::uname();
        let memory_kib = proc_field("/proc/meminfo", "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        let tools = ["tar", "gzip", "zstd", "cp", "sha256sum", "openssl", "debootstrap"]
            .iter()
            .map(|t| ((*t).to_owned(), tool_version(t)))
            .collect();
        Environment {
            strata_version: env!("CARGO_PKG_VERSION"),
            strata_profile: if cfg!(debug_assertions) { "debug" } else { "release" },
            kernel: format!(
                "{} {} {}",
                uname.sysname().to_string_lossy(),
                uname.release().to_string_lossy(),
                uname.machine().to_string_lossy()
            ),
            cpu_model: proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_bytes: memory_kib * 1024,
            loadavg: std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned(),
            tools,
            filesystems: dirs.iter().map(|(role, p)| ((*role).to_owned(), mount_of(p))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let text = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,errors=remount-ro\n\
                    90 22 7:3 / /var/tmp/a\\040b.mnt rw,relatime - xfs /dev/loop3 rw,attr2,inode64\n\
                    garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].mount_point, "/var/tmp/a b.mnt");
        assert_eq!(m[1].describe(), "xfs (rw,relatime; rw,attr2,inode64)");
        assert_eq!(m[0].fstype, "ext4");
        assert_eq!(m[0].source, "/dev/vda");
    }
}
