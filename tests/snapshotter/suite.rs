//! containerd's snapshotter conformance suite (`SnapshotterSuite` from
//! Debian's golang-github-containerd-containerd-dev, 21 checks) through
//! containerd's proxy client against `strata snapshotter serve`, per
//! driver and backing filesystem. The Go side is
//! `tools/snapshotter-suite`, built here in GOPATH mode from Debian's
//! packages (no modules, nothing vendored).
//!
//! The Go test binary is this test's child and every server the Go test
//! starts dies with it (`PR_SET_PDEATHSIG`); [`Run`]'s drop kills it, then
//! [`Scratch`] unmounts what a failed check left and releases the loop
//! device.

use super::{require, Scratch};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;
use strata::scratch::{FsKind, ScratchFs};

/// The suite's checks in containerd 1.6, with its own spellings.
const CHECKS: &[&str] = &[
    "Basic",
    "StatActive",
    "StatComitted",
    "TransitivityTest",
    "PreareViewFailingtest",
    "Update",
    "Remove",
    "Walk",
    "LayerFileupdate",
    "RemoveDirectoryInLowerLayer",
    "Chown",
    "DirectoryPermissionOnCommit",
    "RemoveIntermediateSnapshot",
    "DeletedFilesInChildSnapshot",
    "MoveFileFromLowerLayer",
    "Rename",
    "ViewReadonly",
    "StatInWalk",
    "CloseTwice",
    "RootPermission",
    "128LayersMount",
];

/// 1.6's `checkRename` always calls `t.Skip` first.
const SKIPS_ITSELF: &[&str] = &["Rename"];

const GOPATH: &str = "/usr/share/gocode";
const TESTSUITE: &str = "/usr/share/gocode/src/github.com/containerd/containerd/snapshots/testsuite";

