//! Crash recovery never deletes through a mount (issue 15, item 4).
//!
//! `cp` of a stopped container, volume population and a build's `COPY`
//! step mount a snapshot on a directory in `<root>/staging`. Each is
//! killed with SIGKILL while its mount is up; the next strata command
//! (`ps -a`) sweeps staging. The layers on disk must be exactly what they
//! were while the mount was up (listing, modes, checksums), and nothing may
//! stay mounted under the data root. Before the fix the sweep ran
//! `remove_dir_all` through the mount: it emptied the mounted layer (the
//! copy driver's bind mount) or filled it with whiteouts (overlay), and
//! left the mount behind.
//!
//! A `RUN` step has no such mount: its root is mounted in the container's
//! own mount namespace, which dies with it; `COPY` is the build step that
//! mounts on the host.

use super::common::{busybox_rootfs, require_root, Env};
use rustix::process::{kill_process, kill_process_group, Pid, Signal};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strata::scratch::FsKind;

/// A strata process started by a test, in its own process group: the
/// whole group is killed and the child reaped when this is dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    /// `strata --root … ARGS` with stdout a pipe nobody reads (so a
    /// command writing a tar there blocks with its mount up).
    pub fn spawn(env: &Env, args: &[&str]) -> Proc {
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(&env.root)
            .arg("--storage-driver")
            .arg(env.driver)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn strata");
        Proc { child }
    }

    fn pgid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap()
    }

    /// Stops the group (SIGSTOP), so what it mounted stays as it is
    /// while the test looks.
    pub fn stop(&self) {
        let _ = kill_process_group(self.pgid(), Signal::STOP);
    }

    /// SIGKILL to the whole group (the strata process and every child it
    /// forked), then reaps the strata process.
    pub fn kill(&mut self) {
        let _ = kill_process_group(self.pgid(), Signal::KILL);
        let _ = kill_process(self.pgid(), Signal::KILL);
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Detaches every mount left under the data root and force-removes every
/// container when dropped, so a failed test leaves the scratch filesystem
/// free to unmount.
pub struct Cleanup<'a>(pub &'a Env);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let env = self.0;
        let mut points = mounts_below(&env.root);
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in points {
            let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
        }
        let ids = env.run(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = env.run(&["rm", "-f", "-v", id]);
        }
    }
}

/// Every mount point at or below `dir` (one entry per stacked mount), with
/// the kernel's `\040`-style escapes undone.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    mount_lines_below(dir).into_iter().map(|(p, _)| p).collect()
}

/// [`mounts_below`] with each mount's per-mount options (`rw,nosuid,…`).
pub fn mount_lines_below(dir: &Path) -> Vec<(PathBuf, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((strata::root::mount_points(l).pop()?, f.get(5)?.to_string()))
        })
        .filter(|(p, _)| p.starts_with(dir))
        .collect()
}

