//! What the host keeps from the container, and the command line's own
//! documents: no descriptor of the caller crosses into the container but
//! `--preserve-fds` (the CVE-2024-21626 class), the runtime's binary is
//! on a read-only mount while it runs inside a container's namespaces
//! (CVE-2019-5736), and `features`, `spec`, the refusals and the JSON log
//! are what runc's callers parse.

use crate::bundle::Bundle;
use crate::runner::{Runtime, StateRoot};
use crate::{base_spec, probe, runtimes};
use std::process::Command;
use strata::runtime::spec::{Features, Spec};

/// `ls /proc/self/fd` in a container started by a shell that holds `fds`
/// open, with `--preserve-fds n`: the descriptor list the process sees.
fn fds_seen(rt: &Runtime, name: &str, open: &str, preserve: u32) -> String {
    let root = StateRoot::new(rt);
    let bundle = Bundle::new(&probe::script(""), &|_| {});
    let mut spec = base_spec();
    spec.process.as_mut().unwrap().args = vec!["ls".into(), "/proc/self/fd".into()];
    bundle.write_spec(&spec);
    let id = root.new_id(name);
    let runtime = rt.command_line();
    let script = format!(
        "{open}\nexec {runtime} --root '{}' run --preserve-fds {preserve} --bundle '{}' {id}",
        root.path().display(),
        bundle.path().display()
    );
    let out = Command::new("sh").arg("-c").arg(&script).current_dir(bundle.path()).output().unwrap();
    let _ = root.cmd(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}: {}", rt.name, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn no_descriptor_of_the_caller_reaches_the_container() {
    let Some((reference, tested)) = runtimes("fds") else { return };
    for (open, preserve) in [("exec 7</etc/hostname", 0), ("exec 3</etc/hostname 7</etc/hostname", 1)] {
        let want = fds_seen(&reference, "fds", open, preserve);
        let got = fds_seen(&tested, "fds", open, preserve);
        assert_eq!(want, got, "{open} --preserve-fds {preserve}: {} vs {}", reference.name, tested.name);
        // ls's own directory descriptor is the last one.
        let expected = if preserve == 0 { "0 1 2 3" } else { "0 1 2 3 4" };
        assert_eq!(got, expected, "{open} --preserve-fds {preserve}");
    }
}

#[test]
fn the_runtime_binary_is_read_only_from_inside() {
    let tested = Runtime::under_test();
    if tested.name != "strata" {
        eprintln!("skipped: the binary's protection is strata-runc's own");
        return;
    }
    let root = StateRoot::new(&tested);
    let bundle = Bundle::new(&probe::script(""), &|_| {});
    bundle.write_spec(&base_spec());
    let id = root.new_id("exe");
    let (_guard, out) = root.create(bundle.path(), &id);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pid = root.state(&id)["pid"].as_i64().unwrap();
    // The init waits on its exec fifo: its exe is still strata-runc.
    let exe = format!("/proc/{pid}/exe");
    let target = std::fs::read_link(&exe).unwrap();
    assert_ne!(target, std::path::Path::new(env!("CARGO_BIN_EXE_strata-runc")), "the host's binary is the init's exe");
    let st = nix::sys::statvfs::statvfs(exe.as_str()).unwrap();
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY), "{exe} is on a writable mount");
    assert!(std::fs::OpenOptions::new().write(true).open(&exe).is_err(), "{exe} opened for writing");
}

#[test]
fn features_spec_and_refusals_speak_runcs_language() {
    let tested = Runtime::under_test();
    if tested.name != "strata" {
        eprintln!("skipped: checks strata-runc's own documents");
        return;
    }
    let root = StateRoot::new(&tested);
    let features = Features::parse(root.cmd(&["features"]).ok("features").stdout.as_bytes()).unwrap();
    let linux = features.linux.unwrap();
    assert_eq!(linux.seccomp.unwrap().enabled, Some(true));
    assert!(linux.namespaces.unwrap().contains(&"user".to_owned()));
    assert!(features.hooks.unwrap().contains(&"createContainer".to_owned()));

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    root.cmd(&["spec", "--bundle", d]).ok("spec");
    let written = Spec::parse(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(written, Spec::default_for_run());
    let again = root.cmd(&["spec", "--bundle", d]);
    assert_eq!(again.code, 1, "spec over an existing config.json");

    let missing = root.cmd(&["state", "no-such-container"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("does not exist"), "{}", missing.stderr);
    let kill = root.cmd(&["kill", "no-such-container", "KILL"]);
    assert!(kill.stderr.contains("does not exist"), "{}", kill.stderr);
    assert_eq!(root.cmd(&["delete", "--force", "no-such-container"]).code, 0, "delete --force of nothing");

    let systemd = root.cmd(&["--systemd-cgroup", "state", "x"]);
    assert_eq!(systemd.code, 1);
    assert!(systemd.stderr.contains("--systemd-cgroup is not supported"), "{}", systemd.stderr);

    // The shim's log: logrus JSON lines, the last error naming the failure.
    let log = dir.path().join("log.json");
    let l = log.to_str().unwrap();
    assert_eq!(root.cmd(&["--log", l, "--log-format", "json", "start", "no-such-container"]).code, 1);
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("does not exist"), "{last}");
    assert!(last["time"].is_string());
}
