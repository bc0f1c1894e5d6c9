//! Bad bundles and misuse: each must fail with runc's exit status (1,
//! with a message), and leave nothing behind: no state in `--root`, no
//! host mount naming the bundle or the container, no cgroup named after
//! it. A mount target that escapes the root through a symlink must land
//! inside the root and leave the host path untouched.

use crate::bundle::{edit_json, Bundle};
use crate::runner::{host_cgroups_named, host_mounts_naming, Out, Runtime, StateRoot};
use crate::{assert_same, base_spec, probe, put, run_case, runtimes, Case};
use std::path::Path;
use strata::runtime::spec::{Mount, Spec};

/// What a failed command left: its exit code, whether it said why, and
/// what is left on the host.
fn aftermath(what: &str, root: &StateRoot, bundle: &Path, id: &str, out: &Out) -> Vec<String> {
    vec![
        format!("{what} exit={}", out.code),
        format!("{what} says why={}", !(out.stderr.trim().is_empty() && out.stdout.trim().is_empty())),
        format!("left in --root {:?}", root.leftovers()),
        format!("host mounts {:?}", [host_mounts_naming(id), host_mounts_naming(bundle.to_str().unwrap())].concat()),
        format!("host cgroups {:?}", host_cgroups_named(id)),
    ]
}

