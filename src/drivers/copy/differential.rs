//! The differential harness for the tree copy engine: one randomized tree,
//! copied with every [`Strategy`], each copy compared with a description of
//! the source taken before any copy ran.
//!
//! Tiers: as root the tree lives on a scratch XFS with reflinks (so the
//! `FICLONE` path really runs) and includes owners, device nodes and
//! `trusted.*`/`security.*` xattrs; unprivileged it lives in a temporary
//! directory and leaves those out.

use super::parallel::{copy_tree_parallel, copy_tree_with, Parallel};
use super::tree::{copy_tree, copy_tree_sequential, CopyStats, Strategy};
use crate::scratch::{FsKind, ScratchFs};
use crate::sys;
use crate::sys::fs::{makedev, mknodat, utimensat, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, CWD};
use crate::uring::{IoEngine, IoEngineKind};
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::rng::Rng;

/// What this test draws beyond [`Rng`]'s basics.
trait TreeInputs {
    /// A uid or gid, some beyond 65535.
    fn id(&mut self) -> u32;
}

impl TreeInputs for Rng {
    /// A uid or gid, some beyond 65535.
    fn id(&mut self) -> u32 {
        u32::try_from(self.below(70000)).expect("below 70000")
    }
}

/// Everything the engine promises to preserve about one entry.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u64,
    size: u64,
    mtime: (i64, i64),
    /// Regular files only: directories' and symlinks' access times move
    /// whenever they are read (readdir, readlink).
    atime: Option<(i64, i64)>,
    xattrs: BTreeMap<OsString, Vec<u8>>,
    link_target: Option<PathBuf>,
    /// SHA-256 of a regular file's bytes.
    content: Option<String>,
    /// Data segments, when the source file has holes.
    segments: Option<Vec<(u64, u64)>>,
}

/// A tree described: entries by relative path, and the groups of paths
/// that share an inode.
#[derive(Debug, PartialEq, Eq)]
struct Description {
    entries: BTreeMap<PathBuf, Entry>,
    hardlinks: BTreeSet<Vec<PathBuf>>,
}

fn describe(root: &Path, holes_from: Option<&Description>) -> Description {
    let mut entries = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = root.join(&rel);
        let md = path.symlink_metadata().unwrap();
        let ft = md.file_type();
        if ft.is_dir() {
            for e in std::fs::read_dir(&path).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        } else if md.nlink() > 1 {
            inodes.entry(md.ino()).or_default().push(rel.clone());
        }
        let mut xattrs = BTreeMap::new();
        for name in sys::xattr::llist(&path).unwrap() {
            let v = sys::xattr::lget(&path, &name).unwrap();
            xattrs.insert(name, v);
        }
        // O_NOATIME: describing the source must not change what is copied.
        let file = ft.is_file().then(|| {
            std::fs::File::from(sys::fs::open(&path, OFlags::RDONLY | OFlags::NOATIME, Mode::empty()).unwrap())
        });
        let segments = if let Some(f) = &file {
            let segs = sys::clone::data_segments(f, md.len()).unwrap();
            let has_holes = segs != [(0, md.len())] && md.len() > 0;
            let want = match holes_from {
                Some(src) => src.entries.get(&rel).is_some_and(|e| e.segments.is_some()),
                None => has_holes,
            };
            want.then_some(segs)
        } else {
            None
        };
        entries.insert(
            rel.clone(),
            Entry {
                kind: FileType::from_raw_mode(md.mode()).as_raw_mode(),
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                rdev: if ft.is_file() || ft.is_dir() { 0 } else { md.rdev() },
                size: if ft.is_dir() { 0 } else { md.len() },
                mtime: (md.mtime(), md.mtime_nsec()),
                atime: ft.is_file().then(|| (md.atime(), md.atime_nsec())),
                xattrs,
                link_target: ft.is_symlink().then(|| std::fs::read_link(&path).unwrap()),
                content: file.map(|mut f| {
                    let mut hasher = sha2::Sha256::new();
                    std::io::copy(&mut f, &mut hasher).unwrap();
                    hex::encode(hasher.finalize())
                }),
                segments,
            },
        );
    }
    let hardlinks = inodes
        .into_values()
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    Description { entries, hardlinks }
}

