//! The benchmark suite of the performance core: layer unpack, tree copy,
//! layer diff and sha256, each measured against the tools people would
//! otherwise use, side by side in one run.
//!
//! **Speed is measured, not asserted.** Nothing here passes or fails on a
//! time. Every case runs strata and its peers in the same invocation,
//! interleaved (run *i* of every tool before run *i+1* of any, starting
//! with a different tool each round, so drift in machine load spreads
//! evenly), discards one warm-up round, and reports the median, minimum
//! and maximum of `runs` timed rounds and the **ratio** of medians — the
//! number that survives a noisy machine — with its noise bound
//! ([`harness::Noise`]: the range of the per-round ratios). Results go to stdout as aligned
//! tables and to `results.json` with the environment they were taken in
//! ([`env::Environment`]).
//!
//! | suite | strata | peers |
//! |---|---|---|
//! | [`unpack`] | `apply_layer` into a fresh scratch filesystem per run | `tar -x`, `gzip -dc \| tar -x`, `zstd -dc \| tar -x` |
//! | [`copy`] | `copy_tree` (parallel) with `Reflink` and `ReadWrite`, the sequential twin, io_uring read/write | `cp -a` (`--reflink=always` on XFS/btrfs) |
//! | [`diff`] | `write_layer` of an overlay upper dir (with its diff ID) | `tar -c \| sha256sum`, `tar -cf /dev/null` |
//! | [`hash`] | `Hasher` over an in-memory buffer | `openssl speed sha256`, `sha256sum` of a tmpfs file |
//! | [`build`] | `strata build`, cached rebuild and `--no-cache`, of a 10-step Dockerfile | `buildah bud --layers` |
//! | [`pull`] | `strata pull` of a 5-layer gzip image from a loopback `docker-registry` | `skopeo copy docker://… oci:DIR` + `umoci unpack` |
//! | [`load`] | `strata load` of a 5-layer OCI archive, layers at once and in order | `podman load`, `skopeo copy` + `umoci unpack`, `docker load` and `ctr images import` against a private `dockerd` and containerd |
//! | [`containerd`] | `ctr images pull`, `ctr run --rm`, `ctr snapshots usage` through `strata snapshotter serve` (a proxy snapshotter) | containerd's overlayfs and native snapshotters; `strata pull` |
//! | [`start`] | the whole `strata run --rm busybox true`; `ps -a -s` of 100 containers | `crun run`, `runc run` of a bare bundle, `podman run --rm`, `docker run --rm`; `du -s` of each container's tree |
//!
//! Datasets are built once and cached ([`dataset`]); every file tree a
//! benchmark creates lives on a scratch filesystem on a loop device
//! ([`crate::scratch`]), torn down on drop, never on the host's root.
//!
//! Two older stand-alone benchmarks live here too, run by `examples/`
//! rather than by `strata bench`: [`apply`] (the applier's options —
//! workers, hash thread, sync — against `tar -x`) and [`uring`] (the
//! io_uring engine against its plain-syscall twin).
//!
//! **Architecture invariant:** the suite calls only public library APIs
//! (`apply_layer`, `copy_tree`, `write_layer`, `Hasher`), the same ones the
//! engine uses; it has no private fast path of its own to measure.

pub mod apply;
pub mod blob;
pub mod build;
pub mod cache;
pub mod containerd;
pub mod copy;
pub mod copyup;
pub mod dataset;
pub mod diff;
pub mod env;
pub mod harness;
pub mod hash;
pub mod load;
pub mod pull;
pub mod readme;
pub mod run;
pub mod start;
pub mod unpack;
pub mod uring;
pub mod usage;

use crate::scratch::FsKind;
use harness::{Skip, Suite};
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where datasets are cached unless `--data` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/tmp/strata-bench-data";
/// Where scratch filesystems' backing files go unless told otherwise.
pub const DEFAULT_SCRATCH_DIR: &str = "/var/tmp";

