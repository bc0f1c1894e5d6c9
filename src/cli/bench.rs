//! `strata bench`: runs the benchmark suite (`strata::bench`), prints its
//! tables on stdout and writes `results.json`. Needs no data root.

use crate::bench::{self, Bench, Options, Scale};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Layer apply vs tar -x (plain, gzip, zstd) on fresh filesystems.
    Unpack {
        #[command(flatten)]
        common: Common,
        /// Filesystems to unpack onto [default: xfs,ext4].
        #[arg(long, value_delimiter = ',')]
        fs: Option<Vec<String>>,
        /// Layers to unpack: synthetic, debian (debootstrap bookworm
        /// minbase) [default: synthetic,debian; with --quick: synthetic].
        #[arg(long, value_delimiter = ',')]
        dataset: Option<Vec<String>>,
        /// Blob compressions: none, gzip, zstd [default: all three; with
        /// --quick: none,zstd].
        #[arg(long, value_delimiter = ',')]
        compression: Option<Vec<String>>,
    },
    /// Tree copy (parallel, sequential twin, read/write on each I/O engine) vs cp -a.
    Copy {
        #[command(flatten)]
        common: Common,
        /// Filesystems to copy on [default: xfs,btrfs,ext4].
        #[arg(long, value_delimiter = ',')]
        fs: Option<Vec<String>>,
    },
    /// Layer diff of an overlay upper dir vs tar -c | sha256sum.
    Diff {
        #[command(flatten)]
        common: Common,
        /// Filesystems to hold the upper dir [default: ext4].
        #[arg(long, value_delimiter = ',')]
        fs: Option<Vec<String>>,
    },
    /// Tree usage (ps -s, system df -v): io_uring vs sync walks vs du, warm and cold.
    Usage {
        #[command(flatten)]
        common: Common,
        /// Filesystems to hold the tree [default: xfs,ext4].
        #[arg(long, value_delimiter = ',')]
        fs: Option<Vec<String>>,
    },
    /// sha256 throughput vs openssl speed and sha256sum.
    Hash {
        #[command(flatten)]
        common: Common,
    },
    /// Content store blobs and the build context digest: plain vs io_uring.
    Blob {
        #[command(flatten)]
        common: Common,
    },
    /// Container start latency vs crun, runc, podman, docker; ps -s vs du.
    Start {
        #[command(flatten)]
        common: Common,
    },
    /// Dockerfile builds (cached rebuild, --no-cache) vs buildah bud.
    Build {
        #[command(flatten)]
        common: Common,
    },
    /// strata pull vs skopeo copy + umoci unpack from a loopback registry.
    Pull {
        #[command(flatten)]
        common: Common,
    },
    /// strata load of a 5-layer image (layers at once, in order) vs podman
    /// load, skopeo copy + umoci unpack, docker load, ctr images import.
    Load {
        #[command(flatten)]
        common: Common,
    },
    /// containerd with strata as a proxy snapshotter vs its overlayfs and
    /// native snapshotters: ctr images pull, ctr run --rm, snapshot usage.
    Containerd {
        #[command(flatten)]
        common: Common,
        /// The test matrix (seconds): a smoke check of the suite.
        #[arg(long, hide = true)]
        tiny: bool,
    },
    /// Every benchmark with its default matrix (pull only when
    /// docker-registry and skopeo are installed).
    All {
        #[command(flatten)]
        common: Common,
    },
    /// copy_up latency per driver and filesystem: file size, layer and
    /// directory depth, warm/cold cache, container start; Docker and
    /// podman beside it. Writes results.json and report.html.
    #[command(name = "copy-up")]
    CopyUp(CopyUpArgs),
    /// Re-renders a saved copy-up run (report.html beside it), or compares
    /// two runs (ratios with noise bounds).
    Report {
        /// A results.json of `bench copy-up`.
        json: PathBuf,
        /// A second results.json to compare against the first.
        json2: Option<PathBuf>,
        /// Where to write report.html [default: beside the (last) json].
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Rewrites the marked tables of README.md's performance section from
    /// the committed results files their markers name.
    Readme {
        /// The README to rewrite; results paths are relative to its directory.
        #[arg(default_value = "README.md")]
        readme: PathBuf,
        /// Change nothing; fail if a table differs from its results file.
        #[arg(long)]
        check: bool,
    },
    /// Inside a peer's container: time one operation on a file (used by
    /// `bench copy-up`; prints nanoseconds).
    #[command(name = "copy-up-probe", hide = true)]
    CopyUpProbe {
        /// write, append, truncate, chmod, chown, rename, link.
        op: String,
        path: PathBuf,
        /// Read the file first (warm cache).
        #[arg(long)]
        warm: bool,
    },
}

