//! Round trips (runc's default spec, a spec using every field), bad
//! inputs with their exact error text, and unknown fields kept.

use super::*;
use serde_json::{json, Value};
use std::process::Command;

/// `runc spec` of Debian bookworm's runc 1.1.5, on a host without pure
/// cgroup v2.
const RUNC_SPEC: &str = include_str!("testdata/runc-1.1.5-spec.json");
/// A spec that sets every field these types know.
const FULL_SPEC: &str = include_str!("testdata/full.json");

fn value(json: &str) -> Value {
    serde_json::from_str(json).expect("test JSON parses")
}

/// The JSON paths at which `a` and `b` differ.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let (l, r) = (x.get(key).unwrap_or(&Value::Null), y.get(key).unwrap_or(&Value::Null));
                diff(&format!("{path}.{key}"), l, r, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), l, r, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} != {b}")),
        _ => {}
    }
}

fn assert_same(ours: &Value, theirs: &Value) {
    let mut out = Vec::new();
    diff("", ours, theirs, &mut out);
    assert!(out.is_empty(), "differences:\n{}", out.join("\n"));
}

fn parse_err(json: &str) -> String {
    Spec::parse(json.as_bytes()).expect_err("parse must fail").to_string()
}

fn invalid(json: &str) -> String {
    Spec::parse(json.as_bytes()).expect("parses").validate().expect_err("validate must fail").to_string()
}

/// A minimal valid spec with `linux` replaced by `linux`.
fn with_linux(linux: Value) -> String {
    json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "linux": linux}).to_string()
}

fn with_process(process: Value) -> String {
    json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": process}).to_string()
}

#[test]
fn runc_default_spec_round_trips() {
    let spec = Spec::parse(RUNC_SPEC.as_bytes()).unwrap();
    spec.validate().unwrap();
    assert_same(&serde_json::to_value(&spec).unwrap(), &value(RUNC_SPEC));
    // Same layout as runc's (tabs, field order), byte for byte.
    assert_eq!(spec.to_json(), RUNC_SPEC);
}

#[test]
fn default_for_run_is_runc_spec_but_version() {
    let ours = Spec::default_for_run();
    ours.validate().unwrap();
    let mut theirs = Spec::parse(RUNC_SPEC.as_bytes()).unwrap();
    assert_eq!(theirs.oci_version, "1.0.2-dev");
    theirs.oci_version = VERSION.to_string();
    assert_same(&serde_json::to_value(&ours).unwrap(), &serde_json::to_value(&theirs).unwrap());
    assert_eq!(ours, theirs);
}

/// Whether `runc` is here; under `STRATA_TEST_STRICT` its absence fails
/// the test (as `tests/images/common.rs` does for tools).
fn have_runc(what: &str) -> bool {
    let found = Command::new("sh").args(["-c", "command -v runc"]).output().map(|o| o.status.success());
    if found.unwrap_or(false) {
        return true;
    }
    if std::env::var_os("STRATA_TEST_STRICT").is_some() {
        panic!("{what}: needs runc (tools/deps installs it), and STRATA_TEST_STRICT forbids skipping");
    }
    eprintln!("skipped: {what} needs runc (tools/deps installs it)");
    false
}

#[test]
fn default_for_run_matches_installed_runc() {
    if !have_runc("default_for_run_matches_installed_runc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("runc").arg("spec").current_dir(dir.path()).status().unwrap();
    assert!(status.success(), "runc spec: {status}");
    let written = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    let theirs = Spec::load(dir.path()).unwrap();
    theirs.validate().unwrap();
    let mut expected = value(&written);
    expected["ociVersion"] = json!(VERSION);
    let mut ours = Spec::default_for_run();
    // runc adds a cgroup namespace on a pure cgroup v2 host.
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let linux = ours.linux.as_mut().unwrap();
        linux.namespaces.push(Namespace { kind: NamespaceType::Cgroup, path: String::new() });
    }
    assert_same(&serde_json::to_value(&ours).unwrap(), &expected);
}

