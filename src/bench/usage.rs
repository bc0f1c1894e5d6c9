//! `bench usage`: the space a layer or container tree holds, as `ps -s`,
//! `system df -v` and the overlay and copy drivers' `usage` count it —
//! strata's three walkers against `du`.
//!
//! | tool | what it runs |
//! |---|---|
//! | `walk` | [`crate::uring::du::tree_usage_simple`]: `std::fs`, one `lstat` per path (the simple twin) |
//! | `sync` | [`crate::uring::tree_usage`] on the sync engine: `getdents64` + `statx` relative to the directory's fd |
//! | `uring` | the same walk with every group's `statx` batched on io_uring |
//! | `du` | `du -s -b --inodes`-equivalent: `du -sb` then `du -s --inodes` is two walks, so `du -sb` alone |
//!
//! Each filesystem is measured warm (the tree read before every sample)
//! and cold: before every cold sample [`super::cache::prepare_tree`]
//! empties that scratch filesystem's caches and its backing file's pages
//! (and nothing else on the host), proven with `mincore`; since that
//! proof's own lookups cache the tree's inodes and dentries (all a usage
//! walk reads), the caches are then emptied once more, the same way.

use super::cache::{prepare_tree, Cache, Proof};
use super::dataset::{write_tree, TreeSpec};
use super::harness::{time, Case, Measurement, Skip, Suite, Unit};
use super::run::syncfs;
use super::{fs_size, rotation, scratch, BenchError, Options, Scale};
use crate::scratch::FsKind;
use crate::uring::{IoEngine, IoEngineKind};
use std::path::Path;

/// Which filesystems hold the tree.
#[derive(Debug, Clone)]
pub struct Params {
    pub fs: Vec<FsKind>,
}

impl Params {
    pub fn defaults(_scale: Scale) -> Params {
        Params { fs: vec![FsKind::Xfs, FsKind::Ext4] }
    }
}

/// The tree walked at each scale: many small files, like a layer.
pub fn shape(scale: Scale) -> TreeSpec {
    match scale {
        Scale::Full => TreeSpec { files: 50_000, total_bytes: 50_000 * (4 << 10), seed: 11 },
        Scale::Quick => TreeSpec { files: 10_000, total_bytes: 10_000 * (4 << 10), seed: 11 },
        Scale::Tiny => TreeSpec { files: 100, total_bytes: 100 * (4 << 10), seed: 11 },
    }
}

/// Runs the usage suite.
pub fn run(opts: &Options, p: &Params) -> Result<Suite, BenchError> {
    let spec = shape(opts.scale);
    let mut suite = Suite::new(
        "usage",
        format!(
            "space held by a {}-file tree (apparent bytes of non-directories, hardlinks once, inodes), as ps -s \
             counts it; warm: the tree read before every sample; cold: the scratch filesystem's caches and its \
             backing file's pages emptied before every sample of every tool, mincore-proven",
            spec.files
        ),
    );
    for &fs in &p.fs {
        match cases(opts, &spec, fs) {
            Ok(cs) => suite.cases.extend(cs),
            Err(BenchError::Unavailable { what, reason }) => suite.skip(what, reason),
            Err(e) => return Err(e),
        }
    }
    Ok(suite)
}

/// The tools of one case, in measurement order.
const TOOLS: [&str; 4] = ["uring", "sync", "walk", "du"];