/// Failures that stop a benchmark (a missing peer tool or filesystem is a
/// skip, recorded in the results, not an error).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("scratch {kind} filesystem in {dir}: {source}")]
    Scratch { kind: &'static str, dir: PathBuf, source: io::Error },
    #[error("run `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("`{command}` failed ({status}): {stderr}")]
    Tool { command: String, status: String, stderr: String },
    #[error("{what} cannot be measured here: {reason}")]
    Unavailable { what: String, reason: String },
    #[error("apply {path}: {source}")]
    Apply { path: PathBuf, source: crate::image::apply::ApplyError },
    #[error(transparent)]
    Copy(#[from] crate::drivers::copy::tree::CopyError),
    #[error("write layer: {0}")]
    Diff(#[from] crate::image::diff::DiffError),
    /// Two implementations of one operation gave different answers: a
    /// bug, never a figure.
    #[error("{0}")]
    Disagree(String),
    #[error("unknown {what} {value:?} (expected one of: {expected})")]
    UnknownValue { what: &'static str, value: String, expected: &'static str },
}

/// How big the workloads are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// The numbers to publish: 50,000-file layers, 1 GiB trees.
    Full,
    /// `bench all --quick` and `cargo bench`: the whole matrix, reduced,
    /// in about two minutes.
    Quick,
    /// For the test that proves the harness end to end: seconds.
    Tiny,
}

/// Settings shared by every suite.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// Timed rounds per case, after one discarded warm-up round.
    pub runs: usize,
    pub scale: Scale,
    /// Dataset cache.
    pub data_dir: PathBuf,
    /// Where scratch filesystems' sparse backing files are created.
    pub scratch_dir: PathBuf,
    /// Whether each timed region ends with `syncfs(2)` of the target
    /// filesystem (for every tool alike).
    pub sync: bool,
    /// No progress lines on stderr.
    pub quiet: bool,
}

impl Options {
    pub fn new(scale: Scale) -> Options {
        Options {
            runs: 3,
            scale,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            scratch_dir: PathBuf::from(DEFAULT_SCRATCH_DIR),
            sync: true,
            quiet: false,
        }
    }

    /// A progress line on stderr (results go to stdout).
    pub fn progress(&self, msg: &str) {
        if !self.quiet {
            eprintln!("[bench] {msg}");
        }
    }

    /// How the sync policy reads in a suite's method line.
    fn sync_policy(&self) -> &'static str {
        if self.sync {
            "syncfs(2) of the target filesystem inside the timed region, for every tool"
        } else {
            "no sync: page-cache speed, for every tool (--no-sync)"
        }
    }
}

/// One benchmark to run, with its parameters.
#[derive(Debug, Clone)]
pub enum Bench {
    Unpack(unpack::Params),
    Copy(copy::Params),
    Diff(diff::Params),
    Usage(usage::Params),
    Hash,
    /// Content store blobs and the build context digest, per engine.
    Blob,
    Start,
    Build,
    Pull,
    /// `load` of a 5-layer image: layers at once vs in order vs peers.
    Load,
    /// Not in [`Bench::all`]: it needs containerd and takes minutes.
    Containerd,
}

impl Bench {
    /// Every benchmark with its default matrix for `scale`.
    pub fn all(scale: Scale) -> Vec<Bench> {
        vec![
            Bench::Hash,
            Bench::Unpack(unpack::Params::defaults(scale)),
            Bench::Copy(copy::Params::defaults(scale)),
            Bench::Diff(diff::Params::defaults(scale)),
            Bench::Usage(usage::Params::defaults(scale)),
            Bench::Start,
            Bench::Build,
            Bench::Load,
            Bench::Blob,
        ]
    }

