//! btrfs driver specifics beside the conformance suite: what the kernel
//! enforces on committed subvolumes, removal of read-only subvolumes and
//! debris, the refusal of a home on another filesystem, and the two ways
//! to a container's size (qgroups and the extent walk) compared.
//!
//! Tier: root, on a loop btrfs ([`ScratchFs`]) released on drop.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use strata::drivers::btrfs::{exclusive::exclusive_usage, Btrfs};
use strata::scratch::{FsKind, ScratchFs};
use strata::snapshot::{Kind, SnapshotId, SnapshotKey, Snapshotter, WriteTarget};

const SCRATCH_SIZE: u64 = 2 << 30;
const MIB: usize = 1 << 20;

fn scratch() -> Option<ScratchFs> {
    if !rustix::process::geteuid().is_root() || !FsKind::Btrfs.mkfs_available() {
        assert!(std::env::var_os("STRATA_TEST_STRICT").is_none(), "needs root and mkfs.btrfs");
        eprintln!("skipped: needs root (loop devices, mounts) and mkfs.btrfs");
        return None;
    }
    Some(ScratchFs::new(FsKind::Btrfs, SCRATCH_SIZE).expect("scratch filesystem"))
}

fn key(s: &str) -> SnapshotKey {
    SnapshotKey::new(s).unwrap()
}

fn open(home: &Path) -> Snapshotter {
    Snapshotter::new(home, Box::new(Btrfs::new(home).expect("btrfs driver"))).unwrap()
}

fn dir_of(sn: &Snapshotter, k: &str) -> PathBuf {
    match sn.write_target(&key(k)).unwrap() {
        WriteTarget::Directory { dir, .. } => dir,
        other => panic!("unexpected write target {other:?}"),
    }
}

/// A committed base holding an 8 MiB file, and an active child of it in
/// which one byte of that file was rewritten.
fn base_and_child_with_one_byte(sn: &Snapshotter) -> (PathBuf, PathBuf) {
    sn.prepare(&key("base-active"), None).unwrap();
    let base = dir_of(sn, "base-active");
    std::fs::write(base.join("big"), vec![b'a'; 8 * MIB]).unwrap();
    sn.commit(&key("base"), &key("base-active")).unwrap();
    sn.prepare(&key("child"), Some(&key("base"))).unwrap();
    let child = dir_of(sn, "child");
    let f = std::fs::OpenOptions::new().write(true).open(child.join("big")).unwrap();
    f.write_all_at(b"Z", 3 * MIB as u64 + 5).unwrap();
    (base, child)
}

/// btrfs specifics beside the suite: the kernel itself refuses writes to
/// a committed subvolume (not only a read-only mount of it), read-only
/// subvolumes and plain-directory debris are removed, and usage counts
/// only the extents a child does not share with its parent.
#[test]
fn committed_readonly_debris_removed_and_exclusive_usage() {
    let Some(fs) = scratch() else { return };
    let home = fs.path().join("home");
    let sn = open(&home);
    let (base_dir, _) = base_and_child_with_one_byte(&sn);
    let base_usage = sn.usage(&key("base")).unwrap();
    assert!(base_usage.size >= 8 * MIB as u64, "base holds its 8 MiB: {base_usage:?}");
    let e = std::fs::write(base_dir.join("new"), "x").expect_err("write into a committed subvolume");
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    sn.view(&key("fresh"), Some(&key("base"))).unwrap();
    assert_eq!(sn.usage(&key("fresh")).unwrap().size, 0, "a fresh snapshot shares everything");
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
    sn.remove(&key("fresh")).unwrap();
    sn.remove(&key("base")).unwrap();
    assert!(sn.driver().list().unwrap().is_empty());
    sn.driver().remove(SnapshotId(12345)).expect("removing what is gone succeeds");
}

/// The driver refuses a home that is not on btrfs, saying so.
#[test]
fn refuses_a_home_not_on_btrfs() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    if strata::sys::statfs::fs_magic(dir.path()).unwrap() == strata::sys::statfs::FsMagic::BTRFS {
        return eprintln!("skipped: /var/tmp is itself on btrfs");
    }
    let err = Btrfs::new(&dir.path().join("btrfs")).expect_err("home on a non-btrfs filesystem");
    assert!(matches!(err, strata::snapshot::DriverError::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("not btrfs"), "{err}");
}

