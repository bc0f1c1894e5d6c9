//! The conformance suite every driver must pass, after containerd's
//! `core/snapshots/testsuite` (`SnapshotterSuite`).
//!
//! One entry point, [`run_all`], takes a factory that opens a
//! [`Snapshotter`] over the driver under test at a given home directory.
//! Each check in [`CHECKS`] gets a fresh home under the scratch root, so a
//! new check reaches every driver without touching the drivers' tests.
//!
//! The suite uses a snapshot the way the runtime and layer apply will: it
//! mounts the returned [`Mount`]s at a temporary directory
//! ([`TempMount`]) and reads and writes through the mount, never into the
//! driver's directories. It therefore needs root (mounts, chown).
//!
//! ```text
//! <scratch root>/<check>/
//! ├── home/        the snapshotter's home (what the factory receives)
//! └── mnt-<n>/     mount points, one per mount the check makes
//! ```

use super::{Kind, SnapshotError, SnapshotId, SnapshotKey, Snapshotter};
use crate::mount::{Mount, TempMount};
use crate::sys::Errno;
use std::cell::Cell;
use std::error::Error;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a check returns; assertion failures panic instead, as in a test.
pub type CheckResult = Result<(), Box<dyn Error>>;

/// One conformance check.
pub struct Check {
    pub name: &'static str,
    pub run: fn(&Env) -> CheckResult,
}

/// What a check works with: a snapshotter in a fresh home, and a place to
/// make mount points.
pub struct Env {
    pub snapshotter: Snapshotter,
    dir: PathBuf,
    mounts: Cell<u32>,
}

/// Every check, in the order [`run_all`] runs them.
pub const CHECKS: &[Check] = &[
    Check { name: "basic", run: check_basic },
    Check { name: "stat", run: check_stat },
    Check { name: "transitivity", run: check_transitivity },
    Check { name: "remove", run: check_remove },
    Check { name: "walk", run: check_walk },
    Check { name: "update_in_child", run: check_update_in_child },
    Check { name: "remove_dir_from_lower", run: check_remove_dir_from_lower },
    Check { name: "chown_in_child", run: check_chown_in_child },
    Check { name: "delete_in_child", run: check_delete_in_child },
    Check { name: "rename_in_child", run: check_rename_in_child },
    Check { name: "view_is_readonly", run: check_view_is_readonly },
    Check { name: "commit_twice", run: check_commit_twice },
    Check { name: "prepare_on_uncommitted_parent", run: check_prepare_on_uncommitted_parent },
    Check { name: "cleanup_orphans", run: check_cleanup_orphans },
    Check { name: "layers_200", run: check_200_layers },
];

/// Runs every check, each in a fresh directory under `scratch_root`, and
/// panics naming every check that failed. Returns each check's duration.
pub fn run_all(make: &dyn Fn(&Path) -> Snapshotter, scratch_root: &Path) -> Vec<(&'static str, Duration)> {
    let mut failed = Vec::new();
    let mut timings = Vec::new();
    for check in CHECKS {
        let start = Instant::now();
        let outcome = run_check(check, make, scratch_root);
        let took = start.elapsed();
        match outcome {
            Ok(()) => eprintln!("check {} ... ok ({took:.2?})", check.name),
            Err(e) => {
                eprintln!("check {} ... FAILED ({took:.2?}): {e}", check.name);
                failed.push(check.name);
            }
        }
        timings.push((check.name, took));
    }
    assert!(failed.is_empty(), "conformance checks failed: {failed:?}");
    timings
}

/// Runs one check in `scratch_root/<name>`, turning a panic into an error.
pub fn run_check(check: &Check, make: &dyn Fn(&Path) -> Snapshotter, scratch_root: &Path) -> Result<(), String> {
    let dir = scratch_root.join(check.name);
    std::fs::create_dir_all(dir.join("home")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let env = Env { snapshotter: make(&dir.join("home")), dir: dir.clone(), mounts: Cell::new(0) };
        (check.run)(&env)
    }));
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panicked".to_owned())),
    }
}

