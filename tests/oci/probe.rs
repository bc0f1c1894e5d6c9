//! The probe: a busybox `sh` script run as (or exec'd into) the container
//! that prints what the process sees, and the normalisation that turns
//! its output into lines two runtimes must agree on.
//!
//! What is dropped or rewritten, and why (every rule is something the
//! runtime spec leaves to the runtime, or that differs per run):
//! - the container ID and bundle path become `<ID>` and `<BUNDLE>`;
//! - mountinfo keeps mount point, fstype, per-mount options, propagation
//!   (shared/master/unbindable, not the peer group numbers) and, of the
//!   superblock options, only sizes, modes and ownership; mount IDs,
//!   device numbers and sources go, and lines are sorted by mount point
//!   (runc and crun mount the cgroup v1 hierarchies in different orders);
//! - a file masked by binding `/dev/null` over it is `masked-file`
//!   whichever `/dev/null` was bound (runc binds the container's, a tmpfs
//!   node; crun the host's, on devtmpfs) and with whatever flags that
//!   bind kept; a masked directory is `masked-dir` (an empty read-only
//!   tmpfs: runc mounts it `ro`, crun remounts it `ro` with `size=0k`);
//! - the tmpfs a runtime mounts at `/sys/fs/cgroup` to hold the v1
//!   hierarchies keeps no superblock options (runc `mode=755`, crun
//!   `size=1024k`); sysfs's superblock `ro`/`rw` goes (runc mounts it
//!   read-only, crun remounts the mount read-only: the same access);
//! - a cgroup path ending in the container ID is `…/<ID>` (runc nests the
//!   memory cgroup under its caller's, crun does not): cgroup files,
//!   and the roots of cgroup mounts;
//! - `ls -ln` keeps type and mode, owner, device numbers and name, not
//!   link counts, sizes or times.

use std::collections::BTreeMap;

/// The probe script; `extra` (case-specific commands) runs last, under
/// `== extra`.
pub fn script(extra: &str) -> String {
    format!("{BASE}\necho '== extra'\n{extra}\necho '== end'\n")
}

const BASE: &str = r#"# Facts a container process observes, one section per kind.
exec 2>&1
s() { echo "== $1"; }
s status
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters|Groups):' /proc/$$/status
s id
id
s umask
umask
s cwd
pwd
s uts
echo "hostname $(hostname)"
echo "domainname $(cat /proc/sys/kernel/domainname)"
s pid
[ $$ = 1 ] && echo "pid is 1" || echo "pid is not 1"
s limits
cat /proc/$$/limits
s mounts
cat /proc/$$/mountinfo
s dev
ls -ln /dev /dev/pts
s masked
for p in $PROBE_MASKED; do
  if [ ! -e "$p" ]; then echo "$p absent"
  elif [ -d "$p" ]; then echo "$p dir $(ls -A "$p" 2>&1 | wc -l) entries"
  else echo "$p file $(head -c 64 "$p" 2>/dev/null | wc -c) bytes"; fi
done
s ns
for n in cgroup ipc mnt net pid time user uts; do
  l=$(readlink /proc/$$/ns/$n)
  case " $PROBE_HOSTNS " in
  *" $l "*) echo "$n host" ;;
  *) case " $PROBE_JOINNS " in *" $l "*) echo "$n joined" ;; *) echo "$n new" ;; esac ;;
  esac
done
s idmap
cat /proc/$$/uid_map /proc/$$/gid_map
s env
env | grep -v '^PROBE_' | sort
s sysctl
for k in $PROBE_SYSCTL; do echo "$k $(cat /proc/sys/$(echo $k | tr . /) 2>&1)"; done
s oom
cat /proc/$$/oom_score_adj
s personality
uname -m
s cgroup
cat /proc/$$/cgroup
s devices
sort /sys/fs/cgroup/devices/devices.list 2>&1
s fds
ls /proc/self/fd
s rootfs
touch /.probe 2>/dev/null && echo writable || echo read-only
"#;

/// What a run of the probe printed, normalised: `(section, line)` pairs
/// in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub lines: Vec<String>,
}

/// How to read the probe's output.
pub struct Context<'a> {
    pub id: &'a str,
    pub bundle: &'a str,
    /// The spec's masked paths.
    pub masked: &'a [String],
}

impl Observation {
    /// Normalises the probe's stdout (see the module doc).
    pub fn parse(raw: &str, cx: &Context) -> Observation {
        let mut lines = Vec::new();
        let mut section = String::new();
        let mut mounts = Vec::new();
        for line in raw.replace(cx.bundle, "<BUNDLE>").replace(cx.id, "<ID>").lines() {
            if let Some(name) = line.strip_prefix("== ") {
                if section == "mounts" {
                    mounts.sort();
                    lines.extend(mounts.drain(..).map(|m| format!("mounts: {m}")));
                }
                section = name.to_string();
                if section == "end" {
                    lines.push("end".to_string());
                }
                continue;
            }
            let norm = match section.as_str() {
                "mounts" => {
                    mounts.push(mount_line(line, cx.masked));
                    continue;
                }
                "dev" => match ls_line(line) {
                    Some(l) => l,
                    None => continue,
                },
                "cgroup" => cgroup_line(line),
                _ => line.split_whitespace().collect::<Vec<_>>().join(" "),
            };
            lines.push(format!("{section}: {norm}"));
        }
        Observation { lines }
    }

    /// The lines of one section, without the `section: ` prefix.
    pub fn section(&self, name: &str) -> Vec<&str> {
        let prefix = format!("{name}: ");
        self.lines.iter().filter_map(|l| l.strip_prefix(prefix.as_str())).collect()
    }

