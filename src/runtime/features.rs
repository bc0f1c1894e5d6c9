//! `features`: what this build of the executor supports, as the OCI
//! features document (features.md) says it.

use super::spec::{
    self, Features, FeaturesApparmor, FeaturesCgroup, FeaturesIntelRdt, FeaturesLinux, FeaturesSelinux, NamespaceType,
};

/// Mount options `mounts[].options` may hold (what the rootfs code
/// parses).
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
];

/// The document `strata-runc features` prints.
pub fn features() -> Features {
    let namespaces =
        NamespaceType::ALL.iter().filter(|t| **t != NamespaceType::Time).map(|t| t.as_str().to_owned()).collect();
    let mut caps: Vec<String> = crate::sys::capability::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    let hooks = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];
    Features {
        oci_version_min: "1.0.0".into(),
        oci_version_max: spec::VERSION.into(),
        hooks: Some(hooks.iter().map(|h| h.to_string()).collect()),
        mount_options: Some(MOUNT_OPTIONS.iter().map(|o| o.to_string()).collect()),
        linux: Some(FeaturesLinux {
            namespaces: Some(namespaces),
            capabilities: Some(caps),
            cgroup: Some(FeaturesCgroup {
                v1: Some(true),
                v2: Some(true),
                systemd: Some(false),
                systemd_user: Some(false),
                rdma: Some(false),
            }),
            seccomp: Some(super::seccomp::features()),
            apparmor: Some(FeaturesApparmor { enabled: Some(false) }),
            selinux: Some(FeaturesSelinux { enabled: Some(false) }),
            intel_rdt: Some(FeaturesIntelRdt { enabled: Some(false) }),
            mount_extensions: None,
        }),
        annotations: Default::default(),
        potentially_unsafe_config_annotations: None,
    }
}
