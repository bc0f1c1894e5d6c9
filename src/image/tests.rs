//! Layer apply and diff, end to end. Root tier: these create device
//! nodes, set foreign owners and `trusted.*` xattrs, and mount overlayfs.

use super::apply::{apply_layer, ApplyError};
use super::compression::Compression;
use super::diff::write_layer;
use crate::digest::Digest;
use crate::mount::{Mount, TempMount};
use crate::snapshot::{DiffSource, Whiteouts};
use crate::sys::fs::{self as sysfs, Kind};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use tar::EntryType;
use tempfile::TempDir;

// ---------------------------------------------------------------- helpers

fn tmp() -> TempDir {
    tempfile::tempdir().unwrap()
}

/// Sets owner, mode (unless a symlink) and times of `path` by name.
fn set(path: &Path, mode: Option<u32>, owner: (u32, u32), mtime: i64) {
    let dir = sysfs::open_dir(path.parent().unwrap()).unwrap();
    let name = path.file_name().unwrap().as_bytes();
    sysfs::lchown_at(dir.as_fd(), name, owner.0, owner.1).unwrap();
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    sysfs::lutimens_at(dir.as_fd(), name, (mtime, 0), (mtime, 0)).unwrap();
}

fn setxattr(path: &Path, key: &str, value: &[u8]) {
    let dir = sysfs::open_dir(path.parent().unwrap()).unwrap();
    sysfs::lsetxattr_at(dir.as_fd(), path.file_name().unwrap().as_bytes(), key.as_bytes(), value).unwrap();
}

fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let dir = sysfs::open_dir(path.parent().unwrap()).unwrap();
    sysfs::lxattrs_at(dir.as_fd(), path.file_name().unwrap().as_bytes()).unwrap()
}

fn mknod(path: &Path, node: sysfs::Node, major: u32, minor: u32) {
    let dir = sysfs::open_dir(path.parent().unwrap()).unwrap();
    sysfs::mknod_at(dir.as_fd(), path.file_name().unwrap().as_bytes(), node, 0o600, major, minor).unwrap();
}

/// Everything about one tree entry that a layer round trip must keep.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    rdev: (u32, u32),
    data: Vec<u8>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first path (in sorted order) sharing this entry's inode.
    link_group: String,
}

/// A tree as `relative path → Node`, the root excluded.
fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, std::fs::Metadata)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            out.push((p.strip_prefix(root).unwrap().to_str().unwrap().to_owned(), m.clone()));
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut entries = Vec::new();
    walk(root, root, &mut entries);
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut first: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (rel, m) in entries {
        let p = root.join(&rel);
        let dir = sysfs::open_dir(p.parent().unwrap()).unwrap();
        let meta = sysfs::lstat_at(dir.as_fd(), p.file_name().unwrap().as_bytes()).unwrap();
        let data = match meta.kind {
            Kind::File => std::fs::read(&p).unwrap(),
            Kind::Symlink => std::fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec(),
            _ => Vec::new(),
        };
        let group = first.entry((m.dev(), m.ino())).or_insert_with(|| rel.clone()).clone();
        out.insert(
            rel,
            Node {
                kind: meta.kind,
                mode: meta.mode,
                uid: meta.uid,
                gid: meta.gid,
                mtime: meta.mtime.0,
                rdev: meta.rdev,
                data,
                xattrs: xattrs(&p),
                link_group: group,
            },
        );
    }
    out
}

