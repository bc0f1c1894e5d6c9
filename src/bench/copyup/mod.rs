//! `bench copy-up`: what the first write to a file inherited from an image
//! costs, per storage driver and backing filesystem, by file size, layer
//! depth and directory depth — the copy_up — against the second write,
//! container start against a full copy of the image, and Docker's and
//! podman's drivers doing the same write in the same run.
//!
//! **The matrix is data.** [`SETUPS`] lists every (driver, backing
//! filesystem, driver options) setup; each gets its own scratch filesystem
//! on a loop device and its own data root, and its driver is opened by
//! name through [`crate::drivers::open_with_options`]. A name this build
//! does not know is reported as "not available in this build", not an
//! error: adding a driver to the suite is one line.
//!
//! **What is timed** is the syscall, as the kernel sees it: a fresh
//! container (an active snapshot on the image, mounted with
//! [`crate::mount::mount_all`]) per sample, then `Instant` (the vDSO's
//! `clock_gettime(CLOCK_MONOTONIC)`) around the first-write call(s) only
//! ([`ops`]). Warm-up samples are discarded. Cold samples run `syncfs(2)`
//! and drop that file's pages alone (`POSIX_FADV_DONTNEED`, see
//! [`crate::bench::cache`]) before the call and prove it with
//! `mincore(2)`: none of the file's pages resident, and none of the
//! scratch filesystem's backing file in the host's cache (its loop device
//! does direct I/O, `LO_FLAGS_DIRECT_IO`, where the host allows); warm samples read
//! the file first and prove all of them resident. Both proofs are recorded
//! per record.
//!
//! Results: [`Results`] (`results.json`: environment, setups, one
//! [`Record`] per case with raw samples and quantiles in ns), a terminal
//! table ([`table`]), and `report.html` with inline SVG plots and a
//! physics check ([`html`], [`physics`]). `strata bench report` re-renders
//! a saved run or compares two ([`compare`]).
//!
//! **Where** ([`storage`], [`place`]): by default each setup gets a fresh
//! filesystem on a loop device; `--on DIR` runs the setups that fit an
//! existing mounted filesystem in a fresh subdirectory of it, and
//! `--device DEV --destroy-data` formats a real block device per setup.
//! The report names the storage (device, model, rotational, scheduler).

pub mod compare;
mod fixture;
pub mod html;
pub mod ops;
mod peers;
pub mod physics;
mod place;
mod runner;
pub mod stats;
pub mod storage;
pub mod table;

pub use runner::run;

use crate::scratch::FsKind;
use serde::{Deserialize, Serialize};
use stats::Quantiles;
use std::path::{Path, PathBuf};

/// One storage setup: a driver (opened by name), the filesystem under its
/// data root, and driver options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub driver: &'static str,
    pub fs: FsKind,
    /// Options for [`crate::drivers::open_with_options`].
    pub options: &'static [&'static str],
    /// Operations this setup exists for (empty: all of them).
    pub only: &'static [Op],
}

impl Setup {
    pub const fn new(driver: &'static str, fs: FsKind) -> Setup {
        Setup { driver, fs, options: &[], only: &[] }
    }

    /// `overlay on ext4`, `overlay (metacopy=on) on ext4`.
    pub fn label(&self) -> String {
        self.label_on(self.fs.fstype())
    }

    /// The label with the filesystem it actually ran on (`--on` a tmpfs:
    /// `overlay on tmpfs`).
    pub fn label_on(&self, fstype: &str) -> String {
        if self.options.is_empty() {
            format!("{} on {fstype}", self.driver)
        } else {
            format!("{} ({}) on {fstype}", self.driver, self.options.join(","))
        }
    }

    /// Whether the setup measures `op`.
    pub fn runs(&self, op: Op) -> bool {
        self.only.is_empty() || self.only.contains(&op)
    }

    /// Whether it takes part in the depth and start-up parts (setups that
    /// exist for a few operations only do not).
    pub fn general(&self) -> bool {
        self.only.is_empty()
    }
}

/// The setup option that mounts containers with overlay's `volatile`.
pub const VOLATILE: &str = "volatile";

/// Every setup the suite knows. A setup whose driver cannot run here
/// (dm-thin on a kernel without device-mapper) is listed as unavailable in
/// the report, with the driver's reason.
pub const SETUPS: &[Setup] = &[
    Setup::new("overlay", FsKind::Ext4),
    Setup::new("overlay", FsKind::Xfs),
    Setup::new("overlay", FsKind::Btrfs),
    Setup::new("copy", FsKind::Xfs),
    Setup::new("copy", FsKind::Ext4),
    Setup { options: &["metacopy=on"], only: &[Op::Chmod, Op::Chown], ..Setup::new("overlay", FsKind::Ext4) },
    // What podman does for ephemeral containers and strata for `--rm`
    // ones: the container's overlay mounted `volatile` (copy_up skips its
    // fsync). A mount option, not a driver option (see fixture.rs).
    Setup {
        options: &[VOLATILE],
        only: &[Op::Write, Op::Append, Op::Truncate, Op::Chmod, Op::Chown, Op::Rename, Op::Link],
        ..Setup::new("overlay", FsKind::Ext4)
    },
    Setup::new("btrfs", FsKind::Btrfs),
    Setup::new("dmthin", FsKind::Ext4),
];

