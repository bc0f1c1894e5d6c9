//! The container's file system: mounts and their options, devices and
//! the device cgroup, masked and read-only paths, the root.

use crate::runner::HostTmpfs;
use crate::{compare, host_dir, put, Case, Compared};
use std::os::unix::fs::PermissionsExt;
use strata::runtime::spec::{Device, DeviceRule, DeviceRuleType, DeviceType, Mount, RootfsPropagation};

fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    Mount {
        destination: destination.into(),
        kind: kind.into(),
        source: source.into(),
        options: options.iter().map(|o| o.to_string()).collect(),
        ..Mount::default()
    }
}

#[test]
fn mounts_bind_tmpfs_recursive_and_flags() {
    let case = Case::new("mounts")
        .prepare(|bundle| {
            host_dir(bundle.path(), "src-ro", "read-only bind\n");
            let flags = host_dir(bundle.path(), "src-flags", "flags\n");
            let script = std::path::Path::new(&flags).join("run.sh");
            std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            host_dir(bundle.path(), "src-r", "recursive\n");
            // A mount below the rbind source: `rro` must reach it too.
            let sub = bundle.path().join("src-r/sub");
            let guard = HostTmpfs::new(&sub);
            std::fs::write(sub.join("inner"), "inner\n").unwrap();
            bundle.guards.push(Box::new(guard));
        })
        .edit(|spec, bundle| {
            let src = |name: &str| bundle.path().join(name).to_str().unwrap().to_string();
            spec.mounts.extend([
                mount("/mnt/ro", "bind", &src("src-ro"), &["bind", "ro"]),
                mount("/mnt/tmp", "tmpfs", "tmpfs", &["size=1m", "mode=1770", "nosuid", "nodev", "noexec"]),
                mount("/mnt/flags", "bind", &src("src-flags"), &["bind", "nosuid", "nodev", "noexec"]),
                mount("/mnt/rro", "bind", &src("src-r"), &["rbind", "rro"]),
                mount("/mnt/norec", "bind", &src("src-r"), &["bind"]),
            ]);
        })
        .extra(
            "cat /mnt/ro/file; touch /mnt/ro/new\n\
             stat -c '%a' /mnt/tmp\n\
             /mnt/flags/run.sh; echo exec=$?\n\
             cat /mnt/rro/sub/inner; touch /mnt/rro/sub/new\n\
             ls /mnt/norec/sub | wc -l",
        );
    let Some(Compared { want, .. }) = compare(case) else { return };
    let extra = want.observed.section("extra");
    assert_eq!(extra[0], "read-only bind");
    assert!(extra[1].contains("Read-only file system"), "{extra:?}");
    assert_eq!(extra[2], "1770");
    assert!(extra[3].contains("Permission denied"), "{extra:?}");
    assert_eq!(extra[5], "inner");
    assert!(extra[6].contains("Read-only file system"), "rro reaches submounts: {extra:?}");
    assert_eq!(extra[7], "0", "a plain bind does not take submounts");
    let tmp = want.observed.mount("/mnt/tmp").expect("tmpfs mount");
    assert!(tmp.contains("nosuid,nodev,noexec") && tmp.contains("size=1024k"), "{tmp}");
}

#[test]
fn mount_propagation() {
    let case = Case::new("propagation")
        .prepare(|bundle| {
            host_dir(bundle.path(), "src-a", "a\n");
        })
        .edit(|spec, bundle| {
            let src = bundle.path().join("src-a").to_str().unwrap().to_string();
            spec.mounts.extend([
                mount("/mnt/private", "bind", &src, &["rbind", "rprivate"]),
                mount("/mnt/unbindable", "bind", &src, &["rbind", "runbindable"]),
                mount("/mnt/shared", "bind", &src, &["rbind", "rshared"]),
            ]);
            spec.linux.as_mut().unwrap().rootfs_propagation = Some(RootfsPropagation::Slave);
        });
    let Some(Compared { want, .. }) = compare(case) else { return };
    let private = want.observed.mount("/mnt/private").unwrap();
    let unbindable = want.observed.mount("/mnt/unbindable").unwrap();
    assert!(private.contains(" private "), "{private}");
    assert!(unbindable.contains("unbindable"), "{unbindable}");
    let shared = want.observed.mount("/mnt/shared").unwrap();
    assert!(shared.contains(" shared "), "{shared}");
}