/// A tree with every entry type and the awkward cases: xattrs, hard links,
/// a sparse file, setuid/setgid/sticky, large and odd owners, a negative
/// mtime, a path longer than ustar holds and a long symlink target.
fn build_tree(root: &Path) {
    let long_dir: String = (0..5).map(|i| format!("{}{i}/", "d".repeat(60))).collect();
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::create_dir_all(root.join("sticky")).unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::create_dir_all(root.join(&long_dir)).unwrap();
    std::fs::write(root.join("a/file"), b"hello").unwrap();
    std::fs::write(root.join("a/empty"), b"").unwrap();
    std::fs::write(root.join("a/setuid"), b"#!/bin/sh\n").unwrap();
    std::fs::hard_link(root.join("a/file"), root.join("hardlink")).unwrap();
    std::fs::hard_link(root.join("a/file"), root.join("a/b/hardlink2")).unwrap();
    let sparse = std::fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(3 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"end", 3 << 20).unwrap();
    std::fs::write(root.join(format!("{long_dir}long-file")), vec![7u8; 10_000]).unwrap();
    std::fs::write(root.join("owned"), b"x").unwrap();
    std::fs::write(root.join("ancient"), b"old").unwrap();
    symlink("a/file", root.join("rel-link")).unwrap();
    symlink("/etc/passwd", root.join("abs-link")).unwrap();
    symlink(format!("/{}", "t".repeat(150)), root.join("long-link")).unwrap();
    mknod(&root.join("dev/null"), sysfs::Node::Char, 1, 3);
    mknod(&root.join("dev/loop9"), sysfs::Node::Block, 7, 9);
    mknod(&root.join("fifo"), sysfs::Node::Fifo, 0, 0);
    setxattr(&root.join("a/file"), "user.greeting", b"hi");
    setxattr(&root.join("a/b"), "user.dir", b"\x00\x01binary");
    setxattr(&root.join("a/b"), "trusted.strata", b"t");

    set(&root.join("a/file"), Some(0o644), (0, 0), 1_600_000_000);
    set(&root.join("a/empty"), Some(0o600), (1, 2), 1_600_000_001);
    set(&root.join("a/setuid"), Some(0o4755), (0, 0), 1_600_000_002);
    set(&root.join("sparse"), Some(0o640), (33, 33), 1_600_000_003);
    set(&root.join(format!("{long_dir}long-file")), Some(0o644), (0, 0), 1_600_000_004);
    set(&root.join("owned"), Some(0o2755), (3_000_000, 4_000_000_000), 1_600_000_005);
    set(&root.join("ancient"), Some(0o644), (0, 0), -1000);
    set(&root.join("rel-link"), None, (5, 6), 1_600_000_006);
    set(&root.join("abs-link"), None, (0, 0), 1_600_000_007);
    set(&root.join("long-link"), None, (0, 0), 1_600_000_008);
    set(&root.join("dev/null"), Some(0o666), (0, 0), 1_600_000_009);
    set(&root.join("dev/loop9"), Some(0o660), (0, 6), 1_600_000_010);
    set(&root.join("fifo"), Some(0o620), (7, 8), 1_600_000_011);
    // Directories last, deepest first: creating children changes mtimes.
    let mut dirs: Vec<String> = vec!["a/b".into(), "a".into(), "sticky".into(), "dev".into()];
    let mut d = long_dir.trim_end_matches('/').to_owned();
    while !d.is_empty() {
        dirs.push(d.clone());
        d = d.rsplit_once('/').map(|(p, _)| p.to_owned()).unwrap_or_default();
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
    for (i, dir) in dirs.iter().enumerate() {
        let (mode, owner) = match dir.as_str() {
            "a/b" => (0o700, (1234, 5678)),
            "sticky" => (0o1777, (0, 0)),
            "a" => (0o2750, (0, 50)),
            _ => (0o755, (0, 0)),
        };
        set(&root.join(dir), Some(mode), owner, 1_500_000_000 + i64::try_from(i).unwrap());
    }
}

fn diff_tree(upper: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let outcome = write_layer(&DiffSource::Trees { lower: None, upper: upper.to_owned() }, &mut out).unwrap();
    assert_eq!(outcome.size, out.len() as u64);
    assert_eq!(outcome.diff_id.0, Digest::of(&out));
    out
}

/// `(path, type, size, mode, pax keys)` of every entry in a tar.
fn list(tar_bytes: &[u8]) -> Vec<(String, EntryType, u64, u32, Vec<String>)> {
    let mut a = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let h = e.header().clone();
        let keys = match e.pax_extensions().unwrap() {
            Some(exts) => exts.map(|x| x.unwrap().key().unwrap().to_owned()).collect(),
            None => Vec::new(),
        };
        out.push((path, h.entry_type(), h.size().unwrap(), h.mode().unwrap(), keys));
    }
    out
}

