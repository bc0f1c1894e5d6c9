//! A default container (no loosening flag) denies each escape of issue 14,
//! as Docker's current defaults do.

use crate::probe::{fnv, Verdict, DOCKER_CAPS};
use crate::{root_disk, spare_char_device, Host};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;

/// Syscalls Docker's current default profile denies a container without
/// CAP_SYS_ADMIN (and the kernel then never sees).
const DENIED: &[&str] = &[
    "unshare-user",
    "unshare-mnt",
    "keyctl-join",
    "add-key",
    "io-uring-setup",
    "bpf-prog-load",
    "perf-event-open",
    "userfaultfd",
    "mount-tmpfs",
    "setns-mnt",
    "personality-bad",
];

/// Paths Docker masks, of those the probe looks at; each must be masked
/// where the host has it.
const MASKED: &[&str] = &["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/acpi", "/sys/firmware", "/proc/scsi"];

/// Docker's default device rules (moby's default spec and runc's allowed
/// devices): mknod of anything, and null, zero, full, random, urandom,
/// tty, console, pts and ptmx.
pub const DOCKER_DEVICES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// A rule some Docker versions add (`/dev/net/tun`), allowed, not required.
const DOCKER_DEVICES_OPTIONAL: &[&str] = &["c 10:200 rwm"];

#[test]
fn default_container_denies_every_escape() {
    let Some(host) = Host::new("security-defaults") else { return };
    let disk = format!("disk={}", root_disk());
    // The caller's own descriptor 7 must not reach the container.
    let r = host.probe_with_fd7(&[&disk]);
    let mut v = Verdict::new(&r);

    v.is("Seccomp", "2");
    v.is("NoNewPrivs", "1");
    // Empty inheritable and ambient sets (CVE-2022-24769); Docker's 14.
    v.caps("CapInh", 0);
    v.caps("CapAmb", 0);
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        v.caps(set, DOCKER_CAPS);
    }
    for check in DENIED {
        v.denied(check);
    }
    v.is("clone3", "denied(ENOSYS)");
    // What Docker's profile leaves open still works: the probe is not
    // failing everything.
    for check in ["personality-query", "getcwd", "open:/dev/null", "open:/dev/zero", "open:/dev/urandom"] {
        v.is(check, "allowed");
    }
    // A node for the host's root disk may be made (CAP_MKNOD, `b *:* m`)
    // but not opened.
    if r.get("mknod-disk") == "allowed" {
        v.is("open-disk", "denied(EPERM)");
    }
    // Only stdio: not the caller's fd 7, nor strata's own (CVE-2024-21626).
    v.is("fds", "0,1,2");
    let masked: Vec<&str> = r.get("masked").split(',').collect();
    for path in MASKED.iter().filter(|p| std::path::Path::new(p).exists()) {
        v.that(masked.contains(path), format!("{path} is not masked"));
    }
    v.done("a default container allows what Docker's defaults deny");
}

#[test]
fn default_device_cgroup_is_dockers() {
    let Some(host) = Host::new("security-devices") else { return };
    let dev = spare_char_device().map(|d| format!("open={}", d.display()));
    let args: Vec<&str> = dev.iter().map(String::as_str).collect();
    let (r, list) = host.held(&[], &args).unwrap_or_else(|e| panic!("{e}"));
    let got: BTreeSet<&str> = list.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let missing: Vec<&&str> = DOCKER_DEVICES.iter().filter(|d| !got.contains(**d)).collect();
    let extra: Vec<&&str> =
        got.iter().filter(|d| !DOCKER_DEVICES.contains(d) && !DOCKER_DEVICES_OPTIONAL.contains(d)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the container's devices.list (read on the host) is not Docker's default:\nmissing {missing:?}\nextra {extra:?}\n{list}"
    );
    if let Some(check) = args.first() {
        let check = check.replace('=', ":");
        r.expect_denied(&check);
    }
}

/// With `--init`, PID 1 is not the host's strata binary (CVE-2019-5736):
/// read from the host, the container's PID 1 runs some other file (a
/// separate init, or a sealed memfd copy); inside, `/proc/1/exe` cannot
/// be opened for writing, and what reads back is not strata.
#[test]
fn init_is_not_the_strata_binary() {
    let Some(host) = Host::new("security-init") else { return };
    let mut init_exe = None;
    let (r, _) = host
        .held_with(&["--init"], &[], |pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:")).unwrap().trim().to_owned();
            let exe = format!("/proc/{ppid}/exe");
            let meta = std::fs::metadata(&exe).unwrap_or_else(|e| panic!("{exe}: {e}"));
            init_exe = Some((std::fs::read_link(&exe).unwrap(), meta.dev(), meta.ino()));
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (link, dev, ino) = init_exe.unwrap();
    let mut v = Verdict::new(&r);
    v.that(r.get("proc1-exe") != "/probe", "--init did not run an init as PID 1");
    v.denied("proc1-exe-write");
    for (name, path) in [("strata", env!("CARGO_BIN_EXE_strata")), ("strata-runc", env!("CARGO_BIN_EXE_strata-runc"))] {
        let host_bin = std::fs::metadata(path).unwrap();
        v.that(
            (host_bin.dev(), host_bin.ino()) != (dev, ino),
            format!(
                "the container's PID 1 runs the host's {name} binary ({path}; its /proc/PID/exe is {})",
                link.display()
            ),
        );
        let read = r.get("proc1-exe-read");
        v.that(!read.contains(&fnv(&std::fs::read(path).unwrap())), format!("/proc/1/exe reads back as {name}"));
    }
    v.done("--init exposes the host's strata binary");
}