    /// [`all`](Self::all), plus `pull` when its registry and peer are
    /// installed; otherwise why it is left out.
    pub fn all_available(scale: Scale) -> (Vec<Bench>, Option<String>) {
        let mut all = Bench::all(scale);
        match pull::missing_tool() {
            None => {
                all.push(Bench::Pull);
                (all, None)
            }
            Some(t) => (all, Some(format!("pull left out: {t} is not installed (tools/deps installs it)"))),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Bench::Unpack(_) => "unpack",
            Bench::Copy(_) => "copy",
            Bench::Diff(_) => "diff",
            Bench::Usage(_) => "usage",
            Bench::Hash => "hash",
            Bench::Blob => "blob",
            Bench::Start => "start",
            Bench::Build => "build",
            Bench::Pull => "pull",
            Bench::Load => "load",
            Bench::Containerd => "containerd",
        }
    }
}

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// RFC 3339 start time.
    pub started: String,
    pub environment: env::Environment,
    pub options: Options,
    pub suites: Vec<Suite>,
    /// Suites that stopped with an error.
    pub failures: Vec<Skip>,
}

impl Report {
    /// The results tables, one per suite.
    pub fn print(&self, out: &mut impl Write) -> io::Result<()> {
        let e = &self.environment;
        writeln!(
            out,
            "strata {} ({} build) on {}; {} x {}",
            e.strata_version, e.strata_profile, e.kernel, e.cpus, e.cpu_model
        )?;
        writeln!(out, "load average at start: {}", e.loadavg)?;
        writeln!(out, "{} timed runs per tool after 1 warm-up; median [min, max]\n", self.options.runs)?;
        for suite in &self.suites {
            harness::print_suite(out, suite)?;
        }
        for f in &self.failures {
            writeln!(out, "FAILED {}: {}", f.what, f.reason)?;
        }
        Ok(())
    }

    /// Writes `results.json` into `dir` (created if missing); returns its
    /// path.
    pub fn write_json(&self, dir: &Path) -> Result<PathBuf, BenchError> {
        let io = |what, source| BenchError::Io { what, path: dir.to_owned(), source };
        std::fs::create_dir_all(dir).map_err(|e| io("create results dir", e))?;
        let path = dir.join("results.json");
        let json = serde_json::to_vec_pretty(self).map_err(|e| io("encode results", e.into()))?;
        std::fs::write(&path, json).map_err(|e| io("write results.json", e))?;
        Ok(path)
    }
}

/// Runs `benches` in order. A suite that fails is recorded in
/// [`Report::failures`] and the rest still run.
pub fn run(opts: &Options, benches: &[Bench]) -> Report {
    let started = chrono::Utc::now().to_rfc3339();
    let environment = env::Environment::probe(&[("data", &opts.data_dir), ("scratch backing", &opts.scratch_dir)]);
    if cfg!(debug_assertions) {
        opts.progress("warning: a debug build; its numbers are not strata's (use --release)");
    }
    let mut report = Report { started, environment, options: opts.clone(), suites: Vec::new(), failures: Vec::new() };
    for b in benches {
        opts.progress(&format!("== {} ==", b.name()));
        let result = match b {
            Bench::Unpack(p) => unpack::run(opts, p),
            Bench::Copy(p) => copy::run(opts, p),
            Bench::Diff(p) => diff::run(opts, p),
            Bench::Usage(p) => usage::run(opts, p),
            Bench::Hash => hash::run(opts),
            Bench::Blob => blob::run(opts),
            Bench::Start => start::run(opts),
            Bench::Build => build::run(opts),
            Bench::Pull => pull::run(opts),
            Bench::Load => load::run(opts),
            Bench::Containerd => containerd::run(opts),
        };
        match result {
            Ok(mut suite) => {
                suite.cases.iter_mut().for_each(harness::Case::fill_noise);
                report.suites.push(suite);
            }
            Err(e) => {
                opts.progress(&format!("{} failed: {e}", b.name()));
                report.failures.push(Skip { what: b.name().to_owned(), reason: e.to_string() });
            }
        }
    }
    report
}

