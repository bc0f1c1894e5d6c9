//! The layers of an image extracted at once (`LayerOrder::AtOnce`, overlay)
//! against the ordered path: the same layers, snapshots and trees, byte
//! for byte, on a five-layer image whose whiteouts and opaque directories
//! reach across layers; a failing layer leaves nothing behind.

use crate::common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use strata::digest::{ChainId, DiffId, Digest};
use strata::image::layers::{LayerError, LayerOrder};
use strata::scratch::FsKind;
use strata::snapshot::{DiffSource, SnapshotKey};

fn whiteout<W: Write>(b: &mut tar::Builder<W>, path: &str) {
    file(b, path, b"", 0o644);
}

fn link<W: Write>(b: &mut tar::Builder<W>, kind: tar::EntryType, path: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_mtime(1_700_000_000);
    b.append_link(&mut h, path, target).unwrap();
}

/// Five layers (plain, zstd, gzip, zstd, plain) and their diff IDs.
fn image() -> (Vec<Vec<u8>>, Vec<DiffId>) {
    let tars: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            let mut b = tar::Builder::new(Vec::new());
            match i {
                0 => {
                    for d in ["a", "a/b", "c", "keep", "d"] {
                        dir(&mut b, d, 0o755);
                    }
                    file(&mut b, "a/x", b"x0", 0o644);
                    file(&mut b, "a/b/y", b"y0", 0o600);
                    file(&mut b, "c/z", b"z0", 0o644);
                    file(&mut b, "keep/k", b"k0", 0o644);
                    file(&mut b, "d/e", b"e0", 0o644);
                    link(&mut b, tar::EntryType::Symlink, "a/sl", "../c/z");
                }
                1 => {
                    dir(&mut b, "a", 0o750);
                    whiteout(&mut b, "a/.wh.x");
                    dir(&mut b, "c", 0o755);
                    whiteout(&mut b, "c/.wh..wh..opq");
                    file(&mut b, "c/new", b"new1", 0o644);
                    link(&mut b, tar::EntryType::Link, "c/hard", "c/new");
                }
                2 => {
                    dir(&mut b, "a", 0o755);
                    file(&mut b, "a/x", b"x2 again", 0o644);
                    whiteout(&mut b, ".wh.keep");
                    dir(&mut b, "a/b", 0o700);
                    whiteout(&mut b, "a/b/.wh..wh..opq");
                    file(&mut b, "a/b/w", b"w2", 0o644);
                }
                3 => {
                    whiteout(&mut b, ".wh.d");
                    // Over 1 MiB: the streamed path of the applier.
                    let big: Vec<u8> = (0..3u32 << 20).map(|n| u8::try_from((n * 31 / 7) % 256).unwrap()).collect();
                    file(&mut b, "big", &big, 0o644);
                    dir(&mut b, "keep", 0o755);
                    file(&mut b, "keep/again", b"k3", 0o644);
                }
                _ => {
                    dir(&mut b, "c", 0o755);
                    whiteout(&mut b, "c/.wh.new");
                    file(&mut b, "c/hard", b"rewritten", 0o644);
                    link(&mut b, tar::EntryType::Symlink, "d", "a");
                }
            }
            b.into_inner().unwrap()
        })
        .collect();
    let diff_ids = tars.iter().map(|t| DiffId(Digest::of(t))).collect();
    let blobs = tars
        .into_iter()
        .enumerate()
        .map(|(i, t)| match i {
            1 | 3 => zstd::encode_all(&t[..], 3).unwrap(),
            2 => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&t).unwrap();
                gz.finish().unwrap()
            }
            _ => t,
        })
        .collect();
    (blobs, diff_ids)
}

/// Everything about a tree that a layer could change: type, mode, owner,
/// device, times, content, symlink targets, xattrs (overlay's opaque
/// marker among them).
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let mut xattrs: Vec<_> = strata::sys::xattr::llist(&p)
                .unwrap_or_default()
                .into_iter()
                .map(|n| (n.clone(), strata::sys::xattr::lget(&p, &n).unwrap_or_default()))
                .collect();
            xattrs.sort();
            let content = if m.file_type().is_file() {
                format!("{}", Digest::of(&std::fs::read(&p).unwrap()))
            } else if m.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().display().to_string()
            } else {
                String::new()
            };
            // A whiteout (0/0 character device) is made at apply time, as
            // Docker makes it: its mtime is the clock's, not the layer's.
            let whiteout = m.file_type().is_char_device() && m.rdev() == 0;
            let mtime = if whiteout { 0 } else { m.mtime() };
            out.insert(
                rel,
                format!(
                    "mode {:o} {}:{} rdev {} nlink {} mtime {} {content} {xattrs:?}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.rdev(),
                    if m.is_dir() { 0 } else { m.nlink() },
                    mtime
                ),
            );
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// The layer's own upper dir, its recorded parent, and the whole image as
/// mounted.
fn layers_and_image(env: &Env, chains: &[ChainId]) -> Vec<(Option<SnapshotKey>, BTreeMap<String, String>)> {
    let engine = env.engine();
    let mut out = Vec::new();
    for c in chains {
        let key = strata::image::layers::key_of(c);
        let parent = engine.snapshots.stat(&key).unwrap().parent;
        let DiffSource::OverlayUpper(dir) = engine.snapshots.diff_source(&key).unwrap() else {
            panic!("overlay diffs its upper dir")
        };
        out.push((parent, tree(&dir)));
    }
    let view = SnapshotKey::new("view-compare").unwrap();
    let mounts = engine.snapshots.view(&view, Some(&strata::image::layers::key_of(chains.last().unwrap()))).unwrap();
    let at = env.scratch("view");
    std::fs::create_dir_all(&at).unwrap();
    let m = strata::mount::TempMount::new(&mounts, &at).unwrap();
    out.push((None, tree(m.path())));
    m.unmount().unwrap();
    engine.snapshots.remove(&view).unwrap();
    out
}

