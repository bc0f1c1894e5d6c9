//! `bench unpack`: a layer blob into an empty directory on a fresh
//! filesystem, strata's `apply_layer` against GNU tar (fed by `gzip -dc`
//! or `zstd -dc` for compressed blobs).
//!
//! Each timed run gets a **fresh scratch filesystem** (made and mounted
//! before the clock starts, torn down after it stops), so no run inherits
//! another's allocations or dirty pages. The blob is read from the dataset
//! cache; after the warm-up round it is in the page cache for every tool.
//! With `sync` (the default) the timed region ends with `syncfs(2)` on the
//! target for every tool, so the cost of making the data durable is
//! counted alike; strata's apply does not fsync on its own and neither
//! does tar.
//!
//! strata's apply is measured in-process through its public API, with the
//! default engine and, beside it in the same rounds, with the blob's
//! digest on the reading thread and with the io_uring file writer
//! ([`strata_variants`]).
//!
//! Every case runs warm and cold ([`Cache`]). Warm: the blob was read by
//! the warm-up round. Cold: before every sample the fresh scratch
//! filesystem's caches are dropped ([`ScratchFs::drop_cache`]: unmount,
//! `BLKFLSBUF`, fadvise of the backing file, mount) and the blob's pages
//! are evicted (`POSIX_FADV_DONTNEED`, [`super::cache::evict_file`]), its
//! residency recorded as the proof.
//!
//! [`ScratchFs::drop_cache`]: crate::scratch::ScratchFs::drop_cache

use super::cache::{evict_file, Cache};
use super::dataset::{self, Dataset, DatasetKind, SyntheticSpec};
use super::harness::{time, Case, Measurement, Suite, Unit};
use super::run::{describe, pipeline, syncfs};
use super::{fs_size, rotation, scratch, BenchError, Options, Scale};
use crate::image::compression::Compression;
use crate::scratch::FsKind;
use crate::snapshot::Whiteouts;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What to unpack, where.
#[derive(Debug, Clone)]
pub struct Params {
    pub fs: Vec<FsKind>,
    pub datasets: Vec<DatasetKind>,
    pub compressions: Vec<Compression>,
}

impl Params {
    /// The matrix for `scale`.
    pub fn defaults(scale: Scale) -> Params {
        match scale {
            Scale::Full => Params {
                fs: vec![FsKind::Xfs, FsKind::Ext4],
                datasets: vec![DatasetKind::Synthetic, DatasetKind::Debian],
                compressions: vec![Compression::None, Compression::Gzip, Compression::Zstd],
            },
            Scale::Quick | Scale::Tiny => Params {
                fs: vec![FsKind::Xfs, FsKind::Ext4],
                datasets: vec![DatasetKind::Synthetic],
                compressions: vec![Compression::None, Compression::Zstd],
            },
        }
    }
}

/// The synthetic layer's shape at each scale.
pub fn synthetic_spec(scale: Scale) -> SyntheticSpec {
    let (files, big_files, big_size) = match scale {
        Scale::Full => (50_000, 3, 100 << 20),
        Scale::Quick => (5_000, 1, 20 << 20),
        Scale::Tiny => (50, 1, 256 << 10),
    };
    SyntheticSpec { files, min_size: 1 << 10, max_size: 16 << 10, big_files, big_size, seed: 1 }
}