fn cases(opts: &Options, spec: &TreeSpec, fs: FsKind) -> Result<Vec<Case>, BenchError> {
    let mut scratch = scratch(opts, fs, fs_size(spec.total_bytes * 4, 512 << 20))?;
    let tree = scratch.path().join("tree");
    opts.progress(&format!("usage {}: writing a {}-file tree", fs.fstype(), spec.files));
    write_tree(spec, &tree)?;
    syncfs(&tree)?;
    let mut uring = IoEngine::with_kind(IoEngineKind::Uring).ok();
    let mut sync = IoEngine::sync();
    let mut out = Vec::new();
    for cache in Cache::BOTH {
        let cold = cache == Cache::Cold;
        let mut proof = None;
        let name = format!("{} {}", fs.fstype(), if cold { "cold" } else { "warm" });
        let mut case = Case::new(&name);
        if let Some(m) = super::env::mount_of(scratch.path()) {
            case.fact("fs", m.describe());
        }
        case.fact("files", spec.files.to_string());
        let mut tools: Vec<&str> = Vec::new();
        for tool in TOOLS {
            let available = match tool {
                "uring" => uring.is_some(),
                "du" => super::env::have_tool("du"),
                _ => true,
            };
            if available {
                tools.push(tool);
                case.measurements.push(Measurement::new(tool, command(tool), Unit::Seconds));
            } else {
                let reason = if tool == "du" { "du not installed" } else { "io_uring unavailable here" };
                case.skipped.push(Skip { what: tool.into(), reason: reason.into() });
            }
        }
        let mut answers: Vec<(String, (u64, u64))> = Vec::new();
        for round in 0..=opts.runs {
            for i in rotation(tools.len(), round) {
                let p = prepare_tree(cache, &mut scratch, &tree)?;
                if round > 0 {
                    proof = Some(Proof::fold(proof, p));
                }
                if cold {
                    // The proof's own lookups cached the tree's inodes and
                    // dentries, which are all a usage walk reads: empty the
                    // caches once more, so they are cold too.
                    scratch.drop_cache().map_err(|source| BenchError::Io {
                        what: "drop the cache of",
                        path: scratch.path().to_owned(),
                        source,
                    })?;
                }
                let (result, secs) = time(|| measure(tools[i], &tree, uring.as_mut(), &mut sync));
                let got = result?;
                if round == 0 {
                    answers.push((tools[i].to_owned(), got));
                }
                let label = if round == 0 { "warm-up".to_owned() } else { format!("run {round}/{}", opts.runs) };
                opts.progress(&format!("usage {name} {label}: {} {secs:.4} s", tools[i]));
                if round > 0 {
                    case.measurements[i].push(secs);
                }
            }
        }
        check_agreement(&answers)?;
        if let Some(p) = proof {
            case.fact("cache", p.describe(cache));
        }
        for (tool, (bytes, inodes)) in &answers {
            case.fact(&format!("{tool} answer"), format!("{bytes} bytes, {inodes} inodes"));
        }
        for denominator in ["sync", "walk", "du"] {
            if tools.contains(&"uring") && tools.contains(&denominator) {
                case.add_ratio("uring", denominator);
            }
        }
        if tools.contains(&"du") {
            case.add_ratio("sync", "du");
        }
        out.push(case);
    }
    Ok(out)
}

fn command(tool: &str) -> &'static str {
    match tool {
        "uring" => "strata tree_usage (io_uring engine: getdents64 + batched IORING_OP_STATX)",
        "sync" => "strata tree_usage (sync engine: getdents64 + statx per entry)",
        "walk" => "strata tree_usage_simple (std::fs lstat per path)",
        _ => "du -sb TREE",
    }
}

/// One sample: `(bytes, inodes)` (du reports bytes only; its inodes are 0).
fn measure(
    tool: &str,
    tree: &Path,
    uring: Option<&mut IoEngine>,
    sync: &mut IoEngine,
) -> Result<(u64, u64), BenchError> {
    let walk_err = |e: crate::uring::UringError| BenchError::Io {
        what: "tree_usage",
        path: tree.to_owned(),
        source: std::io::Error::other(e.to_string()),
    };
    let u = match tool {
        "uring" => {
            crate::uring::tree_usage(uring.expect("uring measured only when available"), tree).map_err(walk_err)?
        }
        "sync" => crate::uring::tree_usage(sync, tree).map_err(walk_err)?,
        "walk" => crate::uring::du::tree_usage_simple(tree).map_err(|source| BenchError::Io {
            what: "tree_usage_simple",
            path: tree.to_owned(),
            source,
        })?,
        _ => {
            let out = std::process::Command::new("du")
                .arg("-sb")
                .arg(tree)
                .output()
                .map_err(|source| BenchError::Spawn { command: "du -sb".into(), source })?;
            if !out.status.success() {
                return Err(BenchError::Tool {
                    command: "du -sb".into(),
                    status: out.status.to_string(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let bytes = text.split_whitespace().next().and_then(|b| b.parse().ok()).unwrap_or(0);
            return Ok((bytes, 0));
        }
    };
    Ok((u.size, u.inodes))
}

/// strata's walkers must give one answer; du counts directories' own
/// sizes too, so it is recorded, not compared.
fn check_agreement(answers: &[(String, (u64, u64))]) -> Result<(), BenchError> {
    let ours: Vec<&(String, (u64, u64))> = answers.iter().filter(|(t, _)| t != "du").collect();
    if let Some((first, want)) = ours.first() {
        for (tool, got) in &ours[1..] {
            if got != want {
                return Err(BenchError::Disagree(format!(
                    "tree usage: {tool} says {got:?} (bytes, inodes) but {first} says {want:?}"
                )));
            }
        }
    }
    Ok(())
}
