//! Runs the snapshot conformance suite ([`strata::snapshot::testsuite`])
//! against every driver on every backing filesystem it must work on:
//! overlay and copy, each on ext4 and on XFS with reflinks; btrfs on btrfs.
//!
//! Tier: root. Each combination gets its own scratch filesystem on a loop
//! device ([`ScratchFs`]), released on drop even when a check fails.
//! Without root (or without the mkfs tool) a test prints why it was
//! skipped instead of passing silently.

use std::path::Path;
use strata::drivers::{btrfs::Btrfs, copy::Copy, overlay::Overlay};
use strata::scratch::{FsKind, ScratchFs};
use strata::snapshot::{testsuite, Driver, Snapshotter};

/// Backing file size: sparse, so only what the checks write is allocated.
const SCRATCH_SIZE: u64 = 2 << 30;

fn run(driver: &str, kind: FsKind) {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (loop devices, mounts, chown) for {driver} on {kind:?}");
        return;
    }
    if !kind.mkfs_available() {
        eprintln!("skipped: {kind:?} needs its mkfs tool installed for {driver} on {kind:?}");
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

/// btrfs specifics beside the suite: the kernel itself refuses writes to
/// a committed subvolume (not only a read-only mount of it), read-only
/// subvolumes and plain-directory debris are removed, and usage counts
/// only the extents a child does not share with its parent.
#[test]
fn btrfs_subvolumes_readonly_debris_and_exclusive_usage() {
    use std::os::unix::fs::FileExt;
    use strata::snapshot::{Kind, SnapshotId, SnapshotKey, WriteTarget};
    if !rustix::process::geteuid().is_root() || !FsKind::Btrfs.mkfs_available() {
        eprintln!("skipped: needs root and mkfs.btrfs");
        return;
    }
    let fs = ScratchFs::new(FsKind::Btrfs, SCRATCH_SIZE).expect("scratch filesystem");
    let home = fs.path().join("home");
    let sn = Snapshotter::new(&home, Box::new(Btrfs::new(&home).expect("btrfs driver"))).unwrap();
    let key = |s: &str| SnapshotKey::new(s).unwrap();
    let dir_of = |k: &str| match sn.write_target(&key(k)).unwrap() {
        WriteTarget::Directory { dir, .. } => dir,
        other => panic!("unexpected write target {other:?}"),
    };
    const MIB: usize = 1 << 20;
    sn.prepare(&key("base-active"), None).unwrap();
    let base_dir = dir_of("base-active");
    std::fs::write(base_dir.join("big"), vec![b'a'; 8 * MIB]).unwrap();
    sn.commit(&key("base"), &key("base-active")).unwrap();
    let base_usage = sn.usage(&key("base")).unwrap();
    assert!(base_usage.size >= 8 * MIB as u64, "base holds its 8 MiB: {base_usage:?}");
    let e = std::fs::write(base_dir.join("new"), "x").expect_err("write into a committed subvolume");
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");

    sn.prepare(&key("child"), Some(&key("base"))).unwrap();
    assert_eq!(sn.usage(&key("child")).unwrap().size, 0, "a fresh snapshot shares everything");
    let child_dir = dir_of("child");
    let f = std::fs::OpenOptions::new().write(true).open(child_dir.join("big")).unwrap();
    f.write_all_at(b"Z", 3 * MIB as u64 + 5).unwrap();
    drop(f);
    let child = sn.usage(&key("child")).unwrap();
    assert!(child.size > 0 && child.size <= 64 * 1024, "one block, not the 8 MiB file: {child:?}");
    assert_eq!(child.inodes, 1, "only the changed file: {child:?}");

    // Debris: a plain directory and a read-only subvolume under IDs the
    // metadata never handed out.
    let snapshots = home.join("snapshots");
    std::fs::create_dir_all(snapshots.join("900/sub")).unwrap();
    std::fs::write(snapshots.join("900/sub/f"), "f").unwrap();
    sn.driver().create(SnapshotId(901), &[], Kind::View).unwrap();
    assert_eq!(sn.cleanup().unwrap(), 2);
    assert!(!snapshots.join("900").exists() && !snapshots.join("901").exists());

    sn.remove(&key("child")).unwrap();
    sn.remove(&key("base")).unwrap();
    assert!(sn.driver().list().unwrap().is_empty());
    sn.driver().remove(SnapshotId(12345)).expect("removing what is gone succeeds");
}

/// The driver refuses a home that is not on btrfs, saying so.
#[test]
fn btrfs_refuses_a_home_not_on_btrfs() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    if strata::sys::statfs::fs_magic(dir.path()).unwrap() == strata::sys::statfs::FsMagic::BTRFS {
        return eprintln!("skipped: /var/tmp is itself on btrfs");
    }
    let err = Btrfs::new(&dir.path().join("btrfs")).expect_err("home on a non-btrfs filesystem");
    assert!(matches!(err, strata::snapshot::DriverError::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("not btrfs"), "{err}");
}
