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
