//! Runs the snapshot conformance suite ([`strata::snapshot::testsuite`])
//! against every driver on every backing filesystem it must work on:
//! overlay and copy, each on ext4 and on XFS with reflinks; btrfs on btrfs.
//!
//! Tier: root. Each combination gets its own scratch filesystem on a loop
//! device ([`ScratchFs`]), released on drop even when a check fails.
//! Without root (or without the mkfs tool) a test prints why it was
//! skipped instead of passing silently (a failure under STRATA_TEST_STRICT).

use std::path::Path;
use strata::drivers::{btrfs::Btrfs, copy::Copy, overlay, overlay::Overlay};
use strata::scratch::{skip_test, FsKind, ScratchFs};
use strata::snapshot::{testsuite, Driver, Snapshotter, WriteTarget};

/// Backing file size: sparse, so only what the checks write is allocated.
const SCRATCH_SIZE: u64 = 2 << 30;

fn run(driver: &str, kind: FsKind) {
    if !rustix::process::geteuid().is_root() {
        skip_test(&format!("needs root (loop devices, mounts, chown) for {driver} on {kind:?}"));
        return;
    }
    if !kind.mkfs_available() {
        skip_test(&format!("{kind:?} needs its mkfs tool installed for {driver} on {kind:?}"));
        return;
    }
    let fs = ScratchFs::new(kind, SCRATCH_SIZE).expect("scratch filesystem");
    let make = |home: &Path| -> Snapshotter {
        let d: Box<dyn Driver> = match driver {
            "overlay" => Box::new(Overlay::new(home).expect("overlay driver")),
            "copy" => Box::new(Copy::new(home).expect("copy driver")),
            "btrfs" => Box::new(Btrfs::new(home).expect("btrfs driver")),
            other => panic!("unknown driver {other}"),
        };
        Snapshotter::new(home, d).expect("snapshotter")
    };
    if driver == "copy" {
        let probe = fs.path().join("status-probe");
        eprintln!("copy on {kind:?}: {:?}", Copy::new(&probe).expect("copy driver").status());
    }
    let start = std::time::Instant::now();
    testsuite::run_all(&make, fs.path());
    eprintln!("{driver} on {kind:?}: all checks passed in {:.2?}", start.elapsed());
}

#[test]
fn overlay_on_ext4() {
    run("overlay", FsKind::Ext4);
}

#[test]
fn overlay_on_xfs_reflink() {
    run("overlay", FsKind::Xfs);
}

#[test]
fn copy_on_ext4() {
    run("copy", FsKind::Ext4);
}

#[test]
fn copy_on_xfs_reflink() {
    run("copy", FsKind::Xfs);
}

#[test]
fn btrfs_on_btrfs() {
    run("btrfs", FsKind::Btrfs);
}

/// dm-thin: each check gets its own pool (loop devices over sparse files
/// in the check's home) with a small ext4 base, torn down afterwards.
#[test]
fn dmthin_on_ext4() {
    use strata::drivers::dmthin::{self, pool::Config, Dmthin};
    if !strata::scratch::device_mapper_for_tests("the dm-thin conformance suite") {
        return;
    }
    let fs = ScratchFs::new(FsKind::Ext4, SCRATCH_SIZE).expect("scratch filesystem");
    // Drops before `fs`: pools hold loop devices over files on it.
    struct Pools(std::path::PathBuf);
    impl Drop for Pools {
        fn drop(&mut self) {
            for check in testsuite::CHECKS {
                if let Err(e) = dmthin::shut_down(&self.0.join(check.name).join("home")) {
                    eprintln!("dmthin teardown of {}: {e}", check.name);
                }
            }
        }
    }
    let _pools = Pools(fs.path().to_owned());
    let cfg = Config { data_size: 4 << 30, metadata_size: 64 << 20, base_size: 256 << 20, ..Config::default() };
    let make = |home: &Path| -> Snapshotter {
        let d: Box<dyn Driver> = Box::new(Dmthin::with_config(home, cfg.clone()).expect("dmthin driver"));
        Snapshotter::new(home, d).expect("snapshotter")
    };
    let start = std::time::Instant::now();
    testsuite::run_all(&make, fs.path());
    eprintln!("dmthin on ext4: all checks passed in {:.2?}", start.elapsed());
}

