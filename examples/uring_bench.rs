//! Times the io_uring engine against its sync twin on tmpfs datasets:
//! batched reads and statx of 20k small files, and hashing a ~1 GiB tree.
//!
//! `cargo run --release --example uring_bench [reps]` as root (it mounts a
//! tmpfs under /var/tmp and unmounts it when done). Each line is the best
//! of `reps` runs (default 5) after one warm-up run.

use std::path::Path;
use strata::bench::uring::{self as bench, Timing};
use strata::scratch::Tmpfs;
use strata::uring::{IoEngine, IoEngineKind, UringError};

type Bench = fn(&mut IoEngine, &Path) -> Result<Timing, UringError>;

fn best(engine: &mut IoEngine, root: &Path, f: Bench, reps: usize) -> Result<Timing, UringError> {
    f(engine, root)?;
    let mut best: Option<Timing> = None;
    for _ in 0..reps {
        let t = f(engine, root)?;
        if best.as_ref().map_or(true, |b| t.elapsed < b.elapsed) {
            best = Some(t);
        }
    }
    Ok(best.expect("at least one rep"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let fs = Tmpfs::new(3 << 30)?;
    let small = fs.path().join("small");
    let large = fs.path().join("large");
    std::fs::create_dir(&small)?;
    std::fs::create_dir(&large)?;
    let small_bytes = bench::make_files(&small, 20_000, 1 << 10, 16 << 10, 1)?;
    let large_bytes = bench::make_files(&large, 20_000, 1 << 10, 100 << 10, 2)?;
    println!("dataset: 20000 files, {} MiB (small); 20000 files, {} MiB (large)", small_bytes >> 20, large_bytes >> 20);
    let cases: [(&str, &Path, Bench); 4] = [
        ("read_files 20k x 1-16 KiB", &small, bench::bench_read_files),
        ("statx 20k", &small, bench::bench_statx),
        ("tree_usage 20k", &small, bench::bench_tree_usage),
        ("hash_tree ~1 GiB", &large, bench::bench_hash_tree),
    ];
    for (name, root, f) in cases {
        for kind in [IoEngineKind::Sync, IoEngineKind::Uring] {
            let mut engine = IoEngine::with_kind(kind)?;
            println!("{name:28} {}", best(&mut engine, root, f, reps)?);
        }
    }
    Ok(())
}
