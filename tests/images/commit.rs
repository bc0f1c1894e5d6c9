//! Differential test of the two ways strata turns a writable snapshot into
//! a layer: overlay's native diff (a walk of the upper dir) and the copy
//! driver's walk-and-compare. The same changes made through each driver's
//! mount must produce the same layer (timestamps aside, since "now"
//! differs between the runs), and that layer must recreate the tree.

use crate::common::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use strata::digest::ChainId;
use strata::mount::TempMount;
use strata::scratch::FsKind;
use strata::snapshot::SnapshotKey;

fn base_tar(path: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for d in ["etc", "usr", "usr/lib", "usr/lib/old", "var", "var/cache"] {
        dir(&mut b, d, 0o755);
    }
    file(&mut b, "etc/config", b"setting=1\n", 0o644);
    file(&mut b, "etc/remove-me", b"bye\n", 0o644);
    file(&mut b, "etc/rename-me", b"moving\n", 0o644);
    file(&mut b, "usr/lib/old/a.so", &vec![7u8; 100_000], 0o755);
    file(&mut b, "usr/lib/old/b.so", b"b", 0o755);
    file(&mut b, "usr/lib/keep.so", b"keep", 0o755);
    file(&mut b, "var/cache/data", b"cache", 0o600);
    b.finish().unwrap();
}

/// The same changes, made through a mounted writable snapshot.
fn change(root: &Path) {
    std::fs::write(root.join("etc/config"), b"setting=2\n").unwrap();
    std::fs::remove_file(root.join("etc/remove-me")).unwrap();
    std::fs::rename(root.join("etc/rename-me"), root.join("etc/renamed")).unwrap();
    std::fs::remove_dir_all(root.join("usr/lib/old")).unwrap();
    std::fs::create_dir_all(root.join("opt/app/bin")).unwrap();
    std::fs::write(root.join("opt/app/bin/run"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("opt/app/bin/run"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("../lib/keep.so", root.join("usr/lib/link.so")).unwrap();
    std::os::unix::fs::lchown(root.join("var/cache/data"), Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(root.join("usr/lib/keep.so"), std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// A layer tar as a map path → (type, mode, uid, gid, content, link),
/// mtimes left out.
type Entries = BTreeMap<String, (u8, u32, u64, u64, Vec<u8>, Option<String>)>;

fn entries(blob: &[u8]) -> Entries {
    let mut a = tar::Archive::new(blob);
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string().trim_end_matches('/').to_owned();
        let h = e.header().clone();
        let link = e.link_name().unwrap().map(|l| l.display().to_string());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(path, (h.entry_type().as_byte(), h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap(), data, link));
    }
    out
}

fn commit_with(driver: &'static str) -> (Entries, Vec<u8>) {
    let kind = if driver == "btrfs" { FsKind::Btrfs } else { FsKind::Xfs };
    let env = Env::new(kind, driver);
    let engine = env.engine();
    let t = env.scratch("base.tar");
    base_tar(&t);
    let (base, _) = engine.layers().register(None, None, std::fs::File::open(&t).unwrap()).unwrap();
    let key = SnapshotKey::new("container-1").unwrap();
    let mounts = engine.snapshots.prepare(&key, Some(&base.snapshot)).unwrap();
    let mnt = env.scratch("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    {
        let m = TempMount::new(&mounts, &mnt).unwrap();
        change(m.path());
        m.unmount().unwrap();
    }
    let (layer, fresh) = engine.layers().commit_active(&key, Some(&base.chain_id)).unwrap();
    assert!(fresh);
    assert_eq!(layer.chain_id, ChainId::new(Some(&base.chain_id), &layer.diff_id));
    let blob = std::fs::read(engine.content.path(&layer.blob.digest)).unwrap();
    assert_eq!(strata::digest::Digest::of(&blob), layer.diff_id.0, "{driver}: blob is the uncompressed diff");
    assert_eq!(
        layer.size,
        10 + 10 + 7 + 4 + 5,
        "{driver}: content size counts regular files (config, run, renamed, keep.so, data)"
    );
    (entries(&blob), blob)
}

#[test]
fn overlay_native_diff_matches_walk_and_compare() {
    let Some(()) = require_root("commit differential") else { return };
    let (overlay, overlay_blob) = commit_with("overlay");
    let (copy, _) = commit_with("copy");
    assert_eq!(overlay.keys().collect::<Vec<_>>(), copy.keys().collect::<Vec<_>>(), "same entries");
    assert_eq!(overlay, copy, "same types, modes, owners, content and links");
    for must in [
        "etc/.wh.remove-me",
        "etc/.wh.rename-me",
        "etc/renamed",
        "usr/lib/.wh.old",
        "opt/app/bin/run",
        "usr/lib/link.so",
    ] {
        assert!(overlay.contains_key(must), "layer has {must}: {:?}", overlay.keys());
    }
    assert!(!overlay.contains_key("usr/lib/old/a.so"), "a deleted directory is one whiteout");
    assert_eq!(overlay["opt/app/bin/run"].1 & 0o7777, 0o4755);

    // The layer recreates the changed tree when applied on the base with
    // the other driver.
    let env = Env::new(FsKind::Ext4, "copy");
    let engine = env.engine();
    let t = env.scratch("base.tar");
    base_tar(&t);
    let (base, _) = engine.layers().register(None, None, std::fs::File::open(&t).unwrap()).unwrap();
    let (top, _) = engine.layers().register(Some(&base.chain_id), None, &overlay_blob[..]).unwrap();
    let view = SnapshotKey::new("view").unwrap();
    let mounts = engine.snapshots.view(&view, Some(&top.snapshot)).unwrap();
    let mnt = env.scratch("view");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = TempMount::new(&mounts, &mnt).unwrap();
    let r = m.path();
    assert_eq!(std::fs::read(r.join("etc/config")).unwrap(), b"setting=2\n");
    assert!(!r.join("etc/remove-me").exists() && !r.join("etc/rename-me").exists());
    assert_eq!(std::fs::read(r.join("etc/renamed")).unwrap(), b"moving\n");
    assert!(!r.join("usr/lib/old").exists());
    assert_eq!(std::fs::read_link(r.join("usr/lib/link.so")).unwrap().to_str(), Some("../lib/keep.so"));
    assert_eq!(std::fs::metadata(r.join("var/cache/data")).unwrap().uid(), 1000);
    assert_eq!(std::fs::metadata(r.join("usr/lib/keep.so")).unwrap().mode() & 0o7777, 0o700);
    m.unmount().unwrap();
}

/// The btrfs driver's diff (two subvolume trees compared) yields the same
/// layer as overlay's native diff of the same changes.
#[test]
fn btrfs_commit_matches_overlay() {
    let Some(()) = require_root("commit differential (btrfs)") else { return };
    let (overlay, overlay_blob) = commit_with("overlay");
    let (btrfs, btrfs_blob) = commit_with("btrfs");
    assert_eq!(overlay.keys().collect::<Vec<_>>(), btrfs.keys().collect::<Vec<_>>(), "same entries");
    assert_eq!(overlay, btrfs, "same types, modes, owners, content and links");
    assert_eq!(overlay_blob.len(), btrfs_blob.len());
}
