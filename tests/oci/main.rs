//! OCI conformance, checked against runc: every case runs the same bundle
//! through the runtime under test (`strata-runc`, or
//! `STRATA_TEST_RUNTIME`: see [`runner`]) and through runc 1.1.5, the
//! reference, and compares what a probe inside the container observes
//! ([`probe`]), so the expectations are themselves checked against the
//! reference, as youki's suite is. Where a fact can only be checked on
//! one side, a case also asserts the expected value.
//!
//! Tier: root (namespaces, mounts, cgroups). Without root, or without
//! runc, a case says why and returns. Each runtime gets its own `--root`,
//! its own copy of the bundle and unique container IDs, so cases run in
//! parallel; containers, state and bundle directories and host mounts are
//! released by guards even when a case fails.

mod bundle;
mod cases;
mod probe;
mod runner;

use bundle::{Bundle, PROBE_PATH};
use probe::{Context, Observation};
use runner::{Runtime, StateRoot};
use std::path::Path;
use strata::runtime::spec::Spec;

/// The two runtimes, or `None` (with the reason printed) when this host
/// cannot run the suite.
pub fn runtimes(case: &str) -> Option<(Runtime, Runtime)> {
    if !rustix::process::geteuid().is_root() {
        if std::env::var_os("STRATA_TEST_STRICT").is_some() {
            panic!("{case}: needs root, and STRATA_TEST_STRICT forbids skipping");
        }
        eprintln!("skipped: {case} needs root (namespaces, mounts, cgroups)");
        return None;
    }
    let Some(reference) = Runtime::reference() else {
        if std::env::var_os("STRATA_TEST_STRICT").is_some() {
            panic!("{case}: needs runc (the reference) at {}", runner::RUNC);
        }
        eprintln!("skipped: {case} needs runc, the reference, at {}", runner::RUNC);
        return None;
    };
    Some((reference, Runtime::under_test()))
}

/// The spec every case starts from: `runc spec`'s, without a terminal,
/// running the probe. `ociVersion` is runc's own (`1.0.2-dev`): crun
/// 1.8.1 refuses `1.2.1` ("unknown version specified").
pub fn base_spec() -> Spec {
    let mut spec = Spec::default_for_run();
    spec.oci_version = "1.0.2-dev".into();
    let process = spec.process.as_mut().expect("default process");
    process.terminal = false;
    process.args = vec!["sh".into(), PROBE_PATH.into()];
    spec
}

type Edit = Box<dyn Fn(&mut Spec, &Bundle)>;
type Prepare = Box<dyn Fn(&mut Bundle)>;

/// One bundle to run through both runtimes.
pub struct Case {
    pub name: &'static str,
    edit: Edit,
    prepare: Prepare,
    extra: String,
    /// Namespace files (`net:[4026532…]`) the probe reports as `joined`.
    join_ns: Vec<String>,
    sysctls: Vec<&'static str>,
    /// The probe is expected not to reach its end (an `exit` in `extra`).
    unfinished: bool,
    /// Line prefixes left out of the comparison because runc 1.1.5 does
    /// not implement the field they show (the case asserts them on the
    /// tested side instead).
    reference_lacks: Vec<&'static str>,
}

impl Case {
    pub fn new(name: &'static str) -> Case {
        Case {
            name,
            edit: Box::new(|_, _| {}),
            prepare: Box::new(|_| {}),
            extra: String::new(),
            join_ns: Vec::new(),
            sysctls: vec!["net.ipv4.ip_forward", "kernel.domainname"],
            unfinished: false,
            reference_lacks: Vec::new(),
        }
    }

    /// Changes the spec (given the bundle, for paths into it).
    pub fn edit(mut self, edit: impl Fn(&mut Spec, &Bundle) + 'static) -> Case {
        self.edit = Box::new(edit);
        self
    }

    /// Adds files (or host mounts, as guards) to the bundle.
    pub fn prepare(mut self, prepare: impl Fn(&mut Bundle) + 'static) -> Case {
        self.prepare = Box::new(prepare);
        self
    }

    /// Shell commands the probe runs last, under `== extra`.
    pub fn extra(mut self, script: &str) -> Case {
        self.extra = script.to_string();
        self
    }

    /// The probe ends early (its `extra` exits).
    pub fn unfinished(mut self) -> Case {
        self.unfinished = true;
        self
    }

    /// Lines starting with `prefix` are not compared: runc 1.1.5 does not
    /// implement what they show (the case asserts them one-sided).
    pub fn reference_lacks(mut self, prefix: &'static str) -> Case {
        self.reference_lacks.push(prefix);
        self
    }

    pub fn join_ns(mut self, ns: String) -> Case {
        self.join_ns.push(ns);
        self
    }

