//! `bench copy`: a tree of many files copied within one filesystem, by
//! strata's copy engine with its default chain (`FICLONE` first), by its
//! one-thread twin, by the same engine restricted to read/write (its slow
//! twin) with each I/O engine (sync, io_uring), and by `cp -a`
//! (`--reflink=always` where the filesystem has reflinks).
//!
//! One scratch filesystem per filesystem type holds the source tree, made
//! before any timing; every run copies it to a new destination which is
//! removed (and the removal synced) outside the timed region. Each
//! filesystem gets a warm case (the source read into the page cache
//! before every sample) and a cold one (the scratch filesystem's caches
//! and its backing file's pages emptied before every sample of every
//! tool, [`super::cache::prepare_tree`], mincore-proven).

use super::cache::{prepare_tree, Cache, Proof};
use super::dataset::{write_tree, TreeSpec};
use super::harness::{time, Case, Measurement, Skip, Suite, Unit};
use super::run::{pipeline, syncfs};
use super::{fs_size, rotation, scratch, BenchError, Options, Scale};
use crate::drivers::copy::parallel::{copy_tree_with, Parallel};
use crate::drivers::copy::tree::{copy_tree, copy_tree_sequential, CopyStats, Strategy};
use crate::scratch::{FsKind, ScratchFs};
use crate::uring::{IoEngine, IoEngineKind};
use std::path::Path;

/// Which filesystems to copy on.
#[derive(Debug, Clone)]
pub struct Params {
    pub fs: Vec<FsKind>,
}

impl Params {
    pub fn defaults(_scale: Scale) -> Params {
        Params { fs: vec![FsKind::Xfs, FsKind::Btrfs, FsKind::Ext4] }
    }
}

/// The tree's shape at each scale.
pub fn tree_spec(scale: Scale) -> TreeSpec {
    match scale {
        Scale::Full => TreeSpec { files: 20_000, total_bytes: 1 << 30, seed: 2 },
        Scale::Quick => TreeSpec { files: 2_000, total_bytes: 100 << 20, seed: 2 },
        Scale::Tiny => TreeSpec { files: 50, total_bytes: 1 << 20, seed: 2 },
    }
}

#[derive(Clone, Copy)]
enum Tool {
    /// `copy_tree`: the parallel copy with the default engine.
    Strata(Strategy),
    /// The one-thread twin, to measure the parallel copy against in the
    /// same run.
    Sequential,
    /// The parallel read/write copy with its data batched through io_uring.
    ReadWriteUring,
    /// `cp -a`, with `--reflink=always` where the filesystem has reflinks.
    Cp { reflink: bool },
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Strata(Strategy::Reflink) => "strata",
            Tool::Strata(Strategy::CopyRange) => "strata-copy-range",
            Tool::Strata(Strategy::ReadWrite) => "strata-read-write",
            Tool::Sequential => "strata-sequential",
            Tool::ReadWriteUring => "strata-read-write-uring",
            Tool::Cp { .. } => "cp",
        }
    }

    fn command(self) -> &'static str {
        match self {
            Tool::Strata(Strategy::Reflink) => "strata copy_tree Reflink (FICLONE, copy_file_range, read/write)",
            Tool::Strata(Strategy::CopyRange) => "strata copy_tree CopyRange",
            Tool::Strata(Strategy::ReadWrite) => "strata copy_tree ReadWrite (sync engine)",
            Tool::Sequential => "strata copy_tree_sequential Reflink (one thread)",
            Tool::ReadWriteUring => "strata copy_tree_with ReadWrite, io_uring engine",
            Tool::Cp { reflink: true } => "cp -a --reflink=always",
            Tool::Cp { reflink: false } => "cp -a",
        }
    }

    fn copy(self, src: &Path, dst: &Path) -> Result<Option<CopyStats>, BenchError> {
        Ok(Some(match self {
            Tool::Strata(strategy) => copy_tree(src, dst, strategy)?,
            Tool::Sequential => copy_tree_sequential(src, dst, Strategy::Reflink)?,
            Tool::ReadWriteUring => {
                let opts = Parallel { io: IoEngineKind::Uring, ..Parallel::new(Strategy::ReadWrite) };
                copy_tree_with(src, dst, opts)?
            }
            Tool::Cp { reflink } => {
                let mut argv = vec!["cp".into(), "-a".into()];
                if reflink {
                    argv.push("--reflink=always".into());
                }
                argv.extend([src.to_owned().into(), dst.to_owned().into()]);
                pipeline(&[argv])?;
                return Ok(None);
            }
        }))
    }
}