/// Builds a random tree under `root` (which exists).
fn generate(root: &Path, rng: &mut Rng, privileged: bool) {
    let mut dirs = vec![root.to_owned()];
    for i in 0..8 {
        let parent = rng.pick(&dirs).clone();
        let d = parent.join(format!("dir{i}"));
        std::fs::create_dir(&d).unwrap();
        dirs.push(d);
    }
    let mut files = Vec::new();
    for i in 0..40 {
        let dir = rng.pick(&dirs).clone();
        let p = dir.join(format!("file{i}"));
        let f = std::fs::File::create(&p).unwrap();
        match rng.below(4) {
            0 => {}
            1 => {
                let n = 1 + rng.index(9000);
                std::io::Write::write_all(&mut &f, &rng.bytes(n)).unwrap();
            }
            _ => {
                // Sparse: 64 KiB-aligned data islands in a 1 MiB file, often
                // with a trailing hole.
                use std::os::unix::fs::FileExt;
                f.set_len(1 << 20).unwrap();
                for _ in 0..1 + rng.below(4) {
                    let off = rng.below(15) * (64 << 10);
                    f.write_all_at(&rng.bytes(64 << 10), off).unwrap();
                }
            }
        }
        files.push(p);
    }
    let all: Vec<PathBuf> = files.clone();
    // Hardlinks, some across directories.
    for i in 0..6 {
        let target = rng.pick(&all).clone();
        let dir = rng.pick(&dirs).clone();
        std::fs::hard_link(&target, dir.join(format!("link{i}"))).unwrap();
    }
    let mut others = Vec::new();
    for (i, target) in ["file1", "../dir0/file3", "/etc/passwd", "dangling/nowhere", "dir0"].iter().enumerate() {
        let dir = rng.pick(&dirs).clone();
        let p = dir.join(format!("sym{i}"));
        std::os::unix::fs::symlink(target, &p).unwrap();
        others.push(p);
    }
    let fifo = rng.pick(&dirs).join("fifo");
    mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
    others.push(fifo.clone());
    // Hardlinked non-files: the parallel copy links them after the copies
    // too.
    std::fs::hard_link(&fifo, rng.pick(&dirs).join("fifo-link")).unwrap();
    std::fs::hard_link(&others[0], rng.pick(&dirs).join("sym-link")).unwrap();
    if privileged {
        for (name, kind, dev) in [
            ("null", FileType::CharacterDevice, makedev(1, 3)),
            ("whiteout", FileType::CharacterDevice, 0),
            ("loop", FileType::BlockDevice, makedev(7, 42)),
        ] {
            let p = rng.pick(&dirs).join(name);
            mknodat(CWD, &p, kind, Mode::from_raw_mode(0o600), dev).unwrap();
            others.push(p);
        }
    }
    let modes = [0o644, 0o600, 0o755, 0o4755, 0o2755, 0o6711, 0o444, 0o1755];
    for p in files.iter().chain(&others) {
        let ft = p.symlink_metadata().unwrap().file_type();
        // A third keep the creator's owner (0:0): under a setgid parent a
        // copy that assumed its files are created 0:0 would get them wrong.
        if privileged && rng.below(3) != 0 {
            let (uid, gid) = (rng.id(), rng.id());
            std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
        }
        // Some files without any xattr: the parallel copy's fast path.
        if privileged && rng.below(3) != 0 {
            sys::xattr::lset(p, &"trusted.strata".into(), &rng.bytes(12)).unwrap();
            if rng.below(2) == 0 {
                sys::xattr::lset(p, &"security.strata".into(), b"label").unwrap();
            }
        }
        if !ft.is_symlink() {
            // user.* xattrs are allowed only on files and directories (xattr(7)).
            if ft.is_file() && rng.below(2) == 0 {
                let n = rng.index(200);
                sys::xattr::lset(p, &"user.strata".into(), &rng.bytes(n)).unwrap();
            }
            // After chown, which clears setuid.
            let mode = *rng.pick(&modes);
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    // Directory attributes, deepest first so setting times on a child
    // does not disturb its parent.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in &dirs[..dirs.len() - 1] {
        if privileged {
            std::os::unix::fs::lchown(d, Some(rng.id()), Some(rng.id())).unwrap();
            sys::xattr::lset(d, &"trusted.overlay.opaque".into(), b"y").unwrap();
        }
        let mode = *rng.pick(&[0o755, 0o700, 0o1777, 0o2775, 0o555]);
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let mut all_paths: Vec<PathBuf> = files.into_iter().chain(others).chain(dirs).collect();
    all_paths.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for p in all_paths {
        let t = |rng: &mut Rng| Timespec {
            tv_sec: 1_000_000_000 + rng.below(700_000_000) as i64,
            tv_nsec: rng.below(1_000_000_000) as i64,
        };
        let times = Timestamps { last_access: t(rng), last_modification: t(rng) };
        utimensat(CWD, &p, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }
}

/// One way to copy the source to a destination.
type CopyFn<'a> = &'a dyn Fn(&Path) -> CopyStats;

/// Copies one random tree with every strategy and compares each copy with
/// the source.
fn run(base: &Path, privileged: bool, expect_reflink: bool) {
    // STRATA_TEST_SEED=0x... replays a failure.
    let seed = match std::env::var("STRATA_TEST_SEED") {
        Ok(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("STRATA_TEST_SEED is hex"),
        Err(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            now.as_secs() << 30 ^ u64::from(now.subsec_nanos()) | 1
        }
    };
    eprintln!("differential tree copy: seed {seed:#x}, privileged {privileged}, reflink {expect_reflink}");
    if let Err(e) = IoEngine::with_kind(IoEngineKind::Uring) {
        // The io_uring copy then runs the sync twin: nothing is compared.
        crate::scratch::skip_test(&format!("io_uring unavailable ({e}): its read/write batches are not compared"));
    }
    let mut rng = Rng(seed);
    let src = base.join("src");
    std::fs::create_dir(&src).unwrap();
    generate(&src, &mut rng, privileged);
    let want = describe(&src, None);
    assert!(want.entries.values().any(|e| e.segments.is_some()), "the generator made no sparse file");
    // A setgid parent makes new files take its group, so the parallel
    // copy must not assume the creator's: it falls back to checking each.
    let sgid = base.join("sgid");
    std::fs::create_dir(&sgid).unwrap();
    if privileged {
        std::os::unix::fs::lchown(&sgid, None, Some(4242)).unwrap();
    }
    std::fs::set_permissions(&sgid, std::fs::Permissions::from_mode(0o2777)).unwrap();
    let mut stats: Vec<(Strategy, CopyStats)> = Vec::new();
    for strategy in [Strategy::Reflink, Strategy::CopyRange, Strategy::ReadWrite] {
        let twin = copy_tree_sequential(&src, &base.join(format!("{strategy:?}-sequential")), strategy).unwrap();
        let with = |threads, io| Parallel { strategy, threads, io };
        let copies: [(&str, CopyFn<'_>); 5] = [
            ("sequential", &|_| twin.clone()),
            ("default", &|dst| copy_tree(&src, dst, strategy).unwrap()),
            ("4 threads", &|dst| copy_tree_parallel(&src, dst, strategy, 4).unwrap()),
            ("1 thread under setgid", &|dst| copy_tree_parallel(&src, dst, strategy, 1).unwrap()),
            ("3 threads io_uring", &|dst| copy_tree_with(&src, dst, with(3, IoEngineKind::Uring)).unwrap()),
        ];
        for (how, copy) in copies {
            let dst = match how {
                "sequential" => base.join(format!("{strategy:?}-sequential")),
                "1 thread under setgid" => sgid.join(format!("{strategy:?}")),
                _ => base.join(format!("{strategy:?}-{}", how.replace(' ', "-"))),
            };
            let s = copy(&dst);
            let got = describe(&dst, Some(&want));
            for (path, w) in &want.entries {
                let g =
                    got.entries.get(path).unwrap_or_else(|| panic!("{strategy:?} {how}: {} missing", path.display()));
                assert_eq!(g, w, "{strategy:?} {how}: {} differs (seed {seed:#x})", path.display());
            }
            assert_eq!(got, want, "{strategy:?} {how} (seed {seed:#x})");
            // Same work done, the same way: the twins' stats agree.
            assert_eq!(s, twin, "{strategy:?} {how}: stats differ from the sequential twin");
        }
        stats.push((strategy, twin));
    }
    let nonempty = want.entries.values().filter(|e| e.content.is_some() && e.size > 0).count() as u64;
    let unique_nonempty = nonempty
        - want
            .hardlinks
            .iter()
            .filter(|g| want.entries[&g[0]].content.is_some() && want.entries[&g[0]].size > 0)
            .map(|g| g.len() as u64 - 1)
            .sum::<u64>();
    for (strategy, s) in &stats {
        let used = s.reflinked + s.range_copied + s.read_written;
        assert_eq!(used, unique_nonempty, "{strategy:?}: {s:?}");
        match strategy {
            Strategy::Reflink if expect_reflink => assert_eq!(s.reflinked, used, "{s:?}"),
            Strategy::Reflink => {
                assert_eq!(s.reflinked, 0);
                assert!(s.reflink_unsupported.is_some(), "FICLONE failure not remembered: {s:?}");
            }
            Strategy::CopyRange => assert_eq!(s.reflinked, 0, "{s:?}"),
            Strategy::ReadWrite => assert_eq!(s.read_written, used, "{s:?}"),
        }
    }
}

#[test]
fn every_strategy_copies_the_same_tree() {
    if crate::sys::process::geteuid().is_root() && FsKind::Xfs.mkfs_available() {
        let fs = ScratchFs::new(FsKind::Xfs, 512 << 20).unwrap();
        run(fs.path(), true, true);
    } else {
        eprintln!("unprivileged tier: no owners, devices or trusted xattrs, no reflinks (needs root and mkfs.xfs)");
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), false, false);
    }
}

#[test]
fn every_strategy_copies_the_same_tree_without_reflinks() {
    // ext4 has no FICLONE: the Reflink strategy must fall back once and
    // remember it.
    if crate::sys::process::geteuid().is_root() && FsKind::Ext4.mkfs_available() {
        let fs = ScratchFs::new(FsKind::Ext4, 256 << 20).unwrap();
        run(fs.path(), true, false);
    } else {
        crate::scratch::skip_test("needs root and mkfs.ext4 for a scratch ext4");
    }
}

#[test]
fn refuses_an_existing_destination() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::create_dir(dir.path().join("b")).unwrap();
    let e = copy_tree(&dir.path().join("a"), &dir.path().join("b"), Strategy::Reflink).unwrap_err();
    assert!(matches!(e, super::tree::CopyError::DestinationExists(_)), "{e}");
}
