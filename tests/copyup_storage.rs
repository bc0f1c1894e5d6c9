//! The copy_up suite on storage the user names: `--device DEV
//! --destroy-data` (a loop device stands in for a disk: these machines have
//! no spare one) and `--on DIR` (a scratch filesystem stands in for the
//! user's own). The refusals of `--device` (missing `--destroy-data`, a
//! mounted device) say what is wrong. Every mount, loop device and file
//! is released by a guard, even when an assertion fails.
//!
//! No timings are asserted: only that the cases ran, were proven cold,
//! and that the report names the storage.

use std::path::{Path, PathBuf};
use std::process::Command;
use strata::bench::copyup::{self, storage::Target, Cache, Part, Results};
use strata::bench::{Options, Scale};
use strata::scratch::{FsKind, ScratchFs};
use strata::sys::loopdev::LoopDevice;

fn root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    strata::scratch::skip_test("the copy-up storage tests need root (mounts, loop devices)");
    false
}

fn mounted(source: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = source.display().to_string();
    info.lines()
        .find(|l| l.split_once(" - ").and_then(|(_, p)| p.split(' ').nth(1)) == Some(want.as_str()))
        .map(str::to_owned)
}

/// A loop device over a sparse file in `dir`, detached on drop.
fn loop_device(dir: &Path, bytes: u64) -> (LoopDevice, PathBuf) {
    let file = dir.join("disk.img");
    std::fs::File::create(&file).unwrap().set_len(bytes).unwrap();
    (LoopDevice::attach(&file).unwrap(), file)
}

/// Unmounts on drop.
struct Mounted(PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = strata::mount::unmount_all(&self.0);
    }
}

fn tiny(target: Target, scratch: &Path) -> (Options, copyup::Params) {
    let mut opts = Options::new(Scale::Tiny);
    opts.scratch_dir = scratch.to_owned();
    opts.quiet = true;
    let mut p = copyup::Params::defaults(Scale::Tiny);
    p.peer_sizes.clear();
    p.target = target;
    (opts, p)
}

fn assert_cold_records_were_cold(results: &Results, setup: &str) {
    let cold: Vec<_> = results
        .records
        .iter()
        .filter(|r| r.setup == setup && r.part == Part::FirstWrite && r.cache == Cache::Cold)
        .collect();
    assert!(!cold.is_empty(), "no cold records for {setup}");
    for r in cold {
        let c = r.cache_check.expect("cache evidence");
        assert_eq!(c.resident_max, 0, "{setup}: not cold: {c:?}");
        assert_eq!(r.sample_count, r.samples_ns.len());
        assert!(r.sample_count > 0);
    }
}

#[test]
fn device_is_refused_without_destroy_data_and_while_mounted() {
    if !root() {
        return;
    }
    let base = tempfile::Builder::new().prefix("strata-copyup-dev-").tempdir_in("/var/tmp").unwrap();
    let (dev, _) = loop_device(base.path(), 64 << 20);
    let out = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(dev.path()).output().unwrap();
    assert!(out.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&out.stderr));

    // Without --destroy-data: refused, naming what is on it.
    let err = Target::device(dev.path(), false).unwrap_err().to_string();
    assert!(err.contains("--destroy-data") && err.contains("ext4"), "{err}");
    // The same through the command line.
    let cli = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["bench", "copy-up", "--tiny", "--no-peers", "--device"])
        .arg(dev.path())
        .arg("-o")
        .arg(base.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(!cli.status.success() && stderr.contains("--destroy-data") && stderr.contains("ext4"), "{stderr}");
    assert!(mounted(dev.path()).is_none());

    // Mounted: refused even with --destroy-data, naming the mount point.
    let mnt = base.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    strata::sys::mount::mount_fs("ext4", &dev.path().display().to_string(), &[], &mnt).unwrap();
    let guard = Mounted(mnt.clone());
    let err = Target::device(dev.path(), true).unwrap_err().to_string();
    assert!(err.contains("in use") && err.contains(&mnt.display().to_string()), "{err}");
    drop(guard);
    assert!(matches!(Target::device(dev.path(), true), Ok(Target::Device(_))));
    // Not a block device at all.
    let err = Target::device(base.path(), true).unwrap_err().to_string();
    assert!(err.contains("not a block device"), "{err}");
}

