//! `bench diff`: the writable layer of a container turned into a layer
//! tar with its diff ID — strata's `write_layer` on an overlay upper dir —
//! against GNU tar doing the same work (`tar -c | sha256sum`) and tar
//! alone (`tar -cf /dev/null`).
//!
//! The upper dir is made for real: a lower tree on a scratch filesystem,
//! an overlay mounted over it, `changed` files rewritten and a few deleted
//! through the overlay (copy-ups and whiteouts), then unmounted. Only the
//! upper dir is read afterwards, by every tool, warm (in the page cache)
//! and cold: before every cold sample the scratch filesystem's caches —
//! and only its — are emptied ([`super::cache::prepare_tree`]: unmount,
//! device buffers, backing file, mount) and `mincore` proves no page of
//! the upper dir's files nor of the backing file resident.
//!
//! Beware the `/dev/null` row: GNU tar notices that its archive is
//! `/dev/null` and does not read file contents at all, so it is a floor
//! for the tree walk, not equal work. `tar -c | sha256sum` reads, writes
//! and hashes every byte, as `write_layer` does.

use super::cache::{prepare_tree, Cache, Proof};
use super::dataset::{synthetic_path, write_tree, TextGen, TreeSpec};
use super::harness::{time, Case, Measurement, Skip, Suite, Unit};
use super::run::{describe, pipeline, syncfs};
use super::{fs_size, rotation, scratch, BenchError, Options, Scale};
use crate::mount::{Mount, TempMount};
use crate::rng::Rng;
use crate::scratch::{FsKind, ScratchFs};
use crate::snapshot::DiffSource;
use std::ffi::OsString;
use std::path::Path;

/// Which filesystems to hold the upper dir.
#[derive(Debug, Clone)]
pub struct Params {
    pub fs: Vec<FsKind>,
}

impl Params {
    pub fn defaults(_scale: Scale) -> Params {
        Params { fs: vec![FsKind::Ext4] }
    }
}

/// `(lower tree, files changed through the overlay)` at each scale.
pub fn shape(scale: Scale) -> (TreeSpec, usize) {
    match scale {
        Scale::Full => (TreeSpec { files: 25_000, total_bytes: 25_000 * (8 << 10), seed: 3 }, 20_000),
        Scale::Quick => (TreeSpec { files: 2_500, total_bytes: 2_500 * (8 << 10), seed: 3 }, 2_000),
        Scale::Tiny => (TreeSpec { files: 60, total_bytes: 60 * (8 << 10), seed: 3 }, 50),
    }
}

/// Runs the diff suite.
pub fn run(opts: &Options, p: &Params) -> Result<Suite, BenchError> {
    let (lower, changed) = shape(opts.scale);
    let mut suite = Suite::new(
        "diff",
        format!(
            "write_layer of an overlay upper dir with {changed} rewritten files (+{} deleted) over a {}-file lower; \
             output discarded, diff ID computed; read-only, so no sync; `warm`: upper dir in page cache, `cold`: \
             the scratch filesystem's caches emptied (unmount, BLKFLSBUF, fadvise of the backing file, mount) \
             before every sample of every tool, mincore-proven.\n\
             tar>/dev/null is a floor, not equal work: GNU tar skips reading file data when the archive is /dev/null",
            deletions(changed),
            lower.files
        ),
    );
    for &fs in &p.fs {
        match cases(opts, &lower, changed, fs) {
            Ok(c) => suite.cases.extend(c),
            Err(BenchError::Unavailable { what, reason }) => suite.skip(what, reason),
            Err(e) => return Err(e),
        }
    }
    Ok(suite)
}

/// Files deleted through the overlay besides the `changed` rewritten:
/// one in a hundred, at least one, so whiteouts are always exercised.
fn deletions(changed: usize) -> usize {
    changed.div_ceil(100)
}

/// Builds `<fs>/upper`: `changed` files rewritten and
/// [`deletions`]`(changed)` deleted through an overlay over `<fs>/lower`.
fn make_upper(root: &Path, lower_spec: &TreeSpec, changed: usize) -> Result<(), BenchError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| BenchError::Io { what, path, source }
    };
    let (lower, upper, work, merged) = (root.join("lower"), root.join("upper"), root.join("work"), root.join("merged"));
    write_tree(lower_spec, &lower)?;
    for d in [&upper, &work, &merged] {
        std::fs::create_dir(d).map_err(io("mkdir", d))?;
    }
    let options = vec![
        format!("lowerdir={}", lower.display()),
        format!("upperdir={}", upper.display()),
        format!("workdir={}", work.display()),
        "index=off".to_owned(),
    ];
    let m = TempMount::new(&[Mount { kind: "overlay".into(), source: "overlay".into(), options }], &merged)
        .map_err(io("mount overlay", &merged))?;
    let mut rng = Rng::new(lower_spec.seed ^ 0xd1ff);
    let mut gen = TextGen::new(lower_spec.seed ^ 0xc4a9);
    let mut buf = Vec::new();
    let files = lower_spec.files;
    // Every file index below `changed` is rewritten (copy-up, new data),
    // then the last few of the rest are deleted (whiteouts).
    for n in 0..changed.min(files) {
        let p = merged.join(synthetic_path(n).0);
        buf.resize(rng.range_usize(1 << 10, 16 << 10), 0);
        gen.fill(&mut buf);
        std::fs::write(&p, &buf).map_err(io("rewrite", &p))?;
    }
    for n in files.saturating_sub(deletions(changed)).max(changed)..files {
        let p = merged.join(synthetic_path(n).0);
        std::fs::remove_file(&p).map_err(io("delete", &p))?;
    }
    m.unmount().map_err(io("unmount overlay", &merged))
}

