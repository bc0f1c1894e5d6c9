//! The benchmark suite end to end, at the tiny scale: every benchmark runs
//! strata and its peers, produces samples, ratios, a table and a
//! `results.json`, and leaves no mount, loop device or file behind.
//!
//! Nothing here looks at a time: speed is measured by `strata bench`, not
//! asserted by tests.

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use strata::bench::{self, Bench, Options, Scale};

/// `None` (after saying why) when not root; a failure under
/// `STRATA_TEST_STRICT`, as in `tests/images/common.rs`.
fn require_root(what: &str) -> Option<()> {
    if rustix::process::geteuid().is_root() {
        return Some(());
    }
    if std::env::var_os("STRATA_TEST_STRICT").is_some() {
        panic!("{what}: needs root, and STRATA_TEST_STRICT forbids skipping");
    }
    eprintln!("skipped: {what} needs root (mounts, loop devices)");
    None
}

/// Mounts and loop devices that mention `dir`, and entries left in it.
fn leftovers(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut left: Vec<String> = mountinfo.lines().filter(|l| l.contains(&d)).map(|l| format!("mount: {l}")).collect();
    let losetup = Command::new("losetup").arg("-a").output().expect("run losetup -a");
    let loops = String::from_utf8_lossy(&losetup.stdout).into_owned();
    left.extend(loops.lines().filter(|l| l.contains(&d)).map(|l| format!("loop device: {l}")));
    left.extend(std::fs::read_dir(dir).unwrap().map(|e| format!("file: {}", e.unwrap().path().display())));
    left
}

#[test]
fn every_benchmark_runs_end_to_end_and_leaves_nothing_behind() {
    let Some(()) = require_root("bench suite") else { return };
    let base = tempfile::Builder::new().prefix("strata-bench-test-").tempdir_in("/var/tmp").unwrap();
    let scratch = base.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let mut opts = Options::new(Scale::Tiny);
    opts.runs = 1;
    opts.data_dir = base.path().join("data");
    opts.scratch_dir = scratch.clone();

    let report = bench::run(&opts, &Bench::all(Scale::Tiny));

    assert!(report.failures.is_empty(), "failed: {:?}", report.failures);
    let names: Vec<&str> = report.suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["hash", "unpack", "copy", "diff", "usage", "start", "build", "load", "blob"]);
    let strict = std::env::var_os("STRATA_TEST_STRICT").is_some();
    for suite in &report.suites {
        for skip in &suite.skipped {
            eprintln!("{}: skipped {}: {}", suite.name, skip.what, skip.reason);
            // The Debian rootfs is never made at the tiny scale; anything
            // else skipped means a tool tools/deps should have installed.
            assert!(!strict || skip.what == "dataset debian", "{}: skipped {}: {}", suite.name, skip.what, skip.reason);
        }
        assert!(!suite.cases.is_empty(), "{}: no cases ran", suite.name);
        for case in &suite.cases {
            // No Docker engine runs on these hosts (only the client is
            // installed); every other peer tools/deps installs.
            let unexpected: Vec<_> = case.skipped.iter().filter(|s| s.what != "docker").collect();
            assert!(!strict || unexpected.is_empty(), "{} {}: skipped {:?}", suite.name, case.name, unexpected);
            assert!(case.measurements.len() >= 2, "{} {}: strata and a peer", suite.name, case.name);
            for m in &case.measurements {
                assert_eq!(m.samples.len(), 1, "{} {} {}: one sample per run", suite.name, case.name, m.tool);
                assert!(m.summary.is_some());
            }
            assert!(!case.ratios.is_empty(), "{} {}: no ratio", suite.name, case.name);
        }
    }

    // strata's unpack hashed exactly the tar it was given.
    let unpack = &report.suites[1];
    for case in unpack.cases.iter().filter(|c| c.name.contains(" none ")) {
        let blob = std::fs::read(&case.facts["blob"]).unwrap();
        assert_eq!(case.facts["diff_id"], strata::digest::Digest::of(&blob).to_string(), "{}", case.name);
    }

    let mut table = Vec::new();
    report.print(&mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    for heading in [
        "== hash ==",
        "== unpack ==",
        "== copy ==",
        "== diff ==",
        "== usage ==",
        "uring / sync",
        "== start ==",
        "== build ==",
        "strata / tar",
        "strata / crun",
        "strata / buildah",
    ] {
        assert!(table.contains(heading), "no {heading:?} in:\n{table}");
    }
    let json_path = report.write_json(&base.path().join("out")).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(json_path).unwrap()).unwrap();
    assert!(json["environment"]["kernel"].as_str().unwrap().starts_with("Linux"));
    assert_eq!(json["suites"].as_array().unwrap().len(), names.len());
    assert!(json["suites"][1]["cases"][0]["facts"]["fs"].is_string());

    // Loop devices autoclear asynchronously after the last close.
    let mut left = leftovers(&scratch);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        left = leftovers(&scratch);
    }
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}

