//! The pull benchmark end to end at the tiny scale: both tools measured, a
//! ratio, and no mount, loop device or process left behind. (No time is
//! asserted: speed is measured by `strata bench pull`.)

use crate::*;
use strata::bench::{self, Bench, Options, Scale};

#[test]
fn pull_benchmark_runs_end_to_end() {
    if !can_run("pull benchmark") || require_tool("skopeo", "pull benchmark").is_none() {
        return;
    }
    let base = tempfile::Builder::new().prefix("strata-pull-bench-").tempdir_in("/var/tmp").unwrap();
    let mut opts = Options::new(Scale::Tiny);
    opts.runs = 1;
    opts.quiet = true;
    opts.data_dir = base.path().join("data");
    opts.scratch_dir = base.path().to_owned();
    let report = bench::run(&opts, &[Bench::Pull]);
    assert!(report.failures.is_empty(), "failed: {:?}", report.failures);
    let case = &report.suites[0].cases[0];
    for m in &case.measurements {
        assert!(m.summary.is_some(), "{} measured", m.tool);
    }
    assert_eq!(case.measurements.len(), 2);
    assert_eq!(case.ratios.len(), 1, "strata against its peer");
    let left: Vec<_> = std::fs::read_dir(base.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "scratch files left: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&base.path().display().to_string()), "mounts left");
}
