//! Each loosening flag (Docker's names and syntax) loosens exactly what it
//! names and nothing else: the probe's report under the flag is compared
//! with a default container's, check by check.

use crate::probe::{own_bounding_set, side_by_side, Report, CAP_CHOWN, CAP_SYS_ADMIN, DOCKER_CAPS};
use crate::{spare_char_device, Host, IMAGE};

/// Runs the probe by default and with `flags`; asserts that only the
/// checks in `changes` differ; both reports.
#[track_caller]
fn compare(host: &Host, flags: &[&str], args: &[&str], changes: &[&str]) -> (Report, Report) {
    let base = host.probe(&[], args);
    let with = host.try_probe(flags, args).unwrap_or_else(|e| panic!("{flags:?}: {e}"));
    let table = side_by_side(("default", &base), (&flags.join(" "), &with));
    let unexpected: Vec<&String> = base
        .checks
        .keys()
        .filter(|k| base.checks.get(*k) != with.checks.get(*k) && !changes.contains(&k.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "{flags:?} also changed {unexpected:?}:\n{table}");
    (base, with)
}

#[test]
fn privileged_is_all_caps_no_seccomp_all_devices_no_masks() {
    let Some(host) = Host::new("security-privileged") else { return };
    let (r, list) = host.held(&["--privileged"], &[]).unwrap_or_else(|e| panic!("{e}"));
    r.expect("Seccomp", "0");
    let all = own_bounding_set();
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(r.caps(set), all, "{set} under --privileged is not every capability the host has:\n{}", r.raw);
    }
    assert_eq!(list.trim(), "a *:* rwm", "devices.list under --privileged");
    r.expect("masked", "");
    r.expect_allowed("mount-tmpfs");
}

#[test]
fn cap_add_sys_admin_adds_it_and_the_syscalls_it_gates() {
    let Some(host) = Host::new("security-cap-add") else { return };
    let changes = [
        "CapEff",
        "CapPrm",
        "CapBnd",
        "mount-tmpfs",
        "unshare-mnt",
        "unshare-user",
        "setns-mnt",
        "clone3",
        "bpf-prog-load",
        "perf-event-open",
    ];
    let (_, r) = compare(&host, &["--cap-add", "SYS_ADMIN"], &[], &changes);
    assert_eq!(r.caps("CapEff"), DOCKER_CAPS | 1 << CAP_SYS_ADMIN, "{}", r.raw);
    assert_eq!(r.caps("CapBnd"), DOCKER_CAPS | 1 << CAP_SYS_ADMIN, "{}", r.raw);
    r.expect("Seccomp", "2");
    r.expect_allowed("mount-tmpfs");
    r.expect_allowed("unshare-mnt");
}

#[test]
fn cap_drop_all_leaves_no_capability() {
    let Some(host) = Host::new("security-cap-drop-all") else { return };
    let disk = format!("disk={}", crate::root_disk());
    let (_, r) =
        compare(&host, &["--cap-drop", "ALL"], &[&disk], &["CapEff", "CapPrm", "CapBnd", "mknod-disk", "open-disk"]);
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(r.caps(set), 0, "{set} under --cap-drop ALL:\n{}", r.raw);
    }
    r.expect("mknod-disk", "denied(EPERM)");
}

#[test]
fn cap_drop_chown_drops_only_chown() {
    let Some(host) = Host::new("security-cap-drop") else { return };
    let (_, r) = compare(&host, &["--cap-drop", "CHOWN"], &[], &["CapEff", "CapPrm", "CapBnd"]);
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(r.caps(set), DOCKER_CAPS & !(1 << CAP_CHOWN), "{set} under --cap-drop CHOWN:\n{}", r.raw);
    }
}