#[test]
fn copy_up_runs_on_a_device_it_formats_and_leaves_it_unmounted() {
    if !root() {
        return;
    }
    let base = tempfile::Builder::new().prefix("strata-copyup-dev-").tempdir_in("/var/tmp").unwrap();
    let scratch = base.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let (dev, file) = loop_device(base.path(), 640 << 20);
    let target = Target::device(dev.path(), true).unwrap();
    let (opts, mut p) = tiny(target, &scratch);
    p.setups = copyup::SETUPS
        .iter()
        .copied()
        .filter(|s| ["overlay on ext4", "copy on xfs"].contains(&s.label().as_str()))
        .collect();
    assert_eq!(p.setups.len(), 2);

    let results = copyup::run(&opts, &p);

    assert!(results.failures.is_empty(), "failed: {:?}", results.failures);
    assert!(results.storage.as_deref().unwrap().contains("--device"));
    for name in ["overlay on ext4", "copy on xfs"] {
        let a = results.setups.iter().find(|a| a.name == name).unwrap();
        assert_eq!(a.status, "measured", "{name}");
        let s = a.storage.as_ref().expect("storage facts");
        assert_eq!(s.device.as_deref(), Some(dev.path().to_str().unwrap()));
        assert_eq!(s.model.as_deref(), Some(format!("loop over {}", file.display()).as_str()), "{s:?}");
        assert!(s.rotational.is_some() && s.scheduler.is_some(), "{s:?}");
        assert_eq!(s.size_bytes, Some(640 << 20));
        assert_eq!(s.fstype.as_deref(), Some(name.rsplit(' ').next().unwrap()));
        assert_cold_records_were_cold(&results, name);
    }
    let mut table = Vec::new();
    copyup::table::print(&mut table, &results).unwrap();
    assert!(String::from_utf8(table).unwrap().contains("loop over"));
    assert!(copyup::html::render(&results, None).contains("loop over"));
    // Left unmounted, the mount points gone; the device is still attached.
    assert!(mounted(dev.path()).is_none(), "{:?}", mounted(dev.path()));
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    assert!(strata::sys::loopdev::is_attached(dev.number()));
}

#[test]
fn copy_up_runs_on_an_existing_filesystem_and_removes_its_directory() {
    if !root() {
        return;
    }
    let base = tempfile::Builder::new().prefix("strata-copyup-on-").tempdir_in("/var/tmp").unwrap();
    let scratch = base.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let theirs = ScratchFs::new_in(base.path(), FsKind::Ext4, 512 << 20).unwrap();
    let before: Vec<_> = std::fs::read_dir(theirs.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    let target = Target::on(theirs.path()).unwrap();
    let (opts, mut p) = tiny(target, &scratch);
    p.setups.push(copyup::Setup::new("btrfs", FsKind::Btrfs));

    let results = copyup::run(&opts, &p);

    assert!(results.failures.is_empty(), "failed: {:?}", results.failures);
    let status = |name: &str| results.setups.iter().find(|a| a.name == name).map(|a| a.status.clone());
    assert_eq!(status("overlay on ext4").as_deref(), Some("measured"));
    assert_eq!(status("copy on ext4").as_deref(), Some("measured"));
    let skipped = status("btrfs on ext4").unwrap();
    assert!(skipped.starts_with("skipped") && skipped.contains("needs a btrfs"), "{skipped}");
    let a = results.setups.iter().find(|a| a.name == "overlay on ext4").unwrap();
    let s = a.storage.as_ref().unwrap();
    assert_eq!(s.kind, "mounted directory");
    let loopdev = theirs.device().unwrap().path();
    assert_eq!(s.mount_source.as_deref(), Some(loopdev.to_str().unwrap()));
    assert_eq!(s.device.as_deref(), Some(loopdev.to_str().unwrap()));
    assert!(s.model.as_deref().unwrap().starts_with("loop over "), "{s:?}");
    assert_eq!(s.reflink, Some(false));
    assert!(results.method.iter().any(|m| m.contains("cold (--on)")));
    assert_cold_records_were_cold(&results, "overlay on ext4");
    assert_cold_records_were_cold(&results, "copy on ext4");
    // Nothing left in their filesystem, nothing mounted below it.
    let after: Vec<_> = std::fs::read_dir(theirs.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before, after);
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!info.contains(&format!("{}/", theirs.path().display())));
}
