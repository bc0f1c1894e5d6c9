//! The usage case: `Usage` of N containers' writable snapshots (busybox
//! as their parent, a few MiB written into each), asked of containerd with
//! one `ctr snapshots usage -b KEY…` naming all N keys, so containerd makes
//! N Usage calls, forwarded to strata's service for the proxy
//! snapshotters. The same command for every snapshotter; a one-key call
//! beside them shows what ctr's own start-up costs.

use super::super::dataset::io_err;
use super::super::harness::{time, Case, Measurement, Skip, Unit};
use super::super::run::{pipeline, syncfs};
use super::super::{rotation, BenchError, Scale};
use super::{fs_fact, Setup};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `(tool, --snapshotter, how it answers Usage)`.
const TOOLS: [(&str, &str, &str); 4] = [
    ("strata-btrfs", "strata-btrfs", "strata's btrfs driver: extent-tree search of the subvolume (quotas off)"),
    ("strata-copy", "strata-copy", "strata's copy driver on XFS: FIEMAP exclusive bytes of the reflinked tree"),
    ("strata-overlay", "strata", "strata's overlay driver on XFS: a walk of the upper dir"),
    ("overlayfs", "overlayfs", "containerd's overlayfs on XFS: a walk of the upper dir (fs.DiskUsage)"),
];

/// Containers, and files x bytes written into each.
fn workload(scale: Scale) -> (usize, usize, usize) {
    match scale {
        Scale::Full => (100, 16, 256 << 10),
        Scale::Quick => (50, 16, 128 << 10),
        Scale::Tiny => (3, 4, 64 << 10),
    }
}

fn unavailable(what: &str, reason: String) -> BenchError {
    BenchError::Unavailable { what: what.to_owned(), reason }
}

/// The directory a writable snapshot's new files go to, from `ctr
/// snapshots prepare --mounts` JSON: overlay's `upperdir=`, or a bind
/// mount's source.
fn writable_dir(mounts_json: &str) -> Result<PathBuf, BenchError> {
    let v: serde_json::Value =
        serde_json::from_str(mounts_json).map_err(|e| unavailable("snapshot mounts", format!("{e}: {mounts_json}")))?;
    let m = v.as_array().and_then(|a| a.first()).ok_or_else(|| unavailable("snapshot mounts", mounts_json.into()))?;
    let field = |k: &str| m.get(k).or_else(|| m.get(k.to_lowercase())).cloned().unwrap_or_default();
    let options: Vec<String> = serde_json::from_value(field("Options")).unwrap_or_default();
    if let Some(upper) = options.iter().find_map(|o| o.strip_prefix("upperdir=")) {
        return Ok(PathBuf::from(upper));
    }
    match (field("Type").as_str(), field("Source").as_str()) {
        (Some("bind"), Some(src)) => Ok(PathBuf::from(src)),
        _ => Err(unavailable("a writable directory in the snapshot's mounts", mounts_json.into())),
    }
}

/// Writes `files` files of `bytes` each (half random, half repetitive)
/// under `dir/bench`, in four directories.
fn fill(dir: &Path, seed: u64, files: usize, bytes: usize) -> Result<(), BenchError> {
    let mut rng = crate::rng::Rng::new(seed);
    for f in 0..files {
        let sub = dir.join(format!("bench/d{}", f % 4));
        std::fs::create_dir_all(&sub).map_err(io_err("create", &sub))?;
        let mut data = rng.bytes(bytes / 2);
        data.resize(bytes, b'x');
        let path = sub.join(format!("f{f}"));
        std::fs::write(&path, data).map_err(io_err("write", &path))?;
    }
    Ok(())
}

/// The committed snapshot `image` was unpacked into (busybox has one
/// layer), from `ctr snapshots ls`.
fn committed(s: &Setup, snapshotter: &str) -> Result<String, BenchError> {
    let ls = s.cd.run(&["snapshots", "--snapshotter", snapshotter, "ls"])?;
    ls.lines()
        .skip(1)
        .find(|l| l.split_whitespace().last() == Some("Committed"))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .ok_or_else(|| unavailable("a committed busybox snapshot", format!("{snapshotter}: {ls}")))
}

/// Bytes `ctr snapshots usage -b` reports for its first row.
fn first_usage(text: &str) -> Option<u64> {
    text.lines().nth(1)?.split_whitespace().nth(1)?.parse().ok()
}

pub(super) fn usage_case(s: &Setup) -> Result<Case, BenchError> {
    let (count, files, bytes) = workload(s.opts.scale);
    let mut case = Case::new(format!("Usage of {count} containers"));
    case.fact("fs", fs_fact(s.work));
    case.fact("written", format!("{files} files x {bytes} bytes per container, then syncfs"));
    case.fact("written_bytes", (files * bytes).to_string());
    let keys: Vec<String> = (0..count).map(|i| format!("bench-usage-{i}")).collect();
    let mut argvs: Vec<Vec<OsString>> = Vec::new();
    for (tool, snapshotter, how) in TOOLS {
        if tool == "strata-btrfs" && s.btrfs.is_none() {
            case.skipped.push(Skip { what: tool.into(), reason: "no btrfs scratch filesystem here".into() });
            continue;
        }
        s.opts.progress(&format!("containerd usage: {count} containers on {tool}"));
        s.cd.run(&["images", "pull", "--plain-http", "--snapshotter", snapshotter, &s.busybox])?;
        let parent = committed(s, snapshotter)?;
        for (i, key) in keys.iter().enumerate() {
            let json = s.cd.run(&["snapshots", "--snapshotter", snapshotter, "prepare", "--mounts", key, &parent])?;
            let dir = writable_dir(&json)?;
            fill(&dir, i as u64, files, bytes)?;
            if i == 0 {
                case.fact(&format!("dir ({tool})"), dir.display().to_string());
            }
        }
        syncfs(s.btrfs.filter(|_| tool == "strata-btrfs").unwrap_or(s.work))?;
        let mut args = vec!["snapshots", "--snapshotter", snapshotter, "usage", "-b"];
        args.extend(keys.iter().map(String::as_str));
        let check = s.cd.run(&args)?;
        let reported = first_usage(&check).ok_or_else(|| unavailable("ctr snapshots usage", check.clone()))?;
        case.fact(&format!("usage bytes ({tool})"), reported.to_string());
        case.fact(&format!("how ({tool})"), how);
        let command = format!("ctr snapshots --snapshotter {snapshotter} usage -b KEY x{count}");
        case.measurements.push(Measurement::new(tool, &command, Unit::Seconds));
        argvs.push(s.cd.ctr(&args));
    }
    case.measurements.push(Measurement::new(
        "ctr-one-key",
        "ctr snapshots --snapshotter overlayfs usage -b KEY",
        Unit::Seconds,
    ));
    argvs.push(s.cd.ctr(&["snapshots", "--snapshotter", "overlayfs", "usage", "-b", &keys[0]]));
    let runs = match s.opts.scale {
        Scale::Full | Scale::Quick => s.opts.runs.max(10),
        Scale::Tiny => s.opts.runs,
    };
    for round in 0..=runs {
        for i in rotation(argvs.len(), round) {
            let (res, secs) = time(|| pipeline(std::slice::from_ref(&argvs[i])));
            res?;
            if round > 0 {
                case.measurements[i].push(secs);
            }
        }
    }
    for tool in ["strata-btrfs", "strata-copy", "strata-overlay"] {
        case.add_ratio(tool, "overlayfs");
    }
    Ok(case)
}