/// Builds the Go test binary once per test process; `Err` says why not.
fn suite_binary() -> &'static Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let bin = out_dir.join("snapshotter-suite.test");
        let start = Instant::now();
        let out = Command::new("go")
            .args(["test", "-c", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/snapshotter-suite"))
            .env("GO111MODULE", "off")
            .env("GOPATH", GOPATH)
            .env("GOCACHE", out_dir.join("go-build"))
            .env("GOFLAGS", "")
            .output()
            .map_err(|e| format!("running go: {e}"))?;
        if !out.status.success() {
            return Err(format!("go test -c failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        eprintln!("built the containerd snapshotter suite in {:.1?}", start.elapsed());
        Ok(bin)
    })
}

/// The Go test process; killed (it is our own child, by its pid) and
/// reaped on drop.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How each check ended, with the reason of each skip.
#[derive(Debug, Default)]
struct Outcome {
    status: BTreeMap<String, &'static str>,
    skip_reasons: BTreeMap<String, String>,
}

/// Reads `go test -v` output: `--- PASS: Test/Check (…)` lines, and each
/// check's log lines (`file.go:N: text`), which go 1.19 prints under an
/// `=== CONT Test/Check` header for parallel checks, or indented below
/// the check's `---` line otherwise. A skipped check's log is its reason.
fn parse(output: &str) -> Outcome {
    let mut o = Outcome::default();
    let mut logs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let check_of = |name: &str| name.split_once('/').map(|(_, c)| c.to_owned());
    for line in output.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("=== CONT ").or_else(|| trimmed.strip_prefix("=== RUN ")) {
            current = check_of(name.trim());
            continue;
        }
        let status = [("--- PASS: ", "pass"), ("--- FAIL: ", "fail"), ("--- SKIP: ", "skip")]
            .into_iter()
            .find_map(|(p, s)| trimmed.strip_prefix(p).map(|rest| (rest, s)));
        if let Some((rest, s)) = status {
            current = check_of(rest.split_whitespace().next().unwrap_or_default());
            if let Some(check) = &current {
                o.status.insert(check.clone(), s);
            }
        } else if line.starts_with("    ") && !trimmed.is_empty() {
            if let Some(check) = &current {
                logs.entry(check.clone()).or_default().push(trimmed.to_owned());
            }
        } else {
            current = None;
        }
    }
    for (check, s) in &o.status {
        if *s == "skip" {
            if let Some(lines) = logs.get(check) {
                o.skip_reasons.insert(check.clone(), lines.join(" "));
            }
        }
    }
    o
}

fn run(driver: &str, kind: FsKind) {
    let what = format!("containerd's snapshotter suite, {driver} on {kind:?}");
    if !require(rustix::process::geteuid().is_root(), &what, "needs root (loop devices, mounts)")
        || !require(kind.mkfs_available(), &what, "needs its mkfs tool (tools/deps installs it)")
        || !require(Path::new(TESTSUITE).is_dir(), &what, "needs golang-github-containerd-containerd-dev (tools/deps)")
    {
        return;
    }
    let bin = match suite_binary() {
        Ok(bin) => bin,
        Err(e) => {
            // go is missing: a skip; go present but failing: a failure.
            let has_go = Command::new("go").arg("version").output().is_ok();
            assert!(!has_go, "{what}: {e}");
            require(false, &what, "needs golang-go (tools/deps)");
            return;
        }
    };
    let scratch = Scratch { fs: Some(ScratchFs::new(kind, 4 << 30).expect("scratch filesystem")) };
    let log = scratch.path().join("suite.log");
    let start = Instant::now();
    let mut child = Run(Command::new(bin)
        .args(["-test.v", "-test.timeout", "15m"])
        .env("STRATA_BIN", env!("CARGO_BIN_EXE_strata"))
        .env("STRATA_DRIVER", driver)
        .env("TMPDIR", scratch.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("log file"))
        .stderr(Stdio::from(std::fs::File::options().append(true).open(&log).expect("log file")))
        .spawn()
        .expect("starting the containerd suite"));
    let status = child.0.wait().expect("waiting for the suite");
    let elapsed = start.elapsed();
    let output = std::fs::read_to_string(&log).expect("suite log");
    let o = parse(&output);
    let count = |s: &str| o.status.values().filter(|v| **v == s).count();
    eprintln!(
        "{driver} on {kind:?}: {} passed, {} failed, {} skipped of {} checks in {elapsed:.1?}",
        count("pass"),
        count("fail"),
        count("skip"),
        CHECKS.len()
    );
    for (check, reason) in &o.skip_reasons {
        eprintln!("{driver} on {kind:?}: skipped {check}: {reason}");
    }
    let failed: Vec<_> = o.status.iter().filter(|(_, s)| **s == "fail").map(|(c, _)| c.as_str()).collect();
    assert!(status.success() && failed.is_empty(), "{what}: failed {failed:?} ({status}); output:\n{output}");
    for check in CHECKS {
        let s = o.status.get(*check).copied();
        match s {
            Some("pass") => {}
            Some("skip") if SKIPS_ITSELF.contains(check) => {
                assert!(o.skip_reasons.contains_key(*check), "{what}: {check} skipped without a reason:\n{output}")
            }
            other => panic!("{what}: check {check} ended {other:?}, expected a pass; output:\n{output}"),
        }
    }
    assert_eq!(o.status.len(), CHECKS.len(), "{what}: unexpected checks {:?}", o.status.keys());
}

#[test]
fn parse_reads_statuses_and_skip_reasons() {
    // go 1.19's -v output for parallel checks: logs under === CONT.
    let o = parse(
        "=== RUN   T/Basic\n=== PAUSE T/Basic\n=== CONT  T/Rename\n    issues.go:118: rename test still fails\n\
         === CONT  T/Walk\n    x.go:1: boom\n--- FAIL: T (2.00s)\n    --- PASS: T/Basic (0.10s)\n\
         \x20   --- SKIP: T/Rename (0.00s)\n    --- FAIL: T/Walk (1.00s)\nFAIL\n",
    );
    assert_eq!(o.status.get("Basic"), Some(&"pass"));
    assert_eq!(o.status.get("Walk"), Some(&"fail"));
    assert_eq!(o.status.get("Rename"), Some(&"skip"));
    assert_eq!(o.status.len(), 3);
    assert_eq!(o.skip_reasons.get("Rename").map(String::as_str), Some("issues.go:118: rename test still fails"));
    assert_eq!(o.skip_reasons.len(), 1);
    // Sequential checks: the log is indented below the --- line.
    let o = parse("    --- SKIP: T/Rename (0.00s)\n        issues.go:118: kernels\n    --- PASS: T/Basic (0.1s)\n");
    assert_eq!(o.skip_reasons.get("Rename").map(String::as_str), Some("issues.go:118: kernels"));
    assert_eq!(o.status.get("Basic"), Some(&"pass"));
}

#[test]
fn containerd_suite_overlay_on_ext4() {
    run("overlay", FsKind::Ext4);
}

#[test]
fn containerd_suite_overlay_on_xfs() {
    run("overlay", FsKind::Xfs);
}

#[test]
fn containerd_suite_copy_on_xfs() {
    run("copy", FsKind::Xfs);
}

#[test]
fn containerd_suite_btrfs_on_btrfs() {
    run("btrfs", FsKind::Btrfs);
}
