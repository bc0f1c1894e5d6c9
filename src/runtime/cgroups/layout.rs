//! Where the host mounts its cgroup hierarchies and where this process
//! sits in them: parsed from `/proc/self/mountinfo` and
//! `/proc/self/cgroup` (the parsers are pure).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// The hierarchy path the mount shows (`/` unless it is a bind of a
    /// subtree, as inside a container).
    pub root: String,
    /// Its controllers (`cpu`, `cpuacct`, …; `name=systemd` for named ones).
    pub controllers: Vec<String>,
}

/// How the host lays out cgroups: pure v2 (`v1` empty), hybrid (both;
/// each controller is bound to one of them), or pure v1 (`v2` none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// The cgroup2 mount, if any.
    pub v2: Option<PathBuf>,
    /// Controllers the v2 root offers (`cgroup.controllers`).
    pub v2_controllers: Vec<String>,
    /// The v1 hierarchies, first mount of each.
    pub v1: Vec<Hierarchy>,
}

/// The controllers a v1 mount's super options can name.
const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

impl Layout {
    /// Reads the host's layout (an empty one when `/proc` is unreadable).
    pub fn detect() -> Layout {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut layout = Layout::parse(&info);
        if let Some(v2) = &layout.v2 {
            layout.v2_controllers = std::fs::read_to_string(v2.join("cgroup.controllers"))
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default();
        }
        layout
    }

    /// The cgroup mounts in `mountinfo` text (`proc(5)`), without
    /// `v2_controllers`.
    pub fn parse(mountinfo: &str) -> Layout {
        let mut layout = Layout::default();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else { continue };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            let (Some(root), Some(mnt), Some(fstype)) = (pre.get(3), pre.get(4), post.first()) else { continue };
            match *fstype {
                "cgroup2" if layout.v2.is_none() => layout.v2 = Some(PathBuf::from(mnt)),
                "cgroup" => {
                    let controllers: Vec<String> = post
                        .get(2)
                        .unwrap_or(&"")
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(str::to_owned)
                        .collect();
                    let seen = layout.v1.iter().any(|h| h.controllers == controllers);
                    if !controllers.is_empty() && !seen {
                        layout.v1.push(Hierarchy {
                            mountpoint: PathBuf::from(mnt),
                            root: (*root).to_owned(),
                            controllers,
                        });
                    }
                }
                _ => {}
            }
        }
        layout
    }

    /// The v1 hierarchy that holds `controller`.
    pub fn v1_hierarchy(&self, controller: &str) -> Option<&Hierarchy> {
        self.v1.iter().find(|h| h.controllers.iter().any(|c| c == controller))
    }
}

/// Where a process sits: its v2 group and its group in each v1
/// hierarchy (by controller), as `/proc/<pid>/cgroup` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Membership {
    pub v2: Option<String>,
    pub v1: BTreeMap<String, String>,
}

impl Membership {
    /// This process's groups.
    pub fn own() -> Membership {
        Membership::parse(&std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default())
    }

    /// Parses `/proc/<pid>/cgroup` text: `hierarchy-ID:controllers:path`.
    pub fn parse(text: &str) -> Membership {
        let mut m = Membership::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
            if id == "0" && ctrls.is_empty() {
                m.v2 = Some(path.to_owned());
            } else {
                for c in ctrls.split(',').filter(|c| !c.is_empty()) {
                    m.v1.insert(c.to_owned(), path.to_owned());
                }
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_mountinfo_and_membership() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
            32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
            35 31 0:32 /sub /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
            40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n\
            42 31 0:32 / /mnt/again rw,relatime - cgroup cgroup rw,memory\n";
        let l = Layout::parse(info);
        assert_eq!(l.v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(l.v1.len(), 3);
        let cpu = l.v1_hierarchy("cpuacct").unwrap();
        assert_eq!(cpu.mountpoint, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(cpu.controllers, ["cpu", "cpuacct"]);
        assert_eq!(l.v1_hierarchy("memory").unwrap().root, "/sub");
        assert_eq!(l.v1_hierarchy("name=systemd").unwrap().controllers, ["name=systemd"]);

        let m = Membership::parse("4:memory:/a/b\n2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/u/v\n");
        assert_eq!(m.v2.as_deref(), Some("/u/v"));
        assert_eq!(m.v1["memory"], "/a/b");
        assert_eq!(m.v1["cpuacct"], "/");
        assert_eq!(m.v1["name=systemd"], "/x");
    }
}
