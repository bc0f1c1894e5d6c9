//! Docker's overlay2 and podman's overlay and vfs drivers doing the same
//! first write, in the same run.
//!
//! Fairness: the timed code is strata's own [`super::ops::time`], run
//! inside each peer's container as `strata bench copy-up-probe write
//! /f-<size> --warm` — the strata binary and the shared libraries `ldd`
//! names are copied into the peer's image (one `import`ed layer that also
//! holds the files). The probe reads the file (warm, verified with
//! mincore), then times `open(O_WRONLY)` + `pwrite` of one byte and prints
//! the nanoseconds; container start-up is outside the window, as it is
//! for strata's containers. One container per sample (`run --rm`), with
//! the same warm-up and sample counts as strata's own cases, and every
//! contender's sample *i* — strata's overlay on ext4 included, as the
//! row "strata overlay on ext4" — taken before any sample *i+1*, so drift
//! in the machine's load reaches all of them alike. The peers' stores live on their own ext4
//! scratch filesystem, so "docker overlay2 on ext4" sits beside
//! "overlay on ext4". Cold cache is not measured for peers (dropping
//! caches before `run` would measure their start-up's I/O, not the file).

use super::fixture::Bed;
use super::stats::Quantiles;
use super::table::Progress;
use super::{Availability, Cache, CacheCheck, Op, Params, Part, Record, Results};
use crate::bench::dataset::io_err;
use crate::bench::env::have_tool;
use crate::bench::run::pipeline;
use crate::bench::start::os;
use crate::bench::start::{strata_binary, MountsUnder, PrivateDockerd};
use crate::bench::{BenchError, Options};
use crate::scratch::FsKind;
use crate::sys::mincore::Residency;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A rootfs tar with the strata binary, its libraries and one file per
/// size at `/f-<size>`.
fn probe_image(dir: &Path, sizes: &[u64]) -> Result<PathBuf, BenchError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| BenchError::Io { what, path, source }
    };
    let strata = strata_binary().ok_or_else(|| BenchError::Unavailable {
        what: "peers".into(),
        reason: "no strata binary to copy into their images (cargo build --release first)".into(),
    })?;
    let root = dir.join("probe-rootfs");
    std::fs::create_dir_all(root.join("tmp")).map_err(io("mkdir", &root))?;
    std::fs::copy(&strata, root.join("strata")).map_err(io("copy strata", &strata))?;
    let ldd = String::from_utf8_lossy(&pipeline(&[vec!["ldd".into(), strata.into()]])?).into_owned();
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let dst = root.join(lib.trim_start_matches('/'));
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(io("mkdir", parent))?;
        }
        std::fs::copy(lib, &dst).map_err(io("copy library", Path::new(lib)))?;
    }
    for size in sizes {
        let f = root.join(format!("f-{size}"));
        super::fixture::write_file(&f, *size).map_err(io("write", &f))?;
    }
    let tar = dir.join("probe.tar");
    pipeline(&[vec!["tar".into(), "-C".into(), root.clone().into(), "-cf".into(), tar.clone().into(), ".".into()]])?;
    std::fs::remove_dir_all(&root).map_err(io("remove", &root))?;
    Ok(tar)
}

/// The command line that runs `cmd` in a fresh container of a peer.
type Argv = Box<dyn Fn(&[&str]) -> Vec<OsString>>;

/// One contender: how to run the probe in a fresh container, or (no
/// `argv`) strata's own overlay on ext4, measured on a test bed in the
/// same rounds.
struct Peer {
    name: &'static str,
    driver: &'static str,
    argv: Option<Argv>,
}

/// The name of strata's row among the peers.
const STRATA: &str = "strata overlay on ext4";