/// Waits (up to a minute) for a mount to appear under `<root>/staging`,
/// failing early if `proc` exits first; returns its point and options.
pub fn wait_for_staging_mount(env: &Env, proc: &mut Proc, what: &str) -> (PathBuf, String) {
    let staging = env.root.join("staging");
    let start = Instant::now();
    loop {
        if let Some(m) = mount_lines_below(&staging).into_iter().next() {
            return m;
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!("{what} exited ({status}) before a mount appeared in {}", staging.display());
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: no mount in {} within 60 s", staging.display());
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Every entry below `dir`: relative path → type, mode and content
/// checksum (or link target). Does not follow symlinks.
pub fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let mode = md.permissions().mode();
            let what = if md.is_dir() {
                stack.push(p.clone());
                "dir".to_owned()
            } else if md.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_file() {
                hex(&Sha256::digest(std::fs::read(&p).unwrap()))
            } else {
                use std::os::unix::fs::MetadataExt;
                format!("special rdev {}", md.rdev())
            };
            out.insert(rel, format!("{mode:o} {what}"));
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Each snapshot directory (`<driver>/snapshots/<id>`) of `before` that
/// still exists in `after` must be entry for entry the same; the ones in
/// `may_go` may be gone (recovery removes stale build snapshots).
fn assert_layers_intact(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>, may_go: bool) {
    let snapshot_of = |k: &str| k.split('/').next().unwrap_or("").to_owned();
    let in_before: std::collections::BTreeSet<String> = before.keys().map(|k| snapshot_of(k)).collect();
    let mut diffs = Vec::new();
    for snap in &in_before {
        let of = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            m.iter().filter(|(k, _)| snapshot_of(k) == *snap).map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let (b, a) = (of(before), of(after));
        if a.is_empty() && may_go {
            continue;
        }
        for (k, v) in &b {
            match a.get(k) {
                None => diffs.push(format!("gone: {k}")),
                Some(w) if w != v => diffs.push(format!("changed: {k}: {v} -> {w}")),
                _ => {}
            }
        }
        for k in a.keys().filter(|k| !b.contains_key(*k)) {
            diffs.push(format!("appeared: {k} ({})", a[k]));
        }
    }
    assert!(
        diffs.is_empty(),
        "layers changed by recovery ({} differences):\n{}",
        diffs.len(),
        diffs.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// The crashed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `strata cp victim:/data -`, its stdout never read.
    Cp,
    /// `strata create -v /data crash/big`: populates the anonymous volume
    /// from the image's 64 MiB `/data`.
    Populate,
    /// `strata build` of `FROM busybox` + `COPY data /data` (a big
    /// context directory), mounted in staging for the step.
    BuildCopy,
}

/// A data root holding busybox, a stopped container `victim` whose layer
/// has `/data` (a 64 MiB file, 500 small ones, a symlink), and that
/// container committed as `crash/big`.
fn setup(test: &str, driver: &'static str) -> Option<Env> {
    require_root(test)?;
    let env = Env::new(FsKind::Ext4, driver);
    let rootfs = env.scratch("busybox.tar");
    busybox_rootfs(&rootfs);
    env.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
    env.ok(&[
        "run",
        "--name",
        "victim",
        "busybox:latest",
        "sh",
        "-c",
        "mkdir -p /data/small && dd if=/dev/urandom of=/data/big bs=1M count=64 2>/dev/null \
         && i=0; while [ $i -lt 500 ]; do echo $i > /data/small/f$i; i=$((i+1)); done; \
         ln -s big /data/link; chmod 4755 /data/small/f1",
    ]);
    env.ok(&["commit", "victim", "crash/big"]);
    Some(env)
}

fn crash(test: &str, driver: &'static str, op: Op) {
    let Some(env) = setup(test, driver) else { return };
    let _cleanup = Cleanup(&env);
    let snapshots = env.root.join(driver).join("snapshots");
    let args: Vec<String> = match op {
        Op::Cp => ["cp", "victim:/data", "-"].map(String::from).to_vec(),
        Op::Populate => {
            ["create", "--name", "populated", "-v", "/data", "crash/big", "true"].map(String::from).to_vec()
        }
        Op::BuildCopy => {
            let ctx = env.scratch("ctx/Dockerfile");
            std::fs::write(&ctx, "FROM busybox:latest\nCOPY data /data\n").unwrap();
            let data = ctx.parent().unwrap().join("data");
            std::fs::create_dir(&data).unwrap();
            for i in 0..8 {
                let chunk: Vec<u8> =
                    (0..16u32 << 20).map(|n| n.wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ i).collect();
                std::fs::write(data.join(format!("chunk{i}")), chunk).unwrap();
            }
            vec!["build".into(), "-t".into(), "crash/built".into(), ctx.parent().unwrap().display().to_string()]
        }
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut proc = Proc::spawn(&env, &args);
    let (point, _) = wait_for_staging_mount(&env, &mut proc, &format!("strata {}", args.join(" ")));
    proc.stop();
    let mounted_tree = tree(&point);
    assert!(!mounted_tree.is_empty(), "the staging mount at {} shows nothing", point.display());
    let before = tree(&snapshots);
    proc.kill();
    assert!(
        !mounts_below(&env.root.join("staging")).is_empty(),
        "SIGKILL took the staging mount with it: nothing left for recovery to get wrong"
    );

    // Any command opens the root, which sweeps staging.
    env.ok(&["ps", "-a"]);

    assert_layers_intact(&before, &tree(&snapshots), op == Op::BuildCopy);
    let left = mounts_below(&env.root);
    assert!(left.is_empty(), "mounts left under the data root after recovery: {left:?}");
    let staging: Vec<_> = std::fs::read_dir(env.root.join("staging")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(staging.is_empty(), "staging debris left after recovery: {staging:?}");
    // The victim's layer, as `diff` reads it.
    let listed = env.ok(&["diff", "victim"]);
    for path in ["/data/big", "/data/small/f499", "/data/link"] {
        assert!(listed.lines().any(|l| l.ends_with(path)), "{path} missing from the victim's layer:\n{listed}");
    }
    if op == Op::BuildCopy {
        // The step's snapshot was recovered; the same build works.
        env.ok(&["build", "-t", "crash/built", env.scratch("ctx").to_str().unwrap()]);
    }
}

#[test]
fn sigkill_during_cp_keeps_the_layer_overlay() {
    crash("sigkill_during_cp_keeps_the_layer_overlay", "overlay", Op::Cp);
}

#[test]
fn sigkill_during_cp_keeps_the_layer_copy() {
    crash("sigkill_during_cp_keeps_the_layer_copy", "copy", Op::Cp);
}

#[test]
fn sigkill_during_volume_populate_keeps_the_layer_overlay() {
    crash("sigkill_during_volume_populate_keeps_the_layer_overlay", "overlay", Op::Populate);
}

#[test]
fn sigkill_during_volume_populate_keeps_the_layer_copy() {
    crash("sigkill_during_volume_populate_keeps_the_layer_copy", "copy", Op::Populate);
}

#[test]
fn sigkill_during_build_copy_step_keeps_the_layers_overlay() {
    crash("sigkill_during_build_copy_step_keeps_the_layers_overlay", "overlay", Op::BuildCopy);
}

#[test]
fn sigkill_during_build_copy_step_keeps_the_layers_copy() {
    crash("sigkill_during_build_copy_step_keeps_the_layers_copy", "copy", Op::BuildCopy);
}
