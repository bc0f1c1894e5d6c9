//! `bench blob`: the content store's two engines (plain syscalls, the
//! twin, against io_uring, [`crate::uring::blob`]) on loop XFS and ext4,
//! and the build context digest of a many-file tree (plain walk, the
//! batched walk on the sync engine and on io_uring,
//! [`crate::uring::treehash`]); peers run in the same rounds, interleaved.
//!
//! - `write`: a blob streamed into the store in 256 KiB writes, hashed,
//!   fsynced and renamed ([`ContentStore::writer`] + `commit`). Peer:
//!   `sha256sum SRC; dd if=SRC of=DST bs=1M conv=fsync` from a tmpfs
//!   source — the same bytes hashed once, written once and made durable,
//!   as the store does (two processes, which read the tmpfs source twice;
//!   a memory read, cheap next to the disk).
//! - `read`: a stored blob re-hashed ([`ContentStore::verify`]), warm and
//!   cold (the scratch filesystem's caches emptied before every sample,
//!   mincore-proven, [`super::cache::prepare_tree`]). Peer: `cat BLOB |
//!   sha256sum`, the shell's way to verify a blob.
//! - `context hash`: [`Tree::hash_using`] over a synthetic tree, warm and
//!   cold. Peer: `tar -cf - . | sha256sum` (names, modes and bytes in one
//!   stream; less sorting than strata does, more formatting).
//!
//! Values are seconds (lower is better); each case prints engine/plain and
//! plain/peer ratios.

use super::cache::{prepare_tree, Cache, Proof};
use super::dataset::{write_tree, TreeSpec};
use super::harness::{time, Case, Measurement, Suite, Unit};
use super::run::pipeline;
use super::{fs_size, rotation, scratch, BenchError, Options, Scale};
use crate::build::context::Tree;
use crate::content::ContentStore;
use crate::root::Root;
use crate::scratch::FsKind;
use crate::uring::{IoEngine, IoEngineKind};
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

