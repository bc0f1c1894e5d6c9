//! The differential test of the two engines: random tree-operation
//! sequences applied through the io_uring engine into tree A and through
//! the sync twin into tree B, then compared byte for byte with metadata;
//! both trees are then read back through each engine's batches and
//! checked against std.
//!
//! Root tier: the trees live on a tmpfs (mass creation stays off the host
//! root) and the sequences chown and set `trusted.*` xattrs. Unprivileged
//! runs skip the test and say so. `STRATA_TEST_SEED=<hex>` replays a run;
//! `STRATA_TEST_SEQUENCES=<n>` runs more than the default 20.

use super::*;
use crate::scratch::Tmpfs;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::rng::Rng;

/// What this test draws beyond [`Rng`]'s basics.
trait TreeInputs {
    fn mode(&mut self, below: u32) -> u32;
    fn id(&mut self) -> u32;
    fn time(&mut self) -> (i64, u32);
    /// Sizes 0..256 KiB, some empty, a few over 1 MiB.
    fn size(&mut self) -> usize;
}

impl TreeInputs for Rng {
    fn mode(&mut self, below: u32) -> u32 {
        u32::try_from(self.below(below.into())).expect("below a u32")
    }
    fn id(&mut self) -> u32 {
        u32::try_from(self.below(70_000)).expect("below 70000")
    }
    fn time(&mut self) -> (i64, u32) {
        let s = i64::try_from(self.below(2_000_000_000)).expect("fits");
        (s, u32::try_from(self.below(1_000_000_000)).expect("fits"))
    }
    /// Sizes 0..256 KiB, some empty, a few over 1 MiB.
    fn size(&mut self) -> usize {
        match self.below(25) {
            0..=2 => 0,
            3 => (1 << 20) + self.index(2 << 20),
            _ => self.index(256 << 10),
        }
    }
}

/// A random op sequence over a model of what exists.
fn sequence(rng: &mut Rng) -> Vec<TreeOp> {
    let (mut dirs, mut files, mut links) = (vec![PathBuf::new()], Vec::<(PathBuf, u64)>::new(), Vec::<PathBuf>::new());
    let mut ops = Vec::new();
    let n = 40 + rng.index(100);
    for k in 0..n {
        let fresh = |rng: &mut Rng, dirs: &[PathBuf]| rng.pick(dirs).join(format!("n{k}"));
        match rng.below(12) {
            0 => {
                let path = fresh(rng, &dirs);
                ops.push(TreeOp::Mkdir { path: path.clone(), mode: 0o700 | rng.mode(0o100) });
                dirs.push(path);
            }
            1..=3 => {
                let path = fresh(rng, &dirs);
                let size = rng.size();
                ops.push(TreeOp::WriteFile { path: path.clone(), mode: 0o600, data: rng.bytes(size) });
                files.push((path, size as u64));
            }
            4 if !files.is_empty() => {
                let i = rng.index(files.len());
                let offset = rng.below(files[i].1 + 5000);
                let len = rng.index(64 << 10);
                ops.push(TreeOp::WriteAt { path: files[i].0.clone(), offset, data: rng.bytes(len) });
                let end = offset + len as u64;
                // Every hard link of the file grows with it; the model only
                // bounds offsets, so the first name is enough.
                files[i].1 = files[i].1.max(end);
            }
            5 => {
                let path = fresh(rng, &dirs);
                let len = 1 + rng.index(100);
                let target: Vec<u8> = rng.bytes(len).into_iter().map(|b| if b == 0 { b'x' } else { b }).collect();
                ops.push(TreeOp::Symlink { path: path.clone(), target });
                links.push(path);
            }
            6 if !files.is_empty() => {
                let (existing, size) = rng.pick(&files).clone();
                let path = fresh(rng, &dirs);
                ops.push(TreeOp::Hardlink { path: path.clone(), existing });
                files.push((path, size));
            }
            7 if !files.is_empty() || dirs.len() > 1 => {
                let path = if rng.below(2) == 0 && !files.is_empty() {
                    rng.pick(&files).0.clone()
                } else {
                    rng.pick(&dirs[1..].iter().cloned().chain(files.iter().map(|f| f.0.clone())).collect::<Vec<_>>())
                        .clone()
                };
                // Setuid, setgid and sticky included.
                ops.push(TreeOp::Chmod { path, mode: rng.mode(0o10000) });
            }
            8 => {
                if let Some(path) = any_entry(rng, &dirs, &files, &links) {
                    let (uid, gid) = (rng.id(), rng.id());
                    ops.push(TreeOp::Chown { path, uid, gid });
                }
            }
            9 => {
                if let Some(path) = any_entry(rng, &dirs, &files, &links) {
                    let is_link = links.contains(&path);
                    // user.* is refused on symlinks (xattr(7)).
                    let ns = if is_link || rng.below(3) == 0 { "trusted" } else { "user" };
                    let key = format!("{ns}.k{}", rng.below(4)).into_bytes();
                    let len = rng.index(200);
                    ops.push(TreeOp::SetXattr { path, key, value: rng.bytes(len) });
                }
            }
            10 => {
                if let Some(path) = any_entry(rng, &dirs, &files, &links) {
                    let (atime, mtime) = (rng.time(), rng.time());
                    ops.push(TreeOp::SetTimes { path, atime, mtime });
                }
            }
            _ => {}
        }
    }
    // Creating entries moves directory mtimes to "now"; fix every time last
    // so the two trees can be compared to the nanosecond.
    let all: Vec<PathBuf> = dirs[1..].iter().cloned().chain(files.into_iter().map(|f| f.0)).chain(links).collect();
    for path in all {
        let (atime, mtime) = (rng.time(), rng.time());
        ops.push(TreeOp::SetTimes { path, atime, mtime });
    }
    ops
}