/// Options of `bench copy-up`.
#[derive(Debug, Args)]
pub struct CopyUpArgs {
    /// The reduced matrix (about two minutes).
    #[arg(long)]
    quick: bool,
    /// Directory for results.json and report.html [default: ./strata-copyup-<time>].
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Directory for the scratch filesystems' backing files.
    #[arg(long, default_value = bench::DEFAULT_SCRATCH_DIR)]
    scratch_dir: PathBuf,
    /// Timed samples per first-write case (after the warm-up ones).
    #[arg(long)]
    samples: Option<usize>,
    /// Leave Docker and podman out.
    #[arg(long)]
    no_peers: bool,
    /// Only the setups whose label contains this (`dmthin`, `on xfs`,
    /// `overlay on ext4`); repeatable.
    #[arg(long = "setup", value_name = "TEXT")]
    setups: Vec<String>,
    /// The test matrix (seconds): a smoke check of the suite.
    #[arg(long, hide = true)]
    tiny: bool,
    /// Run the setups that fit the existing filesystem mounted at DIR, in a
    /// fresh subdirectory removed afterwards (nothing is formatted).
    #[arg(long, value_name = "DIR", conflicts_with = "device")]
    on: Option<PathBuf>,
    /// Format this block device for each setup (mkfs.xfs/ext4/btrfs) and
    /// run there. Needs --destroy-data; refused while anything on it is
    /// mounted.
    #[arg(long, value_name = "DEV")]
    device: Option<PathBuf>,
    /// Allow --device to erase everything on the device.
    #[arg(long)]
    destroy_data: bool,
}

/// Options every benchmark takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Timed runs per tool (after one discarded warm-up run).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// A reduced matrix that finishes in about two minutes.
    #[arg(long)]
    quick: bool,
    /// Directory for results.json [default: ./strata-bench-<time>].
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Dataset cache directory.
    #[arg(long, default_value = bench::DEFAULT_DATA_DIR)]
    data: PathBuf,
    /// Directory for the scratch filesystems' backing files.
    #[arg(long, default_value = bench::DEFAULT_SCRATCH_DIR)]
    scratch_dir: PathBuf,
    /// Leave syncfs(2) out of the timed region (for every tool).
    #[arg(long)]
    no_sync: bool,
}

/// The parsed list, or `default` when the option was not given.
fn parse_all<T>(
    values: Option<Vec<String>>,
    parse: impl Fn(&str) -> Result<T, bench::BenchError>,
    default: Vec<T>,
) -> Result<Vec<T>> {
    match values {
        Some(v) => v.iter().map(|v| parse(v.trim()).map_err(Into::into)).collect(),
        None => Ok(default),
    }
}

fn copy_up(a: CopyUpArgs) -> Result<()> {
    use bench::copyup;
    let scale = match (a.tiny, a.quick) {
        (true, _) => Scale::Tiny,
        (false, true) => Scale::Quick,
        _ => Scale::Full,
    };
    let mut p = copyup::Params::defaults(scale);
    if let Some(n) = a.samples {
        if n == 0 {
            bail!("--samples must be at least 1");
        }
        p.samples = n;
    }
    if a.no_peers {
        p.peer_sizes.clear();
    }
    if let Some(dir) = &a.on {
        p.target = copyup::storage::Target::on(dir)?;
    }
    if let Some(dev) = &a.device {
        p.target = copyup::storage::Target::device(dev, a.destroy_data)?;
    } else if a.destroy_data {
        bail!("--destroy-data only goes with --device");
    }
    if !a.setups.is_empty() {
        let target = p.target.clone();
        let known: Vec<String> = p.setups.iter().map(|s| target.label(s)).collect();
        p.setups.retain(|s| a.setups.iter().any(|f| target.label(s).contains(f.as_str())));
        if p.setups.is_empty() {
            bail!("no setup matches {:?}; this matrix has: {}", a.setups, known.join(", "));
        }
    }
    let mut opts = Options::new(scale);
    opts.scratch_dir = a.scratch_dir;
    let output = a
        .output
        .unwrap_or_else(|| PathBuf::from(format!("strata-copyup-{}", chrono::Local::now().format("%Y%m%d-%H%M%S"))));
    let results = copyup::run(&opts, &p);
    copyup::table::print(&mut std::io::stdout().lock(), &results)?;
    let path = results.write(&output)?;
    eprintln!("[bench] results written to {} (and report.html beside it)", path.display());
    if !results.failures.is_empty() {
        bail!("{} part(s) failed: {}", results.failures.len(), results.failures[0]);
    }
    Ok(())
}

fn report(json: PathBuf, json2: Option<PathBuf>, output: Option<PathBuf>) -> Result<()> {
    use bench::copyup::{compare, html, table, Results};
    let a = Results::read(&json)?;
    let b = json2.as_deref().map(Results::read).transpose()?;
    let last = json2.as_ref().unwrap_or(&json);
    let dir = output.unwrap_or_else(|| last.parent().map(PathBuf::from).unwrap_or_default());
    let mut out = std::io::stdout().lock();
    match &b {
        Some(b) => compare::print(&mut out, &a, b)?,
        None => table::print(&mut out, &a)?,
    }
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("report.html");
    std::fs::write(&path, html::render(&a, b.as_ref()))?;
    eprintln!("[bench] report written to {}", path.display());
    Ok(())
}