    /// `/proc/self/status` fields as a map (`CapEff` → `00000000a80425fb`).
    pub fn status(&self) -> BTreeMap<String, String> {
        self.section("status")
            .into_iter()
            .filter_map(|l| l.split_once(": ").or_else(|| l.split_once(':')))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }

    /// The mount at `point`, normalised, if any.
    pub fn mount(&self, point: &str) -> Option<String> {
        self.section("mounts").into_iter().find(|m| m.split(' ').next() == Some(point)).map(String::from)
    }
}

/// One mountinfo line (`proc(5)`): `id parent maj:min root point opts
/// [optional…] - fstype source superopts`.
fn mount_line(line: &str, masked: &[String]) -> String {
    let (left, right) = line.split_once(" - ").unwrap_or((line, ""));
    let left: Vec<&str> = left.split(' ').collect();
    let right: Vec<&str> = right.split(' ').collect();
    let (root, point, opts) =
        (left.get(3).copied().unwrap_or(""), left.get(4).copied().unwrap_or(""), left.get(5).copied().unwrap_or(""));
    let propagation: Vec<&str> = left
        .iter()
        .skip(6)
        .filter_map(|f| f.split(':').next())
        .filter(|tag| ["shared", "master", "propagate_from", "unbindable"].contains(tag))
        .collect();
    let fstype = right.first().copied().unwrap_or("");
    let superopts = right.get(2).copied().unwrap_or("");
    let is_masked = masked.iter().any(|m| m == point);
    if is_masked && root.ends_with("/null") {
        return format!("{point} masked-file");
    }
    if is_masked && fstype == "tmpfs" && opts.split(',').any(|o| o == "ro") {
        return format!("{point} masked-dir ro");
    }
    let keep_super = !(point == "/sys/fs/cgroup" && fstype == "tmpfs");
    let superopts: Vec<&str> = superopts
        .split(',')
        .filter(|o| {
            keep_super && ["size=", "mode=", "uid=", "gid=", "ptmxmode=", "nr_inodes="].iter().any(|k| o.starts_with(k))
        })
        .collect();
    let root = if root.ends_with("/<ID>") { ".../<ID>" } else { root };
    let prop = if propagation.is_empty() { "private".to_string() } else { propagation.join(",") };
    format!("{point} {fstype} root={root} {opts} {prop} super={}", superopts.join(","))
}

/// One `ls -ln` line: `mode links uid gid (size | major, minor) mon day
/// time name [-> target]`. Headers and totals are dropped.
fn ls_line(line: &str) -> Option<String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 8 || line.starts_with("total") {
        return if line.ends_with(':') { Some(line.to_string()) } else { None };
    }
    let (mode, uid, gid) = (f[0], f[2], f[3]);
    let (size, rest) =
        if f[4].ends_with(',') { (format!("{}{}", f[4], f[5]), &f[9..]) } else { (f[4].to_string(), &f[8..]) };
    let size = if mode.starts_with('c') || mode.starts_with('b') { size } else { "-".into() };
    Some(format!("{mode} {uid} {gid} {size} {}", rest.join(" ")))
}

/// One `/proc/self/cgroup` line: `hierarchy:controllers:path`.
fn cgroup_line(line: &str) -> String {
    let mut parts = line.splitn(3, ':');
    let (id, ctrl, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = if path.ends_with("/<ID>") { ".../<ID>" } else { path };
    format!("{id}:{ctrl}:{path}")
}

/// Lines dropped from both sides when the runtime under test is the
/// stand-in crun (never for strata-runc), with why: what crun does
/// differently from runc where the spec lets either be right, or what
/// running crun with the cgroup2 mount hidden changes.
pub const CRUN_ALLOWANCES: &[(&str, &str)] = &[
    ("dev: lrwxrwxrwx 0 0 - core -> /proc/kcore", "crun adds the /dev/core link, runc does not"),
    ("cgroup: 0::", "crun runs with /sys/fs/cgroup/unified unmounted, so joins no cgroup2 group"),
    ("devices: c 10:200 rwm", "runc's default device rules allow /dev/net/tun"),
    ("devices: c 5:1 rwm", "crun's default device rules allow /dev/console"),
    ("dev: crw-rw-rw- 1000 1000 1,3 null", "crun gives the container's /dev/null to process.user"),
    ("dev: crw-rw-rw- 0 0 1,3 null", "(the same line on runc's side)"),
    ("dev: crw-rw-rw- 65534 65534 1,3 null", "(the same, in a user namespace)"),
    ("dev: drwxrwxrwt 0 0 - mqueue", "in a user namespace runc's /dev/mqueue has gid 65534, crun's 0"),
    ("dev: drwxrwxrwt 0 65534 - mqueue", "(runc's side)"),
    ("mounts: /dev/full devtmpfs", "in a user namespace crun binds host devices nosuid,noexec, runc not"),
    ("mounts: /dev/null devtmpfs", "(the same)"),
    ("mounts: /dev/random devtmpfs", "(the same)"),
    ("mounts: /dev/tty devtmpfs", "(the same)"),
    ("mounts: /dev/urandom devtmpfs", "(the same)"),
    ("mounts: /dev/zero devtmpfs", "(the same)"),
];

impl Observation {
    /// The observation without lines starting with any of `prefixes`.
    pub fn without(&self, prefixes: &[(&str, &str)]) -> Observation {
        let lines = self.lines.iter().filter(|l| !prefixes.iter().any(|(p, _)| l.starts_with(p))).cloned().collect();
        Observation { lines }
    }
}

/// A readable line diff (LCS): `-` only in `a`, `+` only in `b`.
pub fn diff(a: &[String], b: &[String]) -> String {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}