fn key(s: &str) -> SnapshotKey {
    SnapshotKey::new(s).expect("valid test key")
}

impl Env {
    /// Mounts `mounts` at a fresh directory, runs `f` on it, unmounts.
    pub fn with_mounted<R>(&self, mounts: &[Mount], f: impl FnOnce(&Path) -> R) -> Result<R, Box<dyn Error>> {
        let n = self.mounts.get();
        self.mounts.set(n + 1);
        let target = self.dir.join(format!("mnt-{n}"));
        std::fs::create_dir(&target)?;
        let mount = TempMount::new(mounts, &target)?;
        let r = f(&target);
        mount.unmount()?;
        std::fs::remove_dir(&target)?;
        Ok(r)
    }

    /// Prepares `active` on `parent`, runs `f` on its mounted tree, commits
    /// it as `name`.
    pub fn layer(&self, name: &str, parent: Option<&str>, f: impl FnOnce(&Path) -> CheckResult) -> CheckResult {
        let active = format!("{name}-active");
        let mounts = self.snapshotter.prepare(&key(&active), parent.map(key).as_ref())?;
        self.with_mounted(&mounts, f)??;
        self.snapshotter.commit(&key(name), &key(&active))?;
        Ok(())
    }

    /// Runs `f` on a read-only view of committed `name`, then removes the view.
    pub fn viewing<R>(&self, name: &str, f: impl FnOnce(&Path) -> R) -> Result<R, Box<dyn Error>> {
        let view = format!("{name}-view-{}", self.mounts.get());
        let mounts = self.snapshotter.view(&key(&view), Some(&key(name)))?;
        let r = self.with_mounted(&mounts, f)?;
        self.snapshotter.remove(&key(&view))?;
        Ok(r)
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn write(root: &Path, rel: &str, content: &str) -> CheckResult {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&p, content).map_err(|e| format!("write {}: {e}", p.display()))?;
    Ok(())
}

fn check_basic(env: &Env) -> CheckResult {
    env.layer("base", None, |m| {
        write(m, "foo", "foo content\n")?;
        write(m, "dir/bar", "bar content\n")
    })?;
    env.viewing("base", |m| {
        assert_eq!(read(&m.join("foo")), "foo content\n");
        assert_eq!(read(&m.join("dir/bar")), "bar content\n");
    })?;
    let mounts = env.snapshotter.prepare(&key("child"), Some(&key("base")))?;
    env.with_mounted(&mounts, |m| {
        assert_eq!(read(&m.join("dir/bar")), "bar content\n");
        write(m, "baz", "new\n")
    })??;
    // The mounts of an existing active snapshot show what was written.
    env.with_mounted(&env.snapshotter.mounts(&key("child"))?, |m| assert_eq!(read(&m.join("baz")), "new\n"))?;
    Ok(())
}

fn check_stat(env: &Env) -> CheckResult {
    env.layer("base", None, |m| write(m, "a", "a"))?;
    env.snapshotter.prepare(&key("active"), Some(&key("base")))?;
    env.snapshotter.view(&key("view"), Some(&key("base")))?;
    let sn = &env.snapshotter;
    let base = sn.stat(&key("base"))?;
    assert_eq!((base.kind, base.parent), (Kind::Committed, None));
    let active = sn.stat(&key("active"))?;
    assert_eq!((active.kind, active.parent), (Kind::Active, Some(key("base"))));
    let view = sn.stat(&key("view"))?;
    assert_eq!((view.kind, view.parent), (Kind::View, Some(key("base"))));
    assert!(matches!(sn.stat(&key("missing")), Err(SnapshotError::NotFound(_))));
    Ok(())
}

fn check_transitivity(env: &Env) -> CheckResult {
    env.layer("l1", None, |m| write(m, "one", "1"))?;
    env.layer("l2", Some("l1"), |m| write(m, "two", "2"))?;
    env.layer("l3", Some("l2"), |m| write(m, "three", "3"))?;
    env.viewing("l3", |m| {
        assert_eq!(read(&m.join("one")), "1");
        assert_eq!(read(&m.join("two")), "2");
        assert_eq!(read(&m.join("three")), "3");
    })?;
    Ok(())
}

fn check_remove(env: &Env) -> CheckResult {
    let sn = &env.snapshotter;
    sn.prepare(&key("lonely"), None)?;
    sn.remove(&key("lonely"))?;
    assert!(!sn.exists(&key("lonely"))?);
    env.layer("leaf", None, |m| write(m, "f", "f"))?;
    sn.remove(&key("leaf"))?;
    assert!(!sn.exists(&key("leaf"))?);
    env.layer("parent", None, |m| write(m, "f", "f"))?;
    sn.prepare(&key("child"), Some(&key("parent")))?;
    match sn.remove(&key("parent")) {
        Err(SnapshotError::HasChildren { children: 1, .. }) => {}
        other => panic!("removing a parent with a child: {other:?}"),
    }
    env.viewing("parent", |m| assert_eq!(read(&m.join("f")), "f"))?;
    sn.remove(&key("child"))?;
    sn.remove(&key("parent"))?;
    assert!(matches!(sn.remove(&key("parent")), Err(SnapshotError::NotFound(_))));
    let on_disk = sn.driver().list()?;
    assert!(on_disk.is_empty(), "driver still holds {on_disk:?}");
    Ok(())
}

fn check_walk(env: &Env) -> CheckResult {
    let sn = &env.snapshotter;
    env.layer("base", None, |m| write(m, "f", "f"))?;
    env.layer("top", Some("base"), |m| write(m, "g", "g"))?;
    sn.prepare(&key("active"), Some(&key("top")))?;
    sn.view(&key("view"), Some(&key("base")))?;
    let mut seen = Vec::new();
    sn.walk(|info| seen.push((info.key.as_str().to_owned(), info.kind)))?;
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let want = [("active", Kind::Active), ("base", Kind::Committed), ("top", Kind::Committed), ("view", Kind::View)];
    let want: Vec<_> = want.iter().map(|(k, kind)| ((*k).to_owned(), *kind)).collect();
    assert_eq!(seen, want);
    Ok(())
}

fn check_update_in_child(env: &Env) -> CheckResult {
    env.layer("base", None, |m| write(m, "f", "old\n"))?;
    env.layer("child", Some("base"), |m| {
        assert_eq!(read(&m.join("f")), "old\n");
        write(m, "f", "new content, longer\n")
    })?;
    env.viewing("base", |m| assert_eq!(read(&m.join("f")), "old\n"))?;
    env.viewing("child", |m| assert_eq!(read(&m.join("f")), "new content, longer\n"))?;
    Ok(())
}

fn check_remove_dir_from_lower(env: &Env) -> CheckResult {
    env.layer("base", None, |m| {
        write(m, "d/x/z", "z")?;
        write(m, "d/y", "y")?;
        write(m, "keep", "k")
    })?;
    env.layer("child", Some("base"), |m| {
        std::fs::remove_dir_all(m.join("d"))?;
        assert!(!m.join("d").exists());
        Ok(())
    })?;
    env.viewing("child", |m| {
        assert!(!m.join("d").exists(), "removed directory reappeared");
        assert_eq!(read(&m.join("keep")), "k");
    })?;
    env.viewing("base", |m| assert_eq!(read(&m.join("d/x/z")), "z"))?;
    // Recreating the directory in a grandchild shows only the new content.
    env.layer("grandchild", Some("child"), |m| write(m, "d/new", "n"))?;
    env.viewing("grandchild", |m| {
        assert_eq!(read(&m.join("d/new")), "n");
        assert!(!m.join("d/y").exists());
    })?;
    Ok(())
}

fn check_chown_in_child(env: &Env) -> CheckResult {
    env.layer("base", None, |m| {
        write(m, "f", "f")?;
        std::fs::create_dir(m.join("d"))?;
        Ok(())
    })?;
    env.layer("child", Some("base"), |m| {
        std::os::unix::fs::lchown(m.join("f"), Some(1234), Some(5678))?;
        std::os::unix::fs::lchown(m.join("d"), Some(4321), Some(8765))?;
        Ok(())
    })?;
    let owner = |p: PathBuf| {
        let md = p.symlink_metadata().unwrap();
        (md.uid(), md.gid())
    };
    env.viewing("child", |m| {
        assert_eq!(owner(m.join("f")), (1234, 5678));
        assert_eq!(owner(m.join("d")), (4321, 8765));
    })?;
    env.viewing("base", |m| {
        assert_eq!(owner(m.join("f")), (0, 0));
        assert_eq!(owner(m.join("d")), (0, 0));
    })?;
    Ok(())
}

fn check_delete_in_child(env: &Env) -> CheckResult {
    env.layer("base", None, |m| {
        write(m, "a", "a")?;
        write(m, "b", "b")
    })?;
    env.layer("child", Some("base"), |m| {
        std::fs::remove_file(m.join("a"))?;
        Ok(())
    })?;
    env.viewing("child", |m| {
        assert!(!m.join("a").exists());
        assert_eq!(read(&m.join("b")), "b");
        let names: Vec<_> = std::fs::read_dir(m).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["b"], "a deletion marker is visible through the mount");
    })?;
    env.viewing("base", |m| assert_eq!(read(&m.join("a")), "a"))?;
    Ok(())
}