/// The body of a `cargo bench` target (`benches/`, `harness = false`):
/// runs `benches` at the quick scale, prints the tables, writes
/// `results.json` under `out_dir`, and returns the exit code. Benchmarks
/// that need root (all but `hash`) are skipped, with the reason printed,
/// when not root.
pub fn cargo_bench(benches: Vec<Bench>, out_dir: &Path) -> i32 {
    let root = crate::sys::process::geteuid().is_root();
    let (run_these, skipped): (Vec<Bench>, Vec<Bench>) =
        benches.into_iter().partition(|b| root || matches!(b, Bench::Hash));
    for b in &skipped {
        eprintln!("skipped bench {}: needs root (loop devices, mounts)", b.name());
    }
    if run_these.is_empty() {
        return 0;
    }
    let report = run(&Options::new(Scale::Quick), &run_these);
    if let Err(e) = report.print(&mut io::stdout().lock()) {
        eprintln!("error: print results: {e}");
        return 1;
    }
    match report.write_json(out_dir) {
        Ok(path) => eprintln!("[bench] results written to {}", path.display()),
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    }
    i32::from(!report.failures.is_empty())
}

/// Parses `ext4`, `xfs`, `btrfs`.
pub fn parse_fs(s: &str) -> Result<FsKind, BenchError> {
    match s {
        "ext4" => Ok(FsKind::Ext4),
        "xfs" => Ok(FsKind::Xfs),
        "btrfs" => Ok(FsKind::Btrfs),
        _ => Err(BenchError::UnknownValue { what: "filesystem", value: s.to_owned(), expected: "ext4, xfs, btrfs" }),
    }
}

/// Parses `none`, `gzip`, `zstd`.
pub fn parse_compression(s: &str) -> Result<crate::image::compression::Compression, BenchError> {
    use crate::image::compression::Compression;
    match s {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "zstd" => Ok(Compression::Zstd),
        _ => Err(BenchError::UnknownValue { what: "compression", value: s.to_owned(), expected: "none, gzip, zstd" }),
    }
}

/// Parses `synthetic`, `debian`.
pub fn parse_dataset(s: &str) -> Result<dataset::DatasetKind, BenchError> {
    match s {
        "synthetic" => Ok(dataset::DatasetKind::Synthetic),
        "debian" => Ok(dataset::DatasetKind::Debian),
        _ => Err(BenchError::UnknownValue { what: "dataset", value: s.to_owned(), expected: "synthetic, debian" }),
    }
}

/// Makes a scratch filesystem for a measurement, or says why it cannot.
fn scratch(opts: &Options, kind: FsKind, size: u64) -> Result<crate::scratch::ScratchFs, BenchError> {
    if !kind.mkfs_available() {
        return Err(BenchError::Unavailable {
            what: format!("{} filesystem", kind.fstype()),
            reason: format!("mkfs.{} is not installed", kind.fstype()),
        });
    }
    crate::scratch::ScratchFs::new_settled_in(&opts.scratch_dir, kind, size).map_err(|source| BenchError::Scratch {
        kind: kind.fstype(),
        dir: opts.scratch_dir.clone(),
        source,
    })
}

/// [`scratch`] with the loop device doing direct I/O on its backing file
/// ([`crate::scratch::ScratchFs::new_direct_in`]): a cold read goes to the
/// disk, not to the host's cache of the backing file. Where the scratch
/// directory cannot do direct I/O, a plain scratch filesystem (callers
/// then drop the backing file's pages before cold samples and prove it).
fn scratch_direct(opts: &Options, kind: FsKind, size: u64) -> Result<crate::scratch::ScratchFs, BenchError> {
    if !kind.mkfs_available() {
        return scratch(opts, kind, size);
    }
    match crate::scratch::ScratchFs::new_direct_in(&opts.scratch_dir, kind, size) {
        Ok(fs) => Ok(fs),
        Err(e) => {
            opts.progress(&format!("no direct I/O for a loop device in {}: {e}", opts.scratch_dir.display()));
            scratch(opts, kind, size)
        }
    }
}

/// The round-robin order of `n` tools in round `round`: each round starts
/// one tool later, so no tool always runs first (or last) after setup.
fn rotation(n: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i + round) % n)
}

/// Rounds up to whole MiB, at least `min`.
fn fs_size(bytes: u64, min: u64) -> u64 {
    bytes.max(min).div_ceil(1 << 20) << 20
}
