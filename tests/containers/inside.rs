//! What a process sees inside a container: its own PID 1, hostname,
//! processes and mounts; no privileged operations; no way out of its root.

use crate::Host;
use strata::scratch::FsKind;

#[test]
fn isolation_inside_a_container() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    let env = &host.env;
    // PID 1 is the command; the hostname is the short ID.
    let (code, out, err) = host.sh(&[], "echo $$; hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo");
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the command is PID 1");
    assert_eq!(lines[1].len(), 12, "hostname is the 12-character short ID: {}", lines[1]);
    assert!(lines[2].starts_with("sh -c"), "{}", lines[2]);

    // /proc shows only the container's processes.
    let (_, out, _) = host.sh(&[], "ls /proc | grep -c '^[0-9]*$'");
    let n: usize = out.trim().parse().unwrap();
    assert!(n <= 3, "only the container's own processes are visible, saw {n}");

    // The host's mounts are invisible: the scratch filesystem the data
    // root lives on is mounted on the host, not in the container.
    let (_, mounts, _) = host.sh(&[], "cat /proc/mounts");
    let points: Vec<&str> = mounts.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(points[0], "/", "{mounts}");
    assert!(mounts.lines().next().unwrap().starts_with("overlay / overlay"), "{mounts}");
    let allowed = ["/", "/proc", "/sys", "/dev", "/etc"];
    for p in &points {
        assert!(
            allowed.iter().any(|a| *p == *a || p.starts_with(&format!("{a}/"))),
            "host mount point {p} visible inside:\n{mounts}"
        );
    }
    let scratch = env.fs.path().display().to_string();
    assert!(!points.iter().any(|p| p.starts_with(&scratch)), "the host's scratch mount is not a mount point inside");

    // Privileged operations fail with EPERM.
    let (code, _, err) = host.sh(&[], "mount -t tmpfs none /tmp");
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted") || err.contains("permission denied"), "mount: {err}");
    let (code, _, err) = host.sh(&[], "reboot -f");
    assert_ne!(code, 0, "reboot must fail: {err}");
    let (_, out, _) = host.sh(&[], "cat /proc/self/status | grep CapBnd");
    let bnd = u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(bnd & (1 << 21), 0, "no CAP_SYS_ADMIN in the bounding set");
    assert_eq!(bnd & (1 << 22), 0, "no CAP_SYS_BOOT");
    let (_, out, _) = host.sh(&[], "grep NoNewPrivs /proc/self/status");
    assert!(out.contains('1'), "no_new_privs is set: {out}");

    // The host is out of reach through .. and symlinks.
    let marker = env.scratch("host-secret");
    std::fs::write(&marker, "TOPSECRET").unwrap();
    let m = marker.display().to_string();
    let (_, out, _) = host.sh(
        &[],
        &format!("cat /../../../..{m} 2>&1; ln -s / /tmp/up; cat /tmp/up/../..{m} 2>&1; ls /proc/1/root/..{m} 2>&1"),
    );
    assert!(!out.contains("TOPSECRET"), "host file reached from inside: {out}");

    // Masked and read-only paths.
    let (_, out, _) = host.sh(&[], "wc -c < /proc/keys; echo 1 > /proc/sys/kernel/domainname 2>&1 || echo ro");
    let mut l = out.lines();
    assert_eq!(l.next().map(str::trim), Some("0"), "/proc/keys is masked");
    assert!(out.contains("ro") || out.contains("Read-only"), "/proc/sys is read-only: {out}");

    // Network none: loopback only, up.
    let (_, out, _) = host.sh(&[], "ls /sys/class/net; cat /sys/class/net/lo/operstate");
    assert_eq!(out.lines().next(), Some("lo"), "only loopback: {out}");
}

#[test]
fn read_only_root_user_env_and_workdir() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    let (code, _, err) = host.sh(&["--read-only"], "touch /x");
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    let (_, out, _) = host.sh(&["-u", "nobody", "-e", "FOO=bar", "-w", "/tmp/work"], "id -u; id -g; echo $FOO; pwd");
    assert_eq!(out, "65534\n65534\nbar\n/tmp/work\n");
    let (_, out, _) = host.sh(&["-u", "1234:5678"], "id -u; id -g; grep CapEff /proc/self/status");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(&l[..2], &["1234", "5678"]);
    assert!(l[2].ends_with("0000000000000000"), "a non-root user has no effective capabilities: {}", l[2]);
}
