//! Fixtures: a data root on a scratch filesystem, a way to run the
//! `strata` binary on it, and tar builders for test images.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use strata::scratch::{FsKind, ScratchFs};

/// Returns `None` (after printing why) when the test cannot run here. When
/// `STRATA_TEST_STRICT` is set (tools/test sets it), a skip is a failure
/// instead: CI must never pass a test that did not run.
pub fn require_root(what: &str) -> Option<()> {
    if rustix::process::geteuid().is_root() {
        return Some(());
    }
    if std::env::var_os("STRATA_TEST_STRICT").is_some() {
        panic!("{what}: needs root, and STRATA_TEST_STRICT forbids skipping");
    }
    eprintln!("skipped: {what} needs root (mounts, loop devices)");
    None
}

/// Whether an external tool is installed; strict mode fails when not.
pub fn require_tool(tool: &str, what: &str) -> Option<()> {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map(|o| o.status.success());
    if found.unwrap_or(false) {
        return Some(());
    }
    if std::env::var_os("STRATA_TEST_STRICT").is_some() {
        panic!("{what}: needs {tool} (tools/deps installs it), and STRATA_TEST_STRICT forbids skipping");
    }
    eprintln!("skipped: {what} needs {tool} (tools/deps installs it)");
    None
}

/// A data root on its own scratch filesystem, with a driver.
pub struct Env {
    pub fs: ScratchFs,
    pub root: PathBuf,
    pub driver: &'static str,
}

impl Env {
    pub fn new(kind: FsKind, driver: &'static str) -> Env {
        let fs = ScratchFs::new(kind, 4 << 30).expect("scratch filesystem");
        let root = fs.path().join("root");
        Env { fs, root, driver }
    }

    /// A path on the scratch filesystem outside the data root.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.fs.path().join("work").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }

    pub fn engine(&self) -> strata::engine::Engine {
        strata::engine::Engine::open(&self.root, self.driver).expect("engine")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(&self.root)
            .arg("--storage-driver")
            .arg(self.driver)
            .args(args)
            .output()
            .expect("run strata")
    }

    /// Runs strata, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "strata {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs strata, asserts failure, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "strata {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("utf-8 output")
    }

    /// Paths of every file under the data root but locks and caches, for
    /// before/after checks.
    pub fn inventory(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(p) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&p) else { continue };
            for e in rd.flatten() {
                let path = e.path();
                let rel = path.strip_prefix(&self.root).unwrap().display().to_string();
                // Locks, and compiled seccomp programs: a cache keyed by
                // profile digest that any container start may fill.
                if rel.starts_with("locks") || rel.starts_with("seccomp/") {
                    continue;
                }
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(path.clone());
                }
                out.push(rel);
            }
        }
        out.sort();
        out
    }
}

/// A busybox-static root filesystem as a tar: what `tools/mkrootfs` makes,
/// built here so the test controls every byte.
pub fn busybox_rootfs(out: &Path) {
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static installed");
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root"] {
        dir(&mut b, d, 0o755);
    }
    let mut h = tar::Header::new_gnu();
    let data = std::fs::read(bb).unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o755);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "bin/busybox", &data[..]).unwrap();
    let applets = Command::new(bb).arg("--list").output().expect("busybox --list");
    for applet in String::from_utf8_lossy(&applets.stdout).lines().filter(|a| *a != "busybox") {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(1_700_000_000);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox").unwrap();
    }
    file(
        &mut b,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    );
    file(&mut b, "etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644);
    b.finish().unwrap();
}

pub fn dir<W: std::io::Write>(b: &mut tar::Builder<W>, path: &str, mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, format!("{path}/"), &[][..]).unwrap();
}

pub fn file<W: std::io::Write>(b: &mut tar::Builder<W>, path: &str, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, path, data).unwrap();
}

/// The seed's `/app/hello.sh`.
pub const SEED_HELLO: &str = "#!/bin/sh\necho \"hello world\"\n";

/// The seed's app layer (`COPY . /app` of cow-test/): `/app/hello.sh`.
pub fn seed_app_tar(out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    dir(&mut b, "app", 0o755);
    file(&mut b, "app/hello.sh", SEED_HELLO.as_bytes(), 0o755);
    b.finish().unwrap();
}

/// A tar with one regular file (for single-file layers).
pub fn one_file_tar(out: &Path, path: &str, data: &[u8]) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    file(&mut b, path, data, 0o644);
    b.finish().unwrap();
}

/// Every mount point below `dir` (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.display().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&d) && *m != d)
        .map(str::to_owned)
        .collect()
}
