//! Kernel tests: each scenario runs in a child process of its own (this
//! test binary re-run under `unshare --mount --pid --uts --fork
//! --propagation private`), which builds a root from a spec on a
//! tempdir holding a static busybox, pivots into it, and checks what is
//! mounted where from inside. Nothing reaches the host: every mount lives
//! in the child's mount namespace and goes with it; the parent's tempdir
//! guard removes the files.

use super::mountinfo::{self, MountInfo};
use super::{finalize, prepare, RootfsError, RootfsPlan};
use crate::runtime::spec::{Device, DeviceType, Linux, Mount, Root, Spec};
use std::collections::BTreeMap;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::process::Command;

const SCENARIO: &str = "STRATA_ROOTFS_SCENARIO";
const DIR: &str = "STRATA_ROOTFS_DIR";

/// The test directory: `rootfs/` (busybox, symlink traps), `data/` and
/// `rec/` (bind sources outside the root), removed on drop.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "etc", "ro-dir", "sub"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static is needed at /bin/busybox");
        std::os::unix::fs::symlink("/", root.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("/proc/sys", root.join("sneaky")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/file"), b"host data").unwrap();
        std::fs::create_dir_all(dir.path().join("rec/sub")).unwrap();
        Fixture { dir }
    }

    /// Runs `scenario` in a child in fresh namespaces; returns its output
    /// and whether it succeeded.
    fn run(&self, scenario: &str) -> (bool, String) {
        let out = Command::new("unshare")
            .args(["--mount", "--pid", "--uts", "--fork", "--propagation", "private"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "runtime::rootfs::tests::child", "--ignored", "--nocapture", "--test-threads=1"])
            .env(SCENARIO, scenario)
            .env(DIR, self.dir.path())
            .output()
            .expect("run unshare(1)");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }
}

fn m(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    Mount {
        destination: destination.to_owned(),
        kind: kind.to_owned(),
        source: source.to_owned(),
        options: options.iter().map(|s| (*s).to_owned()).collect(),
        ..Mount::default()
    }
}

fn spec(mounts: Vec<Mount>, linux: Linux, readonly: bool) -> Spec {
    Spec { root: Some(Root { path: "rootfs".into(), readonly }), mounts, linux: Some(linux), ..Spec::default() }
}

fn base_mounts() -> Vec<Mount> {
    vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        m("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
        m("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
    ]
}

/// The main scenario's spec: every kind of entry and path rule.
fn full_spec() -> Spec {
    let mut mounts = base_mounts();
    mounts.extend([
        m("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        m("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", "ro"]),
        m("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "noexec", "mode=1777", "size=8m"]),
        m("/ro-tmp", "tmpfs", "tmpfs", &["ro", "size=64k"]),
        // Relative source: relative to the bundle (the fixture's directory).
        m("/data", "bind", "data", &["rbind", "ro", "nosuid", "nodev"]),
        m("/evil/landed", "bind", "data", &["bind"]),
        m("/../../escaped", "tmpfs", "tmpfs", &["size=16k"]),
        m("/up/tmp-up/x", "tmpfs", "tmpfs", &["size=16k"]),
        m("/rec", "none", "rec", &["rbind", "rro", "rprivate"]),
        m("/rec-ro", "none", "rec", &["rbind", "ro"]),
    ]);
    let linux = Linux {
        devices: vec![Device {
            path: "/dev/mydev".into(),
            kind: DeviceType::Char,
            major: Some(1),
            minor: Some(3),
            file_mode: Some(0o640),
            uid: Some(1000),
            gid: Some(100),
        }],
        masked_paths: vec!["/proc/timer_list".into(), "/sys/firmware".into(), "/does/not/exist".into()],
        readonly_paths: vec!["/proc/sys".into(), "/ro-dir".into(), "/missing".into()],
        ..Linux::default()
    };
    spec(mounts, linux, true)
}

fn plan<'a>(spec: &'a Spec, dir: &Path, no_pivot: bool) -> RootfsPlan<'a> {
    RootfsPlan {
        spec,
        rootfs: dir.join("rootfs"),
        bundle: dir.to_path_buf(),
        driver_mounts: &[],
        detached: &[],
        no_pivot,
        console: None,
    }
}

fn at<'a>(mounts: &'a [MountInfo], point: &str) -> &'a MountInfo {
    mounts.iter().rev().find(|m| m.mount_point == point).unwrap_or_else(|| panic!("nothing mounted at {point}"))
}

fn erofs<T>(r: io::Result<T>, what: &str) {
    match r {
        Err(e) if e.raw_os_error() == Some(30) => {}
        Err(e) => panic!("{what}: expected EROFS, got {e}"),
        Ok(_) => panic!("{what}: expected EROFS, it succeeded"),
    }
}