/// One way of unpacking a blob into a directory.
enum Tool {
    /// strata's `apply_layer`, in this process. `label` names the engine.
    Strata { label: &'static str },
    /// External commands connected by pipes.
    Peer { name: &'static str, stages: Vec<Vec<OsString>> },
}

impl Tool {
    fn name(&self) -> &'static str {
        match self {
            Tool::Strata { label } => label,
            Tool::Peer { name, .. } => name,
        }
    }

    fn command(&self, blob: &Path) -> String {
        match self {
            Tool::Strata { label } => format!("{label} apply_layer {}", file_name(blob)),
            // File names only: the table stays readable, the full path is
            // in the case's facts.
            Tool::Peer { stages, .. } => describe(stages).replace(&blob.display().to_string(), &file_name(blob)),
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The strata engines to measure: the default one, and the same with the
/// blob's digest computed on the reading thread (what it did before the
/// blob hasher thread), so the gain is measured in the same run.
fn strata_variants() -> Vec<Tool> {
    vec![
        Tool::Strata { label: "strata" },
        Tool::Strata { label: "strata-inline-blob-hash" },
        Tool::Strata { label: "strata-sync-writer" },
        Tool::Strata { label: "strata-uring-writer" },
    ]
}

fn strata_options(label: &str) -> crate::image::apply::ApplyOptions {
    use crate::image::apply::{ApplyIo, ApplyOptions};
    let opts = ApplyOptions::default();
    match label {
        "strata-inline-blob-hash" => ApplyOptions { blob_hash_thread: false, ..opts },
        "strata-sync-writer" => ApplyOptions { io: ApplyIo::Sync, ..opts },
        "strata-uring-writer" => ApplyOptions { io: ApplyIo::Uring, ..opts },
        _ => opts,
    }
}

/// Stands for the target directory in a peer's command line until a run
/// knows it.
const TARGET: &str = "DIR";

/// The peer pipeline for a blob; [`TARGET`] in the last stage is replaced
/// by the directory at run time.
fn peer(compression: Compression, blob: &Path) -> Tool {
    let os = |s: &str| OsString::from(s);
    let tar_x = |input: OsString| vec![os("tar"), os("--numeric-owner"), os("-xf"), input, os("-C"), os(TARGET)];
    match compression {
        Compression::None => Tool::Peer { name: "tar", stages: vec![tar_x(blob.into())] },
        Compression::Gzip => {
            Tool::Peer { name: "gzip|tar", stages: vec![vec![os("gzip"), os("-dc"), blob.into()], tar_x(os("-"))] }
        }
        Compression::Zstd => {
            Tool::Peer { name: "zstd|tar", stages: vec![vec![os("zstd"), os("-dc"), blob.into()], tar_x(os("-"))] }
        }
    }
}

fn with_target(stages: &[Vec<OsString>], target: &Path) -> Vec<Vec<OsString>> {
    stages
        .iter()
        .map(|s| s.iter().map(|a| if a == TARGET { target.as_os_str().to_owned() } else { a.clone() }).collect())
        .collect()
}

/// Runs the unpack suite.
pub fn run(opts: &Options, p: &Params) -> Result<Suite, BenchError> {
    let mut suite = Suite::new(
        "unpack",
        format!(
            "layer blob -> empty dir on a fresh scratch fs per run (backing files in {}); {}; warm: blob in page \
             cache; cold: scratch fs caches dropped and blob pages evicted before every sample",
            opts.scratch_dir.display(),
            opts.sync_policy()
        ),
    );
    for &kind in &p.datasets {
        let data = match kind {
            DatasetKind::Synthetic => dataset::synthetic(opts, &synthetic_spec(opts.scale))?,
            DatasetKind::Debian if opts.scale == Scale::Tiny => {
                suite.skip("dataset debian", "not made at the tiny scale");
                continue;
            }
            DatasetKind::Debian => match dataset::debian(opts)? {
                Ok(d) => d,
                Err(reason) => {
                    opts.progress(&format!("skipping dataset debian: {reason}"));
                    suite.skip("dataset debian", reason);
                    continue;
                }
            },
        };
        for &fs in &p.fs {
            for (&c, cache) in p.compressions.iter().flat_map(|c| Cache::BOTH.map(|k| (c, k))) {
                match case(opts, &data, kind, fs, c, cache) {
                    Ok(case) => suite.cases.push(case),
                    Err(BenchError::Unavailable { what, reason }) => suite.skip(what, reason),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(suite)
}

fn blob(data: &Dataset, c: Compression) -> (PathBuf, u64) {
    match c {
        Compression::None => (data.plain(), data.tar_bytes),
        Compression::Gzip => (data.gzip(), data.gzip_bytes),
        Compression::Zstd => (data.zstd(), data.zstd_bytes),
    }
}

fn case(
    opts: &Options,
    data: &Dataset,
    kind: DatasetKind,
    fs: FsKind,
    c: Compression,
    cache: Cache,
) -> Result<Case, BenchError> {
    let name = format!("{} {} {} {}", kind.name(), c, fs.fstype(), cache.name());
    let (blob, blob_bytes) = blob(data, c);
    let mut case = Case::new(&name);
    case.fact("dataset", format!("{}: {}", data.name, data.description));
    case.fact("files", data.files.to_string());
    case.fact("tar_bytes", data.tar_bytes.to_string());
    case.fact("blob", blob.display().to_string());
    case.fact("blob_bytes", blob_bytes.to_string());
    let mut tools = strata_variants();
    let peer = peer(c, &blob);
    let missing: Vec<&str> = match &peer {
        Tool::Peer { stages, .. } => {
            stages.iter().filter_map(|s| s[0].to_str()).filter(|t| !super::env::have_tool(t)).collect()
        }
        Tool::Strata { .. } => Vec::new(),
    };
    if missing.is_empty() {
        tools.push(peer);
    } else {
        case.skipped.push(super::harness::Skip {
            what: peer.name().to_owned(),
            reason: format!("{} not installed", missing.join(", ")),
        });
    }
    case.measurements = tools.iter().map(|t| Measurement::new(t.name(), &t.command(&blob), Unit::Seconds)).collect();
    // 4x the tar leaves room for filesystem overhead of small files.
    let size = fs_size(data.tar_bytes * 4, 512 << 20);
    // Most pages of the blob resident when a cold sample started.
    let mut blob_resident: Option<(u64, u64)> = None;
    for round in 0..=opts.runs {
        for i in rotation(tools.len(), round) {
            let mut scratch = scratch(opts, fs, size)?;
            if round == 0 && i == 0 {
                if let Some(m) = super::env::mount_of(scratch.path()) {
                    case.fact("fs", m.describe());
                }
            }
            let target = scratch.path().join("target");
            std::fs::create_dir(&target).map_err(|source| BenchError::Io {
                what: "mkdir",
                path: target.clone(),
                source,
            })?;
            // Start from a clean filesystem: mkfs/mount writes are not ours.
            syncfs(&target)?;
            if cache == Cache::Cold {
                scratch.drop_cache().map_err(|source| BenchError::Io {
                    what: "drop the cache of",
                    path: scratch.path().to_owned(),
                    source,
                })?;
                let r =
                    evict_file(&blob).map_err(|source| BenchError::Io { what: "evict", path: blob.clone(), source })?;
                let (most, _) = blob_resident.unwrap_or((0, r.pages));
                blob_resident = Some((most.max(r.resident), r.pages));
            }
            let (result, secs) = time(|| -> Result<Option<String>, BenchError> {
                let diff_id = match &tools[i] {
                    Tool::Strata { label } => {
                        let f = std::fs::File::open(&blob).map_err(|source| BenchError::Io {
                            what: "open",
                            path: blob.clone(),
                            source,
                        })?;
                        let out = crate::image::apply::apply_layer_with(
                            f,
                            &target,
                            Whiteouts::Overlay,
                            &strata_options(label),
                        )
                        .map_err(|source| BenchError::Apply { path: blob.clone(), source })?;
                        Some(out.diff_id.to_string())
                    }
                    Tool::Peer { stages, .. } => {
                        pipeline(&with_target(stages, &target))?;
                        None
                    }
                };
                if opts.sync {
                    syncfs(&target)?;
                }
                Ok(diff_id)
            });
            if let Some(diff_id) = result? {
                case.fact("diff_id", diff_id);
            }
            let label = if round == 0 { "warm-up".to_owned() } else { format!("run {round}/{}", opts.runs) };
            opts.progress(&format!("unpack {name} {label}: {} {secs:.3} s", tools[i].name()));
            if round > 0 {
                case.measurements[i].push(secs);
            }
            drop(scratch);
        }
    }
    if let Some((most, pages)) = blob_resident {
        let verdict = if most == 0 { "proven" } else { "NOT proven" };
        case.fact(
            "cache",
            format!("cold {verdict}: scratch fs caches dropped; blob at most {most} of {pages} pages resident"),
        );
    } else {
        case.fact("cache", "warm: blob read by the warm-up round");
    }
    for t in &tools[1..] {
        if let Tool::Peer { name, .. } = t {
            for s in ["strata", "strata-inline-blob-hash", "strata-sync-writer", "strata-uring-writer"] {
                case.add_ratio(s, name);
            }
        }
    }
    case.add_ratio("strata", "strata-inline-blob-hash");
    case.add_ratio("strata-uring-writer", "strata-sync-writer");
    Ok(case)
}
