//! Layer apply benchmark: strata vs GNU tar on fresh XFS and ext4 loop
//! filesystems (root). `cargo run --release --example unpack`.
//!
//! Environment: `UNPACK_DATA` (dataset dir, default
//! /var/tmp/strata-unpack), `UNPACK_FS` (`xfs,ext4`), `UNPACK_FORMATS`
//! (`plain,gzip,zstd`), `UNPACK_WORKERS` (`2`; `0` is the sequential twin;
//! `2s` to sync, `2n` not to, whatever `UNPACK_SYNC` (`1`) says),
//! `UNPACK_HASH_THREAD` (`1`), `UNPACK_RUNS` (`3`).

use strata::bench::apply::{run, Dataset, Tool};
use strata::image::apply::{ApplyIo, ApplyOptions};
use strata::scratch::FsKind;

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn main() -> anyhow::Result<()> {
    let data = Dataset::create(var("UNPACK_DATA", "/var/tmp/strata-unpack").as_ref())?;
    let fss: Vec<FsKind> = var("UNPACK_FS", "xfs,ext4")
        .split(',')
        .map(|f| match f {
            "ext4" => FsKind::Ext4,
            "btrfs" => FsKind::Btrfs,
            _ => FsKind::Xfs,
        })
        .collect();
    let formats = var("UNPACK_FORMATS", "plain,gzip,zstd");
    let formats: Vec<&str> = formats.split(',').collect();
    let hash_thread = var("UNPACK_HASH_THREAD", "1") != "0";
    let sync = var("UNPACK_SYNC", "1") != "0";
    let tools: Vec<Tool> = var("UNPACK_WORKERS", "2")
        .split(',')
        .map(|w| {
            // `2` uses UNPACK_SYNC; `2s` always syncs, `2n` never.
            let (w, sync) = match w.strip_suffix('s') {
                Some(w) => (w, true),
                None => w.strip_suffix('n').map_or((w, sync), |w| (w, false)),
            };
            Tool::Strata(ApplyOptions {
                workers: w.parse().unwrap_or(2),
                hash_thread,
                blob_hash_thread: true,
                sync,
                io: ApplyIo::from_env(),
            })
        })
        .collect();
    let runs = var("UNPACK_RUNS", "3").parse().unwrap_or(3);
    run(&data, &fss, &formats, &tools, runs)?;
    Ok(())
}