/// The child half: runs only when the parent set the scenario.
#[test]
#[ignore = "run by the kernel tests in a child in its own namespaces"]
fn child() {
    let (Ok(scenario), Ok(dir)) = (std::env::var(SCENARIO), std::env::var(DIR)) else { return };
    let dir = PathBuf::from(dir);
    match scenario.as_str() {
        "full" => full(&dir),
        "no-pivot" => no_pivot(&dir),
        "refused" => refused(&dir),
        other => panic!("unknown scenario {other}"),
    }
}

fn full(dir: &Path) {
    // A submount in the rbind source, visible only in this namespace.
    crate::sys::mount::mount("tmpfs", &dir.join("rec/sub"), "tmpfs", crate::sys::mount::MountFlags::empty(), "")
        .unwrap();
    let spec = full_spec();
    let mut hook_ran = false;
    prepare(&plan(&spec, dir, false), &mut || {
        hook_ran = std::env::current_dir().map_err(|e| RootfsError::BeforePivot(e.into()))? == dir.join("rootfs");
        Ok(())
    })
    .unwrap();
    assert!(hook_ran, "before_pivot ran in the root");
    let mut sysctl = BTreeMap::new();
    sysctl.insert("kernel.hostname".to_owned(), "rootfs-test".to_owned());
    super::apply_sysctl(&sysctl).unwrap();
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(), "rootfs-test");
    finalize(&spec).unwrap();

    let mounts = mountinfo::read().unwrap();
    assert!(Path::new("/bin/busybox").exists(), "pivoted into the rootfs");
    assert!(!mounts.iter().any(|m| m.mount_point.starts_with(&*dir.to_string_lossy())), "old root detached");
    // Flags as asked.
    assert_eq!(at(&mounts, "/proc").fs_type, "proc");
    let tmp = at(&mounts, "/tmp");
    assert_eq!(tmp.fs_type, "tmpfs");
    assert!(tmp.has_option("nosuid") && tmp.has_option("nodev") && tmp.has_option("noexec") && tmp.has_option("rw"));
    assert!(tmp.super_options.contains("size=8192k"), "{}", tmp.super_options);
    assert!(at(&mounts, "/sys").has_option("ro"));
    assert_eq!(at(&mounts, "/dev/mqueue").fs_type, "mqueue");
    assert!(at(&mounts, "/dev/pts").super_options.contains("ptmxmode=666"));
    // Read-only tmpfs comes after /dev is populated, and holds.
    assert!(at(&mounts, "/ro-tmp").has_option("ro"));
    erofs(std::fs::write("/ro-tmp/x", b"x"), "write in a ro tmpfs");
    // Read-only root, writable tmpfs on it.
    erofs(std::fs::write("/new-file", b"x"), "write in the read-only root");
    std::fs::write("/tmp/ok", b"x").unwrap();
    // A ro bind with a relative source: the bundle's data, read-only.
    assert_eq!(std::fs::read("/data/file").unwrap(), b"host data");
    let data = at(&mounts, "/data");
    assert!(data.has_option("ro") && data.has_option("nosuid") && data.has_option("nodev"));
    erofs(std::fs::write("/data/new", b"x"), "write in a ro bind");
    // Symlinked and ../ destinations stay inside the root.
    assert_eq!(std::fs::read("/landed/file").unwrap(), b"host data");
    assert_eq!(at(&mounts, "/escaped").fs_type, "tmpfs");
    assert_eq!(at(&mounts, "/tmp-up/x").fs_type, "tmpfs");
    // rro: the submount is read-only too; plain ro leaves it writable.
    assert!(at(&mounts, "/rec/sub").has_option("ro"));
    erofs(std::fs::write("/rec/sub/x", b"x"), "write in an rro submount");
    assert!(at(&mounts, "/rec-ro").has_option("ro"));
    assert!(at(&mounts, "/rec-ro/sub").has_option("rw"));
    std::fs::write("/rec-ro/sub/x", b"x").unwrap();
    assert!(!at(&mounts, "/rec").is_shared());
    // cgroup: read-only (on v1, each hierarchy under the writable tmpfs,
    // as under runc), the hierarchies of this host under it.
    let cg = at(&mounts, "/sys/fs/cgroup");
    let cgroup2_host = cg.fs_type == "cgroup2";
    let under: Vec<_> = mounts.iter().filter(|m| m.mount_point.starts_with("/sys/fs/cgroup/")).collect();
    assert!(cgroup2_host || under.iter().all(|m| m.has_option("ro")), "{under:?}");
    assert!(!cgroup2_host || cg.has_option("ro"), "{cg:?}");
    let under_cg = under.len();
    assert!(cgroup2_host || under_cg > 0, "no cgroup hierarchy under /sys/fs/cgroup");
    // Devices: the defaults and linux.devices with mode and owner.
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let null = std::fs::metadata("/dev/null").unwrap();
    assert!(null.file_type().is_char_device() && null.permissions().mode() & 0o777 == 0o666);
    let mine = std::fs::metadata("/dev/mydev").unwrap();
    assert!(mine.file_type().is_char_device());
    assert_eq!((mine.permissions().mode() & 0o7777, mine.uid(), mine.gid()), (0o640, 1000, 100));
    assert_eq!(std::fs::read_link("/dev/ptmx").unwrap(), Path::new("pts/ptmx"));
    assert_eq!(std::fs::read_link("/dev/fd").unwrap(), Path::new("/proc/self/fd"));
    // Masked: a file reads empty, a directory is an empty read-only tmpfs.
    // (the container's /dev/null, on its /dev tmpfs)
    assert_eq!(at(&mounts, "/proc/timer_list").fs_type, "tmpfs");
    assert!(std::fs::metadata("/proc/timer_list").unwrap().file_type().is_char_device());
    assert_eq!(std::fs::read("/proc/timer_list").unwrap().len(), 0);
    let fw = at(&mounts, "/sys/firmware");
    assert!(fw.fs_type == "tmpfs" && fw.has_option("ro"));
    assert_eq!(std::fs::read_dir("/sys/firmware").unwrap().count(), 0);
    // Read-only paths refuse writes (opening for write is enough).
    erofs(std::fs::OpenOptions::new().write(true).open("/proc/sys/kernel/hostname"), "open /proc/sys for write");
    erofs(std::fs::write("/ro-dir/x", b"x"), "write in a read-only path");
    // Exec: busybox runs from the root; not from the noexec /tmp.
    let ok = Command::new("/bin/busybox").args(["true"]).status().unwrap();
    assert!(ok.success());
    std::fs::copy("/bin/busybox", "/tmp/busybox").unwrap();
    let e = Command::new("/tmp/busybox").arg("true").status().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
}