#[test]
fn device_adds_that_device_only() {
    let Some(host) = Host::new("security-device") else { return };
    let Some(dev) = spare_char_device() else {
        let why = "--device needs /dev/fuse or /dev/net/tun on the host";
        assert!(std::env::var_os("STRATA_TEST_STRICT").is_none(), "{why}, and STRATA_TEST_STRICT forbids skipping");
        eprintln!("skipped: {why}");
        return;
    };
    let meta = std::fs::metadata(&dev).unwrap();
    let rdev = std::os::unix::fs::MetadataExt::rdev(&meta);
    let rule = format!("c {}:{} rwm", rustix::fs::major(rdev), rustix::fs::minor(rdev));
    let path = dev.to_str().unwrap();
    let open = format!("open={path}");
    let (_, default_list) = host.held(&[], &[&open]).unwrap_or_else(|e| panic!("{e}"));
    let (r, list) = host.held(&["--device", path], &[&open]).unwrap_or_else(|e| panic!("{e}"));
    r.expect_allowed(&format!("open:{path}"));
    assert!(list.lines().any(|l| l.trim() == rule), "no `{rule}` in devices.list under --device {path}:\n{list}");
    let added: Vec<&str> = list.lines().filter(|l| !default_list.lines().any(|d| d == *l)).collect();
    assert_eq!(added, [rule.as_str()], "--device {path} added other rules:\n{list}");
}

#[test]
fn seccomp_unconfined_drops_only_the_filter() {
    let Some(host) = Host::new("security-unconfined") else { return };
    let changes = [
        "Seccomp",
        "keyctl-join",
        "add-key",
        "io-uring-setup",
        "clone3",
        "userfaultfd",
        "personality-bad",
        "unshare-user",
        "perf-event-open",
        "bpf-prog-load",
    ];
    let (_, r) = compare(&host, &["--security-opt", "seccomp=unconfined"], &[], &changes);
    r.expect("Seccomp", "0");
    // The kernel lets any process join a session keyring: only a filter
    // stopped it.
    r.expect_allowed("keyctl-join");
    assert_eq!(r.caps("CapEff"), DOCKER_CAPS, "{}", r.raw);
}

#[test]
fn seccomp_profile_file_is_applied() {
    let Some(host) = Host::new("security-profile") else { return };
    let profile = host.env.scratch("deny-getcwd.json");
    std::fs::write(
        &profile,
        r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [
    { "names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 }
  ]
}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let r = host.probe(&["--security-opt", &opt], &[]);
    r.expect("Seccomp", "2");
    r.expect("getcwd", "denied(EPERM)");
    // The profile allows what the default denies: it replaced it.
    r.expect_allowed("keyctl-join");
    assert_eq!(r.caps("CapEff"), DOCKER_CAPS, "{}", r.raw);
}

#[test]
fn ulimit_nofile_sets_both_limits() {
    let Some(host) = Host::new("security-ulimit") else { return };
    let (_, r) = compare(&host, &["--ulimit", "nofile=1024:2048"], &[], &["rlimit-nofile"]);
    r.expect("rlimit-nofile", "1024:2048");
}

#[test]
fn inspect_shows_every_limit_in_force() {
    let Some(host) = Host::new("security-inspect-ulimits") else { return };
    let id = host.env.ok(&["create", "--ulimit", "nofile=1024:2048", "--cap-drop", "chown", IMAGE, "/probe"]);
    let inspect: serde_json::Value = serde_json::from_str(&host.env.ok(&["inspect", id.trim()])).unwrap();
    let hc = &inspect[0]["HostConfig"];
    let ulimits = hc["Ulimits"].as_array().expect("Ulimits listed");
    let find = |name: &str| ulimits.iter().find(|u| u["Name"] == name).unwrap_or_else(|| panic!("no {name} in {hc}"));
    assert_eq!((find("nofile")["Soft"].as_u64(), find("nofile")["Hard"].as_u64()), (Some(1024), Some(2048)));
    // The rest are the caller's own limits, inherited as Docker's
    // containers inherit dockerd's.
    let stack = rustix::process::getrlimit(rustix::process::Resource::Stack);
    assert_eq!(find("stack")["Soft"].as_u64(), Some(stack.current.unwrap_or(u64::MAX)), "{hc}");
    assert_eq!(hc["CapDrop"], serde_json::json!(["CAP_CHOWN"]));
    host.env.ok(&["rm", id.trim()]);
}