/// `(blob bytes, tree files, tree bytes)` at each scale.
pub fn shape(scale: Scale) -> (usize, usize, u64) {
    match scale {
        Scale::Full => (1 << 30, 20_000, 20_000 * (8 << 10)),
        Scale::Quick => (256 << 20, 20_000, 20_000 * (4 << 10)),
        Scale::Tiny => (4 << 20, 200, 200 * (4 << 10)),
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BenchError {
    let path = path.to_owned();
    move |source| BenchError::Io { what, path, source }
}

fn other(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Io { what: "bench blob", path: what.into(), source: std::io::Error::other(e.to_string()) }
}

/// Runs the blob suite.
pub fn run(opts: &Options) -> Result<Suite, BenchError> {
    let (len, files, bytes) = shape(opts.scale);
    let mut suite = Suite::new(
        "blob",
        format!(
            "content store: write+commit (fsync) and read+verify of a {} MiB blob, plain vs io_uring; build \
             context hash of a {files}-file tree, plain vs batched (sync engine, io_uring); seconds, lower is \
             better; cold = scratch fs caches emptied before every sample, mincore-proven",
            len >> 20
        ),
    );
    if !crate::sys::process::geteuid().is_root() {
        suite.skip("blob", "needs root (loop devices)");
        return Ok(suite);
    }
    let mut data = vec![0u8; len];
    super::dataset::fill(7, &mut data);
    for kind in [FsKind::Xfs, FsKind::Ext4] {
        match cases(opts, kind, &data, files, bytes) {
            Ok(c) => suite.cases.extend(c),
            Err(BenchError::Unavailable { what, reason }) => suite.skip(what, reason),
            Err(e) => return Err(e),
        }
    }
    Ok(suite)
}

fn cases(opts: &Options, kind: FsKind, data: &[u8], files: usize, bytes: u64) -> Result<Vec<Case>, BenchError> {
    let len = data.len() as u64;
    let mut fs = scratch(opts, kind, fs_size(len * 3 + bytes * 2, 512 << 20))?;
    let fsname = kind.fstype();
    let root = Root::open(fs.path().join("root")).map_err(|e| other("root", e))?;
    let stores = [("plain", IoEngineKind::Sync), ("uring", IoEngineKind::Uring)];
    let shm = Path::new("/dev/shm").join(format!("strata-bench-blob-{}", crate::root::unique_suffix()));
    std::fs::write(&shm, data).map_err(io("write", &shm))?;
    let _rm = Remove(shm.clone());
    let dst = fs.path().join("dd-out");
    let mut out = Vec::new();

    // write + commit
    let mut case = Case::new(format!("blob write {fsname}"));
    case.fact("bytes", len.to_string());
    for (t, _) in stores {
        case.measurements.push(Measurement::new(t, &format!("ContentStore({t}) writer + commit"), Unit::Seconds));
    }
    let dd: Vec<Vec<OsString>> = vec![
        vec!["sha256sum".into(), shm.clone().into()],
        vec![
            "dd".into(),
            format!("if={}", shm.display()).into(),
            format!("of={}", dst.display()).into(),
            "bs=1M".into(),
            "conv=fsync".into(),
            "status=none".into(),
        ],
    ];
    case.measurements.push(Measurement::new(
        "sha256sum+dd",
        "sha256sum SRC; dd if=SRC of=DST bs=1M conv=fsync",
        Unit::Seconds,
    ));
    let tools = ["plain", "uring", "sha256sum+dd"];
    let mut digest = None;
    for round in 0..=opts.runs {
        for i in rotation(tools.len(), round) {
            let (r, t) = time(|| -> Result<(), BenchError> {
                if i < 2 {
                    let cs = ContentStore::new(&root).with_io(stores[i].1);
                    let mut w = cs.writer().map_err(|e| other("writer", e))?;
                    for piece in data.chunks(256 << 10) {
                        w.write_all(piece).map_err(|e| other("write", e))?;
                    }
                    let d = w.commit(None).map_err(|e| other("commit", e))?;
                    digest = Some(d);
                } else {
                    for stage in &dd {
                        pipeline(std::slice::from_ref(stage))?;
                    }
                }
                Ok(())
            });
            r?;
            if let Some(d) = &digest {
                // The next sample writes the blob anew.
                ContentStore::new(&root).delete(d).map_err(|e| other("delete", e))?;
            }
            let _ = std::fs::remove_file(&dst);
            super::run::syncfs(fs.path())?;
            opts.progress(&format!("blob write {fsname} round {round}: {} {t:.3}s", tools[i]));
            if round > 0 {
                case.measurements[i].push(t);
            }
        }
    }
    case.add_ratio("uring", "plain");
    case.add_ratio("plain", "sha256sum+dd");
    out.push(case);

    // read + verify, warm and cold
    let cs = ContentStore::new(&root);
    let d = {
        let mut w = cs.writer().map_err(|e| other("writer", e))?;
        w.write_all(data).map_err(|e| other("write", e))?;
        w.commit(None).map_err(|e| other("commit", e))?
    };
    let blob = cs.path(&d);
    let tools = ["plain", "uring", "cat|sha256sum"];
    let catsum: Vec<Vec<OsString>> = vec![vec!["cat".into(), blob.clone().into()], vec!["sha256sum".into()]];
    let blobs_dir = root.blobs();
    for cache in Cache::BOTH {
        let mut case = Case::new(format!("blob read {fsname} {}", cache.name()));
        case.fact("bytes", len.to_string());
        for (t, _) in stores {
            case.measurements.push(Measurement::new(t, &format!("ContentStore({t})::verify"), Unit::Seconds));
        }
        case.measurements.push(Measurement::new("cat|sha256sum", "cat BLOB | sha256sum", Unit::Seconds));
        let mut proof = None;
        for round in 0..=opts.runs {
            for i in rotation(tools.len(), round) {
                let p = prepare_tree(cache, &mut fs, &blobs_dir)?;
                if round > 0 {
                    proof = Some(Proof::fold(proof, p));
                }
                let (r, t) = time(|| -> Result<(), BenchError> {
                    if i < 2 {
                        ContentStore::new(&root).with_io(stores[i].1).verify(&d).map_err(|e| other("verify", e))?;
                    } else {
                        pipeline(&catsum)?;
                    }
                    Ok(())
                });
                r?;
                opts.progress(&format!("{} round {round}: {} {t:.3}s", case.name, tools[i]));
                if round > 0 {
                    case.measurements[i].push(t);
                }
            }
        }
        if let Some(p) = proof {
            case.fact("cache", p.describe(cache));
        }
        case.add_ratio("uring", "plain");
        case.add_ratio("plain", "cat|sha256sum");
        out.push(case);
    }
    cs.delete(&d).map_err(|e| other("delete", e))?;

    // context hash
    let tree = fs.path().join("ctx");
    write_tree(&TreeSpec { files, total_bytes: bytes, seed: 11 }, &tree)?;
    let tools = ["plain", "sync", "uring", "tar|sha256sum"];
    let tar: Vec<Vec<OsString>> = vec![
        vec!["tar".into(), "-C".into(), tree.clone().into(), "-cf".into(), "-".into(), ".".into()],
        vec!["sha256sum".into()],
    ];
    for cache in Cache::BOTH {
        let mut case = Case::new(format!("context hash {fsname} {}", cache.name()));
        case.fact("files", files.to_string());
        case.fact("bytes", bytes.to_string());
        for t in &tools[..3] {
            case.measurements.push(Measurement::new(t, &format!("Tree::hash_using({t})"), Unit::Seconds));
        }
        case.measurements.push(Measurement::new("tar|sha256sum", "tar -cf - . | sha256sum", Unit::Seconds));
        let mut proof = None;
        let mut digests: Vec<Option<String>> = vec![None; 3];
        for round in 0..=opts.runs {
            for i in rotation(tools.len(), round) {
                let p = prepare_tree(cache, &mut fs, &tree)?;
                if round > 0 {
                    proof = Some(Proof::fold(proof, p));
                }
                let (r, t) = time(|| -> Result<Option<String>, BenchError> {
                    if i == 3 {
                        pipeline(&tar)?;
                        return Ok(None);
                    }
                    let ctx = Tree::context(&tree).map_err(|e| other("context", e))?;
                    let src = ctx.sources(".").map_err(|e| other("sources", e))?;
                    let mut engine = match i {
                        0 => None,
                        1 => Some(IoEngine::sync()),
                        _ => Some(IoEngine::with_kind(IoEngineKind::Uring).map_err(|e| other("io_uring", e))?),
                    };
                    let d = ctx.hash_using(&src, engine.as_mut()).map_err(|e| other("hash", e))?;
                    Ok(Some(d.to_string()))
                });
                if let Some(d) = r? {
                    if digests.iter().flatten().any(|x| x != &d) {
                        return Err(other(
                            "context hash",
                            format!("{} digest {d} differs from another engine's", tools[i]),
                        ));
                    }
                    digests[i] = Some(d);
                }
                opts.progress(&format!("{} round {round}: {} {t:.3}s", case.name, tools[i]));
                if round > 0 {
                    case.measurements[i].push(t);
                }
            }
        }
        if let Some(p) = proof {
            case.fact("cache", p.describe(cache));
        }
        if let Some(d) = &digests[0] {
            case.fact("digest", d.clone());
        }
        case.add_ratio("sync", "plain");
        case.add_ratio("uring", "plain");
        case.add_ratio("plain", "tar|sha256sum");
        out.push(case);
    }
    Ok(out)
}

/// A file removed on drop.
struct Remove(std::path::PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