/// Parses the probe's `<ns> <resident> <pages>` line.
fn parse_probe(out: &[u8]) -> Option<(u64, u64, u64)> {
    let text = String::from_utf8_lossy(out);
    let mut it = text.lines().next()?.split_whitespace().map(|w| w.parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// The probe's second line, the container's root mount, with the long
/// layer paths (`lowerdir=`, `upperdir=`, `workdir=`) cut out.
fn root_mount(out: &[u8]) -> Option<String> {
    let line = String::from_utf8_lossy(out).lines().nth(1)?.to_owned();
    let short = line
        .split(',')
        .map(|o| match o.split_once('=') {
            Some((k @ ("lowerdir" | "upperdir" | "workdir" | "redirect_dir"), v)) => {
                format!("{k}=…{}", if v.ends_with(')') { ")" } else { "" })
            }
            _ => o.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",");
    Some(short)
}

/// One warm first write of a `size` file in a fresh container of `peer`:
/// nanoseconds, the mincore evidence, the container's root mount.
fn sample(peer: &Peer, bed: Option<&Bed>, size: u64) -> Result<(u64, Residency, Option<String>), BenchError> {
    let Some(argv) = &peer.argv else {
        let bed = bed.ok_or_else(|| BenchError::Unavailable { what: STRATA.into(), reason: "no test bed".into() })?;
        let c = bed.container(&format!("size-{size}"))?;
        let f = c.path().join("f");
        let r = super::ops::prepare(Cache::Warm, bed.fs_path(), &f).map_err(io_err("prepare cache", &f))?;
        let ns = super::ops::time(Op::Write, &f).map_err(io_err("write", &f))?;
        return Ok((ns, r, None));
    };
    let file = format!("/f-{size}");
    let stdout = pipeline(&[argv(&["/strata", "bench", "copy-up-probe", "write", &file, "--warm"])])?;
    let (ns, resident, pages) = parse_probe(&stdout).ok_or_else(|| BenchError::Unavailable {
        what: peer.name.into(),
        reason: format!("unexpected probe output {:?}", String::from_utf8_lossy(&stdout)),
    })?;
    Ok((ns, Residency { resident, pages }, root_mount(&stdout)))
}

/// Measures every contender at every size, interleaved: sample *i* of
/// each (in an order that rotates every round) before sample *i+1* of
/// any, with strata's warm-up and sample counts. Returns each one's
/// outcome (its root mount as seen inside, or why it stopped).
fn measure(
    peers: &[Peer],
    bed: Option<&Bed>,
    p: &Params,
    pr: &mut Progress,
    out: &mut Vec<Record>,
) -> Vec<Result<Option<String>, BenchError>> {
    let mut outcome: Vec<Result<Option<String>, BenchError>> = peers.iter().map(|_| Ok(None)).collect();
    for size in &p.peer_sizes {
        pr.label(&format!("peers write {}", super::stats::fmt_size(*size)));
        let mut recs: Vec<Record> = peers
            .iter()
            .map(|peer| Record {
                part: Part::Peer,
                setup: peer.name.to_owned(),
                driver: peer.driver.to_owned(),
                backing_fs: "ext4".into(),
                driver_options: Vec::new(),
                operation: Op::Write,
                file_size: *size,
                layer_depth: 1,
                dir_depth: 1,
                cache: Cache::Warm,
                containers: 1,
                warmup: p.warmup,
                sample_count: 0,
                samples_ns: Vec::new(),
                quantiles: Quantiles::default(),
                cache_check: None,
            })
            .collect();
        let mut checks: Vec<Option<CacheCheck>> = vec![None; peers.len()];
        for i in 0..p.warmup + p.samples {
            for j in crate::bench::rotation(peers.len(), i) {
                if outcome[j].is_ok() {
                    match sample(&peers[j], bed, *size) {
                        Ok((ns, r, mount)) => {
                            if let (Ok(m), Some(new)) = (&mut outcome[j], mount) {
                                *m = Some(new);
                            }
                            if i >= p.warmup {
                                recs[j].samples_ns.push(ns);
                                checks[j] = super::ops::fold_check(checks[j], r, None, false);
                            }
                        }
                        Err(e) => outcome[j] = Err(e),
                    }
                }
                pr.tick();
            }
        }
        for (j, mut rec) in recs.into_iter().enumerate() {
            if outcome[j].is_ok() {
                rec.sample_count = rec.samples_ns.len();
                rec.quantiles = Quantiles::of(&rec.samples_ns).unwrap_or_default();
                rec.cache_check = checks[j];
                out.push(rec);
            }
        }
    }
    outcome
}

/// Runs every installed peer, and strata's overlay on ext4 in the same
/// rounds; records why the others did not run.
pub fn run(opts: &Options, p: &Params, pr: &mut Progress, res: &mut Results) {
    let names = ["docker overlay2 on ext4", "podman overlay on ext4", "podman vfs on ext4"];
    let per_peer = p.peer_sizes.len() * (p.warmup + p.samples);
    let not_run = |res: &mut Results, pr: &mut Progress, name: &str, why: String| {
        pr.skip(per_peer);
        res.peers.push(Availability { name: name.to_owned(), status: why, filesystem: None, storage: None });
    };
    if p.peer_sizes.is_empty() {
        for n in names.iter().chain(&[STRATA]) {
            not_run(res, pr, n, "not measured (peers off for this run)".into());
        }
        return;
    }
    pr.label("peers: setting up");
    let fs = match crate::bench::scratch(opts, FsKind::Ext4, p.fs_bytes) {
        Ok(fs) => fs,
        Err(e) => {
            for n in names.iter().chain(&[STRATA]) {
                not_run(res, pr, n, format!("unavailable here: {e}"));
            }
            return;
        }
    };
    let work = fs.path().to_owned();
    let filesystem = crate::bench::env::mount_of(&work).map(|m| m.describe());
    let storage = fs.device().map(|d| {
        let mut f = super::storage::StorageFacts::of_block_device(d.path());
        f.fstype = Some("ext4".into());
        f
    });
    let runroot = PathBuf::from(format!("/tmp/scu-{}", std::process::id()));
    let _cleanup = MountsUnder { dir: work.clone(), also: runroot.clone() };
    let tar = match probe_image(&work, &p.peer_sizes) {
        Ok(t) => t,
        Err(e) => {
            for n in names.iter().chain(&[STRATA]) {
                not_run(res, pr, n, format!("unavailable here: {e}"));
            }
            return;
        }
    };
    let mut peers: Vec<Peer> = Vec::new();
    // strata's overlay on ext4, on its own bed, in the same rounds.
    let setup = super::Setup::new("overlay", FsKind::Ext4);
    let bed = match Bed::open(opts, &super::storage::Target::Loop, &setup, p.fs_bytes) {
        Ok(bed) => {
            let built = p.peer_sizes.iter().try_for_each(|size| {
                bed.layer(
                    &format!("size-{size}"),
                    None,
                    Some(&|d: &Path| super::fixture::write_file(&d.join("f"), *size)),
                )
            });
            match built.and_then(|()| bed.sync()) {
                Ok(()) => {
                    peers.push(Peer { name: STRATA, driver: "overlay", argv: None });
                    Some(bed)
                }
                Err(e) => {
                    not_run(res, pr, STRATA, format!("failed: {e}"));
                    None
                }
            }
        }
        Err(super::fixture::Unavailable::NotInBuild) => {
            not_run(res, pr, STRATA, "not available in this build".into());
            None
        }
        Err(super::fixture::Unavailable::Here(why)) => {
            not_run(res, pr, STRATA, format!("unavailable here: {why}"));
            None
        }
    };
    // Docker: a private dockerd with its data on the scratch filesystem
    // (overlay2 there), whether or not the host runs one. It stays up
    // while podman runs, so the two interleave.
    let dockerd = (have_tool("docker") && have_tool("dockerd")).then(|| PrivateDockerd::start(&work));
    match &dockerd {
        None => not_run(res, pr, names[0], "not installed (tools/peers installs docker.io)".into()),
        Some(Err(e)) => not_run(res, pr, names[0], format!("unavailable here: {e}")),
        Some(Ok(d)) => {
            let host = d.host.clone();
            let docker = move |args: &[&str]| -> Vec<OsString> {
                let mut v = os(&["docker", "-H", &host]);
                v.extend(os(args));
                v
            };
            match pipeline(&[docker(&["import", &tar.display().to_string(), "strata-copyup-probe"])]) {
                Ok(_) => peers.push(Peer {
                    name: names[0],
                    driver: "docker-overlay2",
                    argv: Some(Box::new(move |cmd| {
                        let mut v = docker(&["run", "--rm", "--network", "none", "strata-copyup-probe"]);
                        v.extend(os(cmd));
                        v
                    })),
                }),
                Err(e) => not_run(res, pr, names[0], format!("failed: {e}")),
            }
        }
    }
    let mut resets = Vec::new();
    for (name, driver) in [(names[1], "overlay"), (names[2], "vfs")] {
        if !have_tool("podman") {
            not_run(res, pr, name, "not installed (tools/deps installs podman)".into());
            continue;
        }
        let root = work.join(format!("podman-{driver}"));
        let run = runroot.join(driver);
        let base = move |args: &[&str]| -> Vec<OsString> {
            let mut v = os(&["podman", "--root"]);
            v.push(root.clone().into());
            v.push("--runroot".into());
            v.push(run.clone().into());
            v.extend(os(&["--storage-driver", driver, "--cgroup-manager", "cgroupfs"]));
            v.extend(os(args));
            v
        };
        if let Err(e) = pipeline(&[base(&["import", &tar.display().to_string(), "strata-copyup-probe"])]) {
            not_run(res, pr, name, format!("failed: {e}"));
            continue;
        }
        resets.push(base(&["system", "reset", "-f"]));
        // podman's crun refuses the host's hybrid cgroup layout: hide the
        // unified mount in a private mount namespace (see bench::start).
        peers.push(Peer {
            name,
            driver: if driver == "vfs" { "podman-vfs" } else { "podman-overlay" },
            argv: Some(Box::new(move |cmd| {
                let inner: Vec<String> = base(&[
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "--ulimit",
                    "nofile=20000:20000",
                    "--ulimit",
                    "nproc=32768:32768",
                    "strata-copyup-probe",
                ])
                .iter()
                .chain(os(cmd).iter())
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
                let script = format!("umount /sys/fs/cgroup/unified 2>/dev/null; exec {}", inner.join(" "));
                os(&["unshare", "-m", "sh", "-c", &script])
            })),
        });
    }
    let outcomes = measure(&peers, bed.as_ref(), p, pr, &mut res.records);
    for (peer, outcome) in peers.iter().zip(outcomes) {
        let (fs, storage) = if peer.argv.is_none() {
            (bed.as_ref().and_then(Bed::describe_fs), bed.as_ref().map(Bed::storage))
        } else {
            (filesystem.clone(), storage.clone())
        };
        let mut a = availability(peer.name, outcome, &fs);
        a.storage = storage;
        res.peers.push(a);
    }
    drop(bed);
    drop(dockerd);
    for reset in resets {
        let _ = pipeline(&[reset]);
    }
    let _ = std::fs::remove_dir_all(&runroot);
}

/// A peer's status: its container's root mount over the scratch ext4.
fn availability(name: &str, outcome: Result<Option<String>, BenchError>, fs: &Option<String>) -> Availability {
    let backing = fs.as_deref().unwrap_or("ext4");
    match outcome {
        Ok(mount) => Availability {
            name: name.into(),
            status: "measured".into(),
            filesystem: Some(format!("{} over {backing}", mount.as_deref().unwrap_or("?"))),
            storage: None,
        },
        Err(e) => {
            Availability { name: name.into(), status: format!("failed: {e}"), filesystem: fs.clone(), storage: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_probe_output() {
        assert_eq!(parse_probe(b"1234 16 16\n"), Some((1234, 16, 16)));
        assert_eq!(parse_probe(b"oops"), None);
        assert_eq!(parse_probe(b"1 2"), None);
        let out = b"5 1 1\noverlay (rw,relatime; rw,lowerdir=/a:/b,upperdir=/u,workdir=/w,metacopy=on)\n";
        assert_eq!(root_mount(out).unwrap(), "overlay (rw,relatime; rw,lowerdir=…,upperdir=…,workdir=…,metacopy=on)");
    }
}