/// The fast path against its twin: with quotas on, usage comes from the
/// subvolume's qgroup; it must agree with the extent walk up to the
/// metadata blocks the qgroup also counts.
#[test]
fn qgroup_usage_agrees_with_the_extent_walk() {
    let Some(fs) = scratch() else { return };
    let root = std::fs::File::open(fs.path()).unwrap();
    strata::sys::btrfs::quota_ctl(&root, strata::sys::btrfs::QuotaCtl::Enable).expect("enable quotas");
    strata::sys::btrfs::quota_rescan_wait(&root).expect("wait for the rescan");
    let home = fs.path().join("home");
    let sn = open(&home);
    let status = sn.driver().status();
    assert!(status.iter().any(|(k, v)| k == "Btrfs Quotas" && v == "qgroup"), "{status:?}");
    assert!(status.iter().any(|(k, v)| k == "Container Size" && v.starts_with("qgroup")), "{status:?}");
    let (base, child) = base_and_child_with_one_byte(&sn);
    let qgroup = sn.usage(&key("child")).unwrap();
    let walk = exclusive_usage(&child, Some(&base)).unwrap();
    let nodesize = strata::sys::btrfs::fs_info(&root).unwrap().nodesize;
    eprintln!("one byte rewritten in an 8 MiB inherited file: qgroup {qgroup:?}, walk {walk:?}, nodesize {nodesize}");
    assert_eq!(walk.size, 4096, "one data block");
    assert!(
        qgroup.size >= walk.size && qgroup.size <= walk.size + 8 * u64::from(nodesize),
        "qgroup {} vs walk {}: more than data plus a few tree nodes apart",
        qgroup.size,
        walk.size
    );
}

/// The tree-search fast path against the FIEMAP walk, over the kinds of
/// change a container makes: rewrites in the middle of inherited files,
/// appends, truncation, new large and inline-sized files, holes,
/// preallocation, deletion, renames, symlinks and hardlinks, two layers
/// deep. Sizes must agree exactly; the fast path may count more inodes
/// (atime updates).
#[test]
fn find_new_agrees_with_the_extent_walk() {
    use strata::drivers::btrfs::find_new::find_new_usage;
    let Some(fs) = scratch() else { return };
    let home = fs.path().join("home");
    let sn = open(&home);
    sn.prepare(&key("base-active"), None).unwrap();
    let base = dir_of(&sn, "base-active");
    std::fs::create_dir_all(base.join("d/e")).unwrap();
    std::fs::write(base.join("big"), vec![b'b'; 4 * MIB]).unwrap();
    std::fs::write(base.join("d/small"), "tiny inline file\n").unwrap();
    std::fs::write(base.join("d/e/mid"), vec![b'm'; 300_000]).unwrap();
    std::fs::write(base.join("gone"), vec![b'g'; 70_000]).unwrap();
    std::fs::write(base.join("shrink"), vec![b's'; MIB]).unwrap();
    sn.commit(&key("base"), &key("base-active")).unwrap();

    let mut parent = ("base".to_owned(), base);
    for layer in 0..2u64 {
        let name = format!("layer-{layer}");
        sn.prepare(&key(&name), Some(&key(&parent.0))).unwrap();
        let dir = dir_of(&sn, &name);
        let rw = |p: &str| std::fs::OpenOptions::new().write(true).open(dir.join(p)).unwrap();
        rw("big").write_all_at(b"one byte", MIB as u64 + 4096 * layer + 3).unwrap();
        rw("d/e/mid").write_all_at(&vec![b'x'; 10_000], 50_000 + layer).unwrap();
        rw("shrink").set_len(100_000 - 1000 * layer).unwrap();
        let mut append = std::fs::OpenOptions::new().append(true).open(dir.join("d/small")).unwrap();
        std::io::Write::write_all(&mut append, b"appended\n").unwrap();
        std::fs::write(dir.join(format!("new-{layer}")), vec![b'n'; 123_457]).unwrap();
        std::fs::write(dir.join(format!("d/inline-{layer}")), "small new file").unwrap();
        let sparse = std::fs::File::create(dir.join(format!("sparse-{layer}"))).unwrap();
        sparse.write_all_at(b"end", 8 * MIB as u64).unwrap();
        let pre = std::fs::File::create(dir.join(format!("prealloc-{layer}"))).unwrap();
        rustix::fs::fallocate(&pre, rustix::fs::FallocateFlags::empty(), 0, 256 * 1024).unwrap();
        if layer == 0 {
            std::fs::remove_file(dir.join("gone")).unwrap();
        }
        std::fs::rename(dir.join("d/e"), dir.join(format!("d/e{layer}"))).unwrap();
        std::fs::rename(dir.join(format!("d/e{layer}")), dir.join("d/e")).unwrap();
        std::os::unix::fs::symlink("d/e/mid", dir.join(format!("link-{layer}"))).unwrap();
        std::fs::hard_link(dir.join(format!("new-{layer}")), dir.join(format!("hard-{layer}"))).unwrap();

        let fast = find_new_usage(&dir).unwrap();
        let walk = exclusive_usage(&dir, Some(&parent.1)).unwrap();
        eprintln!("layer {layer}: find-new {fast:?}, walk {walk:?}");
        assert_eq!(fast.size, walk.size, "layer {layer}: sizes differ");
        assert!(fast.inodes >= walk.inodes, "layer {layer}: {fast:?} vs {walk:?}");
        sn.commit(&key(&format!("{name}-c")), &key(&name)).unwrap();
        parent = (format!("{name}-c"), dir);
    }
}