/// The measured system calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `open(O_WRONLY)` + `pwrite` of 1 byte at offset 0.
    Write,
    /// `open(O_WRONLY|O_APPEND)` + `write` of 1 byte.
    Append,
    /// `truncate(2)` to 0 bytes.
    Truncate,
    /// `chmod(2)` to 0600: metadata only.
    Chmod,
    /// `chown(2)` to 1000:1000: metadata only.
    Chown,
    /// `rename(2)` within the file's directory.
    Rename,
    /// `link(2)`: a hard link beside the file.
    Link,
    /// The same as `write`, again, on the file the first write copied up.
    SecondWrite,
    /// `stat(2)` + `open(O_RDONLY)`: the lookup through every layer.
    Lookup,
    /// Create the writable layer (prepare) and mount it, per container.
    Start,
    /// A full copy (read/write, no reflink) of the image's tree.
    FullCopy,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::Append => "append",
            Op::Truncate => "truncate",
            Op::Chmod => "chmod",
            Op::Chown => "chown",
            Op::Rename => "rename",
            Op::Link => "link",
            Op::SecondWrite => "second_write",
            Op::Lookup => "lookup",
            Op::Start => "start",
            Op::FullCopy => "full_copy",
        }
    }

    /// The first-write operations, in report order.
    pub const FIRST_WRITES: &'static [Op] =
        &[Op::Write, Op::Append, Op::Truncate, Op::Chmod, Op::Chown, Op::Rename, Op::Link];
}

/// Page-cache state of the file when the operation starts (shared with
/// the other suites).
pub use crate::bench::cache::Cache;

/// Which part of the suite a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    FirstWrite,
    SecondWrite,
    LayerDepth,
    DirDepth,
    ContainerStart,
    Peer,
}

/// The `mincore(2)` evidence of a record's cache state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCheck {
    pub file_pages: u64,
    /// Fewest and most of them resident just before the timed call,
    /// over all samples (cold: both should be 0; warm: both `file_pages`).
    pub resident_min: u64,
    pub resident_max: u64,
    /// Most pages of the scratch filesystem's backing file resident in the
    /// host's page cache just before a cold call (absent in older runs):
    /// a loop device without direct I/O could serve a "cold" file from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing_resident_max: Option<u64>,
    /// Whether the scratch filesystem's loop device did direct I/O.
    #[serde(default)]
    pub direct_io: bool,
}

/// One case: its coordinates, raw samples and quantiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub part: Part,
    /// The setup's label (`overlay on ext4`) or the peer's name.
    pub setup: String,
    pub driver: String,
    pub backing_fs: String,
    pub driver_options: Vec<String>,
    pub operation: Op,
    pub file_size: u64,
    pub layer_depth: usize,
    pub dir_depth: usize,
    pub cache: Cache,
    /// Containers per sample (container start), else 1.
    pub containers: usize,
    pub warmup: usize,
    pub sample_count: usize,
    pub samples_ns: Vec<u64>,
    #[serde(flatten)]
    pub quantiles: Quantiles,
    pub cache_check: Option<CacheCheck>,
}

impl Record {
    /// The coordinates that identify a case across runs.
    pub fn key(&self) -> (Part, &str, Op, u64, usize, usize, Cache, usize) {
        (
            self.part,
            self.setup.as_str(),
            self.operation,
            self.file_size,
            self.layer_depth,
            self.dir_depth,
            self.cache,
            self.containers,
        )
    }
}

/// Whether a setup or peer was measured, and if not, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    pub name: String,
    /// `measured`, `not available in this build`, or the reason it could
    /// not run here.
    pub status: String,
    /// The backing filesystem and its mount options, when one was made.
    pub filesystem: Option<String>,
    /// The storage under it: device, model, rotational, scheduler, size
    /// (absent in older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<storage::StorageFacts>,
}

/// Everything one `bench copy-up` run measured: `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub suite: String,
    pub started: String,
    pub scale: String,
    pub elapsed_s: f64,
    /// [`crate::bench::env::Environment`] as recorded.
    pub environment: serde_json::Value,
    /// How things were measured, one sentence each.
    pub method: Vec<String>,
    /// Where the setups' filesystems were: loop devices, `--on DIR` or
    /// `--device DEV` (absent in older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    pub setups: Vec<Availability>,
    pub peers: Vec<Availability>,
    pub records: Vec<Record>,
    /// Cases that stopped with an error (the rest still ran).
    pub failures: Vec<String>,
    /// Cases a driver refused (a limit, such as overlay's 500 layers).
    #[serde(default)]
    pub refused: Vec<String>,
}