    pub fn sysctls(mut self, keys: &[&'static str]) -> Case {
        self.sysctls.extend_from_slice(keys);
        self
    }

    /// A bundle for this case and its spec (probe env filled in).
    pub fn bundle(&self) -> (Bundle, Spec) {
        let bundle = Bundle::new(&probe::script(&self.extra), &*self.prepare);
        let mut spec = base_spec();
        (self.edit)(&mut spec, &bundle);
        let masked = spec.linux.as_ref().map(|l| l.masked_paths.join(" ")).unwrap_or_default();
        if let Some(process) = spec.process.as_mut() {
            process.env.push(format!("PROBE_HOSTNS={}", host_namespaces().join(" ")));
            process.env.push(format!("PROBE_JOINNS={}", self.join_ns.join(" ")));
            process.env.push(format!("PROBE_MASKED={masked}"));
            process.env.push(format!("PROBE_SYSCTL={}", self.sysctls.join(" ")));
        }
        bundle.write_spec(&spec);
        (bundle, spec)
    }
}

/// `readlink /proc/self/ns/*` of the test process: the host's namespaces.
pub fn host_namespaces() -> Vec<String> {
    ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"]
        .iter()
        .filter_map(|n| std::fs::read_link(format!("/proc/self/ns/{n}")).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

/// The result of `run`ning a case's bundle with one runtime.
#[derive(Debug)]
pub struct Run {
    pub runtime: String,
    pub code: i32,
    pub stderr: String,
    pub observed: Observation,
}

/// Runs the case with `rt` (`run --bundle B ID`, foreground) and reads
/// the probe's output.
pub fn run_case(rt: &Runtime, case: &Case) -> Run {
    let root = StateRoot::new(rt);
    let (bundle, spec) = case.bundle();
    let id = root.new_id(case.name);
    let out = root.cmd_in(Some(bundle.path()), &["run", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let masked = spec.linux.as_ref().map(|l| l.masked_paths.clone()).unwrap_or_default();
    let cx = Context { id: &id, bundle: bundle.path().to_str().unwrap(), masked: &masked };
    let observed = Observation::parse(&out.stdout, &cx);
    let _ = root.cmd(&["delete", "--force", &id]);
    assert_eq!(root.leftovers(), Vec::<String>::new(), "{}: state left in --root after delete", rt.name);
    Run { runtime: rt.name.clone(), code: out.code, stderr: out.stderr, observed }
}

/// Both runs of a case.
#[derive(Debug)]
pub struct Compared {
    /// runc's.
    pub want: Run,
    /// The runtime under test's.
    pub got: Run,
}

/// Runs `case` through both runtimes and panics with a diff unless the
/// probe saw the same; returns both runs for one-sided checks.
pub fn compare(case: Case) -> Option<Compared> {
    let (reference, tested) = runtimes(case.name)?;
    let want = run_case(&reference, &case);
    let got = run_case(&tested, &case);
    Some(assert_same(&case, want, got))
}

/// Panics with a diff unless the two runs of `case` observed the same.
pub fn assert_same(case: &Case, mut want: Run, mut got: Run) -> Compared {
    if got.runtime == "crun" {
        want.observed = want.observed.without(probe::CRUN_ALLOWANCES);
        got.observed = got.observed.without(probe::CRUN_ALLOWANCES);
    }
    assert!(
        case.unfinished || want.observed.lines.last().map(String::as_str) == Some("end"),
        "{}: the probe did not finish under runc (exit {}): {}\n{:#?}",
        case.name,
        want.code,
        want.stderr,
        want.observed.lines
    );
    eprintln!(
        "{} observed under {} (exit {}):\n{}",
        case.name,
        want.runtime,
        want.code,
        want.observed.lines.join("\n")
    );
    let lacks: Vec<(&str, &str)> = case.reference_lacks.iter().map(|p| (*p, "")).collect();
    let (a, b) = (want.observed.without(&lacks), got.observed.without(&lacks));
    if a != b || want.code != got.code {
        panic!(
            "{}: {} and {} disagree (exit {} vs {})\n{} stderr: {}\n{} stderr: {}\n--- {} +++ {}\n{}",
            case.name,
            want.runtime,
            got.runtime,
            want.code,
            got.code,
            want.runtime,
            want.stderr.trim(),
            got.runtime,
            got.stderr.trim(),
            want.runtime,
            got.runtime,
            probe::diff(&a.lines, &b.lines)
        );
    }
    Compared { want, got }
}

/// Writes `contents` at `path` under the bundle's root filesystem.
pub fn put(bundle: &Bundle, path: &str, contents: &str) {
    let full = bundle.rootfs().join(path.trim_start_matches('/'));
    std::fs::create_dir_all(full.parent().unwrap()).expect("mkdir in rootfs");
    std::fs::write(full, contents).expect("write in rootfs");
}

/// A directory `name` in the bundle (outside the rootfs) holding `file`.
pub fn host_dir(bundle: &Path, name: &str, file: &str) -> String {
    let dir = bundle.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir host dir");
    std::fs::write(dir.join("file"), file).expect("write host file");
    dir.to_str().unwrap().to_string()
}