/// A tar written header by header, so entries can say what a well-behaved
/// writer (and `tar::Builder`) refuses to: `..`, absolute link targets.
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn entry(mut self, name: &str, kind: EntryType, link: &str, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_mode(if kind == EntryType::Directory { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(kind);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, EntryType::Regular, "", data)
    }
    fn dir(self, name: &str) -> Self {
        self.entry(name, EntryType::Directory, "", b"")
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, EntryType::Symlink, target, b"")
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name, EntryType::Link, target, b"")
    }
    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).unwrap().next().is_none()
}

// ------------------------------------------------------------ round trip

#[test]
fn round_trip_keeps_every_entry_type_and_attribute() {
    let src = tmp();
    build_tree(src.path());
    let layer = diff_tree(src.path());
    assert_eq!(layer, diff_tree(src.path()), "diff must be reproducible");

    let dst = tmp();
    let outcome = apply_layer(&layer[..], dst.path(), Whiteouts::Delete).unwrap();
    assert_eq!(outcome.diff_id.0, Digest::of(&layer));
    assert_eq!(outcome.compressed, Digest::of(&layer));
    assert_eq!(outcome.compression, Compression::None);
    assert_eq!(outcome.size, layer.len() as u64);

    let (want, got) = (snapshot(src.path()), snapshot(dst.path()));
    assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>());
    for (path, node) in &want {
        assert_eq!(Some(node), got.get(path), "{path}");
    }
    assert_eq!(got["hardlink"].link_group, "a/b/hardlink2");
    assert_eq!(got["a/file"].link_group, "a/b/hardlink2");
    assert_eq!(got["owned"].uid, 3_000_000);
    assert_eq!(got["owned"].mode, 0o2755);
    assert_eq!(got["a/setuid"].mode, 0o4755);
    assert_eq!(got["ancient"].mtime, -1000);

    // The applied tree diffs to the very same bytes.
    assert_eq!(diff_tree(dst.path()), layer);
}

#[test]
fn diff_orders_entries_and_uses_pax_only_where_needed() {
    let src = tmp();
    build_tree(src.path());
    let entries = list(&diff_tree(src.path()));
    let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    for (i, p) in paths.iter().enumerate() {
        assert!(!p.starts_with('/') && !p.starts_with("./"), "{p}");
        if let Some((parent, _)) = p.trim_end_matches('/').rsplit_once('/') {
            let pos = paths.iter().position(|q| *q == format!("{parent}/")).unwrap();
            assert!(pos < i, "{parent}/ after {p}");
        }
    }
    let find = |p: &str| entries.iter().find(|e| e.0 == p).unwrap();
    assert_eq!(find("a/").1, EntryType::Directory);
    assert_eq!(find("a/file").1, EntryType::Link, "a/b/hardlink2 comes first");
    assert_eq!(find("a/b/hardlink2").1, EntryType::Regular);
    assert_eq!(find("a/b/").4, vec!["SCHILY.xattr.trusted.strata", "SCHILY.xattr.user.dir"]);
    assert_eq!(find("owned").4, vec!["uid", "gid"]);
    assert_eq!(find("ancient").4, vec!["mtime"]);
    assert_eq!(find("long-link").4, vec!["linkpath"]);
    assert!(find("sparse").4.is_empty());
    // Only the two deepest long directories and the file in them overflow
    // ustar's 155-byte prefix + 100-byte name.
    let pax_paths: Vec<&str> =
        entries.iter().filter(|e| e.4.contains(&"path".to_owned())).map(|e| e.0.as_str()).collect();
    assert_eq!(pax_paths.len(), 3, "{pax_paths:?}");
    assert!(pax_paths[2].ends_with("/long-file"));
    assert_eq!(find("dev/null").1, EntryType::Char);
    assert_eq!(find("fifo").1, EntryType::Fifo);
}

