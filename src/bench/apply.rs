//! Layer apply options benchmark: strata's applier with chosen
//! [`ApplyOptions`] (workers, hash thread, sync) against GNU tar pipelines
//! on fresh loop-mounted filesystems. `examples/unpack.rs` runs it; the
//! suite's own unpack benchmark is [`super::unpack`].
//!
//! The dataset ([`Dataset::create`]) is 50,000 files of 1–16 KiB in 500
//! directories plus three 100 MiB files, half random bytes and half text
//! so zstd and gzip compress it about 2×, as a plain, a `.gz` and a `.zst`
//! tar. Every run gets a new filesystem ([`ScratchFs`]); the strata time
//! includes the final `syncfs(2)`, the tar times include no sync at all.

use crate::image::apply::{apply_layer_with, sync_filesystem, ApplyOptions};
use crate::rng::Rng;
use crate::scratch::{FsKind, ScratchFs};
use crate::snapshot::Whiteouts;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The three encodings of one layer.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub plain: PathBuf,
    pub gzip: PathBuf,
    pub zstd: PathBuf,
}

/// `len` bytes, alternating 256-byte runs of noise and of text.
fn content(rng: &mut Rng, len: usize) -> Vec<u8> {
    const TEXT: &[u8] = b"the quick brown fox jumps over the lazy dog; lorem ipsum dolor sit amet, \
        consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. ";
    let mut out = Vec::with_capacity(len + 256);
    while out.len() < len {
        if rng.below(2) == 0 {
            for _ in 0..32 {
                out.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
        } else {
            let start = rng.index(TEXT.len());
            out.extend(TEXT.iter().cycle().skip(start).take(256));
        }
    }
    out.truncate(len);
    out
}

impl Dataset {
    /// Makes the dataset in `dir` unless it is already there.
    pub fn create(dir: &Path) -> io::Result<Dataset> {
        let d =
            Dataset { plain: dir.join("layer.tar"), gzip: dir.join("layer.tar.gz"), zstd: dir.join("layer.tar.zst") };
        if d.plain.exists() && d.gzip.exists() && d.zstd.exists() {
            return Ok(d);
        }
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join("layer.tar.tmp");
        let mut b = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?));
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        let header = |kind: tar::EntryType, size: u64, mode: u32| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_size(size);
            h.set_mode(mode);
            h.set_mtime(1_700_000_000);
            h.set_uid(0);
            h.set_gid(0);
            h
        };
        for d in 0..500 {
            let dir = format!("usr/share/d{d:03}/");
            b.append_data(&mut header(tar::EntryType::Directory, 0, 0o755), &dir, io::empty())?;
            for f in 0..100 {
                let size = 1024 + rng.below(15 * 1024);
                let data = content(&mut rng, usize::try_from(size).unwrap_or(1024));
                b.append_data(&mut header(tar::EntryType::Regular, size, 0o644), format!("{dir}f{f:03}"), &data[..])?;
            }
        }
        b.append_data(&mut header(tar::EntryType::Directory, 0, 0o755), "big/", io::empty())?;
        for i in 0..3 {
            let size = 100u64 << 20;
            let data = content(&mut rng, usize::try_from(size).unwrap_or(0));
            b.append_data(&mut header(tar::EntryType::Regular, size, 0o644), format!("big/blob{i}"), &data[..])?;
        }
        b.into_inner()?.flush()?;
        let sh = |cmd: String| -> io::Result<()> {
            let st = Command::new("sh").arg("-c").arg(&cmd).status()?;
            if st.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!("{cmd}: {st}")))
            }
        };
        sh(format!("zstd -q -3 -T0 -f -o {} {}", d.zstd.display(), tmp.display()))?;
        sh(format!("gzip -6 -c {} > {}", tmp.display(), d.gzip.display()))?;
        std::fs::rename(&tmp, &d.plain)?;
        Ok(d)
    }

    /// The blob of `format` (`plain`, `gzip`, `zstd`).
    pub fn blob(&self, format: &str) -> &Path {
        match format {
            "gzip" => &self.gzip,
            "zstd" => &self.zstd,
            _ => &self.plain,
        }
    }
}

/// One contender: strata with some options, or a shell pipeline run with
/// `$BLOB` and `$DIR` set.
#[derive(Debug, Clone)]
pub enum Tool {
    Strata(ApplyOptions),
    Shell(String),
}