#[test]
fn layers_extracted_at_once_match_the_ordered_path() {
    let Some(()) = require_root("parallel layer extraction") else { return };
    let (blobs, diff_ids) = image();
    let chains = ChainId::chain(&diff_ids);
    let ordered = Env::new(FsKind::Ext4, "overlay");
    let at_once = Env::new(FsKind::Ext4, "overlay");
    let open = |i: usize| Ok::<_, LayerError>(&blobs[i][..]);
    let a = ordered.engine().layers().register_image(&diff_ids, open, LayerOrder::InOrder).unwrap();
    let b = at_once.engine().layers().register_image(&diff_ids, open, LayerOrder::AtOnce).unwrap();
    assert_eq!(a, b, "same layers, blobs, sizes and snapshot keys");
    assert!(b.iter().all(|(_, fresh)| *fresh));
    let (ta, tb) = (layers_and_image(&ordered, &chains), layers_and_image(&at_once, &chains));
    for (i, (x, y)) in ta.iter().zip(&tb).enumerate() {
        assert_eq!(x, y, "layer {i} (5 = the mounted image)");
    }
    // The mounted image shows what the whiteouts and opaque dirs say.
    let image = &tb[5].1;
    assert!(!image.contains_key("keep/k") && image.contains_key("keep/again"), "{image:#?}");
    assert!(!image.contains_key("c/z") && !image.contains_key("c/new") && image.contains_key("c/hard"));
    assert!(!image.contains_key("a/b/y") && image.contains_key("a/b/w") && image.contains_key("a/x"));
    // Registering again finds every layer.
    let again = at_once.engine().layers().register_image(&diff_ids, open, LayerOrder::AtOnce).unwrap();
    assert!(again.iter().all(|(_, fresh)| !fresh));
}

/// The pull's use: every layer extracted before any parent is committed
/// (top first here), then committed bottom-up.
#[test]
fn layers_extracted_before_their_parents_commit_onto_them() {
    let Some(()) = require_root("parallel layer extraction") else { return };
    let (blobs, diff_ids) = image();
    let chains = ChainId::chain(&diff_ids);
    let ordered = Env::new(FsKind::Xfs, "overlay");
    let detached = Env::new(FsKind::Xfs, "overlay");
    let open = |i: usize| Ok::<_, LayerError>(&blobs[i][..]);
    ordered.engine().layers().register_image(&diff_ids, open, LayerOrder::InOrder).unwrap();
    let engine = detached.engine();
    let layers = engine.layers();
    let mut extracted: Vec<_> =
        (0..5).rev().map(|i| layers.extract_alone(&diff_ids[i], None, &blobs[i][..], false).unwrap()).collect();
    extracted.reverse();
    for (i, e) in extracted.into_iter().enumerate() {
        let lock = layers.lock_chain(&chains[i]).unwrap();
        layers.commit_extracted(&lock, i.checked_sub(1).map(|p| &chains[p]), e).unwrap();
    }
    assert_eq!(layers_and_image(&ordered, &chains), layers_and_image(&detached, &chains));
}

/// A bad layer anywhere fails the whole image before anything is
/// committed: no layer, no snapshot, no blob of it is left (the ordered
/// path keeps the complete layers below the bad one).
#[test]
fn a_bad_layer_leaves_nothing_of_an_image_extracted_at_once() {
    let Some(()) = require_root("parallel layer extraction") else { return };
    let (blobs, mut diff_ids) = image();
    diff_ids[3] = DiffId(Digest::of(b"not this layer"));
    let env = Env::new(FsKind::Ext4, "overlay");
    let before = env.inventory();
    let engine = env.engine();
    let open = |i: usize| Ok::<_, LayerError>(&blobs[i][..]);
    let err = engine.layers().register_image(&diff_ids, open, LayerOrder::AtOnce).unwrap_err();
    assert!(matches!(err, LayerError::DiffIdMismatch { .. }), "{err}");
    assert!(engine.layers().list().unwrap().is_empty(), "no layer committed");
    let mut snapshots = Vec::new();
    engine.snapshots.walk(|i| snapshots.push(i.key.to_string())).unwrap();
    assert!(snapshots.is_empty(), "no snapshot left: {snapshots:?}");
    let after: Vec<_> = env
        .inventory()
        .into_iter()
        .filter(|p| !before.contains(p) && !p.starts_with("staging") && !p.contains("/tmp"))
        .collect();
    let blob_files: Vec<_> = after.iter().filter(|p| p.contains("blobs/sha256/")).collect();
    assert!(blob_files.len() <= 4, "only the good layers' blobs may stay: {blob_files:?}");
}

/// Drivers that need the parent's content take the ordered path and get
/// the same layers.
#[test]
fn copy_driver_keeps_the_order() {
    let Some(()) = require_root("parallel layer extraction") else { return };
    let (blobs, diff_ids) = image();
    let open = |i: usize| Ok::<_, LayerError>(&blobs[i][..]);
    let x = Env::new(FsKind::Xfs, "copy");
    assert!(!x.engine().layers().extracts_alone());
    let a = x.engine().layers().register_image(&diff_ids, open, LayerOrder::AtOnce).unwrap();
    let y = Env::new(FsKind::Xfs, "copy");
    let b = y.engine().layers().register_image(&diff_ids, open, LayerOrder::InOrder).unwrap();
    assert_eq!(a, b);
}