fn probe(op: &str, path: &std::path::Path, warm: bool) -> Result<()> {
    use bench::copyup::{ops, Cache, Op};
    let Some(op) = Op::FIRST_WRITES.iter().copied().find(|o| o.name() == op) else { bail!("unknown operation {op:?}") };
    let before = if warm { ops::prepare(Cache::Warm, path, path)? } else { ops::residency(path)? };
    let ns = ops::time(op, path)?;
    println!("{ns} {} {}", before.resident, before.pages);
    // The root mount as this container sees it: the peer's driver and
    // its options, for the report.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Some(root) = bench::env::parse_mountinfo(&info).into_iter().rev().find(|m| m.mount_point == "/") {
        println!("{}", root.describe());
    }
    Ok(())
}

fn regenerate_readme(path: &std::path::Path, check: bool) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?;
    let repo = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let fresh = bench::readme::render(&text, repo)?;
    if fresh == text {
        eprintln!("[bench] {}: every generated table matches its results file", path.display());
    } else if check {
        bail!("{}: generated tables differ from their results files (run `strata bench readme`)", path.display());
    } else {
        std::fs::write(path, fresh)?;
        eprintln!("[bench] {}: tables regenerated", path.display());
    }
    Ok(())
}

pub fn bench(cmd: BenchCommand) -> Result<()> {
    let scale = |c: &Common| if c.quick { Scale::Quick } else { Scale::Full };
    let mut tiny_scale = false;
    let (common, benches) = match cmd {
        BenchCommand::Unpack { common, fs, dataset, compression } => {
            let d = bench::unpack::Params::defaults(scale(&common));
            let p = bench::unpack::Params {
                fs: parse_all(fs, bench::parse_fs, d.fs)?,
                datasets: parse_all(dataset, bench::parse_dataset, d.datasets)?,
                compressions: parse_all(compression, bench::parse_compression, d.compressions)?,
            };
            (common, vec![Bench::Unpack(p)])
        }
        BenchCommand::Copy { common, fs } => {
            let d = bench::copy::Params::defaults(scale(&common));
            (common, vec![Bench::Copy(bench::copy::Params { fs: parse_all(fs, bench::parse_fs, d.fs)? })])
        }
        BenchCommand::Usage { common, fs } => {
            let d = bench::usage::Params::defaults(scale(&common));
            (common, vec![Bench::Usage(bench::usage::Params { fs: parse_all(fs, bench::parse_fs, d.fs)? })])
        }
        BenchCommand::Diff { common, fs } => {
            let d = bench::diff::Params::defaults(scale(&common));
            (common, vec![Bench::Diff(bench::diff::Params { fs: parse_all(fs, bench::parse_fs, d.fs)? })])
        }
        BenchCommand::Hash { common } => (common, vec![Bench::Hash]),
        BenchCommand::Blob { common } => (common, vec![Bench::Blob]),
        BenchCommand::Start { common } => (common, vec![Bench::Start]),
        BenchCommand::Build { common } => (common, vec![Bench::Build]),
        BenchCommand::CopyUp(a) => return copy_up(a),
        BenchCommand::Report { json, json2, output } => return report(json, json2, output),
        BenchCommand::CopyUpProbe { op, path, warm } => return probe(&op, &path, warm),
        BenchCommand::Readme { readme, check } => return regenerate_readme(&readme, check),
        BenchCommand::Pull { common } => (common, vec![Bench::Pull]),
        BenchCommand::Load { common } => (common, vec![Bench::Load]),
        BenchCommand::Containerd { common, tiny } => {
            tiny_scale = tiny;
            (common, vec![Bench::Containerd])
        }
        BenchCommand::All { common } => {
            let (benches, left_out) = Bench::all_available(scale(&common));
            if let Some(why) = left_out {
                eprintln!("[bench] {why}");
            }
            (common, benches)
        }
    };
    if common.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut opts = Options::new(if tiny_scale { Scale::Tiny } else { scale(&common) });
    opts.runs = common.runs;
    opts.data_dir = common.data;
    opts.scratch_dir = common.scratch_dir;
    opts.sync = !common.no_sync;
    let output = common
        .output
        .unwrap_or_else(|| PathBuf::from(format!("strata-bench-{}", chrono::Local::now().format("%Y%m%d-%H%M%S"))));
    let report = bench::run(&opts, &benches);
    report.print(&mut std::io::stdout().lock())?;
    let path = report.write_json(&output)?;
    eprintln!("[bench] results written to {}", path.display());
    if !report.failures.is_empty() {
        bail!("{} benchmark(s) failed: {}", report.failures.len(), report.failures[0].reason);
    }
    Ok(())
}