/// overlayfs stacks 500 lower dirs: a container on a 500-layer image
/// mounts, reads the bottom layer and takes writes; committing it (a 501st
/// layer) is refused with the limit named, and the container is intact.
#[test]
fn overlay_runs_on_500_layers_and_refuses_the_501st() {
    use strata::mount::TempMount;
    use strata::snapshot::SnapshotKey;
    if !rustix::process::geteuid().is_root() {
        skip_test("needs root (loop devices, mounts)");
        return;
    }
    let fs = ScratchFs::new(FsKind::Ext4, SCRATCH_SIZE).expect("scratch filesystem");
    let home = fs.path().join("home");
    let snap = Snapshotter::new(&home, Box::new(Overlay::new(&home).expect("overlay driver"))).expect("snapshotter");
    let key = |s: &str| SnapshotKey::new(s).unwrap();
    // The bottom layer holds a file; 499 empty layers go on top of it.
    let mut parent: Option<SnapshotKey> = None;
    for i in 0..overlay::MAX_LAYERS {
        let active = key(&format!("a{i}"));
        snap.prepare(&active, parent.as_ref()).expect("prepare a layer");
        if i == 0 {
            let WriteTarget::Directory { dir, .. } = snap.write_target(&active).unwrap() else {
                panic!("overlay writes a directory")
            };
            std::fs::write(dir.join("bottom"), "layer 0\n").unwrap();
        }
        let name = key(&format!("l{i}"));
        snap.commit(&name, &active).unwrap_or_else(|e| panic!("commit layer {i}: {e}"));
        parent = Some(name);
    }
    let top = parent.unwrap();
    let c = key("container");
    let mounts = snap.prepare(&c, Some(&top)).expect("a container on 500 layers");
    let target = fs.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    {
        let m = TempMount::new(&mounts, &target).expect("mount 500 lower dirs + upper");
        assert_eq!(std::fs::read_to_string(target.join("bottom")).unwrap(), "layer 0\n");
        std::fs::write(target.join("bottom"), "changed\n").unwrap();
        m.unmount().unwrap();
    }
    let err = snap.commit(&key("l500"), &c).expect_err("a 501st layer").to_string();
    assert!(err.contains("501") && err.contains("500"), "{err}");
    // Refused before anything changed: the container is still active and mounts.
    let mounts = snap.mounts(&c).expect("still active");
    let m = TempMount::new(&mounts, &target).unwrap();
    assert_eq!(std::fs::read_to_string(target.join("bottom")).unwrap(), "changed\n");
    m.unmount().unwrap();
    snap.view(&key("view"), Some(&top)).expect("a view on 500 layers");
}

/// The copy driver's usage of an active snapshot on XFS with reflinks is
/// what it really holds: after a 1-byte append to an inherited 64 MiB file
/// and a new 1 MiB file, a few blocks plus the new file (FIEMAP exclusive
/// bytes), not the 65 MiB a walk counts; on ext4, where every byte was
/// copied, the walk's answer is the real cost.
#[test]
fn copy_usage_counts_exclusive_bytes_where_extents_are_shared() {
    if !rustix::process::geteuid().is_root() {
        skip_test("needs root (loop devices)");
        return;
    }
    const MIB: u64 = 1 << 20;
    for kind in [FsKind::Xfs, FsKind::Ext4] {
        let fs = ScratchFs::new(kind, SCRATCH_SIZE).expect("scratch filesystem");
        let home = fs.path().join("home");
        let snap = Snapshotter::new(&home, Box::new(Copy::new(&home).expect("copy driver"))).expect("snapshotter");
        let key = |s: &str| strata::snapshot::SnapshotKey::new(s).unwrap();
        let dir_of = |k: &str| match snap.write_target(&key(k)).unwrap() {
            WriteTarget::Directory { dir, .. } => dir,
            WriteTarget::Mounted(_) => panic!("copy writes a directory"),
        };
        snap.prepare(&key("a"), None).unwrap();
        let big: Vec<u8> = (0..64 * MIB).map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0]).collect();
        std::fs::write(dir_of("a").join("big"), &big).unwrap();
        snap.commit(&key("image"), &key("a")).unwrap();
        assert!(snap.usage(&key("image")).unwrap().size >= 64 * MIB, "a committed layer counts its content");
        snap.prepare(&key("c"), Some(&key("image"))).unwrap();
        let c = dir_of("c");
        use std::io::Write as _;
        std::fs::OpenOptions::new().append(true).open(c.join("big")).unwrap().write_all(b"x").unwrap();
        std::fs::write(c.join("new"), vec![7u8; 1 << 20]).unwrap();
        let used = snap.usage(&key("c")).unwrap().size;
        match kind {
            FsKind::Xfs => assert!(
                (MIB..MIB + 256 * 1024).contains(&used),
                "XFS: the container holds the new 1 MiB and the appended block, not {used} bytes"
            ),
            _ => assert!(used >= 65 * MIB, "ext4: every byte was copied, {used} bytes"),
        }
        snap.remove(&key("c")).unwrap();
    }
}