/// The copy_up suite at the tiny scale, end to end: every planned case
/// produced samples and quantiles, the cache states were proven with
/// mincore, a driver this build lacks is listed as such, results.json has
/// the documented structure and report.html has its plots; nothing is
/// left behind.
#[test]
fn copy_up_suite_runs_end_to_end_and_leaves_nothing_behind() {
    use strata::bench::copyup::{self, Cache, Op, Part, Setup};
    use strata::scratch::FsKind;
    let Some(()) = require_root("copy-up suite") else { return };
    let base = tempfile::Builder::new().prefix("strata-copyup-test-").tempdir_in("/var/tmp").unwrap();
    let scratch = base.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let mut opts = Options::new(Scale::Tiny);
    opts.scratch_dir = scratch.clone();
    opts.quiet = true;
    let mut p = copyup::Params::defaults(Scale::Tiny);
    p.setups.push(Setup::new("no-such-driver", FsKind::Ext4));

    let results = copyup::run(&opts, &p);

    assert!(results.failures.is_empty(), "failed: {:?}", results.failures);
    let status = |name: &str| results.setups.iter().find(|a| a.name == name).map(|a| a.status.clone());
    assert_eq!(status("overlay on ext4").as_deref(), Some("measured"));
    assert_eq!(status("copy on ext4").as_deref(), Some("measured"));
    assert_eq!(status("overlay (metacopy=on) on ext4").as_deref(), Some("measured"));
    assert_eq!(status("no-such-driver on ext4").as_deref(), Some("not available in this build"));
    // Every first-write case of every measured setup, both cache states.
    for setup in ["overlay on ext4", "copy on ext4"] {
        for op in &p.ops {
            for size in &p.sizes {
                for cache in [Cache::Warm, Cache::Cold] {
                    let r = results
                        .records
                        .iter()
                        .find(|r| {
                            r.part == Part::FirstWrite
                                && r.setup == setup
                                && r.operation == *op
                                && r.file_size == *size
                                && r.cache == cache
                        })
                        .unwrap_or_else(|| panic!("no record for {setup} {op:?} {size} {cache:?}"));
                    assert_eq!(r.sample_count, p.samples);
                    assert_eq!(r.samples_ns.len(), p.samples);
                    assert!(r.quantiles.p50_ns > 0 && r.quantiles.p50_ns <= r.quantiles.max_ns);
                    let c = r.cache_check.expect("cache evidence");
                    match cache {
                        Cache::Cold => assert_eq!(c.resident_max, 0, "{setup} {op:?} {size}: not cold: {c:?}"),
                        Cache::Warm => assert_eq!(c.resident_min, c.file_pages, "{setup} {op:?} {size}: not warm"),
                    }
                }
            }
        }
    }
    let metacopy = results.records.iter().filter(|r| r.setup == "overlay (metacopy=on) on ext4");
    assert!(metacopy.clone().all(|r| matches!(r.operation, Op::Chmod | Op::Chown)));
    assert_eq!(metacopy.count(), p.sizes.len() * 2);
    for part in [Part::SecondWrite, Part::LayerDepth, Part::DirDepth, Part::ContainerStart] {
        assert!(results.records.iter().any(|r| r.part == part), "no {part:?} records");
    }
    let deepest = results.records.iter().filter(|r| r.part == Part::LayerDepth).map(|r| r.layer_depth).max();
    assert_eq!(deepest, p.layer_depths.iter().copied().max());
    assert!(results.records.iter().any(|r| r.operation == Op::Start && r.containers == 3));

    let out = base.path().join("out");
    let json_path = results.write(&out).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert!(json["environment"]["kernel"].as_str().unwrap().starts_with("Linux"));
    let rec = &json["records"][0];
    for key in [
        "driver",
        "backing_fs",
        "operation",
        "file_size",
        "layer_depth",
        "dir_depth",
        "cache",
        "sample_count",
        "samples_ns",
        "p50_ns",
        "p90_ns",
        "p99_ns",
        "max_ns",
    ] {
        assert!(!rec[key].is_null(), "record has no {key}: {rec}");
    }
    assert_eq!(copyup::Results::read(&json_path).unwrap(), results);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 8);
    assert!(html.contains("Physics check") && html.contains("no-such-driver on ext4"));
    assert!(html.contains("<polyline"), "plots without lines");

    let mut left = leftovers(&scratch);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        left = leftovers(&scratch);
    }
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}