/// `rename(2)`, falling back to copy-and-delete on `EXDEV` as mv(1) does:
/// overlayfs without `redirect_dir` refuses to rename a directory that
/// comes from a lower layer.
fn mv(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if Errno::from_io_error(&e) == Some(Errno::XDEV) => {
            copy_plain(from, to)?;
            if from.is_dir() {
                std::fs::remove_dir_all(from)
            } else {
                std::fs::remove_file(from)
            }
        }
        other => other,
    }
}

fn copy_plain(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_plain(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(drop)
    }
}

fn check_rename_in_child(env: &Env) -> CheckResult {
    env.layer("base", None, |m| {
        write(m, "dir1/inside", "inside")?;
        write(m, "somefiles/f1", "was here first!")?;
        write(m, "somefiles/f2", "nothing interesting")
    })?;
    env.layer("child", Some("base"), |m| {
        mv(&m.join("dir1"), &m.join("dir2"))?;
        mv(&m.join("somefiles/f1"), &m.join("somefiles/f3"))?;
        Ok(())
    })?;
    env.viewing("child", |m| {
        assert!(!m.join("dir1").exists());
        assert_eq!(read(&m.join("dir2/inside")), "inside");
        assert!(!m.join("somefiles/f1").exists());
        assert_eq!(read(&m.join("somefiles/f3")), "was here first!");
        assert_eq!(read(&m.join("somefiles/f2")), "nothing interesting");
    })?;
    env.viewing("base", |m| {
        assert_eq!(read(&m.join("dir1/inside")), "inside");
        assert_eq!(read(&m.join("somefiles/f1")), "was here first!");
        assert!(!m.join("dir2").exists());
    })?;
    Ok(())
}