/// Creating a subvolume needs no privilege, so a container can leave
/// subvolumes (even read-only, even nested) inside its root; removing the
/// container must still succeed.
#[test]
fn remove_deletes_subvolumes_a_container_created() {
    use strata::sys::btrfs::{subvol_create, subvol_setflags, SubvolFlags};
    let Some(fs) = scratch() else { return };
    let home = fs.path().join("home");
    let sn = open(&home);
    sn.prepare(&key("container"), None).unwrap();
    let root = dir_of(&sn, "container");
    std::fs::create_dir(root.join("d")).unwrap();
    subvol_create(std::fs::File::open(root.join("d")).unwrap(), "inner").unwrap();
    subvol_create(std::fs::File::open(root.join("d/inner")).unwrap(), "innermost").unwrap();
    std::fs::write(root.join("d/inner/innermost/f"), "f").unwrap();
    subvol_setflags(std::fs::File::open(root.join("d/inner/innermost")).unwrap(), SubvolFlags::RDONLY).unwrap();
    sn.remove(&key("container")).expect("remove with nested subvolumes");
    assert!(!root.exists());
    assert!(sn.driver().list().unwrap().is_empty());
}

/// Crash debris (see the crash ordering in `snapshot::snapshotter`): a
/// read-only subvolume left under an ID the metadata hands out again is
/// replaced by a fresh one; an active snapshot whose subvolume was already
/// made read-only (a crash inside commit) can still be committed or
/// removed.
#[test]
fn crash_debris_is_replaced_and_half_commits_finish() {
    use strata::sys::btrfs::{subvol_setflags, SubvolFlags};
    let Some(fs) = scratch() else { return };
    let home = fs.path().join("home");
    let sn = open(&home);
    let debris = SnapshotId(1);
    sn.driver().create(debris, &[], Kind::Active).unwrap();
    let path = home.join("snapshots/1");
    std::fs::write(path.join("old"), "debris").unwrap();
    subvol_setflags(std::fs::File::open(&path).unwrap(), SubvolFlags::RDONLY).unwrap();

    sn.prepare(&key("a"), None).unwrap();
    let a = dir_of(&sn, "a");
    assert_eq!(a, path, "the metadata handed out the debris' ID");
    assert_eq!(std::fs::read_dir(&a).unwrap().count(), 0, "debris replaced by an empty subvolume");
    std::fs::write(a.join("new"), "fresh").expect("the new subvolume is writable");

    subvol_setflags(std::fs::File::open(&a).unwrap(), SubvolFlags::RDONLY).unwrap();
    sn.commit(&key("a-c"), &key("a")).expect("commit after a half-done commit");
    sn.prepare(&key("b"), None).unwrap();
    let b = dir_of(&sn, "b");
    subvol_setflags(std::fs::File::open(&b).unwrap(), SubvolFlags::RDONLY).unwrap();
    sn.remove(&key("b")).expect("remove of an active snapshot left read-only");
    assert_eq!(sn.cleanup().unwrap(), 0);
}
