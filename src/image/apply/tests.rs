//! Differential test: random layers applied by the parallel path (1–3
//! workers) and by the sequential twin must build identical trees and
//! report identical digests. Root tier (owners, device nodes, xattrs).

use super::{apply_layer_with, ApplyIo, ApplyOptions, ApplyOutcome};
use crate::rng::Rng;
use crate::snapshot::Whiteouts;
use crate::sys::fs::{self as sysfs, Kind};
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use tar::{EntryType, Header};

/// A directory path: 1–3 components over a small alphabet, so entries
/// of the two layers meet; in the upper layer sometimes through the
/// symlink `s`.
fn dir_path(rng: &mut Rng, upper: bool) -> String {
    let depth = 1 + rng.index(3);
    let mut comps: Vec<&str> = (0..depth).map(|_| *rng.pick(&["a", "b", "c"])).collect();
    if upper && rng.index(6) == 0 {
        comps[0] = "s";
    }
    comps.join("/")
}

/// A non-directory's path, in a directory of [`dir_path`] or the root;
/// sometimes a long name (GNU long name or PAX path).
fn leaf_path(rng: &mut Rng, upper: bool) -> String {
    let name = if rng.index(12) == 0 { "n".repeat(120) } else { (*rng.pick(&["f", "g", "h"])).to_owned() };
    match rng.index(4) {
        0 => name,
        _ => format!("{}/{name}", dir_path(rng, upper)),
    }
}

fn header(rng: &mut Rng, kind: EntryType, size: u64) -> Header {
    let mut h = if rng.index(2) == 0 { Header::new_gnu() } else { Header::new_ustar() };
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(*[0o644, 0o755, 0o600, 0o4755, 0o1777, 0o555].get(rng.index(6)).unwrap());
    h.set_uid(rng.index(3) as u64 * 1000);
    h.set_gid(rng.index(3) as u64 * 7);
    h.set_mtime(1_600_000_000 + rng.index(1000) as u64);
    h
}

fn data(rng: &mut Rng) -> Vec<u8> {
    let size = match rng.index(30) {
        0 => 0,
        1 => (1 << 20) + rng.index(3 << 20), // streamed to a worker
        2 => 2 * 512 + rng.index(5000),
        _ => rng.index(20_000),
    };
    let seed = rng.next_u64();
    (0..size).map(|i| (seed.wrapping_add(i as u64).wrapping_mul(31) >> 3).to_le_bytes()[0]).collect()
}

/// A random layer. The upper layer of a pair also whites out, makes
/// directories opaque, reaches directories through a symlink and, at its
/// end, replaces directories with files.
fn layer(rng: &mut Rng, upper: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    // Hard link targets: files of this layer (whiteouts never remove them).
    let mut files: Vec<String> = Vec::new();
    if upper {
        let mut h = header(rng, EntryType::Directory, 0);
        b.append_data(&mut h, "a/", std::io::empty()).unwrap();
        let mut h = header(rng, EntryType::Symlink, 0);
        b.append_link(&mut h, "s", *rng.pick(&["/a", "a", "./a/../a"])).unwrap();
    }
    let n = 60;
    for i in 0..n {
        let kind = if upper && i >= n - 2 { 20 } else { rng.index(if upper { 14 } else { 11 }) };
        match kind {
            0 | 1 => {
                let mut h = header(rng, EntryType::Directory, 0);
                b.append_data(&mut h, format!("{}/", dir_path(rng, upper)), std::io::empty()).unwrap();
            }
            2 => {
                let target = *rng.pick(&["a", "/b", "../../c", "f", "missing", "/"]);
                let mut h = header(rng, EntryType::Symlink, 0);
                b.append_link(&mut h, leaf_path(rng, upper), target).unwrap();
            }
            3 if !files.is_empty() => {
                let target = files[rng.index(files.len())].clone();
                let mut h = header(rng, EntryType::Link, 0);
                b.append_link(&mut h, leaf_path(rng, upper), target).unwrap();
            }
            4 => {
                let mut h = header(rng, EntryType::Fifo, 0);
                b.append_data(&mut h, leaf_path(rng, upper), std::io::empty()).unwrap();
            }
            11 | 12 => {
                let p = if rng.index(2) == 0 { dir_path(rng, upper) } else { leaf_path(rng, upper) };
                let (dir, name) = p.rsplit_once('/').unwrap_or(("", p.as_str()));
                let wh = if dir.is_empty() { format!(".wh.{name}") } else { format!("{dir}/.wh.{name}") };
                let mut h = header(rng, EntryType::Regular, 0);
                b.append_data(&mut h, wh, std::io::empty()).unwrap();
            }
            13 => {
                let opq = format!("{}/.wh..wh..opq", dir_path(rng, upper));
                let mut h = header(rng, EntryType::Regular, 0);
                b.append_data(&mut h, opq, std::io::empty()).unwrap();
            }
            _ => {
                // At the end of the upper layer: a file where a directory
                // may be.
                let p = if kind == 20 && rng.index(2) == 0 { dir_path(rng, upper) } else { leaf_path(rng, upper) };
                let d = data(rng);
                let mut h = header(rng, EntryType::Regular, d.len() as u64);
                if rng.index(5) == 0 {
                    let v = format!("v{}", rng.index(100));
                    b.append_pax_extensions([("SCHILY.xattr.user.k", v.as_bytes()), ("mtime", b"1650000000.25")])
                        .unwrap();
                }
                b.append_data(&mut h, &p, &d[..]).unwrap();
                files.push(p);
            }
        }
    }
    let mut out = b.into_inner().unwrap();
    out.extend_from_slice(&[0; 1024]);
    out
}