fn check_view_is_readonly(env: &Env) -> CheckResult {
    env.layer("base", None, |m| write(m, "f", "f"))?;
    let mounts = env.snapshotter.view(&key("view"), Some(&key("base")))?;
    assert!(mounts.iter().any(Mount::is_readonly), "view mounts are not read-only: {mounts:?}");
    env.with_mounted(&mounts, |m| {
        for (what, result) in [
            ("create", std::fs::write(m.join("new"), "x")),
            ("overwrite", std::fs::write(m.join("f"), "x")),
            ("unlink", std::fs::remove_file(m.join("f"))),
        ] {
            let e = result.expect_err(what);
            assert_eq!(Errno::from_io_error(&e), Some(Errno::ROFS), "{what}: {e}");
        }
    })?;
    env.viewing("base", |m| assert_eq!(read(&m.join("f")), "f"))?;
    Ok(())
}

fn check_commit_twice(env: &Env) -> CheckResult {
    let sn = &env.snapshotter;
    sn.prepare(&key("active"), None)?;
    sn.commit(&key("first"), &key("active"))?;
    assert!(matches!(sn.commit(&key("second"), &key("active")), Err(SnapshotError::NotFound(_))));
    sn.prepare(&key("active2"), Some(&key("first")))?;
    assert!(matches!(sn.commit(&key("first"), &key("active2")), Err(SnapshotError::AlreadyExists(_))));
    sn.view(&key("view"), Some(&key("first")))?;
    assert!(matches!(sn.commit(&key("from-view"), &key("view")), Err(SnapshotError::WrongKind { .. })));
    assert!(matches!(sn.commit(&key("again"), &key("first")), Err(SnapshotError::WrongKind { .. })));
    Ok(())
}

