//! Committing an active snapshot while it is still mounted, as containerd
//! allows (its snapshotter suite commits before unmounting): the commit
//! succeeds, the committed snapshot holds what was written before it (no
//! sync by the writer: the commit flushes), later writes through the old
//! mount do not reach it, it can be mounted and snapshotted while the old
//! mount exists, and once that mount goes nothing of the old device stays.

use strata::drivers::dmthin::{self, pool::Config, Dmthin};
use strata::mount::TempMount;
use strata::scratch::{FsKind, ScratchFs};
use strata::snapshot::{Driver, Kind, SnapshotId};

/// Tears the pool of `home` down when dropped (after the mounts, which are
/// declared later and so dropped first).
struct Pool(std::path::PathBuf);

impl Drop for Pool {
    fn drop(&mut self) {
        if let Err(e) = dmthin::shut_down(&self.0) {
            eprintln!("dmthin teardown: {e}");
        }
    }
}

fn mount(d: &Dmthin, id: u64, parents: &[SnapshotId], kind: Kind, dir: &std::path::Path) -> TempMount {
    std::fs::create_dir_all(dir).unwrap();
    let mounts = d.mounts(SnapshotId(id), parents, kind).expect("mounts");
    TempMount::new(&mounts, dir).unwrap_or_else(|e| panic!("mount snapshot {id} ({kind:?}) at {}: {e}", dir.display()))
}

fn dm_names() -> Vec<String> {
    std::fs::read_dir("/dev/mapper").unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn dmthin_commit_while_mounted() {
    if !strata::scratch::device_mapper_for_tests("dm-thin commit while mounted") {
        return;
    }
    let fs = ScratchFs::new(FsKind::Ext4, 2 << 30).expect("scratch filesystem");
    let home = fs.path().join("home");
    let _pool = Pool(home.clone());
    let cfg = Config { data_size: 1 << 30, metadata_size: 16 << 20, base_size: 256 << 20, ..Config::default() };
    let d = Dmthin::with_config(&home, cfg).expect("dmthin driver");
    let mnt = fs.path().join("mnt");
    let (a, c) = (SnapshotId(1), [SnapshotId(1)]);

    d.create(a, &[], Kind::Active).unwrap();
    let live = mount(&d, 1, &[], Kind::Active, &mnt.join("a"));
    // No sync: what is still in the page cache must reach the commit.
    std::fs::write(mnt.join("a/data"), "written before commit\n").unwrap();
    d.commit(a, &[]).expect("commit while mounted");
    std::fs::write(mnt.join("a/late"), "written after commit\n").unwrap();

    // While the old mount is there: the committed snapshot itself, a view
    // of it and a child of it all mount and hold the data.
    let committed = mount(&d, 1, &[], Kind::Committed, &mnt.join("c"));
    d.create(SnapshotId(2), &c, Kind::View).unwrap();
    let view = mount(&d, 2, &c, Kind::View, &mnt.join("v"));
    d.create(SnapshotId(3), &c, Kind::Active).unwrap();
    let child = mount(&d, 3, &c, Kind::Active, &mnt.join("k"));
    for dir in ["c", "v", "k"] {
        let got = std::fs::read_to_string(mnt.join(dir).join("data"));
        assert_eq!(got.ok().as_deref(), Some("written before commit\n"), "{dir}: the committed data");
        assert!(!mnt.join(dir).join("late").exists(), "{dir}: a write after the commit leaked into it");
    }
    drop((committed, view, child));
    live.unmount().expect("unmount the committed snapshot's old mount");

    // After: a new child reads the data; the old device is gone and its
    // thin device deleted (every thin device is the base or a snapshot's).
    d.create(SnapshotId(4), &c, Kind::Active).unwrap();
    let child = mount(&d, 4, &c, Kind::Active, &mnt.join("k2"));
    assert_eq!(std::fs::read_to_string(mnt.join("k2/data")).unwrap(), "written before commit\n");
    assert!(!mnt.join("k2/late").exists());
    drop(child);
    let ids = d.pool_thin_ids().expect("probe thin ids");
    let stray: Vec<_> = ids.iter().filter(|(t, owner)| owner.is_none() && !d.is_base(*t).unwrap()).collect();
    assert!(stray.is_empty(), "thin devices of no snapshot left: {stray:?} (all: {ids:?})");
    assert_eq!(ids.len(), 5, "base + 4 snapshots: {ids:?}");
    let retired: Vec<_> = dm_names().into_iter().filter(|n| n.contains("-retired-")).collect();
    assert!(retired.is_empty(), "retired devices still there: {retired:?}");
    for id in [4, 3, 2, 1] {
        d.remove(SnapshotId(id)).unwrap();
    }
}