/// overlay's `metacopy=on` driver option really copies up metadata only:
/// after a chmod the upper file has the `trusted.overlay.metacopy` xattr
/// and no data blocks (4 KiB at most, for xattrs), where the default mount copies every block. Such
/// an upper dir refuses to be diffed.
#[test]
fn overlay_metacopy_option_copies_up_metadata_only() {
    use std::os::unix::fs::MetadataExt;
    use strata::scratch::{FsKind, ScratchFs};
    use strata::snapshot::{DiffSource, SnapshotKey};
    let Some(()) = require_root("overlay metacopy") else { return };
    let fs = ScratchFs::new(FsKind::Ext4, 256 << 20).unwrap();
    let key = |s: &str| SnapshotKey::new(s).unwrap();
    let mut blocks = Vec::new();
    for (i, options) in [vec!["metacopy=on".to_owned()], vec![]].into_iter().enumerate() {
        let root = strata::root::Root::open(fs.path().join(format!("root{i}"))).unwrap();
        let snap = strata::drivers::open_with_options(&root, "overlay", &options).unwrap();
        let mnt = fs.path().join(format!("mnt{i}"));
        std::fs::create_dir(&mnt).unwrap();
        let m = snap.prepare(&key("base-build"), None).unwrap();
        let t = strata::mount::TempMount::new(&m, &mnt).unwrap();
        std::fs::write(mnt.join("f"), vec![7u8; 1 << 20]).unwrap();
        t.unmount().unwrap();
        snap.commit(&key("base"), &key("base-build")).unwrap();
        let m = snap.prepare(&key("c"), Some(&key("base"))).unwrap();
        assert_eq!(m[0].options.iter().any(|o| o == "metacopy=on"), !options.is_empty(), "{m:?}");
        let t = strata::mount::TempMount::new(&m, &mnt).unwrap();
        std::fs::set_permissions(mnt.join("f"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert_eq!(std::fs::read(mnt.join("f")).unwrap(), vec![7u8; 1 << 20], "data still reads through");
        t.unmount().unwrap();
        let upper = match snap.diff_source(&key("c")) {
            Ok(DiffSource::OverlayUpper(dir)) => dir,
            Ok(other) => panic!("unexpected diff source {other:?}"),
            Err(e) => {
                assert!(!options.is_empty(), "diff refused without metacopy: {e}");
                assert!(e.to_string().contains("metacopy"), "{e}");
                let id = snap.stat(&key("c")).unwrap().id;
                root.driver_dir("overlay").join("snapshots").join(id.to_string()).join("fs")
            }
        };
        let meta = std::fs::metadata(upper.join("f")).unwrap();
        let xattr = strata::sys::xattr::llist(&upper.join("f")).unwrap();
        let has_metacopy = xattr.iter().any(|x| x == "trusted.overlay.metacopy");
        assert_eq!(has_metacopy, !options.is_empty(), "xattrs {xattr:?}");
        blocks.push(meta.blocks());
    }
    // At most an external xattr block (ext4 keeps overlay's xattrs there
    // when they do not fit in the inode), never the file's 1 MiB.
    assert!(blocks[0] <= 8, "metacopy upper holds {} blocks of data", blocks[0]);
    assert!(blocks[1] >= 2048, "full copy_up holds {} blocks", blocks[1]);
    let root = strata::root::Root::open(fs.path().join("root-bad")).unwrap();
    assert!(strata::drivers::open_with_options(&root, "overlay", &["bogus=1".into()]).is_err());
    assert!(strata::drivers::open_with_options(&root, "copy", &["metacopy=on".into()]).is_err());
}

/// `strata bench containerd` at the tiny scale, end to end: containerd
/// with strata's services as proxy snapshotters pulls, runs and sizes
/// through each snapshotter; the report has every row and ratio, each
/// snapshotter's Usage counts at least the bytes written into a container,
/// and no process, mount, loop device, cgroup or directory is left.
#[test]
fn containerd_benchmark_runs_end_to_end_and_leaves_nothing_behind() {
    let Some(()) = require_root("containerd bench") else { return };
    let tools = ["containerd", "ctr", "containerd-shim-runc-v2", "runc", "docker-registry", "skopeo", "mkfs.xfs"];
    let missing: Vec<&str> = tools
        .into_iter()
        .filter(|t| !["/usr/bin", "/usr/sbin", "/bin", "/sbin"].iter().any(|d| Path::new(d).join(t).is_file()))
        .collect();
    if !missing.is_empty() {
        assert!(std::env::var_os("STRATA_TEST_STRICT").is_none(), "containerd bench: {missing:?} not installed");
        eprintln!("skipped: containerd bench needs {missing:?}");
        return;
    }
    let base = tempfile::Builder::new().prefix("strata-bench-cd-").tempdir_in("/var/tmp").unwrap();
    let scratch = base.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let out_dir = base.path().join("out");
    let child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["bench", "containerd", "--tiny", "--runs", "1", "--data"])
        .arg(base.path().join("data"))
        .arg("--scratch-dir")
        .arg(&scratch)
        .arg("-o")
        .arg(&out_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "strata bench containerd failed:\n{stdout}\n{stderr}");
    for row in [
        "== containerd ==",
        "Targets:",
        "ctr images pull --plain-http --snapshotter strata",
        "strata / overlayfs (time)",
        "strata / native (time)",
        "strata-pull / overlayfs (time)",
        "strata-btrfs / overlayfs (time)",
        "strata-copy / overlayfs (time)",
        "strata-overlay / overlayfs (time)",
    ] {
        assert!(stdout.contains(row), "no {row:?} in:\n{stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("results.json")).unwrap()).unwrap();
    let suite = &json["suites"][0];
    assert_eq!(suite["name"], "containerd");
    let cases = suite["cases"].as_array().unwrap();
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pull 5 layers, 5 MiB", "ctr run --rm /bin/true", "Usage of 3 containers"]);
    let tools_of = |c: &serde_json::Value| -> Vec<String> {
        c["measurements"].as_array().unwrap().iter().map(|m| m["tool"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(tools_of(&cases[0]), ["strata", "overlayfs", "native", "strata-pull"]);
    assert_eq!(tools_of(&cases[1]), ["strata", "overlayfs"]);
    assert_eq!(tools_of(&cases[2]), ["strata-btrfs", "strata-copy", "strata-overlay", "overlayfs", "ctr-one-key"]);
    for c in cases {
        for m in c["measurements"].as_array().unwrap() {
            assert_eq!(m["samples"].as_array().unwrap().len(), 1, "{}: {}", c["name"], m["tool"]);
        }
        assert!(!c["ratios"].as_array().unwrap().is_empty(), "{}: no ratio", c["name"]);
    }
    let facts = &cases[2]["facts"];
    let written: u64 = facts["written_bytes"].as_str().unwrap().parse().unwrap();
    for tool in ["strata-btrfs", "strata-copy", "strata-overlay", "overlayfs"] {
        let usage: u64 = facts[format!("usage bytes ({tool})")].as_str().unwrap().parse().unwrap();
        assert!(usage >= written, "{tool}: Usage says {usage} bytes, {written} were written");
    }

    let run_dir = format!("/tmp/strata-bcd-{pid}");
    assert!(!Path::new(&run_dir).exists(), "{run_dir} left behind");
    let mut stray = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&run_dir) {
            stray.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    assert!(stray.is_empty(), "processes left: {stray:?}");
    let ns = format!("strata-bench-{pid}");
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        assert!(!e.path().join(&ns).exists(), "cgroup {} left", e.path().join(&ns).display());
    }
    let mut left = leftovers(&scratch);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        left = leftovers(&scratch);
    }
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}