/// One case per [`Cache`] state on one upper dir.
fn cases(opts: &Options, lower: &TreeSpec, changed: usize, fs: FsKind) -> Result<Vec<Case>, BenchError> {
    let mut scratch = scratch(opts, fs, fs_size(lower.total_bytes * 6, 512 << 20))?;
    opts.progress(&format!("diff {}: making an upper dir ({changed} changed files)", fs.fstype()));
    make_upper(scratch.path(), lower, changed)?;
    syncfs(&scratch.path().join("upper"))?;
    Cache::BOTH.iter().map(|cache| case(opts, &mut scratch, fs, *cache)).collect()
}

fn case(opts: &Options, scratch: &mut ScratchFs, fs: FsKind, cache: Cache) -> Result<Case, BenchError> {
    let name = format!("{} {}", fs.fstype(), cache.name());
    let mut case = Case::new(&name);
    if let Some(m) = super::env::mount_of(scratch.path()) {
        case.fact("fs", m.describe());
    }
    let upper = scratch.path().join("upper");
    case.fact("upper", upper.display().to_string());
    let mut proof = None;

    let os = |s: &str| OsString::from(s);
    let tar_c = |out: &str| vec![os("tar"), os("-cf"), os(out), os("-C"), upper.clone().into(), os(".")];
    let hashed = vec![tar_c("-"), vec![os("sha256sum")]];
    let devnull = vec![tar_c("/dev/null")];
    let mut peers: Vec<(&str, Vec<Vec<OsString>>)> = Vec::new();
    for (tool, stages) in [("tar|sha256sum", hashed), ("tar>/dev/null", devnull)] {
        let missing: Vec<String> = stages
            .iter()
            .filter_map(|s| s[0].to_str())
            .filter(|t| !super::env::have_tool(t))
            .map(str::to_owned)
            .collect();
        if missing.is_empty() {
            peers.push((tool, stages));
        } else {
            case.skipped.push(Skip { what: tool.into(), reason: format!("{} not installed", missing.join(", ")) });
        }
    }
    // strata's default (small files read ahead on io_uring), then its
    // twins: read-ahead on the sync engine, and no read-ahead.
    let variants: [(&str, &str); 3] = [
        ("strata", "strata write_layer(OverlayUpper) -> sink (read-ahead on io_uring)"),
        ("strata-sync-readahead", "strata write_layer, read-ahead on the sync engine"),
        ("strata-plain", "strata write_layer, each file read when its entry is written"),
    ];
    for (tool, command) in variants {
        case.measurements.push(Measurement::new(tool, command, Unit::Seconds));
    }
    for (tool, stages) in &peers {
        let command = describe(stages).replace(&upper.display().to_string(), "UPPER");
        case.measurements.push(Measurement::new(tool, &command, Unit::Seconds));
    }
    let source = DiffSource::OverlayUpper(upper.clone());
    for round in 0..=opts.runs {
        for i in rotation(case.measurements.len(), round) {
            let p = prepare_tree(cache, scratch, &upper)?;
            if round > 0 {
                proof = Some(Proof::fold(proof, p));
            }
            let (result, secs) = time(|| -> Result<Option<String>, BenchError> {
                if i < variants.len() {
                    let engine = match i {
                        0 => crate::uring::IoEngine::with_kind(crate::uring::IoEngineKind::Uring).ok(),
                        1 => Some(crate::uring::IoEngine::sync()),
                        _ => None,
                    };
                    let out = crate::image::diff::write_layer_using(&source, std::io::sink(), engine)?;
                    Ok(Some(format!("{} ({} bytes)", out.diff_id, out.size)))
                } else {
                    pipeline(&peers[i - variants.len()].1).map(|out| {
                        let text = String::from_utf8_lossy(&out);
                        text.split_whitespace().next().map(|h| format!("sha256:{h} (GNU tar's own layout)"))
                    })
                }
            });
            if let (0, Some(digest)) = (round, result?) {
                case.fact(&format!("{} digest", case.measurements[i].tool), digest);
            }
            let tool = case.measurements[i].tool.clone();
            let label = if round == 0 { "warm-up".to_owned() } else { format!("run {round}/{}", opts.runs) };
            opts.progress(&format!("diff {name} {label}: {tool} {secs:.3} s"));
            if round > 0 {
                case.measurements[i].push(secs);
            }
        }
    }
    if let Some(p) = proof {
        case.fact("cache", p.describe(cache));
    }
    let digests: Vec<&String> =
        variants.iter().filter_map(|(tool, _)| case.facts.get(&format!("{tool} digest"))).collect();
    if digests.windows(2).any(|w| w[0] != w[1]) {
        return Err(BenchError::Disagree(format!("diff {name}: strata's readers wrote different layers: {digests:?}")));
    }
    case.add_ratio("strata", "strata-plain");
    case.add_ratio("strata", "strata-sync-readahead");
    case.add_ratio("strata", "tar|sha256sum");
    case.add_ratio("strata", "tar>/dev/null");
    Ok(case)
}