fn any_entry(rng: &mut Rng, dirs: &[PathBuf], files: &[(PathBuf, u64)], links: &[PathBuf]) -> Option<PathBuf> {
    let all: Vec<&PathBuf> = dirs[1..].iter().chain(files.iter().map(|f| &f.0)).chain(links).collect();
    (!all.is_empty()).then(|| (*rng.pick(&all)).clone())
}

/// Everything compared about one entry.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    content: Option<Vec<u8>>,
    target: Option<PathBuf>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first path (in sorted order) of the entry's inode: equal for
    /// hard links of one file.
    inode_of: PathBuf,
}

/// A description of the tree at `root` taken with std (and `sys::fs` for
/// xattrs).
fn describe(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut paths = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            paths.push(e.path());
        }
    }
    paths.sort();
    let mut first: HashMap<u64, PathBuf> = HashMap::new();
    let mut out = BTreeMap::new();
    for p in paths {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_owned();
        let inode_of = first.entry(md.ino()).or_insert_with(|| rel.clone()).clone();
        let parent = crate::sys::fs::open_dir(p.parent().unwrap()).unwrap();
        let name = p.file_name().unwrap().as_bytes();
        let entry = Entry {
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            content: md.is_file().then(|| std::fs::read(&p).unwrap()),
            target: md.is_symlink().then(|| std::fs::read_link(&p).unwrap()),
            xattrs: crate::sys::fs::lxattrs_at(parent.as_fd(), name).unwrap(),
            inode_of,
        };
        out.insert(rel, entry);
    }
    out
}

