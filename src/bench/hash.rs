//! `bench hash`: sha256 throughput on one core — strata's [`Hasher`] over
//! an in-memory buffer, against `openssl speed sha256` (its own
//! measurement, parsed) and `sha256sum` of the same bytes in a tmpfs file
//! (timed here, process start included).
//!
//! `openssl speed` runs with `-elapsed`: by default it divides by its
//! user CPU time, which on a busy machine reports the speed it would have
//! had alone, while strata and `sha256sum` are timed by the wall clock.
//! Measured on the same loaded 2-core host, one second apart: 1.80 GB/s
//! without `-elapsed`, 0.89–1.07 GB/s with it.
//!
//! `openssl speed` hashes one 1 MiB block over and over, which stays in
//! the CPU's cache; `strata-1MiB` does exactly that with strata's hasher,
//! for equal work, while `strata` streams the whole buffer from memory as
//! a layer would.
//!
//! The `file on ext4 warm|cold` cases hash one file on a scratch ext4 from
//! disk — strata's `Hasher` fed by 1 MiB `read`s, against `sha256sum FILE`
//! — warm (in the page cache) and cold (the scratch filesystem's caches
//! emptied before every sample, [`super::cache::prepare_tree`],
//! mincore-proven). They need root; without it they are skipped.
//!
//! Every layer byte strata moves is hashed at least once (the diff ID),
//! so this throughput bounds apply and diff; OpenSSL's assembly (SHA-NI
//! where the CPU has it) is the reference.

use super::harness::{gbps, time, Case, Measurement, Skip, Suite, Unit};
use super::run::pipeline;
use super::{BenchError, Options, Scale};
use crate::digest::Hasher;
use std::ffi::OsString;
use std::path::PathBuf;

/// The block `openssl speed -bytes` hashes over and over.
const BLOCK: usize = 1 << 20;

/// `(buffer bytes, openssl seconds per run)` at each scale.
pub fn shape(scale: Scale) -> (usize, u32) {
    match scale {
        Scale::Full => (1 << 30, 3),
        Scale::Quick => (256 << 20, 1),
        Scale::Tiny => (4 << 20, 1),
    }
}

/// Parses the throughput (bytes per second) of the `sha256` row from
/// `openssl speed` output, whose numbers are "in 1000s of bytes per second
/// processed" with a `k` suffix:
///
/// ```text
/// type             1048576 bytes
/// sha256           2047131.03k
/// ```
pub fn parse_openssl_speed(text: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        if words.next()? != "sha256" {
            return None;
        }
        let last = words.last()?;
        last.strip_suffix('k')?.parse::<f64>().ok().map(|k| k * 1000.0)
    })
}

/// A file on tmpfs, removed on drop.
struct TmpfsFile(PathBuf);

