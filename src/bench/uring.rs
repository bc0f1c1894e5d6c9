//! The I/O engines measured on the same data: io_uring against its
//! plain-syscall twin ([`crate::uring`]), for `examples/uring_bench.rs`:
//! dataset builders and one timed run per workload. Nothing here asserts a speed; callers compare the numbers.
//!
//! Datasets are written with plain std calls (creation is not what is
//! measured) into 100-file directories, like a layer's `usr/lib/*`. Build
//! them on tmpfs or a scratch filesystem: mass creation on the host root
//! can be slow or worse.

use crate::uring::{hash_tree, tree_usage, At, Dir, IoEngine, IoEngineKind, UringError};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// One timed workload run.
#[derive(Debug, Clone)]
pub struct Timing {
    pub engine: IoEngineKind,
    /// Files (or entries) processed.
    pub items: u64,
    /// Bytes read, where the workload reads.
    pub bytes: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let (items, mib) = (self.items as f64, self.bytes as f64 / f64::from(1 << 20));
        write!(
            f,
            "{:?}: {} items, {:.1} MiB in {:.1} ms ({:.0} items/s, {:.0} MiB/s)",
            self.engine,
            self.items,
            mib,
            secs * 1e3,
            items / secs,
            mib / secs
        )
    }
}

use crate::rng::Rng;

/// Writes `count` files of `min..=max` bytes under `root`, 100 per
/// directory (`d0000/f00`…). Returns the bytes written.
pub fn make_files(root: &Path, count: usize, min: usize, max: usize, seed: u64) -> io::Result<u64> {
    let mut rng = Rng(seed | 1);
    let mut total = 0;
    let block: Vec<u8> = (0..(1 << 20) + max).map(|_| rng.next_u64().to_le_bytes()[0]).collect();
    for i in 0..count {
        let dir = root.join(format!("d{:04}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        let span = u64::try_from(max - min + 1).unwrap_or(1);
        let len = min + usize::try_from(rng.next_u64() % span).unwrap_or(0);
        let start = usize::try_from(rng.next_u64() % (1 << 20)).unwrap_or(0);
        std::fs::write(dir.join(format!("f{:02}", i % 100)), &block[start..start + len])?;
        total += len as u64;
    }
    Ok(total)
}

/// The directories of a `make_files` dataset, each with its file names.
type Dataset = Vec<(Dir, Vec<Vec<u8>>)>;

fn dataset(root: &Path) -> Result<Dataset, UringError> {
    let top = Dir::open(root)?;
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(root)
        .map_err(|e| UringError::Io { op: "readdir", path: root.to_owned(), source: e })?
        .collect();
    names.sort_by_key(|e| e.as_ref().map(|e| e.file_name()).ok());
    for entry in names {
        let entry = entry.map_err(|e| UringError::Io { op: "readdir", path: root.to_owned(), source: e })?;
        use std::os::unix::ffi::OsStrExt;
        let dir = top.open_at(entry.file_name().as_bytes())?;
        let files = crate::sys::fs::read_dir_names(dir.as_fd()).map_err(|e| UringError::Io {
            op: "readdir",
            path: dir.path().to_owned(),
            source: e,
        })?;
        out.push((dir, files));
    }
    Ok(out)
}

/// Reads every file of a `make_files` dataset in one batch (listing is
/// not timed).
pub fn bench_read_files(engine: &mut IoEngine, root: &Path) -> Result<Timing, UringError> {
    let set = dataset(root)?;
    let items: Vec<At<'_>> =
        set.iter().flat_map(|(dir, names)| names.iter().map(move |n| At { dir, name: n.as_slice() })).collect();
    let (mut bytes, mut error) = (0u64, None);
    let start = Instant::now();
    engine.read_files_with(&items, |_, piece| match piece {
        Ok(chunk) => bytes += chunk.data.len() as u64,
        Err(e) => {
            error.get_or_insert(e);
        }
    });
    let elapsed = start.elapsed();
    error.map_or(Ok(()), Err)?;
    Ok(Timing { engine: engine.kind(), items: items.len() as u64, bytes, elapsed })
}

/// `statx` of every file of a `make_files` dataset in one batch.
pub fn bench_statx(engine: &mut IoEngine, root: &Path) -> Result<Timing, UringError> {
    let set = dataset(root)?;
    let items: Vec<At<'_>> =
        set.iter().flat_map(|(dir, names)| names.iter().map(move |n| At { dir, name: n.as_slice() })).collect();
    let start = Instant::now();
    let stats = engine.statx(&items);
    let elapsed = start.elapsed();
    let mut bytes = 0;
    for s in stats {
        bytes += s?.size;
    }
    Ok(Timing { engine: engine.kind(), items: items.len() as u64, bytes, elapsed })
}

/// [`hash_tree`] of `root`, walk included.
pub fn bench_hash_tree(engine: &mut IoEngine, root: &Path) -> Result<Timing, UringError> {
    let start = Instant::now();
    let hashes = hash_tree(engine, root)?;
    let elapsed = start.elapsed();
    Ok(Timing { engine: engine.kind(), items: hashes.len() as u64, bytes: 0, elapsed })
}

/// [`tree_usage`] of `root`, walk included.
pub fn bench_tree_usage(engine: &mut IoEngine, root: &Path) -> Result<Timing, UringError> {
    let start = Instant::now();
    let usage = tree_usage(engine, root)?;
    let elapsed = start.elapsed();
    Ok(Timing { engine: engine.kind(), items: usage.inodes, bytes: usage.size, elapsed })
}