/// Reads `root` back through `engine`'s batches and checks every answer
/// against `want` (std's view).
fn check_read_back(engine: &mut IoEngine, root: &Path, want: &BTreeMap<PathBuf, Entry>) {
    let kind = engine.kind();
    let hashes = hash_tree(engine, root).unwrap();
    let want_hashes: BTreeMap<PathBuf, crate::digest::Digest> = want
        .iter()
        .filter_map(|(p, e)| e.content.as_ref().map(|c| (p.clone(), crate::digest::Digest::of(c))))
        .collect();
    assert_eq!(hashes, want_hashes, "{kind:?}: hash_tree");
    let usage = tree_usage(engine, root).unwrap();
    let du = super::du::tree_usage_simple(root).unwrap();
    assert_eq!((usage.size, usage.inodes), (du.size, du.inodes), "{kind:?}: tree_usage");
    // Every entry, grouped by parent directory.
    let mut by_dir: BTreeMap<PathBuf, Vec<Vec<u8>>> = BTreeMap::new();
    for p in want.keys() {
        let parent = p.parent().unwrap_or(Path::new("")).to_owned();
        by_dir.entry(parent).or_default().push(p.file_name().unwrap().as_bytes().to_vec());
    }
    let dirs: Vec<(PathBuf, Dir)> = by_dir.keys().map(|d| (d.clone(), Dir::open(&root.join(d)).unwrap())).collect();
    let mut items = Vec::new();
    let mut rels = Vec::new();
    for (rel, dir) in &dirs {
        for name in &by_dir[rel] {
            items.push(At { dir, name });
            rels.push(rel.join(std::ffi::OsStr::from_bytes(name)));
        }
    }
    for (rel, st) in rels.iter().zip(engine.statx(&items)) {
        let st = st.unwrap();
        let e = &want[rel];
        assert_eq!(st.mode, e.mode & 0o7777, "{kind:?}: {}", rel.display());
        assert_eq!((st.uid, st.gid, st.size), (e.uid, e.gid, e.size), "{kind:?}: {}", rel.display());
        assert_eq!((st.mtime.0, i64::from(st.mtime.1)), e.mtime, "{kind:?}: {}", rel.display());
        assert_eq!(st.kind == Kind::File, e.content.is_some());
    }
    let files: Vec<(usize, At<'_>)> =
        items.iter().enumerate().filter(|(i, _)| want[&rels[*i]].content.is_some()).map(|(i, a)| (i, *a)).collect();
    let file_items: Vec<At<'_>> = files.iter().map(|(_, a)| *a).collect();
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); file_items.len()];
    engine.read_files_with(&file_items, |i, piece| got[i].extend_from_slice(piece.unwrap().data));
    for ((i, _), data) in files.iter().zip(got) {
        assert!(Some(&data) == want[&rels[*i]].content.as_ref(), "{kind:?}: read {}", rels[*i].display());
    }
}

#[test]
fn uring_and_sync_engines_build_identical_trees() {
    if !crate::sys::process::geteuid().is_root() {
        crate::scratch::skip_test("needs root (tmpfs, chown, trusted.* xattrs)");
        return;
    }
    let Ok(mut uring) = IoEngine::with_kind(IoEngineKind::Uring) else {
        panic!("io_uring unavailable: the differential test needs both engines");
    };
    let mut sync = IoEngine::sync();
    let seed = match std::env::var("STRATA_TEST_SEED") {
        Ok(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("STRATA_TEST_SEED is hex"),
        Err(_) => {
            let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            (d.as_secs() << 30) ^ u64::from(d.subsec_nanos())
        }
    };
    let runs: u64 = std::env::var("STRATA_TEST_SEQUENCES").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    eprintln!("differential seed: STRATA_TEST_SEED={seed:#x}, {runs} sequences");
    let fs = Tmpfs::new_in(&std::env::temp_dir(), 4 << 30).expect("mount tmpfs");
    for run in 0..runs {
        let mut rng = Rng(seed.wrapping_add(run.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
        let ops = sequence(&mut rng);
        let (a, b) = (fs.path().join(format!("a{run}")), fs.path().join(format!("b{run}")));
        for (engine, root) in [(&mut uring, &a), (&mut sync, &b)] {
            std::fs::create_dir(root).unwrap();
            engine.apply(&Dir::open(root).unwrap(), ops.clone()).unwrap_or_else(|e| {
                panic!("seed {seed:#x} run {run} {:?}: {e}", engine.kind());
            });
        }
        let (ta, tb) = (describe(&a), describe(&b));
        assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>(), "seed {seed:#x} run {run}");
        for (p, ea) in &ta {
            assert!(ea == &tb[p], "seed {seed:#x} run {run}: {} differs:\n{ea:?}\n{:?}", p.display(), tb[p]);
        }
        for engine in [&mut uring, &mut sync] {
            check_read_back(engine, &a, &ta);
        }
        crate::sys::fs::remove_all_at(
            crate::sys::fs::open_dir(fs.path()).unwrap().as_fd(),
            format!("a{run}").as_bytes(),
        )
        .unwrap();
        crate::sys::fs::remove_all_at(
            crate::sys::fs::open_dir(fs.path()).unwrap().as_fd(),
            format!("b{run}").as_bytes(),
        )
        .unwrap();
    }
}

use std::os::fd::AsFd;
use std::path::PathBuf;