#[test]
fn diff_of_trees_writes_changes_and_whiteouts() {
    let lower = tmp();
    let upper = tmp();
    for root in [lower.path(), upper.path()] {
        std::fs::create_dir_all(root.join("etc/ssl")).unwrap();
        std::fs::create_dir_all(root.join("gone/deep")).unwrap();
        std::fs::write(root.join("etc/hosts"), b"127.0.0.1").unwrap();
        std::fs::write(root.join("etc/ssl/cert"), b"c").unwrap();
        std::fs::write(root.join("etc/passwd"), b"root").unwrap();
        std::fs::write(root.join("gone/deep/f"), b"f").unwrap();
        std::fs::write(root.join("chmod"), b"m").unwrap();
        for f in ["etc/hosts", "etc/ssl/cert", "etc/passwd", "gone/deep/f", "chmod"] {
            set(&root.join(f), Some(0o644), (0, 0), 1_600_000_000);
        }
        set(&root.join("etc"), Some(0o750), (0, 42), 1_600_000_000);
    }
    std::fs::remove_dir_all(upper.path().join("gone")).unwrap();
    std::fs::remove_file(upper.path().join("etc/passwd")).unwrap();
    std::fs::write(upper.path().join("etc/hosts"), b"::1").unwrap();
    std::fs::set_permissions(upper.path().join("chmod"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let source = DiffSource::Trees { lower: Some(lower.path().to_owned()), upper: upper.path().to_owned() };
    let mut out = Vec::new();
    write_layer(&source, &mut out).unwrap();
    let entries = list(&out);
    let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    // etc/ is unchanged itself but written before its changed children,
    // so its mode and group survive; etc/ssl is not written at all.
    assert_eq!(paths, [".wh.gone", "chmod", "etc/", "etc/.wh.passwd", "etc/hosts"]);
    assert_eq!(entries[2].3, 0o750);
    assert_eq!((entries[0].1, entries[0].2, entries[0].3), (EntryType::Regular, 0, 0));

    // Applying the diff onto a copy of lower gives upper.
    let copy = tmp();
    let base = diff_tree(lower.path());
    apply_layer(&base[..], copy.path(), Whiteouts::Delete).unwrap();
    apply_layer(&out[..], copy.path(), Whiteouts::Delete).unwrap();
    let (want, got) = (snapshot(upper.path()), snapshot(copy.path()));
    assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>());
    for (path, node) in &want {
        if node.kind != Kind::Dir {
            assert_eq!(Some(node), got.get(path), "{path}");
        }
    }
}

// ------------------------------------------------------------- whiteouts

fn whiteout_layer() -> Vec<u8> {
    RawTar::default()
        .file(".wh.x", b"")
        .dir("d/")
        .file("d/new", b"new")
        .file("d/.wh..wh..opq", b"")
        .file("keep", b"k")
        .file("same", b"s")
        .file(".wh.same", b"")
        .finish()
}

#[test]
fn overlay_whiteouts_become_devices_and_xattrs_and_diff_back() {
    let upper = tmp();
    apply_layer(&whiteout_layer()[..], upper.path(), Whiteouts::Overlay).unwrap();
    let dir = sysfs::open_dir(upper.path()).unwrap();
    let x = sysfs::lstat_at(dir.as_fd(), b"x").unwrap();
    assert_eq!((x.kind, x.rdev), (Kind::CharDevice, (0, 0)));
    assert!(xattrs(&upper.path().join("d")).contains(&(b"trusted.overlay.opaque".to_vec(), b"y".to_vec())));
    assert_eq!(std::fs::read(upper.path().join("d/new")).unwrap(), b"new");
    // A whiteout only hides lower layers, never its own layer's entry.
    assert_eq!(std::fs::read(upper.path().join("same")).unwrap(), b"s");

    let mut out = Vec::new();
    write_layer(&DiffSource::OverlayUpper(upper.path().to_owned()), &mut out).unwrap();
    let entries = list(&out);
    let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(paths, [".wh.x", "d/", "d/.wh..wh..opq", "d/new", "keep", "same"]);
    assert!(entries.iter().all(|e| e.4.iter().all(|k| !k.contains("overlay"))), "{entries:?}");
    assert_eq!((entries[0].1, entries[0].2, entries[0].3), (EntryType::Regular, 0, 0));
}

#[test]
fn delete_mode_whiteouts_and_opaque_dirs_on_a_full_tree() {
    let root = tmp();
    let r = root.path();
    std::fs::create_dir_all(r.join("d/sub")).unwrap();
    std::fs::create_dir_all(r.join("gone/deep")).unwrap();
    std::fs::write(r.join("x"), b"x").unwrap();
    std::fs::write(r.join("d/old"), b"o").unwrap();
    std::fs::write(r.join("d/sub/older"), b"o").unwrap();
    std::fs::write(r.join("gone/deep/f"), b"f").unwrap();
    std::fs::write(r.join("same"), b"lower").unwrap();
    let layer = RawTar::default()
        .file(".wh.x", b"")
        .file(".wh.gone", b"")
        .dir("d/")
        .dir("d/sub/")
        .file("d/new", b"new")
        // The opaque marker after this layer's own entries: they stay,
        // while lower content, even inside d/sub/, goes.
        .file("d/.wh..wh..opq", b"")
        .file("same", b"upper")
        .file(".wh.same", b"")
        .file("nowhere/.wh.y", b"")
        .finish();
    apply_layer(&layer[..], r, Whiteouts::Delete).unwrap();
    let got: Vec<String> = snapshot(r).into_keys().collect();
    // A whiteout under a missing directory deletes nothing and creates nothing.
    assert_eq!(got, ["d", "d/new", "d/sub", "same"]);
    assert_eq!(std::fs::read(r.join("same")).unwrap(), b"upper");
}

#[test]
fn overlayfs_mount_hides_whited_out_lower_entries() {
    let base = tmp();
    let (lower, upper, work, merged) =
        (base.path().join("lower"), base.path().join("upper"), base.path().join("work"), base.path().join("merged"));
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::create_dir(lower.join("d")).unwrap();
    std::fs::write(lower.join("x"), b"x").unwrap();
    std::fs::write(lower.join("d/old"), b"o").unwrap();
    std::fs::write(lower.join("lower-only"), b"l").unwrap();
    apply_layer(&whiteout_layer()[..], &upper, Whiteouts::Overlay).unwrap();

    let mount = Mount {
        kind: "overlay".into(),
        source: "overlay".into(),
        options: vec![
            format!("lowerdir={}", lower.display()),
            format!("upperdir={}", upper.display()),
            format!("workdir={}", work.display()),
            "index=off".into(),
        ],
    };
    // Declared after `base`, so dropped (unmounted) first, even on panic.
    let m = TempMount::new(&[mount], &merged)
        .unwrap_or_else(|e| panic!("this test needs overlayfs with trusted xattrs (root): {e}"));
    assert!(!merged.join("x").exists(), "whited-out file is visible");
    assert!(!merged.join("d/old").exists(), "opaque dir shows lower content");
    assert_eq!(std::fs::read(merged.join("d/new")).unwrap(), b"new");
    assert_eq!(std::fs::read(merged.join("lower-only")).unwrap(), b"l");
    assert_eq!(std::fs::read(merged.join("keep")).unwrap(), b"k");

    // Changes made through the mount come back out as a layer: overlayfs'
    // own whiteouts (which it may hard-link to one shared inode) included.
    std::fs::remove_file(merged.join("lower-only")).unwrap();
    std::fs::write(merged.join("added"), b"a").unwrap();
    drop(m);
    let mut out = Vec::new();
    write_layer(&DiffSource::OverlayUpper(upper.clone()), &mut out).unwrap();
    let paths: Vec<String> = list(&out).into_iter().map(|e| e.0).collect();
    assert_eq!(paths, [".wh.lower-only", ".wh.x", "added", "d/", "d/.wh..wh..opq", "d/new", "keep", "same"]);
}

// ----------------------------------------------------------- compression

#[test]
fn compressed_blobs_hash_both_streams() {
    let src = tmp();
    std::fs::write(src.path().join("f"), vec![1u8; 100_000]).unwrap();
    let mut plain = diff_tree(src.path());
    // Record padding after the end-of-archive blocks is part of diff_id.
    plain.resize(plain.len().div_ceil(10240) * 10240, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    for (blob, kind) in [(&gz, Compression::Gzip), (&zst, Compression::Zstd), (&plain, Compression::None)] {
        let dst = tmp();
        let o = apply_layer(&blob[..], dst.path(), Whiteouts::Delete).unwrap();
        assert_eq!(o.compression, kind);
        assert_eq!(o.compressed, Digest::of(blob), "{kind}");
        assert_eq!(o.compressed_size, blob.len() as u64);
        assert_eq!(o.diff_id.0, Digest::of(&plain), "{kind}");
        assert_eq!(o.size, plain.len() as u64);
        assert_eq!(std::fs::read(dst.path().join("f")).unwrap(), vec![1u8; 100_000]);
    }
}

// ------------------------------------------------------------- malicious

/// A target dir inside a sandbox dir; anything written outside the target
/// lands in the sandbox where the test can see it.
struct Jail {
    sandbox: TempDir,
}

impl Jail {
    fn new() -> Jail {
        let sandbox = tmp();
        std::fs::create_dir(sandbox.path().join("root")).unwrap();
        std::fs::create_dir(sandbox.path().join("outside")).unwrap();
        std::fs::write(sandbox.path().join("secret"), b"secret").unwrap();
        Jail { sandbox }
    }
    fn root(&self) -> std::path::PathBuf {
        self.sandbox.path().join("root")
    }
    fn apply(&self, layer: &[u8]) -> Result<(), ApplyError> {
        apply_layer(layer, &self.root(), Whiteouts::Delete).map(|_| ())
    }
    /// The sandbox holds exactly what `new` put there.
    fn assert_untouched(&self) {
        let mut names: Vec<String> = std::fs::read_dir(self.sandbox.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["outside", "root", "secret"]);
        assert!(is_empty_dir(&self.sandbox.path().join("outside")));
        assert_eq!(std::fs::read(self.sandbox.path().join("secret")).unwrap(), b"secret");
    }
}

fn assert_refused(r: Result<(), ApplyError>, entry: &str) {
    let e = r.expect_err("layer must be refused");
    assert!(e.to_string().contains(entry), "error {e:?} does not name {entry}");
}

#[test]
fn refuses_dot_dot_entries() {
    for name in ["../evil", "a/../../evil", "./../secret"] {
        let jail = Jail::new();
        let r = jail.apply(&RawTar::default().file(name, b"pwned").finish());
        assert!(matches!(r, Err(ApplyError::PathEscapes { .. })), "{name}: {r:?}");
        assert_refused(r, name);
        jail.assert_untouched();
    }
}

#[test]
fn writes_through_symlinks_stay_inside() {
    let jail = Jail::new();
    let outside = jail.sandbox.path().join("outside");
    let layer = RawTar::default().symlink("link", outside.to_str().unwrap()).file("link/pwned", b"pwned").finish();
    // Either refused or written inside the root; never outside.
    let r = jail.apply(&layer);
    jail.assert_untouched();
    if r.is_ok() {
        assert!(jail.root().join(outside.strip_prefix("/").unwrap()).join("pwned").exists());
    }

    let jail = Jail::new();
    let layer = RawTar::default().symlink("up", "../../..").file("up/x", b"x").dir("up/d/").finish();
    jail.apply(&layer).unwrap();
    jail.assert_untouched();
    assert_eq!(std::fs::read(jail.root().join("x")).unwrap(), b"x");
    assert!(jail.root().join("d").is_dir());

    // An entry named like an existing symlink replaces it, never follows.
    let jail = Jail::new();
    let secret = jail.sandbox.path().join("secret");
    let layer = RawTar::default().symlink("s", secret.to_str().unwrap()).file("s", b"overwritten").finish();
    jail.apply(&layer).unwrap();
    jail.assert_untouched();
    assert_eq!(std::fs::read(jail.root().join("s")).unwrap(), b"overwritten");
    assert!(std::fs::symlink_metadata(jail.root().join("s")).unwrap().is_file());

    // Symlinked parents in the middle of a path are confined too.
    let jail = Jail::new();
    let layer = RawTar::default()
        .symlink("etc", "/")
        .dir("a/")
        .symlink("a/up", "../../../..")
        .file("a/up/secret", b"x")
        .finish();
    jail.apply(&layer).unwrap();
    jail.assert_untouched();
    assert_eq!(std::fs::read(jail.root().join("secret")).unwrap(), b"x");
}

#[test]
fn refuses_hardlinks_out_of_the_root() {
    let jail = Jail::new();
    let r = jail.apply(&RawTar::default().hardlink("h", "/etc/passwd").finish());
    assert!(matches!(r, Err(ApplyError::AbsoluteLinkTarget { .. })), "{r:?}");
    assert_refused(r, "\"h\"");
    jail.assert_untouched();
    assert!(is_empty_dir(&jail.root()));

    let jail = Jail::new();
    let r = jail.apply(&RawTar::default().hardlink("h2", "../secret").finish());
    assert!(matches!(r, Err(ApplyError::LinkTargetEscapes { .. })), "{r:?}");
    assert_refused(r, "\"h2\"");
    jail.assert_untouched();
    assert!(is_empty_dir(&jail.root()));

    // Through a symlink the target resolves inside the root: the outside
    // file is never linked in.
    let jail = Jail::new();
    let up = jail.sandbox.path();
    let layer = RawTar::default().symlink("l", up.to_str().unwrap()).hardlink("h3", "l/secret").finish();
    assert_refused(jail.apply(&layer), "\"h3\"");
    jail.assert_untouched();
    assert!(!jail.root().join("h3").exists());
}

#[test]
fn malformed_layers_fail_cleanly() {
    let good = RawTar::default().dir("d/").file("d/f", &[9u8; 5000]).file("g", b"g").finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&good).unwrap();
    let gz = gz.finish().unwrap();
    let mut garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    garbage[0] = b'x';
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated in data", good[..512 * 3 + 100].to_vec()),
        ("truncated in header", good[..512 * 2 + 100].to_vec()),
        ("garbage", garbage),
        ("truncated gzip", gz[..gz.len() / 2].to_vec()),
        ("bad zstd", [&[0x28, 0xb5, 0x2f, 0xfd][..], &[0xff; 64]].concat()),
    ];
    for (what, blob) in cases {
        let dst = tmp();
        let r = apply_layer(&blob[..], dst.path(), Whiteouts::Delete);
        let e = r.expect_err(what);
        assert!(!e.to_string().is_empty());
    }
    // A stream that is only the end-of-archive marker is an empty layer.
    let dst = tmp();
    apply_layer(&[0u8; 1024][..], dst.path(), Whiteouts::Delete).unwrap();
    assert!(is_empty_dir(dst.path()));
}