/// Runs the copy suite.
pub fn run(opts: &Options, p: &Params) -> Result<Suite, BenchError> {
    let spec = tree_spec(opts.scale);
    let mut suite = Suite::new(
        "copy",
        format!(
            "a {}-file, {} MiB tree copied within one scratch fs; {}; warm: source in page cache, cold: the \
             scratch filesystem's caches emptied before every sample of every tool, mincore-proven",
            spec.files,
            spec.total_bytes >> 20,
            opts.sync_policy()
        ),
    );
    for &fs in &p.fs {
        match cases(opts, &spec, fs) {
            Ok(c) => suite.cases.extend(c),
            Err(BenchError::Unavailable { what, reason }) => suite.skip(what, reason),
            Err(e) => return Err(e),
        }
    }
    Ok(suite)
}

fn describe_stats(s: &CopyStats) -> String {
    let mut d = format!(
        "{} files, {} bytes: {} reflinked, {} copy_file_range, {} read/write",
        s.files, s.bytes, s.reflinked, s.range_copied, s.read_written
    );
    if let Some(e) = s.reflink_unsupported {
        d.push_str(&format!("; FICLONE unsupported ({e})"));
    }
    d
}

/// A warm and a cold case on one filesystem, one source tree.
fn cases(opts: &Options, spec: &TreeSpec, fs: FsKind) -> Result<Vec<Case>, BenchError> {
    // Source, one copy in flight and its not-yet-reclaimed predecessor.
    let mut scratch = scratch(opts, fs, fs_size(spec.total_bytes * 4, 512 << 20))?;
    let src = scratch.path().join("src");
    opts.progress(&format!("copy {}: writing the source tree ({} files)", fs.fstype(), spec.files));
    let bytes = write_tree(spec, &src)?;
    syncfs(&src)?;
    let tree = format!("{} files, {bytes} bytes", spec.files);
    Cache::BOTH.iter().map(|cache| case(opts, &mut scratch, fs, &tree, *cache)).collect()
}

fn case(opts: &Options, scratch: &mut ScratchFs, fs: FsKind, tree: &str, cache: Cache) -> Result<Case, BenchError> {
    let name = format!("{} {}", fs.fstype(), cache.name());
    let mut case = Case::new(&name);
    if let Some(m) = super::env::mount_of(scratch.path()) {
        case.fact("fs", m.describe());
    }
    let src = scratch.path().join("src");
    case.fact("tree", tree.to_owned());
    let mut proof = None;
    let mut tools = vec![Tool::Strata(Strategy::Reflink), Tool::Sequential, Tool::Strata(Strategy::ReadWrite)];
    match IoEngine::with_kind(IoEngineKind::Uring) {
        Ok(_) => tools.push(Tool::ReadWriteUring),
        Err(e) => case.skipped.push(Skip { what: Tool::ReadWriteUring.name().into(), reason: e.to_string() }),
    }
    if super::env::have_tool("cp") {
        let reflink = crate::drivers::probe_reflink(scratch.path()).is_ok();
        tools.push(Tool::Cp { reflink });
    } else {
        case.skipped.push(Skip { what: "cp".into(), reason: "not installed".into() });
    }
    case.measurements = tools.iter().map(|t| Measurement::new(t.name(), t.command(), Unit::Seconds)).collect();
    for round in 0..=opts.runs {
        for i in rotation(tools.len(), round) {
            let dst = scratch.path().join(format!("dst-{round}-{i}"));
            let p = prepare_tree(cache, scratch, &src)?;
            if round > 0 {
                proof = Some(Proof::fold(proof, p));
            }
            let (stats, secs) = time(|| -> Result<Option<CopyStats>, BenchError> {
                let stats = tools[i].copy(&src, &dst)?;
                if opts.sync {
                    syncfs(&dst)?;
                }
                Ok(stats)
            });
            if let (0, Some(stats)) = (round, stats?) {
                case.fact(&format!("{} did", tools[i].name()), describe_stats(&stats));
            }
            let label = if round == 0 { "warm-up".to_owned() } else { format!("run {round}/{}", opts.runs) };
            opts.progress(&format!("copy {name} {label}: {} {secs:.3} s", tools[i].name()));
            if round > 0 {
                case.measurements[i].push(secs);
            }
            remove(&dst)?;
        }
    }
    if let Some(p) = proof {
        case.fact("cache", p.describe(cache));
    }
    case.add_ratio("strata", "strata-read-write");
    case.add_ratio("strata", "cp");
    case.add_ratio("strata", "strata-sequential");
    case.add_ratio("strata-sequential", "cp");
    case.add_ratio("strata-read-write", "cp");
    case.add_ratio("strata-read-write-uring", "strata-read-write");
    Ok(case)
}

/// Removes a copy and lets the filesystem settle before the next run.
fn remove(dst: &Path) -> Result<(), BenchError> {
    std::fs::remove_dir_all(dst).map_err(|source| BenchError::Io { what: "remove", path: dst.to_owned(), source })?;
    match dst.parent() {
        Some(p) => syncfs(p),
        None => Ok(()),
    }
}