fn check_prepare_on_uncommitted_parent(env: &Env) -> CheckResult {
    let sn = &env.snapshotter;
    sn.prepare(&key("active"), None)?;
    let wrong = |r: Result<Vec<Mount>, SnapshotError>| matches!(r, Err(SnapshotError::WrongKind { .. }));
    assert!(wrong(sn.prepare(&key("on-active"), Some(&key("active")))));
    assert!(wrong(sn.view(&key("view-on-active"), Some(&key("active")))));
    sn.commit(&key("base"), &key("active"))?;
    sn.view(&key("view"), Some(&key("base")))?;
    assert!(wrong(sn.prepare(&key("on-view"), Some(&key("view")))));
    assert!(matches!(sn.prepare(&key("orphan"), Some(&key("missing"))), Err(SnapshotError::NotFound(_))));
    assert!(matches!(sn.prepare(&key("view"), Some(&key("base"))), Err(SnapshotError::AlreadyExists(_))));
    for k in ["on-active", "view-on-active", "on-view", "orphan"] {
        assert!(!sn.exists(&key(k))?, "{k} was created by a failed call");
    }
    Ok(())
}

fn check_cleanup_orphans(env: &Env) -> CheckResult {
    let sn = &env.snapshotter;
    env.layer("base", None, |m| write(m, "f", "f"))?;
    sn.prepare(&key("active"), Some(&key("base")))?;
    // Debris of a crash between the driver's create and the metadata write.
    let orphan = SnapshotId(1_000_000);
    sn.driver().create(orphan, &[], Kind::Active)?;
    assert!(sn.driver().list()?.contains(&orphan));
    assert_eq!(sn.cleanup()?, 1);
    assert!(!sn.driver().list()?.contains(&orphan));
    assert_eq!(sn.cleanup()?, 0);
    env.viewing("base", |m| assert_eq!(read(&m.join("f")), "f"))?;
    env.with_mounted(&sn.mounts(&key("active"))?, |m| assert_eq!(read(&m.join("f")), "f"))?;
    Ok(())
}

/// Deep stacks: overlay's mount option string outgrows a page long before
/// 200 layers, and a copy driver copies ever larger trees.
const DEEP_LAYERS: usize = 200;

fn check_200_layers(env: &Env) -> CheckResult {
    let mut parent: Option<String> = None;
    for i in 0..DEEP_LAYERS {
        let name = format!("layer-{i:03}");
        env.layer(&name, parent.as_deref(), |m| write(m, &format!("file-{i:03}"), &format!("content of layer {i}\n")))?;
        parent = Some(name);
    }
    let top = parent.expect("at least one layer");
    let check_all = |m: &Path| {
        for i in 0..DEEP_LAYERS {
            assert_eq!(read(&m.join(format!("file-{i:03}"))), format!("content of layer {i}\n"));
        }
        assert_eq!(std::fs::read_dir(m).unwrap().count(), DEEP_LAYERS);
    };
    env.viewing(&top, check_all)?;
    let mounts = env.snapshotter.prepare(&key("container"), Some(&key(&top)))?;
    env.with_mounted(&mounts, |m| {
        check_all(m);
        write(m, "file-000", "changed on top\n")
    })??;
    env.viewing("layer-000", |m| assert_eq!(read(&m.join("file-000")), "content of layer 0\n"))?;
    Ok(())
}