impl Results {
    /// Writes `results.json` and `report.html` into `dir` (created if
    /// missing); returns the JSON's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, super::BenchError> {
        let io = |what, source| super::BenchError::Io { what, path: dir.to_owned(), source };
        std::fs::create_dir_all(dir).map_err(|e| io("create results dir", e))?;
        let path = dir.join("results.json");
        let json = serde_json::to_vec_pretty(self).map_err(|e| io("encode results", e.into()))?;
        std::fs::write(&path, json).map_err(|e| io("write results.json", e))?;
        std::fs::write(dir.join("report.html"), html::render(self, None)).map_err(|e| io("write report.html", e))?;
        Ok(path)
    }

    /// Reads a saved `results.json`.
    pub fn read(path: &Path) -> Result<Results, super::BenchError> {
        let io = |what, source| super::BenchError::Io { what, path: path.to_owned(), source };
        let bytes = std::fs::read(path).map_err(|e| io("read", e))?;
        serde_json::from_slice(&bytes).map_err(|e| io("parse results", e.into()))
    }
}

/// The matrix for one scale.
#[derive(Debug, Clone)]
pub struct Params {
    pub setups: Vec<Setup>,
    pub sizes: Vec<u64>,
    pub ops: Vec<Op>,
    pub caches: Vec<Cache>,
    pub warmup: usize,
    pub samples: usize,
    /// The 1 GiB case: size, the operations run at it, samples.
    pub big: Option<(u64, Vec<Op>, usize)>,
    pub layer_depths: Vec<usize>,
    pub dir_depths: Vec<usize>,
    pub depth_samples: usize,
    /// Containers per start sample (`[1, 100]`) and samples of each (a
    /// many-container sample has no warm-up of its own: its first
    /// container is one).
    pub start_counts: Vec<usize>,
    pub start_samples: usize,
    /// The image the start-up part mounts: files, total bytes.
    pub start_image: (usize, u64),
    /// Peers (Docker, podman) at these sizes, or none. They take
    /// `warmup` + `samples` like strata's cases, interleaved with each
    /// other and with strata's overlay on ext4 (see `peers`).
    pub peer_sizes: Vec<u64>,
    /// Scratch filesystem size per setup (loop target only).
    pub fs_bytes: u64,
    /// Where the setups' filesystems are made (default: loop devices).
    pub target: storage::Target,
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

impl Params {
    pub fn defaults(scale: super::Scale) -> Params {
        use super::Scale;
        let all = Op::FIRST_WRITES.to_vec();
        match scale {
            Scale::Full => Params {
                setups: SETUPS.to_vec(),
                sizes: vec![4 * KIB, MIB, 64 * MIB],
                ops: all,
                caches: vec![Cache::Warm, Cache::Cold],
                warmup: 2,
                samples: 10,
                big: Some((GIB, vec![Op::Write, Op::Chmod], 3)),
                layer_depths: vec![1, 16, 64, 128, 256, 500],
                dir_depths: vec![1, 16, 64, 256],
                depth_samples: 10,
                start_counts: vec![1, 100],
                start_samples: 5,
                start_image: (1_000, 20 * MIB),
                peer_sizes: vec![4 * KIB, MIB, 64 * MIB],
                fs_bytes: 6 * GIB,
                target: storage::Target::Loop,
            },
            Scale::Quick => Params {
                setups: SETUPS.to_vec(),
                sizes: vec![4 * KIB, 64 * MIB],
                ops: vec![Op::Write, Op::Chmod, Op::Rename],
                caches: vec![Cache::Warm, Cache::Cold],
                warmup: 1,
                samples: 4,
                big: None,
                layer_depths: vec![1, 16, 128],
                dir_depths: vec![1, 64],
                depth_samples: 4,
                start_counts: vec![1, 100],
                start_samples: 2,
                start_image: (300, 5 * MIB),
                peer_sizes: vec![64 * MIB],
                fs_bytes: 2 * GIB,
                target: storage::Target::Loop,
            },
            Scale::Tiny => Params {
                setups: vec![SETUPS[0], SETUPS[4], SETUPS[5], SETUPS[7]],
                sizes: vec![4 * KIB, MIB],
                ops: vec![Op::Write, Op::Chmod],
                caches: vec![Cache::Warm, Cache::Cold],
                warmup: 1,
                samples: 2,
                big: None,
                layer_depths: vec![1, 4],
                dir_depths: vec![1, 4],
                depth_samples: 2,
                start_counts: vec![1, 3],
                start_samples: 1,
                start_image: (20, MIB),
                peer_sizes: Vec::new(),
                fs_bytes: 512 * MIB,
                target: storage::Target::Loop,
            },
        }
    }
}
