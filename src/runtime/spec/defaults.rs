//! The default `config.json`, as `runc spec` writes it.

use super::{
    Capabilities, DeviceRule, Linux, Mount, Namespace, NamespaceType, Process, Resources, Rlimit, RlimitType, Root,
    Spec, User, VERSION,
};

impl Spec {
    /// What `runc spec` (Debian bookworm's runc 1.1.5) writes, field for
    /// field, except `ociVersion`, which is the version these types follow
    /// ([`VERSION`]; runc writes its own, `1.0.2-dev`). runc also adds a
    /// `cgroup` namespace when the host's cgroups are pure v2; this does
    /// not look at the host.
    pub fn default_for_run() -> Spec {
        let caps = || ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"].map(String::from).to_vec();
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mount = |destination: &str, kind: &str, source: &str, options: &[&str]| Mount {
            destination: destination.into(),
            kind: kind.into(),
            source: source.into(),
            options: strings(options),
            ..Mount::default()
        };
        let namespace = |kind| Namespace { kind, path: String::new() };
        Spec {
            oci_version: VERSION.into(),
            process: Some(Process {
                terminal: true,
                user: User::default(),
                args: strings(&["sh"]),
                env: strings(&["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]),
                cwd: "/".into(),
                capabilities: Some(Capabilities {
                    bounding: caps(),
                    effective: caps(),
                    inheritable: Vec::new(),
                    permitted: caps(),
                    ambient: caps(),
                }),
                rlimits: vec![Rlimit { kind: RlimitType::Nofile, hard: 1024, soft: 1024 }],
                no_new_privileges: true,
                ..Process::default()
            }),
            root: Some(Root { path: "rootfs".into(), readonly: true }),
            hostname: "runc".into(),
            mounts: vec![
                mount("/proc", "proc", "proc", &[]),
                mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
                mount(
                    "/dev/pts",
                    "devpts",
                    "devpts",
                    &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
                ),
                mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
                mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
                mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
                mount("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", "ro"]),
            ],
            linux: Some(Linux {
                resources: Some(Resources {
                    devices: vec![DeviceRule { allow: false, access: "rwm".into(), ..DeviceRule::default() }],
                    ..Resources::default()
                }),
                namespaces: [
                    NamespaceType::Pid,
                    NamespaceType::Network,
                    NamespaceType::Ipc,
                    NamespaceType::Uts,
                    NamespaceType::Mount,
                ]
                .map(namespace)
                .to_vec(),
                masked_paths: strings(&[
                    "/proc/acpi",
                    "/proc/asound",
                    "/proc/kcore",
                    "/proc/keys",
                    "/proc/latency_stats",
                    "/proc/timer_list",
                    "/proc/timer_stats",
                    "/proc/sched_debug",
                    "/sys/firmware",
                    "/proc/scsi",
                ]),
                readonly_paths: strings(&["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]),
                ..Linux::default()
            }),
            ..Spec::default()
        }
    }
}