#[test]
fn full_spec_round_trips() {
    let spec = Spec::parse(FULL_SPEC.as_bytes()).unwrap();
    spec.validate().unwrap();
    assert_same(&serde_json::to_value(&spec).unwrap(), &value(FULL_SPEC));
    assert_eq!(Spec::parse(spec.to_json().as_bytes()).unwrap(), spec);
    assert!(spec.unsupported_fields().is_empty());

    let process = spec.process.as_ref().unwrap();
    assert_eq!(process.user.umask, Some(0o22));
    assert_eq!(process.rlimits[1], Rlimit { kind: RlimitType::Core, hard: u64::MAX, soft: 0 });
    assert_eq!(process.scheduler.as_ref().unwrap().policy, SchedulerPolicy::Deadline);
    assert_eq!(process.io_priority, Some(IoPriority { class: IoPriorityClass::Be, priority: 4 }));
    let linux = spec.linux.as_ref().unwrap();
    assert_eq!(linux.namespace(NamespaceType::Network).unwrap().path, "/var/run/netns/neta");
    assert_eq!(linux.namespaces.len(), NamespaceType::ALL.len());
    assert_eq!(linux.devices[3].kind, DeviceType::Fifo);
    assert_eq!(linux.rootfs_propagation, Some(RootfsPropagation::Slave));
    assert_eq!(linux.personality.as_ref().unwrap().domain, PersonalityDomain::Linux32);
    let resources = linux.resources.as_ref().unwrap();
    assert_eq!(resources.devices[1].kind, Some(DeviceRuleType::Char));
    assert_eq!(resources.memory.as_ref().unwrap().swap, Some(-1));
    assert_eq!(resources.block_io.as_ref().unwrap().throttle_write_iops_device[0].rate, 400);
    let seccomp = linux.seccomp.as_ref().unwrap();
    assert_eq!(seccomp.syscalls[2].args[0].op, SeccompOp::MaskedEqual);
    assert!(seccomp.syscalls[4].action.takes_errno());
    assert_eq!(spec.hooks.as_ref().unwrap().create_runtime[0].timeout, Some(5));
    assert_eq!(spec.mounts[1].uid_mappings[0].host_id, 100000);
    assert!(spec.mounts[1].is_bind());
}

#[test]
fn unknown_fields_are_kept_at_the_top_and_in_linux() {
    let json = json!({
        "ociVersion": "1.3.0",
        "root": {"path": "rootfs"},
        "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["sh"], "newProcessThing": true},
        "linux": {"netDevices": {"eth0": {"name": "ctr0"}}, "memoryPolicy": {"mode": "MPOL_BIND"}},
        "freebsd": {"jail": {}},
        "windows": {"layerFolders": []},
        "vm": {"kernel": {"path": "/vmlinuz"}}
    });
    let spec = Spec::parse(json.to_string().as_bytes()).unwrap();
    spec.validate().unwrap();
    assert_eq!(spec.extra["freebsd"], json!({"jail": {}}));
    assert_eq!(spec.linux.as_ref().unwrap().extra["netDevices"]["eth0"]["name"], "ctr0");
    assert_eq!(spec.unsupported_fields(), ["freebsd", "windows", "vm", "linux.memoryPolicy", "linux.netDevices"]);
    // Kept fields write back out; below `linux` unknown ones are ignored,
    // as the spec asks.
    let mut expected = json;
    expected["process"].as_object_mut().unwrap().remove("newProcessThing");
    assert_same(&serde_json::to_value(&spec).unwrap(), &expected);
}