/// Runs `config` (a spec, or raw text) with `run` through one runtime.
fn run_bad(rt: &Runtime, name: &str, config: &dyn Fn(&Bundle) -> String) -> Vec<String> {
    let root = StateRoot::new(rt);
    let bundle = Bundle::new(&probe::script(""), &|_| {});
    bundle.write_config(&config(&bundle));
    let id = root.new_id(name);
    let out = root.cmd_in(Some(bundle.path()), &["run", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let _ = root.cmd(&["delete", "--force", &id]);
    aftermath("run", &root, bundle.path(), &id, &out)
}

fn bad_bundle(name: &str, config: &dyn Fn(&Bundle) -> String) {
    let Some((reference, tested)) = runtimes(name) else { return };
    let want = run_bad(&reference, name, config);
    let got = run_bad(&tested, name, config);
    assert_eq!(want, got, "{name}: {} vs {}", reference.name, tested.name);
    assert_eq!(want[0], "run exit=1", "{want:?}");
    assert_eq!(&want[1..], ["run says why=true", "left in --root []", "host mounts []", "host cgroups []"]);
}

#[test]
fn missing_rootfs() {
    bad_bundle("norootfs", &|_| {
        let mut spec = base_spec();
        spec.root.as_mut().unwrap().path = "no-such-rootfs".into();
        spec.to_json()
    });
}

#[test]
fn invalid_json() {
    bad_bundle("badjson", &|_| "{\"ociVersion\": \"1.0.2-dev\", \"process\": {".into());
}

#[test]
fn unknown_namespace_type() {
    bad_bundle("badns", &|_| {
        edit_json(&base_spec(), |v| v["linux"]["namespaces"][0]["type"] = "no-such-namespace".into())
    });
}

/// Commands run on a created container (state root, ID, bundle), adding
/// what they did to the transcript.
type Steps<'a> = &'a dyn Fn(&StateRoot, &str, &Path, &mut Vec<String>);

/// A transcript of misuse on one container whose process sleeps.
fn misuse(rt: &Runtime, name: &str, steps: Steps) -> Vec<String> {
    let root = StateRoot::new(rt);
    let bundle = Bundle::new(&probe::script(""), &|_| {});
    let mut spec: Spec = base_spec();
    spec.process.as_mut().unwrap().args = vec!["sleep".into(), "1000".into()];
    bundle.write_spec(&spec);
    let id = root.new_id(name);
    let (container, out) = root.create(bundle.path(), &id);
    out.ok("create");
    let mut t = Vec::new();
    steps(&root, &id, bundle.path(), &mut t);
    t.push(format!("status {}", root.state(&id)["status"].as_str().unwrap_or("?")));
    let out = root.cmd(&["delete", "--force", &id]);
    drop(container);
    t.extend(aftermath("delete --force", &root, bundle.path(), &id, &out));
    t
}

fn compare_misuse(name: &str, steps: Steps) -> Option<Vec<String>> {
    let (reference, tested) = runtimes(name)?;
    let want = misuse(&reference, name, steps);
    let got = misuse(&tested, name, steps);
    assert_eq!(want, got, "{name}: {} vs {}", reference.name, tested.name);
    let n = want.len();
    assert_eq!(
        want[n - 5..],
        [
            "delete --force exit=0",
            "delete --force says why=false",
            "left in --root []",
            "host mounts []",
            "host cgroups []"
        ]
    );
    Some(want)
}

#[test]
fn duplicate_container_id() {
    let Some(t) = compare_misuse("dupid", &|root, id, bundle, t| {
        let (again, out) = root.create(bundle, id);
        std::mem::forget(again); // the first container's guard deletes it
        t.push(format!("second create exit={} says why={}", out.code, !out.stderr.trim().is_empty()));
    }) else {
        return;
    };
    assert_eq!(t[0], "second create exit=1 says why=true");
    assert_eq!(t[1], "status created", "the first container is untouched");
}

#[test]
fn start_of_running_container() {
    let Some(t) = compare_misuse("startrunning", &|root, id, _, t| {
        t.push(format!("start exit={}", root.cmd(&["start", id]).code));
        let out = root.cmd(&["start", id]);
        t.push(format!("second start exit={} says why={}", out.code, !out.stderr.trim().is_empty()));
    }) else {
        return;
    };
    assert_eq!(t[..3], ["start exit=0", "second start exit=1 says why=true", "status running"]);
}

#[test]
fn delete_of_running_container_without_force() {
    let Some(t) = compare_misuse("delrunning", &|root, id, _, t| {
        t.push(format!("start exit={}", root.cmd(&["start", id]).code));
        let out = root.cmd(&["delete", id]);
        t.push(format!("delete exit={} says why={}", out.code, !out.stderr.trim().is_empty()));
    }) else {
        return;
    };
    assert_eq!(t[..3], ["start exit=0", "delete exit=1 says why=true", "status running"]);
}

/// A host directory the symlinks in the root point at, with one file.
struct HostTarget {
    dir: tempfile::TempDir,
}

impl HostTarget {
    fn new() -> HostTarget {
        let dir = tempfile::Builder::new().prefix("strata-oci-host.").tempdir().unwrap();
        std::fs::write(dir.path().join("marker"), "host\n").unwrap();
        HostTarget { dir }
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn mount_target_escaping_by_symlink_stays_inside() {
    let target = HostTarget::new();
    let host = target.dir.path().to_str().unwrap().to_string();
    let (abs, rel) = (host.clone(), format!("../../../../../../../..{host}"));
    let case = Case::new("escape")
        .prepare(move |bundle| {
            std::os::unix::fs::symlink(&abs, bundle.rootfs().join("escape-abs")).unwrap();
            std::os::unix::fs::symlink(&rel, bundle.rootfs().join("escape-rel")).unwrap();
            put(bundle, "/etc/probe-note", "inside\n");
        })
        .edit(|spec, _| {
            let tmpfs = |dst: &str| Mount {
                destination: dst.into(),
                kind: "tmpfs".into(),
                source: "tmpfs".into(),
                options: vec!["size=64k".into()],
                ..Mount::default()
            };
            spec.mounts.extend([tmpfs("/escape-abs"), tmpfs("/escape-rel/sub")]);
        })
        .extra("ls -A /escape-abs/; ls -A /escape-rel/sub | wc -l; touch /escape-abs/written");
    let Some((reference, tested)) = runtimes("escape") else { return };
    let untouched = |rt: &str| {
        assert_eq!(target.entries(), ["marker"], "{rt} wrote the host directory through the symlink");
        let mounts = host_mounts_naming(&host);
        assert!(mounts.is_empty(), "{rt} left a mount on the host: {mounts:?}");
    };
    let want = run_case(&reference, &case);
    untouched(&reference.name);
    let inside = format!("mounts: {host} tmpfs");
    assert!(
        want.observed.lines.iter().any(|l| l.starts_with(&inside)),
        "runc mounts inside the root, at the resolved path"
    );
    // Both symlinks resolve to the same path inside the root: the second
    // tmpfs is mounted on `sub` of the first.
    assert_eq!(want.observed.section("extra")[..2], ["sub", "0"], "{want:?}");
    let got = run_case(&tested, &case);
    untouched(&tested.name);
    if tested.name == "crun" && got.code == 1 {
        // crun refuses a mount target whose symlink dangles inside the
        // root ("openat2 `escape-abs`: No such file or directory"); runc
        // creates the resolved path inside the root and mounts there.
        eprintln!("crun refused the bundle: {}", got.stderr.trim());
        return;
    }
    assert_same(&case, want, got);
}
