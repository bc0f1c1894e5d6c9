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
    /// Tree copy (reflink, read/write) vs cp -a --reflink=auto.
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
    /// sha256 throughput vs openssl speed and sha256sum.
    Hash {
        #[command(flatten)]
        common: Common,
    },
    /// Container start latency vs crun, runc, podman, docker; ps -s vs du.
    Start {
        #[command(flatten)]
        common: Common,
    },
    /// strata pull vs skopeo copy + umoci unpack from a loopback registry.
    Pull {
        #[command(flatten)]
        common: Common,
    },
    /// Every benchmark with its default matrix (pull only when
    /// docker-registry and skopeo are installed).
    All {
        #[command(flatten)]
        common: Common,
    },
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

pub fn bench(cmd: BenchCommand) -> Result<()> {
    let scale = |c: &Common| if c.quick { Scale::Quick } else { Scale::Full };
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
        BenchCommand::Diff { common, fs } => {
            let d = bench::diff::Params::defaults(scale(&common));
            (common, vec![Bench::Diff(bench::diff::Params { fs: parse_all(fs, bench::parse_fs, d.fs)? })])
        }
        BenchCommand::Hash { common } => (common, vec![Bench::Hash]),
        BenchCommand::Start { common } => (common, vec![Bench::Start]),
        BenchCommand::Pull { common } => (common, vec![Bench::Pull]),
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
    let mut opts = Options::new(scale(&common));
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