#[test]
fn parse_errors_name_the_json_path() {
    assert_eq!(parse_err(r#"{"ociVersion": }"#), "invalid JSON at line 1 column 16: expected value");
    assert_eq!(parse_err(r#"{"ociVersion": "1.0.0""#), "invalid JSON at line 1 column 22: EOF while parsing an object");
    assert_eq!(parse_err(r#"{"ociVersion": "1.0.0"} x"#), "invalid JSON at line 1 column 25: trailing characters");
    assert_eq!(parse_err("{}"), "missing field `ociVersion`");
    assert_eq!(parse_err(r#"{"ociVersion": 1}"#), "ociVersion: invalid type: integer `1`, expected a string");
    assert_eq!(
        parse_err(&with_process(json!({"cwd": "/", "args": "sh"}))),
        r#"process.args: invalid type: string "sh", expected a sequence"#
    );
    assert_eq!(parse_err(&with_process(json!({"args": ["sh"]}))), "process: missing field `cwd`");
    assert_eq!(
        parse_err(&with_process(json!({"cwd": "/", "user": {"uid": -1}}))),
        "process.user.uid: invalid value: integer `-1`, expected u32"
    );
    assert_eq!(
        parse_err(&with_linux(json!({"namespaces": [{"type": "pid"}, {"type": "uts"}, {"type": "foo"}]}))),
        r#"linux.namespaces[2].type: unknown namespace type "foo""#
    );
    assert_eq!(
        parse_err(&with_process(json!({"cwd": "/", "rlimits": [{"type": "RLIMIT_FOO", "hard": 1, "soft": 1}]}))),
        r#"process.rlimits[0].type: unknown rlimit type "RLIMIT_FOO""#
    );
    assert_eq!(
        parse_err(&with_linux(json!({"seccomp": {"defaultAction": "SCMP_ACT_DENY"}}))),
        r#"linux.seccomp.defaultAction: unknown seccomp action "SCMP_ACT_DENY""#
    );
    assert_eq!(
        parse_err(&with_linux(
            json!({"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}})
        )),
        r#"linux.seccomp.syscalls[0].args[0].op: unknown seccomp operator "SCMP_CMP_LIKE""#
    );
    assert_eq!(
        parse_err(&with_linux(
            json!({"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}})
        )),
        r#"linux.seccomp.architectures[0]: unknown seccomp architecture "SCMP_ARCH_Z80""#
    );
    assert_eq!(
        parse_err(&with_linux(json!({"devices": [{"path": "/dev/x", "type": "x", "major": 1, "minor": 1}]}))),
        r#"linux.devices[0].type: unknown device type "x""#
    );
    let err = Spec::parse(with_linux(json!({"namespaces": [{"type": 7}]})).as_bytes()).unwrap_err();
    assert!(matches!(&err, ParseError::Value { path, .. } if path == "linux.namespaces[0].type"), "{err:?}");
}

#[test]
fn validate_names_the_field() {
    assert_eq!(
        invalid(&with_process(json!({"cwd": "tmp", "args": ["sh"]}))),
        r#"process.cwd: "tmp" is not an absolute path"#
    );
    assert_eq!(invalid(&with_process(json!({"cwd": "/"}))), "process.args: needs at least one entry");
    assert_eq!(
        invalid(&with_linux(json!({"namespaces": [{"type": "pid"}, {"type": "uts"}, {"type": "pid"}]}))),
        r#"linux.namespaces[2].type: duplicate namespace type "pid""#
    );
    assert_eq!(
        invalid(
            &with_linux(json!({"namespaces": [{"type": "net", "path": "ns/net"}]})).replace("\"net\"", "\"network\"")
        ),
        r#"linux.namespaces[0].path: "ns/net" is not an absolute path"#
    );
    assert_eq!(
        invalid(r#"{"ociVersion": "2.0.0", "root": {"path": "r"}}"#),
        r#"ociVersion: version "2.0.0" is not 1.x"#
    );
    assert_eq!(
        invalid(r#"{"ociVersion": "1.0", "root": {"path": "r"}}"#),
        r#"ociVersion: "1.0" is not a SemVer version"#
    );
    assert_eq!(invalid(r#"{"ociVersion": "", "root": {"path": "r"}}"#), "ociVersion: is required");
    assert_eq!(invalid(r#"{"ociVersion": "1.0.2-dev"}"#), "root: is required");
    assert_eq!(invalid(r#"{"ociVersion": "1.0.2", "root": {"path": ""}}"#), "root.path: is required");
    let spec = r#"{"ociVersion": "1.0.2", "root": {"path": "r"}, "annotations": {"": "x"}}"#;
    assert_eq!(invalid(spec), "annotations: has an empty key");
    let hooks = |hooks: Value| json!({"ociVersion": "1.0.2", "root": {"path": "r"}, "hooks": hooks}).to_string();
    assert_eq!(
        invalid(&hooks(json!({"poststart": [{"path": "/bin/true"}, {"path": "notify"}]}))),
        r#"hooks.poststart[1].path: "notify" is not an absolute path"#
    );
    assert_eq!(
        invalid(&hooks(json!({"createRuntime": [{"path": "/bin/true", "timeout": 0}]}))),
        "hooks.createRuntime[0].timeout: must be greater than zero, not 0"
    );
    let mounts = |mounts: Value| json!({"ociVersion": "1.0.2", "root": {"path": "r"}, "mounts": mounts}).to_string();
    assert_eq!(invalid(&mounts(json!([{"destination": ""}]))), "mounts[0].destination: is required");
    assert_eq!(
        invalid(&mounts(json!([{"destination": "/d", "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}]))),
        "mounts[0].uidMappings: given without gidMappings"
    );
    // Relative destinations are allowed on Linux (deprecated).
    Spec::parse(mounts(json!([{"destination": "data"}])).as_bytes()).unwrap().validate().unwrap();
    assert_eq!(
        invalid(&with_process(json!({"cwd": "/", "args": ["sh"], "rlimits": [
            {"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1}, {"type": "RLIMIT_NOFILE", "hard": 2, "soft": 2}]}))),
        r#"process.rlimits[1].type: duplicate rlimit "RLIMIT_NOFILE""#
    );
}

#[test]
fn validate_checks_linux_rules() {
    let map = |c: u32, h: u32, s: u32| json!({"containerID": c, "hostID": h, "size": s});
    assert_eq!(
        invalid(&with_linux(json!({"uidMappings": [map(0, 1000, 0)]}))),
        "linux.uidMappings[0].size: must be greater than zero, not 0"
    );
    assert_eq!(
        invalid(&with_linux(json!({"gidMappings": [map(4294967295, 0, 2)]}))),
        "linux.gidMappings[0]: containerID 4294967295 + size 2 goes past 4294967295"
    );
    assert_eq!(
        invalid(&with_linux(json!({"uidMappings": [map(0, 1000, 10), map(5, 5000, 10)]}))),
        "linux.uidMappings[1]: containerID range overlaps linux.uidMappings[0]"
    );
    assert_eq!(
        invalid(&with_linux(json!({"uidMappings": [map(0, 1000, 10), map(10, 1009, 10)]}))),
        "linux.uidMappings[1]: hostID range overlaps linux.uidMappings[0]"
    );
    assert_eq!(
        invalid(&with_linux(json!({"seccomp": {"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}}))),
        "linux.seccomp.defaultErrnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not SCMP_ACT_KILL"
    );
    let syscall = |rule: Value| with_linux(json!({"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}}));
    assert_eq!(
        invalid(&syscall(json!({"names": ["mount"], "action": "SCMP_ACT_LOG", "errnoRet": 1}))),
        "linux.seccomp.syscalls[0].errnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not SCMP_ACT_LOG"
    );
    assert_eq!(
        invalid(&syscall(json!({"names": [], "action": "SCMP_ACT_KILL"}))),
        "linux.seccomp.syscalls[0].names: needs at least one entry"
    );
    assert_eq!(
        invalid(&syscall(
            json!({"names": ["x"], "action": "SCMP_ACT_KILL", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]})
        )),
        "linux.seccomp.syscalls[0].args[0].index: 6 is not a syscall argument (0 to 5)"
    );
    assert_eq!(
        invalid(&with_linux(json!({"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}}))),
        "linux.seccomp.listenerMetadata: given without listenerPath"
    );
    assert_eq!(
        invalid(&with_linux(json!({"devices": [{"path": "/dev/null", "type": "c", "minor": 3}]}))),
        r#"linux.devices[0].major: is required unless type is "p""#
    );
    assert_eq!(
        invalid(&with_linux(json!({"devices": [{"path": "dev/fifo", "type": "p"}]}))),
        r#"linux.devices[0].path: "dev/fifo" is not an absolute path"#
    );
    assert_eq!(
        invalid(&with_linux(json!({"resources": {"devices": [{"allow": true, "access": "rwx"}]}}))),
        r#"linux.resources.devices[0].access: "rwx" may contain only r, w and m"#
    );
    assert_eq!(
        invalid(&with_linux(json!({"resources": {"blockIO": {"weightDevice": [{"major": 8, "minor": 0}]}}}))),
        "linux.resources.blockIO.weightDevice[0]: needs weight or leafWeight"
    );
    assert_eq!(
        invalid(&with_linux(json!({"resources": {"rdma": {"mlx5_1": {}}}}))),
        "linux.resources.rdma.mlx5_1: needs hcaHandles or hcaObjects"
    );
    assert_eq!(
        invalid(&with_linux(json!({"timeOffsets": {"realtime": {"secs": 1}}}))),
        r#"linux.timeOffsets: unknown clock "realtime" (monotonic or boottime)"#
    );
    assert_eq!(
        invalid(&with_linux(json!({"maskedPaths": ["proc/kcore"]}))),
        r#"linux.maskedPaths[0]: "proc/kcore" is not an absolute path"#
    );
    assert_eq!(
        invalid(&with_linux(json!({"readonlyPaths": ["/a", "b"]}))),
        r#"linux.readonlyPaths[1]: "b" is not an absolute path"#
    );
    // All problems, in document order.
    let spec = Spec::parse(with_process(json!({"cwd": "x"})).as_bytes()).unwrap();
    let fields: Vec<String> = spec.problems().into_iter().map(|p| p.field).collect();
    assert_eq!(fields, ["process.cwd", "process.args"]);
}

#[test]
fn semver_versions() {
    for good in ["1.0.0", "1.0.2-dev", "1.2.1", "1.1.0-rc.1", "1.0.0+build.5", "1.3.0-alpha-1+x"] {
        let json = format!(r#"{{"ociVersion": "{good}", "root": {{"path": "r"}}}}"#);
        Spec::parse(json.as_bytes()).unwrap().validate().unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in ["1", "1.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "v1.0.0", "1.0.0.0"] {
        let json = format!(r#"{{"ociVersion": "{bad}", "root": {{"path": "r"}}}}"#);
        assert_eq!(invalid(&json), format!("ociVersion: {bad:?} is not a SemVer version"));
    }
}

#[test]
fn load_reads_config_json_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Spec::load(dir.path()).unwrap_err().to_string();
    let path = dir.path().join("config.json");
    assert_eq!(err, format!("reading {}: No such file or directory (os error 2)", path.display()));
    std::fs::write(&path, r#"{"ociVersion": 2}"#).unwrap();
    let err = Spec::load(dir.path()).unwrap_err().to_string();
    assert_eq!(err, format!("{}: ociVersion: invalid type: integer `2`, expected a string", path.display()));
    std::fs::write(&path, RUNC_SPEC).unwrap();
    assert_eq!(Spec::load(dir.path()).unwrap(), Spec::parse(RUNC_SPEC.as_bytes()).unwrap());
}

#[test]
fn state_round_trips_with_runc_extras() {
    let json = json!({
        "ociVersion": "1.0.2-dev", "id": "c1", "pid": 4422, "status": "paused", "bundle": "/b",
        "rootfs": "/b/rootfs", "created": "2026-12-07T04:00:00.000000000Z", "owner": "",
        "annotations": {"k": "v"}
    });
    let state = State::parse(json.to_string().as_bytes()).unwrap();
    assert_eq!(state.status, Status::Paused);
    assert_eq!(state.pid, Some(4422));
    assert_eq!(state.extra["rootfs"], "/b/rootfs");
    assert_eq!(serde_json::to_value(&state).unwrap(), json);
    assert_eq!(State::parse(state.to_json().as_bytes()).unwrap(), state);
    let stopped = json!({"ociVersion": "1.2.1", "id": "c1", "status": "stopped", "bundle": "/b"});
    assert_eq!(serde_json::to_value(State::parse(stopped.to_string().as_bytes()).unwrap()).unwrap(), stopped);
    let err = State::parse(br#"{"ociVersion": "1.2.1", "id": "c", "status": "zombie", "bundle": "/b"}"#).unwrap_err();
    assert_eq!(err.to_string(), r#"status: unknown container status "zombie""#);
}

#[test]
fn features_round_trip() {
    let json = json!({
        "ociVersionMin": "1.0.0", "ociVersionMax": "1.2.1",
        "hooks": ["prestart", "createRuntime"], "mountOptions": ["ro", "rbind"],
        "linux": {
            "namespaces": ["cgroup", "ipc"], "capabilities": ["CAP_CHOWN"],
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": true},
            "seccomp": {"enabled": true, "actions": ["SCMP_ACT_ALLOW"], "operators": ["SCMP_CMP_EQ"],
                        "archs": ["SCMP_ARCH_X86_64"], "knownFlags": ["SECCOMP_FILTER_FLAG_LOG"], "supportedFlags": []},
            "apparmor": {"enabled": false}, "selinux": {"enabled": false}, "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {"org.opencontainers.runc.version": "1.1.5"},
        "potentiallyUnsafeConfigAnnotations": ["bundle", "org.systemd.property."]
    });
    let features = Features::parse(json.to_string().as_bytes()).unwrap();
    assert_eq!(features.linux.as_ref().unwrap().seccomp.as_ref().unwrap().supported_flags, Some(vec![]));
    assert_eq!(serde_json::to_value(&features).unwrap(), json);
    assert_eq!(Features::parse(features.to_json().as_bytes()).unwrap(), features);
}

#[test]
fn features_parse_installed_runc() {
    if !have_runc("features_parse_installed_runc") {
        return;
    }
    let out = Command::new("runc").arg("features").output().unwrap();
    assert!(out.status.success(), "runc features: {}", String::from_utf8_lossy(&out.stderr));
    let features = Features::parse(&out.stdout).unwrap();
    assert_eq!(features.oci_version_min, "1.0.0");
    assert_same(&serde_json::to_value(&features).unwrap(), &serde_json::from_slice(&out.stdout).unwrap());
}

#[test]
fn enums_spell_as_the_spec() {
    assert_eq!(
        NamespaceType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]
    );
    assert_eq!("SCMP_ARCH_X86_64".parse::<Arch>(), Ok(Arch::X86_64));
    assert_eq!("SECCOMP_FILTER_FLAG_TSYNC".parse::<SeccompFlag>(), Ok(SeccompFlag::Tsync));
    assert_eq!("bogus".parse::<Status>(), Err(r#"unknown container status "bogus""#.to_string()));
    assert_eq!(RlimitType::ALL.len(), 16);
    assert_eq!(Mount { destination: "data".into(), ..Mount::default() }.destination_path(), "/data");
}