/// Everything about one tree entry the two paths must agree on.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
    data: Vec<u8>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first path (in sorted order) sharing this inode.
    link_group: String,
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
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
    let mut first = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (rel, m) in entries {
        let p = root.join(&rel);
        let dir = sysfs::open_dir(p.parent().unwrap()).unwrap();
        let name = p.file_name().unwrap().as_bytes();
        let meta = sysfs::lstat_at(dir.as_fd(), name).unwrap();
        let data = match meta.kind {
            Kind::File => std::fs::read(&p).unwrap(),
            Kind::Symlink => std::fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec(),
            _ => Vec::new(),
        };
        let group = first.entry(m.ino()).or_insert_with(|| rel.clone()).clone();
        let node = Node {
            kind: meta.kind,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            // Times no entry set (directories created as parents or
            // changed by the layer above) are the time of the run.
            mtime: if meta.mtime.0 > 1_700_000_000 { (0, 0) } else { meta.mtime },
            data,
            xattrs: sysfs::lxattrs_at(dir.as_fd(), name).unwrap(),
            link_group: group,
        };
        out.insert(rel, node);
    }
    out
}

/// Applies both layers with `workers`; the outcomes, or the first error.
fn apply_pair(
    layers: &[Vec<u8>],
    dir: &Path,
    workers: usize,
    io: ApplyIo,
    whiteouts: Whiteouts,
) -> Result<Vec<ApplyOutcome>, String> {
    let opts =
        ApplyOptions { workers, hash_thread: workers % 2 == 0, blob_hash_thread: workers % 3 != 0, sync: false, io };
    layers.iter().map(|l| apply_layer_with(&l[..], dir, whiteouts, &opts).map_err(|e| e.to_string())).collect()
}

#[test]
fn parallel_apply_matches_the_sequential_twin() {
    let mut ok = 0;
    let cases = 30;
    for seed in 0..cases as u64 {
        let mut rng = Rng::new(seed);
        let layers = [layer(&mut rng, false), layer(&mut rng, true)];
        let zst = layers.iter().map(|l| zstd::encode_all(&l[..], 1).unwrap()).collect::<Vec<_>>();
        let whiteouts = if seed % 2 == 0 { Whiteouts::Delete } else { Whiteouts::Overlay };
        let twin = tempfile::tempdir().unwrap();
        let want = apply_pair(&layers, twin.path(), 0, ApplyIo::Sync, whiteouts);
        let want_tree = want.is_ok().then(|| tree(twin.path()));
        // The plain workers (1 to 3 of them) and the io_uring writer (1, 2).
        let runs =
            [(1, ApplyIo::Sync), (2, ApplyIo::Sync), (3, ApplyIo::Sync), (1, ApplyIo::Uring), (2, ApplyIo::Uring)];
        for (workers, io) in runs {
            let blobs: &[Vec<u8>] = if workers == 2 { &zst } else { &layers };
            let dir = tempfile::tempdir().unwrap();
            let got = apply_pair(blobs, dir.path(), workers, io, whiteouts);
            match (&want, &got) {
                (Ok(w), Ok(g)) => {
                    let ids = |o: &Vec<ApplyOutcome>| {
                        o.iter().map(|o| (o.diff_id.clone(), o.size, o.content_size)).collect::<Vec<_>>()
                    };
                    assert_eq!(ids(w), ids(g), "seed {seed}, {workers} {io:?} workers: digests");
                    let got_tree = tree(dir.path());
                    let want_tree = want_tree.as_ref().unwrap();
                    assert_eq!(
                        want_tree.keys().collect::<Vec<_>>(),
                        got_tree.keys().collect::<Vec<_>>(),
                        "seed {seed}, {workers} {io:?} workers"
                    );
                    for (p, n) in want_tree {
                        assert_eq!(Some(n), got_tree.get(p), "seed {seed}, {workers} {io:?} workers: {p}");
                    }
                }
                // Both refuse: for the same reason, naming the same entry.
                (Err(w), Err(g)) => {
                    assert_eq!(w.to_string(), g.to_string(), "seed {seed}, {workers} {io:?} workers: refusals differ")
                }
                _ => panic!("seed {seed}, {workers} {io:?} workers: sequential {want:?}, parallel {got:?}"),
            }
        }
        if let (Err(e), Ok(dump)) = (&want, std::env::var("DUMP_LAYERS")) {
            eprintln!("seed {seed}: {e}");
            for (i, l) in layers.iter().enumerate() {
                std::fs::write(format!("{dump}/seed{seed}-{i}.tar"), l).unwrap();
            }
        }
        ok += usize::from(want.is_ok());
    }
    // Random layers often fail half way (a file where a later entry wants
    // a directory), identically in both paths; enough must succeed.
    assert!(ok * 3 >= cases, "only {ok} of {cases} random layer pairs applied: the test proves little");
}
