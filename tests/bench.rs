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
    assert_eq!(names, ["hash", "unpack", "copy", "diff", "start", "build"]);
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
    for heading in
        ["== hash ==", "== unpack ==", "== copy ==", "== diff ==", "== start ==", "== build ==", "strata / tar", "strata / crun", "strata / buildah"]
    {
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