impl Tool {
    /// GNU tar (with `gzip -d`/`zstd -d` in front) for `format`.
    pub fn tar_for(format: &str) -> Tool {
        Tool::Shell(match format {
            "gzip" => "gzip -dc \"$BLOB\" | tar -x -C \"$DIR\"".into(),
            "zstd" => "zstd -dcq \"$BLOB\" | tar -x -C \"$DIR\"".into(),
            _ => "tar -xf \"$BLOB\" -C \"$DIR\"".into(),
        })
    }

    pub fn name(&self) -> String {
        match self {
            Tool::Strata(o) => format!(
                "strata {}{}{}",
                if o.workers == 0 { "seq".to_owned() } else { format!("{}w", o.workers) },
                if o.hash_thread && o.workers > 0 { "+h" } else { "" },
                if o.sync { "+sync" } else { "" }
            ),
            Tool::Shell(cmd) => {
                cmd.split('|').map(|p| p.split_whitespace().next().unwrap_or("")).collect::<Vec<_>>().join("|")
            }
        }
    }
}

/// Times one run of `tool` on `blob` into a new `fs` filesystem: the
/// tool itself (strata's own `syncfs` included when its options say so),
/// then a `syncfs(2)` after it.
pub fn time_once(fs: FsKind, blob: &Path, tool: &Tool) -> io::Result<(Duration, Duration)> {
    let scratch = ScratchFs::new(fs, 4 << 30)?;
    let dir = scratch.path().join("layer");
    std::fs::create_dir(&dir)?;
    // Flush the host (the previous run's backing file) and the fresh
    // filesystem before the clock starts.
    crate::sys::fs::sync();
    let start = Instant::now();
    match tool {
        Tool::Strata(opts) => {
            let blob = std::fs::File::open(blob)?;
            apply_layer_with(blob, &dir, Whiteouts::Delete, opts).map_err(io::Error::other)?;
        }
        Tool::Shell(cmd) => {
            let st = Command::new("sh").arg("-c").arg(cmd).env("BLOB", blob).env("DIR", &dir).status()?;
            if !st.success() {
                return Err(io::Error::other(format!("{cmd}: {st}")));
            }
        }
    }
    let applied = start.elapsed();
    sync_filesystem(&dir).map_err(io::Error::other)?;
    Ok((applied, start.elapsed() - applied))
}

/// The medians of a list of runs: of the tool, and of the tool plus a
/// sync.
fn medians(t: &[(Duration, Duration)]) -> (Duration, Duration) {
    let mut alone: Vec<Duration> = t.iter().map(|t| t.0).collect();
    let mut synced: Vec<Duration> = t.iter().map(|t| t.0 + t.1).collect();
    alone.sort();
    synced.sort();
    (alone[alone.len() / 2], synced[synced.len() / 2])
}

/// One line of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub fs: FsKind,
    pub format: String,
    pub tool: String,
    /// Median time of the tool alone (strata's sync included if asked).
    pub median: Duration,
    /// Median time of the tool followed by `syncfs(2)`.
    pub synced: Duration,
    /// The tar pipeline's median (unsynced) over this one's.
    pub speedup: f64,
}

/// Runs every `tools` entry and the tar pipeline for each filesystem and
/// format, `runs` times each, printing rows as they come.
pub fn run(data: &Dataset, fss: &[FsKind], formats: &[&str], tools: &[Tool], runs: usize) -> io::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &fs in fss {
        for &format in formats {
            let blob = data.blob(format);
            let all: Vec<Tool> = std::iter::once(Tool::tar_for(format)).chain(tools.iter().cloned()).collect();
            // Runs interleaved, so drift in the machine's load hits every
            // tool alike.
            let mut times = vec![Vec::new(); all.len()];
            for _ in 0..runs.max(1) {
                for (tool, t) in all.iter().zip(&mut times) {
                    t.push(time_once(fs, blob, tool)?);
                }
            }
            let base = medians(&times[0]);
            let mut line = |tool: String, (m, synced): (Duration, Duration)| {
                let speedup = base.0.as_secs_f64() / m.as_secs_f64();
                println!(
                    "{:<5} {:<6} {:<20} {:>7.3} s  {:>5.2}x   (+syncfs {:>7.3} s  {:>5.2}x)",
                    fs.fstype(),
                    format,
                    tool,
                    m.as_secs_f64(),
                    speedup,
                    synced.as_secs_f64(),
                    base.1.as_secs_f64() / synced.as_secs_f64()
                );
                rows.push(Row { fs, format: format.into(), tool, median: m, synced, speedup });
            };
            for (tool, t) in all.iter().zip(&times) {
                line(tool.name(), medians(t));
            }
        }
    }
    Ok(rows)
}