#[test]
fn apply_replaces_entries_of_another_type() {
    let root = tmp();
    let r = root.path();
    std::fs::create_dir_all(r.join("was-dir/child")).unwrap();
    std::fs::write(r.join("was-file"), b"f").unwrap();
    std::fs::create_dir(r.join("stays")).unwrap();
    std::fs::write(r.join("stays/lower"), b"l").unwrap();
    let layer = RawTar::default()
        .file("was-dir", b"now a file")
        .dir("was-file/")
        .dir("stays/")
        .file("stays/upper", b"u")
        .finish();
    apply_layer(&layer[..], r, Whiteouts::Delete).unwrap();
    assert_eq!(std::fs::read(r.join("was-dir")).unwrap(), b"now a file");
    assert!(r.join("was-file").is_dir());
    assert!(r.join("stays/lower").exists() && r.join("stays/upper").exists());
    let mode = std::fs::metadata(r.join("stays")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    let mut f = std::fs::File::open(r.join("stays/upper")).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "u");
}

#[test]
fn opaque_upper_root_is_written_first() {
    let upper = tmp();
    std::fs::write(upper.path().join("f"), b"f").unwrap();
    let layer = RawTar::default().file(".wh..wh..opq", b"").finish();
    apply_layer(&layer[..], upper.path(), Whiteouts::Overlay).unwrap();
    let parent = sysfs::open_dir(upper.path().parent().unwrap()).unwrap();
    let name = upper.path().file_name().unwrap().as_bytes();
    assert!(sysfs::lxattrs_at(parent.as_fd(), name)
        .unwrap()
        .contains(&(b"trusted.overlay.opaque".to_vec(), b"y".to_vec())));
    let mut out = Vec::new();
    write_layer(&DiffSource::OverlayUpper(upper.path().to_owned()), &mut out).unwrap();
    let paths: Vec<String> = list(&out).into_iter().map(|e| e.0).collect();
    assert_eq!(paths, [".wh..wh..opq", "f"]);
}