#[test]
fn writable_root() {
    let case = Case::new("rootrw")
        .edit(|spec, _| spec.root.as_mut().unwrap().readonly = false)
        .extra("echo hi > /root/f && cat /root/f");
    let Some(Compared { want, .. }) = compare(case) else { return };
    assert_eq!(want.observed.section("rootfs"), ["writable"]);
    assert_eq!(want.observed.section("extra"), ["hi"]);
}

#[test]
fn devices_nodes_and_cgroup_rules() {
    let case = Case::new("devices")
        .edit(|spec, _| {
            let linux = spec.linux.as_mut().unwrap();
            let dev = |path: &str, major, minor, mode, owner| Device {
                path: path.into(),
                kind: DeviceType::Char,
                major: Some(major),
                minor: Some(minor),
                file_mode: Some(mode),
                uid: Some(owner),
                gid: Some(owner + 1),
            };
            linux.devices = vec![dev("/dev/fuse", 10, 229, 0o664, 1000), dev("/dev/sub/kmsg2", 1, 11, 0o600, 0)];
            linux.resources.as_mut().unwrap().devices.push(DeviceRule {
                allow: true,
                kind: Some(DeviceRuleType::Char),
                major: Some(10),
                minor: Some(229),
                access: "rw".into(),
            });
        })
        .extra(
            "ls -ln /dev/sub | tail -n1 | awk '{print $1, $3, $4, $5 $6, $NF}'\n\
             head -c0 /dev/fuse; echo open-fuse=$?\n\
             head -c0 /dev/sub/kmsg2; echo open-kmsg=$?",
        );
    let Some(Compared { want, .. }) = compare(case) else { return };
    assert!(want.observed.section("dev").contains(&"crw-rw-r-- 1000 1001 10,229 fuse"), "{:?}", want.observed);
    assert!(want.observed.section("devices").contains(&"c 10:229 rw"));
    let extra = want.observed.section("extra");
    assert_eq!(extra[0], "crw------- 0 1 1,11 kmsg2");
    assert_eq!(extra[1], "open-fuse=0");
    assert!(extra.contains(&"open-kmsg=1"), "the device cgroup denies 1:11: {extra:?}");
}

#[test]
fn masked_and_readonly_paths() {
    let case = Case::new("masked")
        .prepare(|bundle| put(bundle, "/etc/secret", "secret\n"))
        .edit(|spec, _| {
            spec.root.as_mut().unwrap().readonly = false;
            let linux = spec.linux.as_mut().unwrap();
            linux
                .masked_paths
                .extend(["/proc/loadavg", "/proc/driver", "/etc/secret", "/no/such/path"].map(String::from));
            linux.readonly_paths.extend(["/tmp", "/no/such/dir"].map(String::from));
        })
        .extra(
            "cat /etc/secret; echo secret=$?\n\
             echo 1 > /proc/sys/net/ipv4/ip_forward\n\
             touch /tmp/x; touch /root/x && echo root-writable",
        );
    let Some(Compared { want, .. }) = compare(case) else { return };
    let masked = want.observed.section("masked");
    assert!(masked.contains(&"/proc/loadavg file 0 bytes"), "{masked:?}");
    assert!(masked.contains(&"/etc/secret file 0 bytes"), "{masked:?}");
    assert!(masked.contains(&"/proc/driver dir 0 entries"), "{masked:?}");
    let extra = want.observed.section("extra");
    assert_eq!(extra[0], "secret=0");
    assert!(extra[1].contains("Read-only file system") && extra[2].contains("Read-only file system"), "{extra:?}");
    assert_eq!(extra[3], "root-writable");
}