impl Drop for TmpfsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the hash suite.
pub fn run(opts: &Options) -> Result<Suite, BenchError> {
    let (len, secs) = shape(opts.scale);
    let mut suite = Suite::new(
        "hash",
        format!("sha256 of {} MiB on one core; strata's Hasher in memory; throughput, higher is better", len >> 20),
    );
    let mut case = Case::new("sha256");
    let mut buf = vec![0u8; len];
    super::dataset::fill(4, &mut buf);
    let len64 = len as u64;

    let openssl = vec![
        OsString::from("openssl"),
        "speed".into(),
        "-elapsed".into(),
        "-bytes".into(),
        BLOCK.to_string().into(),
        "-seconds".into(),
        secs.to_string().into(),
        "sha256".into(),
    ];
    let tmpfs = PathBuf::from("/dev/shm");
    let file = TmpfsFile(tmpfs.join(format!("strata-bench-hash-{}", crate::root::unique_suffix())));
    let mut tools: Vec<&str> = vec!["strata", "strata-1MiB"];
    case.measurements.push(Measurement::new("strata", "strata digest::Hasher::update", Unit::GigabytesPerSecond));
    case.measurements.push(Measurement::new(
        "strata-1MiB",
        "strata digest::Hasher::update, one 1 MiB block repeated (openssl speed's workload)",
        Unit::GigabytesPerSecond,
    ));
    if super::env::have_tool("openssl") {
        tools.push("openssl");
        let cmd = run_describe(&openssl);
        case.measurements.push(Measurement::new("openssl", &cmd, Unit::GigabytesPerSecond));
    } else {
        case.skipped.push(Skip { what: "openssl".into(), reason: "not installed".into() });
    }
    let on_tmpfs = crate::sys::statfs::fs_magic(&tmpfs).map(|m| m == crate::sys::statfs::FsMagic::TMPFS);
    match (super::env::have_tool("sha256sum"), on_tmpfs) {
        (true, Ok(true)) => {
            std::fs::write(&file.0, &buf).map_err(|source| BenchError::Io {
                what: "write",
                path: file.0.clone(),
                source,
            })?;
            tools.push("sha256sum");
            let cmd = "sha256sum /dev/shm/strata-bench-hash-* (tmpfs)";
            case.measurements.push(Measurement::new("sha256sum", cmd, Unit::GigabytesPerSecond));
        }
        (false, _) => case.skipped.push(Skip { what: "sha256sum".into(), reason: "not installed".into() }),
        (true, _) => case.skipped.push(Skip { what: "sha256sum".into(), reason: "/dev/shm is not a tmpfs".into() }),
    }
    case.fact("bytes", len.to_string());

    for round in 0..=opts.runs {
        for i in super::rotation(tools.len(), round) {
            let value = match tools[i] {
                "strata" => {
                    let (digest, t) = time(|| {
                        let mut h = Hasher::new();
                        h.update(&buf);
                        h.finish()
                    });
                    if round == 0 {
                        case.fact("strata digest", digest.to_string());
                    }
                    gbps(len64, t)
                }
                "strata-1MiB" => {
                    let block = &buf[..BLOCK.min(len)];
                    let (_, t) = time(|| {
                        let mut h = Hasher::new();
                        for _ in 0..len / block.len() {
                            h.update(block);
                        }
                        h.finish()
                    });
                    gbps((len / block.len() * block.len()) as u64, t)
                }
                "openssl" => {
                    let out = pipeline(std::slice::from_ref(&openssl))?;
                    let text = String::from_utf8_lossy(&out);
                    parse_openssl_speed(&text).ok_or_else(|| BenchError::Tool {
                        command: run_describe(&openssl),
                        status: "ok".into(),
                        stderr: format!("no sha256 row in its output: {text}"),
                    })? / 1e9
                }
                _ => {
                    let (out, t) = time(|| pipeline(&[vec!["sha256sum".into(), file.0.clone().into()]]));
                    let out = out?;
                    if round == 0 {
                        let hex = String::from_utf8_lossy(&out).split_whitespace().next().unwrap_or("").to_owned();
                        case.fact("sha256sum digest", format!("sha256:{hex}"));
                    }
                    gbps(len64, t)
                }
            };
            let label = if round == 0 { "warm-up".to_owned() } else { format!("run {round}/{}", opts.runs) };
            opts.progress(&format!("hash {label}: {} {value:.3} GB/s", tools[i]));
            if round > 0 {
                case.measurements[i].push(value);
            }
        }
    }
    case.add_ratio("strata", "openssl");
    case.add_ratio("strata-1MiB", "openssl");
    case.add_ratio("strata", "sha256sum");
    suite.cases.push(case);
    drop(file);
    match on_disk(opts, &buf) {
        Ok(cases) => suite.cases.extend(cases),
        Err(BenchError::Unavailable { what, reason }) => suite.skip(what, reason),
        Err(e) => return Err(e),
    }
    Ok(suite)
}

/// strata's hasher reading `path` in 1 MiB reads.
fn hash_file(path: &std::path::Path) -> Result<crate::digest::Digest, BenchError> {
    use std::io::Read;
    let err = |source| BenchError::Io { what: "read", path: path.to_owned(), source };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut chunk = vec![0u8; BLOCK];
    let mut h = Hasher::new();
    loop {
        let n = f.read(&mut chunk).map_err(err)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&chunk[..n]);
    }
}