fn no_pivot(dir: &Path) {
    let spec = spec(base_mounts(), Linux::default(), false);
    prepare(&plan(&spec, dir, true), &mut || Ok(())).unwrap();
    finalize(&spec).unwrap();
    assert!(Path::new("/bin/busybox").exists(), "chrooted into the rootfs");
    let mounts = mountinfo::read().unwrap();
    assert_eq!(at(&mounts, "/proc").fs_type, "proc");
    assert!(Path::new("/dev/null").exists());
    let ok = Command::new("/bin/busybox").args(["true"]).status().unwrap();
    assert!(ok.success());
}

fn refused(dir: &Path) {
    let cases: Vec<(Mount, &str)> = vec![
        (
            m("/proc/sys", "bind", "data", &["rbind"]),
            "mounts[1] (/proc/sys): /proc/sys cannot be mounted because it is inside /proc",
        ),
        (
            m("/sneaky/foo", "tmpfs", "tmpfs", &[]),
            "mounts[1] (/sneaky/foo): /proc/sys/foo cannot be mounted because it is inside /proc",
        ),
        (
            m("/proc", "bind", "data", &["rbind"]),
            "mounts[1] (/proc): /proc cannot be mounted because it is not of type proc",
        ),
        (m("/data", "bind", "no-such-dir", &["rbind"]), "mounts[1] (/data): stat bind source"),
        (m("/x", "tmpfs", "tmpfs", &["tmpcopyup"]), "mounts[1] (/x): the tmpcopyup option is not supported"),
    ];
    // Each attempt stacks its mounts in this namespace: keep to /proc.
    for (entry, want) in cases {
        let mut mounts = vec![m("/proc", "proc", "proc", &[])];
        mounts.push(entry);
        let spec = spec(mounts, Linux::default(), false);
        let e = prepare(&plan(&spec, dir, false), &mut || panic!("must fail before the hook")).unwrap_err();
        assert!(e.to_string().contains(want), "{e} lacks {want}");
    }
    // A refused entry creates no mount point.
    assert!(!dir.join("rootfs/x").exists());
}

#[test]
fn kernel_full_spec_builds_the_root() {
    let f = Fixture::new();
    let (ok, out) = f.run("full");
    assert!(ok, "{out}");
    assert!(out.contains("1 passed"), "{out}");
    // Nothing leaked: the trap symlink targets were created in the root,
    // not on the host.
    assert!(f.dir.path().join("rootfs/landed").exists());
    assert!(f.dir.path().join("rootfs/escaped").exists());
    assert!(!f.dir.path().join("landed").exists() && !Path::new("/landed").exists());
}

#[test]
fn kernel_no_pivot_moves_and_chroots() {
    let f = Fixture::new();
    let (ok, out) = f.run("no-pivot");
    assert!(ok && out.contains("1 passed"), "{out}");
}

#[test]
fn kernel_refuses_proc_targets_and_bad_sources() {
    let f = Fixture::new();
    let (ok, out) = f.run("refused");
    assert!(ok && out.contains("1 passed"), "{out}");
}