/// `file on ext4 warm` and `file on ext4 cold`: `buf` written to a file on
/// a scratch ext4 and hashed from there by strata and `sha256sum`.
fn on_disk(opts: &Options, buf: &[u8]) -> Result<Vec<Case>, BenchError> {
    use super::cache::{prepare_tree, Cache, Proof};
    if !crate::sys::process::geteuid().is_root() {
        return Err(BenchError::Unavailable {
            what: "file on ext4".into(),
            reason: "needs root (loop devices)".into(),
        });
    }
    let len = buf.len() as u64;
    let mut fs = super::scratch(opts, crate::scratch::FsKind::Ext4, super::fs_size(len * 2, 256 << 20))?;
    let dir = fs.path().join("data");
    let file = dir.join("blob");
    std::fs::create_dir(&dir).map_err(|source| BenchError::Io { what: "mkdir", path: dir.clone(), source })?;
    std::fs::write(&file, buf).map_err(|source| BenchError::Io { what: "write", path: file.clone(), source })?;
    let mut tools = vec!["strata"];
    let sha256sum = super::env::have_tool("sha256sum");
    if sha256sum {
        tools.push("sha256sum");
    }
    let mut cases = Vec::new();
    for cache in Cache::BOTH {
        let mut case = Case::new(format!("file on ext4 {}", cache.name()));
        if let Some(m) = super::env::mount_of(fs.path()) {
            case.fact("fs", m.describe());
        }
        case.fact("bytes", len.to_string());
        case.measurements.push(Measurement::new(
            "strata",
            "strata digest::Hasher over 1 MiB read(2)s of the file",
            Unit::GigabytesPerSecond,
        ));
        if sha256sum {
            case.measurements.push(Measurement::new("sha256sum", "sha256sum FILE", Unit::GigabytesPerSecond));
        } else {
            case.skipped.push(Skip { what: "sha256sum".into(), reason: "not installed".into() });
        }
        let mut proof = None;
        for round in 0..=opts.runs {
            for i in super::rotation(tools.len(), round) {
                let p = prepare_tree(cache, &mut fs, &dir)?;
                if round > 0 {
                    proof = Some(Proof::fold(proof, p));
                }
                let (digest, t) = if tools[i] == "strata" {
                    let (d, t) = time(|| hash_file(&file));
                    (d?.to_string(), t)
                } else {
                    let (out, t) = time(|| pipeline(&[vec!["sha256sum".into(), file.clone().into()]]));
                    let hex = String::from_utf8_lossy(&out?).split_whitespace().next().unwrap_or("").to_owned();
                    (format!("sha256:{hex}"), t)
                };
                if round == 0 {
                    case.fact(&format!("{} digest", tools[i]), digest);
                }
                let value = gbps(len, t);
                let label = if round == 0 { "warm-up".to_owned() } else { format!("run {round}/{}", opts.runs) };
                opts.progress(&format!("hash {} {label}: {} {value:.3} GB/s", case.name, tools[i]));
                if round > 0 {
                    case.measurements[i].push(value);
                }
            }
        }
        if let Some(p) = proof {
            case.fact("cache", p.describe(cache));
        }
        case.add_ratio("strata", "sha256sum");
        cases.push(case);
    }
    Ok(cases)
}

fn run_describe(stage: &[OsString]) -> String {
    super::run::describe(&[stage.to_vec()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_speed_output() {
        let text = "Doing sha256 for 3s on 1048576 size blocks: 5856 sha256's in 2.99s\n\
                    version: 3.0.19\n\
                    The 'numbers' are in 1000s of bytes per second processed.\n\
                    type           1048576 bytes\n\
                    sha256           2053727.04k\n";
        let bps = parse_openssl_speed(text).unwrap();
        assert!((bps - 2_053_727_040.0).abs() < 1.0, "{bps}");
        assert_eq!(parse_openssl_speed("sha256 for nothing"), None);
        assert_eq!(parse_openssl_speed(""), None);
    }
}
